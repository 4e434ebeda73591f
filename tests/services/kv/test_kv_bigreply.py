"""
Whole-collection replies go out in slices (bigreply.py): one slice per turn of the
reactor, only while the client reads, each a snapshot of the collection at the time
of the command, and the client's next command runs only after it. On a Clock and
StringTransport first, then side by side with redis-server on real sockets.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import hiredis
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigreply import BIG, SLICE_BYTES, SLICE_ITEMS

N = BIG + 3 * SLICE_ITEMS + 17  # a few slices, the last one short


def _cmd(*args: str | bytes) -> bytes:
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _client(server: KVServer) -> tuple[Any, StringTransport]:
    proto = server.buildProtocol(None)
    t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555))
    proto.makeConnection(t)
    return proto, t


def _replies(data: bytes) -> list[Any]:
    r = hiredis.Reader()
    r.feed(data)
    out = []
    while (x := r.gets()) is not False:
        out.append(x)
    return out


def _fill(server: KVServer) -> None:
    admin, _ = _client(server)
    members = [b"m%d" % i for i in range(N)]
    admin.dataReceived(_cmd("SADD", "s", *members))
    admin.dataReceived(_cmd("RPUSH", "l", *members))
    admin.dataReceived(_cmd("HSET", "h", *[x for m in members for x in (m, m + b"v")]))
    admin.dataReceived(
        _cmd("ZADD", "z", *[x for i, m in enumerate(members) for x in (b"%d" % i, m)])
    )
    admin.dataReceived(
        b"".join(_cmd("XADD", "x", f"{i + 1}-{i % 3}", "f", m) for i, m in enumerate(members))
    )
    _settle(server)


def _settle(server: KVServer) -> None:
    """Until the commands computed in slices (a big ZADD: bigwork.py) are done."""
    while server.busy is not None:
        server.reactor.advance(0)


def _drive(clock: Clock, done: Callable[[], bool], turns: int = 1000) -> None:
    """Advance the reactor until C{done()}."""
    for _ in range(turns):
        if done():
            return
        clock.advance(0)
    raise AssertionError("never done")


def test_a_big_reply_is_a_snapshot_sent_a_slice_a_turn() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("SMEMBERS", "s") + _cmd("SCARD", "s"))
    first = ta.value()
    assert first.startswith(b"*%d\r\n" % N) and first.count(b"\r\nm") == SLICE_ITEMS
    # another client is served between slices, and changes the set meanwhile
    b.dataReceived(_cmd("SADD", "s", "new") + _cmd("SREM", "s", "m0") + _cmd("PING"))
    assert tb.value() == b":1\r\n:1\r\n+PONG\r\n"
    assert ta.value() == first  # the rest waits for the reactor's next turns
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    smembers, scard = _replies(ta.value())
    assert sorted(smembers) == sorted(b"m%d" % i for i in range(N))  # as at the command
    assert scard == N  # run after the reply, on the set as it is then (+new -m0)
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    "argv",
    [
        ("HGETALL", "h"),
        ("HKEYS", "h"),
        ("HVALS", "h"),
        ("LRANGE", "l", "0", "-1"),
        ("LRANGE", "l", "1", "-2"),
        ("ZRANGE", "z", "0", "-1"),
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "WITHSCORES"),
        ("SUNION", "s", "s"),
        ("SINTER", "s", "s"),
        ("SDIFF", "s", "nothing"),
        ("KEYS", "*"),
        ("SORT", "l", "ALPHA"),
        ("XRANGE", "x", "-", "+"),
        ("XREVRANGE", "x", "+", "-", "COUNT", str(N - 5)),
    ],
)
@pytest.mark.parametrize("resp", [2, 3])
def test_sliced_replies_are_the_whole_replies(argv: tuple[str, ...], resp: int) -> None:
    """The same bytes as the reply built whole (outside a batch, as the AOF is replayed)."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server)
    a, ta = _client(server)
    whole, tw = _client(server)
    if resp == 3:
        for c, t in ((a, ta), (whole, tw)):
            c.dataReceived(_cmd("HELLO", "3"))
            t.clear()
    whole_reply: list[bytes] = []
    whole.execute([x.encode() for x in argv], whole_reply)  # (no batch: built whole)
    assert whole.blocked is None and clock.getDelayedCalls() == []
    a.dataReceived(_cmd(*argv))
    _drive(clock, lambda: a.blocked is None)
    assert ta.value() == b"".join(whole_reply)


def test_a_client_that_does_not_read_holds_one_slice() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server)
    a, ta = _client(server)
    a.dataReceived(_cmd("SMEMBERS", "s"))
    a.pauseProducing()  # (what the transport does when its buffer is full)
    sent = len(ta.value())
    for _ in range(10):
        clock.advance(0)
    assert len(ta.value()) == sent and a.blocked is not None
    a.resumeProducing()  # drained: the rest goes out, a slice a turn
    _drive(clock, lambda: a.blocked is None)
    assert len(_replies(ta.value())[0]) == N


