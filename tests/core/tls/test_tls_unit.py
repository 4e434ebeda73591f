"""
The TLS layer without sockets: a pyOpenSSL client over memory BIOs against the
suite's own factory chain (ServiceFactory inside TLS), on a MemoryReactorClock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from portsuite import tls, tlscheck
from portsuite.api import ServiceStats, TLSConfig
from portsuite.wrappers import ServiceFactory
from portsuite_services.echo import Echo


class Server:
    """One TLS connection to an echo service, driven by hand."""

    def __init__(
        self,
        certdir: Path,
        handshake_timeout: float = 10.0,
        inner: Any = Echo,
        options: Any = None,
    ):
        self.clock = MemoryReactorClock()
        self.stats = ServiceStats(name="echo", type="echo")
        service = ServiceFactory(ServerFactory.forProtocol(inner), self.stats, self.clock)
        config = TLSConfig(
            cert=certdir / "server.crt",
            key=certdir / "server.key",
            handshake_timeout=handshake_timeout,
        )
        if options is None:
            self.factory = tls.wrap_factory(service, config, self.clock)
        else:
            self.factory = tls.TLSFactory(options, service, self.clock, handshake_timeout)
        addr = IPv4Address("TCP", "127.0.0.1", 50000)
        self.protocol = self.factory.buildProtocol(addr)
        self.transport = StringTransport(peerAddress=addr)
        self.protocol.makeConnection(self.transport)

    def client(self, certdir: Path, version: int | None = None) -> SSL.Connection:
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.load_verify_locations(str(certdir / "ca.crt"))
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: a[-1])
        if version is not None:
            ctx.set_min_proto_version(version)
            ctx.set_max_proto_version(version)
        conn = SSL.Connection(ctx, None)
        conn.set_tlsext_host_name(b"localhost")
        conn.set_connect_state()
        return conn

    def pump(self, conn: SSL.Connection) -> None:
        """Move bytes both ways until neither side has anything to say."""
        for _ in range(20):
            moved = False
            try:
                out = conn.bio_read(65536)
            except SSL.WantReadError:
                out = b""
            if out:
                self.protocol.dataReceived(out)
                moved = True
            self.clock.advance(0)  # TLS aggregates small writes until the next tick
            back = self.transport.value()
            if back:
                self.transport.clear()
                conn.bio_write(back)
                moved = True
            if not moved:
                return

    def handshake(self, conn: SSL.Connection) -> None:
        for _ in range(10):
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                self.pump(conn)
            else:
                self.pump(conn)  # the client's Finished, to the server
                return
        raise AssertionError("handshake did not finish")

    def lose(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


def test_factory_is_tls_around_the_service_factory(certdir: Path) -> None:
    s = Server(certdir)
    assert isinstance(s.factory, TLSMemoryBIOFactory)
    # the portsuite wrapper sits inside TLS: it counts plaintext
    assert isinstance(s.factory.wrappedFactory, ServiceFactory)
    assert s.stats.open == 1


def test_options_disable_compression_and_versions_below_1_2(certdir: Path) -> None:
    material, errors = tlscheck.load(
        TLSConfig(cert=certdir / "server.crt", key=certdir / "server.key")
    )
    assert material is not None and errors == []
    # the listener's context, still mutable (no connection yet); set_options(0)
    # returns the options in force
    connections = tls.ServerConnections(tls.server_options(material), lambda: None)
    options = connections.context.set_options(0)
    assert options & SSL.OP_NO_COMPRESSION
    assert options & SSL.OP_NO_TLSv1 and options & SSL.OP_NO_TLSv1_1
    assert not options & SSL.OP_NO_TLSv1_2
    assert not options & SSL.OP_NO_TLSv1_3


def test_tls_1_1_client_is_refused(certdir: Path) -> None:
    s = Server(certdir)
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")  # let the client really offer TLS 1.1
    ctx.set_min_proto_version(SSL.TLS1_1_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state()
    with pytest.raises(SSL.Error) as info:
        for _ in range(5):
            try:
                conn.do_handshake()
            except SSL.WantReadError:
                s.pump(conn)
    assert "protocol version" in tlscheck.openssl_reason(info.value)  # the server's alert
    assert s.transport.disconnecting


@pytest.mark.parametrize(
    "version, name", [(SSL.TLS1_2_VERSION, "TLSv1.2"), (SSL.TLS1_3_VERSION, "TLSv1.3")]
)
def test_echo_over_tls_counts_plaintext(certdir: Path, version: int, name: str) -> None:
    s = Server(certdir)
    conn = s.client(certdir, version)
    s.handshake(conn)
    assert conn.get_protocol_version_name() == name
    conn.send(b"hello over tls\n")
    s.pump(conn)
    assert conn.recv(100) == b"hello over tls\n"
    # counters see the 15 plaintext bytes, not the TLS records
    assert (s.stats.bytes_in, s.stats.bytes_out) == (15, 15)
    client = next(iter(s.stats.clients.values()))
    assert client.peer == "127.0.0.1:50000" and client.bytes_in == 15


def test_handshake_stall_is_dropped_after_the_timeout(certdir: Path) -> None:
    s = Server(certdir, handshake_timeout=10)
    s.clock.advance(9.9)
    assert not s.transport.disconnecting
    s.clock.advance(0.2)
    assert s.transport.disconnecting and s.transport.disconnected  # aborted, not a polite close
    s.lose()
    assert s.stats.open == 0 and s.stats.clients == {}
    assert s.clock.getDelayedCalls() == []


def test_half_a_handshake_is_dropped_too(certdir: Path) -> None:
    s = Server(certdir, handshake_timeout=5)
    conn = s.client(certdir)
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    hello = conn.bio_read(65536)
    s.protocol.dataReceived(hello[: len(hello) // 2])  # then the client stalls
    s.clock.advance(5)
    assert s.transport.disconnected


def test_finished_handshake_cancels_the_timer(certdir: Path) -> None:
    s = Server(certdir, handshake_timeout=10)
    conn = s.client(certdir)
    s.handshake(conn)
    s.clock.advance(3600)
    assert not s.transport.disconnecting
    assert s.clock.getDelayedCalls() == []
    conn.send(b"still here")
    s.pump(conn)
    assert conn.recv(100) == b"still here"


def test_closing_before_the_timeout_cancels_the_timer(certdir: Path) -> None:
    s = Server(certdir)
    s.lose()
    assert s.clock.getDelayedCalls() == []
    assert s.stats.open == 0


def test_failed_handshake_is_logged_with_its_reason(certdir: Path) -> None:
    from twisted.logger import globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        s = Server(certdir)
        s.protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.transport.disconnecting
        s.lose()
    finally:
        globalLogPublisher.removeObserver(events.append)
    texts = [e.get("reason", "") + e.get("hint", "") for e in events if "reason" in e]
    assert any("http request" in t and "use https://" in t for t in texts)
    assert s.stats.open == 0


class Shout(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"hello\n")


def test_greeting_protocol_waits_for_the_handshake(certdir: Path) -> None:
    """A server that speaks first (qotd, smtp…) still works: TLS buffers its words."""
    s = Server(certdir, inner=Shout)
    conn = s.client(certdir)
    s.handshake(conn)
    s.pump(conn)
    assert conn.recv(100) == b"hello\n"


def test_files_broken_after_the_check_stop_startup_with_one_line(
    certdir: Path, tmp_path: Path
) -> None:
    from portsuite.api import StartupError

    config = TLSConfig(cert=tmp_path / "gone.crt", key=certdir / "server.key")
    with pytest.raises(StartupError, match=r"^tls: cert file .*gone.crt does not exist"):
        tls.wrap_factory(ServerFactory(), config, MemoryReactorClock())


def test_alpn_client_gets_no_protocol_from_a_service_that_names_none(certdir: Path) -> None:
    """curl and browsers offer ALPN; a service without ALPN must still shake hands."""
    s = Server(certdir)
    conn = s.client(certdir)
    conn.set_alpn_protos([b"h2", b"http/1.1"])
    s.handshake(conn)
    assert conn.get_alpn_proto_negotiated() == b""
    conn.send(b"x")
    s.pump(conn)
    assert conn.recv(10) == b"x"


def test_alpn_picks_what_the_service_names(certdir: Path) -> None:
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    class Web(Site):
        def __init__(self) -> None:
            Site.__init__(self, Resource())

    s = Server(certdir)
    web = Web()
    s.factory.wrappedFactory.wrappedFactory = web  # h2 (when installed), http/1.1
    conn = s.client(certdir)
    conn.set_alpn_protos([b"http/1.1", b"h2"])
    s.handshake(conn)
    # the service's preference wins, not the client's order
    assert conn.get_alpn_proto_negotiated() == web.acceptableProtocols()[0]


@pytest.mark.parametrize(
    "start_days, days, text", [(-360, 365, "expires on"), (2, 30, "is not valid before")]
)
def test_cert_about_to_expire_or_not_yet_valid_is_a_warning(
    certdir: Path, tmp_path: Path, start_days: int, days: int, text: str
) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from twisted.logger import globalLogPublisher

    from portsuite import certs

    ca = x509.load_pem_x509_certificate((certdir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((certdir / "ca.key").read_bytes(), None)
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=start_days)
    cert, key = certs.make_server(ca, ca_key, days=days, now=start)
    (tmp_path / "s.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs._write(tmp_path / "s.key", certs._key_pem(key), 0o600)
    config = TLSConfig(cert=tmp_path / "s.crt", key=tmp_path / "s.key")
    assert tlscheck.check(config) == []  # not an error: the suite starts
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        tls.wrap_factory(ServerFactory(), config, MemoryReactorClock())
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if e.get("log_level") and e["log_level"].name == "warn"]
    assert len(warnings) == 1 and text in warnings[0]["log_format"]


def test_alpn_still_works_when_the_options_context_is_already_frozen(certdir: Path) -> None:
    """A pyOpenSSL that froze getContext()'s context: the private fallback builds another."""
    material, _ = tlscheck.load(TLSConfig(cert=certdir / "server.crt", key=certdir / "server.key"))
    assert material is not None
    options = tls.server_options(material)
    SSL.Connection(options.getContext(), None)  # "used": no more changes allowed
    s = Server(certdir, options=options)
    assert s.factory.connections.context is not options.getContext()
    conn = s.client(certdir)
    conn.set_alpn_protos([b"h2", b"http/1.1"])
    s.handshake(conn)
    assert conn.get_alpn_proto_negotiated() == b""
    conn.send(b"y")
    s.pump(conn)
    assert conn.recv(10) == b"y"
