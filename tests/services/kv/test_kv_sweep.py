"""
What bench/kv_sweep.py found, each fixed the way the other big commands are
(bigwork.py): a command over many keys or members runs in slices, the rest of the
suite served between them, every other kv client waiting for the whole command, and
the reply is the one of the command run whole (inside MULTI/EXEC), and redis-server's.
"""

from __future__ import annotations

import socket
from typing import Any

import hiredis
import pytest
from kv_raw import Raw
from kvdb_help import same_replies
from test_kv_bigreply import _client, _cmd, _drive, _replies, _settle
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import BIG
from portsuite_services.kv.commands.containers import POP_ASIDE


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
    _busy_turns(clock, server, tb)
    _drive(clock, lambda: _replies(ta.value()) != [] and _replies(tb.value()) != [])
    got = _replies(ta.value())
    clock2, server2 = _server(*setup)
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(clock2, lambda: server2.busy is None and tw.value().count(b"\r\n") > 2)
    assert tw.value().endswith(b"*1\r\n" + ta.value())  # (EXEC's array of one, same bytes)
    return [*got, *_replies(tb.value())]


def _busy_turns(clock: Clock, server: KVServer, waiting: Any, at_least: int = 2) -> int:
    """
    The turns while C{server} is busy (C{at_least} of them): the other kv client, whose
    transport is C{waiting}, is not answered; the reactor's other calls run between.
    """
    turns = 0
    served: list[int] = []
    while server.busy is not None:
        assert waiting.value() == b""  # the other kv client waits for the whole command
        clock.callLater(0, served.append, turns)
        _turn(clock)
        turns += 1
    assert turns >= at_least and served == list(range(turns))  # the suite is served between
    return turns


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


# -- LPOP, RPOP, LMPOP, BLMPOP with a big count; LTRIM of a big list ------------------

LONG = POP_ASIDE + 9000  # a list whose rest, after popping POP_ASIDE, is built aside


def _list(n: int = LONG) -> list[tuple[Any, ...]]:
    return [("RPUSH", "l", *[b"e%d" % i for i in range(n)]), ("PEXPIRE", "l", "100000000")]


POPS = [
    ("LPOP", "l", str(POP_ASIDE)),  # the rest made aside
    ("RPOP", "l", str(POP_ASIDE + 1)),
    ("RPOP", "l", str(BIG + 5)),  # copied in slices, popped in place
    ("LPOP", "l", str(10 * LONG)),  # all of it: the key goes
    ("LMPOP", "2", "nothing", "l", "LEFT", "COUNT", str(POP_ASIDE)),
    ("LMPOP", "1", "l", "RIGHT", "COUNT", str(10 * LONG)),
    ("BLMPOP", "0", "1", "l", "RIGHT", "COUNT", str(POP_ASIDE)),
    ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", str(10 * LONG)),
    ("LTRIM", "l", "1", "-2"),
    ("LTRIM", "l", str(-BIG - 3), "-1"),
]


@pytest.mark.parametrize("argv", POPS, ids=" ".join)
def test_many_popped_or_trimmed_in_slices(argv: tuple[str, ...]) -> None:
    """LPOP of a million: 5 s of the whole suite (the reply encoded whole), LTRIM 100 ms."""
    got = _in_slices(_list(), argv, ("LRANGE", "l", "0", "-1"))
    left = got[1]
    everything = [b"e%d" % i for i in range(LONG)]
    if argv[0] == "LTRIM":
        assert got[0] == b"OK"
        assert left == everything[int(argv[2]) : LONG + int(argv[3]) + 1]
        return
    popped = got[0][1] if "MPOP" in argv[0] else got[0]
    k = min(int(argv[-1]), LONG)
    assert len(popped) == k and len(left) == LONG - k
    if "LEFT" in argv or argv[0] == "LPOP":
        assert popped == everything[:k] and left == everything[k:]
    else:
        assert popped == everything[::-1][:k] and left == everything[: LONG - k]


