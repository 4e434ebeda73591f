"""
C{workers = N}: N processes accept on one service's port, seen as one service.

The suite binds the service's listeners itself (as root where needed, before
C{--uid/--gid} drop privileges), stops reading on them, and hands each listening
socket to N child processes (C{python -m portsuite.workerproc}), which take it with
C{reactor.adoptStreamPort} and serve it with the same wrapped factory as in one
process. The kernel spreads the connections over them.

A child reports over a unix socket (its stdin), one JSON line at a time: its counters
and connected clients (at most every L{REPORT_INTERVAL} seconds, when they changed)
and its log lines, which the suite logs as its own. The same socket carries the
suite's orders: stop accepting (C{portsuite disable}, a reload that replaces the
service; the open connections go on) and accept on these new sockets, passed with
C{SCM_RIGHTS} (C{portsuite enable}). The suite sums the counters into the
service's one L{ServiceStats}, so the dashboard and the metrics see one service.
C{max_connections} and C{max_per_host} hold for the whole service: counts per worker
in shared memory (L{SharedCount}), read and changed under a POSIX record lock. A worker
that dies is started again (after a pause that grows while it keeps dying at once);
its counters stay in the totals. When the suite goes away, its end of the socket
closes and the worker stops.

Only types that declare C{stateless = True} may have workers (the config refuses
the others): each worker has its own copy of the service's state.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import socket
import struct
import sys
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import Logger, LogLevel

from portsuite.api import ClientInfo
from portsuite.config import MAX_WORKERS

log = Logger(namespace="portsuite")

REPORT_INTERVAL = 0.25
MIRROR_INTERVAL = 0.5
MAX_LINE = 1 << 20  # a report line longer than this is dropped (bounded buffer)
MAX_CLIENTS_REPORTED = 500  # per worker, in each report
_SLOT = struct.Struct("q")
HOSTS = 1024  # hosts with connections open at once that max_per_host counts exactly
_KEY = struct.Struct("Q")
_COUNT = struct.Struct("i")
_COUNTS = struct.Struct(f"{MAX_WORKERS}i")
_ENTRY = struct.Struct(f"Q{MAX_WORKERS}i")
_ZEROS = (0,) * MAX_WORKERS
_SIZE = mmap.PAGESIZE + HOSTS * _ENTRY.size  # (memory is used only for the pages touched)


class SharedCount:
    """
    The connection counts of a service's workers in shared memory: one total per
    worker (the first page), and a table of per-host counts, one column per worker
    (L{HOSTS} entries: an 8-byte hash of the host, then one 4-byte count per worker).
    C{take} admits a connection only while the service's total is below C{limit}
    and the host's total is below C{per_host}. Everything is read and changed under a
    POSIX record lock; those belong to the process, so the workers exclude each other
    even sharing one file description. One column per worker: a worker that dies
    takes exactly its own connections out of the counts (L{reset}).

    A host's entry stays in the table when its count falls to zero and is reused for
    the next new host on its probe path. If more than L{HOSTS} different hosts have
    connections open at once, the next new ones are admitted without a per-host count
    (logged once): the limit then holds per worker only for them.
    """

    def __init__(self, fd: int, slot: int, limit: int | None, per_host: int | None = None):
        self.fd = fd
        self.slot = slot
        self.limit = limit
        self.per_host = per_host
        self.map = mmap.mmap(fd, _SIZE)
        self.slots = MAX_WORKERS
        self.full_logged = False

    @classmethod
    def create(cls, name: str) -> SharedCount:
        fd = os.memfd_create(f"portsuite-{name}", 0)
        os.ftruncate(fd, _SIZE)
        return cls(fd, -1, None)

    def _get(self, slot: int) -> int:
        value: int = _SLOT.unpack_from(self.map, slot * _SLOT.size)[0]
        return value

    def _set(self, slot: int, value: int) -> None:
        _SLOT.pack_into(self.map, slot * _SLOT.size, value)

    def total(self) -> int:
        return sum(_SLOT.unpack_from(self.map, i * _SLOT.size)[0] for i in range(self.slots))

    # -- the per-host table ----------------------------------------------------------

    def _find(self, host: str, insert: bool) -> int | None:
        """The offset of C{host}'s entry (a new one if C{insert}), or None."""
        key = _host_key(host)
        m = self.map
        start = key % HOSTS
        reuse = None
        for i in range(HOSTS):
            at = mmap.PAGESIZE + ((start + i) % HOSTS) * _ENTRY.size
            found = _KEY.unpack_from(m, at)[0]
            if found == key:
                return at
            if found == 0:  # the end of this key's probe path
                break
            if reuse is None and insert and not any(_COUNTS.unpack_from(m, at + _KEY.size)):
                reuse = at  # a host with no connection left: its place can be taken
        else:
            at = None
        if not insert:
            return None
        at = reuse if reuse is not None else at
        if at is None:
            return None
        _COUNTS.pack_into(m, at + _KEY.size, *_ZEROS)
        _KEY.pack_into(m, at, key)
        return at

    def host_count(self, host: str) -> int:
        """The host's open connections, over all the workers."""
        with self._locked():
            at = self._find(host, insert=False)
            return 0 if at is None else sum(_COUNTS.unpack_from(self.map, at + _KEY.size))

    def _column(self, at: int, slot: int) -> int:
        return at + _KEY.size + slot * _COUNT.size

    # -- admission -------------------------------------------------------------------

    def _locked(self) -> Any:
        return _Lock(self.fd)

    def take(self, host: str | None = None) -> str | None:
        """
        Count one connection of C{host} for this worker if the limits allow it.

        @return: None when admitted, else what refused it: C{"total"} or C{"host"}.
        """
        with self._locked():
            if self.limit is not None and self.total() >= self.limit:
                return "total"
            if self.per_host is not None and host is not None:
                at = self._find(host, insert=True)
                if at is None:
                    if not self.full_logged:
                        self.full_logged = True
                        log.warn(
                            "more than {n} hosts connected at once: max_per_host is counted "
                            "per worker for the next new ones",
                            n=HOSTS,
                        )
                else:
                    if sum(_COUNTS.unpack_from(self.map, at + _KEY.size)) >= self.per_host:
                        return "host"
                    col = self._column(at, self.slot)
                    _COUNT.pack_into(self.map, col, _COUNT.unpack_from(self.map, col)[0] + 1)
            self._set(self.slot, self._get(self.slot) + 1)
            return None

    def give(self, host: str | None = None) -> None:
        with self._locked():
            self._set(self.slot, max(0, self._get(self.slot) - 1))
            if self.per_host is not None and host is not None:
                at = self._find(host, insert=False)
                if at is not None:
                    col = self._column(at, self.slot)
                    _COUNT.pack_into(
                        self.map, col, max(0, _COUNT.unpack_from(self.map, col)[0] - 1)
                    )

    def reset(self, slot: int) -> None:
        """A worker died: its connections died with it."""
        with self._locked():
            self._set(slot, 0)
            m = self.map
            for i in range(HOSTS):
                at = mmap.PAGESIZE + i * _ENTRY.size
                if _KEY.unpack_from(m, at)[0]:
                    _COUNT.pack_into(m, self._column(at, slot), 0)

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


