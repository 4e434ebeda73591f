"""
L{KVServer}: the factory of the kv service. It holds the keyspace, the append-only
file, the pub/sub channels and the clients; it loads the data file when built (so a
corrupt file stops startup), runs expiry and compaction every 100 ms, and flushes and
fsyncs the file when stopped (SIGTERM, suite stop). Compaction (BGREWRITEAOF, BGSAVE,
SAVE, the automatic one) runs in a child process (aof.py) that L{KVServer.compact}
starts and the reactor watches; stopping the service kills it.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from functools import partial
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorFDSet, IReactorThreads
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from portsuite.api import RefusingProtocol
from portsuite.api.i18n import gettext as _
from portsuite_services.kv import tuning
from portsuite_services.kv.acl import ACLLog, User, build_users
from portsuite_services.kv.aof import (
    AOF,
    TEMP_INFIX,
    AOFError,
    ChildWatch,
    Rewrite,
    fsync_and_close,
    read_records,
)
from portsuite_services.kv.blocking import Blocked, Forgetting, wake
from portsuite_services.kv.commands import COMMANDS, NO_REPLY, CommandError
from portsuite_services.kv.delivery import Chore, Patterns, Subscriptions
from portsuite_services.kv.lazyfree import LazyFree
from portsuite_services.kv.monitor import MonitorLine, _repr
from portsuite_services.kv.protocol import MAX_CLIENTS, SLICE, KVProtocol, TurnOut
from portsuite_services.kv.resp import OK, Simple
from portsuite_services.kv.scan import Snapshots
from portsuite_services.kv.sharded import MOVE
from portsuite_services.kv.snapshot import FORK_MAX_MEMORY, Snapshot, memory_used
from portsuite_services.kv.store import COMPACT, Store
from portsuite_services.kv.turn import Turn

PUBSUB_SOFT = 8 * 1024 * 1024  # Redis's default soft limit of pub/sub clients…
PUBSUB_SECONDS = 60  # …over it for this long: disconnected

log = Logger(namespace="portsuite.kv")
ABORTS_PER_TURN = 64  # killed clients' connections closed a turn (KVServer.abort)
WRITE_STEP = 2 << 20  # bytes of AOF records written a turn (a SET of 512 MB: 1.8 s at once)
AOF_CONTROL = frozenset((b"multi", b"exec", b"select"))  # records that are not writes
EXPIRY_SLICE = 0.003  # seconds of active expiry a turn of the reactor (about 300 keys)
EXPIRY_SHARE = 0.025  # and at most this many a tick of the cron (100 ms), in slices
RETRY = 5.0  # seconds before an automatic compaction that failed is tried again


class Saving(Blocked):
    """A client whose SAVE waits for the compaction's end (CLIENT UNBLOCK leaves it)."""

    __slots__ = ()


class _WallClock:
    """The clock of a server built only to check a data file."""

    seconds = staticmethod(time.time)


def check_data_file(path: Path, settings: Settings | None = None) -> str | None:
    """
    For C{portsuite check}: None when the data file would load, else the line
    startup would stop with. The file is read and replayed in memory exactly as
    startup does, and left untouched.
    """
    if not path.exists():
        return None
    try:
        cmds = read_records(path)[0]
        # the service's settings (databases…) but no data file: replayed, never opened
        checker = attrs.evolve(settings or Settings(), data=None)
        KVServer(checker, _WallClock()).replay(cmds, path)
    except AOFError as e:
        return str(e)
    except OSError as e:
        return _("data file {path} cannot be read ({error}); fix its permissions").format(
            path=path, error=e.strerror
        )
    return None


@attrs.define
class Settings:
    """The options of a kv service (CONFIG GET/SET reads and changes some)."""

    data: Path | None = None
    fsync: str = "everysec"
    password: str | None = None
    maxclients: int = 10000
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_output_buffer_limit: int = 32 * 1024 * 1024
    timeout: int = 0
    protected_mode: bool = True
    aof_rewrite_min_size: int = 64 * 1024 * 1024
    fork_max_memory: int = FORK_MAX_MEMORY
    databases: int = 16
    notify_keyspace_events: str = ""
    acl: list[str] = attrs.field(factory=list)  # aclfile lines: "user alice on >pw ~* +@all"


