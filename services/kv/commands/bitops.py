"""
Bitmap and string algorithms: BITOP BITPOS BITFIELD BITFIELD_RO LCS (Redis 7.0).

Whole-string work is done on Python big integers or C-level bytes methods (BITOP
on two 100 MB strings is a handful of linear C passes, as in Redis). LCS uses the
bit-parallel algorithm (Allison-Dix/Hyyrö) for its table, rows kept as big
integers, and backtracks exactly as Redis does, so the same match is reported.
"""

from __future__ import annotations

from typing import Any

from portsuite_services.kv import bigstr, bigwork
from portsuite_services.kv.commands import (
    NO_REPLY,
    NOT_INT,
    SYNTAX,
    CommandError,
    command,
    to_int,
    wrongtype,
)
from portsuite_services.kv.resp import Map

B = "bitmap"
BIT_OFFSET = "ERR bit offset is not an integer or out of range"
LCS_MAX_LEN = 1 << 20  # longer strings: refused (Redis's own bound is its table's size)


def _string(c: Any, key: bytes) -> bytes | None:
    v = c.store.get(key)
    if v is not None and type(v) is not bytes:
        raise wrongtype()
    return v


def _max_bulk(c: Any) -> int:
    return c.server.settings.proto_max_bulk_len


# -- BITOP ---------------------------------------------------------------------------


@command(
    "bitop", -4, "write denyoom", B, "Perform bitwise operations between strings", keys=(2, -1, 1)
)
def bitop(c: Any, argv: list[bytes]) -> Any:
    op = argv[1].lower()
    if op not in (b"and", b"or", b"xor", b"not"):
        raise CommandError(SYNTAX)
    srcs = argv[3:]
    if op == b"not" and len(srcs) != 1:
        raise CommandError("ERR BITOP NOT must be called with a single source key.")
    dest = argv[2]
    if len(srcs) > bigwork.ARGS:  # many keys: looked up in slices, then the operation
        result = bigwork.compute(c, argv, 4 * len(srcs), lambda: _bitop_many(c, op, srcs))
        if result is NO_REPLY:
            return result
        c.touched = [dest]
        if not result:
            c.store.drop(dest)
            c.store.dirty += 1
            return 0
        c.store.set_raw(dest, result)
        return len(result)
    values = [_string(c, k) or b"" for k in srcs]
    maxlen = max(len(v) for v in values)
    c.touched = [dest]
    if maxlen == 0:
        c.store.drop(dest)
        c.store.dirty += 1
        return 0
    result = bigstr.compute(c, argv, maxlen * len(values), lambda: bigstr.bitop(op, values, maxlen))
    if result is NO_REPLY:
        return result
    c.store.set_raw(dest, result)
    c.touched = [dest]
    return maxlen


def _bitop_many(c: Any, op: bytes, srcs: list[bytes]) -> bigwork.Steps[bytes]:
    """BITOP of many keys: their values looked up a piece a step, then combined."""
    values = yield from bigwork.mapped(lambda k: _string(c, k) or b"", srcs)
    maxlen = 0
    for lo in range(0, len(values), bigwork.PIECE):
        maxlen = max(maxlen, *map(len, values[lo : lo + bigwork.PIECE]))
        yield
    if maxlen == 0:
        return b""
    return (yield from bigstr.bitop(op, values, maxlen))


# -- BITPOS --------------------------------------------------------------------------


def _first_bit(v: bytes, bit: int, start_bit: int, end_bit: int) -> bigwork.Steps[int]:
    """The first bit equal to C{bit} in [start_bit, end_bit] of C{v}, or -1."""
    sb, eb = start_bit >> 3, end_bit >> 3
    head = start_bit & 7
    tail = 7 - (end_bit & 7)
    # bits outside the range count as "not found": set them to the other value
    first = v[sb]
    if head:
        mask = (0xFF << (8 - head)) & 0xFF
        first = first | mask if bit == 0 else first & ~mask & 0xFF
    if sb == eb and tail:
        mask = (1 << tail) - 1
        first = first | mask if bit == 0 else first & ~mask & 0xFF
    skip = 0 if bit == 1 else 0xFF
    if first != skip:
        return _in_byte(sb, first, bit)
    if sb == eb:
        return -1
    # the middle bytes, a slice at a time (no copy of a big string)
    pos = sb + 1 + (yield from bigstr.skip_run(memoryview(v)[sb + 1 : eb], skip))
    if pos < eb:
        return _in_byte(pos, v[pos], bit)
    last = v[eb]
    if tail:
        mask = (1 << tail) - 1
        last = last | mask if bit == 0 else last & ~mask & 0xFF
    if last != skip:
        return _in_byte(eb, last, bit)
    return -1


