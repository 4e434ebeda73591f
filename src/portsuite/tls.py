"""
TLS on any TCP service: C{tls = { cert = "server.crt", key = "server.key" }}.

The listener then speaks TLS (RFC 8446 / RFC 5246) through pyOpenSSL and Twisted's
L{CertificateOptions}: TLS 1.2 at least, TLS 1.3 offered, no compression. The
service's own protocol, and the shared L{portsuite.wrappers.ServiceFactory}, stay
*inside* TLS, so counters, client lists and traces see the plaintext.

The certificate and key checks are L{portsuite.tlscheck}'s. L{wrap_factory} is
called by L{portsuite.suite} for each TCP listener.

A client that connects and then stalls in the handshake (C{nc}, a port scanner, a
slowloris) is dropped after C{handshake_timeout} seconds (default 10).

Only Twisted's public API: L{IHandshakeListener} and a L{TimeoutMixin} timer for the
handshake, L{IProtocolNegotiationFactory} for ALPN, an
L{IOpenSSLServerConnectionCreator} for the connections. The one private fallback
(an older pyOpenSSL) is in L{portsuite.internals}.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, cast

from OpenSSL import SSL
from twisted.internet.interfaces import (
    IHandshakeListener,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolNegotiationFactory,
)
from twisted.internet.protocol import Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from portsuite import internals
from portsuite.api import StartupError, TLSConfig, format_peer
from portsuite.tlscheck import Material, certificate_options, load, openssl_reason, utc_text

log = Logger(namespace="portsuite")

DEFAULT_HANDSHAKE_TIMEOUT = 10.0

# warn at startup when the certificate expires sooner than this
EXPIRY_WARNING = datetime.timedelta(days=14)


def _negotiation_factory(factory: Any) -> Any:
    """The first factory, from the outside in, that names its ALPN protocols."""
    for _ in range(5):
        if factory is None:
            return None
        found = IProtocolNegotiationFactory(factory, None)
        if found is not None:
            return found
        factory = getattr(factory, "wrappedFactory", None)
    return None


def alpn_select(factory: Any, offered: list[bytes]) -> Any:
    """
    ALPN (RFC 7301) on the server: the first protocol the service's factory names
    through L{IProtocolNegotiationFactory} (twisted.web names http/1.1) that the
    client offered; else no ALPN at all, and the handshake goes on, as with a server
    that never heard of ALPN.

    Twisted's own callback answers "no common protocol" with an empty name, which
    OpenSSL 3 turns into an internal-error alert: every client that offers ALPN (curl,
    browsers, C{openssl s_client -alpn}) then fails on a service that names none.
    Twisted also only asks the factory right inside TLS, which here is the shared
    wrapper, never the service's own factory.
    """
    negotiation = _negotiation_factory(factory)
    if negotiation is not None:
        for proto in negotiation.acceptableProtocols():
            if proto in offered:
                return proto
    return SSL.NO_OVERLAPPING_PROTOCOLS


def server_context(options: CertificateOptions, select: Any) -> SSL.Context:
    """
    The OpenSSL context of C{options} with C{select} as its ALPN callback.

    The public way first: the context C{getContext()} returns stays mutable until a
    connection is made from it (pyOpenSSL >= 26.2 refuses changes after that). Should
    a pyOpenSSL mark it used earlier (some checked the cipher list with a throwaway
    connection, which is why Twisted grew C{_makeContext(skipCiphers=True)}),
    L{portsuite.internals.tls_context} builds one through that private method, the
    callback set before the cipher list. Where neither works, Twisted's own ALPN
    answer stays, and a warning says what breaks.
    """
    ctx = options.getContext()
    try:
        ctx.set_alpn_select_callback(select)
        return ctx
    except ValueError:  # "Context has already been used to create a Connection"
        pass
    fixed = internals.tls_context(options, lambda c: c.set_alpn_select_callback(select))
    if fixed is not None:
        return fixed
    log.warn(
        "TLS: this Twisted/pyOpenSSL pair keeps Twisted's ALPN answer: clients that "
        "offer ALPN (curl, browsers) fail on services that name no ALPN protocol"
    )
    return ctx


@implementer(IOpenSSLServerConnectionCreator)
class ServerConnections:
    """
    The TLS connections of one listener: Twisted's L{CertificateOptions} settings,
    with L{alpn_select} asking the service's factory (found from C{factory()}, the
    factory right inside TLS) which protocols it speaks.
    """

    def __init__(self, options: CertificateOptions, factory: Callable[[], Any]):
        self.options = options
        self.context = server_context(options, self._select)
        self._factory = factory

    def _select(self, conn: SSL.Connection, offered: list[bytes]) -> Any:
        return alpn_select(self._factory(), offered)

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.context, None)


def server_options(material: Material) -> CertificateOptions:
    """Twisted's TLS server options for C{material} (the context is L{server_context})."""
    return certificate_options(material)


