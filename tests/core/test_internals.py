"""
The uses of Twisted's private API (portsuite.internals): if a Twisted upgrade
changes the fields they read, these tests fail loudly, and portsuite quietly takes
the public path meanwhile.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable
from typing import Any

import pytest
from corehelp import drain
from OpenSSL import SSL
from twisted.internet import tcp
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport

from portsuite import internals
from portsuite.api import ClientInfo


def _connection() -> tuple[tcp.Connection, socket.socket, MemoryReactor]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    reactor = MemoryReactor()
    conn = tcp.Connection(ours, Protocol(), reactor=reactor)
    conn.connected = True
    return conn, peer, reactor


def test_twisted_tcp_connections_still_have_the_fields_the_fast_path_reads() -> None:
    conn, peer, _ = _connection()
    missing = [f for f in internals.PRIVATE_FIELDS if not hasattr(conn, f)]
    assert missing == [], f"Twisted changed tcp.Connection: {missing}; update portsuite.internals"
    assert internals.supported(conn)
    peer.close()


def test_an_idle_connection_sends_at_once_without_the_reactor() -> None:
    conn, peer, reactor = _connection()
    internals.writer(conn)(b"hello")
    assert peer.recv(100) == b"hello"  # already on the wire
    assert conn not in reactor.writers  # no writable event was needed
    peer.close()


def test_bytes_queued_before_keep_their_order() -> None:
    conn, peer, reactor = _connection()
    write = internals.writer(conn)
    conn.write(b"first ")  # the public path: queued until the reactor says writable
    write(b"second")
    peer.setblocking(False)
    try:
        early = peer.recv(100)
    except BlockingIOError:
        early = b""
    assert early == b""  # nothing overtook the queue
    conn.doWrite()
    peer.setblocking(True)
    assert peer.recv(100) == b"first second"
    peer.close()


def test_other_transports_take_the_public_write() -> None:
    transport = StringTransport()
    assert not internals.supported(transport)
    assert internals.writer(transport) == transport.write


def test_a_pull_producer_still_gets_asked_for_more() -> None:
    """FileSender (POP3 RETR) writes one chunk per resumeProducing, which only doWrite calls."""
    from twisted.internet.interfaces import IPullProducer
    from zope.interface import implementer

    conn, peer, reactor = _connection()
    write = internals.writer(conn)
    asked = []

    @implementer(IPullProducer)
    class Chunks:
        def resumeProducing(self) -> None:
            asked.append(1)
            if len(asked) < 3:
                write(b"chunk ")

        def stopProducing(self) -> None:
            pass

    conn.registerProducer(Chunks(), False)
    for _ in range(10):  # what the reactor does: doWrite while the connection wants to write
        if conn not in reactor.writers:
            break
        conn.doWrite()
    assert len(asked) >= 3  # asked again after each chunk, until it had nothing more
    assert peer.recv(100) == b"chunk chunk "
    peer.close()


def test_after_starttls_bytes_go_through_the_tls_layer() -> None:
    """STARTTLS/STLS turn TLS on in the same tcp.Connection: no raw write after that."""
    conn, peer, _ = _connection()
    write = internals.writer(conn)
    through_tls = []

    class TLSLayer:
        def write(self, data: bytes) -> None:
            through_tls.append(data)

    conn.protocol = TLSLayer()  # what twisted.internet._newtls.startTLS does
    conn.TLS = True
    write(b"secret")
    assert through_tls == [b"secret"]
    peer.setblocking(False)
    try:
        leaked = peer.recv(100)
    except BlockingIOError:
        leaked = b""
    assert leaked == b""
    peer.close()


# -- TLS: the ALPN fallback ------------------------------------------------------------


def _server_ctx_options() -> Any:
    from twisted.internet.ssl import CertificateOptions

    from portsuite import certs

    ca, ca_key = certs.make_ca()
    cert, key = certs.make_server(ca, ca_key)
    return CertificateOptions(privateKey=key, certificate=cert)


def _alpn_handshake(server_ctx: SSL.Context, app_data: Any = None) -> bytes:
    """A memory handshake, the client offering h2 and http/1.1; the negotiated name."""
    client_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    client = SSL.Connection(client_ctx, None)
    client.set_alpn_protos([b"h2", b"http/1.1"])
    client.set_connect_state()
    server = SSL.Connection(server_ctx, None)
    server.set_accept_state()
    server.set_app_data(app_data)
    for _ in range(10):
        done = 0
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
                done += 1
            except SSL.WantReadError:
                pass
            try:
                b.bio_write(a.bio_read(65536))
            except SSL.WantReadError:
                pass
        if done == 2:
            return client.get_alpn_proto_negotiated()
    raise AssertionError("no handshake")


def test_twisted_certificate_options_still_have_what_the_tls_fallback_uses() -> None:
    from twisted.internet.ssl import CertificateOptions

    options = _server_ctx_options()
    missing = [f for f in internals.TLS_PRIVATE_FIELDS if not hasattr(options, f)]
    assert missing == [] and isinstance(options._cipherString, str), (
        f"Twisted changed CertificateOptions: {missing}; update portsuite.internals.tls_context"
    )
    assert "skipCiphers" in inspect.signature(CertificateOptions._makeContext).parameters


def test_the_fallback_context_has_our_callback_and_the_ciphers() -> None:
    options = _server_ctx_options()
    seen: list[list[bytes]] = []

    def select(conn: SSL.Connection, offered: list[bytes]) -> Any:
        seen.append(offered)
        return SSL.NO_OVERLAPPING_PROTOCOLS

    ctx = internals.tls_context(options, lambda c: c.set_alpn_select_callback(select))
    assert ctx is not None
    assert _alpn_handshake(ctx) == b""  # no ALPN, and the handshake went on
    assert seen == [[b"h2", b"http/1.1"]]
    cipher_names = SSL.Connection(ctx, None).get_cipher_list()
    assert cipher_names and all("RC4" not in c and "NULL" not in c for c in cipher_names)


def test_a_twisted_without_the_internals_gets_none() -> None:
    assert internals.tls_context(object(), lambda c: None) is None


def test_twisted_still_answers_alpn_with_an_empty_name() -> None:
    """
    The bug portsuite.tls works around: Twisted's own ALPN callback answers "no
    common protocol" with b"", which OpenSSL 3 fails with an internal-error alert.
    If this fails, Twisted fixed it: portsuite.tls can keep Twisted's callback.
    """
    from twisted.internet.protocol import Factory
    from twisted.protocols.tls import TLSMemoryBIOFactory

    options = _server_ctx_options()
    tls_protocol = TLSMemoryBIOFactory(options, False, Factory.forProtocol(Protocol)).buildProtocol(
        None
    )
    with pytest.raises(SSL.Error) as info:
        _alpn_handshake(options.getContext(), tls_protocol)
    assert "internal error" in str(info.value) or "alert" in str(info.value)


def test_a_big_write_is_queued_whole() -> None:
    """One send would leave most of it over, and keeping the rest would copy it."""
    conn, peer, reactor = _connection()
    big = bytes(range(256)) * 4096  # 1 MiB
    internals.writer(conn)(big)
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing sent yet
    assert conn in reactor.writers  # the reactor sends it, as with transport.write
    assert drain(conn, peer, len(big)) == big
    peer.close()


def test_a_full_socket_buffer_queues_the_rest_in_order() -> None:
    conn, peer, reactor = _connection()
    write = internals.writer(conn)
    chunk = bytes(range(256)) * 200  # 50 KiB: sent at once while the buffer has room
    sent = b""
    for _ in range(200):  # a socketpair's buffer holds a few hundred KiB at most
        write(chunk)
        sent += chunk
        if conn in reactor.writers:
            break
    assert conn in reactor.writers  # the buffer filled up: the rest waits for the reactor
    got = drain(conn, peer, len(sent))
    assert got == sent
    peer.close()


def test_a_write_to_a_broken_connection_is_left_to_twisted() -> None:
    """No exception in the protocol's write: Twisted finds the error on its next try."""
    conn, peer, reactor = _connection()
    peer.close()
    write = internals.writer(conn)
    write(b"x")
    write(b"y")
    assert conn in reactor.writers
    result = conn.doWrite()  # what the reactor does next
    assert isinstance(result, Exception)  # and it then closes the connection with it


