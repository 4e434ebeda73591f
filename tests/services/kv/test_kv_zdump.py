"""
Sorted sets in DUMP/RESTORE payloads, side by side with redis-server 7.0 (RESP2 and
RESP3): kv writes what Redis writes (a listpack while small, else a skiplist of
binary doubles; LZF as rdbcompression), reads every encoding since Redis 2.6 (text
scores, ziplists), refuses what Redis refuses, and answers a garbled payload with an
error or a usable sorted set, never a traceback or a stall. Big ones are read and
written in slices (bigwork.py).
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

import hiredis
import pytest
import redis
from kv_raw import Raw
from kvdb_help import wait_compacted
from test_kv_bigwork import _client, _cmd, _drive, _filled, _replies, _turn
from test_kv_notify import _messages

from portsuite.testing import suite_running
from portsuite_services.kv import rdb
from portsuite_services.kv.zset import ZSet

INF = float("inf")
NAN = float("nan")
BAD = b"-ERR Bad data format\r\n"


# -- payloads built by hand (the test's own encoders: Redis is the judge) ---------------


def _payload(body: bytes) -> bytes:
    """A RESTORE payload: C{body} (type byte and value), RDB version 10, its CRC64."""
    body += struct.pack("<H", 10)
    return body + struct.pack("<Q", rdb.crc64(body))


def _len(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | n >> 8, n & 255])
    return b"\x80" + n.to_bytes(4, "big")


def _str(b: bytes) -> bytes:
    return _len(len(b)) + b


def _z5(pairs: list[tuple[bytes, float]], count: int | None = None) -> bytes:
    """RDB_TYPE_ZSET_2: members and binary double scores."""
    body = b"".join(_str(m) + struct.pack("<d", s) for m, s in pairs)
    return _payload(b"\x05" + _len(len(pairs) if count is None else count) + body)


def _z3(pairs: list[tuple[bytes, bytes | int]]) -> bytes:
    """RDB_TYPE_ZSET: text scores (a length byte and the text, or 253/254/255)."""
    body = b"".join(
        _str(m) + (bytes([s]) if isinstance(s, int) else bytes([len(s)]) + s) for m, s in pairs
    )
    return _payload(b"\x03" + _len(len(pairs)) + body)


def _lp(items: list[bytes], count: int | None = None) -> bytes:
    """A listpack of strings (6- or 12-bit lengths)."""
    body = b""
    for x in items:
        e = (
            bytes([0x80 | len(x)]) + x
            if len(x) < 64
            else bytes([0xE0 | len(x) >> 8, len(x) & 255]) + x
        )
        body += e + bytes([len(e)])  # (entries under 128 bytes: a one-byte backlen)
    n = len(items) if count is None else count
    return (len(body) + 7).to_bytes(4, "little") + n.to_bytes(2, "little") + body + b"\xff"


def _z17(items: list[bytes], count: int | None = None) -> bytes:
    return _payload(b"\x11" + _str(_lp(items, count)))


def _zl_entry(x: bytes | int) -> bytes:
    if isinstance(x, bytes):
        if len(x) < 64:
            return bytes([len(x)]) + x
        if len(x) < 16384:
            return bytes([0x40 | len(x) >> 8, len(x) & 255]) + x
        return b"\x80" + len(x).to_bytes(4, "big") + x
    if 0 <= x <= 12:
        return bytes([0xF1 + x])
    for tag, size in ((0xFE, 1), (0xC0, 2), (0xF0, 3), (0xD0, 4), (0xE0, 8)):
        if -(1 << (8 * size - 1)) <= x < 1 << (8 * size - 1):
            return bytes([tag]) + x.to_bytes(size, "little", signed=True)
    raise ValueError(x)


def _zl(
    items: list[bytes | int], count: int | None = None, tail: int | None = None, bump: int = 0
) -> bytes:
    """A ziplist (Redis before 7.0); C{bump} adds to the second entry's back link."""
    body = b""
    prev = last = 0
    for i, x in enumerate(items):
        back = prev + (bump if i == 1 else 0)
        e = (bytes([back]) if back < 254 else b"\xfe" + back.to_bytes(4, "little")) + _zl_entry(x)
        last = 10 + len(body)
        body += e
        prev = len(e)
    n = min(len(items), 65535) if count is None else count
    t = (last if items else 10) if tail is None else tail
    head = (len(body) + 11).to_bytes(4, "little") + t.to_bytes(4, "little")
    return head + n.to_bytes(2, "little") + body + b"\xff"


