"""
TLS on any TCP service: C{tls = { cert = "server.crt", key = "server.key" }}.

The listener then speaks TLS (RFC 8446 / RFC 5246) through pyOpenSSL and Twisted's
L{CertificateOptions}: TLS 1.2 at least, TLS 1.3 offered, no compression. The
service's own protocol, and the shared L{portsuite.wrappers.ServiceFactory}, stay
*inside* TLS, so counters, client lists and traces see the plaintext.

L{check} is called by L{portsuite.config} for every service with C{tls}: each problem
comes back as one C{"problem; fix"} line, never a traceback. L{wrap_factory} is
called by L{portsuite.suite} for each TCP listener.

A client that connects and then stalls in the handshake (C{nc}, a port scanner, a
slowloris) is dropped after C{handshake_timeout} seconds (default 10).
"""

from __future__ import annotations

import datetime
import stat
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure

from portsuite.config import TLSConfig

log = Logger(namespace="portsuite")

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
MINIMUM_VERSION = TLSVersion.TLSv1_2
# warn at startup when the certificate expires sooner than this
EXPIRY_WARNING = datetime.timedelta(days=14)

_MAKE_ONE = "portsuite cert makes a CA and a cert/key for localhost"


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


@attrs.frozen
class Material:
    """A loaded, matching certificate and key, plus the chain sent after the leaf."""

    cert: x509.Certificate
    key: Any  # a cryptography private key
    chain: tuple[x509.Certificate, ...] = ()

    def options(self) -> CertificateOptions:
        """Twisted's TLS server options: TLS >= 1.2, 1.3 offered, no compression."""
        try:
            # pyOpenSSL >= 24.3 takes cryptography objects (and deprecates its own)
            options = self._options(self.key, self.cert, list(self.chain))
            options.getContext()
        except TypeError:
            options = self._options(
                crypto.PKey.from_cryptography_key(self.key),
                crypto.X509.from_cryptography(self.cert),
                [crypto.X509.from_cryptography(c) for c in self.chain],
            )
        return options

    @staticmethod
    def _options(key: Any, cert: Any, chain: list[Any]) -> CertificateOptions:
        return ServerOptions(
            privateKey=key,
            certificate=cert,
            extraCertChain=chain,
            raiseMinimumTo=MINIMUM_VERSION,
        )


# -- loading and checking ------------------------------------------------------------


def _read(path: Path, what: str, errors: list[str]) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        errors.append(
            f"{what} file {path} does not exist; fix the path (relative to the "
            f"config file) or make one: {_MAKE_ONE}"
        )
    except IsADirectoryError:
        errors.append(f"{what} file {path} is a folder; point {what} at the PEM file itself")
    except OSError as e:
        errors.append(
            f"cannot read {what} file {path} ({e.strerror}); let the user running "
            f"the suite read it (see ls -l {path})"
        )
    return None


def _certs(data: bytes, path: Path, what: str, errors: list[str]) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if b"PRIVATE KEY-----" in data:
            errors.append(
                f"{what} file {path} holds a private key, not a certificate; "
                f"are cert and key swapped?"
            )
        else:
            errors.append(
                f"{what} file {path} holds no PEM certificate "
                f"(-----BEGIN CERTIFICATE-----); point {what} at a PEM certificate "
                f"(convert DER with: openssl x509 -inform der -in FILE -out FILE.pem)"
            )
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        errors.append(
            f"{what} file {path} does not parse as PEM certificates ({e}); "
            f"replace it with an intact copy ({_MAKE_ONE})"
        )
        return []


def _key_mode(path: Path, errors: list[str]) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # reported by _read
    if mode & 0o077:
        who = "readable" if mode & 0o044 else "accessible"
        errors.append(
            f"private key {path} is {who} by group or others (mode {mode:04o}); "
            f"make it private: chmod 600 {path}"
        )


def _private_key(data: bytes, path: Path, errors: list[str]) -> Any:
    if b"PRIVATE KEY-----" not in data:
        if b"-----BEGIN CERTIFICATE-----" in data:
            errors.append(
                f"key file {path} holds a certificate, not a private key; point key at "
                f"the cert's private key (are cert and key swapped?)"
            )
        else:
            errors.append(
                f"key file {path} holds no PEM private key (-----BEGIN PRIVATE KEY-----); "
                f"point key at the private key of the cert"
            )
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        errors.append(
            f"private key {path} is protected by a passphrase, which the suite cannot "
            f"ask for; write a copy without it: openssl pkey -in {path} -out NEW.key "
            f"(then chmod 600 NEW.key)"
        )
    except (ValueError, Exception) as e:  # unsupported algorithm, corrupt file
        errors.append(
            f"private key {path} does not parse ({e}); replace it with an intact copy ({_MAKE_ONE})"
        )
    return None


