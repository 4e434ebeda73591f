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

import math
import struct

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