def _in_byte(at: int, byte: int, bit: int) -> int:
    b = byte if bit == 1 else byte ^ 0xFF
    return at * 8 + (8 - b.bit_length())


@command("bitpos", -3, "readonly", B, "Find first bit set or clear in a string")
def bitpos(c: Any, argv: list[bytes]) -> Any:
    bit = to_int(argv[2])
    if bit not in (0, 1):
        raise CommandError("ERR The bit argument must be 1 or 0.")
    n = len(argv)
    if n > 6:
        raise CommandError(SYNTAX)
    v = _string(c, argv[1])
    if v is None:
        return -1 if bit else 0
    bits_mode = False
    end_given = False
    start = 0
    end = -1
    if n >= 4:
        start = to_int(argv[3])
        if n >= 5:
            end = to_int(argv[4])
            end_given = True
        if n == 6:
            unit = argv[5].lower()
            if unit == b"bit":
                bits_mode = True
            elif unit != b"byte":
                raise CommandError(SYNTAX)
    total = len(v) * 8 if bits_mode else len(v)
    if start < 0:
        start += total
    if end < 0:
        end += total
    start = max(start, 0)
    end = max(end, 0)
    if end >= total:
        end = total - 1
    if start > end:
        return -1
    sbit, ebit = (start, end) if bits_mode else (start * 8, end * 8 + 7)
    pos = bigstr.compute(c, argv, (ebit - sbit) >> 3, lambda: _first_bit(v, bit, sbit, ebit))
    if pos is NO_REPLY:
        return pos
    if pos == -1 and bit == 0 and not end_given:
        return ebit + 1
    return pos


# -- BITFIELD ------------------------------------------------------------------------

_WRAP, _SAT, _FAIL = 0, 1, 2


def _bf_type(b: bytes) -> tuple[bool, int]:
    bad = CommandError(
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported "
        "but i64 is."
    )
    if len(b) < 2 or b[:1] not in (b"i", b"u", b"I", b"U"):
        raise bad
    signed = b[:1] in (b"i", b"I")
    digits = b[1:]
    # Redis: string2ll on the digits
    from portsuite_services.kv.resp import string2ll

    bits = string2ll(digits)
    if bits is None or bits < 1 or (signed and bits > 64) or (not signed and bits > 63):
        raise bad
    return signed, bits


def _bf_offset(c: Any, b: bytes, bits: int) -> int:
    hashed = b[:1] == b"#"
    raw = b[1:] if hashed else b
    from portsuite_services.kv.resp import string2ll

    off = string2ll(raw)
    if off is None:
        raise CommandError(BIT_OFFSET)
    if hashed:
        off *= bits
    if off < 0 or (off >> 3) >= _max_bulk(c):
        raise CommandError(BIT_OFFSET)
    return off


class _Patched:
    """A string, zero-extended to C{size}, with a few bytes changed (BITFIELD's writes)."""

    def __init__(self, base: bytes):
        self.base = base
        self.size = len(base)
        self.changed: dict[int, int] = {}

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, s: slice) -> bytes:
        start, stop = s.start, min(s.stop, self.size)
        got = bytearray(self.base[start:stop])
        got += bytes(max(0, stop - start - len(got)))
        for i in range(start, stop):
            if i in self.changed:
                got[i - start] = self.changed[i]
        return bytes(got)

    def __setitem__(self, s: slice, data: bytes) -> None:
        for i, b in enumerate(data, s.start):
            self.changed[i] = b

    def parts(self) -> list[Any]:
        """The new value, in pieces for L{bigstr.joined}."""
        return bigwork.run_through(self.parts_steps())

    def parts_steps(self) -> bigwork.Steps[list[Any]]:
        """L{parts}, a piece of the changed bytes a step (a million of them: BITFIELD's)."""
        base = memoryview(self.base)
        out: list[Any] = []
        at = 0
        where = yield from bigwork.sort(list(self.changed))
        where.append(self.size)
        for lo in range(0, len(where), bigwork.PIECE):
            for i in where[lo : lo + bigwork.PIECE]:
                out.append(base[at:i])
                out.append(max(0, i - max(at, len(base))))  # (zeros past the old end)
                if i < self.size:
                    out.append(bytes((self.changed[i],)))
                at = i + 1
            yield
        return [p for p in out if p]


