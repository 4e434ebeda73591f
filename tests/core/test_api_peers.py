"""The plugin API's peer helpers: one way to name a peer, judge it loopback, refuse it."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import StringTransport

from portsuite.api import RefusingProtocol, format_peer, ip_of, is_loopback, is_loopback_host


@pytest.mark.parametrize(
    ("addr", "shown"),
    [
        (IPv4Address("TCP", "127.0.0.1", 51234), "127.0.0.1:51234"),
        (IPv6Address("TCP", "::1", 51234), "[::1]:51234"),
        (IPv6Address("TCP", "::ffff:10.0.0.7", 4), "[::ffff:10.0.0.7]:4"),  # as the socket says
        (("192.0.2.1", 40000), "192.0.2.1:40000"),  # UDP hands tuples
        (("fe80::1%eth0", 5353, 0, 2), "[fe80::1%eth0]:5353"),
        (UNIXAddress(b"/tmp/s"), "local"),
        (None, "local"),
    ],
)
def test_format_peer(addr: object, shown: str) -> None:
    assert format_peer(addr) == shown


def test_ip_of_unwraps_ipv4_mapped_and_scopes() -> None:
    assert str(ip_of("::ffff:127.0.0.1")) == "127.0.0.1"
    assert str(ip_of("fe80::1%eth0")) == "fe80::1"
    assert ip_of("localhost") is None and ip_of("") is None


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4 client on a dual-stack socket
        ("localhost", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
    assert (
        is_loopback(IPv6Address("TCP", host, 1) if ":" in host else IPv4Address("TCP", host, 1))
        is loopback
    )


def test_an_address_without_host_is_local() -> None:
    assert is_loopback(UNIXAddress(b"/tmp/s")) and is_loopback(object())


def test_refusing_protocol_says_why_then_closes() -> None:
    t = StringTransport()
    RefusingProtocol(b"-ERR max number of clients reached\r\n").makeConnection(t)
    assert t.value() == b"-ERR max number of clients reached\r\n" and t.disconnecting
    silent = StringTransport()
    RefusingProtocol(None).makeConnection(silent)
    assert silent.value() == b"" and silent.disconnecting
