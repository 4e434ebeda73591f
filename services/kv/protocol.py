"""
L{KVProtocol}: one client connection of the kv service (its factory, holding the
keyspace, the append-only file and the channels, is L{portsuite_services.kv.server}).

A batch of pipelined commands (one C{dataReceived}) is parsed, run, appended to
the AOF (fsynced first with C{fsync = always}) and answered with one write.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from portsuite.api import format_peer, is_loopback
from portsuite_services.kv import multiwork
from portsuite_services.kv.bigreply import BIG as SLICED
from portsuite_services.kv.bigreply import Sending, any_list
from portsuite_services.kv.bigwork import ARGS, BIG, Working, possible
from portsuite_services.kv.blocking import handle_ready, unblock
from portsuite_services.kv.commands import COMMANDS, COMMANDS_ANY_CASE, NO_REPLY, CommandError
from portsuite_services.kv.delivery import forget, run_chore
from portsuite_services.kv.lazyfree import BIG_STRING
from portsuite_services.kv.notify import notify_after, notify_before
from portsuite_services.kv.resp import (
    BULK_HEADS,
    NULL_ARRAY,
    OK,
    RAW,
    SLICE,
    Chain,
    Preencoded,
    ProtocolError,
    Push,
    RequestParser,
    encode2,
    encode3,
    encode_bulks,
    joined,
    split_alike,
)
from portsuite_services.kv.sharded import SHARD_AT

if TYPE_CHECKING:
    from portsuite_services.kv.monitor import MonitorLine

log = Logger(namespace="portsuite.kv")

SUBSCRIBED_OK = frozenset(
    (
        b"subscribe",
        b"unsubscribe",
        b"psubscribe",
        b"punsubscribe",
        b"ssubscribe",
        b"sunsubscribe",
        b"ping",
        b"quit",
        b"reset",
    )
)
DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers, set a password "
    b'(password = "..." in [services.kv] of the portsuite config), or set '
    b"protected_mode = false there if this network is trusted.\r\n"
)
MAX_CLIENTS = b"-ERR max number of clients reached\r\n"
_ABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
EXECABORT = Preencoded(_ABORT, _ABORT)
# A command queued by MULTI holds about this much besides its arguments' bytes (its
# tuple, its list, a bytes object per argument): counted against
# client-query-buffer-limit (Redis's default 1 GB), so a client queuing for ever is
# bounded (redis-server itself queues until maxmemory-clients or the OOM killer).
QUEUED_MEM = 112
ARG_MEM = 41
MULTI_TOO_BIG = (
    b"-ERR transaction discarded: the commands queued by MULTI hold more than "
    b"client-query-buffer-limit\r\n"
)
FLUSH_SIZE = 64 * 1024  # replies of one batch past this size are written before the next
# A batch of at most this many commands runs whole, replies counted at the end: big
# strings are the stored values themselves, not copies, so it holds little more.
SMALL_BATCH = 32
# A pipeline runs until the turn's share of kv's work in slices is spent (turn.Turn:
# the read's parsing counts; the clock is read every TURN_CHECK commands, so that
# many run at least), then the rest waits for the next turn: a client that sends
# thousands of commands at once does not hold the other clients and services (Redis
# reads 16 KiB per turn; kv reads up to 64 KiB).
TURN_CHECK = 32
TURN_ARGS = 2048  # and after commands of this many arguments (ZADDs into a big sorted set)
# A read is parsed whole before any of it runs: 256 KiB of small commands (9,000 SADD)
# took 15-40 ms to parse. 64 KiB, as Twisted reads, keeps that to a few ms; a 100 MB
# value still comes in reads of 64 KiB (Redis reads 16 KiB).
READ_SIZE = 64 * 1024
# queued output handed over in one turn of the reactor at most, by all of a service's
# clients together: a 4 MB PUBLISH to 200 subscribers that do not read handed each a
# megabyte a turn, when this was each client's own (turns of 60-95 ms of send()s into
# their full sockets; 4 MB a turn for all of them still made turns of 60-95 ms)
TURN_BYTES = 4 * SLICE


class TurnOut:
    """The bytes a service's clients may still hand over from their queues in this turn."""

    __slots__ = ("left", "reactor")

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.left = TURN_BYTES

    def spend(self, n: int) -> None:
        if self.left == TURN_BYTES and n:  # (the turn's first: a new allowance at the next)
            self.reactor.callLater(0, self._next_turn)
        self.left -= n

    def _next_turn(self) -> None:
        self.left = TURN_BYTES


