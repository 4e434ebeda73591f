"""
Key misses (notify-keyspace-events with m), side by side with redis-server 7.0: every
command that takes a key, on missing keys, one by one from an empty keyspace; redis-server
tells "keymiss" wherever it looks a key up as a read (TOUCH, TYPE, SORT's source, BITOP's
sources, PFMERGE's destination too, XREAD twice a key, XPENDING and XINFO STREAM before
their error, the keys looked up before a WRONGTYPE), not for OBJECT, WATCH or a
STORE's destination. Then the same for commands of many keys, looked up in slices.
"""

from __future__ import annotations

import shlex
from typing import Any

import hiredis
from kv_raw import Raw

from portsuite_services.kv.bigwork import ARGS

LINES = [
    "GET nk",
    "GETRANGE nk 0 1",
    "SUBSTR nk 0 1",
    "STRLEN nk",
    "GETDEL nk",
    "GETEX nk",
    "GETEX nk EX 10",
    "MGET nk nk2 nk",
    "LCS nk nk2",
    "APPEND nk x",
    "DEL nk",
    "INCR nk",
    "SETRANGE sr 0 x",
    "GETBIT nk 1",
    "BITCOUNT nk",
    "BITPOS nk 1",
    "BITFIELD_RO nk GET u8 0",
    "BITFIELD nk GET u8 0",
    "BITOP AND dst nk nk2",
    "EXISTS nk nk2",
    "TOUCH nk nk2",
    "TYPE nk",
    "TTL nk",
    "PTTL nk",
    "EXPIRETIME nk",
    "PEXPIRETIME nk",
    "EXPIRE nk 10",
    "PERSIST nk",
    "OBJECT ENCODING nk",
    "OBJECT FREQ nk",
    "OBJECT IDLETIME nk",
    "OBJECT REFCOUNT nk",
    "MEMORY USAGE nk",
    "DUMP nk",
    "RENAME nk nk2",
    "RENAMENX nk nk2",
    "COPY nk nk2",
    "MOVE nk 1",
    "SORT nk",
    "SORT_RO nk",
    "SORT nk STORE dst",
    "LLEN nk",
    "LRANGE nk 0 -1",
    "LINDEX nk 0",
    "LPOS nk x",
    "LPOP nk",
    "RPOP nk",
    "LMPOP 2 nk nk2 LEFT",
    "LMOVE nk nk2 LEFT LEFT",
    "RPOPLPUSH nk nk2",
    "LSET nk 0 x",
    "LREM nk 0 x",
    "LTRIM nk 0 1",
    "LINSERT nk BEFORE a b",
    "LPUSHX nk x",
    "HGET nk f",
    "HMGET nk f g",
    "HGETALL nk",
    "HKEYS nk",
    "HVALS nk",
    "HLEN nk",
    "HEXISTS nk f",
    "HSTRLEN nk f",
    "HRANDFIELD nk",
    "HSCAN nk 0",
    "HDEL nk f",
    "SCARD nk",
    "SMEMBERS nk",
    "SISMEMBER nk m",
    "SMISMEMBER nk m n",
    "SRANDMEMBER nk",
    "SSCAN nk 0",
    "SPOP nk",
    "SREM nk m",
    "SMOVE nk nk2 m",
    "SINTER nk nk2",
    "SUNION nk nk2",
    "SDIFF nk nk2",
    "SINTERCARD 2 nk nk2",
    "SINTERSTORE dst nk nk2",
    "SUNIONSTORE dst nk nk2",
    "SDIFFSTORE dst nk nk2",
    "ZCARD nk",
    "ZSCORE nk m",
    "ZMSCORE nk m n",
    "ZRANK nk m",
    "ZREVRANK nk m",
    "ZCOUNT nk 0 1",
    "ZLEXCOUNT nk - +",
    "ZRANGE nk 0 -1",
    "ZRANGEBYSCORE nk 0 1",
    "ZREVRANGE nk 0 -1",
    "ZRANGEBYLEX nk - +",
    "ZRANDMEMBER nk",
    "ZSCAN nk 0",
    "ZRANGESTORE dst nk 0 -1",
    "ZPOPMIN nk",
    "ZMPOP 2 nk nk2 MIN",
    "ZREM nk m",
    "ZREMRANGEBYRANK nk 0 1",
    "ZINCRBY nk2x 1 m",
    "ZUNION 2 nk nk2",
    "ZINTER 2 nk nk2",
    "ZDIFF 2 nk nk2",
    "ZINTERCARD 2 nk nk2",
    "ZUNIONSTORE dst 2 nk nk2",
    "ZINTERSTORE dst 2 nk nk2",
    "ZDIFFSTORE dst 2 nk nk2",
    "XLEN nk",
    "XRANGE nk - +",
    "XREVRANGE nk + -",
    "XREAD STREAMS nk nk2 0 0",
    "XINFO STREAM nk",
    "XPENDING nk g",
    "XDEL nk 1-1",
    "XTRIM nk MAXLEN 0",
    "PFCOUNT nk nk2",
    "PFMERGE dst nk nk2",
    "GEOPOS nk m",
    "GEODIST nk a b",
    "GEOHASH nk m",
    "GEOSEARCH nk FROMLONLAT 0 0 BYRADIUS 1 km",
    "GEOSEARCHSTORE dst nk FROMLONLAT 0 0 BYRADIUS 1 km",
    "GEORADIUS nk 0 0 1 km",
    "GEORADIUS_RO nk 0 0 1 km",
    "GEORADIUSBYMEMBER nk m 1 km",
    "SET dst 1",
    "WATCH nk",
    "UNWATCH",
    "SUNION nk sr nk2",
    "SINTERCARD 3 nk sr nk2",
    "SUNIONSTORE d2 nk sr nk2",
    "ZUNION 3 nk sr nk2",
    "ZINTERCARD 3 nk sr nk2",
    "ZUNIONSTORE d2 3 nk sr nk2 WEIGHTS 1 2",
    "ZUNIONSTORE d2 3 nk sr nk2 WEIGHTS 1 x",
    "ZUNIONSTORE d2 3 nk nk3 nk2 WEIGHTS 1 x",
    "ZUNIONSTORE d2 3 nk nk3 nk2 BAD",
    "MGET nk sr nk2",
    "PFCOUNT nk sr nk2",
    "LCS nk sr",
    "SORT nk BY nosort",
    "SORT nk BY w_* GET #",
    "SORT_RO nk BY w_*",
    "ZRANGESTORE dst nk 0 -1",
    "GEORADIUS nk 0 0 1 km STORE d3",
    "XREAD STREAMS nk sr nk2 0 0 0",
    "SRANDMEMBER nk 5",
    "ZRANDMEMBER nk 2 WITHSCORES",
    "SMOVE nk sr m",
]


