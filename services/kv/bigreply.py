"""
Whole-collection replies (SMEMBERS, HGETALL, LRANGE 0 -1, ZRANGE 0 -1 WITHSCORES,
KEYS, SUNION…) in slices, so a reply of a million elements never holds the event
loop every service of the suite shares.

The handler takes a snapshot of the elements (a C-level copy: C{list(a_set)} of a
million members is tens of milliseconds, where encoding them is most of a second)
and returns L{start}'s C{NO_REPLY}. The reply's header and first slice go out with
the client's batch; each later slice is encoded on a later turn of the reactor
(C{callLater(0)}: other connections are served in between), and only while the
client's transport has room: a client that reads slowly holds its snapshot, never
more than one slice of encoded output.

Atomicity is Redis's: the reply is the collection at the time of the command (the
snapshot), and the client's next command runs only once its reply is complete.
Meanwhile the client is "busy" the way a blocked client is (L{Sending} is its
C{blocked}): what it pipelines waits in C{pending}, and reading stops past
C{MAX_WAITING} commands. Inside MULTI/EXEC, while the AOF is replayed, under CLIENT
REPLY OFF/SKIP or for a small reply, the handler answers the whole reply as before.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from time import perf_counter
from typing import Any

from portsuite_services.kv.blocking import Blocked, unblock
from portsuite_services.kv.resp import Double, Map, SetReply

SLICE_ITEMS = 4096  # elements encoded per turn of the reactor at most (a few ms)
PIECES = 8  # a slice is encoded in this many pieces, the turn's share looked at after each
PROBE = 64  # elements encoded first, to see how big they are
SLICE_BYTES = 256 * 1024  # fewer elements a slice when they are big
BIG = 2 * SLICE_ITEMS  # a smaller reply is answered whole, as before
ENTRIES = 1024  # stream entries a slice (each an array of an ID and an array of fields)


class Sending(Blocked):
    """A reply going out in slices: the client's C{blocked} until the last slice."""

    __slots__ = ("client", "count", "encode", "pos", "per", "call", "done", "garbage")

    def __init__(self, c: Any, count: int, encode: Callable[[int, int], bytes]):
        super().__init__([], {}, c.store, None)
        self.client = c
        self.count = count
        self.encode = encode
        self.pos = 0
        self.per = SLICE_ITEMS
        self.call: Any = None
        self.done = False
        self.garbage: Any = None  # a big list made for this reply: freed by lazyfree after it

    def step(self) -> None:
        """Encode and send one slice; then wait for the next turn, or for the client."""
        self.call = None
        c = self.client
        if c.closed or c.blocked is not self:
            self.release()
            return
        if c.paused or c.queue:
            return  # the transport resumes us (L{resume}) once it has sent what it holds
        data = self.next_slice()
        if self.pos >= self.count:
            self.release()
            unblock(c)
            c.resume_after_block([data])
            return
        c.send(data)
        if not c.closed:
            self.call = c.server.reactor.callLater(0, self.step)

    def next_slice(self, last: int = 0) -> bytes:
        """
        The next slice of the reply, encoded: C{per} elements at most, in pieces, and
        no more pieces once the turn's share of kv's work in slices is spent (L{Turn}:
        ZMPOP's pairs took 11 ms a slice of 4,096 while lazyfree freed its set in the
        same turns). C{last}: where the slice ends at most instead (the first one).
        """
        end = self.client.server.turn.deadline()
        last = min(self.count, last or self.pos + self.per)
        piece = max(1, self.per // PIECES)
        parts = []
        pos = self.pos
        while pos < last:
            hi = min(last, pos + piece)
            parts.append(self.encode(pos, hi))
            pos = hi
            if perf_counter() > end:
                break
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.adapt(pos - self.pos, len(data))
        self.pos = pos
        return data

    def adapt(self, items: int, size: int) -> None:
        """Aim at C{SLICE_BYTES} a slice: big members (1 MiB each) go a few at a time."""
        if size > SLICE_BYTES:
            self.per = max(1, items * SLICE_BYTES // size)

    def resume(self) -> None:
        """The client's transport drained: go on (unless a step is already due)."""
        if self.call is None and not self.done:
            self.step()

    def release(self) -> None:
        """Done (or dropped): the snapshot and the big list made for the reply go."""
        self.done = True
        self.encode = _nothing  # the snapshot is dropped with the closure
        if self.garbage is not None:  # (a million new tuples would be freed at once)
            self.client.server.lazyfree.free(self.garbage)
            self.garbage = None
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None


def _nothing(lo: int, hi: int) -> bytes:
    return b""


def may_slice(c: Any) -> bool:
    """
    Is C{c} running a batch of a live connection, in no state that wants its reply
    whole (the AOF replayed, CLIENT REPLY OFF/SKIP, already blocked)? Inside EXEC,
    only when the transaction goes on across turns (L{multiwork}): it encodes the
    slices into EXEC's reply.
    """
    return (
        getattr(c, "_out", None) is not None
        and c.blocked is None
        and (not (c.in_exec or c.deny_blocking) or c.transaction is not None)
        and c.reply_mode is None
        and not c.closed
    )


def possible(c: Any, count: int) -> bool:
    """Is a reply of C{count} elements to go out in slices?"""
    # (subscribed: a RESP3 push must not land inside the reply)
    return count >= BIG and may_slice(c) and not c.subscribed


def start(
    c: Any,
    header: bytes,
    count: int,
    encode: Callable[[int, int], bytes],
    garbage: Any = None,
    per: int = SLICE_ITEMS,
) -> Any:
    """
    Answer C{header} then C{encode(lo, hi)} for every slice of C{range(count)}: the
    header and the first slice with the batch's replies, the rest on later turns.
    C{garbage}: a big list C{encode} reads that nothing else holds, freed in slices after.
    C{per}: elements a slice at most (fewer for elements that are arrays themselves).
    """
    from portsuite_services.kv.commands import NO_REPLY

    sending = Sending(c, count, encode)
    sending.per = per
    sending.garbage = garbage
    probe = min(count, PROBE)  # (how big are the elements?)
    first = encode(0, probe)
    sending.adapt(probe, len(first))
    sending.pos = probe
    if probe < count:  # (a slice, or less once the turn's share is spent)
        first += sending.next_slice(max(probe, sending.per))
    tx = getattr(c, "transaction", None)  # (inside EXEC: into its reply, multiwork.py)
    (c._out if tx is None else tx.out).append(header + first)
    c.blocked = sending
    sending.call = c.server.reactor.callLater(0, sending.step)
    return NO_REPLY


def any_list(c: Any, r: list[Any]) -> Any:
    """
    Any plain list reply of C{BIG} elements or more that its command did not slice
    (SMISMEMBER, HMGET, MGET, ZMSCORE, GEOPOS… of a million arguments), or a short
    list ending with one ([cursor, elements] of a SCAN with a huge COUNT, [key,
    elements]): encoded a slice per turn, each element as the client's protocol
    encodes it. C{r} is the command's own list (freed in slices after). Else C{r}.
    """
    if len(r) >= BIG:
        items, header = r, b"*%d\r\n" % len(r)
    elif 1 < len(r) <= 4 and type(r[-1]) is list and len(r[-1]) >= BIG:
        head: list[bytes] = [b"*%d\r\n" % len(r)]
        for x in r[:-1]:
            c.enc(x, head)
        items = r[-1]
        head.append(b"*%d\r\n" % len(items))
        header = b"".join(head)
    else:
        return r
    if not possible(c, len(items)):
        return r
    enc = c.enc

    def encode(lo: int, hi: int) -> bytes:
        out: list[bytes] = []
        for x in items[lo:hi]:
            enc(x, out)
        return b"".join(out)

    return start(c, header, len(items), encode, items)


def _bulks(items: Sequence[bytes]) -> Callable[[int, int], bytes]:
    return lambda lo, hi: b"".join([b"$%d\r\n%s\r\n" % (len(x), x) for x in items[lo:hi]])


def array(c: Any, items: list[bytes], own: bool = False) -> Any:
    """
    An array of bulk strings (LRANGE, HKEYS, HVALS, KEYS…). C{own}: nothing else
    holds C{items} (freed in slices after: a million references dropped at once
    held the loop for tens of milliseconds).
    """
    if not possible(c, len(items)):
        return items
    return start(c, b"*%d\r\n" % len(items), len(items), _bulks(items), items if own else None)


def keyed_array(c: Any, key: bytes, items: list[bytes]) -> Any:
    """C{[key, items]} (LMPOP, BLMPOP), C{items} (nothing else holds them) in slices when big."""
    if not possible(c, len(items)):
        return [key, items]
    header = b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(key), key, len(items))
    return start(c, header, len(items), _bulks(items), items)


def keyed_scored(c: Any, key: bytes, pairs: list[tuple[float, bytes]]) -> Any:
    """
    C{[key, [[member, score]...]]} of C{(score, member)} pairs (ZMPOP, BZMPOP), encoded
    a slice at a time when many (C{pairs}: nothing else holds it), each pair written
    as the client's protocol writes a member and a L{Double} (a list and a Double made
    for each and encoded by the general encoder took 11 ms a slice of 4,096).
    """
    if not possible(c, len(pairs)):
        return [key, [[m, Double(s)] for s, m in pairs]]
    header = b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(key), key, len(pairs))
    if c.resp == 2:

        def encode(lo: int, hi: int) -> bytes:
            return b"".join(
                [
                    b"*2\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(m), m, len(x := b"%.17g" % s), x)
                    for s, m in pairs[lo:hi]
                ]
            )
    else:

        def encode(lo: int, hi: int) -> bytes:
            return b"".join(
                [b"*2\r\n$%d\r\n%s\r\n,%.17g\r\n" % (len(m), m, s) for s, m in pairs[lo:hi]]
            )

    return start(c, header, len(pairs), encode, pairs)


