"""
The keyspace: one database of keys holding strings (bytes), hashes (dict), lists
(deque) and sets (set), with expiry times in milliseconds since the epoch.

Expiry is lazy (a key past its time is deleted when it is looked up) and active
(L{Store.expire_cycle}, called by the server every 100 ms, deletes keys whose time
has come, due-first from a heap, a bounded number per call). Each deletion by
expiry is reported to C{on_expired} so the append-only file records a DEL, as
Redis does.

A database past C{SHARD_AT} keys (or keys with a TTL) holds them in a L{ShardedDict}
(sharded.py), so that it never grows by copying one big table at once.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, MutableMapping
from time import perf_counter
from typing import Any

from portsuite_services.kv.sharded import SHARD_AT, ShardedDict, ShardedSet, sharded
from portsuite_services.kv.stream import Stream

COMPACT = 8192  # entries of a set-aside expiry heap moved back a cron tick (under 2 ms)

TYPE_NAMES: dict[type, str] = {bytes: "string", dict: "hash", deque: "list", set: "set"}
TYPE_NAMES[Stream] = "stream"
TYPE_NAMES[ShardedDict] = "hash"  # (a hash or a set past SHARD_AT members: sharded.py)
TYPE_NAMES[ShardedSet] = "set"


class Store:
    """
    One database (Redis's db 0 … 15). Beside the keys, a database holds who
    WATCHes its keys (C{watched}) and who is blocked on them (C{blocking}, see
    L{portsuite_services.kv.blocking}); SWAPDB swaps the keys, not those.
    """

    def __init__(self, clock: Callable[[], float], id: int = 0):
        self.clock = clock  # seconds since the epoch (the reactor's clock)
        self.id = id
        self.watched: dict[bytes, set[Any]] = {}  # WATCHed keys and the clients watching
        self.blocking: dict[
            bytes, dict[Any, Any]
        ] = {}  # key -> clients (their Blocked), in arrival order
        # plain dicts, sharded past SHARD_AT keys (grow); protocol.py's lean path writes
        # data too, and checks its size as set does
        self.data: MutableMapping[bytes, Any] = {}
        self.expires: MutableMapping[bytes, int] = {}
        self._heap: list[tuple[int, bytes]] = []  # (when, key), due first; stale ones too
        self._old: list[tuple[int, bytes]] = []  # a heap set aside: see set_expire
        self.dirty = 0  # changes since start (INFO: rdb_changes_since_last_save)
        self.expired_keys = 0
        self.on_expired: Callable[[Store, bytes], None] | None = None
        # a value dropped for good (overwritten, expired, flushed): freed by the server's
        # lazyfree, a big one a slice per reactor turn (lazyfree.py); None: at once
        self.free: Callable[[Any], None] | None = None
        self.loading = False
        self.boxed = 0  # keys holding a container (not a string): 0 lets SET skip a lookup
        self.raw: set[bytes] = set()  # strings APPEND, SETRANGE, SETBIT… made "raw" (OBJECT)
        self.frozen_ms = 0  # while a command runs in slices (bigwork.py): its time, as Redis's

    def now_ms(self) -> int:
        frozen = self.frozen_ms
        if frozen:
            return frozen
        return int(self.clock() * 1000)

    # -- lookups (lazy expiry) -------------------------------------------------

    def get(self, key: bytes) -> Any:
        """The value at C{key}, or None; deletes it first if it has expired."""
        if self.expires and key in self.expires and not self.loading:
            if self.expires[key] <= self.now_ms():
                self._expire(key)
                return None
        return self.data.get(key)

    def _expire(self, key: bytes) -> None:
        value = self.data.pop(key)
        del self.expires[key]
        if type(value) is not bytes:
            self.boxed -= 1
        if self.raw:
            self.raw.discard(key)
        self.expired_keys += 1
        self.dirty += 1
        if self.on_expired is not None:
            self.on_expired(self, key)
        if type(value) is not bytes and self.free is not None:
            self.free(value)

    def exists(self, key: bytes) -> bool:
        return self.get(key) is not None

    # -- changes ---------------------------------------------------------------

    def set(self, key: bytes, value: Any, keepttl: bool = False) -> None:
        """Store C{value}; the key's TTL is cleared unless C{keepttl}."""
        if self.boxed or self.raw:  # a key may hold a container or a raw string: look first
            self._set_over(key, value)
        else:  # (every key holds a plain string: nothing to free or forget, no lookup)
            data = self.data
            if type(value) is not bytes:
                value = sharded(value)  # (a big hash or set: see sharded.py)
                self.boxed = 1
            data[key] = value
            if len(data) > SHARD_AT and type(data) is dict:
                self.grow()
        if not keepttl and self.expires:
            self.expires.pop(key, None)
        self.dirty += 1

    def _set_over(self, key: bytes, value: Any) -> None:
        """L{set} where the value it replaces may need freeing (lazily) or forgetting."""
        data = self.data
        old = data.get(key)
        if type(value) is not bytes:
            if old is value or (old is not None and getattr(old, "old", None) is value):
                return  # (the value there already, or the big plain one it grew from)
            value = sharded(value)  # (a hash or set of more than SHARD_AT: sharded)
        data[key] = value
        if len(data) > SHARD_AT and type(data) is dict:
            self.grow()
        if type(value) is not bytes:
            if old is None or type(old) is bytes:
                self.boxed += 1
        elif old is not None and type(old) is not bytes:
            self.boxed -= 1
        if old is None:
            return
        if type(old) is bytes:
            if self.raw:
                self.raw.discard(key)  # (only a key holding a string can be in raw)
        elif old is not value and self.free is not None:
            self.free(old)  # (SET over a set of a million members)

    def set_raw(self, key: bytes, value: bytes, keepttl: bool = False) -> None:
        """A string changed in place, as Redis's APPEND, SETRANGE, SETBIT… do: "raw" (OBJECT)."""
        self.set(key, value, keepttl)
        self.raw.add(key)

    def delete(self, key: bytes) -> bool:
        if self.get(key) is None:
            return False
        if type(self.data.pop(key)) is not bytes:
            self.boxed -= 1
        if self.raw:
            self.raw.discard(key)
        if self.expires:
            self.expires.pop(key, None)
        self.dirty += 1
        return True

    def drop(self, key: bytes) -> bool:
        """Delete C{key} for good (DEL, not MOVE): its value goes to C{free}."""
        value = self.get(key)
        if value is None:
            return False
        self.delete(key)
        if type(value) is not bytes and self.free is not None:
            self.free(value)
        return True

    def reshard(self, key: bytes, value: Any) -> Any:
        """
        The hash or set at C{key}, about to grow past C{SHARD_AT} members, stored in its
        sharded form (which never resizes a big table); that form, for the caller to fill.
        """
        new = ShardedDict(value) if type(value) is dict else ShardedSet(value)
        self.data[key] = new  # (the key is there: the keyspace does not grow)
        return new

    def grow(self) -> None:
        """The keyspace passed SHARD_AT keys: sharded from now on (its keys move in steps)."""
        if type(self.data) is dict:
            self.data = ShardedDict(self.data)

    def rehash(self, budget: int) -> int:
        """Move up to C{budget} keys of a keyspace being sharded (the cron's); how many moved."""
        moved = 0
        for d in (self.data, self.expires):
            if isinstance(d, ShardedDict) and d.old:
                moved += d.move(budget - moved)
        return moved

    def set_expire(self, key: bytes, when_ms: int) -> None:
        expires = self.expires
        expires[key] = when_ms
        if len(expires) > SHARD_AT and type(expires) is dict:
            self.expires = ShardedDict(expires)
        heapq.heappush(self._heap, (when_ms, key))
        if self._old:
            self.compact(2)  # (each new TTL moves two: the old heap empties first)
        elif len(self._heap) > 2 * len(self.expires) + 1024:
            # stale entries (TTLs changed or removed) outnumber the live ones: the heap
            # is set aside and its live entries moved back a few at a time, here and by
            # the cron (rebuilt whole, 3 million TTLs held the suite 1.6 s and more)
            self._old, self._heap = self._heap, []

    def compact(self, budget: int) -> int:
        """Move up to C{budget} entries of the heap set aside back, dropping stale ones."""
        old, heap, expires = self._old, self._heap, self.expires
        n = min(budget, len(old))
        for _ in range(n):
            entry = old.pop()  # (the last entry: what is left is still a heap)
            if expires.get(entry[1]) == entry[0]:
                heapq.heappush(heap, entry)
        return n

    def ttl_ms(self, key: bytes) -> int:
        """The absolute expiry time of a key, or -1."""
        return self.expires.get(key, -1)

    def persist(self, key: bytes) -> bool:
        return self.expires.pop(key, None) is not None

    def rename(self, old: bytes, new: bytes) -> None:
        value = self.data.pop(old)
        if type(value) is not bytes:
            self.boxed -= 1  # (set counts it again)
        when = self.expires.pop(old, None)
        self.set(new, value)  # (the value it replaces is freed lazily; dirty counts one)
        if old in self.raw:
            self.raw.discard(old)
            self.raw.add(new)
        if when is not None:
            self.set_expire(new, when)

    def flush(self) -> None:
        """FLUSHDB of a small database (its big values are freed in slices, see C{free})."""
        if self.free is not None:
            for value in self.data.values():
                if type(value) is not bytes:
                    self.free(value)
        if type(self.data) is dict:
            self.data.clear()
        else:  # (a keyspace once big, now small: plain again)
            self.data = {}
        self.boxed = 0
        self.raw.clear()
        if type(self.expires) is dict:
            self.expires.clear()
        else:
            self.expires = {}
        self._drop_heaps()
        self.dirty += 1

    def _drop_heaps(self) -> None:
        """The expiry heaps emptied; big ones freed a slice at a time (lazyfree)."""
        for heap in (self._heap, self._old):
            if len(heap) > COMPACT and self.free is not None:  # (a smaller one: now)
                self.free(heap)
        self._heap, self._old = [], []

    def take_all(self) -> tuple[MutableMapping[bytes, Any], MutableMapping[bytes, int]]:
        """FLUSHALL of a big database: empty now; the caller frees the old keys (lazyfree.py)."""
        data, expires = self.data, self.expires
        self.data, self.expires = {}, {}
        self.boxed = 0
        self.raw = set()
        self._drop_heaps()
        self.dirty += 1
        return data, expires

    def swap(self, other: Store) -> None:
        """SWAPDB: the keys of two databases change places (clients stay where they are)."""
        self.data, other.data = other.data, self.data
        self.expires, other.expires = other.expires, self.expires
        self.raw, other.raw = other.raw, self.raw
        self.boxed, other.boxed = other.boxed, self.boxed
        self._heap, other._heap = other._heap, self._heap
        self._old, other._old = other._old, self._old
        self.dirty += 1
        other.dirty += 1

    def expire_cycle(self, limit: int = 2000, until: float | None = None) -> int:
        """
        Active expiry: delete up to C{limit} keys whose time has come, and stop at
        C{until} (a C{perf_counter} time, looked at every 32 keys) if given: 2,000 keys
        with a DEL each for the AOF were 18 ms of CPU at once, 50-80 ms of the suite's
        time on a busy machine, every 100 ms while keys expired by the hundred thousand.
        """
        if self.loading or not (self._heap or self._old):
            return 0
        now = self.now_ms()
        done = 0
        looked = 0  # (stale entries too: millions of changed TTLs due at once are many calls)
        for heap in (self._heap, self._old):
            while heap and heap[0][0] <= now and done < limit and looked < 8 * limit:
                when, key = heapq.heappop(heap)
                looked += 1
                if self.expires.get(key) == when:
                    self._expire(key)
                    done += 1
                if until is not None and not looked % 32 and perf_counter() > until:
                    return done
        return done

    def due(self) -> bool:
        """Are keys (or stale entries of the expiry heaps) due now? (L{expire_cycle} has more.)"""
        now = self.now_ms()
        return any(heap and heap[0][0] <= now for heap in (self._heap, self._old))

    def type_name(self, value: Any) -> str:
        return TYPE_NAMES[type(value)]

    def __len__(self) -> int:
        return len(self.data)
