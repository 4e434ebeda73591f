"""
Whole-collection computations (SUNION, SINTER, SDIFF, their STOREs, SINTERCARD,
SORT) in slices, so a set operation or a sort over a million elements never holds
the event loop every service of the suite shares.

A handler writes its heavy part as a generator (L{Steps}: it yields between pieces
of a few thousand elements and returns the result; what it yields, if not None, is
a big temporary it is done with, freed by lazyfree) and asks L{compute} for its
result. Small work, and work inside a MULTI/EXEC run whole, under CLIENT REPLY
OFF/SKIP or while the AOF is replayed, runs through at once (the same generator, so the
result is the same, element order included). Big work starts a L{Working} job and
the command answers nothing yet (C{NO_REPLY}); inside a transaction that goes on
across turns, the transaction steps the job itself (multiwork.py).

Atomicity is Redis's, by pausing the rest of kv: while a job runs, the server is
C{busy}, every other kv client's commands wait (as under CLIENT PAUSE ALL: they
stay in C{pending} and the client is not read), active expiry waits, so nothing
can change the keys the job reads; the job's own client waits too (the job is its
C{blocked}). Other services of the suite are served between slices
(C{callLater(0)}). When the generator is done, the command runs again, through the
normal dispatch, with the result at hand (L{compute} returns it at once): so the
store, the AOF record, WATCH, keyspace events and the reply (itself sent in
slices by L{bigreply}) are exactly those of a command run whole. Then the clients
that waited run, in the order they connected.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Generator, Iterable
from functools import partial
from itertools import islice
from time import perf_counter
from typing import Any, TypeVar

from twisted.logger import Logger

from portsuite.api import freeze_young
from portsuite_services.kv import blocking
from portsuite_services.kv.aof import AOF, record_steps
from portsuite_services.kv.bigreply import may_slice
from portsuite_services.kv.blocking import Blocked, unblock
from portsuite_services.kv.sharded import KIND, new_like

log = Logger(namespace="portsuite.kv")
T = TypeVar("T")
Steps = Generator[Any, None, T]  # (what a step yields, if not None, is freed lazily)

PIECE = 4096  # elements a step of a generator handles (well under a millisecond)
BIG = 32768  # elements touched: less is done at once
ARGS = BIG // 4  # arguments past which a command over each of them may go on in slices
BUDGET = 0.005  # seconds of steps run at once in a command (then: the turn's share, turn.py)
MAX_STEPS = 8  # and at most this many steps a turn


class Working(Blocked):
    """A job in progress: the client's C{blocked} and the server's C{busy}."""

    __slots__ = ("client", "cmd", "steps", "call", "result", "spent", "commits")

    def __init__(self, c: Any, argv: list[bytes], steps: Steps[Any]):
        super().__init__(argv, {}, c.store, None)
        self.client = c
        self.steps = steps
        self.call: Any = None
        self.result: Any = None
        self.spent = 0.0  # seconds its steps ran, over all turns (SLOWLOG's time for it)
        self.commits = False  # its steps change the keyspace: it ends even if its client goes

    def step(self) -> None:
        """
        Run steps until the turn's share of kv's work in slices is spent (L{Turn}: one
        step at least, C{MAX_STEPS} at most); then the next turn, or the end.
        """
        self.call = None
        c = self.client
        if not self.commits and (c.closed or c.blocked is not self):
            self.stop()
            return
        start = perf_counter()
        done = self.run_steps(c.server.turn.deadline(start))
        self.spent += perf_counter() - start
        if not done:
            self.call = c.server.reactor.callLater(0, self.step)
            return
        self.finish()

    def run_steps(self, end: float) -> bool:
        """Steps until C{end} (perf_counter), C{MAX_STEPS} at most: True once the result is known."""
        steps = self.steps
        free = self.client.server.lazyfree.free
        try:
            for _ in range(MAX_STEPS):
                # what it builds (and its command's arguments) frozen before each step,
                # not walked by the young collections of the next (a list of a million
                # made by one step, young: 30-110 ms a pass)
                freeze_young(now=True)
                garbage = next(steps)
                if garbage is not None:
                    free(garbage)  # a big temporary: freed a slice at a time too
                if perf_counter() > end:
                    break
        except StopIteration as done:
            self.result = done.value
            return True
        except Exception as e:  # noqa: BLE001 - the command's error (CommandError) or a bug
            self.result = Failed(e)
            return True
        return False

    def finish(self) -> None:
        """The result is known: run the command again with it, then the waiting clients."""
        c = self.client
        server = c.server
        freeze_young(now=True)  # (the value it built, whole)
        self.steps = _done()
        unblock(c)
        waiting, c.pending = c.pending, None
        c.precomputed = self
        server.total_commands -= 1  # (counted when it started)
        start = perf_counter()
        try:  # (still busy: the others wait, the clock of expiry stands still)
            c.run([self.argv], None)
        except Exception:  # a bug: logged, this client closed, the others go on
            log.failure("kv {name}: {command} failed", name=server.name, command=self.argv[0])
            c.closed = True
            c.transport.abortConnection()
            waiting = None
        finally:
            c.precomputed = None
            server.set_busy(None)
            if isinstance(server.aof, AOF):
                server.aof.ready = None  # (not taken: the command changed nothing)
        if c.closed and server.aof is not None:  # (a job that commits: no reply to write it)
            server.write_aof()
        # SLOWLOG: the command's own time, all its turns together (Redis's, run whole)
        micros = int((self.spent + perf_counter() - start) * 1_000_000)
        if 0 <= server.slowlog_threshold <= micros:
            server.slow(c, self.argv, micros, 0)
        if waiting is not None and not c.close_after_reply:  # what it pipelined behind
            if c.pending is None:
                c.pending = waiting
            else:
                c.pending = (c.pending[0] + waiting[0], c.pending[1] or waiting[1])
        server.release_waiting()
        if c.blocked is None and c.pending is not None:
            c.resume_after_block([])

    def stop(self) -> None:
        """The client is gone: drop the work, let the others run."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        steps, self.steps = self.steps, _done()
        server = self.client.server
        outlive = getattr(steps, "outlive", None)  # (a PUBLISH half delivered: delivery.py)
        if outlive is not None:
            outlive(server)  # (after this job: it starts as the server's now)
        if server.busy is self:
            server.set_busy(None)
            server.release_waiting()


