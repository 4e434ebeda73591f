"""
Stream commands over many entries or IDs run in slices (bigwork.py), as bench/kv_sweep.py
asked: the rest of the suite is served between slices while every other kv client
waits; the reply is the one of the command run whole (inside MULTI/EXEC), the stream
left is the same, and what the AOF got (a write is recorded a piece at a time, each
piece a command of its own) replays to that same stream, also when the client is gone
half-way. On a Clock; side by side with redis-server in test_kv_diff_streams.py.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _drive, _replies, _settle
from test_kv_bigwork import _RecordingAOF, _turn
from test_kv_sweep import _busy_turns
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, rdb
from portsuite_services.kv.commands.streams import _trim_args
from portsuite_services.kv.stream import NACK, PEL, Consumer, Stream

N = 6000  # entries: a read of them is big work (commands.streams.WEIGHT each)


def _ids(lo: int, hi: int, step: int = 1) -> list[bytes]:
    return [b"%d-1" % i for i in range(lo, hi, step)]


SETUP: list[tuple[Any, ...]] = [
    *[("XADD", "x", b"%d-1" % i, "f", b"v%d" % i, "g", b"%d" % (i % 7)) for i in range(1, N + 1)],
    ("XGROUP", "CREATE", "x", "g", "0"),
    ("XGROUP", "CREATE", "x", "g2", "0"),
    ("XREADGROUP", "GROUP", "g", "alice", "COUNT", str(N // 2), "STREAMS", "x", ">"),
    ("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "x", ">"),
    ("XDEL", "x", *_ids(1, N, 97)),  # pending entries deleted since
    ("XGROUP", "CREATECONSUMER", "x", "g", "carol"),
]

COMMANDS: list[tuple[Any, ...]] = [
    ("XREADGROUP", "GROUP", "g2", "dave", "STREAMS", "x", ">"),
    ("XREADGROUP", "GROUP", "g2", "dave", "COUNT", "5000", "NOACK", "STREAMS", "x", ">"),
    ("XREADGROUP", "GROUP", "g", "alice", "STREAMS", "x", "0"),
    ("XREADGROUP", "GROUP", "g", "bob", "COUNT", "2500", "STREAMS", "x", "3000"),
    ("XPENDING", "x", "g", "-", "+", "100000"),
    ("XPENDING", "x", "g", "IDLE", "0", "(10-1", "+", "100000", "bob"),
    ("XINFO", "STREAM", "x", "FULL", "COUNT", "0"),
    ("XINFO", "STREAM", "x", "FULL", "COUNT", "3000"),
    ("XCLAIM", "x", "g", "carol", "0", *_ids(1, N, 2)),
    ("XCLAIM", "x", "g", "carol", "0", *_ids(1, N, 2), "JUSTID", "RETRYCOUNT", "5"),
    ("XCLAIM", "x", "g", "carol", "0", *_ids(N // 2, N + 3000), "FORCE", "LASTID", b"%d-9" % N),
    ("XCLAIM", "x", "g", "carol", "0", *_ids(1, N), "BADOPTION"),  # an error: nothing changes
    ("XAUTOCLAIM", "x", "g", "carol", "0", "0", "COUNT", "5000"),
    ("XAUTOCLAIM", "x", "g", "carol", "0", "1000", "COUNT", "2100", "JUSTID"),
    ("XACK", "x", "g", *_ids(1, N, 2), *_ids(1, 50)),
    ("XACK", "x", "g", *_ids(1, N), "bad-id"),  # an error: nothing changes
    ("XDEL", "x", *_ids(N, 1, -2), *_ids(1, 20)),
    ("XGROUP", "DELCONSUMER", "x", "g", "bob"),
]


def _server(clock: Clock, setup: list[tuple[Any, ...]] = SETUP) -> KVServer:
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    for argv in setup:
        admin.dataReceived(_cmd(*argv))
        _settle(server)
    return server


def _clock() -> Clock:
    clock = Clock()
    clock.advance(1000)
    return clock


def _state(server: KVServer) -> Any:
    """What a client sees of the stream: XINFO STREAM FULL and the group's pending list."""
    s = server.store.data.get(b"x")
    assert type(s) is Stream
    assert s.ids == sorted(s.entries) and len(s) == sum(n.live for n in s.nodes)
    for g in s.groups.values():  # (a consumer's pending entries are its group's)
        mine = [(i, c) for c in g.consumers.values() for i in c.pel]
        assert sorted(mine, key=lambda x: x[0]) == [
            (i, n.consumer) for i, n in sorted(g.pel.items())
        ]
    c, t = _client(server)
    c.dataReceived(
        _cmd("XINFO", "STREAM", "x", "FULL", "COUNT", "0")
        + _cmd("XPENDING", "x", "g", "-", "+", "1000000")
        + _cmd("XINFO", "CONSUMERS", "x", "g")
    )
    _drive(server.reactor, lambda: len(_replies(t.value())) == 3)  # type: ignore[arg-type]
    return _replies(t.value())


