"""
DUMP/RESTORE payloads in Redis's RDB serialization (rdb.c): the value's type byte
and body, the RDB version (2 bytes, little endian) and a CRC64 (Jones polynomial,
8 bytes little endian) of everything before it.

L{dump} writes strings, lists, sets and hashes in the simplest encodings every Redis
since 2.6 loads (plain string, linked list, hashtable set, hashtable hash), and
streams and sorted sets as Redis 7.0 does (see the end of this module). L{load} reads
those and the compact encodings Redis 7.0 writes (int-encoded and LZF strings,
quicklist of listpacks, intset, listpack hash, streams of Redis 5 to 7.2, sorted sets
of every encoding since Redis 2.6) and the ziplists of Redis before 7.0 (lists and
hashes too), so a DUMP from redis-server restores here and one from here restores there.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from itertools import islice
from typing import Any

from portsuite_services.kv.bigwork import PIECE, Steps, run_through
from portsuite_services.kv.resp import string2ll
from portsuite_services.kv.stream import NACK, U64, ZERO, Consumer, Group, Stream
from portsuite_services.kv.zset import (
    LISTPACK_LIMITS,
    ZSet,
    format_score,
    listpack_fits,
    scanned_float,
    stored_float,
)

try:
    import crcmod

    _crcfun = crcmod.mkCrcFun(0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0)
except ImportError:  # pragma: no cover - the pure-Python fallback (slow on big values)
    _crcfun = None  # type: ignore[assignment]

_TABLE: list[int] = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x95AC9329AC4BC9B5 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def _crc64_py(data: bytes) -> int:
    crc = 0
    t = _TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


try:  # python-lzf (liblzf, Redis's own), if installed: optional, it has no wheel
    import lzf as _lzf
except ImportError:  # the pure-Python decoder below
    _lzf = None

RDB_VERSION = 10  # Redis 7.0
MAX_STRING = 512 * 1024 * 1024  # a string longer than proto-max-bulk-len is refused
T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2 = 0, 1, 2, 3, 4, 5
T_INTSET, T_LIST_QUICKLIST, T_HASH_LISTPACK, T_ZSET_LISTPACK, T_LIST_QUICKLIST_2 = (
    11,
    14,
    16,
    17,
    18,
)
T_HASH_ZIPLIST, T_ZSET_ZIPLIST, T_LIST_ZIPLIST = 13, 12, 10


class BadPayload(Exception):
    pass


def crc64(data: bytes) -> int:
    """Redis's CRC64 (Jones polynomial, reflected, no final xor)."""
    if _crcfun is not None:
        return int(_crcfun(data))
    return _crc64_py(data)


CRC_PIECE = 1 << 20  # bytes checksummed a step


def crc64_steps(data: bytes, end: int) -> Steps[int]:
    """C{crc64(data[:end])}, a MiB a step (a payload may be hundreds of MiB)."""
    if _crcfun is None:  # pragma: no cover - the pure-Python fallback: at once
        return _crc64_py(data[:end])
    crc = 0
    for i in range(0, end, CRC_PIECE):
        crc = _crcfun(data[i : min(i + CRC_PIECE, end)], crc)
        yield
    return int(crc)


# -- writing ------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def _str(b: bytes) -> bytes:
    return _len(len(b)) + b


def dumpable(value: Any) -> bool:
    """Can L{dump} write this value?"""
    t = type(value)
    return t is bytes or t is deque or t is set or t is dict or t is Stream or t is ZSet


def effort(value: Any) -> int:
    """About how many steps' worth of work DUMP of C{value} is (for bigwork.py)."""
    if type(value) is bytes:
        return len(value) // 256  # (copied and checksummed)
    return len(value) * (4 if type(value) is Stream else 2 if type(value) is ZSet else 1)


def dump(
    value: Any, zset_limits: tuple[int, int] = LISTPACK_LIMITS, lzf: bool = True
) -> bytes | None:
    """The DUMP payload of a value, or None for a type kv cannot serialize."""
    if not dumpable(value):
        return None
    return run_through(dump_steps(value, zset_limits, lzf))