_HINTS = {
    "unsupported protocol": "the client offered only TLS older than 1.2; portsuite needs TLS 1.2 or 1.3",
    "http request": "the client spoke plain HTTP to a TLS port; use https://",
    "wrong version number": "the client did not speak TLS; use a TLS client (curl https://, redis-cli --tls, openssl s_client)",
    "packet length too long": "the client did not speak TLS; use a TLS client (curl https://, redis-cli --tls, openssl s_client)",
    "no shared cipher": "the client and the suite share no cipher",
}


def handshake_hint(reason: str) -> str:
    for key, hint in _HINTS.items():
        if key in reason:
            return f" ({hint})"
    if "alert" in reason:
        return " (the client rejected the certificate; give it the CA: --cacert ca.crt)"
    return ""


# -- the listener --------------------------------------------------------------------


def _service_name(factory: Any) -> str:
    stats = getattr(factory.wrappedFactory, "stats", None)
    return getattr(stats, "name", None) or factory.logPrefix()


def plain_text_reply(factory: Any, data: bytes) -> bytes | None:
    """
    What to answer a client whose first bytes are plain text, not a TLS record
    (C{http://} typed for an C{https://} port): the service's own words, from the
    first factory, outside in, that has C{reply_to_plain_text(data)}; else None.
    """
    if not data or data[0] == 0x16:  # a TLS handshake record
        return None
    for _ in range(5):
        if factory is None:
            return None
        reply = getattr(factory, "reply_to_plain_text", None)
        if reply is not None:
            return reply(data)  # type: ignore[no-any-return]
        factory = getattr(factory, "wrappedFactory", None)
    return None


@implementer(IHandshakeListener)
class HandshakeGuard(Protocol, TimeoutMixin):
    """
    The protocol right inside TLS (RFC 8446), in front of the service's wrapped
    protocol: drops a client that has not finished the handshake after the factory's
    C{handshake_timeout} (C{nc}, a port scanner, a slowloris), and logs why a
    handshake failed, with a hint. Twisted tells it through L{IHandshakeListener};
    a failed handshake's L{SSL.Error} is the reason its C{connectionLost} gets.

    The service's protocol gets the TLS transport itself: its writes never pass here.
    """

    transport: Any
    handshake_done = False

    def __init__(self, factory: TLSFactory, wrappedProtocol: Any):
        self.factory = factory
        self.wrappedProtocol = wrappedProtocol
        self.callLater = factory.reactor.callLater  # type: ignore[method-assign]

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        if self.factory.handshake_timeout:
            self.setTimeout(self.factory.handshake_timeout)
        self.wrappedProtocol.makeConnection(transport)

    def logPrefix(self) -> str:
        prefix = getattr(self.wrappedProtocol, "logPrefix", None)
        return prefix() if prefix is not None else self.wrappedProtocol.__class__.__name__

    def dataReceived(self, data: bytes) -> None:
        self.wrappedProtocol.dataReceived(data)

    def handshakeCompleted(self) -> None:
        self.handshake_done = True
        self.setTimeout(None)
        if IHandshakeListener.providedBy(self.wrappedProtocol):
            self.wrappedProtocol.handshakeCompleted()

    def _peer(self) -> str:
        try:
            return format_peer(self.transport.getPeer())
        except Exception:
            return "?"

    def _count_failure(self) -> None:
        """One more failed handshake in the service's counters (the dashboard shows it)."""
        stats = getattr(self.factory.wrappedFactory, "stats", None)
        if stats is not None and hasattr(stats, "tls_failed"):
            stats.tls_failed += 1

    def timeoutConnection(self) -> None:
        self._count_failure()
        log.info(
            "{service}: {peer} did not finish the TLS handshake in {timeout}s, closing",
            service=_service_name(self.factory),
            peer=self._peer(),
            timeout=self.factory.handshake_timeout,
        )
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.setTimeout(None)
        if not self.handshake_done and reason is not None and reason.check(SSL.Error):
            text = openssl_reason(reason.value)
            self._count_failure()
            log.info(
                "{service}: TLS handshake with {peer} failed: {reason}{hint}",
                service=_service_name(self.factory),
                peer=self._peer(),
                reason=text,
                hint=handshake_hint(text),
            )
        self.wrappedProtocol.connectionLost(reason)


