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

from portsuite_services.kv import bigwork
from portsuite_services.kv.sharded import KIND, new_like

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
    if type(coll) in KIND:  # (a big keyspace, hash or set: to its shard, then within it)
        big: Any = coll
        return big.at(random.randrange(len(coll)))
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


# -- in steps, for bigwork (SRANDMEMBER/HRANDFIELD/ZRANDMEMBER/SPOP with a big count) ---

STEP = 2048  # draws (or swaps) a step makes: about a millisecond
SKIP = 1 << 18  # elements an iterator skips in C a step (a fraction of a millisecond)


def cost(n: int, k: int) -> int:
    """About how many elements drawing C{k} of C{n} touches (bigwork's C{cost})."""
    return k + n if k * DENSE >= n else k + n // 64  # (skipping is C-fast)


def pick(
    c: Any,
    argv: list[bytes],
    coll: Collection[Any],
    k: int,
    distinct: bool,
    values: dict[Any, Any] | None = None,
) -> Any:
    """
    C{k} elements of C{coll} at random, distinct (L{sample}) or not (L{choices}): at
    once when cheap, else drawn in slices by bigwork (then C{NO_REPLY} now, and the
    draw when the command runs again). With C{values} (a hash): (fields, their values).
    """
    work = cost(len(coll), k)
    if work < bigwork.BIG:
        keys = sample(coll, k) if distinct else choices(coll, k)
        return keys if values is None else (keys, [values[f] for f in keys])
    steps = sample_steps if distinct else choices_steps

    def make() -> Any:
        keys = yield from steps(coll, k)
        if values is None:
            return keys
        found: list[Any] = []
        for lo in range(0, len(keys), STEP * 4):
            found += map(values.__getitem__, keys[lo : lo + STEP * 4])
            yield
        return keys, found

    return bigwork.compute(c, argv, work, make)


def sample_steps(coll: Collection[Any], k: int) -> Any:
    """L{sample} in steps (a bigwork generator): C{k} distinct elements, in random order."""
    n = len(coll)
    if k * DENSE >= n:
        members = yield from bigwork.as_list(coll)
        yield from _shuffle_head(members, k)
        if k == n:
            return members
        out: list[Any] = []
        for lo in range(0, k, STEP * 4):
            out += members[lo : min(k, lo + STEP * 4)]
            yield
        yield members  # (freed by lazyfree)
        return out
    chosen: set[int] = set()
    rnd = random.random
    while len(chosen) < k:
        chosen.update([int(rnd() * n) for _ in range(min(STEP, k - len(chosen)))])
        yield
    positions = yield from bigwork.sort(list(chosen))
    out = yield from _at_steps(coll, positions)
    yield from _shuffle_head(out, k)
    return out


def choices_steps(coll: Collection[Any], k: int) -> Any:
    """L{choices} in steps (a bigwork generator): C{k} draws, repeats possible."""
    n = len(coll)
    out: list[Any] = []
    if k * DENSE >= n:
        members = yield from bigwork.as_list(coll)
        for lo in range(0, k, STEP):
            out += random.choices(members, k=min(STEP, k - lo))
            yield
        yield members  # (freed by lazyfree)
        return out
    positions: list[int] = []
    rnd = random.random
    for lo in range(0, k, STEP):
        positions += [int(rnd() * n) for _ in range(min(STEP, k - lo))]
        yield
    positions = yield from bigwork.sort(positions)
    out = yield from _at_steps(coll, positions)
    yield from _shuffle_head(out, k)
    return out


def _shuffle_head(a: list[Any], k: int) -> Any:
    """Fisher-Yates on C{a}'s first C{k} places: a uniform random k-permutation of C{a}."""
    n = len(a)
    rnd = random.random
    for lo in range(0, min(k, n - 1), STEP):
        for i in range(lo, min(k, n - 1, lo + STEP)):
            j = i + int(rnd() * (n - i))
            a[i], a[j] = a[j], a[i]
        yield


def _at_steps(coll: Collection[Any], positions: list[int]) -> Any:
    """L{_at} in steps: a step takes C{STEP} positions or skips C{SKIP} elements."""
    out: list[Any] = []
    append = out.append
    it = iter(coll)
    cur = -1
    x = None
    skipped = 0
    for p in positions:
        if p != cur:
            skipped += p - cur
            x = next(islice(it, p - cur - 1, None))
            cur = p
        append(x)
        if skipped > SKIP or len(out) % STEP == 0:
            skipped = 0
            yield
    return out


def split_steps(coll: Collection[Any], k: int) -> Any:
    """
    SPOP of many (a bigwork generator): C{k} distinct elements at random and a new
    set of the others, so that the command swaps the set rather than removes them
    one by one (half a million: tens of milliseconds).
    """
    members = yield from bigwork.as_list(coll)
    yield from _shuffle_head(members, k)
    picked: list[Any] = []
    kept: Any = new_like(set, len(members) - k)  # (sharded when big: no big resize)
    for lo in range(0, len(members), STEP * 4):
        hi = lo + STEP * 4
        if lo < k:
            picked += members[lo : min(k, hi)]
        if hi > k:
            kept.update(members[max(k, lo) : hi])
        yield
    yield members  # (freed by lazyfree)
    return picked, kept