def _z12(items: list[bytes | int], **kw: int) -> bytes:
    return _payload(b"\x0c" + _str(_zl(items, **kw)))


def _lzf(b: bytes) -> bytes:
    packed = rdb.lzf_compress(b)
    assert packed is not None
    return b"\xc3" + _len(len(packed)) + _len(len(b)) + packed


_MANY = [(b"m%d" % i, float(i % 17) - 3.5) for i in range(200)]
_SORTED_MANY = sorted(_MANY, key=lambda p: (p[1], p[0]))

# payloads both servers read the same way (redis-server with sanitize-dump-payload yes)
SAME: dict[str, bytes] = {
    "text scores": _z3(
        [
            (b"a", b"1.5"),
            (b"b", 254),
            (b"c", 255),
            (b"d", b" 2xyz"),
            (b"e", b"0x10"),
            (b"f", b"-0"),
            (b"g", b"5\x007"),
            (b"h", b"1e400"),
            (b"i", b"17.000000000000001"),
        ]
    ),
    "text score nan": _z3([(b"a", b"1"), (b"b", 253)]),
    "text score empty": _z3([(b"a", b"")]),
    "text score not a number": _z3([(b"a", b"xyz")]),
    "text score spaces": _z3([(b"a", b"   ")]),
    "text scores big": _z3([(m, b"%.17g" % s) for m, s in _MANY]),
    "binary scores": _z5(
        [(b"a", INF), (b"b", -INF), (b"c", 1e-300), (b"d", 0.1), (b"", 2.5), (b"\x00\xff", -1.0)]
    ),
    "binary -0 small": _z5([(b"a", -0.0), (b"b", 1.0)]),
    "binary -0 big": _z5([(b"a", -0.0), *_MANY]),
    "binary long member": _z5([(b"x" * 65, 1.0), (b"y", 2.0)]),
    "binary 17 digits": _z5([(b"a", 0.1 + 0.2), (b"b", 1 / 3), (b"c", 2.0**53 + 2)]),
    "binary big": _z5(_MANY),
    "binary nan": _z5([(b"a", 1.0), (b"b", NAN)]),
    "binary duplicate": _z5([(b"a", 1.0), (b"a", 2.0)]),
    "binary duplicate big": _z5([*_MANY, (b"m5", 9.0)]),
    "binary empty": _payload(b"\x05\x00"),
    "binary count over": _z5([(b"a", 1.0), (b"b", 2.0)], count=3),
    "binary count huge": _z5([(b"a", 1.0)], count=1 << 30),
    "binary encoded members": _payload(
        b"\x05\x03\xc0\x07"
        + struct.pack("<d", 1.0)
        + b"\xc2\x00\x00\x00\x80"
        + struct.pack("<d", 2.0)
        + _lzf(b"y" * 80)
        + struct.pack("<d", 3.0)
    ),
    "listpack": _z17([b"", b"-inf", b"\x00", b"-1", b"a", b"1", b"b", b"2.5", b"c", b"inf"]),
    "listpack -0": _z17([b"a", b"-0", b"b", b"1"]),
    "listpack loose scores": _z17([b"a", b"1.50", b"b", b" 2", b"c", b"3e0"]),
    "listpack big": _z17([x for m, s in _SORTED_MANY for x in (m, b"%.17g" % s)]),
    "listpack duplicate": _z17([b"a", b"1", b"a", b"2"]),
    "listpack odd": _z17([b"a", b"1", b"b"]),
    "listpack empty": _z17([]),
    "listpack count": _z17([b"a", b"1", b"b", b"2"], count=6),
    "listpack count unknown": _z17([b"a", b"1", b"b", b"2"], count=65535),
    "listpack back length": _payload(b"\x11" + _str(_lp([b"a", b"1"])[:11] + b"\x03\xff")),
    "listpack after its end": _payload(
        b"\x11" + _str(b"\x0f\x00\x00\x00\x02\x00" + _lp([b"a", b"1"])[6:] + b"\x00\xff")
    ),
    "listpack size": _payload(b"\x11" + _str(_lp([b"a", b"1"])[:-1] + b"\x00\xff")),
    "ziplist": _z12(
        [b"c", -100, b"a", 0, b"g", b"7.5", b"b", 12, b"d", 3000, b"e", 70000, b"f", 1 << 40]
    ),
    "ziplist strings": _z12([b"", b"-1", b"x" * 64, b"0.5" + b"0" * 70, b"y", b"inf"]),
    "ziplist big": _z12([x for m, s in _SORTED_MANY for x in (m, b"%.17g" % s)]),
    "ziplist duplicate": _z12([b"a", 1, b"a", 2]),
    "ziplist odd": _z12([b"a", 1, b"b"]),
    "ziplist empty": _z12([]),
    "ziplist count": _z12([b"a", 1, b"b", 2], count=3),
    "ziplist count unknown": _z12([b"a", 1, b"b", 2], count=65535),
    "ziplist tail": _z12([b"a", 1, b"b", 2], tail=12),
    "ziplist back link": _z12([b"a", 1, b"b", 2], bump=1),
}


