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
from io import BytesIO
from itertools import islice
from typing import Any

from portsuite_services.kv.bigwork import BIG, PIECE, Steps, fill, run_through
from portsuite_services.kv.resp import string2ll
from portsuite_services.kv.sharded import kind, new_like
from portsuite_services.kv.stream import NACK, PEL, U64, ZERO, Consumer, Group, Stream
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


def _crc64_py(data: bytes | memoryview, crc: int = 0) -> int:
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


def crc64(data: bytes | memoryview, crc: int = 0) -> int:
    """Redis's CRC64 (Jones polynomial, reflected, no final xor), going on from C{crc}."""
    if _crcfun is not None:
        return int(_crcfun(data, crc))
    return _crc64_py(data, crc)


CRC_PIECE = 1 << 20  # bytes checksummed a step
# A string of STRING_PIECE bytes or more is copied (and checksummed) a piece a step, into
# one growing BytesIO whose getvalue() is the bytes without a last copy: a payload's 500
# MB string is never sliced, joined or concatenated whole in one step (a 200 MB slice
# took 150 ms here). Smaller strings are read whole, a piece of at most STEP_BYTES (or
# PIECE strings) a step.
STRING_PIECE = CRC_PIECE
STEP_BYTES = 4 << 20
# LZF is decoded in Python, LZF_PIECE bytes of input a step (1-2 ms: a token costs
# ~0.3 us and takes 2 or 3 bytes; it writes at most 264, so a step writes at most
# 88 times LZF_PIECE); an LZF string counts LZF_WEIGHT bytes of STEP_BYTES per byte.
LZF_PIECE = 1 << 12
LZF_WEIGHT = STEP_BYTES // (2 * LZF_PIECE)
LZF_BACK = 8192  # the farthest a back-reference reaches: what is kept of the output


def crc64_steps(data: bytes, end: int) -> Steps[int]:
    """C{crc64(data[:end])}, a MiB a step (a payload may be hundreds of MiB)."""
    view = memoryview(data)
    crc = 0
    for i in range(0, end, CRC_PIECE):
        crc = crc64(view[i : min(i + CRC_PIECE, end)], crc)
        yield
    return crc


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


_SHORT = [bytes([n]) for n in range(64)]  # the length of a string under 64 bytes


def dumpable(value: Any) -> bool:
    """Can L{dump} write this value?"""
    t = kind(value)  # (a big hash or set, sharded, is one)
    return t is bytes or t is deque or t is set or t is dict or t is Stream or t is ZSet


def effort(value: Any) -> int:
    """About how many steps' worth of work DUMP of C{value} is (for bigwork.py)."""
    t = kind(value)
    if t is bytes:
        return len(value) // 32  # (copied and checksummed: 1 MiB is BIG)
    n = len(value) * (4 if t is Stream else 2 if t is ZSet else 1)
    if n < BIG:  # (a few elements, maybe huge ones: their bytes)
        if t is Stream:
            return _stream_effort(value, n)
        n += sum(map(len, value.dict if t is ZSet else value)) // 32
        if t is dict:
            n += sum(map(len, value.values())) // 32
    return n


def _stream_effort(s: Stream, n: int) -> int:
    """L{effort} of a stream of few entries: their bytes, up to BIG fields looked at."""
    fields = size = 0
    for fv in s.entries.values():
        fields += len(fv)
        if fields >= BIG:  # (entries of many fields: big enough)
            return BIG
        size += sum(map(len, fv))
    return n + size // 32


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
    t = kind(value)
    out: list[bytes] = []
    if t is bytes:
        out += (bytes([T_STRING]), _len(len(value)), value)  # (not copied: see _payload)
    elif t is deque or t is set:
        out += (bytes([T_LIST if t is deque else T_SET]), _len(len(value)))
        it = iter(value)
        for _ in range(0, len(value), PIECE):  # (a bytes a piece: no million parts to free)
            _put(out, list(islice(it, PIECE)))
            yield
    elif t is dict:
        out += (bytes([T_HASH]), _len(len(value)))
        pairs = iter(value.items())
        for _ in range(0, len(value), PIECE):
            _put(out, [x for kv in islice(pairs, PIECE) for x in kv])
            yield
    elif t is ZSet:
        out += yield from dump_zset(value, zset_limits, lzf)
    else:
        out.append(bytes([T_STREAM_LISTPACKS_2]))
        out += yield from dump_stream(value)
    out.append(struct.pack("<H", RDB_VERSION))
    return (yield from _payload(out))