def test_a_big_list_trimmed_to_a_few_is_freed_lazily() -> None:
    clock, server = _server(*_list())
    a, ta = _client(server)
    a.dataReceived(
        _cmd("LTRIM", "l", "5", "9") + _cmd("LRANGE", "l", "0", "-1") + _cmd("PTTL", "l")
    )
    ok, kept, ttl = _replies(ta.value())
    assert ok == b"OK" and kept == [b"e%d" % i for i in range(5, 10)] and ttl > 0
    assert server.lazyfree.pending == 1  # the old list, not cleared at once: a slice a turn
    _drive(clock, lambda: server.lazyfree.pending == 0)


def _call(s: socket.socket, *argv: str | bytes) -> bytes:
    """One command, its whole reply's bytes (nothing pipelined: all that came is it)."""
    s.sendall(_cmd(*argv))
    reader, out = hiredis.Reader(), b""
    while True:
        data = s.recv(1 << 20)
        assert data, "closed"
        out += data
        reader.feed(data)
        if reader.gets() is not False:
            return out


def _side_by_side(
    ports: tuple[int, int],
    setup: list[tuple[Any, ...]],
    runs: list[tuple[Any, ...]],
    after: list[tuple[Any, ...]],
    fresh: bool = True,
) -> None:
    """
    Each of C{runs} on redis-server and kv, in RESP2 and RESP3 (on C{setup} loaded
    anew when C{fresh}), then C{after}: the same bytes, reply by reply.
    """
    conns = [socket.create_connection(("127.0.0.1", p), timeout=120) for p in ports]
    try:
        for argv in runs:
            for proto in ("2", "3"):
                got = []
                for s in conns:
                    _call(s, "HELLO", proto)
                    if fresh or argv is runs[0]:
                        _call(s, "FLUSHALL")
                        for line in setup:
                            _call(s, *line)
                    got.append([_call(s, *argv), *(_call(s, *a) for a in after)])
                assert got[0] == got[1], argv[:8]
    finally:
        for s in conns:
            _call(s, "FLUSHALL")
            s.close()


def test_many_popped_as_redis(redis_port: int, kv_port: int) -> None:
    """Each of L{POPS} on both servers, then the list and its TTL: the same bytes."""
    runs = [*POPS, ("LMPOP", "1", "l", "RIGHT", "COUNT", "3")]
    _side_by_side(
        (redis_port, kv_port), _list(), runs, [("LRANGE", "l", "0", "-1"), ("PERSIST", "l")]
    )


# -- HMSET of many fields ----------------------------------------------------------


def test_hmset_of_many_fields_answers_once() -> None:
    """It answered OK twice (once when its slices started): every later reply shifted."""
    from portsuite_services.kv.commands.containers import ARGS_HASH

    fields = [x for i in range(ARGS_HASH + 10) for x in (b"f%d" % i, b"v")]
    got = _in_slices([("HSET", "h", "f1", "old")], ("HMSET", "h", *fields), ("HLEN", "h"))
    assert got == [b"OK", ARGS_HASH + 10]


# -- any big list reply goes out in slices ------------------------------------------


def _sent_in_slices(setup: list[tuple[Any, ...]], argv: tuple[Any, ...]) -> Any:
    """
    C{argv}'s reply comes over several turns, another client answered in between
    (and its own next command only after it); the same bytes as run whole in MULTI.
    """
    clock, server = _server(*setup)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd(*argv) + _cmd("PING", "after"))
    assert ta.value() != b"" and _replies(ta.value()) == []  # the header and a first slice
    b.dataReceived(_cmd("PING"))
    assert tb.value() == b"+PONG\r\n"  # served meanwhile
    turns = 0
    while len(_replies(ta.value())) < 2:
        _turn(clock)
        turns += 1
        assert turns < 10000
    assert turns >= 2
    clock2, server2 = _server(*setup)
    whole, whole_t = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(clock2, lambda: len(_replies(whole_t.value())) == 3)
    assert whole_t.value().endswith(b"*1\r\n" + ta.value()[: -len(b"$5\r\nafter\r\n")])
    return _replies(ta.value())[0]


