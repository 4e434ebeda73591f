"""
dns: an authoritative DNS server for the lab's own zone (RFC 1034/1035), on
twisted.names, with every service of the suite published as SRV records (RFC 2782),
so C{dig SRV _http._tcp.lab.test} answers "which port is the web server on".

    [services.dns]
    type = "dns"                  # port 53, UDP and TCP
    zone = "lab.test"             # REFUSED outside it
    [services.dns.records]
    "www" = "127.0.0.1"
    "mail" = { MX = "10 mail.lab.test.", A = "127.0.0.1" }

See L{portsuite_services.dns.server} for what it answers and what it refuses.
"""

from __future__ import annotations

import ipaddress
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet.protocol import DatagramProtocol, ServerFactory
from twisted.names import dns

from portsuite.api import Option, ServiceConfig, ServiceContext, ServiceType, no_refusal
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _
from portsuite_services.dns import zone as zonemod
from portsuite_services.dns.server import (
    Counters,
    DNSDatagramProtocol,
    LabDNSServer,
    RateLimiter,
    ZonePage,
)

DEFAULT_EXEMPT = ["127.0.0.0/8", "::1/128"]


def _zone_name(value: str) -> str | None:
    try:
        zonemod.name_bytes(value.rstrip(".") + ".", b"")
    except (zonemod.ZoneError, UnicodeError):
        return _("{value!r} is not a domain name; use e.g. lab.test").format(value=value)
    return None if "." in value.strip(".") or value.strip(".") else _("must not be empty")


def _networks(values: tuple[str, ...]) -> str | None:
    for v in values:
        try:
            ipaddress.ip_network(v, strict=False)
        except ValueError:
            return _("{value!r} is not a network; write e.g. 127.0.0.0/8 or ::1/128").format(
                value=v
            )
    return None


def _static(svc: ServiceConfig) -> tuple[bytes, dict[bytes, list[Any]], Any, list[str]]:
    """The zone's own records (table and zone file), its SOA, and their problems."""
    opts = svc.options
    origin = opts["zone"].strip(".").lower().encode("idna")
    ttl = opts["ttl"]
    records, errors = zonemod.records_from_table(opts["records"] or {}, origin, ttl, "")
    soa = None
    if opts["zone_file"] is not None:
        from_file, soa_pair, file_errors = zonemod.records_from_file(opts["zone_file"], origin)
        errors += file_errors
        soa = soa_pair[1] if soa_pair else None
        for name, recs in from_file.items():
            records.setdefault(name, []).extend(r for r in recs if r.TYPE != dns.SOA)
    return origin, records, soa, [e.lstrip() for e in errors]


def check(svc: ServiceConfig) -> list[str]:
    """Every problem of the records table and the zone file, one line each."""
    return _static(svc)[3]


def _listeners(suite: Any) -> list[tuple[str, str, str, int, bool, str]]:
    """(service, type, transport, port, tls, host) of every bound listener of the suite."""
    out = []
    for name, stats in sorted(getattr(suite, "stats", {}).items()):
        for li in stats.listeners:
            if li.port is not None and li.transport in ("tcp", "udp"):
                out.append((name, stats.type, li.transport, li.port, bool(li.tls), li.host))
    return out


def _srv_records(origin: bytes, suite: Any, ttl: int) -> dict[bytes, list[Any]]:
    """_SERVICE._PROTO.zone SRV 0 0 PORT zone. for each listener of the suite."""
    out: dict[bytes, list[Any]] = {}
    for name, stype, transport, port, tls, _host in _listeners(suite):
        labels = {zonemod.SRV_NAMES.get(stype, "")}
        if tls and stype in zonemod.SRV_NAMES_TLS:
            labels = {zonemod.SRV_NAMES_TLS[stype]}
        labels.add(name.lower())
        for label in labels:
            if not label or not zonemod._LABEL.match(label.encode()):
                continue
            owner = b"_%s._%s.%s" % (label.encode(), transport.encode(), origin)
            rec = dns.Record_SRV(0, 0, port, origin, ttl=ttl)
            if all(repr(r) != repr(rec) for r in out.get(owner, [])):
                out.setdefault(owner, []).append(rec)
    return out


def _addresses(host: str) -> list[str]:
    """The address a client reaches a listener on (a wildcard means loopback here)."""
    if host in ("", "0.0.0.0"):
        return ["127.0.0.1"]
    if host == "::":
        return ["::1"]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return ["127.0.0.1"]
    return [host]


