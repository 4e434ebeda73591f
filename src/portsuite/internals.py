"""
The one module that uses Twisted's private API: measured speed-ups (L{writer},
L{widen_reads}, L{read_size}, L{install_reactor}) and one TLS fallback (L{tls_context}).

Twisted buffers every C{write()} until the reactor's next writable event. When
nothing is queued for a plain TCP connection, the bytes can leave at once instead:
one trip through the event loop and two C{epoll_ctl} calls less per reply (kv at
C{redis-benchmark -P 1}: about 1.3x the requests per second). Only for replies up to
L{IMMEDIATE_MAX} bytes (one read's worth, L{READ_SIZE}): a bigger one would mostly be
left over after one C{send}, and keeping the rest would copy it (1 MiB http bodies under wrk -c 50: 2.2-2.4x the server
CPU per request of the tree before the fast path), so it is queued whole, as Twisted does.

L{writer} gives the wrapper a write function for a transport: the immediate one for
a C{twisted.internet.tcp.Connection} whose private fields are the ones this module
knows (L{PRIVATE_FIELDS}), else the transport's public C{write}: TLS, unix sockets,
another reactor, or a Twisted whose internals changed all take the public path.
C{tests/core/test_internals.py} fails loudly when a Twisted upgrade changes them.

L{install_reactor} installs, when nothing has chosen a reactor yet, Twisted's epoll
reactor without its per-event log context: Twisted runs every C{doRead} and
C{doWrite} through C{log.callWithLogger}, which copies two dicts and pushes a context
so that old-style C{log.msg} lines carry the connection's prefix; that was 2-3 us of
the 9 us of server CPU an echo round trip took (50 clients). Its C{call_after_poll(f)}
runs C{f} once the events of the current poll are handled (Redis's C{beforeSleep}):
kv writes its append-only file there once for every client of the poll. It also tears
down at most L{TEARDOWNS} lost connections a turn (the rest are taken out of the poll at
once and torn down in the next turns), and its TCP ports (L{CappedPort}) accept at most
L{ACCEPTS} connections a turn: 3,000 peers resetting or connecting together held every
service for the turn that read them. Another reactor does as Twisted does.

L{tls_context} is L{portsuite.tls}'s fallback for a pyOpenSSL that has already frozen
the context C{CertificateOptions.getContext()} returns (marked it used) before
portsuite can set its ALPN callback: it builds one through
C{CertificateOptions._makeContext(skipCiphers=True)} and sets the cipher list
(C{_cipherString}) last. Where those are missing it answers
None and L{portsuite.tls} keeps Twisted's own context.
"""

from __future__ import annotations

import errno
import os
import select
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet import error, main, tcp
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.python import log
from twisted.python.failure import Failure

# what the immediate path reads or calls on a tcp.Connection
PRIVATE_FIELDS = (
    "_tempDataLen",
    "offset",
    "dataBuffer",
    "disconnecting",
    "producerPaused",
    "socket",
    "producer",
    "streamingProducer",
    "TLS",
    "bufferSize",
)

# How much one read takes (C{FileDescriptor.bufferSize}; Twisted's default is 64 KiB,
# asyncio reads 256 KiB). On a stream (bench/echo.py, 8 clients) the bigger read needs a
# quarter of the recv and send calls per MiB, and the client gets bigger pieces back:
# 0.6 ms of server CPU per MiB instead of 1.16 (128 KiB: 0.76). A client that never
# reads holds no more for it: L{writer} pauses the streaming producer as soon as the
# socket is full, so what waits in Twisted's buffer is at most one read's rest.
READ_SIZE = 262144

# the largest write sent at once (one read's worth); bigger ones are queued whole
IMMEDIATE_MAX = READ_SIZE


def supported(transport: Any) -> bool:
    """Is C{transport} a TCP connection whose internals are the ones we know?"""
    return isinstance(transport, tcp.Connection) and all(
        hasattr(transport, f) for f in PRIVATE_FIELDS
    )


def widen_reads(transport: Any) -> None:
    """Let C{transport} read up to L{READ_SIZE} bytes at a time, where supported."""
    read_size(transport, READ_SIZE)


def read_size(transport: Any, size: int) -> None:
    """Let C{transport} read up to C{size} bytes at a time, where supported."""
    if supported(transport):
        transport.bufferSize = size


class _Count:
    __slots__ = ("bytes_out",)

    def __init__(self) -> None:
        self.bytes_out = 0


