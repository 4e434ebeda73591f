"""
Compaction without fork (snapshot.py): a server using more memory than
C{fork_max_memory} compacts in slices in its own process. Whatever the commands served
between its slices do (to a key it is writing, to keys it wrote or has not reached,
FLUSHDB, FLUSHALL, SWAPDB, MOVE, COPY … DB, MULTI, expiries), the file after it
replays to exactly the data set; no child process is made.

The reactor is a MemoryReactorClock and the test plays its turns (bigwork's L{_turn}:
the calls due now, not those they add), with kv's share of a turn at nothing, so the compaction
does one piece a turn and the test's commands run between any two of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from kvdb_help import wait_compacted
from test_kv_bigwork import _turn
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport

from portsuite.testing import suite_running
from portsuite_services.kv import KVServer, Settings, snapshot
from portsuite_services.kv.snapshot import Snapshot

PEER = IPv4Address("TCP", "127.0.0.1", 1)


@pytest.fixture(autouse=True)
def _small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 64 arguments: the test's commands run inside keys' records too."""
    monkeypatch.setattr(snapshot, "PIECE", 64)


def _server(aof: Path) -> tuple[MemoryReactorClock, KVServer]:
    reactor = MemoryReactorClock()
    reactor.advance(1_700_000_000)
    server = KVServer(Settings(data=aof, fork_max_memory=0), reactor)
    server.startFactory()
    assert server.can_fork  # (it could: it does not, past fork_max_memory)
    server.turn.share = 0  # one piece of the compaction a turn
    return reactor, server


class _Client:
    def __init__(self, server: KVServer, reactor: MemoryReactorClock):
        self.reactor = reactor
        self.p = server.buildProtocol(PEER)
        self.t = StringTransport(peerAddress=PEER)
        self.p.makeConnection(self.t)

    def call(self, *argv: bytes | str | int) -> bytes:
        self.t.clear()
        args = [a if isinstance(a, bytes) else str(a).encode() for a in argv]
        self.p.dataReceived(
            b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        )
        for _ in range(100_000):  # (a command of many arguments runs in slices: bigwork.py)
            if self.t.value():
                break
            _turn(self.reactor)
        return self.t.value()


def _value(v: Any) -> Any:
    t = type(v).__name__
    if t == "bytes":
        return v
    if t in ("dict", "ShardedDict"):
        return ("hash", dict(v.items()))
    if t == "deque":
        return ("list", list(v))
    if t in ("set", "ShardedSet"):
        return ("set", set(v))
    if t == "ZSet":
        return ("zset", list(v.sl))
    records = list(v.rewrite_commands(b"", copy=True))  # (IDs, groups, PEL)
    # a group's entries-read: not kept by an XREADGROUP's record (XCLAIM … LASTID, as
    # redis-server 7.0 writes it), with a compaction or without
    return ("stream", [r[:-1] if r[:2] == [b"XGROUP", b"CREATE"] else r for r in records])


def _data(server: KVServer) -> list[dict[bytes, Any]]:
    now = server.dbs[0].now_ms()
    out = []
    for db in server.dbs:
        live = {}
        for key, value in db.data.items():
            when = db.expires.get(key)
            if when is None or when > now:
                live[key] = (_value(value), when)
        out.append(live)
    return out


def _replayed(aof: Path, at: float) -> list[dict[bytes, Any]]:
    clock = Clock()
    clock.advance(at)
    again = KVServer(Settings(data=aof), clock)
    try:
        return _data(again)
    finally:
        again.stopFactory()


def _fill(c: _Client) -> None:
    for i in range(3000):
        c.call("SET", f"k{i}", f"v{i}")
    c.call("RPUSH", "list", *range(20000))
    c.call("SADD", "set", *range(20000))
    c.call("HSET", "hash", *[x for i in range(10000) for x in (f"f{i}", i)])
    c.call("ZADD", "zset", *[x for i in range(10000) for x in (i, f"m{i}")])
    for i in range(3000):
        c.call("XADD", "stream", "*", "n", i)
    c.call("XGROUP", "CREATE", "stream", "g", "0")
    c.call("XREADGROUP", "GROUP", "g", "alice", "COUNT", "50", "STREAMS", "stream", ">")
    c.call("SET", "ttl", "x", "PX", "100000000")
    c.call("SELECT", "2")
    c.call("RPUSH", "two", *range(100))
    c.call("SELECT", "0")


def _compact(
    reactor: MemoryReactorClock, server: KVServer, c: _Client, between: Callable[[int], None]
) -> Snapshot:
    """BGREWRITEAOF, C{between(i)} before each of its turns, until it is done."""
    assert c.call("BGREWRITEAOF") == b"+Background append only file rewriting started\r\n"
    snap = server.rewriting
    assert isinstance(snap, Snapshot)
    assert c.call("INFO", "persistence").count(b"aof_rewrite_in_progress:1") == 1
    i = 0
    while server.rewriting is snap:
        between(i)
        _turn(reactor)
        i += 1
        assert i < 200_000, "the compaction never ended"
    assert server.aof is not None and server.aof.forks == 0  # (no child process)
    info = c.call("INFO", "persistence")
    assert b"aof_rewrite_in_progress:0" in info and b"aof_last_bgrewrite_status:ok" in info
    assert not list(server.aof.path.parent.glob("*.tmp"))
    return snap