def _get_bits(buf: bytes | _Patched, off: int, bits: int, signed: bool) -> int:
    first = off >> 3
    last = (off + bits - 1) >> 3
    chunk = bytes(buf[first : last + 1])
    need = last - first + 1
    if len(chunk) < need:
        chunk += b"\0" * (need - len(chunk))
    x = int.from_bytes(chunk, "big")
    shift = (need * 8) - (off & 7) - bits
    v = (x >> shift) & ((1 << bits) - 1)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def _set_bits(buf: _Patched, off: int, bits: int, value: int) -> None:
    first = off >> 3
    last = (off + bits - 1) >> 3
    need = last - first + 1
    x = int.from_bytes(buf[first : last + 1], "big")
    shift = (need * 8) - (off & 7) - bits
    mask = ((1 << bits) - 1) << shift
    x = (x & ~mask) | ((value & ((1 << bits) - 1)) << shift)
    buf[first : last + 1] = x.to_bytes(need, "big")


def _overflow(value: int, signed: bool, bits: int, mode: int) -> int | None:
    """The value after Redis's overflow rule, or None (FAIL)."""
    if signed:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    if lo <= value <= hi:
        return value
    if mode == _FAIL:
        return None
    if mode == _SAT:
        return hi if value > hi else lo
    v = value & ((1 << bits) - 1)
    if signed and v >> (bits - 1):
        v -= 1 << bits
    return v


def _bitfield(c: Any, argv: list[bytes], readonly: bool) -> Any:
    if len(argv) <= bigwork.ARGS:
        return bigwork.run_through(_bitfield_steps(c, argv, readonly, False))
    # a million operations: parsed, run and the new value made in slices
    made = bigwork.compute(c, argv, 4 * len(argv), lambda: _bitfield_steps(c, argv, readonly, True))
    if made is NO_REPLY:
        return made
    out, new = made
    if new is not None:
        c.store.set_raw(argv[1], new, keepttl=True)
    return out


OPS = bigwork.PIECE // 4  # BITFIELD's operations parsed or run a step