def writer(transport: Any, counter: Any = None) -> Callable[[bytes], None]:
    """
    C{transport.write}, sending at once when nothing is queued (where supported).
    Where supported, the function also takes a C{memoryview} (a slice of a cached
    body, sent without a copy when the socket takes it all): see L{takes_views}.
    With a C{counter} (the wrapper's C{ClientInfo}), the function also adds what it
    is given to C{counter.bytes_out}: the wrapper's whole C{write()} in one call.
    """
    public = transport.write
    if not supported(transport):
        if counter is None:
            return public

        def counted(data: bytes) -> None:
            counter.bytes_out += len(data)
            public(data)

        return counted
    return _Writer(transport, _Count() if counter is None else counter).write


class _Writer:
    """
    L{writer}'s immediate write for one connection. A slotted object and its bound
    C{write} (not a closure over four cells): every connection holds one, idle ones
    too, and this is about a third of the closure's size.
    """

    __slots__ = ("raw", "count")

    def __init__(self, raw: Any, count: Any) -> None:
        self.raw = raw
        self.count = count

    def write(self, data: bytes) -> None:
        raw = self.raw
        self.count.bytes_out += len(data)
        if (
            not raw._tempDataLen
            # nothing partly sent: doWrite empties dataBuffer once all of it went
            and not raw.dataBuffer
            and len(data) <= IMMEDIATE_MAX
            and not raw.disconnecting
            and not raw.producerPaused
            # after startTLS (SMTP STARTTLS, POP3 STLS) bytes must go through TLS
            and not raw.TLS
            # a pull producer (FileSender) is asked for more only by doWrite: queue
            and (raw.producer is None or raw.streamingProducer)
        ):
            try:
                # the socket's own send (looked up per call: no bound method held per
                # connection): Twisted's writeSomeData adds a memoryview, a slice and an
                # EINTR loop around it, on every reply
                n = raw.socket.send(data)
            except OSError:
                # EAGAIN or EINTR: queue it all; a broken connection: queue it too, and
                # Twisted's next write attempt finds the error and closes it as usual
                n = 0
            if n == len(data):
                return
            raw.write(bytes(data[n:]))
            # The socket is full: a streaming producer (echo's reading) stops now, as
            # asyncio's transports do, not once Twisted's buffer holds more than
            # bufferSize, which a client that never reads would make us hold.
            producer = raw.producer
            if producer is not None and not raw.producerPaused:
                raw.producerPaused = True
                producer.pauseProducing()
            return
        if type(data) is not bytes:
            data = bytes(data)  # a memoryview: Twisted's buffer takes bytes only
        raw.write(data)


def close_at_eof(transport: Any) -> bool:
    """
    The peer closed its side and the protocol does not half-close: close now when
    nothing is left to send (and no pull producer or paused streaming producer waits
    to), as C{loseConnection} does for a transport whose write side is already shut,
    instead of C{loseConnection}'s way, which asks the reactor for a writable event
    to find an empty buffer (two C{epoll_ctl} calls and a turn of the loop more per
    close; 3,000 peers closing together paid it 3,000 times in one turn). The same
    C{ConnectionDone}, the same orderly close (FIN). Answers whether it closed: False
    where not supported (TLS, another transport or Twisted) or something waits, and
    the caller uses C{loseConnection}.
    """
    raw = transport
    if (
        not supported(raw)
        or raw.TLS
        or not raw.connected
        or raw.disconnecting
        or raw._tempDataLen
        or raw.offset != len(raw.dataBuffer)
        or (raw.producer is not None and (not raw.streamingProducer or raw.producerPaused))
    ):
        return False
    raw.stopReading()
    raw.stopWriting()
    raw.connectionLost(Failure(main.CONNECTION_DONE))
    return True


def sends_some(transport: Any) -> bool:
    """Does L{sender}C{(transport)} give a function (not None)?"""
    return supported(transport)


