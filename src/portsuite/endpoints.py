"""
Endpoint descriptions, the one parser config, suite and C{portsuite check} share.

A C{listen} entry is a Twisted server endpoint description (C{tcp:7007},
C{tcp6:7007:interface=\\:\\:1}, C{unix:/tmp/e.sock}, C{ssl:…}, C{systemd:…}) or
portsuite's own C{udp:PORT[:interface=HOST]}. The syntax is Twisted's: fields split on
C{:}, C{key=value} fields are keyword arguments, and a backslash escapes the next
character (so an IPv6 address is written C{\\:\\:1}).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from portsuite.lang import _

KINDS = ("tcp", "tcp6", "unix", "ssl", "systemd", "udp")
# keyword fields that name files, made absolute relative to the config
PATH_KEYS = ("privateKey", "certKey", "extraCertChain", "caCertsDir", "address")
# kinds whose port is the first positional field (or port=)
PORTED = ("tcp", "tcp6", "ssl", "udp")


@attrs.frozen
class Description:
    """One parsed description: what it binds, as a person reads it."""

    kind: str
    text: str  # the description as Twisted reads it (paths absolute)
    args: tuple[str, ...]  # positional fields after the kind, unescaped
    kwargs: dict[str, str] = attrs.field(eq=False)  # key=value fields, unescaped

    @property
    def port(self) -> int | None:
        if self.kind not in PORTED:
            return None
        raw = self.kwargs.get("port", self.args[0] if self.args else None)
        if raw is None or not raw.isdigit():
            return None
        return int(raw)

    def host(self, default: str) -> str:
        """The interface (unescaped: C{::1}, not C{\\:\\:1}), the socket path for unix."""
        if self.kind == "unix":
            return self.kwargs.get("address", self.args[0] if self.args else "")
        if self.kind == "systemd":
            return "-"
        return self.kwargs.get("interface", default)

    @property
    def tls(self) -> bool:
        return self.kind == "ssl"


class DescriptionError(ValueError):
    """A description that cannot be bound; the message says why and how to fix it."""


def split(desc: str) -> list[str]:
    """The fields of a description, split on unescaped colons, escapes removed."""
    fields: list[str] = []
    current: list[str] = []
    chars = iter(desc)
    for c in chars:
        if c == "\\":
            current.append(next(chars, "\\"))
        elif c == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(c)
    fields.append("".join(current))
    return fields


def _split_keeping_escapes(desc: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    chars = iter(desc)
    for c in chars:
        if c == "\\":
            current.append(c + next(chars, ""))
        elif c == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(c)
    fields.append("".join(current))
    return fields


def escape(value: str) -> str:
    """A value written into a description: C{::1} becomes C{\\:\\:1}."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def parse(desc: str) -> Description:
    """
    Read one description. @raise DescriptionError: an unknown kind, or a port that is
    not a number 0-65535; the message names the fix.
    """
    fields = _split_keeping_escapes(desc)
    kind = fields[0]
    if kind not in KINDS:
        raise DescriptionError(
            _("{desc!r} has an unknown endpoint kind {kind!r}; use one of {join_KINDS}").format(
                desc=desc, kind=kind, join_KINDS=", ".join(KINDS)
            )
        )
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for raw in fields[1:]:
        key, eq, value = _partition_unescaped(raw)
        if eq:
            kwargs[split(key)[0]] = "".join(split(value))
        else:
            args.append("".join(split(raw)))
    d = Description(kind=kind, text=desc, args=tuple(args), kwargs=kwargs)
    if kind in PORTED:
        raw_port = kwargs.get("port", args[0] if args else None)
        if raw_port is None or not raw_port.isdigit() or not 0 <= int(raw_port) <= 65535:
            example = f"{kind}:7007" + (":interface=127.0.0.1" if kind == "udp" else "")
            raise DescriptionError(
                _(
                    "{desc!r}: {raw_port!r} is not a port number 0-65535; write e.g. {example!r}"
                ).format(desc=desc, raw_port=raw_port, example=example)
                if raw_port is not None
                else _("{desc!r} has no port; write e.g. {example!r}").format(
                    desc=desc, example=example
                )
            )
    if kind == "unix" and not (args or "address" in kwargs):
        raise DescriptionError(
            _("{desc!r} has no socket path; write e.g. 'unix:/tmp/echo.sock'").format(desc=desc)
        )
    return d


