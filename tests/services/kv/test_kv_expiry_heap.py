"""
The expiry heap (store.py): every TTL set pushes (when, key), and a TTL changed or
removed leaves a stale entry behind. When stale entries outnumber the live ones the
heap used to be rebuilt from every TTL in one go (3 million TTLs rewritten: the suite
held 1.6 s, more once the keyspace is sharded); now it is set aside and its live
entries are moved back a few at a time, by each new TTL and by the cron, while
active expiry reads both heaps.
"""

from __future__ import annotations

from portsuite_services.kv.store import COMPACT, Store

N = 60_000  # keys with a TTL (a plain dict: below the keyspace's sharding)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _store() -> tuple[_Clock, Store]:
    clock = _Clock()
    store = Store(clock)
    for i in range(N):
        store.set(b"k%d" % i, b"v")
    return clock, store


def _rewrite_ttls(store: Store, base_ms: int, rounds: int) -> int:
    """Every key's TTL set C{rounds} times, later each time; the most entries a heap
    held when it took the place of the one before (a rebuild: all the live TTLs)."""
    most = 0
    for r in range(rounds):
        for i in range(N):
            heap = store._heap
            store.set_expire(b"k%d" % i, base_ms + r * 1000 + i % 7)
            if store._heap is not heap:
                most = max(most, len(store._heap))
    return most


def test_stale_entries_are_dropped_a_few_at_a_time_not_in_one_rebuild() -> None:
    clock, store = _store()
    assert _rewrite_ttls(store, 2_000_000, 4) <= 1  # (set aside: a new heap starts empty)
    # and the heaps stay bounded by the live TTLs all along
    assert len(store._heap) + len(store._old) <= 3 * N + 1024


def test_keys_expire_at_their_last_ttl_only() -> None:
    clock, store = _store()
    _rewrite_ttls(store, 2_000_000, 3)  # last TTLs: 2,002,000 ms + (0…6)
    assert store._old  # (set aside, being moved back)
    clock.now = 2_001.5  # past the first two rounds' TTLs: stale, nothing expires
    for _ in range(N // 2000 + 5):
        assert store.expire_cycle() == 0
    store.compact(COMPACT)
    clock.now = 2_003.0  # past the last ones: every key, over a few cron ticks
    expired = 0
    for _ in range(3 * N // 2000 + 10):
        expired += store.expire_cycle()
        store.compact(COMPACT)
    assert expired == N and len(store) == 0 and store.expires == {}
    assert store._heap == [] and store._old == []


def test_one_expiry_cycle_looks_at_a_bounded_number_of_stale_entries() -> None:
    clock, store = _store()
    for when in (2_000_000, 4_000_000):  # every TTL moved later: N stale entries due first
        for i in range(N):
            store.set_expire(b"k%d" % i, when)
    assert store._old == [] and len(store._heap) == 2 * N
    clock.now = 3_000.0  # the stale ones are due, no key is
    assert store.expire_cycle(limit=100) == 0
    assert len(store._heap) >= 2 * N - 800  # a bounded look, not all N at once
    for _ in range(N // 800 + 1):
        store.expire_cycle(limit=100)
    assert len(store._heap) == N and len(store) == N  # (over later cycles)


def test_flush_and_swap_carry_the_heap_set_aside() -> None:
    clock, store = _store()
    _rewrite_ttls(store, 2_000_000, 3)
    other = Store(clock, 1)
    other.swap(store)
    assert store._old == [] and other._old and len(other.expires) == N
    freed: list[object] = []
    other.free = freed.append
    big = [h for h in (other._heap, other._old) if len(h) > COMPACT]
    assert big  # (the one set aside, at least)
    other.flush()
    assert other._heap == other._old == [] and freed == big  # (freed lazily)
    small = Store(clock, 2)
    small.set_expire(b"k", 2_000_000_000)
    small.free = freed.append
    small.flush()
    assert freed == big and small._heap == []  # (a small one at once)