class _Lock:
    def __init__(self, fd: int):
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: Any) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)


def _host_key(host: str) -> int:
    """A host's key in the shared table: the same in every process (hash() is not), never 0."""
    digest = hashlib.blake2b(host.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


class _Report:
    """The last counters one worker reported."""

    def __init__(self) -> None:
        self.open = 0
        self.total = 0
        self.refused = 0
        self.errors = 0
        self.closed_in = 0
        self.closed_out = 0
        self.clients: list[dict[str, Any]] = []

    def update(self, msg: dict[str, Any]) -> None:
        self.open = int(msg.get("open", 0))
        self.total = int(msg.get("total", 0))
        self.refused = int(msg.get("refused", 0))
        self.errors = int(msg.get("errors", 0))
        self.closed_in = int(msg.get("closed_in", 0))
        self.closed_out = int(msg.get("closed_out", 0))
        self.clients = list(msg.get("clients", []))[:MAX_CLIENTS_REPORTED]


class _Control(Protocol):
    """The suite's end of a worker's socket: its reports in, the suite's orders out."""

    transport: Any

    def __init__(self, worker: _WorkerProtocol):
        self.worker = worker

    def dataReceived(self, data: bytes) -> None:
        self.worker.outReceived(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.worker.control = None
        self.worker.unlistened()  # (a worker that is gone accepts nothing)


class _WorkerProtocol(ProcessProtocol):
    transport: Any

    def __init__(self, pool: WorkerPool, slot: int):
        self.pool = pool
        self.slot = slot
        self.buffer = b""
        self.report = _Report()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.started = pool.reactor.seconds()
        self.control: _Control | None = None
        self.waiting: list[defer.Deferred[None]] = []  # for its {"unlistened": true}

    @property
    def pid(self) -> int | None:
        return getattr(self.transport, "pid", None)

    def send(self, msg: dict[str, Any], fds: list[int] = ()) -> bool:  # type: ignore[assignment]
        control = self.control
        if control is None or control.transport is None:
            return False
        for fd in fds:
            control.transport.sendFileDescriptor(fd)
        control.transport.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        return True

    def unlisten(self) -> defer.Deferred[None]:
        """Tell the worker to stop accepting; fires once it has (or is gone)."""
        d: defer.Deferred[None] = defer.Deferred()
        if not self.send({"op": "unlisten"}):
            d.callback(None)
            return d
        self.waiting.append(d)
        return d

    def unlistened(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > MAX_LINE:
            self.buffer = b""
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            if "unlistened" in msg:
                self.unlistened()
            elif "log" in msg:
                try:
                    level = LogLevel.levelWithName(str(msg.get("level", "info")))
                except Exception:
                    level = LogLevel.info
                log.emit(
                    level,
                    "{text}",
                    text=f"{msg['log']} (worker {self.slot + 1})",
                )
            else:
                self.report.update(msg)
                self.pool.sum()

    def processEnded(self, reason: Any) -> None:
        self.unlistened()
        self.pool.ended(self, reason)
        self.ended.callback(None)


def _cancel(result: Any, call: Any) -> Any:
    if call.active():
        call.cancel()
    return result


class WorkerPool(Service):
    """
    The worker processes of one service: a child of its L{ConfiguredService}, after
    its listeners, so they are bound before the workers start and closed after.
    """

    def __init__(self, unit: Any, count: int):
        self.unit = unit
        self.count = count
        self.setName(f"{unit.name}-workers")
        self.workers: dict[int, _WorkerProtocol] = {}
        self.delay: dict[int, float] = {}
        self.shared: SharedCount | None = None
        self.fds: list[tuple[int, int]] = []  # (fd, address family) of each listener
        # the counters of workers that died, kept in the totals
        self.retired = _Report()
        self.restarts = 0
        self.faults: dict[str, Any] | None = None  # set live (portsuite fault), as_dict()

    @property
    def reactor(self) -> Any:
        return self.unit.reactor

    @property
    def stats(self) -> Any:
        return self.unit.stats

    def startService(self) -> None:
        Service.startService(self)
        svc = self.unit.config
        path = self.unit.suite.config.path
        assert path is not None  # checked when binding
        self.config_path = os.path.abspath(path)
        self.take_ports()
        self.shared = SharedCount.create(svc.name)
        self.stats.workers = self.count
        for slot in range(self.count):
            self.spawn(slot)
        from twisted.internet.task import LoopingCall

        self.mirror_loop = LoopingCall(self.mirror)
        self.mirror_loop.clock = self.reactor
        self.mirror_loop.start(MIRROR_INTERVAL, now=False)
        self.last_mirror = b""

    def take_ports(self) -> None:
        """The service's listening sockets, bound by this process, are the workers' to accept on."""
        self.fds = []
        for port in self.unit.listening_ports():
            port.stopReading()  # the workers accept; this process only holds them
            sock = port.socket
            self.fds.append((sock.fileno(), sock.family))

    def bind(self) -> None:
        """C{portsuite enable}: the listeners were bound again; the workers accept on them."""
        self.take_ports()
        families = [int(family) for _, family in self.fds]
        for proto in self.workers.values():
            proto.send({"op": "listen", "families": families}, [fd for fd, _ in self.fds])

    def unbind(self) -> defer.Deferred[Any]:
        """
        C{portsuite disable}, or a reload that replaces the service: every worker stops
        accepting (its open connections go on). Fires once all have: only then is the
        port closed (each worker holds the listening socket too).
        """
        self.fds = []
        if not self.running:
            return defer.succeed(None)
        waits = [proto.unlisten() for proto in self.workers.values()]
        d = defer.DeferredList(waits)
        # a worker that does not answer within 5 s is stopped: the port must close
        timers = [self.reactor.callLater(5.0, self._unresponsive, p) for p in self.workers.values()]

        def answered(result: Any) -> Any:
            for timer in timers:
                if timer.active():
                    timer.cancel()
            return result

        return d.addBoth(answered)

    def set_faults(self, faults: Any) -> None:
        """C{portsuite fault}: every worker, and those started later, get these faults."""
        self.faults = faults.as_dict() if faults is not None else {}
        for proto in self.workers.values():
            proto.send({"op": "faults", "faults": self.faults})

    def _unresponsive(self, proto: _WorkerProtocol) -> None:
        if proto.waiting:
            log.warn(
                "{service}: worker {n} did not stop accepting within 5s; stopping it",
                service=self.unit.config.name,
                n=proto.slot + 1,
            )
            self._kill(proto)

    def mirror(self) -> None:
        """Send the workers the suite's snapshot: their dashboard shows the whole suite."""
        data = json.dumps(self.unit.suite.snapshot(), separators=(",", ":")).encode()
        if data == self.last_mirror:
            return
        self.last_mirror = data
        for proto in self.workers.values():
            if proto.control is not None and proto.control.transport is not None:
                proto.control.transport.write(data + b"\n")

    def spawn(self, slot: int) -> None:
        assert self.shared is not None
        self.shared.reset(slot)
        proto = _WorkerProtocol(self, slot)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        child_fds: dict[int, Any] = {0: theirs.fileno(), 1: "r", 2: 2}
        families = []
        for i, (fd, family) in enumerate(self.fds):
            child_fds[3 + i] = fd
            families.append(str(int(family)))
        shared_fd = 3 + len(self.fds)
        child_fds[shared_fd] = self.shared.fd
        args = [
            sys.executable,
            "-m",
            "portsuite.workerproc",
            self.config_path,
            self.unit.config.name,
            str(slot),
            ",".join(families),
            str(shared_fd),
        ]
        try:
            self.reactor.spawnProcess(
                proto, sys.executable, args, env=dict(os.environ), childFDs=child_fds
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        control = _Control(proto)
        self.reactor.adoptStreamConnection(
            ours.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: control)
        )
        ours.close()  # (the reactor holds its own copy)
        proto.control = control
        self.workers[slot] = proto
        if self.faults is not None:  # set live after the start: not in the config file
            proto.send({"op": "faults", "faults": self.faults})
        log.info(
            "{service}: worker {n} started (pid {pid})",
            service=self.unit.config.name,
            n=slot + 1,
            pid=proto.pid,
        )

    def pids(self) -> list[int]:
        return [p.pid for p in self.workers.values() if p.pid is not None]

    def ended(self, proto: _WorkerProtocol, reason: Any) -> None:
        slot = proto.slot
        if self.workers.get(slot) is not proto:
            return
        del self.workers[slot]
        r, gone = self.retired, proto.report
        r.total += gone.total
        r.refused += gone.refused
        r.errors += gone.errors
        r.closed_in += gone.closed_in + sum(int(c.get("bytes_in", 0)) for c in gone.clients)
        r.closed_out += gone.closed_out + sum(int(c.get("bytes_out", 0)) for c in gone.clients)
        if self.shared is not None:
            self.shared.reset(slot)
        self.sum()
        if not self.running:
            return
        self.restarts += 1
        # dying again at once: wait longer each time (up to 10 s), not a busy loop
        quick = self.reactor.seconds() - proto.started < 2.0
        delay = min(10.0, self.delay.get(slot, 0.1) * 2) if quick else 0.1
        self.delay[slot] = delay
        log.warn(
            "{service}: worker {n} (pid {pid}) ended ({why}); starting it again in {delay:.1f}s",
            service=self.unit.config.name,
            n=slot + 1,
            pid=proto.pid,
            why=reason.value,
            delay=delay,
        )
        self.reactor.callLater(delay, self._respawn, slot)

    def _respawn(self, slot: int) -> None:
        if self.running and slot not in self.workers:
            self.spawn(slot)

    def sum(self) -> None:
        """The service's counters: the workers' sums, plus those of workers gone."""
        stats, r = self.stats, self.retired
        reports = [p.report for p in self.workers.values()]
        stats.open = sum(x.open for x in reports)
        stats.total = r.total + sum(x.total for x in reports)
        stats.refused = r.refused + sum(x.refused for x in reports)
        stats.errors = r.errors + sum(x.errors for x in reports)
        stats.closed_bytes_in = r.closed_in + sum(x.closed_in for x in reports)
        stats.closed_bytes_out = r.closed_out + sum(x.closed_out for x in reports)
        clients = {}
        for slot, p in self.workers.items():
            for i, c in enumerate(p.report.clients):
                clients[(slot, i)] = ClientInfo(
                    peer=str(c.get("peer", "")),
                    since=float(c.get("since", 0.0)),
                    bytes_in=int(c.get("bytes_in", 0)),
                    bytes_out=int(c.get("bytes_out", 0)),
                )
        stats.clients = clients

    def stopService(self) -> defer.Deferred[Any]:
        Service.stopService(self)
        if self.mirror_loop.running:
            self.mirror_loop.stop()
        waits = []
        for proto in list(self.workers.values()):
            waits.append(proto.ended)
            try:
                proto.transport.signalProcess("TERM")
            except Exception:  # already gone
                continue
            kill = self.reactor.callLater(5.0, self._kill, proto)
            proto.ended.addBoth(_cancel, kill)
        d = defer.DeferredList(waits)

        def done(_: Any) -> None:
            if self.shared is not None:
                self.shared.close()
                self.shared = None

        d.addCallback(done)
        return d

    def _kill(self, proto: _WorkerProtocol) -> None:
        if not proto.ended.called:
            try:
                proto.transport.signalProcess("KILL")
            except Exception:
                pass