def sender(transport: Any) -> Callable[[Any], int] | None:
    """
    For a big body held in memory: a function that sends what the socket takes of
    C{data} (bytes or a memoryview) at once, without queuing the rest, and returns
    how many bytes it took. When it took less than all, the connection's streaming
    producer has been paused and Twisted resumes it once the socket is writable
    again (as it does for a producer it paused itself): the caller keeps the rest
    (no copy in Twisted's buffer, so a client that stops reading holds nothing).
    None where not supported (TLS, another transport or Twisted: use C{write}).
    """
    if not sends_some(transport):
        return None
    raw = transport
    write_some = raw.writeSomeData
    public = transport.write
    limit = getattr(raw, "SEND_LIMIT", 131072)

    def send(data: Any) -> int:
        size = len(data)
        sent = 0
        if (
            not raw._tempDataLen
            and raw.offset == len(raw.dataBuffer)
            and not raw.disconnecting
            and not raw.TLS
        ):
            while sent < size:
                n = write_some(data[sent:] if sent else data)
                if type(n) is not int or n <= 0:
                    break  # full, or an error the reactor's next write reports
                sent += n
                if n < min(limit, size - sent + n):
                    break  # the socket took less than offered: it is full
        if sent < size:
            producer = raw.producer
            if producer is None or not raw.streamingProducer:
                # nobody to resume: queue the rest the usual way
                public(bytes(data[sent:]))
                return size
            if not raw.producerPaused:
                raw.producerPaused = True
                producer.pauseProducing()
            raw.startWriting()
        return sent

    return send


def sends_files(transport: Any) -> bool:
    """Does L{file_sender}C{(transport)} give a function (not None)?"""
    return (
        supported(transport)
        and hasattr(os, "sendfile")
        and getattr(transport, "socket", None) is not None
    )


def file_sender(transport: Any) -> Callable[[int, int, int], int] | None:
    """
    For a file: a function C{send(fd, offset, count)} that hands up to C{count}
    bytes of file C{fd} from C{offset} to the socket with C{os.sendfile} (no copy
    through Python, no buffer) when nothing is queued, and returns how many bytes
    went; when fewer than C{count}, the streaming producer is paused and resumed
    once the socket drains, as with L{sender}. Raises C{EOFError} when the file
    ends before C{offset + count}. None where not supported (TLS, no sendfile).
    """
    if not sends_files(transport):
        return None
    raw = transport
    out = raw.socket.fileno()

    def send(fd: int, offset: int, count: int) -> int:
        sent = 0
        if (
            not raw._tempDataLen
            and raw.offset == len(raw.dataBuffer)
            and not raw.disconnecting
            and not raw.TLS
            and raw.connected
        ):
            while sent < count:
                try:
                    n = os.sendfile(out, fd, offset + sent, count - sent)
                except BlockingIOError:
                    break
                except OSError:
                    break  # the reactor's next write on this socket reports it
                if n == 0:
                    raise EOFError(f"the file ended at {offset + sent}")
                sent += n
        if sent < count:
            if raw.producer is None or not raw.streamingProducer:
                raise OSError("no streaming producer to resume")
            if not raw.producerPaused:
                raw.producerPaused = True
                raw.producer.pauseProducing()
            raw.startWriting()
        return sent

    return send


def takes_views(write: Callable[[bytes], None], transport: Any) -> bool:
    """Does C{write}, from L{writer}C{(transport)}, take memoryviews as well as bytes?"""
    return write != transport.write and supported(transport)


# what the TLS fallback reads or calls on a twisted.internet.ssl.CertificateOptions
TLS_PRIVATE_FIELDS = ("_makeContext", "_cipherString")


def tls_context(options: Any, configure: Callable[[SSL.Context], None]) -> SSL.Context | None:
    """
    A new context for C{options}, C{configure}d before its cipher list is set (which
    froze a context on some pyOpenSSL releases); None where Twisted's internals differ.
    """
    make = getattr(options, "_makeContext", None)
    ciphers = getattr(options, "_cipherString", None)
    if make is None or not isinstance(ciphers, str):
        return None
    try:
        ctx: SSL.Context = make(skipCiphers=True)
    except TypeError:  # a Twisted without skipCiphers
        return None
    configure(ctx)
    ctx.set_cipher_list(ciphers.encode("ascii"))
    return ctx


# what the quiet reactor reads or calls on Twisted's EPollReactor
REACTOR_PRIVATE_FIELDS = ("_poller", "_selectables", "_doReadOrWrite", "_disconnectSelectable")

# Twisted's TCP connections whose readable events the quiet reactor handles itself:
# the classes whose doRead and _dataReceived are tcp.Connection's (a connecting client
# sets its own doRead on the instance: not tcp.Client)
FAST_READ_CLASSES = frozenset(
    c
    for c in (tcp.Connection, tcp.Server)
    if getattr(c, "doRead", None) is getattr(tcp.Connection, "doRead", 0)
    and getattr(c, "_dataReceived", None) is getattr(tcp.Connection, "_dataReceived", 0)
)

EPOLLIN = getattr(select, "EPOLLIN", 1)  # (a readable event alone; no epoll: not used)