MANY = 3 * BIG


def _big_values(n: int = MANY) -> list[tuple[Any, ...]]:
    return [
        ("SADD", "s", *[b"m%d" % i for i in range(n)]),
        ("HSET", "h", *[x for i in range(n) for x in (b"f%d" % i, b"v%d" % i)]),
        ("ZADD", "z", *[x for i in range(n) for x in (b"%d" % i, b"m%d" % i)]),
        ("MSET", *[x for i in range(n) for x in (b"k%d" % i, b"v")]),
    ]


PER_ARGUMENT = [
    ("SMISMEMBER", "s", *[b"m%d" % (2 * i) for i in range(MANY)]),
    ("HMGET", "h", *[b"f%d" % (2 * i) for i in range(MANY)]),
    ("ZMSCORE", "z", *[b"m%d" % (2 * i) for i in range(MANY)]),
    ("MGET", *[b"k%d" % (2 * i) for i in range(MANY)]),
]
LISTS = PER_ARGUMENT  # (*SCAN … COUNT 10^7: its page made in slices first, test_kv_bigwork_scan.py)


@pytest.mark.parametrize("argv", LISTS, ids=lambda a: " ".join(map(str, a[:5])))
def test_a_big_list_reply_goes_out_in_slices(argv: tuple[Any, ...]) -> None:
    """
    SMISMEMBER or HMGET of a million arguments: 3.5-5 s whole. (They are looked up in
    slices first: the other client waits.)
    """
    got = _in_slices(_big_values(), argv, ("PING",))
    assert got[1] == b"PONG"
    assert len(got[0]) == MANY and got[0][0] not in (None, 0) and got[0][-1] in (None, 0)


def test_big_list_replies_as_redis(redis_port: int, kv_port: int) -> None:
    """L{LISTS} on both servers, RESP2 and RESP3: the same bytes."""
    _side_by_side((redis_port, kv_port), _big_values(), LISTS, [], fresh=False)


# -- ZPOPMIN, ZPOPMAX, ZMPOP, BZMPOP with a big count -------------------------------

ZN = BIG + 5000


def _zset() -> list[tuple[Any, ...]]:
    pairs = [x for i in range(ZN) for x in (b"%d.5" % (i % 1000), b"m%d" % i)]
    return [("ZADD", "z", *pairs), ("PEXPIRE", "z", "100000000")]


ZPOPS = [
    ("ZPOPMIN", "z", str(BIG + 1)),
    ("ZPOPMAX", "z", str(BIG)),
    ("ZPOPMIN", "z", str(10 * ZN)),  # all of it
    ("ZMPOP", "2", "nothing", "z", "MIN", "COUNT", str(BIG + 1)),
    ("ZMPOP", "1", "z", "MAX", "COUNT", str(10 * ZN)),
    ("BZMPOP", "0", "1", "z", "MAX", "COUNT", str(BIG + 2)),
    ("BZMPOP", "0", "1", "z", "MIN", "COUNT", str(10 * ZN)),
]


@pytest.mark.parametrize("argv", ZPOPS, ids=" ".join)
def test_many_zset_members_popped_in_slices(argv: tuple[str, ...]) -> None:
    """ZMPOP … COUNT of a million: 4.8 s of the whole suite, ZPOPMIN 0.3 s."""
    got = _in_slices(_zset(), argv, ("ZCARD", "z"))
    popped = got[0][1] if "MPOP" in argv[0] else got[0]
    k = min(int(argv[-1]), ZN)
    assert len(popped) == (k if "MPOP" in argv[0] else 2 * k) and got[1] == ZN - k


