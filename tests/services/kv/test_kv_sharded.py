"""
A database of hundreds of thousands of keys (sharded.py): its keys and expiry times
are never one dict that a write makes copy its whole table (a resize at 2.8 million
keys held every service of the suite for 137–354 ms). Checked by structure, not time:
after every read of a loading client and every tick of the cron, no dict holding
keys or TTLs is bigger than one of 100,000 keys. Then what users see across the
switch to shards and while the old dict's keys move (SCAN, RANDOMKEY, SWAPDB,
FLUSHDB, MOVE, RENAME, expiry, the AOF rewrite, KEYS, DBSIZE) is what it was, and
what redis-server answers for the same big keyspace.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import redis
from test_kv_bigreply import _client, _cmd, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.sharded import MOVE, SHARD_AT, ShardedDict

LIMIT_KEYS = 100_000  # no dict of the keyspace holds more: a resize copies at most that
LIMIT_BYTES = sys.getsizeof({b"%d" % i: None for i in range(LIMIT_KEYS)})
SETS_A_READ = 2_000  # (about 60 KB: a read of the batch path)


def _server(tmp_path: Path | None = None) -> tuple[Clock, KVServer]:
    clock = Clock()
    clock.advance(1_000_000)
    settings = Settings() if tmp_path is None else Settings(data=tmp_path / "kv.aof")
    server = KVServer(settings, clock)
    server.startFactory()  # (the cron: expiry, and the old dict's keys moving)
    return clock, server


def _tables(store: Any) -> list[dict[bytes, Any]]:
    """The dicts that hold a database's keys and their expiry times."""
    out: list[dict[bytes, Any]] = []
    for m in (store.data, store.expires):
        out += [m] if type(m) is dict else m.parts()
    return out


def _check_bounded(store: Any) -> None:
    for t in _tables(store):
        assert len(t) <= LIMIT_KEYS and sys.getsizeof(t) <= LIMIT_BYTES


def _sets(lo: int, hi: int, prefix: bytes = b"k") -> bytes:
    return b"".join(_cmd("SET", prefix + b"%d" % i, b"v%d" % i) for i in range(lo, hi))


def _load(clock: Clock, server: KVServer, n: int, check: bool = False) -> None:
    """n keys k0… by reads of 2,000 SETs (the batch path), with a cron tick every 10."""
    c, t = _client(server)
    for lo in range(0, n, SETS_A_READ):
        c.dataReceived(_sets(lo, min(n, lo + SETS_A_READ)))
        if lo // SETS_A_READ % 10 == 9:
            clock.advance(0.1)
        if check:
            _check_bounded(server.store)
    assert t.value().count(b"+OK\r\n") == n


def _settle(clock: Clock, server: KVServer) -> None:
    """Cron ticks until every old dict has moved into its shards."""
    for _ in range(1000):
        if not any(
            type(m) is ShardedDict and m.old for db in server.dbs for m in (db.data, db.expires)
        ):
            return
        clock.advance(0.1)
    raise AssertionError("the old dict never emptied")


def _call(c: Any, t: Any, *argv: Any) -> Any:
    """One command's reply; a big one (KEYS, a new SCAN's snapshot) is computed in
    slices: the reactor's turns (of c's Clock) until it is there."""
    t.clear()
    c.dataReceived(_cmd(*argv))
    for _ in range(10_000):
        got = _replies(t.value())
        if got:
            return got[-1]
        _turn(c.server.reactor)
    raise AssertionError(f"no reply to {argv}")