def test_lzf_output_decompresses_to_its_input() -> None:
    """Redis's compressor, ported: valid LZF, and None when it would not save 4 bytes."""
    rnd = random.Random(2)
    packed = 0
    for _ in range(2000):
        size = rnd.choice([5, 6, 21, 40, 100, 300, 2000])
        data = bytes(rnd.randrange(rnd.choice([2, 4, 16, 256])) for _ in range(size))
        if rnd.random() < 0.3:
            data = data[: size // 2] * 2
        out = rdb.lzf_compress(data)
        if out is not None:
            assert len(out) <= len(data) - 4 and rdb.lzf_decompress(out, len(data)) == data
            packed += 1
    assert 500 < packed < 2000
    assert rdb.lzf_compress(b"abcd") is None and rdb.lzf_compress(bytes(range(100))) is None


# lists and hashes in the ziplists of Redis before 7.0 (read by the same reader)
OLD: dict[str, bytes] = {
    "list ziplist": _payload(b"\x0a" + _str(_zl([b"a", 1, b"x" * 70, -5, b""]))),
    "list ziplist empty": _payload(b"\x0a" + _str(_zl([]))),
    "list quicklist": _payload(b"\x0e\x03" + _str(_zl([b"a", 2])) + _str(_zl([])) + _str(_zl([7]))),
    "list quicklist bad node": _payload(b"\x0e\x02" + _str(_zl([b"a"])) + _str(_zl([1], count=5))),
    "hash ziplist": _payload(b"\x0d" + _str(_zl([b"f", 1, b"g", b"x" * 64, b"", b""]))),
    "hash ziplist duplicate": _payload(b"\x0d" + _str(_zl([b"f", 1, b"f", 2]))),
    "hash ziplist odd": _payload(b"\x0d" + _str(_zl([b"f", 1, b"g"]))),
    "hash listpack duplicate": _payload(b"\x10" + _str(_lp([b"f", b"1", b"f", b"2"]))),
}


@pytest.mark.parametrize("name", sorted(OLD))
def test_old_lists_and_hashes_restore_like_redis(
    name: str, redis_sanitize_port: int, kv_port: int
) -> None:
    ref, ours = Raw(redis_sanitize_port), Raw(kv_port)
    try:
        _same(ref, ours, "DEL", "k")
        if _same(ref, ours, "RESTORE", "k", "0", OLD[name]) == b"+OK\r\n":
            _same(ref, ours, "TYPE", "k")
            _same(ref, ours, "OBJECT", "ENCODING", "k")
            if name.startswith("list"):
                _same(ref, ours, "LRANGE", "k", "0", "-1")
            else:
                _same(ref, ours, "HMGET", "k", "f", "g", "", "h")
                _same(ref, ours, "HLEN", "k")
    finally:
        for r in (ref, ours):
            r.call("DEL", "k")
            r.close()


def _same(ref: Raw, ours: Raw, *argv: bytes | str) -> bytes:
    want, got = ref.call(*argv), ours.call(*argv)
    assert got == want, f"{argv!r}: redis {want!r}, kv {got!r}"
    return got


def _same_zset(ref: Raw, ours: Raw, key: str) -> None:
    """What a client sees of a sorted set, the same on both servers."""
    _same(ref, ours, "ZRANGE", key, "0", "-1", "WITHSCORES")
    _same(ref, ours, "ZRANGE", key, "0", "-1", "REV")
    _same(ref, ours, "ZCARD", key)
    _same(ref, ours, "OBJECT", "ENCODING", key)
    _same(ref, ours, "TYPE", key)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(SAME))
