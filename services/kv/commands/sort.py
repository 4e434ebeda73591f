"""
SORT and SORT_RO over lists, sets and sorted sets (Redis 7's sort.c): BY (a
pattern, or a constant such as C{nosort} to keep the native order), LIMIT, GET
(C{#}, C{key_*}, C{hash_*->field}), ASC/DESC, ALPHA, STORE.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from itertools import islice
from operator import itemgetter
from typing import Any

from portsuite_services.kv import bigreply, bigwork
from portsuite_services.kv.commands import (
    NO_REPLY,
    SYNTAX,
    CommandError,
    command,
    to_int,
    wrongtype,
)
from portsuite_services.kv.sharded import kind
from portsuite_services.kv.zset import ZSet, _strtod

NOT_DOUBLE = "ERR One or more scores can't be converted into double"


def lookup_by_pattern(c: Any, pattern: bytes, subst: bytes) -> bytes | None:
    """Redis's C{lookupKeyByPattern}: C{#}, C{prefix*suffix} or C{prefix*suffix->field}."""
    if pattern == b"#":
        return subst
    star = pattern.find(b"*")
    if star < 0:
        return None
    arrow = pattern.find(b"->", star + 1)
    field = None
    if arrow >= 0 and arrow + 2 < len(pattern):
        field = pattern[arrow + 2 :]
        key = pattern[:star] + subst + pattern[star + 1 : arrow]
    else:
        key = pattern[:star] + subst + pattern[star + 1 :]
    v = c.store.get(key)
    if v is None:
        return None
    if field is not None:
        return v.get(field) if kind(v) is dict else None
    return v if type(v) is bytes else None


def _number(b: bytes) -> float | None:
    v, end, erange = _strtod(b, 0)
    if (end < len(b) and b[end] != 0) or erange or v != v:
        return None
    return v


def _full_key_access(c: Any) -> bool:
    """
    BY and GET read keys named by a pattern, which no key spec can show the ACL:
    as Redis 7, only a user that may read every key can use them.
    """
    user = getattr(c, "acl_user", None)
    return user is None or user.full_key_access()


class _Options:
    """What SORT's arguments ask for."""

    __slots__ = ("desc", "alpha", "dontsort", "start", "count", "store", "sortby", "gets")

    def __init__(self) -> None:
        self.desc = self.alpha = self.dontsort = False
        self.start, self.count = 0, -1
        self.store: bytes | None = None
        self.sortby: bytes | None = None
        self.gets: list[bytes] = []


def _options(c: Any, argv: list[bytes], readonly: bool) -> bigwork.Steps[_Options]:
    """SORT's options, C{bigwork.PIECE} arguments a step (GET # 600,000 times took 0.3 s)."""
    o = _Options()
    gets = o.gets
    j = 2
    n = len(argv)
    mark = j + bigwork.PIECE
    while j < n:
        if j >= mark:
            mark = j + bigwork.PIECE
            yield
        a = argv[j].lower()
        left = n - j - 1
        if a == b"asc":
            o.desc = False
        elif a == b"desc":
            o.desc = True
        elif a == b"alpha":
            o.alpha = True
        elif a == b"limit" and left >= 2:
            o.start = to_int(argv[j + 1])
            o.count = to_int(argv[j + 2])
            j += 2
        elif not readonly and a == b"store" and left >= 1:
            o.store = argv[j + 1]
            j += 1
        elif a == b"by" and left >= 1:
            o.sortby = argv[j + 1]
            o.dontsort = b"*" not in o.sortby
            if not o.dontsort and not _full_key_access(c):
                raise CommandError(
                    "ERR BY option of SORT denied due to insufficient ACL permissions."
                )
            j += 1
        elif a == b"get" and left >= 1:
            if not _full_key_access(c):
                raise CommandError(
                    "ERR GET option of SORT denied due to insufficient ACL permissions."
                )
            gets.append(argv[j + 1])
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    return o