class PlainTextAwareTLS(BufferingTLSTransport):
    """
    Twisted's buffering TLS transport that answers a first packet of plain text (not
    a TLS record) with the service's own words (L{plain_text_reply}) instead of a
    silent close: like nginx's "400 The plain HTTP request was sent to HTTPS port".
    """

    _first_bytes = True

    def dataReceived(self, data: bytes) -> None:
        if self._first_bytes:
            self._first_bytes = False
            reply = plain_text_reply(self.factory.wrappedFactory, data)
            if reply is not None:
                transport: Any = self.transport
                transport.write(reply)
                transport.loseConnection()
                return
        super().dataReceived(data)


class TLSFactory(TLSMemoryBIOFactory):
    """
    TLS server side around a service's (wrapped) factory: Twisted's buffering TLS
    transport, L{HandshakeGuard} right inside it, connections from L{ServerConnections}.
    """

    protocol = PlainTextAwareTLS

    def __init__(
        self,
        options: CertificateOptions,
        wrappedFactory: Any,
        reactor: Any,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ):
        self.connections = ServerConnections(options, lambda: self.wrappedFactory)
        # zope's @implementer is invisible to mypy: say what ServerConnections provides
        creator = cast(IOpenSSLServerConnectionCreator, self.connections)
        super().__init__(creator, False, wrappedFactory, clock=reactor)
        self.reactor = reactor
        self.handshake_timeout = handshake_timeout

    def buildProtocol(self, addr: Any) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        guard = cast(IProtocol, HandshakeGuard(self, inner))  # @implementer: invisible to mypy
        return self.protocol(self, guard)


def wrap_factory(factory: Any, tls: TLSConfig, reactor: Any) -> TLSFactory:
    """
    Put TLS around C{factory} (the service's L{ServiceFactory}, which stays inside).

    @raise portsuite.suite.StartupError: the files changed since the config was
        checked and no longer work (one line, with the fix).
    """
    material, errors = load(tls)
    if material is None:
        raise StartupError(f"tls: {errors[0] if errors else 'cannot load ' + str(tls.cert)}")
    now = datetime.datetime.now(datetime.UTC)
    service = getattr(getattr(factory, "stats", None), "name", "?")
    if material.cert.not_valid_before_utc > now:
        log.warn(
            "{service}: cert {cert} is not valid before {when}; clients will refuse it "
            "until then (check this machine's clock)",
            service=service,
            cert=str(tls.cert),
            when=utc_text(material.cert.not_valid_before_utc),
        )
    elif material.cert.not_valid_after_utc - now < EXPIRY_WARNING:
        log.warn(
            "{service}: cert {cert} expires on {when}; renew it soon (portsuite cert --force)",
            service=service,
            cert=str(tls.cert),
            when=utc_text(material.cert.not_valid_after_utc),
        )
    timeout = getattr(tls, "handshake_timeout", None) or DEFAULT_HANDSHAKE_TIMEOUT
    return TLSFactory(server_options(material), factory, reactor, handshake_timeout=timeout)