def test_many_zset_members_popped_as_redis(redis_port: int, kv_port: int) -> None:
    """Each of L{ZPOPS} on both servers, RESP2 and RESP3, then what is left and its TTL."""
    runs = [*ZPOPS, ("ZMPOP", "1", "z", "MIN", "COUNT", "3")]
    after = [
        ("ZRANGE", "z", "0", "-1", "WITHSCORES"),
        ("PERSIST", "z"),
    ]  # (the TTL kept; TTL itself may tick)
    _side_by_side((redis_port, kv_port), _zset(), runs, after)


# -- GEOSEARCH, GEORADIUS* over a big geo set -----------------------------------------

GN = 12000  # members: a search over all of them is past bigwork.BIG's work


def _geo() -> list[tuple[Any, ...]]:
    points: list[bytes] = []
    for i in range(GN):
        lon, lat = -179.0 + (i * 0.02917) % 358, -80.0 + (i * 0.01313) % 160
        points += (b"%.5f" % lon, b"%.5f" % lat, b"p%d" % i)
    return [("GEOADD", "g", *points)]


GEOS = [
    ("GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "20000", "km"),
    (
        "GEOSEARCH",
        "g",
        "FROMLONLAT",
        "10",
        "20",
        "BYRADIUS",
        "20000",
        "km",
        "ASC",
        "WITHCOORD",
        "WITHDIST",
        "WITHHASH",
    ),
    ("GEOSEARCH", "g", "FROMMEMBER", "p5", "BYBOX", "40000", "40000", "km", "DESC", "COUNT", "100"),
    ("GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "20000", "km", "COUNT", "5", "ANY"),
    ("GEORADIUS", "g", "0", "0", "20000", "km", "STORE", "dst"),
    ("GEORADIUS", "g", "0", "0", "20000", "km", "STOREDIST", "dst"),
    ("GEOSEARCHSTORE", "dst", "g", "FROMMEMBER", "p5", "BYBOX", "40000", "40000", "km"),
    ("GEORADIUSBYMEMBER", "g", "p7", "8000", "km", "WITHDIST", "ASC"),
    ("GEORADIUS_RO", "g", "30", "30", "3", "km"),  # (none found)
]


@pytest.mark.parametrize(
    "argv", [a for a in GEOS if "ANY" not in a and a[0] != "GEORADIUS_RO"], ids=" ".join
)  # (ANY: done at the first members found; a small radius: at once)
def test_a_geo_search_over_many_members_in_slices(argv: tuple[str, ...]) -> None:
    """A GEOSEARCH over a million members held the suite 4-14 s."""
    got = _in_slices(_geo(), argv, ("ZCARD", "dst"))
    if "STORE" in " ".join(argv):
        assert got[0] == got[1] > GN // 2
    else:
        assert len(got[0]) > 4


def test_a_geo_search_over_many_members_as_redis(redis_port: int, kv_port: int) -> None:
    after = [("ZRANGE", "dst", "0", "-1", "WITHSCORES")]
    _side_by_side((redis_port, kv_port), _geo(), GEOS, after, fresh=False)


GEO_ARGS = [
    ("GEOPOS", "g", *[b"p%d" % i for i in range(0, 2 * GN, 2)]),  # (half of them missing)
    ("GEOHASH", "g", *[b"p%d" % i for i in range(0, 2 * GN, 2)]),
]


@pytest.mark.parametrize("argv", GEO_ARGS, ids=lambda a: a[0])
def test_geopos_geohash_of_many_members_in_slices(argv: tuple[Any, ...]) -> None:
    """GEOPOS or GEOHASH of a million members: 6 s of the whole suite."""
    got = _in_slices(_geo(), argv, ("PING",))
    assert len(got[0]) == GN and got[0][0] and got[0][-1] in (None, []) and got[1] == b"PONG"


def test_geopos_geohash_of_many_members_as_redis(redis_port: int, kv_port: int) -> None:
    _side_by_side((redis_port, kv_port), _geo(), GEO_ARGS, [], fresh=False)
