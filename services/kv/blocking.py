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

A blocked client that disconnects is removed from every key; CLIENT UNBLOCK id
[TIMEOUT|ERROR] answers it the timeout reply or C{-UNBLOCKED}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portsuite_services.kv import longdouble
from portsuite_services.kv.resp import string2ll

# (the command table imports this module: its names are taken when first needed)

NOT_READY = object()  # an attempt that cannot serve now
MAX_DELAY = 3600.0  # longer timeouts re-arm their timer every hour (epoll's limit is ~25 days)
LLONG_MAX = 2**63 - 1


class Blocked:
    """What a blocked client waits for."""

    __slots__ = ("argv", "keys", "store", "timeout_reply", "deadline", "timer")

    def __init__(self, argv: list[bytes], keys: dict[bytes, None], store: Any, reply: Any):
        self.argv = argv
        self.keys = keys
        self.store = store
        self.timeout_reply = reply
        self.deadline = 0.0  # seconds on the reactor's clock; 0 = forever
        self.timer: Any = None


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
    attempt: Callable[[], Any],
    timeout_reply: Any,
    deny_reply: Any = NOT_READY,
) -> Any:
    """
    Serve now, answer at once (inside MULTI/EXEC), or block C{c} on C{keys}; a
    re-run (C{argv}, the command as the client sent it) serves it or keeps it waiting.

    @param argv: the command a wake-up re-runs; pass a rewritten one when the first run
        resolves something the re-run must not (XREAD's C{$} becomes the last ID then).
    @param deny_reply: what it answers inside MULTI, if not C{timeout_reply}.
    @return: the reply, or C{NO_REPLY} when the client now waits.
    """
    from portsuite_services.kv.commands import NO_REPLY

    r = attempt()
    if r is not NOT_READY:
        if c.blocked is not None and r is not NO_REPLY:  # (NO_REPLY: computed in slices,
            unblock(c)  # c.blocked is that work: bigwork.py)
        return r
    if c.blocked is not None:  # woken, but someone else got it: keep waiting
        return NO_REPLY
    if c.deny_blocking:  # (BLMOVE answers a null there, and a null array on timeout)
        return timeout_reply if deny_reply is NOT_READY else deny_reply
    server = c.server
    store = c.store
    state = Blocked(argv, dict.fromkeys(keys), store, timeout_reply)
    blocking = store.blocking
    for key in state.keys:
        waiters = blocking.get(key)
        if waiters is None:
            blocking[key] = {c: None}
        else:
            waiters[c] = None
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
    if state.timer is not None:
        if state.timer.active():
            state.timer.cancel()
        state.timer = None
    blocking = state.store.blocking
    for key in state.keys:
        waiters = blocking.get(key)
        if waiters is not None:
            waiters.pop(c, None)
            if not waiters:
                del blocking[key]


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
                for client in list(waiters):
                    state = client.blocked
                    if state is None or client.closed:
                        continue
                    if key not in store.data:
                        break  # popped empty (or deleted) by the one before
                    out: list[bytes] = []
                    client.execute(state.argv, out)
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
