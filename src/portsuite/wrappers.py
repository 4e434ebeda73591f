"""
The one connection wrapper every service gets, plugins included: counters, the list
of connected clients, limits (max_connections, max_per_host, idle_timeout), the
open/close log lines, and a guard that closes only the connection whose protocol
raised.

Built on Twisted's own L{twisted.protocols.policies.WrappingFactory}. Twisted's
C{LimitConnectionsByPeer} is not reused: it indexes C{addr[0]} on an attrs address
and so fails on every connection.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer, providedBy

from portsuite import faults, internals
from portsuite.api import ClientInfo, ServiceStats
from portsuite.api.peers import RefusingProtocol, format_peer, peer_host

log = Logger(namespace="portsuite")


@implementer(IHalfCloseableProtocol)
class ServiceProtocol(ProtocolWrapper, TimeoutMixin):
    """
    Counts bytes, keeps the client's entry, enforces idle_timeout (a L{TimeoutMixin}
    timer on the suite's clock, reset by traffic either way), guards errors.

    A client that sends and then half-closes (C{printf 'hi\\n' | nc -N host 7}) still
    gets its answer: on end of input the wrapped protocol is told if it handles
    half-close, otherwise the connection is closed only after the replies are sent.
    """

    factory: ServiceFactory
    transport: Any
    wrappedProtocol: Any
    _fault: Any = None  # a portsuite.faults.Session while the service has faults
    # built by the first send_some() / send_file() (http's big bodies), not per connection
    _sender: Any = None
    _file_sender: Any = None
    writes_views = False
    sends_some = False  # send_some() is available
    sends_files = False  # send_file() is available
    host: str | None = None  # the peer's host, as counted for max_per_host

    def __init__(self, factory: ServiceFactory, wrappedProtocol: Any, client: ClientInfo):
        ProtocolWrapper.__init__(self, factory, wrappedProtocol)
        self.client = client
        self.stats = factory.stats

    def makeConnection(self, transport: Any) -> None:
        factory = self.factory
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        # bound once: these two calls are on every chunk each way
        self._deliver = self.wrappedProtocol.dataReceived
        # write() (and writeSequence) count the bytes through this function
        self._send = internals.writer(transport, self.client)
        internals.widen_reads(transport)  # a stream: a quarter of the reads and sends
        # write() takes a memoryview too (a slice of a cached http body, no copy)
        self.writes_views = internals.takes_views(self._send, transport)
        # the functions behind send_some and send_file are built on first use: an idle
        # connection holds no closures for them (about 0.8 KiB a connection)
        self.sends_some = internals.sends_some(transport)
        self.sends_files = internals.sends_files(transport)
        if factory.faults is not None:
            self._fault = faults.attach(self, factory.faults, factory.reactor)
            # faults may hold and cut what is written: bytes, through write() only
            self.writes_views = self.sends_some = self.sends_files = False
        factory.registerProtocol(self)
        if factory.idle_timeout:
            self.setTimeout(factory.idle_timeout)
        elif self._fault is None and type(self).write is ServiceProtocol.write:
            # no timer to reset, no fault, no subclass (transcripts): the protocol's
            # write() is the counting send itself, one call a reply fewer
            self.write = self._send  # type: ignore[method-assign,assignment]
            if type(self).dataReceived is ServiceProtocol.dataReceived:
                # and each read goes through a _Received (see there)
                self.dataReceived = _Received(self).received  # type: ignore[method-assign]
        factory.openings.opened(self.client)  # (at most 100 lines a second)
        try:
            self.wrappedProtocol.makeConnection(self)
        except Exception:
            self._crashed(Failure(), "connectionMade")

    def callLater(self, period: float, func: Any) -> Any:  # TimeoutMixin's clock
        return self.factory.reactor.callLater(period, func)

    def timeoutConnection(self) -> None:
        log.info(
            "{service}: {peer} idle for {timeout}s, closing",
            service=self.stats.name,
            peer=self.client.peer,
            timeout=self.factory.idle_timeout,
        )
        self.transport.loseConnection()

    def _crashed(self, failure: Failure, where: str) -> None:
        self.stats.errors += 1
        log.failure(
            "{service}: protocol error in {where} for {peer}; closing this connection only",
            failure,
            service=self.stats.name,
            where=where,
            peer=self.client.peer,
        )
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        self.client.bytes_in += len(data)
        if self.timeOut is not None:
            self.resetTimeout()
        try:
            self._deliver(data)
        except Exception:
            self._crashed(Failure(), "dataReceived")

    def write(self, data: bytes) -> None:
        if self.timeOut is not None:
            self.resetTimeout()
        self._send(data)  # counts it

    def read_at_most(self, size: int) -> None:
        """
        Read at most C{size} bytes at a time from this connection (else up to 256 KiB on
        plain TCP): for a protocol that parses a whole read before the reactor moves on.
        """
        internals.read_size(self.transport, size)

    def send_some(self, data: Any) -> int:
        """
        Send what the socket takes of C{data} (bytes or memoryview) now, queue
        nothing, and return how many bytes went: when fewer than all, the
        registered streaming producer is paused and resumed once the socket drains
        (see L{portsuite.internals.sender}). Only when L{sends_some} is true.
        """
        sender = self._sender
        if sender is None:
            sender = self._sender = internals.sender(self.transport)
            assert sender is not None
        n = sender(data)
        if n:
            self.client.bytes_out += n
            if self.timeOut is not None:
                self.resetTimeout()
        return n

    def send_file(self, fd: int, offset: int, count: int) -> int:
        """
        Send up to C{count} bytes of file C{fd} from C{offset} with C{os.sendfile},
        queue nothing, return how many went (fewer: the producer is paused until
        the socket drains; see L{portsuite.internals.file_sender}). Only when
        L{sends_files} is true.
        """
        send = self._file_sender
        if send is None:
            send = self._file_sender = internals.file_sender(self.transport)
            assert send is not None
        n = send(fd, offset, count)
        if n:
            self.client.bytes_out += n
            if self.timeOut is not None:
                self.resetTimeout()
        return n

    def writeSequence(self, data: Any) -> None:
        # one buffer through the same write path as write(): an http response (head and
        # body) leaves at once when nothing is queued, not at the next writable event
        if self.timeOut is not None:
            self.resetTimeout()
        self._send(b"".join(data))  # counts it

    def loseConnection(self) -> None:
        self.disconnecting = 1
        if self._fault is not None:
            self._fault.close()
        else:
            self.transport.loseConnection()

    def readConnectionLost(self) -> None:
        if self._fault is not None and self._fault.hold_eof(self._readConnectionLost):
            return
        self._readConnectionLost()

    def _readConnectionLost(self) -> None:
        wrapped = self.wrappedProtocol
        if IHalfCloseableProtocol.providedBy(wrapped):
            try:
                wrapped.readConnectionLost()
            except Exception:
                self._crashed(Failure(), "readConnectionLost")
        elif self._fault is not None:
            self.loseConnection()
        else:
            self.factory.eof_closes.close(self)

    def close_after_eof(self) -> None:
        """The peer closed its side: close now, or after what is queued (L{EOFCloses})."""
        if not internals.close_at_eof(self.transport):
            self.loseConnection()  # (after what is queued: close_at_eof found some)

    def writeConnectionLost(self) -> None:
        wrapped = self.wrappedProtocol
        if IHalfCloseableProtocol.providedBy(wrapped):
            wrapped.writeConnectionLost()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._fault is not None:
            self._fault.stop()
        self.setTimeout(None)
        client = self.client
        try:
            ProtocolWrapper.connectionLost(self, reason)
        except Exception:
            self.stats.errors += 1
            log.failure(
                "{service}: protocol error in connectionLost for {peer}",
                service=self.stats.name,
                peer=client.peer,
            )
        # the last reference cycle of a connection (this wrapper -> the protocol's bound
        # dataReceived -> the protocol -> its transport, this wrapper; Twisted breaks the
        # others): broken, a closed connection is freed at once, in the turn that tears
        # it down, instead of by the collector's next pass over the oldest generation
        # (3,000 peers closing together: one pass of 27-35 ms), and is not kept forever
        # when it was frozen while open (portsuite.gcpause)
        self._deliver = _closed
        vars(self).pop("dataReceived", None)  # (a _Received's method: it holds this wrapper)
        self.factory.closings.closed(client)


def _closed(data: bytes) -> None:
    """What a closed connection delivers (nothing: Twisted reads no more)."""


class _Received:
    """
    L{ServiceProtocol.dataReceived} of a connection with no timer to reset and no
    fault: a slotted object's bound method. Each attribute the wrapper's own method
    reads on the wrapper is a slow lookup (Twisted's C{ProtocolWrapper} has a
    C{__getattr__}, which CPython does not specialize), three a read: at
    C{redis-benchmark -P 1} a read is a request.
    """

    __slots__ = ("client", "deliver", "wrapper")

    def __init__(self, wrapper: ServiceProtocol) -> None:
        self.client = wrapper.client
        self.deliver = wrapper._deliver
        self.wrapper = wrapper

    def received(self, data: bytes) -> None:
        self.client.bytes_in += len(data)
        try:
            self.deliver(data)
        except Exception:
            self.wrapper._crashed(Failure(), "dataReceived")


class EOFCloses:
    """
    Connections whose peer closed its side (EOF), closed L{PIECE} a turn of the
    reactor: the first ones of a turn at once, as before, the rest in the next turns
    (other connections and services are served in between). 3,000 peers closing
    together came in one poll and were torn down in one turn (Twisted's teardown and
    the protocols' C{connectionLost}, tens of microseconds each); what is left in that
    turn is reading each EOF.
    """

    PIECE = 64  # connections closed a turn

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.queue: deque[ServiceProtocol] = deque()
        self.done = 0  # closed this turn
        self.call: Any = None

    def close(self, p: ServiceProtocol) -> None:
        if self.done < self.PIECE and not self.queue:
            self.done += 1
            p.close_after_eof()
        else:
            self.queue.append(p)
        if self.call is None:
            self.call = self.reactor.callLater(0, self._turn)

    def _turn(self) -> None:
        """A new turn: its first L{PIECE} closes (the queued ones first)."""
        self.call = None
        queue = self.queue
        self.done = min(self.PIECE, len(queue))
        for _ in range(self.done):
            queue.popleft().close_after_eof()
        if self.done:  # (more may come in this turn: counted, then reset in the next)
            self.call = self.reactor.callLater(0, self._turn)


class _Lines:
    """
    One kind of per-connection line of one service, up to L{LINES} a second; past them,
    the rest of that second are counted and said in one line when it ends (L{_count}).
    Each line is formatted by Twisted's logger on the reactor thread (string.Formatter,
    the timestamp, the write), so thousands of peers connecting or closing together held
    every service for their lines; a busy service's log keeps the first lines of each
    second in full, and the count of the others.
    """

    LINES = 100  # full lines a second, per service
    WINDOW = 1.0  # seconds

    def __init__(self, stats: ServiceStats, reactor: Any):
        self.stats = stats
        self.reactor = reactor
        self.until = float("-inf")  # when the current second ends
        self.lines = 0  # full lines said in it
        self.more = 0  # counted past them
        self.now = 0.0  # (the time of the last one)
        self.call: Any = None

    def _in_full(self) -> bool:
        """Is this one said in full? (Else it is counted.)"""
        self.now = now = self.reactor.seconds()
        if now >= self.until:
            self.until = now + self.WINDOW
            self.lines = 0
        if self.lines < self.LINES:
            self.lines += 1
            return True
        self.more += 1
        if self.call is None:
            self.call = self.reactor.callLater(self.until - now, self.flush)
        return False

    def flush(self) -> None:
        """The second is over: the ones past its L{LINES}, in one line."""
        self.call = None
        if not self.more:
            return
        self._count()
        self.more = 0

    def _count(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """The service stops: what was counted so far is said now."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.flush()


