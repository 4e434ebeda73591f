"""
The authoritative server: twisted.names' C{DNSServerFactory} over the lab's
authorities, with the answers a public authoritative server owes its clients.

  - authoritative only: RA clear, no recursion; a name outside the zones is REFUSED;
  - one question per query (FORMERR otherwise), only the QUERY opcode (NOTIMP);
  - ANY answered minimally (RFC 8482: one synthesized HINFO "RFC8482");
  - EDNS(0) (RFC 6891): the client's UDP size is honoured up to 1232 bytes, and a
    reply says ours; an EDNS version above 0 gets BADVERS;
  - over UDP a reply is never larger than 10 times its query, nor than 512 bytes
    without EDNS: a larger answer is sent truncated (TC set, question only), and the
    client asks again over TCP (dig does so by itself). So a spoofed query can never
    make this server send a victim more than 10 bytes per byte it sent;
  - response rate limiting per source network (a /24 or /56): past C{rate_limit}
    replies per second, one reply in two is a truncated one (the "slip": a real
    client retries over TCP) and the others are dropped;
  - no answer to a message that is itself an answer (QR set), and malformed
    packets dropped and counted, never a traceback.
"""

from __future__ import annotations

import collections
import ipaddress
import json
from typing import Any

from twisted.logger import Logger
from twisted.names import dns, server
from twisted.protocols.policies import TimeoutMixin
from twisted.web import resource

from portsuite_services.dns.zone import in_zone

log = Logger(namespace="portsuite.dns")

EDNS_SIZE = 1232  # the "DNS flag day 2020" size: no IP fragmentation in practice
AMPLIFICATION = 10  # a UDP reply is smaller than this many times its query
RFC8482_HINFO = dns.Record_HINFO(cpu=b"RFC8482", os=b"", ttl=3600)


def _edns(message: Any) -> tuple[int | None, int]:
    """(the EDNS version, the client's UDP size) of a query; (None, 512) without EDNS."""
    for rr in message.additional:
        if rr.type == dns.OPT:
            return (rr.ttl >> 16) & 0xFF, max(512, rr.cls)
    return None, 512


def _opt(ext_rcode: int = 0) -> Any:
    """Our OPT pseudo-record: our UDP size, version 0, no DNSSEC."""
    return dns.RRHeader(
        name=b"",
        type=dns.OPT,
        cls=EDNS_SIZE,
        ttl=ext_rcode << 24,
        payload=dns.UnknownRecord(b""),  # type: ignore[arg-type]
    )


class RateLimiter:
    """Replies per second per source network, in a bounded table (RRL, simplified)."""

    def __init__(self, rate: float, exempt: list[str], clock: Any, max_sources: int = 4096):
        self.rate = rate
        self.exempt = [ipaddress.ip_network(n, strict=False) for n in exempt]
        self.clock = clock
        self.max_sources = max_sources
        self.buckets: collections.OrderedDict[str, list[float]] = collections.OrderedDict()
        self.slip_toggle = False

    def verdict(self, host: str) -> str:
        """C{"send"}, C{"slip"} (send a truncated reply) or C{"drop"}."""
        if not self.rate:
            return "send"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return "send"
        if any(ip in net for net in self.exempt):
            return "send"
        prefix = 24 if ip.version == 4 else 56
        key = str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
        now = self.clock.seconds()
        bucket = self.buckets.pop(key, None)
        if bucket is None:
            bucket = [self.rate, now]
            while len(self.buckets) >= self.max_sources:
                self.buckets.popitem(last=False)
        tokens = min(self.rate, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        verdict = "send"
        if tokens >= 1:
            tokens -= 1
        else:
            self.slip_toggle = not self.slip_toggle
            verdict = "slip" if self.slip_toggle else "drop"
        bucket[0] = tokens
        self.buckets[key] = bucket
        return verdict


class Counters:
    def __init__(self) -> None:
        self.by_type: collections.Counter[str] = collections.Counter()
        self.by_rcode: collections.Counter[str] = collections.Counter()
        self.truncated = 0
        self.malformed = 0
        self.ignored_answers = 0
        self.rate_limited = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "queries_by_type": dict(self.by_type),
            "replies_by_rcode": dict(self.by_rcode),
            "truncated": self.truncated,
            "malformed": self.malformed,
            "ignored_answers": self.ignored_answers,
            "rate_limited": self.rate_limited,
            "udp_bytes_in": self.bytes_in,
            "udp_bytes_out": self.bytes_out,
        }


