"""Real sockets on OS-chosen ports: the suite as a client sees it."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from portsuite.api import StartupError
from portsuite.testing import suite_running

PLUGINS = str(Path(__file__).parents[2] / "plugins")


def recv_exactly(sock: socket.socket, n: int, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_echo_tcp_and_udp_on_one_port_many_clients() -> None:
    with suite_running({"services": {"echo": {"type": "echo", "port": 0, "udp": True}}}) as s:
        port = s.port("echo")
        assert s.port("echo", "udp") == port  # 1 service = 1 port number
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for i, c in enumerate(clients):
            c.sendall(f"client {i}\n".encode())
        for i, c in enumerate(clients):
            assert recv_exactly(c, len(f"client {i}\n")) == f"client {i}\n".encode()
        info = s.service("echo")
        assert info["connections"]["open"] == 20
        peers = {c["peer"] for c in info["clients"]}
        assert peers == {f"127.0.0.1:{c.getsockname()[1]}" for c in clients}
        for c in clients:
            c.close()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.sendto(b"datagram", ("127.0.0.1", port))
        assert u.recvfrom(100)[0] == b"datagram"
        u.close()
        deadline = time.monotonic() + 5
        while s.service("echo")["connections"]["open"] and time.monotonic() < deadline:
            time.sleep(0.02)
        info = s.service("echo")
        assert info["connections"] == {"open": 0, "total": 20, "refused": 0}
        assert info["datagrams"]["in"] == 1 and info["datagrams"]["out"] == 1


def test_echo_backpressure_bounds_what_the_server_reads() -> None:
    """A client that sends but never reads cannot make the server buffer without bound."""
    with suite_running({"services": {"echo": {"type": "echo", "port": 0}}}) as s:
        c = socket.create_connection(("127.0.0.1", s.port("echo")))
        c.setblocking(False)
        chunk = b"x" * 65536
        sent = 0
        stalled_since = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sent < 512 * 2**20:
            try:
                sent += c.send(chunk)
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
                time.sleep(0.01)
        assert stalled_since is not None, "the server kept reading everything"
        read_then = s.service("echo")["bytes_in"]
        time.sleep(0.5)
        assert s.service("echo")["bytes_in"] == read_then  # it stopped reading
        assert read_then < 64 * 2**20
        # nothing lost: everything sent comes back once the client reads
        c.setblocking(True)
        got = 0
        c.settimeout(10)
        while got < sent:
            got += len(c.recv(1 << 20))
        assert got == sent
        c.close()


def test_limits_apply_to_plugin_types_too() -> None:
    config = {
        "suite": {"plugin_dirs": [PLUGINS]},
        "services": {"shout": {"type": "upper:Upper", "port": 0, "max_connections": 1}},
    }
    with suite_running(config) as s:
        first = socket.create_connection(("127.0.0.1", s.port("shout")))
        first.sendall(b"hi\n")
        assert recv_exactly(first, 3) == b"HI\n"
        second = socket.create_connection(("127.0.0.1", s.port("shout")))
        second.settimeout(5)
        notice = second.recv(200)
        assert b"too many connections" in notice
        assert second.recv(10) == b""  # closed
        first.sendall(b"still\n")
        assert recv_exactly(first, 6) == b"STILL\n"


def test_chat_one_server_many_clients() -> None:
    config = {
        "suite": {"plugin_dirs": [PLUGINS]},
        "services": {"chat": {"type": "chat", "port": 0, "greeting": "Hi class."}},
    }
    with suite_running(config) as s:
        port = s.port("chat")
        a = socket.create_connection(("127.0.0.1", port))
        assert recv_exactly(a, 1).startswith(b"H")
        a.recv(200)
        b = socket.create_connection(("127.0.0.1", port))
        b.settimeout(5)
        assert b"Hi class." in b.recv(200)
        a.settimeout(5)
        assert b"joined" in a.recv(200)
        a.sendall(b"hello b\n")
        name = f"127.0.0.1:{a.getsockname()[1]}"
        assert b.recv(200) == f"<{name}> hello b\n".encode()


def test_exception_in_a_plugin_closes_that_connection_only(tmp_path: Path) -> None:
    (tmp_path / "fragile.py").write_text(
        "from twisted.internet.protocol import Protocol\n"
        "class Fragile(Protocol):\n"
        "    def dataReceived(self, data):\n"
        "        if data.startswith(b'boom'):\n            raise ValueError('client sent boom')\n"
        "        self.transport.write(data)\n"
    )
    config = {
        "suite": {"plugin_dirs": [str(tmp_path)]},
        "services": {"f": {"type": "fragile:Fragile", "port": 0}, "e": {"type": "echo", "port": 0}},
    }
    with suite_running(config) as s:
        bad = socket.create_connection(("127.0.0.1", s.port("f")))
        good = socket.create_connection(("127.0.0.1", s.port("f")))
        bad.sendall(b"boom")
        bad.settimeout(5)
        assert bad.recv(10) == b""
        good.sendall(b"ok")
        assert recv_exactly(good, 2) == b"ok"
        other = socket.create_connection(("127.0.0.1", s.port("e")))
        other.sendall(b"fine")
        assert recv_exactly(other, 4) == b"fine"
        assert s.service("f")["errors"] == 1


def _second_on_a_taken_port(first: dict[str, object]) -> tuple[int, str]:
    """Start services C{first} and an echo C{second} on a port in use: the port, the error."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        config = {"services": {"first": first, "second": {"type": "echo", "port": taken}}}
        with pytest.raises(StartupError) as info:
            with suite_running(config):
                pass
    return taken, str(info.value)


