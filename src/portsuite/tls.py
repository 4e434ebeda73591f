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
"""

from __future__ import annotations

import datetime
from typing import Any

from OpenSSL import SSL
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure

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


def _alpn_select(conn: SSL.Connection, offered: list[bytes]) -> Any:
    """
    ALPN (RFC 7301) on the server: the first protocol the service names (twisted.web
    names http/1.1) that the client offered; else no ALPN at all, and the handshake
    goes on, as with a server that never heard of ALPN.
    """
    tls_protocol = conn.get_app_data()
    factory = getattr(getattr(tls_protocol, "factory", None), "wrappedFactory", None)
    negotiation = _negotiation_factory(factory)
    if negotiation is not None:
        for proto in negotiation.acceptableProtocols():
            if proto in offered:
                return proto
    return SSL.NO_OVERLAPPING_PROTOCOLS


class ServerOptions(CertificateOptions):
    """
    L{CertificateOptions} whose ALPN answer works with OpenSSL 3: Twisted's own
    callback answers "no common protocol" with an empty name, which OpenSSL turns
    into an internal-error alert, failing every client that offers ALPN (curl,
    browsers) on a service that names no protocol.
    """

    def _makeContext(self, skipCiphers: bool = False) -> SSL.Context:
        try:
            # keep the context mutable until our callback is in place
            ctx = super()._makeContext(skipCiphers=True)
            ciphers_later = True
        except TypeError:  # a Twisted without skipCiphers: contexts stay mutable
            ctx = super()._makeContext()
            ciphers_later = False
        ctx.set_alpn_select_callback(_alpn_select)
        if ciphers_later and not skipCiphers:
            ctx.set_cipher_list(self._cipherString.encode("ascii"))
        return ctx


def server_options(material: Material) -> CertificateOptions:
    """Twisted's TLS server options for C{material}, with the ALPN answer fixed."""
    return certificate_options(material, ServerOptions)


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


class TimedTLSProtocol(BufferingTLSTransport):
    """
    TLS (RFC 8446) around one connection, dropped if the handshake takes longer than
    the factory's C{handshake_timeout}; a failed handshake is logged with its reason.
    """

    factory: TLSFactory
    _handshake_timer: Any = None

    def makeConnection(self, transport: Any) -> None:
        timeout = self.factory.handshake_timeout
        if timeout:
            self._handshake_timer = self.factory.reactor.callLater(timeout, self._handshakeExpired)
        super().makeConnection(transport)

    def _checkHandshakeStatus(self) -> None:
        super()._checkHandshakeStatus()
        if self._handshakeDone:
            self._cancelHandshakeTimer()

    def _cancelHandshakeTimer(self) -> None:
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def _peer(self) -> str:
        transport: Any = self.transport
        try:
            return format_peer(transport.getPeer())
        except Exception:
            return "?"

    def _handshakeExpired(self) -> None:
        self._handshake_timer = None
        if self._handshakeDone or self._lostTLSConnection:
            return
        log.info(
            "{service}: {peer} did not finish the TLS handshake in {timeout}s, closing",
            service=_service_name(self.factory),
            peer=self._peer(),
            timeout=self.factory.handshake_timeout,
        )
        self.abortConnection()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._cancelHandshakeTimer()
        why = self._reason or reason
        if not self._handshakeDone and why is not None and why.check(SSL.Error):
            text = openssl_reason(why.value)
            log.info(
                "{service}: TLS handshake with {peer} failed: {reason}{hint}",
                service=_service_name(self.factory),
                peer=self._peer(),
                reason=text,
                hint=handshake_hint(text),
            )
        super().connectionLost(reason)


class TLSFactory(TLSMemoryBIOFactory):
    """TLS server side around a service's (wrapped) factory, with a handshake timeout."""

    protocol = TimedTLSProtocol

    def __init__(
        self,
        options: Any,
        wrappedFactory: Any,
        reactor: Any,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ):
        super().__init__(options, False, wrappedFactory, clock=reactor)
        self.reactor = reactor
        self.handshake_timeout = handshake_timeout

    def buildProtocol(self, addr: Any) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)


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
