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

from collections.abc import (
    Generator,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    MutableMapping,
    MutableSet,
    ValuesView,
)
from itertools import chain, islice
from typing import Any, TypeVar, overload

from portsuite.api import freeze_young

V = TypeVar("V")
T = TypeVar("T")

SHARD_AT = 1 << 16  # a plain dict past this many keys is sharded (its resizes: ~2 ms at most)
# a prime: h % SHARDS leaves the low bits of the hashes in a shard, by which its dict
# places them, as varied as the whole keyspace's (h & 1023 would give every key of a
# shard the same 10 low bits, and make them collide in its table)
SHARDS = 1021
MOVE = 8192  # keys of the old dict moved into the shards per step (about 1–2 ms)
_MISSING: Any = object()


class _Parts:
    """
    What a sharded dict and a sharded set share: C{SHARDS} small tables by hash
    (C{shards}), the table it grew from (C{old}), and how many keys they hold (C{size}).
    They are frozen as soon as they are made (L{freeze_young}): the garbage collector's
    passes walk every member of every young set, and a set grown to a million members
    by pipelined SADDs right after it was sharded kept its 1,021 shards young: a young
    pass of 54 ms in the next pipeline's turns, then the oldest generation's of 67 ms.
    """

    __slots__ = ()
    shards: list[Any]
    old: Any
    size: int

    def clear(self) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.size

    def __contains__(self, key: object) -> bool:
        if key in self.shards[hash(key) % SHARDS]:
            return True
        old = self.old
        return bool(old) and key in old

    def parts(self) -> list[Any]:
        """The tables holding the keys: the old one, then the shards."""
        return [self.old, *self.shards]

    @property
    def grown_from(self) -> Any:
        """The plain table this one grew from (a SCAN's snapshot of it stays valid)."""
        return self.old

    def at(self, i: int) -> bytes:
        """The key at position C{i} of the iteration order (RANDOMKEY, SRANDMEMBER), in C mostly."""
        for part in self.parts():
            n = len(part)
            if i < n:
                return next(islice(iter(part), i, None))  # type: ignore[no-any-return]
            i -= n
        raise IndexError(i)

    def take_parts(self) -> list[Any]:
        """Its tables that hold keys (for lazyfree, which frees them a slice at a time); empty now."""
        parts = [p for p in self.parts() if p]
        self.clear()  # (new tables: the old ones are in parts)
        return parts


class ShardedDict(_Parts, MutableMapping[bytes, V]):
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
        freeze_young(now=True)  # (see _Parts)

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
        self.old = {}  # (not cleared in place: take_parts hands the old one on)
        self.size = 0

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

    def update(self, other: Any = (), /, **kw: V) -> None:  # type: ignore[override]
        """Each pair set as C{__setitem__} does (the keyspace's batch of SETs)."""
        self._set_pairs(other.items() if hasattr(other, "items") else other)
        for key, value in kw.items():  # (not used by kv; MutableMapping's contract)
            self[key.encode()] = value  # type: ignore[index]

    def set_many(self, pairs: Iterable[tuple[bytes, V]]) -> int:
        """
        Each pair set (HSET of many fields); how many keys were new. A big hash's old
        dict gives two of its keys to the shards for each new one (so lookups soon
        find every key in its shard), as the keyspace's cron moves them.
        """
        added = self._set_pairs(pairs)
        if self.old and added:
            self.move(2 * added)
        return added

    def _set_pairs(self, pairs: Iterable[tuple[bytes, V]]) -> int:
        old = self.old
        shards = self.shards
        added = 0
        for key, value in pairs:
            if old and key in old:
                old[key] = value  # (in place: the old dict never grows)
                continue
            shard = shards[hash(key) % SHARDS]
            if key not in shard:
                added += 1
            shard[key] = value
        self.size += added
        return added

    def copy(self) -> ShardedDict[V]:
        """A copy, dict by dict (each a C-level copy of a small table)."""
        new: ShardedDict[V] = ShardedDict(self.old.copy())
        new.shards = [shard.copy() for shard in self.shards]
        new.size = self.size
        return new

    # -- growing ------------------------------------------------------------------------

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