def _counters_blank(v: Any) -> Any:
    """
    A state with the groups' entries-read and lag left out: a replayed XCLAIM … LASTID
    moves a group's last ID and not its entries read, in Redis 7.0 as here (a
    difference of any AOF replay, not of one in pieces).
    """
    if type(v) is not list:
        return v
    out = [_counters_blank(x) for x in v]
    for k in range(len(out) - 1):
        if out[k] in (b"entries-read", b"lag"):
            out[k + 1] = None
    return out


def _replayed(records: list[list[bytes]], setup: list[tuple[Any, ...]] = SETUP) -> Any:
    """The stream a fresh server loaded the same way has after C{records}."""
    server = _server(_clock(), setup)
    admin, ta = _client(server)
    for argv in records:
        admin.dataReceived(_cmd(*argv))
        _settle(server)
    assert b"-" not in [line[:1] for line in ta.value().split(b"\r\n")]
    return _state(server)


def _name(argv: tuple[Any, ...]) -> str:
    return " ".join(str(a) for a in argv[:7])[:60] + f" ({len(argv)})"


def _sliced(
    argv: tuple[Any, ...], setup: list[tuple[Any, ...]] = SETUP
) -> tuple[KVServer, bytes, list[list[bytes]]]:
    """C{argv} in slices while another client waits: the server, its reply, its records."""
    clock = _clock()
    server = _server(clock, setup)
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd(*argv))
    b.dataReceived(_cmd("XLEN", "x"))
    assert ta.value() == tb.value() == b""  # (the old code answered at once)
    _busy_turns(clock, server, tb, at_least=1)  # others wait; the suite is served
    _drive(clock, lambda: _replies(ta.value()) != [] and tb.value() != b"")
    return server, ta.value(), records


@pytest.mark.parametrize("argv", COMMANDS, ids=_name)
def test_a_big_stream_command_runs_in_slices(argv: tuple[Any, ...]) -> None:
    server, reply, records = _sliced(argv)
    clock2 = _clock()
    server2 = _server(clock2)
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(clock2, lambda: server2.busy is None and tw.value().count(b"\r\n") > 2)
    _drive(clock2, lambda: tw.value().endswith(reply))
    assert tw.value() == b"+OK\r\n+QUEUED\r\n*1\r\n" + reply  # the same bytes as run whole
    after = _state(server)
    assert after == _state(server2)
    if argv[0] == "XREADGROUP" and argv[-1] != ">":  # (a history read's delivery counts
        assert records == []  # and times are not propagated, by Redis either)
    else:  # the AOF replays to the same stream
        assert _counters_blank(_replayed(records)) == _counters_blank(after)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_xread_of_many_entries_of_two_streams_in_slices(resp3: bool) -> None:
    """The reply, a map in RESP3, encoded a slice a turn: the same bytes as whole."""
    setup = [*SETUP, *[("XADD", "y", b"%d-5" % i, "a", "b") for i in range(1, 3001)]]
    hello = _cmd("HELLO", "3") if resp3 else b""
    argv = ("XREAD", "COUNT", "100000", "STREAMS", "y", "x", "0", "0")
    replies: list[bytes] = []
    for multi in (False, True):
        clock = _clock()
        server = _server(clock, setup)
        c, t = _client(server)
        c.dataReceived(hello)
        t.clear()
        one = _cmd(*argv)
        c.dataReceived((_cmd("MULTI") + one + _cmd("EXEC") if multi else one) + _cmd("PING"))
        if not multi:
            assert not t.value().endswith(b"+PONG\r\n")  # (one slice of it, not all)
        _drive(clock, lambda t=t: t.value().endswith(b"+PONG\r\n"))  # type: ignore[misc]
        replies.append(t.value())
    head = b"+OK\r\n+QUEUED\r\n*1\r\n"
    assert replies[1] == head + replies[0]
    got = _replies(replies[0])[0]
    streams = got if resp3 else dict(got)
    assert len(streams[b"x"]) == N - len(range(1, N, 97)) and len(streams[b"y"]) == 3000