# connections the quiet reactor tears down (lost: reset or closed) in one turn at most
TEARDOWNS = 64

# connections one TCP port of the quiet reactor accepts in one turn at most
ACCEPTS = 64

# events the quiet reactor takes from one poll at most: the rest stay ready in the kernel
# and come first in the next polls (epoll hands a level-triggered event it returned back
# to the end of its ready list), so a storm of 3,000 peers, each a reset or a command,
# is served over 24 short turns, with the timed calls and the other services in between
POLL_EVENTS = 128


class CappedPort(tcp.Port):
    """
    Twisted's listening port, accepting at most L{ACCEPTS} connections a turn. Twisted's
    accepts up to C{numberAccepts} a turn and adds 20 to it each turn that reaches it,
    without end: 3,000 peers connecting together had hundreds accepted in one turn
    (each built, logged and started reading: about 55 us), every other connection
    waiting. The rest wait in the kernel's accept queue for the next turns.
    """

    _accepts = ACCEPTS

    @property  # type: ignore[override]
    def numberAccepts(self) -> int:
        return self._accepts

    @numberAccepts.setter
    def numberAccepts(self, n: int) -> None:
        self._accepts = min(n, ACCEPTS)


def reactor_class() -> Any:
    """
    Twisted's C{EPollReactor} whose C{doPoll} hands each event to C{_doReadOrWrite}
    directly, without C{log.callWithLogger}'s per-event log context (and reads a TCP
    connection that is only readable itself, as C{_doReadOrWrite} and
    C{Connection.doRead} would: L{FAST_READ_CLASSES}). Errors are still
    logged (with the connection's prefix) and close only that connection, as Twisted
    does; old-style C{log.msg} lines written inside a connection's callbacks are
    prefixed C{-} instead of the connection's C{logPrefix()} (portsuite logs through
    C{twisted.logger} with the service's name). It takes L{POLL_EVENTS} events from a
    poll at most, tears down L{TEARDOWNS} lost connections a turn and its TCP ports
    accept L{ACCEPTS} a turn: a storm of peers is served over several short turns. An
    instance whose fields are not the
    ones this module knows polls exactly as Twisted's. None where there is no epoll.
    """
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:
        return None

    class QuietEPollReactor(EPollReactor):
        def __init__(self) -> None:
            super().__init__()
            self._after_poll: list[Callable[[], None]] = []
            self._dispatching = False
            # connections lost (reset, or closed) past TEARDOWNS in a turn: torn down
            # in the next turns, TEARDOWNS a turn (see _disconnectSelectable)
            self._lost: deque[tuple[Any, Any, bool]] = deque()
            self._torn = 0  # torn down this turn
            self._lost_call: Any = None
            self._bounded = all(hasattr(self, f) for f in REACTOR_PRIVATE_FIELDS)
            if self._bounded:
                self.doIteration = self.doPoll = self._poll_quietly  # type: ignore[method-assign]
                self.addSystemEventTrigger("during", "shutdown", self._tear_down_all)

        def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
            """Twisted's, with a L{CappedPort} (a Twisted that no longer counts its
            accepts in C{numberAccepts} ignores the cap: a test says so)."""
            if not self._bounded:
                return super().listenTCP(port, factory, backlog, interface)
            p = CappedPort(port, factory, backlog, interface, self)
            p.startListening()
            return p

        def _disconnectSelectable(  # type: ignore[override]
            self, selectable: Any, why: Any, isRead: bool
        ) -> None:
            """
            Twisted's, for the first L{TEARDOWNS} connections lost in a turn of the
            reactor (and for everything but a TCP connection's loss, the half-close
            notice of an EOF included). Past them, a connection that is lost is only
            taken out of the poll now, and torn down (C{connectionLost}, its socket
            closed) in the next turns, L{TEARDOWNS} a turn, in the order they came: 3,000
            peers resetting together came in one poll, and each was torn down in the
            turn that read its reset (Twisted's teardown and the protocols' cleanup,
            tens of microseconds each), while every other connection waited. In
            between the connection is as if its loss had not arrived yet: a write to
            it fails as one to a reset socket does (and is discarded).
            """
            if (
                not self._bounded
                or not isinstance(selectable, tcp.Connection)
                or (
                    isRead
                    and type(why) is error.ConnectionDone
                    and IHalfCloseableDescriptor.providedBy(selectable)
                )  # (the half-close notice: read side only, nothing torn down)
                or type(why) not in (error.ConnectionDone, error.ConnectionLost)
            ):
                super()._disconnectSelectable(selectable, why, isRead)
                return
            if self._torn < TEARDOWNS and not self._lost:
                self._torn += 1
                super()._disconnectSelectable(selectable, why, isRead)
                return
            self.removeReader(selectable)
            self.removeWriter(selectable)
            self._lost.append((selectable, why, isRead))
            if self._lost_call is None:
                self._lost_call = self.callLater(0, self._tear_down_some)

        def _tear_down_some(self) -> None:
            """The next L{TEARDOWNS} connections lost, at the start of a turn."""
            self._lost_call = None
            self._tear_down(TEARDOWNS)
            if self._lost:
                self._lost_call = self.callLater(0, self._tear_down_some)

        def _tear_down_all(self) -> None:
            """The reactor stops: every connection still waiting is torn down now."""
            if self._lost_call is not None and self._lost_call.active():
                self._lost_call.cancel()
            self._lost_call = None
            self._tear_down(self._torn + len(self._lost))

        def _tear_down(self, limit: int) -> None:
            lost = self._lost
            while lost and self._torn < limit:
                selectable, why, isRead = lost.popleft()
                if selectable.disconnected:  # (torn down meanwhile: aborted, or lost again)
                    continue
                self._torn += 1
                try:
                    super()._disconnectSelectable(selectable, why, isRead)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    log.callWithLogger(selectable, log.err, Failure())

        def call_after_poll(self, f: Callable[[], None]) -> None:
            """
            Call C{f} once, after the events of the current poll are handled (Redis's
            C{beforeSleep}): kv writes its append-only file there once for all the
            clients it served, then their replies. Outside a poll's events (or on a
            reactor polling as Twisted's does): C{callLater(0, f)}, as soon as that.
            """
            if self._dispatching:
                self._after_poll.append(f)
            else:
                self.callLater(0, f)

        def _poll_quietly(self, timeout: float | None) -> None:
            # Twisted's doPoll, calling _doReadOrWrite without log.callWithLogger
            try:
                events = self._poller.poll(
                    -1 if timeout is None else timeout,
                    min(len(self._selectables), POLL_EVENTS),
                )
            except OSError as err:
                if err.errno == errno.EINTR:
                    return
                raise
            selectables = self._selectables
            dispatch = self._doReadOrWrite
            fast = FAST_READ_CLASSES
            self._dispatching = True
            try:
                for fd, event in events:
                    selectable = selectables.get(fd)
                    if selectable is None:
                        continue
                    try:
                        if event != EPOLLIN or type(selectable) not in fast:
                            dispatch(selectable, fd, event)
                            continue
                        # A TCP connection with bytes to read, nothing else: Twisted's
                        # _doReadOrWrite, Connection.doRead and _dataReceived in this
                        # one frame (three calls fewer a request: 50 clients with one
                        # request each in flight are one read and one reply per event)
                        try:
                            data = selectable.socket.recv(selectable.bufferSize)
                        except OSError as se:
                            if se.args[0] == errno.EWOULDBLOCK:
                                continue
                            why: Any = main.CONNECTION_LOST
                        except BaseException:
                            why = sys.exc_info()[1]
                            log.err()
                        else:
                            if not data:
                                why = main.CONNECTION_DONE
                            else:
                                try:
                                    selectable.protocol.dataReceived(data)
                                    continue
                                except BaseException:
                                    # (as Twisted: logged, and the connection closed)
                                    why = sys.exc_info()[1]
                                    log.err()
                        self._disconnectSelectable(selectable, why, True)
                    except KeyboardInterrupt:
                        raise
                    except BaseException:
                        log.callWithLogger(selectable, log.err, Failure())
            finally:
                self._dispatching = False
                self._torn = 0  # the next turn's teardowns: from its timed calls on
            if self._after_poll:
                after, self._after_poll = self._after_poll, []
                for f in after:
                    try:
                        f()
                    except KeyboardInterrupt:
                        raise
                    except BaseException:
                        log.err(Failure(), "an after-poll call failed")

    return QuietEPollReactor


def install_reactor() -> bool:
    """
    Install L{reactor_class}'s reactor, unless a reactor is installed already
    (C{twistd --reactor=...}, or a module that imported C{twisted.internet.reactor}) or
    there is no epoll. Returns whether it did.
    """
    if "twisted.internet.reactor" in sys.modules:
        return False
    cls = reactor_class()
    if cls is None:
        return False
    from twisted.internet.main import installReactor

    installReactor(cls())
    return True
