"""
glob.py against Redis 7.0's C{stringmatchlen}: a line-by-line port of it (signed
C{char}s, C{skipLongerMatches}) is the reference for random patterns and subjects,
short (matched token by token) and long (matched by the pattern's Plan: segments
found with bytes.find or a regex); then a sample side by side with redis-server
(KEYS), and a subject of a megabyte that must not be walked byte by byte.
"""

from __future__ import annotations

import random

import pytest

from portsuite_services.kv import glob


def _c(b: int) -> int:
    """A C C{char} (signed)."""
    return b - 256 if b >= 128 else b


def _stringmatchlen(p: bytes, s: bytes) -> bool:
    """Redis 7.0.15's util.c C{stringmatchlen} (nocase off), transcribed."""
    skip = [False]

    def impl(pi: int, s_i: int) -> bool:
        plen, slen = len(p) - pi, len(s) - s_i

        def pat(k: int) -> int:  # the sds's terminating NUL past its end
            return p[pi + k] if pi + k < len(p) else 0

        while plen and slen:
            c = pat(0)
            if c == 42:  # *
                while plen and pat(1) == 42:
                    pi += 1
                    plen -= 1
                if plen == 1:
                    return True
                while slen:
                    if impl(pi + 1, s_i):
                        return True
                    if skip[0]:
                        return False
                    s_i += 1
                    slen -= 1
                skip[0] = True
                return False
            elif c == 63:  # ?
                s_i += 1
                slen -= 1
            elif c == 91:  # [
                pi += 1
                plen -= 1
                neg = pat(0) == 94
                if neg:
                    pi += 1
                    plen -= 1
                hit = False
                while True:
                    if pat(0) == 92 and plen >= 2:
                        pi += 1
                        plen -= 1
                        if pat(0) == s[s_i]:
                            hit = True
                    elif pat(0) == 93:
                        break
                    elif plen == 0:
                        pi -= 1
                        plen += 1
                        break
                    elif plen >= 3 and pat(1) == 45:
                        lo, hi = _c(pat(0)), _c(pat(2))
                        if lo > hi:
                            lo, hi = hi, lo
                        pi += 2
                        plen -= 2
                        if lo <= _c(s[s_i]) <= hi:
                            hit = True
                    elif pat(0) == s[s_i]:
                        hit = True
                    pi += 1
                    plen -= 1
                if neg:
                    hit = not hit
                if not hit:
                    return False
                s_i += 1
                slen -= 1
            else:
                if c == 92 and plen >= 2:
                    pi += 1
                    plen -= 1
                if pat(0) != s[s_i]:
                    return False
                s_i += 1
                slen -= 1
            pi += 1
            plen -= 1
            if slen == 0:
                while pat(0) == 42:
                    pi += 1
                    plen -= 1
                break
        return plen == 0 and slen == 0

    return impl(0, 0)


PATTERN_BYTES = b"ab\x10\xff*?[]^-\\"
SUBJECT_BYTES = b"ab\x10\xff-]^\\*?["


def _pattern(rnd: random.Random, most: int) -> bytes:
    return bytes(rnd.choice(PATTERN_BYTES) for _ in range(rnd.randint(0, most)))


def _subject(rnd: random.Random, most: int) -> bytes:
    return bytes(rnd.choice(SUBJECT_BYTES) for _ in range(rnd.randint(0, most)))


def _verdicts(pattern: bytes, s: bytes) -> tuple[bool, bool]:
    toks = glob.tokens(pattern)
    return glob.matches(toks, s), glob.plan(toks).matches(s)


def test_short_patterns_and_subjects_as_stringmatchlen() -> None:
    """Both matchers (token by token, and the Plan) on the same inputs."""
    rnd = random.Random(7)
    for _ in range(20_000):
        p, s = _pattern(rnd, 9), _subject(rnd, 8)
        want = _stringmatchlen(p, s)
        assert _verdicts(p, s) == (want, want), (p, s)


def test_long_subjects_as_stringmatchlen() -> None:
    """Subjects past glob.SHORT (the Plan), built to hold the pattern's pieces often."""
    rnd = random.Random(8)
    for _ in range(3_000):
        p = _pattern(rnd, 12)
        pieces = [x for x in p.replace(b"?", b"*").split(b"*") if x]
        filler = [_subject(rnd, 12) for _ in range(4)]
        s = b"".join(rnd.choice(filler + pieces) for _ in range(rnd.randint(1, 14)))
        want = _stringmatchlen(p, s)
        assert _verdicts(p, s) == (want, want), (p, s)


def test_the_reference_is_stringmatchlen_quirks_and_all() -> None:
    """What the port above must say (each checked against redis-server 7.0.15's KEYS)."""
    assert _stringmatchlen(b"[a-\xff]", b"\x10") and not _stringmatchlen(b"[a-\xff]", b"b")
    assert not _stringmatchlen(b"*", b"") and _stringmatchlen(b"", b"")
    assert _stringmatchlen(b"a\\", b"a\\") and _stringmatchlen(b"[z-a]", b"q")
    assert _stringmatchlen(b"[ab", b"b") and not _stringmatchlen(b"[]a]", b"a")
    assert glob.match(b"*", b"")  # (KEYS * and SCAN MATCH *: everything, before matching)


def _keys(port: int, names: list[bytes], patterns: list[bytes]) -> list[list[bytes]]:
    import redis

    r = redis.Redis(port=port)
    try:
        r.flushall()
        r.mset({n: b"1" for n in names})
        return [sorted(r.keys(p)) for p in patterns]
    finally:
        r.flushall()
        r.close()


def test_a_sample_as_redis_server(redis_port: int, kv_port: int) -> None:
    rnd = random.Random(9)
    names = sorted({_subject(rnd, 6) for _ in range(300)} | {b"", b"a" * 40, b"ab" * 30})
    patterns = [_pattern(rnd, 7) for _ in range(150)] + [b"**", b"[a-\xff]", b"*a?b*"]
    patterns = [p for p in patterns if p != b"*"]
    assert _keys(kv_port, names, patterns) == _keys(redis_port, names, patterns)


def test_a_megabyte_subject_is_matched_in_c() -> None:
    """C{*x*} and friends on a key of 1 MB: Python steps of the order of the pieces, not bytes."""
    import sys

    big = b"a" * 1_000_000
    lines = [0]

    def hook(frame: object, event: str, arg: object) -> object:
        if event == "line":
            lines[0] += 1
        return hook

    cases = [
        (b"*x*", False),
        (b"*a?a*", True),
        (b"*[xy]*", False),
        (b"a*[^b]", True),
        (b"*?*", True),
        (b"*a*b", False),
    ]
    for p, want in cases:
        glob.plan.cache_clear()
        lines[0] = 0
        sys.settrace(lambda *a: hook)
        try:
            got = glob.match(p, big)
        finally:
            sys.settrace(None)
        assert got is want, p
        assert lines[0] < 20_000, (p, lines[0])  # (byte by byte: millions)


@pytest.mark.parametrize("size", [100, 10_000])
def test_a_pattern_of_many_stars(size: int) -> None:
    """A hostile pattern (C{*a*a*…*b}) against a long subject: linear, same verdicts."""
    p = b"*a" * size + b"*b"
    s = b"a" * (size * 3)
    assert glob.match(p, s) is False
    assert glob.match(p, s + b"b") is True
