"""
The data channel on its own: real loopback sockets, Twisted's fake clock and fake
descriptor set (MemoryReactorClock), so the timeouts are exact and nothing waits.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet import error
from twisted.internet.testing import MemoryReactorClock

from portsuite_services.ftp.data import DataChannel, PlainData


class _Session:
    service_name = "ftp"


def _channel(reactor: MemoryReactorClock, timeout: float = 30) -> DataChannel:
    ch = DataChannel(_Session(), "passive", reactor, "127.0.0.1", timeout)
    ch.listen(iter([0]), "127.0.0.1")
    return ch


def _connect(ch: DataChannel) -> socket.socket:
    """The client connects and the listener (readable, as a poll would say) accepts."""
    client = socket.create_connection(("127.0.0.1", ch.server_port or 0), timeout=10)
    assert ch.listening is not None
    ch.listening.doRead()
    assert ch.state == "open" and isinstance(ch.conn.transport, PlainData)  # type: ignore[union-attr]
    return client


def test_no_connection_within_the_timeout_fails_and_closes_the_port() -> None:
    reactor = MemoryReactorClock()
    ch = _channel(reactor, timeout=30)
    port = ch.server_port
    waited = ch.ready()
    reactor.advance(29.9)
    assert ch.state == "waiting"
    reactor.advance(0.1)
    assert ch.state == "failed" and ch.problem == "no data connection within 30s"
    failures: list[Any] = []
    waited.addErrback(failures.append)
    assert failures and failures[0].check(error.TimeoutError)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port or 0), timeout=5).close()
    assert not reactor.readers and not reactor.getDelayedCalls()


def test_a_stalled_transfer_is_cut_after_its_own_period() -> None:
    # the connection's 30 s timer becomes the transfer's 5 s watch: not 30 s after PASV
    reactor = MemoryReactorClock()
    ch = _channel(reactor, timeout=30)
    client = _connect(ch)
    reactor.advance(1)
    ch.stall_timer(5)
    reactor.advance(4.9)
    assert ch.state == "open"
    reactor.advance(0.1)
    assert ch.state == "closed" and ch.problem == "no byte moved for 5s"
    assert ch.finished.called and not ch.clean
    with pytest.raises(ConnectionResetError):
        client.recv(10)  # reset: the client sees the transfer cut, not a clean end
    client.close()
    assert not reactor.readers and not reactor.getDelayedCalls()


def test_a_slow_transfer_goes_on_while_bytes_move() -> None:
    # a watch longer than the connection's timeout: that timer fires first and only
    # moves the check to when it is due
    reactor = MemoryReactorClock()
    ch = _channel(reactor, timeout=30)
    client = _connect(ch)
    got: list[bytes] = []
    reactor.advance(1)
    ch.receive_into(got.append)
    ch.stall_timer(60)
    reactor.advance(29)  # t=30: the connection's timer, nothing to cut yet
    assert ch.state == "open"
    client.sendall(b"x" * 10)
    ch.conn.transport.doRead()  # type: ignore[union-attr]  # the poll said readable
    reactor.advance(31)  # t=61: bytes moved in the last 60 s
    assert ch.state == "open" and b"".join(got) == b"x" * 10
    reactor.advance(59.9)
    assert ch.state == "open"
    reactor.advance(0.1)  # t=121: none since 61
    assert ch.state == "closed" and ch.problem == "no byte moved for 60s"
    client.close()


def test_an_upload_ends_with_the_clients_close_in_the_same_wakeup() -> None:
    reactor = MemoryReactorClock()
    ch = _channel(reactor)
    client = _connect(ch)
    assert not reactor.readers  # no read before the upload asks: early bytes wait
    client.sendall(b"early and more")  # before the server reads (pipelined)
    client.close()
    got: list[bytes] = []
    ch.receive_into(got.append)
    ch.conn.transport.doRead()  # type: ignore[union-attr]
    assert b"".join(got) == b"early and more"
    assert ch.state == "closed" and ch.clean and ch.finished.called
    assert not reactor.readers


def test_a_write_the_socket_cannot_take_at_once_is_sent_before_the_close() -> None:
    reactor = MemoryReactorClock()
    ch = _channel(reactor)
    client = _connect(ch)
    transport = ch.conn.transport  # type: ignore[union-attr]
    payload = bytes(range(256)) * 80_000  # 20 MB: more than both kernel buffers hold
    transport.write(payload)
    transport.loseConnection()
    assert ch.state == "open" and transport in reactor.writers  # the rest waits
    got = bytearray()
    client.settimeout(10)
    while ch.state == "open":
        got += client.recv(1 << 20)
        transport.doWrite()  # the poll said writable
    while chunk := client.recv(1 << 20):
        got += chunk
    assert bytes(got) == payload
    assert ch.clean and not reactor.writers
    client.close()
