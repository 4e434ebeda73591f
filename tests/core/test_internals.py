"""
The one use of Twisted's private API (portsuite.internals): if a Twisted upgrade
changes the fields it reads, these tests fail loudly, and the wrapper quietly takes
the public path meanwhile.
"""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor, StringTransport

from portsuite import internals


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