def test_handmade_payloads_restore_like_redis(
    name: str, resp3: bool, redis_sanitize_port: int, kv_port: int
) -> None:
    ref, ours = Raw(redis_sanitize_port, resp3), Raw(kv_port, resp3)
    try:
        _same(ref, ours, "DEL", "k")
        got = _same(ref, ours, "RESTORE", "k", "0", SAME[name])
        if got == b"+OK\r\n":
            _same_zset(ref, ours, "k")
            _same(ref, ours, "ZSCORE", "k", "a")
            if SAME[name][0] in (rdb.T_ZSET, rdb.T_ZSET_2):  # (a listpack is kept as given)
                _same(ref, ours, "DUMP", "k")
        else:
            assert got == BAD
            _same(ref, ours, "EXISTS", "k")
    finally:
        for r in (ref, ours):
            r.call("DEL", "k")
            r.close()


def test_what_redis_keeps_unchecked_kv_refuses_or_orders(
    redis_sanitize_port: int, kv_port: int
) -> None:
    """
    The README's differences: a listpack's score that is not a number (Redis reads it
    as 0) or NaN is refused; pairs out of order are put in order (Redis keeps the
    payload's order); a listpack with a member over zset-max-listpack-value is a
    skiplist here (Redis keeps the listpack it was given).
    """
    ref, kv = redis.Redis(port=redis_sanitize_port), redis.Redis(port=kv_port)
    for payload in (_z17([b"a", b"abc"]), _z17([b"a", b"nan"]), _z12([b"a", b"1x"])):
        ref.restore("k", 0, payload, replace=True)  # (Redis: a sorted set)
        with pytest.raises(redis.ResponseError, match="Bad data format"):
            kv.restore("k", 0, payload, replace=True)
    unordered = _z17([b"b", b"2", b"a", b"1", b"c", b"0"])
    for r in (ref, kv):
        r.restore("u", 0, unordered, replace=True)
    assert ref.zrange("u", 0, -1) == [b"b", b"a", b"c"]
    assert kv.zrange("u", 0, -1, withscores=True) == [(b"c", 0.0), (b"a", 1.0), (b"b", 2.0)]
    assert kv.zrank("u", "a") == 1 and kv.zrangebyscore("u", 1, 2) == [b"a", b"b"]
    long = _z17([b"x" * 100, b"1"])
    for r in (ref, kv):
        r.restore("long", 0, long, replace=True)
        assert r.zrange("long", 0, -1) == [b"x" * 100]
    assert (ref.object("encoding", "long"), kv.object("encoding", "long")) == (
        b"listpack",
        b"skiplist",
    )
    for r in (ref, kv):
        r.delete("k", "u", "long")


# -- DUMP: Redis's bytes ---------------------------------------------------------------

_SCORES = (
    "-0 a 1 b 1.5 c inf d -inf e 1e-300 f 0.1 g 0.3333333333333333 h 4503599627370496 i "
    "1e17 j -5 k 300000 l 9007199254740993 m -1.7976931348623157e308 n 17.000000000000001 o "
    "-4503599627370495 p 123456789012 q 5e-324 r"
).split()

