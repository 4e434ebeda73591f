"""
SCAN-family cursors (scan.py): one call costs O(COUNT) once a scan has started, and
Redis's guarantees hold: every element present from the first call to the last is
returned, whatever is added or removed in between; a scan always ends.
"""

from __future__ import annotations

import random

import redis

from portsuite_services.kv.scan import Snapshots, step


class CountingSet(set):  # type: ignore[type-arg]
    """A set that counts how often it is iterated whole."""

    iterations = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        CountingSet.iterations += 1
        return super().__iter__()


def _full_scan(snaps: Snapshots, s: set[bytes], count: int, churn: bool) -> list[bytes]:
    rng = random.Random(7)
    seen: list[bytes] = []
    cursor, calls = 0, 0
    while True:
        cursor, got = step(snaps, s, cursor, count, s.__contains__)
        assert len(got) <= count
        seen += got
        calls += 1
        if churn:  # others change the set between calls
            s.add(b"new%d" % calls)
            s.discard(b"m%d" % rng.randrange(1000))
        if cursor == 0:
            return seen
        assert calls < 10_000


def test_every_element_present_all_along_is_returned() -> None:
    s = {b"m%d" % i for i in range(10_000)}
    seen = _full_scan(Snapshots(), s, 100, churn=True)
    stayed = {m for m in s if m.startswith(b"m")}
    assert stayed <= set(seen)
    assert not any(m.startswith(b"new") for m in seen)  # (added meanwhile: may be left out)


def test_a_call_after_the_first_does_not_walk_the_collection() -> None:
    s = CountingSet(b"m%d" % i for i in range(10_000))
    snaps = Snapshots()
    CountingSet.iterations = 0
    cursor, got = step(snaps, s, 0, 10, s.__contains__)
    assert CountingSet.iterations == 1 and len(got) == 10
    for _ in range(50):
        cursor, got = step(snaps, s, cursor, 10, s.__contains__)
    assert CountingSet.iterations == 1 and cursor != 0


def test_a_lost_snapshot_starts_again_and_never_answers_more_than_count() -> None:
    """Evicted (many scans at once) or a cursor kv never gave: a new scan from the start."""
    s = {b"m%d" % i for i in range(1000)}
    snaps = Snapshots(max_refs=1500)
    c1, first = step(snaps, s, 0, 10, s.__contains__)
    step(snaps, s, 0, 10, s.__contains__)  # a second scan evicts the first
    seen = set(first)
    cursor, calls = c1, 0
    while True:
        cursor, got = step(snaps, s, cursor, 10, s.__contains__)
        assert len(got) <= 10
        seen |= set(got)
        calls += 1
        if cursor == 0:
            break
        assert calls < 1000
    assert seen == s
    nxt, got = step(snaps, s, 123456789, 10, s.__contains__)  # forged: no giant reply
    assert nxt != 0 and len(got) == 10
    assert snaps.refs <= 1500


def test_scan_iterators_over_big_collections(kv_port: int) -> None:
    r = redis.Redis(port=kv_port)
    n = 20_000
    try:
        r.sadd("big:s", *range(n))
        r.hset("big:h", mapping={f"f{i}": i for i in range(n)})
        r.zadd("big:z", {f"m{i}": i for i in range(n)})
        r.mset({f"big:k{i}": 1 for i in range(n)})
        assert len(set(r.sscan_iter("big:s", count=500))) == n
        assert len(dict(r.hscan_iter("big:h", count=500))) == n
        assert dict(r.zscan_iter("big:z", count=500))[b"m7"] == 7.0
        assert len(set(r.scan_iter(match="big:k*", count=1000))) == n
        cursor, got = r.sscan("big:s", 0, count=10)
        assert cursor != 0 and len(got) == 10
    finally:
        r.delete("big:s", "big:h", "big:z", *[f"big:k{i}" for i in range(n)])
        r.close()


def test_a_client_starting_scan_after_scan_evicts_its_own() -> None:
    """SSCAN 0 in a loop from one client does not make another's scan start over."""
    s = {b"m%d" % i for i in range(1000)}
    snaps = Snapshots(max_refs=2500)
    cursor, seen = step(snaps, s, 0, 10, s.__contains__, owner=1)
    for _ in range(20):  # another client starts scans and never goes on
        step(snaps, s, 0, 10, s.__contains__, owner=2)
        if cursor:
            cursor, got = step(snaps, s, cursor, 10, s.__contains__, owner=1)
            seen += got
    while cursor:
        cursor, got = step(snaps, s, cursor, 10, s.__contains__, owner=1)
        seen += got
    assert len(seen) == len(s) and set(seen) == s  # each once: never started over
    assert snaps.refs <= 2500
