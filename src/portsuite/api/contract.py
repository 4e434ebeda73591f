"""
The service-type contract: what a kind of server declares, and what it is given.

A L{ServiceType} knows its transports, its default port, its options and how to build
its Twisted factory (or datagram protocol) from a L{ServiceContext}. Built-in types and
plugins alike are nothing more than a C{ServiceType} value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.protocol import DatagramProtocol, Factory

from portsuite.api.settings import ServiceConfig
from portsuite.api.stats import ServiceStats

TRANSPORTS = frozenset({"tcp", "udp"})


@attrs.frozen
class Option:
    """
    One type-specific config key of a service, e.g. C{root} of C{http}.

    @ivar kind: C{str}, C{int}, C{float}, C{bool}, C{Path} (resolved against the
        config file's folder), C{list} (of strings) or C{dict} (a table, passed as is).
    @ivar check: optional validator of the converted value; returns an error text
        ("must be …") or None.
    @ivar choices: allowed values, if the option is an enumeration.
    """

    name: str
    kind: type = str
    default: Any = None
    required: bool = False
    help: str = ""
    check: Callable[[Any], str | None] | None = None
    choices: tuple[Any, ...] | None = None


@attrs.define
class ServiceContext:
    """
    What a service type gets when the suite builds it.

    @ivar reactor: the reactor (or a clock in tests); never import the global one.
    @ivar config: this service's validated L{ServiceConfig}.
    @ivar stats: this service's counters, shared with the dashboard.
    @ivar suite: the running suite (for types that show the whole suite, like the
        dashboard), or None when a type is built alone in a test.
    @ivar accounts: the suite's C{[users]} accounts narrowed to this service's
        C{users = [...]} (a L{portsuite.api.accounts.Accounts}), or None.
    """

    reactor: Any
    config: ServiceConfig
    stats: ServiceStats
    suite: Any = None
    accounts: Any = None

    @property
    def options(self) -> Mapping[str, Any]:
        return self.config.options

    def publish(self, path: str, page: Any) -> None:
        """
        Show a C{twisted.web} resource on the dashboard of every http service of the
        suite, at C{/_portsuite/PATH} (e.g. C{"api/mail"} for a JSON API, C{"mail"}
        for a page). A service built alone (no suite) publishes nothing.
        """
        if self.suite is not None:
            self.suite.published[path.strip("/")] = page


def no_refusal(reason: str) -> bytes | None:
    """For protocols with no room for a notice: a refused client is closed silently."""
    return None


def line_refusal(reason: str) -> bytes:
    """A one-line notice for text protocols: what a telnet user sees when refused."""
    return f"portsuite: {reason}\r\n".encode()


@attrs.frozen
class ServiceType:
    """
    A kind of server.

    @ivar tcp_factory: builds the C{ServerFactory} for a TCP (or TLS, unix) listener.
    @ivar udp_protocol: builds the C{DatagramProtocol} for a UDP listener.
    @ivar refusal: the bytes a client refused by a limit is sent before the close
        (C{reason} is e.g. "too many connections"), or None to close silently where
        the protocol has no room for a notice.
    @ivar check: optional cross-option validation of a whole service; returns error
        texts, each "key: problem; fix".
    @ivar udp_default: listen on UDP too unless the config says C{udp = false} (DNS).
    @ivar udp_policy: the type's own settings of the suite's UDP guards, by name
        (C{rate}, C{burst}, C{total_rate}, C{total_burst}, C{max_reply}): for a type
        that limits its answers itself (DNS's response rate limiting).
    @ivar trace_hex: the directions of a transcript (C{trace = true}) that are binary
        data and always shown as hex: C{"s2c"} what the server sends, C{"c2s"} what
        clients send (e.g. C{frozenset({"s2c"})} for the time service's 4-byte
        replies); other chunks are shown as text unless they are mostly binary.
    @ivar notes: optional lines C{portsuite check} shows about a service, e.g. the
        ssh host keys' fingerprints ("what ssh will ask you to trust").
    @ivar stateless: True when each connection stands alone (no state shared between
        clients), so the service may run in several worker processes.
    @ivar source: where the registry found it (filled in by the registry).
    """

    name: str
    description: str
    default_port: int | None
    transports: frozenset[str] = frozenset({"tcp"})
    options: tuple[Option, ...] = ()
    tcp_factory: Callable[[ServiceContext], Factory] | None = None
    udp_protocol: Callable[[ServiceContext], DatagramProtocol] | None = None
    refusal: Callable[[str], bytes | None] = line_refusal
    check: Callable[[ServiceConfig], list[str]] | None = None
    rfc: str = ""
    udp_default: bool = False
    notes: Callable[[ServiceConfig], list[str]] | None = None
    udp_policy: Mapping[str, float] = attrs.field(factory=dict)
    stateless: bool = False
    trace_hex: frozenset[str] = frozenset()
    source: str = "built-in"

    def option(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None