class Failed:
    """A generator's exception, raised again by L{compute} in the command's second run."""

    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error


def _done() -> Steps[None]:
    return
    yield


def possible(c: Any, cost: int) -> bool:
    """May work touching C{cost} elements run in slices for this client now?"""
    return cost >= BIG and may_slice(c) and c.server.busy is None


def in_transaction(c: Any, cost: int) -> bool:
    """May work touching C{cost} elements run in slices inside an EXEC going on across turns?"""
    return cost >= BIG and getattr(c, "transaction", None) is not None and may_slice(c)


def compute(c: Any, argv: list[bytes], cost: int, make: Callable[[], Steps[T]]) -> T | Any:
    """
    The result of C{make()}'s generator: computed at once when small, else in
    slices (then C{NO_REPLY} now, and this returns the result when the command,
    C{argv}, runs again). C{cost}: about how many elements the work touches.
    """
    done = getattr(c, "precomputed", None)
    if done is not None:
        c.precomputed = None
        result = done.result
        if type(result) is Failed:
            raise result.error
        c.server.lazyfree.strings.watch(result)  # (a big string built: freed off the loop)
        return result
    from portsuite_services.kv.commands import NO_REPLY

    if in_transaction(c, cost):
        c.blocked = Working(c, argv, _recorded(c, argv, make()))  # stepped by the transaction
        return NO_REPLY
    if not possible(c, cost):
        result = run_through(make())
        c.server.lazyfree.strings.watch(result)
        return result

    job = Working(c, argv, _recorded(c, argv, make()))
    c.blocked = job
    c.server.set_busy(job)
    job.call = c.server.reactor.callLater(0, job.step)
    return NO_REPLY