def _misses(port: int, lines: list[Any]) -> list[Any]:
    """For each command (a redis-cli line, or argv), run on an empty keyspace: its reply's first
    bytes and the keys its key misses named, in order."""
    sub, w = Raw(port), Raw(port)
    w.call("CONFIG", "SET", "notify-keyspace-events", "Em")
    sub.call("SUBSCRIBE", "__keyevent@0__:keymiss", "end")
    sub.reply()  # (the second subscription's confirmation)
    reader = hiredis.Reader()  # (the messages read as they come: thousands for a command)

    def message() -> Any:
        while (msg := reader.gets()) is False:
            reader.feed(sub.sock.recv(1 << 16))
        return msg

    out: list[Any] = []
    try:
        for line in lines:
            w.call("FLUSHALL")
            w.call("SET", "sr", "x")  # (a string: WRONGTYPE for the others)
            reply = w.call(*(shlex.split(line) if isinstance(line, str) else line))
            w.call("PUBLISH", "end", "x")
            keys = []
            while True:
                msg = message()
                if msg[1] == b"end":
                    break
                keys.append(msg[2])
            out.append((reply[:1], keys))
    finally:
        w.call("CONFIG", "SET", "notify-keyspace-events", "")
        w.call("FLUSHALL")
        sub.close()
        w.close()
    return out


def test_key_misses_as_redis(redis_port: int, kv_port: int) -> None:
    want = _misses(redis_port, LINES)
    got = _misses(kv_port, LINES)
    diff = [(line, w, g) for line, w, g in zip(LINES, want, got, strict=True) if w != g]
    assert not diff
    told = {line.split()[0] for line, (_, keys) in zip(LINES, want, strict=True) if keys}
    assert {"TOUCH", "TYPE", "SORT", "BITOP", "ZUNION", "SINTERCARD", "XREAD"} <= told
    assert "OBJECT" not in told and "WATCH" not in told  # (kv told them before)


