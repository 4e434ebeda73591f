"""
Hostile kv clients against a real twistd: one that pipelines but never reads, and
declared counts meant to make the server allocate. The server's memory stays
bounded and the other services of the suite keep answering.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portsuite.testing import suite_running

MIB = 1024 * 1024


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(4 * MIB, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _echo_rtt(port: int) -> float:
    """One echo round trip (seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t = time.monotonic()
        s.sendall(b"ping\n")
        assert _recv_exactly(s, 5) == b"ping\n"
        return time.monotonic() - t


def _kv_call(port: int, payload: bytes, expect: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        assert _recv_exactly(s, len(expect)) == expect


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    config = {
        "services": {
            "kv": {"type": "kv", "port": 0},
            "echo": {"type": "echo", "port": 0},
        }
    }
    base = tmp_path_factory.mktemp("hostile")
    with suite_running(config, subprocess=True, base_dir=base, timeout=60) as s:
        kv = s.port("kv")
        _kv_call(kv, _cmd(b"SET", b"big", b"x" * MIB), b"+OK\r\n")
        yield s


def test_pipelining_without_reading_keeps_memory_bounded(suite: object) -> None:
    kv, echo, pid = suite.port("kv"), suite.port("echo"), suite.pid  # type: ignore[attr-defined]
    before = _rss(pid)
    hog = socket.socket()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    hog.connect(("127.0.0.1", kv))
    try:
        # 2,000 x 1 MiB of replies asked for in 66 KB, nothing ever read
        hog.sendall(_cmd(b"GET", b"big") * 2000)
        peak = before
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peak = max(peak, _rss(pid))
            assert _echo_rtt(echo) < 5  # the suite's other services answer meanwhile
            _kv_call(kv, _cmd(b"STRLEN", b"big"), b":1048576\r\n")
            time.sleep(0.1)
        peak = max(peak, _rss(pid))
        # a few replies in flight (socket buffers, one reply being written), not 2 GiB
        assert peak - before < 64 * MIB, f"RSS grew by {(peak - before) // MIB} MiB"
    finally:
        hog.close()


def test_a_slow_reader_gets_every_reply_in_order(suite: object) -> None:
    kv = suite.port("kv")  # type: ignore[attr-defined]
    with socket.create_connection(("127.0.0.1", kv), timeout=30) as s:
        s.sendall((_cmd(b"GET", b"big") + _cmd(b"INCR", b"n")) * 40)
        time.sleep(0.5)  # the server stops running them while nothing is read
        one = b"$1048576\r\n" + b"x" * MIB + b"\r\n"
        counts = []
        for _ in range(40):
            assert _recv_exactly(s, len(one)) == one
            reply = b""
            while not reply.endswith(b"\r\n"):
                reply += s.recv(1)
            counts.append(int(reply[1:-2]))
        assert counts == list(range(counts[0], counts[0] + 40))


@pytest.mark.parametrize(
    "payload",
    [
        b"*4294967295\r\n",
        b"*400000000\r\n",
        b"*2147483647\r\n$3\r\nGET\r\n",
        b"*3\r\n$400000000\r\n",
    ],
)
def test_declared_counts_allocate_nothing_and_stall_nobody(suite: object, payload: bytes) -> None:
    kv, echo, pid = suite.port("kv"), suite.port("echo"), suite.pid  # type: ignore[attr-defined]
    before = _rss(pid)
    worst = 0.0
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", kv), timeout=10) as s:
            s.sendall(payload)
            worst = max(worst, _echo_rtt(echo))
        worst = max(worst, _echo_rtt(echo))  # after the close too: nothing to free
    assert _rss(pid) - before < 32 * MIB
    # generous: 2 busy CPUs; the bench reports the real figure (a few ms)
    assert worst < 1.0, f"echo took {worst * 1000:.0f} ms"
    _kv_call(kv, _cmd(b"STRLEN", b"big"), b":1048576\r\n")


def test_count_over_redis_limit_is_refused_as_redis_does(suite: object) -> None:
    kv = suite.port("kv")  # type: ignore[attr-defined]
    for payload in (b"*4294967295\r\n", b"*2147483648\r\n", b"*1\r\n*4294967295\r\n"):
        with socket.create_connection(("127.0.0.1", kv), timeout=10) as s:
            s.sendall(payload)
            got = b""
            while chunk := s.recv(4096):
                got += chunk
        if payload.startswith(b"*1\r\n"):
            assert got == b"-ERR Protocol error: expected '$', got '*'\r\n"
        else:
            assert got == b"-ERR Protocol error: invalid multibulk length\r\n"


def test_a_long_pipeline_lets_others_in(suite: object) -> None:
    # 1,000 set unions of 2 x 5,000 members sent at once: about a second of work that
    # fits one read. Another client is answered while the pipeline still runs (its
    # last command has not run yet), and the pipeline's replies are all there, in order.
    kv = suite.port("kv")  # type: ignore[attr-defined]
    members = [b"m%d" % i for i in range(5000)]
    _kv_call(kv, _cmd(b"SADD", b"u1", *members[:2500], *members[:100]), b":2500\r\n")
    _kv_call(kv, _cmd(b"SADD", b"u2", *members[2500:]), b":2500\r\n")
    _kv_call(kv, _cmd(b"DEL", b"u-done"), b":0\r\n")
    pipeline = _cmd(b"SUNIONSTORE", b"u3", b"u1", b"u2") * 1000 + _cmd(b"SET", b"u-done", b"1")
    with (
        socket.create_connection(("127.0.0.1", kv), timeout=30) as hog,
        socket.create_connection(("127.0.0.1", kv), timeout=30) as other,
    ):
        hog.sendall(pipeline)
        time.sleep(0.02)  # the pipeline has started
        other.sendall(_cmd(b"PING") + _cmd(b"GET", b"u-done"))
        assert _recv_exactly(other, 12) == b"+PONG\r\n$-1\r\n"
        expect = b":5000\r\n" * 1000 + b"+OK\r\n"
        assert _recv_exactly(hog, len(expect)) == expect
    _kv_call(kv, _cmd(b"GET", b"u-done"), b"$1\r\n1\r\n")
