"""
Stream commands (Redis 7.0): XADD XRANGE XREVRANGE XLEN XREAD XDEL XTRIM XSETID,
consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM) and XINFO.

Replies and error texts are Redis's (t_stream.c). XREADGROUP is written to the AOF
as Redis propagates it (XCLAIM ... FORCE JUSTID LASTID / XGROUP SETID), so a replay
rebuilds the pending entries lists.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import partial
from operator import itemgetter
from typing import Any

from portsuite_services.kv import bigreply, bigwork, blocking, notify  # (XREAD BLOCK: as BLPOP)
from portsuite_services.kv.commands import (
    NO_REPLY,
    NOT_INT,
    SYNTAX,
    CommandError,
    command,
    container,
    help_command,
    to_int,
    wrong_arity,
    wrongtype,
)
from portsuite_services.kv.resp import LLONG_MAX, NULL_ARRAY, OK, Map, Preencoded, string2ll
from portsuite_services.kv.sharded import new_like
from portsuite_services.kv.stream import (
    FEW,
    INVALID_READ,
    MAX_ID,
    NACK,
    PEL,
    U64,
    ZERO,
    Consumer,
    Group,
    Stream,
    fmt,
)

X = "stream"
INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
LONG_MAX = LLONG_MAX
TRIM_DEFAULT_LIMIT = 100 * 100  # 100 * stream-node-max-entries
# entries a step of a big read or write handles: each costs a few microseconds of
# Python (a NACK, two pending lists, maybe an AOF record), so fewer than bigwork.PIECE
PIECE = 512
# an ID as clients write them: C{ms} or C{ms-seq}, plain decimals under 2^64 (19 digits
# at most) that every rule of parse_id reads as themselves: matched in one call
_PLAIN_ID = re.compile(rb"(0|[1-9][0-9]{0,18})(?:-(0|[1-9][0-9]{0,18}))?").fullmatch


def _stream(c: Any, key: bytes) -> Stream | None:
    v = c.store.get(key)
    if v is None or type(v) is Stream:
        return v
    raise wrongtype()


def _strtoull(b: bytes) -> int | None:
    """Redis's string2ull: string2ll, else strtoull's rules (spaces, sign, wrap)."""
    v = string2ll(b)
    if v is not None:
        return v if v >= 0 else None
    s = b.lstrip(b" \t\n\v\f\r")
    neg = False
    if s[:1] in (b"+", b"-"):
        neg = s[:1] == b"-"
        s = s[1:]
    if not s or not s.isdigit():
        return None
    n = int(s)
    if n > U64:
        return None
    return (-n) & U64 if neg else n


def parse_id(
    b: bytes, missing_seq: int = 0, strict: bool = False, allow_star_seq: bool = False
) -> tuple[int, int] | tuple[int, None]:
    """streamGenericParseIDOrReply; (ms, None) is C{ms-*} (XADD only)."""
    plain = _PLAIN_ID(b)
    if plain is not None:
        ms, seq = plain.groups()
        return (int(ms), missing_seq if seq is None else int(seq))
    if len(b) > 127:
        raise CommandError(INVALID_ID)
    if strict and (b == b"-" or b == b"+"):
        raise CommandError(INVALID_ID)
    if b == b"-":
        return ZERO
    if b == b"+":
        return MAX_ID
    dash = b.find(b"-")
    if dash > 0:
        ms = _strtoull(b[:dash])
        rest = b[dash + 1 :]
        if allow_star_seq and rest == b"*":
            if ms is None:
                raise CommandError(INVALID_ID)
            return (ms, None)
        seq = _strtoull(rest)
        if ms is None or seq is None:
            raise CommandError(INVALID_ID)
        return (ms, seq)
    ms = _strtoull(b)
    if ms is None:
        raise CommandError(INVALID_ID)
    return (ms, missing_seq)


def _sid(b: bytes, missing_seq: int = 0) -> tuple[int, int]:
    return parse_id(b, missing_seq, strict=True)  # type: ignore[return-value]


def _interval(b: bytes, missing_seq: int, end: bool) -> tuple[tuple[int, int], bool]:
    """An XRANGE bound; C{(} makes it exclusive. Returns (id, exclusive)."""
    if b[:1] == b"(" and len(b) > 1:
        return parse_id(b[1:], missing_seq, strict=True), True  # type: ignore[return-value]
    return parse_id(b, missing_seq), False  # type: ignore[return-value]


def _incr(i: tuple[int, int]) -> tuple[int, int] | None:
    ms, seq = i
    if seq == U64:
        if ms == U64:
            return None
        return (ms + 1, 0)
    return (ms, seq + 1)


def _decr(i: tuple[int, int]) -> tuple[int, int] | None:
    ms, seq = i
    if seq == 0:
        if ms == 0:
            return None
        return (ms - 1, U64)
    return (ms, seq - 1)


def entry(s: Stream, i: tuple[int, int]) -> list[Any]:
    return [fmt(i), list(s.entries[i])]


# -- XADD, XTRIM --------------------------------------------------------------------


class TrimArgs:
    __slots__ = ("maxlen", "minid", "approx", "limit", "nomkstream", "id_pos", "given_limit")

    def __init__(self) -> None:
        self.maxlen: int | None = None
        self.minid: tuple[int, int] | None = None
        self.approx = False
        self.limit = -1
        self.nomkstream = False
        self.id_pos = 0
        self.given_limit = False


def _trim_args(argv: list[bytes], xadd: bool) -> TrimArgs:
    """streamParseAddOrTrimArgsOrReply."""
    a = TrimArgs()
    i = 2
    n = len(argv)
    while i < n:
        left = n - i - 1
        opt = argv[i].lower()
        if (
            xadd
            and argv[i] == b"*"
            or (xadd and opt not in (b"maxlen", b"minid", b"limit", b"nomkstream"))
        ):
            break
        if opt == b"maxlen" and left >= 1:
            nxt = argv[i + 1]
            if nxt in (b"~", b"=") and left >= 2:
                a.approx = nxt == b"~"
                i += 1
            a.maxlen = to_int(argv[i + 1])
            if a.maxlen < 0:
                raise CommandError("ERR The MAXLEN argument must be >= 0.")
            i += 2
            if a.minid is not None:
                raise CommandError(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                )
        elif opt == b"minid" and left >= 1:
            nxt = argv[i + 1]
            if nxt in (b"~", b"=") and left >= 2:
                a.approx = nxt == b"~"
                i += 1
            a.minid = _sid(argv[i + 1])
            i += 2
            if a.maxlen is not None:
                raise CommandError(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible"
                )
        elif opt == b"limit" and left >= 1:
            lim = string2ll(argv[i + 1])
            if lim is None or lim < 0:
                raise CommandError("ERR The LIMIT argument must be >= 0.")
            a.limit = lim
            a.given_limit = True
            i += 2
        elif xadd and opt == b"nomkstream":
            a.nomkstream = True
            i += 1
        else:
            if xadd:
                break
            raise CommandError(SYNTAX)
    if a.given_limit and not a.approx:
        raise CommandError("ERR syntax error, LIMIT cannot be used without the special ~ option")
    if a.limit < 0:
        a.limit = TRIM_DEFAULT_LIMIT if a.approx else 0
    if not xadd and a.maxlen is None and a.minid is None:
        raise CommandError(SYNTAX)
    a.id_pos = i
    return a


def _trim(c: Any, s: Stream, a: TrimArgs) -> int:
    if a.maxlen is None and a.minid is None:
        return 0
    dropped: list[list[bytes]] = []
    n = s.trim(a.maxlen, a.minid, a.approx, a.limit, dropped)
    c.server.lazyfree.free(dropped)  # (a million entries' fields, freed a slice at a time)
    return n


@command("xadd", -5, "write denyoom fast", X, "Appends a new entry to a stream")
def xadd(c: Any, argv: list[bytes]) -> Any:
    if getattr(c, "precomputed", None) is not None:  # (its big trim is done: bigwork.py)
        return _applied(c, argv, 0, _nothing)
    a = _trim_args(argv, True)
    pos = a.id_pos
    if pos >= len(argv):
        raise wrong_arity("xadd")
    raw = argv[pos]
    nfields = len(argv) - pos - 1
    if nfields < 2 or nfields % 2:
        raise wrong_arity("xadd")
    want: tuple[int, int] | tuple[int, None] | None = None
    if raw != b"*":
        want = parse_id(raw, 0, strict=True, allow_star_seq=True)
        if want == ZERO:
            raise CommandError("ERR The ID specified in XADD must be greater than 0-0")
    s = _stream(c, argv[1])
    if s is None:
        if a.nomkstream:
            return None
        s = Stream()
        created = True
    else:
        created = False
    last = s.last_id
    if last == MAX_ID:
        raise CommandError(
            "ERR The stream has exhausted the last possible ID, unable to add more items"
        )
    if want is None:
        ms = max(c.store.now_ms(), last[0])
        new = (ms, last[1] + 1) if ms == last[0] else (ms, 0)
        if new[1] > U64:
            new = (ms + 1, 0)
    elif want[1] is None:
        ms = want[0]
        if ms == last[0]:
            if last[1] == U64:
                raise CommandError(
                    "ERR The ID specified in XADD is equal or smaller than the target stream "
                    "top item"
                )
            new = (ms, last[1] + 1)
        elif ms > last[0]:
            new = (ms, 0)
        else:
            raise CommandError(
                "ERR The ID specified in XADD is equal or smaller than the target stream top item"
            )
    else:
        new = want  # type: ignore[assignment]
        if new <= last:
            raise CommandError(
                "ERR The ID specified in XADD is equal or smaller than the target stream top item"
            )
    if not created and _trim_cost(s, a) >= bigwork.BIG:
        return _applied(c, argv, bigwork.BIG, lambda: _xadd_steps(c, argv, s, new, a))
    if created:
        c.store.set(argv[1], s, keepttl=True)
    s.append(new, list(argv[pos + 1 :]))
    _trim(c, s, a)
    c.store.dirty += 1
    newid = fmt(new)
    if a.approx:  # the AOF gets the exact trim, so a replay keeps what was kept
        c.also = [[b"XADD", argv[1], *_exact_trim(s, a), newid, *argv[pos + 1 :]]]
    elif raw != newid:  # the AOF gets the ID chosen, as Redis rewrites it
        out = list(argv)
        out[pos] = newid
        c.also = [out]
    return newid


def _nothing() -> bigwork.Steps[tuple[bool, Any]]:
    raise AssertionError("computed already")
    yield


def _xadd_steps(
    c: Any, argv: list[bytes], s: Stream, new: tuple[int, int], a: TrimArgs
) -> bigwork.Steps[tuple[bool, Any]]:
    """XADD whose trim removes many entries: the entry added, then the trim in pieces."""
    key = argv[1]
    fields = list(argv[a.id_pos + 1 :])
    s.append(new, fields)
    _applied_piece(c, key, [b"XADD", key, fmt(new), *fields])
    yield from _trim_pieces(c, key, s, a)
    _applied_piece(c, key, [b"XTRIM", key, *_exact_trim(s, a, False)])
    return True, fmt(new)


TRIM_PIECE = 2 * bigwork.PIECE  # entries a piece of a big trim removes, about


def _trim_cost(s: Stream, a: TrimArgs) -> int:
    """About how many entries a trim removes."""
    if a.maxlen is not None:
        n = len(s) - a.maxlen
    elif a.minid is not None:
        n = bisect.bisect_left(s.ids, a.minid)
    else:
        return 0
    return min(n, a.limit) if a.limit else n


def _trim_pieces(c: Any, key: bytes, s: Stream, a: TrimArgs) -> bigwork.Steps[int]:
    """
    L{Stream.trim} a few nodes at a time (a million entries popped at once held the
    suite a quarter of a second), each piece but the last recorded as the exact trim
    it is (C{MAXLEN = what is left}); how many entries it removed. The caller
    records the last piece.
    """
    total, whole, partial = s.trim_plan(a.maxlen, a.minid, a.approx, a.limit)
    free = c.server.lazyfree.free
    left = whole
    while left:
        n = m = 0
        nodes = s.nodes
        while n < left and m < TRIM_PIECE:
            m += nodes[n].live
            n += 1
        dropped: list[list[bytes]] = []
        s.cut(n, 0, dropped)
        free(dropped)  # (freed a slice at a time)
        left -= n
        if left or partial:
            _applied_piece(c, key, [b"XTRIM", key, b"MAXLEN", b"=", b"%d" % len(s)])
            yield
    if partial:
        dropped = []
        s.cut(0, partial, dropped)
        free(dropped)
    return total


def _exact_trim(s: Stream, a: TrimArgs, xadd: bool = True) -> list[bytes]:
    """Redis's streamRewriteApproxSpecifier/TrimArgument: `~ N` becomes what it did."""
    head = [b"NOMKSTREAM"] if a.nomkstream and xadd else []
    if a.maxlen is not None or not s.ids:
        return [*head, b"MAXLEN", b"=", b"%d" % len(s)]
    return [*head, b"MINID", b"=", fmt(s.ids[0])]


@command("xtrim", -4, "write", X, "Deletes messages from the beginning of a stream")
def xtrim(c: Any, argv: list[bytes]) -> Any:
    a = _trim_args(argv, False)
    s = _stream(c, argv[1])
    if a.id_pos != len(argv):
        raise CommandError(SYNTAX)
    if s is None:
        return 0
    cost = _trim_cost(s, a)
    if cost >= bigwork.BIG or getattr(c, "precomputed", None) is not None:
        return _applied(c, argv, cost, lambda: _xtrim_steps(c, argv, s, a))
    n = _trim(c, s, a)
    if n:
        c.store.dirty += 1
        if a.approx:
            c.also = [[b"XTRIM", argv[1], *_exact_trim(s, a)]]
    return n


def _xtrim_steps(
    c: Any, argv: list[bytes], s: Stream, a: TrimArgs
) -> bigwork.Steps[tuple[bool, Any]]:
    """XTRIM of many entries in pieces; its last piece recorded as XTRIM is."""
    n = yield from _trim_pieces(c, argv[1], s, a)
    if n:
        last = [b"XTRIM", argv[1], *_exact_trim(s, a)] if a.approx else list(argv)
        _applied_piece(c, argv[1], last)
    return n > 0, n


# -- XRANGE XREVRANGE XLEN XDEL -----------------------------------------------------


def _range(c: Any, argv: list[bytes], rev: bool) -> Any:
    lo_raw, hi_raw = (argv[3], argv[2]) if rev else (argv[2], argv[3])
    lo, lo_ex = _interval(lo_raw, 0, False)
    if lo_ex:
        nlo = _incr(lo)
        if nlo is None:
            raise CommandError("ERR invalid start ID for the interval")
        lo = nlo
    hi, hi_ex = _interval(hi_raw, U64, True)
    if hi_ex:
        nhi = _decr(hi)
        if nhi is None:
            raise CommandError("ERR invalid end ID for the interval")
        hi = nhi
    count = -1
    j = 4
    while j < len(argv):
        if argv[j].lower() == b"count" and j + 1 < len(argv):
            count = to_int(argv[j + 1])
            if count < 0:
                count = 0
            j += 2
        else:
            raise CommandError(SYNTAX)
    s = _stream(c, argv[1])
    if s is None:
        return []
    if count == 0:
        return NULL_ARRAY
    if lo > hi:
        return []
    ids = s.range(lo, hi, max(count, 0), rev)
    if not bigreply.possible(c, len(ids)):
        return [entry(s, i) for i in ids]
    # a snapshot of the entries (taken a piece at a time: bigwork.py), sent in slices
    fields = bigwork.compute(c, argv, len(ids), lambda: _fields(s, ids))
    if fields is NO_REPLY:
        return fields
    return bigreply.stream_entries(c, ids, fields)


def _fields(s: Stream, ids: list[tuple[int, int]]) -> bigwork.Steps[list[list[bytes]]]:
    """The fields of the entries C{ids}, a piece at a time."""
    out: list[list[bytes]] = []
    get = s.entries.__getitem__
    for lo in range(0, len(ids), bigwork.PIECE):
        out += map(get, ids[lo : lo + bigwork.PIECE])
        yield
    return out


@command("xrange", -4, "readonly", X, "Return a range of elements in a stream")
def xrange(c: Any, argv: list[bytes]) -> Any:
    return _range(c, argv, False)


@command("xrevrange", -4, "readonly", X, "Return a range of elements in a stream, in reverse")
def xrevrange(c: Any, argv: list[bytes]) -> Any:
    return _range(c, argv, True)


@command("xlen", 2, "readonly fast", X, "Return the number of entries in a stream")
def xlen(c: Any, argv: list[bytes]) -> Any:
    s = _stream(c, argv[1])
    return 0 if s is None else len(s)


@command("xdel", -3, "write fast", X, "Removes the specified entries from the stream")
def xdel(c: Any, argv: list[bytes]) -> Any:
    v = c.store.get(argv[1])
    size = len(v) if type(v) is Stream and len(argv) - 2 > FEW else 0  # (its list of IDs remade)
    done = bigwork.compute(c, argv, WEIGHT * (len(argv) - 2) + size, lambda: _xdel_steps(c, argv))
    if type(c.blocked) is bigwork.Working:
        # its entries go a piece a step, its list of IDs is remade at the end: once
        # started it runs to its end, even if its client goes (nobody sees it half done)
        c.blocked.commits = True
    if done is NO_REPLY:
        return done
    if done:
        c.store.dirty += 1
    return done


def _xdel_steps(c: Any, argv: list[bytes]) -> bigwork.Steps[int]:
    ids = yield from _parsed(argv[2:])
    s = _stream(c, argv[1])
    if s is None:
        return 0
    if len(ids) <= FEW:
        return s.delete_many(ids)
    gone: list[tuple[int, int]] = []
    for lo in range(0, len(ids), PIECE):
        gone += s.forget(ids[lo : lo + PIECE])
        yield
    n = len(gone)
    if gone:
        gone = yield from bigwork.sort(gone)  # (each piece's are sorted: runs to merge)
        old = s.ids
        for kept in s.without(gone, ID_PIECE):
            if kept is not None:
                s.set_ids(kept, gone)
            yield
        yield old  # (the old list and the IDs deleted: freed a slice at a time)
        yield gone
    return n


ID_PIECE = 65536  # IDs of a stream's list copied a step when an XDEL remakes it (2-5 ms)


# -- writes over many IDs, a piece at a time ------------------------------------------

WEIGHT = 16  # bigwork's cost of a stream ID or entry (a few microseconds of Python each)


def _applied(
    c: Any, argv: list[bytes], cost: int, make: Callable[[], bigwork.Steps[tuple[bool, Any]]]
) -> Any:
    """
    A write over many IDs (XDEL, XACK, XCLAIM, XAUTOCLAIM, XGROUP DELCONSUMER):
    C{make()}'s generator applies it a piece at a time, each piece recorded to the
    AOF as a command of its own as it is applied (L{_applied_piece}), and returns
    whether anything changed and the reply; in slices when big (bigwork.py), at once
    when small. Stopped half-way (its client gone), it is the same command over fewer
    IDs, in memory and in the file alike.
    """
    done = bigwork.compute(c, argv, cost, make)
    if done is NO_REPLY:
        return done
    changed, reply = done
    if changed:
        c.store.dirty += 1
        c.also = []  # (recorded piece by piece)
    return reply


def _applied_piece(c: Any, key: bytes, record: list[bytes] | None) -> None:
    """A piece of a big write is done: WATCH sees it now (the rest may never come), the AOF has it."""
    store = c.store
    if store.watched:
        c.server.touch(store, [key])
    if record is not None:
        _record(c, record)


def _parsed(raw: list[bytes]) -> bigwork.Steps[list[tuple[int, int]]]:
    """
    Stream IDs parsed a piece at a time (an invalid one: the command's error, nothing
    changed): PIECE of them, a few microseconds each (4,096 a step took 15-30 ms).
    """
    out: list[tuple[int, int]] = []
    for lo in range(0, len(raw), PIECE):
        out += [_sid(b) for b in raw[lo : lo + PIECE]]
        yield
    return out


@command("xsetid", -3, "write denyoom fast", X, "Set the last entry ID of a stream")
def xsetid(c: Any, argv: list[bytes]) -> Any:
    new = _sid(argv[2])
    added = -1
    maxdel = ZERO
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"entriesadded" and j + 1 < len(argv):
            added = to_int(argv[j + 1])
            if added < 0:
                raise CommandError("ERR entries_added must be positive")
            j += 2
        elif opt == b"maxdeletedid" and j + 1 < len(argv):
            maxdel = _sid(argv[j + 1])
            if new < maxdel:
                raise CommandError(
                    "ERR The ID specified in XSETID is smaller than the provided "
                    "max_deleted_entry_id"
                )
            j += 2
        else:
            raise CommandError(SYNTAX)
    s = _stream(c, argv[1])
    if s is None:
        raise CommandError("ERR no such key")
    if len(s):
        if new < s.last_valid():
            raise CommandError(
                "ERR The ID specified in XSETID is smaller than the target stream top item"
            )
        if added != -1 and len(s) > added:
            raise CommandError(
                "ERR The entries_added specified in XSETID is smaller than the target stream length"
            )
    s.last_id = new
    if added != -1:
        s.entries_added = added
    if maxdel != ZERO:
        s.max_deleted = maxdel
    c.store.dirty += 1
    return OK


# -- XREAD XREADGROUP ---------------------------------------------------------------


def _keyed(c: Any, pairs: list[tuple[bytes, Any]]) -> Any:
    if c.resp == 3:
        return Map(pairs)
    return [[k, v] for k, v in pairs]


class _ReadArgs:
    """XREAD's/XREADGROUP's options, and where its streams start in its argv."""

    __slots__ = ("group_mode", "count", "block", "noack", "gname", "cname", "streams_at", "nk")

    def __init__(self, argv: list[bytes], group_mode: bool):
        self.group_mode = group_mode
        self.count = 0
        self.block = -1
        self.noack = False
        self.gname: bytes | None = None
        self.cname: bytes | None = None
        streams_at = -1
        j = 1
        n = len(argv)
        while j < n:
            opt = argv[j].lower()
            left = n - j - 1
            if opt == b"block" and left >= 1:
                block = to_int(argv[j + 1], "ERR timeout is not an integer or out of range")
                if block < 0:
                    raise CommandError("ERR timeout is negative")
                self.block = block
                j += 2
            elif opt == b"count" and left >= 1:
                self.count = max(to_int(argv[j + 1]), 0)
                j += 2
            elif opt == b"streams" and left >= 1:
                streams_at = j + 1
                break
            elif opt == b"group" and left >= 2:
                if not group_mode:
                    raise CommandError(
                        "ERR The GROUP option is only supported by XREADGROUP. You called XREAD "
                        "instead."
                    )
                self.gname, self.cname = argv[j + 1], argv[j + 2]
                j += 3
            elif opt == b"noack":
                if not group_mode:
                    raise CommandError(
                        "ERR The NOACK option is only supported by XREADGROUP. You called XREAD "
                        "instead."
                    )
                self.noack = True
                j += 1
            else:
                raise CommandError(SYNTAX)
        if streams_at < 0:
            raise CommandError(SYNTAX)
        if (n - streams_at) % 2:
            name = "XREADGROUP" if group_mode else "XREAD"
            raise CommandError(
                f"ERR Unbalanced {name} list of streams: for each stream key an ID or '$' must "
                "be specified."
            )
        if group_mode and self.gname is None:
            raise CommandError("ERR Missing GROUP option for XREADGROUP")
        self.streams_at = streams_at
        self.nk = (n - streams_at) // 2

    def one(self, argv: list[bytes], key: bytes, raw: bytes) -> list[bytes]:
        """The command on C{key} alone, from C{raw} (a woken read going on in slices)."""
        out = [argv[0]]
        if self.gname is not None and self.cname is not None:
            out += (b"GROUP", self.gname, self.cname)
        if self.count:
            out += (b"COUNT", b"%d" % self.count)
        if self.noack:
            out.append(b"NOACK")
        return out + [b"STREAMS", key, raw]


Target = tuple[bytes, "Stream | None", "Group | None", Any]  # a key, its stream, group, start


def _target(c: Any, a: _ReadArgs, key: bytes, raw: bytes) -> Target:
    """A stream to read (Redis's checks, in its order: type, group, ID)."""
    s = _stream(c, key)
    if s is None:
        notify.missed(c, key)  # (Redis's first lookup of each key)
    g = None
    if a.group_mode:
        gname = a.gname
        assert gname is not None
        g = s.groups.get(gname) if s is not None else None
        if g is None:
            raise CommandError(
                f"NOGROUP No such key '{key.decode('utf-8', 'replace')}' or consumer group "
                f"'{gname.decode('utf-8', 'replace')}' in XREADGROUP with GROUP option"
            )
    if raw == b"$":
        if a.group_mode:
            raise CommandError(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read "
                "the history of this consumer by specifying a proper ID, or use the > ID to "
                "get new messages. The $ ID would just return an empty result set."
            )
        return (key, s, g, s.last_id if s is not None else ZERO)
    if raw == b">":
        if not a.group_mode:
            raise CommandError(
                "ERR The > ID can be specified only when calling XREADGROUP using the "
                "GROUP <group> <consumer> option."
            )
        return (key, s, g, None)
    return (key, s, g, _sid(raw))


def _xread(c: Any, argv: list[bytes], group_mode: bool) -> Any:
    a = _ReadArgs(argv, group_mode)
    waiting = c.blocked
    if waiting is not None and waiting.since is not None and waiting.ready is not None:
        return _woken(c, argv, a, waiting)
    if a.nk > blocking.MANY:
        return _xread_many(c, argv, a)
    streams_at, nk = a.streams_at, a.nk
    targets = [
        _target(c, a, key, raw)
        for key, raw in zip(
            argv[streams_at : streams_at + nk], argv[streams_at + nk :], strict=True
        )
    ]
    history = any(t[3] is not None for t in targets) if group_mode else False
    can_block = a.block >= 0 and not history
    attempt = _attempt(c, argv, a, targets, can_block)
    if not can_block:
        return attempt()
    r = blocking.block_on(
        c, argv, [t[0] for t in targets], a.block, attempt, NULL_ARRAY, ordered=False
    )
    state = c.blocked
    if r is NO_REPLY and type(state) is blocking.Blocked and state.since is None:
        state.since = _since(targets)
    return r


def _since(targets: list[Target]) -> dict[bytes, Any]:
    """Each stream's ID a blocked read waits after (the first, for a stream named twice)."""
    since: dict[bytes, Any] = {}
    for key, _s, _g, start in targets:
        since.setdefault(key, start)
    return since


def _attempt(
    c: Any, argv: list[bytes], a: _ReadArgs, targets: list[Target], can_block: bool
) -> Callable[..., Any]:
    """XREAD's read of C{targets} now: its reply, NOT_READY (nothing, may wait), or NO_REPLY."""
    now = c.store.now_ms()

    def attempt(_keys: list[bytes] | None = None) -> Any:
        if not a.group_mode:  # (Redis looks each key up again to serve it: a second key miss)
            _missed_again(c, targets)
        # (a big read: its entries gathered, and delivered, a piece at a time: bigwork.py)
        done = bigwork.compute(
            c,
            argv,
            _xread_cost(targets, a.count),
            lambda: _xread_steps(c, targets, a.count, a.noack, a.cname, now),
        )
        if done is NO_REPLY:
            return done
        parts, changed = done
        if not parts:
            return blocking.NOT_READY if can_block else NULL_ARRAY
        return _read_reply(c, parts, changed)

    return attempt


def _missed_again(c: Any, targets: list[Target]) -> None:
    """XREAD's second key miss of each stream not there (Redis looks it up again to serve it)."""
    for key, s, _g, _start in targets:
        if s is None:
            notify.missed(c, key)


def _read_reply(
    c: Any,
    parts: list[Part],
    changed: bool,
    flat: bigreply.Flat | None = None,
    touched: list[bytes] | None = None,
) -> Any:
    """The reply of a read of C{parts}; C{flat}, C{touched}: made beforehand (many streams)."""
    if changed:
        c.store.dirty += 1
        c.also = []  # (recorded as it was delivered: L{_record})
        # (WATCH, blocked clients: the streams it changed)
        c.touched = [p[0] for p in parts] if touched is None else touched
    return _entries_reply(c, parts, flat)


def _woken(c: Any, argv: list[bytes], a: _ReadArgs, waiting: Any) -> Any:
    """
    A blocked read woken by a write to one of its streams: served from that stream
    alone, from the ID it waits after (a group's: the group's last ID now), as Redis
    7.0's C{serveClientsBlockedOnStreamKey}; the same cost however many it waits on.
    """
    key = waiting.ready
    v = c.store.get(key)
    if type(v) is not Stream:  # (gone, or another type now: it keeps waiting)
        return NO_REPLY
    start = waiting.since[key]
    g = None
    if a.gname is not None:
        g = v.groups.get(a.gname)
        if g is None:
            raise CommandError(
                "NOGROUP the consumer group this client was blocked on no longer exists"
            )
    raw = b">" if start is None else fmt(start)
    # (a delivery in slices runs again as the read of this stream alone)
    attempt = _attempt(c, a.one(argv, key, raw), a, [(key, v, g, start)], True)
    return blocking.block_on(c, argv, [key], a.block, attempt, NULL_ARRAY, ordered=False)


def _xread_many(c: Any, argv: list[bytes], a: _ReadArgs) -> Any:
    """
    XREAD/XREADGROUP of many streams (hundreds of thousands: their lookups, checks and
    a blocked read's registration took 0.5 s at once): one bigwork job looks them up,
    reads them and, nothing read and BLOCK given, registers the client on them, a
    piece a step, while the other kv clients wait; its second run replies or waits.
    """
    state = blocking.Blocked(argv, {}, c.store, NULL_ARRAY)
    done = bigwork.compute(c, argv, WEIGHT * a.nk, lambda: _many_steps(c, argv, a, state))
    if done is NO_REPLY:
        return done
    parts, changed, registered, laid = done
    if parts:
        r = _read_reply(c, parts, changed, *(laid or ()))
        if laid is not None:  # (the reply is laid out: a stream's read, each, freed in slices)
            c.server.lazyfree.free(parts)
        return r
    if registered is None:
        return NULL_ARRAY
    return blocking.start_waiting(c, registered, a.block)


KEYS_PIECE = bigwork.PIECE // 4  # streams looked up and checked a step (a few µs each)


Laid = tuple["bigreply.Flat", "list[bytes] | None"]  # a reply's layout, the keys it changed


def _many_steps(
    c: Any, argv: list[bytes], a: _ReadArgs, state: blocking.Blocked
) -> bigwork.Steps[tuple[list[Part], bool, blocking.Blocked | None, Laid | None]]:
    streams_at, nk = a.streams_at, a.nk
    targets: list[Target] = []
    # (what it would wait on: a key named twice, its first ID; sharded: its resizes)
    since: dict[bytes, Any] = new_like(dict, nk if a.block >= 0 else 0)
    history = False  # (a group's read of a consumer's history: never waits)
    for lo in range(streams_at, streams_at + nk, KEYS_PIECE):
        hi = min(lo + KEYS_PIECE, streams_at + nk)
        piece = list(map(partial(_target, c, a), argv[lo:hi], argv[lo + nk : hi + nk]))
        targets += piece
        if a.group_mode and not history:
            history = any(t[3] is not None for t in piece)
        if a.block >= 0:
            for key, _s, _g, start in piece:
                since.setdefault(key, start)
        yield
    if not a.group_mode:
        for lo in range(0, len(targets), KEYS_PIECE):
            _missed_again(c, targets[lo : lo + KEYS_PIECE])
            yield
    now = c.store.now_ms()
    parts, changed = yield from _xread_steps(c, targets, a.count, a.noack, a.cname, now)
    yield targets  # (freed by lazyfree, not all at once)
    del targets
    if parts or a.block < 0 or history or c.deny_blocking:
        yield since
        laid = None
        if len(parts) > bigreply.STREAMS_PIECE:  # (the reply's layout, the keys changed: in pieces)
            flat = yield from bigreply.flat_steps(c.resp == 3, parts)
            touched = (yield from bigwork.mapped(itemgetter(0), parts)) if changed else None
            laid = (flat, touched)
        return parts, changed, None, laid
    state.keys = state.since = since
    return parts, changed, (yield from blocking.register_steps(c, state)), None


Part = tuple[bytes, list[tuple[int, int]], list[Any]]  # a key, IDs, their fields (None: deleted)


def _xread_cost(targets: list[Any], count: int) -> int:
    """About how much XREAD/XREADGROUP does (bigwork's cost): the entries it gathers or delivers."""
    n = 0
    for _key, s, g, start in targets:
        if s is None:
            continue
        if g is None:
            left = len(s.ids) - bisect.bisect_right(s.ids, start)
        elif start is None:
            left = len(s.ids) - bisect.bisect_right(s.ids, g.last_id)
        else:  # (its consumer's PEL is at most the group's)
            left = len(g.pel.order) - g.pel.after(start)
        n += (1 if g is None else WEIGHT) * (min(left, count) if count else left)
    return n


def _record(c: Any, argv: list[bytes]) -> None:
    """Say C{argv} to the AOF now (a big write recorded a piece at a time, as applied)."""
    aof = c.server.aof
    if aof is not None:
        aof.feed_db(c.store.id, argv)


GROUP_WEIGHT = bigwork.PIECE // PIECE  # a group's delivery of an entry, in a step's work


def _xread_steps(
    c: Any, targets: list[Any], count: int, noack: bool, cname: bytes | None, now: int
) -> bigwork.Steps[tuple[list[Part], bool]]:
    """
    What XREAD/XREADGROUP delivers now, and whether it changed a group. The entries
    go to the pending lists a piece at a time, each piece recorded as Redis
    propagates it (an XCLAIM each, or XGROUP SETID): a read stopped half-way (its
    client gone) is a read of fewer entries, in memory and in the AOF alike.
    """
    out: list[Part] = []
    changed = False
    work = 0  # (since the last step: a stream counts one, an entry one, a group's eight)
    for key, s, g, start in targets:
        work += 1
        if work >= bigwork.PIECE:  # (many streams, or many entries: a piece a step)
            work = 0
            yield
        if s is None:
            continue
        fields: list[Any] = []
        if g is None:
            got = s.after(start, count)
            for lo in range(0, len(got), bigwork.PIECE):
                piece = got[lo : lo + bigwork.PIECE]
                fields += map(s.entries.__getitem__, piece)
                work += len(piece)
                if work >= bigwork.PIECE:
                    work = 0
                    yield
            if got:
                out.append((key, got, fields))
            continue
        assert cname is not None
        if start is None and not (s.ids and s.ids[-1] > g.last_id):
            continue  # nothing new: no consumer is made (Redis serves nothing now)
        cons = g.consumers.get(cname)
        if cons is None:
            cons = g.consumers[cname] = Consumer(cname, now)
            _record(c, [b"XGROUP", b"CREATECONSUMER", key, g.name, cname])
            changed = True
        cons.seen = now
        if start is None:  # '>': new entries
            got = s.after(g.last_id, count)
            if not got:
                continue
            changed = True
            _applied_piece(c, key, None)  # (WATCH sees it now: the rest may never come)
            aof = c.server.aof
            for lo in range(0, len(got), PIECE):
                piece = got[lo : lo + PIECE]
                fields += map(s.entries.__getitem__, piece)
                for i in piece:
                    s.group_read(g, i)
                    if not noack:
                        old = g.pel.get(i)
                        if old is not None:
                            del old.consumer.pel[i]
                        nack = NACK(cons, now, 1)
                        g.pel[i] = nack
                        cons.pel[i] = nack
                        if aof is not None:
                            _record(c, _xclaim_prop(key, g, cons.name, i, nack))
                if noack:
                    _record(c, _setid_prop(key, g))
                work += len(piece) * GROUP_WEIGHT
                if work >= bigwork.PIECE:
                    work = 0
                    yield
            out.append((key, got, fields))
        else:  # history: this consumer's pending entries after the ID
            got = cons.pel.live_from(cons.pel.after(start), count)
            get = s.entries.get
            pel = cons.pel
            for lo in range(0, len(got), PIECE):
                for i in got[lo : lo + PIECE]:
                    fv = get(i)
                    if fv is not None:
                        nack = pel[i]
                        nack.time = now
                        nack.count += 1
                    fields.append(fv)
                work += min(PIECE, len(got) - lo) * GROUP_WEIGHT
                if work >= bigwork.PIECE:
                    work = 0
                    yield
            out.append((key, got, fields))
    return out, changed


def _entries_reply(c: Any, parts: list[Part], flat: bigreply.Flat | None = None) -> Any:
    """
    XREAD/XREADGROUP's reply: small at once, big in slices (bigreply.py); C{flat}: its
    entries laid out beforehand (many streams: L{_many_steps}).
    """
    n = sum(len(p[1]) for p in parts) if flat is None else len(flat[0])
    if bigreply.possible(c, n):
        return bigreply.keyed_stream_entries(c, parts, flat)
    return _keyed(
        c,
        [
            (
                key,
                [
                    [fmt(i), NULL_ARRAY if fv is None else list(fv)]
                    for i, fv in zip(ids, fields, strict=True)
                ],
            )
            for key, ids, fields in parts
        ],
    )


def _xclaim_prop(key: bytes, g: Group, cname: bytes, i: tuple[int, int], nack: NACK) -> list[bytes]:
    return [
        b"XCLAIM",
        key,
        g.name,
        cname,
        b"0",
        fmt(i),
        b"TIME",
        b"%d" % nack.time,
        b"RETRYCOUNT",
        b"%d" % nack.count,
        b"FORCE",
        b"JUSTID",
        b"LASTID",
        fmt(g.last_id),
    ]


def _setid_prop(key: bytes, g: Group) -> list[bytes]:
    return [
        b"XGROUP",
        b"SETID",
        key,
        g.name,
        fmt(g.last_id),
        b"ENTRIESREAD",
        b"%d" % g.entries_read,
    ]


@command("xread", -4, "readonly", X, "Return new entries from multiple streams", keys=(0, 0, 0))
def xread(c: Any, argv: list[bytes]) -> Any:
    return _xread(c, argv, False)


@command(
    "xreadgroup",
    -7,
    "write",
    X,
    "Return new entries from a stream using a consumer group",
    keys=(0, 0, 0),
)
def xreadgroup(c: Any, argv: list[bytes]) -> Any:
    return _xread(c, argv, True)


# -- XGROUP -------------------------------------------------------------------------

container("xgroup", X, "A container for consumer groups commands")


def _nogroup(key: bytes, group: bytes) -> CommandError:
    return CommandError(
        f"NOGROUP No such consumer group '{group.decode('utf-8', 'replace')}' for key name "
        f"'{key.decode('utf-8', 'replace')}'"
    )


def _subsyntax(argv: list[bytes]) -> CommandError:
    return CommandError(
        "ERR unknown subcommand or wrong number of arguments for "
        f"'{argv[1][:128].decode('utf-8', 'replace')}'. Try {argv[0].decode('utf-8', 'replace').upper()} HELP."
    )


def _entries_read(b: bytes) -> int:
    v = to_int(b)
    if v < 0 and v != INVALID_READ:
        raise CommandError("ERR value for ENTRIESREAD must be positive or -1")
    return v


def _xgroup(c: Any, argv: list[bytes]) -> Any:
    """xgroupCommand, checks in Redis's order."""
    opt = argv[1].lower()
    n = len(argv)
    key, gname = argv[2], argv[3]
    s = _stream(c, key)
    mkstream = False
    entries_read = INVALID_READ
    if n >= 6 and opt == b"create":
        i = 5
        while i < n:
            o = argv[i].lower()
            if o == b"mkstream":
                mkstream = True
                i += 1
            elif o == b"entriesread" and i + 1 < n:
                entries_read = _entries_read(argv[i + 1])
                i += 2
            else:
                raise _subsyntax(argv)
    if n == 7 and opt == b"setid":
        if argv[5].lower() != b"entriesread":
            raise _subsyntax(argv)
        entries_read = _entries_read(argv[6])
    g = None
    if not mkstream:
        if s is None:
            raise CommandError(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you "
                "may want to use the MKSTREAM option to create an empty stream automatically."
            )
        g = s.groups.get(gname)
        if g is None and opt in (b"setid", b"createconsumer", b"delconsumer"):
            raise _nogroup(key, gname)
    if opt == b"create" and 5 <= n <= 8:
        raw = argv[4]
        if raw == b"$":
            gid = s.last_id if s is not None else ZERO
        else:
            gid = _sid(raw)
        created = s is None
        if s is None:
            s = Stream()
            c.store.set(key, s)
        if gname in s.groups:
            raise CommandError("BUSYGROUP Consumer Group name already exists")
        s.groups[gname] = Group(gname, gid, entries_read)
        c.store.dirty += 1
        record = [b"XGROUP", b"CREATE", key, gname, fmt(gid), b"ENTRIESREAD", b"%d" % entries_read]
        # (the stream MKSTREAM made is made again by the replay: without, the file
        # would not load, the key missing)
        c.also = [[*record, b"MKSTREAM"] if created else record]
        return OK
    assert s is not None
    if opt == b"setid" and n in (5, 7):
        raw = argv[4]
        gid = s.last_id if raw == b"$" else _sid(raw)
        assert g is not None
        g.last_id = gid
        g.entries_read = entries_read
        c.store.dirty += 1
        c.also = [[b"XGROUP", b"SETID", key, gname, fmt(gid), b"ENTRIESREAD", b"%d" % entries_read]]
        return OK
    if opt == b"destroy" and n == 4:
        g = s.groups.pop(gname, None)
        if g is None:
            return 0
        free = c.server.lazyfree.free  # (a million pending entries freed a slice at a time)
        free(g.pel)
        for cons in g.consumers.values():
            free(cons.pel)
        c.store.dirty += 1
        return 1
    if opt == b"createconsumer" and n == 5:
        assert g is not None
        if argv[4] in g.consumers:
            return 0
        g.consumers[argv[4]] = Consumer(argv[4], c.store.now_ms())
        c.store.dirty += 1
        return 1
    if opt == b"delconsumer" and n == 5:
        assert g is not None
        gone = g.consumers.get(argv[4])
        if gone is None:
            return 0
        return _applied(c, argv, WEIGHT * len(gone.pel), lambda: _delconsumer_steps(c, argv))
    raise _subsyntax(argv)


def _delconsumer_steps(c: Any, argv: list[bytes]) -> bigwork.Steps[tuple[bool, Any]]:
    """
    XGROUP DELCONSUMER: its pending entries leave the group a piece at a time, each
    piece recorded as the XACK it is, then the consumer goes (recorded as it is).
    """
    key, gname = argv[2], argv[3]
    g = _stream(c, key).groups[gname]  # type: ignore[union-attr]
    cons = g.consumers[argv[4]]
    pel = cons.pel
    pending = len(pel)
    if pending > PIECE:
        ids = pel.ids()
        for lo in range(0, len(ids) - PIECE, PIECE):  # (the last piece goes with it)
            piece = ids[lo : lo + PIECE]
            for i in piece:
                g.pel.pop(i, None)
                del pel[i]
            _applied_piece(c, key, [b"XACK", key, gname, *map(fmt, piece)])
            yield
    for i in pel:
        g.pel.pop(i, None)
    del g.consumers[argv[4]]
    _applied_piece(c, key, list(argv))
    return True, pending


for _name, _arity, _flags, _summary in (
    ("create", -5, "write denyoom", "Create a consumer group"),
    ("setid", -5, "write", "Set a consumer group's last delivered ID"),
    ("destroy", 4, "write", "Destroy a consumer group"),
    ("createconsumer", 5, "write denyoom", "Create a consumer in a consumer group"),
    ("delconsumer", 5, "write", "Delete a consumer from a consumer group"),
):
    command(_name, _arity, _flags, X, _summary, keys=(2, 2, 1), parent="xgroup")(_xgroup)


help_command(
    "xgroup",
    X,
    (
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
    ),
)


# -- XACK XPENDING XCLAIM XAUTOCLAIM ------------------------------------------------


@command("xack", -4, "write fast", X, "Marks a pending message as correctly processed")
def xack(c: Any, argv: list[bytes]) -> Any:
    return _applied(c, argv, WEIGHT * (len(argv) - 3), lambda: _xack_steps(c, argv))


def _xack_steps(c: Any, argv: list[bytes]) -> bigwork.Steps[tuple[bool, Any]]:
    ids = yield from _parsed(argv[3:])
    s = _stream(c, argv[1])
    g = s.groups.get(argv[2]) if s is not None else None
    if g is None:
        return False, 0
    n = 0
    for lo in range(0, len(ids), PIECE):
        k = 0
        for i in ids[lo : lo + PIECE]:
            nack = g.pel.pop(i, None)
            if nack is not None:
                nack.consumer.pel.pop(i, None)
                k += 1
        if k:
            n += k
            _applied_piece(c, argv[1], [b"XACK", argv[1], argv[2], *argv[3 + lo : 3 + lo + PIECE]])
        yield
    return n > 0, n


@command("xpending", -3, "readonly", X, "Return information about pending entries of a group")
def xpending(c: Any, argv: list[bytes]) -> Any:
    n = len(argv)
    justinfo = n == 3
    if n != 3 and n < 6:
        raise CommandError(SYNTAX)
    min_idle = 0
    start = end = ZERO
    count = 0
    consumer = None
    if not justinfo:
        j = 3
        if argv[3].lower() == b"idle":
            min_idle = to_int(argv[4])
            if n < 8:
                raise CommandError(SYNTAX)
            j = 5
        start, sx = _interval(argv[j], 0, False)
        if sx:
            ns = _incr(start)
            if ns is None:
                raise CommandError("ERR invalid start ID for the interval")
            start = ns
        end, ex = _interval(argv[j + 1], U64, True)
        if ex:
            ne = _decr(end)
            if ne is None:
                raise CommandError("ERR invalid end ID for the interval")
            end = ne
        count = to_int(argv[j + 2])
        if count < 0:
            count = 0
        if j + 3 < n:
            consumer = argv[j + 3]  # (Redis ignores what follows)
    s = _stream(c, argv[1])
    if s is None:
        notify.missed(c, argv[1])  # (told before the error, as Redis's lookup tells it)
    g = s.groups.get(argv[2]) if s is not None else None
    if g is None:
        raise CommandError(
            f"NOGROUP No such key '{argv[1].decode('utf-8', 'replace')}' or consumer group "
            f"'{argv[2].decode('utf-8', 'replace')}'"
        )
    if justinfo:
        if not g.pel:
            return [0, None, None, NULL_ARRAY]
        per: dict[bytes, int] = {}
        for cname, cons in g.consumers.items():
            if cons.pel:
                per[cname] = len(cons.pel)
        return [
            len(g.pel),
            fmt(g.pel.first()),
            fmt(g.pel.last()),
            [[k, b"%d" % v] for k, v in sorted(per.items())],
        ]
    now = c.store.now_ms()
    if consumer is not None:
        owner = g.consumers.get(consumer)
        pel = owner.pel if owner is not None else PEL()
    else:
        pel = g.pel
    if not count or start > end:
        return []
    lo = pel.after(start, inclusive=True)
    cost = WEIGHT * min(
        bisect.bisect_right(pel.order, end) - lo, count if not min_idle else LONG_MAX
    )
    return bigwork.compute(
        c, argv, cost, lambda: _pending_steps(pel, lo, end, count, min_idle, now)
    )


def _pending_steps(
    pel: PEL, lo: int, end: tuple[int, int], count: int, min_idle: int, now: int
) -> bigwork.Steps[list[Any]]:
    """XPENDING's entries from position C{lo} of the PEL's order, a piece at a time."""
    out: list[Any] = []
    order = pel.order
    for k in range(lo, len(order)):
        if not (k - lo + 1) % PIECE:
            yield
        i = order[k]
        if i not in pel:
            continue
        if i > end or len(out) >= count:
            break
        nack = pel[i]
        idle = max(now - nack.time, 0)
        if min_idle and idle < min_idle:
            continue
        out.append([fmt(i), nack.consumer.name, idle, nack.count])
    return out


def _claim_opts(c: Any, argv: list[bytes], j: int) -> dict[str, Any]:
    now = c.store.now_ms()
    o: dict[str, Any] = {
        "time": now,
        "retry": None,
        "force": False,
        "justid": False,
        "lastid": None,
    }
    n = len(argv)
    while j < n:
        opt = argv[j].lower()
        left = n - j - 1
        if opt == b"force":
            o["force"] = True
        elif opt == b"justid":
            o["justid"] = True
        elif opt == b"idle" and left >= 1:
            j += 1
            v = to_int(argv[j], "ERR Invalid IDLE option argument for XCLAIM")
            o["time"] = now - v
        elif opt == b"time" and left >= 1:
            j += 1
            o["time"] = to_int(argv[j], "ERR Invalid TIME option argument for XCLAIM")
        elif opt == b"retrycount" and left >= 1:
            j += 1
            o["retry"] = to_int(argv[j], "ERR Invalid RETRYCOUNT option argument for XCLAIM")
        elif opt == b"lastid" and left >= 1:
            j += 1
            o["lastid"] = _sid(argv[j])
        else:
            raise CommandError(
                f"ERR Unrecognized XCLAIM option '{argv[j].decode('utf-8', 'replace')}'"
            )
        j += 1
    if o["time"] > now:
        o["time"] = now
    return o


def _nogroup_in(argv: list[bytes]) -> CommandError:
    return CommandError(
        f"NOGROUP No such key '{argv[1].decode('utf-8', 'replace')}' or consumer group "
        f"'{argv[2].decode('utf-8', 'replace')}'"
    )


@command("xclaim", -6, "write fast", X, "Changes the ownership of a pending message")
def xclaim(c: Any, argv: list[bytes]) -> Any:
    s = _stream(c, argv[1])
    g = s.groups.get(argv[2]) if s is not None else None
    if g is None:
        raise _nogroup_in(argv)
    min_idle = to_int(argv[4], "ERR Invalid min-idle-time argument for XCLAIM")
    if min_idle < 0:
        min_idle = 0
    assert s is not None
    done = _applied(
        c, argv, WEIGHT * (len(argv) - 5), lambda: _xclaim_steps(c, argv, s, g, min_idle)
    )
    if done is NO_REPLY:
        return done
    return _entry_list(c, *done)


def _entry_list(c: Any, ids: list[tuple[int, int]], fields: list[list[bytes]] | None) -> Any:
    """
    Entries as XRANGE answers them (their IDs alone when C{fields} is None: JUSTID),
    in slices when many (bigreply.py).
    """
    if bigreply.possible(c, len(ids)):
        return bigreply.stream_entries(c, ids, fields)
    if fields is None:
        return [fmt(i) for i in ids]
    return [[fmt(i), list(fv)] for i, fv in zip(ids, fields, strict=True)]


def _xclaim_steps(
    c: Any, argv: list[bytes], s: Stream, g: Group, min_idle: int
) -> bigwork.Steps[tuple[bool, Any]]:
    """XCLAIM's IDs parsed, then claimed a piece at a time, each recorded as Redis does."""
    j = 5
    n = len(argv)
    while j < n:
        try:
            _sid(argv[j])
        except CommandError:
            break
        j += 1
        if not j % PIECE:
            yield
    o = _claim_opts(c, argv, j)
    ids = yield from _parsed(argv[5:j])
    key = argv[1]
    now = c.store.now_ms()
    changed = o["lastid"] is not None
    if changed and o["lastid"] > g.last_id:
        g.last_id = o["lastid"]
    recorded = False
    cons = None
    out: list[tuple[int, int]] = []
    entries = s.entries
    for lo in range(0, len(ids), PIECE):
        records = []
        for i in ids[lo : lo + PIECE]:
            nack = g.pel.get(i)
            if i not in entries:
                if nack is not None:  # (propagated: the replay drops it from the PEL too)
                    records.append(_xclaim_prop(key, g, nack.consumer.name, i, nack))
                    del g.pel[i]
                    nack.consumer.pel.pop(i, None)
                continue
            if o["force"] and nack is None:
                if cons is None:
                    cons = _consumer(g, argv[3], now)
                nack = NACK(cons, now, 1)
                g.pel[i] = nack
                cons.pel[i] = nack
            if nack is None:
                continue
            if min_idle and now - nack.time < min_idle:
                continue
            if cons is None:
                cons = _consumer(g, argv[3], now)
            _give(nack, cons, i)
            nack.time = o["time"]
            if o["retry"] is not None:
                nack.count = o["retry"]
            elif not o["justid"]:
                nack.count += 1
            cons.seen = now
            out.append(i)
            records.append(_xclaim_prop(key, g, cons.name, i, nack))
        if records:
            changed = recorded = True
            _applied_piece(c, key, None)
            for r in records:
                _record(c, r)
        yield
    if changed and not recorded:  # (LASTID alone: the command as it is, as before)
        _record(c, argv)
    fields: list[list[bytes]] | None = None
    if not o["justid"]:
        fields = []
        for lo in range(0, len(out), bigwork.PIECE):
            fields += map(entries.__getitem__, out[lo : lo + bigwork.PIECE])
            yield
    return changed, (out, fields)


def _give(nack: NACK, cons: Consumer, i: tuple[int, int]) -> None:
    """The pending entry C{i} (C{nack}) belongs to C{cons} now."""
    if nack.consumer is not cons:
        nack.consumer.pel.pop(i, None)
        nack.consumer = cons
        cons.pel[i] = nack


def _consumer(g: Group, name: bytes, now: int) -> Consumer:
    cons = g.consumers.get(name)
    if cons is None:
        cons = g.consumers[name] = Consumer(name, now)
    cons.seen = now
    return cons


@command("xautoclaim", -6, "write fast", X, "Changes the ownership of pending messages")
def xautoclaim(c: Any, argv: list[bytes]) -> Any:
    s = _stream(c, argv[1])
    g = s.groups.get(argv[2]) if s is not None else None
    if g is None:
        raise _nogroup_in(argv)
    min_idle = to_int(argv[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM")
    if min_idle < 0:
        min_idle = 0
    start, ex = _interval(argv[5], 0, False)
    if ex:
        ns = _incr(start)
        if ns is None:
            raise CommandError("ERR invalid start ID for the interval")
        start = ns
    count = 100
    justid = False
    j = 6
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"count" and j + 1 < len(argv):
            count = to_int(argv[j + 1], "ERR COUNT must be > 0")
            if count < 1 or count > LONG_MAX // 10:
                raise CommandError("ERR COUNT must be > 0")
            j += 2
        elif opt == b"justid":
            justid = True
            j += 1
        else:
            raise CommandError(SYNTAX)
    assert s is not None
    cost = WEIGHT * min(count * 10, len(g.pel))
    done = _applied(
        c, argv, cost, lambda: _xautoclaim_steps(c, argv, s, g, min_idle, start, count, justid)
    )
    if done is NO_REPLY:
        return done
    nxt, ids, fields, deleted = done
    if bigreply.possible(c, len(ids)):
        return bigreply.claimed(c, fmt(nxt), ids, fields, deleted)
    return [fmt(nxt), _entry_list(c, ids, fields), deleted]


def _xautoclaim_steps(
    c: Any,
    argv: list[bytes],
    s: Stream,
    g: Group,
    min_idle: int,
    start: tuple[int, int],
    count: int,
    justid: bool,
) -> bigwork.Steps[tuple[bool, Any]]:
    """
    XAUTOCLAIM's walk of the group's PEL from C{start}, a piece at a time (a COUNT
    of 100,000 tries a million entries), each piece recorded as Redis does.
    """
    key = argv[1]
    now = c.store.now_ms()
    attempts = count * 10
    cons = None
    claimed: list[tuple[int, int]] = []
    deleted: list[bytes] = []
    pel = g.pel
    order = pel.order  # (a compaction makes a new list: this one stays as it is)
    pos = pel.after(start, inclusive=True)
    entries = s.entries
    changed = False
    records: list[list[bytes]] = []
    while pos < len(order) and attempts > 0 and len(claimed) < count:
        i = order[pos]
        pos += 1
        if i not in pel:
            continue
        attempts -= 1
        nack = pel[i]
        if i not in entries:
            records.append(_xclaim_prop(key, g, nack.consumer.name, i, nack))
            del pel[i]
            nack.consumer.pel.pop(i, None)
            deleted.append(fmt(i))
        elif not (min_idle and now - nack.time < min_idle):
            if cons is None:
                cons = _consumer(g, argv[3], now)
            _give(nack, cons, i)
            nack.time = now
            if not justid:
                nack.count += 1
            claimed.append(i)
            records.append(_xclaim_prop(key, g, cons.name, i, nack))
        if len(records) >= PIECE or not pos % PIECE:
            if records:
                changed = True
                _applied_piece(c, key, None)
                for r in records:
                    _record(c, r)
                records = []
            yield
    if records:
        changed = True
        _applied_piece(c, key, None)
        for r in records:
            _record(c, r)
    nxt = ZERO
    while pos < len(order):  # (the next pending entry, or 0-0)
        if order[pos] in pel:
            nxt = order[pos]
            break
        pos += 1
    fields = None if justid else list(map(entries.__getitem__, claimed))
    return changed, (nxt, claimed, fields, deleted)


def _by_name(d: dict[bytes, Any]) -> list[Any]:
    """Groups and consumers in Redis's order (its radix trees sort by name)."""
    return [d[k] for k in sorted(d)]


# -- XINFO --------------------------------------------------------------------------

container("xinfo", X, "A container for stream introspection commands")


def _rax_nodes(s: Stream) -> int:
    # Redis's radix tree of 128-bit keys: an estimate (one more node than keys, at least)
    return len(s.nodes) + 1 if s.nodes else 1


@command(
    "stream", -3, "readonly", X, "Get information about a stream", keys=(2, 2, 1), parent="xinfo"
)
def xinfo_stream(c: Any, argv: list[bytes]) -> Any:
    full = False
    count = 10
    if len(argv) > 3:
        if argv[3].lower() != b"full" or len(argv) in (5,) or len(argv) > 6:
            raise _subsyntax(argv)
        full = True
        if len(argv) == 6 and argv[4].lower() == b"count":
            count = to_int(argv[5])
            if count < 0:
                count = 0
        elif len(argv) != 4:
            raise CommandError(SYNTAX)
    s = _stream(c, argv[2])
    if s is None:
        notify.missed(c, argv[2])
        raise CommandError(NO_KEY)
    head = [
        ("length", len(s)),
        ("radix-tree-keys", len(s.nodes)),
        ("radix-tree-nodes", _rax_nodes(s)),
        ("last-generated-id", fmt(s.last_id)),
        ("max-deleted-entry-id", fmt(s.max_deleted)),
        ("entries-added", s.entries_added),
        ("recorded-first-entry-id", fmt(s.first_id)),
    ]
    if not full:
        first = entry(s, s.ids[0]) if s.ids else None
        last = entry(s, s.ids[-1]) if s.ids else None
        return Map(
            [
                *head,
                ("groups", len(s.groups)),
                ("first-entry", first if first is not None else None),
                ("last-entry", last if last is not None else None),
            ]
        )
    cost = WEIGHT * (
        min(len(s), count or len(s))
        + sum(
            min(len(g.pel), count or len(g.pel)) * 2 + len(g.consumers) for g in s.groups.values()
        )
    )
    return bigwork.compute(c, argv, cost, lambda: _full_steps(c, s, head, count))


def _full_steps(c: Any, s: Stream, head: list[Any], count: int) -> bigwork.Steps[Preencoded]:
    """
    XINFO STREAM FULL's reply, encoded a piece at a time (its entries, its groups'
    and consumers' pending entries: C{count} of each, 0 for all of them).
    """
    enc = c.enc
    out: list[bytes] = []
    chunks: list[bytes] = []
    resp3 = c.resp == 3

    def map_of(n: int) -> None:
        out.append(b"%%%d\r\n" % n if resp3 else b"*%d\r\n" % (2 * n))

    def pairs(items: list[tuple[str, Any]]) -> None:
        for k, v in items:
            enc(k, out)
            enc(v, out)

    done = 0  # elements encoded since the last step

    def array(items: list[Any], make: Any) -> bigwork.Steps[None]:
        nonlocal done, out
        out.append(b"*%d\r\n" % len(items))
        for lo in range(0, len(items), PIECE):
            piece = items[lo : lo + PIECE]
            for x in piece:
                enc(make(x), out)
            done += len(piece)
            if done >= PIECE:
                done = 0
                chunks.append(b"".join(out))  # (joined as it goes: the end joins few)
                out = []
                yield

    map_of(len(head) + 2)
    pairs(head)
    enc("entries", out)
    yield from array(s.ids[:count] if count else s.ids, lambda i: entry(s, i))
    enc("groups", out)
    out.append(b"*%d\r\n" % len(s.groups))
    for g in _by_name(s.groups):
        map_of(7)
        pairs(
            [
                ("name", g.name),
                ("last-delivered-id", fmt(g.last_id)),
                ("entries-read", g.entries_read if g.entries_read != INVALID_READ else None),
                ("lag", s.lag(g)),
                ("pel-count", len(g.pel)),
            ]
        )
        enc("pending", out)
        gpel = g.pel
        yield from array(
            gpel.live_from(0, count),
            lambda i, p=gpel: [fmt(i), p[i].consumer.name, p[i].time, p[i].count],
        )
        enc("consumers", out)
        consumers = _by_name(g.consumers)
        out.append(b"*%d\r\n" % len(consumers))
        for cons in consumers:
            map_of(4)
            pairs([("name", cons.name), ("seen-time", cons.seen), ("pel-count", len(cons.pel))])
            enc("pending", out)
            cpel = cons.pel
            yield from array(
                cpel.live_from(0, count), lambda i, p=cpel: [fmt(i), p[i].time, p[i].count]
            )
            done += 1
    chunks.append(b"".join(out))
    raw = b"".join(chunks)
    return Preencoded(raw, raw)


NO_KEY = "ERR no such key"


@command(
    "groups",
    3,
    "readonly",
    X,
    "List the consumer groups of a stream",
    keys=(2, 2, 1),
    parent="xinfo",
)
def xinfo_groups(c: Any, argv: list[bytes]) -> Any:
    s = _stream(c, argv[2])
    if s is None:
        raise CommandError(NO_KEY)
    return [
        Map(
            [
                ("name", g.name),
                ("consumers", len(g.consumers)),
                ("pending", len(g.pel)),
                ("last-delivered-id", fmt(g.last_id)),
                ("entries-read", g.entries_read if g.entries_read != INVALID_READ else None),
                ("lag", s.lag(g)),
            ]
        )
        for g in _by_name(s.groups)
    ]


@command(
    "consumers",
    4,
    "readonly",
    X,
    "List the consumers in a consumer group",
    keys=(2, 2, 1),
    parent="xinfo",
)
def xinfo_consumers(c: Any, argv: list[bytes]) -> Any:
    s = _stream(c, argv[2])
    if s is None:
        raise CommandError(NO_KEY)
    g = s.groups.get(argv[3])
    if g is None:
        raise _nogroup(argv[2], argv[3])
    now = c.store.now_ms()
    return [
        Map([("name", cons.name), ("pending", len(cons.pel)), ("idle", max(now - cons.seen, 0))])
        for cons in _by_name(g.consumers)
    ]


help_command(
    "xinfo",
    X,
    (
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
    ),
)


_ = NOT_INT
