"""
Side-by-side runner for kvx's differential tests: the same command lines to
redis-server 7 and to kv, RESP2 or RESP3, replies compared exactly, except the
fields that depend on the clock or on Redis's memory layout (named per command).
"""

from __future__ import annotations

import shlex
from typing import Any

import hiredis
from kvdb_help import same_replies

# XINFO/XPENDING fields that are times (ms since an event, or absolute) or Redis's
# radix-tree internals: compared as "present", not by value
CLOCK_FIELDS = {b"idle", b"seen-time", b"radix-tree-nodes"}


def _parse(reply: bytes) -> Any:
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def _blank_clock(v: Any, under: bytes | None = None) -> Any:
    """Replace clock-dependent values inside XINFO / XPENDING replies."""
    if isinstance(v, dict):
        return {k: ("<t>" if k in CLOCK_FIELDS else _blank_clock(x, k)) for k, x in v.items()}
    if isinstance(v, list):
        out = []
        i = 0
        while i < len(v):
            x = v[i]
            if isinstance(x, bytes) and x in CLOCK_FIELDS and i + 1 < len(v):
                out += [x, "<t>"]
                i += 2
                continue
            if x == b"pending" and i + 1 < len(v):  # RESP2 maps are flat
                out += [x, _blank_clock(v[i + 1], x)]
                i += 2
                continue
            out.append(_blank_clock(x, under))
            i += 1
        if under == b"pending" and len(out) in (3, 4) and all(isinstance(y, int) for y in out[-2:]):
            out[-2] = "<t>"  # XINFO STREAM FULL: [id, (consumer,) delivery-time, count]
        return out
    return v


def normalise(line: str, reply: bytes) -> Any:
    words = shlex.split(line)
    name = words[0].upper()
    sub = words[1].upper() if len(words) > 1 else ""
    if name == "XINFO" or (name == "XPENDING" and len(words) > 3):
        v = _parse(reply)
        if name == "XPENDING" and isinstance(v, list):
            return [[e[0], e[1], "<t>", e[3]] if isinstance(e, list) else e for e in v]
        return ("xinfo", sub, repr(_blank_clock(v)))
    if name in ("SMEMBERS", "HKEYS", "HGETALL", "HVALS", "SSCAN"):
        v = _parse(reply)
        if name == "SSCAN" and isinstance(v, list):
            return ("sscan", v[0], sorted(v[1]))
        if isinstance(v, dict):
            return ("map", sorted(v.items()))
        if isinstance(v, list):
            return ("sorted", sorted(map(repr, v)))
    return reply


def compare(redis_port: int, kv_port: int, lines: list[str], resp3: bool) -> None:
    """Run C{lines} on both servers, replies compared once L{normalise}d."""
    same_replies(redis_port, kv_port, lines, resp3, normalise)
