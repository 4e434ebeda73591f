"""
Keyspace notifications, side by side with redis-server: a subscriber on each server
(PSUBSCRIBE __key*__:*), the same commands to both, the same messages in the same
order (RESP2 and RESP3 subscribers); CONFIG SET/GET of the flags, the TOML option,
expired events, and nothing sent when it is off.
"""

from __future__ import annotations

import shlex

import hiredis
import pytest
import redis
from kv_raw import Raw
from kvdb_help import wait_for

from portsuite.testing import suite_running

STORY = [
    # strings
    "SET s 1",
    "SET s 2 EX 100",
    "SET s 3 NX",
    "SETNX s2 x",
    "SETNX s2 y",
    "GETSET s2 z",
    "MSET m1 1 m2 2",
    "MSETNX m1 1 m3 3",
    "MSETNX n1 1 n2 2",
    "APPEND s2 more",
    "SETRANGE s2 1 X",
    "INCR i",
    "DECR i",
    "INCRBY i 5",
    "DECRBY i 2",
    "INCRBYFLOAT f 1.5",
    "GETDEL s2",
    "GETDEL s2",
    "GETEX s EX 50",
    "GETEX s PERSIST",
    "GETEX s",
    "SETEX se 100 v",
    "PSETEX pe 100000 v",
    "SETBIT b 3 1",
    # generic
    "DEL m1 nokey m2",
    "UNLINK n1",
    "EXPIRE s 100",
    "PEXPIRE s 100000",
    "EXPIREAT s 1",
    "SET s 1",
    "EXPIRE s 100",
    "PERSIST s",
    "PERSIST s",
    "RENAME s s9",
    "RENAMENX s9 s8",
    "RENAMENX i s8",
    "MOVE s8 3",
    "COPY f fcopy",
    "COPY f fcopy DB 4",
    "SWAPDB 3 4",
    # lists
    "LPUSH l a b",
    "RPUSH l c",
    "LPUSHX l d",
    "RPUSHX l e",
    "LPUSHX nol x",
    "LPOP l",
    "RPOP l 2",
    "LINSERT l BEFORE a z",
    "LSET l 0 y",
    "LREM l 0 y",
    "LTRIM l 0 0",
    "RPUSH l 1 2 3",
    "RPOPLPUSH l l2",
    "LMOVE l l2 LEFT RIGHT",
    "LMOVE l2 l2 LEFT RIGHT",
    "BLPOP l 0",
    "BRPOP l2 0",
    "BLMOVE l2 l3 LEFT LEFT 0",
    "RPUSH l4 1 2 3",
    "BLMPOP 0 2 nol l4 LEFT COUNT 2",
    "BLMPOP 0 1 l4 RIGHT COUNT 5",
    "LTRIM l3 5 10",
    # hashes
    "HSET h a 1 b 2",
    "HSETNX h a 1",
    "HSETNX h c 3",
    "HMSET h d 4",
    "HINCRBY h a 1",
    "HINCRBYFLOAT h a 0.5",
    "HDEL h a b c",
    "HDEL h d",
    # sets
    "SADD st a b",
    "SADD st a",
    "SREM st a",
    "SADD one only",
    "SPOP one",
    "SADD st2 b",
    "SMOVE st st2 b",
    "SADD st x",
    "SMOVE st st3 x",
    "SADD u 1 2",
    "SADD v 2 3",
    "SINTERSTORE w u v",
    "SUNIONSTORE w u v",
    "SDIFFSTORE w u v",
    "SINTERSTORE w u nokey",
    "SINTERSTORE w2 u nokey",
    # reads (key misses with m)
    "GET nokey",
    "LRANGE nokey 0 -1",
    "HGET nokey f",
    "EXISTS nokey",
    # the end
    "FLUSHDB",
    "FLUSHALL",
]


# the Redis 7 types added since: sorted sets, geo, SORT, bitmaps, HyperLogLog, streams
STORY_TYPES = [
    "ZADD z 1 a 2 b 3 c",
    "ZADD z XX 5 a",
    "ZADD z NX 1 a",
    "ZADD z INCR 2 b",
    "ZINCRBY z 1 c",
    "ZREM z nothere",
    "ZREM z a",
    "ZADD z 7 d 8 e 9 f",
    "ZREMRANGEBYSCORE z 9 9",
    "ZREMRANGEBYRANK z 0 0",
    "ZREMRANGEBYLEX z [d [d",
    "ZPOPMIN z",
    "ZPOPMAX z",
    "ZADD y 1 a 2 b",
    "ZMPOP 1 y MIN",
    "ZMPOP 1 y MAX COUNT 5",
    "ZADD z1 1 a 2 b",
    "ZADD z2 2 b 3 c",
    "ZUNIONSTORE zu 2 z1 z2",
    "ZINTERSTORE zi 2 z1 z2",
    "ZDIFFSTORE zd 2 z1 z2",
    "ZINTERSTORE zu 2 z1 nokey",
    "ZRANGESTORE zr z1 0 -1",
    "BZPOPMIN z1 0.01",
    "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
    "GEOSEARCHSTORE gs g FROMMEMBER Palermo BYRADIUS 200 km",
    "GEORADIUS g 15 37 200 km STORE gr",
    "RPUSH l 3 1 2",
    "SORT l STORE ls",
    "SORT nokey STORE ls",
    "SETBIT b1 3 1",
    "SET b2 x",
    "BITOP AND b3 b1 b2",
    "BITOP AND b3 nokey nokey2",
    "BITFIELD bf SET u8 0 200",
    "PFADD h a b c",
    "PFADD h a",
    "PFMERGE h2 h",
    "XADD x 1-1 f v",
    "XADD x 2-1 f v",
    "XDEL x 9-9",
    "XDEL x 1-1",
    "XTRIM x MAXLEN 0",
    "XSETID x 5-5",
    "XGROUP CREATE x grp 0",
    "XGROUP SETID x grp $",
    "XGROUP CREATECONSUMER x grp alice",
    "XGROUP DELCONSUMER x grp alice",
    "XGROUP DESTROY x grp",
    "SET r 1",
    "DEL r",
]