def _bitfield_steps(c: Any, argv: list[bytes], readonly: bool, aside: bool) -> bigwork.Steps[Any]:
    """
    BITFIELD's reply, with the value changed when written (at once), or when C{aside}
    (reply, new value or None) with no change made (the command stores it after).
    """
    ops: list[tuple[str, bool, int, int, int, int]] = []
    mode = _WRAP
    j = 2
    n = len(argv)
    writes = False
    parsed = 0
    while j < n:
        parsed += 1
        if not parsed % OPS:
            yield
        sub = argv[j].lower()
        left = n - j - 1
        if sub == b"get" and left >= 2:
            signed, bits = _bf_type(argv[j + 1])
            off = _bf_offset(c, argv[j + 2], bits)
            ops.append(("get", signed, bits, off, 0, mode))
            j += 3
        elif sub in (b"set", b"incrby") and left >= 3:
            signed, bits = _bf_type(argv[j + 1])
            off = _bf_offset(c, argv[j + 2], bits)
            arg = to_int(argv[j + 3], NOT_INT)
            ops.append((sub.decode(), signed, bits, off, arg, mode))
            writes = True
            j += 4
        elif sub == b"overflow" and left >= 1:
            o = argv[j + 1].lower()
            if o == b"wrap":
                mode = _WRAP
            elif o == b"sat":
                mode = _SAT
            elif o == b"fail":
                mode = _FAIL
            else:
                raise CommandError("ERR Invalid OVERFLOW type specified")
            j += 2
        else:
            raise CommandError(SYNTAX)
    if readonly and writes:
        raise CommandError("ERR BITFIELD_RO only supports the GET subcommand")
    v = _string(c, argv[1])
    if not writes:
        buf = v or b""
        out: list[int | None] = []
        for lo in range(0, len(ops), OPS):
            out += [_get_bits(buf, off, bits, sg) for _, sg, bits, off, _, _ in ops[lo : lo + OPS]]
            yield
        return (out, None) if aside else out
    wbuf = _Patched(v or b"")  # (no copy of a big string: the bytes changed, aside)
    out = []  # (its type: the GETs')
    changed = False
    for k, (kind, signed, bits, off, arg, omode) in enumerate(ops):
        if not k % OPS:
            yield
        if kind == "get":
            out.append(_get_bits(wbuf, off, bits, signed))
            continue
        need = (off + bits - 1) // 8 + 1
        if len(wbuf) < need:  # grown even if the operation then fails, as in Redis
            wbuf.size = need
            changed = True
        old = _get_bits(wbuf, off, bits, signed)
        if kind == "set":
            val = arg if signed else arg & ((1 << 64) - 1)
            new = _overflow(val, signed, bits, omode)
            if new is None:
                out.append(None)
                continue
            _set_bits(wbuf, off, bits, new)
            out.append(old)
        else:
            new = _overflow(old + arg, signed, bits, omode)
            if new is None:
                out.append(None)
                continue
            _set_bits(wbuf, off, bits, new)
            out.append(new)
        changed = True
    if aside:
        made = None
        if changed:
            made = yield from bigstr.build((yield from wbuf.parts_steps()))
        return out, made
    if changed:
        new = bigstr.joined(c, argv, wbuf.parts())  # (a big one in slices)
        if new is NO_REPLY:
            return new
        c.store.set_raw(argv[1], new, keepttl=True)
    return out


@command(
    "bitfield", -2, "write denyoom", B, "Perform arbitrary bitfield integer operations on strings"
)
def bitfield(c: Any, argv: list[bytes]) -> Any:
    return _bitfield(c, argv, False)


@command(
    "bitfield_ro",
    -2,
    "readonly fast",
    B,
    "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
)
def bitfield_ro(c: Any, argv: list[bytes]) -> Any:
    return _bitfield(c, argv, True)


# -- LCS -----------------------------------------------------------------------------


ROW_BITS = 1 << 21  # bits of LCS table rows computed a step (a row of 1 Mi bits: ~1.4 ms)
WALK_STEP = 256  # steps of LCS's backtrack a step (~10 us each)


