"""
HyperLogLog as Redis stores it (hyperloglog.c): a string value that starts with the
16-byte header C{HYLL}, encoding (0 dense, 1 sparse), 3 unused bytes and the cached
cardinality (8 bytes little endian, top bit set when stale), then the registers.

kv writes the dense form (16384 registers of 6 bits, little-endian bit order) and
reads both forms, so a string from a real Redis works here and one from kv there.
Elements are hashed with MurmurHash64A (seed 0xadc83b19) and counted with Redis's
estimator (Ertl's improved estimator), so PFCOUNT gives the same numbers.
"""

from __future__ import annotations

import bisect
import math
import struct
from typing import Any

P = 14
REGISTERS = 1 << P  # 16384
P_MASK = REGISTERS - 1
Q = 64 - P  # 50
HDR = 16
DENSE_SIZE = HDR + REGISTERS * 6 // 8  # 12304
DENSE, SPARSE = 0, 1
ALPHA_INF = 0.721347520444481703680
M64 = (1 << 64) - 1
_M = 0xC6A4A7935BD1E995
SEED = 0xADC83B19


class Invalid(Exception):
    """Not a HyperLogLog (WRONGTYPE ...) or a corrupt one (INVALIDOBJ)."""


NOT_HLL = "WRONGTYPE Key is not a valid HyperLogLog string value."
CORRUPT = "INVALIDOBJ Corrupted HLL object detected"


def murmur64a(data: bytes, seed: int = SEED) -> int:
    n = len(data)
    h = (seed ^ (n * _M)) & M64
    nblocks = n >> 3
    if nblocks:
        for k in struct.unpack_from(f"<{nblocks}Q", data):
            k = (k * _M) & M64
            k ^= k >> 47
            k = (k * _M) & M64
            h ^= k
            h = (h * _M) & M64
    rest = n & 7
    if rest:
        tail = data[nblocks * 8 :]
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & M64
    h ^= h >> 47
    h = (h * _M) & M64
    h ^= h >> 47
    return h


def pat_len(ele: bytes) -> tuple[int, int]:
    """(register index, run length of zeros + 1), Redis's hllPatLen."""
    h = murmur64a(ele)
    index = h & P_MASK
    h = (h >> P) | (1 << Q)
    count = (h & -h).bit_length()  # position of the lowest set bit, 1-based
    return index, count


def empty_dense() -> bytearray:
    b = bytearray(DENSE_SIZE)
    b[0:4] = b"HYLL"
    return b


def check(v: bytes) -> None:
    """isHLLObjectOrReply (the type check itself is the caller's)."""
    if len(v) < HDR or v[:4] != b"HYLL" or v[4] > 1:
        raise Invalid(NOT_HLL)
    if v[4] == DENSE and len(v) != DENSE_SIZE:
        raise Invalid(NOT_HLL)


def registers(v: bytes) -> bytearray:
    """The 16384 register values of a (checked) HLL string, one per byte."""
    if v[4] == DENSE:
        out = bytearray(REGISTERS)
        body = v[HDR:]
        j = 0
        for i in range(0, len(body), 3):
            x = body[i] | (body[i + 1] << 8) | (body[i + 2] << 16)
            out[j] = x & 63
            out[j + 1] = (x >> 6) & 63
            out[j + 2] = (x >> 12) & 63
            out[j + 3] = x >> 18
            j += 4
        return out
    out = bytearray(REGISTERS)
    idx = 0
    p = HDR
    end = len(v)
    while p < end:
        b = v[p]
        if b & 0xC0 == 0:  # ZERO
            idx += (b & 0x3F) + 1
            p += 1
        elif b & 0xC0 == 0x40:  # XZERO
            if p + 1 >= end:
                raise Invalid(CORRUPT)
            idx += (((b & 0x3F) << 8) | v[p + 1]) + 1
            p += 2
        else:  # VAL
            val = ((b >> 2) & 0x1F) + 1
            run = (b & 3) + 1
            if idx + run > REGISTERS:
                raise Invalid(CORRUPT)
            out[idx : idx + run] = bytes([val]) * run
            idx += run
            p += 1
        if idx > REGISTERS:
            raise Invalid(CORRUPT)
    if idx != REGISTERS:
        raise Invalid(CORRUPT)
    return out