def dump_steps(
    value: Any, zset_limits: tuple[int, int] = LISTPACK_LIMITS, lzf: bool = True
) -> Steps[bytes]:
    """
    L{dump} a piece at a time (a value L{dumpable}, not changing meanwhile). A sorted
    set is written as Redis holds it with these zset-max-listpack-entries/-value, its
    strings compressed as with rdbcompression when C{lzf} (and small: L{LZF_MAX}).
    """
    t = type(value)
    out: list[bytes] = []
    if t is bytes:
        out += (bytes([T_STRING]), _str(value))
    elif t is deque or t is set:
        out += (bytes([T_LIST if t is deque else T_SET]), _len(len(value)))
        it = iter(value)
        for _ in range(0, len(value), PIECE):  # (a bytes a piece: no million parts to free)
            out.append(b"".join([_str(x) for x in islice(it, PIECE)]))
            yield
    elif t is dict:
        out += (bytes([T_HASH]), _len(len(value)))
        pairs = iter(value.items())
        for _ in range(0, len(value), PIECE):
            out.append(b"".join([_str(x) for kv in islice(pairs, PIECE) for x in kv]))
            yield
    elif t is ZSet:
        out += yield from dump_zset(value, zset_limits, lzf)
    else:
        out.append(bytes([T_STREAM_LISTPACKS_2]))
        out += yield from dump_stream(value)
    body = b"".join(out) + struct.pack("<H", RDB_VERSION)
    crc = yield from crc64_steps(body, len(body))
    return body + struct.pack("<Q", crc)


def verify(payload: bytes) -> bool:
    """verifyDumpPayload: long enough, a version we read, the right CRC."""
    return run_through(verify_steps(payload))


def verify_steps(payload: bytes) -> Steps[bool]:
    """L{verify} a MiB a step."""
    if len(payload) < 10:
        return False
    ver = struct.unpack_from("<H", payload, len(payload) - 10)[0]
    if ver > RDB_VERSION:
        return False
    crc = struct.unpack_from("<Q", payload, len(payload) - 8)[0]
    return (yield from crc64_steps(payload, len(payload) - 8)) == crc


