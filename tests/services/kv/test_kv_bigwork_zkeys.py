"""
ZUNION, ZINTER, ZDIFF, ZINTERCARD and their STOREs naming hundreds of thousands of keys
(bench/kv_sweep.py: 222-558 ms of the suite's round trip at 300,000 keys, all looked up,
their weights read and their sources sorted by size in one step) look their keys up, read
their options and order their sources in slices; a WRONGTYPE is still the first error
(Redis looks every key up before it reads the options), then the options' own. SORT …
STORE of a big result builds the stored list a piece a step.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import pytest
from test_kv_sweep import _in_slices

from portsuite_services.kv import bigwork
from portsuite_services.kv.bigwork import ARGS, PIECE
from portsuite_services.kv.commands.sort import _as_deque

N = 3 * ARGS  # keys named: past ARGS, more than a turn's steps of lookups


def _names(prefix: str, n: int = N) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


SETUP: list[tuple[Any, ...]] = [
    ("ZADD", "z", *[x for i in range(50) for x in (str(i), f"m{i}")]),
    ("SADD", "s", "m1", "m2", "x"),
    ("SET", "str", "v"),
    *[("ZADD", f"one{i}", str(i % 7), f"m{i % 300}") for i in range(2000)],
]


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (("ZINTERCARD", str(N), *_names("nope")), 0),
        (("ZUNION", str(N + 2), *_names("nope"), "z", "s"), 51),
        (("ZDIFF", str(N + 1), "z", *_names("nope")), 50),
        (("ZUNIONSTORE", "dst", str(N + 1), *_names("nope"), "s", "WEIGHTS", *["2"] * (N + 1)), 3),
        (("ZINTER", str(N), *["z", "s"] * (N // 2), "WITHSCORES"), 4),  # (m1, m2 and scores)
        # a WRONGTYPE at the end of the keys, then an options' error: WRONGTYPE
        (("ZUNION", str(N + 1), *_names("nope"), "str", "WEIGHTS", "x"), "WRONGTYPE"),
        (("ZINTERSTORE", "dst", str(N), *_names("nope"), "AGGREGATE", "avg"), "ERR syntax"),
        (("ZINTERCARD", str(N), *_names("nope"), "LIMIT", "-1"), "ERR LIMIT"),
        (("ZUNION", str(N), *_names("nope"), "WEIGHTS", *["1"] * (N - 1), "x"), "ERR weight"),
    ],
    ids=lambda v: str(v)[:40] if not isinstance(v, tuple) else f"{v[0]} {len(v)}",
)
def test_many_keys_looked_up_in_slices(argv: tuple[Any, ...], want: Any) -> None:
    got = _in_slices(SETUP, argv, ("ZCARD", "z"))
    reply = got[0]
    if isinstance(want, str):
        assert str(reply).startswith(want)
    else:
        assert (len(reply) if isinstance(reply, list) else reply) == want
    assert got[1] == 50


def test_a_union_of_thousands_of_small_sorted_sets_in_slices() -> None:
    """2,000 sources of one member each: the sum of each member's seven scores."""
    keys = [f"one{i}" for i in range(2000)]
    got = _in_slices(
        SETUP * 1, ("ZUNION", str(len(keys) * 20), *keys * 20, "WITHSCORES"), ("PING",)
    )
    pairs = dict(zip(got[0][::2], got[0][1::2], strict=True))
    assert len(pairs) == 300
    want = sum(20 * (i % 7) for i in range(2000) if i % 300 == 7)
    assert float(pairs[b"m7"]) == want


def test_sort_store_builds_its_list_a_piece_a_step() -> None:
    n = 5 * bigwork.BIG
    items = [b"%d" % i for i in range(n)]

    def steps() -> bigwork.Steps[list[bytes]]:
        yield
        return list(items)

    gen = _as_deque(steps())
    turns = 0
    while True:
        try:
            next(gen)
        except StopIteration as done:
            out = done.value
            break
        turns += 1
    assert type(out) is deque and list(out) == items
    assert turns > n // PIECE  # (a deque of a million in one step held the loop)