def test_no_dict_of_the_keyspace_grows_past_a_bound_whatever_the_path() -> None:
    clock, server = _server()
    store = server.store
    c, t = _client(server)
    n = 3 * LIMIT_KEYS // 2
    third = n // 3
    # the batch path (reads of SETs alone), the lean path (a read over 64 KiB goes to
    # the parser, each SET on its own) and the store's (MSET), then SETEX for the TTLs
    for lo in range(0, third, SETS_A_READ):
        c.dataReceived(_sets(lo, lo + SETS_A_READ))
        _check_bounded(store)
    for lo in range(third, 2 * third, 2500):
        read = _sets(lo, lo + 2500)
        assert len(read) > 64 * 1024
        c.dataReceived(read)
        clock.advance(0.1)
        _check_bounded(store)
    for lo in range(2 * third, n, 1000):
        c.dataReceived(_cmd("MSET", *[x for i in range(lo, lo + 1000) for x in (b"k%d" % i, b"m")]))
        _check_bounded(store)
    for lo in range(0, LIMIT_KEYS + 20_000, 2000):
        c.dataReceived(
            b"".join(_cmd("SETEX", b"e%d" % i, "100", "x") for i in range(lo, lo + 2000))
        )
        _check_bounded(store)
    for _ in range(200):  # the old dicts move into the shards, the TTLs fall due
        clock.advance(1)
        _check_bounded(store)
    assert _call(c, t, "DBSIZE") == n
    assert type(store.data) is ShardedDict and not store.data.old
    assert max(map(len, _tables(store))) < 2 * n // 1000  # (a thousandth or so each)


def test_the_switch_and_the_move_keep_every_key_and_small_keyspaces_stay_plain() -> None:
    clock, server = _server()
    c, t = _client(server)
    _load(clock, server, SHARD_AT)
    assert type(server.store.data) is dict  # (up to SHARD_AT: the lean path's plain dict)
    c.dataReceived(_sets(SHARD_AT, SHARD_AT + 1))
    data = server.store.data
    assert type(data) is ShardedDict and len(data.old) == SHARD_AT + 1  # nothing copied
    # while the old dict moves: changes to its keys, deletions, new keys
    assert _call(c, t, "SET", "k5", "new") == b"OK"
    assert _call(c, t, "DEL", "k6", "k7") == 2
    clock.advance(0.1)
    assert 0 < len(data.old) <= SHARD_AT + 1 - MOVE
    assert _call(c, t, "SET", "k6", "back") == b"OK"
    assert _call(c, t, "RENAME", "k8", "k8b") == b"OK"
    got = _call(c, t, "MGET", "k5", "k6", "k7", "k8", "k8b", "k9", f"k{SHARD_AT}")
    assert got == [b"new", b"back", None, None, b"v8", b"v9", b"v%d" % SHARD_AT]
    keys = _call(c, t, "KEYS", "k*")
    assert len(keys) == len(set(keys)) == SHARD_AT  # (k7 gone, k8 renamed)
    _settle(clock, server)
    assert _call(c, t, "DBSIZE") == SHARD_AT
    assert sorted(_call(c, t, "KEYS", "k*")) == sorted(keys)
    assert _call(c, t, "GET", "k5") == b"new"
    # FLUSHDB of a big keyspace frees it in slices and starts again from a plain dict
    assert _call(c, t, "FLUSHDB") == b"OK"
    assert type(server.store.data) is dict and _call(c, t, "DBSIZE") == 0
    for _ in range(1000):
        if not server.lazyfree.pending:
            break
        _turn(clock)
    assert server.lazyfree.pending == 0


def test_a_scan_across_the_switch_keeps_its_snapshot_and_returns_every_key() -> None:
    clock, server = _server()
    c, t = _client(server)
    _load(clock, server, SHARD_AT - 5000)
    before = {b"k%d" % i for i in range(SHARD_AT - 5000)}
    seen: list[bytes] = []
    cursor, calls = b"0", 0
    added = SHARD_AT - 5000
    while True:
        cursor, keys = _call(c, t, "SCAN", cursor, "COUNT", "500")
        assert len(keys) <= 500
        seen += keys
        calls += 1
        c.dataReceived(_sets(added, added + 500, b"new"))  # keys added all along: the
        added += 500  # keyspace is sharded half-way through the scan, and moves
        clock.advance(0.1)
        if cursor == b"0":
            break
    assert type(server.store.data) is ShardedDict
    assert set(seen) >= before
    # the scan went on from its snapshot (no new start: each key once)
    assert len(seen) == len(set(seen)) == len(before)