DUMP_CASES: dict[str, list[list[bytes | str]]] = {
    "one": [["ZADD", "z", "1", "a"]],
    "scores": [["ZADD", "z", *_SCORES]],
    "members": [
        ["ZADD", "z", "1", "", "2", b"\x00\xff\r\n", "3", "123", "4", "-7", "5", "12345678901"],
        ["ZADD", "z", "6", "x" * 64, "7", "-0", "8", "007", "9", "1.5", "9", "1e3"],
    ],
    "long member": [["ZADD", "z", "1", "a", "2", "x" * 100, "3", "yz" * 40]],
    "full listpack": [
        ["ZADD", "z", *[x for i in range(128) for x in (repr(i / 7), f"{i:064d}")]],
    ],
    "129 members": [["ZADD", "z", *[x for i in range(129) for x in (str(i % 7), f"m{i}")]]],
    "129 integers": [["ZADD", "z", *[x for i in range(129) for x in (str(-i), str(i * 999))]]],
    "entries limit": [
        ["CONFIG", "SET", "zset-max-listpack-entries", "3"],
        ["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"],
    ],
    "value limit": [
        ["CONFIG", "SET", "zset-max-listpack-value", "200"],
        ["ZADD", "z", "1", "x" * 150, "2", "y"],
    ],
    "old names": [
        ["CONFIG", "SET", "zset-max-ziplist-entries", "3", "zset-max-ziplist-value", "10"],
        ["CONFIG", "GET", "zset-max-listpack-entries"],
        ["CONFIG", "GET", "zset-max-listpack-value"],
        ["ZADD", "z", "1", "a", "2", "b", "3", "c"],
        ["OBJECT", "ENCODING", "z"],
        ["ZADD", "z", "4", "0123456789x"],
        ["CONFIG", "SET", "zset-max-listpack-value", "20"],
        ["CONFIG", "GET", "zset-max-ziplist-value"],
    ],
    "no compression": [
        ["CONFIG", "SET", "rdbcompression", "no"],
        ["ZADD", "z", *[x for i in range(40) for x in (str(i), f"member{i}")]],
    ],
    "changed": [
        ["ZADD", "z", *[x for i in range(60) for x in (str(i / 4), f"k{i}")]],
        ["ZREM", "z", "k3", "k40"],
        ["ZINCRBY", "z", "2.25", "k7"],
        ["ZADD", "z", "GT", "100", "k9"],
        ["ZPOPMIN", "z", "2"],
    ],
}


@pytest.mark.parametrize("name", sorted(DUMP_CASES))
def test_dump_is_redis_bytes(name: str, fresh_redis_port: int, kv_port: int) -> None:
    """
    The same commands, the same DUMP payload, byte for byte (each case on a redis-server
    of its own: its LZF table keeps offsets from its previous compression).
    """
    ref, ours = Raw(fresh_redis_port), Raw(kv_port)
    try:
        ours.call("FLUSHALL")
        for argv in DUMP_CASES[name]:
            _same(ref, ours, *argv)
        _same(ref, ours, "OBJECT", "ENCODING", "z")
        _same(ref, ours, "DUMP", "z")
        _same(ref, ours, "RESTORE", "back", "0", _bulk(ref.call("DUMP", "z")))
        _same_zset(ref, ours, "back")
    finally:
        ours.call("CONFIG", "SET", "zset-max-listpack-entries", "128")
        ours.call("CONFIG", "SET", "zset-max-listpack-value", "64")
        ours.call("CONFIG", "SET", "rdbcompression", "yes")
        ours.call("FLUSHALL")
        ref.close()
        ours.close()


def _bulk(reply: bytes) -> bytes:
    r = hiredis.Reader()
    r.feed(reply)
    got = r.gets()
    assert isinstance(got, bytes)
    return got


# -- payloads carried over, both ways ------------------------------------------------


