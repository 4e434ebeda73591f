"""The validated config of one service, as a service type receives it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

DEFAULT_HOST = "127.0.0.1"


@attrs.frozen
class TLSConfig:
    """C{tls = {cert, key, chain, handshake_timeout}} of a service, paths resolved."""

    cert: Path
    key: Path
    chain: Path | None = None
    handshake_timeout: float = 10.0


@attrs.frozen
class ServiceConfig:
    """
    One configured service: C{[services.NAME]}.

    @ivar port: the TCP/UDP port (0 = any free port); None when C{listen} is used.
    @ivar listen: Twisted endpoint descriptions that replace port/host.
    @ivar options: the type's own options, converted, defaults filled in.
    @ivar users: the account names this service accepts (C{users = [...]}), or None
        for every account of the suite's C{[users]} table.
    @ivar workers: processes accepting on the service's port (C{workers = N},
        stateless types only); 1 is the suite's own process.
    """

    name: str
    type: str
    host: str = DEFAULT_HOST
    port: int | None = None
    udp: bool = False
    tcp: bool = True
    listen: tuple[str, ...] = ()
    max_connections: int | None = None
    max_per_host: int | None = None
    idle_timeout: float | None = None
    trace: bool = False
    tls: TLSConfig | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    base_dir: Path = Path(".")
    users: tuple[str, ...] | None = None
    workers: int = 1