def test_randomkey_draws_from_the_old_dict_and_the_shards() -> None:
    clock, server = _server()
    c, t = _client(server)
    _load(clock, server, SHARD_AT + 10_000)
    data = server.store.data
    assert type(data) is ShardedDict and data.old
    draws = [_call(c, t, "RANDOMKEY") for _ in range(300)]
    assert all(_call(c, t, "EXISTS", k) == 1 for k in draws)
    assert any(k in data.old for k in draws) and any(k not in data.old for k in draws)
    assert len(set(draws)) >= 295  # (uniform over 75,000 keys: few repeats)
    # keys whose TTL has passed are not drawn (they are deleted when drawn)
    for i in range(0, SHARD_AT + 10_000, 2):
        server.store.set_expire(b"k%d" % i, 1)  # (long past)
    draws = [_call(c, t, "RANDOMKEY") for _ in range(100)]
    assert all(int(k[1:]) % 2 for k in draws)
    _settle(clock, server)
    draws = [_call(c, t, "RANDOMKEY") for _ in range(100)]
    assert all(int(k[1:]) % 2 for k in draws)


def test_swapdb_move_copy_between_a_sharded_and_a_plain_database() -> None:
    clock, server = _server()
    c, t = _client(server)
    _load(clock, server, SHARD_AT + 1000)
    assert _call(c, t, "SELECT", "1") == b"OK"
    assert _call(c, t, "SET", "small", "1") == b"OK"
    assert _call(c, t, "SWAPDB", "0", "1") == b"OK"
    assert _call(c, t, "DBSIZE") == SHARD_AT + 1000
    assert type(server.dbs[1].data) is ShardedDict and type(server.dbs[0].data) is dict
    assert _call(c, t, "MOVE", "k1", "0") == 1
    assert _call(c, t, "COPY", "k2", "k2", "DB", "0") == 1
    _settle(clock, server)  # (the swapped keyspace's old dict moved by the cron too)
    assert _call(c, t, "DBSIZE") == SHARD_AT + 999
    assert _call(c, t, "EXISTS", "k1", "k2", "k3") == 2
    assert _call(c, t, "SELECT", "0") == b"OK"
    assert sorted(_call(c, t, "KEYS", "*")) == [b"k1", b"k2", b"small"]


