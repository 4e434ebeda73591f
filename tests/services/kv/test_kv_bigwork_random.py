"""
Random members with a big count (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER, SPOP) and
MEMORY USAGE … SAMPLES 0 are computed in slices (bigwork.py, randompick.py): the
rest of the suite is served between slices, every other kv client waits for the
whole command, and the reply is a valid random sample with Redis's semantics
(distinct members for a positive count, repeats for a negative one), recorded in
the AOF as what was taken. On a Clock first (values of their own, just big enough
to take several turns), then side by side with redis-server.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _Conn, _drive, _replies, _settle
from test_kv_bigwork import _RecordingAOF, _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, randompick
from portsuite_services.kv.bigwork import BIG, run_through
from portsuite_services.kv.commands.extras import SPLIT

N = 24000  # each value: SPOP of half of it is just over bigwork.BIG's work
assert N + N // 2 >= BIG


def _server() -> tuple[Clock, KVServer]:
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    for key in ("s", "p"):
        admin.dataReceived(_cmd("SADD", key, *[b"m%d" % i for i in range(N)]))
    admin.dataReceived(_cmd("HSET", "h", *[x for i in range(N) for x in (b"f%d" % i, b"v%d" % i)]))
    admin.dataReceived(
        _cmd("ZADD", "z", *[x for i in range(N) for x in (b"%d.5" % (i % 99), b"m%d" % i)])
    )
    _settle(server)
    return clock, server


def _members(n: int = N) -> list[bytes]:
    return [b"m%d" % i for i in range(n)]


def _pairs(reply: Any, resp3: bool) -> list[tuple[Any, Any]]:
    """A WITHVALUES/WITHSCORES reply as pairs: flat in RESP2, [f, v] pairs in RESP3."""
    if resp3:
        assert all(type(p) is list and len(p) == 2 for p in reply)
        return [tuple(p) for p in reply]
    assert len(reply) % 2 == 0
    return list(zip(reply[::2], reply[1::2], strict=True))


def _check(argv: tuple[str, ...], reply: Any, resp3: bool) -> None:
    """Is C{reply} a valid answer of C{argv} on L{_server}'s values?"""
    name, count = argv[0], int(argv[2])
    if name == "SPOP":
        assert len(reply) == len(set(reply)) == count and set(reply) <= set(_members())
        return
    universe: dict[bytes, Any]
    if name == "HRANDFIELD":
        universe = {b"f%d" % i: b"v%d" % i for i in range(N)}
    else:
        universe = {b"m%d" % i: float(b"%d.5" % (i % 99)) for i in range(N)}
    if len(argv) == 4:  # WITHVALUES / WITHSCORES: each with its own value
        pairs = _pairs(reply, resp3)
        assert all(universe[k] == (v if name == "HRANDFIELD" else float(v)) for k, v in pairs)
        keys = [k for k, _ in pairs]
    else:
        keys = reply
    if count > 0:  # distinct, as many as asked for (or all)
        assert len(keys) == len(set(keys)) == min(count, N)
    else:  # drawn independently: repeats
        assert len(keys) == -count and len(set(keys)) < len(keys)
    assert set(keys) <= set(universe)