class Openings(_Lines):
    """
    The "connected" lines of one service (L{_Lines}): 3,000 peers connecting together
    had 3,000 lines formatted in the turns that accepted them.
    """

    def opened(self, client: ClientInfo) -> None:
        if self._in_full():
            log.info(
                "{service}: {peer} connected ({open} open)",
                service=self.stats.name,
                peer=client.peer,
                open=self.stats.open,
            )

    def _count(self) -> None:
        log.info(
            "{service}: {count} more clients connected in {window:.0f}s (over {lines} a "
            "second, counted here); {open} open",
            service=self.stats.name,
            count=self.more,
            window=self.WINDOW,
            lines=self.LINES,
            open=self.stats.open,
        )


class Closings(_Lines):
    """
    The "closed" lines of one service (L{_Lines}), the traffic of those counted added
    up: formatting them was about half of what a close cost the suite.
    """

    def __init__(self, stats: ServiceStats, reactor: Any):
        super().__init__(stats, reactor)
        self.bytes_in = 0
        self.bytes_out = 0

    def closed(self, client: ClientInfo) -> None:
        if self._in_full():
            log.info(
                "{service}: {peer} closed after {duration:.3f}s, {bytes_in} B in, "
                "{bytes_out} B out",
                service=self.stats.name,
                peer=client.peer,
                duration=self.now - client.since,
                bytes_in=client.bytes_in,
                bytes_out=client.bytes_out,
            )
            return
        self.bytes_in += client.bytes_in
        self.bytes_out += client.bytes_out

    def _count(self) -> None:
        log.info(
            "{service}: {count} more clients closed in {window:.0f}s (over {lines} a "
            "second, counted here), {bytes_in} B in, {bytes_out} B out; {open} open",
            service=self.stats.name,
            count=self.more,
            window=self.WINDOW,
            lines=self.LINES,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            open=self.stats.open,
        )
        self.bytes_in = self.bytes_out = 0


