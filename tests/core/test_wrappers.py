"""The shared wrapper every service gets: counters, clients, limits, error guard."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher

from portsuite.api import ServiceStats, line_refusal
from portsuite.wrappers import ServiceFactory
from portsuite_services.echo import Echo


def make(inner: type[Protocol] = Echo, **limits: Any) -> tuple[ServiceFactory, MemoryReactorClock]:
    clock = MemoryReactorClock()
    factory = ServiceFactory(
        ServerFactory.forProtocol(inner),
        ServiceStats("svc", "echo"),
        clock,
        refusal=line_refusal,
        **limits,
    )
    factory.doStart()
    return factory, clock


def connect(
    factory: ServiceFactory, host: str = "127.0.0.1", port: int = 50000
) -> tuple[Any, StringTransport]:
    addr = IPv4Address("TCP", host, port)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def close(proto: Any) -> None:
    proto.connectionLost(None)


def test_counts_bytes_each_way_and_lists_clients() -> None:
    factory, clock = make()
    p1, t1 = connect(factory, port=50001)
    p2, t2 = connect(factory, port=50002)
    clock.advance(2)
    p1.dataReceived(b"hello")
    assert t1.value() == b"hello"
    stats = factory.stats
    assert (stats.open, stats.total, stats.bytes_in, stats.bytes_out) == (2, 2, 5, 5)
    clients = {c["peer"]: c for c in stats.as_dict(clock.seconds())["clients"]}
    assert clients["127.0.0.1:50001"]["bytes_in"] == 5
    assert clients["127.0.0.1:50001"]["seconds"] == 2
    close(p1)
    assert stats.open == 1 and stats.total == 2
    assert [c.peer for c in stats.clients.values()] == ["127.0.0.1:50002"]


def test_max_connections_tells_the_client_why_and_others_keep_working() -> None:
    factory, _ = make(max_connections=2)
    p1, t1 = connect(factory)
    connect(factory)
    p3, t3 = connect(factory)
    assert b"too many connections (max_connections = 2)" in t3.value()
    assert t3.disconnecting
    assert factory.stats.refused == 1 and factory.stats.open == 2
    p1.dataReceived(b"still here")
    assert t1.value() == b"still here"
    close(p1)
    p4, t4 = connect(factory)
    assert not t4.disconnecting


def test_max_per_host_counts_each_address_separately() -> None:
    factory, _ = make(max_per_host=1)
    connect(factory, host="10.0.0.1")
    _, refused = connect(factory, host="10.0.0.1", port=50009)
    _, other = connect(factory, host="10.0.0.2")
    assert b"too many connections from 10.0.0.1 (max_per_host = 1)" in refused.value()
    assert refused.disconnecting and not other.disconnecting


def test_idle_timeout_closes_only_idle_clients() -> None:
    factory, clock = make(idle_timeout=30)
    busy, tb = connect(factory, port=1)
    _, ti = connect(factory, port=2)
    for _ in range(5):
        clock.advance(10)
        busy.dataReceived(b"x")
    assert ti.disconnecting
    assert not tb.disconnecting
    clock.advance(30)
    assert tb.disconnecting


class Fragile(Protocol):
    def dataReceived(self, data: bytes) -> None:
        if data == b"boom":
            raise ValueError("bad input")
        self.transport.write(data)


def test_exception_closes_that_connection_only_and_names_the_service() -> None:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        factory, _ = make(Fragile)
        bad, tbad = connect(factory, port=1)
        good, tgood = connect(factory, port=2)
        bad.dataReceived(b"boom")
        good.dataReceived(b"fine")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert tbad.disconnecting
    assert tgood.value() == b"fine" and not tgood.disconnecting
    assert factory.stats.errors == 1
    failures = [e for e in events if "log_failure" in e]
    assert failures and failures[0]["service"] == "svc"
    assert failures[0]["log_failure"].check(ValueError)


def test_echo_registers_backpressure_and_pauses_reading() -> None:
    factory, _ = make()
    proto, transport = connect(factory)
    assert transport.producer is not None and transport.streaming
    transport.producer.pauseProducing()  # what a full send buffer does
    assert transport.producerState == "paused"
    transport.producer.resumeProducing()
    assert transport.producerState == "producing"