def test_a_memoryview_is_sent_at_once_or_queued_as_bytes() -> None:
    conn, peer, reactor = _connection()
    write = internals.writer(conn)
    assert internals.takes_views(write, conn)
    body = memoryview(b"0123456789")
    write(body[:4])
    assert peer.recv(100) == b"0123"  # on the wire, no copy needed
    conn.write(b"-")  # now something is queued: the view must wait behind it
    write(body[4:])
    assert conn._tempDataBuffer == [b"-", b"456789"]
    assert all(type(x) is bytes for x in conn._tempDataBuffer)  # Twisted's buffer: bytes only
    peer.close()


def test_the_public_path_does_not_claim_to_take_views() -> None:
    transport = StringTransport()
    assert not internals.takes_views(internals.writer(transport), transport)
    client = ClientInfo(peer="p", since=0)
    counted = internals.writer(transport, client)  # the wrapper's: counts, then writes
    assert not internals.takes_views(counted, transport)
    counted(b"abc")
    assert (transport.value(), client.bytes_out) == (b"abc", 3)


class _Producer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


def test_send_some_keeps_the_rest_and_resumes_the_producer_when_the_socket_drains() -> None:
    conn, peer, reactor = _connection()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    producer = _Producer()
    conn.registerProducer(producer, True)
    send = internals.sender(conn)
    assert send is not None
    body = memoryview(bytes(range(256)) * 40_000)  # ~10 MB: more than the socket holds
    sent = send(body)
    assert 0 < sent < len(body)
    assert producer.events == ["pause"]  # the rest stays with the caller
    assert conn._tempDataLen == 0 and conn.dataBuffer == b""  # nothing copied into Twisted
    assert conn in reactor.writers  # told when the socket can take more
    got = b""
    while len(got) < sent:
        got += peer.recv(1 << 20)
    assert got == body[:sent]
    conn.doWrite()  # the reactor's writable event
    assert producer.events == ["pause", "resume"]
    peer.close()


