"""
Sorted set commands (Redis 7's t_zset.c): replies, errors and edge cases as Redis
gives them. Scores are L{Double} replies: bulk strings in RESP2, doubles in RESP3;
WITHSCORES pairs are flat in RESP2 and nested in RESP3.

The pop logic (L{pop_entries}, L{zmpop_keys}) is kept in functions the blocking
forms (BZPOPMIN, BZPOPMAX, BZMPOP) call.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any

from portsuite_services.kv import bigreply, bigwork, glob, notify, randompick, sharded, tuning
from portsuite_services.kv.blocking import NOT_READY, parse_timeout, retrying
from portsuite_services.kv.commands import (
    NO_REPLY,
    NOT_INT,
    SYNTAX,
    CommandError,
    command,
    to_int,
    wrong_arity,
    wrongtype,
)
from portsuite_services.kv.commands.keys import scan_reply
from portsuite_services.kv.resp import LLONG_MAX, NULL_ARRAY, Double, Preencoded, string2ll
from portsuite_services.kv.sharded import SHARD_AT, ShardedDict, copy_steps, kind, new_like
from portsuite_services.kv.zset import (
    ZSet,
    format_score,
    lex_bound,
    listpack_fits,
    score_bound,
    sorted_list_steps,
    strict_float,
)

Z = "sorted-set"
NOT_FLOAT = "ERR value is not a valid float"
RANGE_NOT_FLOAT = "ERR min or max is not a float"
LEX_INVALID = "ERR min or max not valid string range item"
NAN_SCORE = "ERR resulting score is not a number (NaN)"
POSITIVE = "ERR value is out of range, must be positive"
MAX_RANDOM = 1 << 24  # ZRANDMEMBER key -COUNT: members drawn at most (Redis: ~2^62)


def get_zset(c: Any, key: bytes) -> ZSet | None:
    v = c.store.get(key)
    if v is None or type(v) is ZSet:
        return v
    raise wrongtype()


def _score(b: bytes, error: str = NOT_FLOAT) -> float:
    v = strict_float(b)
    if v is None:
        raise CommandError(error)
    return v


def _long(b: bytes) -> int:
    return to_int(b, NOT_INT)


BIG = 256  # a reply of this many members is encoded here, in one go
ADDS = bigwork.PIECE // 4  # members added to a SortedList a step (each costs a bisect and insort)


def members_reply(c: Any, pairs: Any, own: bool = False) -> Any:
    """
    The members of C{(score, member)} pairs as an array reply (C{own}: a list
    nothing else holds, freed in slices after a reply sent in slices).
    """
    if not isinstance(pairs, list):
        pairs, own = list(pairs), True
    if bigreply.possible(c, len(pairs)):
        return bigreply.members(c, pairs, own)
    members = [m for _, m in pairs]
    if len(members) < BIG:
        return members
    raw = b"*%d\r\n%s" % (len(members), b"".join([b"$%d\r\n%s\r\n" % (len(m), m) for m in members]))
    return Preencoded(raw, raw)


def with_scores(c: Any, pairs: Any, own: bool = False) -> Any:
    """
    C{(score, member)} pairs as a WITHSCORES reply (flat in RESP2, pairs in RESP3);
    C{own} as for L{members_reply}.
    """
    if not isinstance(pairs, list):
        pairs, own = list(pairs), True
    sliced = bigreply.scored(c, pairs, format_score, own)
    if sliced is not None:
        return sliced
    if len(pairs) >= BIG:  # (the same bytes encode2/encode3 would write, without a call each)
        f = format_score
        if c.resp == 2:
            body = b"".join(
                [b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(m), m, len(x := f(s)), x) for s, m in pairs]
            )
            raw = b"*%d\r\n%s" % (2 * len(pairs), body)
        else:
            body = b"".join([b"*2\r\n$%d\r\n%s\r\n,%s\r\n" % (len(m), m, f(s)) for s, m in pairs])
            raw = b"*%d\r\n%s" % (len(pairs), body)
        return Preencoded(raw, raw)
    if c.resp == 2:
        out: list[Any] = []
        for s, m in pairs:
            out += (m, Double(s))
        return out
    return [[m, Double(s)] for s, m in pairs]


def _drop_if_empty(c: Any, key: bytes, z: ZSet) -> None:
    if not z:
        c.store.delete(key)


# -- adding ------------------------------------------------------------------------


@command("zadd", -4, "write denyoom fast", Z, "Add members to a sorted set, or update scores")
def zadd(c: Any, argv: list[bytes]) -> Any:
    nx = xx = ch = incr = gt = lt = False
    i = 2
    n = len(argv)
    while i < n:
        o = argv[i].lower()
        if o == b"nx":
            nx = True
        elif o == b"xx":
            xx = True
        elif o == b"ch":
            ch = True
        elif o == b"incr":
            incr = True
        elif o == b"gt":
            gt = True
        elif o == b"lt":
            lt = True
        else:
            break
        i += 1
    elements = n - i
    if elements % 2 or not elements:
        raise CommandError(SYNTAX)
    if incr and elements > 2:
        raise CommandError("ERR INCR option supports a single increment-element pair")
    if nx and xx:
        raise CommandError("ERR XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
    key = argv[1]
    z = get_zset(c, key)
    if z is None and xx:
        return None if incr else 0
    flags = (nx, xx, incr, gt, lt)
    if elements >= 2 * ARGS_ZSET:  # a million members: the new zset built aside, in slices
        made = _aside(c, argv, z, i, flags)
        if made is NO_REPLY:
            return made
        if made is not None:
            return store_aside(c, argv, made, incr, ch)
    scores = list(map(_score, argv[i:n:2]))  # (map, no comprehension: argv stays a plain local)
    if z is None:
        z = ZSet()
        c.store.set(key, z)
    try:
        if elements >= 2 * ADDS and len(z) > SHARD_AT:  # inserts into a big index: in slices
            done = _inserted(c, argv, z, i, scores, flags)
            if done is NO_REPLY:
                return done
        else:
            done = bigwork.run_through(_zadd_steps(z, argv, i, scores, flags))
        added, updated, processed, new_score = done
    except CommandError:
        _drop_if_empty(c, key, z)
        raise
    if added or updated:
        c.store.dirty += 1
    else:
        _drop_if_empty(c, key, z)
    return _zadd_reply(incr, ch, added, updated, processed, new_score)


# (ZADD's work in slices, its lambdas out of zadd: a closure there made every local it
# names a cell, read through it on the path of every small ZADD too)


def _aside(c: Any, argv: list[bytes], z: ZSet | None, i: int, flags: tuple[bool, ...]) -> Any:
    """L{_zadd_aside} through L{bigwork.sliced} (None: ZADD changes C{z} in place)."""
    cost = 2 * (len(argv) - i + len(z or ()))
    return bigwork.sliced(c, argv, cost, lambda: _zadd_aside(z, argv, i, flags))


def _inserted(
    c: Any, argv: list[bytes], z: ZSet, i: int, scores: list[float], flags: tuple[bool, ...]
) -> Any:
    """L{_zadd_steps} into a big sorted set, as an applied job (bigwork.py)."""
    cost = INSERT_COST * len(scores)
    return bigwork.applied(c, argv, cost, lambda: _zadd_steps(z, argv, i, scores, flags))


def store_aside(c: Any, argv: list[bytes], made: Any, incr: bool, ch: bool) -> Any:
    """ZADD's (or GEOADD's) sorted set built aside by L{_zadd_aside}: stored; the reply."""
    z2, (added, updated, processed, new_score) = made
    if added or updated:
        c.store.set(argv[1], z2, keepttl=True)  # (the old zset freed lazily)
    # a million score strings nothing else holds: freed a slice per turn, once
    # the dispatch (AOF, notifications) is done with argv
    c.server.lazyfree.free(argv)
    return _zadd_reply(incr, ch, added, updated, processed, new_score)


def _zadd_reply(
    incr: bool, ch: bool, added: int, updated: int, processed: int, new_score: float
) -> Any:
    if incr:
        return Double(new_score) if processed else None
    return added + updated if ch else added


def _zadd_steps(
    z: ZSet | _Scores, argv: list[bytes], i: int, scores: list[float], flags: tuple[bool, ...]
) -> bigwork.Steps[tuple[int, int, int, float]]:
    """
    ZADD's changes to C{z}, C{ADDS} members a step (a quarter of that into a big
    sorted set, whose inserts miss the caches): (added, updated, processed, score).
    """
    nx, xx, incr, gt, lt = flags
    added = updated = 0
    processed = 0
    d = z.dict
    if len(d) + len(scores) > SHARD_AT and type(d) is dict:
        d = z.dict = ShardedDict(d)  # (big: it grows a shard at a time, see sharded.py)
    every = ADDS // 4 if type(d) is not dict and type(z) is ZSet else ADDS
    new_score = 0.0
    for k, score in enumerate(scores):
        if k and not k % every:
            yield
        member = argv[i + 2 * k + 1]
        cur = d.get(member)
        if cur is not None:
            if nx:
                continue
            if incr:
                score = cur + score
                if score != score:
                    raise CommandError(NAN_SCORE)
            if (lt and score >= cur) or (gt and score <= cur):
                continue
            new_score = score
            if score != cur:  # (-0 and 0 are the same score, as in Redis)
                z.rescore(member, cur, score)
                updated += 1
            processed += 1
        else:
            if xx:
                continue
            z.insert(member, score)
            new_score = score
            added += 1
            processed += 1
    return added, updated, processed, new_score


ARGS_ZSET = bigwork.BIG // 4  # ZADD's pairs from which the new zset is built aside (~20 ms)
# what a member ZADD inserts into a big sorted set costs, in the elements of bigwork's
# cost (a random insert misses the caches: ~10 µs, 10,000 of them 120-170 ms at load 6)
INSERT_COST = 32


class _Scores:
    """A sorted set being built aside by ZADD: its scores only (sorted at the end)."""

    __slots__ = ("dict",)

    def __init__(self, d: dict[bytes, float]):
        self.dict = d

    def add(self, member: bytes, score: float) -> bool:
        self.dict[member] = score + 0.0  # (-0 stored as 0, as ZSet.add)
        return True

    def insert(self, member: bytes, score: float) -> None:
        self.dict[member] = score + 0.0

    def rescore(self, member: bytes, old: float, score: float) -> None:
        self.dict[member] = score + 0.0


def _zadd_aside(
    z: ZSet | None, argv: list[bytes], i: int, flags: tuple[bool, ...]
) -> bigwork.Steps[tuple[ZSet, tuple[int, int, int, float]]]:
    """
    A big ZADD on a copy of C{z}'s scores (the scores checked first, as Redis), then
    the sorted set built from them (L{zset_steps}).
    """
    n = len(argv)
    scores: list[float] = []
    for lo in range(i, n, 2 * bigwork.PIECE):
        scores += [_score(argv[j]) for j in range(lo, min(n, lo + 2 * bigwork.PIECE), 2)]
        yield
    aside = _Scores((yield from copy_steps(z.dict)) if z else {})
    counts = yield from _zadd_steps(aside, argv, i, scores, flags)
    made = yield from zset_steps(aside.dict)
    return made, counts


def zset_steps(d: dict[bytes, float] | ShardedDict[float]) -> bigwork.Steps[ZSet]:
    """A ZSet of these scores (its own dict): pairs made, sorted and laid out in slices."""
    pairs: list[tuple[float, bytes]] = []
    it = iter(d.items())
    for _ in range(0, len(d), bigwork.PIECE):
        pairs += [(s, m) for m, s in islice(it, bigwork.PIECE)]
        yield
    pairs = yield from bigwork.sort(pairs)
    z = ZSet()
    z.dict = d
    z.sl = yield from sorted_list_steps(pairs)
    return z


@command("zincrby", 4, "write denyoom fast", Z, "Increment the score of a member in a sorted set")
def zincrby(c: Any, argv: list[bytes]) -> Any:
    by = _score(argv[2])
    key = argv[1]
    z = get_zset(c, key)
    created = z is None
    if z is None:
        z = ZSet()
    cur = z.dict.get(argv[3], 0.0)
    score = cur + by
    if score != score:
        raise CommandError(NAN_SCORE)
    if created:
        c.store.set(key, z)
    z.add(argv[3], score)
    c.store.dirty += 1
    return Double(score)


# -- reading -----------------------------------------------------------------------


@command("zcard", 2, "readonly fast", Z, "Get the number of members in a sorted set")
def zcard(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    return len(z) if z is not None else 0


@command("zscore", 3, "readonly fast", Z, "Get the score associated with the given member")
def zscore(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    if z is None:
        return None
    s = z.dict.get(argv[2])
    return None if s is None else Double(s)


@command("zmscore", -3, "readonly fast", Z, "Get the score associated with the given members")
def zmscore(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    d = z.dict if z is not None else {}
    if len(argv) > bigwork.ARGS:  # a million members: looked up in slices
        return bigwork.each(c, argv, 2, lambda members: _scores_of(d, members), 2)
    return _scores_of(d, argv[2:])


def _scores_of(d: Mapping[bytes, float], members: list[bytes]) -> list[Double | None]:
    return [None if s is None else Double(s) for s in map(d.get, members)]


def _rank(c: Any, argv: list[bytes], rev: bool) -> Any:
    if len(argv) > 4:
        raise wrong_arity(argv[0].decode("latin-1").lower())
    withscore = False
    if len(argv) == 4:
        if argv[3].lower() != b"withscore":
            raise CommandError(SYNTAX)
        withscore = True
    null = NULL_ARRAY if withscore else None
    z = get_zset(c, argv[1])
    if z is None:
        return null
    r = z.rank(argv[2])
    if r is None:
        return null
    if rev:
        r = len(z) - 1 - r
    if withscore:
        return [r, Double(z.dict[argv[2]])]
    return r


@command("zrank", -3, "readonly fast", Z, "Determine the index of a member in a sorted set")
def zrank(c: Any, argv: list[bytes]) -> Any:
    return _rank(c, argv, False)


@command("zrevrank", -3, "readonly fast", Z, "Determine the index of a member, high to low")
def zrevrank(c: Any, argv: list[bytes]) -> Any:
    return _rank(c, argv, True)


def _score_range(lo: bytes, hi: bytes) -> tuple[float, bool, float, bool]:
    a, b = score_bound(lo), score_bound(hi)
    if a is None or b is None:
        raise CommandError(RANGE_NOT_FLOAT)
    return a[0], a[1], b[0], b[1]


def _lex_range(lo: bytes, hi: bytes) -> tuple[Any, Any]:
    a, b = lex_bound(lo), lex_bound(hi)
    if a is None or b is None:
        raise CommandError(LEX_INVALID)
    return a, b


@command("zcount", 4, "readonly fast", Z, "Count the members in a sorted set with scores within")
def zcount(c: Any, argv: list[bytes]) -> Any:
    rng = _score_range(argv[2], argv[3])
    z = get_zset(c, argv[1])
    if z is None:
        return 0
    start, stop = z.score_span(*rng)
    return stop - start


@command("zlexcount", 4, "readonly fast", Z, "Count the members between a lexicographical range")
def zlexcount(c: Any, argv: list[bytes]) -> Any:
    lo, hi = _lex_range(argv[2], argv[3])
    z = get_zset(c, argv[1])
    if z is None:
        return 0
    start, stop = z.lex_span(lo, hi)
    return stop - start


# -- ZRANGE and its older forms ----------------------------------------------------

RANK, SCORE, LEX = "rank", "score", "lex"


def _rank_span(n: int, start: int, end: int) -> tuple[int, int]:
    if start < 0:
        start = n + start
    if end < 0:
        end = n + end
    if start < 0:
        start = 0
    if start > end or start >= n:
        return 0, 0
    if end >= n:
        end = n - 1
    return start, end + 1


def zrange_generic(
    c: Any,
    argv: list[bytes],
    src_at: int,
    kind: str | None,
    rev: bool | None,
    store: bytes | None = None,
) -> Any:
    """
    Redis's C{zrangeGenericCommand}: C{kind}/C{rev} None when the arguments say
    (ZRANGE, ZRANGESTORE); the older commands fix them.
    """
    withscores = False
    offset, limit = 0, -1
    j = src_at + 3
    n = len(argv)
    while j < n:
        o = argv[j].lower()
        left = n - j - 1
        if o == b"withscores" and store is None:
            withscores = True
        elif o == b"limit" and left >= 2:
            offset = _long(argv[j + 1])
            limit = _long(argv[j + 2])
            j += 2
        elif rev is None and o == b"rev":
            rev = True
        elif kind is None and o == b"bylex":
            kind = LEX
        elif kind is None and o == b"byscore":
            kind = SCORE
        else:
            raise CommandError(SYNTAX)
        j += 1
    rev = bool(rev)
    kind = kind or RANK
    if limit != -1 and kind == RANK:
        raise CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    if withscores and kind == LEX:
        raise CommandError("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    lo_arg, hi_arg = argv[src_at + 1], argv[src_at + 2]
    if rev and kind != RANK:
        lo_arg, hi_arg = hi_arg, lo_arg
    if kind == RANK:
        rstart, rend = _long(lo_arg), _long(hi_arg)
    elif kind == SCORE:
        srange = _score_range(lo_arg, hi_arg)
    else:
        lrange = _lex_range(lo_arg, hi_arg)
    z = get_zset(c, argv[src_at])
    if z is None:
        return _store_range(c, store, None) if store is not None else []
    size = len(z)
    if kind == RANK:
        start, stop = _rank_span(size, rstart, rend)
    else:
        if kind == SCORE:
            start, stop = z.score_span(*srange)
        else:
            start, stop = z.lex_span(*lrange, rev)
        if rev:  # ranks counted from the top
            start, stop = size - stop, size - start
        if offset < 0:
            start = stop
        else:
            start = min(stop, start + offset)
        if limit >= 0:
            stop = min(stop, start + limit)
    pairs = z.items(start, stop, rev)
    if store is not None:
        if stop <= start:
            return _store_range(c, store, None)
        made = bigwork.compute(c, argv, stop - start, lambda: _zset_from(pairs, stop - start, rev))
        if made is NO_REPLY:
            return made
        return _store_range(c, store, made)
    if withscores:
        return with_scores(c, pairs)
    return members_reply(c, pairs)


def _store_range(c: Any, dest: bytes, z: ZSet | None) -> int:
    """ZRANGESTORE's, ZUNIONSTORE's… store: C{z}, or the key deleted (None: empty)."""
    c.touched = [dest]
    if z is None:
        if c.store.drop(dest):
            c.store.dirty += 1
        return 0
    c.store.set(dest, z)
    return len(z)


def _zset_from(pairs: Any, n: int, rev: bool) -> bigwork.Steps[ZSet]:
    """
    A ZSet of the C{n} C{(score, member)} pairs of C{pairs} (in order, or in reverse
    order if C{rev}), a piece at a time: its index laid out from them as they are.
    """
    got = yield from bigwork.take(pairs, n)
    if rev:
        got.reverse()
    return (yield from _laid_out(got))


@command("zrange", -4, "readonly", Z, "Return a range of members in a sorted set")
def zrange(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 1, None, None)


@command(
    "zrangestore",
    -5,
    "write denyoom",
    Z,
    "Store a range of members from sorted set into another key",
    keys=(1, 2, 1),
)
def zrangestore(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 2, None, None, store=argv[1])


@command("zrevrange", -4, "readonly", Z, "Return a range of members, by index, high to low")
def zrevrange(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 1, RANK, True)


@command("zrangebyscore", -4, "readonly", Z, "Return a range of members by score")
def zrangebyscore(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 1, SCORE, False)


@command("zrevrangebyscore", -4, "readonly", Z, "Return a range of members by score, high to low")
def zrevrangebyscore(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 1, SCORE, True)


@command("zrangebylex", -4, "readonly", Z, "Return a range of members by lexicographical range")
def zrangebylex(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 1, LEX, False)


@command("zrevrangebylex", -4, "readonly", Z, "Return a range of members by lex range, high to low")
def zrevrangebylex(c: Any, argv: list[bytes]) -> Any:
    return zrange_generic(c, argv, 1, LEX, True)


# -- removing ----------------------------------------------------------------------


@command("zrem", -3, "write fast", Z, "Remove one or more members from a sorted set")
def zrem(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    if z is None:
        return 0
    members = bigwork.removed(c, argv, lambda: _present(z, argv))  # (a million: in slices)
    if members is NO_REPLY or type(members) is int:
        return members
    n = 0
    for m in members:
        if z.remove(m):
            n += 1
    if n:
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], z)
    return n


REMOVES = bigwork.PIECE  # members a ZREM removes in place at most (each ~3 µs), else aside


def _present(z: ZSet, argv: list[bytes]) -> bigwork.Steps[tuple[Any, ZSet | None]]:
    """
    ZREM's members C{argv[2:]} that C{z} holds, as a set; when they are more than
    C{REMOVES}, the sorted set without them too (empty: all of them), built a piece
    at a time (else None: they are removed in place).
    """
    d = z.dict
    gone: set[bytes] = set()
    for lo in range(2, len(argv), bigwork.PIECE):
        gone.update(d.keys() & argv[lo : lo + bigwork.PIECE])  # (looked up in C)
        yield
    if len(gone) <= REMOVES:
        return gone, None
    if len(gone) == len(d):
        return gone, ZSet()
    pairs: list[tuple[float, bytes]] = []
    it = iter(z.sl)
    for _ in range(0, len(d), bigwork.PIECE):
        pairs += [p for p in islice(it, bigwork.PIECE) if p[1] not in gone]
        yield
    return gone, (yield from _laid_out(pairs))


def _remove_span(c: Any, argv: list[bytes], z: ZSet, start: int, stop: int) -> Any:
    """ZREMRANGEBY*: the members at ranks [start, stop) removed (the rest kept aside when many)."""
    if stop <= start:
        return 0
    key = argv[1]
    if stop - start == len(z):  # all of it: the key goes (its zset freed lazily)
        c.store.drop(key)
        return stop - start
    if stop - start >= bigwork.BIG:  # a million removed: the kept ones made a new zset, in slices
        kept = bigwork.sliced(c, argv, len(z), lambda: _kept(z, start, stop))
        if kept is NO_REPLY:
            return kept
        if kept is not None:
            if kept:
                c.store.set(key, kept, keepttl=True)  # (the old zset freed lazily)
            else:
                c.store.drop(key)
            return stop - start
    sl = z.sl
    d = z.dict
    if stop - start > len(sl) // 2:  # rebuild rather than delete one by one
        kept = list(sl.islice(0, start)) + list(sl.islice(stop, len(sl)))
        for _, m in sl.islice(start, stop):
            del d[m]
        sl.clear()
        sl.update(kept)
    else:
        for _, m in list(sl.islice(start, stop)):
            del d[m]
        del sl[start:stop]
    c.store.dirty += 1
    _drop_if_empty(c, key, z)
    return stop - start


def _kept(z: ZSet, start: int, stop: int) -> bigwork.Steps[ZSet]:
    """A new ZSet of C{z}'s members outside ranks [start, stop), built a piece at a time."""
    pairs = yield from bigwork.take(z.sl.islice(0, start), start)
    pairs += yield from bigwork.take(z.sl.islice(stop, len(z)), len(z) - stop)
    return (yield from _laid_out(pairs))


