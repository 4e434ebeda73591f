"""
Blocking commands (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP, and BZPOPMIN BZPOPMAX BZMPOP,
XREAD/XREADGROUP BLOCK): one mechanism for all of them, as Redis's C{blocked.c}.

How a blocking command uses it::

    @command("blpop", -3, "write", "list", keys=(1, -2, 1))
    def blpop(c, argv):
        timeout = parse_timeout(argv[-1])          # Redis's checks and error texts
        keys = argv[1:-1]
        return block_on(c, keys, timeout, lambda: try_pop(c, keys), NULL_ARRAY)

C{attempt()} does the non-blocking work: when it can serve now it changes the
keyspace (setting C{c.also} to what the AOF records, e.g. C{LPOP key}, as Redis
propagates a served BLPOP) and returns the reply; otherwise it returns
L{NOT_READY}. L{block_on} then returns the reply; or, inside MULTI/EXEC (and while
the AOF is replayed), the timeout reply at once, as Redis does; or it blocks the
client: the client waits on each key (in arrival order per key), its later
pipelined commands wait behind it, and a timer (the reactor's C{callLater}, so a
test drives it with a C{Clock}) answers the timeout reply when the deadline passes.

A write that changes a key some client is blocked on marks the key ready
(L{KVServer.signal_ready}, done for the keys of every write command by the
dispatcher; commands that change keys of another database, MOVE/COPY/SWAPDB, call it
themselves). Once that command is done (after EXEC for a transaction), L{handle_ready}
re-runs each blocked client's command, first come first served, with the client's
own database and argv: the same handler runs again and calls C{attempt()}, which
serves it or returns NOT_READY (the client keeps waiting: a key of the wrong type
does not wake it, as in Redis 7.0). C{retrying(c)} tells an attempt it is such a
re-run (so it answers NOT_READY instead of WRONGTYPE). What a served client writes
(a BLMOVE's push) can make other keys ready: they are served in the same loop.

A woken client is served from the key that woke it (Redis 7.0's
C{serveClientsBlockedOnKey}): C{attempt(keys)} is given that key alone, so a wake-up
costs the same whatever the number of keys it waits on, and of two keys made ready by
one EXEC the first made ready serves it, as in Redis. XREAD/XREADGROUP too (its re-run
reads the stream that woke it alone, after the ID its L{Blocked.since} holds for it).

A blocked client that disconnects is removed from every key; CLIENT UNBLOCK id
[TIMEOUT|ERROR] answers it the timeout reply or C{-UNBLOCKED}.

Many keys (BLPOP of 200,000: 0.4 s at once) never hold the loop: the first run looks
for the first key that exists and registers the client on the keys a piece a step, as
a bigwork.py job (the server busy meanwhile, so no write can come between: a key pushed
during the registration waits for it, then wakes the client); forgetting them (served,
timed out, unblocked, gone) is done a piece per turn after the client has gone on
(XREAD of many streams registers with L{register_steps} at the end of its own job). A
registration is tagged with its L{Blocked}, so one not yet forgotten never wakes a
client that now waits on something else.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterator
from itertools import islice
from typing import Any

from portsuite_services.kv import longdouble
from portsuite_services.kv.resp import string2ll
from portsuite_services.kv.sharded import SHARD_AT, ShardedDict

# (the command table imports this module: its names are taken when first needed)

NOT_READY = object()  # an attempt that cannot serve now
MAX_DELAY = 3600.0  # longer timeouts re-arm their timer every hour (epoll's limit is ~25 days)
LLONG_MAX = 2**63 - 1
MANY = 8192  # keys past which a blocking command registers (and is forgotten) in slices
PIECE = 4096  # keys registered or forgotten a step


class Blocked:
    """What a blocked client waits for."""

    __slots__ = (
        "argv",
        "keys",
        "store",
        "timeout_reply",
        "deadline",
        "timer",
        "ready",
        "registering",
        "since",
    )

    def __init__(self, argv: list[bytes], keys: Any, store: Any, reply: Any):
        self.argv = argv
        self.keys = keys  # (a list: the same key twice is registered once)
        self.store = store
        self.timeout_reply = reply
        self.deadline = 0.0  # seconds on the reactor's clock; 0 = forever
        self.timer: Any = None
        self.ready: bytes | None = None  # the key a wake-up serves it from
        # (a job's: the Blocked it is registering, forgotten if the client goes first)
        self.registering: Blocked | None = None
        # (XREAD's: each stream's ID it waits after, None for a group's '>'; a wake-up
        # serves from the stream that woke it, as Redis 7.0 does)
        self.since: dict[bytes, Any] | None = None


def parse_timeout(raw: bytes) -> int:
    """
    A blocking command's timeout in seconds (a double), as Redis 7.0 reads it.

    @return: milliseconds to wait, 0 for ever.
    @raise CommandError: Redis's texts ("timeout is not a float or out of range",
        "timeout is negative"; 1e300 or inf is "negative" too, as C's cast makes it).
    """
    from portsuite_services.kv.commands import CommandError

    v = longdouble.parse(raw)
    if v is None:
        raise CommandError("ERR timeout is not a float or out of range")
    ms = v * 1000.0
    if not -(2.0**63) < ms < 2.0**63:  # (long long) of it is LLONG_MIN on x86-64
        raise CommandError("ERR timeout is negative")
    tval = int(ms)
    if tval < 0:
        raise CommandError("ERR timeout is negative")
    return tval


def parse_timeout_ms(raw: bytes) -> int:
    """XREAD BLOCK's milliseconds (an integer): same checks, Redis's texts."""
    from portsuite_services.kv.commands import CommandError

    tval = string2ll(raw)
    if tval is None:
        raise CommandError("ERR timeout is not an integer or out of range")
    if tval < 0:
        raise CommandError("ERR timeout is negative")
    return tval


def retrying(c: Any) -> bool:
    """Whether this run of a blocking command is a re-run for a client already blocked."""
    return c.blocked is not None


def block_on(
    c: Any,
    argv: list[bytes],
    keys: list[bytes],
    timeout_ms: int,
    attempt: Callable[[list[bytes]], Any],
    timeout_reply: Any,
    deny_reply: Any = NOT_READY,
    ordered: bool = True,
    compute: Callable[..., Any] | None = None,
) -> Any:
    """
    Serve now, answer at once (inside MULTI/EXEC), or block C{c} on C{keys}; a
    re-run (C{argv}, the command as the client sent it) serves it or keeps it waiting.

    @param argv: the command a wake-up re-runs; pass a rewritten one when the first run
        resolves something the re-run must not (XREAD's C{$} becomes the last ID then).
    @param attempt: tries C{keys} (those given: all, from the first that exists, or
        the one that woke it).
    @param deny_reply: what it answers inside MULTI, if not C{timeout_reply}.
    @param ordered: the first key of C{keys} that exists decides (BLPOP, BZMPOP…: a
        list or sorted set that exists is not empty); else (XREAD) C{attempt} reads
        them all.
    @param compute: C{bigwork.compute}, which looks for that key (or registers on
        them all) in slices past L{MANY} keys (L{bigwork.block_on} passes it: bigwork
        imports this module); None: at once.
    @return: the reply, or C{NO_REPLY} when the client now waits.
    """
    from portsuite_services.kv.commands import NO_REPLY

    waiting = c.blocked
    if waiting is not None:  # a re-run after a wake-up
        ready = waiting.ready if ordered and type(waiting) is Blocked else None
        r = attempt(keys if ready is None else [ready])
        if r is NOT_READY:  # someone else got it: keep waiting
            return NO_REPLY
        if r is not NO_REPLY:  # (NO_REPLY: computed in slices, c.blocked is that work)
            unblock(c)
        elif c.blocked is not waiting and type(waiting) is Blocked:
            _forget(c, waiting)  # (its pop goes on as a job: bigwork.py)
        return r
    state = Blocked(argv, keys, c.store, timeout_reply)
    if len(keys) > MANY and ordered and compute is not None and not c.deny_blocking:
        found = compute(c, argv, len(keys), lambda: _first_or_wait(c, state))
        if found is NO_REPLY:
            return NO_REPLY
        if isinstance(found, Blocked):  # none exists: registered
            return start_waiting(c, found, timeout_ms)
        r = attempt(keys[found:])  # (the first that exists decides)
    else:
        r = attempt(keys)
    if r is not NOT_READY:
        return r
    if c.deny_blocking:  # (BLMOVE answers a null there, and a null array on timeout)
        return timeout_reply if deny_reply is NOT_READY else deny_reply
    _register(c, state, keys)
    return start_waiting(c, state, timeout_ms)


def _first_or_wait(c: Any, state: Blocked) -> Generator[None, None, int | Blocked]:
    """
    A bigwork job: the index of the first of C{state}'s keys that exists (for the
    command to try it); or, none existing, C{c} registered on them all: C{state}.
    """
    get = state.store.get  # (expires what it finds expired, as the command's lookups do)
    keys = state.keys
    for lo in range(0, len(keys), PIECE):
        for i, value in enumerate(map(get, keys[lo : lo + PIECE]), lo):
            if value is not None:
                return i
        yield
    return (yield from register_steps(c, state))


def register_steps(c: Any, state: Blocked) -> Generator[None, None, Blocked]:
    """
    A bigwork job's steps: C{c} registered on C{state}'s keys (a list, or a dict: its
    keys) a piece a step; if its client goes meanwhile, the job's end forgets them.
    """
    job = c.blocked  # (the job; None when run through at once)
    if job is not None:
        job.registering = state
    it = iter(state.keys)
    for _ in range(0, len(state.keys), PIECE):
        _register(c, state, list(islice(it, PIECE)))
        yield
    if job is not None and c.blocked is job:  # registered whole: no longer forgotten with it
        job.registering = None
    return state


def _register(c: Any, state: Blocked, keys: list[bytes]) -> None:
    """C{c} waits on C{keys}, after the clients already waiting on each."""
    store = state.store
    blocking = store.blocking
    if len(blocking) > SHARD_AT and type(blocking) is dict:  # (its resizes: sharded.py)
        blocking = store.blocking = ShardedDict(blocking)
    for key in keys:
        waiters = blocking.get(key)
        if waiters is None:
            blocking[key] = {c: state}
            continue
        old = waiters.get(c)
        if old is not state:
            if old is not None:  # (a registration of before, not yet forgotten)
                del waiters[c]
            waiters[c] = state


def start_waiting(c: Any, state: Blocked, timeout_ms: int) -> Any:
    """C{c}, registered on C{state}'s keys, waits: C{NO_REPLY}."""
    from portsuite_services.kv.commands import NO_REPLY

    server = c.server
    c.blocked = state
    server.blocked_clients.add(c)
    if timeout_ms:
        now = server.clock()
        # past LLONG_MAX ms Redis 7.0's deadline wraps and never comes: wait for ever
        if timeout_ms <= LLONG_MAX - int(now * 1000):
            state.deadline = now + timeout_ms / 1000.0
            _arm(c, state, timeout_ms / 1000.0)
    return NO_REPLY