class LabDNSServer(server.DNSServerFactory):
    """DNSServerFactory for the lab's zones: authoritative answers, nothing else."""

    def __init__(self, authorities: list[Any], limiter: RateLimiter, counters: Counters):
        server.DNSServerFactory.__init__(self, authorities=authorities)
        self.zones = authorities
        self.limiter = limiter
        self.counters = counters
        self.protocol = DNSStreamProtocol

    # -- one message in ------------------------------------------------------------

    def messageReceived(self, message: Any, proto: Any, address: Any = None) -> None:
        if message.answer:  # a reply (or a reflection of one): never answer it
            self.counters.ignored_answers += 1
            return
        version, size = _edns(message)
        if message.opCode != dns.OP_QUERY:
            return self.reply(proto, address, message, dns.ENOTIMP, version, size)
        if len(message.queries) != 1:
            return self.reply(proto, address, message, dns.EFORMAT, version, size)
        if version is not None and version > 0:
            return self.reply(proto, address, message, 16, version, size)  # BADVERS
        query = message.queries[0]
        self.counters.by_type[dns.QUERY_TYPES.get(query.type, str(query.type))] += 1
        zone = self.zone_of(query.name.name)
        if zone is None:
            return self.reply(proto, address, message, dns.EREFUSED, version, size)
        if query.type == dns.AXFR:
            return self.transfer(zone, proto, address, message, version, size)
        if query.type == dns.ALL_RECORDS:
            hinfo: Any = RFC8482_HINFO  # an IEncodableRecord, through zope: unseen by mypy
            answer = dns.RRHeader(query.name.name, dns.HINFO, dns.IN, 3600, hinfo, auth=True)
            return self.reply(proto, address, message, dns.OK, version, size, [answer])
        zone.refresh()
        d = zone.query(query)
        d.addCallbacks(
            lambda result: self.reply(proto, address, message, dns.OK, version, size, *result),
            lambda failure: self.failed(failure, zone, proto, address, message, version, size),
        )
        return None

    def zone_of(self, name: bytes) -> Any:
        for zone in self.zones:
            if in_zone(name, zone.origin):
                return zone
        return None

    def failed(
        self,
        failure: Any,
        zone: Any,
        proto: Any,
        address: Any,
        message: Any,
        version: Any,
        size: int,
    ) -> None:
        if failure.check(dns.AuthoritativeDomainError, dns.DomainError):
            soa = dns.RRHeader(
                zone.origin, dns.SOA, dns.IN, zone.soa[1].minimum, zone.soa[1], auth=True
            )
            self.reply(proto, address, message, dns.ENAME, version, size, [], [soa])
            return
        log.failure("dns: lookup of {query} failed", failure, query=message.queries[0])
        self.reply(proto, address, message, dns.ESERVER, version, size)

    def transfer(
        self, zone: Any, proto: Any, address: Any, message: Any, version: Any, size: int
    ) -> None:
        """AXFR: over TCP and from this machine only (a zone transfer is no public matter)."""
        peer = proto.transport.getPeer() if address is None else None
        host = getattr(peer, "host", "")
        if address is not None or not host or not ipaddress.ip_address(host).is_loopback:
            return self.reply(proto, address, message, dns.EREFUSED, version, size)
        zone.refresh()
        d = zone.lookupZone(zone.origin)
        d.addCallback(lambda r: self.reply(proto, address, message, dns.OK, version, size, r[0]))
        return None

    # -- one message out -----------------------------------------------------------

    def reply(
        self,
        proto: Any,
        address: Any,
        query: Any,
        rcode: int,
        version: int | None,
        size: int,
        answers: Any = (),
        authority: Any = (),
        additional: Any = (),
    ) -> None:
        response = dns.Message(
            id=query.id,
            answer=1,
            opCode=query.opCode,
            recDes=query.recDes,
            recAv=0,
            auth=rcode in (dns.OK, dns.ENAME),
            rCode=rcode & 0xF,
            maxSize=0,
        )
        response.queries = query.queries[:1] if rcode != dns.EFORMAT else []
        response.answers = list(answers)
        response.authority = list(authority)
        response.additional = list(additional)
        if version is not None:
            response.additional.append(_opt(rcode >> 4))
        self.counters.by_rcode[_rcode_name(rcode)] += 1
        if address is None:  # TCP: any size (RFC 7766)
            proto.writeMessage(response)
            return
        verdict = self.limiter.verdict(address[0])
        if verdict == "drop":
            self.counters.rate_limited += 1
            return
        data = response.toStr()
        limit = min(EDNS_SIZE if version is not None else 512, size)
        limit = min(limit, AMPLIFICATION * getattr(query, "wire_size", limit) - 1)
        if verdict == "slip" or len(data) > limit:
            if verdict == "slip":
                self.counters.rate_limited += 1
            self.counters.truncated += 1
            response.trunc = 1
            response.answers, response.authority = [], []
            response.additional = [a for a in response.additional if a.type == dns.OPT]
            data = response.toStr()
        self.counters.bytes_out += len(data)
        proto.transport.write(data, address)