def _laid_out(pairs: list[tuple[float, bytes]]) -> bigwork.Steps[ZSet]:
    """A new ZSet of C{pairs} (in order already), built a piece at a time."""
    d: Any = new_like(dict, len(pairs))  # (a big one: sharded, see sharded.py)
    for lo in range(0, len(pairs), bigwork.PIECE):
        d.update([(m, s) for s, m in pairs[lo : lo + bigwork.PIECE]])
        yield
    z = ZSet()
    z.dict = d
    z.sl = yield from sorted_list_steps(pairs)
    return z


@command("zremrangebyrank", 4, "write", Z, "Remove all members within the given indexes")
def zremrangebyrank(c: Any, argv: list[bytes]) -> Any:
    start, end = _long(argv[2]), _long(argv[3])
    z = get_zset(c, argv[1])
    if z is None:
        return 0
    a, b = _rank_span(len(z), start, end)
    return _remove_span(c, argv, z, a, b)


@command("zremrangebyscore", 4, "write", Z, "Remove all members within the given scores")
def zremrangebyscore(c: Any, argv: list[bytes]) -> Any:
    rng = _score_range(argv[2], argv[3])
    z = get_zset(c, argv[1])
    if z is None:
        return 0
    return _remove_span(c, argv, z, *z.score_span(*rng))