def test_keys_with_a_ttl_in_shards_expire_actively_and_lazily() -> None:
    clock, server = _server()
    c, t = _client(server)
    n = SHARD_AT + 20_000
    for lo in range(0, n, 2000):  # the first half for 10 s, the other for an hour
        c.dataReceived(
            b"".join(
                _cmd("SETEX", b"e%d" % i, "10" if i < n // 2 else "3600", "x")
                for i in range(lo, min(n, lo + 2000))
            )
        )
    store = server.store
    assert type(store.expires) is ShardedDict and type(store.data) is ShardedDict
    assert _call(c, t, "TTL", "e1") == 10 and _call(c, t, "TTL", f"e{n - 1}") == 3600
    assert _call(c, t, "PERSIST", f"e{n - 2}") == 1
    clock.advance(11)
    assert _call(c, t, "GET", "e3") is None  # lazily, from whichever dict holds it
    for _ in range(400):  # actively: the cron's 2,000 a tick
        clock.advance(0.1)
    assert _call(c, t, "DBSIZE") == n - n // 2 == len(store.expires) + 1
    assert _call(c, t, "TTL", f"e{n - 1}") == 3600 - 51
    assert _call(c, t, "TTL", f"e{n - 2}") == -1
    info = _call(c, t, "INFO", "keyspace")
    assert f"keys={n - n // 2},expires={n - n // 2 - 1}," in info.decode()


def test_the_aof_rewrite_of_a_sharded_keyspace_while_it_moves(tmp_path: Path) -> None:
    clock, server = _server(tmp_path)
    c, t = _client(server)
    _load(clock, server, SHARD_AT + 5000)
    assert _call(c, t, "EXPIRE", "k3", "1000") == 1
    assert server.store.data.old  # type: ignore[attr-defined]
    assert _call(c, t, "BGREWRITEAOF").startswith(b"Background")
    server.aof.flush()  # type: ignore[union-attr]
    clock2 = Clock()
    clock2.advance(1_000_000)
    again = KVServer(Settings(data=tmp_path / "kv.aof"), clock2)
    assert len(again.store) == SHARD_AT + 5000
    assert type(again.store.data) is ShardedDict  # (loading grew it too)
    assert again.store.get(b"k70000") == b"v70000" and again.store.ttl_ms(b"k3") > 0
    assert dict(again.store.data.items()) == dict(server.store.data.items())


def test_a_sharded_dict_is_a_dict_while_it_moves() -> None:
    """Random operations on a ShardedDict and a dict, its old dict moving meanwhile."""
    rng = random.Random(10)
    model = {b"o%d" % i: i for i in range(5000)}
    d = ShardedDict(dict(model))
    for step in range(30_000):
        key = b"%s%d" % (rng.choice([b"o", b"n"]), rng.randrange(6000))
        op = rng.randrange(6)
        if op == 0:
            d[key] = model[key] = step
        elif op == 1:
            assert d.pop(key, None) == model.pop(key, None)
        elif op == 2:
            assert d.get(key) == model.get(key) and (key in d) == (key in model)
        elif op == 3 and key in model:
            assert d[key] == model[key]
            del d[key], model[key]
        elif op == 4 and step % 50 == 0:
            d.move(rng.randrange(200))
        elif op == 5 and step % 1000 == 0:
            assert len(d) == len(model) and dict(d.items()) == model
            assert sorted(d) == sorted(model) and sorted(d.values()) == sorted(model.values())
            assert d.at(rng.randrange(len(d))) in model
    d.move(10_000)
    assert not d.old
    assert dict(d.items()) == model and len(d) == len(model)


def test_a_big_keyspace_answers_as_redis_server(kv_port: int, redis_port: int) -> None:
    """The same 80,000 keys (some with a TTL) in both: what the commands answer."""
    n = SHARD_AT + 15_000
    replies = []
    for port in (redis_port, kv_port):
        r = redis.Redis(port=port)
        r.select(8)
        r.flushdb()
        r.select(9)
        r.flushdb()
        p = r.pipeline(transaction=False)
        for i in range(n):
            if i % 7 == 0:
                p.set(b"big:%d" % i, b"v%d" % i, ex=3600)
            else:
                p.set(b"big:%d" % i, b"v%d" % i)
            if i % 5000 == 4999:
                p.execute()
        p.execute()
        out = [
            r.dbsize(),
            r.get(b"big:12345"),
            r.exists(*[b"big:%d" % i for i in range(0, n, 997)]),
        ]
        out += [3500 < r.ttl(b"big:7") <= 3600, r.ttl(b"big:8"), r.delete(b"big:1", b"big:2", b"x")]
        out += [sorted(r.keys(b"big:1234*")), r.dbsize(), r.rename(b"big:3", b"moved")]
        out += [r.get(b"moved"), r.move(b"big:4", 8), r.dbsize(), r.type(b"big:5")]
        keys: set[bytes] = set()
        cursor = 0
        while True:
            cursor, got = r.scan(cursor, count=5000)
            keys.update(got)
            if cursor == 0:
                break
        out += [len(keys), r.randomkey() in keys, r.info("keyspace").get("db9")]
        r.flushdb()
        r.select(8)
        r.flushdb()
        replies.append(out)
    info_redis, info_kv = replies[0].pop(), replies[1].pop()
    assert replies[0] == replies[1]
    assert info_redis["keys"] == info_kv["keys"] and info_redis["expires"] == info_kv["expires"]


def test_randomkey_among_keys_nearly_all_expired_answers_a_live_one() -> None:
    """Draws that hit only expired keys 100 times: the live keys, told apart at once."""
    clock, server = _server()
    c, t = _client(server)
    c.dataReceived(b"".join(_cmd("SET", b"x%d" % i, "v", "PX", "1") for i in range(5000)))
    assert _call(c, t, "SET", "live", "1") == b"OK"
    clock.advance(0.002)  # (before the cron's next tick: the expired keys are all there)
    assert _call(c, t, "RANDOMKEY") == b"live"
    assert _call(c, t, "DBSIZE") < 5000  # (the expired keys it drew are gone)