def test_send_some_waits_behind_bytes_already_queued() -> None:
    conn, peer, reactor = _connection()
    producer = _Producer()
    conn.registerProducer(producer, True)
    send = internals.sender(conn)
    assert send is not None
    conn.write(b"first ")
    assert send(b"second") == 0  # nothing may overtake the queue
    assert producer.events == ["pause"]
    conn.doWrite()
    assert peer.recv(100) == b"first "
    assert producer.events == ["pause", "resume"]
    assert send(b"second") == 6
    assert peer.recv(100) == b"second"
    peer.close()


def test_send_some_is_not_offered_on_other_transports() -> None:
    assert internals.sender(StringTransport()) is None


def test_send_file_hands_a_file_to_the_socket_and_waits_when_it_is_full(tmp_path: Any) -> None:
    conn, peer, reactor = _connection()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    producer = _Producer()
    conn.registerProducer(producer, True)
    send = internals.file_sender(conn)
    assert send is not None
    body = bytes(range(256)) * 40_000
    (tmp_path / "f").write_bytes(body)
    with open(tmp_path / "f", "rb") as f:
        sent = send(f.fileno(), 100, len(body) - 100)
        assert 0 < sent < len(body) - 100
        assert producer.events == ["pause"]  # the socket is full: wait for it
        assert conn._tempDataLen == 0 and conn.dataBuffer == b""
        got = b""
        while len(got) < sent:
            got += peer.recv(1 << 20)
        assert got == body[100 : 100 + sent]
        conn.doWrite()
        assert producer.events == ["pause", "resume"]
        with pytest.raises(EOFError):
            send(f.fileno(), len(body), 10)  # past the end: the file shrank
    peer.close()


def _reading_connection() -> tuple[tcp.Connection, socket.socket, list[bytes]]:
    """A widened connection whose protocol keeps each read it is given."""
    got: list[bytes] = []

    class Keep(Protocol):
        def dataReceived(self, data: bytes) -> None:
            got.append(data)

    conn, peer, _ = _connection()
    conn.protocol = Keep()
    internals.widen_reads(conn)
    return conn, peer, got


def test_a_widened_connection_reads_a_stream_in_big_pieces() -> None:
    """One doRead takes up to READ_SIZE (Twisted alone: 64 KiB), and the producer
    threshold moves with it."""
    conn, peer, got = _reading_connection()
    assert conn.bufferSize == internals.READ_SIZE > 65536
    peer.setblocking(False)
    sent = 0
    try:
        while sent < internals.READ_SIZE:
            sent += peer.send(b"s" * (internals.READ_SIZE - sent))
    except BlockingIOError:
        pass
    assert sent > 65536  # a socketpair buffers more than one Twisted read
    conn.doRead()
    assert len(got) == 1 and len(got[0]) > 65536
    peer.close()


def test_other_transports_keep_their_read_size() -> None:
    transport = StringTransport()
    internals.widen_reads(transport)
    internals.read_size(transport, 4096)
    assert not hasattr(transport, "bufferSize")


