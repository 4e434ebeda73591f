"""
What bench/kv_sweep.py found, each fixed the way the other big commands are
(bigwork.py): a command over many keys or members runs in slices, the rest of the
suite served between them, every other kv client waiting for the whole command, and
the reply is the one of the command run whole (inside MULTI/EXEC), and redis-server's.
"""

from __future__ import annotations

from typing import Any

import pytest
from kv_raw import Raw
from test_kv_bigreply import _client, _cmd, _drive, _replies, _settle
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings


def _server(*setup: tuple[Any, ...]) -> tuple[Clock, KVServer]:
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    for argv in setup:
        admin.dataReceived(_cmd(*argv))
    _settle(server)
    return clock, server


def _in_slices(
    setup: list[tuple[Any, ...]], argv: tuple[Any, ...], other: tuple[Any, ...]
) -> list[Any]:
    """
    C{argv} on a server loaded with C{setup}: it answers nothing at once, takes
    several turns while a second client's C{other} waits (the reactor's other calls
    run between them), then both answer; its reply is the one of C{argv} run whole in
    MULTI/EXEC on a server loaded the same way (returned, with C{other}'s).
    """
    clock, server = _server(*setup)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd(*argv))
    b.dataReceived(_cmd(*other))
    assert ta.value() == tb.value() == b""
    turns = 0
    served: list[int] = []
    while server.busy is not None:
        assert tb.value() == b""  # the other kv client waits for the whole command
        clock.callLater(0, served.append, turns)
        _turn(clock)
        turns += 1
    assert turns >= 2 and served == list(range(turns))  # the suite is served between
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")
    got = _replies(ta.value())
    clock2, server2 = _server(*setup)
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(clock2, lambda: server2.busy is None and tw.value().count(b"\r\n") > 2)
    assert _replies(tw.value())[-1] == got
    return [*got, *_replies(tb.value())]


# -- MEMORY USAGE of a sorted set or a stream ----------------------------------------


def _zset_and_stream(n: int) -> list[tuple[Any, ...]]:
    return [
        ("ZADD", "z", *[x for i in range(n) for x in (b"%d" % i, b"m%d" % i)]),
        *[("XADD", "x", b"%d-1" % (i + 1), "f", b"v%d" % i) for i in range(n // 4)],
    ]


@pytest.mark.parametrize("key", ["z", "x"])
def test_memory_usage_of_a_sorted_set_or_a_stream(key: str) -> None:
    """It answered nothing and closed the connection (a ZSet, a Stream: not iterable)."""
    _, server = _server(*_zset_and_stream(100))
    a, ta = _client(server)
    a.dataReceived(_cmd("MEMORY", "USAGE", key) + _cmd("MEMORY", "USAGE", key, "SAMPLES", "0"))
    small, every = _replies(ta.value())
    assert not ta.disconnecting
    assert type(small) is int and type(every) is int and every > 100 * 10 // 4


@pytest.mark.parametrize("key", ["z", "x"])
def test_memory_usage_samples_0_of_a_big_sorted_set_or_stream_in_slices(key: str) -> None:
    got = _in_slices(_zset_and_stream(40000), ("MEMORY", "USAGE", key, "SAMPLES", "0"), ("PING",))
    assert type(got[0]) is int and got[0] > 40000 * 10 // 4 and got[1] == b"PONG"


def test_memory_usage_answers_an_integer_as_redis_does(redis_port: int, kv_port: int) -> None:
    for port in (redis_port, kv_port):
        r = Raw(port)
        try:
            r.call("DEL", "z", "x")
            r.call("ZADD", "z", "1", "a", "2", "b")
            r.call("XADD", "x", "1-1", "f", "v")
            for key in ("z", "x"):
                assert r.call("MEMORY", "USAGE", key).startswith(b":")
                assert r.call("MEMORY", "USAGE", key, "SAMPLES", "0").startswith(b":")
            r.call("DEL", "z", "x")
        finally:
            r.close()
