"""
Big hashes, sets and sorted sets (sharded.py): a container past SHARD_AT members
is never one dict or set that an added member makes copy its whole table (a set of
2.5 million members held every service of the suite 86 ms when it grew). Checked
by structure, not time: after every read of a client adding members, whatever the
command (HSET, SADD, ZADD, SMOVE, HINCRBY, a million arguments at once, SUNIONSTORE,
COPY, RESTORE, SPOP), no table holding a container's members is bigger than one of
100,000. Then every command on such a container answers what it answers on a plain
one (the same members, read back by a model), across the switch too (an SSCAN
begun before it returns every member), and small containers stay plain.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import redis
from test_kv_bigreply import _client, _cmd
from test_kv_sharded import _call, _server
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.sharded import SHARD_AT, ShardedDict, ShardedSet
from portsuite_services.kv.zset import ZSet

LIMIT = 100_000  # no table of a container holds more: a resize copies at most that
LIMIT_BYTES = sys.getsizeof({b"%d" % i: None for i in range(LIMIT)})
N = 3 * LIMIT  # members added
BATCH = 1000  # members a command adds (pipelined: 4 commands a read)


def _tables(v: Any) -> list[Any]:
    """The dicts and sets that hold a value's members."""
    if type(v) is ZSet:
        v = v.dict
    return [v] if type(v) in (dict, set) else v.parts()


def _check_bounded(server: KVServer) -> None:
    for v in server.store.data.values():
        if type(v) is not bytes:
            for t in _tables(v):
                assert len(t) <= LIMIT and sys.getsizeof(t) <= LIMIT_BYTES


def _grow(server: KVServer, c: Any, command: str, key: str, n: int, pairs: int) -> None:
    """n members added BATCH a command, 4 commands a read; bounded after every read."""
    for lo in range(0, n, 4 * BATCH):
        read = b""
        for i in range(lo, min(n, lo + 4 * BATCH), BATCH):
            args: list[bytes] = []
            for j in range(i, min(n, i + BATCH)):
                m = b"m%d" % j
                args += [b"%d" % j, m] if pairs == 2 and command == "ZADD" else [m]
                if pairs == 2 and command == "HSET":
                    args.append(b"v%d" % j)
            read += _cmd(command, key, *args)
        c.dataReceived(read)
        _check_bounded(server)


def test_no_table_of_a_growing_hash_set_or_sorted_set_passes_a_bound() -> None:
    clock, server = _server()
    c, t = _client(server)
    _grow(server, c, "SADD", "s", N, 1)
    _grow(server, c, "HSET", "h", N, 2)
    _grow(server, c, "ZADD", "z", N, 2)
    assert [_call(c, t, cmd, key) for cmd, key in (("SCARD", "s"), ("HLEN", "h"))] == [N, N]
    assert _call(c, t, "ZCARD", "z") == N
    assert type(server.store.get(b"s")) is ShardedSet
    assert type(server.store.get(b"h")) is ShardedDict
    # a member at a time (SMOVE, HINCRBY, HINCRBYFLOAT, HSETNX) across the line too
    _grow(server, c, "SADD", "s1", SHARD_AT, 1)
    _grow(server, c, "HSET", "h1", SHARD_AT, 2)
    assert _call(c, t, "SADD", "src", "x", "y") == 2
    assert _call(c, t, "SMOVE", "src", "s1", "x") == 1
    assert type(server.store.get(b"s1")) is ShardedSet
    assert _call(c, t, "HINCRBY", "h1", "n", "5") == 5
    assert type(server.store.get(b"h1")) is ShardedDict
    for key, cmd in ((b"h2", "HINCRBYFLOAT"), (b"h3", "HSETNX")):
        _grow(server, c, "HSET", key.decode(), SHARD_AT, 2)
        assert _call(c, t, cmd, key, "f", "1") in (b"1", 1)
        assert type(server.store.get(key)) is ShardedDict
    # small ones stay what they were: plain
    assert _call(c, t, "SADD", "small", "a", "b") == 2
    assert _call(c, t, "HSET", "smallh", "a", "b") == 1
    assert type(server.store.get(b"small")) is set
    assert type(server.store.get(b"smallh")) is dict


