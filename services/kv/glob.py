"""
Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE, ACL rules): C{*}, C{?},
C{[abc]}, C{[^a-z]}, C{\\x}; the verdicts of Redis 7.0's C{stringmatchlen}, quirks
included: a range compares C{char}s, which are signed (C{[a-\\xff]} is C{\\xff}
through C{a}, so it holds C{\\x10} but not C{b}); a range may be written backwards;
an unterminated class ends with the pattern; a trailing backslash is itself; and an
empty subject matches the empty pattern only (not even C{*}: KEYS and SCAN treat
C{*} alone as "everything" before matching, L{match} does too).

A short subject is matched token by token with the classic two-pointer algorithm
(never backtracking further than the last C{*}). A long one (a key of a megabyte
checked against C{*x*}: 400 ms walked byte by byte in Python) is matched by the
pattern's L{Plan}: cut at its stars into fixed-width segments, the first anchored at
the start, the last at the end, each one between found at its leftmost place
(C{bytes.find} for a literal segment, a length check for one of C{?} only, for one
with classes a compiled regular expression of as many one-byte atoms when the span
is long, else place by place); leftmost is enough, as for any glob whose only
variable-width token is C{*}.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from functools import lru_cache

STAR = -1
ANY = -2
_SPECIAL = re.compile(rb"[*?[\\]")
SHORT = 32  # subjects and patterns up to this long are matched token by token
TOKENS_PIECE = 16384  # pattern bytes tokenized a step by tokens_steps (a few ms)


def is_literal(pattern: bytes) -> bool:
    """Whether C{pattern} matches only itself (no C{*}, C{?}, C{[} or C{\\})."""
    return _SPECIAL.search(pattern) is None


def _signed(c: int) -> int:
    return c - 256 if c >= 128 else c


def tokens(pattern: bytes) -> tuple[object, ...]:
    """Tokens: STAR, ANY, an int (a literal byte) or a (frozenset, negated) class."""
    steps = tokens_steps(pattern)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def tokens_steps(
    pattern: bytes, piece: int = TOKENS_PIECE
) -> Generator[None, None, tuple[object, ...]]:
    """L{tokens}, yielding every C{piece} bytes read (an ACL pattern of megabytes)."""
    out: list[object] = []
    i, n = 0, len(pattern)
    mark = piece
    while i < n:
        if i >= mark:
            mark = i + piece
            yield
        c = pattern[i]
        if c == 42:  # *
            if not out or out[-1] != STAR:
                out.append(STAR)
        elif c == 63:  # ?
            out.append(ANY)
        elif c == 91:  # [
            i += 1
            neg = i < n and pattern[i] == 94
            if neg:
                i += 1
            members: set[int] = set()
            while True:
                if i >= n:
                    i -= 1  # unterminated: the class ends with the pattern
                    break
                if i >= mark:  # (a class of megabytes)
                    mark = i + piece
                    yield
                p = pattern[i]
                if p == 92 and n - i >= 2:
                    i += 1
                    members.add(pattern[i])
                elif p == 93:
                    break
                elif n - i >= 3 and pattern[i + 1] == 45:
                    lo, hi = _signed(p), _signed(pattern[i + 2])  # (C's signed chars)
                    if lo > hi:
                        lo, hi = hi, lo
                    members.update(b & 0xFF for b in range(lo, hi + 1))
                    i += 2
                else:
                    members.add(p)
                i += 1
            out.append((frozenset(members), neg))
        elif c == 92 and n - i >= 2:
            i += 1
            out.append(pattern[i])
        else:
            out.append(c)
        i += 1
    return tuple(out)


# KEYS and SCAN MATCH use a few patterns again and again; pub/sub keeps its own
# (delivery.py: 200,000 patterns went through this cache, compiled at every PUBLISH)
compile_glob = lru_cache(maxsize=256)(tokens)


def _one(tok: object, ch: int) -> bool:
    if tok == ANY:
        return True
    if type(tok) is int:
        return tok == ch
    members: frozenset[int]
    neg: bool
    members, neg = tok  # type: ignore[misc]
    return (ch in members) != neg


def match(pattern: bytes, s: bytes) -> bool:
    """Whether C{s} matches the glob C{pattern} (C{*} alone: everything, as KEYS and SCAN)."""
    if pattern == b"*":
        return True
    return matches(compile_glob(pattern), s)


def matches(toks: tuple[object, ...], s: bytes) -> bool:
    """Whether C{s} matches the pattern compiled to C{toks} (L{compile_glob}'s)."""
    ns, nt = len(s), len(toks)
    if not ns:
        return not nt  # (stringmatchlen's loop never runs: only an empty pattern matches)
    if ns > SHORT or nt > SHORT:
        # the bytes before the first star and after the last first, token by token (a
        # refuted head costs a step, no plan); what lies between them, by the plan
        i = 0
        while i < nt and toks[i] != STAR:
            if i >= ns or not _one(toks[i], s[i]):
                return False
            i += 1
        if i == nt:
            return ns == nt
        j = nt - 1
        while toks[j] != STAR:
            k = ns - nt + j
            if k < i or not _one(toks[j], s[k]):
                return False
            j -= 1
        return i == j or plan(toks).matches(s)
    ti = si = 0
    star_t = star_s = -1
    while si < ns:
        if ti < nt and toks[ti] == STAR:
            star_t, star_s = ti, si
            ti += 1
        elif ti < nt and _one(toks[ti], s[si]):
            ti += 1
            si += 1
        elif star_t >= 0:
            star_s += 1
            si = star_s
            ti = star_t + 1
        else:
            return False
    while ti < nt and toks[ti] == STAR:
        ti += 1
    return ti == nt


def _atom(tok: object) -> bytes:
    """A one-byte regular expression for a token that is not a star."""
    if tok == ANY:
        return b"."
    if type(tok) is int:
        return b"\\x%02x" % tok
    members: frozenset[int]
    neg: bool
    members, neg = tok  # type: ignore[misc]
    chosen = set(range(256)) - members if neg else members
    if not chosen:
        return b"(?!)"
    if len(chosen) == 256:
        return b"."
    return b"[" + b"".join(b"\\x%02x" % c for c in sorted(chosen)) + b"]"


FIND_RX = 4096  # a class segment is looked for by a compiled regex in a span this long


class Segment:
    """
    Fixed-width tokens between stars: C{literal} bytes, or C{checks}, the offsets
    and tokens that are not C{?} (none: C{?}s only, a mere width). Checked at a
    place token by token; looked for with C{bytes.find} (literal), in a long span
    with a regular expression (compiled then, and cached), else place by place.
    """

    __slots__ = ("toks", "width", "literal", "checks")

    def __init__(self, toks: tuple[object, ...]):
        self.toks = toks
        self.width = len(toks)
        self.literal: bytes | None = None
        if all(type(t) is int and t >= 0 for t in toks):  # type: ignore[operator]
            self.literal = bytes(toks)  # type: ignore[arg-type]
        # literal bytes first: the cheapest to refute
        checks = [(i, t) for i, t in enumerate(toks) if t != ANY]
        checks.sort(key=lambda c: type(c[1]) is not int)
        self.checks = checks

    def at(self, s: bytes, i: int) -> bool:
        """Does it match C{s} at C{i} (C{s} long enough)?"""
        if self.literal is not None:
            return s.startswith(self.literal, i)
        for k, tok in self.checks:
            ch = s[i + k]
            if type(tok) is int:
                if tok != ch:
                    return False
            elif (ch in tok[0]) == tok[1]:  # type: ignore[index]
                return False
        return True

    def find(self, s: bytes, i: int, end: int) -> int:
        """Where it first matches in C{s[i:end]} (-1: nowhere)."""
        if self.literal is not None:
            return s.find(self.literal, i, end)
        last = end - self.width
        if not self.checks:
            return i if i <= last else -1
        if end - i > FIND_RX:
            m = _regex(self.toks).search(s, i, end)
            return -1 if m is None else m.start()
        at = self.at
        for j in range(i, last + 1):
            if at(s, j):
                return j
        return -1


@lru_cache(maxsize=256)
def _regex(toks: tuple[object, ...]) -> re.Pattern[bytes]:
    return re.compile(b"".join(map(_atom, toks)), re.DOTALL)


class Plan:
    """A pattern cut at its stars (L{Segment}s), to match long subjects mostly in C."""

    __slots__ = ("head", "middle", "tail", "starred", "width")

    def __init__(self, toks: tuple[object, ...]):
        pieces: list[list[object]] = [[]]
        for t in toks:
            if t == STAR:
                pieces.append([])
            else:
                pieces[-1].append(t)
        self.starred = len(pieces) > 1
        self.width = sum(map(len, pieces))
        self.head = Segment(tuple(pieces[0]))
        self.tail = Segment(tuple(pieces[-1])) if self.starred else None
        self.middle = [Segment(tuple(p)) for p in pieces[1:-1] if p]

    def matches(self, s: bytes) -> bool:
        size = len(s)
        if not size:
            return not self.starred and not self.width
        if not self.starred:
            return size == self.width and self.head.at(s, 0)
        if size < self.width or not self.head.at(s, 0):
            return False
        tail = self.tail
        assert tail is not None
        pos, end = self.head.width, size - tail.width
        if not tail.at(s, end):
            return False
        for seg in self.middle:
            i = seg.find(s, pos, end)
            if i < 0:
                return False
            pos = i + seg.width
        return True


plan = lru_cache(maxsize=1024)(Plan)