def test_a_protocol_can_read_less() -> None:
    # kv parses a whole read before running it: it reads 64 KiB at a time
    conn, peer, got = _reading_connection()
    internals.read_size(conn, 4096)
    peer.sendall(b"s" * 10000)
    conn.doRead()
    assert [len(g) for g in got] == [4096]
    peer.close()


# Twisted 26.10's EPollReactor.doPoll, which portsuite's quiet reactor copies with one
# change (no log.callWithLogger per event). If Twisted changes it, this test fails:
# compare the new doPoll with QuietEPollReactor._poll_quietly and bring it up to date.
TWISTED_DOPOLL = """
def doPoll(self, timeout):
    if timeout is None:
        timeout = -1
    try:
        l = self._poller.poll(timeout, len(self._selectables))
    except OSError as err:
        if err.errno == errno.EINTR:
            return
        raise
    _drdw = self._doReadOrWrite
    for fd, event in l:
        try:
            selectable = self._selectables[fd]
        except KeyError:
            pass
        else:
            log.callWithLogger(selectable, _drdw, selectable, fd, event)
"""


def _code(source: str) -> str:
    """The function's code without its docstring and comments, as an AST dump."""
    import ast
    import textwrap

    func = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(func, ast.FunctionDef)
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        func.body = body[1:]
    return ast.dump(func)


def _quiet_reactor() -> Any:
    cls = internals.reactor_class()
    if cls is None:
        pytest.skip("no epoll on this system")
    return cls()


def test_twisted_epoll_still_polls_the_way_the_quiet_reactor_copies() -> None:
    from twisted.internet.epollreactor import EPollReactor

    assert _code(inspect.getsource(EPollReactor.doPoll)) == _code(TWISTED_DOPOLL), (
        "Twisted changed EPollReactor.doPoll: update portsuite.internals.reactor_class"
    )
    reactor = _quiet_reactor()
    missing = [f for f in internals.REACTOR_PRIVATE_FIELDS if not hasattr(reactor, f)]
    assert missing == [], f"Twisted changed EPollReactor: {missing}"
    assert reactor.doIteration == reactor._poll_quietly


def _reading(reactor: Any, protocol: Protocol) -> tuple[tcp.Connection, socket.socket]:
    """A connection of C{reactor} over a socket pair, reading; and its peer."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    conn = tcp.Connection(ours, protocol, reactor=reactor)
    conn.connected = True
    conn.protocol.makeConnection(conn)
    conn.startReading()
    return conn, peer


def test_the_quiet_reactor_reads_and_writes_without_a_log_context_per_event() -> None:
    from twisted.python import context
    from twisted.python.log import ILogContext

    reactor = _quiet_reactor()
    seen = []

    class Answer(Protocol):
        def dataReceived(self, data: bytes) -> None:
            seen.append(context.get(ILogContext)["system"])
            self.transport.write(data.upper())  # queued: a write event sends it

    conn, peer = _reading(reactor, Answer())
    peer.sendall(b"ping")
    for _ in range(10):
        reactor.doIteration(0.5)
        if conn not in reactor.getWriters() and seen:
            break
    assert peer.recv(10) == b"PING"
    assert seen == ["-"]  # Twisted's doPoll would have said conn.logPrefix() here
    conn.loseConnection()
    peer.close()


def test_the_quiet_reactor_calls_back_after_the_events_of_a_poll() -> None:
    reactor = _quiet_reactor()
    order: list[str] = []

    class Note(Protocol):
        def __init__(self, name: str) -> None:
            self.name = name

        def dataReceived(self, data: bytes) -> None:
            order.append(self.name)
            if order == ["a"] or order == ["b"]:  # the first read asks for the call
                reactor.call_after_poll(lambda: order.append("after"))
                order.append("asked")  # (not called from inside the read)

    peers = []
    for name in ("a", "b"):
        peers.append(_reading(reactor, Note(name)))
    for _conn, peer in peers:
        peer.sendall(b"x")
    for _ in range(10):  # (both sockets are readable: one poll, as a rule)
        reactor.doIteration(0.5)
        if "after" in order:
            break
    assert order[-1] == "after" and order[1] == "asked"
    assert sorted(order[:-1]) in (["a", "asked", "b"], ["a", "asked"], ["asked", "b"])
    # outside a poll's events: as soon as the reactor turns (callLater(0))
    reactor.call_after_poll(lambda: order.append("later"))
    assert order[-1] == "after"
    reactor.runUntilCurrent()
    assert order[-1] == "later"
    for conn, peer in peers:
        conn.loseConnection()
        peer.close()


def test_the_quiet_reactor_closes_only_the_connection_that_raised_and_logs_it() -> None:
    from twisted.logger import globalLogPublisher

    reactor = _quiet_reactor()
    lost: list[str] = []

    class Broken(Protocol):
        def __init__(self, name: str) -> None:
            self.name = name

        def dataReceived(self, data: bytes) -> None:
            if self.name == "bad":
                raise ValueError("boom")
            self.transport.write(data)

        def connectionLost(self, reason: Any = None) -> None:
            lost.append(self.name)
            if self.name == "bad":
                raise RuntimeError("and again")  # past _doReadOrWrite: the poll loop's catch

    pairs = []
    for name in ("bad", "good"):
        conn, peer = _reading(reactor, Broken(name))
        peer.sendall(b"x")
        pairs.append((conn, peer))
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for _ in range(10):
            reactor.doIteration(0.5)
            if lost:
                break
        reactor.doIteration(0.1)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert lost == ["bad"]
    assert pairs[1][1].recv(10) == b"x"  # the other connection goes on
    # old-style log.err events: the failure, and the system they were logged under
    logged = {type(e["failure"].value): e["log_system"] for e in events if "failure" in e}
    assert ValueError in logged  # Twisted's _doReadOrWrite logs it and closes the connection
    # what escapes _doReadOrWrite is logged with the connection's prefix, as Twisted does
    assert logged[RuntimeError] == pairs[0][0].logPrefix()
    for _conn, peer in pairs:
        peer.close()


# Twisted 26.10's Connection.doRead and _dataReceived, and the read branch of
# _doReadOrWrite, which the quiet reactor runs itself for a readable TCP connection (see
# FAST_READ_CLASSES): if Twisted changes them, this test fails: bring _poll_quietly's
# read up to date with them.
TWISTED_DOREAD = """
def doRead(self) -> ConnectionLost | ConnectionDone | None:
    try:
        data = self.socket.recv(self.bufferSize)
    except OSError as se:
        if se.args[0] == EWOULDBLOCK:
            return None
        else:
            return main.CONNECTION_LOST

    return self._dataReceived(data)
