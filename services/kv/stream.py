"""
The stream value type (Redis 7's TYPE C{stream}): entries by ID, consumer groups,
their pending entries lists (PEL) and consumers.

Entries are kept as a sorted list of live IDs and a dict ID -> fields. Redis keeps
them in radix-tree nodes of at most 100 entries (C{stream-node-max-entries}); the
nodes are modelled too (L{Node}), because approximate trimming (C{MAXLEN ~},
C{MINID ~}) only removes whole nodes, and XLEN after it must be Redis's.
"""

from __future__ import annotations

import bisect
from collections.abc import Generator, Iterator
from itertools import chain, islice
from typing import Any

U64 = (1 << 64) - 1
MAX_ID = (U64, U64)
ZERO = (0, 0)
INVALID_READ = -1  # SCG_INVALID_ENTRIES_READ
NODE_MAX_ENTRIES = 100  # stream-node-max-entries
NODE_MAX_BYTES = 4096  # stream-node-max-bytes
FEW = 8  # IDs an XDEL takes out of the list of IDs in place (more: the list is rebuilt)


def fmt(i: tuple[int, int]) -> bytes:
    return b"%d-%d" % i


class Node:
    """One radix-tree node (a listpack): its master ID, live and total entries."""

    __slots__ = ("master", "live", "total", "last", "size")

    def __init__(self, master: tuple[int, int]):
        self.master = master
        self.live = 0
        self.total = 0  # live + marked deleted
        self.last = master
        self.size = 0  # estimated listpack bytes


class NACK:
    """A pending entry: who has it, since when, how many deliveries."""

    __slots__ = ("consumer", "time", "count")

    def __init__(self, consumer: Consumer, time: int, count: int = 1):
        self.consumer = consumer
        self.time = time
        self.count = count


