"""
What the sweep (bench/kv_sweep.py FAMILY=zset) still found over 50 ms among the sorted
set commands: ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE of a million members grew their result
as one dict (each resize copies its whole table at once), a big ZUNION/ZINTER/ZDIFF freed
its million-entry temporaries in its last step, and a ZADD of thousands of members into a
sorted set of millions made all its SortedList inserts in one call (10,000 of them:
120-170 ms of CPU). Now the stored set is sharded as it is built and its index laid out
from sorted pairs, the temporaries go to lazyfree, and such a ZADD runs in slices. Same
replies, values and AOF records as run whole, and as redis-server's.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _RecordingAOF, _turn
from test_kv_bigwork_combine import _values, _watching_results
from test_kv_sweep import _busy_turns, _call, _in_slices, _server

from portsuite_services.kv.bigwork import MAX_STEPS
from portsuite_services.kv.commands.zsets import ADDS, _combined
from portsuite_services.kv.sharded import SHARD_AT, ShardedDict
from portsuite_services.kv.sharded import SHARDS as STORED_SHARDS
from portsuite_services.kv.zset import ZSet

STORES = [
    ("ZUNIONSTORE", "dst", "2", "z", "z2"),
    ("ZUNIONSTORE", "dst", "3", "z", "z2", "s", "WEIGHTS", "2", "-1", "0.5", "AGGREGATE", "MAX"),
    ("ZINTERSTORE", "dst", "2", "z", "z2", "WEIGHTS", "1", "3"),
    ("ZINTERSTORE", "dst", "2", "z", "s", "AGGREGATE", "MIN"),
    ("ZDIFFSTORE", "dst", "2", "z", "z2"),
    ("ZRANGESTORE", "dst", "z", "0", "-1", "REV"),
    ("ZRANGESTORE", "dst", "z2", "+inf", "(100", "BYSCORE", "REV"),
    ("ZRANGESTORE", "dst", "z", "0", "-1"),
]


def _zset(n: int, tag: bytes) -> ZSet:
    z = ZSet()
    for i in range(n):
        z.add(b"m%s%d" % (tag, i), float(i % 1000))
    return z


@pytest.mark.parametrize("op", ["union", "inter", "diff"])
def test_a_big_store_grows_no_table_of_all_its_members(op: str) -> None:
    """Its result is built in the shards of a ShardedDict, none near the whole, and kept so."""
    n = SHARD_AT + 10_000
    a, b = _zset(n, b""), _zset(n, b"")
    if op != "inter":
        b = _zset(n, b"x")  # (union: 2n members; diff: all of a's)
    steps = _combined(op, [a, b], [1.0, 1.0], "sum", False, 0, True, STORED_SHARDS)
    z, biggest = _watching_results(steps)
    assert 0 < biggest < 4 * n // STORED_SHARDS
    assert type(z.dict) is ShardedDict and max(map(len, z.dict.parts())) < SHARD_AT // 8
    want = sorted({m: s for m, s in [*a.dict.items(), *b.dict.items()]}.items())
    if op == "union":
        assert sorted(z.dict.items()) == want
    else:
        assert sorted(z.dict.items()) == sorted(
            (m, 2 * s if op == "inter" else s) for m, s in a.dict.items()
        )
    assert list(z.sl) == sorted((s, m) for m, s in z.dict.items())


def _stored_in_slices(setup: list[tuple[Any, ...]], argv: tuple[Any, ...], key: str) -> list[Any]:
    """
    C{argv} in slices, then C{key}'s members and scores (another client's ZRANGE, which
    waited): the reply and the value of C{argv} run whole in MULTI/EXEC.
    """
    scan = ("ZRANGE", key, "0", "-1", "WITHSCORES")
    got = _in_slices(setup, argv, scan)
    clock, server = _server(*setup)
    whole, tw = _client(server)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd(*scan) + _cmd("EXEC"))
    _drive(clock, lambda: server.busy is None and len(_replies(tw.value())) == 4)
    assert _replies(tw.value())[-1] == got
    return got


@pytest.mark.parametrize("argv", STORES, ids=" ".join)
def test_a_big_store_in_slices(argv: tuple[str, ...]) -> None:
    """The stored value is the one of the command run whole (MULTI/EXEC)."""
    n, stored = _stored_in_slices(_values(), argv, "dst")
    assert n == len(stored) // 2 > 0


def test_big_stores_as_redis(redis_port: int, kv_port: int) -> None:
    """The same replies and stored sorted sets as redis-server's, byte for byte."""
    with _side_by_side(redis_port, kv_port, _values()) as conns:
        for argv in STORES:
            got = [
                (_call(s, *argv), _call(s, "ZRANGE", "dst", "0", "-1", "WITHSCORES")) for s in conns
            ]
            assert got[0] == got[1], argv


