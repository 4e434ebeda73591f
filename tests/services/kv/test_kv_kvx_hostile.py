"""
Client-controlled sizes on kvx's commands: answered with Redis's error or a bounded
reply, never a traceback, and other clients keep being served.
"""

from __future__ import annotations

import struct
import threading
import time

import pytest
import redis

from portsuite_services.kv import rdb


def _pair(redis_port: int, kv_port: int) -> tuple[redis.Redis, redis.Redis]:
    kv, ref = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (kv, ref):
        r.flushall()
        r.set_response_callback("XPENDING", lambda reply, **kw: reply)  # as sent
    return kv, ref


def _both(kv: redis.Redis, ref: redis.Redis, *cmd: object) -> object:
    out = []
    for r in (kv, ref):
        try:
            out.append(r.execute_command(*cmd))
        except redis.ResponseError as e:
            out.append(f"error: {e}")
    assert out[0] == out[1], cmd
    return out[0]


def test_lcs_of_two_10_mb_strings_is_refused_like_redis(redis_port: int, kv_port: int) -> None:
    kv, ref = _pair(redis_port, kv_port)
    big = b"ab" * (5 * 1024 * 1024)
    for r in (kv, ref):
        r.mset({"x": big, "y": big[::-1]})
    started = time.monotonic()
    reply = _both(kv, ref, "LCS", "x", "y", "IDX")
    assert "exceeds proto-max-bulk-len" in str(reply)
    assert time.monotonic() - started < 10
    # within Redis's table limit but asymmetric: the same match as Redis
    for r in (kv, ref):
        r.mset({"x": b"abcab" * 400, "y": b"bacba" * 2000})
    _both(kv, ref, "LCS", "x", "y", "IDX", "MINMATCHLEN", "3", "WITHMATCHLEN")
    _both(kv, ref, "LCS", "y", "x", "LEN")


def test_huge_counts_and_ranges_are_bounded(redis_port: int, kv_port: int) -> None:
    kv, ref = _pair(redis_port, kv_port)
    for r in (kv, ref):
        p = r.pipeline(transaction=False)
        for i in range(1, 3001):
            p.xadd("s", {"f": i}, id=f"{i}-1", maxlen=1000, approximate=True)
        p.execute()
        r.xgroup_create("s", "g", id="0")
    n = _both(kv, ref, "XLEN", "s")  # approximate trimming removes the same whole nodes
    assert 1000 <= n < 1100  # type: ignore[operator]
    big = "9223372036854775807"
    assert len(_both(kv, ref, "XRANGE", "s", "-", "+", "COUNT", big)) == n  # type: ignore[arg-type]
    _both(kv, ref, "XREADGROUP", "GROUP", "g", "c", "COUNT", big, "STREAMS", "s", ">")
    for r in (kv, ref):  # (idle times differ by a few ms)
        assert len(r.execute_command("XPENDING", "s", "g", "-", "+", big)) == n
    _both(kv, ref, "XAUTOCLAIM", "s", "g", "d", "0", "0", "COUNT", big)
    _both(kv, ref, "XADD", "s", "MAXLEN", "~", big, "LIMIT", big, "5000-1", "f", "v")
    _both(kv, ref, "XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "0")
    _both(kv, ref, "XTRIM", "s", "MINID", "18446744073709551615-18446744073709551615")
    _both(kv, ref, "XLEN", "s")
    # kv bounds what Redis would build at any size: a reply of 2^24 random picks at most
    kv.hset("h", "f", "v")
    with pytest.raises(redis.ResponseError, match="out of range"):
        kv.hrandfield("h", -100_000_000)
    assert len(kv.hrandfield("h", -1000)) == 1000


def _payload(body: bytes) -> bytes:
    body += struct.pack("<H", 10)
    return body + struct.pack("<Q", rdb.crc64(body))


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x81" + struct.pack(">Q", 2**62) + b"abc",  # a string claiming 2^62 bytes
        b"\x00\xc3\x05\x80\x7f\xff\xff\xff" + b"\x00" * 5,  # LZF claiming 2 GB
        b"\x01\x80\xff\xff\xff\xff",  # a list claiming 4 billion elements
        b"\x10\x0a" + b"\xff" * 10,  # a listpack hash of garbage
        b"\x12\x01\x02\x05" + b"\x05\x00\x00\x00\x00",  # a quicklist node too short
        b"\x0b\x08" + struct.pack("<II", 3, 1),  # an intset with encoding 3
        b"\x63",  # a type Redis does not have
        b"",
    ],
)
def test_forged_dump_payloads_are_bad_data_like_redis(
    body: bytes, redis_port: int, kv_port: int
) -> None:
    kv, ref = _pair(redis_port, kv_port)
    reply = _both(kv, ref, "RESTORE", "k", "0", _payload(body))
    assert str(reply).startswith("error:")
    assert kv.ping()


def test_big_bitop_leaves_other_clients_served(kv_port: int) -> None:
    r = redis.Redis(port=kv_port)
    size = 16 * 1024 * 1024
    r.set("a", b"\xf0" * size)
    r.set("b", b"\x3c" * size)
    pings: list[float] = []

    def ping() -> None:
        other = redis.Redis(port=kv_port, socket_timeout=60)
        started = time.monotonic()
        other.ping()
        pings.append(time.monotonic() - started)

    t = threading.Thread(target=ping)
    t.start()
    assert r.bitop("AND", "d", "a", "b") == size
    t.join(60)
    assert pings and pings[0] < 30
    assert r.getrange("d", 0, 1) == b"\x30\x30"
    assert r.bitpos("d", 1, -1) == (size - 1) * 8 + 2
    assert r.bitcount("d") == 2 * size
    r.delete("a", "b", "d")


def test_pending_entries_list_stays_sorted_through_acks_and_claims() -> None:
    """The PEL's sorted IDs (with lazily dropped acks) agree with a plain dict, always."""
    import random

    from portsuite_services.kv.stream import PEL

    rng = random.Random(3)
    pel, model = PEL(), {}
    for step in range(40000):
        i = (rng.randint(0, 3000), 0)
        if rng.random() < 0.5:
            pel[i] = model[i] = step  # type: ignore[assignment]
        else:
            pel.pop(i, None)
            model.pop(i, None)
        if step % 4000 == 0:
            assert pel.ids() == sorted(model)
    assert pel.ids() == sorted(model) and dict(pel) == model
    assert pel.first() == min(model) and pel.last() == max(model)