@command("zremrangebylex", 4, "write", Z, "Remove all members within the given lex range")
def zremrangebylex(c: Any, argv: list[bytes]) -> Any:
    lo, hi = _lex_range(argv[2], argv[3])
    z = get_zset(c, argv[1])
    if z is None:
        return 0
    return _remove_span(c, argv, z, *z.lex_span(lo, hi))


# -- popping -----------------------------------------------------------------------


def pop_entries(
    c: Any, key: bytes, z: ZSet, count: int, maximum: bool, argv: list[bytes] | None = None
) -> Any:
    """
    Take C{count} members off the bottom (or the top); deletes an emptied key. With
    the command's C{argv}, many are copied in slices first (C{NO_REPLY} then, and the
    command runs again with them), and the members kept make a new sorted set (the
    old one freed by lazyfree): a million popped at once held the suite 0.3 s.
    """
    sl = z.sl
    count = min(count, len(sl))
    if argv is not None and count >= bigwork.BIG:
        made = bigwork.sliced(c, argv, len(sl), lambda: _pop_steps(z, count, maximum))
        if made is NO_REPLY:
            return made
        if made is not None:
            popped, kept = made
            if kept is None:
                c.store.drop(key)
            else:
                c.store.set(key, kept, keepttl=True)
                c.store.dirty -= 1  # (counted once, below)
            c.store.dirty += 1
            return popped
    if maximum:
        popped = list(sl.islice(len(sl) - count, len(sl), reverse=True))
        del sl[len(sl) - count :]
    else:
        popped = list(sl.islice(0, count))
        del sl[:count]
    d = z.dict
    for _, m in popped:
        del d[m]
    if popped:
        c.store.dirty += 1
        _drop_if_empty(c, key, z)
    return popped