def sort_generic(c: Any, argv: list[bytes], readonly: bool) -> Any:
    if len(argv) > bigwork.ARGS:  # many options: read in slices too, then the sort's steps
        done = bigwork.compute(c, argv, 4 * len(argv), lambda: _sort_all(c, argv, readonly))
        if done is NO_REPLY:
            return done
        o, result = done
    else:
        o = bigwork.run_through(_options(c, argv, readonly))
        cost, work = _work(c, argv[1], o)
        result = bigwork.compute(c, argv, cost, work)
        if result is NO_REPLY:
            return result
    store = o.store
    if store is None:
        reply = bigreply.nullable_array if o.gets else bigreply.array
        return reply(c, result, own=True)
    c.touched = [store]
    if result:
        c.store.set(store, result if type(result) is deque else deque(result))
    elif c.store.drop(store):
        c.store.dirty += 1
    return len(result)


def _sort_all(c: Any, argv: list[bytes], readonly: bool) -> bigwork.Steps[tuple[_Options, Any]]:
    """SORT of many arguments: its options, then its elements, in slices."""
    o = yield from _options(c, argv, readonly)
    _, work = _work(c, argv[1], o)
    result = yield from work()
    return o, result


def _work(c: Any, key: bytes, o: _Options) -> tuple[int, Callable[[], bigwork.Steps[Any]]]:
    """How many elements the sort touches, and its steps."""
    value = c.store.get(key)
    t = kind(value)  # (a big set, sharded, is a set)
    if value is not None and t is not deque and t is not set and t is not ZSet:
        raise wrongtype()
    if value is None:
        value, t = deque(), deque
    dontsort, alpha, sortby = o.dontsort, o.alpha, o.sortby
    if dontsort and t is set and o.store is not None:
        dontsort, alpha, sortby = False, True, None  # a set's order must be reproducible
    size = len(value)
    start = max(o.start, 0)
    end = size - 1 if o.count < 0 else start + o.count - 1
    if start >= size:
        start, end = size - 1, size - 2
    end = min(end, size - 1)
    gets = o.gets
    if dontsort and t is not set:
        cost = max(0, end - start + 1) * (1 + len(gets))
    else:
        cost = size * (1 + len(gets))
    storing = o.store is not None
    work = lambda: _sort_steps(  # noqa: E731
        c, value, t, dontsort, o.desc, alpha, sortby, gets, start, end, storing
    )
    if storing:
        return cost, lambda: _as_deque(work())
    return cost, work


def _as_deque(steps: bigwork.Steps[list[Any]]) -> bigwork.Steps[deque[Any]]:
    """
    What SORT … STORE stores: the list its steps made, as a deque made a piece a step
    when big (one C{deque()} of a million elements held the loop), the list then freed
    by lazyfree.
    """
    items = yield from steps
    if len(items) < bigwork.BIG:
        return deque(items)
    out: deque[Any] = deque()
    yield from bigwork.fill(out.extend, items)
    yield items  # (done with: freed a slice at a time)
    return out


