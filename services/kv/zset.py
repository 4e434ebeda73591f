"""
The sorted set value type (TYPE answers C{zset}): a dict member → score and an
ordered index of C{(score, member)} pairs (a C{sortedcontainers.SortedList}), so
ranks, score ranges and lex ranges are found in O(log N) and a slice of K
elements costs O(log N + K), as Redis's skiplist.

Scores are parsed as Redis parses them (C{strtod} with Redis's checks) by
L{strict_float} (ZADD, ZINCRBY, WEIGHTS, GEOADD…) and L{range_float} (the bounds of
ZRANGEBYSCORE, ZCOUNT…, which Redis reads more loosely).
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterable, Iterator
from itertools import islice

from sortedcontainers import SortedList

from portsuite_services.kv.sharded import SHARD_AT, ShardedDict
from portsuite_services.kv.store import TYPE_NAMES

INF = math.inf


class _Top:
    """Greater than any member: C{(score, TOP)} sorts after every C{(score, member)}."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True


TOP = _Top()


# SortedList's private layout (sortedcontainers 2), filled directly by
# L{sorted_list_steps}; tests/services/kv/test_kv_bigwork_writes.py fails if it changes
LAYOUT = ("_lists", "_maxes", "_len", "_load", "_index")
_HAS_LAYOUT = all(hasattr(SortedList(), name) for name in LAYOUT)
CHUNKS = 8  # sublists of C{_load} pairs a step of L{sorted_list_steps} makes


def sorted_list_steps(pairs: list[tuple[float, bytes]]) -> Generator[None, None, SortedList]:
    """
    A SortedList of C{pairs}, sorted already, a few thousand at a time (a bigwork
    generator): its sublists and maxima filled as C{SortedList.update} fills an empty
    one, since C{SortedList(pairs)} is one call of ~200 ms for a million. Where that
    layout is missing, C{SortedList(pairs)} at once.
    """
    if not _HAS_LAYOUT:
        return SortedList(pairs)
    sl = SortedList()
    load = sl._load
    lists, maxes = sl._lists, sl._maxes
    n = len(pairs)
    for lo in range(0, n, load * CHUNKS):
        for pos in range(lo, min(n, lo + load * CHUNKS), load):
            chunk = pairs[pos : pos + load]
            lists.append(chunk)
            maxes.append(chunk[-1])
        yield
    sl._len = n
    del sl._index[:]
    return sl