def _pop_steps(z: ZSet, count: int, maximum: bool) -> bigwork.Steps[tuple[list[Any], Any]]:
    """L{pop_entries}'s copies: the C{count} popped, in order, and a new zset of the others."""
    n = len(z)
    if maximum:
        popped = yield from bigwork.take(z.sl.islice(n - count, n, reverse=True), count)
    else:
        popped = yield from bigwork.take(z.sl.islice(0, count), count)
    if count == n:
        return popped, None
    kept = yield from _kept(z, n - count, n) if maximum else _kept(z, 0, count)
    return popped, kept


def _zpop(c: Any, argv: list[bytes], maximum: bool) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    count = -1
    if len(argv) == 3:
        count = to_int(argv[2], POSITIVE)
        if count < 0:
            raise CommandError(POSITIVE)
    z = get_zset(c, argv[1])
    if z is None or count == 0:
        return []
    popped = pop_entries(c, argv[1], z, 1 if count == -1 else count, maximum, argv)
    if popped is NO_REPLY:
        return popped
    if count == -1 and c.resp != 2:
        s, m = popped[0]
        return [m, Double(s)]
    return with_scores(c, popped, own=True)


@command("zpopmin", -2, "write fast", Z, "Remove and return members with the lowest scores")
def zpopmin(c: Any, argv: list[bytes]) -> Any:
    return _zpop(c, argv, False)


