"""ROT13 over TCP: each line comes back with its letters turned 13 places."""

from __future__ import annotations

import codecs

from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import LineReceiver

from portsuite.api import ServiceContext, ServiceType


class Rot13(LineReceiver):
    """Answers each line in ROT13 (apply it twice to get the line back)."""

    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        self.sendLine(codecs.encode(text, "rot13").encode("utf-8"))


def _factory(ctx: ServiceContext) -> ServerFactory:
    return ServerFactory.forProtocol(Rot13)


ROT13 = ServiceType(
    name="rot13",
    description="ROT13: each line comes back with its letters rotated by 13",
    default_port=7013,
    tcp_factory=_factory,
)
