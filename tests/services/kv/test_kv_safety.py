"""Safety: protected mode, AUTH, limits, expiry, glob patterns — on in-memory transports."""

from __future__ import annotations

import time

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite_services.kv import KVServer, Settings, glob
from portsuite_services.kv.protocol import KVProtocol


def _server(**kw: object) -> tuple[KVServer, Clock]:
    clock = Clock()
    clock.advance(1_700_000_000)
    server = KVServer(Settings(**kw), clock)  # type: ignore[arg-type]
    server.startFactory()
    return server, clock


def _connect(server: KVServer, host: str = "127.0.0.1") -> tuple[KVProtocol, StringTransport]:
    peer = IPv6Address("TCP", host, 50000) if ":" in host else IPv4Address("TCP", host, 50000)
    t = StringTransport(peerAddress=peer)
    p = server.buildProtocol(peer)
    p.makeConnection(t)
    return p, t  # type: ignore[return-value]


def _said(t: StringTransport) -> bytes:
    v = t.value()
    t.clear()
    return v


def test_protected_mode_denies_remote_peer_without_password() -> None:
    server, _ = _server()
    _, t = _connect(server, "192.0.2.7")
    assert t.value().startswith(b"-DENIED Redis is running in protected mode")
    assert t.disconnecting
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        p, t = _connect(server, host)
        p.dataReceived(b"PING\r\n")
        assert t.value() == b"+PONG\r\n"


def test_password_required_before_anything_else() -> None:
    server, _ = _server(password="s3cret")
    p, t = _connect(server, "192.0.2.7")  # remote is fine once a password is set
    p.dataReceived(b"GET a\r\nAUTH wrong\r\nHELLO 3\r\n")
    assert _said(t) == (
        b"-NOAUTH Authentication required.\r\n"
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        b"HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
        b"the RESP protocol version at the same time\r\n"
    )
    p.dataReceived(b"AUTH s3cret\r\nSET a 1\r\nGET a\r\n")
    assert _said(t) == b"+OK\r\n+OK\r\n$1\r\n1\r\n"


def test_unauthenticated_requests_stay_small() -> None:
    server, _ = _server(password="pw")
    p, t = _connect(server)
    p.dataReceived(b"*2\r\n$4\r\nAUTH\r\n$20000\r\n")
    assert t.value() == b"-ERR Protocol error: unauthenticated bulk length\r\n"
    assert t.disconnecting
    p, t = _connect(server)
    p.dataReceived(b"*11\r\n")
    assert t.value() == b"-ERR Protocol error: unauthenticated multibulk length\r\n"


def test_max_clients() -> None:
    server, _ = _server(maxclients=2)
    _connect(server)
    _connect(server)
    _, t = _connect(server)
    assert t.value() == b"-ERR max number of clients reached\r\n"
    assert t.disconnecting