@contextmanager
def _side_by_side(
    redis_port: int, kv_port: int, setup: list[tuple[Any, ...]]
) -> Iterator[list[socket.socket]]:
    """Connections to redis-server and kv, both loaded with C{setup}; flushed after."""
    conns = [socket.create_connection(("127.0.0.1", p), timeout=120) for p in (redis_port, kv_port)]
    try:
        for s in conns:
            _call(s, "FLUSHALL")
            for line in setup:
                _call(s, *line)
        yield conns
    finally:
        for s in conns:
            _call(s, "FLUSHALL")
            s.close()


# -- ZADD of many members into a big sorted set -----------------------------------------

BIG_Z = SHARD_AT + 4_000  # members of the sorted set added to
ADDED = 6 * ADDS  # members a ZADD adds or changes (thousands: a few turns)


def _big_zset() -> list[tuple[Any, ...]]:
    return [("ZADD", "z", *[x for i in range(BIG_Z) for x in (b"%d" % (i * 7 % 1001), b"m%d" % i)])]


def _zadd(*options: str) -> tuple[Any, ...]:
    """New members and old ones, with scores in random places of the index."""
    pairs = [x for i in range(ADDED) for x in (b"%d.5" % (i * 13 % 997), b"m%d" % (i * 17))]
    return ("ZADD", "z", *options, *pairs)


@pytest.mark.parametrize("options", [(), ("CH",), ("NX",), ("XX", "GT", "CH")], ids=" ".join)
def test_a_zadd_of_thousands_into_a_big_sorted_set_in_slices(options: tuple[str, ...]) -> None:
    """
    It answers nothing at once, and each turn adds at most MAX_STEPS steps of
    ADDS // 4 members while the other clients wait; the reply and the value are those
    of the ZADD run whole.
    """
    clock, server = _server(*_big_zset())
    a, ta = _client(server)
    b, tb = _client(server)
    z = server.dbs[0].get(b"z")
    sizes = [len(z)]
    a.dataReceived(_cmd(*_zadd(*options)))
    b.dataReceived(_cmd("ZCARD", "z"))
    assert ta.value() == tb.value() == b""
    while server.busy is not None:
        assert tb.value() == b""
        _turn(clock)
        sizes.append(len(z))
    assert len(sizes) >= 3
    assert max(y - x for x, y in zip(sizes, sizes[1:], strict=False)) <= MAX_STEPS * ADDS // 4
    _drive(clock, lambda: _replies(tb.value()) != [] and _replies(ta.value()) != [])
    assert _replies(tb.value()) == [len(z)]
    _stored_in_slices(_big_zset(), _zadd(*options), "z")


def test_a_zadd_in_slices_is_recorded_as_sent() -> None:
    clock, server = _server(*_big_zset())
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    argv = _zadd("CH")
    a.dataReceived(_cmd(*argv))
    assert server.busy is not None
    _busy_turns(clock, server, _client(server)[1])
    _drive(clock, lambda: _replies(ta.value()) != [])
    assert records == [[x.encode() if isinstance(x, str) else x for x in argv]]


def test_a_big_zadd_as_redis(redis_port: int, kv_port: int) -> None:
    with _side_by_side(redis_port, kv_port, _big_zset()) as conns:
        for options in [(), ("CH",), ("NX",), ("XX", "GT", "CH"), ("LT",)]:
            got = [_call(s, *_zadd(*options)) for s in conns]
            assert got[0] == got[1], options
        got = [_call(s, "ZRANGE", "z", "0", "-1", "WITHSCORES") for s in conns]
        assert got[0] == got[1]
