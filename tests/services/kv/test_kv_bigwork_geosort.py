"""
SORT of many options (GET # 600,000 times parsed in one step: 0.3 s) and the geo
searches over big sorted sets run in slices (bigwork.py): each takes several turns
with bounded work in each, the other kv clients wait, the reactor serves the rest of
the suite between them, and the reply, the stored value and the AOF record are those
of the command run whole (in MULTI/EXEC), and redis-server's.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd
from test_kv_bigwork import _turn
from test_kv_bigwork_writes import _server, check_in_slices
from test_kv_sweep import _side_by_side
from twisted.internet.task import Clock

from portsuite_services.kv.bigwork import MAX_STEPS, PIECE

G = MAX_STEPS * PIECE + 1000  # GET options: more than a turn's steps of them

SORT_SETUP = [
    ("RPUSH", "l", *[b"%d" % ((i * 7) % 11) for i in range(11)]),
    ("SADD", "s", *[b"e%d" % i for i in range(5)]),
    ("MSET", *[x for i in range(11) for x in (b"w_%d" % i, b"%d" % (i * 7 % 5))]),
    ("HSET", "h_5", "f", "five"),
    ("SET", "str", "x"),
]

MANY_GETS = [  # (and how many elements the sort has: each is looked up by every GET)
    (("SORT", "l", *["GET", "#"] * G), 11),
    (("SORT_RO", "l", "DESC", "LIMIT", "3", "20", *["GET", "#", "GET", "w_*"] * (G // 2)), 8),
    (("SORT", "l", "BY", "w_*", *["GET", "h_*->f"] * G, "GET", "#", "STORE", "dst"), 11),
    (("SORT", "s", "ALPHA", *["GET", "#"] * G, "STORE", "dst"), 5),
    (("SORT", "l", "BY", "nosort", *["GET", "#"] * G), 11),
    (("SORT", "l", *["GET", "#"] * G, "NOSUCHOPTION"), 0),  # a syntax error at the end
    (("SORT_RO", "l", *["GET", "#"] * G, "STORE", "dst"), 0),  # (no STORE for SORT_RO)
    (("SORT", "str", *["GET", "#"] * G), 0),  # WRONGTYPE, told after the options
    (("SORT", "nothing", *["GET", "#"] * G, "STORE", "dst"), 0),
]


def _id(argv: Any) -> str:
    if type(argv) is not tuple:
        return str(argv)
    return " ".join([str(a) for a in argv[:3]] + [str(len(argv))])


def busy_turns(argv: tuple[Any, ...], setup: list[tuple[Any, ...]]) -> int:
    """The turns C{argv} keeps kv busy on a server loaded with C{setup}."""
    clock = Clock()
    clock.advance(1000)
    server = _server(clock, setup)
    a, ta = _client(server)
    a.dataReceived(_cmd(*argv))
    turns = 0
    while server.busy is not None:
        _turn(clock)
        turns += 1
    return turns


@pytest.mark.parametrize("argv, elements", MANY_GETS, ids=_id)
def test_sort_of_many_options_runs_in_slices(argv: tuple[Any, ...], elements: int) -> None:
    # a turn reads at most MAX_STEPS * PIECE arguments, or looks up as many patterns
    lookups = elements * argv.count("GET")
    assert busy_turns(argv, SORT_SETUP) >= max(len(argv), lookups) // (MAX_STEPS * PIECE)
    check_in_slices(argv, SORT_SETUP, "dst" if "STORE" in argv else None)


def test_sort_of_many_options_as_redis(redis_port: int, kv_port: int) -> None:
    after = [("LRANGE", "dst", "0", "-1"), ("EXISTS", "dst")]
    runs = [a for a, _ in MANY_GETS if a[1] != "s"]  # (a set's order: SORT ALPHA stores it)
    _side_by_side((redis_port, kv_port), SORT_SETUP, [*runs, MANY_GETS[3][0]], after)


# -- geo searches over a big sorted set ---------------------------------------------


def _geo(n: int) -> list[tuple[Any, ...]]:
    """A geo set of C{n} points over the whole map (and equal distances: ties)."""
    return [
        (
            "GEOADD",
            "geo",
            *[
                x
                for i in range(n)
                for x in (
                    b"%.6f" % (-179.0 + (i * 0.00358) % 358),
                    b"%.6f" % (-80.0 + (i * 0.00161) % 160),
                    b"p%d" % i,
                )
            ],
        ),
        ("GEOADD", "geo", "10", "10", "tie1", "10", "-10", "tie2", "-10", "10", "tie3"),
    ]


GEO_SETUP = _geo(MAX_STEPS * PIECE // 2 + 1000)  # a search of it: many steps
ALL = ("FROMLONLAT", "0", "0", "BYRADIUS", "20000", "km")
SEARCHES = [
    ("GEOSEARCH", "geo", *ALL),
    ("GEOSEARCH", "geo", *ALL, "ASC", "WITHCOORD", "WITHDIST", "WITHHASH"),
    (
        "GEOSEARCH",
        "geo",
        "FROMMEMBER",
        "p5",
        "BYBOX",
        "30000",
        "20000",
        "km",
        "DESC",
        "COUNT",
        "9000",
    ),
    ("GEOSEARCH", "geo", *ALL, "COUNT", "100", "ANY", "WITHDIST"),
    ("GEOSEARCHSTORE", "gs", "geo", *ALL),
    ("GEOSEARCHSTORE", "gs", "geo", *ALL, "DESC", "COUNT", "10000", "STOREDIST"),
    ("GEORADIUS", "geo", "0", "0", "20000", "km", "ASC", "STORE", "gs"),
    ("GEORADIUS_RO", "geo", "10", "10", "20000", "km", "DESC", "WITHDIST"),
    ("GEORADIUSBYMEMBER", "geo", "tie1", "20000", "km", "COUNT", "9000", "STOREDIST", "gs"),
    ("GEORADIUSBYMEMBER_RO", "geo", "p7", "5000", "km", "WITHCOORD"),
]


@pytest.mark.parametrize("argv", [a for a in SEARCHES if "ANY" not in a], ids=_id)
def test_a_geo_search_runs_in_slices(argv: tuple[Any, ...]) -> None:
    at = argv[1] if argv[0] == "GEOSEARCHSTORE" else "gs" if "STORE" in str(argv) else None
    check_in_slices(argv, GEO_SETUP, at)


def test_a_geo_search_makes_and_frees_a_bounded_amount_a_turn() -> None:
    """
    No turn of a search makes or frees memory blocks in proportion to the set: the
    lists of what it found, sorted and measured are dropped in slices, by lazyfree
    (they were dropped at once at the end: a million tuples and their floats, 70 ms).
    """
    n = 60000
    bound = 4 * MAX_STEPS * PIECE  # (what a turn's steps may make; n's tuples are 4n)
    for argv in [
        ("GEOSEARCH", "geo", *ALL),
        ("GEOSEARCH", "geo", *ALL, "ASC", "WITHCOORD", "WITHDIST"),
        ("GEOSEARCH", "geo", *ALL, "DESC", "COUNT", str(n // 2)),
        ("GEOSEARCHSTORE", "gs", "geo", *ALL, "STOREDIST"),
        ("GEORADIUS", "geo", "0", "0", "20000", "km", "STORE", "gs"),
    ]:
        clock = Clock()
        clock.advance(1000)
        server = _server(clock, _geo(n))
        a, ta = _client(server)
        gc.collect()  # (the servers before: their cycles are not this search's to free)
        a.dataReceived(_cmd(*argv))
        worst = turns = 0
        while clock.getDelayedCalls():
            before = sys.getallocatedblocks()
            _turn(clock)
            worst = max(worst, abs(sys.getallocatedblocks() - before))
            turns += 1
        assert ta.value() != b"" and turns > 10
        assert worst < bound, argv


def test_geo_searches_of_a_big_set_as_redis(redis_port: int, kv_port: int) -> None:
    after = [("ZCARD", "gs"), ("ZRANGE", "gs", "0", "40", "WITHSCORES"), ("ZSCORE", "gs", "p9")]
    _side_by_side((redis_port, kv_port), GEO_SETUP, SEARCHES, after, fresh=False)


# -- commands that looked up every key or read every argument before any slice ------

K = MAX_STEPS * PIECE + 1000  # keys none of which exists: more than a turn's steps of them
NONE = [b"none%d" % i for i in range(K)]
KEYS_SETUP = [
    ("RPUSH", "l", "a", "b", "c"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
    ("SET", "k1", b"\xff\x0f\x00"),
    ("SET", "k2", "abcdef"),
    ("SADD", "set", "m"),
]
MANY_KEYS = [
    ("LMPOP", str(K + 1), *NONE, "l", "LEFT", "COUNT", "2"),
    ("LMPOP", str(K + 2), *NONE, "set", "l", "RIGHT"),  # WRONGTYPE, told where it is met
    ("LMPOP", str(K), *NONE, "LEFT"),
    ("ZMPOP", str(K + 1), *NONE, "z", "MAX", "COUNT", "2"),
    ("ZMPOP", str(K + 1), *NONE, "l", "MIN"),
    ("BITOP", "OR", "dst", *NONE, "k1", "k2"),
    ("BITOP", "XOR", "dst", "k2", *NONE, "k1"),
    ("BITOP", "AND", "dst", "k2", *NONE),
    ("BITOP", "AND", "dst", *NONE),  # nothing: dst deleted
    ("BITOP", "OR", "dst", *NONE, "set"),
    ("CONFIG", "SET", *[x for n in NONE[: K // 2] for x in (n, b"1")]),  # an unknown name
    ("CONFIG", "SET", *[x for n in NONE[: K // 2] for x in (n, b"1")], "none7", "2"),  # twice
]


def _key(argv: tuple[Any, ...]) -> str:
    """The key a command of L{MANY_KEYS} changes (or any, for CONFIG SET)."""
    if argv[0] == "BITOP":
        return "dst"
    return {"LMPOP": "l", "ZMPOP": "z"}.get(argv[0], "k1")


@pytest.mark.parametrize("argv", MANY_KEYS, ids=_id)
def test_a_command_of_many_keys_looks_them_up_in_slices(argv: tuple[Any, ...]) -> None:
    assert busy_turns(argv, KEYS_SETUP) >= len(argv) // (MAX_STEPS * PIECE)
    record = {"LMPOP": ("LPOP", "l", "2"), "ZMPOP": ("ZPOPMAX", "z", "2")}.get(argv[0])
    check_in_slices(argv, KEYS_SETUP, _key(argv), record)


def test_commands_of_many_keys_as_redis(redis_port: int, kv_port: int) -> None:
    after = [("LRANGE", "l", "0", "-1"), ("ZRANGE", "z", "0", "-1"), ("GET", "dst")]
    runs = MANY_KEYS[:-1]  # (a name given twice: kv tells it first, Redis an unknown name)
    _side_by_side((redis_port, kv_port), KEYS_SETUP, runs, after)


def test_bitop_of_many_keys_holds_one_window_at_a_time() -> None:
    """
    BITOP of many keys, one of them long, folds each key's window in as it reads it:
    it held every key's window at once, padded to 64 KB (a million keys: 64 GB).
    """
    long = bytes(range(256)) * 1024  # 256 KB
    setup = [*KEYS_SETUP, ("SET", "long", long)]
    for keys in (3000, K):  # (run at once, and in slices)
        argv = ("BITOP", "XOR", "dst", "long", *[b"k%d" % (1 + i % 2) for i in range(keys)])
        clock = Clock()
        clock.advance(1000)
        server = _server(clock, setup)
        a, ta = _client(server)
        tracemalloc.start()
        try:
            a.dataReceived(_cmd(*argv))
            while clock.getDelayedCalls():
                _turn(clock)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert ta.value() == b":%d\r\n" % len(long)
        assert peak < 3000 * (64 << 10) // 4, keys  # (it was 3000 windows of 64 KB and more)
    check_in_slices(argv, setup, "dst")


def test_config_set_of_many_names_drops_its_pairs_a_slice_a_turn() -> None:
    """The pairs of a CONFIG SET of many names go to lazyfree (50 ms to drop at once)."""
    clock = Clock()
    clock.advance(1000)
    server = _server(clock, KEYS_SETUP)
    a, ta = _client(server)
    before = server.lazyfree.done
    a.dataReceived(_cmd("CONFIG", "SET", *[x for n in NONE[: K // 2] for x in (n, b"1")]))
    while clock.getDelayedCalls():
        _turn(clock)
    assert ta.value().startswith(b"-ERR Unknown option or number of arguments for CONFIG SET")
    assert server.lazyfree.done == before + 1
