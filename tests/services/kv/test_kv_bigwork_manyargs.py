"""
One command of a million arguments or keys (bench/kv_sweep.py found each holding the
suite 0.2-3 s: ZREM, GEOADD, PFADD, ZMSCORE, SMISMEMBER, HMGET, SREM, HDEL, MGET,
EXISTS, TOUCH, WATCH) runs in slices (bigwork.py): other kv clients wait for the
whole command, the reactor serves the rest of the suite between slices, and the
reply, the value, the AOF record and WATCH are those of the command run whole (in
MULTI/EXEC), and redis-server's.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _drive, _replies, _settle
from test_kv_bigwork import _RecordingAOF, _turn
from test_kv_bigwork_writes import check_in_slices
from test_kv_sweep import _call, _side_by_side
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import ARGS, MAX_STEPS, PIECE
from portsuite_services.kv.commands.containers import REMOVES_IN_PLACE
from portsuite_services.kv.commands.zsets import REMOVES

A = MAX_STEPS * PIECE + 1000  # arguments: more steps than a turn runs
R = REMOVES_IN_PLACE + 100  # members of the big set and hash: past what SREM/HDEL remove in place
Z = REMOVES + 500  # members of the big zset: past what ZREM removes in place


def _names(prefix: str, n: int, start: int = 0) -> list[bytes]:
    return [b"%s%d" % (prefix.encode(), i) for i in range(start, start + n)]


def _pairs(prefix: str, n: int, value: bytes = b"v") -> list[bytes]:
    return [x for m in _names(prefix, n) for x in (m, value)]


SETUP = [
    ("SADD", "s", *_names("m", R)),
    ("PEXPIREAT", "s", "99999999999999"),
    ("HSET", "h", *_pairs("f", R)),
    ("ZADD", "z", *[x for i in range(Z) for x in (b"%d" % (i % 97), b"m%d" % i)]),
    ("PEXPIREAT", "z", "99999999999999"),
    ("MSET", *_pairs("k", A // 2)),
    ("SADD", "notstring", "x"),
    ("PFADD", "hll", "a", "b"),
    ("GEOADD", "g", "13.361389", "38.115556", "Palermo"),
    ("SET", "bf", bytes(range(256)) * 8),
    ("SADD", "t", "m1", "m2", "x"),
]


def _bitfield_ops(n: int) -> list[bytes]:
    """GETs, SETs and INCRBYs of types and offsets that vary, under each OVERFLOW."""
    out: list[bytes] = []
    for i in range(n):
        kind = (b"GET", b"SET", b"INCRBY", b"OVERFLOW")[i % 4]
        t = (b"u8", b"i5", b"u63", b"i64", b"u1")[i % 5]
        if kind == b"OVERFLOW":
            out += (kind, (b"WRAP", b"SAT", b"FAIL")[i % 3])
        else:
            out += (kind, t, b"#%d" % (i * 7 % 3001) if i % 3 else b"%d" % (i * 13 % 40000))
            if kind != b"GET":
                out.append(b"%d" % (i * 977 % 300 - 150))
    return out


# (each: the members present, some missing, some twice)
SOME = [*_names("m", A // 3), *_names("nope", A // 3), *_names("m", A // 3)]

MANY_ARGS = [
    # reads: one reply element per argument
    ("SMISMEMBER", "s", *SOME),
    ("HMGET", "h", *[b"f" + m[1:] for m in SOME]),
    ("ZMSCORE", "z", *SOME),
    ("MGET", *_names("k", A // 2), "notstring", *_names("nope", A // 2)),
    ("EXISTS", *_names("k", A // 2), "s", *_names("nope", A // 2), "k1"),
    ("TOUCH", *_names("k", A // 2), "s", *_names("nope", A // 2)),
    ("ZMSCORE", "s", *SOME),  # WRONGTYPE
    # removals: a few (in place), most (the rest built aside), all (the key goes)
    ("ZREM", "z", *SOME),
    ("ZREM", "z", *_names("m", Z - 7, 3), *_names("nope", 100)),
    ("ZREM", "z", *_names("m", Z), *_names("m", A)),
    ("ZREM", "h", *SOME),  # WRONGTYPE
    ("SREM", "s", *SOME),
    ("SREM", "s", *_names("m", R - 5, 2), "nope"),
    ("SREM", "s", *_names("m", R), "nope"),
    ("HDEL", "h", *[b"f" + m[1:] for m in SOME]),
    ("HDEL", "h", *_names("f", R - 5, 2), "nope"),
    ("HDEL", "h", *_names("f", R), "nope"),
    # many keys changed, a slice at a time
    ("DEL", *_names("k", A // 2), "s", "h", *_names("nope", A // 2)),
    ("UNLINK", *_names("k", A // 2, 10), "k3"),
    ("MSET", *_pairs("k", A // 2, b"new"), *_pairs("n", A // 2)),
    ("MSETNX", *_pairs("n", A // 2), *_pairs("o", A // 2)),
    ("MSETNX", *_pairs("n", A // 2), *_pairs("o", A // 2), "k7", "x"),  # (k7 is there: 0)
    # set operations over many keys
    ("SINTER", *["s", "t"] * (A // 2)),
    ("SINTER", "s", "t", *_names("nope", A)),
    ("SUNION", "t", *_names("nope", A), "s"),
    ("SDIFF", "s", *_names("nope", A), "t"),
    ("SINTERSTORE", "dst", *["t", "s"] * (A // 2)),
    ("SUNIONSTORE", "dst", "t", *_names("nope", A)),
    ("SUNIONSTORE", "t", *_names("nope", A)),  # (nothing: t goes)
    ("SDIFFSTORE", "dst", "s", *["t"] * A),
    ("SINTERCARD", str(A), *["s", "t"] * (A // 2)),
    ("SINTERCARD", str(A), *["s", "t"] * (A // 2), "LIMIT", "1"),
    ("SUNION", "t", *_names("nope", A), "h"),  # WRONGTYPE
    # sorted-set operations over many keys (the keys, the weights, the sources: in slices)
    ("ZUNION", str(A + 2), "z", "t", *_names("nope", A), "WITHSCORES"),
    ("ZINTER", str(A), *["z", "t"] * (A // 2), "WITHSCORES"),
    (
        "ZINTER",
        str(A),
        *["t", "z"] * (A // 2),
        "WEIGHTS",
        *["2", "-0.5"] * (A // 2),
        "AGGREGATE",
        "MAX",
        "WITHSCORES",
    ),
    ("ZDIFF", str(A + 1), "z", *_names("nope", A - 1), "t"),
    ("ZINTERCARD", str(A), *["z", "t"] * (A // 2)),
    ("ZINTERCARD", str(A), *["z", "t"] * (A // 2), "LIMIT", "1"),
    ("ZUNIONSTORE", "dst", str(A), "t", *_names("nope", A - 1), "WEIGHTS", *["3"] * A),
    ("ZINTERSTORE", "dst", str(A), *["t", "z"] * (A // 2), "AGGREGATE", "MIN"),
    ("ZDIFFSTORE", "dst", str(A + 1), "z", *["t"] * A),
    # errors: WRONGTYPE before the options' (Redis looks every key up first), then theirs
    ("ZUNION", str(A + 1), *_names("nope", A), "h", "WEIGHTS", "x"),
    ("ZINTERSTORE", "dst", str(A), *_names("nope", A), "WEIGHTS", *["1"] * (A - 1), "x"),
    ("ZUNION", str(A), *_names("nope", A), "AGGREGATE", "avg"),
    ("ZINTERCARD", str(A + 5), *_names("nope", A)),  # (more keys than arguments)
    ("ZINTERCARD", str(A), *_names("nope", A), "LIMIT", "-1"),
    # BITFIELD's operations
    ("BITFIELD", "bf", *_bitfield_ops(A // 3)),
    ("BITFIELD", "new", *_bitfield_ops(A // 3)),
    ("BITFIELD_RO", "bf", *[x for i in range(A // 3) for x in (b"GET", b"i9", b"%d" % i)]),
    ("BITFIELD", "bf", *_bitfield_ops(A // 3), b"GET", b"u64", b"0"),  # (u64: an error)
    ("BITFIELD", "s", *_bitfield_ops(A // 3)),  # WRONGTYPE
    # additions computed aside
    ("PFADD", "hll", *_names("e", A)),
    ("PFADD", "new", *_names("e", A), *_names("e", A)),
    ("PFADD", "notstring", *_names("e", A)),  # WRONGTYPE
    (
        "GEOADD",
        "g",
        *[
            x
            for i in range(A)
            for x in (b"%d" % (i % 179), b"%d" % (i % 85), b"p%d" % (i % (A - 9)))
        ],
    ),
    ("GEOADD", "geo", "CH", *[x for i in range(A) for x in (b"1.5", b"2.5", b"p%d" % i)]),
    (
        "GEOADD",
        "g",
        "XX",
        "CH",
        *[x for i in range(A) for x in (b"3", b"4", b"Palermo" if i == 7 else b"p%d" % i)],
    ),
    (
        "GEOADD",
        "g",
        *[x for i in range(A) for x in (b"3", b"4" if i < A - 1 else b"91", b"p%d" % i)],
    ),  # one bad pair: nothing added
]


def _id(argv: tuple[Any, ...]) -> str:
    words = [str(a) for a in argv[1:3] if type(a) is str]
    return " ".join([argv[0], *words, str(len(argv))])


@pytest.mark.parametrize("argv", MANY_ARGS, ids=_id)
def test_a_command_of_many_arguments_runs_in_slices(argv: tuple[Any, ...]) -> None:
    check_in_slices(argv, SETUP)


UNORDERED = ("SINTER", "SUNION", "SDIFF")  # (a set's members: in an order of its own)
ORDERED = [a for a in MANY_ARGS if a[0] not in UNORDERED]
SHARE = 8  # commands a test compares (each loads SETUP anew in both servers, twice)


@pytest.mark.parametrize("first", range(0, len(ORDERED), SHARE))
def test_many_arguments_as_redis(first: int, redis_port: int, kv_port: int) -> None:
    """The same replies (RESP2 and RESP3) and the same values after, as redis-server's."""
    after = [
        ("SCARD", "s"),
        ("HLEN", "h"),
        ("ZCARD", "z"),
        ("ZRANGE", "z", "0", "20", "WITHSCORES"),
        ("PEXPIRETIME", "s"),
        ("PEXPIRETIME", "z"),
        ("PFCOUNT", "hll"),
        ("PFCOUNT", "new"),
        ("GEOPOS", "g", "Palermo", "p1", "p7", "p100"),
        ("ZCARD", "g"),
        ("GET", "bf"),
        ("GET", "new"),
        ("MGET", "k0", "k7", "k100", "n0", "n1", "o5"),
        ("SCARD", "dst"),
        ("ZRANGE", "dst", "0", "20", "WITHSCORES"),
        ("SMISMEMBER", "t", "m1", "m2", "x", "nope"),
        ("DBSIZE",),
    ]
    _side_by_side((redis_port, kv_port), SETUP, ORDERED[first : first + SHARE], after)


