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
from kvdb_help import same_replies
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
    assert tw.value().endswith(b"*1\r\n" + ta.value())  # (EXEC's array of one, same bytes)
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


# -- PFCOUNT and PFMERGE of many keys ----------------------------------------------

HLLS = 200  # keys: a few turns (KEYS_A_STEP a step, bigwork.MAX_STEPS a turn)


def _hlls(n: int = HLLS) -> list[tuple[Any, ...]]:
    """Sparse HLLs, and every tenth one dense (a thousand elements)."""
    out: list[tuple[Any, ...]] = []
    for i in range(n):
        size = 1000 if i % 10 == 0 else 3
        out.append(("PFADD", b"h%d" % i, *[b"e%d-%d" % (i, j) for j in range(size)]))
    return out


def _keys(n: int = HLLS) -> list[bytes]:
    return [b"h%d" % i for i in range(n)]


def test_pfcount_of_many_keys_in_slices() -> None:
    got = _in_slices(_hlls(), ("PFCOUNT", *_keys()), ("PFADD", "h1", "new"))
    assert 19000 < got[0] < 22000 and got[1] == 1  # (20 x 1000 + 180 x 3 elements)


def test_pfmerge_of_many_keys_in_slices() -> None:
    got = _in_slices(_hlls(), ("PFMERGE", "h0", *_keys()), ("PFCOUNT", "h0"))
    assert got[0] == b"OK" and 19000 < got[1] < 22000


def test_pfcount_stops_at_the_first_bad_key_in_slices() -> None:
    setup = [*_hlls(), ("DEL", "h150"), ("SADD", "h150", "x")]
    got = _in_slices(setup, ("PFCOUNT", *_keys()), ("PING",))
    assert str(got[0]).startswith("WRONGTYPE")


def test_max_into_is_the_registers_max() -> None:
    import random

    from portsuite_services.kv import hll
    from portsuite_services.kv.commands.hyperloglog import _max_into

    rnd = random.Random(7)
    for top in (1, 2, 51, 63):
        a = bytearray(rnd.randrange(top + 1) for _ in range(hll.REGISTERS))
        b = bytearray(rnd.randrange(top + 1) for _ in range(hll.REGISTERS))
        want = bytes(map(max, a, b))
        _max_into(a, b)
        assert a == want


def test_pf_many_keys_as_redis(redis_port: int, kv_port: int) -> None:
    setup = [" ".join(x.decode() if type(x) is bytes else x for x in argv) for argv in _hlls(60)]
    keys = " ".join(k.decode() for k in _keys(60))
    same_replies(
        redis_port,
        kv_port,
        [
            *setup,
            f"PFCOUNT {keys}",
            f"PFCOUNT {keys} nokey",
            f"PFMERGE dest {keys}",
            "GET dest",
            "PFCOUNT dest",
            f"PFMERGE h3 {keys}",
            "GET h3",
            "SADD s x",
            f"PFCOUNT {keys} s",
            f"PFMERGE dest {keys} s",
        ],
        False,
    )


# -- HMSET of many fields ----------------------------------------------------------


def test_hmset_of_many_fields_answers_once() -> None:
    """It answered OK twice (once when its slices started): every later reply shifted."""
    from portsuite_services.kv.commands.containers import ARGS_HASH

    fields = [x for i in range(ARGS_HASH + 10) for x in (b"f%d" % i, b"v")]
    got = _in_slices([("HSET", "h", "f1", "old")], ("HMSET", "h", *fields), ("HLEN", "h"))
    assert got == [b"OK", ARGS_HASH + 10]