def test_bulk_length_limit_and_no_preallocation() -> None:
    server, _ = _server(proto_max_bulk_len=1000)
    p, t = _connect(server)
    p.dataReceived(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1001\r\n")
    assert t.value() == b"-ERR Protocol error: invalid bulk length\r\n"
    p, t = _connect(server)
    p.dataReceived(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n")
    assert len(p.parser.buf) < 100  # the declared 1000 bytes are not reserved
    p.dataReceived(b"x" * 1000 + b"\r\n")
    assert t.value() == b"+OK\r\n"


def test_inline_line_limit() -> None:
    server, _ = _server()
    p, t = _connect(server)
    for _ in range(5):
        p.dataReceived(b"x" * 16 * 1024)
    assert t.value() == b"-ERR Protocol error: too big inline request\r\n"
    assert t.disconnecting


def test_client_that_never_reads_is_disconnected() -> None:
    server, _ = _server(client_output_buffer_limit=100_000)
    server.store.data[b"big"] = b"v" * 50_000
    p, t = _connect(server)
    p.pauseProducing()  # what Twisted does when the socket's send buffer is full
    assert t.producerState == "paused"  # we stop reading this client
    p.dataReceived(b"GET big\r\n")  # a batch already read: its reply is queued
    assert not t.disconnected and p.queued > 50_000
    p.dataReceived(b"GET big\r\n" * 2)
    assert t.disconnected  # aborted: over the limit
    p2, t2 = _connect(server)
    p2.pauseProducing()
    p2.dataReceived(b"GET big\r\n")
    p2.resumeProducing()  # the client reads again: the queue drains, reading resumes
    assert len(t2.value()) > 50_000 and p2.queued == 0 and t2.producerState == "producing"


def test_idle_timeout() -> None:
    server, clock = _server(timeout=5)
    p, t = _connect(server)
    clock.advance(3)
    p.dataReceived(b"PING\r\n")
    clock.advance(3)
    assert not t.disconnecting
    clock.pump([0.1] * 30)
    assert t.disconnecting


def test_active_expiry_deletes_without_access() -> None:
    server, clock = _server()
    p, t = _connect(server)
    p.dataReceived(b"SET a 1 PX 500\r\nSET b 1\r\n")
    clock.advance(0.3)
    assert b"a" in server.store.data
    clock.pump([0.1] * 4)
    assert b"a" not in server.store.data and b"b" in server.store.data
    assert server.store.expired_keys == 1


def test_lazy_expiry() -> None:
    server, clock = _server()
    p, t = _connect(server)
    p.dataReceived(b"SET a 1 PX 50\r\n")
    clock.advance(0.06)  # before the next active cycle
    p.dataReceived(b"GET a\r\n")
    assert t.value().endswith(b"$-1\r\n")


def test_resp3_push_for_pubsub() -> None:
    server, _ = _server()
    sub, ts = _connect(server)
    pub, tp = _connect(server)
    sub.dataReceived(b"HELLO 3\r\nSUBSCRIBE ch\r\nGET x\r\n")
    assert ts.value().endswith(b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n_\r\n")
    ts.clear()
    pub.dataReceived(b"PUBLISH ch hello\r\n")
    assert tp.value() == b":1\r\n"
    assert ts.value() == b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"


def test_glob_patterns_cannot_blow_up() -> None:
    assert glob.match(b"h?llo*[a-c]", b"hello worldb")
    assert glob.match(b"[^x]*", b"abc") and not glob.match(b"[^a]*", b"abc")
    assert glob.match(b"a\\*b", b"a*b") and not glob.match(b"a\\*b", b"axb")
    hostile = b"a*" * 50 + b"b"
    key = b"a" * 5000
    start = time.perf_counter()
    assert not glob.match(hostile, key)
    assert time.perf_counter() - start < 2.0


def test_keys_with_hostile_pattern_is_bounded() -> None:
    server, _ = _server()
    for i in range(200):
        server.store.data[b"a" * 200 + b"%d" % i] = b"v"
    p, t = _connect(server)
    start = time.perf_counter()
    p.dataReceived(b"KEYS " + b"*a" * 40 + b"*b\r\n")
    assert t.value() == b"*0\r\n"
    assert time.perf_counter() - start < 5.0


def test_parser_gives_the_same_commands_however_the_bytes_are_split() -> None:
    from portsuite_services.kv.resp import RequestParser

    stream = (
        b"*3\r\n$3\r\nSET\r\n$5\r\nk\r\n*x\r\n$4\r\n\x00\xff\r\n\r\n"
        b"PING\r\n*1\r\n$4\r\nPING\r\n*0\r\nECHO 'a b'\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
    )
    whole = RequestParser().feed(stream)
    assert whole == [
        [b"SET", b"k\r\n*x", b"\x00\xff\r\n"],
        [b"PING"],
        [b"PING"],
        [b"ECHO", b"a b"],
        [b"ECHO", b""],
    ]
    for cut in range(1, len(stream)):
        p = RequestParser()
        assert p.feed(stream[:cut]) + p.feed(stream[cut:]) == whole, cut
    p = RequestParser()
    assert [c for i in range(len(stream)) for c in p.feed(stream[i : i + 1])] == whole
