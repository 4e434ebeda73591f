"""
Set operations and SORT over big collections are computed in slices (bigwork.py):
the rest of the suite is served between slices, every other kv client waits for
the whole command (its reply is atomic, as Redis's), and the reply, the stored
value, the AOF record and WATCH are those of the command run whole. Values a
command drops (SET over a set, RENAME over one, expiry, FLUSHDB…) are freed in
slices too. On a Clock and StringTransport first, then side by side with
redis-server on real sockets.
"""

from __future__ import annotations

import gc
import math
import random
from typing import Any

import pytest
import redis
from test_kv_bigreply import _client, _cmd, _Conn, _drive, _replies, _settle
from twisted.internet.task import Clock

from portsuite import gcpause
from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import BIG, MAX_STEPS, PIECE

N = BIG + MAX_STEPS * PIECE + 123  # more than one turn of steps


def _fill(server: KVServer, n: int = N, only: set[str] | None = None) -> None:
    """The big values, or C{only} those named (C{"k"}: the keys k0, k1…)."""
    admin, _ = _client(server)
    values = {
        "s": lambda: _cmd("SADD", "s", *[b"m%d" % i for i in range(n)]),
        "s2": lambda: _cmd("SADD", "s2", *[b"m%d" % (3 * i) for i in range(n)]),
        "s3": lambda: _cmd("SADD", "s3", *[b"m%d" % (2 * i) for i in range(n)]),
        "z": lambda: _cmd(
            "ZADD", "z", *[x for i in range(n) for x in (b"%d" % (i % 999 - 499), b"m%d" % i)]
        ),
        "z2": lambda: _cmd(
            "ZADD", "z2", *[x for i in range(n) for x in (b"%d.5" % (i % 77), b"m%d" % (3 * i))]
        ),
        "l": lambda: _cmd("RPUSH", "l", *[b"%d" % ((i * 7919) % n) for i in range(n)]),
        "w": lambda: _cmd("RPUSH", "w", *[b"w%d" % ((i * 7919) % n) for i in range(n)]),
        "h": lambda: _cmd("HSET", "h", *[x for i in range(n) for x in (b"f%d" % i, b"v")]),
        "k": lambda: _cmd("MSET", *[x for i in range(n) for x in (b"k%d" % i, b"v")]),
        "x": lambda: b"".join(_cmd("XADD", "x", f"{i + 1}-{i % 3}", "f", str(i)) for i in range(n)),
    }
    for name, request in values.items():
        if only is None or name in only:
            admin.dataReceived(request())
    _settle(server)