@command("zpopmax", -2, "write fast", Z, "Remove and return members with the highest scores")
def zpopmax(c: Any, argv: list[bytes]) -> Any:
    return _zpop(c, argv, True)


def parse_zmpop(argv: list[bytes], at: int) -> tuple[list[bytes], bool, int]:
    """C{numkeys key... MIN|MAX [COUNT n]} from C{argv[at]}: (keys, max, count)."""
    numkeys = string2ll(argv[at])
    if numkeys is None or numkeys < 1:
        raise CommandError("ERR numkeys should be greater than 0")
    where = at + numkeys + 1
    if where >= len(argv):
        raise CommandError(SYNTAX)
    keys = argv[at + 1 : where]
    w = argv[where].lower()
    if w not in (b"min", b"max"):
        raise CommandError(SYNTAX)
    count = -1
    j = where + 1
    while j < len(argv):
        if argv[j].lower() == b"count" and j + 1 < len(argv) and count == -1:
            count = string2ll(argv[j + 1]) or 0
            if count < 1:
                raise CommandError("ERR count should be greater than 0")
            j += 2
        else:
            raise CommandError(SYNTAX)
    return keys, w == b"max", max(count, 1)


def zmpop_keys(c: Any, keys: list[bytes], maximum: bool, count: int, argv: list[bytes]) -> Any:
    """
    Pop from the first non-empty sorted set of C{keys}: [key, [[member, score]...]]
    or None (C{NO_REPLY} while many are copied in slices: L{pop_entries}).
    """
    for key in keys:
        z = get_zset(c, key)
        if z is None:
            continue
        popped = pop_entries(c, key, z, count, maximum, argv)
        if popped is NO_REPLY:
            return popped
        c.touched = [key]
        c.also = [[b"ZPOPMAX" if maximum else b"ZPOPMIN", key, b"%d" % len(popped)]]
        return bigreply.keyed_scored(c, key, popped)
    return None


@command(
    "zmpop",
    -4,
    "write",
    Z,
    "Remove and return members with scores from the first non-empty sorted set",
    keys=(0, 0, 0),
)
def zmpop(c: Any, argv: list[bytes]) -> Any:
    keys, maximum, count = parse_zmpop(argv, 1)
    start = bigwork.first(c, argv, keys, lambda key: get_zset(c, key))
    if start is NO_REPLY:
        return start
    r = zmpop_keys(c, keys[start:] if start else keys, maximum, count, argv)
    return NULL_ARRAY if r is None else r


# -- random members ----------------------------------------------------------------


@command("zrandmember", -2, "readonly", Z, "Get one or multiple random members from a sorted set")
def zrandmember(c: Any, argv: list[bytes]) -> Any:
    n = len(argv)
    if n > 4:
        raise CommandError(SYNTAX)
    if n == 2:
        z = get_zset(c, argv[1])
        if z is None:
            return None
        return z.sl[random.randrange(len(z))][1]
    withscores = False
    if n == 4:
        if argv[3].lower() != b"withscores":
            raise CommandError(SYNTAX)
        withscores = True
    count = to_int(argv[2])
    if count < -LLONG_MAX:
        raise CommandError(
            f"ERR value is out of range, value must between {-LLONG_MAX} and {LLONG_MAX}"
        )
    if withscores and count < -LLONG_MAX // 2:
        raise CommandError("ERR value is out of range")
    z = get_zset(c, argv[1])
    if z is None or count == 0:
        return []
    size = len(z)
    if count < 0 and -count > MAX_RANDOM:  # (a reply this big is refused here)
        raise CommandError("ERR value is out of range")
    k = min(count, size) if count > 0 else -count
    if randompick.cost(size, k) >= bigwork.BIG:  # drawn in slices (bigwork), by a walk
        pairs = randompick.pick(c, argv, z.sl, k, count > 0)
        if pairs is NO_REPLY:
            return pairs
    else:  # by rank: each O(log n)
        if count > 0:
            picked = random.sample(range(size), k)
        else:
            picked = [random.randrange(size) for _ in range(k)]
        sl = z.sl
        pairs = [sl[i] for i in picked]
    if withscores:
        return with_scores(c, pairs, True)
    return members_reply(c, pairs, True)


# -- ZUNION, ZINTER, ZDIFF -----------------------------------------------------------

UNION, INTER, DIFF = "union", "inter", "diff"


