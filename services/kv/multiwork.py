"""
MULTI/EXEC across turns of the reactor, so that a transaction of 200,000 queued
commands, or one holding a SUNION of two big sets, never holds the event loop every
service of the suite shares.

EXEC runs its queued commands at once while that takes less than C{BUDGET} (5 ms)
and C{MAX_COMMANDS}: nearly every transaction, whose reply is then exactly as before.
Past that, the rest goes on at the next turns of the reactor (C{callLater(0)}), a
budget's worth each, as a L{Transaction}: a bigwork job (bigwork.py), so the
atomicity is Redis's: the server is C{busy} (every other kv client waits, as under
CLIENT PAUSE ALL, and so does active expiry), the client's own pipelined commands
wait behind EXEC, and the clock of expiry stands still from EXEC's start (Redis's
fixed time in EXEC; it stands still for a transaction run whole too). A big command
inside (C{bigwork.compute}) is computed a slice at a time by the transaction, then
run again with its result at hand; a big reply (bigreply.py) is encoded a slice at a
time into EXEC's reply. Other services are served in between.

What the commands write to the append-only file is held aside while the transaction
runs, and goes to the file between MULTI and EXEC when it is done (a crash leaves no
half transaction). Then EXEC runs again through the normal dispatch with its reply at
hand (the file written first, then the reply), the clients blocked on keys it
pushed to are served, and the clients that waited run.

A client gone mid-way does not stop the transaction: its first commands have changed
the keyspace, and Redis never leaves one half run. It runs to its end without
replies, and its changes are recorded.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from twisted.logger import Logger

from portsuite_services.kv.bigreply import Sending, may_slice
from portsuite_services.kv.bigwork import BUDGET, Working
from portsuite_services.kv.blocking import handle_ready
from portsuite_services.kv.resp import BIG_ARG, Chain, Preencoded, joined

log = Logger(namespace="portsuite.kv")

MAX_COMMANDS = 1024  # queued commands run per turn at most (and BUDGET seconds)
JOIN = 256  # parts of the reply joined into one as it grows
MULTI = b"*1\r\n$5\r\nMULTI\r\n"
EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class Transaction(Working):
    """An EXEC going on across turns: the client's C{blocked} and the server's C{busy}."""

    __slots__ = (
        "queued",
        "pos",
        "out",
        "joined",
        "pushes",
        "records",
        "inner",
        "sending",
        "rebatch",
    )

    def __init__(self, c: Any, queued: list[tuple[bytes, ...]]):
        super().__init__(c, [b"EXEC"], iter(()))  # type: ignore[arg-type]
        self.queued = queued
        self.pos = 0  # the next queued command to run
        self.out = [b"*%d\r\n" % len(queued)]  # EXEC's reply so far
        self.joined = 0  # out[:joined] are parts of JOIN parts or more
        self.pushes: list[bytes] = []  # pub/sub pushes to it meanwhile: before EXEC's reply
        self.records: list[bytes] = []  # what the commands wrote to the AOF so far
        self.inner: Working | None = None  # a big command being computed
        self.sending: Sending | None = None  # a big reply being encoded
        self.rebatch = False  # a CLIENT REPLY inside: its "rebatch" waits for EXEC's end

    def advance(self, end: float | None) -> bool:
        """Run until C{end} (perf_counter; None: to the end, whole): True once done."""
        c = self.client
        saved, blocked = c._out, c.blocked
        if saved is None:  # a later turn: what the commands push to their own client goes
            c._out = self.pushes  # out at the end of the turn, before EXEC's reply, as whole
        c.blocked = None
        c.in_exec = c.deny_blocking = True  # blocking commands answer at once
        c.transaction = self if end is not None else None
        if self.rebatch:  # (the commands after a CLIENT REPLY inside answer in the array)
            c.waiting = "rebatch"
        done = False
        try:
            done = self._advance(end)
            return done
        finally:
            self.rebatch = not done and c.waiting == "rebatch"
            if self.rebatch:  # (only for the batch that runs EXEC again, at the end)
                c.waiting = False
            c._out = saved
            if self.pushes:
                if not c.closed:
                    c.send(b"".join(self.pushes))
                self.pushes.clear()
            c.blocked = None if c.closed else blocked
            c.in_exec = c.deny_blocking = False
            c.transaction = None

    def _advance(self, end: float | None) -> bool:
        c = self.client
        out = self.out
        queued = self.queued
        n = 0
        while True:
            if self.inner is not None:  # a big command: its steps, then the command again
                inner = self.inner
                if not inner.run_steps(end):  # type: ignore[arg-type]
                    return False
                self.inner = None
                c.precomputed = inner
                try:
                    c.execute(inner.argv, out)
                finally:
                    c.precomputed = None
            elif self.sending is not None:  # a big reply: a slice at a time
                sending = self.sending
                while sending.pos < sending.count:
                    if c.closed:  # (nobody to read it)
                        sending.pos = sending.count
                        break
                    out.append(sending.next_slice())
                    if perf_counter() > end:  # type: ignore[operator]
                        break
                if sending.pos < sending.count:
                    return False
                sending.release()
                self.sending = None
                continue
            elif self.pos < len(queued):
                if end is not None and (n >= MAX_COMMANDS or perf_counter() > end):
                    return False
                argv = queued[self.pos]
                queued[self.pos] = ()  # (freed as it goes)
                self.pos += 1
                n += 1
                c.execute(list(argv), out)
            else:
                return True
            if len(out) - self.joined > JOIN:  # (millions of small parts would cost more
                out[self.joined :] = [joined(out[self.joined :])]  # than the reply)
                self.joined = len(out)
            left = c.blocked  # what the command left to go on with
            if left is not None:
                c.blocked = None
                if type(left) is Sending:
                    if left.call is not None and left.call.active():
                        left.call.cancel()
                    left.call = None
                    self.sending = left
                else:
                    self.inner = left

    def step(self) -> None:
        """One turn's work; then the next turn, or EXEC again with the reply."""
        self.call = None
        c = self.client
        aof = c.server.aof
        mark = len(aof.buf) if aof is not None else 0
        start = perf_counter()
        try:
            done = self.advance(c.server.turn.deadline(start))
        except Exception:  # a bug: logged, this client closed, the transaction ends here
            log.failure("kv {name}: EXEC failed", name=c.server.name)
            c.closed = True
            c.transport.abortConnection()
            done = True
        self.spent += perf_counter() - start
        if aof is not None and len(aof.buf) > mark:
            self.records += aof.buf[mark:]  # (recorded between MULTI and EXEC at the end)
            del aof.buf[mark:]
        if not done:
            self.call = c.server.reactor.callLater(0, self.step)
            return
        self.result = self
        self.finish()  # bigwork's: EXEC runs again with the reply at hand


