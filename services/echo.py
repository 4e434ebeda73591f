"""
Echo, RFC 862: the server sends back every byte it receives, on TCP and UDP.

The TCP side has backpressure: while the client does not read, the echoes pile up
in the server's send buffer; once that is full the server stops reading from the
client, so a client that sends but never reads cannot grow the server's memory.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol, ServerFactory
from zope.interface import implementer

from portsuite.api import ServiceContext, ServiceType
from portsuite.api.i18n import N_


@implementer(IPushProducer)
class Echo(Protocol):
    """Echo (RFC 862) over TCP, with backpressure."""

    transport: Any

    def connectionMade(self) -> None:
        # We produce what we write from what we read: when the transport's write
        # buffer is full it pauses us, and we pause reading.
        self.transport.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


class EchoDatagram(DatagramProtocol):
    """Echo (RFC 862) over UDP: each datagram is sent back to where it came from."""

    transport: Any

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.transport.write(data, addr)


def _factory(ctx: ServiceContext) -> Factory:
    return ServerFactory.forProtocol(Echo)


def _datagram(ctx: ServiceContext) -> DatagramProtocol:
    return EchoDatagram()


ECHO = ServiceType(
    name="echo",
    description=N_("Echo: sends back every byte it receives"),
    default_port=7,
    transports=frozenset({"tcp", "udp"}),
    tcp_factory=_factory,
    udp_protocol=_datagram,
    rfc="RFC 862",
    stateless=True,
)