class ZSet:
    """A sorted set. Scores are floats, never NaN; members are bytes."""

    __slots__ = ("dict", "sl")

    def __init__(self) -> None:
        self.dict: dict[bytes, float] | ShardedDict[float] = {}  # (sharded when big)
        self.sl = SortedList()

    def __len__(self) -> int:
        return len(self.dict)

    def __bool__(self) -> bool:
        return bool(self.dict)

    def add(self, member: bytes, score: float) -> bool:
        """Set C{member}'s score; True if it was new."""
        score += 0.0  # -0 is stored as 0 (as Redis's listpack stores it)
        d = self.dict
        old = d.get(member)
        if old is None:
            d[member] = score
            self.sl.add((score, member))
            if len(d) > SHARD_AT and type(d) is dict:
                self.dict = ShardedDict(d)  # (big: it grows a shard at a time, see sharded.py)
            return True
        if old != score:  # (-0 and 0 are the same score, as in Redis)
            self.sl.remove((old, member))
            d[member] = score
            self.sl.add((score, member))
        return False

    def insert(self, member: bytes, score: float) -> None:
        """Add C{member}, known to be new (ZADD, which looked it up already)."""
        score += 0.0
        d = self.dict
        d[member] = score
        self.sl.add((score, member))
        if len(d) > SHARD_AT and type(d) is dict:
            self.dict = ShardedDict(d)

    def rescore(self, member: bytes, old: float, score: float) -> None:
        """Change C{member}'s score from C{old}, a different one (ZADD, which looked it up)."""
        score += 0.0
        sl = self.sl
        sl.remove((old, member))
        self.dict[member] = score
        sl.add((score, member))

    def remove(self, member: bytes) -> bool:
        old = self.dict.pop(member, None)
        if old is None:
            return False
        self.sl.remove((old, member))
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.dict.get(member)
        if score is None:
            return None
        return self.sl.index((score, member))

    def items(self, start: int = 0, stop: int | None = None, reverse: bool = False) -> Iterator:
        """The C{(score, member)} pairs at ranks [start, stop) (counted from the end if reverse)."""
        n = len(self.sl)
        if stop is None:
            stop = n
        if reverse:
            return self.sl.islice(n - stop, n - start, reverse=True)
        return self.sl.islice(start, stop)

    # -- ranges ----------------------------------------------------------------

    def score_span(self, lo: float, lo_ex: bool, hi: float, hi_ex: bool) -> tuple[int, int]:
        """Ranks [start, stop) of the scores within the range."""
        sl = self.sl
        start = sl.bisect_right((lo, TOP)) if lo_ex else sl.bisect_left((lo,))
        stop = sl.bisect_left((hi,)) if hi_ex else sl.bisect_right((hi, TOP))
        return start, max(start, stop)

    def _first_lex(self, bound: bytes | None, ex: bool) -> int:
        """The first rank whose member is past the lower bound (None: -)."""
        if bound is None:
            return 0
        sl = self.sl
        lo, hi = 0, len(sl)
        while lo < hi:  # (a binary search on members, as Redis's skiplist walk)
            mid = (lo + hi) // 2
            m = sl[mid][1]
            if m > bound or (m == bound and not ex):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _stop_lex(self, bound: bytes | None, ex: bool) -> int:
        """One past the last rank whose member is within the upper bound (None: +)."""
        sl = self.sl
        if bound is None:
            return len(sl)
        lo, hi = 0, len(sl)
        while lo < hi:
            mid = (lo + hi) // 2
            m = sl[mid][1]
            if m < bound or (m == bound and not ex):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def lex_span(self, lo: LexBound, hi: LexBound, rev: bool = False) -> tuple[int, int]:
        """
        Ranks [start, stop) of the members within the range. (With mixed scores the
        result is Redis's too for a small set, walked as its listpack is.)
        """
        if lo is PLUS or hi is MINUS:
            return 0, 0
        if lo is not MINUS and hi is not PLUS:  # a range that is always empty
            if lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or hi[1])):
                return 0, 0
        if len(self.sl) <= 128 and all(len(m) <= 64 for m in self.dict):
            return self._listpack_lex_span(lo, hi, rev)
        start = self._first_lex(None if lo is MINUS else lo[0], lo[1])  # type: ignore[index]
        stop = self._stop_lex(None if hi is PLUS else hi[0], hi[1])  # type: ignore[index]
        return start, max(start, stop)

    def copy(self) -> ZSet:
        """An independent copy (COPY, RESTORE)."""
        z = ZSet()
        z.dict = self.dict.copy()  # (a big one's: sharded, dict by dict)
        z.sl = SortedList(self.sl)
        return z

    def _listpack_lex_span(self, lo: LexBound, hi: LexBound, rev: bool) -> tuple[int, int]:
        """Redis's listpack walk (zzlFirstInLexRange / zzlLastInLexRange)."""
        members = [m for _, m in self.sl]
        if not members:
            return 0, 0
        gte = _gte_min
        lte = _lte_max
        if not gte(members[-1], lo) or not lte(members[0], hi):
            return 0, 0
        n = len(members)
        if not rev:
            i = 0
            while i < n and not gte(members[i], lo):
                i += 1
            if i == n or not lte(members[i], hi):
                return 0, 0
            j = i
            while j < n and lte(members[j], hi):
                j += 1
            return i, j
        k = n - 1
        while k >= 0 and not lte(members[k], hi):
            k -= 1
        if k < 0 or not gte(members[k], lo):
            return 0, 0
        f = k
        while f >= 0 and gte(members[f], lo):
            f -= 1
        return f + 1, k + 1

    def rewrite_commands(self, key: bytes, copy: bool = False) -> Iterator[list[bytes]]:
        """ZADD batches that rebuild it (the AOF rewrite); C{copy}: of its pairs now."""
        return _zadds(key, list(self.sl) if copy else self.sl)


def _zadds(key: bytes, pairs: Iterable[tuple[float, bytes]]) -> Iterator[list[bytes]]:
    it = iter(pairs)
    while chunk := list(islice(it, 64)):
        batch = [b"ZADD", key]
        for score, member in chunk:
            batch += (format_score(score), member)
        yield batch


TYPE_NAMES[ZSet] = "zset"

LISTPACK_LIMITS = (128, 64)  # Redis 7.0's zset-max-listpack-entries and zset-max-listpack-value


def listpack_fits(z: ZSet, limits: tuple[int, int] = LISTPACK_LIMITS) -> bool:
    """
    Whether Redis keeps a sorted set like C{z} as a listpack (OBJECT ENCODING, ZSCAN,
    DUMP): at most C{limits[0]} members, none longer than C{limits[1]} bytes.
    """
    entries, value = limits
    return len(z) <= entries and all(len(m) <= value for m in z.dict)


# -- lex bounds: (member, exclusive), or MINUS / PLUS ------------------------------

MINUS = ("-", True)
PLUS = ("+", True)
LexBound = tuple


