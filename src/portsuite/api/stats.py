"""
Per-service counters and the clients connected right now.

One L{ServiceStats} per service, kept by the shared connection wrapper (see
L{portsuite.wrappers}) and read by the dashboard, the metrics and C{portsuite check}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import attrs


def port_class(port: int) -> str:
    """The IANA range a port number falls in, as the course names them."""
    if port < 1024:
        return "well-known"
    if port < 49152:
        return "registered"
    return "dynamic"


@attrs.define(eq=False)
class ClientInfo:
    """One connected client: its address (with its ephemeral port) and its traffic."""

    peer: str
    since: float
    bytes_in: int = 0
    bytes_out: int = 0

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "since": self.since,
            "seconds": round(now - self.since, 3),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }


@attrs.define(eq=False)
class Listener:
    """Where one service listens: filled in once the port is bound."""

    transport: str  # "tcp", "udp", "unix", …
    host: str
    port: int | None  # the bound port (None for unix sockets)
    description: str  # the endpoint description, e.g. "tcp:7007:interface=127.0.0.1"
    tls: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "host": self.host,
            "port": self.port,
            "port_class": port_class(self.port) if self.port is not None else None,
            "tls": self.tls,
            "endpoint": self.description,
        }


@attrs.define(eq=False)
class ServiceStats:
    """Counters of one service, across all its listeners."""

    name: str
    type: str
    description: str = ""
    listeners: list[Listener] = attrs.field(factory=list)
    open: int = 0
    total: int = 0
    # bytes of connections already closed (and of datagrams); the live ones are summed
    # from their ClientInfo when read, so the hot path counts each byte only once
    closed_bytes_in: int = 0
    closed_bytes_out: int = 0
    refused: int = 0
    errors: int = 0
    tls_failed: int = 0  # TLS handshakes that failed or timed out
    datagrams_in: int = 0
    datagrams_out: int = 0
    dropped: int = 0
    workers: int = 1  # processes serving it (workers = N), summed into these counters
    clients: dict[Any, ClientInfo] = attrs.field(factory=dict)
    # recent transcripts (see portsuite.trace): bounded, newest last
    transcripts: deque[Any] = attrs.field(factory=lambda: deque(maxlen=5))
    # the service's own view of its connections, shown on the dashboard under its
    # clients (C{"detail"} in L{as_dict}); see L{ServiceStats.set_detail}
    detail: Callable[[], list[dict[str, Any]]] | None = None

    def set_detail(self, detail: Callable[[], list[dict[str, Any]]] | None) -> None:
        """
        Show more than the wrapper sees: C{detail()} returns, when the dashboard asks
        (about once a second), one dict per session, each a connection with the
        connections it opened (FTP's control connection and its data connections)::

            {"kind": "control", "client": "127.0.0.1:50312", "server": "127.0.0.1:2121",
             "text": "alice · /pub", "state": "open",
             "links": [{"kind": "passive", "client": "127.0.0.1:50313",
                        "server": "127.0.0.1:30001", "direction": "down",
                        "text": "RETR /big.bin", "bytes": 1234, "state": "open"}]}

        C{direction} is C{"down"} (server to client), C{"up"} or None; every key but
        C{client} may be left out. Keep the list short: the page shows a few.
        """
        self.detail = detail

    def detail_rows(self) -> list[dict[str, Any]]:
        """What L{set_detail}'s function returns now; [] without one, or if it fails."""
        if self.detail is None:
            return []
        try:
            return list(self.detail())
        except Exception:  # a service's bug must not take the dashboard down
            return [{"kind": "error", "text": "detail unavailable", "links": []}]

    @property
    def bytes_in(self) -> int:
        return self.closed_bytes_in + sum(c.bytes_in for c in self.clients.values())

    @property
    def bytes_out(self) -> int:
        return self.closed_bytes_out + sum(c.bytes_out for c in self.clients.values())

    def client_closed(self, key: int) -> ClientInfo | None:
        """Forget a client, keeping its bytes in the service's totals."""
        client = self.clients.pop(key, None)
        if client is not None:
            self.closed_bytes_in += client.bytes_in
            self.closed_bytes_out += client.bytes_out
        return client

    def as_dict(self, now: float) -> dict[str, Any]:
        first = self.listeners[0] if self.listeners else None
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "transports": sorted({li.transport for li in self.listeners}),
            "host": first.host if first else None,
            "port": first.port if first else None,
            "port_class": port_class(first.port) if first and first.port is not None else None,
            "tls": any(li.tls for li in self.listeners),
            "listeners": [li.as_dict() for li in self.listeners],
            "connections": {"open": self.open, "total": self.total, "refused": self.refused},
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": self.errors,
            "workers": self.workers,
            "tls_failed": self.tls_failed,
            "datagrams": {
                "in": self.datagrams_in,
                "out": self.datagrams_out,
                "dropped": self.dropped,
            },
            "clients": [c.as_dict(now) for c in self.clients.values()],
            "detail": self.detail_rows(),
        }
