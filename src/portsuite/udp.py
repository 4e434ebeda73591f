"""
The guards in front of every UDP service (echo, chargen, qotd, … and plugins).

UDP has no handshake: the source address of a datagram is whatever the sender wrote,
so a small service answering it can be aimed at a third party (amplification:
chargen answers 1 byte with hundreds) or at another small service, and two of them
then bounce datagrams at each other for ever (echo <-> chargen, the "loop DoS" of
CVE-2024-2169). L{GuardedDatagramWrapper} drops, before the service sees it, every
datagram:

  1. from a source port where services live (L{blocked_source_port}): every port
     below 1024 (the well-known ports, where echo 7, discard 9, daytime 13, qotd 17,
     chargen 19, time 37, DNS 53, NTP 123, SNMP 161 … answer; only root can send from
     them, and no ordinary client does: nc, socat, dig and every socket library send
     from an ephemeral port, 32768-60999 on Linux), the UDP services commonly above it
     (L{SERVICE_PORTS_ABOVE_1023}: SSDP 1900, NFS 2049, WS-Discovery 3702, mDNS 5353,
     LLMNR 5355, memcached 11211 …), and every port this suite itself listens on.
     OpenBSD's inetd drops the same way for its internal services
     (C{port < IPPORT_RESERVED || port == NFS_PORT}); a list of a few well-known
     ports alone would let a loop through any service not on it;
  2. from an address that cannot be a real client: broadcast, multicast, the
     unspecified address (0.0.0.0, ::), 0.0.0.0/8 and 240.0.0.0/4;
  3. from a source that has used up its share: a token bucket per source address
     (C{rate} datagrams per second, bursts of C{burst}), in a table of bounded size
     (the least recently seen source is forgotten first), plus one bucket for the
     whole service so that many sources (real or spoofed) cannot add up.

And each reply is capped (L{allowReply}): no larger than C{max_reply} bytes (512, as
chargen's RFC asks) unless it is no larger than the request it answers (so echo of a
big datagram still works: it does not amplify).

Every drop counts in C{stats.dropped} and is logged, at most once per reason every
C{log_every} seconds (with how many were dropped in between), so a flood does not
become a flood of log lines.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict
from typing import Any

import attrs
from twisted.logger import Logger

from portsuite.api import format_peer, ip_of
from portsuite.api.stats import ServiceStats
from portsuite.trace import DatagramTracer, ServiceTrace
from portsuite.wrappers import DatagramWrapper

log = Logger(namespace="portsuite")

# UDP services above 1023 that answer datagrams (and so could join a loop)
SERVICE_PORTS_ABOVE_1023 = frozenset(
    {
        1194,  # OpenVPN
        1434,  # MS SQL monitor
        1900,  # SSDP / UPnP
        2049,  # NFS
        3283,  # Apple Remote Desktop
        3478,  # STUN
        3702,  # WS-Discovery
        5060,  # SIP
        5353,  # mDNS
        5355,  # LLMNR
        5683,  # CoAP
        10001,  # Ubiquiti discovery
        11211,  # memcached
        27015,  # Steam / Source game queries
    }
)


def blocked_source_port(port: int) -> bool:
    """Whether a datagram from this source port is never answered (not counting the suite's own)."""
    return port < 1024 or port in SERVICE_PORTS_ABOVE_1023


@functools.lru_cache(maxsize=4096)  # a pure function of the text: parse each host once
def bad_source_address(host: str) -> str | None:
    """Why a datagram from this address cannot come from a real client, or None."""
    ip = ip_of(host)  # an IPv4-mapped address is judged as the IPv4 address it carries
    if ip is None:
        return None  # not an IP address (cannot happen for UDP/IP): let the other guards decide
    if ip.is_multicast:
        return "multicast source address"
    if ip.is_unspecified:
        return "unspecified source address"
    if isinstance(ip, ipaddress.IPv4Address):
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "broadcast source address"
        first = int(ip) >> 24
        if first == 0:
            return "source address in 0.0.0.0/8"
        if first >= 240:
            return "reserved source address (240.0.0.0/4)"
    return None


@attrs.define
class UdpPolicy:
    """
    The limits of the UDP guards (one per service).

    @ivar rate: datagrams per second answered per source address (sustained).
    @ivar burst: datagrams a source may send at once before the rate applies.
    @ivar total_rate: datagrams per second the whole service answers, all sources.
    @ivar total_burst: the same, at once.
    @ivar max_sources: how many source addresses the rate table remembers.
    @ivar max_reply: the largest reply, in bytes, unless the request was as large.
    @ivar log_every: seconds between two log lines for the same kind of drop.
    """

    rate: float = 20.0
    burst: float = 40.0
    total_rate: float = 2000.0
    total_burst: float = 4000.0
    max_sources: int = 4096
    max_reply: int = 512
    log_every: float = 10.0


class TokenBucket:
    """C{capacity} tokens, refilled at C{rate} per second; each datagram takes one."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.stamp)
        self.stamp = now
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateTable:
    """One L{TokenBucket} per source address, at most C{size} of them (LRU eviction)."""

    def __init__(self, rate: float, burst: float, size: int):
        self.rate = rate
        self.burst = burst
        self.size = size
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, host: str, now: float) -> bool:
        bucket = self.buckets.get(host)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            self.buckets[host] = bucket
            while len(self.buckets) > self.size:
                self.buckets.popitem(last=False)
        else:
            self.buckets.move_to_end(host)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self.buckets)


class DropLog:
    """Logs drops at most once per reason every C{every} seconds, with a count of the rest."""

    def __init__(self, service: str, every: float):
        self.service = service
        self.every = every
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def drop(self, kind: str, text: str, now: float) -> bool:
        """Count a drop; log it unless one of its kind was logged recently. True if logged."""
        last = self.last.get(kind)
        if last is not None and now - last < self.every:
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return False
        more = self.suppressed.pop(kind, 0)
        self.last[kind] = now
        log.warn(
            "{service}: UDP guard dropped {text}{more}",
            service=self.service,
            text=text,
            more=f" (and {more} more like it in the last {self.every:g}s)" if more else "",
        )
        return True


def suite_ports(suite: Any) -> set[tuple[str, int]]:
    """(host, port) of every listener of the suite, TCP and UDP."""
    out: set[tuple[str, int]] = set()
    if suite is None:
        return out
    for stats in getattr(suite, "stats", {}).values():
        for li in stats.listeners:
            if li.port is not None:
                out.add((li.host, li.port))
    return out


_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class GuardedDatagramWrapper(DatagramWrapper):
    """
    The wrapper of every UDP service: L{DatagramWrapper}'s counters plus the guards
    described in this module, and the transcript when the service has C{trace = true}.
    """

    transport: Any

    def __init__(
        self,
        wrapped: Any,
        stats: ServiceStats,
        reactor: Any,
        suite: Any = None,
        policy: UdpPolicy | None = None,
        trace: bool | ServiceTrace = False,
    ):
        DatagramWrapper.__init__(self, wrapped, stats)
        self.reactor = reactor
        self.suite = suite
        self.policy = policy or UdpPolicy()
        p = self.policy
        self.sources = RateTable(p.rate, p.burst, p.max_sources)
        self.total = TokenBucket(p.total_rate, p.total_burst, reactor.seconds())
        self.drops = DropLog(stats.name, p.log_every)
        self._request_size: int | None = None
        self.tracer: Any = None
        if trace:
            self.tracer = DatagramTracer(
                stats, reactor, trace if isinstance(trace, ServiceTrace) else None
            )

    @classmethod
    def for_context(cls, protocol: Any, ctx: Any, policy: UdpPolicy | None = None) -> Any:
        return cls(
            protocol,
            ctx.stats,
            ctx.reactor,
            suite=ctx.suite,
            policy=policy,
            trace=ServiceTrace.for_context(ctx) if ctx.config.trace else False,
        )

    def logPrefix(self) -> str:
        return self.stats.name  # "echo starting on 7", not the class name

    # -- the guards ------------------------------------------------------------

    def own_address(self, host: str, port: int) -> bool:
        """Whether (host, port) is one of this suite's own listeners."""
        for lhost, lport in suite_ports(self.suite):
            if lport == port and (lhost in _WILDCARDS or lhost == host):
                return True
        return False

    def refuse_reason(self, addr: Any) -> tuple[str, str] | None:
        """(kind, text) of why a datagram from C{addr} must not be answered, or None."""
        if not isinstance(addr, tuple) or len(addr) < 2:
            return None  # unix datagram sockets: no ports, no amplification
        host, port = str(addr[0]), int(addr[1])
        bad = bad_source_address(host)
        if bad is not None:
            return "address", f"a datagram from {format_peer(addr)}: {bad}"
        if port == 0:
            return "port", f"a datagram from {format_peer(addr)}: source port 0"
        if blocked_source_port(port):
            kind = "a well-known" if port < 1024 else "a UDP service's"
            return "port", (
                f"a datagram from {format_peer(addr)}: source port {port} is {kind} port, "
                f"where services (not clients) live; answering could start a loop"
            )
        if self.own_address(host, port):
            return "self", (
                f"a datagram from {format_peer(addr)}: that is a port of this suite; "
                f"answering would loop"
            )
        return None

    def allowRequest(self, data: bytes, addr: Any) -> bool:
        now = self.reactor.seconds()
        reason = self.refuse_reason(addr)
        if reason is None and isinstance(addr, tuple):
            if not self.sources.allow(str(addr[0]), now):
                reason = (
                    "rate",
                    (
                        f"datagrams from {addr[0]} above {self.policy.rate:g}/s "
                        f"(bursts of {self.policy.burst:g})"
                    ),
                )
            elif not self.total.take(now):
                reason = (
                    "total",
                    (
                        f"datagrams above the service's {self.policy.total_rate:g}/s from all sources"
                    ),
                )
        if reason is not None:
            logged = self.drops.drop(reason[0], reason[1], now)
            if logged and self.tracer is not None:  # as rate-limited as the log
                self.tracer.dropped(addr, data, reason[1])
            return False
        if self.tracer is not None:
            self.tracer.received(addr, data)
        return True

    def allowReply(self, data: bytes, addr: Any) -> bool:
        now = self.reactor.seconds()
        if addr is not None and self.refuse_reason(addr) is not None:
            # the service addressed someone the guards would not answer
            self.drops.drop("reply-to", f"a reply to {format_peer(addr)}", now)
            return False
        limit = self.policy.max_reply
        if self._request_size is not None:
            limit = max(limit, self._request_size)
        if len(data) > limit:
            self.drops.drop(
                "size",
                f"a reply of {len(data)} bytes to {format_peer(addr)}: larger than "
                f"{self.policy.max_reply} bytes and than its request",
                now,
            )
            return False
        if self.tracer is not None:
            self.tracer.sent(addr, data)  # before it leaves: the transcript never lags the peer
        return True

    # -- the request a reply is compared with ---------------------------------------

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self._request_size = len(data)
        try:
            DatagramWrapper.datagramReceived(self, data, addr)
        finally:
            self._request_size = None