def dense(regs: bytearray | bytes, card: int | None = None) -> bytes:
    """A dense HLL string of these registers (cache stale unless C{card})."""
    b = empty_dense()
    r = regs
    k = HDR
    for j in range(0, REGISTERS, 4):
        x = r[j] | (r[j + 1] << 6) | (r[j + 2] << 12) | (r[j + 3] << 18)
        b[k] = x & 0xFF
        b[k + 1] = (x >> 8) & 0xFF
        b[k + 2] = x >> 16
        k += 3
    set_cache(b, card)
    return bytes(b)


def set_cache(b: bytearray, card: int | None) -> None:
    if card is None:
        b[15] |= 0x80
    else:
        b[8:16] = card.to_bytes(8, "little")


def cached(v: bytes) -> int | None:
    if v[15] & 0x80:
        return None
    return int.from_bytes(v[8:16], "little")


def set_dense_register(b: bytearray, index: int, value: int) -> bool:
    """Raise register C{index} of a dense bytearray to C{value}; True if it changed."""
    pos = index * 6
    byte = HDR + (pos >> 3)
    fb = pos & 7
    x = b[byte] | (b[byte + 1] << 8) if byte + 1 < DENSE_SIZE else b[byte]
    old = (x >> fb) & 63
    if value <= old:
        return False
    x = (x & ~(63 << fb)) | (value << fb)
    b[byte] = x & 0xFF
    if byte + 1 < DENSE_SIZE:
        b[byte + 1] = (x >> 8) & 0xFF
    return True


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        zp = z
        z += x * y
        y += y
        if zp == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        zp = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if zp == z:
            return z / 3