def nullable_array(c: Any, items: list[bytes | None], own: bool = False) -> Any:
    """An array of bulk strings and nils (SORT … GET); C{own}: as for L{array}."""
    if not possible(c, len(items)):
        return items
    nil = b"$-1\r\n" if c.resp == 2 else b"_\r\n"
    return start(
        c,
        b"*%d\r\n" % len(items),
        len(items),
        lambda lo, hi: b"".join(
            [nil if x is None else b"$%d\r\n%s\r\n" % (len(x), x) for x in items[lo:hi]]
        ),
        items if own else None,
    )


def _entries(
    ids: list[Any], fields: list[Any], nil: bytes = b"*-1\r\n"
) -> Callable[[int, int], bytes]:
    """
    Stream entries, each its ID and its fields and values; a None for fields is a
    deleted entry (a null array: C{nil}), a None for an ID says its fields are bytes
    already encoded (the key heading the next stream of an XREAD reply).
    """

    def encode(lo: int, hi: int) -> bytes:
        out = []
        for i, fv in zip(ids[lo:hi], fields[lo:hi], strict=True):
            if i is None:
                out.append(fv)
                continue
            raw = b"%d-%d" % i
            if fv is None:
                out.append(b"*2\r\n$%d\r\n%s\r\n%s" % (len(raw), raw, nil))
                continue
            out.append(b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(raw), raw, len(fv)))
            out += [b"$%d\r\n%s\r\n" % (len(x), x) for x in fv]
        return b"".join(out)

    return encode