class ShardedSet(_Parts, MutableSet[bytes]):
    """
    A big set's members (SADD past C{SHARD_AT}) as C{SHARDS} small sets chosen by
    hash, and the set it grew from (C{old}), which never grows again (a member it
    holds stays there until removed; new members go to the shards): so adding a
    member copies at most a shard's table, however big the set. Iteration walks the
    old set, then the shards, in C. What a set operation makes (C{&}, C{|}, C{-})
    is a plain set.
    """

    __slots__ = ("shards", "old", "size")

    def __init__(self, old: set[bytes] | None = None) -> None:
        self.shards: list[set[bytes]] = [set() for _ in range(SHARDS)]
        self.old: set[bytes] = set() if old is None else old
        self.size = len(self.old)
        freeze_young(now=True)  # (see _Parts)

    @classmethod
    def _from_iterable(cls, it: Iterable[bytes]) -> set[bytes]:  # type: ignore[override]
        return set(it)

    def __iter__(self) -> Iterator[bytes]:
        return chain(self.old, *self.shards)

    def add(self, member: bytes) -> None:
        old = self.old
        if old and member in old:
            return
        shard = self.shards[hash(member) % SHARDS]
        if member not in shard:
            shard.add(member)
            self.size += 1

    def discard(self, member: bytes) -> None:
        shard = self.shards[hash(member) % SHARDS]
        if member in shard:
            shard.remove(member)
            self.size -= 1
            return
        old = self.old
        if old and member in old:
            old.remove(member)
            self.size -= 1

    def update(self, members: Iterable[bytes]) -> None:
        """Each member added (SADD of many)."""
        old = self.old
        shards = self.shards
        added = 0
        for m in members:
            if old and m in old:
                continue
            shard = shards[hash(m) % SHARDS]
            if m not in shard:
                shard.add(m)
                added += 1
        self.size += added
        if old and added:  # (its old set gives two to the shards for each new one)
            self.move(2 * added)

    def move(self, n: int) -> int:
        """Move up to C{n} members of the old set into the shards; how many moved."""
        old = self.old
        n = min(n, len(old))
        pop = old.pop
        shards = self.shards
        for _ in range(n):
            m = pop()
            shards[hash(m) % SHARDS].add(m)
        if n and not old:
            old.clear()  # (its table, emptied member by member, is freed now)
        return n

    def difference_update(self, members: Iterable[bytes]) -> None:
        """Each member removed (SREM of many, SPOP)."""
        for m in members:
            self.discard(m)

    def clear(self) -> None:
        self.shards = [set() for _ in range(SHARDS)]
        self.old = set()
        self.size = 0

    def copy(self) -> ShardedSet:
        """A copy, set by set (each a C-level copy of a small table)."""
        new = ShardedSet(self.old.copy())
        new.shards = [shard.copy() for shard in self.shards]
        new.size = self.size
        return new

    def __repr__(self) -> str:
        return f"ShardedSet({set(self)!r})"


# -- big values: a hash (dict) or a set past SHARD_AT members ------------------------

# the plain type each sharded one stands for (TYPE, OBJECT ENCODING, WRONGTYPE checks,
# DUMP, the AOF rewrite…: a big hash is a hash)
KIND: dict[type, type] = {ShardedDict: dict, ShardedSet: set}


def kind(value: object) -> type:
    """C{type(value)}, a sharded container's being the plain type it stands for."""
    t = type(value)
    return KIND.get(t, t)


def sharded(value: Any) -> Any:
    """
    A value about to be stored: a hash (dict) or set past C{SHARD_AT} members as its
    sharded form; a sharded one built for more than it holds (SINTERSTORE of two big
    sets, few in common) plain again under C{SHARD_AT // 2}, since its shards' empty
    tables weigh ~200 KB; others as they are.
    """
    t = type(value)
    if t is dict or t is set:
        if len(value) > SHARD_AT:
            return ShardedDict(value) if t is dict else ShardedSet(value)
    elif (t is ShardedSet or t is ShardedDict) and len(value) < SHARD_AT // 2:
        return set(value) if t is ShardedSet else dict(value.items())
    return value


def new_like(t: type, n: int) -> Any:
    """An empty hash (C{t} dict) or set for about C{n} members: sharded past C{SHARD_AT}."""
    if n > SHARD_AT:
        return ShardedDict() if t is dict else ShardedSet()
    return t()


COPY = 32  # shards copied a step of L{copy_steps} (a few ms at ten million members)


def copy_steps(value: Any, big: bool = False) -> Generator[None, None, Any]:
    """
    A copy of a hash or set (a bigwork generator: COPY, SADD of a million members):
    a sharded one a few shards a step, into a sharded copy; a plain one at once (a
    C-level copy), sharded past C{SHARD_AT} members, or when C{big} (it will grow).
    """
    t = type(value)
    if t is ShardedDict or t is ShardedSet:
        new = t(value.old.copy())
        parts, shards = new.shards, value.shards
        for lo in range(0, SHARDS, COPY):
            parts[lo : lo + COPY] = [part.copy() for part in shards[lo : lo + COPY]]
            yield
        new.size = value.size
        return new
    copy = value.copy()
    if big or len(copy) > SHARD_AT:
        return ShardedDict(copy) if t is dict else ShardedSet(copy)
    return copy