def _sort_steps(
    c: Any,
    value: Any,
    t: type,
    dontsort: bool,
    desc: bool,
    alpha: bool,
    sortby: bytes | None,
    gets: list[bytes],
    start: int,
    end: int,
    storing: bool,
) -> bigwork.Steps[list[Any]]:
    """The elements of SORT's reply (or of what it stores), in slices when many."""
    if dontsort and t is not set:
        # the native order (from the tail with DESC), only the range asked
        if end >= start:
            if t is ZSet:
                pairs = value.items(start, end + 1, desc)
                items = yield from bigwork.take(map(itemgetter(1), pairs), end + 1 - start)
            else:
                it = reversed(value) if desc else iter(value)
                items = yield from bigwork.take(islice(it, start, None), end + 1 - start)
        else:
            items = []
        start, end = 0, len(items) - 1
    else:
        items = yield from bigwork.as_list(value.dict if t is ZSet else value)
    if not dontsort:
        items = yield from _sorted(c, items, sortby, alpha, desc, storing)
    if start == 0 and end == len(items) - 1:
        out_items = items
    else:
        out_items = items[start : end + 1] if end >= start else []
    if not gets:
        return out_items
    out: list[Any] = []
    # a step looks up about PIECE patterns: a piece of the elements, or of one's GETs
    per = max(1, bigwork.PIECE // len(gets))
    for i in range(0, len(out_items), per):
        for x in out_items[i : i + per]:
            for lo in range(0, len(gets), bigwork.PIECE):
                for g in gets[lo : lo + bigwork.PIECE]:
                    v = lookup_by_pattern(c, g, x)
                    out.append(b"" if v is None and storing else v)
                if per == 1:
                    yield
        if per > 1:
            yield
    return out


def _sorted(
    c: Any, items: list[bytes], sortby: bytes | None, alpha: bool, desc: bool, storing: bool
) -> bigwork.Steps[list[bytes]]:
    piece = bigwork.PIECE
    if alpha:
        if sortby is None:
            done = yield from bigwork.sort(items)
            if desc:
                done.reverse()
            return done

        # (a key, its place) as one bytes string, no tuple nor key object each for the
        # GC to walk: a missing key (None) first, then the values byte by byte (up to a
        # NUL, as strcoll reads them, unless storing; NULs escaped, the end marked, so
        # that a prefix sorts first), then the place: equal keys keep the elements'
        # order, with DESC too (the place counted from the end, and all reversed)
        n = len(items)
        last = n - 1 if desc else 0
        keyed: list[bytes] = []
        for i in range(0, n, piece):
            for j, x in enumerate(items[i : i + piece], i):
                by = lookup_by_pattern(c, sortby, x)
                place = abs(last - j).to_bytes(8, "big")
                if by is None:
                    keyed.append(b"\0" + place)
                    continue
                if not storing:
                    by = by.split(b"\0", 1)[0]
                keyed.append(b"\1" + by.replace(b"\0", b"\0\1") + b"\0\0" + place)
            yield
        keyed = yield from bigwork.sort(keyed)
        if desc:
            keyed.reverse()
        out: list[bytes] = []
        for i in range(0, n, piece):
            out += [items[abs(last - int.from_bytes(k[-8:], "big"))] for k in keyed[i : i + piece]]
            yield
        yield keyed  # (done with: freed by lazyfree)
        return out
    keys: list[bytes] = []  # (score, element) as one bytes: no tuple each for the GC to walk
    bad = False
    for i in range(0, len(items), piece):
        for x in items[i : i + piece]:
            by = x if sortby is None else lookup_by_pattern(c, sortby, x)
            if by is None:
                keys.append(ZERO_KEY + x)
                continue
            # (plain digits, the usual case, are parsed in C: strtod would give the same)
            v = float(by) if len(by) < 16 and by.isdigit() else _number(by)
            if v is None:
                bad = True
                v = 0.0
            keys.append(_sortable(v) + x)
        yield
    if bad:
        raise CommandError(NOT_DOUBLE)
    yield items  # (done with: freed by lazyfree)
    del items
    keys = yield from bigwork.sort(keys)
    if desc:
        keys.reverse()
    out = []
    for i in range(0, len(keys), piece):
        out += [k[8:] for k in keys[i : i + piece]]
        yield
    yield keys
    return out


_double = struct.Struct(">d").pack
SIGN = 1 << 63
ALL = (1 << 64) - 1


def _sortable(v: float) -> bytes:
    """8 bytes that compare as C{v} does (-0.0 as 0.0): bytes sort as the scores."""
    bits = int.from_bytes(_double(v + 0.0), "big")
    return (bits ^ ALL if bits & SIGN else bits | SIGN).to_bytes(8, "big")


ZERO_KEY = _sortable(0.0)


@command("sort", -2, "write denyoom", "generic", "Sort the elements in a list, set or sorted set")
def sort(c: Any, argv: list[bytes]) -> Any:
    return sort_generic(c, argv, False)


@command("sort_ro", -2, "readonly", "generic", "Sort the elements (read-only variant of SORT)")
def sort_ro(c: Any, argv: list[bytes]) -> Any:
    return sort_generic(c, argv, True)