def lex_bound(b: bytes) -> LexBound | None:
    """C{-}, C{+}, C{[member} or C{(member}; None if none of them."""
    if b == b"-":
        return MINUS
    if b == b"+":
        return PLUS
    if b[:1] == b"[":
        return (b[1:], False)
    if b[:1] == b"(":
        return (b[1:], True)
    return None


def _gte_min(m: bytes, lo: LexBound) -> bool:
    if lo is MINUS:
        return True
    if lo is PLUS:
        return False
    return m > lo[0] if lo[1] else m >= lo[0]


def _lte_max(m: bytes, hi: LexBound) -> bool:
    if hi is PLUS:
        return True
    if hi is MINUS:
        return False
    return m < hi[0] if hi[1] else m <= hi[0]


def lex_ok(member: bytes, lo: LexBound, hi: LexBound) -> bool:
    if lo is PLUS or hi is MINUS:
        return False
    if lo is not MINUS and (member < lo[0] or (lo[1] and member == lo[0])):
        return False
    if hi is not PLUS and (member > hi[0] or (hi[1] and member == hi[0])):
        return False
    return True


# -- numbers as Redis reads and prints them ------------------------------------------

_DEC = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEXF = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_INF = re.compile(rb"[+-]?(?:infinity|inf)", re.IGNORECASE)
_NAN = re.compile(rb"[+-]?nan(?:\([0-9a-zA-Z_]*\))?", re.IGNORECASE)
_SPACES = b" \t\n\v\f\r"


def _strtod(b: bytes, pos: int) -> tuple[float, int, bool]:
    """C's strtod from C{pos}: (value, end, out_of_range). end == pos: nothing read."""
    i = pos
    n = len(b)
    while i < n and b[i] in _SPACES:
        i += 1
    m = _INF.match(b, i)
    if m:
        v = -INF if b[i] == 45 else INF
        return v, m.end(), False
    m = _NAN.match(b, i)
    if m:
        return math.nan, m.end(), False
    m = _HEXF.match(b, i)
    if m:
        text = m.group().decode()
        try:
            v = float.fromhex(text)
        except OverflowError:
            return (-INF if text[0] == "-" else INF), m.end(), True
        zero = v == 0 and any(c not in "0.+-xX" for c in text.split("p")[0].split("P")[0])
        return v, m.end(), zero
    m = _DEC.match(b, i)
    if m:
        v = float(m.group())
        if math.isinf(v):
            return v, m.end(), True
        if v == 0:
            mant = m.group().split(b"e")[0].split(b"E")[0]
            return v, m.end(), any(48 < c <= 57 for c in mant)
        return v, m.end(), False
    return 0.0, pos, False


_SIMPLE = re.compile(rb"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def strict_float(b: bytes) -> float | None:
    """
    Redis's C{getDoubleFromObject}: the whole string a number (no leading space),
    not NaN, not out of a double's range; None otherwise.
    """
    if _SIMPLE.fullmatch(b):  # the common case, no overflow possible
        return float(b)
    if not b or b[0] in _SPACES:
        return None
    v, end, erange = _strtod(b, 0)
    if end != len(b) or erange or v != v:
        return None
    return v


def range_float(b: bytes) -> float | None:
    """The bound of a score range (Redis's C{zslParseRange}: C{strtod}, not NaN)."""
    if _SIMPLE.fullmatch(b):
        return float(b)
    v, end, _ = _strtod(b, 0)
    if end < len(b) and b[end] != 0:
        return None
    if v != v:
        return None
    return v


def stored_float(b: bytes) -> float | None:
    """A score as a listpack holds it (Redis reads it with C{strtod}): all of it a number, not NaN."""
    if _SIMPLE.fullmatch(b):
        return float(b)
    v, end, _ = _strtod(b, 0)
    if end == 0 or end != len(b) or v != v:
        return None
    return v


def scanned_float(b: bytes) -> float | None:
    """C{sscanf(b, "%lg")} (an RDB file's text scores): the number at the start, up to a NUL."""
    v, end, _ = _strtod(b.split(b"\0", 1)[0], 0)
    return None if end == 0 else v


def score_bound(b: bytes) -> tuple[float, bool] | None:
    """C{(5} (exclusive) or C{5}; None if not a number."""
    if b[:1] == b"(":
        v = range_float(b[1:])
        return None if v is None else (v, True)
    v = range_float(b)
    return None if v is None else (v, False)


def format_score(v: float) -> bytes:
    """A score as Redis prints it (C{%.17g}; C{inf}, C{-inf})."""
    if v == INF:
        return b"inf"
    if v == -INF:
        return b"-inf"
    return b"%.17g" % v