"""
TWISTED_DATARECEIVED = """
def _dataReceived(self, data: bytes | None) -> ConnectionDone | None:
    if not data:
        return main.CONNECTION_DONE
    self.protocol.dataReceived(data)
    return None
"""


def test_twisted_still_reads_a_tcp_connection_the_way_the_quiet_reactor_copies() -> None:
    from twisted.internet.posixbase import _PollLikeMixin

    for method, copied in (
        (tcp.Connection.doRead, TWISTED_DOREAD),
        (tcp.Connection._dataReceived, TWISTED_DATARECEIVED),
    ):
        assert _code(inspect.getsource(method)) == _code(copied), (
            f"Twisted changed tcp.Connection.{method.__name__}: update "
            "portsuite.internals.reactor_class's _poll_quietly"
        )
    source = inspect.getsource(_PollLikeMixin._doReadOrWrite)
    for line in (
        "if selectable.fileno() == -1:",
        "why = selectable.doRead()",
        "inRead = True",
        "why = sys.exc_info()[1]",
        "log.err()",
        "self._disconnectSelectable(selectable, why, inRead)",
    ):
        assert line in source, f"Twisted changed _doReadOrWrite ({line})"
    assert internals.FAST_READ_CLASSES == {tcp.Connection, tcp.Server}


def test_the_quiet_reactor_reads_a_tcp_connection_itself_as_twisted_would() -> None:
    from twisted.internet.error import ConnectionDone

    reactor = _quiet_reactor()
    got: list[bytes] = []
    lost: list[Any] = []

    class Note(Protocol):
        def dataReceived(self, data: bytes) -> None:
            got.append(data)

        def connectionLost(self, reason: Any = None) -> None:
            lost.append(reason.type)

    dispatched = []
    twisteds = reactor._doReadOrWrite
    reactor._doReadOrWrite = lambda *a: (dispatched.append(a), twisteds(*a))
    conn, peer = _reading(reactor, Note())
    peer.sendall(b"ping")
    for _ in range(10):
        reactor.doIteration(0.5)
        if got:
            break
    assert got == [b"ping"] and dispatched == []  # read without Twisted's three calls
    peer.close()  # (a socket pair's close is a hang-up too: Twisted's own path)
    for _ in range(10):
        reactor.doIteration(0.5)
        if lost:
            break
    assert lost == [ConnectionDone]
    assert conn.disconnected


def test_the_quiet_reactors_own_read_finds_the_end_of_a_tcp_connection() -> None:
    from twisted.internet.error import ConnectionDone

    reactor = _quiet_reactor()
    lost: list[Any] = []

    class Note(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            lost.append(reason.type)

    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname(), timeout=5)
    ours, _addr = listener.accept()
    listener.close()
    ours.setblocking(False)
    conn = tcp.Server(ours, Note(), ("127.0.0.1", 0), None, 1, reactor)
    conn.protocol.makeConnection(conn)
    conn.startReading()
    dispatched = []
    twisteds = reactor._doReadOrWrite
    reactor._doReadOrWrite = lambda *a: (dispatched.append(a), twisteds(*a))
    peer.shutdown(socket.SHUT_WR)  # a FIN alone: readable, the read finds the end
    for _ in range(10):
        reactor.doIteration(0.5)
        if lost:
            break
    assert lost == [ConnectionDone] and dispatched == []
    assert conn.disconnected
    peer.close()


# Twisted 26.10's _disconnectSelectable, which the quiet reactor calls as it is (for the
# first TEARDOWNS connections lost in a turn, and for the rest in the next turns) and
# whose first steps it takes alone meanwhile (out of the poll): if Twisted changes it,
# this test fails: check QuietEPollReactor._disconnectSelectable against the new one.
TWISTED_DISCONNECT = """
def _disconnectSelectable(
    self,
    selectable,
    why,
    isRead,
    faildict={
        error.ConnectionDone: failure.Failure(error.ConnectionDone()),
        error.ConnectionLost: failure.Failure(error.ConnectionLost()),
    },
):
    self.removeReader(selectable)
    f = faildict.get(why.__class__)
    if f:
        if (
            isRead
            and why.__class__ == error.ConnectionDone
            and IHalfCloseableDescriptor.providedBy(selectable)
        ):
            selectable.readConnectionLost(f)
        else:
            self.removeWriter(selectable)
            selectable.connectionLost(f)
    else:
        self.removeWriter(selectable)
        selectable.connectionLost(failure.Failure(why))