class ServiceFactory(WrappingFactory[ServiceProtocol]):
    """
    Wraps a service type's factory: every protocol it builds goes through
    L{ServiceProtocol}, and the limits are checked before it is built.
    """

    protocol = ServiceProtocol
    noisy = False

    def __init__(
        self,
        wrappedFactory: Any,
        stats: ServiceStats,
        reactor: Any,
        *,
        max_connections: int | None = None,
        max_per_host: int | None = None,
        idle_timeout: float | None = None,
        refusal: Any = None,
        protocol_class: type[ServiceProtocol] | None = None,
        gate: Any = None,
    ):
        super().__init__(wrappedFactory)
        # with workers = N: max_connections and max_per_host counted across the
        # service's processes
        # (a portsuite.workers.SharedCount), else by this factory alone
        self.gate = gate
        wrappedFactory.noisy = False
        self.stats = stats
        self.reactor = reactor
        self.max_connections = max_connections
        self.max_per_host = max_per_host
        self.idle_timeout = idle_timeout
        self.refusal = refusal
        # portsuite.faults.Faults for the next connections (config, or portsuite fault)
        self.faults: Any = None
        self.per_host: dict[str, int] = {}
        self.openings = Openings(stats, reactor)  # the "connected" lines (100 a second)
        self.closings = Closings(stats, reactor)  # the "closed" lines (at most 100 a second)
        self.eof_closes = EOFCloses(reactor)  # peers that closed: at most 64 closes a turn
        if protocol_class is not None:
            self.protocol = protocol_class

    def logPrefix(self) -> str:
        return self.stats.name

    def stopFactory(self) -> None:
        self.openings.stop()
        self.closings.stop()
        super().stopFactory()

    def _refuse(self, addr: Any, reason: str) -> Protocol:
        self.stats.refused += 1
        log.warn(
            "{service}: refused {peer}: {reason}",
            service=self.stats.name,
            peer=format_peer(addr),
            reason=reason,
        )
        message = self.refusal(reason) if self.refusal is not None else None
        p = RefusingProtocol(message)
        p.factory = self
        return p

    def buildProtocol(self, addr: Any) -> Any:
        stats = self.stats
        gate = self.gate
        limit = self.max_connections
        host = peer_host(addr)
        if gate is not None:  # counted over all the workers of the service
            refused = gate.take(host)
        elif limit is not None and stats.open >= limit:
            refused = "total"
        elif self.max_per_host is not None and self.per_host.get(host, 0) >= self.max_per_host:
            refused = "host"
        else:
            refused = None
        if refused == "total":
            return self._refuse(addr, f"too many connections (max_connections = {limit})")
        if refused == "host":
            return self._refuse(
                addr, f"too many connections from {host} (max_per_host = {self.max_per_host})"
            )
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            if gate is not None:
                gate.give(host)
            return None
        client = ClientInfo(peer=format_peer(addr), since=self.reactor.seconds())
        return self.protocol(self, inner, client)

    def registerProtocol(self, p: Any) -> None:
        stats = self.stats
        stats.open += 1
        stats.total += 1
        stats.clients[id(p)] = p.client
        p.host = host = peer_host(p.getPeer())  # (kept: its close needs it again)
        self.per_host[host] = self.per_host.get(host, 0) + 1
        self.protocols[p] = 1

    def unregisterProtocol(self, p: Any) -> None:
        stats = self.stats
        if stats.client_closed(id(p)) is None:
            return
        stats.open -= 1
        host = p.host if p.host is not None else peer_host(p.getPeer())
        if self.gate is not None:
            self.gate.give(host)
        left = self.per_host.get(host, 1) - 1
        if left:
            self.per_host[host] = left
        else:
            self.per_host.pop(host, None)
        self.protocols.pop(p, None)


