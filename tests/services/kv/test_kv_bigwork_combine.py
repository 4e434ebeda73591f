"""
SORT … BY nosort of a big set, list or sorted set, and ZUNION/ZINTER/ZDIFF of millions
of members, as the sweep (bench/kv_sweep.py) found them: SORT BY nosort made its whole
list in one step; a big ZUNION's result was one dict that grew past a million members
(each resize copies the whole table at once: 80-200 ms). Same replies as run whole, and
as redis-server's.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from test_kv_bigreply import _replies
from test_kv_bigwork_scan import _sliced_call
from test_kv_sweep import _call

from portsuite_services.kv.commands.zsets import SHARDS, UNION, _combined
from portsuite_services.kv.zset import ZSet

M = 40_000


def _values(n: int = M) -> list[tuple[Any, ...]]:
    return [
        ("SADD", "s", *[b"m%d" % i for i in range(n)]),
        ("RPUSH", "l", *[b"%d" % (i * 7919 % n) for i in range(n)]),
        ("ZADD", "z", *[x for i in range(n) for x in (b"%d" % (i % 1000), b"m%d" % i)]),
        ("ZADD", "z2", *[x for i in range(n) for x in (b"%d.5" % (i % 777), b"m%d" % (2 * i))]),
    ]


SORTS = [
    ("SORT", "s", "BY", "nosort"),
    ("SORT", "z", "BY", "nosort"),
    ("SORT", "z", "BY", "nosort", "DESC", "LIMIT", "10", "35000"),
    ("SORT", "l", "BY", "nosort", "LIMIT", "1", "-1"),
    ("SORT_RO", "z", "BY", "nosort", "GET", "#"),
]


@pytest.mark.parametrize("argv", SORTS, ids=" ".join)
def test_sort_by_nosort_of_many_in_slices(argv: tuple[str, ...]) -> None:
    got = _sliced_call(_values(), [], argv)
    assert len(got) > M // 2


COMBINES = [
    ("ZUNION", "2", "z", "z2", "WITHSCORES"),
    ("ZUNION", "2", "z", "z2", "WEIGHTS", "2", "-1", "AGGREGATE", "MAX", "WITHSCORES"),
    ("ZUNION", "3", "z", "z2", "s", "AGGREGATE", "MIN", "WITHSCORES"),
    ("ZINTER", "2", "z", "z2", "WITHSCORES"),
    ("ZINTER", "2", "z", "s", "WEIGHTS", "1", "3", "WITHSCORES"),
    ("ZDIFF", "2", "z", "z2", "WITHSCORES"),
    ("ZDIFF", "2", "z2", "s"),
]


@pytest.mark.parametrize("argv", COMBINES, ids=" ".join)
def test_a_big_combined_reply_in_slices(argv: tuple[str, ...]) -> None:
    _sliced_call(_values(), [], argv)


def _watching_results(steps: Any) -> tuple[Any, int]:
    """L{_combined}'s result, and the most members one of its C{results} dicts held."""
    biggest = 0
    try:
        while True:
            next(steps)
            results = steps.gi_frame.f_locals.get("results", [])
            biggest = max([biggest, *map(len, results)])
    except StopIteration as done:
        return done.value, biggest


def test_a_big_union_is_no_one_dict_of_all_its_members() -> None:
    """Its members are told apart in SHARDS dicts, none of them near the whole."""
    zs = []
    for k in range(2):
        z = ZSet()
        for i in range(M):
            z.add(b"m%d.%d" % (k, i), float(i))
        zs.append(z)
    pairs, biggest = _watching_results(
        _combined(UNION, zs, [1.0, 1.0], "sum", False, 0, False, SHARDS)
    )
    assert len(pairs) == 2 * M and pairs == sorted(pairs)
    assert 0 < biggest < 4 * 2 * M // SHARDS


def test_big_combined_replies_as_redis(redis_port: int, kv_port: int) -> None:
    """The same bytes as redis-server, RESP2 and RESP3 (scores sort the members alike)."""
    conns = [socket.create_connection(("127.0.0.1", p), timeout=120) for p in (redis_port, kv_port)]
    try:
        for s in conns:
            _call(s, "FLUSHALL")
            for line in _values():
                _call(s, *line)
        for argv in [*COMBINES, *SORTS[1:4]]:
            for proto in ("2", "3"):
                got = []
                for s in conns:
                    _call(s, "HELLO", proto)
                    got.append(_call(s, *argv))
                assert got[0] == got[1], (argv, proto)
        got = [_replies(_call(s, "SORT", "s", "BY", "nosort"))[0] for s in conns]
        assert sorted(got[0]) == sorted(got[1])  # (a set's order is its own)
    finally:
        for s in conns:
            _call(s, "FLUSHALL")
            s.close()


# -- writes built aside, inside MULTI/EXEC ---------------------------------------------

ASIDE_IN_MULTI = [
    [("COPY", "z", "zp"), ("ZPOPMIN", "zp", "10000000"), ("ZCARD", "zp")],
    [("COPY", "l", "lp"), ("LPOP", "lp", "10000000"), ("LTRIM", "l", "1", "-2")],
    [("COPY", "z", "zm"), ("ZMPOP", "1", "zm", "MAX", "COUNT", "10000000"), ("EXISTS", "zm")],
]


@pytest.mark.parametrize("cmds", ASIDE_IN_MULTI, ids=lambda c: " ".join(x[0] for x in c))
def test_writes_built_aside_are_computed_in_slices_inside_exec(
    cmds: list[tuple[str, ...]],
) -> None:
    """A ZPOPMIN of a million inside MULTI/EXEC ran whole: 58 ms of CPU for 300,000."""
    from test_kv_bigreply import _client, _cmd, _drive
    from test_kv_bigwork import _turn
    from test_kv_sweep import _server

    from portsuite_services.kv.bigwork import Working

    def transaction() -> bytes:
        return _cmd("MULTI") + b"".join(_cmd(*c) for c in cmds) + _cmd("EXEC")

    clock, server = _server(*_values())
    a, ta = _client(server)
    a.dataReceived(transaction())
    inner = 0
    while server.busy is not None:
        _turn(clock)
        job = getattr(server.busy, "inner", None)
        if type(job) is Working and job.argv[0] == cmds[1][0].encode():
            inner += 1  # a turn ended inside the write's own steps
    assert inner >= 1
    _drive(clock, lambda: len(_replies(ta.value())) == len(cmds) + 2)
    clock2, server2 = _server(*_values())  # the same commands sent alone, one by one
    alone, t2 = _client(server2)
    for c in cmds:
        alone.dataReceived(_cmd(*c))
        _drive(clock2, lambda: server2.busy is None and alone.blocked is None)
    _drive(clock2, lambda: len(_replies(t2.value())) == len(cmds))
    assert _replies(ta.value())[-1] == _replies(t2.value())