M = 3 * ARGS  # keys: past ARGS, their lookups in slices


def _many(prefix: str, n: int = M) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


MANY: list[list[str]] = [
    ["SUNION", *_many("a")],
    ["SINTERCARD", str(M), *_many("a")],
    ["SUNIONSTORE", "d", *_many("a")],
    ["ZUNION", str(M), *_many("a")],
    ["ZINTERCARD", str(M), *_many("a")],
    ["ZUNIONSTORE", "d", str(M), *_many("a"), "WEIGHTS", *["2"] * M],
    ["ZDIFF", str(M), *_many("a"), "WITHSCORES"],
    # a WRONGTYPE half way: the keys before it are told, then the error
    ["SUNION", *_many("a", M // 2), "sr", *_many("b", M // 2)],
    ["ZINTERCARD", str(M + 1), *_many("a", M // 2), "sr", *_many("b", M // 2)],
    # an option's error after the lookups: every key told, then the error
    ["ZUNIONSTORE", "d", str(M), *_many("a"), "WEIGHTS", *["1"] * (M - 1), "x"],
    ["TOUCH", *_many("a")],
    ["PFCOUNT", *_many("a", 300), "sr"],
    ["XREAD", "STREAMS", *_many("a"), *["0"] * M],  # (many streams: read in slices)
]


def test_key_misses_of_many_keys_as_redis(redis_port: int, kv_port: int) -> None:
    want = _misses(redis_port, MANY)
    got = _misses(kv_port, MANY)
    assert [len(keys) for _, keys in got] == [len(keys) for _, keys in want]
    assert got == want
    assert len(want[0][1]) == M and len(want[7][1]) == M // 2


def _woken_misses(port: int, streams: int) -> list[Any]:
    """XREAD BLOCK on missing streams and one there, woken by an XADD: its reply's first
    bytes and the key misses told from its start to its reply."""
    sub, w, blocked = Raw(port), Raw(port), Raw(port)
    try:
        w.call("FLUSHALL")
        w.call("XADD", "s", "1-1", "f", "v")
        w.call("CONFIG", "SET", "notify-keyspace-events", "Em")
        sub.call("SUBSCRIBE", "__keyevent@0__:keymiss", "end")
        sub.reply()
        names = _many("nk", streams)
        blocked.call("CLIENT", "SETNAME", "reader")
        blocked.send(
            b"*%d\r\n" % (4 + 2 * (streams + 1))
            + b"".join(
                b"$%d\r\n%s\r\n" % (len(a), a)
                for a in [b"XREAD", b"BLOCK", b"0", b"STREAMS"]
                + [n.encode() for n in names]
                + [b"s"]
                + [b"$"] * (streams + 1)
            )
        )
        while b"cmd=xread" not in w.call("CLIENT", "LIST"):  # (it waits)
            pass
        w.call("XADD", "s", "2-1", "f", "v")
        reply = blocked.reply()
        w.call("PUBLISH", "end", "x")
        reader = hiredis.Reader()
        keys = []
        while True:
            while (msg := reader.gets()) is False:
                reader.feed(sub.sock.recv(1 << 16))
            if msg[1] == b"end":
                break
            keys.append(msg[2])
        return [reply[:1], keys]
    finally:
        w.call("CONFIG", "SET", "notify-keyspace-events", "")
        w.call("FLUSHALL")
        for r in (sub, w, blocked):
            r.close()


def test_a_woken_xread_tells_no_new_key_miss_as_redis(redis_port: int, kv_port: int) -> None:
    """
    A blocked XREAD woken by a write is served from the stream that woke it, as Redis
    7.0: the misses of its other streams are told when it starts (twice each, as any
    XREAD), not again when it wakes (kv ran the whole read again and told them again).
    """
    for streams in (3, M):
        want = _woken_misses(redis_port, streams)
        got = _woken_misses(kv_port, streams)
        assert got == want
        assert len(want[1]) == 2 * streams and want[0] == b"*"