def test_gone_mid_reply_or_unblocked() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("LRANGE", "l", "0", "-1"))
    b.dataReceived(_cmd("CLIENT", "UNBLOCK", str(a.id)))  # not a blocked command: 0
    assert tb.value() == b":0\r\n"
    a.connectionLost(None)
    clock.advance(0)
    assert clock.getDelayedCalls() == [] and a.blocked is None
    b.dataReceived(_cmd("LLEN", "l"))
    assert tb.value().endswith(b":%d\r\n" % N)


class _Conn:
    """One command at a time; the reply's bytes, read with one parser (big replies)."""

    def __init__(self, port: int, resp3: bool):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # a slow reader
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", port))
        if resp3:
            self.call("HELLO", "3")

    def call(self, *argv: str | bytes) -> bytes:
        self.sock.sendall(_cmd(*argv))
        reader = hiredis.Reader()
        data = b""
        while True:
            chunk = self.sock.recv(65536)
            assert chunk
            data += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                return data


def _big_session(port: int, resp3: bool) -> list[Any]:
    conn = _Conn(port, resp3)
    out: list[Any] = []
    try:
        conn.call("FLUSHALL")
        members = [b"m%d" % i for i in range(N)]
        conn.call("RPUSH", "l", *members)
        conn.call("ZADD", "z", *[x for i, m in enumerate(members) for x in (b"%d.5" % i, m)])
        conn.call("SADD", "s", *members)
        conn.call("HSET", "h", *[x for m in members for x in (m, m + b"v")])
        for argv in (
            ("LRANGE", "l", "0", "-1"),
            ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
            ("ZRANGE", "z", "0", "-1"),
        ):
            out.append(conn.call(*argv))
        # sets and hashes: the same members (their order is each server's own)
        for argv in (("SMEMBERS", "s"), ("HGETALL", "h"), ("KEYS", "*")):
            v = _replies(conn.call(*argv))[0]
            out.append(sorted(v.items()) if isinstance(v, dict) else sorted(v))
        out.append(conn.call("SCARD", "s"))
    finally:
        conn.sock.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_replies_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    assert _big_session(kv_port, resp3) == _big_session(redis_port, resp3)


# -- lazy free: DEL, UNLINK, FLUSHALL of big values ----------------------------------


@pytest.mark.parametrize("command", ["DEL", "UNLINK"])
def test_big_values_are_freed_in_slices(command: str) -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server)
    values = [server.store.data[k] for k in (b"s", b"h", b"z", b"l")]
    a, ta = _client(server)
    a.dataReceived(_cmd(command, "s", "h", "z", "l", "nothing") + _cmd("EXISTS", "s", "h"))
    assert ta.value() == b":4\r\n:0\r\n"  # gone at once for every client
    assert server.lazyfree.pending == 4 and all(len(v) == N for v in values)
    clock.advance(0)
    assert server.lazyfree.pending == 0 and all(len(v) == 0 for v in values)
    assert clock.getDelayedCalls() == []


def test_flushall_frees_the_old_keyspace_in_slices() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server)
    a, ta = _client(server)
    for i in range(200):
        a.dataReceived(_cmd("SET", f"k{i}", "v") + _cmd("EXPIRE", f"k{i}", "100"))
    big = server.store.data[b"s"]
    ta.clear()
    a.dataReceived(_cmd("FLUSHALL") + _cmd("DBSIZE") + _cmd("INFO", "memory"))
    flushed, dbsize, info = _replies(ta.value())
    assert flushed == b"OK" and dbsize == 0 and b"lazyfree_pending_objects:2" in info
    a.dataReceived(_cmd("SADD", "s", "x") + _cmd("SCARD", "s"))  # a new keyspace at once
    assert _replies(ta.value())[-2:] == [1, 1]
    clock.advance(0)
    assert server.lazyfree.pending == 0 and len(big) == 0


def test_big_members_go_a_few_a_slice() -> None:
    """A slice aims at SLICE_BYTES: a list of 4 KiB members is not sent 4,096 at a time."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    member = b"x" * 4096
    for _ in range(BIG // 512):
        a.dataReceived(_cmd("RPUSH", "l", *([member] * 512)))
    ta.clear()
    a.dataReceived(_cmd("LRANGE", "l", "0", "-1"))
    assert len(ta.value()) <= 4 * SLICE_BYTES
    a.pauseProducing()
    sizes = []
    for _ in range(6):
        before = len(ta.value())
        a.resumeProducing()  # the transport drained: at most one slice, then full again
        a.pauseProducing()
        clock.advance(0)
        sizes.append(len(ta.value()) - before)
    assert max(sizes) > 0 and all(s <= 4 * SLICE_BYTES for s in sizes)
    a.resumeProducing()
    _drive(clock, lambda: a.blocked is None)
    assert len(_replies(ta.value())[0]) == BIG