BIG_REPLY = 1024 * 1024  # a string this long is sent as it is, not copied into its reply
MAX_WAITING = 100_000  # commands sent behind a blocked one before we stop reading
FORGET_PIECE = 8192  # WATCHed keys UNWATCH (EXEC, DISCARD, a close) forgets a turn
MAY_REPLICATE = frozenset(
    ("publish", "spublish", "eval", "evalsha", "fcall", "script", "function", "pfcount")
)
NOT_QUEUED = frozenset((b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"))


@implementer(IPushProducer)
class KVProtocol(Protocol):
    """One client of the Redis-compatible store (RESP2/RESP3, inline commands)."""

    transport: Any

    def __init__(self, server: Any):  # the KVServer (server.py) that built it
        self.server = server
        self.store = server.store  # the selected database (SELECT changes both)
        self.db = 0
        self.blocked: Any = None  # what a blocking command waits for (blocking.py)
        self.deny_blocking = False  # inside EXEC, or replaying the AOF: never block
        s = server.settings
        self.user = server.users["default"]
        self.acl_user = None if self.user.unrestricted else self.user  # checked on dispatch
        self.authenticated = self.user.open
        self.parser = RequestParser(s.proto_max_bulk_len, locked=not self.authenticated)
        self.parser.on_big = server.lazyfree.strings.watch  # (freed off the loop: lazyfree.py)
        self.resp = 2
        self.enc = encode2
        self.id = server.next_id()
        self.name: bytes | None = None
        self.lib: dict[bytes, bytes] = {}
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.shards: set[bytes] = set()  # SSUBSCRIBE's shard channels
        self.soft_since: float | None = None  # over the pubsub soft output limit since
        self.close_after_reply = False
        self.closed = False
        self.also: list[list[bytes]] | None = None  # what goes to the AOF instead of argv
        self.touched: list[bytes] | None = None  # the keys a write changed, if not all of argv's
        self._out: list[bytes] | None = None
        self.paused = False
        self.pending: tuple[list[list[bytes]], str | None] | None = None  # waiting to run
        # output waiting for the transport to drain
        self.queue: list[bytes | Chain | MonitorLine] = []
        self.qoff = 0  # how much of queue[0] was already written
        self.drain_call: Any = None  # the rest of the queue, at the next turn (_drain)
        self.queued = 0
        self.created = self.last = server.clock()
        self.last_cmd: Any = None
        # the commands queued by MULTI: tuples of bytes, which Python's garbage collector
        # stops tracking (a list each, 200,000 of them, made it walk them all again and again)
        self.multi: list[tuple[bytes, ...]] | None = None
        self.multi_writes = False  # one of them writes (EXEC waits for CLIENT PAUSE WRITE)
        self.multi_failed = False
        self.multi_mem = 0  # what the queued commands hold, about (CLIENT LIST multi-mem)
        self.plain = self.authenticated
        self.watching: set[tuple[int, bytes]] = set()  # (db, key)
        self.watch_dirty = False
        self.peer = "?"
        self.laddr = server.laddr
        self.reply_mode: str | None = None  # CLIENT REPLY: None (on), "off", "skip", "skip-this"
        self._quiet = False
        self.waiting: bool | str = (
            False  # a command waits for CLIENT PAUSE to end (it is in pending)
        )
        self.in_exec = False
        self.monitor = False
        self.held = False  # replies wait in queue for the AOF's write (KVServer.hold)
        self.precomputed: Any = None  # a sliced command's result, for its second run (bigwork.py)
        self.acl_verdict: tuple[list[bytes], Any] | None = None  # a check made in slices
        self.big_out = False  # the last command answered a big string (sent as it is)
        self.transaction: Any = None  # an EXEC going on across turns, while it runs (multiwork.py)
        self.read_at: float | None = None  # when the read being run began (perf_counter)
        self.refresh()

    # -- connection ----------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer = format_peer(peer)
        try:
            self.laddr = format_peer(self.transport.getHost())
        except Exception:  # a test transport may have none
            self.laddr = self.server.laddr
        s = self.server.settings
        if s.protected_mode and self.server.users["default"].open and not is_loopback(peer):
            log.warn("kv: refused {peer}: protected mode (no password set)", peer=self.peer)
            self.closed = True
            self.transport.write(DENIED)
            self.transport.loseConnection()
            return
        self.server.clients[self.id] = self
        self.server.total_connections += 1
        self.transport.registerProducer(self, True)
        nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if nodelay is not None:
            try:
                nodelay(True)  # replies go out now, not when the last one is acknowledged
            except OSError:
                pass
        read_at_most = getattr(self.transport, "read_at_most", None)
        if read_at_most is not None:
            read_at_most(READ_SIZE)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        if self.drain_call is not None:
            if self.drain_call.active():
                self.drain_call.cancel()
            self.drain_call = None
        if self.blocked is not None:
            unblock(self)
        self.unwatch()
        server = self.server
        server.clients.pop(self.id, None)
        if self.monitor:
            self.monitor = False
            server.remove_monitor(self)
        server.paused_clients.discard(self)
        if self.channels or self.patterns or self.shards:  # (a million: in slices)
            forget(
                self,
                [
                    (self.channels, server.channels),
                    (self.patterns, server.patterns),
                    (self.shards, server.shards),
                ],
            )
        self.channels = set()
        self.patterns = set()
        self.shards = set()
        self.queue = []
        self.queued = 0
        self.qoff = 0
        self.pending = None
        big = self.parser.big  # a big bulk cut off mid-way: up to 512 MB, let go now
        self.parser.big = None
        if big is not None and big.tell() >= BIG_STRING:  # (its pages: in a thread)
            server.lazyfree.strings.watch(big.getvalue())
        self.parser.argv = None

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns or self.shards)

    def refresh(self) -> None:
        """After AUTH, MULTI, SUBSCRIBE…: can the next command skip the state checks?"""
        self.plain = (
            self.authenticated
            and self.multi is None
            and not (self.channels or self.patterns or self.shards)
            and self.acl_user is None
            and not self.server.every_command
        )
        self.lean = self.plain and self.reply_mode is None  # GET and SET: see LEAN

    def set_user(self, user: Any) -> None:
        """Log in as C{user} (AUTH, HELLO AUTH), or follow its new rules (ACL SETUSER)."""
        self.user = user
        self.acl_user = None if user.unrestricted else user
        self.refresh()

    def set_authenticated(self, user: Any = None) -> None:
        self.authenticated = True
        self.parser.locked = False
        if user is not None:
            self.set_user(user)
        self.refresh()

    def select(self, db: int) -> None:
        self.store = self.server.dbs[db]
        self.db = db

    def resume_after_block(self, out: list[bytes]) -> None:
        """Unblocked: the reply goes out, then the commands that waited behind it run."""
        if self.closed:
            return
        if out:
            self._flush(out, sum(map(len, out)))
        if self.pending is not None and not self.paused:
            self.server.reactor.callLater(0, self._run_pending)

    def _run_pending(self) -> None:
        if self.closed or self.paused or self.blocked is not None or self.pending is None:
            return
        cmds, error = self.pending
        self.pending = None
        self.run(cmds, error)
        if not self.paused and not self.closed and self.pending is None and not self.queue:
            self.transport.resumeProducing()

    def kill(self) -> None:
        """
        CLIENT KILL, ACL DELUSER: gone now (not in CLIENT LIST, nothing more read, output
        dropped); its connection is closed within a few turns (L{KVServer.abort}).
        """
        self.connectionLost()
        self.transport.pauseProducing()
        self.server.abort(self.transport)

    def set_reply_mode(self, mode: str | None) -> None:
        """CLIENT REPLY: while not on, commands go through L{_execute_quiet}."""
        self.reply_mode = mode
        self.lean = self.plain and mode is None
        if self._out is not None and not self._quiet:
            self.waiting = "rebatch"  # the rest of this batch runs through the new execute
        if mode is None:
            self.__dict__.pop("execute", None)
        else:
            self.execute = self._execute_quiet  # type: ignore[method-assign]

    def _execute_quiet(self, argv: list[bytes], out: list[bytes]) -> None:
        if self._quiet:  # a command inside EXEC: its reply is part of EXEC's
            KVProtocol.execute(self, argv, out)
            return
        before = self.reply_mode
        mark = len(out)
        self._quiet = True
        try:
            KVProtocol.execute(self, argv, out)
        finally:
            self._quiet = False
        if self.waiting:
            return
        after = self.reply_mode
        if after == "skip-this":  # CLIENT REPLY SKIP: no reply, nor to the next command
            del out[mark:]
            self.reply_mode = "skip"
        elif after == "off":
            del out[mark:]
        elif before == "skip" and after == "skip":
            del out[mark:]
            self.set_reply_mode(None)

    def must_wait(self, cmd: Any, argv: list[bytes]) -> bool:
        """CLIENT PAUSE is on: does this command wait for its end?"""
        server = self.server
        busy = server.busy
        if busy is not None:  # a command computed in slices: everything else waits
            # (but for a blocked client served after it: the command has done its work;
            # and for a transaction whose events started delivering: delivery.py)
            return busy.client is not self and not server.serving and not self.in_exec
        if not server.pause_end or self.in_exec:
            return False
        if cmd.fullname == "client|unpause":
            return False  # (Redis makes it wait too under ALL; then nothing could end a pause)
        if server.pause_all or cmd.write or cmd.name in MAY_REPLICATE:
            return True
        if cmd.name == "exec" and self.multi:
            return self.multi_writes
        return False

    def end_wait(self) -> None:
        """The pause is over: run the commands that waited."""
        self.waiting = False
        if (
            self.closed
            or self.paused
            or self.queue
            or self.pending is None
            or self.blocked is not None
        ):
            return
        cmds, error = self.pending
        self.pending = None
        self.run(cmds, error)
        if not self.paused and not self.closed and self.pending is None and not self.queue:
            self.transport.resumeProducing()

    def check_in_slices(self, acl: Any, cmd: Any, argv: list[bytes]) -> None:
        """
        The ACL check of a command of very many keys or channels (a SUBSCRIBE of
        200,000 names by a user with channel rules: 70-100 ms) as the server's work in
        slices, every kv client waiting (this one too): the command runs again once
        its verdict is known (C{acl_verdict}), as Redis checks it, whole, first.
        """

        def steps() -> Any:
            denied = yield from acl.denies_steps(cmd, argv)
            self.acl_verdict = (argv, denied)

        run_chore(self.server, steps())

    def acl_denied(self, cmd: Any, argv: list[bytes], denied: tuple[str, str]) -> bytes:
        """The NOPERM reply for a denied command; the denial goes to ACL LOG."""
        from portsuite_services.kv.commands.security import exec_noperm_text, noperm_text

        context = "multi" if self.multi is not None or self.in_exec else "toplevel"
        self.server.acl_log.add(denied[0], context, denied[1], self.user.name, self.info_line())
        if self.in_exec:  # the rules changed since the command was queued
            return b"-NOPERM %s\r\n" % exec_noperm_text(denied).encode()
        return b"-NOPERM %s\r\n" % noperm_text(denied, cmd).encode("utf-8", RAW)

    def set_resp(self, version: int) -> None:
        self.resp = version
        self.enc = encode3 if version == 3 else encode2

    def exec_multi(self) -> Any:
        """EXEC: run the queued commands, one after the other, replies in one array."""
        done = self.precomputed
        if done is not None:  # a transaction that went on across turns: its reply
            self.precomputed = None
            return multiwork.reply(self, done)
        queued, self.multi = self.multi or [], None
        failed, self.multi_failed = self.multi_failed, False
        dirty = self.watch_dirty
        self.unwatch()
        if failed:
            return EXECABORT
        if dirty:  # a watched key changed: nothing is run
            return NULL_ARRAY
        return multiwork.execute(self, queued)  # at once, or across turns when long

    def watch(self, keys: list[bytes]) -> None:
        store = self.store
        for key in keys:
            store.get(key)  # an expired key goes now, not later as a "change"
            if (store.id, key) not in self.watching:
                self.watching.add((store.id, key))
                store.watched.setdefault(key, set()).add(self)

    def unwatch(self) -> None:
        watching = self.watching
        self.watching = set()
        self.watch_dirty = False
        if len(watching) <= FORGET_PIECE:
            self._forget(iter(watching))
        else:  # a million keys: forgotten a piece per turn (a write to one looks first
            # whether its watchers still watch it: server.touch)
            self.server.reactor.callLater(0, self._forget, iter(watching))

    def _forget(self, keys: Any) -> None:
        """The keys this client watched, which it no longer does, forgotten (a piece)."""
        dbs = self.server.dbs
        watching = self.watching
        n = 0
        for db, key in keys:
            watched = dbs[db].watched
            clients = watched.get(key)
            if clients is not None and (db, key) not in watching:  # (or watched again)
                clients.discard(self)
                if not clients:
                    del watched[key]
            n += 1
            if n == FORGET_PIECE:
                self.server.reactor.callLater(0, self._forget, keys)
                return

    def reset(self) -> None:
        self.unwatch()
        self.multi = None
        self.multi_failed = False
        self.set_resp(2)
        self.name = None
        self.select(0)
        self.set_reply_mode(None)
        kept = self.queue, self.queued, self.qoff, self.pending  # still owed to the client
        self.connectionLost()
        self.queue, self.queued, self.qoff, self.pending = kept
        self.closed = False
        self.server.clients[self.id] = self
        self.user = self.server.users["default"]
        self.acl_user = None if self.user.unrestricted else self.user
        self.authenticated = self.user.open
        self.parser.locked = not self.authenticated
        self.refresh()

    # -- flow control: a client that does not read cannot grow our memory ----------
    #
    # Every byte queued for a client counts: the transport's buffer (over its 64 KiB
    # it pauses us, synchronously, from inside write()), then our own queue. While
    # paused we stop *executing* the client's pipelined commands (they wait in
    # C{pending}, no reply is built for them) and stop reading its socket; when the
    # transport has sent everything it resumes us and we go on. Only what one reply
    # or a pub/sub push adds can go past that, and past client_output_buffer_limit
    # the client is disconnected, as Redis does.

    def pauseProducing(self) -> None:
        # the transport's buffer is full: stop reading this client's requests
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        # everything the transport held has been sent
        self.paused = False
        self._drain()
        if self.closed or self.paused or self.queue or self.blocked is not None:
            if type(self.blocked) is Sending and not self.closed:
                self.blocked.resume()  # a big reply's next slice (bigreply.py)
            return
        if self.pending is not None:
            cmds, error = self.pending
            self.pending = None
            self.run(cmds, error)
        if not self.paused and not self.closed and self.pending is None and not self.queue:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass

    def drop(self) -> None:
        """The AOF could not be written: acknowledge nothing of this batch, close."""
        self.closed = True
        self._out = None
        self.transport.abortConnection()

    def release(self) -> None:
        """The AOF holds this client's writes now: its held replies go (KVServer.release)."""
        self.held = False
        if self.closed or self.paused:
            return  # (paused: the transport resumes us once it has sent what it holds)
        # what resumeProducing does once the transport drained, which it would not
        # call now: it paused nothing while the replies were held
        self._drain()
        if type(self.blocked) is Sending:
            self.blocked.resume()  # a big reply started meanwhile waits for the queue
            return
        if self.queue or self.paused or self.blocked is not None:
            return
        if self.pending is not None and not self.waiting:
            cmds, error = self.pending
            self.pending = None
            self.run(cmds, error)
        # a resumeProducing that came while the replies were held drained nothing and
        # left the socket unread: read it again, or a client that pipelines waits forever
        if not self.paused and not self.closed and self.pending is None and not self.queue:
            self.transport.resumeProducing()

    def _drain(self) -> None:
        """
        Hand queued output to the transport, a slice at a time, until it pauses us, or
        the service's C{TURN_BYTES} for this turn went (L{TurnOut}): a client reading as
        fast as the socket sends never pauses it (the suite's write goes straight to the
        socket), and a GET of 100 MB handed over whole held every other service for its
        40-60 ms.
        """
        if self.drain_call is not None:
            return  # (this turn's share went: the rest at the next turn)
        queue = self.queue
        out = self.server.turn_out
        budget = start = out.left
        while queue and not self.paused and not self.closed and not self.held:
            if budget <= 0:  # as if the transport paused us: the rest at the next turn
                out.spend(start - budget)
                self.pauseProducing()
                self.drain_call = self.server.reactor.callLater(0, self._drain_on)
                return
            item = queue[0]
            if self.qoff == 0 and len(item) <= SLICE:
                queue.pop(0)
                self.queued -= len(item)
                budget -= len(item)
                self.transport.write(item)
                continue
            known = len(item)
            piece = item[self.qoff : self.qoff + SLICE]
            self.queued += len(item) - known  # (a MONITOR line grows as it is escaped)
            budget -= SLICE  # (a MONITOR line's slice may be shorter: it costs the same)
            self.qoff += len(piece)
            self.queued -= len(piece)
            if self.qoff >= len(item):
                queue.pop(0)
                self.qoff = 0
            self.transport.write(piece)
        out.spend(start - budget)

    def _drain_on(self) -> None:
        """The next turn of L{_drain}: then what the transport's own resume would do."""
        self.drain_call = None
        if not self.closed:
            self.resumeProducing()

    def send(self, data: bytes | Chain | MonitorLine) -> None:
        if not self.paused and not self.queue and len(data) <= SLICE:
            self.transport.write(data)
            return
        self.queue.append(data)
        self.queued += len(data)
        # (one big reply alone may pass the limit, as a normal client's may in Redis;
        # replies and pushes piling up behind it may not)
        over = self.queued - len(self.queue[0]) + self.qoff
        if self.channels or self.patterns or self.shards:
            limit = self._pubsub_limit(over)
        else:
            limit = self.server.settings.client_output_buffer_limit
        if limit and over > limit:
            log.warn(
                "kv: closing {peer}: output buffer over {limit} bytes "
                "(the client sends commands but does not read the replies)",
                peer=self.peer,
                limit=limit,
            )
            self.closed = True
            self.queue = []
            self.queued = 0
            self.qoff = 0
            self.pending = None
            self.transport.abortConnection()
            return
        if not self.paused:
            self._drain()

    def _pubsub_limit(self, over: int) -> int:
        """
        The limit of a subscribed client's queued output now: the pubsub class's hard
        one, or its soft one once over it for its seconds (client-output-buffer-limit).
        """
        hard, soft, seconds = self.server.pubsub_limits
        if not soft or over <= soft:
            self.soft_since = None
            return hard
        now = self.server.clock()
        if self.soft_since is None:
            self.soft_since = now
        elif now - self.soft_since >= seconds:
            return soft
        return hard

    def push(self, reply: Any) -> None:
        """An out-of-band reply (pub/sub): now, or with the current batch."""
        if type(reply) is list:
            reply = Push(reply)
        if self.closed or self.reply_mode == "off":
            return
        out: list[bytes] = []
        self.enc(reply, out)
        self.push_encoded(out[0] if len(out) == 1 else b"".join(out))

    def push_encoded(self, data: bytes) -> None:
        """L{push} of a reply encoded already (one message to many subscribers)."""
        if self.closed or self.reply_mode == "off":
            return
        if self._out is not None:
            self._out.append(data)
        else:
            self.send(data)

    # -- requests --------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closed or self.close_after_reply:
            return
        server = self.server
        self.last = server.clock()
        parser = self.parser
        if (
            self.lean
            and self.pending is None
            and self.blocked is None
            and not self.queue
            and not self.paused
            and not server.notify_flags
            and not parser.buf
            and parser.argv is None
            and parser.big is None
            and len(data) <= BATCH_MAX
            and len(data) < parser.max_bulk
        ):
            # a read of GETs alone or SETs alone (redis-benchmark -P 1 and -P 16): see BATCH
            batch = BATCH.get(data[:13])
            if batch is not None:
                stride, run, cmd = batch
                parts = split_alike(data, stride)
                if parts is not None:
                    t0 = perf_counter()
                    reply = run(self, parts, data)
                    if reply is not None:  # (else nothing changed: the parser reads it)
                        micros = (perf_counter() - t0) * 1_000_000
                        n = (len(parts) - 1) // stride
                        self.last_cmd = cmd
                        server.total_commands += n
                        if 0 <= server.slowlog_threshold <= micros:  # as for a pipeline
                            server.slow(self, parts[2:stride:2], int(micros), n - 1)
                        aof = server.aof
                        if aof is None or not aof.buf:
                            self.transport.write(reply)
                        else:
                            self._reply(reply)
                        return
        error = None
        self.read_at = perf_counter()  # (parsing a long read is part of the turn's share)
        try:
            cmds = parser.feed(data)
        except ProtocolError as e:
            cmds = self.parser.ready
            error = str(e)
        if self.pending is not None:  # still waiting for the client to read (or blocked)
            old, olderror = self.pending
            self.pending = (old + cmds, olderror or error)
            if self.blocked is not None and len(self.pending[0]) > MAX_WAITING:
                self.transport.pauseProducing()  # read again once unblocked
            return
        if server.slowlog_threshold < 0 or not cmds:
            self.run(cmds, error)
            self.read_at = None
            return
        # SLOWLOG: timed per request (a pipeline is one), not per command, to keep
        # the dispatch path free of clock reads
        t0 = perf_counter()
        self.run(cmds, error)
        self.read_at = None
        micros = (perf_counter() - t0) * 1_000_000
        job = self.blocked
        if job is not None and job is server.busy and isinstance(job, Working):
            job.spent += micros / 1_000_000  # (it goes on: logged whole when it ends)
            return
        if micros >= server.slowlog_threshold:  # (an int: the same as int(micros) >= it)
            server.slow(self, cmds[0], int(micros), len(cmds) - 1)

    def run(self, cmds: list[list[bytes]], error: str | None) -> None:
        """
        Run a batch of pipelined commands; their replies go out in one write, or in
        several when they are big. Stops (commands left in C{pending}) as soon as the
        client's pending output is over the transport's high mark.
        """
        server = self.server
        out: list[bytes] = []
        self._out = out
        execute = self.execute
        done = 0
        if len(cmds) <= SMALL_BATCH:  # what pipelining clients send: no accounting per reply
            # GET and SET of a client in no special state: see LEAN
            lean = LEAN if self.lean else NO_LEAN
            for argv in cmds:
                fast = lean.get(argv[0])
                done += 1
                if fast is not None and fast(self, argv, out):
                    continue
                execute(argv, out)
                if (
                    self.close_after_reply
                    or self.closed
                    or self.blocked is not None
                    or self.waiting
                    or self.big_out
                ):
                    break
                # (the command may have been AUTH, MULTI, MONITOR, CLIENT REPLY…)
                lean = LEAN if self.lean else NO_LEAN
            else:
                if error is None:  # all ran, none blocked, paused or closed: the replies go
                    self._out = None
                    server.total_commands += done
                    if out:
                        size = len(out[0]) if len(out) == 1 else sum(map(len, out))
                        if size > SLICE or self.queue or self.paused:
                            self._flush(out, size)
                        else:
                            self._reply(out[0] if len(out) == 1 else b"".join(out))
                    return
            size = sum(map(len, out))
            rest = cmds[done:] if self.blocked is not None else []
            every = cmds
            cmds = ()  # type: ignore[assignment]
            if self.big_out:  # a big string: the rest waits for the client to read it
                self.big_out = False
                if not (self.blocked or self.closed or self.close_after_reply or self.waiting):
                    server.total_commands += done
                    every = cmds = every[done:]
                    done = 0
                    if not self._flush(out, size):
                        return
                    out.clear()
                    size = 0
                    if self.paused and cmds:
                        self.pending = (cmds, error)
                        self._out = None
                        return
        else:
            size = 0
            rest = []
            every = cmds
        # (the reactor's clock: a test's Clock stands still, and the batch runs whole)
        clock = server.clock
        deadline = clock() + server.turn.left(self.read_at) if cmds else 0.0
        args = 0
        for argv in cmds:
            mark = len(out)
            execute(argv, out)
            done += 1
            args += len(argv)
            if self.close_after_reply or self.closed or self.waiting:
                break
            if self.blocked is not None:
                rest = cmds[done:]
                break
            added = len(out) - mark
            if added == 1:
                size += len(out[mark])
            elif added:
                size += sum(map(len, out[mark:]))
            if size > FLUSH_SIZE:
                if not self._flush(out, size):
                    return
                out.clear()
                size = 0
                if self.paused and done < len(cmds):
                    # over the high mark: the rest waits until the client reads
                    server.total_commands += done
                    self.pending = (cmds[done:], error)
                    self._out = None
                    return
            if (not done % TURN_CHECK or args > TURN_ARGS) and done < len(cmds):
                args = 0
                if clock() <= deadline:
                    continue
                # a long pipeline lets the reactor serve the others (clients, services)
                # once the turn's share is spent, and goes on at the next turn
                if out and not self._flush(out, size):
                    return
                server.total_commands += done
                self.pending = (cmds[done:], error)
                self._out = None
                self.transport.pauseProducing()
                server.reactor.callLater(0, self._run_pending)
                return
        self._out = None
        if self.waiting == "rebatch":  # CLIENT REPLY changed how commands answer
            self.waiting = False
            server.total_commands += done
            if self.reply_mode in ("off", "skip-this") and out and out[-1] == b"+OK\r\n":
                out.pop()  # CLIENT REPLY OFF/SKIP is not answered either
                if self.reply_mode == "skip-this":
                    self.reply_mode = "skip"
            if out and not self._flush(out, sum(map(len, out))):
                return
            self.run(every[done:], error)
            return
        if self.waiting:  # CLIENT PAUSE: this command and the rest wait for its end
            done -= 1
            self.pending = (every[done:], error)
            error = None
            server.paused_clients.add(self)
            self.transport.pauseProducing()
        server.total_commands += done
        if self.closed:
            return
        if self.blocked is not None:  # what follows a blocked command waits for its reply
            self.pending = (rest, error)
            error = None
        if error is not None and not self.close_after_reply:
            out.append(b"-ERR Protocol error: %s\r\n" % error.encode("latin-1"))
            self.close_after_reply = True
            log.info(
                "kv: protocol error from {peer}: {error}; closing", peer=self.peer, error=error
            )
        if out and not self._flush(out, size):
            return
        if self.close_after_reply:
            self.transport.loseConnection()

    def _reply(self, data: bytes) -> None:
        """
        The replies of a whole batch, at most L{SLICE} bytes, nothing queued before
        them: what L{_flush} and L{send} would do, in fewer steps.
        """
        aof = self.server.aof
        if aof is None or not aof.buf:
            self.transport.write(data)
        elif self.server.call_after_poll is not None and aof.ok:
            # the AOF is written once for every client of this poll, then these
            # replies go (Redis's beforeSleep): they wait in queue
            self.queue.append(data)
            self.queued += len(data)
            self.held = True
            self.server.hold(self)
        else:
            self._flush([data], len(data))

    def _flush(self, out: list[bytes], size: int) -> bool:
        """The AOF first (nothing is acknowledged before it is written), then the replies."""
        if not self.server.write_aof():
            self.drop()
            return False
        if size > BIG_REPLY:  # no copy of big values: one reply, sent a slice at a time
            self.send(joined(out))
        elif out:
            self.send(out[0] if len(out) == 1 else b"".join(out))
        return True

    def execute(self, argv: list[bytes], out: list[bytes]) -> None:
        """Run one command; its reply (if any) is appended to C{out}."""
        cmd = COMMANDS_ANY_CASE.get(argv[0])  # GET and get without lower()
        if cmd is None or cmd.subcommands or not self.plain:
            cmd = self._resolve(argv, out, cmd)
            if cmd is None:
                return
        else:  # a known command from a client in no special state: only its arity to check
            arity = cmd.arity
            n = len(argv)
            if n != arity and (arity > 0 or n < -arity):
                out.append(
                    b"-ERR wrong number of arguments for '%s' command\r\n" % cmd.fullname.encode()
                )
                return
        self.last_cmd = cmd
        server = self.server
        write = cmd.write
        if write:
            store = self.store
            if server.aof is not None and not server.aof.ok:
                out.append(
                    b"-MISCONF Errors writing to the AOF file: %s\r\n" % server.aof.error.encode()
                )
                return
            self.also = None
            self.touched = None
            dirty = store.dirty
        notifying = server.notify_flags
        if notifying:  # keyspace notifications on: which keys exist before
            pre = notify_before(self, cmd, argv)
        try:
            r = cmd.handler(self, argv)
        except CommandError as e:
            text = str(e)  # (a client's bytes in it: no CR or LF, as addReplyErrorFormat;
            # bytes that are not UTF-8 as they came, where decoded with surrogateescape)
            line = text.replace("\r", " ").replace("\n", " ")
            out.append(b"-%s\r\n" % line.encode("utf-8", RAW))
            kind = text.split(" ", 1)[0]
            stats = server.error_stats
            stats[kind] = stats.get(kind, 0) + 1
            if cmd.stateful:
                self.refresh()
            return
        if cmd.stateful:
            self.refresh()
        if write and store.dirty != dirty:
            if store.watched or store.blocking:
                keys = server.command_keys(cmd, argv, self.touched)
                if store.watched:
                    server.touch(store, keys)
                if store.blocking:
                    server.signal_ready(store, keys)
            aof = server.aof
            if aof is not None:
                if aof.db != store.id:
                    aof.select(store.id)
                if self.also is None:
                    aof.feed(argv)
                else:
                    for a in self.also:
                        aof.feed(a)
            if notifying:
                notify_after(self, cmd, argv, r, pre)
            if server.ready_keys and not self.deny_blocking:
                handle_ready(server)  # clients blocked on what this made ready
        elif notifying and pre and type(self.blocked) is not Working:  # (told when it is done)
            notify_after(self, cmd, argv, r, pre, False)  # key misses (or nothing changed)
        if r is NO_REPLY:
            return
        if type(r) is bytes:
            if len(r) < BIG_REPLY:
                out.append(b"$%d\r\n%s\r\n" % (len(r), r))
            else:
                out += (b"$%d\r\n" % len(r), r, b"\r\n")
                self.big_out = True
        elif r is OK:
            out.append(b"+OK\r\n")
        elif type(r) is list and len(r) > 1 and (len(r) >= SLICED or type(r[-1]) is list):
            r = any_list(self, r)  # (a million elements: encoded a slice per turn)
            if r is not NO_REPLY:
                self.enc(r, out)
        else:
            self.enc(r, out)
            if type(r) is memoryview:  # (GETRANGE of a big range)
                self.big_out = True

    def _resolve(self, argv: list[bytes], out: list[bytes], cmd: Any) -> Any:
        """
        L{execute}'s checks for an unknown command or a subcommand, or a client that
        is not L{plain}: the command to run, or None when answered (an error,
        QUEUED, or waiting for CLIENT PAUSE to end).
        """
        if cmd is None:
            name = argv[0].lower()
            cmd = COMMANDS.get(name)
        else:
            name = cmd.lname
        server = self.server
        if cmd is None:
            if name == b"post" or name == b"host:":
                log.warn(
                    "kv: possible SECURITY ATTACK from {peer}: an HTTP request ({name}) was "
                    "sent to the kv port (cross-protocol scripting); connection closed",
                    peer=self.peer,
                    name=argv[0].decode("latin-1"),
                )
                self.closed = True
                self.transport.loseConnection()
                return None
            out.append(_unknown(argv))
            if self.multi is not None:
                self.multi_failed = True
            return None
        if cmd.subcommands and (len(argv) > 1 or cmd.arity != -1):
            if len(argv) == 1:
                out.append(b"-ERR wrong number of arguments for '%s' command\r\n" % name)
                if self.multi is not None:
                    self.multi_failed = True
                return None
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is None:
                out.append(
                    b"-ERR unknown subcommand '%s'. Try %s HELP.\r\n"
                    % (_clip(argv[1], 128), _clean(argv[0].upper()))
                )
                if self.multi is not None:
                    self.multi_failed = True
                return None
            cmd = sub
        arity = cmd.arity
        n = len(argv)
        if (arity > 0 and n != arity) or n < -arity:
            out.append(
                b"-ERR wrong number of arguments for '%s' command\r\n" % cmd.fullname.encode()
            )
            if self.multi is not None:
                self.multi_failed = True
            return None
        if not self.plain:  # not authenticated, subscribed (RESP2) or in MULTI
            if not self.authenticated and not cmd.noauth:
                out.append(b"-NOAUTH Authentication required.\r\n")
                return None
            acl = self.acl_user
            if acl is not None:
                verdict = self.acl_verdict
                if self.precomputed is not None:  # its second run: checked on its first
                    denied = None
                elif verdict is not None and verdict[0] is argv:  # (checked in slices)
                    self.acl_verdict = None
                    denied = verdict[1]
                elif (
                    (len(argv) > ARGS or acl.slow_check(argv))
                    and self.multi is None
                    and possible(self, BIG)
                ):
                    self.check_in_slices(acl, cmd, argv)
                    self.waiting = True  # (run again once checked)
                    return None
                else:
                    denied = acl.denies(cmd, argv)
                if denied is not None:
                    out.append(self.acl_denied(cmd, argv, denied))
                    if self.multi is not None:
                        self.multi_failed = True
                    return None
            if self.resp == 2 and self.subscribed and name not in SUBSCRIBED_OK:
                out.append(
                    b"-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING "
                    b"/ QUIT / RESET are allowed in this context\r\n" % cmd.fullname.encode()
                )
                return None
            if server.every_command:
                if (server.pause_end or server.busy is not None) and self.must_wait(cmd, argv):
                    self.waiting = True
                    return None
                if server.monitors and "admin" not in cmd.flags and self.precomputed is None:
                    server.feed_monitors(self, argv)
            if self.multi is not None and name not in NOT_QUEUED:
                if "nomulti" in cmd.flags:
                    out.append(b"-ERR Command not allowed inside a transaction\r\n")
                    self.multi_failed = True
                    return None
                if not (self.multi_failed or self.watch_dirty):  # (else EXEC runs nothing)
                    self.multi.append(tuple(argv))
                    if cmd.write or cmd.name in MAY_REPLICATE:
                        self.multi_writes = True
                    self.multi_mem += sum(map(len, argv)) + ARG_MEM * len(argv) + QUEUED_MEM
                    if self.multi_mem > server.query_buffer_limit:
                        self.queue_overflow(out)
                        return None
                out.append(b"+QUEUED\r\n")
                return None
        return cmd

    def queue_overflow(self, out: list[bytes]) -> None:
        """MULTI queued more than client-query-buffer-limit: the queue goes, EXEC aborts."""
        log.warn(
            "kv: {peer} queued {n} commands ({mem} bytes) in MULTI, past "
            "client-query-buffer-limit: transaction discarded",
            peer=self.peer,
            n=len(self.multi or ()),
            mem=self.multi_mem,
        )
        self.multi = []
        self.multi_mem = 0
        self.multi_failed = True
        out.append(MULTI_TOO_BIG)

    def info_line(self) -> str:
        """CLIENT LIST/INFO: Redis 7's fields (memory ones are kv's own counts)."""
        now = self.server.clock()
        flags = ""
        if self.monitor:
            flags += "O"
        if self.subscribed:
            flags += "P"
        if self.multi is not None:
            flags += "x"
        if self.close_after_reply:
            flags += "c"
        if self.blocked is not None:
            flags += "b"
        name = (self.name or b"").decode("latin-1")
        lib = self.lib
        fd = getattr(self.transport, "fileno", None)
        try:
            fd = fd() if fd is not None else -1
        except Exception:  # a closed or fake transport has none
            fd = -1
        return (
            f"id={self.id} addr={self.peer} laddr={self.laddr} fd={fd} name={name} "
            f"age={int(now - self.created)} idle={int(now - self.last)} flags={flags or 'N'} "
            f"db={self.db} sub={len(self.channels)} psub={len(self.patterns)} ssub={len(self.shards)} "
            f"multi={len(self.multi) if self.multi is not None else -1} "
            f"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem={self.multi_mem if self.multi else 0} "
            f"rbs=16384 rbp=0 "
            f"obl=0 oll={len(self.queue)} omem={self.queued} tot-mem={self.queued} "
            f"events={'r' if not self.queue else 'rw'} "
            f"cmd={self.last_cmd.fullname if self.last_cmd else 'NULL'} user={self.user.name} "
            f"redir=-1 resp={self.resp} "
            f"lib-name={lib.get(b'lib-name', b'').decode('latin-1')} "
            f"lib-ver={lib.get(b'lib-ver', b'').decode('latin-1')}"
        )


# -- the lean path ------------------------------------------------------------------
#
# GET and SET are most of what clients send. For a client in no special state
# (KVProtocol.plain: authenticated, no ACL rules, not in MULTI, not subscribed, no
# MONITOR or CLIENT PAUSE on; and CLIENT REPLY on), and while nothing watches the
# writes (no keyspace notifications, no WATCH or blocked client on the database, no
# append-only file that cannot be written), they run here in one call instead of
# execute's checks, the handler and the store's methods. Each answers False, having
# changed nothing, for whatever it does not cover (another arity, a key with a TTL,
# a wrong type, a big value, an AOF in another database, a SET over a container or a
# "raw" string: Store.set frees the one lazily and forgets the other); execute then
# runs it.
# Everything a user sees stays as execute leaves it: the reply, the keyspace and
# its dirty count, the AOF record, CLIENT LIST's cmd=, total_commands (run counts).


def _lean_get(c: KVProtocol, argv: list[bytes], out: list[bytes]) -> bool:
    store = c.store
    if len(argv) != 2 or c.server.notify_flags or argv[1] in store.expires:
        return False  # (a key with a TTL may have to expire first: a DEL, a notification)
    v = store.data.get(argv[1])
    if v is None:
        out.append(b"$-1\r\n" if c.resp == 2 else b"_\r\n")
    elif type(v) is bytes and len(v) < BIG_REPLY:
        out.append(b"$%d\r\n%s\r\n" % (len(v), v))
    else:
        return False
    c.last_cmd = GET
    return True


def _lean_set(c: KVProtocol, argv: list[bytes], out: list[bytes]) -> bool:
    store = c.store
    server = c.server
    if len(argv) != 3 or server.notify_flags or store.watched or store.blocking:
        return False
    if store.boxed or store.raw:  # the value replaced may be a container, or "raw"
        old = store.data.get(argv[1])
        if old is not None and (type(old) is not bytes or argv[1] in store.raw):
            return False  # (Store.set frees a container lazily, forgets "raw")
    aof = server.aof
    if aof is not None:
        if not aof.ok or aof.db != store.id:
            return False
        name, key, value = argv
        if len(value) >= BIG_REPLY:
            return False  # (AOF.feed writes a big value as it is, not copied into a record)
        aof.buf.append(
            b"*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
            % (len(name), name, len(key), key, len(value), value)
        )
        if aof.tracker is not None:  # (a compaction without fork: snapshot.py)
            aof.tracker.touched(store.id, (key,))
    table = store.data
    table[argv[1]] = argv[2]
    if len(table) > SHARD_AT and type(table) is dict:
        store.grow()  # (past SHARD_AT keys: sharded, see sharded.py)
    if store.expires:
        store.expires.pop(argv[1], None)
    store.dirty += 1
    c.last_cmd = SET
    out.append(b"+OK\r\n")
    return True


GET = COMMANDS[b"get"]
SET = COMMANDS[b"set"]
LEAN: dict[bytes, Any] = {}
for _name, _lean in ((b"get", _lean_get), (b"set", _lean_set)):
    LEAN[_name] = LEAN[_name.upper()] = _lean
NO_LEAN: dict[bytes, Any] = {}


# -- the batch path -----------------------------------------------------------------
#
# A read that holds only GETs, or only SETs, each canonical (what redis-benchmark
# sends, -P 1 and -P 16, and most clients' pipelines), from a client that would take
# the lean path (KVProtocol.lean; nothing pending, queued or paused; no keyspace
# notifications): run without building an argv per command, from the columns of the
# split read (resp.split_alike): the values looked up by one map, the replies joined
# once, a SET batch's AOF records the read itself (canonical requests are their own
# records, as _lean_set writes them). Each answers None, having changed nothing, for
# whatever it does not cover (what the lean path leaves to execute, and replies over
# FLUSH_SIZE, which run writes before it checks whether the client reads); the parser
# and KVProtocol.run then take the read. What a user sees is what run leaves. A read
# is at most BATCH_MAX bytes: about 2,000 SETs or 3,000 GETs, a few ms at most.


def _batch_get(c: KVProtocol, parts: list[bytes], data: bytes) -> bytes | None:
    store = c.store
    expires = store.expires
    if len(parts) == 6:  # one GET
        key = parts[4]
        if expires and key in expires:
            return None
        v = store.data.get(key)
        if v is None:
            return b"$-1\r\n" if c.resp == 2 else b"_\r\n"
        if type(v) is not bytes or len(v) > FLUSH_SIZE:
            return None
        try:
            return b"%s\r\n%s\r\n" % (BULK_HEADS[len(v)], v)
        except IndexError:  # 1 KiB or more
            return b"$%d\r\n%s\r\n" % (len(v), v)
    keys = parts[4::5]
    if expires and not expires.keys().isdisjoint(keys):
        return None  # (a key with a TTL may have to expire first)
    values = list(map(store.data.get, keys))
    if store.boxed and not {bytes, type(None)}.issuperset(map(type, values)):
        return None  # a container: WRONGTYPE
    if sum(map(len, filter(None, values))) > FLUSH_SIZE:
        return None  # (not built to be dropped: 2,000 GETs of 1 MiB would be 2 GiB)
    reply = encode_bulks(values, b"$-1\r\n" if c.resp == 2 else b"_\r\n")
    return reply if len(reply) <= FLUSH_SIZE else None  # (run() checks the output between)


def _batch_set(c: KVProtocol, parts: list[bytes], data: bytes) -> bytes | None:
    store = c.store
    server = c.server
    if store.watched or store.blocking:
        return None
    aof = server.aof
    if aof is not None and (not aof.ok or aof.db != store.id):
        return None
    if len(parts) == 8:  # one SET
        key = parts[4]
        if store.boxed or store.raw:  # the value replaced may be a container, or "raw"
            old = store.data.get(key)
            if old is not None and (type(old) is not bytes or key in store.raw):
                return None  # (Store.set frees a container lazily, forgets "raw")
        if aof is not None:
            aof.buf.append(data)  # (canonical requests: their own records)
            if aof.tracker is not None:
                aof.tracker.touched(store.id, (key,))
        table = store.data
        table[key] = parts[6]
        if len(table) > SHARD_AT and type(table) is dict:
            store.grow()
        if store.expires:
            store.expires.pop(key, None)
        store.dirty += 1
        return b"+OK\r\n"
    keys = parts[4::7]
    if store.raw and not store.raw.isdisjoint(keys):
        return None
    if store.boxed and not {bytes, type(None)}.issuperset(map(type, map(store.data.get, keys))):
        return None
    if aof is not None:
        aof.buf.append(data)
        if aof.tracker is not None:
            aof.tracker.touched(store.id, keys)
    table = store.data
    table.update(zip(keys, parts[6::7], strict=True))  # (a read: 2,400 keys at most)
    if len(table) > SHARD_AT and type(table) is dict:
        store.grow()
    expires = store.expires
    if expires:
        for key in keys:
            expires.pop(key, None)
    store.dirty += len(keys)
    return b"+OK\r\n" * len(keys)


BATCH_MAX = 64 * 1024  # a read longer than this is left to the parser
# the first 13 bytes of a read -> (lines per request, how the batch runs, its command)
BATCH: dict[bytes, tuple[int, Any, Any]] = {}
for _name, _argc, _batch in ((b"GET", 2, _batch_get), (b"SET", 3, _batch_set)):
    for _spelling in (_name, _name.lower()):
        BATCH[b"*%d\r\n$3\r\n%s\r\n" % (_argc, _spelling)] = (
            2 * _argc + 1,
            _batch,
            COMMANDS[_name.lower()],
        )


def _clip(b: bytes, n: int) -> bytes:
    nul = b.find(b"\0")
    if nul >= 0:
        b = b[:nul]
    return _clean(b[:n])


def _clean(b: bytes) -> bytes:
    return b.replace(b"\r", b" ").replace(b"\n", b" ")


def _unknown(argv: list[bytes]) -> bytes:
    """Redis's text: the name and the first arguments, 128 bytes at most."""
    args = b""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'%s' " % _clip(a, 128 - len(args))
    return b"-ERR unknown command '%s', with args beginning with: %s\r\n" % (
        _clip(argv[0], 128),
        _clean(args),
    )
