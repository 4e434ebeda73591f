"""
A ZADD, SADD or HSET of a million arguments builds its new value aside in slices
(bigwork.py), as do COPY of a big value, ZREMRANGEBY* of many members and LREM of
a big list: the rest of the suite is served between slices, every other kv client
waits, and the reply, the stored value, its TTL, the AOF record and WATCH are those
of the command run in place (as inside MULTI/EXEC). On a Clock first, then side by
side with redis-server.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest
from sortedcontainers import SortedList
from test_kv_bigreply import _client, _cmd, _Conn, _drive, _replies, _settle
from test_kv_bigwork import _RecordingAOF, _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, zset
from portsuite_services.kv.bigwork import BIG, PIECE
from portsuite_services.kv.commands.containers import ARGS_HASH, ARGS_SET
from portsuite_services.kv.commands.zsets import ARGS_ZSET
from portsuite_services.kv.stream import Stream

M = 3 * ARGS_ZSET + 5  # ZADD's pairs: a few turns


def _zpairs(n: int, seed: int, members: int) -> list[bytes]:
    """
    C{n} score/member pairs, members drawn among C{members} (so repeated), inf among
    the scores. (Not -0: kv stores it as 0 as Redis's listpack does, where a Redis
    zset this big, a skiplist, keeps -0: a difference of ZADD's, in place or not.)
    """
    rnd = random.Random(seed)
    scores = [b"0", b"+inf", b"-inf", b"1e3", b"-2.5", b"7", b"0.0"]
    out: list[bytes] = []
    for _ in range(n):
        s = rnd.choice(scores) if rnd.random() < 0.1 else b"%d" % rnd.randrange(-50, 50)
        out += (s, b"m%d" % rnd.randrange(members))
    return out


SETUP = [
    ("ZADD", "z", *_zpairs(500, 1, 2000)),
    ("PEXPIRE", "z", "100000000"),
    ("SADD", "s", "a0", "a1", "x"),
    ("HSET", "h", "f0", "old", "g", "v"),
    ("EXPIRE", "h", "1000000"),
]

ARGS_COMMANDS = [
    ("ZADD", "new", *_zpairs(M, 2, 3 * M // 4)),
    ("ZADD", "z", *_zpairs(M, 3, 3000)),
    ("ZADD", "z", "CH", *_zpairs(M, 4, M)),
    ("ZADD", "z", "NX", *_zpairs(M, 5, 3000)),
    ("ZADD", "z", "XX", "CH", *_zpairs(M, 6, 4000)),
    ("ZADD", "z", "GT", "CH", *_zpairs(M, 7, 3000)),
    ("ZADD", "z", "LT", *_zpairs(M, 8, 3000)),
    ("ZADD", "nothing", "XX", *_zpairs(M, 9, 3000)),
    ("ZADD", "z", *_zpairs(M, 10, 3000)[:-2], b"nan", b"m1"),  # an error: nothing changes
    ("ZADD", "s", *_zpairs(M, 11, 3000)),  # WRONGTYPE
    ("SADD", "s", *[b"a%d" % (i // 2) for i in range(ARGS_SET + 3)]),
    ("HSET", "h", *[x for i in range(ARGS_HASH + 1) for x in (b"f%d" % (i % 70000), b"v%d" % i)]),
]


def _server(clock: Clock, setup: list[tuple[Any, ...]] = SETUP) -> KVServer:
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    for argv in setup:
        admin.dataReceived(_cmd(*argv))
    _settle(server)
    return server


def _value(server: KVServer, key: bytes) -> Any:
    v = server.store.data.get(key)
    if type(v) is zset.ZSet:
        assert len(v.sl) == len(v.dict) and all(v.dict[m] == s for s, m in v.sl)
        return list(v.sl)
    return v


def _id(argv: tuple[Any, ...]) -> str:
    flags = [str(a) for a in argv[2:4] if str(a).isalpha()]
    return " ".join([argv[0], argv[1], *flags, str(len(argv))])


@pytest.mark.parametrize("argv", ARGS_COMMANDS, ids=_id)
def test_a_command_of_many_arguments_runs_in_slices(argv: tuple[Any, ...]) -> None:
    check_in_slices(argv, SETUP)


def check_in_slices(
    argv: tuple[Any, ...],
    setup: list[tuple[Any, ...]],
    at: str | None = None,
    record: tuple[Any, ...] | None = None,
) -> None:
    """
    C{argv} on a server loaded with C{setup}: it takes several turns while another
    kv client waits and the reactor serves other calls between them; its reply, the
    value at its key (C{argv[1]}, or C{at}), its AOF record (C{argv}, or C{record})
    and a WATCH on that key are those of the command run whole inside MULTI/EXEC.
    """
    clock = Clock()
    clock.advance(1000)
    server = _server(clock, setup)
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    b, tb = _client(server)
    w, tw = _client(server)
    key = at.encode() if at is not None else argv[1]
    key = key if type(key) is bytes else key.encode()
    w.dataReceived(_cmd("WATCH", key) + _cmd("MULTI") + _cmd("SET", "x", "1"))
    a.dataReceived(_cmd(*argv) + _cmd("PTTL", key) + _cmd("TYPE", key))
    b.dataReceived(_cmd("EXISTS", key))
    w.dataReceived(_cmd("EXEC"))
    turns = 0
    other: list[int] = []
    if server.busy is not None:  # (a wrong type or a missing key is answered at once)
        assert ta.value() == tb.value() == b""
        while server.busy is not None:
            assert tb.value() == b""
            clock.callLater(0, other.append, turns)
            _turn(clock)
            turns += 1
        assert turns >= 2 and other == list(range(turns))
    _drive(clock, lambda: len(_replies(ta.value())) == 3 and tb.value() != b"")
    # as run in place, inside MULTI/EXEC
    clock2 = Clock()
    clock2.advance(1000)
    server2 = _server(clock2, setup)
    whole, twhole = _client(server2)
    whole.dataReceived(
        _cmd("MULTI") + _cmd(*argv) + _cmd("EXEC") + _cmd("PTTL", key) + _cmd("TYPE", key)
    )
    _drive(clock2, lambda: server2.busy is None)  # (EXEC too may go on across turns)
    head = b"+OK\r\n+QUEUED\r\n*1\r\n"
    assert twhole.value().startswith(head) and ta.value() == twhole.value()[len(head) :]
    assert _value(server, key) == _value(server2, key)
    changed = server2.store.dirty != _server(Clock(), setup).store.dirty
    record = argv if record is None else record
    mine = [r for r in records if r[0] == record[0].encode()]  # (EXEC's SET when it ran)
    assert mine == ([[x.encode() if type(x) is str else x for x in record]] if changed else [])
    assert (_replies(tw.value())[-1] is None) == changed  # WATCH saw the change
    assert tb.value() == b":%d\r\n" % (key in server.store.data)


def test_a_sorted_list_laid_out_in_steps_is_a_sorted_list() -> None:
    """sortedcontainers' private layout, filled by zset.sorted_list_steps: still its own."""
    assert all(hasattr(SortedList(), name) for name in zset.LAYOUT)
    pairs = sorted((float(i % 17), b"m%d" % i) for i in range(20 * 1000 + 3))
    steps = zset.sorted_list_steps(pairs)
    turns = 0
    while True:
        try:
            next(steps)
            turns += 1
        except StopIteration as done:
            sl = done.value
            break
    assert turns >= 2 and list(sl) == pairs and len(sl) == len(pairs)
    sl._check()  # (its own invariants)
    assert sl.index(pairs[4321]) == 4321 and sl[-1] == pairs[-1]
    sl.add((3.5, b"x"))
    sl.remove(pairs[0])
    sl._check()
    assert list(sl) == sorted([*pairs[1:], (3.5, b"x")])


# -- side by side with redis-server -------------------------------------------------


def _args_session(port: int, resp3: bool) -> list[bytes]:
    conn = _Conn(port, resp3)
    out = []
    try:
        conn.call("FLUSHALL")
        for argv in SETUP:
            conn.call(*argv)
        for argv in ARGS_COMMANDS:
            out.append(conn.call(*argv))
            key = argv[1]
            out.append(conn.call("TYPE", key))
            out.append(conn.call("ZRANGE", key, "0", "-1", "WITHSCORES"))
            out.append(conn.call("SCARD", key))
            out.append(conn.call("HLEN", key))
    finally:
        conn.sock.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_many_arguments_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    assert _args_session(kv_port, resp3) == _args_session(redis_port, resp3)


# -- whole values copied or cut down ------------------------------------------------

W = BIG + 3 * PIECE + 11  # members of each value: more than a turn's work


def _whole_values(clock: Clock, keys: set[str]) -> KVServer:
    """A server holding those of z, zl, s, h, l and x named in C{keys}."""
    fills = {
        "z": [
            _cmd("ZADD", "z", *[x for i in range(W) for x in (b"%d" % (i % 301), b"m%d" % i)]),
            _cmd("PEXPIRE", "z", "100000000"),
        ],
        "zl": [_cmd("ZADD", "zl", *[x for i in range(W) for x in (b"0", b"m%d" % i)])],
        "s": [_cmd("SADD", "s", *[b"m%d" % i for i in range(W)])],
        "h": [_cmd("HSET", "h", *[x for i in range(W) for x in (b"f%d" % i, b"v")])],
        "l": [_cmd("RPUSH", "l", *[b"v%d" % (i % 13) for i in range(W)])],
        "x": [b"".join(_cmd("XADD", "x", f"{i + 1}-1", "f", str(i)) for i in range(W))],
    }
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    for key in sorted(keys & set(fills)):
        for data in fills[key]:
            admin.dataReceived(data)
    _settle(server)
    return server


WHOLE_COMMANDS = [
    ("COPY", "s", "s2"),
    ("COPY", "h", "h2"),
    ("COPY", "z", "z2"),
    ("COPY", "l", "l2"),
    ("COPY", "x", "x2"),
    ("COPY", "z", "s", "REPLACE"),
    ("COPY", "h", "s"),
    ("ZREMRANGEBYRANK", "z", "0", "-1"),
    ("ZREMRANGEBYRANK", "z", "100", "-100"),
    ("ZREMRANGEBYSCORE", "z", "-inf", "(250"),
    ("ZREMRANGEBYLEX", "zl", "[m1", "(m5"),
    ("LREM", "l", "0", "v3"),
    ("LREM", "l", "-5", "v3"),
    ("LREM", "l", "7", "v12"),
    ("LREM", "l", "0", "nothing"),
]


AT_ONCE = [
    ("COPY", "h", "s"),  # (nothing copied: s is there)
    ("ZREMRANGEBYRANK", "z", "0", "-1"),  # (the key dropped, its value freed lazily)
]


def _state(server: KVServer, key: bytes) -> Any:
    v = _value(server, key)
    if type(v) is Stream:
        return v.ids, v.entries, v.last_id, v.first_id, v.entries_added
    return list(v) if type(v) is deque else v


@pytest.mark.parametrize("argv", WHOLE_COMMANDS, ids=" ".join)
def test_a_big_value_copied_or_cut_in_slices(argv: tuple[str, ...]) -> None:
    clock = Clock()
    clock.advance(1000)
    server = _whole_values(clock, set(argv))
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    b, tb = _client(server)
    dest = argv[2] if argv[0] == "COPY" else argv[1]
    a.dataReceived(_cmd(*argv) + _cmd("PTTL", dest))
    b.dataReceived(_cmd("EXISTS", dest))
    if argv not in AT_ONCE:
        assert ta.value() == tb.value() == b""
        turns = 0
        while server.busy is not None:
            assert tb.value() == b""
            _turn(clock)
            turns += 1
        assert turns >= 1
    _drive(clock, lambda: len(_replies(ta.value())) == 2 and tb.value() != b"")
    clock2 = Clock()
    clock2.advance(1000)
    server2 = _whole_values(clock2, set(argv))
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC") + _cmd("PTTL", dest))
    _drive(clock2, lambda: server2.busy is None)
    head = b"+OK\r\n+QUEUED\r\n*1\r\n"
    assert tw.value().startswith(head) and ta.value() == tw.value()[len(head) :]
    for key in set(argv):
        assert _state(server, key.encode()) == _state(server2, key.encode())
    changed = _replies(ta.value())[0] not in (0, b"OK")
    assert records == ([[x.encode() for x in argv]] if changed else [])
    # (a copy shares nothing with its source)
    if argv[0] == "COPY" and changed and dest != "s":
        a.dataReceived(_cmd("DEL", argv[1]))
        assert _state(server, dest.encode()) == _state(server2, dest.encode())


# -- SORT … BY … ALPHA of a big list -------------------------------------------------


def _sort_session(port: int, resp3: bool) -> list[bytes]:
    """Keys by pattern with ties, missing ones, NULs and prefixes of each other."""
    rnd = random.Random(12)
    conn = _Conn(port, resp3)
    values = [b"", b"a", b"a\0b", b"a\0", b"ab", b"b", b"\0", b"\xff", b"a b"]
    out = []
    try:
        conn.call("FLUSHALL")
        n = BIG + 3 * PIECE
        conn.call("RPUSH", "l", *[b"%d" % rnd.randrange(n) for _ in range(n)])
        conn.call("MSET", *[x for i in range(0, n, 3) for x in (b"w_%d" % i, rnd.choice(values))])
        for argv in (
            ("SORT", "l", "BY", "w_*", "ALPHA"),
            ("SORT", "l", "BY", "w_*", "ALPHA", "DESC"),
            ("SORT", "l", "BY", "w_*", "ALPHA", "GET", "#", "GET", "w_*"),
            ("SORT", "l", "BY", "w_*", "ALPHA", "STORE", "d"),
            ("LRANGE", "d", "0", "-1"),
            ("SORT", "l", "BY", "w_*", "ALPHA", "DESC", "STORE", "d"),
            ("LRANGE", "d", "0", "-1"),
        ):
            out.append(conn.call(*argv))
    finally:
        conn.sock.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_sort_by_alpha_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    assert _sort_session(kv_port, resp3) == _sort_session(redis_port, resp3)
