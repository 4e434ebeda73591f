"""
Streams in DUMP/RESTORE payloads: Redis 7.0's C{RDB_TYPE_STREAM_LISTPACKS_2} (rdb.c,
t_stream.c), read and written; C{RDB_TYPE_STREAM_LISTPACKS} (Redis 5–6) and
C{_3} (7.2) are read too.

The entries are radix-tree nodes, each a listpack: a master entry (live count,
deleted count, the master fields, 0), then per entry its flags, its ID as the
difference from the node's master ID, its values (only those, when its fields are
the master's: C{SAMEFIELDS}) or its fields and values, and its own element count.
Then the stream's length, last, first and largest deleted IDs, entries added, and
the consumer groups (by name) with their pending entries and consumers.

kv writes the nodes it models (L{Stream.nodes}) with their live entries, so a stream
that only grew is written as Redis writes it; after XDEL, kv writes what is left
(Redis keeps deleted entries in their node, flagged, until the node is emptied).
"""

from __future__ import annotations

import struct
from typing import Any

from portsuite_services.kv.bigwork import PIECE, Steps
from portsuite_services.kv.rdb import BadPayload, _len, listpack_steps
from portsuite_services.kv.resp import string2ll
from portsuite_services.kv.stream import NACK, U64, ZERO, Consumer, Group, Stream

T_STREAM_LISTPACKS, T_STREAM_LISTPACKS_2, T_STREAM_LISTPACKS_3 = 15, 19, 21
DELETED, SAMEFIELDS = 1, 2
_ms = struct.Struct("<q")


# -- writing ------------------------------------------------------------------------


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
    body = b"".join([e + _backlen(len(e)) for e in encoded])
    return (
        (6 + len(body) + 1).to_bytes(4, "little")
        + min(len(encoded), 65535).to_bytes(2, "little")
        + body
        + b"\xff"
    )


def _id(i: tuple[int, int]) -> bytes:
    return i[0].to_bytes(8, "big") + i[1].to_bytes(8, "big")


def _raw_string(b: bytes) -> bytes:
    """rdbSaveRawString: short decimal integers int-encoded, as Redis writes them."""
    v = string2ll(b) if len(b) <= 11 else None
    if v is not None:
        if -128 <= v <= 127:
            return b"\xc0" + struct.pack("<b", v)
        if -32768 <= v <= 32767:
            return b"\xc1" + struct.pack("<h", v)
        if -(1 << 31) <= v < 1 << 31:
            return b"\xc2" + struct.pack("<i", v)
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
        out += (_len(16), _id(node.master), _len(len(packed)), packed)
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
            out += (_id(i), _ms.pack(nack.time), _len(nack.count))
        out.append(_len(len(g.consumers)))
        for cname in sorted(g.consumers):
            consumer = g.consumers[cname]
            mine = consumer.pel.ids()
            out += (_raw_string(cname), _ms.pack(consumer.seen), _len(len(mine)))
            out += [_id(i) for i in mine]
    return out


# -- reading ------------------------------------------------------------------------


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
