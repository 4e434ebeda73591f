"""
Inline requests (telnet-style lines, not RESP): resp.split_args against the byte loop
it replaced (kept below as the reference, itself checked against redis-server by
test_kv_differential.test_inline_quoting_matches_redis), on random lines short and
long, and long lines side by side with redis-server.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial

import redis
from kv_raw import Raw

from portsuite_services.kv.resp import INLINE_MAX, split_args

_SPACE = frozenset(b" \t\n\v\f\r")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def bytewise_split_args(line: bytes) -> list[bytes] | None:
    """resp.split_args as it was (its two quoted states folded in one): sdssplitargs a byte at a time."""
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    out: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        inq = insq = False
        while True:
            c = line[i] if i < n else 0
            if inq or insq:
                if (
                    inq
                    and c == 92
                    and i + 3 < n
                    and line[i + 1] == 120
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif inq and c == 92 and i + 1 < n:
                    i += 1
                    e = line[i]
                    cur.append(_ESCAPES.get(e, e))
                elif insq and c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    cur.append(39)
                elif c == (34 if inq else 39):  # the closing quote: then a space or the end
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                elif i >= n:
                    return None
                else:
                    cur.append(c)
            else:
                if i >= n or c in (32, 10, 13, 9):
                    break
                if c == 34:
                    inq = True
                elif c == 39:
                    insq = True
                else:
                    cur.append(c)
            i += 1
        out.append(bytes(cur))


# what a line is made of: every byte sdssplitargs treats apart, escapes whole and cut
# short, quotes empty and glued, a NUL, bytes over 127
FRAGMENTS = [
    *(bytes([c]) for c in b"ab \t\n\r\v\f\"'\\x0fFntqNu7\x01\x02\xe9\0"),
    *(b"  ", b'""', b"''", b"\\x", b"\\x4", b"\\x41", b"\\x00", b"\\xfF", b"\\\\"),
    *(b"\\'", b'\\"', b"\\\n", b'"a b"', b"'a b'", b'"\\x00"'),
    *(b"\\" + bytes([c]) for c in b"nrtbavf0qNuU\xe9"),
]


def _line(rng: random.Random, parts: int) -> bytes:
    return b"".join(rng.choice(FRAGMENTS) for _ in range(parts))


def _argument(rng: random.Random) -> bytes:
    """One well-formed argument: bare, "double quoted" with escapes, or 'single quoted'."""
    body = _line(rng, rng.randint(0, 6)).replace(b"\0", b"")
    kind = rng.randrange(3)
    if kind == 0:
        return bytes(c for c in body if c not in b" \t\n\r\"'") or b"x"
    if kind == 1:  # (its escapes as they come; a " written \x22, none last)
        return b'"' + body.replace(b'"', b"\\x22").rstrip(b"\\") + b'"'
    return b"'" + body.replace(b"'", b"\\'").rstrip(b"\\") + b"'"  # ('a\\' is not closed)


def _long_line(rng: random.Random, size: int) -> bytes:
    out = []
    n = 0
    while n < size:
        arg = _argument(rng) + rng.choice([b" ", b"  ", b"\t", b" \v", b"\f "])
        out.append(arg)
        n += len(arg)
    return b"".join(out)[:size]


def test_split_args_reads_random_lines_as_the_byte_loop_does() -> None:
    rng = random.Random(20261202)
    seen: Counter[str] = Counter()
    for k in range(40_000):
        if k % 2:
            line = _line(rng, rng.randint(0, 16))
        else:  # (well-formed, or cut short)
            line = _long_line(rng, rng.randint(1, 80))
        want = bytewise_split_args(line)
        assert split_args(line) == want, line
        if want is None:
            seen["refused"] += 1
        elif want != line.split(b"\0")[0].split():
            seen["quoted"] += 1
        else:
            seen["plain"] += 1
    # (the lines reach every outcome, each often)
    assert min(seen.values()) > 2_000, seen


def test_split_args_reads_long_lines_as_the_byte_loop_does() -> None:
    """Lines of the inline limit: many arguments, some cut short, some broken on purpose."""
    rng = random.Random(7)
    refused = 0
    for k in range(24):
        line = _long_line(rng, rng.choice([INLINE_MAX, 4096, 300]))
        if k % 4 == 3:  # one byte changed somewhere: often a quote that no longer closes
            i = rng.randrange(len(line))
            line = line[:i] + rng.choice([b'"', b"'", b"\\", b"x"]) + line[i + 1 :]
        want = bytewise_split_args(line)
        refused += want is None
        assert split_args(line) == want, (k, line[:200])
    assert 0 < refused < 24


def _python_lines(call: Callable[[], object]) -> int:
    """How many lines of Python run for C{call()} (a trace hook: nothing replaced)."""
    count = [0]

    def hook(frame: object, event: str, arg: object) -> object:
        if event == "line":
            count[0] += 1
        return hook

    sys.settrace(lambda *a: hook)
    try:
        call()
    finally:
        sys.settrace(None)
    return count[0]


def test_a_line_of_quoted_arguments_is_not_split_a_byte_at_a_time() -> None:
    """
    The byte loop ran some 10 lines of Python a byte: 11-30 ms of CPU for 64 KiB of
    quoted arguments, while every client of the suite waited. A line the quotes cut
    cleanly runs a few dozen lines whatever its length; one that needs the segment
    reader (a \\" or a quote inside the other kind) a few per quoted argument.
    """
    clean = (b'"a\\x41" ' * 8_000)[:INLINE_MAX]  # kvprobe's line
    mixed = (b"'\\'' \"'\" x " * 6_000)[:INLINE_MAX]
    for line, per_argument in ((clean, 0), (mixed, 3)):
        args = split_args(line)
        assert args is not None and args == bytewise_split_args(line)
        assert len(args) > 7_000
        # (a byte at a time: over 10 lines a byte, 700,000)
        assert _python_lines(partial(split_args, line)) < 100 + per_argument * len(args)


def test_long_inline_lines_match_redis(redis_port: int, kv_port: int) -> None:
    """An RPUSH of thousands of quoted arguments in one inline line, read back; a broken one refused alike."""
    rng = random.Random(11)
    line = b""
    while len(line) < INLINE_MAX - 100:  # (no \n: it would end the line)
        line += _argument(rng).replace(b"\n", b"n") + rng.choice([b" ", b" \v", b"\t"])
    args = bytewise_split_args(line)
    assert args is not None and len(args) > 2_000
    broken = line + b' "unclosed \\"'
    for port in (redis_port, kv_port):
        client = redis.Redis(port=port)
        client.delete("inline:list")
        raw = Raw(port)
        raw.send(b"RPUSH inline:list " + line + b"\r\n")
        assert raw.reply() == b":%d\r\n" % len(args), port
        assert client.lrange("inline:list", 0, -1) == args, port
        raw.send(b"RPUSH inline:list " + broken + b"\r\n")
        assert raw.reply() == b"-ERR Protocol error: unbalanced quotes in request\r\n", port
        raw.close()
        client.delete("inline:list")
        client.close()
