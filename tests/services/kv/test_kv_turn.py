"""
One share of the reactor's turn for all of kv's work in slices (turn.py): a long
pipeline, active expiry, a big reply's slices and lazyfree each did their own few
milliseconds in the same turns (9-20 ms of CPU a turn with pipelined PEXPIREs and the
AOF on; a ZMPOP's reply and lazyfree 14-17 ms). Once the turn's share is spent, each
does its small piece and goes on at the next turn. Here every turn's share is nothing
(no timing: what runs in a turn is counted).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from test_kv_bigreply import _client, _cmd, _replies, _settle
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite.api import collector
from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigreply import PIECES, PROBE, SLICE_ITEMS
from portsuite_services.kv.lazyfree import BIT
from portsuite_services.kv.protocol import TURN_CHECK
from portsuite_services.kv.sharded import ShardedDict, ShardedSet


class MovingClock(Clock):
    """A Clock whose time goes on as the real one does (a pipeline reads it to stop)."""

    def seconds(self) -> float:
        return 1000.0 + time.perf_counter()


def _spent(server: KVServer) -> KVServer:
    """Every turn's share of kv's work in slices: spent as soon as it starts."""
    server.turn.share = 0.0
    return server


def _expiring(clock: Clock, server: KVServer, n: int) -> None:
    admin, _ = _client(server)
    admin.dataReceived(_cmd("MSET", *[x for i in range(n) for x in (b"k%d" % i, b"v")]))
    admin.dataReceived(b"".join(_cmd("PEXPIRE", b"k%d" % i, "1") for i in range(n)))
    _settle(server)
    clock.advance(0.01)  # (their time is past; active expiry has not run)


def test_a_pipeline_stops_once_the_turn_is_spent(tmp_path: Path) -> None:
    # it took its own 5 ms after the 3 ms of an expiry slice of the same turn
    clock = MovingClock()
    server = _spent(KVServer(Settings(data=tmp_path / "kv.aof"), clock))
    a, ta = _client(server)
    a.dataReceived(b"".join(_cmd("SET", b"k%d" % i, "v", "PX", "100000") for i in range(20_000)))
    assert len(_replies(ta.value())) <= TURN_CHECK  # the rest at the next turns
    for _ in range(20_000):
        if a.pending is None:
            break
        _turn(clock)  # (every turn spent at once: the pipeline still goes on)
    assert _replies(ta.value()) == [b"OK"] * 20_000
    assert len(server.store.data) == 20_000


def test_active_expiry_stops_once_the_turn_is_spent(tmp_path: Path) -> None:
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(data=tmp_path / "kv.aof"), clock)
    _expiring(clock, server, 5000)
    _spent(server)
    server._expire_slice(1.0)
    assert 5000 - len(server.store.data) == 32  # one look of the clock's worth, not 3 ms of keys
    assert server._expiry_call is not None  # and the next slice at the next turn
    while server._expiry_call is not None:
        _turn(clock)
    assert len(server.store.data) == 0
    assert (tmp_path / "kv.aof").read_bytes().count(b"DEL") == 5000  # (a DEL each)


def test_lazyfree_frees_a_bit_once_the_turn_is_spent() -> None:
    clock = Clock()
    server = _spent(KVServer(Settings(), clock))
    big = set(range(50_000))
    server.lazyfree.free(big)
    _turn(clock)
    assert len(big) == 50_000 - BIT
    while server.lazyfree.pending:
        _turn(clock)
    assert not big


def _zmpop(clock: Clock, server: KVServer) -> tuple[bytes, list[int]]:
    """ZMPOP of 50,000 members: its reply, and how many members each turn's slice held."""
    admin, _ = _client(server)
    admin.dataReceived(
        _cmd("ZADD", "z", *[x for i in range(50_000) for x in (b"%d" % i, b"m%d" % i)])
    )
    _settle(server)
    a, ta = _client(server)
    a.dataReceived(_cmd("ZMPOP", "1", "z", "MIN", "COUNT", "10000000"))
    sizes: list[int] = []  # (the pop's own steps first: nothing sent)
    while a.blocked is not None:
        before = ta.value().count(b"*2\r\n")
        _turn(clock)
        sizes.append(ta.value().count(b"*2\r\n") - before)
    return ta.value(), sizes


def test_a_big_reply_sends_a_piece_once_the_turn_is_spent() -> None:
    # ZMPOP's slices (11 ms each) went in the same turns as lazyfree's (5 ms)
    clock = Clock()
    whole, _ = _zmpop(clock, KVServer(Settings(), clock))
    clock = Clock()
    got, sizes = _zmpop(clock, _spent(KVServer(Settings(), clock)))
    assert got == whole
    # (the first turn's: the reply's header and its first PROBE elements too)
    assert max(sizes) <= 1 + PROBE + SLICE_ITEMS // PIECES
    assert sorted(sizes)[-2] == SLICE_ITEMS // PIECES
    pairs: Any = _replies(got)[0]
    assert pairs[0] == b"z" and len(pairs[1]) == 50_000
    assert pairs[1][:2] == [[b"m0", b"0"], [b"m1", b"1"]]


def test_a_sharded_set_or_dict_is_frozen_as_it_is_made() -> None:
    # a set sharded as pipelined SADDs grew it kept its 1,021 shards young while they
    # filled: young passes of the collector walked every member (54 ms), then the oldest
    # generation's pass (67 ms), in the turns of the next pipeline
    frozen: list[bool] = []
    before = collector.freezer()
    collector.set_freezer(frozen.append)
    try:
        s = ShardedSet({b"m%d" % i for i in range(100)})
        assert frozen == [True]
        d = ShardedDict({b"k": {b"a"}})
        assert frozen == [True, True]
        s.add(b"x")
        d[b"y"] = {b"b"}
        assert frozen == [True, True]  # (made, not each change)
    finally:
        collector.set_freezer(before)