def test_set_operations_of_many_keys_as_redis(redis_port: int, kv_port: int) -> None:
    """SINTER, SUNION, SDIFF of many keys: the same members (or error) as redis-server's."""
    got = []
    for port in (redis_port, kv_port):
        with socket.create_connection(("127.0.0.1", port), timeout=120) as r:
            replies = []
            for argv in [a for a in MANY_ARGS if a[0] in UNORDERED]:
                _call(r, "FLUSHALL")
                for line in SETUP:
                    _call(r, *line)
                reply = _replies(_call(r, *argv))[0]
                replies.append(sorted(reply) if type(reply) is list else str(reply))
            _call(r, "FLUSHALL")
            got.append(replies)
    assert got[0] == got[1]


def test_watch_of_many_keys_in_slices() -> None:
    """WATCH of a million keys: watched a slice at a time; a write to any one is seen."""
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    b, tb = _client(server)
    keys = _names("k", 3 * ARGS)
    a.dataReceived(_cmd("WATCH", *keys) + _cmd("MULTI") + _cmd("PING"))
    b.dataReceived(_cmd("SET", keys[-1], "changed"))
    turns = 0
    while server.busy is not None:
        assert ta.value() == tb.value() == b""  # (the SET waits for the whole WATCH)
        _turn(clock)
        turns += 1
    assert turns >= 2
    clock.advance(0)
    a.dataReceived(_cmd("EXEC"))
    assert _replies(ta.value()) == [b"OK", b"OK", b"QUEUED", None]  # the SET came after
    assert _replies(tb.value()) == [b"OK"]
    # EXEC unwatched them all: they are forgotten a piece per turn, and meanwhile a
    # write to one of them fails no transaction, unless watched again
    assert server.store.watched
    a.dataReceived(_cmd("MULTI") + _cmd("PING"))
    b.dataReceived(_cmd("SET", keys[0], "x"))
    a.dataReceived(_cmd("EXEC") + _cmd("WATCH", keys[1]) + _cmd("MULTI") + _cmd("PING"))
    b.dataReceived(_cmd("SET", keys[1], "y") + _cmd("SET", keys[2], "z"))
    a.dataReceived(_cmd("EXEC"))
    assert _replies(ta.value())[4:] == [b"OK", b"QUEUED", [b"PONG"], b"OK", b"OK", b"QUEUED", None]
    _drive(clock, lambda: not server.store.watched)