class PEL(dict):  # type: ignore[type-arg]
    """
    A pending entries list: a dict ID -> NACK that also keeps its IDs sorted
    (C{order}). A removed ID stays in C{order} until half of it is removed ones; then
    it is compacted a few IDs per later change (L{_compact}), into a new list that
    replaces C{order} when it has caught up: XACK of the oldest entries, the usual
    order, costs no shifting, and no single change walks a list of hundreds of
    thousands (a compaction in one go held the suite 150 ms at 250,000).
    Readers take live IDs with L{live_from}.
    """

    COMPACTED = 8  # IDs of C{order} a change moves to the compacted list (twice what it adds)

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[int, int]] = []
        self.dead = 0
        # a compaction under way: the live IDs of order[:_done], and how many of them died since
        self._fresh: list[tuple[int, int]] | None = None
        self._done = 0
        self._fresh_dead = 0

    def __setitem__(self, i: tuple[int, int], nack: NACK) -> None:
        if i not in self:
            order = self.order
            if not order or i > order[-1]:
                order.append(i)
            else:
                pos = bisect.bisect_left(order, i)
                back = pos < len(order) and order[pos] == i
                if back:
                    self.dead -= 1  # it comes back where it was
                else:
                    order.insert(pos, i)
                if self._fresh is not None and pos < self._done:
                    self._compacted_again(i, back)
            super().__setitem__(i, nack)
            if self._fresh is not None:
                self._compact()
            return
        super().__setitem__(i, nack)

    def _compacted_again(self, i: tuple[int, int], back: bool) -> None:
        """C{i} comes (back) in the part of C{order} already compacted."""
        fresh = self._fresh
        assert fresh is not None
        if not back:
            self._done += 1  # (order moved on by one)
        pos = bisect.bisect_left(fresh, i)
        if pos < len(fresh) and fresh[pos] == i:
            self._fresh_dead -= 1  # (it died after it was compacted)
        else:
            fresh.insert(pos, i)

    def __delitem__(self, i: tuple[int, int]) -> None:
        super().__delitem__(i)
        self.dead += 1
        if self._fresh is not None:
            if self._done and i <= self.order[self._done - 1]:
                self._fresh_dead += 1
            self._compact()
        elif self.dead > 1024 and self.dead * 2 > len(self.order):
            self._fresh, self._done, self._fresh_dead = [], 0, 0

    def _compact(self) -> None:
        """The compaction goes on by C{COMPACTED} IDs; done, its list is C{order}."""
        fresh = self._fresh
        assert fresh is not None
        order, k = self.order, self._done
        fresh += filter(self.__contains__, order[k : k + self.COMPACTED])
        self._done = k = k + self.COMPACTED
        if k >= len(order):
            self.order, self.dead = fresh, self._fresh_dead
            self._fresh = None

    def forget(self) -> None:
        """Its IDs dropped at once (lazyfree frees the dict's items next)."""
        self.order, self.dead, self._fresh = [], 0, None

    def pop(self, i: tuple[int, int], *default: Any) -> Any:  # type: ignore[override]
        if i in self:
            nack = self[i]
            del self[i]
            return nack
        if default:
            return default[0]
        raise KeyError(i)

    def after(self, i: tuple[int, int], inclusive: bool = False) -> int:
        """Where the IDs greater than C{i} (or equal, if inclusive) start in C{order}."""
        return (bisect.bisect_left if inclusive else bisect.bisect_right)(self.order, i)

    def live_from(self, pos: int, n: int = 0) -> list[tuple[int, int]]:
        """Up to C{n} (0: all) live IDs from position C{pos} of C{order}, in order."""
        order = self.order
        if not self.dead:
            return order[pos : pos + n] if n else order[pos:]
        out = []
        for k in range(pos, len(order)):
            i = order[k]
            if i in self:
                out.append(i)
                if n and len(out) >= n:
                    break
        return out

    def ids(self) -> list[tuple[int, int]]:
        return self.live_from(0)

    def first(self) -> tuple[int, int]:
        return self.live_from(0, 1)[0]

    def last(self) -> tuple[int, int]:
        order = self.order
        for k in range(len(order) - 1, -1, -1):
            if order[k] in self:
                return order[k]
        raise KeyError("empty")


class Consumer:
    __slots__ = ("name", "seen", "pel")

    def __init__(self, name: bytes, seen: int):
        self.name = name
        self.seen = seen
        self.pel = PEL()


class Group:
    __slots__ = ("name", "last_id", "entries_read", "pel", "consumers")

    def __init__(self, name: bytes, last_id: tuple[int, int], entries_read: int):
        self.name = name
        self.last_id = last_id
        self.entries_read = entries_read
        self.pel = PEL()
        self.consumers: dict[bytes, Consumer] = {}

    def sorted_pel(self) -> list[tuple[int, int]]:
        return self.pel.ids()