# -- the client gone half-way --------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("XREADGROUP", "GROUP", "g2", "dave", "STREAMS", "x", ">"),
        ("XACK", "x", "g", *_ids(1, N)),
        ("XCLAIM", "x", "g", "carol", "0", *_ids(1, N)),
    ],
    ids=_name,
)
def test_a_big_write_stopped_half_way_is_a_smaller_one(argv: tuple[Any, ...]) -> None:
    """What it did is consistent, seen by WATCH, and recorded: the AOF replays to it."""
    clock = _clock()
    server = _server(clock)
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    before = _state(server)
    w, tw = _client(server)
    w.dataReceived(_cmd("WATCH", "x"))
    a, ta = _client(server)
    a.dataReceived(_cmd(*argv))
    while not records:  # (IDs parsed first)
        _turn(clock)
    assert server.busy is not None
    a.connectionLost(None)
    _drive(clock, lambda: server.busy is None)
    after = _state(server)
    assert after != before and records  # some of it was done
    assert _counters_blank(_replayed(records)) == _counters_blank(after)
    w.dataReceived(_cmd("MULTI") + _cmd("PING") + _cmd("EXEC"))
    assert _replies(tw.value())[-1] is None  # WATCH saw the change


def test_a_big_xdel_runs_to_its_end_when_its_client_goes() -> None:
    """
    XDEL of many IDs takes their entries out a piece a step and remakes the list of IDs
    at the end (a piece of it a step): once started it runs whole, as Redis runs a
    command, recorded as sent; WATCH sees it.
    """
    argv = ("XDEL", "x", *_ids(1, N, 3), "9-9")
    clock = _clock()
    server = _server(clock)
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    w, tw = _client(server)
    w.dataReceived(_cmd("WATCH", "x"))
    a, ta = _client(server)
    a.dataReceived(_cmd(*argv))
    _turn(clock)
    assert server.busy is not None and ta.value() == b""
    a.connectionLost(None)
    _drive(clock, lambda: server.busy is None)
    whole = _server(_clock())
    c, tc = _client(whole)
    c.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(whole.reactor, lambda: len(_replies(tc.value())) == 3)  # type: ignore[arg-type]
    assert _replies(tc.value())[-1][0] > 1000  # (some of them were there)
    assert _state(server) == _state(whole)
    assert records == [[x if type(x) is bytes else x.encode() for x in argv]]
    assert _replayed(records) == _state(whole)
    w.dataReceived(_cmd("MULTI") + _cmd("PING") + _cmd("EXEC"))
    assert _replies(tw.value())[-1] is None  # WATCH saw the change


def test_xdel_of_a_few_ids_leaves_the_list_of_ids_in_place() -> None:
    """(Remaking the list of a stream of two million entries for one ID took 100 ms.)"""
    clock = _clock()
    server = _server(clock)
    s = server.store.data[b"x"]
    ids = s.ids
    a, ta = _client(server)
    a.dataReceived(_cmd("XDEL", "x", "2-1", "5-1", "5-1", b"%d-1" % N, "9-9"))
    assert _replies(ta.value()) == [3] and server.busy is None
    assert s.ids is ids and s.ids == sorted(s.entries) and s.first_id == (3, 1)
    assert len(s) == sum(n.live for n in s.nodes)


# -- trims of many entries ------------------------------------------------------------

LONG = 40000  # entries: trimming most of them is big work (bigwork.BIG)


def _long() -> list[tuple[Any, ...]]:
    rnd = random.Random(3)
    out: list[tuple[Any, ...]] = [
        *[("XADD", "x", b"%d-1" % i, "f", b"v" * rnd.randrange(60)) for i in range(1, LONG + 1)],
        ("XDEL", "x", *[b"%d-1" % rnd.randrange(1, LONG) for _ in range(3000)]),
        ("XGROUP", "CREATE", "x", "g", "0"),
        ("XREADGROUP", "GROUP", "g", "alice", "COUNT", "10", "STREAMS", "x", ">"),
    ]
    return out


TRIMS: list[tuple[Any, ...]] = [
    ("XTRIM", "x", "MAXLEN", "0"),
    ("XTRIM", "x", "MAXLEN", "777"),
    ("XTRIM", "x", "MAXLEN", "~", "777", "LIMIT", "0"),
    ("XTRIM", "x", "MINID", b"%d" % (LONG - 500)),
    ("XTRIM", "x", "MINID", "~", b"%d" % (LONG - 500), "LIMIT", "0"),
    ("XADD", "x", "MAXLEN", "5", "*", "new", "entry"),
    ("XADD", "x", "MINID", "~", b"%d" % (LONG - 500), "LIMIT", "0", "*", "a", "b"),
]