"""


def test_twisted_still_disconnects_the_way_the_quiet_reactor_defers() -> None:
    from twisted.internet.posixbase import _DisconnectSelectableMixin

    assert _code(inspect.getsource(_DisconnectSelectableMixin._disconnectSelectable)) == _code(
        TWISTED_DISCONNECT
    ), "Twisted changed _disconnectSelectable: update portsuite.internals.reactor_class"
    from twisted.internet.posixbase import _PollLikeMixin

    # the one caller, which hands it (selectable, why, isRead)
    assert "self._disconnectSelectable(selectable, why, inRead)" in inspect.getsource(
        _PollLikeMixin._doReadOrWrite
    )


class _Teardown(Protocol):
    """Notes the reactor's turn its connection was lost in, and why."""

    def __init__(self, turns: list[tuple[int, Any]], turn: list[int]) -> None:
        self.turns = turns
        self.turn = turn

    def connectionLost(self, reason: Any = None) -> None:
        self.turns.append((self.turn[0], reason.type))


def _resetting_peers(reactor: Any, n: int, protocol: Any) -> list[tcp.Connection]:
    """C{n} TCP connections of C{reactor}, reading, whose peers have reset them (RST)."""
    import struct

    listener = socket.create_server(("127.0.0.1", 0), backlog=n)
    conns, peers = [], []
    for _ in range(n):
        peer = socket.create_connection(listener.getsockname(), timeout=5)
        ours, _addr = listener.accept()
        ours.setblocking(False)
        conn = tcp.Connection(ours, protocol(), reactor=reactor)
        conn.connected = True
        conn.protocol.makeConnection(conn)
        conn.startReading()
        conns.append(conn)
        peers.append(peer)
    listener.close()
    for peer in peers:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
    return conns


def _turns_until(reactor: Any, turn: list[int], done: Callable[[], bool]) -> None:
    """Turn C{reactor} (its timed calls, then one poll) until C{done()}."""
    for _ in range(500):
        turn[0] += 1
        reactor.runUntilCurrent()
        reactor.doIteration(0 if reactor.getDelayedCalls() else 0.1)
        if done():
            return
    raise AssertionError("never done")