def _source(c: Any, key: bytes) -> Any:
    """A sorted set or a set to combine (None: missing, told as a key miss, as Redis)."""
    v = c.store.get(key)
    if v is None:
        notify.missed(c, key)
        return v
    if type(v) is ZSet or kind(v) is set:
        return v
    raise wrongtype()


def _pairs(v: Any) -> Any:
    """(member, score) of a source: plain set members count as score 1."""
    if type(v) is ZSet:
        return v.dict.items()
    return ((m, 1.0) for m in v)


def _has(v: Any, m: bytes) -> float | None:
    if type(v) is ZSet:
        return v.dict.get(m)
    return 1.0 if m in v else None


def combine(c: Any, argv: list[bytes], at: int, op: str, dest: bytes | None, card: bool) -> Any:
    """Redis's C{zunionInterDiffGenericCommand}; C{argv[at]} is numkeys."""
    name = argv[0].decode("latin-1").lower()
    setnum = _long(argv[at])
    if setnum < 1:
        raise CommandError(f"ERR at least 1 input key is needed for '{name}' command")
    if setnum > len(argv) - (at + 1):
        raise CommandError(SYNTAX)
    keys = argv[at + 1 : at + 1 + setnum]
    stored = dest is not None
    if setnum > bigwork.ARGS:  # many keys: looked up (then the options read) in slices too
        many = bigwork.compute(
            c, argv, 2 * setnum, lambda: _combine_many(c, argv, at, keys, op, stored, card)
        )
        if many is NO_REPLY:
            return many
        done, withscores = many
    else:
        srcs = [_source(c, k) for k in keys]
        opts = bigwork.run_through(_options(argv, at, setnum, op, stored, card))
        weights, agg, withscores, limit = opts
        sizes = [len(s) if s else 0 for s in srcs]
        cost = _cost(op, sizes, min(sizes), sum(sizes))
        shards = _shards(cost, card, stored)
        done = bigwork.compute(
            c,
            argv,
            cost,
            lambda: _combined(op, srcs, weights, agg, card, limit, stored, shards, sizes),
        )
    if done is NO_REPLY or card:
        return done
    if dest is not None:
        return _store_range(c, dest, done)
    if withscores:
        return with_scores(c, done, own=True)
    return members_reply(c, done, own=True)