def lcs_rows(a: bytes, b: bytes) -> bigwork.Steps[list[int]]:
    """
    Row i (0..len(a)) of the LCS table as a bit vector S_i over b: the LCS of a[:i]
    and b[:j] is j minus the set bits of S_i among its j low bits.
    """
    m = len(b)
    full = (1 << m) - 1
    # the positions of each byte of a in b, as a bit vector: b reversed, that byte as
    # "1" and the others "0", read in base 2 (linear; setting a bit of an m-bit
    # integer per position of b was quadratic: 19 s for 1 MiB)
    rev = b[::-1]
    masks: dict[int, int] = {}
    for ch in set(a):
        table = bytearray(b"0" * 256)
        table[ch] = 0x31
        masks[ch] = int(rev.translate(table), 2) if m else 0
        yield
    s = full
    rows = [s]
    per = max(1, ROW_BITS // max(m, 1))
    for i, ch in enumerate(a, 1):
        u = s & masks[ch]
        s = ((s + u) | (s - u)) & full
        rows.append(s)
        if not i % per:
            yield
    return rows


class _LowBits:
    """
    C{low(x, y)}: the set bits of C{rows[x]} below bit C{y}, for LCS's backtrack, where
    x and y only go down: each row is counted once, then kept up to date a bit at a
    time (counting the bits of a 1 MiB row at every step made the walk quadratic:
    LCS of 200 KB with 10 bytes took a second).
    """

    def __init__(self, rows: list[int], nbits: int):
        self.rows = rows
        self.nbytes = nbits // 8 + 1
        self.seen: dict[int, list[Any]] = {}  # row -> [y, its count below y, its bytes]

    def __call__(self, x: int, y: int) -> int:
        e = self.seen.get(x)
        if e is None or e[0] < y:
            row = self.rows[x]
            e = [y, (row & ((1 << y) - 1)).bit_count(), row.to_bytes(self.nbytes, "little")]
            self.seen[x] = e
            if len(self.seen) > 4:  # (the walk is past the highest row)
                del self.seen[max(self.seen)]
            return e[1]
        top, n, bits = e
        for k in range(y, top):
            n -= (bits[k >> 3] >> (k & 7)) & 1
        e[0] = y
        e[1] = n
        return n


@command("lcs", -3, "readonly", "string", "Find longest common substring", keys=(1, 2, 1))
def lcs(c: Any, argv: list[bytes]) -> Any:
    want_len = want_idx = withmatchlen = False
    minmatchlen = 0
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"idx":
            want_idx = True
        elif opt == b"len":
            want_len = True
        elif opt == b"withmatchlen":
            withmatchlen = True
        elif opt == b"minmatchlen" and j + 1 < len(argv):
            minmatchlen = to_int(argv[j + 1])
            if minmatchlen < 0:
                minmatchlen = 0
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    va, vb = c.store.get(argv[1]), c.store.get(argv[2])
    if (va is not None and type(va) is not bytes) or (vb is not None and type(vb) is not bytes):
        raise CommandError("ERR The specified keys must contain string values")
    if want_idx and want_len:
        raise CommandError("ERR If you want both the length and indexes, please just use IDX.")
    a, b = va or b"", vb or b""
    alen, blen = len(a), len(b)
    if (alen + 1) * (blen + 1) * 4 > _max_bulk(c):
        raise CommandError(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"
        )
    if max(alen, blen) > LCS_MAX_LEN:
        raise CommandError(
            f"ERR LCS of a string longer than {LCS_MAX_LEN} bytes is refused by kv (it would "
            "stall the server)"
        )
    cost = alen * blen // 128  # (bigwork's elements: about 4 Mi table cells or more are sliced)
    return bigwork.compute(
        c, argv, cost, lambda: _lcs(a, b, want_len, want_idx, withmatchlen, minmatchlen)
    )


def _lcs(
    a: bytes, b: bytes, want_len: bool, want_idx: bool, withmatchlen: bool, minmatchlen: int
) -> bigwork.Steps[Any]:
    """LCS's reply, in steps (L{bigwork}): the table's rows, then Redis's backtrack."""
    alen, blen = len(a), len(b)
    # the table as bit vectors over the longer string, one per byte of the shorter
    if alen <= blen:
        low = _LowBits((yield from lcs_rows(a, b)), blen)

        def table(i: int, jj: int) -> int:
            return jj - low(i, jj)

    else:
        low = _LowBits((yield from lcs_rows(b, a)), alen)

        def table(i: int, jj: int) -> int:
            return i - low(jj, i)

    total = table(alen, blen)
    if want_len:
        return total
    result = bytearray(total)
    idx = total
    i, jj = alen, blen
    arange_start = alen
    arange_end = brange_start = brange_end = 0
    matches: list[Any] = []
    walked = 0
    while i > 0 and jj > 0:
        walked += 1
        if not walked % WALK_STEP:
            yield
        emit = False
        if a[i - 1] == b[jj - 1]:
            result[idx - 1] = a[i - 1]
            if arange_start == alen:
                arange_start = arange_end = i - 1
                brange_start = brange_end = jj - 1
            elif arange_start == i and brange_start == jj:
                arange_start -= 1
                brange_start -= 1
            else:
                emit = True
            if arange_start == 0 or brange_start == 0:
                emit = True
            idx -= 1
            i -= 1
            jj -= 1
        else:
            if table(i - 1, jj) > table(i, jj - 1):
                i -= 1
            else:
                jj -= 1
            if arange_start != alen:
                emit = True
        if emit:
            match_len = arange_end - arange_start + 1
            if want_idx and (minmatchlen == 0 or match_len >= minmatchlen):
                m: list[Any] = [[arange_start, arange_end], [brange_start, brange_end]]
                if withmatchlen:
                    m.append(match_len)
                matches.append(m)
            arange_start = alen
    if want_idx:
        return Map([("matches", matches), ("len", total)])
    return bytes(result)