def applied(c: Any, argv: list[bytes], cost: int, make: Callable[[], Steps[T]]) -> T | Any:
    """
    L{compute} for a write whose steps change the keyspace themselves (DEL, MSET of a
    million keys), a piece at a time: nothing else runs meanwhile, so nobody sees it
    half done, and once started it runs to its end even if its client goes, as Redis
    runs a command whole (then its AOF record is written all the same). At once while
    keyspace notifications are on, unless its steps tell the events as they go
    (C{server.telling}, notify.py); else they are told from the keys as they were.
    """
    server = c.server
    if server.notify_flags and not server.telling and getattr(c, "precomputed", None) is None:
        return run_through(make())
    done = compute(c, argv, cost, make)
    if type(c.blocked) is Working:
        c.blocked.commits = True
    return done


def _recorded(c: Any, argv: list[bytes], steps: Steps[T]) -> Steps[T]:
    """
    C{steps}; then, for a write of many arguments while the AOF is on, its record
    encoded a piece a step, for the AOF to take as it is when the command runs again
    (a million arguments took 0.2 s at once). Other work's C{steps} are kept as they
    are (a PUBLISH's delivery: L{Working.stop} looks at them).
    """
    aof = c.server.aof
    if len(argv) <= ARGS or not isinstance(aof, AOF):
        return steps
    from portsuite_services.kv.commands import COMMANDS

    cmd = COMMANDS.get(argv[0].lower())
    if cmd is None or not cmd.write:
        return steps
    return _then_recorded(aof, argv, steps)


def _then_recorded(aof: AOF, argv: list[bytes], steps: Steps[T]) -> Steps[T]:
    result = yield from steps
    parts = yield from record_steps(argv)
    aof.ready = None if parts is None else (argv, parts)
    return result


def compute_growing(c: Any, argv: list[bytes], cost: int, make: Callable[[], Steps[T]]) -> T | Any:
    """
    L{compute} for work whose size shows only as it runs (RESTORE: an LZF string of a
    small payload may expand 90 times): where it would run at once, its first
    C{MAX_STEPS} steps do, and what is left goes on in slices as big work does.
    """
    if cost >= BIG or getattr(c, "precomputed", None) is not None or not possible(c, BIG):
        return compute(c, argv, cost, make)
    steps = make()
    free = c.server.lazyfree.free
    for _ in range(MAX_STEPS):
        try:
            garbage = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if garbage is not None:
            free(garbage)
    return compute(c, argv, BIG, lambda: steps)