def _put(out: list[bytes], items: list[bytes]) -> None:
    """
    Append C{items} as RDB strings to C{out}: joined into one bytes, unless they are
    long (a step's worth): then each long one as it is, for L{_payload} to copy.
    """
    if sum(map(len, items)) < STEP_BYTES:
        short = _SHORT
        out.append(b"".join([short[len(x)] + x if len(x) < 64 else _str(x) for x in items]))
        return
    for x in items:  # (8 KiB or more: not copied here)
        out += (_len(len(x)), x) if len(x) >= 1 << 13 else (_str(x),)


def _payload(parts: list[bytes]) -> Steps[bytes]:
    """
    C{parts} and their CRC64: a DUMP payload, written into one buffer and checksummed
    a piece a step (small parts joined, long ones copied STRING_PIECE bytes at a time:
    a 500 MB string is never concatenated, joined or copied whole in one step).
    """
    buf = BytesIO()
    crc = 0
    small: list[bytes] = []
    size = 0
    for k, part in enumerate(parts):
        parts[k] = b""  # (written: not held twice)
        if len(part) < STRING_PIECE:
            small.append(part)
            size += len(part)
            if size < STRING_PIECE:
                continue
            part = b"".join(small)  # (under 2 MiB)
        elif small:
            joined = b"".join(small)
            buf.write(joined)
            crc = crc64(joined, crc)
        small, size = [], 0
        view = memoryview(part)
        for i in range(0, len(view), STRING_PIECE):
            piece = view[i : i + STRING_PIECE]
            buf.write(piece)
            crc = crc64(piece, crc)
            yield
    tail = b"".join(small)
    buf.write(tail)
    buf.write(struct.pack("<Q", crc64(tail, crc)))
    return buf.getvalue()  # (its buffer, not a copy)


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


class _Big(Exception):
    """The next string is big: L{_Reader.string} left it for L{_Reader.string_steps}."""


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.d = data
        self.p = 0
        self.end = end  # (the payload's version and CRC follow: not read, not copied)
        self.spent = 0  # bytes' worth of work of the strings read (see STEP_BYTES)

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
        """
        The next string, if small: a big one (STRING_PIECE bytes, or LZF_PIECE of LZF),
        or any but an integer once a step's worth was read (L{due}), raises L{_Big},
        nothing read, for the caller to read it in L{string_steps}.
        """
        start = self.p
        n = self.d[start]
        if n < 64:  # (most strings: a 6-bit length; PIECE of them fit in a step)
            end = start + 1 + n
            if end > self.end:
                raise BadPayload
            self.p = end
            return self.d[start + 1 : end]
        n, enc = self.length()
        if not enc:
            if n >= STRING_PIECE or self.spent >= STEP_BYTES:
                self.p = start
                raise _Big
            self.spent += n
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
            if clen > LZF_PIECE or ulen >= STRING_PIECE or self.spent >= STEP_BYTES:
                self.p = start
                raise _Big
            self.spent += clen * LZF_WEIGHT + ulen
            return lzf_decompress(self.take(clen), ulen)
        raise BadPayload

    def string_steps(self) -> Steps[bytes]:
        """The next string, a big one a piece a step (L{copy_steps}, L{lzf_steps})."""
        try:
            return self.string()
        except _Big:
            pass
        n, enc = self.length()
        if enc:  # (LZF: string() reads integers whatever was spent)
            n = self.plain_len()
            ulen = self.plain_len()
        if self.p + n > self.end:
            raise BadPayload  # (a declared length is never allocated before its bytes are seen)
        if enc:
            b = yield from lzf_steps(self.d, self.p, n, ulen)
        else:
            b = yield from copy_steps(self.d, self.p, n)
        self.p += n
        self.spent += STEP_BYTES  # (what reads strings in pieces ends its piece here)
        return b

    def due(self) -> bool:
        """Has a step's worth of strings been read since the last time it said so?"""
        if self.spent < STEP_BYTES:
            return False
        self.spent = 0
        return True


