"""
Random members of a set, fields of a hash or keys of a database (SPOP, SRANDMEMBER,
HRANDFIELD, RANDOMKEY) without copying them all first.

A Python set or dict has no "element at position i"; a copy to a list made each call
cost O(N) in memory and time (SPOP on a set of a million members: tens of
milliseconds a call, so draining it one SPOP at a time took hours). Here the
positions are drawn first and the collection's iterator skips to them in C
(C{islice}), one walk for all of them; when many are wanted, the copy is as cheap
and is used. Each element is as likely as with the copy: the positions are uniform
over the iteration order.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from itertools import islice
from typing import Any

DENSE = 8  # wanting more than 1/DENSE of the elements: copy them


def _at(coll: Collection[Any], positions: list[int]) -> list[Any]:
    """The elements at these positions (sorted, repeats allowed) of C{coll}'s iteration."""
    out = []
    it = iter(coll)
    cur = -1
    x = None
    for p in positions:
        if p != cur:
            x = next(islice(it, p - cur - 1, None))
            cur = p
        out.append(x)
    return out


def one(coll: Collection[Any]) -> Any:
    """An element at random (C{coll} not empty)."""
    return next(islice(iter(coll), random.randrange(len(coll)), None))


def sample(coll: Collection[Any], k: int) -> list[Any]:
    """C{k} distinct elements at random (C{k <= len(coll)}), in random order."""
    n = len(coll)
    if k * DENSE >= n:
        return random.sample(list(coll), k)
    out = _at(coll, sorted(random.sample(range(n), k)))
    random.shuffle(out)
    return out


def choices(coll: Collection[Any], k: int) -> list[Any]:
    """C{k} elements drawn independently (repeats possible), in random order."""
    n = len(coll)
    if k * DENSE >= n:
        members = list(coll)
        return [random.choice(members) for _ in range(k)]
    out = _at(coll, sorted(random.randrange(n) for _ in range(k)))
    random.shuffle(out)
    return out