def test_every_kind_of_change_between_its_slices_is_in_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "FINAL_KEYS", 0)  # (rounds of dirty keys, then the last turn)
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server, reactor)
    _fill(c)
    changes: list[Callable[[int], Any]] = [
        lambda i: c.call("SET", f"k{i % 3000}", f"new{i}"),
        lambda i: c.call("RPUSH", "list", f"r{i}") and c.call("LPOP", "list"),
        lambda i: c.call("SADD", "set", f"s{i}") and c.call("SREM", "set", i % 20000),
        lambda i: c.call("HSET", "hash", f"f{i % 12000}", f"h{i}"),
        lambda i: c.call("ZADD", "zset", i, f"z{i}") and c.call("ZPOPMIN", "zset"),
        lambda i: (
            c.call("XADD", "stream", "*", "during", i)
            and c.call("XREADGROUP", "GROUP", "g", "bob", "COUNT", "1", "STREAMS", "stream", ">")
        ),
        lambda i: c.call("DEL", f"k{(i * 7) % 3000}"),
        lambda i: c.call("INCR", "counter") and c.call("APPEND", f"k{(i * 3) % 3000}", "+"),
        lambda i: c.call("SET", f"brief{i}", "x", "PX", "5"),  # expires during the walk
        lambda i: c.call("EXPIRE", f"k{(i * 11) % 3000}", "100000"),
        lambda i: c.call("MOVE", f"k{(i * 13) % 3000}", "2"),
        lambda i: c.call("COPY", f"k{(i * 17) % 3000}", f"copy{i % 50}", "DB", "4", "REPLACE"),
        lambda i: c.call("RENAME", f"k{(i * 19) % 3000}", f"renamed{i}"),
        lambda i: [
            c.call(*a) for a in (("MULTI",), ("INCR", "tx"), ("LPUSH", "txl", i), ("EXEC",))
        ],
        lambda i: [c.call(*a) for a in (("SELECT", "2"), ("LPOP", "two"), ("SELECT", "0"))],
    ]

    def between(i: int) -> None:
        for j in range(4 * i, 4 * i + 4):
            changes[j % len(changes)](j)
        reactor.rightNow += 0.001  # (the PX 5 keys expire, lazily and by the cron's turns)
        if i % 25 == 24:  # (during the walk, the rounds, inside a key's records)
            c.call("SELECT", "4")
            c.call("FLUSHDB")  # the COPY … DB 4 targets so far
            c.call("SELECT", "0")

    snap = _compact(reactor, server, c, between)
    assert snap.rounds >= 1  # (keys written by the walk changed again: written once more)
    assert _data(server) == _replayed(aof, reactor.seconds())
    assert b"*1\r\n$7\r\nFLUSHDB\r\n" in aof.read_bytes()  # (where it happened, in db 4)


def test_flushall_and_swapdb_during_the_walk(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server, reactor)
    _fill(c)

    done = []

    def between(i: int) -> None:
        if i == 2:
            c.call("SWAPDB", "0", "2")  # the compaction starts again
            done.append("SWAPDB")
        elif i == 6:
            c.call("FLUSHALL")  # (the key being written, and all before it, go)
            _fill(c)
            done.append("FLUSHALL")
        else:
            c.call("RPUSH", "list", i)

    snap = _compact(reactor, server, c, between)
    assert done == ["SWAPDB", "FLUSHALL"] and snap.restarts == 1
    assert _data(server) == _replayed(aof, reactor.seconds())
    assert b"*1\r\n$8\r\nFLUSHALL\r\n" in aof.read_bytes()  # (written where it happened)


def test_a_big_key_changed_all_the_time_is_copied_once_at_the_end(tmp_path: Path) -> None:
    # a key of many members written again each round would make the file grow with
    # every round: it is written by the walk, then copied once in the last turn
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server, reactor)
    c.call("SADD", "hot", *range(50000))
    for i in range(2000):
        c.call("SET", f"k{i}", i)
    size = aof.stat().st_size

    def between(i: int) -> None:
        c.call("SADD", "hot", f"n{i}")
        c.call("SET", f"k{i % 2000}", i)

    _compact(reactor, server, c, between)
    assert _data(server) == _replayed(aof, reactor.seconds())
    # the walk's members, then once more in the last turn; not once a round
    assert aof.stat().st_size < 2.5 * size


def test_a_failed_compaction_leaves_the_file_and_the_server_as_they_were(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server, reactor)
    _fill(c)
    before = aof.read_bytes()
    assert c.call("BGREWRITEAOF").startswith(b"+")
    snap = server.rewriting
    assert isinstance(snap, Snapshot)
    for _ in range(5):
        _turn(reactor)
    tmp = snap.tmp
    assert tmp.exists()
    server.stopFactory()  # (the service stops mid-way)
    assert not tmp.exists() and server.rewriting is None
    assert aof.read_bytes() == before


@pytest.mark.e2e
def test_under_twistd_no_child_is_made_and_writes_during_it_are_kept(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    cfg = {"services": {"kv": {"type": "kv", "port": 0, "data": str(aof), "fork_max_memory": 0}}}
    with suite_running(cfg, base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        p = r.pipeline(transaction=False)
        for i in range(50000):
            p.set(f"k{i}", i)
        p.rpush("l", *range(100000))
        p.execute()
        assert r.bgrewriteaof()
        n = 0
        while r.info("persistence")["aof_rewrite_in_progress"] and n < 100_000:
            r.incr(f"k{n % 50000}")
            r.rpush("l", n)
            n += 1
        wait_compacted(r)
        info = r.info()
        assert info["aof_last_bgrewrite_status"] == "ok" and info["total_forks"] == 0
        assert n > 0  # (writes were served while it ran)
        want = (r.mget(f"k{i}" for i in range(50000)), r.lrange("l", 0, -1))
    with suite_running(cfg, base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        assert (r.mget(f"k{i}" for i in range(50000)), r.lrange("l", 0, -1)) == want