def test_the_quiet_reactor_tears_down_a_bounded_number_of_lost_connections_a_turn() -> None:
    from twisted.internet.error import ConnectionLost

    reactor = _quiet_reactor()
    n = internals.TEARDOWNS * 4 + 10
    turns: list[tuple[int, Any]] = []
    turn = [0]
    conns = _resetting_peers(reactor, n, lambda: _Teardown(turns, turn))
    _turns_until(reactor, turn, lambda: len(turns) == n)
    # every reset told as Twisted tells it (ConnectionLost, once each), sockets closed
    assert all(r is ConnectionLost for _, r in turns)
    assert all(c.disconnected and not hasattr(c, "socket") for c in conns)
    per_turn = [sum(1 for t, _ in turns if t == k) for k in range(turn[0] + 1)]
    # Twisted's own tore down each in the turn that read it: all n, in a turn or two
    assert max(per_turn) <= internals.TEARDOWNS
    assert not [c for c in reactor.getReaders() + reactor.getWriters() if c in conns]


def _first_poll_of_resets(
    n: int,
) -> tuple[Any, list[tuple[int, Any]], list[int], list[tcp.Connection]]:
    """C{n} peers reset, and the quiet reactor's first poll that read (some of) them."""
    reactor = _quiet_reactor()
    turns: list[tuple[int, Any]] = []
    turn = [0]
    conns = _resetting_peers(reactor, n, lambda: _Teardown(turns, turn))
    # one poll reads the resets (as a rule: all of them arrived), the first torn down
    for _ in range(20):
        turn[0] += 1
        reactor.doIteration(0.1)
        if turns:
            break
    return reactor, turns, turn, conns


