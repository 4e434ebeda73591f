"""
Peers, as the suite names and judges them: C{host:port} with the ephemeral port the
course shows, the IP behind an address (IPv4-mapped IPv6 unwrapped), loopback or not,
and the protocol that tells a refused client why before closing.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.protocol import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def format_peer(addr: Any) -> str:
    """
    C{host:port} of a peer (C{[v6]:port} for IPv6), as a student reads it: from an
    C{IPv4Address}/C{IPv6Address} (or anything with C{host} and C{port}) or a UDP
    C{(host, port)} tuple; C{local} for what has no port (unix sockets).
    """
    if isinstance(addr, tuple):
        if len(addr) < 2:
            return "local"
        host, port = addr[0], addr[1]
    else:
        host = getattr(addr, "host", None)
        port = getattr(addr, "port", None)
        if host is None or port is None:
            return "local"  # unix sockets have no peer port
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_host(addr: Any) -> str:
    """The host of a peer address (C{local} for unix sockets): what max_per_host counts."""
    return getattr(addr, "host", None) or "local"


def ip_of(host: str) -> IPAddress | None:
    """
    The IP address a host string stands for, IPv6 scope (C{%eth0}) dropped and an
    IPv4-mapped IPv6 address (C{::ffff:127.0.0.1}, what a dual-stack socket shows an
    IPv4 client as) unwrapped to its IPv4 address; None when it is not an address.
    """
    try:
        ip: IPAddress = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback_host(host: str) -> bool:
    """Whether a host string is this machine only: C{localhost}, 127.0.0.0/8, ::1 (mapped too)."""
    if host.lower() == "localhost":
        return True
    ip = ip_of(host)
    return ip is not None and ip.is_loopback


def is_loopback(addr: Any) -> bool:
    """
    Whether a peer address is on this machine: a loopback IP, or an address with no
    host at all (a unix socket, an in-memory transport).
    """
    host = getattr(addr, "host", None)
    if host is None:
        return True
    return is_loopback_host(str(host))


class RefusingProtocol(Protocol):
    """
    What a refused client gets: C{message} (if the protocol has room for one, e.g.
    C{-ERR max number of clients reached}), then the connection is closed.
    """

    transport: Any

    def __init__(self, message: bytes | None = None):
        self.message = message

    def connectionMade(self) -> None:
        if self.message:
            self.transport.write(self.message)
        self.transport.loseConnection()
