"""
Persistence: an append-only file (AOF) of RESP commands, as Redis writes one.

Every change is appended as the command that makes it (relative expiry times
turned absolute, so a replay gives the same result later). C{fsync} decides when
the bytes are forced to the disk:

  - C{always}: before the replies of a batch are sent, so every acknowledged write
    survives a crash (kill -9, power loss);
  - C{everysec}: the file is written after each batch (a kill -9 loses nothing
    acknowledged; a power loss at most about a second);
  - C{no}: the file is written after each batch; the OS decides when to flush.

Compaction writes the whole keyspace to a temp file, fsyncs it, renames it over
the file and fsyncs the folder: at every instant the file on disk is either the
old one or the new one, complete.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Generator
from pathlib import Path
from typing import Any

from portsuite_services.kv.resp import BIG_ARG, command_bytes, command_parts, runs, string2ll
from portsuite_services.kv.sharded import kind

FSYNC_CHOICES = ("always", "everysec", "no")
TEMP_INFIX = ".rewrite-"  # kv.aof.rewrite-PID.tmp: a compaction in progress


class AOFError(Exception):
    """The data file cannot be loaded; the text is the one line to show."""


def read_records(
    path: Path, starts: list[int] | None = None
) -> tuple[list[list[bytes]], int, int, str | None]:
    """
    Parse an AOF. Counts and lengths are read as strictly as Redis reads a request
    (C{string2ll}: no sign but '-', no spaces, no leading zeros or underscores).

    @return: (commands, good_size, file_size, truncated_reason): C{good_size} is
        where the last complete record ends; C{truncated_reason} is set when an
        incomplete record ends the file (a crash mid-write).
    @param starts: if given, the byte where each record starts is appended to it.
    @raise AOFError: a malformed record before the end of the file.
    """
    data = path.read_bytes()
    size = len(data)
    cmds: list[list[bytes]] = []
    pos = 0

    def corrupt(at: int, why: str) -> AOFError:
        return AOFError(
            f"data file {path} is corrupt at byte {at} of {size} ({why}); nothing was "
            f"started: repair it with `redis-check-aof --fix {path}` (drops everything from "
            f"that byte on) or move it away"
        )

    while pos < size:
        start = pos
        if data[pos] != 42:  # '*'
            raise corrupt(pos, f"expected '*', found {data[pos : pos + 1]!r}")
        nl = data.find(b"\r\n", pos)
        if nl < 0:
            return cmds, start, size, "the last record has no end"
        n = string2ll(data[pos + 1 : nl])
        if n is None or n < 1:
            raise corrupt(pos, "bad argument count")
        pos = nl + 2
        argv = []
        for _ in range(n):
            if pos >= size:
                return cmds, start, size, "the last record is cut short"
            if data[pos] != 36:  # '$'
                raise corrupt(pos, f"expected '$', found {data[pos : pos + 1]!r}")
            nl = data.find(b"\r\n", pos)
            if nl < 0:
                return cmds, start, size, "the last record is cut short"
            length = string2ll(data[pos + 1 : nl])
            if length is None or length < 0:
                raise corrupt(pos, "bad bulk length")
            body = nl + 2
            if body + length + 2 > size:
                return cmds, start, size, "the last record is cut short"
            if data[body + length : body + length + 2] != b"\r\n":
                raise corrupt(body + length, "a bulk is not followed by CRLF")
            argv.append(data[body : body + length])
            pos = body + length + 2
        cmds.append(argv)
        if starts is not None:
            starts.append(start)
    return cmds, pos, size, None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AOF:
    """The open append-only file of one kv service."""

    def __init__(self, path: Path, fsync: str):
        self.path = path
        self.fsync = fsync
        self.buf: list[bytes] = []
        self.db = 0  # the database the file's next record applies to (its last SELECT)
        self.fd = -1
        self.size = 0
        self.base_size = 0
        self.rewrites = 0
        self.unsynced = False
        self.ok = True
        self.error = ""
        # the record of a command of many arguments, encoded in slices while it ran
        # (bigwork.py): (its argv, the record's parts), taken by feed as it is
        self.ready: tuple[list[bytes], list[bytes]] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        if not self.base_size:
            self.base_size = self.size

    def feed(self, argv: list[bytes]) -> None:
        ready = self.ready
        if ready is not None and ready[0] is argv:  # (a million arguments: 0.2 s to encode)
            self.ready = None
            self.buf += ready[1]
            return
        if max(map(len, argv)) < BIG_ARG:
            self.buf.append(command_bytes(argv))
        else:  # a 512 MB SET: its value is written as it is, never copied into a record
            self.buf += command_parts(argv)

    def feed_db(self, db: int, argv: list[bytes]) -> None:
        """A record for database C{db}: preceded by a SELECT when the db changes, as Redis."""
        if db != self.db:
            self.select(db)
        self.feed(argv)

    def select(self, db: int) -> None:
        self.db = db
        self.buf.append(command_bytes([b"SELECT", b"%d" % db]))

    def flush(self) -> None:
        """Write what the last batch changed (and fsync it with C{always})."""
        if not self.buf or self.fd < 0:
            return
        buf = self.buf
        size = sum(map(len, buf))
        parts = [b"".join(buf)] if size < BIG_ARG else runs(buf)  # (no copy of a big value)
        buf.clear()
        view = memoryview(b"")
        done = 0  # parts written whole
        try:
            for part in parts:
                view = memoryview(part)
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
                done += 1
            if self.fsync == "always":
                os.fsync(self.fd)
        except OSError as e:
            # keep what was not written; writes are refused until a retry succeeds
            if view:
                buf.append(bytes(view))
                done += 1
            buf += parts[done:]
            self.ok = False
            self.error = e.strerror or str(e)
            raise
        self.ok = True
        self.size += size
        if self.fsync != "always":
            self.unsynced = True

    def sync(self) -> None:
        """The once-a-second fsync of C{everysec}."""
        if self.unsynced and self.fd >= 0:
            self.unsynced = False
            os.fsync(self.fd)

    def needs_rewrite(self, min_size: int) -> bool:
        return self.size >= min_size and self.size >= 2 * max(self.base_size, 1)

    def rewrite(self, dbs: Any) -> None:
        """Compact: the keyspace (every database) as a fresh file, swapped in atomically."""
        self.flush()
        tmp = self.path.with_name(f"{self.path.name}{TEMP_INFIX}{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        size = 0
        try:
            chunk: list[bytes] = []
            pending = 0
            where = [0]
            for argv in dump_databases(dbs if isinstance(dbs, list) else [dbs], where):
                if max(map(len, argv)) >= BIG_ARG:  # a big string: written as it is
                    size += _write_all(fd, b"".join(chunk))
                    chunk.clear()
                    pending = 0
                    for part in command_parts(argv):
                        size += _write_all(fd, part)
                    continue
                b = command_bytes(argv)
                chunk.append(b)
                pending += len(b)
                if pending > 1 << 20:
                    size += _write_all(fd, b"".join(chunk))
                    chunk.clear()
                    pending = 0
            size += _write_all(fd, b"".join(chunk))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
        self.open()
        self.db = where[0]
        self.size = self.base_size = size
        self.rewrites += 1
        self.unsynced = False

    def truncate(self, good_size: int) -> None:
        os.truncate(self.path, good_size)

    def close(self) -> None:
        """Flush, fsync and close (SIGTERM, suite stop)."""
        if self.fd < 0:
            return
        self.flush()
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    return len(data)


def dump_databases(dbs: list[Any], where: list[int]) -> Any:
    """The commands that rebuild every database: SELECT n before each non-empty db but 0."""
    for db in dbs:
        if not db.data:
            continue
        if db.id != where[0]:
            where[0] = db.id
            yield [b"SELECT", b"%d" % db.id]
        yield from dump_commands(db)


def dump_commands(store: Any) -> Any:
    """The commands that rebuild the keyspace (what a compacted file holds)."""
    now = store.now_ms()
    expires = store.expires
    for key, value in list(store.data.items()):
        when = expires.get(key)
        if when is not None and when <= now:
            continue
        t = kind(value)  # (a big hash or set, sharded, is one)
        if t is bytes:
            yield [b"SET", key, value]
        elif t is dict:
            items = [x for kv in value.items() for x in kv]
            for i in range(0, len(items), 128):
                yield [b"HSET", key, *items[i : i + 128]]
        elif t is deque:
            items = list(value)
            for i in range(0, len(items), 64):
                yield [b"RPUSH", key, *items[i : i + 64]]
        elif t is set:
            items = list(value)
            for i in range(0, len(items), 64):
                yield [b"SADD", key, *items[i : i + 64]]
        else:  # streams, sorted sets: each type knows how to write itself back
            yield from value.rewrite_commands(key)
        if when is not None:
            yield [b"PEXPIREAT", key, b"%d" % when]


def record_steps(argv: list[bytes]) -> Generator[None, None, list[bytes] | None]:
    """
    C{argv}'s record (what L{AOF.feed} appends), a piece of arguments a step (a
    bigwork generator); None when an argument is big (feed writes it as it is).
    """
    parts = [b"*%d\r\n" % len(argv)]
    for lo in range(0, len(argv), PIECE):
        piece = argv[lo : lo + PIECE]
        if max(map(len, piece)) >= BIG_ARG:
            return None
        parts.append(b"".join([b"$%d\r\n%s\r\n" % (len(a), a) for a in piece]))
        yield
    return parts


PIECE = 4096  # arguments of a record encoded a step (bigwork's PIECE)