def _ids(ids: list[tuple[int, int]]) -> Callable[[int, int], bytes]:
    """Stream IDs as bulk strings."""

    def encode(lo: int, hi: int) -> bytes:
        raws = [b"%d-%d" % i for i in ids[lo:hi]]
        return b"".join([b"$%d\r\n%s\r\n" % (len(r), r) for r in raws])

    return encode


def stream_entries(c: Any, ids: list[tuple[int, int]], fields: list[list[bytes]] | None) -> Any:
    """
    XRANGE's entries (only when L{possible}): each its ID and its fields and values
    (the IDs alone when C{fields} is None: XCLAIM's JUSTID).
    """
    body = _ids(ids) if fields is None else _entries(ids, fields)
    return start(c, b"*%d\r\n" % len(ids), len(ids), body, per=ENTRIES)


def keyed_stream_entries(
    c: Any, parts: list[tuple[bytes, list[Any], list[Any]]], flat: Flat | None = None
) -> Any:
    """
    XREAD/XREADGROUP's reply (only when L{possible} for all the entries): for each
    C{(key, ids, fields)} the key and its entries (a map of them in RESP3); a None in
    C{fields} is an entry deleted since it was delivered (a null array). C{flat}: their
    layout made beforehand (L{flat_steps}), for many streams.
    """
    resp3 = c.resp == 3
    ids, fields = flat if flat is not None else _flat(resp3, parts, ([], []))
    header = b"%s%d\r\n" % (b"%" if resp3 else b"*", len(parts))
    nil = b"_\r\n" if resp3 else b"*-1\r\n"
    return start(c, header, len(ids), _entries(ids, fields, nil), ids, ENTRIES)


Flat = tuple[list[Any], list[Any]]  # an XREAD reply's entries in a row, each stream's key first


def flat_steps(
    resp3: bool, parts: list[tuple[bytes, list[Any], list[Any]]]
) -> Generator[None, None, Flat]:
    """
    What L{keyed_stream_entries} lays out, a piece of the streams a step (a bigwork
    generator: XREAD of 200,000 streams with entries took 1.1 s in one go).
    """
    out: Flat = ([], [])
    for lo in range(0, len(parts), STREAMS_PIECE):
        _flat(resp3, parts[lo : lo + STREAMS_PIECE], out)
        yield
    return out


STREAMS_PIECE = 4096  # streams L{flat_steps} lays out a step


