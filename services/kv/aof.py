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

It runs in a forked child, as Redis's BGREWRITEAOF does (L{AOF.fork_rewrite}), so
that writing and fsyncing a file of a million keys or a 512 MB value never holds
the event loop every service of the suite shares. The child has the keyspace as it
was at the fork (the kernel copies a page only when the parent changes it); it
writes it to the temp file, fsyncs, then copies what the parent appended to the old
file since the fork (the old file is the rewrite buffer: every write still goes to
it, so a crash at any point loses nothing), reports on a pipe and exits. The
parent, told by the pipe's end of file (L{ChildWatch}, read by the reactor), reaps
it, appends the little written since the child's last copy, fsyncs and renames.
The child writes the file and nothing else: no reactor, no logging, its
inherited descriptors closed, default signal handlers, C{os._exit}. A child whose
parent died stops and removes its temp file; a temp file left by a kill is removed
at the next start. Where there is no fork or no reactor to watch the pipe (a bare
C{Clock} in unit tests), L{AOF.rewrite} does it all at once, as before.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any, NoReturn

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

from portsuite_services.kv.resp import BIG_ARG, command_bytes, command_parts, runs, string2ll
from portsuite_services.kv.sharded import kind

FSYNC_CHOICES = ("always", "everysec", "no")
TEMP_INFIX = ".rewrite-"  # kv.aof.rewrite-PID.tmp: a compaction in progress
CATCH_UP = 1 << 20  # the child copies the parent's appends until less than this is left
CATCH_UP_ROUNDS = 8  # (and at most this many times: the parent copies the rest)
# The child's niceness. It writes for seconds (15-35 s for a 900 MB server) and, where
# there are fewer free cpus than busy processes, takes turns on a cpu with the server it
# was forked from (pinned to one cpu, it always does). At nice 19 a server woken by a
# client preempts it: on a cpu shared with other work, the server waited for the cpu
# 105-265 ms a second of the child's life (before: 180-315), at load 4.
CHILD_NICE = 19


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
        self.writing: deque[memoryview] = deque()  # records being written (flush_step)
        # closes the replaced file's descriptor: its last link is gone, so the close frees
        # its blocks (0.17 s for 512 MB); the server does it in a thread where it can
        self.close_old: Callable[[int], None] = os.close
        self.writing_size = 0
        self.db = 0  # the database the file's next record applies to (its last SELECT)
        self.fd = -1
        self.size = 0
        self.base_size = 0
        self.rewrites = 0
        self.forks = 0  # INFO's total_forks and latest_fork_usec, as Redis's
        self.fork_usec = 0
        self.unsynced = False
        self.ok = True
        self.error = ""
        # the record of a command of many arguments, encoded in slices while it ran
        # (bigwork.py): (its argv, the record's parts), taken by feed as it is
        self.ready: tuple[list[bytes], list[bytes]] | None = None
        # a compaction without fork (snapshot.py) told of every record: the keys changed
        self.tracker: Any = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        if not self.base_size:
            self.base_size = self.size

    def feed(self, argv: list[bytes]) -> None:
        if self.tracker is not None:
            self.tracker.track(self.db, argv)
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
        """Write what the last batches changed (and fsync it with C{always})."""
        self.flush_step(None)

    def flush_step(self, limit: int | None) -> bool:
        """
        L{flush}, at most C{limit} bytes now: True once all is written. The records
        taken stay in C{writing} until then (a SET of 512 MB was one write of 1-2 s);
        records fed meanwhile wait in C{buf}, after them.
        """
        writing = self.writing
        if not writing and (not self.buf or self.fd < 0):
            return True
        try:
            while True:
                if not writing:  # (records fed while the last ones were written: theirs too)
                    if not self.buf:
                        break
                    self._take()
                while writing and (limit is None or limit > 0):
                    view = writing[0]
                    n = os.write(self.fd, view if limit is None else view[:limit])
                    if n == len(view):
                        writing.popleft()
                    else:
                        writing[0] = view[n:]
                    if limit is not None:
                        limit -= n
                if writing:
                    return False
                self.size += self.writing_size
            if self.fsync == "always":
                os.fsync(self.fd)
        except OSError as e:
            # keep what was not written; writes are refused until a retry succeeds
            self.buf[:0] = [bytes(v) for v in writing]
            writing.clear()
            self.ok = False
            self.error = e.strerror or str(e)
            raise
        self.ok = True
        if self.fsync != "always":
            self.unsynced = True
        return True

    def _take(self) -> None:
        """The records fed so far become those being written (no copy of a big value)."""
        buf = self.buf
        self.writing_size = sum(map(len, buf))
        parts = [b"".join(buf)] if self.writing_size < BIG_ARG else runs(buf)
        buf.clear()
        self.writing.extend(map(memoryview, parts))

    def sync(self) -> None:
        """The once-a-second fsync of C{everysec}, at once."""
        fd = self.to_sync()
        if fd >= 0:
            fsync_and_close(fd)

    def to_sync(self) -> int:
        """
        For the once-a-second fsync of C{everysec} in another thread, as Redis's bio
        thread does it: a duplicate of the file's descriptor (-1: nothing written since),
        which L{fsync_and_close} syncs and closes, whatever this file does meanwhile.
        """
        if not self.unsynced or self.fd < 0:
            return -1
        self.unsynced = False
        return os.dup(self.fd)

    def needs_rewrite(self, min_size: int) -> bool:
        return self.size >= min_size and self.size >= 2 * max(self.base_size, 1)

    def rewrite(self, dbs: Any) -> None:
        """Compact at once (no fork): the keyspace as a fresh file, swapped in atomically."""
        self.flush()
        tmp = self.temp_path()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            size, where = write_snapshot(fd, dbs)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._reopen(size)
        self.db = where
        self.rewrites += 1

    def temp_path(self) -> Path:
        return self.path.with_name(f"{self.path.name}{TEMP_INFIX}{os.getpid()}.tmp")

    def _reopen(self, size: int) -> None:
        """The new file is in place: make it durable, append to it from now on."""
        _fsync_dir(self.path.parent)
        if self.fd >= 0:
            self.close_old(self.fd)
        self.fd = -1
        self.open()
        self.size = self.base_size = size
        self.unsynced = False

    def fork_rewrite(self, dbs: Any, kind: str) -> Rewrite:
        """
        Start a compaction in a child process (see the module's docstring).

        @raise OSError: the temp file cannot be made, the file cannot be written
            (what the last batch changed), or there is no fork (no memory, too
            many processes).
        """
        self.flush()  # (the child's snapshot and the file agree from here on)
        start = os.fstat(self.fd).st_size
        tmp = self.temp_path()
        tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        fds = [tmp_fd]
        try:
            fds.append(os.open(self.path, os.O_RDONLY | os.O_CLOEXEC))
            fds += os.pipe()
            parent = os.getpid()
            t = time.perf_counter()
            pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        read_fd, pipe_r, pipe_w = fds[1:]
        if pid == 0:  # the child: never returns
            os.close(pipe_r)
            _child(dbs, tmp, tmp_fd, read_fd, pipe_w, start, self.db, parent)
        self.fork_usec = int((time.perf_counter() - t) * 1e6)
        self.forks += 1
        _lower(pid)  # (the child does it too: whichever runs first)
        os.close(pipe_w)
        os.set_blocking(pipe_r, False)
        self.rewrites += 1
        return Rewrite(pid, kind, tmp, tmp_fd, read_fd, pipe_r, start, self.db)

    def finish_rewrite(self, rw: Rewrite) -> None:
        """
        The child is done: what was appended since its last copy goes to the temp
        file, which is fsynced and renamed over the file.

        @raise OSError: the file or the temp file cannot be written (the temp file
            is removed; the file is as it was, complete).
        """
        db = self.db  # (the new file ends with the old one's appends: in their database)
        try:
            self.flush()
            end = os.fstat(rw.read_fd).st_size
            size = os.fstat(rw.tmp_fd).st_size
            if end > rw.copied:
                if rw.copied == rw.start and rw.where != rw.db:  # (as the child does)
                    size += os.pwrite(rw.tmp_fd, _select(rw.db), size)
                size += copy_range(rw.read_fd, rw.tmp_fd, rw.copied, end, size)
            elif rw.copied == rw.start:  # nothing was appended since the fork
                db = rw.where
            os.fsync(rw.tmp_fd)
            os.replace(rw.tmp, self.path)
        except OSError:
            self.drop_rewrite(rw)
            raise
        rw.close()
        self._reopen(size)
        self.db = db

    def drop_rewrite(self, rw: Rewrite) -> None:
        """A compaction that failed or was stopped: its temp file goes."""
        rw.close()
        rw.tmp.unlink(missing_ok=True)

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


