"""
FTP's second connection: the data channel of one transfer (RFC 959 §3.2, RFC 2428).

A L{DataChannel} is what PASV/EPSV (the server listens, the client connects) or
PORT/EPRT (the client listens, the server connects) set up. It accepts exactly one
connection, only from the control connection's client address (no third party can
steal a transfer: RFC 2577), within C{timeout} seconds, and then stops listening.
Each channel is kept, bounded, for the dashboard: its mode, both ends and ports,
the command it carried and its bytes.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from typing import Any

from twisted.internet import defer, error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IPullProducer,
    IPushProducer,
    IReadDescriptor,
    ISSLTransport,
    IWriteDescriptor,
)
from twisted.internet.protocol import ClientFactory, Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger(namespace="portsuite.ftp")
EARLY_BYTES = 1024 * 1024
SOCKET_BUFFER = 4 * 1024 * 1024  # kernel receive buffer of a big upload: fewer wakeups
READ_SIZE = 256 * 1024  # bytes per read of an upload


def same_host(a: str, b: str) -> bool:
    """Two addresses of the same host (C{::ffff:127.0.0.1} is C{127.0.0.1})."""
    if a == b:
        return True
    try:
        x, y = ipaddress.ip_address(a.split("%")[0]), ipaddress.ip_address(b.split("%")[0])
    except ValueError:
        return a == b
    if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped:
        x = x.ipv4_mapped
    if isinstance(y, ipaddress.IPv6Address) and y.ipv4_mapped:
        y = y.ipv4_mapped
    return x == y


class DataConnection(Protocol):
    """The data connection itself: bytes in to an upload, or out from a producer."""

    channel: DataChannel
    transport: Any

    def connectionMade(self) -> None:
        # no TCP_NODELAY: every transfer ends with a close, whose FIN pushes the last
        # segment out at once; kernel buffers only for what a transfer needs (see
        # upload_buffer). An upload arrives in reads of this size (FileDescriptor.bufferSize,
        # 64 KiB by default): a quarter of the Python calls per megabyte
        self.transport.bufferSize = READ_SIZE
        self.channel.connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.channel.received(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.channel.lost(reason)


_RMEM_MAX: list[int] = []  # net.core.rmem_max, read once


def upload_buffer(conn: DataConnection) -> None:
    """
    A kernel receive buffer of C{SOCKET_BUFFER} for a big upload: fuller reads and
    fewer wakeups, for the server and for the client that sends (bench/ftp.py: server
    and curl both spend less CPU per MB). Only where C{net.core.rmem_max} lets a
    socket have that much: below it a set SO_RCVBUF would be smaller than what
    autotuning reaches by itself (C{tcp_rmem}), and frozen there.

    A download gets no such buffer: a set SO_SNDBUF (4 MiB, with 4 MiB sendfile
    calls) took a quarter of the server's CPU per MB off it only by moving more of
    loopback's receive work onto the client (curl: 0.60-0.66 ms per MB against
    0.45-0.54 from pyftpdlib), and a download is as fast as its client reads.
    """
    if not _RMEM_MAX:
        try:
            with open("/proc/sys/net/core/rmem_max") as f:
                _RMEM_MAX.append(int(f.read()))
        except (OSError, ValueError):
            _RMEM_MAX.append(0)
    if _RMEM_MAX[0] < SOCKET_BUFFER:
        return
    try:
        conn.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    except (AttributeError, OSError):
        pass


class _Handover(ServerFactory):
    """Gives the one accepted data connection its (already chosen) protocol."""

    noisy = False

    def __init__(self, protocol: DataConnection):
        self.protocol_ = protocol

    def buildProtocol(self, addr: Any) -> Any:
        return self.protocol_


# accept() errors that say the process or the kernel is out of something: waiting for
# the same listener to become readable again would spin, so the channel fails instead
_OUT_OF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@implementer(IReadDescriptor)
class PassiveListener:
    """
    The listening socket of one passive data connection (PASV/EPSV): it accepts one
    connection from the client's address, hands it over, and closes.

    A C{listenTCP} port per transfer costs a Twisted C{Port}, a deferred
    C{stopListening} and two log lines ("starting on", "Port Closed"): a third of the
    server's CPU per small file. This is the same socket work on public interfaces:
    C{IReactorFDSet.addReader} while listening; the accepted connection becomes a
    L{PlainData} (plain TCP), or Twisted's own tcp.Server through
    C{IReactorSocket.adoptStreamConnection} when TLS is to start on it (PROT P).
    """

    kept = False  # the session keeps it from one transfer to the next (FTPSession._listen)

    def __init__(self, reactor: Any, channel: DataChannel, sock: socket.socket):
        self.reactor = reactor
        self.channel: DataChannel | None = channel
        self.sock: socket.socket | None = sock
        self.family = sock.family
        self.port: int = sock.getsockname()[1]

    @classmethod
    def open(
        cls, reactor: Any, channel: DataChannel, ports: Any, interface: str
    ) -> PassiveListener:
        """Listen on the first free port of C{ports}; CannotListenError if none is."""
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        last: OSError | None = None
        port = 0
        for port in ports:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setblocking(False)
                if family == socket.AF_INET6:
                    addr = socket.getaddrinfo(
                        interface, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
                    )[0][4]
                else:
                    addr = (interface, port)
                sock.bind(addr)
                sock.listen(2)
            except OSError as e:
                sock.close()
                last = e
                continue
            listener = cls(reactor, channel, sock)
            reactor.addReader(listener)
            return listener
        raise error.CannotListenError(interface, port, last)

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def logPrefix(self) -> str:
        return "ftp-pasv"

    def doRead(self) -> None:
        while self.sock is not None:
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in _OUT_OF:
                    channel = self.channel
                    self.stopListening()
                    if channel is not None:
                        channel.problem = f"cannot accept: {e.strerror}"
                        channel.failed(e)
                return  # ECONNABORTED and the like: that one is gone, keep listening
            channel = self.channel
            protocol = channel.accept(addr[0], addr[1]) if channel is not None else None
            if channel is None or protocol is None:
                # not the client's address, or no transfer waits for one (between
                # transfers of a kept listener): closed without a byte
                conn.close()
                continue
            if not self.kept:
                self.stopListening()
            if channel.tls_options is None:
                try:
                    conn.setblocking(False)
                except OSError as e:
                    conn.close()
                    channel.failed(e)
                    return
                PlainData(self.reactor, conn, addr).makeConnection(protocol)
                return
            try:
                # Twisted duplicates the descriptor (and makes it non-blocking: the flag
                # is the open file's, shared by both); ours is closed right after
                self.reactor.adoptStreamConnection(conn.fileno(), self.family, _Handover(protocol))
            except OSError as e:
                channel.failed(e)
            finally:
                conn.close()
            return

    def connectionLost(self, reason: Any) -> None:
        self.stopListening()

    def stopListening(self) -> None:
        sock, self.sock = self.sock, None
        self.channel = None
        if sock is not None:
            self.reactor.removeReader(self)
            sock.close()


_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
# a clean end, one Failure for every connection (as Twisted's reactor shares its own):
# building one walks its exception's classes, a cost on every small file
_DONE = Failure(error.ConnectionDone())


@implementer(IReadDescriptor, IWriteDescriptor, IPushProducer)
class PlainData:
    """
    A plain-TCP passive data connection as a bare descriptor (the transport of a
    L{DataConnection}): one transfer, one direction, then closed.

    Twisted's tcp.Server, built per file by C{adoptStreamConnection}, costs a dup, a
    getsockname, a getpeername and a second getsockname, address objects, and its
    close waits for the next turn of the reactor (writing is switched on, the next
    poll says writable, then shutdown and close). For a small file that is most of
    the data connection's cost. This is the same work on the public
    C{IReactorFDSet}: C{write} sends at once what the socket takes (and keeps the
    rest until it is writable); C{loseConnection} closes at once when nothing is
    left to send, and the protocol learns it right then; C{abortConnection} resets.
    Reading starts only when asked (C{resumeProducing}, an upload): until then, what
    a client sends early waits in the kernel's buffer, not here. Only what the FTP
    data connection uses: no TLS (PROT P takes Twisted's tcp.Server), no
    streaming producer, no half-close.
    """

    bufferSize = READ_SIZE
    disconnecting = False
    producer: Any = None  # a pull producer (FileSender), asked for more once all is sent
    # a descriptor that has the socket meanwhile (SendfileSender): told before the
    # socket closes, so it leaves the reactor while its descriptor is still valid
    borrower: Any = None

    def __init__(self, reactor: Any, sock: socket.socket, peer: Any):
        self.reactor = reactor
        self.socket: socket.socket | None = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.protocol: Any = None
        self.queue: list[bytes] = []
        self.reading = self.writing = False

    def makeConnection(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    # -- IReadDescriptor / IWriteDescriptor ------------------------------------------

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "ftp-data"

    def doRead(self) -> None:
        # a full read: more is waiting, and the next poll says so (other clients
        # first); a short one: once more, for the end of the file that often follows
        # it (a small upload's bytes and its FIN come together: one wake-up, not two)
        for _ in range(2):
            sock = self.socket
            if sock is None or not self.reading:
                return
            try:
                data = sock.recv(self.bufferSize)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._close(error.ConnectionLost(e.strerror), orderly=False)
                return
            if not data:
                self._close(_DONE, orderly=True)
                return
            self.protocol.dataReceived(data)
            if len(data) == self.bufferSize:
                return

    def doWrite(self) -> None:
        sock = self.socket
        if sock is None:
            return
        while self.queue:
            data = self.queue[0]
            try:
                n = sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._close(error.ConnectionLost(e.strerror), orderly=False)
                return
            if n < len(data):
                self.queue[0] = data[n:]
                return
            self.queue.pop(0)
        if self.producer is not None:
            self.producer.resumeProducing()  # writes more, or unregisters and closes
            return
        self._stop_writing()
        if self.disconnecting:
            self._close(_DONE, orderly=True)

    def connectionLost(self, reason: Any) -> None:
        # the reactor's word: an error in doRead/doWrite, or a hang-up it saw
        self._close(reason, orderly=False)

    # -- the transport -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.socket is None or self.disconnecting or not data:
            return
        if not self.queue and self.producer is None:
            try:
                n = self.socket.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self._close(error.ConnectionLost(e.strerror), orderly=False)
                return
            if n == len(data):
                return
            data = data[n:]
        self.queue.append(data)
        self._start_writing()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if self.socket is None:
            return
        if self.queue or self.producer is not None:
            self.disconnecting = True  # closed once all is sent
            return
        self._close(_DONE, orderly=True)

    def abortConnection(self) -> None:
        self._close(error.ConnectionAborted(), orderly=False)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        if streaming:
            raise ValueError("PlainData takes pull producers only")
        self.producer = producer
        self._start_writing()  # doWrite, with nothing queued, asks it for the first chunk

    def unregisterProducer(self) -> None:
        self.producer = None

    def stopReading(self) -> None:
        if self.reading:
            self.reading = False
            self.reactor.removeReader(self)

    def startReading(self) -> None:
        if not self.reading and self.socket is not None:
            self.reading = True
            self.reactor.addReader(self)

    pauseProducing = stopReading
    resumeProducing = startReading

    def stopProducing(self) -> None:
        self.abortConnection()

    def getHandle(self) -> socket.socket | None:
        return self.socket

    def getPeer(self) -> Any:
        return _address(self.peer)

    def getHost(self) -> Any:
        return _address(self.socket.getsockname() if self.socket is not None else ("", 0))

    def _start_writing(self) -> None:
        if not self.writing:
            self.writing = True
            self.reactor.addWriter(self)

    def _stop_writing(self) -> None:
        if self.writing:
            self.writing = False
            self.reactor.removeWriter(self)

    def _close(self, why: BaseException | Failure, orderly: bool) -> None:
        sock = self.socket
        if sock is None:
            return
        self.stopReading()
        self._stop_writing()
        self.socket = None
        self.fd = -1
        self.queue = []
        borrower, self.borrower = self.borrower, None
        if borrower is not None:
            borrower.connectionLost(why)  # SendfileSender: removeWriter, then done
        try:
            if not orderly:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
        sock.close()
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        self.protocol.connectionLost(why if isinstance(why, Failure) else Failure(why))


def _address(addr: Any) -> Any:
    if ":" in addr[0]:
        return IPv6Address("TCP", addr[0], addr[1])
    return IPv4Address("TCP", addr[0], addr[1])


class _ActiveFactory(ClientFactory):
    noisy = False

    def __init__(self, channel: DataChannel):
        self.channel = channel

    def buildProtocol(self, addr: Any) -> Any:
        p = DataConnection()
        p.channel = self.channel
        return p

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.channel.failed(reason)


@implementer(IPullProducer)
class FileSender:
    """Sends an open file on a data connection in big chunks (a pull producer)."""

    def __init__(self, f: Any, conn: DataConnection, chunk: int, ascii: bool = False):
        self.f = f
        self.conn = conn
        self.chunk = chunk
        self.ascii = ascii
        self.held_cr = False  # ASCII: a chunk ended in \r, whose \n may start the next
        self.ok = False  # every byte read and written, then the connection closed

    def start(self) -> None:
        self.conn.transport.registerProducer(self, False)

    def resumeProducing(self) -> None:
        if self.f is None:
            return
        try:
            data = self.f.read(self.chunk)
        except OSError as e:
            self._finish(e)
            return
        if not data:
            if self.held_cr:  # a \r at the very end, with no \n after it
                self.held_cr = False
                self.conn.channel.bytes += 1
                self.conn.transport.write(b"\r")
                return  # the next call finds the end again and finishes
            self._finish(None)
            return
        if self.ascii:
            if self.held_cr:
                data = b"\r" + data
            self.held_cr = data.endswith(b"\r")
            if self.held_cr:
                data = data[:-1]
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.conn.channel.bytes += len(data)
        self.conn.transport.write(data)

    def stopProducing(self) -> None:
        self._finish(error.ConnectionLost("data connection closed by the client"))

    def _finish(self, problem: BaseException | None) -> None:
        if self.f is None:
            return
        self.f.close()
        self.f = None
        transport = self.conn.transport
        transport.unregisterProducer()
        if problem is None:
            self.ok = True
            transport.loseConnection()  # after every queued byte has left
        else:
            transport.abortConnection()


@implementer(IWriteDescriptor)
class SendfileSender:
    """
    RETR in binary mode on a plain TCP data connection: C{os.sendfile}, the kernel
    copies file to socket with no trip through Python (what vsftpd and pyftpdlib do).

    For the length of the transfer this object, not the Twisted connection, is the
    descriptor the reactor watches (public C{IReactorFDSet.addWriter}); the
    connection stops reading meanwhile and takes its socket back at the end.
    """

    def __init__(self, f: Any, conn: DataConnection, reactor: Any, chunk: int):
        self.f = f
        self.conn = conn
        self.reactor = reactor
        self.chunk = chunk
        self.offset = f.tell()
        self.sock = conn.transport.getHandle()
        self.ok = False
        self.done = False

    @classmethod
    def usable(cls, conn: DataConnection, reactor: Any) -> bool:
        t = conn.transport
        return (
            hasattr(os, "sendfile")
            and hasattr(reactor, "addWriter")
            and hasattr(t, "getHandle")
            and hasattr(t, "stopReading")
            and not ISSLTransport.providedBy(t)
        )

    def start(self) -> None:
        transport = self.conn.transport
        transport.stopReading()
        if isinstance(transport, PlainData):
            transport.borrower = self  # its close takes this off the reactor first
        self.reactor.addWriter(self)

    def fileno(self) -> int:
        return self.sock.fileno() if not self.done else -1

    def logPrefix(self) -> str:
        return "ftp-data"

    def doWrite(self) -> None:
        try:
            n = os.sendfile(self.sock.fileno(), self.f.fileno(), self.offset, self.chunk)
        except BlockingIOError:
            return None
        except OSError:
            self._finish(False)
            return None
        if n == 0:
            self._finish(True)
            return None
        self.offset += n
        self.conn.channel.bytes += n
        return None

    def connectionLost(self, reason: Any) -> None:
        self._finish(False)

    def stopProducing(self) -> None:
        self._finish(False)

    def _finish(self, ok: bool) -> None:
        if self.done:
            return
        self.reactor.removeWriter(self)
        self.done = True
        self.ok = ok
        self.f.close()
        transport = self.conn.transport
        transport.startReading()
        if ok:
            transport.loseConnection()
        else:
            transport.abortConnection()


class DataChannel:
    """
    One data channel of an FTP session.

    @ivar mode: C{"passive"} (PASV/EPSV: the server listens on C{server_port}) or
        C{"active"} (PORT/EPRT: the server connects to C{client_host:client_port}).
    """

    def __init__(
        self,
        session: Any,
        mode: str,
        reactor: Any,
        client_host: str,
        timeout: float,
        client_port: int | None = None,
    ):
        self.session = session
        self.mode = mode
        self.reactor = reactor
        self.client_host = client_host
        self.client_port = client_port
        self.timeout = timeout
        self.server_host: str | None = None
        self.server_port: int | None = None
        self.listening: Any = None
        self.connector: Any = None
        self.conn: DataConnection | None = None
        self.state = "waiting"
        self.command: str | None = None
        self.bytes = 0
        self.opened_at = reactor.seconds()
        self.closed_at: float | None = None
        self.refused = 0  # connections from another address, refused
        self._waiters: list[defer.Deferred[DataConnection]] = []
        # one timer per channel: first the wait for the data connection (timeout),
        # then, once a transfer runs, the check that bytes still move (stall_timer)
        self._timer: Any = None
        self._stall: float | None = None  # seconds a transfer may go without a byte
        self._moved = 0  # bytes at the last check …
        self._checked = 0.0  # … and its time
        self._sink: Any = None  # upload: receives the bytes
        self._early: list[bytes] = []  # bytes that came before the upload command
        self.finished: defer.Deferred[Any] = defer.Deferred()
        self.problem: str | None = None
        self.clean = False  # closed by a FIN after the transfer, not reset or aborted
        self.tls_options: Any = None  # PROT P: TLS on this data connection

    # -- setting up ----------------------------------------------------------------

    def listen(self, ports: Any, interface: str, held: PassiveListener | None = None) -> None:
        """
        Listen on the first free port of C{ports} (passive), or on C{held}, a listener
        the session kept from its last transfer; CannotListenError if no port is free.
        """
        if held is None or held.sock is None:
            held = PassiveListener.open(self.reactor, self, ports, interface)
        held.channel = self
        self.listening = held
        self.server_host = interface
        self.server_port = self.listening.port
        self._timer = self.reactor.callLater(self.timeout, self._tick)

    def connect(self, bind_host: str) -> None:
        """Connect to the client's port (active)."""
        self.state = "connecting"
        self.connector = self.reactor.connectTCP(
            self.client_host,
            self.client_port,
            _ActiveFactory(self),
            timeout=max(1, int(self.timeout)),
            bindAddress=(bind_host, 0),
        )
        self._timer = self.reactor.callLater(self.timeout, self._tick)

    def accept(self, host: str, port: int) -> DataConnection | None:
        if self.conn is not None or self.state != "waiting":
            return None
        if not same_host(host, self.client_host):
            self.refused += 1
            log.warn(
                "{service}: data connection from {host}:{port} refused: the control "
                "connection is from {client} (no FTP bounce/theft, RFC 2577)",
                service=self.session.service_name,
                host=host,
                port=port,
                client=self.client_host,
            )
            return None
        self.client_port = port
        p = DataConnection()
        p.channel = self
        return p

    # -- events ----------------------------------------------------------------------

    def connected(self, conn: DataConnection) -> None:
        if self.tls_options is not None:
            # PROT P: the client is the TLS client on every data connection (RFC 4217 §7),
            # whichever side opened it
            conn.transport.startTLS(self.tls_options, self.mode == "passive")
        self.conn = conn
        self.state = "open"
        if self.mode == "active":
            # the server end: whatever port connect() was given (a getsockname); a
            # passive one's ends are the listener's address and what accept() saw
            host = conn.transport.getHost()
            self.server_host = host.host
            self.server_port = host.port
        # the timer runs on: stall_timer turns it into the transfer's watch (an
        # unused connection is left to the session: a new PASV or its end closes it)
        self._stop_listening(done=True)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(conn)

    def failed(self, reason: Any) -> None:
        self.problem = self.problem or "connection failed"
        self._fail(reason)

    def _tick(self) -> None:
        self._timer = None
        if self.conn is None:
            if self.state in ("closed", "failed"):
                return
            self.problem = f"no data connection within {self.timeout:g}s"
            if self.connector is not None:
                self.connector.disconnect()
            self._fail(error.TimeoutError(self.problem))
            return
        if self.state != "open" or self._stall is None:
            return  # connected, no transfer yet: nothing to watch
        now = self.reactor.seconds()
        due = self._checked + self._stall
        if now < due:  # the connection's timeout came first: check when due
            self._timer = self.reactor.callLater(due - now, self._tick)
            return
        if self.bytes == self._moved:
            self.problem = f"no byte moved for {self._stall:g}s"
            self.conn.transport.abortConnection()
            return
        self._moved = self.bytes
        self._checked = now
        self._timer = self.reactor.callLater(self._stall, self._tick)

    def _fail(self, reason: Any) -> None:
        if self.state in ("closed", "failed"):
            return
        self.state = "failed"
        self.closed_at = self.reactor.seconds()
        self._cancel_timer()
        self._stop_listening()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(reason if isinstance(reason, BaseException) else error.ConnectError())

    def received(self, data: bytes) -> None:
        self.bytes += len(data)
        if self._sink is not None:
            self._sink(data)
        elif self.conn is not None:
            # a client may send before the server has read STOR: hold one read's worth
            # and stop reading until the upload starts
            self._early.append(data)
            self.conn.transport.pauseProducing()
            if sum(map(len, self._early)) > EARLY_BYTES:
                self.conn.transport.abortConnection()

    def lost(self, reason: Any) -> None:
        self._cancel_timer()
        self.state = "closed"
        self.closed_at = self.reactor.seconds()
        # (isinstance: Failure.check names each class it is given, on every file)
        value = getattr(reason, "value", reason)
        self.clean = reason is None or isinstance(value, error.ConnectionDone)
        if not self.finished.called:
            self.finished.callback(self.clean)

    # -- used by the session ----------------------------------------------------------

    def ready(self) -> defer.Deferred[DataConnection]:
        """Fires with the connection once it is there (or fails on timeout)."""
        if self.conn is not None and self.state == "open":
            return defer.succeed(self.conn)
        if self.state in ("failed", "closed"):
            return defer.fail(error.ConnectError(self.problem or "no data connection"))
        d: defer.Deferred[DataConnection] = defer.Deferred()
        self._waiters.append(d)
        return d

    def receive_into(self, sink: Any) -> None:
        self._sink = sink
        early, self._early = self._early, []
        for chunk in early:
            sink(chunk)
        if self.conn is not None and self.state == "open":
            self.conn.transport.resumeProducing()

    def stall_timer(self, seconds: float) -> None:
        """Abort the transfer if no byte moves for C{seconds} (client gone silent)."""
        self._stall = seconds
        self._moved = self.bytes
        self._checked = now = self.reactor.seconds()
        timer = self._timer
        if timer is None:
            self._timer = self.reactor.callLater(seconds, self._tick)
        elif timer.getTime() > now + seconds:
            timer.reset(seconds)
        # else the connection's timer, due sooner, checks and moves itself on

    def close(self) -> None:
        """Drop everything now (a new PASV/PORT, ABOR, the session ending)."""
        self._cancel_timer()
        self._stop_listening()
        if self.connector is not None and self.conn is None:
            self.connector.disconnect()
        if self.conn is not None and self.state == "open":
            self.conn.transport.abortConnection()
        if self.state not in ("closed", "failed"):
            self._fail(error.ConnectionAborted("data channel closed"))

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _stop_listening(self, done: bool = False) -> None:
        """
        Stop waiting for a connection: close the listener, or, C{done} (connected)
        and the listener is one the session keeps, leave it to the session's next
        PASV/EPSV. A channel that failed or was dropped always closes it.
        """
        listening, self.listening = self.listening, None
        if listening is None:
            return
        if done and listening.kept:
            listening.channel = None  # a connection until the next PASV is closed
        else:
            listening.stopListening()

    def as_dict(self) -> dict[str, Any]:
        now = self.reactor.seconds()
        return {
            "mode": self.mode,
            "kind": self.mode,
            "state": self.state,
            "server": host_port(self.server_host, self.server_port),
            "server_port": self.server_port,
            "client": host_port(self.client_host, self.client_port),
            "client_port": self.client_port,
            "command": self.command,
            "text": self.command,
            "direction": _direction(self.command),
            "bytes": self.bytes,
            "seconds": round((self.closed_at or now) - self.opened_at, 3),
            "refused": self.refused,
            "problem": self.problem,
            "tls": self.tls_options is not None,
        }


def _direction(command: str | None) -> str | None:
    """Which way a transfer's bytes go: "down" (server to client) or "up"."""
    verb = (command or "").split(" ", 1)[0]
    if verb in ("RETR", "LIST", "NLST", "MLSD"):
        return "down"
    if verb in ("STOR", "APPE"):
        return "up"
    return None


def host_port(host: str | None, port: int | None) -> str | None:
    if host is None:
        return None
    p = "?" if port is None else str(port)
    return f"[{host}]:{p}" if ":" in host else f"{host}:{p}"