def _rcode_name(rcode: int) -> str:
    return {
        dns.OK: "NOERROR",
        dns.EFORMAT: "FORMERR",
        dns.ESERVER: "SERVFAIL",
        dns.ENAME: "NXDOMAIN",
        dns.ENOTIMP: "NOTIMP",
        dns.EREFUSED: "REFUSED",
        16: "BADVERS",
    }.get(rcode, str(rcode))


class DNSDatagramProtocol(dns.DNSDatagramProtocol):
    """UDP: parse, count, hand to the server; malformed packets are dropped and counted."""

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        counters = self.controller.counters
        counters.bytes_in += len(data)
        message = dns.Message()
        try:
            message.fromStr(data)
        except Exception:  # EOFError, ValueError, struct.error…: garbage from the network
            counters.malformed += 1
            return
        message.wire_size = len(data)  # type: ignore[attr-defined]
        self.controller.messageReceived(message, self, addr)


class DNSStreamProtocol(dns.DNSProtocol, TimeoutMixin):
    """TCP (RFC 7766): length-prefixed messages, idle connections closed after 10 s."""

    idle = 10.0
    transport: Any

    def connectionMade(self) -> None:
        dns.DNSProtocol.connectionMade(self)
        self.setTimeout(self.idle)

    def stringReceived(self, data: bytes) -> None:
        self.resetTimeout()
        message = dns.Message()
        try:
            message.fromStr(data)
        except Exception:
            self.factory.counters.malformed += 1
            self.transport.loseConnection()
            return
        message.wire_size = len(data)  # type: ignore[attr-defined]
        self.factory.messageReceived(message, self)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        dns.DNSProtocol.connectionLost(self, reason)


class ZonePage(resource.Resource):
    """C{/_portsuite/api/dns}: the zones' records and the query counters, as JSON."""

    isLeaf = True

    def __init__(self, zones: list[Any], counters: Counters, service: str):
        resource.Resource.__init__(self)
        self.zones = zones
        self.counters = counters
        self.service = service

    def snapshot(self) -> dict[str, Any]:
        zones = []
        for zone in self.zones:
            records = [
                {
                    "name": name.decode("ascii", "replace"),
                    "type": dns.QUERY_TYPES.get(r.TYPE, str(r.TYPE)),
                    "ttl": r.ttl,
                    "data": _text(r),
                }
                for name, r in zone.all_records()
            ]
            zones.append({"zone": zone.origin.decode("ascii"), "records": records})
        return {"service": self.service, "zones": zones, **self.counters.as_dict()}

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return json.dumps(self.snapshot(), indent=1).encode("utf-8")


def _text(record: Any) -> str:
    """A record's data as a zone file shows it."""
    if isinstance(record, dns.Record_TXT):
        return " ".join(f'"{d.decode("utf-8", "replace")}"' for d in record.data)
    text = str(record)
    # twisted's repr: <A address=127.0.0.1 ttl=300>: keep the fields, not the ttl
    return " ".join(p for p in text.strip("<>").split()[1:] if not p.startswith("ttl="))