def test_failed_bind_leaves_nothing_half_started() -> None:
    taken, line = _second_on_a_taken_port({"type": "echo", "port": 0})
    assert "\n" not in line
    assert f"cannot start [services.second] on tcp 127.0.0.1:{taken}" in line
    assert "already in use" in line and "choose another port" in line


def test_unix_socket_listen() -> None:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "echo.sock"
    with suite_running({"services": {"e": {"type": "echo", "listen": [f"unix:{path}"]}}}) as s:
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(path))
        c.sendall(b"local")
        assert recv_exactly(c, 5) == b"local"
        listener = s.service("e")["listeners"][0]
        assert listener["transport"] == "unix" and listener["port"] is None


def test_ipv6_host_and_tcp6_listen_description() -> None:
    config = {
        "services": {
            "e": {"type": "echo", "port": 0, "host": "::1"},
            "f": {"type": "echo", "listen": ["tcp6:0:interface=\\:\\:1"]},
        }
    }
    with suite_running(config) as s:
        for name in ("e", "f"):
            c = socket.create_connection(("::1", s.port(name)))
            c.sendall(b"six")
            assert recv_exactly(c, 3) == b"six"
            peer = s.service(name)["clients"][0]["peer"]
            assert peer == f"[::1]:{c.getsockname()[1]}"
            c.close()


def test_half_close_still_gets_the_reply() -> None:
    """printf 'hi\\n' | nc -N 127.0.0.1 7: the client shuts its side after sending."""
    config = {
        "suite": {"plugin_dirs": [PLUGINS]},
        "services": {
            "echo": {"type": "echo", "port": 0},
            "shout": {"type": "upper:Upper", "port": 0},
        },
    }
    with suite_running(config) as s:
        for name, reply in (("echo", b"hi there\n"), ("shout", b"HI THERE\n")):
            c = socket.create_connection(("127.0.0.1", s.port(name)))
            c.sendall(b"hi there\n")
            c.shutdown(socket.SHUT_WR)
            assert recv_exactly(c, 100) == reply  # then end of stream
            c.close()