def _filled(only: set[str] | None = None) -> tuple[Clock, KVServer]:
    """A server on a Clock, holding the big values of L{_fill} (or C{only} those)."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    _fill(server, only=only)
    return clock, server


def _read_by(argv: tuple[str, ...]) -> set[str]:
    """The values of L{_fill} a command reads (and "l", which the test changes meanwhile)."""
    return {*argv, "l", *(["k"] if argv[0] in ("KEYS", "SCAN") else [])}


def _turn(clock: Clock) -> None:
    """One turn of the reactor: the calls due now, not those they schedule."""
    for call in [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]:
        clock.calls.remove(call)
        call.called = True
        call.func(*call.args, **call.kw)


BIG_COMMANDS = [
    ("SUNION", "s", "s2", "s3"),
    ("SINTER", "s", "s2", "s3"),
    ("SDIFF", "s", "s2", "s3"),
    ("SINTERCARD", "3", "s", "s2", "s3"),
    ("SINTERCARD", "2", "s", "s3", "LIMIT", str(N)),
    ("SUNIONSTORE", "dst", "s2", "s3"),
    ("SINTERSTORE", "dst", "s", "s3"),
    ("SDIFFSTORE", "dst", "s", "s2"),
    ("ZUNIONSTORE", "dst", "2", "z", "z2"),
    ("ZUNIONSTORE", "dst", "3", "z", "z2", "s", "WEIGHTS", "2", "-1", "0.5", "AGGREGATE", "MAX"),
    ("ZINTERSTORE", "dst", "2", "z", "z2", "WEIGHTS", "1", "3"),
    ("ZINTERSTORE", "dst", "2", "z", "s", "AGGREGATE", "MIN"),
    ("ZDIFFSTORE", "dst", "2", "z", "z2"),
    ("ZUNION", "2", "z", "s", "WITHSCORES"),
    ("ZUNION", "2", "z2", "z", "WEIGHTS", "-1", "0", "AGGREGATE", "MIN"),
    ("ZINTER", "2", "z", "z2", "WITHSCORES"),
    ("ZINTER", "2", "z2", "s"),
    ("ZINTERCARD", "2", "z", "s"),
    ("ZINTERCARD", "2", "z", "s3", "LIMIT", str(N // 2)),
    ("ZDIFF", "2", "s", "z2", "WITHSCORES"),
    ("ZDIFF", "3", "z", "s3", "z2"),
    ("ZRANGESTORE", "dst", "z", "0", "-1"),
    ("ZRANGESTORE", "dst", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "5", str(N)),
    ("ZRANGESTORE", "dst", "z2", "[m", "(m9", "BYLEX"),
    ("SMEMBERS", "s"),
    ("HGETALL", "h"),
    ("HKEYS", "h"),
    ("HVALS", "h"),
    ("KEYS", "*"),
    ("KEYS", "k1*"),
    ("SSCAN", "s", "0", "COUNT", "10"),
    ("HSCAN", "h", "0"),
    ("SCAN", "0", "MATCH", "k*"),
    ("SORT", "l"),
    ("SORT", "l", "DESC", "LIMIT", "10", "20"),
    ("SORT", "w", "ALPHA"),
    ("SORT", "l", "STORE", "dst"),
    ("SORT", "l", "BY", "nosort", "GET", "#", "GET", "nothing_*"),
    ("DUMP", "s"),
    ("DUMP", "h"),
    ("DUMP", "l"),
    ("DUMP", "x"),
]


@pytest.mark.parametrize("argv", BIG_COMMANDS, ids=" ".join)
def test_others_are_served_between_slices_and_kv_clients_after(argv: tuple[str, ...]) -> None:
    clock, server = _filled(_read_by(argv))
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd(*argv) + _cmd("PING", "after"))
    assert ta.value() == b""  # nothing yet: computed on the next turns
    # another client changes what the command reads, and pings
    b.dataReceived(_cmd("SADD", "s", "new") + _cmd("RPUSH", "l", "-1") + _cmd("PING"))
    assert tb.value() == b""  # it waits for the whole command (atomic, as in Redis)
    other = []  # what another service of the suite does meanwhile: served every turn
    turns = 0
    while True:
        clock.callLater(0, other.append, turns)
        _turn(clock)
        turns += 1
        if type(a.blocked).__name__ != "Working":
            break  # (done: the waiting clients run, after it)
        assert tb.value() == b""
    assert turns >= 2 and other == list(range(turns))
    _drive(clock, lambda: a.blocked is None and b"after" in ta.value())
    assert tb.value() == b":1\r\n:%d\r\n+PONG\r\n" % (N + 1)
    # the reply is the command's at the time it ran: as in MULTI/EXEC (which steps the
    # work itself, multiwork.py)
    clock2, server2 = _filled(_read_by(argv))
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC") + _cmd("PING", "after"))
    _drive(clock2, lambda: b"after" in tw.value())
    head = b"+OK\r\n+QUEUED\r\n*1\r\n"
    assert tw.value().startswith(head) and ta.value() == tw.value()[len(head) :]
    assert clock.getDelayedCalls() == [] and server.busy is None
    if argv[0].startswith("Z") and argv[0].endswith("STORE"):  # the same sorted set stored
        mine, whole_z = server.store.data[b"dst"], server2.store.data[b"dst"]
        assert mine.dict == whole_z.dict and list(mine.sl) == list(whole_z.sl)
        assert all(math.copysign(1, s) == 1 for s, _ in mine.sl if s == 0)  # (-0 stored as 0)


def test_a_store_in_slices_is_recorded_and_watched_as_one_command() -> None:
    clock, server = _filled({"s2", "s3"})
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    w, tw = _client(server)
    w.dataReceived(_cmd("WATCH", "dst") + _cmd("MULTI") + _cmd("SET", "x", "1"))
    a.dataReceived(_cmd("SUNIONSTORE", "dst", "s2", "s3") + _cmd("SCARD", "dst"))
    w.dataReceived(_cmd("EXEC"))
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    union = len({3 * i for i in range(N)} | {2 * i for i in range(N)})
    assert _replies(ta.value()) == [union, union]
    assert records == [[b"SUNIONSTORE", b"dst", b"s2", b"s3"]]
    assert _replies(tw.value())[-1] is None  # the watched key changed: EXEC did nothing


class _RecordingAOF:
    """What the dispatcher feeds to the append-only file."""

    ok = True
    db = 0
    buf: list[bytes] = []
    tracker = None  # (no compaction without fork)

    def __init__(self, records: list[list[bytes]]):
        self.records = records

    def feed(self, argv: list[bytes]) -> None:
        self.records.append(list(argv))

    def select(self, db: int) -> None:
        self.db = db

    def feed_db(self, db: int, argv: list[bytes]) -> None:
        self.records.append(list(argv))

    def flush(self) -> None:
        pass


def test_a_big_restore_is_read_in_slices() -> None:
    clock, server = _filled({"h"})
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("DUMP", "h"))
    _drive(clock, lambda: a.blocked is None and ta.value() != b"")
    payload = _replies(ta.value())[0]
    ta.clear()
    a.dataReceived(_cmd("RESTORE", "copy", "0", payload) + _cmd("HLEN", "copy"))
    b.dataReceived(_cmd("EXISTS", "copy"))
    assert ta.value() == tb.value() == b""  # read on the next turns; b waits for it
    _turn(clock)
    assert ta.value() == tb.value() == b"" and server.busy is not None
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    assert _replies(ta.value()) == [b"OK", N] and tb.value() == b":1\r\n"
    assert server.store.data[b"copy"] == server.store.data[b"h"]
    # a payload garbled past its first slice: the error, nothing stored
    bad = payload[:-500000] + b"x" + payload[-499999:]
    ta.clear()
    a.dataReceived(_cmd("RESTORE", "bad", "0", bad) + _cmd("EXISTS", "bad"))
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    assert ta.value() == b"-ERR DUMP payload version or checksum are wrong\r\n:0\r\n"


def test_an_error_found_in_a_slice_is_the_reply() -> None:
    clock, server = _filled({"l"})
    a, ta = _client(server)
    a.dataReceived(_cmd("RPUSH", "l", "not-a-number"))
    ta.clear()
    a.dataReceived(_cmd("SORT", "l", "STORE", "dst") + _cmd("EXISTS", "dst"))
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    assert ta.value() == b"-ERR One or more scores can't be converted into double\r\n:0\r\n"


def test_a_client_gone_mid_command_lets_the_others_go_on() -> None:
    clock, server = _filled({"s", "s2"})
    a, _ = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("SUNIONSTORE", "dst", "s", "s2"))
    b.dataReceived(_cmd("PING"))
    assert tb.value() == b""
    _gone(clock, server, a, b, tb, "dst")


def _gone(clock: Clock, server: KVServer, a: Any, b: Any, tb: Any, key: str) -> None:
    """Client C{a} goes mid-command: C{b}'s PING is answered, C{key} never half stored."""
    a.connectionLost(None)
    _drive(clock, lambda: tb.value() != b"")
    assert tb.value() == b"+PONG\r\n" and server.busy is None
    b.dataReceived(_cmd("EXISTS", key))
    assert tb.value().endswith(b":0\r\n")  # never half stored
    clock.advance(0)
    assert clock.getDelayedCalls() == []


