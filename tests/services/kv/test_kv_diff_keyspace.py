"""
COPY OBJECT DUMP RESTORE LOLWUT LMPOP HRANDFIELD SSCAN on kv and on redis-server 7,
side by side (RESP2 and RESP3), and DUMP payloads carried from one to the other.
"""

from __future__ import annotations

import random

import pytest
import redis
from kvx_diff import compare

CASES = {
    "copy": [
        "SET a 1",
        "EXPIRE a 1000",
        "COPY a b",
        "TTL b",
        "COPY a b",
        "SET a 2",
        "COPY a b REPLACE",
        "GET b",
        "COPY a a",
        "COPY nope b",
        "RPUSH l x y",
        "COPY l l2",
        "RPUSH l2 z",
        "LRANGE l 0 -1",
        "LRANGE l2 0 -1",
        "HSET h f v",
        "COPY h h2",
        "HSET h2 g w",
        "HLEN h",
        "SADD s m",
        "COPY s s2",
        "SADD s2 n",
        "SCARD s",
        "XADD x 1-1 f v",
        "XGROUP CREATE x g 0",
        "XREADGROUP GROUP g c STREAMS x >",
        "COPY x x2",
        "XADD x2 2-1 f v",
        "XLEN x",
        "XINFO GROUPS x2",
        "COPY a b FOO",
        "COPY a b DB",
        "COPY a b DB x",
        "COPY a",
    ],
    "object": [
        "SET i 12345",
        "SET e hello",
        "SET r 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        "SET neg -9223372036854775808",
        "SET big 9223372036854775808",
        "OBJECT ENCODING i",
        "OBJECT ENCODING e",
        "OBJECT ENCODING r",
        "OBJECT ENCODING neg",
        "OBJECT ENCODING big",
        "OBJECT ENCODING nope",
        "RPUSH l a b",
        "OBJECT ENCODING l",
        "HSET h f v",
        "OBJECT ENCODING h",
        "SADD s 1 2 3",
        "OBJECT ENCODING s",
        "SADD s x",
        "OBJECT ENCODING s",
        "XADD x 1-1 f v",
        "OBJECT ENCODING x",
        "OBJECT REFCOUNT i",
        "OBJECT REFCOUNT e",
        "SET small 5",
        "OBJECT REFCOUNT small",
        "OBJECT REFCOUNT nope",
        "OBJECT FREQ e",
        "OBJECT FREQ nope",
        "OBJECT IDLETIME nope",
        "OBJECT FOO e",
        "OBJECT ENCODING",
        "OBJECT",
        "OBJECT HELP",
        "TYPE x",
        "TYPE h",
        "TYPE nope",
    ],
    # strings changed in place are "raw" whatever their length; a new value is not
    "encoding-raw": [
        "SET a 12",
        "APPEND a 3",
        "OBJECT ENCODING a",
        "APPEND n hello",
        "OBJECT ENCODING n",
        "APPEND n2 123",
        "OBJECT ENCODING n2",
        "SET e x",
        "APPEND e ''",
        "OBJECT ENCODING e",
        "SETRANGE sr 0 ab",
        "OBJECT ENCODING sr",
        "SET big 123",
        "SETRANGE big 0 ''",
        "OBJECT ENCODING big",
        "SETRANGE big 1 x",
        "OBJECT ENCODING big",
        "SETBIT sb 1 1",
        "OBJECT ENCODING sb",
        "BITOP OR bo sb",
        "OBJECT ENCODING bo",
        "BITFIELD bf SET u8 0 1",
        "OBJECT ENCODING bf",
        "PFADD p a",
        "OBJECT ENCODING p",
        "INCRBYFLOAT f 1.5",
        "OBJECT ENCODING f",
        "RENAME a a2",
        "OBJECT ENCODING a2",
        "COPY a2 cp",
        "OBJECT ENCODING cp",
        "MOVE a2 1",
        "SELECT 1",
        "OBJECT ENCODING a2",
        "SELECT 0",
        "SET n hello",
        "OBJECT ENCODING n",
        "SET h2 5",
        "APPEND h2 ''",
        "INCR h2",
        "OBJECT ENCODING h2",
        "SET x abc",
        "APPEND x d",
        "PEXPIRE x 1",
        "DEBUG SLEEP 0.01",
        "SET x abc",
        "OBJECT ENCODING x",
        "SETRANGE y 0 abc",
        "GETDEL y",
        "SET y abc",
        "OBJECT ENCODING y",
    ],
    "restore": [
        "SET a hello",
        "RESTORE a 0 x",
        "RESTORE b 0 x",
        "RESTORE b -1 x",
        "RESTORE b abc x",
        "RESTORE b 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n'",
        "GET b",
        "RESTORE b 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n'",
        "RESTORE b 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' REPLACE",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\x00'",
        "RESTORE c 0 '\\x00\\x05hello\\x0b\\x00cr\\xdfve4 \\n'",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' IDLETIME -1",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' FREQ 256",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' IDLETIME 1 FREQ 1",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' FOO",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' IDLETIME 1000",
        "OBJECT IDLETIME c",
        "RESTORE d 1 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' ABSTTL",
        "EXISTS d",
        "RESTORE d 100000 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n'",
        "PTTL d",
        "DUMP a",
        "DUMP nope",
        "DUMP",
    ],
    "lmpop": [
        "RPUSH a 1 2 3",
        "RPUSH b x",
        "LMPOP 2 nope a LEFT",
        "LMPOP 2 nope a RIGHT COUNT 5",
        "EXISTS a",
        "LMPOP 2 a b LEFT COUNT 1",
        "LMPOP 1 a LEFT",
        "LMPOP 0 a LEFT",
        "LMPOP -1 a LEFT",
        "LMPOP x a LEFT",
        "LMPOP 3 a b LEFT",
        "LMPOP 1 a MIDDLE",
        "LMPOP 1 a LEFT COUNT 0",
        "LMPOP 1 a LEFT COUNT -1",
        "LMPOP 1 a LEFT COUNT 1 COUNT 1",
        "LMPOP 1 a LEFT FOO",
        "SET s x",
        "LMPOP 1 s LEFT",
        "LMPOP 2 nope s LEFT",
    ],
    "hrandfield": [
        "HSET h a 1",
        "HRANDFIELD h",
        "HRANDFIELD h 1",
        "HRANDFIELD h 5",
        "HRANDFIELD h -3",
        "HRANDFIELD h -2 WITHVALUES",
        "HRANDFIELD h 1 WITHVALUES",
        "HRANDFIELD h 0",
        "HRANDFIELD h x",
        "HRANDFIELD h 1 FOO",
        "HRANDFIELD h 1 WITHVALUES x",
        "HRANDFIELD h -9223372036854775808",
        "HRANDFIELD h -9223372036854775807 WITHVALUES",
        "HRANDFIELD nope",
        "HRANDFIELD nope 3",
        "SET s x",
        "HRANDFIELD s",
    ],
    "sscan": [
        "SADD s 1 2 3 10 20",
        "SSCAN s 0",
        "SSCAN s 0 MATCH 1*",
        "SSCAN s 0 COUNT 1",
        "SSCAN s 0 COUNT 0",
        "SSCAN s x",
        "SSCAN s 0 FOO",
        "SSCAN nope 0",
        "SMISMEMBER s 1 9 2",
        "SINTERCARD 1 s",
        "SINTERCARD 1 s LIMIT 2",
        "SET str x",
        "SSCAN str 0",
    ],
    "lolwut": [
        "LOLWUT VERSION x",
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_keyspace_like_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    compare(redis_port, kv_port, CASES[name], resp3)


def _fill(r: redis.Redis) -> None:
    r.set("s_short", "hello")
    r.set("s_int", "-12345")
    r.set("s_lzf", "ab" * 30000)  # redis-server compresses it (LZF)
    r.rpush("l_small", "a", "1", "-5", "300000")
    r.rpush("l_big", *[f"elem{i}" * 3 for i in range(2000)], "x" * 20000)
    r.sadd("set_int", 1, 2, -70000, 2**40)
    r.sadd("set_str", "a", "b", "c")
    r.hset("h_small", mapping={"a": "1", "b": "xyz"})
    r.hset("h_big", mapping={f"f{i}": "v" * 70 for i in range(300)})


def _value(r: redis.Redis, key: str) -> object:
    t = r.type(key)
    if t == b"string":
        return r.get(key)
    if t == b"list":
        return r.lrange(key, 0, -1)
    if t == b"set":
        return sorted(r.smembers(key))
    return sorted(r.hgetall(key).items())


def test_dump_payloads_cross_over(redis_port: int, kv_port: int) -> None:
    """A DUMP from redis-server RESTOREs in kv (every encoding), and the other way round."""
    kv, ref = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (kv, ref):
        r.flushall()
        _fill(r)
    keys = ["s_short", "s_int", "s_lzf", "l_small", "l_big", "set_int", "set_str"]
    keys += ["h_small", "h_big"]
    for src, dst in ((ref, kv), (kv, ref)):
        for key in keys:
            dst.restore(f"copy_{key}", 0, src.dump(key), replace=True)
            assert _value(dst, f"copy_{key}") == _value(src, key), key
    assert kv.dump("s_short") == ref.dump("s_short")


def _stream(r: redis.Redis, key: str) -> object:
    """What a client sees of a stream: entries, its counters, groups, pending entries."""
    info = r.xinfo_stream(key)
    counters = [
        info[k] for k in ("length", "last-generated-id", "max-deleted-entry-id", "entries-added")
    ]
    groups = [(g["name"], g["last-delivered-id"], g["entries-read"]) for g in r.xinfo_groups(key)]
    pending = [
        (g[0], [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pel])
        for g in groups
        if (pel := r.xpending_range(key, g[0], "-", "+", 1000))
    ]
    consumers = [
        sorted((c["name"], c["pending"]) for c in r.xinfo_consumers(key, g[0])) for g in groups
    ]
    return r.xrange(key), counters, groups, pending, consumers


def _fill_stream(r: redis.Redis) -> None:
    """Entries of every listpack encoding, over several nodes; groups with pending entries."""
    rnd = random.Random(3)
    ms = 1000
    for i in range(400):
        ms += rnd.choice([0, 0, 1, 5, 100000])
        fields = {}
        for _ in range(rnd.choice([1, 2, 2, 3])):
            f = rnd.choice(["f", "a", "name", "123", "-5", "x" * 70])
            fields[f] = rnd.choice(
                ["v", "1", "-1", "300", "70000", "9999999999", "-42"]
                + ["y" * rnd.choice([1, 63, 64, 200, 5000])]
            )
        r.xadd("x", fields, id=f"{ms}-{i}")
    r.xgroup_create("x", "g1", id="0")
    r.xgroup_create("x", "7", id="$")  # (a name Redis writes as an integer)
    r.xreadgroup("g1", "alice", {"x": ">"}, count=7)
    r.xreadgroup("g1", "bob", {"x": ">"}, count=3)
    r.xdel("x", *[e[0] for e in r.xrange("x", count=6)][1::2])


def test_stream_dump_payloads_cross_over(redis_port: int, kv_port: int) -> None:
    """A stream's DUMP from redis-server RESTOREs in kv, and the other way round."""
    kv, ref = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (kv, ref):
        r.flushall()
        _fill_stream(r)
    assert _stream(kv, "x") == _stream(ref, "x")
    for src, dst in ((ref, kv), (kv, ref)):
        dst.restore("copy", 0, src.dump("x"), replace=True)
        assert _stream(dst, "copy") == _stream(src, "x")
    # a small stream (no LZF) is written byte for byte as redis-server writes it
    for r in (kv, ref):
        r.xadd("small", {"f": "v", "a": "b"}, id="1-1")
        r.xadd("small", {"f": "w", "a": "12"}, id="1-2")
        r.xadd("small", {"g": "-3"}, id="2-0")
        r.xgroup_create("small", "grp", id="$")
    assert kv.dump("small") == ref.dump("small")


def test_garbled_stream_payloads_are_refused(kv_port: int) -> None:
    """Any byte of a stream's payload changed (its CRC made right): an error, or a stream."""
    from portsuite_services.kv import rdb

    kv = redis.Redis(port=kv_port)
    kv.flushall()
    kv.xadd("x", {"f": "v", "a": "1"}, id="1-1")
    kv.xadd("x", {"g": "w" * 100}, id="5-7")
    kv.xgroup_create("x", "g", id="0")
    kv.xreadgroup("g", "c", {"x": ">"}, count=1)
    body = kv.dump("x")[:-8]
    rnd = random.Random(5)
    refused = 0
    for _ in range(300):
        garbled = bytearray(body)
        for _ in range(rnd.choice([1, 2])):
            garbled[rnd.randrange(1, len(body) - 2)] = rnd.randrange(256)
        payload = bytes(garbled) + rdb.crc64(bytes(garbled)).to_bytes(8, "little")
        try:
            kv.restore("y", 0, payload, replace=True)
        except redis.ResponseError as e:
            assert "Bad data format" in str(e)
            refused += 1
            continue
        kv.xrange("y")  # a stream it reads back
        kv.xinfo_stream("y")
    assert refused > 100 and kv.ping()