def _partition_unescaped(raw: str) -> tuple[str, str, str]:
    """C{key=value} split on the first unescaped C{=}."""
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == "=":
            return raw[:i], "=", raw[i + 1 :]
        i += 1
    return raw, "", ""


def resolve_paths(desc: str, resolve: Callable[[str], Path]) -> str:
    """The description with its file paths made absolute by C{resolve}."""
    fields = _split_keeping_escapes(desc)
    if fields[0] == "unix" and len(fields) > 1 and not _partition_unescaped(fields[1])[1]:
        fields[1] = escape(str(resolve("".join(split(fields[1])))))
    for i, raw in enumerate(fields[1:], start=1):
        key, eq, value = _partition_unescaped(raw)
        if eq and key in PATH_KEYS and value:
            fields[i] = f"{key}={escape(str(resolve(''.join(split(value)))))}"
    return ":".join(fields)


def for_port(host: str, port: int, kind: str = "tcp") -> str:
    """The description of C{port = N} with C{host = "…"}: C{tcp6} for an IPv6 host."""
    if kind == "tcp" and ":" in host:
        kind = "tcp6"
    return f"{kind}:{port}:interface={escape(host)}"


def server_endpoint(reactor: Any, desc: str) -> Any:
    """The Twisted server endpoint of a stream description (as C{strports.service} makes it)."""
    from twisted.internet.endpoints import serverFromString

    return serverFromString(reactor, desc)


@attrs.frozen
class Planned:
    """One listener a service will bind: what C{check} shows and the suite binds."""

    transport: str  # the kind: tcp, tcp6, unix, ssl, systemd, udp
    host: str  # unescaped; the socket path for unix
    port: int | None  # 0: any free port (UDP: the number TCP got, if it can)
    tls: bool
    description: str  # stream listeners: the description the endpoint is made from
    shown: str  # how a failure names it: "tcp 127.0.0.1:7007" or the listen entry
    listed: bool  # written in the config's listen list


def plan(svc: Any, stype: Any) -> list[Planned]:
    """
    The listeners of a validated service (L{portsuite.api.ServiceConfig}) of a type
    (L{portsuite.api.ServiceType}): its C{listen} list as written, else TCP on
    C{host:port} and, with C{udp = true}, UDP on the same port; TCP first.
    """
    out: list[Planned] = []
    tls = svc.tls is not None
    if svc.listen:
        for text in svc.listen:
            d = parse(text)
            if d.kind == "udp" and stype.udp_protocol is None:
                continue
            if d.kind != "udp" and (not svc.tcp or stype.tcp_factory is None):
                continue
            out.append(
                Planned(
                    transport=d.kind,
                    host=d.host(svc.host),
                    port=d.port,
                    tls=d.kind != "udp" and (tls or d.tls),
                    description=text,
                    shown=text,
                    listed=True,
                )
            )
        # stream listeners first, as the suite binds them
        return sorted(out, key=lambda p: p.transport == "udp")
    assert svc.port is not None
    if svc.tcp and stype.tcp_factory is not None:
        out.append(
            Planned(
                transport="tcp",
                host=svc.host,
                port=svc.port,
                tls=tls,
                description=for_port(svc.host, svc.port),
                shown=f"tcp {svc.host}:{svc.port}",
                listed=False,
            )
        )
    if svc.udp and stype.udp_protocol is not None:
        out.append(
            Planned(
                transport="udp",
                host=svc.host,
                port=svc.port,
                tls=False,
                description=f"udp:{svc.port}:interface={escape(svc.host)}",
                shown=f"udp {svc.host}:{svc.port}",
                listed=False,
            )
        )
    return out