def test_a_key_expiring_meanwhile_is_seen_as_at_the_start() -> None:
    """The clock of expiry stands still during the command (Redis's command time)."""
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    _fill(server, only={"s2", "s3"})
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    a.dataReceived(_cmd("PEXPIRE", "s3", "1"))
    ta.clear()
    a.dataReceived(_cmd("SUNIONSTORE", "dst", "s2", "s3") + _cmd("EXISTS", "s3"))
    clock.advance(0.5)  # s3's time passes while the command runs
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    union = len({3 * i for i in range(N)} | {2 * i for i in range(N)})
    assert _replies(ta.value()) == [union, 0]  # s3 was there for it, gone after
    # so the file replays to the same keys: the union first, then s3's expiry
    assert [r[:2] for r in records[1:]] == [[b"SUNIONSTORE", b"dst"], [b"DEL", b"s3"]]


# -- values dropped by a command are freed in slices ----------------------------------


@pytest.mark.parametrize(
    "commands",
    [
        [("SET", "s", "x")],
        [("RENAME", "s3", "s")],
        [("SUNIONSTORE", "s", "s2")],
        [("PEXPIRE", "s", "1"), ("wait",), ("EXISTS", "s")],
        [("MULTI",), ("DEL", "s"), ("EXEC",)],
        [("MOVE", "s", "1"), ("SELECT", "1"), ("FLUSHDB",)],
        [("RESTORE", "s", "0", "payload", "REPLACE")],
    ],
    ids=lambda cmds: " ".join(c[0] for c in cmds),
)
def test_dropped_values_are_freed_in_slices(commands: list[tuple[str, ...]]) -> None:
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    _fill(server, only={"s", "s2", "s3"})
    big = server.store.data[b"s"]
    a, ta = _client(server)
    a.dataReceived(_cmd("SET", "payload", "x") + _cmd("DUMP", "payload"))
    payload = _replies(ta.value())[-1]
    for argv in commands:
        if argv == ("wait",):
            clock.advance(0.2)
            continue
        a.dataReceived(_cmd(*[payload if x == "payload" else x for x in argv]))
        while server.busy is not None:  # (SUNIONSTORE: computed in slices first)
            _turn(clock)
    assert len(big) == N and server.lazyfree.pending == 1  # not freed at once…
    _drive(clock, lambda: server.lazyfree.pending == 0)
    assert len(big) == 0  # …but a slice per turn
    a.dataReceived(_cmd("INFO", "memory"))
    assert b"lazyfree_pending_objects:0" in ta.value() and server.lazyfree.freed >= 1


