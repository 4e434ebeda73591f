"""
Real portsuite servers for tests: started from a config dict or file, torn down cleanly.

In-process (fast; the reactor runs in a background thread)::

    from portsuite.testing import suite_running

    with suite_running({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        r = redis.Redis(port=s.port("kv"))

As a real C{twistd -n portsuite} subprocess (end to end)::

    with suite_running("config/config.toml", subprocess=True) as s:
        ...  # s.port("echo"), s.log(), s.stop()

With pytest, the C{portsuite} fixture (registered by the C{portsuite.pytest_plugin}
entry point) does the same and stops every suite at teardown::

    def test_echo(portsuite):
        s = portsuite({"services": {"echo": {"type": "echo", "port": 0}}})

Use C{port = 0} in configs: the OS picks free ports, and C{s.port(name)} tells which.

A peer the test starts itself (redis-server, nginx): L{wait_listening} waits until it
accepts connections (and answers as it should), failing at once if it exits::

    proc = subprocess.Popen([need("redis-server"), "--port", str(port)])

    def pong(sock: socket.socket) -> bool:
        sock.sendall(b"PING\r\n")
        return sock.recv(7) == b"+PONG\r\n"

    wait_listening(port, proc, probe=pong)

In memory, with no socket at all (unit tests of wrappers, TLS, kv…): the same
L{Suite} on a L{MemoryReactorClock}, whose clock the test moves, and clients joined to
a service by name through C{twisted.test.iosim}'s L{FakeTransport} and L{IOPump}::

    from portsuite.testing import memory_suite

    with memory_suite({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        c = s.connect("kv")               # a client that keeps what it receives
        c.send(b"PING\r\n")              # written, then pumped both ways
        assert c.received() == b"+PONG\r\n"
        s.advance(60)                     # timers: idle_timeout, kv's expiry …
        c.close()
        s.service("kv")["connections"]    # the dashboard's counters

C{s.connect(name, client, peer=("10.0.0.1", 1234), tls=creator)} takes any client
C{Protocol} (L{Recorder} by default), the client's address (C{max_per_host}, kv's
protected mode) and, for a TLS service, a client connection creator such as
C{twisted.internet.ssl.optionsForClientTLS(...)}; C{s.datagram(name, data)} sends one
datagram to a UDP service and returns the replies; C{s.advance(seconds, step=0.1)}
moves the clock in steps, so periodic tasks (kv's 100 ms cron) run as often as they
would. Listeners are numbered from 20000 (C{port = 0} gets the next one; clients come
from 50000 up): nothing is bound.

In a real browser: headless Chromium on a page, as a person would see it (the DOM its
scripts left, a screenshot); skipped when Chromium is missing, failed under
C{PORTSUITE_REQUIRE_TOOLS=1}, like any L{need}ed tool::

    from portsuite.testing import chromium

    dom = chromium(f"http://127.0.0.1:{s.port('web')}/", tmp_path / "profile", "--dump-dom")

C{chromium_command(profile, *args)} is the command line alone (L{CHROMIUM_FLAGS}, a
profile folder of the test's own), for a Chromium the test drives itself (C{Popen},
C{--remote-debugging-pipe}).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess as sp
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.test import iosim

__all__ = [
    "CHROMIUM_FLAGS",
    "InProcessSuite",
    "MemoryConnection",
    "MemoryReactor",
    "MemorySuite",
    "Recorder",
    "SubprocessSuite",
    "DatagramRecorder",
    "call_in_reactor",
    "chromium",
    "chromium_command",
    "free_port",
    "memory_suite",
    "need",
    "run_twistd",
    "start_suite",
    "suite_running",
    "wait_for",
    "wait_listening",
]

Config = Mapping[str, Any] | str | Path
T = TypeVar("T")


def free_port(kind: str = "tcp", host: str = "127.0.0.1") -> int:
    """A port that is free right now (prefer C{port = 0} where you can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(family, stype) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def need(tool: str) -> str:
    """
    The path of an external tool (redis-server, chromium, openssl…). Skips the test
    when it is missing, unless C{PORTSUITE_REQUIRE_TOOLS=1} (CI), where it fails.
    """
    path = shutil.which(tool)
    if path:
        return path
    import pytest

    message = f"{tool} is not installed (apt-get install it, or run .ci/run)"
    if os.environ.get("PORTSUITE_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def wait_for(what: Callable[[], T], timeout: float = 30.0) -> T:
    """
    Ask C{what()} every 0.05 s until it is true: its first true value, or after
    C{timeout} seconds its last, false one. Assert on it, with what explains a
    failure: C{assert wait_for(lambda: "done" in s.log()), s.log()}. The bound is
    generous on purpose (a busy machine is slow): it is no measure of time.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def wait_listening(
    port: int,
    proc: sp.Popen[Any] | None = None,
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    probe: Callable[[socket.socket], bool] | None = None,
) -> None:
    """
    Wait until a server started outside the suite (redis-server, nginx, a twistd of
    its own) accepts connections on C{host}:C{port}, trying every 0.1 s.

    C{proc}: the server's process; its exit ends the wait at once (L{RuntimeError}).
    C{probe(sock)}: called on each connection made (5 s to read), true once the server
    answers as it should (C{PING} then C{+PONG}); a false or an L{OSError} tries again,
    anything else it raises ends the wait. L{TimeoutError} after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            name = proc.args[0] if isinstance(proc.args, (list, tuple)) else proc.args
            raise RuntimeError(f"{name!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                sock.settimeout(5)
                if probe is None or probe(sock):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on {host}:{port} within {timeout}s")


# -- a real browser: headless Chromium -----------------------------------------------

#: Headless, no sandbox (root in CI), and nothing that reaches past this machine or waits
#: on it (QUIC, updates, sync, background fetches); /tmp instead of a small /dev/shm.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_command(profile: Path, *args: str) -> list[str]:
    """
    Headless Chromium's command line with its own C{profile} folder, then C{args}.
    Skips the test when Chromium is missing (fails it in CI): see L{need}.
    """
    return [need("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]


def chromium(
    url: str,
    profile: Path,
    *args: str,
    budget: int = 3000,
    timeout: float = 120,
) -> str:
    """
    Run headless Chromium on C{url} until its page has had C{budget} ms of virtual
    time; its stdout. C{args} say what to keep (C{--dump-dom}: the DOM on stdout;
    C{--screenshot=PNG}). A Chromium that exits non-zero fails the test with the end
    of its stderr.
    """
    proc = sp.run(
        chromium_command(profile, f"--virtual-time-budget={budget}", *args, url),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


# -- in-process: the global reactor in a background thread -------------------------

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _reactor() -> Any:
    global _reactor_thread
    from twisted.internet import reactor

    with _reactor_lock:
        if _reactor_thread is None:
            _reactor_thread = threading.Thread(
                target=reactor.run,  # type: ignore[misc]
                kwargs={"installSignalHandlers": False},
                name="portsuite-reactor",
                daemon=True,
            )
            _reactor_thread.start()
            deadline = time.monotonic() + 10
            while not reactor.running and time.monotonic() < deadline:
                time.sleep(0.01)
    return reactor


def call_in_reactor(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run C{f} in the reactor thread; wait for its result (Deferreds included)."""
    from twisted.internet.threads import blockingCallFromThread

    return blockingCallFromThread(_reactor(), f, *args, **kwargs)


class InProcessSuite:
    """A L{portsuite.suite.Suite} running in this process's reactor thread."""

    def __init__(self, suite: Any):
        self.suite = suite

    def port(self, name: str, transport: str = "tcp") -> int:
        return int(self.suite.port(name, transport))

    def snapshot(self) -> dict[str, Any]:
        return call_in_reactor(self.suite.snapshot)  # type: ignore[no-any-return]

    def service(self, name: str) -> dict[str, Any]:
        """The snapshot entry of one service (counters, clients, listeners)."""
        for svc in self.snapshot()["services"]:
            if svc["name"] == name:
                return svc  # type: ignore[no-any-return]
        raise KeyError(name)

    def stop(self) -> None:
        if self.suite.running:
            call_in_reactor(self.suite.stopService)


def _load(config: Config, base_dir: str | Path | None) -> Any:
    from portsuite import loader

    if isinstance(config, (str, Path)):
        return loader.load(config)
    return loader.from_dict(config, base_dir=base_dir or os.getcwd())


def _start_in_process(config: Config, base_dir: str | Path | None) -> InProcessSuite:
    from portsuite.suite import Suite

    reactor = _reactor()
    suite_config = _load(config, base_dir)

    def start() -> Any:
        suite = Suite(suite_config, reactor=reactor)
        suite.listen()  # raises StartupError with the one-line reason
        suite.startService()
        return suite

    return InProcessSuite(call_in_reactor(start))


# -- subprocess: real twistd ---------------------------------------------------------


def twistd_command() -> list[str]:
    """C{twistd} of this Python environment."""
    here = Path(sys.executable).parent / "twistd"
    if here.exists():
        return [str(here)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def run_twistd(
    config: str | Path, *args: str, cwd: str | Path | None = None, timeout: float = 60
) -> sp.CompletedProcess[str]:
    """
    C{twistd -n --pidfile= ARGS portsuite -c CONFIG} in the foreground until it exits
    (C{cwd}: the config's folder by default), its output as text: for a config the
    suite must refuse (its exit status, the one line it says on stderr).
    """
    return sp.run(
        [*twistd_command(), "-n", "--pidfile=", *args, "portsuite", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd if cwd is not None else Path(config).parent,
        check=False,
    )


class SubprocessSuite:
    """C{twistd -n portsuite -c CONFIG} in a child process."""

    def __init__(
        self,
        config_path: Path,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.config_path = config_path
        self.workdir = workdir
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "twistd.log"
        self.ready_file.unlink(missing_ok=True)
        cmd = [
            *twistd_command(),
            "-n",
            "--pidfile=",
            f"--logfile={self.log_file}",
            *args,
            "portsuite",
            "-c",
            str(config_path),
            "--ready-file",
            str(self.ready_file),
        ]
        self.proc = sp.Popen(
            cmd,
            cwd=workdir,
            stdout=sp.PIPE,
            stderr=sp.PIPE,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                self.ready = json.loads(self.ready_file.read_text())
                return
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(
                    f"twistd exited with {self.proc.returncode} before listening:\n"
                    f"{err.decode(errors='replace')}{out.decode(errors='replace')}\n{self.log()}"
                )
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"twistd did not listen within {timeout}s:\n{self.log()}")

    def port(self, name: str, transport: str = "tcp") -> int:
        for svc in self.ready.get("services", []):
            if svc["name"] == name:
                for li in svc["listeners"]:
                    if li["transport"] == transport and li["port"] is not None:
                        return int(li["port"])
        raise KeyError(f"{name} has no {transport} listener")

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except sp.TimeoutExpired:
                self.kill()
        self.proc.communicate()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, nothing flushed."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def write_config(config: Mapping[str, Any], folder: Path) -> Path:
    """Write a config dict as TOML (relative paths then resolve against C{folder})."""
    import tomli_w

    fd, name = tempfile.mkstemp(prefix="portsuite-", suffix=".toml", dir=folder)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(dict(config), f)
    return Path(name)


def _start_subprocess(
    config: Config,
    base_dir: str | Path | None,
    timeout: float,
    env: Mapping[str, str] | None,
    args: tuple[str, ...],
) -> SubprocessSuite:
    workdir = Path(tempfile.mkdtemp(prefix="portsuite-run-"))
    if isinstance(config, (str, Path)):
        path = Path(config).resolve()
    else:
        path = write_config(config, Path(base_dir) if base_dir else workdir)
    s = SubprocessSuite(path, workdir, env=env, args=args)
    s.wait_ready(timeout)
    return s


def start_suite(
    config: Config,
    *,
    base_dir: str | Path | None = None,
    subprocess: bool = False,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> InProcessSuite | SubprocessSuite:
    """Start a suite and wait until every listener is bound; the caller stops it."""
    if subprocess:
        return _start_subprocess(config, base_dir, timeout, env, args)
    return _start_in_process(config, base_dir)


@contextmanager
def suite_running(config: Config, **kwargs: Any) -> Iterator[Any]:
    """L{start_suite} as a context manager: stopped (SIGTERM for a subprocess) on exit."""
    s = start_suite(config, **kwargs)
    try:
        yield s
    finally:
        s.stop()


# -- in memory: a MemoryReactorClock and iosim, no sockets ---------------------------


def _address(kind: str, host: str, port: int) -> Any:
    kind_: Any = kind  # "TCP" or "UDP"
    return IPv6Address(kind_, host, port) if ":" in host else IPv4Address(kind_, host, port)


class DatagramRecorder:
    """A datagram transport that keeps what is written: C{sent}, a list of (data, addr)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any = None) -> None:
        self.sent.append((data, addr))


class MemoryPort(DatagramRecorder):
    """
    A listener of L{MemoryReactor}: starts and stops its factory (or datagram
    protocol) like a real port, and is the transport of a datagram protocol.
    """

    def __init__(self, reactor: MemoryReactor, kind: str, port: int, factory: Any, host: str):
        DatagramRecorder.__init__(self)
        self.reactor = reactor
        self.kind = kind  # "TCP" or "UDP"
        self.port = port
        self.factory = factory
        self.host = host or "0.0.0.0"
        self.listening = True

    def getHost(self) -> Any:
        return _address(self.kind, self.host, self.port)

    def stopListening(self) -> None:
        if self.listening:
            self.listening = False
            self.reactor.ports.pop((self.kind, self.port), None)
            self.factory.doStop()


class MemoryReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} whose C{listenTCP}/C{listenUDP} give each listener a port
    number (C{0}: the next free one), start its factory or datagram protocol as a
    real reactor does, and keep it in L{ports} for clients to reach.
    """

    def __init__(self) -> None:
        MemoryReactorClock.__init__(self)
        self.ports: dict[tuple[str, int], MemoryPort] = {}
        self._next_port = 20000  # a registered port, apart from the clients' 50000 and up

    def _port(self, kind: str, port: int, factory: Any, host: str) -> MemoryPort:
        if port == 0:
            while (kind, self._next_port) in self.ports:
                self._next_port += 1
            port = self._next_port
        if (kind, port) in self.ports:
            raise CannotListenError(host, port, OSError(errno.EADDRINUSE, "Address in use"))
        p = self.ports[kind, port] = MemoryPort(self, kind, port, factory, host)
        return p

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        MemoryReactorClock.listenTCP(self, port, factory, backlog, interface)  # recorded too
        p = self._port("TCP", port, factory, interface)
        factory.doStart()
        return p

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> Any:
        p = self._port("UDP", port, protocol, interface)
        protocol.makeConnection(p)
        return p


class Recorder(Protocol):
    """The default in-memory client: keeps what it receives and whether it was closed."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.closed = False
        self.reason: Any = None

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.reason = reason


class _Refused(Protocol):
    """Stands for the connection of a factory that built no protocol: closed at once."""

    transport: Any

    def connectionMade(self) -> None:
        self.transport.loseConnection()


class MemoryConnection:
    """
    One client joined in memory to a service: C{client} and C{server} are the two
    protocols (the server's is the suite's wrapper, TLS outside it where configured),
    C{pump} the L{iosim.IOPump} between them. Sending, reading and closing pump every
    connection of the suite (what one client does may be for another: pub/sub, chat).
    """

    def __init__(self, suite: MemorySuite, client: Any, server: Any, pump: Any):
        self.suite = suite
        self.client = client  # what the test passed (inside TLS, if any)
        self.server = server
        self.pump = pump
        self.client_transport = pump.clientIO
        self.server_transport = pump.serverIO

    def flush(self) -> None:
        """Move bytes both ways on every connection until nothing moves."""
        self.suite.flush()

    def send(self, data: bytes) -> MemoryConnection:
        """Write C{data} as the client, then pump."""
        self.client.transport.write(data)
        self.flush()
        return self

    def received(self, clear: bool = True) -> bytes:
        """What the default L{Recorder} client has received so far (and forget it)."""
        self.flush()
        got = b"".join(self.client.data)
        if clear:
            self.client.data.clear()
        return got

    @property
    def closed(self) -> bool:
        """Whether the connection is closed (by either side), once pumped."""
        self.flush()
        return bool(self.server_transport.disconnected or self.client_transport.disconnected)

    def close(self) -> None:
        """The client closes; both sides see it."""
        self.client.transport.loseConnection()
        self.flush()


class MemorySuite:
    """A L{portsuite.suite.Suite} on a L{MemoryReactor}: see this module's docstring."""

    def __init__(self, suite: Any, reactor: MemoryReactor):
        self.suite = suite
        self.reactor = reactor
        self.connections: list[MemoryConnection] = []
        self._peer_ports = iter(range(50000, 65536))

    def __enter__(self) -> MemorySuite:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def port(self, name: str, transport: str = "tcp") -> int:
        return int(self.suite.port(name, transport))

    def stats(self, name: str) -> Any:
        """The L{portsuite.api.ServiceStats} of a service (live)."""
        return self.suite.stats[name]

    def service(self, name: str) -> dict[str, Any]:
        """The dashboard's entry of one service (counters, clients, listeners, transcripts)."""
        for svc in self.suite.snapshot()["services"]:
            if svc["name"] == name:
                return svc  # type: ignore[no-any-return]
        raise KeyError(name)

    def advance(self, seconds: float, step: float | None = None) -> None:
        """
        Move the clock (timers fire), then pump every connection. C{step}: move in
        steps of that many seconds, so a periodic task runs as often as it would
        (kv's 100 ms cron, a LoopingCall) instead of once for the whole jump.
        """
        if step is None or step >= seconds:
            self.reactor.advance(seconds)
        else:
            ticks = int(round(seconds / step))
            for _ in range(ticks):
                self.reactor.advance(step)
                self.flush()
            self.reactor.advance(max(0.0, seconds - ticks * step))
        self.flush()

    def flush(self) -> None:
        """Pump every connection until none moves a byte (and run the calls due now)."""
        for _ in range(1000):
            if not any([c.pump.flush() for c in self.connections]):
                return
        raise AssertionError("the connections never went quiet (a producer without end?)")

    def _peer(self, peer: tuple[str, int] | None) -> tuple[str, int]:
        if peer is None:
            return ("127.0.0.1", next(self._peer_ports))
        return peer

    def connect(
        self,
        name: str,
        client: Any = None,
        *,
        peer: tuple[str, int] | None = None,
        tls: Any = None,
        greet: bool = True,
    ) -> MemoryConnection:
        """
        Join a client protocol to the TCP service C{name}, as if it connected from
        C{peer} (127.0.0.1 and the next ephemeral port by default). C{tls}: a client
        connection creator, to speak TLS to a TLS service. A connection the service
        refuses (its factory builds no protocol) comes back already closed.
        """
        port = self.port(name)
        listening = self.reactor.ports["TCP", port]
        host, peer_port = self._peer(peer)
        peer_addr = _address("TCP", host, peer_port)
        server_addr = _address("TCP", listening.host, port)
        client_protocol = client if client is not None else Recorder()
        wire_client = client_protocol
        if tls is not None:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            inner: Any = ClientFactory.forProtocol(lambda: client_protocol)
            clock: Any = self.reactor
            tls_factory = TLSMemoryBIOFactory(
                tls,
                True,
                inner,
                clock=clock,  # its small writes are flushed on this clock
            )
            wire_client = tls_factory.buildProtocol(server_addr)
        server = listening.factory.buildProtocol(peer_addr)
        if server is None:
            server = _Refused()  # what a real port does: close at once
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, True, hostAddress=server_addr, peerAddress=peer_addr),
            wire_client,
            iosim.FakeTransport(wire_client, False, hostAddress=peer_addr, peerAddress=server_addr),
            greet=greet,
            clock=self.reactor,
        )
        conn = MemoryConnection(self, client_protocol, server, pump)
        self.connections.append(conn)
        return conn

    def datagram(
        self, name: str, data: bytes, source: tuple[str, int] = ("127.0.0.1", 40000)
    ) -> list[bytes]:
        """Send one datagram to the UDP service C{name}; the replies sent back to C{source}."""
        port = self.reactor.ports["UDP", self.port(name, "udp")]
        before = len(port.sent)
        port.factory.datagramReceived(data, source)
        self.reactor.advance(0)
        return [d for d, addr in port.sent[before:] if addr == source]

    def stop(self) -> None:
        """Stop the suite as twistd would (every client told), and pump the goodbyes."""
        if self.suite.running:
            self.suite.stopService()
        self.flush()


def memory_suite(
    config: Config, *, base_dir: str | Path | None = None, start_time: float = 0.0
) -> MemorySuite:
    """
    The suite of C{config} (a dict or a file) started on a fresh L{MemoryReactor}
    whose clock reads C{start_time}: see this module's docstring.
    """
    from portsuite.suite import Suite

    reactor = MemoryReactor()
    if start_time:
        reactor.advance(start_time)
    suite = Suite(_load(config, base_dir), reactor=reactor)
    suite.listen()
    suite.startService()
    return MemorySuite(suite, reactor)