def run_through(steps: Steps[T]) -> T:
    """All the steps at once."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


# -- the pieces the commands are made of ------------------------------------------


def _pieces(add: Callable[[Iterable[Any]], Any], items: Collection[Any]) -> Steps[None]:
    """C{add(piece)} for each piece of C{items} (which must not change meanwhile)."""
    it = iter(items)
    for _ in range(0, len(items), PIECE):
        add(islice(it, PIECE))
        yield


def mapped(
    fn: Callable[[Any], Any], items: Collection[Any], drop: bool = False
) -> Steps[list[Any]]:
    """C{[fn(x) for x in items]}, without its falsy results if C{drop}, a piece at a time."""
    out: list[Any] = []
    if drop:
        yield from _pieces(lambda piece: out.extend(filter(None, map(fn, piece))), items)
    else:
        yield from _pieces(lambda piece: out.extend(map(fn, piece)), items)
    return out


def as_list(items: Collection[Any]) -> Steps[list[Any]]:
    """C{list(items)}, a piece at a time."""
    out: list[Any] = []
    yield from _pieces(out.extend, items)
    return out


def union(sets: list[Any]) -> Steps[set[Any]]:
    """The union as a set (SUNIONSTORE): the biggest set's members, then the others'."""
    out: Any = new_like(set, sum(map(len, sets)))  # (big: sharded, see sharded.py)
    for s in sorted(sets, key=len, reverse=True):
        yield from _pieces(out.update, s)
    return out


SHARDS = 64  # SUNION's extra members are told apart in this many small sets


def union_members(sets: list[Any]) -> Steps[list[Any]]:
    """
    The union as a list (SUNION): the biggest set's members as they are (they are
    distinct), then the members of the others that are not in it, told apart in
    C{SHARDS} small sets by hash. (One set of millions would stall the loop while
    it grows: each resize allocates and fills its whole table at once.)
    """
    if sum(map(len, sets)) < BIG:
        return list(set().union(*sets))
    sets = sorted(sets, key=len, reverse=True)
    first = sets[0]
    out = yield from as_list(first)
    shards: list[set[Any]] = [set() for _ in range(SHARDS)]
    adds = [shard.add for shard in shards]
    mask = SHARDS - 1
    for s in sets[1:]:
        it = iter(s)
        for _ in range(0, len(s), PIECE):
            for x in _without(set(islice(it, PIECE)), first):
                adds[hash(x) & mask](x)
            yield
    for shard in shards:
        out.extend(shard)
        yield shard  # (freed by lazyfree, not all at once)
    return out


def inter(sets: list[Any], out: Any) -> Steps[Any]:
    """The intersection, added to C{out} (a list or a set), smallest set first."""
    sets = sorted(sets, key=len)
    first, others = sets[0], sets[1:]
    add = out.extend if type(out) is list else out.update
    it = iter(first)
    for _ in range(0, len(first), PIECE):
        add(_within(set(islice(it, PIECE)), others))
        yield
    return out


def inter_count(sets: list[Any], limit: int) -> Steps[int]:
    """How many members the intersection has (SINTERCARD), counting up to C{limit} (0: all)."""
    sets = sorted(sets, key=len)
    first, others = sets[0], sets[1:]
    n = 0
    it = iter(first)
    for _ in range(0, len(first), PIECE):
        n += len(_within(set(islice(it, PIECE)), others))
        if limit and n >= limit:
            return limit
        yield
    return min(n, limit) if limit else n


def diff(first: Any, others: list[Any], out: Any) -> Steps[Any]:
    """The members of C{first} in none of C{others}, added to C{out} (a list or a set)."""
    add = out.extend if type(out) is list else out.update
    it = iter(first)
    for _ in range(0, len(first), PIECE):
        piece = set(islice(it, PIECE))
        for o in others:
            piece = _without(piece, o)  # (iterates the piece, not the big set)
        add(piece)
        yield
    return out


def _within(piece: set[Any], others: list[Any]) -> set[Any]:
    """The members of C{piece} in every one of C{others} (a big set, sharded: asked each)."""
    plain = [o for o in others if type(o) not in KIND]
    piece = piece.intersection(*plain) if plain else piece
    for o in others:
        if type(o) in KIND:
            piece = {x for x in piece if x in o}
    return piece


def _without(piece: set[Any], o: Any) -> set[Any]:
    """The members of C{piece} not in C{o} (C{piece - o}, which iterates a sharded C{o})."""
    return piece - o if type(o) not in KIND else {x for x in piece if x not in o}


RUN = 8192  # elements sorted at once before the runs are merged


def sort(items: list[Any]) -> Steps[list[Any]]:
    """
    C{sorted(items)}, a piece at a time: runs of C{RUN} sorted, then merged two by
    two (each step merges a window of both with one C-level sort). Stable, as
    C{sorted} is: equal elements keep their order.
    """
    runs = []
    for i in range(0, len(items), RUN):
        runs.append(sorted(items[i : i + RUN]))
        yield
    if not runs:
        return []
    while len(runs) > 1:
        merged = []
        for i in range(0, len(runs) - 1, 2):
            merged.append((yield from _merge(runs[i], runs[i + 1])))
        if len(runs) % 2:
            merged.append(runs[-1])
        runs = merged
    return runs[0]


def _merge(a: list[Any], b: list[Any]) -> Steps[list[Any]]:
    out: list[Any] = []
    i = j = 0
    la, lb = len(a), len(b)
    while i < la and j < lb:
        ia, jb = min(i + PIECE, la), min(j + PIECE, lb)
        if not b[jb - 1] < a[ia - 1]:  # a's window ends first: all of it, b's below its last
            jb = bisect_left(b, a[ia - 1], j, jb)
        else:  # b's ends first: all of it, a's up to its last (a's equal ones first)
            ia = bisect_right(a, b[jb - 1], i, ia)
        piece = a[i:ia]
        piece += b[j:jb]
        piece.sort()  # (two sorted runs: a linear merge in C; stable, a's first)
        out += piece
        i, j = ia, jb
        yield
    out += a[i:]
    out += b[j:]
    return out


#: L{blocking.block_on} for a command whose first existing key decides (BLPOP,
#: BZMPOP…): past C{blocking.MANY} keys it looks for that key, or registers on them
#: all, in slices (L{compute}; bigwork imports blocking, so it is lent here)
block_on = partial(blocking.block_on, compute=compute)


def sliced(c: Any, argv: list[bytes], cost: int, make: Callable[[], Steps[T]]) -> T | Any | None:
    """
    L{compute} for a write that builds its new value aside (a copy, then the command's
    changes: ZADD, SADD, HSET of a million arguments): None when it would run at once,
    for the command to change the value in place as before.
    """
    if getattr(c, "precomputed", None) is None and not (
        possible(c, cost) or in_transaction(c, cost)
    ):
        return None
    return compute(c, argv, cost, make)


def each(
    c: Any, argv: list[bytes], start: int, f: Callable[[list[bytes]], list[T]], weight: int = 1
) -> list[T] | Any:
    """
    C{f(piece)} for the pieces of C{argv[start:]}, joined (a reply element per
    argument: SMISMEMBER, HMGET, ZMSCORE, MGET of a million), in slices when many
    (C{NO_REPLY} then, and this returns the list when the command runs again);
    C{weight}: about how many elements one argument costs.
    """
    return compute(c, argv, weight * len(argv), lambda: _each(argv, start, f))


def _each(argv: list[bytes], start: int, f: Callable[[list[bytes]], list[T]]) -> Steps[list[T]]:
    out: list[T] = []
    for lo in range(start, len(argv), PIECE):
        out += f(argv[lo : lo + PIECE])
        yield
    return out


def removed(c: Any, argv: list[bytes], make: Callable[[], Steps[tuple[Any, Any]]]) -> Any:
    """
    SREM's, HDEL's or ZREM's C{argv[2:]}: what to remove in place (them, when few);
    when many, C{make()}'s steps find (the members present, None or the value without
    them, built aside when most go): the members present to remove in place, or, the
    new value stored (an empty one: the key dropped), the reply (an int); or C{NO_REPLY}.
    """
    if len(argv) <= ARGS:
        return argv[2:]
    found = compute(c, argv, len(argv), make)
    from portsuite_services.kv.commands import NO_REPLY

    if found is NO_REPLY:
        return found
    gone, kept = found
    if kept is None:
        return gone
    if kept:
        c.store.set(argv[1], kept, keepttl=True)  # (the old value freed lazily)
    else:
        c.store.drop(argv[1])
        c.store.dirty += 1
    return len(gone)


def fill(add: Callable[[Iterable[Any]], Any], items: Collection[Any]) -> Steps[None]:
    """C{add(piece)} for each piece of C{items} (a copy made in slices: COPY)."""
    yield from _pieces(add, items)


def take(it: Iterable[T], n: int) -> Steps[list[T]]:
    """The first C{n} elements of C{it} (an iterator: a range of a SortedList), a piece at a time."""
    out: list[T] = []
    it = iter(it)
    for i in range(0, n, PIECE):
        out += islice(it, min(PIECE, n - i))
        yield
    return out


def first(c: Any, argv: list[bytes], keys: list[bytes], found: Callable[[bytes], Any]) -> Any:
    """
    Where a command looking for the first of its C{keys} that holds something starts
    (LMPOP, ZMPOP of many keys): 0 when they are few (its own loop looks them up), else
    the index of the first for which C{found(key)} is truthy (C{len(keys)} if none; what
    it raises, WRONGTYPE, is the command's error), found in slices (C{NO_REPLY} then,
    and this returns the index when the command runs again).
    """
    if len(keys) <= ARGS:
        return 0
    return compute(c, argv, 4 * len(keys), lambda: _first(keys, found))


def _first(keys: list[bytes], found: Callable[[bytes], Any]) -> Steps[int]:
    for lo in range(0, len(keys), PIECE):
        for i, key in enumerate(keys[lo : lo + PIECE], lo):
            if found(key):
                return i
        yield
    return len(keys)