def test_permission_denied_below_1024_names_the_fix() -> None:
    """What a normal user sees for port 7 (the kernel's EACCES, without needing a non-root run)."""
    import errno

    from twisted.internet.error import CannotListenError
    from twisted.internet.testing import MemoryReactorClock

    from portsuite import loader as config
    from portsuite.suite import Suite

    class NoPrivileges(MemoryReactorClock):
        def listenTCP(self, port, factory, backlog=50, interface=""):  # type: ignore[no-untyped-def]
            if port < 1024:
                raise CannotListenError(interface, port, OSError(errno.EACCES, "Permission denied"))
            return super().listenTCP(port, factory, backlog, interface)

    reactor = NoPrivileges()
    cfg = config.from_dict(
        {"services": {"alt": {"type": "echo", "port": 7007}, "echo": {"type": "echo", "port": 7}}}
    )
    suite = Suite(cfg, reactor=reactor)
    with pytest.raises(StartupError) as info:
        suite.listen()
    assert str(info.value) == (
        "cannot start [services.echo] on tcp 127.0.0.1:7: permission denied: port 7 is well-known "
        "(0-1023) and needs root or CAP_NET_BIND_SERVICE; run as root with twistd --uid/--gid, "
        "or use a port >= 1024"
    )
    assert not suite.listening and suite.stats["alt"].listeners == []


def test_udp_listen_entry_binds_without_udp_true() -> None:
    """listen = ["udp:…"] is bound as written, as check lists it (no udp = true needed)."""
    config = {"services": {"e": {"type": "echo", "listen": ["tcp:0", "udp:0"]}}}
    with suite_running(config) as s:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        u.sendto(b"by udp", ("127.0.0.1", s.port("e", "udp")))
        assert u.recvfrom(100)[0] == b"by udp"
        u.close()
        c = socket.create_connection(("127.0.0.1", s.port("e")))
        c.sendall(b"by tcp")
        assert recv_exactly(c, 6) == b"by tcp"
        c.close()


def test_each_service_is_a_named_child_with_its_listeners() -> None:
    config = {
        "services": {
            "echo": {"type": "echo", "port": 0, "udp": True},
            "day": {"type": "daytime", "port": 0},
        }
    }
    with suite_running(config) as s:
        echo = s.suite.getServiceNamed("echo")
        assert echo.running and [type(c).__name__ for c in echo] == [
            "StreamListener",
            "DatagramListener",
        ]
        assert s.suite.getServiceNamed("day").running
        assert [svc.name for svc in s.suite] == ["echo", "day"]


def test_a_failed_bind_closes_the_earlier_services_ports_again() -> None:
    """Rollback: the first service's TCP and UDP port is free again once the second fails."""
    from portsuite.testing import free_port

    first = free_port()
    taken, line = _second_on_a_taken_port({"type": "echo", "port": first, "udp": True})
    assert f"[services.second] on tcp 127.0.0.1:{taken}" in line
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        # the reactor closes a port on its next turn: allow it that, generously
        deadline = time.monotonic() + 30
        while True:
            with socket.socket(socket.AF_INET, kind) as again:
                try:
                    again.bind(("127.0.0.1", first))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise  # EADDRINUSE: the suite kept the port of a failed startup
            time.sleep(0.05)


def test_a_type_that_fails_to_build_stops_startup_with_one_line(tmp_path: Path) -> None:
    """A bug in a type's factory: one line naming the service, the rest closed again."""
    from portsuite.api import StartupError
    from portsuite.loader import from_dict
    from portsuite.suite import Suite

    (tmp_path / "broken.py").write_text(
        "from portsuite.api import ServiceType\n"
        "def build(ctx):\n"
        "    return 1 / 0\n"
        "BROKEN = ServiceType(name='broken', description='fails', default_port=None,\n"
        "                     tcp_factory=build)\n"
    )
    cfg = from_dict(
        {
            "suite": {"plugin_dirs": [str(tmp_path)]},
            "services": {
                "echo": {"type": "echo", "port": 0},
                "oops": {"type": "broken", "port": 0},
            },
        },
        base_dir=tmp_path,
    )
    suite = Suite(cfg)
    with pytest.raises(StartupError) as e:
        suite.listen()
    assert str(e.value).startswith("cannot start [services.oops]: type 'broken' failed to build")
    assert "ZeroDivisionError" in str(e.value)
    assert suite.ports("echo") == []  # what was bound before is closed again
