"""Helpers of the http tests (imported as httphelp: test dirs have no __init__.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from portsuite.api import ServiceContext, ServiceStats
from portsuite.loader import from_dict
from portsuite_services.http import build_site

SECRET = b"TOPSECRET-outside-root"
MID_SIZE = 200_000  # above the split size: cached in two parts


@attrs.define
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_responses(data: bytes, head_only: bool = False) -> list[Response]:
    """Split the bytes a client read into responses (Content-Length framing)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        _version, code, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(code)
        if head_only or status in (204, 304) or 100 <= status < 200:
            length = 0
        else:
            length = int(headers.get("content-length", len(rest)))
        body, data = rest[:length], rest[length:]
        out.append(Response(status, reason, headers, body, head + sep + body))
    return out


class Web:
    """One http service built alone, driven in memory (no sockets, no real time)."""

    def __init__(self, root: Path, **options: Any):
        table = {"type": "http", "port": 0, "root": str(root), **options}
        cfg = from_dict({"services": {"web": table}}, base_dir=root.parent)
        self.clock = MemoryReactorClock()
        self.clock.advance(1_700_000_000)
        self.stats = ServiceStats(name="web", type="http")
        ctx = ServiceContext(reactor=self.clock, config=cfg.service("web"), stats=self.stats)
        self.site = build_site(ctx)
        self.site.startFactory()

    def connect(self, port: int = 5555) -> tuple[Any, StringTransport]:
        peer = IPv4Address("TCP", "127.0.0.1", port)
        channel = self.site.buildProtocol(peer)
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=peer
        )
        channel.makeConnection(transport)
        return channel, transport

    def send(self, raw: bytes) -> tuple[Any, StringTransport]:
        channel, transport = self.connect()
        channel.dataReceived(raw)
        return channel, transport

    def request(
        self,
        method: str,
        path: bytes | str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        if isinstance(path, str):
            path = path.encode("latin-1")
        lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: localhost"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}".encode("latin-1"))
        if body:
            lines.append(b"Content-Length: %d" % len(body))
        raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
        _channel, transport = self.send(raw)
        responses = parse_responses(transport.value(), head_only=method == "HEAD")
        assert len(responses) == 1, responses
        return responses[0]

    def get(self, path: bytes | str, **headers: str) -> Response:
        return self.request("GET", path, {k.replace("_", "-"): v for k, v in headers.items()})
