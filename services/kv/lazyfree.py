"""
Freeing big values a slice at a time (Redis's lazyfree): DEL, UNLINK, FLUSHALL and
FLUSHDB of a value with a million members, or a SET, RENAME, RESTORE/COPY REPLACE,
*STORE or expiry that drops one (L{Store.free}), no longer hold the event loop the
whole suite shares while Python deallocates every member.

The key is gone at once (the command's effect and reply are unchanged); the value, no
longer reachable from the keyspace, goes to a queue that the reactor empties C{PIECE}
elements per turn (C{callLater(0)}: other connections are served in between; and no
more than the turn's share of kv's work in slices allows, L{Turn}, C{BIT} elements at
least). Values of at most C{THRESHOLD} elements are freed at once, as Redis does
(C{LAZYFREE_THRESHOLD}). Nested values (FLUSHALL's old keyspace holds a set of a
million members) are queued in turn. INFO's C{lazyfree_pending_objects} is C{pending}.

A big string cannot be freed a piece at a time: the last reference to a 512 MB
C{bytes} going away is one C{munmap} of its 131,072 pages, 25-100 ms of the event
loop (L{Strings} below takes it off the loop).
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

from portsuite_services.kv.sharded import ShardedDict, ShardedSet
from portsuite_services.kv.stream import PEL, Stream
from portsuite_services.kv.turn import Turn
from portsuite_services.kv.zset import ZSet

THRESHOLD = 64  # Redis's LAZYFREE_THRESHOLD: smaller values are freed at once
PIECE = 8192  # elements freed per turn of the reactor at most (a few ms)
BIT = 1024  # and at least, the turn's share spent or not (then the clock is read again)


def effort(value: Any) -> int:
    """How many elements freeing C{value} touches (0 for a string)."""
    t = type(value)
    if t is ZSet:
        return len(value.sl)  # (its dict may be gone first: see _drain)
    if t is set or t is dict or t is deque or t is list:
        return len(value)
    if t is PEL:  # (a consumer group's, destroyed)
        return len(value)
    if t is Stream:
        return len(value.entries) + sum(len(g.pel) for g in value.groups.values())
    if t is ShardedDict or t is ShardedSet:  # (FLUSHALL of a big keyspace; a big hash or set)
        return len(value)
    return 0


class LazyFree:
    """The queue of values to free, emptied a piece per reactor turn."""

    def __init__(self, reactor: Any, turn: Turn):
        self.reactor = reactor
        self.turn = turn
        self.queue: deque[Any] = deque()
        self.call: Any = None
        self.freed = 0  # INFO lazyfreed_objects
        self.strings = Strings(reactor)  # big strings: their pages go back in a thread

    @property
    def pending(self) -> int:
        return len(self.queue)

    @property
    def done(self) -> int:
        """INFO's C{lazyfreed_objects}: values freed in slices, strings in a thread."""
        return self.freed + self.strings.released

    def free(self, value: Any) -> None:
        """Drop C{value} (already out of the keyspace): now if small, else in slices."""
        if effort(value) <= THRESHOLD or not hasattr(self.reactor, "callLater"):
            return  # (no reactor to run the slices: a server only checking a data file)
        self.queue.append(value)
        if self.call is None:
            self.call = self.reactor.callLater(0, self._step)

    def _step(self) -> None:
        self.call = None
        end = self.turn.deadline()
        budget = PIECE
        queue = self.queue
        while queue and budget > 0:
            budget -= self._drain(queue[0], min(budget, BIT))
            if not effort(queue[0]):
                queue.popleft()
                self.freed += 1
            if perf_counter() > end:
                break
        if queue:
            self.call = self.reactor.callLater(0, self._step)

    def _drain(self, v: Any, n: int) -> int:
        """Remove up to C{n} elements of C{v}; how many were removed."""
        t = type(v)
        n = min(n, len(v.sl) if t is ZSet else len(v))  # (a ZSet's dict may be gone first)
        if t is set or t is deque:
            pop = v.pop
            for _ in range(n):
                pop()
        elif t is dict:
            popitem = v.popitem
            for _ in range(n):
                _, inner = popitem()
                if effort(inner) > THRESHOLD:  # (FLUSHALL: a big value inside the keyspace)
                    self.queue.append(inner)
        elif t is list:
            del v[-n:]
        elif t is ZSet:
            n = min(n, PIECE // 2)  # (a SortedList pop costs more)
            d = v.dict
            if type(d) is not dict:  # a big one's sharded dict: its dicts freed in turn
                self.queue.extend(d.take_parts())
                v.dict = d = {}
            popitem, pop = d.popitem, v.sl.pop
            for _ in range(n):
                if d:
                    popitem()
                pop()
        elif t is ShardedDict or t is ShardedSet:  # its dicts (or sets), each freed in turn
            self.queue.extend(v.take_parts())
            return 1
        elif t is PEL:
            v.forget()
            popitem = dict.popitem
            for _ in range(n):
                popitem(v)
        elif t is Stream:  # its entries (the ids and nodes go with the last piece)
            if v.groups:  # its groups' pending lists, each freed in turn
                for g in v.groups.values():
                    self.queue.append(g.pel)
                    self.queue.extend(cons.pel for cons in g.consumers.values())
                v.groups = {}
                return 1
            n = min(n, len(v.entries))
            del v.ids[-n:]
            popitem = v.entries.popitem
            for _ in range(n):
                popitem()
        return max(n, 1)


# -- big strings: their pages handed back off the reactor thread ----------------------

BIG_STRING = 8 << 20  # from here a string's pages go back to the system in a thread
CHECK_EVERY = 0.1  # seconds between looks at the watched strings (while there are some)
PAGE = mmap.PAGESIZE
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


def _libc_madvise() -> Any:
    """libc's C{madvise} through ctypes (which lets the GIL go around the call), or None."""
    if _DONTNEED is None:
        return None
    try:
        f = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    f.restype = ctypes.c_int
    return f


_madvise = _libc_madvise()


def address(value: bytes) -> int | None:
    """Where C{value}'s bytes are: a C{c_char_p} made of a C{bytes} points at them (no copy)."""
    return ctypes.cast(ctypes.c_char_p(value), ctypes.c_void_p).value


def drop_pages(value: bytes) -> int:
    """
    Hand the whole pages inside C{value}'s bytes back to the system (C{madvise
    MADV_DONTNEED}): they read as zeros afterwards, so only for a value nothing can
    read any more (L{Strings}). Its header and the bytes before the first and after the
    last whole page are not touched. The buffer's address is the one ctypes passes
    for a C{bytes} argument (its data, documented); the call runs without the GIL.
    How many bytes were handed back (0 where C{madvise} is missing).
    """
    if _madvise is None or type(value) is not bytes:
        return 0
    addr = address(value)
    if addr is None:
        return 0
    start = -(-addr // PAGE) * PAGE
    end = (addr + len(value)) // PAGE * PAGE
    if end - start < PAGE:
        return 0
    if _madvise(start, end - start, _DONTNEED) != 0:
        return 0
    return end - start


def _refs(box: list[Any], i: int) -> int:
    return sys.getrefcount(box[i])


# what L{_refs} counts for a value that only the list holds (2 on CPython 3.11: the
# list's and the call's own; measured, not assumed, so an interpreter that counts
# differently gives its own figure)
ALONE = _refs([bytearray(1)], 0)


class Strings:
    """
    Big strings (from L{BIG_STRING} bytes) watched until nothing but this holds them,
    as Redis's lazyfree gives a big value to its bio thread: then a thread of the
    reactor's pool hands their pages back (L{drop_pages}, 25 ms for 512 MB, without
    the GIL) and drops them, whose C{munmap} of pages no longer there is about 20 us.
    Before, the last reference going away on the reactor thread (DEL, SET over it, an
    expiry, FLUSHALL, the reply or the half-received bulk of a closed connection)
    was one C{munmap} of all its pages there: 40-104 ms of every service of the suite.

    Watched values are the ones that may be dropped on the reactor thread: the big
    bulks a client sends, what the sliced string commands build, a DUMP's payload,
    the values loaded from the append-only file. Whoever holds one keeps it alive as
    before (the keyspace, a reply being sent, a DUMP, a COPY): this only adds a
    reference, looked at every L{CHECK_EVERY} seconds while there are some. A value
    is handed over only when its reference count says that this list alone holds it
    (L{ALONE}): nothing else can read it then, or ever get it back.
    """

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.watched: list[bytes] = []
        self.call: Any = None
        self.in_thread: Callable[..., Any] | None = None
        if _madvise is not None and hasattr(reactor, "callInThread"):
            self.in_thread = reactor.callInThread
        self.released = 0  # strings whose pages went back in a thread

    def watch(self, value: Any) -> None:
        """Keep an eye on C{value} if it is a big string (anything else: nothing)."""
        if type(value) is not bytes or len(value) < BIG_STRING or self.in_thread is None:
            return
        self.watched.append(value)
        if self.call is None:
            self.call = self.reactor.callLater(CHECK_EVERY, self.check)

    def watch_all(self, values: Any) -> None:
        """L{watch} each of C{values} that is a big string."""
        for v in values:
            if type(v) is bytes and len(v) >= BIG_STRING:
                self.watch(v)

    def check(self) -> None:
        """The values nothing else holds go to a thread; the others are kept watched."""
        self.call = None
        # (a value watched twice, once: else the two would count as a holder, forever)
        box = self.watched = list({id(v): v for v in self.watched}.values())
        kept: list[bytes] = []
        gone: list[bytes] = []
        for i in range(len(box)):
            (gone if _refs(box, i) <= ALONE else kept).append(box[i])
        self.watched = kept
        del box
        if gone:
            assert self.in_thread is not None
            self.released += len(gone)
            self.in_thread(_release, gone)
        if kept:
            self.call = self.reactor.callLater(CHECK_EVERY, self.check)

    def stop(self) -> None:
        """The server stops: no more looks (the values go as Python drops them)."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self.watched = []


def _release(values: list[bytes]) -> None:
    """In a pool thread: each value's pages handed back, then the value dropped."""
    while values:
        drop_pages(values[-1])
        values.pop()