def _options(
    argv: list[bytes], at: int, setnum: int, op: str, stored: bool, card: bool
) -> bigwork.Steps[tuple[list[float], str, bool, int]]:
    """L{combine}'s options after its keys: (weights, aggregate, withscores, limit)."""
    weights = [1.0] * setnum
    agg = "sum"
    withscores = False
    limit = 0
    j = at + 1 + setnum
    n = len(argv)
    while j < n:
        left = n - j
        o = argv[j].lower()
        if op != DIFF and left >= setnum + 1 and o == b"weights":
            for lo in range(0, setnum, bigwork.PIECE):  # (a million weights: in slices)
                for i in range(lo, min(setnum, lo + bigwork.PIECE)):
                    weights[i] = _score(argv[j + 1 + i], "ERR weight value is not a float")
                yield
            j += setnum + 1
        elif op != DIFF and left >= 2 and o == b"aggregate":
            a = argv[j + 1].lower()
            if a not in (b"sum", b"min", b"max"):
                raise CommandError(SYNTAX)
            agg = a.decode()
            j += 2
        elif left >= 1 and not stored and not card and o == b"withscores":
            withscores = True
            j += 1
        elif card and left >= 2 and o == b"limit":
            limit = to_int(argv[j + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise CommandError("ERR LIMIT can't be negative")
            j += 2
        else:
            raise CommandError(SYNTAX)
    return weights, agg, withscores, limit


def _cost(op: str, sizes: list[int], smallest: int, total: int) -> int:
    """About how many members L{_combined} touches."""
    if op == INTER:
        return smallest * len(sizes)
    if op == DIFF:
        return sizes[0] * len(sizes)
    return total


def _shards(cost: int, card: bool, stored: bool) -> int:
    if cost >= bigwork.BIG and not card:  # (a big STORE's: the shards of its ShardedDict)
        return STORED_SHARDS if stored else SHARDS
    return 1


def _combine_many(
    c: Any, argv: list[bytes], at: int, keys: list[bytes], op: str, stored: bool, card: bool
) -> bigwork.Steps[tuple[Any, bool]]:
    """
    L{combine} of many keys, in slices: the keys looked up a piece a step (WRONGTYPE
    from any of them first, as Redis, which looks them all up before it reads the
    options), the options, then L{_combined}: (its result, withscores).
    """
    srcs: list[Any] = []
    sizes: list[int] = []
    smallest, total = LLONG_MAX, 0
    for lo in range(0, len(keys), bigwork.PIECE):
        got = [_source(c, k) for k in keys[lo : lo + bigwork.PIECE]]
        counts = [len(s) if s else 0 for s in got]
        srcs += got
        sizes += counts
        smallest, total = min(smallest, *counts), total + sum(counts)
        yield
    weights, agg, withscores, limit = yield from _options(argv, at, len(keys), op, stored, card)
    cost = _cost(op, sizes, smallest, total)
    shards = _shards(cost, card, stored)
    done = yield from _combined(op, srcs, weights, agg, card, limit, stored, shards, sizes)
    return done, withscores


def _by_size(sizes: list[int]) -> bigwork.Steps[list[int]]:
    """The sources' indexes, smallest first (stable, as C{sorted}), in slices when many."""
    n = len(sizes)
    if n <= bigwork.ARGS:
        return sorted(range(n), key=sizes.__getitem__)
    groups: dict[int, list[int]] = {}  # (few sizes: a sort of a million indexes took 230 ms)
    for lo in range(0, n, bigwork.PIECE):
        for i in range(lo, min(n, lo + bigwork.PIECE)):
            size = sizes[i]
            group = groups.get(size)
            if group is None:
                groups[size] = [i]
            else:
                group.append(i)
        yield
    order: list[int] = []
    for size in sorted(groups):
        order += groups[size]
        yield
    return order


def _combined(
    op: str,
    srcs: list[Any],
    weights: list[float],
    agg: str,
    card: bool,
    limit: int,
    stored: bool,
    shards: int = 1,
    sizes: list[int] | None = None,
) -> bigwork.Steps[Any]:
    """
    The result of L{combine}, a piece at a time (bigwork.py): ZINTERCARD's count,
    the ZSet to store (None: empty), or the C{(score, member)} pairs of the reply,
    in order. A big result's members are told apart in C{shards} dicts by hash: one
    dict of millions would hold the loop while it grows (each resize copies its
    whole table at once: 80 ms past 1.4 million members); a big STORE's are the
    shards of the stored set's L{ShardedDict}. A step touches about C{PIECE}
    members however many sources there are (hundreds of thousands of keys), whose
    C{sizes} are given when known.
    """
    if sizes is None:
        sizes = [len(s) if s else 0 for s in srcs]
    results: list[dict[bytes, float]] = [{} for _ in range(shards)]
    result = results[0]
    piece = bigwork.PIECE
    if op == DIFF:
        first = srcs[0]
        if first is not None:
            others = yield from bigwork.mapped(_itself, srcs[1:], drop=True)
            it = iter(_pairs(first))
            for _ in range(0, len(first), piece):
                got = dict(islice(it, piece))
                left = set(got)
                work = 0
                for o in others:
                    left.difference_update(_keys(o) & left)  # (iterates the piece)
                    if not left:
                        break
                    work += len(left)
                    if work >= piece:
                        work = 0
                        yield
                for m, s in got.items():
                    if m in left:
                        results[hash(m) % shards][m] = s
                yield
    elif op == INTER:
        if all(srcs):
            order = yield from _by_size(sizes)
            smallest = srcs[order[0]]
            others = yield from bigwork.mapped(lambda i: _keys(srcs[i]), order[1:])
            ws = yield from bigwork.mapped(weights.__getitem__, order)
            w0 = ws[0]
            plain = agg == "sum" and ws.count(1.0) == len(ws)
            found = 0
            it = iter(_keys(smallest))
            for _ in range(0, len(smallest), piece):
                # the members in all of them, found by C-level set intersections
                common = set(islice(it, piece))
                work = 0
                for keys in others:
                    common = keys & common  # (iterates the piece, not the big set)
                    if not common:
                        break
                    work += len(common)
                    if work >= piece:
                        work = 0
                        yield
                if card:
                    found += len(common)
                    if limit and found >= limit:
                        return limit
                    yield
                    continue
                if len(order) > piece:  # a member's score: from steps of PIECE sources
                    for m in common:
                        score = yield from _score_of(m, srcs, order, ws, agg)
                        results[hash(m) % shards][m] = score
                    continue
                # the scores, for chunks of members of about PIECE lookups: a plain set's
                # members count 1 (a dict for the chunk)
                members = list(common)
                per = max(1, 2 * piece // len(order))
                for lo in range(0, len(members), per):
                    chunk = members[lo : lo + per]
                    d0, *dicts = [_scores(srcs[i], chunk) for i in order]
                    rest = list(zip(dicts, ws[1:], strict=True))
                    if plain:
                        for m in chunk:  # (inline: a call per member costs as much as the rest)
                            score = d0[m]
                            for d, _ in rest:
                                score += d[m]
                                if score != score:
                                    score = 0.0
                            results[hash(m) % shards][m] = score
                    else:
                        for m in chunk:
                            score = _weigh(w0, d0[m])
                            for d, w in rest:
                                score = _aggregate(agg, score, d[m] * w)
                            results[hash(m) % shards][m] = score
                    yield
            if card:
                return min(found, limit) if limit else found
    else:
        order = yield from _by_size(sizes)
        work = 0
        for i in order:
            src = srcs[i]
            work += 1
            if not src:
                if work >= piece:
                    work = 0
                    yield
                continue
            it = iter(_pairs(src))
            for _ in range(0, len(src), piece):
                vals = _weighted(src, it, weights[i])
                work += len(vals)
                if shards > 1:
                    _merge_into(results, vals, agg)
                elif agg == "sum":
                    for m in result.keys() & vals.keys():
                        v = result[m] + vals.pop(m)
                        result[m] = v if v == v else 0.0
                    result.update(vals)
                else:
                    for m in result.keys() & vals.keys():
                        result[m] = _aggregate(agg, result[m], vals.pop(m))
                    result.update(vals)
                if work >= piece:
                    work = 0
                    yield
    if card:
        return len(result)
    if stored:
        return (yield from _zset_of(result if shards == 1 else _sharded_of(results)))
    ordered: list[tuple[float, bytes]] = []
    for k, result in enumerate(results):
        pairs = zip(result.values(), result.keys(), strict=True)
        for _ in range(0, len(result), piece):
            ordered += islice(pairs, piece)
            yield
        results[k] = {}
        yield result  # (freed by lazyfree: freeing a million entries at the end held the loop)
    del result, pairs
    done = yield from bigwork.sort(ordered)
    yield ordered  # (the same pairs, sorted in done: freed a slice at a time)
    return done


def _itself(x: Any) -> Any:
    return x


def _score_of(
    m: bytes, srcs: list[Any], order: list[int], ws: list[float], agg: str
) -> bigwork.Steps[float]:
    """C{m}'s score in an intersection of very many sources, PIECE sources a step."""
    score = _weigh(ws[0], _has(srcs[order[0]], m))  # type: ignore[arg-type]
    n = len(order)
    for lo in range(1, n, bigwork.PIECE):
        for k in range(lo, min(n, lo + bigwork.PIECE)):
            score = _aggregate(agg, score, _has(srcs[order[k]], m) * ws[k])  # type: ignore[operator]
        yield
    return score


SHARDS = 64  # dicts a big ZUNION/ZINTER/ZDIFF reply's members are told apart in
STORED_SHARDS = sharded.SHARDS  # a big STORE's: those of the ShardedDict it stores


def _sharded_of(results: list[dict[bytes, float]]) -> dict[bytes, float] | ShardedDict[float]:
    """A big STORE's C{results} (by C{hash % STORED_SHARDS}) as one dict: sharded, or plain when few."""
    d: ShardedDict[float] = ShardedDict()
    d.shards = results
    d.size = sum(map(len, results))
    return sharded.sharded(d)  # type: ignore[no-any-return]


def _merge_into(results: list[dict[bytes, float]], vals: dict[bytes, float], agg: str) -> None:
    """C{vals} aggregated into L{_combined}'s C{results}, each member into its shard."""
    n = len(results)
    for m, v in vals.items():
        d = results[hash(m) % n]
        old = d.get(m)
        if old is None:
            d[m] = v
        elif agg == "sum":
            v += old
            d[m] = v if v == v else 0.0
        else:
            d[m] = _aggregate(agg, old, v)


def _zset_of(result: dict[bytes, float] | ShardedDict[float]) -> bigwork.Steps[ZSet | None]:
    """
    A ZSet holding C{result} (which it takes), -0 stored as 0; None if empty. A big
    one's index is laid out from its sorted pairs (L{zset_steps}), a piece a step.
    """
    if not result:
        return None
    if len(result) < bigwork.BIG:
        for m in [m for m, v in result.items() if v == 0.0]:
            result[m] = 0.0  # (-0 is stored as 0; ZUNION's reply keeps it)
        z = ZSet()
        z.dict = result
        z.sl.update(zip(result.values(), result.keys(), strict=True))
        return z
    it = iter(result.items())
    for _ in range(0, len(result), bigwork.PIECE):
        for m in [m for m, v in islice(it, bigwork.PIECE) if v == 0.0]:
            result[m] = 0.0  # (a value replaced: the dict's size is unchanged)
        yield
    return (yield from zset_steps(result))


def _scores(v: Any, members: Iterable[bytes]) -> Mapping[bytes, float]:
    """A dict holding C{members}' scores in C{v}: its own, or 1 each for a plain set."""
    return v.dict if type(v) is ZSet else dict.fromkeys(members, 1.0)


def _keys(v: Any) -> Any:
    return v.dict.keys() if type(v) is ZSet else v


def _weighted(v: Any, it: Any, w: float) -> dict[bytes, float]:
    """
    The next piece of C{it} (C{v}'s L{_pairs}) as a new dict member → weight ×
    score (NaN counts as 0), at C speed when it can.
    """
    piece = islice(it, bigwork.PIECE)
    if type(v) is not ZSet:
        return dict.fromkeys((m for m, _ in piece), _weigh(w, 1.0))
    if w == 1.0:
        return dict(piece)
    if w != 0.0 and not math.isinf(w):  # (no NaN possible: scores are finite or inf)
        return {m: w * s for m, s in piece}
    return {m: _weigh(w, s) for m, s in piece}


def _weigh(w: float, s: float) -> float:
    v = w * s
    return 0.0 if v != v else v


def _aggregate(agg: str, a: float, b: float) -> float:
    if agg == "sum":
        v = a + b
        return 0.0 if v != v else v
    if agg == "min":
        return b if b < a else a
    return b if b > a else a


_KEYS = (0, 0, 0)


@command("zunion", -3, "readonly", Z, "Add multiple sorted sets", keys=_KEYS)
def zunion(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 1, UNION, None, False)


@command("zinter", -3, "readonly", Z, "Intersect multiple sorted sets", keys=_KEYS)
def zinter(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 1, INTER, None, False)


@command("zdiff", -3, "readonly", Z, "Subtract multiple sorted sets", keys=_KEYS)
def zdiff(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 1, DIFF, None, False)


@command("zintercard", -3, "readonly", Z, "Intersect sorted sets and count the result", keys=_KEYS)
def zintercard(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 1, INTER, None, True)


@command("zunionstore", -4, "write denyoom", Z, "Add multiple sorted sets and store the result")
def zunionstore(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 2, UNION, argv[1], False)


@command("zinterstore", -4, "write denyoom", Z, "Intersect sorted sets and store the result")
def zinterstore(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 2, INTER, argv[1], False)


@command("zdiffstore", -4, "write denyoom", Z, "Subtract multiple sorted sets and store the result")
def zdiffstore(c: Any, argv: list[bytes]) -> Any:
    return combine(c, argv, 2, DIFF, argv[1], False)


# -- ZSCAN -------------------------------------------------------------------------


@command("zscan", -3, "readonly", Z, "Incrementally iterate sorted sets elements and scores")
def zscan(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    if z is None:
        scan_reply([], argv[2], argv, 3, c, False)  # validates the arguments
        return [b"0", []]
    if listpack_fits(z, tuning.zset_limits(c.server.tuning)):  # Redis returns it whole
        scan_reply([], argv[2], argv, 3, c, False)
        pattern = None
        for j in range(3, len(argv) - 1, 2):
            if argv[j].lower() == b"match":
                pattern = argv[j + 1]
        out: list[bytes] = []
        for s, m in z.sl:
            if pattern is None or glob.match(pattern, m):
                out += (m, format_score(s))
        return [b"0", out]
    d = z.dict
    r = scan_reply(d, argv[2], argv, 3, c, False, value=lambda m: format_score(d[m]))
    if r is None:
        return NO_REPLY
    return [b"%d" % r[0], r[1]]


# -- blocking pops (on kv's blocking mechanism) ---------------------------------------


def _zset_waking(c: Any, key: bytes) -> ZSet | None:
    """The sorted set at C{key}; a woken client re-trying ignores another type (Redis 7.0)."""
    v = c.store.get(key)
    if v is None or type(v) is ZSet:
        return v
    if retrying(c):
        return None
    raise wrongtype()


def _bzpop(c: Any, argv: list[bytes], maximum: bool) -> Any:
    timeout = parse_timeout(argv[-1])
    keys = argv[1:-1]

    def attempt(keys: list[bytes]) -> Any:
        for key in keys:
            z = _zset_waking(c, key)
            if not z:
                continue
            (s, m) = pop_entries(c, key, z, 1, maximum)[0]
            c.touched = [key]
            c.also = [[b"ZPOPMAX" if maximum else b"ZPOPMIN", key]]
            return [key, m, Double(s)]
        return NOT_READY

    return bigwork.block_on(c, argv, keys, timeout, attempt, NULL_ARRAY)


@command(
    "bzpopmin",
    -3,
    "write noscript blocking fast",
    Z,
    "Remove and return the member with the lowest score, or block until one is available",
    keys=(1, -2, 1),
)
def bzpopmin(c: Any, argv: list[bytes]) -> Any:
    return _bzpop(c, argv, False)


@command(
    "bzpopmax",
    -3,
    "write noscript blocking fast",
    Z,
    "Remove and return the member with the highest score, or block until one is available",
    keys=(1, -2, 1),
)
def bzpopmax(c: Any, argv: list[bytes]) -> Any:
    return _bzpop(c, argv, True)


@command(
    "bzmpop",
    -5,
    "write noscript blocking",
    Z,
    "Remove and return members from the first non-empty sorted set, or block",
    keys=(0, 0, 0),
)
def bzmpop(c: Any, argv: list[bytes]) -> Any:
    keys, maximum, count = parse_zmpop(argv, 2)
    timeout = parse_timeout(argv[1])

    def attempt(keys: list[bytes]) -> Any:
        for key in keys:
            if _zset_waking(c, key):
                return zmpop_keys(c, [key], maximum, count, argv)
        return NOT_READY

    return bigwork.block_on(c, argv, keys, timeout, attempt, NULL_ARRAY)