class DatagramWrapper(DatagramProtocol):
    """
    Counts datagrams of a UDP service and stands as the transport of the wrapped
    C{DatagramProtocol}, so that its replies pass through L{allowReply} (where the
    UDP guards of L{portsuite.udp} sit).
    """

    noisy = False
    transport: Any
    wrapped: Any
    faults: Any = None  # portsuite.faults.Faults: drop

    def __init__(self, wrapped: DatagramProtocol, stats: ServiceStats):
        wrapped.noisy = False
        self.wrapped = wrapped
        self.stats = stats

    def startProtocol(self) -> None:
        self.wrapped.makeConnection(self)

    def stopProtocol(self) -> None:
        self.wrapped.doStop()

    def allowRequest(self, data: bytes, addr: Any) -> bool:
        """Whether to hand this datagram to the service at all."""
        return True

    def allowReply(self, data: bytes, addr: Any) -> bool:
        """Whether to send this reply."""
        return True

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.stats.datagrams_in += 1
        self.stats.closed_bytes_in += len(data)
        if not self.allowRequest(data, addr) or not faults.datagram_passes(self.faults):
            self.stats.dropped += 1
            return
        try:
            self.wrapped.datagramReceived(data, addr)
        except Exception:
            self.stats.errors += 1
            log.failure(
                "{service}: protocol error for datagram from {peer}",
                service=self.stats.name,
                peer=format_peer(addr),
            )

    # the wrapped protocol's transport
    def write(self, data: bytes, addr: Any = None) -> None:
        if not self.allowReply(data, addr):
            self.stats.dropped += 1
            return
        self.stats.datagrams_out += 1
        self.stats.closed_bytes_out += len(data)
        self.transport.write(data, addr)

    def getHost(self) -> Any:
        return self.transport.getHost()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