def strings(r: _Reader, n: int, add: Any, per: int = 1) -> Steps[None]:
    """
    C{n} strings from C{r}, given to C{add} a piece a step: C{PIECE} strings, fewer when
    they are long (a step's worth, L{STEP_BYTES}), ending on a multiple of C{per}; a big
    one is read in steps of its own.
    """
    string = r.string
    while n > 0:
        k = min(PIECE, n)
        start = r.p
        r.spent = 0
        try:  # (the common case, at C speed)
            piece = [string() for _ in range(k)]
        except _Big:  # a big string or a long piece: read again, one by one
            r.p = start
            r.spent = 0
            piece = []
            for _ in range(k):
                piece.append((yield from r.string_steps()))
                if r.spent >= STEP_BYTES and not len(piece) % per:
                    break
        n -= len(piece)
        add(piece)
        yield


def copy_steps(data: bytes, start: int, n: int) -> Steps[bytes]:
    """C{data[start:start + n]}, written STRING_PIECE bytes a step into one buffer."""
    if n < STRING_PIECE:
        return data[start : start + n]
    view = memoryview(data)
    buf = BytesIO()
    for i in range(start, start + n, STRING_PIECE):
        buf.write(view[i : min(i + STRING_PIECE, start + n)])
        yield
    return buf.getvalue()  # (its buffer, not a copy)


def lzf_decompress(data: bytes, ulen: int) -> bytes:
    """liblzf's C{lzf_decompress}: C{data} expanding to exactly C{ulen} bytes, or L{BadPayload}."""
    return run_through(lzf_steps(data, 0, len(data), ulen))


def lzf_steps(data: bytes, start: int, clen: int, ulen: int) -> Steps[bytes]:
    """
    L{lzf_decompress} of C{data[start:start + clen]}, LZF_PIECE bytes of it a step: the
    output goes into one buffer as it comes (never more than C{ulen} and a token), the
    last LZF_BACK bytes kept for the back-references. Redis's limit on C{ulen} is
    proto-max-bulk-len's (512 MB); nothing is allocated for it before it is written.
    """
    if ulen > MAX_STRING:
        raise BadPayload
    if ulen == 0:  # (liblzf stops at once, and Redis keeps the empty string)
        return b""
    end = start + clen
    if _lzf is not None and ulen < STRING_PIECE and clen <= LZF_PIECE:
        try:  # (liblzf in C: one call, bounded by the sizes)
            got = _lzf.decompress(data[start:end], ulen)
        except (ValueError, OverflowError, MemoryError):
            got = None
        if got is None or len(got) != ulen:
            raise BadPayload
        return bytes(got)
    sink = BytesIO()
    out = bytearray()  # the last LZF_BACK bytes of output, then this step's
    base = 0  # where out starts in the output
    i = start
    while i < end:
        try:
            i = _lzf_run(data, i, min(end, i + LZF_PIECE), out)
        except IndexError:
            raise BadPayload from None
        if i > end or base + len(out) > ulen:
            raise BadPayload  # (a token past the end, or more than declared)
        sink.write(memoryview(out)[sink.tell() - base :])
        if len(out) > LZF_BACK:
            base += len(out) - LZF_BACK
            out = out[-LZF_BACK:]
        if i < end:
            yield
    if sink.tell() != ulen:
        raise BadPayload
    return sink.getvalue()  # (its buffer, not a copy)