# -- reading ------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.d = data
        self.p = 0
        self.end = end  # (the payload's version and CRC follow: not read, not copied)

    def take(self, n: int) -> bytes:
        if n < 0 or self.p + n > self.end:
            raise BadPayload
        b = self.d[self.p : self.p + n]
        self.p += n
        return b

    def byte(self) -> int:
        return self.take(1)[0]

    def length(self) -> tuple[int, bool]:
        """(length, is_encoded): rdbLoadLenByRef."""
        b = self.byte()
        kind = b >> 6
        if kind == 0:
            return b & 0x3F, False
        if kind == 1:
            return ((b & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return b & 0x3F, True
        if b == 0x80:
            return struct.unpack(">I", self.take(4))[0], False
        if b == 0x81:
            return struct.unpack(">Q", self.take(8))[0], False
        raise BadPayload

    def plain_len(self) -> int:
        n, enc = self.length()
        if enc:
            raise BadPayload
        return n

    def string(self) -> bytes:
        n, enc = self.length()
        if not enc:
            return self.take(n)
        if n == 0:
            return b"%d" % struct.unpack("<b", self.take(1))[0]
        if n == 1:
            return b"%d" % struct.unpack("<h", self.take(2))[0]
        if n == 2:
            return b"%d" % struct.unpack("<i", self.take(4))[0]
        if n == 3:
            clen = self.plain_len()
            ulen = self.plain_len()
            return lzf_decompress(self.take(clen), ulen)
        raise BadPayload


def lzf_decompress(data: bytes, ulen: int) -> bytes:
    if ulen > MAX_STRING or ulen == 0:
        raise BadPayload
    if _lzf is not None:
        try:
            got = _lzf.decompress(data, ulen)
        except (ValueError, OverflowError, MemoryError):
            got = None
        if got is None or len(got) != ulen:
            raise BadPayload
        return bytes(got)
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            run = ctrl + 1
            if i + run > n:
                raise BadPayload
            out += data[i : i + run]
            i += run
        else:
            length = ctrl >> 5
            if i >= n:
                raise BadPayload
            if length == 7:
                length += data[i]
                i += 1
                if i >= n:
                    raise BadPayload
            ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
            i += 1
            if ref < 0:
                raise BadPayload
            length += 2
            dist = len(out) - ref
            if dist >= length:
                out += out[ref : ref + length]
            else:  # overlapping: the copy repeats the last `dist` bytes
                out += (bytes(out[ref:]) * (length // dist + 1))[:length]
        if len(out) > ulen:
            raise BadPayload
    if len(out) != ulen:
        raise BadPayload
    return bytes(out)


LZF_MAX = 1 << 14  # bytes a DUMP compresses at most (pure Python, ~1 µs a byte, in one step)


def lzf_compress(data: bytes) -> bytes | None:
    """
    What Redis's C{rdbSaveLzfStringObject} writes: liblzf 3.6's C{lzf_compress} (lzf_c.c
    as Redis 7.0 builds it: HLOG 16, VERY_FAST) into a buffer of C{len(data) - 4} bytes,
    so None when it does not save at least 4 bytes. The table of earlier positions starts
    empty here; liblzf leaves it uninitialised on the stack, so redis-server's table still
    holds the offsets of its previous compression and may find other matches (rarely: a
    DUMP is Redis's byte for byte when it is the server's first compression).
    """
    n = len(data)
    cap = n - 4  # out_len
    if n < 5:
        return None
    out = bytearray(cap + 8)
    table: dict[int, int] = {}
    ip = lit = 0
    op = 1  # (a literal run's length byte is kept free in front of it)
    h = (data[0] << 8) | data[1]
    tail = False  # (the last two bytes: literals, once the output is known to have room)
    while ip < n:
        if ip < n - 2:
            h = ((h << 8) | data[ip + 2]) & 0xFFFFFFFF
            slot = ((h >> 8) - h * 5) & 0xFFFF
            ref = table.get(slot, 0)
            table[slot] = ip
            off = ip - ref - 1
            if (
                ref > 0
                and off < 8192
                and data[ref] == data[ip]
                and data[ref + 1] == data[ip + 1]
                and data[ref + 2] == data[ip + 2]
            ):
                size = 2
                maxlen = min(n - ip - size, 264)
                out[op - lit - 1] = (lit - 1) & 0xFF  # the run ends
                if not lit:
                    op -= 1
                if op + 4 >= cap:
                    return None
                mismatch = False
                if maxlen > 16:  # (liblzf compares 16 bytes unrolled first)
                    for _ in range(16):
                        size += 1
                        if data[ref + size] != data[ip + size]:
                            mismatch = True
                            break
                if not mismatch:
                    size += 1
                    while size < maxlen and data[ref + size] == data[ip + size]:
                        size += 1
                size -= 2  # (the number of bytes - 1)
                ip += 1
                if size < 7:
                    out[op] = (off >> 8) + (size << 5)
                    op += 1
                else:
                    out[op] = (off >> 8) + (7 << 5)
                    out[op + 1] = size - 7
                    op += 2
                out[op] = off & 0xFF
                op += 2
                lit = 0
                ip += size + 1
                if ip < n - 2:
                    ip -= 2
                    h = (data[ip] << 8) | data[ip + 1]
                    for _ in range(2):
                        h = ((h << 8) | data[ip + 2]) & 0xFFFFFFFF
                        table[((h >> 8) - h * 5) & 0xFFFF] = ip
                        ip += 1
                continue
        elif not tail:
            if op + 3 > cap:
                return None
            tail = True
        if op >= cap:
            return None
        out[op] = data[ip]
        op += 1
        ip += 1
        lit += 1
        if lit == 32:
            out[op - lit - 1] = 31
            lit = 0
            op += 1
    if not tail and op + 3 > cap:
        return None
    out[op - lit - 1] = (lit - 1) & 0xFF
    if not lit:
        op -= 1
    return bytes(out[:op])


def listpack_entries(lp: bytes) -> list[bytes]:
    """The elements of a listpack (integers as their decimal text)."""
    return run_through(listpack_steps(lp))


def listpack_steps(lp: bytes) -> Steps[list[bytes]]:
    """L{listpack_entries}, C{PIECE} elements a step."""
    if len(lp) < 7 or struct.unpack_from("<I", lp, 0)[0] != len(lp):
        raise BadPayload
    p = 6
    out: list[bytes] = []
    n = len(lp)
    while True:
        if p >= n:
            raise BadPayload
        b = lp[p]
        if b == 0xFF:
            break
        start = p
        if b & 0x80 == 0:
            out.append(b"%d" % (b & 0x7F))
            p += 1
        elif b & 0xC0 == 0x80:
            ln = b & 0x3F
            out.append(lp[p + 1 : p + 1 + ln])
            p += 1 + ln
        elif b & 0xE0 == 0xC0:
            v = ((b & 0x1F) << 8) | lp[p + 1]
            if v >= 1 << 12:
                v -= 1 << 13
            out.append(b"%d" % v)
            p += 2
        elif b & 0xF0 == 0xE0:
            ln = ((b & 0x0F) << 8) | lp[p + 1]
            out.append(lp[p + 2 : p + 2 + ln])
            p += 2 + ln
        elif b == 0xF0:
            ln = struct.unpack_from("<I", lp, p + 1)[0]
            out.append(lp[p + 5 : p + 5 + ln])
            p += 5 + ln
        elif b in (0xF1, 0xF2, 0xF3, 0xF4):
            size = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}[b]
            out.append(b"%d" % int.from_bytes(lp[p + 1 : p + 1 + size], "little", signed=True))
            p += 1 + size
        else:
            raise BadPayload
        if p > n:
            raise BadPayload
        if len(out) % PIECE == 0:
            yield
        ln = p - start  # (the entry's back length must say so, as Redis's deep check wants)
        if ln <= 127:
            if lp[p] != ln:
                raise BadPayload
            p += 1
        else:
            back = _backlen(ln)
            if lp[p : p + len(back)] != back:
                raise BadPayload
            p += len(back)
    count = struct.unpack_from("<H", lp, 4)[0]
    if p != n - 1 or (count != 65535 and count != len(out)):
        raise BadPayload
    return out


def _intset(b: bytes) -> list[bytes]:
    if len(b) < 8:
        raise BadPayload
    enc, n = struct.unpack_from("<II", b, 0)
    if enc not in (2, 4, 8) or len(b) != 8 + enc * n:
        raise BadPayload
    fmt = {2: "h", 4: "i", 8: "q"}[enc]
    return [b"%d" % v for v in struct.unpack_from(f"<{n}{fmt}", b, 8)]


def load(payload: bytes, zset_limits: tuple[int, int] = LISTPACK_LIMITS) -> Any:
    """The value of a verified payload; L{BadPayload} for what kv cannot read."""
    return run_through(load_steps(payload, zset_limits))


def load_steps(payload: bytes, zset_limits: tuple[int, int] = LISTPACK_LIMITS) -> Steps[Any]:
    """L{load}, a piece of the value a step (C{zset_limits}: see L{load_zset})."""
    r = _Reader(payload, len(payload) - 10)
    t = r.byte()
    try:
        if t == T_STRING:
            v: Any = r.string()
        elif t == T_LIST or t == T_SET:
            n = r.plain_len()
            v = deque() if t == T_LIST else set()
            add = v.extend if t == T_LIST else v.update
            for i in range(0, n, PIECE):
                add([r.string() for _ in range(min(PIECE, n - i))])
                yield
        elif t == T_HASH:
            v = {}
            n = r.plain_len()
            for i in range(0, n, PIECE):
                for _ in range(min(PIECE, n - i)):
                    k = r.string()
                    v[k] = r.string()
                yield
        elif t == T_INTSET:
            v = set(_intset(r.string()))
        elif t == T_HASH_LISTPACK or t == T_HASH_ZIPLIST:
            blob = r.string()
            items = yield from (listpack_steps if t == T_HASH_LISTPACK else ziplist_steps)(blob)
            if len(items) % 2:
                raise BadPayload
            v = dict(zip(items[::2], items[1::2], strict=True))
            if 2 * len(v) != len(items):
                raise BadPayload  # a field twice
        elif t == T_LIST_ZIPLIST:  # (Redis before 3.2)
            v = deque((yield from ziplist_steps(r.string())))
        elif t == T_LIST_QUICKLIST:  # (Redis 3.2 to 6.2: a quicklist of ziplists)
            v = deque()
            for _ in range(r.plain_len()):
                v.extend((yield from ziplist_steps(r.string())))
                yield
        elif t == T_LIST_QUICKLIST_2:
            v = deque()
            for _ in range(r.plain_len()):
                container = r.plain_len()
                blob = r.string()
                if container == 1:  # PLAIN: one big element
                    v.append(blob)
                elif container == 2:  # PACKED: a listpack
                    v.extend((yield from listpack_steps(blob)))
                else:
                    raise BadPayload
                yield
        elif t in (15, 19, 21):  # streams (below)
            v = yield from load_stream(r, t)
        elif t in (T_ZSET, T_ZSET_2, T_ZSET_ZIPLIST, T_ZSET_LISTPACK):  # sorted sets (below)
            v = yield from load_zset(r, t, zset_limits)
        else:
            raise BadPayload
    except (struct.error, IndexError, ValueError) as e:
        raise BadPayload from e
    if r.p != r.end:
        raise BadPayload
    if t != T_STRING and not v:
        raise BadPayload  # Redis refuses empty containers ("Bad data format")
    return v


# -- streams ----------------------------------------------------------------------
#
# Streams in DUMP/RESTORE payloads: Redis 7.0's C{RDB_TYPE_STREAM_LISTPACKS_2} (rdb.c,
# t_stream.c), read and written; C{RDB_TYPE_STREAM_LISTPACKS} (Redis 5–6) and
# C{_3} (7.2) are read too.
#
# The entries are radix-tree nodes, each a listpack: a master entry (live count,
# deleted count, the master fields, 0), then per entry its flags, its ID as the
# difference from the node's master ID, its values (only those, when its fields are
# the master's: C{SAMEFIELDS}) or its fields and values, and its own element count.
# Then the stream's length, last, first and largest deleted IDs, entries added, and
# the consumer groups (by name) with their pending entries and consumers.
#
# kv writes the nodes it models (L{Stream.nodes}) with their live entries, so a stream
# that only grew is written as Redis writes it; after XDEL, kv writes what is left
# (Redis keeps deleted entries in their node, flagged, until the node is emptied).

T_STREAM_LISTPACKS, T_STREAM_LISTPACKS_2, T_STREAM_LISTPACKS_3 = 15, 19, 21
DELETED, SAMEFIELDS = 1, 2
_ms = struct.Struct("<q")


# -- streams: writing --------------------------------------------------------------


def _lp_int(v: int) -> bytes:
    """A listpack integer, in its smallest encoding (lpEncodeIntegerGetType)."""
    if 0 <= v <= 127:
        return bytes([v])
    if -4096 <= v <= 4095:
        u = v & 0x1FFF
        return bytes([0xC0 | (u >> 8), u & 0xFF])
    for tag, size in ((0xF1, 2), (0xF2, 3), (0xF3, 4)):
        if -(1 << (8 * size - 1)) <= v < 1 << (8 * size - 1):
            return bytes([tag]) + v.to_bytes(size, "little", signed=True)
    return b"\xf4" + v.to_bytes(8, "little", signed=True)


def _lp_str(b: bytes) -> bytes:
    """A listpack string: an integer when it reads as one, as Redis stores it."""
    v = string2ll(b)
    if v is not None:
        return _lp_int(v)
    n = len(b)
    if n < 64:
        return bytes([0x80 | n]) + b
    if n < 4096:
        return bytes([0xE0 | (n >> 8), n & 0xFF]) + b
    return b"\xf0" + n.to_bytes(4, "little") + b


def _backlen(n: int) -> bytes:
    """lpEncodeBacklen: the entry's size, 7 bits a byte, read from the end."""
    size = 1 if n <= 127 else 2 if n < 16383 else 3 if n < 2097151 else 4 if n < 268435455 else 5
    return bytes([((n >> (7 * (size - 1 - k))) & 127) | (128 if k else 0) for k in range(size)])


def listpack(encoded: list[bytes]) -> bytes:
    """A listpack of already encoded elements."""
    return _lp_frame(b"".join([e + _backlen(len(e)) for e in encoded]), len(encoded))


def _lp_frame(body: bytes, count: int) -> bytes:
    """A listpack around C{body}, C{count} entries (each with its backlen)."""
    return (
        (6 + len(body) + 1).to_bytes(4, "little")
        + min(count, 65535).to_bytes(2, "little")
        + body
        + b"\xff"
    )


def _sid(i: tuple[int, int]) -> bytes:
    return i[0].to_bytes(8, "big") + i[1].to_bytes(8, "big")


def _raw_string(b: bytes, lzf: bool = False) -> bytes:
    """
    rdbSaveRawString: short decimal integers int-encoded, as Redis writes them, and
    with C{lzf} (rdbcompression) strings over 20 bytes compressed when that saves 4.
    """
    v = string2ll(b) if len(b) <= 11 else None
    if v is not None:
        if -128 <= v <= 127:
            return b"\xc0" + struct.pack("<b", v)
        if -32768 <= v <= 32767:
            return b"\xc1" + struct.pack("<h", v)
        if -(1 << 31) <= v < 1 << 31:
            return b"\xc2" + struct.pack("<i", v)
    if lzf and len(b) > 20:
        packed = lzf_compress(b)
        if packed is not None:
            return b"\xc3" + _len(len(packed)) + _len(len(b)) + packed
    return _len(len(b)) + b


def dump_stream(s: Stream) -> Steps[list[bytes]]:
    """The body of a stream's payload (after its type byte), some nodes a step."""
    nodes = [n for n in s.nodes if n.live > 0]
    out = [_len(len(nodes))]
    ids, entries = s.ids, s.entries
    pos = 0
    for node in nodes:
        mine = ids[pos : pos + node.live]
        pos += node.live
        master_fields = entries[mine[0]][0::2]
        nmf = len(master_fields)
        mms, mseq = node.master
        lp = [_lp_int(len(mine)), _lp_int(0), _lp_int(nmf)]
        lp += [_lp_str(f) for f in master_fields]
        lp.append(_lp_int(0))
        for i in mine:
            fields = entries[i]
            same = fields[0::2] == master_fields
            lp += (_lp_int(SAMEFIELDS if same else 0), _lp_int(i[0] - mms), _lp_int(i[1] - mseq))
            if same:
                lp += [_lp_str(v) for v in fields[1::2]]
                lp.append(_lp_int(nmf + 3))
            else:
                lp.append(_lp_int(len(fields) // 2))
                lp += [_lp_str(x) for x in fields]
                lp.append(_lp_int(len(fields) + 4))
        packed = listpack(lp)
        out += (_len(16), _sid(node.master), _len(len(packed)), packed)
        if pos % PIECE < node.live:
            yield
    out.append(_len(len(ids)))
    for i in (s.last_id, s.first_id, s.max_deleted):
        out += (_len(i[0]), _len(i[1]))
    out.append(_len(s.entries_added))
    out.append(_len(len(s.groups)))
    for name in sorted(s.groups):
        g = s.groups[name]
        out += (_raw_string(name), _len(g.last_id[0]), _len(g.last_id[1]))
        out.append(_len(g.entries_read & U64))
        pel = g.pel.ids()
        out.append(_len(len(pel)))
        for i in pel:
            nack = g.pel[i]
            out += (_sid(i), _ms.pack(nack.time), _len(nack.count))
        out.append(_len(len(g.consumers)))
        for cname in sorted(g.consumers):
            consumer = g.consumers[cname]
            mine = consumer.pel.ids()
            out += (_raw_string(cname), _ms.pack(consumer.seen), _len(len(mine)))
            out += [_sid(i) for i in mine]
    return out


# -- streams: reading --------------------------------------------------------------


def load_stream(r: Any, t: int) -> Steps[Stream]:
    """A stream from reader C{r} (rdb.py's), payload type C{t}; L{BadPayload} if malformed."""
    bad = BadPayload
    s = Stream()
    last: tuple[int, int] | None = None
    for _ in range(r.plain_len()):
        key = r.string()
        if len(key) != 16:
            raise bad
        master = (int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big"))
        e = yield from listpack_steps(r.string())
        nums = _Ints(e, bad)
        nums.take()  # live count
        nums.take()  # deleted count
        nmf = nums.take()
        master_fields = nums.strings(nmf)
        if nums.take() != 0:
            raise bad
        while nums.p < len(e):
            flags, dms, dseq = nums.take(), nums.take(), nums.take()
            if flags & SAMEFIELDS:
                fields = [
                    x for f, v in zip(master_fields, nums.strings(nmf), strict=True) for x in (f, v)
                ]
            else:
                fields = nums.strings(2 * nums.take())
            nums.take()  # the entry's element count
            i = (master[0] + dms, master[1] + dseq)
            if not (0 <= i[0] <= U64 and 0 <= i[1] <= U64) or (last is not None and i <= last):
                raise bad
            if not flags & DELETED:
                s.append(i, fields)
                last = i
                if len(s.ids) % PIECE == 0:
                    yield
    if r.plain_len() != len(s.ids):
        raise bad
    s.last_id = (r.plain_len(), r.plain_len())
    if t >= T_STREAM_LISTPACKS_2:
        s.first_id = (r.plain_len(), r.plain_len())
        s.max_deleted = (r.plain_len(), r.plain_len())
        s.entries_added = r.plain_len()
    else:
        s.first_id = s.ids[0] if s.ids else ZERO
        s.max_deleted = ZERO
        s.entries_added = len(s.ids)
    if last is not None and last > s.last_id:
        raise bad
    for _ in range(r.plain_len()):
        name = r.string()
        group_last = (r.plain_len(), r.plain_len())
        read = r.plain_len() if t >= T_STREAM_LISTPACKS_2 else U64
        g = Group(name, group_last, -1 if read == U64 else read)
        for k in range(r.plain_len()):
            i = _read_id(r)
            g.pel[i] = NACK(None, _ms.unpack(r.take(8))[0], r.plain_len())  # type: ignore[arg-type]
            if k % PIECE == PIECE - 1:
                yield
        for _ in range(r.plain_len()):
            cname = r.string()
            consumer = Consumer(cname, _ms.unpack(r.take(8))[0])
            if t >= T_STREAM_LISTPACKS_3:
                r.take(8)  # (active-time: Redis 7.2's, not kept)
            for k in range(r.plain_len()):
                if k % PIECE == PIECE - 1:
                    yield
                i = _read_id(r)
                nack = g.pel.get(i)
                if nack is None or nack.consumer is not None:
                    raise bad  # a consumer's pending entry the group does not have
                nack.consumer = consumer
                consumer.pel[i] = nack
            g.consumers[cname] = consumer
        if any(nack.consumer is None for nack in g.pel.values()):
            raise bad
        s.groups[name] = g
    return s


def _read_id(r: Any) -> tuple[int, int]:
    raw = r.take(16)
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


class _Ints:
    """A listpack's elements read in order: integers and strings."""

    def __init__(self, e: list[bytes], bad: type[Exception]):
        self.e = e
        self.p = 0
        self.bad = bad

    def take(self) -> int:
        if self.p >= len(self.e):
            raise self.bad
        v = string2ll(self.e[self.p])
        if v is None:
            raise self.bad
        self.p += 1
        return v

    def strings(self, n: int) -> list[bytes]:
        if n < 0 or self.p + n > len(self.e):
            raise self.bad
        out = self.e[self.p : self.p + n]
        self.p += n
        return out


# -- sorted sets --------------------------------------------------------------------
#
# Redis 7.0 writes a sorted set as it holds it (rdb.c, t_zset.c): while it has at most
# zset-max-listpack-entries members of at most zset-max-listpack-value bytes, its
# listpack (C{RDB_TYPE_ZSET_LISTPACK}: member, score, member, score… in order, a score
# as Redis's d2string writes it, stored as an integer when it reads as one); else its skiplist
# from the highest score down (C{RDB_TYPE_ZSET_2}: the count, then each member and its
# score as a little-endian binary double). Strings go through rdbSaveRawString (short
# integers int-encoded, over 20 bytes LZF-compressed when that saves 4 bytes).
#
# Read: those two, C{RDB_TYPE_ZSET} (Redis before 3.2: each score as text, a length
# byte then the text read with sscanf %lg, or 253/254/255 for nan/inf/-inf) and
# C{RDB_TYPE_ZSET_ZIPLIST} (Redis before 7.0: member, score pairs in a ziplist). As
# Redis, a member twice, a NaN score, a count that is not what follows, or an empty
# set is "Bad data format"; a listpack's score that is not a number is too (Redis
# reads it as 0), and its pairs out of order are put in order (Redis keeps them so).

_dbl = struct.Struct("<d")
ZPIECE = PIECE // 4  # members a step (each costs some µs in Python: a step stays near 5 ms)


def dump_zset(z: ZSet, limits: tuple[int, int], lzf: bool) -> Steps[list[bytes]]:
    """A sorted set's type byte and body, as Redis 7.0 writes it, a piece a step."""
    n = len(z)
    if (yield from _fits(z, limits)):
        parts = []
        pairs = iter(z.sl)
        for _ in range(0, n, ZPIECE):
            parts.append(
                b"".join(
                    [
                        e + _backlen(len(e))
                        for s, m in islice(pairs, ZPIECE)
                        for e in (_lp_str(m), _lp_str(_d2string(s)))
                    ]
                )
            )
            yield
        lp = _lp_frame(b"".join(parts), 2 * n)
        return [bytes([T_ZSET_LISTPACK]), _raw_string(lp, lzf and len(lp) <= LZF_MAX)]
    lzf = lzf and n <= LZF_MAX // 20 and sum(len(m) for m in z.dict) <= LZF_MAX
    out = [bytes([T_ZSET_2]), _len(n)]
    pack = _dbl.pack
    pairs = z.sl.islice(reverse=True)
    for _ in range(0, n, ZPIECE):
        out.append(b"".join([_raw_string(m, lzf) + pack(s) for s, m in islice(pairs, ZPIECE)]))
        yield
    return out


_LL_HALF = float((1 << 63) // 2)  # (double)(LLONG_MAX/2)


def _d2string(v: float) -> bytes:
    """Redis 7.0's d2string (a listpack's score): integers up to 2^62 in full, else %.17g."""
    if v == 0:
        return b"-0" if math.copysign(1.0, v) < 0 else b"0"
    if -_LL_HALF <= v <= _LL_HALF and v == int(v):
        return b"%d" % int(v)
    return format_score(v)


def _fits(z: ZSet, limits: tuple[int, int]) -> Steps[bool]:
    """L{listpack_fits}, a piece of the members a step (the limits may be set high)."""
    if len(z) <= PIECE or len(z) > limits[0]:
        return listpack_fits(z, limits)
    members = iter(z.dict)
    for _ in range(0, len(z), PIECE):
        if max(map(len, islice(members, PIECE))) > limits[1]:
            return False
        yield
    return True


def load_zset(r: Any, t: int, limits: tuple[int, int]) -> Steps[ZSet]:
    """
    A sorted set from reader C{r}, payload type C{t}; L{BadPayload} if malformed. A
    skiplist Redis would hold as a listpack (C{limits}) has its -0 scores made 0, as
    Redis's conversion makes them.
    """
    scores: dict[bytes, float] = {}
    if t == T_ZSET or t == T_ZSET_2:
        n = r.plain_len()
        take, unpack = r.take, _dbl.unpack
        for i in range(0, n, ZPIECE):  # (never more than the payload holds: no preallocation)
            for _ in range(min(ZPIECE, n - i)):
                m = r.string()
                s = unpack(take(8))[0] if t == T_ZSET_2 else _text_score(r)
                if s != s:
                    raise BadPayload  # NaN
                scores[m] = s
            yield
        if len(scores) != n:
            raise BadPayload  # a member twice
        if 0 < n <= limits[0] and max(map(len, scores)) <= limits[1]:
            for m in [m for m, s in scores.items() if s == 0.0]:
                scores[m] = 0.0
    else:
        blob = r.string()
        e = yield from (listpack_steps(blob) if t == T_ZSET_LISTPACK else ziplist_steps(blob))
        if len(e) % 2:
            raise BadPayload
        for i in range(0, len(e), 2 * ZPIECE):
            for m, text in zip(
                e[i : i + 2 * ZPIECE : 2], e[i + 1 : i + 2 * ZPIECE : 2], strict=True
            ):
                s = stored_float(text)
                if s is None:
                    raise BadPayload
                scores[m] = s
            yield
        if 2 * len(scores) != len(e):
            raise BadPayload
    return (yield from _indexed(scores))


def _indexed(scores: dict[bytes, float]) -> Steps[ZSet]:
    """A ZSet of C{scores} (which it takes), its index built a piece a step."""
    z = ZSet()
    z.dict = scores
    pairs = zip(scores.values(), scores.keys(), strict=True)
    if len(scores) <= PIECE:
        z.sl.update(pairs)
        return z
    add = z.sl.add  # (one update would sort them all at once)
    for _ in range(0, len(scores), ZPIECE):
        for p in islice(pairs, ZPIECE):
            add(p)
        yield
    return z


def _text_score(r: Any) -> float:
    """rdbLoadDoubleValue: a length byte then the text, or 253/254/255 for nan/inf/-inf."""
    n = r.byte()
    if n >= 253:
        return (math.nan, math.inf, -math.inf)[n - 253]
    v = scanned_float(r.take(n))
    if v is None:
        raise BadPayload
    return v


def ziplist_steps(zl: bytes) -> Steps[list[bytes]]:
    """
    The elements of a ziplist (Redis before 7.0; integers as their decimal text), its
    header, lengths and back links checked as Redis's deep integrity check does.
    """
    n = len(zl)
    if n < 11 or int.from_bytes(zl[:4], "little") != n or zl[-1] != 0xFF:
        raise BadPayload
    tail = int.from_bytes(zl[4:8], "little")
    out: list[bytes] = []
    p = last = 10
    prev = 0
    while zl[p] != 0xFF:
        start = p
        b = zl[p]
        if b == 0xFE:
            back = int.from_bytes(zl[p + 1 : p + 5], "little")
            p += 5
        else:
            back = b
            p += 1
        if back != prev:
            raise BadPayload
        b = zl[p]
        kind = b >> 6
        if kind < 3:  # a string: 6-bit, 14-bit or 32-bit length (big endian)
            if kind == 0:
                size, p = b & 0x3F, p + 1
            elif kind == 1:
                size, p = ((b & 0x3F) << 8) | zl[p + 1], p + 2
            elif b == 0x80:
                size, p = int.from_bytes(zl[p + 1 : p + 5], "big"), p + 5
            else:
                raise BadPayload
            out.append(zl[p : p + size])
            p += size
        elif 0xF1 <= b <= 0xFD:  # 0 to 12 in the encoding byte
            out.append(b"%d" % ((b & 0x0F) - 1))
            p += 1
        else:
            size = _ZIPINT.get(b, 0)
            if not size:
                raise BadPayload
            out.append(b"%d" % int.from_bytes(zl[p + 1 : p + 1 + size], "little", signed=True))
            p += 1 + size
        if p >= n:
            raise BadPayload
        prev = p - start
        last = start
        if len(out) % PIECE == 0:
            yield
    count = int.from_bytes(zl[8:10], "little")
    if p != n - 1 or tail != last or (count != 65535 and count != len(out)):
        raise BadPayload
    return out


_ZIPINT = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}  # integer encodings: their sizes