def build(ctx: ServiceContext) -> tuple[list[Any], Counters, RateLimiter]:
    svc = ctx.config
    origin, records, soa, _ = _static(svc)
    ttl = svc.options["ttl"]
    # the zone's apex: the suite's host, unless the records say otherwise
    apex = records.setdefault(origin, [])
    if not any(r.TYPE in (dns.A, dns.AAAA, dns.CNAME) for r in apex):
        for address in _addresses(svc.host):
            kind = dns.Record_AAAA if ":" in address else dns.Record_A
            apex.append(kind(address, ttl=ttl))
    if not any(r.TYPE == dns.NS for r in apex):
        apex.append(dns.Record_NS(b"ns1." + origin, ttl=ttl))
        ns = records.setdefault(b"ns1." + origin, [])
        if not ns:
            ns.extend(r for r in apex if r.TYPE in (dns.A, dns.AAAA))

    def dynamic() -> Mapping[bytes, list[Any]]:
        return _srv_records(origin, ctx.suite, ttl) if ctx.suite is not None else {}

    def signature() -> Any:
        return tuple(_listeners(ctx.suite)) if ctx.suite is not None else None

    zones: list[Any] = [
        zonemod.LabAuthority(origin, records, soa, dynamic, signature, ctx.reactor.seconds)
    ]
    # reverse zones: a PTR for every address named in the zone
    reverse: dict[bytes, dict[bytes, list[Any]]] = {}
    for name, recs in records.items():
        for r in recs:
            if r.TYPE in (dns.A, dns.AAAA):
                address = r.dottedQuad() if r.TYPE == dns.A else _v6(r)
                rzone, owner = zonemod.reverse_zone(address)
                ptrs = reverse.setdefault(rzone, {}).setdefault(owner, [])
                if all(p.name.name != name for p in ptrs):
                    ptrs.append(dns.Record_PTR(name, ttl=ttl))
    for rzone, rrecords in sorted(reverse.items()):
        zones.append(zonemod.LabAuthority(rzone, rrecords))
    counters = Counters()
    limiter = RateLimiter(
        svc.options["rate_limit"], list(svc.options["rate_limit_exempt"]), ctx.reactor
    )
    return zones, counters, limiter


def _v6(record: Any) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET6, record.address)


# one server for both transports of a service: they share zones and counters
_SERVERS: weakref.WeakKeyDictionary[Any, LabDNSServer] = weakref.WeakKeyDictionary()


def _server(ctx: ServiceContext) -> LabDNSServer:
    found = _SERVERS.get(ctx.stats)
    if found is None:
        zones, counters, limiter = build(ctx)
        found = _SERVERS[ctx.stats] = LabDNSServer(zones, limiter, counters)
        ctx.publish("api/dns", ZonePage(zones, counters, ctx.config.name))
    return found


def tcp_factory(ctx: ServiceContext) -> ServerFactory:
    return _server(ctx)  # DNSServerFactory is a ServerFactory (DNS over TCP)


def udp_protocol(ctx: ServiceContext) -> DatagramProtocol:
    return DNSDatagramProtocol(_server(ctx))


DNS = ServiceType(
    name="dns",
    description=N_(
        "Authoritative DNS for the lab's zone, the suite's services published as SRV records"
    ),
    default_port=53,
    transports=frozenset({"tcp", "udp"}),
    udp_default=True,
    # the suite's generic 20/s per source would throttle every resolver behind one
    # address; DNS limits its replies itself (response rate limiting, truncation)
    udp_policy={"rate": 100000, "burst": 100000, "total_rate": 1000000, "total_burst": 1000000},
    trace_hex=frozenset({"c2s", "s2c"}),  # DNS messages are binary both ways
    options=(
        Option(
            "zone",
            str,
            default="lab.test",
            help=N_("the zone answered, e.g. lab.test"),
            check=_zone_name,
        ),
        Option("zone_file", Path, help=N_("a BIND-format zone file")),
        Option("records", dict, default=None, help=N_('a table: "www" = "127.0.0.1"')),
        Option(
            "ttl",
            int,
            default=zonemod.DEFAULT_TTL,
            help=N_("seconds records may be cached"),
            check=lambda v: None if 0 <= v <= 2**31 - 1 else _("must be 0-2147483647"),
        ),
        Option(
            "rate_limit",
            float,
            default=100.0,
            help=N_("UDP replies per second per source network; 0 = no limit"),
            check=lambda v: None if v >= 0 else _("must be >= 0 (0 = no limit)"),
        ),
        Option(
            "rate_limit_exempt",
            list,
            default=tuple(DEFAULT_EXEMPT),
            help=N_("networks not rate-limited"),
            check=_networks,
        ),
    ),
    tcp_factory=tcp_factory,
    udp_protocol=udp_protocol,
    refusal=no_refusal,
    check=check,
    rfc="RFC 1035, RFC 2782",
)