def _lzf_run(data: bytes, i: int, stop: int, out: bytearray) -> int:
    """
    Decode LZF tokens from C{data[i]} until C{stop} into C{out}; where it stopped. A
    token may run past C{stop} (the caller checks its end); a back-reference before the
    start of C{out} raises L{BadPayload}.
    """
    while i < stop:
        ctrl = data[i]
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            j = i + ctrl + 2
            out += data[i + 1 : j]
            i = j
        else:  # a back-reference: length (3 bits, 7 = one more byte) + 2, distance + 1
            length = ctrl >> 5
            if length == 7:
                length += data[i + 1]
                i += 1
            dist = ((ctrl & 0x1F) << 8) + data[i + 1] + 1
            i += 2
            ref = len(out) - dist
            if ref < 0:
                raise BadPayload
            length += 2
            if dist >= length:
                out += out[ref : ref + length]
            else:  # overlapping: the copy repeats the last `dist` bytes
                out += (out[ref:] * (length // dist + 1))[:length]
    return i


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
    spent = 0  # bytes of the long strings copied since the last step
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
            spent += ln
        elif b == 0xF0:
            ln = struct.unpack_from("<I", lp, p + 1)[0]
            if p + 5 + ln > n:
                raise BadPayload
            out.append((yield from copy_steps(lp, p + 5, ln)))
            p += 5 + ln
            spent += ln
        elif b in (0xF1, 0xF2, 0xF3, 0xF4):
            size = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}[b]
            out.append(b"%d" % int.from_bytes(lp[p + 1 : p + 1 + size], "little", signed=True))
            p += 1 + size
        else:
            raise BadPayload
        if p > n:
            raise BadPayload
        if len(out) % PIECE == 0 or spent >= STEP_BYTES:
            spent = 0
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


def _intset(b: bytes) -> Steps[list[bytes]]:
    """An intset's integers as their decimal text, a piece a step."""
    if len(b) < 8:
        raise BadPayload
    enc, n = struct.unpack_from("<II", b, 0)
    if enc not in (2, 4, 8) or len(b) != 8 + enc * n:
        raise BadPayload
    fmt = {2: "h", 4: "i", 8: "q"}[enc]
    out: list[bytes] = []
    for i in range(0, n, PIECE):
        k = min(PIECE, n - i)
        out += [b"%d" % v for v in struct.unpack_from(f"<{k}{fmt}", b, 8 + enc * i)]
        yield
    return out


def load(payload: bytes, zset_limits: tuple[int, int] = LISTPACK_LIMITS) -> Any:
    """The value of a verified payload; L{BadPayload} for what kv cannot read."""
    return run_through(load_steps(payload, zset_limits))


def load_steps(payload: bytes, zset_limits: tuple[int, int] = LISTPACK_LIMITS) -> Steps[Any]:
    """
    L{load}, a piece of the value a step (C{zset_limits}: see L{load_zset}); a big
    string (or LZF blob) a piece a step too (L{_Reader.string_steps}).
    """
    r = _Reader(payload, len(payload) - 10)
    t = r.byte()
    try:
        if t == T_STRING:
            v: Any = yield from r.string_steps()
        elif t == T_LIST or t == T_SET:
            n = r.plain_len()  # (a big set: sharded, it never resizes a big table)
            v = deque() if t == T_LIST else new_like(set, n)
            yield from strings(r, n, v.extend if t == T_LIST else v.update)
        elif t == T_HASH:
            n = r.plain_len()
            v = new_like(dict, n)
            yield from strings(r, 2 * n, lambda p: v.update(zip(p[::2], p[1::2], strict=True)), 2)
        elif t == T_INTSET:
            v = set()
            yield from fill(v.update, (yield from _intset((yield from r.string_steps()))))
        elif t == T_HASH_LISTPACK or t == T_HASH_ZIPLIST:
            blob = yield from r.string_steps()
            items = yield from (listpack_steps if t == T_HASH_LISTPACK else ziplist_steps)(blob)
            if len(items) % 2:
                raise BadPayload
            v = {}
            for i in range(0, len(items), 2 * PIECE):
                v.update(
                    zip(items[i : i + 2 * PIECE : 2], items[i + 1 : i + 2 * PIECE : 2], strict=True)
                )
                yield
            if 2 * len(v) != len(items):
                raise BadPayload  # a field twice
        elif t == T_LIST_ZIPLIST:  # (Redis before 3.2)
            v = deque()
            yield from fill(v.extend, (yield from ziplist_steps((yield from r.string_steps()))))
        elif t == T_LIST_QUICKLIST or t == T_LIST_QUICKLIST_2:
            # (Redis 3.2 to 6.2: a quicklist of ziplists; 7.0: of listpacks or plain nodes)
            v = deque()
            for _ in range(r.plain_len()):
                container = 2 if t == T_LIST_QUICKLIST else r.plain_len()
                blob = yield from r.string_steps()
                if container == 1:  # PLAIN: one big element
                    v.append(blob)
                elif container == 2:  # PACKED: a listpack (a ziplist before 7.0)
                    lp = listpack_steps if t == T_LIST_QUICKLIST_2 else ziplist_steps
                    yield from fill(v.extend, (yield from lp(blob)))
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


LONG_ELEMENT = 1 << 13  # a stream's listpack string this long is not copied into its listpack

# an element of a listpack being written: its bytes, or a long string's header and the
# string itself (L{_lp_parts} puts them in the payload as they are, for L{_payload} to
# copy a piece a step: a 100 MB field value was copied five times in one step, 1.4 s)
Element = bytes | tuple[bytes, bytes]


def _lp_elem(b: bytes) -> Element:
    """L{_lp_str}, a long string left as it is."""
    if len(b) < LONG_ELEMENT:
        return _lp_str(b)
    return (b"\xf0" + len(b).to_bytes(4, "little"), b)


def _lp_parts(encoded: list[Element]) -> list[bytes]:
    """The bytes of L{listpack}C{(encoded)} as parts (long strings among them as they are)."""
    parts: list[bytes] = []
    run: list[bytes] = []
    for e in encoded:
        if isinstance(e, bytes):
            run.append(e + _backlen(len(e)))
            continue
        head, value = e
        if run:
            parts.append(b"".join(run))
            run = []
        parts += (head, value, _backlen(len(head) + len(value)))
    if run:
        parts.append(b"".join(run))
    size = 6 + sum(map(len, parts)) + 1
    return [
        size.to_bytes(4, "little") + min(len(encoded), 65535).to_bytes(2, "little"),
        *parts,
        b"\xff",
    ]


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


LP_PIECE = 512  # listpack elements (or pending IDs) a step of a stream's DUMP encodes


def dump_stream(s: Stream) -> Steps[list[bytes]]:
    """The body of a stream's payload (after its type byte), some nodes a step."""
    nodes = [n for n in s.nodes if n.live > 0]
    out = [_len(len(nodes))]
    ids, entries = s.ids, s.entries
    pos = 0
    done = 0  # listpack elements encoded since the last step (a few microseconds each)
    for node in nodes:
        mine = ids[pos : pos + node.live]
        pos += node.live
        master_fields = entries[mine[0]][0::2]
        nmf = len(master_fields)
        mms, mseq = node.master
        lp: list[Element] = [_lp_int(len(mine)), _lp_int(0), _lp_int(nmf)]
        lp += yield from _lp_strs(master_fields)
        lp.append(_lp_int(0))
        for i in mine:
            fields = entries[i]
            same = fields[0::2] == master_fields
            lp += (_lp_int(SAMEFIELDS if same else 0), _lp_int(i[0] - mms), _lp_int(i[1] - mseq))
            if same:
                lp += yield from _lp_strs(fields[1::2])
                lp.append(_lp_int(nmf + 3))
            else:
                lp.append(_lp_int(len(fields) // 2))
                lp += yield from _lp_strs(fields)
                lp.append(_lp_int(len(fields) + 4))
            done += 5 + len(fields)
            if done >= LP_PIECE:  # (4,096 entries a step, 20,000 elements, took 100 ms)
                done = 0
                yield
        packed = _lp_parts(lp)
        out += (_len(16), _sid(node.master), _len(sum(map(len, packed))), *packed)
    out.append(_len(len(ids)))
    for i in (s.last_id, s.first_id, s.max_deleted):
        out += (_len(i[0]), _len(i[1]))
    out.append(_len(s.entries_added))
    out.append(_len(len(s.groups)))
    for name in sorted(s.groups):
        g = s.groups[name]
        out += (_raw_string(name), _len(g.last_id[0]), _len(g.last_id[1]))
        out.append(_len(g.entries_read & U64))
        pel = yield from _live_ids(g.pel)
        out.append(_len(len(pel)))
        nacks = g.pel
        for lo in range(0, len(pel), LP_PIECE):  # (a pending list of 250,000 whole: 130 ms)
            piece: list[bytes] = []
            for i in pel[lo : lo + LP_PIECE]:
                nack = nacks[i]
                piece += (_sid(i), _ms.pack(nack.time), _len(nack.count))
            out.append(b"".join(piece))
            yield
        out.append(_len(len(g.consumers)))
        for cname in sorted(g.consumers):
            consumer = g.consumers[cname]
            mine = yield from _live_ids(consumer.pel)
            out += (_raw_string(cname), _ms.pack(consumer.seen), _len(len(mine)))
            for lo in range(0, len(mine), LP_PIECE):
                out.append(b"".join([_sid(i) for i in mine[lo : lo + LP_PIECE]]))
                yield
    return out


def _lp_strs(items: list[bytes]) -> Steps[list[Element]]:
    """L{_lp_elem} of each of C{items} (an entry's fields: maybe very many), a piece a step."""
    if len(items) <= LP_PIECE:
        return [_lp_elem(x) for x in items]
    out: list[Element] = []
    for lo in range(0, len(items), LP_PIECE):
        out += [_lp_elem(x) for x in items[lo : lo + LP_PIECE]]
        yield
    return out


def _live_ids(pel: PEL) -> Steps[list[tuple[int, int]]]:
    """The IDs of a pending list in order, a piece of its C{order} a step."""
    order = pel.order
    out: list[tuple[int, int]] = []
    for lo in range(0, len(order), PIECE):
        out += filter(pel.__contains__, order[lo : lo + PIECE])
        yield
    return out


# -- streams: reading --------------------------------------------------------------


def load_stream(r: Any, t: int) -> Steps[Stream]:
    """A stream from reader C{r} (rdb.py's), payload type C{t}; L{BadPayload} if malformed."""
    bad = BadPayload
    s = Stream()
    last: tuple[int, int] | None = None
    for _ in range(r.plain_len()):
        key = yield from r.string_steps()
        if len(key) != 16:
            raise bad
        master = (int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big"))
        e = yield from listpack_steps((yield from r.string_steps()))
        if r.due():
            yield
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
                if len(s.ids) % LP_PIECE == 0:
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
        name = yield from r.string_steps()
        group_last = (r.plain_len(), r.plain_len())
        read = r.plain_len() if t >= T_STREAM_LISTPACKS_2 else U64
        g = Group(name, group_last, -1 if read == U64 else read)
        owned = 0
        for k in range(r.plain_len()):
            i = _read_id(r)
            g.pel[i] = NACK(None, _ms.unpack(r.take(8))[0], r.plain_len())  # type: ignore[arg-type]
            if k % LP_PIECE == LP_PIECE - 1:
                yield
        for _ in range(r.plain_len()):
            cname = yield from r.string_steps()
            if r.due():
                yield
            consumer = Consumer(cname, _ms.unpack(r.take(8))[0])
            if t >= T_STREAM_LISTPACKS_3:
                r.take(8)  # (active-time: Redis 7.2's, not kept)
            for k in range(r.plain_len()):
                if k % LP_PIECE == LP_PIECE - 1:
                    yield
                i = _read_id(r)
                nack = g.pel.get(i)
                if nack is None or nack.consumer is not None:
                    raise bad  # a consumer's pending entry the group does not have
                nack.consumer = consumer
                consumer.pel[i] = nack
                owned += 1
            g.consumers[cname] = consumer
        if owned != len(g.pel):  # (each of its entries owned once: every one is owned)
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
        piece = list(islice(pairs, ZPIECE))
        if lzf or sum(len(m) for _, m in piece) < STEP_BYTES:
            out.append(b"".join([_raw_string(m, lzf) + pack(s) for s, m in piece]))
        else:  # (long members as they are, for _payload to copy: see _put)
            for s, m in piece:
                out += (
                    (_len(len(m)), m, pack(s)) if len(m) >= 1 << 13 else (_raw_string(m) + pack(s),)
                )
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
    scores: Any = {}
    if t == T_ZSET or t == T_ZSET_2:
        n = r.plain_len()
        scores = new_like(dict, n)  # (a big one: sharded, it never resizes a big table)
        string, take, unpack = r.string, r.take, _dbl.unpack
        left = n
        while left:  # (never more than the payload holds: no preallocation)
            for _ in range(min(ZPIECE, left)):
                try:
                    m = string()
                except _Big:
                    m = yield from r.string_steps()
                s = unpack(take(8))[0] if t == T_ZSET_2 else _text_score(r)
                if s != s:
                    raise BadPayload  # NaN
                scores[m] = s
                left -= 1
                if r.spent >= STEP_BYTES:
                    r.spent = 0
                    break
            yield
        if len(scores) != n:
            raise BadPayload  # a member twice
        if 0 < n <= limits[0] and max(map(len, scores)) <= limits[1]:
            for m in [m for m, s in scores.items() if s == 0.0]:
                scores[m] = 0.0
    else:
        blob = yield from r.string_steps()
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
    spent = 0  # bytes of the strings copied since the last step
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
            if p + size >= n:
                raise BadPayload
            out.append((yield from copy_steps(zl, p, size)))
            p += size
            spent += size
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
        if len(out) % PIECE == 0 or spent >= STEP_BYTES:
            spent = 0
            yield
    count = int.from_bytes(zl[8:10], "little")
    if p != n - 1 or tail != last or (count != 65535 and count != len(out)):
        raise BadPayload
    return out


_ZIPINT = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}  # integer encodings: their sizes
