"""
Compaction without fork: the keyspace written to the temp file a slice a turn of
the reactor, in the server's own process.

C{fork()} copies the process's page tables while every service of the suite waits:
20-30 ms a GB of memory on a quiet machine, 48 ms for a server of 1.6 GB at load 2
(Redis calls it "fork latency"). A server using more than C{fork_max_memory} compacts
this way instead (L{Snapshot}); under it, in a forked child as before (aof.py).

  - The walk: database after database, table after table of the keyspace (a big
    one's shards, sharded.py; their moves wait meanwhile), each table's keys listed
    at once (C speed), each key's records written from a copy of its value taken at
    once (L{aof.key_records}: a million members in a few ms), a slice of them a
    turn, within kv's share of the turn (turn.py).
  - The tracking: every record the server appends to the file from the start
    (L{AOF.feed}, and the SETs of the lean paths) names the keys it changes
    (keyspecs.py); those keys are dirty. The walk skips a dirty key, and dirty keys
    are written again, C{DEL key} then what it holds then, a round at a time, while
    the commands served meanwhile make others dirty.
  - The last turn: once few keys are dirty (L{FINAL_KEYS}, L{FINAL_ELEMENTS}) or
    after L{ROUNDS} rounds, one turn copies what the dirty keys hold, flushes the
    file and notes its size. The temp file, once those copies are written, holds
    the data set as it was in that turn; what the file got after it is copied at
    the switch, as a child's appends are (L{AOF.finish_rewrite}).
  - FLUSHDB and FLUSHALL during the walk or a round are written to the temp file
    where they happen (the replay flushes what was written before them too, and
    the key being written is dirty); SWAPDB starts the compaction again.
  - Not in the last turn while a command computed in slices (bigwork.py) is under
    way: its records are not in the file yet. The temp file is fsynced in a thread
    of the reactor's pool, then switched in by the server (L{KVServer}).

The old file gets every write as before: a crash at any point loses nothing, and a
failed compaction leaves it as it was.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from operator import itemgetter
from typing import Any

from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from portsuite_services.kv.aof import Rewrite, catch_up, key_records
from portsuite_services.kv.commands import COMMANDS
from portsuite_services.kv.keyspecs import acl_keys
from portsuite_services.kv.resp import BIG_ARG, command_bytes, command_parts, string2ll
from portsuite_services.kv.sharded import SHARD_AT, ShardedDict, ShardedSet

# a server using this much memory or more compacts without fork (the setting's default):
# its fork would take some 8 ms quiet, 20 ms on a busy machine
FORK_MAX_MEMORY = 256 << 20
PIECE = 1024  # arguments of records made a piece (under 1.5 ms), small keys together
WRITE = 1 << 20  # bytes of records gathered for one write to the temp file (then a piece)
FINAL_KEYS = 1024  # dirty keys whose values the last turn copies, at most (else a round)
FINAL_ELEMENTS = 1 << 17  # members of those values (C-speed copies: a few ms)
ROUNDS = 16  # rounds of dirty keys before the last turn, whatever is dirty then
# bytes of appends left to the switch (in the reactor: copied and fsynced there) after the
# thread's catch-up; a child leaves up to aof.CATCH_UP (1 MiB): the switch took 35-47 ms
# of CPU under 4 MB/s of writes
CATCH_UP = 64 << 10
BIG = 8192  # members of a dirty key left to the last turn's copy (not written each round)
_first = itemgetter(0)
log = Logger(namespace="portsuite.kv")


class Snapshot:
    """
    A compaction without fork (see the module's docstring): C{done(why)} at its end,
    C{why} None when the temp file is complete and fsynced (L{rewrite} is what the
    server's switch takes), else what failed (the temp file is removed).
    """

    def __init__(self, server: Any, kind: str, done: Callable[[str | None], None]) -> None:
        self.server = server
        self.aof = aof = server.aof
        self.kind = kind  # "aof" (BGREWRITEAOF, automatic), "rdb" (BGSAVE) or "save"
        self.done = done
        self.started = time.monotonic()
        self.tmp = aof.temp_path()
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self.rewrite: Rewrite | None = None  # once the last turn marked the file
        self.rounds = 0
        self.restarts = 0
        self.last = (0, 0.0)  # the last turn: keys copied, milliseconds
        self.threaded = False  # the last fsync and copy in a thread, under way
        self.call: Any = None
        self._reset()
        aof.tracker = self
        aof.rewrites += 1
        self.call = server.reactor.callLater(0, self._step)

    def _reset(self) -> None:
        """Start from nothing (the start, and SWAPDB)."""
        self.dirty: list[Any] = [set() for _ in self.server.dbs]  # (sets, or ShardedSets)
        self.small: list[bytes] = []  # records not written yet, joined at WRITE bytes
        self.small_size = 0
        self.views: deque[memoryview] = deque()  # what is ready to be written, in order
        self.backlog = 0  # bytes in views
        self.size = 0  # bytes written
        self.where = 0  # the database the temp file's next record applies to
        self.current: tuple[int, bytes] | None = None  # the key being written
        self.work = 0  # arguments of records (and keys) since the last piece
        self.again = False
        self.steps: Generator[bool, None, None] | None = self._run()

    # -- the tracking -----------------------------------------------------------------

    def track(self, db: int, argv: list[bytes]) -> None:
        """A record appended to the file (C{db}: the database it applies to)."""
        name = argv[0].lower()
        if name == b"flushdb" or name == b"flushall":
            self._flushed(db if name == b"flushdb" else None, argv)
            return
        if name == b"swapdb":
            self.again = True
            return
        cmd = COMMANDS.get(name)
        if cmd is None:  # (every record is a command kv has)
            return
        if cmd.subcommands and len(argv) > 1:
            cmd = cmd.subcommands.get(argv[1].lower(), cmd)
        self._mark(db, map(_first, acl_keys(cmd, argv)))
        if name == b"move" and len(argv) > 2:
            self.touched(string2ll(argv[2]), (argv[1],))
        elif name == b"copy":
            for i in range(3, len(argv) - 1):
                if argv[i].lower() == b"db":
                    self.touched(string2ll(argv[i + 1]), (argv[2],))

    def touched(self, db: int | None, keys: Iterable[bytes]) -> None:
        """C{keys} of database C{db} changed (the lean paths' SETs, MOVE's and COPY's target)."""
        if db is not None and 0 <= db < len(self.dirty):
            self._mark(db, keys)

    def _mark(self, db: int, keys: Iterable[bytes]) -> None:
        """C{keys} of C{db} are dirty (a set sharded past SHARD_AT: it never grows at once)."""
        dirty = self.dirty[db]
        dirty.update(keys)
        if type(dirty) is set and len(dirty) > SHARD_AT:
            self.dirty[db] = ShardedSet(dirty)

    def _flushed(self, db: int | None, argv: list[bytes]) -> None:
        """FLUSHDB (of C{db}), FLUSHALL: written where they happen; the key being written is dirty."""
        if db is not None:
            self._select(db)
        self._add(argv)
        if self.current is not None:
            cdb, key = self.current
            self._mark(cdb, (key,))

    # -- the work, a slice a turn --------------------------------------------------------

    def _step(self) -> None:
        self.call = None
        if self.again and self.steps is not None:
            self.restarts += 1
            os.lseek(self.fd, 0, os.SEEK_SET)
            os.ftruncate(self.fd, 0)
            self.steps.close()
            self._reset()
        end = self.server.turn.deadline()
        try:
            while True:  # (a piece at least, whatever the turn's share left)
                if self.backlog >= WRITE or (self.steps is None and self.backlog):
                    self._write(WRITE)
                elif self.steps is not None:
                    if next(self.steps, None) is None:  # (the records, then the last writes)
                        self.steps = None
                        self._gather()
                else:
                    self._sync()
                    return
                if time.perf_counter() >= end:
                    break
        except OSError as e:
            self._fail(e.strerror or str(e))
            return
        except Exception as e:  # (a bug: the compaction fails, the file stays as it was)
            log.failure("kv: the compaction without fork failed")
            self._fail(f"{type(e).__name__}: {e}")
            return
        self.call = self.server.reactor.callLater(0, self._step)

    def _run(self) -> Generator[bool, None, None]:
        """The walk, the rounds, the last turn and its copies (True a piece)."""
        server = self.server
        for store in list(server.dbs):
            data = store.data
            for table in data.parts() if isinstance(data, ShardedDict) else [data]:
                for key in list(table):
                    if key not in self.dirty[store.id]:
                        yield from self._key(store, key, False)
                    self.work += 1  # (keys skipped, or gone since: in pieces too)
                    if self.work >= PIECE:
                        self.work = 0
                        yield True
        while True:
            dirty = self.dirty
            if self.rounds >= ROUNDS or self._few(dirty):
                break
            self.rounds += 1
            self.dirty = [set() for _ in dirty]
            for db, keys in enumerate(dirty):
                store = server.dbs[db]
                for key in keys:
                    if _members(store.data.get(key)) > BIG:
                        self._mark(db, (key,))  # (copied in the last turn, once)
                    else:
                        yield from self._key(store, key, True)
            yield from _drop(dirty)
        while server.busy is not None or self.aof.writing:  # (records not in the file yet)
            yield True
        yield from self._last()

    def _few(self, dirty: list[Any]) -> bool:
        """Whether the last turn can copy what C{dirty}'s small keys hold (a few ms)."""
        keys = elements = 0
        for db, names in enumerate(dirty):
            data = self.server.dbs[db].data
            for key in names:
                n = _members(data.get(key))
                if n <= BIG:
                    keys += 1
                    elements += n
                    if keys > FINAL_KEYS or elements > FINAL_ELEMENTS:
                        return False
        return True

    def _key(self, store: Any, key: bytes, again: bool) -> Generator[bool, None, None]:
        """
        A key's records, a piece a step. C{again}: a dirty key, C{DEL key} first, then
        from a copy of what it holds now; else (the walk) from the value itself, and
        the rest left to the rounds if the key changes meanwhile (it is dirty).
        """
        db = store.id
        if again:
            self._select(db)
            self._add([b"DEL", key])
        value = store.data.get(key)  # (no lookup that would expire it: that is a write)
        if value is None:
            return
        when = store.expires.get(key) if store.expires else None
        if when is not None and when <= store.now_ms():
            return  # (its DEL, when it goes, makes it dirty)
        self._select(db)
        self.current = (db, key)
        records = key_records(key, value, when, copy=again)
        try:
            yield from self._records(db, records, None if again else key)
        except RuntimeError:  # (changed in size by a command not recorded yet: bigwork.py)
            self._mark(db, (key,))
        self.current = None

    def _records(
        self, db: int, records: Iterator[list[bytes]], key: bytes | None = None
    ) -> Generator[bool, None, None]:
        """Records for database C{db}, a piece a step; C{key}: stop once it is dirty (the walk)."""
        for record in records:
            self._add(record)
            self.work += len(record)
            if self.work >= PIECE:
                self.work = 0
                yield True
                if key is not None and key in self.dirty[db]:
                    return  # (changed: written again later, after a DEL)
                self._select(db)  # (a FLUSHDB of another database may have been written)

    def _last(self) -> Generator[bool, None, None]:
        """
        The last turn (this step, no yield before the mark): what the dirty keys hold
        is copied, the file flushed and its size noted; then the copies are written.
        """
        server = self.server
        aof = self.aof
        t = time.perf_counter()
        copies: list[tuple[int, bytes, Iterator[list[bytes]] | None]] = []
        for db, keys in enumerate(self.dirty):
            store = server.dbs[db]
            now = store.now_ms()
            expires = store.expires
            for key in keys:
                value = store.data.get(key)
                when = expires.get(key) if expires else None
                if value is None or (when is not None and when <= now):
                    copies.append((db, key, None))
                else:
                    copies.append((db, key, key_records(key, value, when, copy=True)))
        aof.tracker = None
        aof.flush()  # (OSError: the compaction fails; the file is as it was)
        read_fd = os.open(aof.path, os.O_RDONLY | os.O_CLOEXEC)
        start = os.fstat(read_fd).st_size
        self.rewrite = Rewrite(0, self.kind, self.tmp, self.fd, read_fd, -1, start, aof.db)
        self.last = (len(copies), (time.perf_counter() - t) * 1000)
        yield True
        for db, key, records in copies:
            self._select(db)
            self._add([b"DEL", key])
            if records is not None:
                yield from self._records(db, records)
        dirty, self.dirty = self.dirty, []
        yield from _drop(dirty)

    # -- the temp file --------------------------------------------------------------------

    def _select(self, db: int) -> None:
        if db != self.where:
            self.where = db
            self._add([b"SELECT", b"%d" % db])

    def _add(self, argv: list[bytes]) -> None:
        if max(map(len, argv)) < BIG_ARG:
            b = command_bytes(argv)
            self.small.append(b)
            self.small_size += len(b)
            if self.small_size >= WRITE:
                self._gather()
            return
        self._gather()  # a big string: written as it is, a piece a step
        for part in command_parts(argv):
            self.views.append(memoryview(part))
            self.backlog += len(part)

    def _gather(self) -> None:
        """The small records so far become one piece to write."""
        if self.small:
            self.views.append(memoryview(b"".join(self.small)))
            self.backlog += self.small_size
            self.small.clear()
            self.small_size = 0

    def _write(self, limit: int) -> None:
        """Write up to C{limit} bytes of what is ready."""
        views = self.views
        while views and limit > 0:
            view = views[0]
            n = os.write(self.fd, view[:limit])
            if n == len(view):
                views.popleft()
            else:
                views[0] = view[n:]
            limit -= n
            self.backlog -= n
            self.size += n

    def _sync(self) -> None:
        """
        All is written: fsync, and copy what the file got since the last turn (as a
        child does: L{catch_up}), in a thread of the reactor's pool; then done.
        """
        rw = self.rewrite
        assert rw is not None
        rw.where = self.where
        reactor = self.server.reactor
        if not IReactorThreads.providedBy(reactor):  # (a bare Clock: the tests')
            self._synced(self._finish(rw))
            return
        self.threaded = True
        self.call = d = deferToThreadPool(reactor, reactor.getThreadPool(), self._finish, rw)
        d.addBoth(self._threaded, rw)
        d.addCallbacks(self._synced, lambda f: self._fail(str(f.value)))

    def _finish(self, rw: Rewrite) -> tuple[int, int]:
        os.fsync(rw.tmp_fd)
        size, start, db, where = self.size, rw.start, rw.db, rw.where
        return catch_up(rw.tmp_fd, size, rw.read_fd, start, db, where, _yes, CATCH_UP)

    def _threaded(self, result: Any, rw: Rewrite) -> Any:
        """The thread is done with the files: if the compaction was stopped meanwhile, closed."""
        self.threaded = False
        if self.rewrite is not rw:
            rw.close()
        return result

    def _synced(self, caught_up: tuple[int, int]) -> None:
        self.call = None
        rw = self.rewrite
        if rw is not None:
            self.fd = -1  # (the server's switch closes it, with rw)
            rw.copied, rw.where = caught_up
            self.done(None)

    def _fail(self, why: str) -> None:
        self.stop()
        self.done(why)

    def stop(self) -> None:
        """The compaction ends without its file (failed, or the service stops)."""
        if self.aof.tracker is self:
            self.aof.tracker = None
        call, self.call = self.call, None
        if call is not None and hasattr(call, "active") and call.active():
            call.cancel()
        if self.steps is not None:
            self.steps.close()
            self.steps = None
        rw, self.rewrite = self.rewrite, None
        fd, self.fd = self.fd, -1
        if rw is not None:  # (it holds the temp file's descriptor, and the file's)
            if not self.threaded:  # (else closed when the thread is done: _threaded)
                rw.close()
        elif fd >= 0:
            os.close(fd)
        try:
            self.tmp.unlink(missing_ok=True)
        except OSError:
            pass


def memory_used() -> int:
    """The process's resident memory in bytes (what fork() copies the page tables of); 0 if unknown."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _members(value: Any) -> int:
    """How many members a value copies (a string: none, it does not change in place)."""
    return 0 if value is None or type(value) is bytes else len(value)


def _yes() -> bool:
    return True


def _drop(sets: list[Any]) -> Generator[bool, None, None]:
    """
    Empty sets of dirty keys a piece at a time: a million keys freed at once held the
    turn that dropped them (35-51 ms of CPU under a write load).
    """
    for dirty in sets:
        parts = dirty.take_parts() if type(dirty) is ShardedSet else [dirty]
        n = 0
        for part in parts:  # (plain: at most SHARD_AT keys; a shard: a thousandth of them)
            n += len(part)
            part.clear()
            if n >= 64 * PIECE:
                n = 0
                yield True
        yield True