def _messages(
    port: int, flags: str, resp3: bool, story: list[str] | list[list[bytes]] = STORY
) -> list[object]:
    """The events C{story} (redis-cli lines, or argv lists for binary arguments) publishes."""
    sub, w = Raw(port, resp3), Raw(port)
    w.call("FLUSHALL")
    assert w.call("CONFIG", "SET", "notify-keyspace-events", flags) == b"+OK\r\n"
    try:
        sub.call("PSUBSCRIBE", "__key*__:*")
        sub.call("SUBSCRIBE", "end")
        for line in story:
            w.call(*(shlex.split(line) if isinstance(line, str) else line))
        w.call("PUBLISH", "end", "x")
        out: list[object] = []
        while True:
            reader = hiredis.Reader()
            reader.feed(sub.reply())
            msg = reader.gets()
            if msg[0] == b"message" and msg[1] == b"end":
                return out
            out.append(tuple(msg))
    finally:
        w.call("CONFIG", "SET", "notify-keyspace-events", "")
        w.call("FLUSHALL")
        sub.close()
        w.close()


@pytest.mark.parametrize(
    ("flags", "resp3"),
    [
        ("KEA", False),
        ("KEA", True),
        ("Kl", False),
        ("E$g", False),
        ("KEAn", False),
        ("KEm", False),
        ("AKEnm", True),
    ],
)
def test_same_messages_as_redis(flags: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    want = _messages(redis_port, flags, resp3)
    got = _messages(kv_port, flags, resp3)
    assert got == want
    assert want  # the story notifies something


@pytest.mark.parametrize(("flags", "resp3"), [("KEA", False), ("AKEn", True)])
def test_same_messages_as_redis_for_the_redis_7_types(
    flags: str, resp3: bool, redis_port: int, kv_port: int
) -> None:
    want = _messages(redis_port, flags, resp3, STORY_TYPES)
    got = _messages(kv_port, flags, resp3, STORY_TYPES)
    assert got == want
    assert len(want) > 40


@pytest.mark.parametrize("value", ["KEA", "Kg", "g", "AKEnm", "Kx$lshzetdgE", "", "Kq", "KEn"])
def test_config_set_and_get_as_redis(value: str, redis_port: int, kv_port: int) -> None:
    replies = []
    for port in (redis_port, kv_port):
        r = Raw(port)
        replies.append(
            (
                r.call("CONFIG", "SET", "notify-keyspace-events", value),
                r.call("CONFIG", "GET", "notify-keyspace-events"),
            )
        )
        r.call("CONFIG", "SET", "notify-keyspace-events", "")
        r.close()
    assert replies[1] == replies[0]


def test_expired_events_with_redis_py_and_the_toml_option() -> None:
    config = {"services": {"kv": {"type": "kv", "port": 0, "notify_keyspace_events": "Ex"}}}
    with suite_running(config) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "xE"}
        p = r.pubsub()
        p.psubscribe("__keyevent@*__:expired")
        wait_for(lambda: p.get_message(timeout=0.1))  # the psubscribe confirmation
        r.execute_command("SELECT", 0)
        r.set("soon", "x", px=50)
        r2 = redis.Redis(port=s.port("kv"), db=5)
        r2.set("later", "y", px=80)
        got: list[tuple[bytes, bytes]] = []

        def two() -> bool:
            m = p.get_message(timeout=0.5)
            if m and m["type"] == "pmessage":
                got.append((m["channel"], m["data"]))
            return len(got) == 2

        wait_for(two, message="two expired events")  # active expiry, no lookup needed
        assert sorted(got) == [
            (b"__keyevent@0__:expired", b"soon"),
            (b"__keyevent@5__:expired", b"later"),
        ]
        p.close()
        r.close()
        r2.close()


def test_nothing_is_published_when_off(kv_port: int) -> None:
    sub, w = Raw(kv_port), Raw(kv_port)
    sub.call("PSUBSCRIBE", "*")
    w.call("SET", "k", "v")
    w.call("DEL", "k")
    w.call("PUBLISH", "only", "this")
    assert sub.reply() == b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$4\r\nonly\r\n$4\r\nthis\r\n"
    sub.close()
    w.close()


def test_a_bad_toml_value_is_one_line() -> None:
    from portsuite_services.kv import _notify_flags

    assert _notify_flags("KEA") is None
    assert "K E g $" in (_notify_flags("KEq") or "")