def count(regs: bytearray | bytes) -> int:
    """Redis's hllCount over register values."""
    histo = [0] * 64
    for v, n in _histogram(regs):
        histo[v] = n
    m = float(REGISTERS)
    z = m * _tau((m - histo[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += histo[j]
        z *= 0.5
    z += m * _sigma(histo[0] / m)
    e = ALPHA_INF * m * m / z
    return int(math.floor(e + 0.5)) if e != math.inf else 0


def _histogram(regs: bytearray | bytes) -> list[tuple[int, int]]:
    return [(v, regs.count(v)) for v in set(regs)]


# -- the sparse form, updated exactly as Redis's hllSparseSet does ----------------------

SPARSE_MAX_BYTES = 3000  # hll-sparse-max-bytes
VAL_MAX_VALUE = 32
VAL_MAX_LEN = 4
ZERO_MAX_LEN = 64
_ZERO, _VAL = 0, 1


def empty_sparse() -> bytes:
    """createHLLObject: one XZERO over the 16384 registers, cardinality 0 cached."""
    return bytes(bytearray(b"HYLL\x01\x00\x00\x00" + b"\x00" * 8 + b"\x7f\xff"))


class Sparse:
    """
    A sparse HLL being changed: its opcodes as a list (kind, value, run length, is
    XZERO) with the first register of each, so finding an opcode is a bisection.
    L{set} is hllSparseSet step by step; False from it means "promote to dense".
    """

    def __init__(self, v: bytes):
        self.header = bytearray(v[:HDR])
        self.ops: list[list[int]] = []
        self.starts: list[int] = []
        self.size = len(v)
        first = 0
        p = HDR
        end = len(v)
        while p < end:
            b = v[p]
            if b & 0xC0 == 0:
                op = [_ZERO, 0, (b & 0x3F) + 1, 0]
                p += 1
            elif b & 0xC0 == 0x40:
                if p + 1 >= end:
                    raise Invalid(CORRUPT)
                op = [_ZERO, 0, (((b & 0x3F) << 8) | v[p + 1]) + 1, 1]
                p += 2
            else:
                op = [_VAL, ((b >> 2) & 0x1F) + 1, (b & 3) + 1, 0]
                p += 1
            self.ops.append(op)
            self.starts.append(first)
            first += op[2]
        if first != REGISTERS:
            raise Invalid(CORRUPT)
        self.enc = [_enc(op) for op in self.ops]

    def set(self, index: int, count: int) -> int:
        """1: changed, 0: already as big, -1: must be promoted (nothing changed)."""
        if count > VAL_MAX_VALUE:
            return -1

        pos = bisect.bisect_right(self.starts, index) - 1
        ops = self.ops
        kind, val, run, xz = ops[pos]
        first = self.starts[pos]
        if kind == _VAL:
            if val >= count:
                return 0
            if run == 1:
                ops[pos] = op = [_VAL, count, 1, 0]
                self.enc[pos] = _enc(op)
                self._merge(pos)
                return 1
        if kind == _ZERO and not xz and run == 1:
            ops[pos] = op = [_VAL, count, 1, 0]
            self.enc[pos] = _enc(op)
            self._merge(pos)
            return 1
        last = first + run - 1
        seq: list[list[int]] = []
        if kind == _ZERO:
            if index != first:
                n = index - first
                seq.append([_ZERO, 0, n, 1 if n > ZERO_MAX_LEN else 0])
            seq.append([_VAL, count, 1, 0])
            if index != last:
                n = last - index
                seq.append([_ZERO, 0, n, 1 if n > ZERO_MAX_LEN else 0])
        else:
            if index != first:
                seq.append([_VAL, val, index - first, 0])
            seq.append([_VAL, count, 1, 0])
            if index != last:
                seq.append([_VAL, val, last - index, 0])
        seqlen = sum(2 if op[3] else 1 for op in seq)
        delta = seqlen - (2 if xz else 1)
        if delta > 0 and self.size + delta > SPARSE_MAX_BYTES:
            return -1
        starts = []
        s = first
        for op in seq:
            starts.append(s)
            s += op[2]
        ops[pos : pos + 1] = seq
        self.starts[pos : pos + 1] = starts
        self.enc[pos : pos + 1] = [_enc(op) for op in seq]
        self.size += delta
        self._merge(pos)
        return 1

    def _merge(self, pos: int) -> None:
        """Step 4: merge adjacent VALs of one value, up to 5 opcodes from the previous."""
        ops, starts, enc = self.ops, self.starts, self.enc
        p = pos - 1 if pos > 0 else 0
        scan = 5
        while p < len(ops) and scan:
            scan -= 1
            a = ops[p]
            if a[0] == _ZERO:
                p += 1
                continue
            if p + 1 < len(ops):
                b = ops[p + 1]
                if b[0] == _VAL and a[1] == b[1] and a[2] + b[2] <= VAL_MAX_LEN:
                    ops[p + 1] = op = [_VAL, a[1], a[2] + b[2], 0]
                    enc[p + 1] = _enc(op)
                    starts[p + 1] = starts[p]
                    del ops[p]
                    del starts[p]
                    del enc[p]
                    self.size -= 1
                    continue
            p += 1

    def registers(self) -> bytearray:
        out = bytearray(REGISTERS)
        for (kind, val, run, _), s in zip(self.ops, self.starts, strict=True):
            if kind == _VAL:
                out[s : s + run] = bytes([val]) * run
        return out

    def to_bytes(self) -> bytes:
        return bytes(self.header) + b"".join(self.enc)


def _enc(op: list[int]) -> bytes:
    kind, val, run, xz = op
    if kind == _VAL:
        return bytes([0x80 | ((val - 1) << 2) | (run - 1)])
    if xz:
        n = run - 1
        return bytes([0x40 | (n >> 8), n & 0xFF])
    return bytes([run - 1])


# the last sparse HLL written by PFADD/PFMERGE, parsed: the next change to the same
# value (the same bytes object, still stored) starts from it instead of re-reading it
_last: list[Any] = [None, None]


def sparse_of(v: bytes) -> Sparse:
    if _last[0] is v:
        sp: Sparse = _last[1]
        _last[0] = _last[1] = None  # taken: it will be changed
        return sp
    return Sparse(v)


def remember(v: bytes, sp: Sparse) -> None:
    _last[0], _last[1] = v, sp


def sparse_to_dense(sp: Sparse) -> bytearray:
    """hllSparseToDense: the header is kept (its cache too), the encoding becomes dense."""
    b = bytearray(dense(sp.registers()))
    b[:HDR] = sp.header
    b[4] = DENSE
    return b
