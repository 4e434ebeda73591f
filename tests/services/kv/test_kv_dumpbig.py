"""
DUMP and RESTORE of big strings in slices (rdb.py, bigwork.py): an LZF string that
expands a hundredfold, a 100 MB plain string, a list or hash holding a few huge members
are read and written a piece a step, never decompressed, copied, joined or checksummed
whole in one go, so the rest of the suite is served meanwhile. Lying, garbled and
truncated LZF gets Redis's errors (side by side with redis-server 7.0), and payloads
redis-server writes with big LZF strings restore here and back.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest
import redis
from kv_raw import Raw
from test_kv_bigwork import _client, _cmd, _drive, _gone, _replies, _turn
from test_kv_zdump import _len, _payload
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, rdb
from portsuite_services.kv.bigwork import MAX_STEPS

BAD = b"-ERR Bad data format\r\n"
CRC = b"-ERR DUMP payload version or checksum are wrong\r\n"
MAX_OUT = 88 * rdb.LZF_PIECE + 264  # the most one step of LZF may write (a token past it)


def _ref(dist: int, length: int) -> bytes:
    """An LZF back-reference: C{length} bytes (3 to 264) from C{dist} (1 to 8192) back."""
    n, d = length - 2, dist - 1
    if n < 7:
        return bytes([n << 5 | d >> 8, d & 255])
    return bytes([7 << 5 | d >> 8, n - 7, d & 255])


def _lit(b: bytes) -> bytes:
    """LZF literal runs of C{b} (32 bytes a run at most)."""
    return b"".join(bytes([len(b[i : i + 32]) - 1]) + b[i : i + 32] for i in range(0, len(b), 32))


def _unlzf(packed: bytes) -> bytes:
    """The test's own LZF decoder, a byte at a time (the judge of rdb's)."""
    out = bytearray()
    i = 0
    while i < len(packed):
        ctrl = packed[i]
        i += 1
        if ctrl < 32:
            out += packed[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        n = ctrl >> 5
        if n == 7:
            n += packed[i]
            i += 1
        ref = len(out) - ((ctrl & 31) << 8 | packed[i]) - 1
        i += 1
        for k in range(n + 2):
            out.append(out[ref + k])
    return bytes(out)


def _lzf_string(packed: bytes, ulen: int) -> bytes:
    return b"\xc3" + _len(len(packed)) + _len(ulen) + packed


def _bomb(ulen: int) -> bytes:
    """LZF of C{ulen} bytes of 'a' (264 a token of 3 bytes: 88 times smaller)."""
    refs, rest = divmod(ulen - 1, 264)
    return b"\x00a" + _ref(1, 264) * refs + (_ref(1, rest) if rest >= 3 else _lit(b"a" * rest))


def _far(ulen: int) -> bytes:
    """LZF whose back-references reach 8,192 bytes back (the farthest), across steps."""
    rnd = random.Random(5)
    head = bytes(rnd.randrange(256) for _ in range(8192))
    body = [_lit(head)]
    size = len(head)
    while size < ulen:
        n = min(264, ulen - size)
        if n < 3:
            body.append(_lit(b"x" * n))
        else:
            body.append(_ref(rnd.choice([8192, 8191, 4097, 300, 1]), n))
        size += n
    return b"".join(body)


def _innermost(g: Any) -> Any:
    while g.gi_yieldfrom is not None:
        g = g.gi_yieldfrom
    return g


# -- the LZF reader, step by step -------------------------------------------------------


@pytest.mark.parametrize("kind", ["bomb", "far"])
def test_no_step_of_a_restore_decompresses_more_than_a_piece(kind: str) -> None:
    """
    RESTORE of a small payload expanding to 4 MB: each step of load_steps writes at
    most a step's worth of output (before: the whole string in one step), and the
    result is the test's own decoder's.
    """
    ulen = 4 << 20
    packed = _bomb(ulen) if kind == "bomb" else _far(ulen)
    payload = _payload(b"\x00" + _lzf_string(packed, ulen))
    assert len(payload) < ulen // (50 if kind == "bomb" else 10)
    steps = rdb.load_steps(payload)
    written = [0]
    while True:
        try:
            next(steps)
        except StopIteration as done:
            value = done.value
            break
        frame = _innermost(steps).gi_frame
        if frame is not None and frame.f_code.co_name == "lzf_steps":
            written.append(frame.f_locals["sink"].tell())
    assert value == _unlzf(packed) and len(value) == ulen
    written.append(ulen)  # (the last step returns)
    per_step = [b - a for a, b in zip(written, written[1:], strict=False)]
    assert len(per_step) > ulen // MAX_OUT and max(per_step) <= MAX_OUT


def test_lzf_is_read_in_place() -> None:
    """Decoding from the payload itself (an offset, no copy), in one step or many."""
    rnd = random.Random(3)
    for size in (5, 100, 8191, 8193, 70000, 400000):
        data = bytes(rnd.choice(b"abcab ") for _ in range(min(size, 300)))
        packed = _lit(data) if size <= 300 else _lit(data[:40]) + _ref(40, 264) * (size // 264)
        want = _unlzf(packed)
        wrapped = b"junk" + packed + b"more"
        assert rdb.run_through(rdb.lzf_steps(wrapped, 4, len(packed), len(want))) == want
        assert rdb.lzf_decompress(packed, len(want)) == want


# lying, garbled and truncated LZF strings: (payload body, what it breaks)
LYING = {
    "ulen one more": b"\x00" + _lzf_string(_bomb(100000), 100001),
    "ulen one less": b"\x00" + _lzf_string(_bomb(100000), 99999),
    "ulen huge": b"\x00" + _lzf_string(_bomb(100000), 1 << 31),
    "ulen zero": b"\x00" + _lzf_string(b"\x00a", 0),
    "ulen past 512 MB": b"\x00" + _lzf_string(_bomb(10000), (512 << 20) + 1),
    "reference before the start": b"\x00" + _lzf_string(b"\x01ab" + _ref(3, 5), 7),
    "reference one before the start": b"\x00" + _lzf_string(_lit(b"a" * 100) + _ref(101, 5), 105),
    "literal run past the end": b"\x00" + _lzf_string(b"\x1fabc", 32),
    "reference cut": b"\x00" + _lzf_string(b"\x00a" + _ref(1, 264)[:2], 265),
    "truncated in a later step": b"\x00" + _lzf_string(_bomb(3 << 20)[:-2000] + b"\x05ab", 3 << 20),
    "clen past the payload": b"\x00\xc3\x80\x00\x10\x00\x00\x43\xe8" + _bomb(1000),
    "plain length past the payload": b"\x00\x80\x7f\xff\xff\xff" + b"x" * 2000000,
    "in a list, cut": b"\x01\x02\x01a" + _lzf_string(_bomb(2 << 20), 2 << 20)[:-100],
    "in a hash, lying": b"\x04\x01\x01f" + _lzf_string(_bomb(2 << 20), (2 << 20) - 7),
    "listpack blob, lying": b"\x10" + _lzf_string(_bomb(2 << 20), 3 << 20),
}


@pytest.mark.parametrize("name", sorted(LYING))
def test_lying_lzf_gets_redis_error(name: str, redis_sanitize_port: int, kv_port: int) -> None:
    ref, ours = Raw(redis_sanitize_port), Raw(kv_port)
    payload = _payload(LYING[name])
    try:
        want = ref.call("RESTORE", "k", "0", payload, "REPLACE")
        assert ours.call("RESTORE", "k", "0", payload, "REPLACE") == want
        # (an uncompressed length of 0 is the empty string to liblzf, whatever follows)
        assert want == (b"+OK\r\n" if name == "ulen zero" else BAD)
        assert ours.call("GET", "k") == ref.call("GET", "k")
        ours.call("DEL", "k")
        ref.call("DEL", "k")
        garbled = payload[:-9] + bytes([payload[-9] ^ 1]) + payload[-8:]
        assert (
            ours.call("RESTORE", "k", "0", garbled) == CRC == ref.call("RESTORE", "k", "0", garbled)
        )
        assert ours.call("EXISTS", "k") == b":0\r\n" and ours.call("PING") == b"+PONG\r\n"
    finally:
        ref.close()
        ours.close()


# -- on a Clock: the others served between slices -------------------------------------


def _server() -> tuple[Clock, KVServer]:
    clock = Clock()
    return clock, KVServer(Settings(), clock)


def _run_turns(clock: Clock, server: KVServer, other: list[int]) -> int:
    """
    Turns of the reactor while the server is busy (once the command has arrived: a big
    one is read 64 KiB a turn), another service served every turn.
    """
    for _ in range(10000):
        if server.busy is not None:
            break
        _turn(clock)
    turns = 0
    while server.busy is not None:
        clock.callLater(0, other.append, turns)
        _turn(clock)
        turns += 1
    return turns


def test_an_lzf_bomb_is_restored_over_many_turns() -> None:
    """
    A 190 KB payload expanding to 16 MB (before: decompressed in one step, at once,
    without a turn of the reactor): its first steps at once (compute_growing: the
    payload is small), the rest over many turns, the other kv clients after it.
    """
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    ulen = 16 << 20
    payload = _payload(b"\x00" + _lzf_string(_bomb(ulen), ulen))
    assert len(payload) < 256 * 1024
    a.dataReceived(_cmd("RESTORE", "k", "0", payload) + _cmd("STRLEN", "k"))
    b.dataReceived(_cmd("STRLEN", "k"))
    assert ta.value() == tb.value() == b"" and server.busy is not None
    other: list[int] = []
    turns = _run_turns(clock, server, other)
    assert turns > ulen // (MAX_STEPS * MAX_OUT) and other == list(range(turns))
    _drive(clock, lambda: len(_replies(ta.value())) == 2 and tb.value() != b"")
    assert _replies(ta.value()) == [b"OK", ulen] and tb.value() == b":%d\r\n" % ulen
    assert server.store.data[b"k"] == b"a" * ulen


def test_a_big_string_is_dumped_and_restored_in_slices() -> None:
    """DUMP of a 48 MB string and RESTORE of its plain payload: a MiB a step, byte for byte."""
    clock, server = _server()
    rnd = random.Random(7)
    value = rnd.randbytes(1 << 20) * 48
    server.store.set(b"s", value)
    a, ta = _client(server)
    a.dataReceived(_cmd("DUMP", "s"))
    assert ta.value() == b"" and server.busy is not None
    other: list[int] = []
    turns = _run_turns(clock, server, other)
    assert turns >= 48 // MAX_STEPS and other == list(range(turns))
    _drive(clock, lambda: a.blocked is None and _replies(ta.value()) != [])
    payload = _replies(ta.value())[0]
    assert payload == rdb.dump(value) and rdb.verify(payload)
    assert payload[:6] == b"\x00\x80" + len(value).to_bytes(4, "big")
    ta.clear()
    a.dataReceived(_cmd("RESTORE", "copy", "0", payload) + _cmd("STRLEN", "copy"))
    assert ta.value() == b""
    turns = _run_turns(clock, server, other)
    assert turns >= 2 * 48 // MAX_STEPS  # (the checksum, then the copy)
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    assert _replies(ta.value()) == [b"OK", len(value)]
    assert server.store.data[b"copy"] == value


def test_containers_of_huge_members_are_dumped_and_restored_in_slices() -> None:
    clock, server = _server()
    rnd = random.Random(8)
    huge = [rnd.randbytes(1 << 20) * 6, b"x" * (5 << 20) + b"y", b"small", b"12"]
    server.store.set(b"l", deque(huge))
    server.store.set(b"h", {b"f%d" % i: v for i, v in enumerate(huge)} | {huge[1]: b"k"})
    a, ta = _client(server)
    for key in (b"l", b"h"):
        ta.clear()
        a.dataReceived(_cmd("DUMP", key))
        assert ta.value() == b""
        assert _run_turns(clock, server, []) >= 2
        _drive(clock, lambda: a.blocked is None and _replies(ta.value()) != [])
        payload = _replies(ta.value())[0]
        assert payload == rdb.dump(server.store.data[key])
        ta.clear()
        a.dataReceived(_cmd("RESTORE", key + b"2", "0", payload))
        assert ta.value() == b""
        assert _run_turns(clock, server, []) >= 2
        _drive(clock, lambda: _replies(ta.value()) != [])
        assert ta.value() == b"+OK\r\n"
        assert server.store.data[key + b"2"] == server.store.data[key]


def test_a_client_gone_mid_restore_lets_the_others_go_on() -> None:
    clock, server = _server()
    a, _ = _client(server)
    b, tb = _client(server)
    ulen = 32 << 20
    a.dataReceived(_cmd("RESTORE", "k", "0", _payload(b"\x00" + _lzf_string(_bomb(ulen), ulen))))
    b.dataReceived(_cmd("PING"))
    for _ in range(3):
        _turn(clock)
    assert tb.value() == b"" and server.busy is not None
    _gone(clock, server, a, b, tb, "k")


def test_restore_replace_mid_way_is_atomic() -> None:
    """
    RESTORE … REPLACE over a key another client reads and writes meanwhile: the others
    wait, then see the restored value; what they then write is kept.
    """
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("SET", "k", "old"))
    ta.clear()
    ulen = 24 << 20
    a.dataReceived(
        _cmd("RESTORE", "k", "0", _payload(b"\x00" + _lzf_string(_bomb(ulen), ulen)), "REPLACE")
    )
    for _ in range(3):
        _turn(clock)
    b.dataReceived(_cmd("STRLEN", "k") + _cmd("SET", "k", "new") + _cmd("GET", "k"))
    for _ in range(3):
        _turn(clock)
    assert tb.value() == b"" and server.busy is not None and server.store.data[b"k"] == b"old"
    _drive(clock, lambda: len(_replies(tb.value())) == 3)
    assert ta.value() == b"+OK\r\n"
    assert _replies(tb.value()) == [ulen, b"OK", b"new"]


# -- side by side with redis-server: its LZF strings restore here and back ----------------


def _text(n: int, seed: int) -> bytes:
    """Compressible bytes (words and numbers), some repeats far apart."""
    rnd = random.Random(seed)
    words = [b"%x" % rnd.randrange(1 << rnd.randrange(4, 40)) for _ in range(3000)]
    out = b" ".join(rnd.choice(words) for _ in range(n // 6))
    return (out * (n // len(out) + 1))[:n]


def test_redis_lzf_payloads_restore_here_and_back(fresh_redis_port: int, kv_port: int) -> None:
    ref = redis.Redis(port=fresh_redis_port)
    kv = redis.Redis(port=kv_port)
    big = _text(6 << 20, 1)
    ref.set("s", big)
    ref.rpush("l", b"a", big[: 3 << 20], b"b", big[1:200000])
    ref.hset("h", mapping={b"f": big[5:2000000], b"g": b"1", big[7:100]: b"v"})
    ref.zadd("z", {big[: 1 << 20]: 1.5, b"m": 2.0, big[3:5000]: -1.0})
    ref.sadd("set", big[2:500000], b"x", b"17")
    try:
        for key in ("s", "l", "h", "z", "set"):
            payload = ref.dump(key)
            assert payload is not None and b"\xc3" in payload  # (LZF strings, as Redis writes them)
            kv.restore(key, 0, payload, replace=True)
            back = kv.dump(key)
            assert back is not None
            ref.restore(key + "2", 0, back)
            for server in (kv, ref):
                name = key if server is kv else key + "2"
                kind = ref.type(key)
                if kind == b"string":
                    assert server.get(name) == big
                elif kind == b"list":
                    assert server.lrange(name, 0, -1) == ref.lrange(key, 0, -1)
                elif kind == b"hash":
                    assert server.hgetall(name) == ref.hgetall(key)
                elif kind == b"zset":
                    assert server.zrange(name, 0, -1, withscores=True) == ref.zrange(
                        key, 0, -1, withscores=True
                    )
                else:
                    assert server.smembers(name) == ref.smembers(key)
    finally:
        kv.flushall()
        ref.close()
        kv.close()


def _huge_stream(rnd: random.Random) -> list[list[bytes]]:
    """XADDs of a stream of huge field values (random: LZF leaves them as they are)."""
    return [
        [b"XADD", b"x", b"1-1", b"f", rnd.randbytes(24 << 20), b"g", b"small"],
        [b"XADD", b"x", b"2-1", b"f", rnd.randbytes(20000), b"g", b"12345"],
        [b"XADD", b"x", b"3-1", b"other", rnd.randbytes(3 << 20)],
        [b"XADD", b"x", b"4-1", b"f", b"a", b"g", rnd.randbytes(9000)],
    ]


def test_a_stream_of_huge_field_values_is_dumped_and_restored_in_slices() -> None:
    """A 24 MB field value: never copied into its listpack whole (1.4 s at 100 MB)."""
    clock, server = _server()
    a, ta = _client(server)
    for argv in _huge_stream(random.Random(9)):
        a.dataReceived(_cmd(*argv))
    ta.clear()
    a.dataReceived(_cmd("DUMP", "x"))
    assert ta.value() == b"" and server.busy is not None
    other: list[int] = []
    turns = _run_turns(clock, server, other)
    assert turns >= 24 // MAX_STEPS and other == list(range(turns))
    _drive(clock, lambda: a.blocked is None and _replies(ta.value()) != [])
    payload = _replies(ta.value())[0]
    assert rdb.verify(payload)
    ta.clear()
    a.dataReceived(_cmd("RESTORE", "y", "0", payload))
    assert _run_turns(clock, server, other) >= 2
    _drive(clock, lambda: ta.value() != b"")
    assert ta.value() == b"+OK\r\n"
    ta.clear()
    a.dataReceived(_cmd("XRANGE", "x", "-", "+") + _cmd("XRANGE", "y", "-", "+"))
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    mine, restored = _replies(ta.value())
    assert restored == mine and mine[0][1][1] == server.store.data[b"x"].entries[(1, 1)][1]


def test_a_stream_of_huge_field_values_dumps_as_redis_does(
    redis_sanitize_port: int, kv_port: int
) -> None:
    ref = redis.Redis(port=redis_sanitize_port)
    kv = redis.Redis(port=kv_port)
    try:
        for r in (ref, kv):
            r.delete("x", "y")
            for argv in _huge_stream(random.Random(10)):
                r.execute_command(*argv)
        mine, theirs = kv.dump("x"), ref.dump("x")
        assert mine is not None and theirs is not None
        assert len(mine) == len(theirs) and mine == theirs  # (byte for byte)
        ref.restore("y", 0, mine)  # (its listpacks checked deeply: sanitize-dump-payload)
        kv.restore("y", 0, theirs)
        assert kv.xrange("y") == ref.xrange("y") == ref.xrange("x")
        assert kv.xread({"y": "0"}) == ref.xread({"y": "0"})
    finally:
        for r in (ref, kv):
            r.delete("x", "y")
            r.close()