def _fill(r: redis.Redis) -> None:
    rnd = random.Random(11)
    r.zadd("small", {b"": 2.5, b"\x00\xff": -0.0, b"a": INF, b"b": -INF, b"c": 1e-300})
    r.zadd("small", {b"d": 0.1, b"e": 1 / 3, b"f": 4503599627370496, b"-5": -5, b"g": 1e17})
    r.zadd("long", {b"x" * 65: 1, b"y": 2, bytes(range(256)): 3})
    scores = [0, 1, -1, 0.5, 1e-300, 2.0**60, 1 / 7, -(10**15), INF, -INF]
    r.zadd("big", {b"m%d" % i: rnd.choice(scores) * rnd.choice([1, 3]) for i in range(300)})
    r.zadd("ints", {str(i * 12345).encode(): i * 7 for i in range(-50, 50)})


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_payloads_cross_over(resp3: bool, redis_port: int, kv_port: int) -> None:
    """A DUMP from redis-server RESTOREs in kv, and the other way round: the same set."""
    kv, ref = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (kv, ref):
        r.flushall()
        _fill(r)
    raw = {kv: Raw(kv_port, resp3), ref: Raw(redis_port, resp3)}
    try:
        for src, dst in ((ref, kv), (kv, ref)):
            s, d = raw[src], raw[dst]
            for key in ("small", "long", "big", "ints"):
                dst.restore("copy", 0, src.dump(key), replace=True)
                for argv in (
                    ["ZRANGE", "{}", "0", "-1", "WITHSCORES"],
                    ["OBJECT", "ENCODING", "{}"],
                    ["ZSCORE", "{}", "\x00\xff"],
                    ["ZRANGEBYSCORE", "{}", "-inf", "0", "WITHSCORES"],
                ):
                    want = s.call(*[key if a == "{}" else a for a in argv])
                    got = d.call(*["copy" if a == "{}" else a for a in argv])
                    assert got == want, (key, argv)
    finally:
        for r in raw.values():
            r.close()
        for r in (kv, ref):
            r.flushall()


def test_copy_rename_and_ttl_of_a_restored_zset(redis_port: int, kv_port: int) -> None:
    ref, ours = Raw(redis_port), Raw(kv_port)
    payload = _z5([(b"a", 1.0), (b"b", 2.0), (b"c", -0.0), *_MANY[:20]])
    try:
        for r in (ref, ours):
            r.call("FLUSHALL")
        _same(ref, ours, "RESTORE", "z", "100000", payload)
        _same(ref, ours, "COPY", "z", "z2")
        _same(ref, ours, "ZADD", "z2", "5", "new")
        _same(ref, ours, "ZREM", "z2", "a")
        _same_zset(ref, ours, "z")
        _same_zset(ref, ours, "z2")
        _same(ref, ours, "RENAME", "z", "z3")
        _same(ref, ours, "EXISTS", "z")
        _same_zset(ref, ours, "z3")
        assert int(ours.call("PTTL", "z3")[1:-2]) > 90000
        _same(ref, ours, "RESTORE", "z3", "0", payload)  # BUSYKEY
        _same(ref, ours, "RESTORE", "z3", "0", payload, "REPLACE")
        _same(ref, ours, "TTL", "z3")
        _same(ref, ours, "ZINCRBY", "z3", "1", "c")
        _same_zset(ref, ours, "z3")
    finally:
        for r in (ref, ours):
            r.call("FLUSHALL")
            r.close()


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_restore_notifies_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    payload = _z5(_MANY)
    story = [
        [b"RESTORE", b"k", b"0", payload],
        [b"RESTORE", b"k", b"0", payload, b"REPLACE"],
        [b"RESTORE", b"bad", b"0", payload[:-1] + bytes([payload[-1] ^ 1])],
        [b"ZADD", b"k", b"9", b"zz"],
    ]
    want = _messages(redis_port, "KEA", resp3, story)
    assert _messages(kv_port, "KEA", resp3, story) == want
    assert [m[2] for m in want].count(b"__keyevent@0__:restore") == 2