def _arm(c: Any, state: Blocked, delay: float) -> None:
    state.timer = c.server.reactor.callLater(min(delay, MAX_DELAY), _expire, c, state)


def _expire(c: Any, state: Blocked) -> None:
    state.timer = None
    if c.blocked is not state:
        return
    left = state.deadline - c.server.clock()
    if left > 0:  # a long timeout's hourly re-arm
        _arm(c, state, left)
        return
    wake(c, state.timeout_reply)


def unblock(c: Any) -> None:
    """Forget what C{c} waits for (served, timed out, unblocked or gone)."""
    state = c.blocked
    if state is None:
        return
    c.blocked = None
    c.server.blocked_clients.discard(c)
    inner = state.registering
    if inner is not None:  # a registration in slices, its client gone
        state.registering = None
        _forget(c, inner)
    _forget(c, state)


def _forget(c: Any, state: Blocked) -> None:
    """C{state}'s timer stopped and its registrations removed: now, or a piece a turn."""
    if state.timer is not None:
        if state.timer.active():
            state.timer.cancel()
        state.timer = None
    keys = state.keys
    if len(keys) <= MANY:
        _unregister(c, state, keys)
    else:
        c.server.forgetting.add(c, state)


def _unregister(c: Any, state: Blocked, keys: Any) -> None:
    store = state.store
    blocking = store.blocking
    for key in keys:
        waiters = blocking.get(key)
        if waiters is not None and waiters.get(c) is state:
            del waiters[c]
            if not waiters:
                del blocking[key]
    if not blocking and type(blocking) is not dict:  # (plain again: every write looks at it)
        store.blocking = {}