def test_what_builds_a_big_set_or_hash_whole_builds_it_sharded() -> None:
    clock, server = _server()
    c, t = _client(server)
    members = [b"m%d" % i for i in range(N)]
    c.dataReceived(_cmd("SADD", "s", *members))  # (a million arguments: built aside)
    pairs = [x for m in members for x in (m, m)]
    c.dataReceived(_cmd("HSET", "h", *pairs))
    for _ in range(10_000):
        if server.store.get(b"h") is not None:
            break
        _call(c, t, "PING")
    assert _call(c, t, "SCARD", "s") == N and _call(c, t, "HLEN", "h") == N
    _check_bounded(server)
    _grow(server, c, "SADD", "t", N // 2, 1)
    for argv in (
        ("SUNIONSTORE", "u", "s", "t"),
        ("SINTERSTORE", "i", "s", "t"),
        ("SDIFFSTORE", "d", "s", "t"),
        ("COPY", "s", "s-copy"),
        ("COPY", "h", "h-copy"),
        ("SPOP", "t", "1000"),
    ):
        _call(c, t, *argv)
        _check_bounded(server)
    assert [_call(c, t, "SCARD", k) for k in ("u", "i", "d", "s-copy")] == [N, N // 2, N // 2, N]
    assert _call(c, t, "HLEN", "h-copy") == N
    payload = _call(c, t, "DUMP", "s")
    assert _call(c, t, "RESTORE", "s-restored", "0", payload) == b"OK"
    payload = _call(c, t, "DUMP", "h")
    assert _call(c, t, "RESTORE", "h-restored", "0", payload) == b"OK"
    _check_bounded(server)
    assert set(server.store.get(b"s-restored")) == set(members)
    assert dict(server.store.get(b"h-restored").items()) == dict(zip(members, members, strict=True))
    # a set built for many that holds few is stored plain (its empty shards weigh)
    assert _call(c, t, "SINTERSTORE", "none", "s", "no-such-key") == 0
    assert _call(c, t, "SADD", "three", "m1", "m2", "x") == 3
    assert _call(c, t, "SINTERSTORE", "few", "s", "three") == 2
    assert type(server.store.get(b"few")) is set


def _big(server: KVServer, c: Any) -> tuple[set[bytes], dict[bytes, bytes]]:
    """A set s and a hash h grown across the switch (and their models)."""
    n = SHARD_AT + 5000
    _grow(server, c, "SADD", "s", n, 1)
    _grow(server, c, "HSET", "h", n, 2)
    assert type(server.store.get(b"s")) is ShardedSet
    assert type(server.store.get(b"h")) is ShardedDict
    return {b"m%d" % i for i in range(n)}, {b"m%d" % i: b"v%d" % i for i in range(n)}


def test_every_set_command_answers_on_a_big_set_as_on_its_model() -> None:
    clock, server = _server()
    c, t = _client(server)
    model, _ = _big(server, c)
    old, shard, missing = b"m5", b"m%d" % (SHARD_AT + 100), b"nope"  # (before, after the line)
    assert _call(c, t, "TYPE", "s") == b"set"
    assert _call(c, t, "OBJECT", "ENCODING", "s") == b"hashtable"
    assert _call(c, t, "SISMEMBER", "s", old) == 1 and _call(c, t, "SISMEMBER", "s", shard) == 1
    assert _call(c, t, "SMISMEMBER", "s", old, shard, missing) == [1, 1, 0]
    assert set(_call(c, t, "SMEMBERS", "s")) == model
    picked = _call(c, t, "SRANDMEMBER", "s", "200")
    assert len(set(picked)) == 200 and set(picked) <= model
    assert _call(c, t, "SRANDMEMBER", "s") in model
    assert _call(c, t, "SADD", "small", old, shard, missing) == 3
    assert sorted(_call(c, t, "SINTER", "s", "small")) == sorted([old, shard])
    assert _call(c, t, "SINTERCARD", "2", "small", "s") == 2
    assert sorted(_call(c, t, "SDIFF", "small", "s")) == [missing]
    assert set(_call(c, t, "SUNION", "small", "s")) == model | {missing}
    assert set(_call(c, t, "SDIFF", "s", "small")) == model - {old, shard}
    assert _call(c, t, "SORT", "s", "ALPHA", "LIMIT", "0", "3") == sorted(model)[:3]
    assert _call(c, t, "MEMORY", "USAGE", "s") > len(model) * 8
    assert _call(c, t, "SREM", "s", old, shard, missing) == 2
    model -= {old, shard}
    popped = _call(c, t, "SPOP", "s", "10")
    assert set(popped) <= model
    model -= set(popped)
    assert _call(c, t, "SMOVE", "s", "small", b"m7") == 1
    model.discard(b"m7")
    assert _call(c, t, "SCARD", "s") == len(model)
    assert _call(c, t, "GET", "s").args[0].startswith("WRONGTYPE")
    assert _call(c, t, "HSET", "s", "f", "v").args[0].startswith("WRONGTYPE")
    assert _call(c, t, "ZUNIONSTORE", "zs", "1", "s") == len(model)
    assert set(_call(c, t, "SMEMBERS", "s")) == model
    assert _call(c, t, "DEL", "s", "zs") == 2
    _freed(clock, server)


def _freed(clock: Clock, server: KVServer) -> None:
    """What was deleted is freed a slice per turn (lazyfree), to the end."""
    for _ in range(1000):
        if not server.lazyfree.pending:
            return
        clock.advance(0)
    raise AssertionError("lazyfree never emptied")


def test_a_big_sorted_set_answers_and_is_freed() -> None:
    clock, server = _server()
    c, t = _client(server)
    _grow(server, c, "ZADD", "z", SHARD_AT + 10, 2)
    z = server.store.get(b"z")
    assert type(z.dict) is ShardedDict
    assert _call(c, t, "ZSCORE", "z", "m5") == b"5" and _call(c, t, "ZRANK", "z", "m65540") == 65540
    assert (
        _call(c, t, "ZREM", "z", "m5", "m65540") == 2 and _call(c, t, "ZCARD", "z") == SHARD_AT + 8
    )
    assert _call(c, t, "COPY", "z", "z2") == 1 and _call(c, t, "ZCARD", "z2") == SHARD_AT + 8
    assert _call(c, t, "DEL", "z", "z2") == 2
    _freed(clock, server)


def test_every_hash_command_answers_on_a_big_hash_as_on_its_model() -> None:
    clock, server = _server()
    c, t = _client(server)
    _, model = _big(server, c)
    old, shard = b"m5", b"m%d" % (SHARD_AT + 100)
    assert _call(c, t, "TYPE", "h") == b"hash"
    assert _call(c, t, "OBJECT", "ENCODING", "h") == b"hashtable"
    assert _call(c, t, "HGET", "h", old) == b"v5"
    assert _call(c, t, "HMGET", "h", old, shard, "nope") == [b"v5", model[shard], None]
    assert _call(c, t, "HEXISTS", "h", shard) == 1 and _call(c, t, "HSTRLEN", "h", old) == 2
    got = _call(c, t, "HGETALL", "h")
    assert dict(zip(got[::2], got[1::2], strict=True)) == model
    assert set(_call(c, t, "HKEYS", "h")) == set(model)
    assert sorted(_call(c, t, "HVALS", "h")) == sorted(model.values())
    pairs = _call(c, t, "HRANDFIELD", "h", "50", "WITHVALUES")
    assert all(model[f] == v for f, v in zip(pairs[::2], pairs[1::2], strict=True))
    assert _call(c, t, "HRANDFIELD", "h") in model
    assert _call(c, t, "HSET", "h", old, "new", "fresh", "x") == 1
    model[old], model[b"fresh"] = b"new", b"x"
    assert _call(c, t, "HINCRBY", "h", "n", "3") == 3 and _call(c, t, "HLEN", "h") == len(model) + 1
    assert _call(c, t, "HDEL", "h", "n", shard, old, "nope") == 3
    del model[shard], model[old]
    assert _call(c, t, "HSETNX", "h", b"m6", "no") == 0
    assert _call(c, t, "HLEN", "h") == len(model)
    assert _call(c, t, "SADD", "ids", "") == 1  # (h* is h: its field m6)
    assert _call(c, t, "SORT", "ids", "BY", "nosort", "GET", "h*->m6") == [b"v6"]
    assert _call(c, t, "SADD", "h", "x").args[0].startswith("WRONGTYPE")
    assert _call(c, t, "MEMORY", "USAGE", "h") > len(model) * 8
    assert _call(c, t, "COPY", "h", "h2") == 1
    payload = _call(c, t, "DUMP", "h")
    assert _call(c, t, "RESTORE", "h3", "0", payload) == b"OK"
    for key in ("h", "h2", "h3"):
        got = _call(c, t, "HGETALL", key)
        assert dict(zip(got[::2], got[1::2], strict=True)) == model


def test_scans_begun_before_the_switch_return_every_member() -> None:
    clock, server = _server()
    c, t = _client(server)
    _grow(server, c, "SADD", "s", SHARD_AT - 2000, 1)
    _grow(server, c, "HSET", "h", SHARD_AT - 2000, 2)
    before = {b"m%d" % i for i in range(SHARD_AT - 2000)}
    for cmd, key, add in (("SSCAN", "s", "SADD"), ("HSCAN", "h", "HSET")):
        seen: list[bytes] = []
        cursor, added = b"0", 0
        while True:
            cursor, found = _call(c, t, cmd, key, cursor, "COUNT", "1000")
            seen += found if cmd == "SSCAN" else found[::2]
            c.dataReceived(
                _cmd(
                    add, key, *[b"new%d" % (added + i) for i in range(500)] * (1 + (add == "HSET"))
                )
            )
            added += 500
            if cursor == b"0":
                break
        assert type(server.store.get(key.encode())) in (ShardedSet, ShardedDict)
        assert set(seen) >= before
        assert len(seen) == len(set(seen))  # (the scan went on from its snapshot)


def test_the_aof_rewrite_and_restart_keep_big_containers(tmp_path: Path) -> None:
    clock, server = _server(tmp_path)
    c, t = _client(server)
    model, hmodel = _big(server, c)
    assert _call(c, t, "BGREWRITEAOF").startswith(b"Background")
    server.aof.flush()  # type: ignore[union-attr]
    clock2 = Clock()
    clock2.advance(1_000_000)
    again = KVServer(Settings(data=tmp_path / "kv.aof"), clock2)
    assert set(again.store.get(b"s")) == model
    assert dict(again.store.get(b"h").items()) == hmodel
    assert type(again.store.get(b"s")) is ShardedSet  # (loading grew them as SADD does)


def test_a_sharded_set_and_dict_behave_as_a_set_and_a_dict() -> None:
    rnd = random.Random(7)
    plain = {b"%d" % i for i in range(2000)}
    big, model = ShardedSet(set(plain)), set(plain)
    hplain = {b"%d" % i: b"v" for i in range(2000)}
    hbig, hmodel = ShardedDict(dict(hplain)), dict(hplain)
    for _ in range(20_000):
        m = b"%d" % rnd.randrange(4000)
        op = rnd.randrange(4)
        if op == 0:
            big.add(m), model.add(m)
            hbig[m], hmodel[m] = m, m
        elif op == 1:
            big.discard(m), model.discard(m)
            assert hbig.pop(m, None) == hmodel.pop(m, None)
        elif op == 2:
            big.update([m, m + b"x"]), model.update([m, m + b"x"])
            hbig.update({m: b"u"}), hmodel.update({m: b"u"})
        else:
            big.difference_update([m]), model.difference_update([m])
        assert (m in big) == (m in model) and hbig.get(m) == hmodel.get(m)
    assert len(big) == len(model) and set(big) == model and big == model
    assert len(hbig) == len(hmodel) and dict(hbig.items()) == hmodel
    assert set(big.copy()) == model and dict(hbig.copy().items()) == hmodel
    assert type(big & {b"1", b"2"}) is set and big & {b"1", b"2"} == model & {b"1", b"2"}
    assert big | {b"new"} == model | {b"new"} and big - {b"1"} == model - {b"1"}
    assert {big.at(i) for i in range(len(big))} == model
    popped = big.pop()
    assert popped in model and popped not in big and len(big) == len(model) - 1


def test_big_containers_answer_as_redis_server(kv_port: int, redis_port: int) -> None:
    """The same set, hash and sorted set of 70,000 members in both: what commands answer."""
    n = SHARD_AT + 4_464
    replies = []
    for port in (redis_port, kv_port):
        r = redis.Redis(port=port)
        r.select(9)
        r.flushdb()
        p = r.pipeline(transaction=False)
        for lo in range(0, n, 1000):
            ids = range(lo, min(n, lo + 1000))
            p.sadd(b"s", *[b"m%d" % i for i in ids])
            p.hset(b"h", mapping={b"f%d" % i: b"v%d" % i for i in ids})
            p.zadd(b"z", {b"m%d" % i: i for i in ids})
        p.execute()
        out: list[Any] = [r.scard(b"s"), r.hlen(b"h"), r.zcard(b"z")]
        out += [r.type(k) for k in (b"s", b"h", b"z")]
        out += [r.object("encoding", k) for k in (b"s", b"h", b"z")]
        out += [r.sismember(b"s", b"m5"), r.smismember(b"s", [b"m1", b"x", b"m69999"])]
        out += [r.hget(b"h", b"f7"), r.hmget(b"h", [b"f1", b"nope"]), r.zscore(b"z", b"m9")]
        out += [r.sadd(b"s", b"m1", b"new"), r.srem(b"s", b"m2", b"m3", b"x"), r.scard(b"s")]
        out += [r.hset(b"h", mapping={b"f1": b"x", b"g": b"y"}), r.hdel(b"h", b"f2", b"zz")]
        out += [r.sintercard(2, [b"s", b"s"]), r.zrank(b"z", b"m100"), r.zrem(b"z", b"m0")]
        members: set[bytes] = set()
        cursor = 0
        while True:
            cursor, got = r.sscan(b"s", cursor, count=5000)
            members.update(got)
            if cursor == 0:
                break
        out += [members == set(r.smembers(b"s")), len(members)]
        out += [r.srandmember(b"s") in members, set(r.srandmember(b"s", 30)) <= members]
        out += [len(r.hrandfield(b"h", -40)), r.sunionstore(b"u", [b"s", b"s"])]
        out += [r.copy(b"h", b"h2"), r.hlen(b"h2"), r.restore(b"s2", 0, r.dump(b"s"))]
        out += [r.scard(b"s2"), r.delete(b"s", b"h", b"z", b"u", b"h2", b"s2")]
        r.flushdb()
        replies.append(out)
    assert replies[0] == replies[1]