def execute(c: Any, queued: list[tuple[bytes, ...]]) -> Any:
    """
    EXEC's queued commands: their replies (at once), or C{NO_REPLY} and the rest
    goes on at the next turns (then EXEC runs again: L{reply}).
    """
    server = c.server
    tx = Transaction(c, queued)
    aof = server.aof
    mark = len(aof.buf) if aof is not None else 0
    frozen = server.busy is None and server.dbs[0].frozen_ms == 0
    if frozen:
        now = server.dbs[0].now_ms()
        for db in server.dbs:
            db.frozen_ms = now  # (Redis's fixed time in EXEC)
    try:
        done = tx.advance(perf_counter() + BUDGET if may_slice(c) else None)
    finally:
        if frozen:
            for db in server.dbs:
                db.frozen_ms = 0
    if not done:
        from portsuite_services.kv.commands import NO_REPLY

        if aof is not None:
            tx.records = aof.buf[mark:]
            del aof.buf[mark:]
        c.blocked = tx
        server.set_busy(tx)
        if frozen:
            for db in server.dbs:
                db.frozen_ms = now
        tx.call = server.reactor.callLater(0, tx.step)
        return NO_REPLY
    if aof is not None and len(aof.buf) - mark > 1:
        # all or nothing after a crash too: a file ending inside MULTI is cut there
        aof.buf.insert(mark, MULTI)
        aof.buf.append(EXEC)
    if server.ready_keys:  # pushed inside the transaction: served after EXEC
        handle_ready(server)
    raw = joined(tx.out)  # (a big string in it is not copied)
    return Preencoded(raw, raw)


def reply(c: Any, tx: Transaction) -> Any:
    """EXEC run again, once a transaction that went on across turns is done."""
    server = c.server
    aof = server.aof
    records = tx.records
    if aof is not None and records:
        if len(records) > 1:
            aof.buf.append(MULTI)
            aof.buf += records
            aof.buf.append(EXEC)
        else:
            aof.buf += records
        if c.closed:  # (no reply to write it before)
            server.write_aof()
    if server.ready_keys:
        handle_ready(server)
    # one reply, as run whole: one big reply may pass client_output_buffer_limit
    # (replies piling up behind it may not), a list of parts could not. Its parts are
    # runs of JOIN replies already: not joined again (100,000 LRANGEs' 50 MB were, in
    # one step: 60-90 ms of every other service's time), a Chain of them if it is big
    out = tx.out
    tx.out = []
    raw: Any = Chain(out) if sum(map(len, out)) >= BIG_ARG else joined(out)
    return Preencoded(raw, raw)