RANDOM_COMMANDS = [
    ("SRANDMEMBER", "s", str(N)),
    ("SRANDMEMBER", "s", str(2 * N)),
    ("SRANDMEMBER", "s", str(-N)),
    ("HRANDFIELD", "h", str(N), "WITHVALUES"),
    ("HRANDFIELD", "h", str(-N)),
    ("HRANDFIELD", "h", str(-N), "WITHVALUES"),
    ("ZRANDMEMBER", "z", str(N - 7), "WITHSCORES"),
    ("ZRANDMEMBER", "z", str(-N)),
    ("SPOP", "p", str(N // 2)),
]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("argv", RANDOM_COMMANDS, ids=" ".join)
def test_random_members_are_drawn_in_slices(argv: tuple[str, ...], resp3: bool) -> None:
    clock, server = _server()
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    b, tb = _client(server)
    if resp3:
        a.dataReceived(_cmd("HELLO", "3"))
        ta.clear()
    a.dataReceived(_cmd(*argv) + _cmd("PING", "after"))
    assert ta.value() == b""  # drawn on the next turns
    b.dataReceived(_cmd("SADD", argv[1], "new") + _cmd("PING"))  # (wrong type but for sets)
    other: list[int] = []
    turns = 0
    while type(a.blocked).__name__ == "Working":
        assert tb.value() == b""  # b waits for the whole command
        clock.callLater(0, other.append, turns)
        _turn(clock)
        turns += 1
    assert turns >= 2 and other == list(range(turns))
    _drive(clock, lambda: a.blocked is None and b"after" in ta.value())
    reply, after = _replies(ta.value())
    assert after == b"after"
    _check(argv, reply, resp3)
    assert tb.value().endswith(b"+PONG\r\n")  # (b ran after it)
    if argv[0] == "SPOP":  # the popped members are gone, and recorded as taken
        left = server.store.data[b"p"]
        assert len(left) == N - len(reply) + 1 and not left & set(reply)
        assert records[0] == [b"SREM", b"p", *reply] and records[1][0] == b"SADD"
        assert ta.value().startswith(b"~%d\r\n" % len(reply) if resp3 else b"*")
    else:
        assert records == ([[b"SADD", b"s", b"new"]] if argv[1] == "s" else [])
    # the same command run whole (MULTI/EXEC) answers as validly
    clock2, server2 = _server()
    whole, tw = _client(server2)
    if resp3:
        whole.dataReceived(_cmd("HELLO", "3"))
        tw.clear()
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(clock2, lambda: server2.busy is None)  # (EXEC too may go on across turns)
    _check(argv, _replies(tw.value())[-1][0], resp3)
    assert clock.getDelayedCalls() == [] or server.lazyfree.pending


def test_spop_of_all_of_a_big_set_drops_the_key_and_frees_it_in_slices() -> None:
    clock, server = _server()
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    big = server.store.data[b"p"]
    a.dataReceived(_cmd("SPOP", "p", str(N + 5)) + _cmd("EXISTS", "p"))
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    popped, exists = _replies(ta.value())
    assert sorted(popped) == sorted(_members()) and exists == 0
    assert records == [[b"SREM", b"p", *popped]]
    _drive(clock, lambda: server.lazyfree.pending == 0)
    assert len(big) == 0


def test_memory_usage_of_every_element_in_slices() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    argv = ("MEMORY", "USAGE", "h", "SAMPLES", "0")
    a.dataReceived(_cmd(*argv))
    b.dataReceived(_cmd("HSET", "h", "a-longer-field-than-the-others", "v" * 100))
    assert ta.value() == tb.value() == b""
    _turn(clock)
    assert ta.value() == tb.value() == b"" and server.busy is not None
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")
    assert tb.value() == b":1\r\n"
    # as run whole, before b's field came
    clock2, server2 = _server()
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(clock2, lambda: server2.busy is None)
    assert _replies(tw.value())[-1] == _replies(ta.value())
    assert _replies(ta.value())[0] > N * 10


@pytest.mark.parametrize("n", [1, 2, 400, 5000])
def test_drawn_in_steps_as_at_once(n: int) -> None:
    """Both ways of L{randompick}'s steps (a copy, or a walk to sorted positions)."""
    coll = set(range(n))
    seen: set[int] = set()
    for k in {1, n // 9 + 1, n // 2 + 1, n}:
        for _ in range(20 if n > 2 else 4):
            got = run_through(randompick.sample_steps(coll, k))
            assert len(got) == len(set(got)) == k and set(got) <= coll
            seen.update(got)
            drawn = run_through(randompick.choices_steps(coll, k))
            assert len(drawn) == k and set(drawn) <= coll
    assert seen == coll  # every element can be drawn
    many = run_through(randompick.choices_steps(coll, 4 * n + 10))
    assert len(set(many)) < len(many)  # repeats


def test_a_sparse_draw_is_uniform_enough() -> None:
    """Drawing 50 of 400 positions 300 times: every element comes, none far too often."""
    coll = {b"e%d" % i for i in range(400)}
    counts = dict.fromkeys(coll, 0)
    for _ in range(300):
        for x in run_through(randompick.sample_steps(coll, 50)):
            counts[x] += 1
    # 37.5 expected each: (a binomial's tail past 90 or under 5 is below 1e-12)
    assert 5 <= min(counts.values()) and max(counts.values()) <= 90


# -- side by side with redis-server -------------------------------------------------


def _shape(reply: bytes, resp3: bool, argv: tuple[str, ...]) -> tuple[Any, ...]:
    """What a random reply is, whatever was drawn: its header, size and validity."""
    parsed = _replies(reply)[0]
    head = reply[: reply.index(b"\r\n")]
    if isinstance(parsed, list) and len(argv) == 4:
        keys = [k for k, _ in _pairs(parsed, resp3)]
    else:
        keys = parsed if isinstance(parsed, list) else [parsed]
    return head, reply[len(head) + 2 : len(head) + 3], len(keys), len(set(keys)) == len(keys)


def _random_session(port: int, resp3: bool) -> list[Any]:
    conn = _Conn(port, resp3)
    n = N
    out: list[Any] = []
    try:
        conn.call("FLUSHALL")
        conn.call("SADD", "s", *_members(n))
        conn.call("SADD", "p", *_members(n))
        conn.call("HSET", "h", *[x for i in range(n) for x in (b"f%d" % i, b"v%d" % i)])
        conn.call("ZADD", "z", *[x for i in range(n) for x in (b"%d.5" % (i % 99), b"m%d" % i)])
        for argv in (
            *RANDOM_COMMANDS,
            ("ZRANDMEMBER", "z", str(-N), "WITHSCORES"),
            ("SRANDMEMBER", "s", "3"),
            ("SRANDMEMBER", "s", "-3"),
            ("SPOP", "p", str(2 * N)),
            ("SPOP", "p", "5"),
            ("SPOP", "p"),
        ):
            out.append((argv, _shape(conn.call(*argv), resp3, argv)))
        out.append(_replies(conn.call("SCARD", "p")))
        out.append(_replies(conn.call("EXISTS", "p")))
    finally:
        conn.sock.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_random_replies_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    random.seed(10)
    ours = _random_session(kv_port, resp3)
    assert ours == _random_session(redis_port, resp3)


def test_spop_of_many_leaves_the_others_in_a_new_set() -> None:
    """Past SPLIT members popped, the set is swapped for one of the others (its TTL kept)."""
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    n = SPLIT + 9000
    records: list[list[bytes]] = []
    a, ta = _client(server)
    w, tw = _client(server)
    a.dataReceived(_cmd("SADD", "big", *_members(n)) + _cmd("PEXPIRE", "big", "100000000"))
    _settle(server)
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    old = server.store.data[b"big"]
    ta.clear()
    w.dataReceived(_cmd("WATCH", "big") + _cmd("MULTI") + _cmd("PING"))
    a.dataReceived(_cmd("SPOP", "big", str(SPLIT)) + _cmd("PTTL", "big") + _cmd("SCARD", "big"))
    w.dataReceived(_cmd("EXEC"))
    _turn(clock)
    assert ta.value() == b"" and server.busy is not None
    _drive(clock, lambda: len(_replies(ta.value())) == 3)
    popped, pttl, card = _replies(ta.value())
    assert len(popped) == len(set(popped)) == SPLIT and 0 < pttl <= 100000000 and card == n - SPLIT
    left = server.store.data[b"big"]
    assert left is not old and not left & set(popped) and left | set(popped) == set(_members(n))
    assert records == [[b"SREM", b"big", *popped]]
    assert _replies(tw.value())[-1] is None  # the watched key changed
    _drive(clock, lambda: server.lazyfree.pending == 0)
    assert len(old) == 0  # (the old set freed in slices)