class Forgetting:
    """Registrations of many keys being removed, a piece per turn of the reactor."""

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.queue: deque[tuple[Any, Blocked, Iterator[bytes]]] = deque()
        self.call: Any = None

    def add(self, c: Any, state: Blocked) -> None:
        self.queue.append((c, state, iter(state.keys)))
        if self.call is None:
            self.call = self.reactor.callLater(0, self.step)

    def step(self) -> None:
        self.call = None
        budget = PIECE
        queue = self.queue
        while queue and budget > 0:
            c, state, it = queue[0]
            piece = list(islice(it, budget))
            _unregister(c, state, piece)
            budget -= len(piece)
            if budget > 0:  # (that one is done)
                queue.popleft()
        if queue:
            self.call = self.reactor.callLater(0, self.step)


def wake(c: Any, reply: Any) -> None:
    """Unblock C{c} with C{reply} (a value, or an error's text as L{CommandError})."""
    from portsuite_services.kv.commands import CommandError

    unblock(c)
    out: list[bytes] = []
    if isinstance(reply, CommandError):
        out.append(b"-%s\r\n" % str(reply).encode())
    else:
        c.enc(reply, out)
    c.resume_after_block(out)


def handle_ready(server: Any) -> None:
    """
    Serve the clients blocked on the keys that writes made ready, in the order the
    keys became ready, each key's clients in arrival order (Redis's
    C{handleClientsBlockedOnKeys}); run after the command that made them ready.
    """
    if server.serving:
        return
    server.serving = True
    try:
        while server.ready_keys:
            ready = server.ready_keys
            server.ready_keys = []
            server.ready_set.clear()
            for store, key in ready:
                waiters = store.blocking.get(key)
                if not waiters:
                    continue
                for client, state in list(waiters.items()):
                    if client.blocked is not state or client.closed:
                        continue  # (a registration of before, not yet forgotten)
                    if key not in store.data:
                        break  # popped empty (or deleted) by the one before
                    out: list[bytes] = []
                    state.ready = key
                    client.execute(state.argv, out)
                    state.ready = None
                    if client.blocked is state and out:  # an error: it does not wait on
                        unblock(client)
                    if client.blocked is None:
                        client.resume_after_block(out)
    finally:
        server.serving = False


def client_unblock(c: Any, argv: list[bytes]) -> Any:
    """CLIENT UNBLOCK client-id [TIMEOUT|ERROR]."""
    from portsuite_services.kv.commands import CommandError

    if len(argv) > 4:  # Redis's words for too many arguments here
        raise CommandError(
            f"ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('utf-8', 'replace')}'. Try CLIENT HELP."
        )
    error = False
    if len(argv) == 4:
        how = argv[3].lower()
        if how == b"error":
            error = True
        elif how != b"timeout":
            raise CommandError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    cid = string2ll(argv[2])
    if cid is None:
        raise CommandError("ERR value is not an integer or out of range")
    target = c.server.clients.get(cid)
    if target is None or type(target.blocked) is not Blocked:  # (not a reply in slices)
        return 0
    if error:
        wake(target, CommandError("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
    else:
        wake(target, target.blocked.timeout_reply)
    return 1