@pytest.mark.parametrize("argv", TRIMS, ids=_name)
def test_a_big_trim_runs_in_slices(argv: tuple[Any, ...]) -> None:
    setup = _long()
    server, reply, records = _sliced(argv, setup)
    assert len(records) >= 3  # (pieces: each an exact trim)
    # as Stream.trim does it at once
    server2 = _server(_clock(), setup)
    whole, tw = _client(server2)
    whole.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
    _drive(server2.reactor, lambda: server2.busy is None)  # type: ignore[arg-type]
    assert tw.value() == b"+OK\r\n+QUEUED\r\n*1\r\n" + reply
    s, s2 = server.store.data[b"x"], server2.store.data[b"x"]
    s3 = _server(_clock(), setup).store.data[b"x"]  # Stream.trim's one cut
    assert type(s3) is Stream and type(s) is Stream and type(s2) is Stream
    raw = [a.encode() if type(a) is str else a for a in argv]
    a = _trim_args(raw, raw[0] == b"XADD")
    if raw[0] == b"XADD":
        s3.append(s.last_id, raw[a.id_pos + 1 :])
    s3.trim(a.maxlen, a.minid, a.approx, a.limit)
    for t in (s2, s3):
        assert s.ids == t.ids and s.first_id == t.first_id and s.entries == t.entries
        assert [(n.master, n.live, n.total) for n in s.nodes] == [
            (n.master, n.live, n.total) for n in t.nodes
        ]
    assert _counters_blank(_state(server)) == _counters_blank(_replayed(records, setup))


# -- pending lists: compacted a few IDs per change ----------------------------------


class _CountingPEL(PEL):
    """A pending list that counts the lookups made in it (a compaction's work)."""

    looked = 0

    def __contains__(self, i: object) -> bool:
        _CountingPEL.looked += 1
        return dict.__contains__(self, i)


def test_no_change_of_a_pending_list_compacts_all_of_it() -> None:
    """
    Acknowledged IDs stay in a pending list's sorted order until half of it is
    acknowledged ones: that compaction walked the whole list in one change (XACK or
    XCLAIM of 250,000 IDs held the suite 150 ms in it, two lists for XCLAIM). Now each
    change moves it on by a few IDs; what readers see is always the live IDs in
    order, and the list does not keep growing with acknowledged ones.
    """
    rng = random.Random(11)
    pel = _CountingPEL()
    live: set[tuple[int, int]] = set()
    worst = 0
    nack = NACK(Consumer(b"c", 0), 0)
    for step in range(60_000):
        i = (rng.randrange(30_000), 1)
        before = _CountingPEL.looked
        if step < 20_000 or rng.random() < 0.4:
            pel[i] = nack
            live.add(i)
        else:
            assert (pel.pop(i, None) is None) is (i not in live)
            live.discard(i)
        worst = max(worst, _CountingPEL.looked - before)
        if step % 5000 == 4999:
            assert pel.ids() == sorted(live)
            assert pel.dead == len(pel.order) - len(live)
            assert len(pel.order) < 2 * len(live) + 2048 + len(pel.order) // 4
    assert worst <= 2 * PEL.COMPACTED + 2  # (it was the whole list: 20,000 here)
    assert _CountingPEL.looked > 10_000  # (and compactions did happen)


# -- DUMP of a stream with long pending lists ----------------------------------------


def _steps(steps: Any) -> tuple[int, Any]:
    """How many steps a generator of bigwork's takes, and its result."""
    n = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return n, done.value
        n += 1


def test_dump_of_a_stream_with_long_pending_lists_runs_in_small_steps() -> None:
    """
    The pending lists of a stream's DUMP were written whole in one step (250,000 IDs,
    twice: the group's and the consumer's: 130 ms), its entries 4,096 a step (100 ms),
    and RESTORE read as many a step: now a few hundred elements a step, and the payload
    restores to the same stream.
    """
    clock = _clock()
    server = _server(clock)
    s = server.store.data[b"x"]
    pending = sum(len(g.pel) for g in s.groups.values())
    assert pending > N // 2
    steps, payload = _steps(rdb.dump_steps(s))
    assert steps >= 2 * pending // rdb.LP_PIECE + 5 * len(s) // rdb.LP_PIECE
    # and RESTORE's reading of it (4,096 entries, or pending entries, a step: 100-140 ms)
    steps, restored = _steps(rdb.load_steps(payload))
    assert steps >= (pending + len(s)) // rdb.LP_PIECE and len(restored) == len(s)
    c, t = _client(server)
    c.dataReceived(_cmd("RESTORE", "y", "0", payload))
    _drive(clock, lambda: len(_replies(t.value())) == 1)
    assert _replies(t.value()) == [b"OK"]
    full = [_cmd("XINFO", "STREAM", k, "FULL", "COUNT", "0") for k in ("x", "y")]
    t.clear()
    c.dataReceived(b"".join(full))
    _drive(clock, lambda: len(_replies(t.value())) == 2)
    x, y = _replies(t.value())
    assert x == y
