"""
Pub/sub for any number of subscriptions: PUBLISH, SPUBLISH, keyspace notifications
(notify.py) and a client's subscriptions dropped when it goes never hold the event
loop every service of the suite shares, however many channels, patterns and
subscribers there are.

Patterns are compiled once, the first time one is tried, and kept with the
subscription (L{Patterns}); an index by literal prefix (else literal suffix) names those a channel
may match: PUBLISH news.1 tries C{news.*} and C{*.1}, never the 200,000 C{p123*} of
another client. Patterns with neither (C{*}, C{?x*}, C{[ab]*}) are tried every time.
Candidates are tried in the order their patterns were first subscribed, as before.

Delivering a message is a generator (L{deliver}) that yields every C{STEP} units of
work (a pattern tried is one, a message pushed C{PUSH}). What it has to do is run at
once up to C{INLINE} units (nearly always all of it); the rest goes on in slices with
the server C{busy} (every other kv client waits, as for bigwork.py's jobs), so no
command sees a delivery half done and every subscriber gets its messages in Redis's
order:

- PUBLISH and SPUBLISH go on as a bigwork job (L{publish}): the reply, the number of
  receivers, comes when the last one has its message (which it gets even if the
  publisher goes meanwhile: L{Outliving});
- keyspace events (L{announce}) are made during a command: past C{INLINE} units in one
  command, the rest of the event and every event after it (of this command and of
  whatever runs next) wait in the server's C{outbox}, delivered by a L{Chore}, and a
  PUBLISH delivers the outbox before its own message. What differs from Redis: a RESP3
  client subscribed to the events of its own command gets those that went to the
  outbox after the command's reply (Redis: before it).

A L{Chore} is the server's own work in slices (no client's): the server is C{busy}
while it runs; one that comes while another job runs waits for it (L{run_chore}).
A client's subscriptions are dropped the same way when it goes (L{forget}).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from heapq import merge
from itertools import chain, islice
from time import perf_counter
from typing import Any, TypeVar

from twisted.logger import Logger

from portsuite_services.kv.bigwork import Steps
from portsuite_services.kv.glob import matches, tokens
from portsuite_services.kv.resp import Push
from portsuite_services.kv.sharded import SHARD_AT, ShardedDict

log = Logger(namespace="portsuite.kv")

STEP = 256  # units of work between two yields of a delivery (well under a millisecond)
PUSH = 8  # units a message pushed costs (a pattern tried: one)
PUSH_BYTES = 4096  # and one more unit per this many bytes of the message
INLINE = 4  # steps of deliveries run at once in one command; the rest in slices
COARSE = 4  # steps of ours per bigwork step (bigwork runs MAX_STEPS of its steps a turn)


class Subscriptions(ShardedDict[set[Any]]):
    """
    Channel (or pattern) -> the clients subscribed to it. Sharded (sharded.py): a
    SUBSCRIBE of a million channels never grows one big table at once (a dict of
    200,000 copied its table in 10-20 ms, and the few that grow together in one step).
    """

    __slots__ = ()

    def add(self, name: bytes, client: Any) -> None:
        subs = self.get(name)
        if subs is None:
            self[name] = {client}
            self.added(name)
        else:
            subs.add(client)

    def remove(self, name: bytes, client: Any) -> None:
        subs = self.get(name)
        if subs is not None:
            subs.discard(client)
            if not subs:
                del self[name]
                self.removed(name)

    def added(self, name: bytes) -> None:
        pass

    def removed(self, name: bytes) -> None:
        pass


SEGMENT = 1 << 14  # names a segment of an L{Ordered} holds (its dict's resizes: well under 1 ms)


class Ordered:
    """
    Names in the order they were added (a bucket of patterns, those with no literal
    prefix or suffix), as dicts of at most C{SEGMENT} names each: adding one never
    copies a big table. Iteration is in order, in C.
    """

    __slots__ = ("segments", "size")

    def __init__(self, *names: bytes) -> None:
        self.segments: list[dict[bytes, None]] = [dict.fromkeys(names)]
        self.size = len(self.segments[0])

    def add(self, name: bytes) -> None:
        last = self.segments[-1]
        if len(last) >= SEGMENT:
            last = {}
            self.segments.append(last)
        if name not in last:
            last[name] = None
            self.size += 1

    def discard(self, name: bytes) -> None:
        segments = self.segments
        for i, seg in enumerate(segments):
            if name in seg:
                del seg[name]
                self.size -= 1
                if not seg and len(segments) > 1:
                    del segments[i]
                return

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        return chain.from_iterable(self.segments)


Bucket = bytes | Ordered  # the patterns of one prefix (or suffix), in order
V = TypeVar("V")
Table = dict[bytes, V] | ShardedDict[V]


class Patterns(Subscriptions):
    """
    Pattern -> the clients subscribed to it, with each pattern's tokens and
    its place in the index: C{prefixed[p]}, the patterns whose literal prefix is
    C{p} (in subscription order; the pattern itself when it is the only one), C{prefix_lens} their prefixes' lengths (each
    with how many prefixes have it); the same by suffix for patterns with no
    literal prefix; C{free} the patterns with neither.
    """

    __slots__ = (
        "order",
        "compiled",
        "seq",
        "prefixed",
        "prefix_lens",
        "suffixed",
        "suffix_lens",
        "free",
    )

    def __init__(self) -> None:
        super().__init__()
        # (plain dicts, C-fast, while they hold at most SHARD_AT: L{_grown})
        self.order: Table[int] = {}  # when each was first subscribed
        self.compiled: Table[tuple[object, ...]] = {}  # tokens, once tried
        self.seq = 0
        self.prefixed: Table[Bucket] = {}
        self.prefix_lens: dict[int, int] = {}
        self.suffixed: Table[Bucket] = {}
        self.suffix_lens: dict[int, int] = {}
        self.free = Ordered()

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]  # (the index too)

    def added(self, name: bytes) -> None:
        self.seq += 1
        self.order[name] = self.seq
        if len(self.order) > SHARD_AT and type(self.order) is dict:
            self._grown()
        place = self._place(name)
        if place is None:
            self.free.add(name)
            return
        index, lens, key = place
        bucket = index.get(key)
        if bucket is None:  # (one pattern: itself, not a dict the collector would walk)
            index[key] = name
            lens[len(key)] = lens.get(len(key), 0) + 1
        elif isinstance(bucket, Ordered):
            bucket.add(name)
        else:
            index[key] = Ordered(bucket, name)

    def removed(self, name: bytes) -> None:
        del self.order[name]
        self.compiled.pop(name, None)
        place = self._place(name)
        if place is None:
            self.free.discard(name)
            return
        index, lens, key = place
        bucket = index[key]
        if type(bucket) is Ordered and len(bucket) > 1:
            bucket.discard(name)
        else:
            del index[key]
            n = len(key)
            if lens[n] == 1:
                del lens[n]
            else:
                lens[n] -= 1

    def _grown(self) -> None:
        """Past C{SHARD_AT} patterns, the index's tables sharded (so never copied whole)."""
        self.order = _sharded(self.order)
        self.compiled = _sharded(self.compiled)
        self.prefixed = _sharded(self.prefixed)
        self.suffixed = _sharded(self.suffixed)

    def tokens(self, name: bytes) -> tuple[object, ...]:
        """The pattern's tokens (compiled the first time it is tried)."""
        toks = self.compiled.get(name)
        if toks is None:
            toks = self.compiled[name] = tokens(name)
        return toks

    def _place(self, name: bytes) -> tuple[Table[Bucket], dict[int, int], bytes] | None:
        """Where a pattern is indexed: its literal prefix, else its literal suffix."""
        if b"[" in name or b"\\" in name:  # (classes, escapes: read from its tokens)
            toks = tokens(name)
            i = 0
            while i < len(toks) and _literal(toks[i]):
                i += 1
            prefix = bytes(toks[:i])  # type: ignore[arg-type]
            j = len(toks)
            while j > 0 and _literal(toks[j - 1]):
                j -= 1
            suffix = bytes(toks[j:])  # type: ignore[arg-type]
        else:
            found = _WILD.search(name)
            if found is None:
                prefix, suffix = name, b""
            else:
                prefix = name[: found.start()]
                suffix = name[max(name.rfind(b"*"), name.rfind(b"?")) + 1 :]
        if prefix:
            return self.prefixed, self.prefix_lens, prefix
        if suffix:
            return self.suffixed, self.suffix_lens, suffix
        return None

    def buckets(self, channel: bytes) -> Steps[list[Bucket]]:
        """The index's buckets of patterns C{channel} may match (a few dict lookups)."""
        found = []
        n = len(channel)
        work = 0
        for index, lens, tail in (
            (self.prefixed, self.prefix_lens, False),
            (self.suffixed, self.suffix_lens, True),
        ):
            for k in list(lens) if lens else ():
                if k <= n:
                    bucket = index.get(channel[n - k :] if tail else channel[:k])
                    if bucket:
                        found.append(bucket)
                work += 1 + k // 4096  # (a long prefix is copied to be looked up)
                if work >= STEP:
                    work = 0
                    yield
        if self.free:
            found.append(self.free)
        return found