def test_many_keys_deleted_even_if_the_client_goes() -> None:
    """A DEL of a million keys, once started, runs to its end and is recorded (Redis's whole)."""
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    admin, _ = _client(server)
    admin.dataReceived(_cmd("MSET", *_pairs("k", A)))
    _settle(server)
    a, _ = _client(server)
    b, tb = _client(server)
    argv = ["DEL", *_names("k", A), "nope"]
    a.dataReceived(_cmd(*argv))
    b.dataReceived(_cmd("DBSIZE"))
    for _ in range(100):  # (a busy machine may run a single step a turn)
        _turn(clock)
        if len(server.store.data) < A:
            break
    assert server.busy is not None and 0 < len(server.store.data) < A  # more than a turn's
    a.connectionLost(None)
    _drive(clock, lambda: server.busy is None and tb.value() != b"")
    assert tb.value() == b":0\r\n" and len(server.store.data) == 0
    assert records[-1] == [x.encode() if type(x) is str else x for x in argv]


@pytest.mark.parametrize("argv", [MANY_ARGS[0], ("SREM", "s", *SOME), ("DEL", *SOME, "s")], ids=_id)
def test_the_aof_record_of_many_arguments_encoded_in_slices(
    argv: tuple[Any, ...], tmp_path: Path
) -> None:
    """
    With the AOF on, a write's record of a million arguments is encoded a piece a step
    while the command runs (0.2 s at once), then written as the whole command's.
    """
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(data=tmp_path / "kv.aof"), clock)
    try:
        a, ta = _client(server)
        a.dataReceived(_cmd("SADD", "s", "m1") + _cmd(*argv))
        turns = 0
        while server.busy is not None:
            _turn(clock)
            turns += 1
        _drive(clock, lambda: len(_replies(ta.value())) == 2)
        data = (tmp_path / "kv.aof").read_bytes()
        assert data.endswith(
            _cmd("SADD", "s", "m1") + (_cmd(*argv) if argv[0] != "SMISMEMBER" else b"")
        )
        assert turns >= 2 and server.aof is not None and server.aof.ready is None
    finally:
        server.stopFactory()