def test_a_restored_zset_survives_a_restart(tmp_path: Path) -> None:
    cfg = {"services": {"kv": {"type": "kv", "port": 0, "data": str(tmp_path / "kv.aof")}}}
    payloads = [
        _z5([(b"a", -0.0), *_MANY]),
        SAME["listpack -0"],
        SAME["ziplist"],
        SAME["text scores"],
    ]
    with suite_running(cfg, base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        for i, p in enumerate(payloads):
            r.restore(f"z{i}", 0, p)
        r.restore("ttl", 100000, payloads[0])
        before = {k: r.zrange(k, 0, -1, withscores=True) for k in r.keys("z*")}
    for rewrite in (False, True):
        with suite_running(cfg, base_dir=tmp_path) as s:
            r = redis.Redis(port=s.port("kv"))
            assert {k: r.zrange(k, 0, -1, withscores=True) for k in r.keys("z*")} == before
            assert r.ttl("ttl") > 90
            if not rewrite:
                assert r.bgrewriteaof()
                wait_compacted(r)


# -- garbled and hostile payloads ----------------------------------------------------


def _bases(kv: redis.Redis) -> list[bytes]:
    kv.zadd("lp", {b"a": 1, b"bb": 2.5, b"": -INF, b"123": 7, b"x" * 30: 1e-300})
    kv.zadd("sk", {b"y" * 70: 1, b"m": 0.1, b"7": -3})
    return [
        kv.dump("lp"),
        kv.dump("sk"),
        SAME["text scores"],
        SAME["ziplist"],
        SAME["ziplist strings"],
        SAME["listpack"],
    ]


def test_garbled_zset_payloads_are_refused_or_usable(kv_port: int) -> None:
    """Bytes of a sorted set's payload changed (the CRC made right): an error, or a set."""
    kv = redis.Redis(port=kv_port)
    kv.flushall()
    rnd = random.Random(7)
    refused = usable = 0
    for base in _bases(kv):
        body = base[:-8]
        for _ in range(250):
            garbled = bytearray(body)
            for _ in range(rnd.choice([1, 1, 2, 3])):
                garbled[rnd.randrange(0, len(body) - 2)] = rnd.choice(
                    [rnd.randrange(256), 0, 0xFF, 0xFE, 0x40, 0x80, 0xC3]
                )
            payload = bytes(garbled) + rdb.crc64(bytes(garbled)).to_bytes(8, "little")
            try:
                kv.restore("y", 0, payload, replace=True)
            except redis.ResponseError as e:
                assert "Bad data format" in str(e) or "WRONGTYPE" not in str(e)
                refused += 1
                continue
            if kv.type("y") != b"zset":
                continue  # (the type byte changed into another type's)
            usable += 1
            pairs = kv.zrange("y", 0, -1, withscores=True)
            assert len(pairs) == kv.zcard("y") > 0
            assert all(s == s for _, s in pairs) and pairs == sorted(
                pairs, key=lambda p: (p[1], p[0])
            )
            kv.restore("y2", 0, kv.dump("y"), replace=True)
            assert kv.zrange("y2", 0, -1, withscores=True) == pairs
    assert refused > 500 and usable > 50 and kv.ping()
    kv.flushall()


def test_declared_lengths_are_never_trusted(kv_port: int) -> None:
    """Counts and lengths far past the payload: refused at once, nothing allocated for them."""
    kv = Raw(kv_port)
    lp = _lp([b"a", b"1"])
    hostile = [
        _payload(b"\x05\x81" + (1 << 62).to_bytes(8, "big") + b"\x01a" + bytes(8)),
        _payload(b"\x03\x80\xff\xff\xff\xff\x01a\x031.5"),
        _payload(b"\x11\x80\x7f\xff\xff\xff" + lp),
        _payload(b"\x11" + _str(b"\xff\xff\xff\x7f" + lp[4:])),
        _payload(b"\x11\xc3\x05\x80\x1f\xff\xff\xff" + b"\x04abcde"),
        _payload(b"\x0c" + _str(_zl([b"a", 1])[:10] + b"\x00\x80\x7f\xff\xff\xff" + b"\xff")),
        _payload(b"\x0c" + _str(_zl([b"a", 1])[:10] + b"\x00\xfe\xff\xff\xff\xff" + b"\xff")),
        _payload(b"\x05\x02\x01a" + bytes(8) + b"\x81"),
        _payload(b"\x05\x01\x01a" + struct.pack("<d", 1.0)[:5]),  # (Redis reads into the CRC)
        _payload(b"\x05\x01\x01a" + bytes(8) + b"\x00"),  # (Redis ignores what follows)
    ]
    try:
        for p in hostile:
            assert kv.call("RESTORE", "k", "0", p) == BAD, p
        assert kv.call("EXISTS", "k") == b":0\r\n"
    finally:
        kv.close()


# -- big ones: in slices ---------------------------------------------------------------


def test_a_big_zset_is_dumped_and_restored_in_slices() -> None:
    clock, server = _filled()
    z = server.store.data[b"z"]
    a, ta = _client(server)
    b, tb = _client(server)
    for limit in (b"128", b"100000000"):  # a skiplist, then (as configured) one big listpack
        ta.clear()
        tb.clear()
        a.dataReceived(_cmd("CONFIG", "SET", "zset-max-listpack-entries", limit))
        a.dataReceived(_cmd("DUMP", "z"))
        b.dataReceived(_cmd("ZADD", "z", "0", "late") + _cmd("ZCARD", "z"))
        assert ta.value() == b"+OK\r\n" and tb.value() == b""  # (b waits for the whole DUMP)
        turns = 0
        while type(a.blocked).__name__ == "Working":
            _turn(clock)
            turns += 1
        _drive(clock, lambda: a.blocked is None and len(_replies(ta.value())) == 2)
        assert turns >= 2
        payload = _replies(ta.value())[1]
        assert payload[0] == (rdb.T_ZSET_2 if limit == b"128" else rdb.T_ZSET_LISTPACK)
        _drive(clock, lambda: tb.value().endswith(b"\r\n:%d\r\n" % (len(z))))
        server.store.data[b"z"].remove(b"late")
        ta.clear()
        a.dataReceived(_cmd("RESTORE", "copy", "0", payload, "REPLACE") + _cmd("ZCARD", "copy"))
        assert ta.value() == b""
        _turn(clock)
        assert ta.value() == b"" and server.busy is not None
        _drive(clock, lambda: len(_replies(ta.value())) == 2)
        copy = server.store.data[b"copy"]
        assert _replies(ta.value()) == [b"OK", len(z)] and isinstance(copy, ZSet)
        assert copy.dict == z.dict and list(copy.sl) == list(z.sl)


def _lzf_bomb(refs: int) -> bytes:
    """A small payload whose LZF listpack expands to 528 one-byte entries per 3 bytes."""
    size = 6 + 2 + 264 * refs + 1
    head = size.to_bytes(4, "little") + b"\xff\xff\x01\x01"
    packed = bytes([len(head) - 1]) + head + b"\xe0\xff\x01" * refs + b"\x00\xff"
    return _payload(b"\x11\xc3" + _len(len(packed)) + _len(size) + packed)


def test_a_small_payload_that_expands_is_read_in_slices() -> None:
    """
    90 KB of payload, 4 million listpack entries (an odd count: refused once read):
    small enough to be read at once by its size, it goes on in slices after a few steps.
    """
    clock, server = _filled()
    a, ta = _client(server)
    b, tb = _client(server)
    bomb = _lzf_bomb(30000)
    assert len(bomb) < 100000
    a.dataReceived(_cmd("RESTORE", "k", "0", bomb) + _cmd("EXISTS", "k"))
    b.dataReceived(_cmd("PING"))
    assert ta.value() == tb.value() == b"" and server.busy is not None
    turns = 0
    while server.busy is not None:
        _turn(clock)
        turns += 1
    _drive(clock, lambda: len(_replies(ta.value())) == 2 and tb.value() != b"")
    assert turns > 10 and ta.value() == BAD + b":0\r\n" and tb.value() == b"+PONG\r\n"
    # a small one still answers at once
    ta.clear()
    a.dataReceived(
        _cmd("RESTORE", "k", "0", _lzf_bomb(3)) + _cmd("RESTORE", "k", "0", SAME["listpack"])
    )
    assert ta.value() == BAD + b"+OK\r\n"
