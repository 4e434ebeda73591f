"""
A big database's keys (or their expiry times) as many small dicts, so that the
keyspace never grows by copying a big table at once.

A Python dict grows by copying its whole table when it fills up (at about 700,000,
1.4 million, 2.8 million keys…): the one write that crosses the line held every
service of the suite for 40–350 ms, where Redis rehashes a bucket at a time. A
store's C{data} and C{expires} are plain dicts while they hold at most C{SHARD_AT}
keys (the lookups every command makes stay C-fast); past that, the store wraps the
dict in a L{ShardedDict} (L{Store.grow}): new keys go to one of C{SHARDS} small
dicts chosen by the key's hash (bytes keep their hash, so hashing again is cheap),
and a shard holds about 1/C{SHARDS} of the keys, so a resize copies at most that
(about 1 ms at ten million keys). The old dict is not copied either: it never grows
again (a key it holds is changed in place; new keys go to the shards), lookups
check it after the shard, and the server's cron moves its keys into the shards
C{MOVE} at a time (L{ShardedDict.move}), between commands.

It is a C{MutableMapping}: every place that used the dict (SCAN, KEYS, RANDOMKEY,
the AOF rewrite, SWAPDB, FLUSHDB…) reads it as before, only slower per key (a
method call: about 0.1 µs a lookup). Iteration walks the old dict, then the
shards, in C. A store emptied (FLUSHDB, FLUSHALL) starts again from a plain dict.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from itertools import chain, islice
from typing import Any, TypeVar, overload

V = TypeVar("V")
T = TypeVar("T")

SHARD_AT = 1 << 16  # a plain dict past this many keys is sharded (its resizes: ~2 ms at most)
# a prime: h % SHARDS leaves the low bits of the hashes in a shard, by which its dict
# places them, as varied as the whole keyspace's (h & 1023 would give every key of a
# shard the same 10 low bits, and make them collide in its table)
SHARDS = 1021
MOVE = 8192  # keys of the old dict moved into the shards per step (about 1–2 ms)
_MISSING: Any = object()


class ShardedDict(MutableMapping[bytes, V]):
    """
    A dict of bytes keys split into C{SHARDS} dicts by hash, with the dict it grew
    from (C{old}) still holding the keys not moved yet. Values are never None (as
    in a store), so C{get} tells a miss by None.
    """

    __slots__ = ("shards", "old", "size")

    def __init__(self, old: dict[bytes, V] | None = None) -> None:
        self.shards: list[dict[bytes, V]] = [{} for _ in range(SHARDS)]
        self.old: dict[bytes, V] = {} if old is None else old  # (never grows: see __setitem__)
        self.size = len(self.old)

    def __len__(self) -> int:
        return self.size

    def __contains__(self, key: object) -> bool:
        if key in self.shards[hash(key) % SHARDS]:
            return True
        old = self.old
        return bool(old) and key in old

    @overload
    def get(self, key: bytes, /) -> V | None: ...

    @overload
    def get(self, key: bytes, /, default: V | T) -> V | T: ...

    def get(self, key: bytes, default: Any = None) -> Any:
        v = self.shards[hash(key) % SHARDS].get(key)
        if v is None:
            old = self.old
            return old.get(key, default) if old else default
        return v

    def __getitem__(self, key: bytes) -> V:
        v = self.shards[hash(key) % SHARDS].get(key)
        if v is None:
            return self.old[key]  # (KeyError when it is nowhere)
        return v

    def __setitem__(self, key: bytes, value: V) -> None:
        old = self.old
        if old and key in old:
            old[key] = value  # (in place: the old dict never grows, so never resizes)
            return
        shard = self.shards[hash(key) % SHARDS]
        if key not in shard:
            self.size += 1
        shard[key] = value

    def __delitem__(self, key: bytes) -> None:
        self.pop(key)

    @overload
    def pop(self, key: bytes, /) -> V: ...

    @overload
    def pop(self, key: bytes, /, default: V | T) -> V | T: ...

    def pop(self, key: bytes, default: Any = _MISSING) -> Any:
        shard = self.shards[hash(key) % SHARDS]
        if key in shard:
            self.size -= 1
            return shard.pop(key)
        old = self.old
        if old and key in old:
            self.size -= 1
            return old.pop(key)
        if default is _MISSING:
            raise KeyError(key)
        return default

    def clear(self) -> None:
        self.shards = [{} for _ in range(SHARDS)]
        self.old.clear()
        self.size = 0

    def parts(self) -> list[dict[bytes, V]]:
        """The dicts holding the keys: the old one, then the shards."""
        return [self.old, *self.shards]

    def __iter__(self) -> Iterator[bytes]:
        return chain(self.old, *self.shards)

    def keys(self) -> KeysView[bytes]:
        return KeysView(self)  # (its iteration is ours: C-level)

    def values(self) -> ValuesView[V]:
        return _Values(self)

    def items(self) -> ItemsView[bytes, V]:
        return _Items(self)

    def __repr__(self) -> str:
        return f"ShardedDict({dict(self.items())!r})"

    # -- growing ------------------------------------------------------------------------

    @property
    def grown_from(self) -> dict[bytes, V]:
        """The plain dict this one grew from (SCAN's snapshots of it stay valid)."""
        return self.old

    def move(self, n: int) -> int:
        """Move up to C{n} keys of the old dict into the shards; how many moved."""
        old = self.old
        n = min(n, len(old))
        popitem = old.popitem
        shards = self.shards
        for _ in range(n):
            key, value = popitem()  # (the last entry: no resize, no search)
            shards[hash(key) % SHARDS][key] = value
        if n and not old:
            old.clear()  # (its table, emptied entry by entry, is freed now)
        return n

    def at(self, i: int) -> bytes:
        """The key at position C{i} of the iteration order (RANDOMKEY), in C mostly."""
        for part in self.parts():
            n = len(part)
            if i < n:
                return next(islice(iter(part), i, None))
            i -= n
        raise IndexError(i)

    def take_parts(self) -> list[dict[bytes, V]]:
        """Its dicts that hold keys (for lazyfree, which frees them a slice at a time); empty now."""
        parts = [p for p in self.parts() if p]
        self.shards = [{} for _ in range(SHARDS)]
        self.old = {}
        self.size = 0
        return parts


class _Values(ValuesView[V]):
    def __init__(self, d: ShardedDict[V]) -> None:
        super().__init__(d)
        self._d = d

    def __iter__(self) -> Iterator[V]:
        return chain.from_iterable(p.values() for p in self._d.parts())


class _Items(ItemsView[bytes, V]):
    def __init__(self, d: ShardedDict[V]) -> None:
        super().__init__(d)
        self._d = d

    def __iter__(self) -> Iterator[tuple[bytes, V]]:
        return chain.from_iterable(p.items() for p in self._d.parts())