def test_a_big_stream_is_freed_in_slices() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    for i in range(2000):
        a.dataReceived(_cmd("XADD", "x", "*", "f", str(i)))
    stream = server.store.data[b"x"]
    a.dataReceived(_cmd("SET", "x", "v"))
    assert len(stream) == 2000 and server.lazyfree.pending == 1
    _drive(clock, lambda: server.lazyfree.pending == 0)
    assert len(stream) == 0


# -- side by side with redis-server -------------------------------------------------


def _session(port: int, resp3: bool) -> list[Any]:
    rnd = random.Random(10)
    conn = _Conn(port, resp3)
    out: list[Any] = []
    try:
        conn.call("FLUSHALL")
        n = N
        conn.call("SADD", "s", *[b"m%d" % i for i in range(n)])
        conn.call("SADD", "s2", *[b"m%d" % (3 * i) for i in range(n)])
        conn.call("SADD", "i", *[b"%d" % (5 * i) for i in range(n)])
        conn.call(
            "ZADD", "z", *[x for i in range(n) for x in (b"%d" % (i % 999 - 499), b"m%d" % i)]
        )
        conn.call(
            "ZADD", "z2", *[x for i in range(n) for x in (b"%d.5" % (i % 77), b"m%d" % (7 * i))]
        )
        nums = [b"%d" % rnd.randrange(-n, n) for _ in range(n)]
        nums += [b"1.5", b"-0", b"0", b"1e3", b"-inf", b"+inf", b"007"]
        conn.call("RPUSH", "l", *nums)
        conn.call("RPUSH", "w", *[b"w%d" % rnd.randrange(n) for _ in range(n)])
        for i in range(0, 200):
            conn.call("SET", f"weight_{i}", str(rnd.randrange(50)))
        conn.call("RPUSH", "b", *[str(i) for i in range(200)] * 200)
        pipe = redis.Redis(port=port).pipeline(transaction=False)
        for i in range(n // 4):
            pipe.xadd("x", {"f": str(i), "g": "v" * (i % 7)}, id=f"{i + 1}-{i % 3}")
        pipe.execute()
        # sorted: element for element, as redis-server answers them
        for argv in (
            ("SORT", "l"),
            ("SORT", "l", "DESC"),
            ("SORT", "l", "LIMIT", "100", "50"),
            ("SORT", "w", "ALPHA"),
            ("SORT", "w", "ALPHA", "DESC", "LIMIT", "0", "1000"),
            ("SORT", "b", "BY", "weight_*"),
            ("SORT", "b", "BY", "weight_*", "GET", "#", "GET", "weight_*", "LIMIT", "0", "99"),
            ("SORT", "b", "BY", "nosort", "GET", "#", "GET", "weight_*", "GET", "nothing_*"),
            ("SORT", "l", "STORE", "sl"),
            ("LRANGE", "sl", "0", "-1"),
            ("XRANGE", "x", "-", "+"),
            ("XREVRANGE", "x", "+", "-", "COUNT", "10000"),
            ("SINTERCARD", "2", "s", "s2"),
            ("SINTERCARD", "2", "s", "s2", "LIMIT", "1000"),
            ("SUNIONSTORE", "u", "s", "s2", "i"),
            ("SINTERSTORE", "n", "s", "s2"),
            ("SDIFFSTORE", "d", "s", "s2"),
            ("SCARD", "u"),
            ("SCARD", "n"),
            ("SCARD", "d"),
            (
                "ZUNIONSTORE",
                "zu",
                "3",
                "z",
                "z2",
                "s2",
                "WEIGHTS",
                "2",
                "-1",
                "0.5",
                "AGGREGATE",
                "MAX",
            ),
            ("ZRANGE", "zu", "0", "-1", "WITHSCORES"),
            ("ZINTERSTORE", "zi", "2", "z", "z2", "WEIGHTS", "1", "3"),
            ("ZRANGE", "zi", "0", "-1", "WITHSCORES"),
            ("ZDIFFSTORE", "zd", "2", "z", "s2"),
            ("ZRANGE", "zd", "0", "-1", "WITHSCORES"),
            ("ZUNION", "2", "z", "s", "WITHSCORES"),
            ("ZUNION", "2", "z2", "z", "WEIGHTS", "-1", "0", "AGGREGATE", "MIN"),
            ("ZINTER", "2", "z", "z2", "WITHSCORES"),
            ("ZINTER", "2", "z", "s2", "AGGREGATE", "MAX"),
            ("ZINTERCARD", "2", "z", "s2"),
            ("ZINTERCARD", "2", "z", "s2", "LIMIT", "1000"),
            ("ZDIFF", "2", "z", "z2", "WITHSCORES"),
            ("ZDIFF", "3", "s", "z2", "i"),
            ("ZRANGESTORE", "zr", "z", "100", "-100"),
            ("ZRANGE", "zr", "0", "-1", "WITHSCORES"),
            ("ZRANGESTORE", "zr", "z", "+inf", "(0", "BYSCORE", "REV", "LIMIT", "10", "100000"),
            ("ZRANGE", "zr", "0", "-1", "WITHSCORES"),
        ):
            out.append(conn.call(*argv))
        # sets: the same members (their order is each server's own)
        for argv in (
            ("SUNION", "s", "s2", "i"),
            ("SINTER", "s", "s2"),
            ("SDIFF", "s", "s2", "nothing"),
            ("SMEMBERS", "u"),
        ):
            out.append(sorted(_replies(conn.call(*argv))[0]))
        out.append(conn.call("DBSIZE"))
    finally:
        conn.sock.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_set_operations_and_sorts_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    ours = _session(kv_port, resp3)
    assert ours == _session(redis_port, resp3)


def test_a_set_still_freed_lazily_after_keys_come_and_go() -> None:
    """SET skips looking at what it replaces only while no key holds a container."""
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    members = [b"m%d" % i for i in range(1000)]
    for argv in (
        ("SADD", "a", *members),
        ("RPUSH", "b", *members),
        ("SET", "a", "now a string"),
        ("DEL", "b"),
        ("SADD", "c", *members),
        ("RENAME", "c", "d"),
        ("HSET", "e", "f", "v"),
        ("PEXPIRE", "e", "1"),
        ("SWAPDB", "0", "1"),
        ("SWAPDB", "1", "0"),
        ("SELECT", "1"),
        ("SADD", "x", "y"),
        ("FLUSHDB",),
        ("SELECT", "0"),
    ):
        a.dataReceived(_cmd(*argv))
    clock.advance(0.5)
    a.dataReceived(_cmd("EXISTS", "e"))  # (expired now)
    _drive(clock, lambda: server.lazyfree.pending == 0)
    big = server.store.data[b"d"]
    a.dataReceived(_cmd("SET", "d", "x"))
    assert server.lazyfree.pending == 1 and len(big) == 1000  # not freed at once
    _drive(clock, lambda: server.lazyfree.pending == 0)
    assert len(big) == 0 and [db.boxed for db in server.dbs[:2]] == [0, 0]


@pytest.mark.parametrize(
    "argv",
    [
        ("ZUNION", "2", "z", "z2", "WITHSCORES"),
        ("ZINTER", "2", "z", "s"),
        ("ZRANGE", "z", "0", "-1"),
    ],
    ids=" ".join,
)
def test_the_pairs_of_a_sliced_zset_reply_are_freed_in_slices(argv: tuple[str, ...]) -> None:
    """A million new (score, member) pairs dropped at once would hold the loop too."""
    clock, server = _filled(set(argv))
    a, ta = _client(server)
    a.dataReceived(_cmd(*argv))
    while a.blocked is not None or not ta.value():
        _turn(clock)
    assert server.lazyfree.pending == 1  # the reply's list, not freed at once…
    pairs = server.lazyfree.queue[0]
    assert type(pairs) is list and len(pairs) >= N // 2
    n = len(pairs)
    _drive(clock, lambda: server.lazyfree.pending == 0)
    assert pairs == []  # …but a slice per turn
    assert len(_replies(ta.value())) == 1 and len(_replies(ta.value())[0]) >= n


def test_what_work_in_slices_builds_is_frozen_not_walked_by_collections() -> None:
    # under twistd (portsuite.gcpause): a million-member result would otherwise be
    # walked by young collections and timer passes while it grows (30-60 ms each)
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    admin.dataReceived(_cmd("SADD", "s2", *[b"m%d" % (3 * i) for i in range(N)]))
    admin.dataReceived(_cmd("SADD", "s3", *[b"m%d" % (2 * i) for i in range(N)]))
    owner = gcpause.OldGeneration(clock)
    owner.start()
    try:
        a, ta = _client(server)
        clock.advance(1)  # (the SADDs of N, built aside in slices: their last freeze…)
        clock.advance(1)  # (…a while ago now)
        before = owner.freezes
        a.dataReceived(_cmd("SUNIONSTORE", "dst", "s2", "s3"))
        while not _replies(ta.value()):
            clock.advance(gcpause.FREEZE_EVERY / 4)  # (the reactor's turns take time)
        # before each step (what the last one made, young: not walked by the next's
        # collections), and at the end; a step handles a PIECE of the 2N members
        assert before + 1 < owner.freezes <= before + 2 + 2 * (2 * N) // PIECE
        union = server.store.data[b"dst"]
        assert len(union) == len({3 * i for i in range(N)} | {2 * i for i in range(N)})
        assert not any(o is union for o in gc.get_objects())  # frozen: no pass sees it
    finally:
        owner.stop()
        gc.unfreeze()