class Stream:
    def __init__(self) -> None:
        self.ids: list[tuple[int, int]] = []
        self.entries: dict[tuple[int, int], list[bytes]] = {}
        self.nodes: list[Node] = []
        self.last_id = ZERO
        self.first_id = ZERO
        self.max_deleted = ZERO
        self.entries_added = 0
        self.groups: dict[bytes, Group] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __bool__(self) -> bool:  # an empty stream is still a key
        return True

    # -- entries --------------------------------------------------------------------

    def append(self, i: tuple[int, int], fields: list[bytes]) -> None:
        self.ids.append(i)
        self.entries[i] = fields
        size = sum(len(f) for f in fields) + 2 * len(fields) + 4
        node = self.nodes[-1] if self.nodes else None
        if node is None or node.total >= NODE_MAX_ENTRIES or node.size + size >= NODE_MAX_BYTES:
            node = Node(i)
            node.size = 16 + size
            self.nodes.append(node)
        node.live += 1
        node.total += 1
        node.size += size
        node.last = i
        self.last_id = i
        self.entries_added += 1
        if len(self.ids) == 1:
            self.first_id = i

    def delete(self, i: tuple[int, int]) -> bool:
        return self.delete_many([i]) == 1

    def delete_many(self, ids: list[tuple[int, int]]) -> int:
        """
        Delete the entries of C{ids} (XDEL, at once); how many there were. Up to
        L{FEW} of them leave the list of IDs in place (a C{memmove} each: a stream of
        two million entries was copied for one ID, 100 ms); more cut it once, around
        all of them (a cut per ID moved the rest of a stream of a million each time:
        XDEL of 125,000 IDs took 35 s). Big deletions go in steps: L{forget}, then
        L{without} and L{set_ids}.
        """
        gone = self.forget(ids)
        if not gone:
            return 0
        if len(gone) <= FEW:
            old = self.ids
            for i in reversed(gone):
                del old[bisect.bisect_left(old, i)]
            self.set_ids(old, gone)
        else:
            for kept in self.without(gone, len(self.ids)):  # (one step: run through)
                if kept is not None:
                    self.set_ids(kept, gone)
        return len(gone)

    def forget(self, ids: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """
        The first half of a deletion: the entries of C{ids} that are there go (their
        nodes counted down) and are returned, sorted; the list of IDs still holds them
        until L{set_ids} is given the list L{without} makes.
        """
        entries = self.entries
        gone = sorted({i for i in ids if i in entries})
        if not gone:
            return gone
        for i in gone:
            del entries[i]
        nodes = self.nodes
        masters = [n.master for n in nodes]
        emptied = False
        for i in gone:
            k = bisect.bisect_right(masters, i) - 1
            if k >= 0:
                node = nodes[k]
                node.live -= 1
                emptied = emptied or node.live <= 0
        if emptied:
            self.nodes = [n for n in nodes if n.live > 0]
        if gone[-1] > self.max_deleted:
            self.max_deleted = gone[-1]
        return gone

    def without(
        self, gone: list[tuple[int, int]], piece: int
    ) -> Generator[list[tuple[int, int]] | None, None, None]:
        """
        The list of IDs less C{gone} (sorted, all in it), made about C{piece} IDs a
        step: yields None between steps, then the new list.
        """
        old = self.ids
        kept: list[tuple[int, int]] = []
        prev = 0
        todo = 0
        for i in gone:
            if prev < len(old) and old[prev] == i:  # (the next one: IDs deleted in a row)
                prev += 1
                todo += 1
            else:
                pos = bisect.bisect_left(old, i, prev)
                kept += old[prev:pos]
                todo += pos - prev + 32  # (a bisection costs some twenty comparisons)
                prev = pos + 1
            if todo >= piece:
                todo = 0
                yield None
        for lo in range(prev, len(old), piece):
            kept += old[lo : lo + piece]
            if lo + piece < len(old):
                yield None
        yield kept

    def set_ids(self, ids: list[tuple[int, int]], gone: list[tuple[int, int]]) -> None:
        """The list of IDs after the deletion of C{gone} (L{forget}): the first ID follows."""
        self.ids = ids
        k = bisect.bisect_left(gone, self.first_id)
        if k < len(gone) and gone[k] == self.first_id:
            self.first_id = ids[0] if ids else ZERO

    def trim(
        self,
        maxlen: int | None,
        minid: tuple[int, int] | None,
        approx: bool,
        limit: int,
        dropped: list[Any] | None = None,
    ) -> int:
        """
        Redis's streamTrim: whole nodes first; within a node only when exact. The
        ids are cut once at the end (not a node at a time: each cut moved all the
        others); C{dropped}, if given, receives the removed entries (to free lazily).
        """
        deleted, whole, partial = self.trim_plan(maxlen, minid, approx, limit)
        self.cut(whole, partial, dropped)
        return deleted

    def trim_plan(
        self, maxlen: int | None, minid: tuple[int, int] | None, approx: bool, limit: int
    ) -> tuple[int, int, int]:
        """
        What L{trim} removes, changing nothing: (entries, whole nodes from the first,
        entries from the first node after them).
        """
        deleted = 0  # (the first C{deleted} ids are gone)
        ids = self.ids
        n = len(ids)
        nodes = self.nodes
        gone_nodes = 0
        while gone_nodes < len(nodes):
            if maxlen is not None and n - deleted <= maxlen:
                break
            node = nodes[gone_nodes]
            if limit and deleted + node.live > limit:
                break
            if maxlen is not None:
                remove = n - deleted - node.live >= maxlen
            else:
                remove = node.last < minid  # type: ignore[operator]
            if remove:  # the node's live entries: the next node.live ids
                deleted += node.live
                gone_nodes += 1
                continue
            if approx:
                break
            k = 0
            while k < node.live:
                if maxlen is not None and n - deleted - k <= maxlen:
                    break
                if minid is not None and ids[deleted + k] >= minid:
                    break
                k += 1
            return deleted + k, gone_nodes, k
        return deleted, gone_nodes, 0

    def cut(self, whole: int, partial: int, dropped: list[Any] | None = None) -> None:
        """
        Remove the first C{whole} nodes' entries, then C{partial} entries of the node
        after them (L{trim_plan}'s plan, or a first piece of it); C{dropped}, if given,
        receives the removed entries.
        """
        nodes = self.nodes
        deleted = sum(n.live for n in nodes[:whole]) + partial
        del nodes[:whole]
        if partial:
            nodes[0].live -= partial
        ids = self.ids
        pop = self.entries.pop
        gone = [pop(i) for i in ids[:deleted]]
        del ids[:deleted]
        if dropped is not None:
            dropped += gone
        self.first_id = ids[0] if ids else ZERO

    def range(
        self, start: tuple[int, int], end: tuple[int, int], count: int = 0, rev: bool = False
    ) -> list[tuple[int, int]]:
        ids = self.ids
        lo = bisect.bisect_left(ids, start)
        hi = bisect.bisect_right(ids, end)
        if lo >= hi:
            return []
        if not rev:
            return ids[lo : lo + count if count else hi][: hi - lo]
        if count:
            return ids[max(lo, hi - count) : hi][::-1]
        return ids[lo:hi][::-1]

    def after(self, i: tuple[int, int], count: int) -> list[tuple[int, int]]:
        lo = bisect.bisect_right(self.ids, i)
        return self.ids[lo : lo + count] if count else self.ids[lo:]

    def last_valid(self) -> tuple[int, int]:
        return self.ids[-1] if self.ids else ZERO

    # -- groups (Redis 7.0's counters) -----------------------------------------------

    def has_tombstones(self, start: tuple[int, int] | None, end: tuple[int, int] | None) -> bool:
        if not self.ids or self.max_deleted == ZERO:
            return False
        if self.first_id > self.max_deleted:
            return False
        s = start if start is not None else ZERO
        e = end if end is not None else MAX_ID
        return s <= self.max_deleted <= e

    def estimate_distance(self, i: tuple[int, int]) -> int:
        if not self.entries_added:
            return 0
        if not self.ids and i <= self.last_id:
            return self.entries_added
        if i == self.last_id:
            return self.entries_added
        if i > self.last_id:
            return INVALID_READ
        if self.max_deleted == ZERO or self.max_deleted < self.first_id:
            if i < self.first_id:
                return self.entries_added - len(self.ids)
            if i == self.first_id:
                return self.entries_added - len(self.ids) + 1
        return INVALID_READ

    def lag(self, g: Group) -> int | None:
        if not self.entries_added:
            return 0
        if g.entries_read != INVALID_READ and not self.has_tombstones(g.last_id, None):
            return self.entries_added - g.entries_read
        r = self.estimate_distance(g.last_id)
        if r != INVALID_READ:
            return self.entries_added - r
        return None

    def group_read(self, g: Group, i: tuple[int, int]) -> None:
        """A group was delivered entry C{i} (streamReplyWithRange's bookkeeping)."""
        if i > g.last_id:
            if g.entries_read != INVALID_READ and not self.has_tombstones(i, None):
                g.entries_read += 1
            elif self.entries_added:
                g.entries_read = self.estimate_distance(i)
            g.last_id = i

    def copy(self) -> Stream:
        steps = self.copy_steps()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    COPIED = 4096  # entries a step of L{copy_steps} copies

    def copy_steps(self) -> Generator[None, None, Stream]:
        """L{copy} a piece of entries at a time (COPY of a big stream, in bigwork's slices)."""
        s = Stream()
        ids = self.ids
        for lo in range(0, len(ids), self.COPIED):
            s.ids += ids[lo : lo + self.COPIED]
            yield
        entries = self.entries
        it = iter(entries.items())
        for _ in range(0, len(entries), self.COPIED):
            s.entries.update([(k, list(v)) for k, v in islice(it, self.COPIED)])
            yield
        for n in self.nodes:
            m = Node(n.master)
            m.live, m.total, m.last, m.size = n.live, n.total, n.last, n.size
            s.nodes.append(m)
        s.last_id, s.first_id, s.max_deleted = self.last_id, self.first_id, self.max_deleted
        s.entries_added = self.entries_added
        for name, g in self.groups.items():
            h = Group(name, g.last_id, g.entries_read)
            for cname, cons in g.consumers.items():
                h.consumers[cname] = Consumer(cname, cons.seen)
            # (in order: each ID appended, not inserted; a piece a step)
            pel, order = g.pel, g.pel.order
            for lo in range(0, len(order), self.COPIED):
                for i in order[lo : lo + self.COPIED]:
                    nack = pel.get(i)
                    if nack is not None:
                        c2 = h.consumers[nack.consumer.name]
                        n2 = NACK(c2, nack.time, nack.count)
                        h.pel[i] = n2
                        c2.pel[i] = n2
                yield
            s.groups[name] = h
        return s

    def rewrite_commands(self, key: bytes, copy: bool = False) -> Iterator[list[bytes]]:
        """
        What Redis's AOF rewrite writes for a stream (rewriteStreamObject). C{copy}:
        as the stream is now, its IDs and entries copied and its groups' records made
        at once (written across turns: aof.key_records).
        """
        if not self.ids:
            head: Iterator[list[bytes]] = iter(
                ([b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"],)
            )
        elif copy:
            ids, entries = list(self.ids), self.entries.copy()
            head = ([b"XADD", key, fmt(i), *entries[i]] for i in ids)
        else:
            head = ([b"XADD", key, fmt(i), *self.entries[i]] for i in self.ids)
        groups = self._group_commands(key)
        return chain(head, list(groups) if copy else groups)

    def _group_commands(self, key: bytes) -> Iterator[list[bytes]]:
        yield [
            b"XSETID",
            key,
            fmt(self.last_id),
            b"ENTRIESADDED",
            b"%d" % self.entries_added,
            b"MAXDELETEDID",
            fmt(self.max_deleted),
        ]
        for name, g in self.groups.items():
            yield [
                b"XGROUP",
                b"CREATE",
                key,
                name,
                fmt(g.last_id),
                b"ENTRIESREAD",
                b"%d" % g.entries_read,
            ]
            for i in g.sorted_pel():
                nack = g.pel[i]
                yield [
                    b"XCLAIM",
                    key,
                    name,
                    nack.consumer.name,
                    b"0",
                    fmt(i),
                    b"TIME",
                    b"%d" % nack.time,
                    b"RETRYCOUNT",
                    b"%d" % nack.count,
                    b"JUSTID",
                    b"FORCE",
                ]
            for cname, cons in g.consumers.items():
                if not cons.pel:
                    yield [b"XGROUP", b"CREATECONSUMER", key, name, cname]
