"""
Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE): C{*}, C{?}, C{[abc]},
C{[^a-z]}, C{\\x}; same quirks as Redis's C{stringmatchlen}.

The matcher never backtracks more than to the last C{*} (the classic two-pointer
wildcard algorithm), so a pattern like C{*a*a*a*a*b} costs at most
len(pattern) x len(key) steps: a hostile pattern cannot stall the server.
"""

from __future__ import annotations

from functools import lru_cache

STAR = -1
ANY = -2


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> tuple[object, ...]:
    """Tokens: STAR, ANY, an int (a literal byte) or a (frozenset, negated) class."""
    out: list[object] = []
    i, n = 0, len(pattern)
    while i < n:
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
                p = pattern[i]
                if p == 92 and n - i >= 2:
                    i += 1
                    members.add(pattern[i])
                elif p == 93:
                    break
                elif n - i >= 3 and pattern[i + 1] == 45:
                    lo, hi = p, pattern[i + 2]
                    if lo > hi:
                        lo, hi = hi, lo
                    members.update(range(lo, hi + 1))
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
    """Whether C{s} matches the glob C{pattern}."""
    if pattern == b"*":
        return True
    return match_tokens(compile_glob(pattern), s)


def match_tokens(toks: tuple[object, ...], s: bytes) -> bool:
    """L{match} with the pattern's tokens (L{compile_glob}'s) at hand: what keeps many compiled."""
    ti = si = 0
    nt, ns = len(toks), len(s)
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
