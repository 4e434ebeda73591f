"""
The wrapper's one write path: write() and writeSequence() (what twisted.web's responses
use) both leave at once on an idle TCP connection, counted exactly.
"""

from __future__ import annotations

import socket
from typing import Any

from corehelp import drain
from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock

from portsuite.api import ServiceStats
from portsuite.wrappers import ServiceFactory


class _Conn(tcp.Connection):
    def getPeer(self) -> Any:
        return IPv4Address("TCP", "127.0.0.1", 40000)

    def getHost(self) -> Any:
        return IPv4Address("TCP", "127.0.0.1", 7)


def _wrapped(
    protocol: type[Protocol] = Protocol, **limits: Any
) -> tuple[Any, _Conn, socket.socket, MemoryReactorClock, ServiceStats]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    reactor = MemoryReactorClock()
    stats = ServiceStats(name="s", type="echo")
    factory = ServiceFactory(Factory.forProtocol(protocol), stats, reactor, **limits)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    conn = _Conn(ours, proto, reactor=reactor)
    conn.connected = True
    proto.makeConnection(conn)
    return proto, conn, peer, reactor, stats


def test_write_sequence_leaves_at_once_in_one_piece_and_is_counted() -> None:
    proto, conn, peer, reactor, stats = _wrapped()
    proto.writeSequence(iter([b"HTTP/1.1 200 OK\r\n", b"\r\n", b"body"]))
    assert peer.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nbody"
    assert conn not in reactor.writers  # no writable event was needed
    proto.write(b"!")
    assert peer.recv(100) == b"!"
    assert stats.bytes_out == len(b"HTTP/1.1 200 OK\r\n\r\nbody!")
    peer.close()


def test_write_sequence_behind_queued_bytes_keeps_the_order() -> None:
    proto, conn, peer, reactor, stats = _wrapped()
    conn.write(b"first ")  # queued by the public path
    proto.writeSequence([b"sec", b"ond"])
    conn.doWrite()
    got = b""
    while len(got) < 12:
        got += peer.recv(100)
    assert got == b"first second"
    peer.close()


def test_a_full_socket_counts_every_byte_once_whether_sent_or_queued() -> None:
    proto, conn, peer, reactor, stats = _wrapped()
    chunk = bytes(range(256)) * 1024  # 256 KiB: more than a socketpair takes at once
    written = 0
    for _ in range(8):
        proto.write(chunk)
        written += len(chunk)
    proto.writeSequence([b"end", b"!"])
    written += 4
    assert conn in reactor.writers  # some of it waits in Twisted's buffer
    assert stats.bytes_out == written  # counted when written, sent or queued
    got = len(drain(conn, peer, written))
    assert got == written == stats.bytes_out
    peer.close()


def test_writes_reset_the_idle_timer_on_a_real_connection() -> None:
    """With idle_timeout, write() still goes through the wrapper's timer reset."""
    proto, conn, peer, reactor, stats = _wrapped(idle_timeout=10)
    reactor.advance(8)
    proto.write(b"still here")
    assert peer.recv(100) == b"still here"
    reactor.advance(8)  # 16 s since connecting, 8 since the write
    assert not conn.disconnecting
    reactor.advance(3)
    assert conn.disconnecting  # idle for 11 s: closed
    assert stats.bytes_out == len(b"still here")
    peer.close()


def test_reads_without_a_timer_are_counted_and_a_crash_closes_only_that_connection() -> None:
    """No idle_timeout: each read goes through the wrapper's _Received, as before."""
    seen: list[bytes] = []

    class Boom(Protocol):
        def dataReceived(self, data: bytes) -> None:
            seen.append(data)
            if data == b"boom":
                raise ValueError("boom")

    proto, conn, peer, reactor, stats = _wrapped(Boom)
    assert type(proto.dataReceived.__self__).__name__ == "_Received"
    proto.dataReceived(b"hello")
    assert seen == [b"hello"] and proto.client.bytes_in == 5
    assert not conn.disconnecting
    proto.dataReceived(b"boom")
    assert conn.disconnecting  # closed, logged, counted
    assert stats.errors == 1 and proto.client.bytes_in == 9
    peer.close()