def fsync_and_close(fd: int) -> None:
    """L{AOF.to_sync}'s descriptor: its data on disk (512 MB written: seconds), then closed."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> int:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
    return len(data)


def _select(db: int) -> bytes:
    return command_bytes([b"SELECT", b"%d" % db])


def write_snapshot(fd: int, dbs: Any, alive: Any = None) -> tuple[int, int]:
    """
    Write the commands that rebuild C{dbs} (a list, or one database) to C{fd}.

    @param alive: if given, called every megabyte or so; false stops the writing.
    @return: (bytes written, the database the last record applies to).
    """
    size = 0
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
            if alive is not None and not alive():
                raise OSError(errno.ECHILD, "the server is gone")
    size += _write_all(fd, b"".join(chunk))
    return size, where[0]


def copy_range(src: int, dst: int, start: int, end: int, at: int) -> int:
    """Copy bytes C{start} to C{end} of C{src} to C{dst} at C{at} (in the kernel when it can)."""
    done = 0
    n = end - start
    while done < n:
        try:
            k = os.copy_file_range(src, dst, n - done, start + done, at + done)
        except OSError as e:  # (not between these files: read and write)
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            data = os.pread(src, min(n - done, 1 << 20), start + done)
            k = os.pwrite(dst, data, at + done) if data else 0
        if k <= 0:
            raise OSError(errno.EIO, "the file is shorter than it was")
        done += k
    return n


class Rewrite:
    """A compaction running in a child process (L{AOF.fork_rewrite})."""

    def __init__(
        self,
        pid: int,
        kind: str,
        tmp: Path,
        tmp_fd: int,
        read_fd: int,
        pipe: int,
        start: int,
        db: int,
    ):
        self.pid = pid
        self.kind = kind  # "aof" (BGREWRITEAOF, automatic) or "rdb" (BGSAVE, SAVE)
        self.tmp = tmp
        self.tmp_fd = tmp_fd
        self.read_fd = read_fd  # the file being replaced, read for what was appended
        self.pipe = pipe  # the child's report; end of file when it exits
        self.start = start  # the file's size at the fork: its appends come after
        self.copied = start  # how far the child copied them (from its report)
        self.db = db  # the database those appends were written for (the file's last SELECT)
        self.where = db  # the one the child's writing ends in (from its report)
        self.started = time.monotonic()
        self.report = b""

    def close(self) -> None:
        for fd in (self.tmp_fd, self.read_fd):
            if fd >= 0:
                os.close(fd)
        self.tmp_fd = self.read_fd = -1

    def outcome(self, status: int) -> str | None:
        """None if the child succeeded (C{status}: waitpid's), else what went wrong."""
        words = self.report.split()
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        if status == 0 and len(words) == 3 and words[0] == b"ok":
            self.copied, self.where = int(words[1]), int(words[2])
            return None
        if words[:1] == [b"err"]:
            return self.report[4:].decode("utf-8", "replace").strip()
        return f"exit status {os.waitstatus_to_exitcode(status)}"


@implementer(IReadDescriptor)
class ChildWatch:
    """The reactor's reader of a compaction child's pipe: C{done()} at its end of file."""

    def __init__(self, reactor: Any, rw: Rewrite, done: Any):
        self.reactor = reactor
        self.rw = rw
        self.done = done

    def fileno(self) -> int:
        return self.rw.pipe

    def logPrefix(self) -> str:
        return "kv-rewrite"

    def doRead(self) -> None:
        try:
            data = os.read(self.rw.pipe, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.rw.report = (self.rw.report + data)[-4096:]
            return
        self.connectionLost(None)

    def stop(self) -> bool:
        """Stop watching; False if it was stopped already."""
        if self.rw.pipe < 0:
            return False
        self.reactor.removeReader(self)
        os.close(self.rw.pipe)
        self.rw.pipe = -1
        return True

    def connectionLost(self, reason: Any) -> None:
        """The end of the pipe (epoll tells it as a hang-up, without a read)."""
        if self.stop():
            self.done()


def _lower(pid: int) -> None:
    """The child's priority: the suite's reactor gets the cpu whenever it wants it."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(CHILD_NICE, os.getpriority(os.PRIO_PROCESS, 0)))
    except OSError:  # (exited already, or not allowed)
        pass


def _child(
    dbs: Any, tmp: Path, tmp_fd: int, read_fd: int, report: int, start: int, db: int, parent: int
) -> NoReturn:
    """The forked compaction: write the snapshot, catch up with the file, report, exit."""
    code = 1
    try:
        gc.disable()  # (a collection would touch, so copy, every page of the parent's objects)
        _lower(0)
        try:  # the reactor's handlers and wakeup fd are the parent's
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
        except ValueError:  # (not the main thread: Python installed no handler here)
            pass
        keep = sorted((tmp_fd, read_fd, report))
        lo = 3
        for fd in keep:  # the listeners, the clients, the reactor's: the parent's alone
            os.closerange(lo, fd)
            lo = fd + 1
        os.closerange(lo, os.sysconf("SC_OPEN_MAX"))

        def alive() -> bool:
            return os.getppid() == parent

        size, where = write_snapshot(tmp_fd, dbs, alive)
        os.fsync(tmp_fd)
        copied, where = catch_up(tmp_fd, size, read_fd, start, db, where, alive)
        if not alive():
            raise OSError(errno.ECHILD, "the server is gone")
        _write_all(report, b"ok %d %d\n" % (copied, where))
        code = 0
    except BaseException as e:  # (nothing may escape into the parent's code)
        try:
            if os.getppid() != parent:
                tmp.unlink(missing_ok=True)
            os.write(report, b"err " + str(e).encode("utf-8", "replace")[:300] + b"\n")
        except BaseException:
            pass
    os._exit(code)


def catch_up(
    tmp_fd: int,
    size: int,
    read_fd: int,
    start: int,
    db: int,
    where: int,
    alive: Any,
    left: int = CATCH_UP,
) -> tuple[int, int]:
    """
    After a snapshot of C{size} bytes (its last record for database C{where}), fsynced:
    copy what the file got since its byte C{start} (records for database C{db}) to the
    temp file and fsync, while more than C{left} is left (L{CATCH_UP_ROUNDS} times at
    most), so that the switch copies little. How far it copied, and the database the
    temp file's last record is for.
    """
    copied = start
    for _ in range(CATCH_UP_ROUNDS):
        end = os.fstat(read_fd).st_size
        if end - copied < left or not alive():
            break
        if copied == start and where != db:  # the appends were written for database db
            size += _write_all(tmp_fd, _select(db))
            where = db
        size += copy_range(read_fd, tmp_fd, copied, end, size)
        copied = end
        os.fsync(tmp_fd)
    return copied, where


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
        yield from key_records(key, value, when)


def key_records(
    key: bytes, value: Any, when: int | None, copy: bool = False
) -> Iterator[list[bytes]]:
    """
    The commands that rebuild one key. C{copy}: from a copy of its members taken now
    (at C speed: a million in a few ms), so that they can be written across turns
    whatever the key does meanwhile (the compaction without fork, snapshot.py).
    """
    t = kind(value)  # (a big hash or set, sharded, is one)
    records: Iterator[list[bytes]]
    if t is bytes:
        records = iter(([b"SET", key, value],))
    elif t is dict:
        items = chain.from_iterable(value.items())
        records = _batches(b"HSET", key, list(items) if copy else items, 128)
    elif t is deque or t is set:
        records = _batches(
            b"RPUSH" if t is deque else b"SADD", key, list(value) if copy else value, 64
        )
    else:  # streams, sorted sets: each type knows how to write itself back
        records = value.rewrite_commands(key, copy)
    if when is None:
        return records
    return chain(records, ([b"PEXPIREAT", key, b"%d" % when],))


def _batches(name: bytes, key: bytes, items: Iterable[bytes], n: int) -> Iterator[list[bytes]]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield [name, key, *batch]


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