def test_a_connection_waiting_for_its_teardown_can_still_be_written_and_closed() -> None:
    n = internals.TEARDOWNS + 20
    reactor, turns, turn, conns = _first_poll_of_resets(n)
    waiting = [c for c in conns if not c.disconnected]
    assert waiting, "all torn down at once"
    for c in waiting[: len(waiting) // 2]:
        internals.writer(c)(b"late reply")  # to a reset socket: fails, queued, discarded
    for c in waiting[len(waiting) // 2 :]:
        c.loseConnection()
    _turns_until(reactor, turn, lambda: len(turns) == n)
    for _ in range(3):  # (and nothing more)
        reactor.runUntilCurrent()
        reactor.doIteration(0)
    assert len(turns) == n  # once each
    assert not [c for c in reactor.getReaders() + reactor.getWriters() if c in conns]


def test_the_quiet_reactor_tears_down_the_waiting_ones_when_it_stops() -> None:
    n = internals.TEARDOWNS + 20
    reactor, turns, _turn, _conns = _first_poll_of_resets(n)
    assert 0 < len(turns) < n
    reactor.fireSystemEvent("shutdown")
    assert len(turns) == n


def test_twisted_ports_still_count_their_accepts_a_turn_in_number_accepts() -> None:
    # what CappedPort caps: if Twisted renames or drops it, the cap does nothing
    source = inspect.getsource(tcp.Port.doRead)
    assert "numAccepts = self.numberAccepts" in source, "Twisted changed tcp.Port.doRead"
    assert "self.numberAccepts += 20" in source, "Twisted changed tcp.Port.doRead"
    from twisted.internet.posixbase import PosixReactorBase

    assert "p = tcp.Port(port, factory, backlog, interface, self)" in inspect.getsource(
        PosixReactorBase.listenTCP
    ), "Twisted changed listenTCP: update QuietEPollReactor.listenTCP"


def test_the_quiet_reactor_accepts_a_bounded_number_of_connections_a_turn() -> None:
    from twisted.internet.protocol import Factory

    reactor = _quiet_reactor()
    made: list[Protocol] = []

    class Note(Protocol):
        def connectionMade(self) -> None:
            made.append(self)

    port = reactor.listenTCP(0, Factory.forProtocol(Note), backlog=500, interface="127.0.0.1")
    assert isinstance(port, internals.CappedPort)
    n = internals.ACCEPTS * 4
    peers = [socket.create_connection(("127.0.0.1", port.getHost().port)) for _ in range(n)]
    per_turn = []
    for _ in range(100):
        before = len(made)
        port.doRead()  # what the reactor calls each turn the port is readable
        per_turn.append(len(made) - before)
        if len(made) == n:
            break
    assert len(made) == n
    # Twisted's accepted 100 in the first turn, then 120, 140…
    assert max(per_turn) == internals.ACCEPTS
    for p in made:
        assert p.transport is not None
        p.transport.abortConnection()
    for peer in peers:
        peer.close()
    port.stopListening()


def test_the_quiet_reactor_serves_a_storm_of_ready_connections_over_short_turns() -> None:
    # n peers all ready at once (each a command, or a reset); a tenth of them chatty,
    # ready again as soon as they are read: every one is still served within a few
    # turns, POLL_EVENTS a turn at most (Twisted's took all n in one turn)
    reactor = _quiet_reactor()
    n = internals.POLL_EVENTS * 3 + 10
    turn = [0]
    first: dict[int, int] = {}
    per_turn: dict[int, int] = {}
    peers: dict[int, socket.socket] = {}

    class Note(Protocol):
        def __init__(self, i: int) -> None:
            self.i = i

        def dataReceived(self, data: bytes) -> None:
            first.setdefault(self.i, turn[0])
            per_turn[turn[0]] = per_turn.get(turn[0], 0) + 1
            if self.i % 10 == 0:
                peers[self.i].sendall(b"again")  # readable again by the next poll

    conns = []
    for i in range(n):
        conn, peer = _reading(reactor, Note(i))
        conns.append(conn)
        peers[i] = peer
    for peer in peers.values():
        peer.sendall(b"x")
    while len(first) < n and turn[0] < 50:
        turn[0] += 1
        reactor.doIteration(0.1)
    assert len(first) == n, f"{n - len(first)} connections never served in 50 turns"
    assert max(per_turn.values()) <= internals.POLL_EVENTS
    # the ones not taken come first in the next poll: nobody waits behind the chatty
    assert max(first.values()) <= n // internals.POLL_EVENTS + 2
    for conn in conns:
        conn.abortConnection()
    for peer in peers.values():
        peer.close()


@pytest.mark.parametrize(
    ("first", "installed", "name"),
    [("", "True", "QuietEPollReactor"), ("from twisted.internet import reactor", "False", "")],
)
def test_install_reactor_only_when_none_is_chosen(first: str, installed: str, name: str) -> None:
    import subprocess
    import sys

    if internals.reactor_class() is None:
        pytest.skip("no epoll on this system")
    script = (
        f"{first}\n"
        "from portsuite import internals\n"
        "print(internals.install_reactor())\n"
        "from twisted.internet import reactor\n"
        "print(type(reactor).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[0] == installed
    assert out[1] == (name or "EPollReactor")


def test_a_full_socket_pauses_the_streaming_producer_until_it_drains() -> None:
    """What a client that never reads makes the server hold: one read's rest at most."""
    conn, peer, reactor = _connection()
    producer = _Producer()
    conn.registerProducer(producer, True)
    write = internals.writer(conn)
    chunk = b"r" * internals.READ_SIZE
    sent = 0
    while "pause" not in producer.events and sent < 64 * internals.READ_SIZE:
        write(chunk)
        sent += len(chunk)
    assert producer.events == ["pause"]  # paused at the first write the socket did not take
    assert conn._tempDataLen <= len(chunk)  # Twisted's buffer holds that one's rest only
    assert conn in reactor.writers
    got = len(drain(conn, peer, sent))
    assert got == sent
    assert producer.events == ["pause", "resume"]  # drained: Twisted resumes it
    peer.close()


class _Lost(Protocol):
    reason: Any = None

    def connectionLost(self, reason: Any = None) -> None:
        self.reason = reason


def test_close_at_eof_closes_an_idle_connection_at_once_with_a_fin() -> None:
    conn, peer, reactor = _connection()
    proto = _Lost()
    conn.protocol = proto
    reactor.addReader(conn)
    peer.shutdown(socket.SHUT_WR)  # the peer is done sending
    assert internals.close_at_eof(conn)
    assert proto.reason is not None and proto.reason.check(ConnectionDone)
    assert peer.recv(10) == b""  # an orderly close (a reset would raise)
    assert conn not in reactor.readers and conn not in reactor.writers
    peer.close()


def test_close_at_eof_leaves_a_connection_with_bytes_to_send() -> None:
    conn, peer, reactor = _connection()
    proto = _Lost()
    conn.protocol = proto
    conn.write(b"reply")  # queued by Twisted until the socket is writable
    assert not internals.close_at_eof(conn)
    assert proto.reason is None and conn.connected
    conn.loseConnection()  # (what the wrapper does then: the reply goes first)
    conn.doWrite()
    assert peer.recv(10) == b"reply"
    peer.close()


def test_close_at_eof_is_not_for_other_transports() -> None:
    assert not internals.close_at_eof(StringTransport())
