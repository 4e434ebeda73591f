"""How the suite names a client: C{host:port}, with the ephemeral port the course shows."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress


def format_peer(addr: IAddress | tuple[str, int] | None) -> str:
    """C{host:port} of a peer (C{[v6]:port} for IPv6), as a student reads it."""
    if isinstance(addr, IPv6Address):
        return f"[{addr.host}]:{addr.port}"
    if isinstance(addr, IPv4Address):
        return f"{addr.host}:{addr.port}"
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "local"  # unix sockets have no peer port


def peer_host(addr: Any) -> str:
    return getattr(addr, "host", None) or "local"