def _sharded(table: Table[V]) -> ShardedDict[V]:
    return table if isinstance(table, ShardedDict) else ShardedDict(table)


def _literal(tok: object) -> bool:
    return type(tok) is int and tok >= 0


_WILD = re.compile(rb"[*?]")


def _push_each(clients: list[Any], reply: Push) -> Steps[int]:
    """Push C{reply} to each client (encoded once per protocol version); how many."""
    encoded: dict[Any, bytes] = {}
    # a big message costs its size too: each subscriber is handed up to a turn's output
    # of it at once (PUBLISH of 4 MB pushed it to 128 subscribers in one step: 148 ms)
    per = max(1, STEP // (PUSH + len(reply[-1]) // PUSH_BYTES))
    for i in range(0, len(clients), per):
        if i:
            yield
        for sub in clients[i : i + per]:
            data = encoded.get(sub.enc)
            if data is None:
                out: list[bytes] = []
                sub.enc(reply, out)
                encoded[sub.enc] = data = b"".join(out)
            sub.push_encoded(data)
    return len(clients)


def deliver(server: Any, channel: bytes, message: bytes, shard: bool = False) -> Steps[int]:
    """
    The message to the channel's subscribers, then to those of the patterns it
    matches (SPUBLISH: C{shard}, the shard channel's); how many received it.
    """
    subs = (server.shards if shard else server.channels).get(channel)
    n = 0
    if subs:
        kind = b"smessage" if shard else b"message"
        n = yield from _push_each(list(subs), Push([kind, channel, message]))
    patterns = server.patterns
    if shard or not patterns:
        return n
    found = yield from patterns.buckets(channel)
    if not found:
        return n
    yield
    order = patterns.order
    # snapshots (subscribers may go meanwhile), in subscription order
    lists = [[b] if type(b) is bytes else list(b) for b in found]
    ordered: Iterable[bytes] = (
        lists[0] if len(lists) == 1 else merge(*lists, key=lambda p: order.get(p, 0))
    )
    tried = 0
    for pattern in ordered:
        tried += 1
        if tried >= STEP:
            tried = 0
            yield
        if pattern not in order or not matches(patterns.tokens(pattern), channel):
            continue
        subs = patterns.get(pattern)
        if subs:
            n += yield from _push_each(list(subs), Push([b"pmessage", pattern, channel, message]))
    return n


def drain(server: Any) -> Steps[None]:
    """
    The deliveries waiting in the outbox, in order, a step of the first at a time:
    a PUBLISH may drain it while the chore that was to do it waits for its turn, and
    each goes on with whatever is first then.
    """
    outbox = server.outbox
    while outbox:
        first = outbox[0]
        if type(first) is tuple:  # not begun: (channel, message), or an event
            first = outbox[0] = (
                deliver(server, *first) if len(first) == 2 else _event(server, *first)
            )
        try:
            next(first)
        except StopIteration:
            pass
        except Exception:  # a bug: logged, the deliveries after it go on
            log.failure("kv: a keyspace event's delivery failed")
        else:
            yield
            continue
        if outbox and outbox[0] is first:
            outbox.popleft()


def coarse(steps: Steps[Any]) -> Steps[Any]:
    """C{steps} yielding every C{COARSE} of its steps (a bigwork job runs few steps a turn)."""
    n = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        n += 1
        if n >= COARSE:
            n = 0
            yield


def run_some(steps: Steps[Any], n: int) -> tuple[bool, Any, int]:
    """Up to C{n} steps: (True, the result, steps run) once done, else (False, None, n)."""
    for i in range(n + 1):  # (done exactly at the n-th: no slices for nothing)
        try:
            next(steps)
        except StopIteration as done:
            return True, done.value, i
    return False, None, n


# -- what the commands call ------------------------------------------------------------


def publish(c: Any, argv: list[bytes], shard: bool = False) -> Any:
    """PUBLISH, SPUBLISH: the number of receivers (or C{NO_REPLY}: going on in slices)."""
    from portsuite_services.kv.bigwork import BIG, compute

    if c.precomputed is not None:  # the second run of a delivery that went on in slices
        return compute(c, argv, BIG, _nothing)
    server = c.server
    steps = deliver(server, argv[1], argv[2], shard)
    if server.outbox:  # keyspace events not delivered yet: they come first
        steps = _after(drain(server), steps)
    done, n, _ = run_some(steps, INLINE)
    if done:
        return n
    return compute(c, argv, BIG, lambda: Outliving(coarse(steps)))  # type: ignore[arg-type,return-value]


class Outliving:
    """
    A delivery's steps, which go on if the publisher goes meanwhile (bigwork drops a
    job whose client is gone; a message half delivered would reach only some).
    """

    __slots__ = ("steps",)

    def __init__(self, steps: Steps[Any]):
        self.steps = steps

    def outlive(self, server: Any) -> None:
        """Its publisher is gone: the rest goes on as a chore of the server's."""
        run_chore(server, self.steps)

    def __iter__(self) -> Outliving:
        return self

    def __next__(self) -> Any:
        return next(self.steps)  # (its StopIteration, with the result, goes through)


def _after(first: Steps[Any], then: Steps[int]) -> Steps[int]:
    yield from first
    return (yield from then)


def _nothing() -> Steps[None]:
    return
    yield


def announce(server: Any, channel: bytes, message: bytes) -> None:
    """A keyspace event: delivered at once, or in the outbox once this command spent its share."""
    if server.outbox:
        server.outbox.append((channel, message))
        return
    if not server.channels.get(channel) and not server.patterns:
        return  # (nobody listens: the common case)
    steps = deliver(server, channel, message)
    left = (INLINE * STEP - server.delivery_spent) // STEP
    if left > 0:
        done, _, used = run_some(steps, left)
        server.delivery_spent += used * STEP + 1
        if done:
            return
    server.outbox.append(steps)
    run_chore(server, drain(server))


def announce_event(server: Any, db: int, event: bytes, key: bytes, which: int) -> None:
    """
    A keyspace event: on C{__keyspace@<db>__:<key>} (C{which} & 1) and
    C{__keyevent@<db>__:<event>} (& 2). Waiting in the outbox, it is one small tuple
    (a million of them: tens of MB), its channels made when it is delivered.
    """
    if server.outbox:
        server.outbox.append((db, event, key, which))
        return
    if not server.channels and not server.patterns:
        return  # (nobody listens: the common case)
    if which & 1:
        announce(server, b"__keyspace@%d__:%s" % (db, key), event)
    if which & 2:
        announce(server, b"__keyevent@%d__:%s" % (db, event), key)


def _event(server: Any, db: int, event: bytes, key: bytes, which: int) -> Steps[None]:
    if which & 1:
        yield from deliver(server, b"__keyspace@%d__:%s" % (db, key), event)
    if which & 2:
        yield from deliver(server, b"__keyevent@%d__:%s" % (db, event), key)


def forget(c: Any, subscriptions: list[tuple[set[bytes], Subscriptions]]) -> None:
    """C{c} is gone (or RESET): its subscriptions go, at once or a slice at a time."""
    steps = _forget(c, subscriptions)
    done, _, _ = run_some(steps, INLINE)
    if not done:
        run_chore(c.server, steps)


def _forget(c: Any, subscriptions: list[tuple[set[bytes], Subscriptions]]) -> Steps[None]:
    for mine, where in subscriptions:
        it = iter(mine)
        remove = where.remove
        for _ in range(0, len(mine), STEP):
            for name in islice(it, STEP):
                remove(name, c)
            yield


def in_pieces(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    """Lists of C{n} items of C{items}."""
    it = iter(items)
    while piece := list(islice(it, n)):
        yield piece


# -- the server's own work in slices -----------------------------------------------------


class Chore:
    """The server's work in slices (an outbox, a client's subscriptions): C{busy} meanwhile."""

    __slots__ = ("server", "steps", "call")
    client = None  # (no client's: every kv client waits for it)

    def __init__(self, server: Any, steps: Steps[Any]):
        self.server = server
        self.steps = steps
        self.call: Any = None

    def start(self) -> None:
        self.call = self.server.reactor.callLater(0, self.step)

    def step(self) -> None:
        """
        Steps until the turn's share of kv's work in slices is spent (turn.py: one at
        least); then the next turn, or the end.
        """
        self.call = None
        end = self.server.turn.deadline()
        steps = self.steps
        try:
            next(steps)
            while perf_counter() < end:
                next(steps)
        except StopIteration:
            pass
        except Exception:  # a bug: logged, the others go on
            log.failure("kv: pub/sub work failed")
        else:
            self.call = self.server.reactor.callLater(0, self.step)
            return
        server = self.server
        server.set_busy(None)  # (the next chore starts, if one waits)
        server.release_waiting()

    def stop(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None


def run_chore(server: Any, steps: Steps[Any]) -> None:
    """Run C{steps} in slices, the server busy; after the job running now, if one is."""
    chore = Chore(server, steps)
    if server.busy is None and getattr(server.reactor, "callLater", None) is not None:
        server.set_busy(chore)
        chore.start()
    elif server.busy is None:  # (no reactor: a server only checking a data file)
        for _ in steps:
            pass
    else:
        server.chores.append(chore)