class KVServer(ServerFactory):
    """
    The kv service: the keyspace, its append-only file and its clients.

    Built once per service by L{portsuite_services.kv.build}; loads the data file
    when built (so a corrupt file stops startup), flushes and fsyncs it when stopped.
    """

    noisy = False

    def __init__(self, settings: Settings, reactor: Any, name: str = "kv", port: int | None = None):
        self.settings = settings
        self.reactor = reactor
        self.name = name
        self.port = port
        self.laddr = f"127.0.0.1:{port}"
        self.clock = reactor.seconds
        self.dbs = [Store(reactor.seconds, i) for i in range(settings.databases)]
        for db in self.dbs:
            db.on_expired = self._expired
        self.store = self.dbs[0]
        self.clients: dict[int, KVProtocol] = {}
        # blocking commands (blocking.py): clients waiting, keys made ready by a write
        self.blocked_clients: set[KVProtocol] = set()
        self.ready_keys: list[tuple[Store, bytes]] = []
        self.ready_set: set[tuple[int, bytes]] = set()
        self.serving = False
        self.forgetting = Forgetting(reactor)  # registrations on many keys, removed in slices
        self.notify_flags = 0  # keyspace notifications (notify.py): 0 = off
        if settings.notify_keyspace_events:
            from portsuite_services.kv.notify import parse_flags

            self.notify_flags = parse_flags(settings.notify_keyspace_events) or 0
        self.users: dict[str, User] = build_users(settings.password, settings.acl)
        self.acl_log = ACLLog(time.time)
        self.aborting: deque[Any] = deque()  # killed clients' transports, closed turn by turn
        self.aborts_call: Any = None
        self.aborted = 0  # how many this turn
        # MONITOR and CLIENT PAUSE look at every command: while one is on, no client
        # takes the fast dispatch path (KVProtocol.plain)
        self.every_command = False
        self.monitors: set[KVProtocol] = set()
        self.pause_end = 0.0  # reactor time a CLIENT PAUSE ends, 0 = not paused
        self.pause_all = False
        self._pause_call: Any = None
        self.paused_clients: set[KVProtocol] = set()
        self.busy: Any = None  # a command computed in slices (bigwork.py): the others wait
        self.tuning = dict(tuning.DEFAULTS)  # Redis's parameters kv keeps but has no use for
        self.query_buffer_limit = self._query_buffer_limit()  # bounds MULTI's queue
        self.slowlog: list[list[Any]] = []  # newest first
        self.slowlog_ids = 0
        self.slowlog_threshold = 10000  # microseconds; < 0: off
        self.slowlog_max = 128
        # pub/sub (delivery.py): subscriptions, keyspace events waiting to be delivered,
        # the server's own work waiting for a sliced command to end
        self.channels = Subscriptions()
        self.patterns = Patterns()
        self.shards = Subscriptions()  # SSUBSCRIBE
        # client-output-buffer-limit's pubsub class (hard, soft, soft seconds): Redis's
        # soft limit by default; the hard one is client_output_buffer_limit
        self.pubsub_limits = (settings.client_output_buffer_limit, PUBSUB_SOFT, PUBSUB_SECONDS)
        self.outbox: deque[Any] = deque()
        self.delivery_spent = 0  # what this command's keyspace events cost so far
        self.telling = False  # this command's steps tell its keyspace events (notify.py)
        self.chores: deque[Chore] = deque()
        self._ids = 0
        self._replayed_db = 0
        self.total_connections = 0
        self.total_commands = 0
        self.rejected = 0
        self.error_stats: dict[str, int] = {}  # INFO errorstats: ERR, WRONGTYPE…
        self.started = time.time()
        self.last_save = time.time()
        self.aof: AOF | None = None
        # the compaction running in a child process (aof.py) or in slices here
        # (snapshot.py), and what waits for it
        self.rewriting: Rewrite | Snapshot | None = None
        self._watch: ChildWatch | None = None
        self._reap_call: Any = None
        self._expiry_call: Any = None  # active expiry's next slice in this tick
        self.rewrite_scheduled = False  # BGREWRITEAOF while another child ran, or in EXEC
        self.bgsave_scheduled = False
        self.savers: list[KVProtocol] = []  # SAVE: answered when the compaction ends
        self.save_status = {"aof": "ok", "rdb": "ok"}  # INFO's last bgrewrite/bgsave status
        self.rewrite_failures = 0  # in a row
        self.last_rewrite_secs = -1
        self._retry_at = 0.0
        # a child process needs fork and a reactor to watch its pipe (a bare Clock has none)
        self.can_fork = hasattr(os, "fork") and IReactorFDSet.providedBy(reactor)
        # the replies held until the AOF is written once for every client served in
        # this poll (see hold); only on portsuite's reactor, which calls back after a
        # poll's events (another reactor: the AOF is written after each read)
        self.call_after_poll = getattr(reactor, "call_after_poll", None)
        self.held: list[KVProtocol] = []
        self._loops: list[LoopingCall] = []
        self.syncing = False  # an everysec fsync under way in a thread
        self._ticks = 0
        self.scans = Snapshots()  # SCAN-family cursors (scan.py)
        self.turn_out = TurnOut(reactor)  # what its clients' queues may send this turn
        self.turn = Turn(reactor)  # this turn's share of its work in slices (turn.py)
        self.lazyfree = LazyFree(
            reactor, self.turn
        )  # big values deleted, freed in slices (lazyfree.py)
        for db in self.dbs:
            db.free = self.lazyfree.free
        if settings.data is not None:
            self.load(settings.data)

    def hold(self, client: KVProtocol) -> None:
        """C{client}'s replies wait in its queue until the AOF is written (L{release})."""
        if not self.held:
            self.call_after_poll(self.release)  # type: ignore[misc]
        self.held.append(client)

    def release(self) -> None:
        """
        After a poll: the AOF records of every client served, written (and fsynced with
        C{always}), then their replies; none if the write fails. Big records (a SET of
        512 MB: 1.8 s in one write) are written L{WRITE_STEP} bytes a turn, the replies
        held until all are, the commands of later turns after them.
        """
        aof = self.aof
        written = True
        if aof is not None and aof.ok and (aof.writing or aof.buf):
            try:
                if not aof.flush_step(WRITE_STEP):
                    self.call_after_poll(self.release)  # type: ignore[misc]
                    return
            except OSError:
                self._write_failed(aof)
                written = False
        clients, self.held = self.held, []
        for client in clients:
            if written:
                client.release()
            elif not client.closed:
                client.drop()

    def write_aof(self) -> bool:
        """Write what the AOF holds, before any reply acknowledges it; False if it failed."""
        aof = self.aof
        if aof is not None and aof.buf and aof.ok:
            try:
                aof.flush()
            except OSError:
                self._write_failed(aof)
                return False
        return True

    @staticmethod
    def _write_failed(aof: AOF) -> None:
        log.error(
            "kv: cannot write {path}: {error}; writes are refused (MISCONF) until it works",
            path=str(aof.path),
            error=aof.error,
        )

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    @staticmethod
    def command_keys(cmd: Any, argv: list[bytes], touched: list[bytes] | None) -> Any:
        """The keys a write changed: C{touched} when the command said (SMOVE), else argv's."""
        if touched is not None:
            return touched
        if not cmd.first_key:
            return ()
        last = cmd.last_key if cmd.last_key >= 0 else len(argv) + cmd.last_key
        return argv[cmd.first_key : last + 1 : cmd.key_step or 1]

    def touch(self, store: Store, keys: Any) -> None:
        """A write changed C{keys} of C{store}: transactions WATCHing them will fail."""
        watched = store.watched
        db = store.id
        for key in keys:
            for client in watched.get(key, ()):
                if (db, key) in client.watching:  # (not one it is forgetting: unwatch)
                    client.watch_dirty = True

    def touch_all(self, store: Store) -> None:
        """FLUSHDB/FLUSHALL/SWAPDB: every WATCHed key of C{store} that exists changes."""
        for key, watchers in store.watched.items():
            if key in store.data:
                for client in watchers:
                    if (store.id, key) in client.watching:
                        client.watch_dirty = True

    def signal_ready(self, store: Store, keys: Any) -> None:
        """A write changed C{keys} of C{store}: clients blocked on them get a try."""
        blocking = store.blocking
        for key in keys:
            if key in blocking:
                mark = (store.id, key)
                if mark not in self.ready_set:
                    self.ready_set.add(mark)
                    self.ready_keys.append((store, key))

    def _expired(self, store: Store, key: bytes) -> None:
        for client in store.watched.get(key, ()):
            if (store.id, key) in client.watching:
                client.watch_dirty = True
        if self.aof is not None:
            self.aof.feed_db(store.id, [b"DEL", key])
        if self.notify_flags:
            from portsuite_services.kv.notify import notify_db

            notify_db(self, store.id, "x", b"expired", key)

    # -- ACL users ---------------------------------------------------------------------

    def clients_subscribed(self) -> bool:
        """Is any client subscribed to anything (a channel, a pattern, a shard channel)?"""
        return bool(len(self.channels) or len(self.patterns) or len(self.shards))

    def user_changed(self, name: str, user: User | None) -> None:
        """ACL SETUSER/DELUSER: clients logged in as C{name} follow (deleted: disconnected)."""
        self.users_changed({name: user})

    def users_changed(self, changed: dict[str, User | None]) -> None:
        """L{user_changed} for many users at once (ACL DELUSER of thousands: one pass)."""
        for client in list(self.clients.values()):
            name = client.user.name
            if name not in changed:
                continue
            user = changed[name]
            if user is None:
                client.kill()
            else:
                client.set_user(user)

    def abort(self, transport: Any) -> None:
        """
        Close the connection of a killed client (CLIENT KILL, ACL DELUSER): at most
        L{ABORTS_PER_TURN} a turn of the reactor, the others at the next turns. Each costs
        Twisted's teardown and the suite's log line (about 0.2 ms): closing 3,000 at once
        held every service for most of a second.
        """
        if self.aborts_call is None:
            self.aborts_call = self.reactor.callLater(0, self._abort_more)
        if self.aborted < ABORTS_PER_TURN and not self.aborting:
            self.aborted += 1
            transport.abortConnection()
        else:
            self.aborting.append(transport)

    def _abort_more(self) -> None:
        """A new turn: the next ones closed; this turn's count holds until the next turn
        (a kill in slices calling L{abort} later in this turn closed 64 more in it)."""
        self.aborts_call = None
        self.aborted = 0
        aborting = self.aborting
        for _i in range(min(ABORTS_PER_TURN, len(aborting))):
            aborting.popleft().abortConnection()
            self.aborted += 1
        if self.aborted:
            self.aborts_call = self.reactor.callLater(0, self._abort_more)

    # -- MONITOR, CLIENT PAUSE --------------------------------------------------------

    def _every_command_changed(self) -> None:
        on = bool(self.monitors) or bool(self.pause_end) or self.busy is not None
        if on != self.every_command:
            self.every_command = on
            for client in self.clients.values():
                client.refresh()

    def add_monitor(self, client: KVProtocol) -> None:
        client.monitor = True
        self.monitors.add(client)
        self._every_command_changed()

    def remove_monitor(self, client: KVProtocol) -> None:
        self.monitors.discard(client)
        self._every_command_changed()

    def feed_monitors(self, client: KVProtocol, argv: list[bytes]) -> None:
        """One line per command to every MONITOR client, as Redis writes it."""
        now = self.clock()
        name = argv[0].lower()
        if name == b"auth":
            argv = argv[:1] + [b"(redacted)"] * (len(argv) - 1)
        elif name == b"hello":
            argv = list(argv)
            for i in range(1, len(argv) - 2):
                if argv[i].lower() == b"auth":
                    argv[i + 1] = argv[i + 2] = b"(redacted)"
        head = b"+%.6f [%d %s] " % (now, client.db, client.peer.encode())
        # (a line of fewer bytes than a slice of output is sent at once: it is built so)
        lazy = sum(map(len, argv)) + 3 * len(argv) > SLICE
        if not lazy:
            line = head + b" ".join(_repr(a) for a in argv) + b"\r\n"
        for mon in list(self.monitors):
            if not mon.closed:
                # (each its own: escaped as that client reads it)
                mon.send(MonitorLine(head, list(argv)) if lazy else line)

    def pause(self, seconds: float, everything: bool) -> None:
        """CLIENT PAUSE: a longer or stricter pause replaces the current one, as in Redis."""
        end = self.clock() + seconds
        if self.pause_end and end <= self.pause_end and (self.pause_all or not everything):
            return
        if self.pause_end and self.pause_all and not everything:
            everything = True
        self.pause_end = max(end, self.pause_end)
        self.pause_all = everything
        if self._pause_call is not None and self._pause_call.active():
            self._pause_call.cancel()
        delay = min(self.pause_end - self.clock(), 10**9)  # (1e18 ms: some thirty years)
        self._pause_call = self.reactor.callLater(max(delay, 0), self.unpause)
        self._every_command_changed()

    def unpause(self) -> None:
        if self._pause_call is not None and self._pause_call.active():
            self._pause_call.cancel()
        self._pause_call = None
        self.pause_end = 0.0
        self.pause_all = False
        self._every_command_changed()
        if self.busy is None:
            self.release_waiting()

    def set_busy(self, job: Any) -> None:
        """
        A command computed in slices starts (or ends): every other client waits, and
        the clock of expiry stands still for it (Redis's command time snapshot).
        """
        if job is None and self.chores:  # the server's own work that waited for it
            job = self.chores.popleft()
            job.start()
        self.busy = job
        frozen = 0 if job is None else int(self.clock() * 1000)
        for db in self.dbs:
            db.frozen_ms = frozen
        self._every_command_changed()

    def release_waiting(self) -> None:
        """A pause or a sliced command is over: the clients that waited run, in id order."""
        waiting = sorted(self.paused_clients, key=lambda c: c.id)
        self.paused_clients.clear()
        for client in waiting:
            client.end_wait()  # (it waits again if a pause or another sliced command is on)

    def note_memory_only_save(self) -> None:
        log.info(
            "kv {name}: BGSAVE asked, but kv runs memory-only: nothing written "
            '(set data = "kv.aof" to persist)',
            name=self.name,
        )

    def slow(self, client: KVProtocol, argv: list[bytes], micros: int, more: int) -> None:
        """A request that took C{micros} µs goes to SLOWLOG (C{more}: pipelined after it)."""
        args = (
            argv[:31]
            if len(argv) <= 32
            else argv[:31] + [b"... (%d more arguments)" % (len(argv) - 31)]
        )
        args = [
            a if len(a) <= 128 else a[:128] + b"... (%d more bytes)" % (len(a) - 128) for a in args
        ]
        if args and args[0].lower() == b"auth":
            args = args[:1] + [b"(redacted)"] * (len(args) - 1)
        if more:
            args.append(b"... (and %d more pipelined commands)" % more)
        self.slowlog.insert(
            0,
            [
                self.slowlog_ids,
                int(time.time()),
                micros,
                args,
                client.peer.encode(),
                client.name or b"",
            ],
        )
        self.slowlog_ids += 1
        del self.slowlog[self.slowlog_max :]

    def set_default_password(self, password: str | None) -> None:
        """CONFIG SET requirepass: the default user's password (empty: nopass)."""
        self.settings.password = password
        user = self.users["default"].copy()
        user.apply([b"resetpass", b">" + password.encode()] if password else [b"nopass"])
        self.users["default"] = user
        self.user_changed("default", user)

    # -- persistence -------------------------------------------------------------------

    def load(self, path: Path) -> None:
        """
        Replay the data file. A truncated last record is dropped, and so is a
        transaction the file ends inside (with a warning each); anything else
        wrong raises L{AOFError}. Temp files of a compaction killed half-way are
        removed.
        """
        aof = AOF(path, self.settings.fsync)
        for tmp in path.parent.glob(f"{glob_escape(path.name)}{TEMP_INFIX}*.tmp"):
            log.warn(
                "kv: removing {tmp}, left by a compaction that did not finish",
                tmp=str(tmp),
            )
            tmp.unlink(missing_ok=True)
        if path.exists():
            starts: list[int] = []
            cmds, good, size, truncated = read_records(path, starts)
            if truncated:
                log.warn(
                    "kv: {path}: {why} (a crash while writing?); dropping the last "
                    "{n} bytes and loading the {count} complete records before them",
                    path=str(path),
                    why=truncated,
                    n=size - good,
                    count=len(cmds),
                )
            multi_at = self.replay(cmds, path)
            for argv in cmds:  # (a big string loaded, freed one day: off the loop)
                self.lazyfree.strings.watch_all(argv)
            if multi_at is not None:
                good = starts[multi_at]
                log.warn(
                    "kv: {path} ends inside a transaction (MULTI at byte {at} without EXEC, a "
                    "crash while writing?); dropping its {n} queued records",
                    path=str(path),
                    at=good,
                    n=len(cmds) - multi_at - 1,
                )
            if good < size:
                aof.truncate(good)
            log.info(
                "kv: loaded {n} keys from {path}",
                n=sum(len(db) for db in self.dbs),
                path=str(path),
            )
        aof.open()
        if IReactorThreads.providedBy(self.reactor):
            aof.close_old = partial(self.reactor.callInThread, os.close)
        aof.db = self._replayed_db
        self.aof = aof

    def replay(self, cmds: list[list[bytes]], path: Path) -> int | None:
        """
        Run the records of a data file, as startup and C{portsuite check} do.

        @return: the index of the MULTI record when the file ends inside a
            transaction (its records are dropped), else None.
        @raise AOFError: a record that is not a change, or that fails.
        """
        loader = KVProtocol(self)
        loader.set_authenticated()
        loader.deny_blocking = True
        for db in self.dbs:
            db.loading = True
        multi_at = None
        try:
            for i, argv in enumerate(cmds):
                name = argv[0].lower()
                cmd = COMMANDS.get(name)
                if cmd is not None and cmd.subcommands and len(argv) > 1:  # XGROUP CREATE
                    cmd = cmd.subcommands.get(argv[1].lower())
                if cmd is None or not (cmd.write or name in AOF_CONTROL):
                    raise AOFError(
                        f"data file {path}: record {i + 1} "
                        f"({argv[0][:64].decode('latin-1')}) is not a change a data file "
                        f"holds; nothing was started: repair or move the file away"
                    )
                if name == b"multi":
                    multi_at = i
                elif name == b"exec":
                    multi_at = None
                out: list[bytes] = []
                loader.execute(argv, out)
                if out and out[0].startswith(b"-"):
                    raise AOFError(
                        f"data file {path}: record {i + 1} "
                        f"({argv[0][:64].decode('latin-1')}) fails: "
                        f"{out[0][1:].decode('latin-1').strip()}; nothing was started: repair "
                        f"or move the file away"
                    )
        finally:
            for db in self.dbs:
                db.loading = False
            loader.multi = None
            loader.closed = True
            self._replayed_db = loader.db  # where the file's next record is
        self.total_commands = 0
        self._ids = 0
        return multi_at

    def rewrite_aof(self) -> None:
        """Compact the data file at once, in the reactor (where no child process can)."""
        if self.aof is None:
            return
        self.aof.rewrite(self.dbs)
        self.last_save = time.time()
        log.info(
            "kv: compacted {path} to {size} bytes", path=str(self.aof.path), size=self.aof.size
        )

    # -- compaction in a child process: SAVE, BGSAVE, BGREWRITEAOF, the automatic one ----

    def save(self, c: KVProtocol) -> Any:
        """SAVE: the client waits for a compaction (started, or the one running)."""
        rw = self.rewriting
        if rw is not None and rw.kind == "rdb":
            raise CommandError("ERR Background save already in progress")
        if rw is None and not self.compact("save"):
            raise CommandError("ERR")
        if self.rewriting is None:  # (done at once: no child process here)
            return OK
        c.blocked = Saving([b"SAVE"], {}, c.store, None)
        self.savers.append(c)
        return NO_REPLY

    def bgsave(self, c: KVProtocol, schedule: bool) -> Any:
        """BGSAVE [SCHEDULE]: a compaction (kv's snapshot is its data file), as Redis answers."""
        rw = self.rewriting
        if rw is not None and rw.kind == "rdb":
            raise CommandError("ERR Background save already in progress")
        if rw is not None or c.in_exec:
            if schedule or c.in_exec:
                self.bgsave_scheduled = True
                return Simple("Background saving scheduled")
            raise CommandError(
                "ERR Another child process is active (AOF?): can't BGSAVE right now. Use "
                "BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
            )
        if not self.compact("rdb"):
            raise CommandError("ERR")
        return Simple("Background saving started")

    def bgrewriteaof(self, c: KVProtocol) -> Any:
        """BGREWRITEAOF, as Redis 7 answers it."""
        rw = self.rewriting
        if rw is not None and rw.kind == "aof":
            raise CommandError("ERR Background append only file rewriting already in progress")
        if rw is not None or c.in_exec:
            self.rewrite_scheduled = True
            return Simple("Background append only file rewriting scheduled")
        if not self.compact("aof"):
            raise CommandError(
                "ERR Can't execute an AOF background rewriting. Please check the server "
                "logs for more information."
            )
        return Simple("Background append only file rewriting started")

    def compact(self, kind: str) -> bool:
        """
        Start compacting the data file: in a child process where it can, else at once.
        C{kind}: "aof" (BGREWRITEAOF, automatic), "rdb" (BGSAVE) or "save" (SAVE), for
        INFO and the replies. False if it could not start or failed at once (logged).
        """
        aof = self.aof
        if aof is None or self.rewriting is not None:
            return False
        if kind == "aof":
            self.rewrite_scheduled = False
        elif kind == "rdb":
            self.bgsave_scheduled = False
        try:
            if not self.can_fork:
                self.rewrite_aof()
                self._compacted(kind, None)
                return True
            used = memory_used()
            if used >= self.settings.fork_max_memory:
                self.rewriting = Snapshot(self, kind, self._snapshot_done)
                log.info(
                    "kv: compacting {path} in slices, without fork ({mb} MB in use, "
                    "fork_max_memory is {max} MB)",
                    path=str(aof.path),
                    mb=used >> 20,
                    max=self.settings.fork_max_memory >> 20,
                )
                return True
            rw = aof.fork_rewrite(self.dbs, kind)
        except OSError as e:
            self._compacted(kind, e.strerror or str(e))
            return False
        self.rewriting = rw
        self._watch = ChildWatch(self.reactor, rw, self._child_done)
        self.reactor.addReader(self._watch)
        log.info("kv: compacting {path} in process {pid}", path=str(aof.path), pid=rw.pid)
        return True

    def _child_done(self) -> None:
        """The child's pipe ended (it exits): reap it, then swap the file in, or drop it."""
        self._reap_call = None
        rw = self.rewriting
        if not isinstance(rw, Rewrite) or self.aof is None:
            return
        try:
            pid, status = os.waitpid(rw.pid, os.WNOHANG)
        except ChildProcessError:  # (reaped by someone else: its report says how it went)
            pid, status = rw.pid, 0
        if pid == 0:  # (its pipe is closed, its exit not yet done)
            self._reap_call = self.reactor.callLater(0.01, self._child_done)
            return
        self.rewriting = self._watch = None
        self._switch(rw, rw.outcome(status), rw.pid)

    def _snapshot_done(self, why: str | None) -> None:
        """The compaction without fork ended: its file is written and fsynced, or it failed."""
        snap = self.rewriting
        if not isinstance(snap, Snapshot) or self.aof is None:
            return
        self.rewriting = None
        rw = snap.rewrite
        if rw is None:  # (failed: its temp file is gone)
            self.last_rewrite_secs = int(time.monotonic() - snap.started)
            self._compacted(snap.kind, why or "failed")
            return
        self._switch(rw, why, 0)
        if why is None:
            log.info(
                "kv: compacted {path} to {size} bytes without fork in {secs:.1f} s ({rounds} "
                "rounds of keys changed meanwhile, {restarts} restarts; last turn: {keys} "
                "keys copied in {ms:.1f} ms)",
                path=str(self.aof.path),
                size=self.aof.size,
                secs=time.monotonic() - snap.started,
                rounds=snap.rounds,
                restarts=snap.restarts,
                keys=snap.last[0],
                ms=snap.last[1],
            )

    def _switch(self, rw: Rewrite, why: str | None, pid: int) -> None:
        """A compaction's file is complete (C{why} None): swap it in; else drop it."""
        assert self.aof is not None
        if why is None:
            try:
                self.aof.finish_rewrite(rw)
            except OSError as e:
                why = e.strerror or str(e)
        else:
            self.aof.drop_rewrite(rw)
        self.last_rewrite_secs = int(time.monotonic() - rw.started)
        self._compacted(rw.kind, why, pid)

    def _compacted(self, kind: str, why: str | None, pid: int = 0) -> None:
        """A compaction ended (C{why}: None, or what failed): INFO, the log, SAVE's clients."""
        aof = self.aof
        path = str(aof.path) if aof is not None else ""
        self.save_status["rdb" if kind == "save" else kind] = "ok" if why is None else "err"
        if why is None:
            self.rewrite_failures = 0
            self.last_save = time.time()
            if pid:
                log.info(
                    "kv: compacted {path} to {size} bytes (process {pid})",
                    path=path,
                    size=aof.size if aof is not None else 0,
                    pid=pid,
                )
        else:
            self.rewrite_failures += 1
            self._retry_at = self.clock() + RETRY
            log.error(
                "kv: the compaction of {path} failed ({why}); the file is as it was, complete",
                path=path,
                why=why,
            )
        self._answer_savers(OK if why is None else CommandError("ERR"))

    def _answer_savers(self, reply: Any) -> None:
        savers, self.savers = self.savers, []
        for c in savers:
            if not c.closed and type(c.blocked) is Saving:
                wake(c, reply)

    def _stop_compaction(self) -> None:
        """The service stops: the child is killed and reaped, its temp file removed."""
        rw = self.rewriting
        if rw is None or self.aof is None:
            return
        self.rewriting = None
        if isinstance(rw, Snapshot):
            rw.stop()
            log.info(
                "kv: compaction of {path} stopped; the file is complete", path=str(self.aof.path)
            )
            self._answer_savers(CommandError("ERR"))
            return
        if self._reap_call is not None and self._reap_call.active():
            self._reap_call.cancel()
        self._reap_call = None
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        try:
            os.kill(rw.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(rw.pid, 0)
        except ChildProcessError:
            pass
        self.aof.drop_rewrite(rw)
        log.info(
            "kv: compaction of {path} stopped (process {pid} killed); the file is complete",
            path=str(self.aof.path),
            pid=rw.pid,
        )
        self._answer_savers(CommandError("ERR"))

    # -- factory ---------------------------------------------------------------------

    def buildProtocol(self, addr: Any) -> Protocol:
        if len(self.clients) >= self.settings.maxclients:
            self.rejected += 1
            p: Protocol = RefusingProtocol(MAX_CLIENTS)
        else:
            p = KVProtocol(self)
        p.factory = self
        return p

    def startFactory(self) -> None:
        self._every(0.1, self._cron)
        if self.aof is not None and self.settings.fsync == "everysec":
            self._every(1.0, self._sync)

    def _every(self, interval: float, f: Any) -> None:
        loop = LoopingCall(f)
        loop.clock = self.reactor
        loop.start(interval, now=False)
        self._loops.append(loop)

    def _sync(self) -> None:
        """
        C{everysec}: the file's new data to disk, in a thread of the reactor's pool when
        it has one (after a SET of 512 MB the fsync took 1-2 s, every service held); the
        next second's waits while one is under way, as Redis postpones its own.
        """
        aof = self.aof
        assert aof is not None
        if self.syncing:
            return
        if not IReactorThreads.providedBy(self.reactor):  # (a bare Clock: the tests')
            try:
                aof.sync()
            except OSError as e:
                log.error("kv: fsync of the data file failed: {error}", error=e)
            return
        fd = aof.to_sync()
        if fd < 0:
            return
        self.syncing = True
        d = deferToThreadPool(self.reactor, self.reactor.getThreadPool(), fsync_and_close, fd)
        d.addErrback(self._sync_failed, aof)
        d.addBoth(self._synced)

    def _sync_failed(self, failure: Any, aof: AOF) -> None:
        aof.unsynced = True  # (tried again the next second)
        log.error("kv: fsync of the data file failed: {error}", error=failure.value)

    def _synced(self, _: Any) -> None:
        self.syncing = False

    def _cron(self) -> None:
        """Every 100 ms: active expiry, keyspaces being sharded, idle clients, AOF growth."""
        self.delivery_spent = 0  # (the keyspace events of expiry: a share per tick)
        budget = MOVE  # (keys moved into a sharded keyspace's shards, all dbs together)
        for db in self.dbs if self.busy is None else ():  # (no key changes under a sliced command)
            if db._old:
                db.compact(COMPACT)
            if budget > 0 and type(self.rewriting) is not Snapshot:  # (its walk: keys stay put)
                budget -= db.rehash(budget)
        if self._expiry_call is None:
            self._expire_slice(EXPIRY_SHARE)
        self._ticks += 1
        timeout = self.settings.timeout
        if timeout and self._ticks % 10 == 0:  # idle clients: once a second is enough
            now = self.clock()
            for client in list(self.clients.values()):
                if (
                    not client.subscribed
                    and client.blocked is None  # (a blocked client waits, as in Redis)
                    and now - client.last > timeout
                ):
                    log.info(
                        "kv: closing {peer}: idle for {t}s (timeout)", peer=client.peer, t=timeout
                    )
                    client.closed = True
                    client.transport.loseConnection()
        aof = self.aof
        if aof is None:
            return
        if not aof.ok:
            try:
                aof.flush()  # retry: writes are accepted again once this works
                log.info("kv: {path} is writable again", path=str(aof.path))
            except OSError:
                return
        if self.rewriting is not None or self.busy is not None:
            return  # (a transaction across turns: its records are not in the file yet)
        if self.rewrite_scheduled:
            self.compact("aof")
        elif self.bgsave_scheduled:
            self.compact("rdb")
        elif (
            aof.needs_rewrite(self.settings.aof_rewrite_min_size) and self.clock() >= self._retry_at
        ):
            self.compact("aof")

    def _expire_slice(self, share: float) -> None:
        """
        Active expiry, C{EXPIRY_SLICE} seconds of it a turn of the reactor at most (and
        no more than what is left of the turn's share of kv's work in slices, L{Turn}:
        32 keys at least), then the next turn while keys are due, up to C{share} seconds
        a tick of the cron (Redis's slow cycle takes at most 25% of the time too): the
        rest of the suite is served between.
        """
        self._expiry_call = None
        if self.busy is not None:  # (no key changes under a sliced command)
            return
        dbs = [db for db in self.dbs if db._heap or db._old]
        if not dbs:
            return
        start = time.perf_counter()
        end = min(start + EXPIRY_SLICE, self.turn.deadline(start))
        expired = 0
        for db in dbs:
            expired += db.expire_cycle(until=end)
        if not expired:
            return
        if self.aof is not None and self.aof.ok:
            try:
                self.aof.flush()
            except OSError:
                pass
        share -= max(time.perf_counter() - start, 0.0002)
        if share > 0 and any(db.due() for db in self.dbs):
            self._expiry_call = self.reactor.callLater(0, self._expire_slice, share)

    def stopFactory(self) -> None:
        if self._expiry_call is not None and self._expiry_call.active():
            self._expiry_call.cancel()
        self._expiry_call = None
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.lazyfree.strings.stop()
        self._stop_compaction()
        if self.aof is not None:
            self.aof.close()
            log.info("kv: {path} flushed and fsynced", path=str(self.aof.path))

    # -- CONFIG GET/SET ------------------------------------------------------------------

    def config_params(self) -> dict[str, str]:
        s = self.settings
        limit = s.client_output_buffer_limit
        hard, soft, seconds = self.pubsub_limits
        return self.tuning | {
            "maxclients": str(s.maxclients),
            "timeout": str(s.timeout),
            "requirepass": s.password or "",
            "proto-max-bulk-len": str(s.proto_max_bulk_len),
            "client-output-buffer-limit": (
                f"normal {limit} {limit} 0 slave 0 0 0 pubsub {hard} {soft} {seconds}"
            ),
            "appendonly": "yes" if self.aof is not None else "no",
            "appendfsync": s.fsync,
            "appendfilename": s.data.name if s.data else "",
            "dir": str(s.data.parent) if s.data else "",
            "save": "",
            "databases": str(s.databases),
            "notify-keyspace-events": self.notify_text(),
            "protected-mode": "yes" if s.protected_mode else "no",
            "port": str(self.port or 0),
        }

    _INT_SETTINGS = {
        "maxclients": "maxclients",
        "timeout": "timeout",
        "proto-max-bulk-len": "proto_max_bulk_len",
    }

    def config_set(self, name: str, value: bytes, check_only: bool = False) -> str | None:
        text = value.decode("utf-8", "replace")
        if name in self._INT_SETTINGS:
            try:
                v = int(text)
                if v < 0:
                    raise ValueError
            except ValueError:
                return (
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - argument "
                    f"couldn't be parsed into an integer"
                )
            if not check_only:
                setattr(self.settings, self._INT_SETTINGS[name], v)
            return None
        if name == "requirepass":
            if not check_only:
                self.set_default_password(text or None)
            return None
        if name == "appendfsync":
            if text not in ("always", "everysec", "no"):
                return f"ERR CONFIG SET failed (possibly related to argument '{name}') - argument(s) must be one of the following: always, everysec, no"
            if not check_only:
                self.settings.fsync = text
                if self.aof is not None:
                    self.aof.fsync = text
            return None
        if name == "protected-mode":
            if text not in ("yes", "no"):
                return f"ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be 'yes' or 'no'"
            if not check_only:
                self.settings.protected_mode = text == "yes"
            return None
        if name == "notify-keyspace-events":
            from portsuite_services.kv.notify import parse_flags

            flags = parse_flags(text)
            if flags is None:
                return (
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - Invalid "
                    f"event class character. Use 'Ag$lshzxeKEtmdn'."
                )
            if not check_only:
                self.notify_flags = flags
            return None
        if name == "databases":
            return (
                f"ERR CONFIG SET failed (possibly related to argument '{name}') - can't set "
                f"immutable config"
            )
        if name in self.tuning:
            error, stored = tuning.check(name, value)
            if error:
                return error
            if not check_only:
                self.tuning[name] = stored
                if name in tuning.ALIASES:  # (one parameter, two names)
                    self.tuning[tuning.ALIASES[name]] = stored
                if name == "client-output-buffer-limit":  # normal's hard limit, pubsub's
                    words = stored.split()
                    for i in range(0, len(words), 4):
                        if words[i].lower() == "normal":
                            self.settings.client_output_buffer_limit = (
                                tuning.memory_value(words[i + 1]) or 0
                            )
                        elif words[i].lower() == "pubsub":
                            self.pubsub_limits = (
                                tuning.memory_value(words[i + 1]) or 0,
                                tuning.memory_value(words[i + 2]) or 0,
                                int(words[i + 3]),
                            )
                elif name == "client-query-buffer-limit":
                    self.query_buffer_limit = self._query_buffer_limit()
                elif name == "slowlog-log-slower-than":
                    self.slowlog_threshold = int(stored)
                elif name == "slowlog-max-len":
                    self.slowlog_max = int(stored)
                    del self.slowlog[self.slowlog_max :]
            return None
        return f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"

    def _query_buffer_limit(self) -> int:
        return tuning.memory_value(self.tuning["client-query-buffer-limit"]) or 1 << 30

    def notify_text(self) -> str:
        from portsuite_services.kv.notify import flags_text

        return flags_text(self.notify_flags)