def _public_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _utc(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _is_portsuite_ca(cert: x509.Certificate) -> bool:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    orgs = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return ca and any(o.value == "portsuite" for o in orgs)


def load(tls: TLSConfig, now: datetime.datetime | None = None) -> tuple[Material | None, list[str]]:
    """
    Read the cert, key and chain of C{tls}; every problem is one C{"problem; fix"} text.

    An expired certificate is an error (every client would refuse it; the fix is a new
    one); a certificate that is not valid yet, or expires soon, is only logged at start.
    """
    errors: list[str] = []
    now = now or datetime.datetime.now(datetime.UTC)
    cert_data = _read(tls.cert, "cert", errors)
    key_data = _read(tls.key, "key", errors)
    if key_data is not None and b"PRIVATE KEY-----" in key_data:
        _key_mode(tls.key, errors)
    chain_data = _read(tls.chain, "chain", errors) if tls.chain is not None else None
    certs = _certs(cert_data, tls.cert, "cert", errors) if cert_data is not None else []
    key = _private_key(key_data, tls.key, errors) if key_data is not None else None
    chain: list[x509.Certificate] = certs[1:]
    if chain_data is not None:
        assert tls.chain is not None
        chain += _certs(chain_data, tls.chain, "chain", errors)
    leaf = certs[0] if certs else None
    if leaf is not None and key is not None:
        try:
            match = _public_der(leaf.public_key()) == _public_der(key.public_key())
        except Exception:
            match = False
        if not match:
            errors.append(
                f"cert {tls.cert} and key {tls.key} do not belong together (the cert "
                f"holds another public key); use the key made with this cert "
                f"(portsuite cert writes server.crt with server.key)"
            )
    if leaf is not None and _is_portsuite_ca(leaf):
        errors.append(
            f"cert {tls.cert} is the local CA that portsuite cert made, not a server "
            f"certificate; use server.crt and server.key from the same folder (clients "
            f"get ca.crt)"
        )
    if leaf is not None and leaf.not_valid_after_utc < now:
        errors.append(
            f"cert {tls.cert} expired on {_utc(leaf.not_valid_after_utc)}; clients "
            f"refuse it: make a new one (portsuite cert --force for localhost)"
        )
    if errors or leaf is None or key is None:
        return None, errors
    material = Material(cert=leaf, key=key, chain=tuple(chain))
    try:
        material.options().getContext()
    except SSL.Error as e:
        errors.append(
            f"OpenSSL refuses cert {tls.cert} with key {tls.key} "
            f"({openssl_reason(e)}); make a new pair ({_MAKE_ONE})"
        )
        return None, errors
    except Exception as e:  # never a traceback for a file problem
        errors.append(
            f"cannot use cert {tls.cert} with key {tls.key} ({e}); make a new pair ({_MAKE_ONE})"
        )
        return None, errors
    return material, []


def check(tls: TLSConfig) -> list[str]:
    """Every problem of C{tls}, one C{"problem; fix"} line each ([] when it will work)."""
    try:
        return load(tls)[1]
    except Exception as e:  # pragma: no cover - a last guard: no traceback ever
        return [f"cannot use cert {tls.cert} with key {tls.key} ({e!r}); {_MAKE_ONE}"]


def openssl_reason(e: BaseException) -> str:
    """The short reason of an OpenSSL error, e.g. C{"unsupported protocol"}."""
    args = getattr(e, "args", ())
    if args and isinstance(args[0], list):
        reasons = [r[-1] for r in args[0] if isinstance(r, tuple) and r and r[-1]]
        if reasons:
            return "; ".join(reasons)
    return str(e) or e.__class__.__name__


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
        from portsuite.wrappers import format_peer

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
        from portsuite.suite import StartupError

        raise StartupError(f"tls: {errors[0] if errors else 'cannot load ' + str(tls.cert)}")
    now = datetime.datetime.now(datetime.UTC)
    service = getattr(getattr(factory, "stats", None), "name", "?")
    if material.cert.not_valid_before_utc > now:
        log.warn(
            "{service}: cert {cert} is not valid before {when}; clients will refuse it "
            "until then (check this machine's clock)",
            service=service,
            cert=str(tls.cert),
            when=_utc(material.cert.not_valid_before_utc),
        )
    elif material.cert.not_valid_after_utc - now < EXPIRY_WARNING:
        log.warn(
            "{service}: cert {cert} expires on {when}; renew it soon (portsuite cert --force)",
            service=service,
            cert=str(tls.cert),
            when=_utc(material.cert.not_valid_after_utc),
        )
    timeout = getattr(tls, "handshake_timeout", None) or DEFAULT_HANDSHAKE_TIMEOUT
    return TLSFactory(material.options(), factory, reactor, handshake_timeout=timeout)
