"""The five classic services over real TCP and UDP sockets, as nc/telnet/rdate see them."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portsuite.testing import suite_running
from portsuite_services import classic

TYPES = ("discard", "chargen", "qotd", "daytime", "time")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("classic")
    (folder / "quotes.txt").write_text("Hello, class.\n%\nSecond quote.\n")
    services: dict[str, Any] = {t: {"type": t, "port": 0, "udp": True} for t in TYPES}
    services["qotd"]["quotes"] = "quotes.txt"
    with suite_running({"services": services}, base_dir=folder) as s:
        yield s


def read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return out
        out += chunk


def ask_udp(port: int, data: bytes = b"\n") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(data, ("127.0.0.1", port))
        return u.recvfrom(65535)[0]


def test_every_service_has_one_port_number_for_tcp_and_udp(suite: Any) -> None:
    for t in TYPES:
        assert suite.port(t, "udp") == suite.port(t)


def test_time_tcp_and_udp_match_the_clock(suite: Any) -> None:
    with socket.create_connection(("127.0.0.1", suite.port("time"))) as c:
        data = read_all(c)  # 4 bytes, then the server closes
    assert len(data) == 4
    assert abs(classic.rfc868_to_unix(data) - time.time()) <= 2
    udp = ask_udp(suite.port("time", "udp"), b"")
    assert len(udp) == 4 and abs(struct.unpack("!I", udp)[0] - struct.unpack("!I", data)[0]) <= 2


def test_daytime_tcp_and_udp_one_line(suite: Any) -> None:
    with socket.create_connection(("127.0.0.1", suite.port("daytime"))) as c:
        line = read_all(c)
    assert line.endswith(b"-UTC\r\n") and line.count(b"\r\n") == 1
    assert time.strftime("%Y", time.gmtime()).encode() in line
    assert ask_udp(suite.port("daytime", "udp")).endswith(b"-UTC\r\n")


def test_qotd_from_the_configured_file(suite: Any) -> None:
    got = set()
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", suite.port("qotd"))) as c:
            got.add(read_all(c))
    assert got == {b"Hello, class.\r\n", b"Second quote.\r\n"}
    assert ask_udp(suite.port("qotd", "udp")) in got


def test_discard_swallows_and_stays_open(suite: Any) -> None:
    with socket.create_connection(("127.0.0.1", suite.port("discard"))) as c:
        c.sendall(b"x" * 100_000)
        c.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.recv(1)  # nothing comes back, and the connection is still open
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.3)
        u.sendto(b"x", ("127.0.0.1", suite.port("discard", "udp")))
        with pytest.raises(socket.timeout):
            u.recvfrom(10)
    deadline = time.monotonic() + 5
    while suite.service("discard")["bytes_in"] < 100_001 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert suite.service("discard")["bytes_in"] == 100_001


def test_chargen_tcp_pattern_and_udp_size(suite: Any) -> None:
    with socket.create_connection(("127.0.0.1", suite.port("chargen"))) as c:
        c.settimeout(5)
        data = b""
        while len(data) < 3 * len(classic.CYCLE):
            data += c.recv(65536)
    assert data.startswith(classic.CYCLE * 3)
    reply = ask_udp(suite.port("chargen", "udp"), b"")
    assert 0 < len(reply) <= 512
    assert all(len(line) == 72 for line in reply.split(b"\r\n")[:-1])


def test_chargen_tcp_backpressure_bounds_the_server(suite: Any) -> None:
    """A client that never reads: the server stops producing once the buffers are full."""
    c = socket.create_connection(("127.0.0.1", suite.port("chargen")))
    try:
        # writes stop once the kernel's socket buffers and one Twisted buffer are full
        second = suite.service("chargen")["bytes_out"]
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.3)
            first, second = second, suite.service("chargen")["bytes_out"]
            if (second and second == first) or time.monotonic() > deadline:
                break
        assert second == first  # paused: nothing more is produced
        assert second < 16_000_000  # a few buffers, not a flood
        # and production resumes as soon as the client reads
        c.settimeout(5)
        got = 0
        deadline = time.monotonic() + 10
        while got < second + 1_000_000 and time.monotonic() < deadline:
            got += len(c.recv(1 << 20))
        assert got >= second + 1_000_000
        assert suite.service("chargen")["bytes_out"] > second
    finally:
        c.close()


def test_many_clients_at_once_on_chargen(suite: Any) -> None:
    clients = [socket.create_connection(("127.0.0.1", suite.port("chargen"))) for _ in range(10)]
    try:
        for c in clients:
            c.settimeout(5)
            data = b""
            while len(data) < 74:
                data += c.recv(74 - len(data))
            assert data == classic.chargen_line(0)
    finally:
        for c in clients:
            c.close()


def test_udp_guard_stops_a_well_known_source_port(suite: Any) -> None:
    """As root, send to chargen from port 19 of loopback: the loop attempt gets no answer."""
    import os

    if os.geteuid() != 0:
        pytest.skip("binding a source port below 1024 needs root")
    before = suite.service("chargen")["datagrams"]["dropped"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            u.bind(("127.0.0.2", 19))  # an address nothing else uses
        except OSError as e:
            pytest.skip(f"cannot bind 127.0.0.2:19 ({e})")
        u.settimeout(0.5)
        u.sendto(b"x", ("127.0.0.1", suite.port("chargen", "udp")))
        with pytest.raises(socket.timeout):
            u.recvfrom(1000)
    assert suite.service("chargen")["datagrams"]["dropped"] == before + 1


def test_ipv6_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    config = {"services": {"time": {"type": "time", "port": 0, "udp": True, "host": "::1"}}}
    with suite_running(config, base_dir=tmp_path) as s:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"", ("::1", s.port("time", "udp")))
            assert len(u.recvfrom(10)[0]) == 4