def _flat(resp3: bool, parts: list[tuple[bytes, list[Any], list[Any]]], out: Flat) -> Flat:
    ids, fields = out
    for key, kids, kfields in parts:
        ids.append(None)
        fields.append(
            (b"" if resp3 else b"*2\r\n") + b"$%d\r\n%s\r\n*%d\r\n" % (len(key), key, len(kids))
        )
        ids += kids
        fields += kfields
    return ids, fields


def claimed(
    c: Any,
    nxt: bytes,
    ids: list[tuple[int, int]],
    fields: list[list[bytes]] | None,
    deleted: list[bytes],
) -> Any:
    """
    XAUTOCLAIM's C{[next, claimed, deleted]} (only when L{possible}): the claimed
    entries (their IDs alone when C{fields} is None: JUSTID) a slice a turn, the
    deleted IDs after them.
    """
    n = len(ids)
    header = b"*3\r\n$%d\r\n%s\r\n*%d\r\n" % (len(nxt), nxt, n)
    body = _ids(ids) if fields is None else _entries(ids, fields)

    def encode(lo: int, hi: int) -> bytes:
        data = body(lo, min(hi, n))
        if hi > n:  # (the last element: the deleted IDs)
            data += b"*%d\r\n" % len(deleted) + _bulks(deleted)(0, len(deleted))
        return data

    return start(c, header, n + 1, encode, ids, ENTRIES)


def set_members(c: Any, items: list[bytes], own: bool = False) -> Any:
    """A set reply (SMEMBERS, SUNION…): C{~} in RESP3, an array in RESP2; C{own}: as for L{array}."""
    if not possible(c, len(items)):
        return SetReply(items)
    header = b"%s%d\r\n" % (b"~" if c.resp == 3 else b"*", len(items))
    return start(c, header, len(items), _bulks(items), items if own else None)


def hash_map(c: Any, fields: list[bytes], values: list[bytes]) -> Any:
    """A map of fields to values (HGETALL): C{%} in RESP3, a flat array in RESP2."""
    n = len(fields)
    if not possible(c, n):
        return Map(zip(fields, values, strict=True))
    header = b"%%%d\r\n" % n if c.resp == 3 else b"*%d\r\n" % (2 * n)

    def encode(lo: int, hi: int) -> bytes:
        return b"".join(
            [
                b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(f), f, len(v), v)
                for f, v in zip(fields[lo:hi], values[lo:hi], strict=True)
            ]
        )

    return start(c, header, n, encode)


def field_value_pairs(c: Any, fields: list[bytes], values: list[bytes]) -> Any:
    """
    Fields with their values (HRANDFIELD … WITHVALUES): a flat array in RESP2, an
    array of pairs in RESP3; only when L{possible}. C{fields} is freed in slices after
    (C{values} holds the hash's own values: dropping it frees none of them).
    """
    n = len(fields)
    if c.resp == 2:
        header, pair = b"*%d\r\n" % (2 * n), b""
    else:
        header, pair = b"*%d\r\n" % n, b"*2\r\n"

    def encode(lo: int, hi: int) -> bytes:
        return b"".join(
            [
                b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n" % (pair, len(f), f, len(v), v)
                for f, v in zip(fields[lo:hi], values[lo:hi], strict=True)
            ]
        )

    return start(c, header, n, encode, fields)


def members(c: Any, pairs: list[tuple[float, bytes]], own: bool = False) -> Any:
    """
    The members of C{(score, member)} pairs (ZRANGE without scores); only when
    L{possible}. C{own}: nothing else holds C{pairs} (freed in slices after).
    """
    return start(
        c,
        b"*%d\r\n" % len(pairs),
        len(pairs),
        lambda lo, hi: b"".join([b"$%d\r\n%s\r\n" % (len(m), m) for _, m in pairs[lo:hi]]),
        pairs if own else None,
    )


def scored(
    c: Any, pairs: list[tuple[float, bytes]], fmt: Callable[[float], bytes], own: bool = False
) -> Any:
    """
    C{(score, member)} pairs as a WITHSCORES reply (flat in RESP2, pairs in RESP3),
    or None when small (the caller answers as before). C{own}: as for L{members}.
    """
    n = len(pairs)
    if not possible(c, n):
        return None
    if c.resp == 2:
        header = b"*%d\r\n" % (2 * n)

        def encode(lo: int, hi: int) -> bytes:
            return b"".join(
                [
                    b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(m), m, len(x := fmt(s)), x)
                    for s, m in pairs[lo:hi]
                ]
            )
    else:
        header = b"*%d\r\n" % n

        def encode(lo: int, hi: int) -> bytes:
            return b"".join(
                [b"*2\r\n$%d\r\n%s\r\n,%s\r\n" % (len(m), m, fmt(s)) for s, m in pairs[lo:hi]]
            )

    return start(c, header, n, encode, pairs if own else None)
