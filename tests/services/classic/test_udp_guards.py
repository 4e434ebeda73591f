"""The UDP guards: unit tests on a fake transport and a Clock, then a real loop on loopback."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from twisted.internet.task import Clock

from portsuite import udp
from portsuite.api import Listener, ServiceStats
from portsuite.testing import DatagramRecorder as FakeUDP
from portsuite.testing import call_in_reactor, suite_running
from portsuite_services import classic
from portsuite_services.echo import EchoDatagram

CLIENT = ("127.0.0.1", 40000)


class FakeSuite:
    def __init__(self, *listeners: tuple[str, int]):
        stats = ServiceStats("other", "echo")
        stats.listeners = [Listener("udp", h, p, f"udp:{p}") for h, p in listeners]
        self.stats = {"other": stats}


def guarded(
    protocol: Any = None, suite: Any = None, **policy: Any
) -> tuple[udp.GuardedDatagramWrapper, FakeUDP, Clock]:
    clock = Clock()
    clock.advance(1000)
    stats = ServiceStats("echo", "echo")
    w = udp.GuardedDatagramWrapper(
        protocol or EchoDatagram(), stats, clock, suite=suite, policy=udp.UdpPolicy(**policy)
    )
    t = FakeUDP()
    w.makeConnection(t)
    return w, t, clock


def test_an_ordinary_client_is_answered() -> None:
    w, t, _ = guarded()
    w.datagramReceived(b"hi", CLIENT)
    assert t.sent == [(b"hi", CLIENT)]
    assert w.stats.dropped == 0 and w.stats.datagrams_out == 1


@pytest.mark.parametrize("port", [7, 9, 13, 17, 19, 37, 53, 123, 161, 1023, 1900, 5353, 11211, 0])
def test_never_answers_a_service_port(port: int) -> None:
    """The echo<->chargen loop (CVE-2024-2169) needs a reply to a service's own port."""
    w, t, _ = guarded()
    w.datagramReceived(b"loop?", ("127.0.0.1", port))
    assert t.sent == []
    assert w.stats.dropped == 1 and w.stats.datagrams_in == 1


@pytest.mark.parametrize("port", [1024, 7007, 32768, 49152, 60999, 65535])
def test_ephemeral_and_registered_ports_are_answered(port: int) -> None:
    w, t, _ = guarded()
    w.datagramReceived(b"hi", ("127.0.0.1", port))
    assert t.sent == [(b"hi", ("127.0.0.1", port))]


@pytest.mark.parametrize(
    "host",
    ["255.255.255.255", "224.0.0.251", "239.255.255.250", "0.0.0.0", "0.1.2.3", "240.0.0.1",
     "::", "ff02::1", "::ffff:224.0.0.1"],
)  # fmt: skip
def test_never_answers_broadcast_multicast_or_unspecified(host: str) -> None:
    w, t, _ = guarded()
    w.datagramReceived(b"hi", (host, 40000))
    assert t.sent == [] and w.stats.dropped == 1


def test_never_answers_the_suite_itself() -> None:
    """Two services of one suite on ports >= 1024 (7007, 7019) still cannot loop."""
    suite = FakeSuite(("127.0.0.1", 7019), ("0.0.0.0", 7013))
    w, t, _ = guarded(suite=suite)
    w.datagramReceived(b"x", ("127.0.0.1", 7019))
    w.datagramReceived(b"x", ("10.1.2.3", 7013))  # a wildcard listener: any address of ours
    assert t.sent == [] and w.stats.dropped == 2
    w.datagramReceived(b"x", ("10.1.2.3", 7019))  # another host's 7019 is not us
    assert len(t.sent) == 1


def test_rate_limit_per_source_with_burst_then_refill() -> None:
    w, t, clock = guarded(rate=2, burst=3)
    for _ in range(10):
        w.datagramReceived(b"x", CLIENT)
    assert len(t.sent) == 3 and w.stats.dropped == 7
    # another source has its own bucket
    w.datagramReceived(b"x", ("127.0.0.2", 40000))
    assert len(t.sent) == 4
    clock.advance(1.0)  # 2 tokens back
    for _ in range(5):
        w.datagramReceived(b"x", CLIENT)
    assert len(t.sent) == 6 and w.stats.dropped == 10


def test_total_rate_caps_many_sources() -> None:
    w, t, _ = guarded(rate=100, burst=100, total_rate=1, total_burst=5)
    for i in range(20):
        w.datagramReceived(b"x", (f"127.0.0.{i + 1}", 40000))
    assert len(t.sent) == 5 and w.stats.dropped == 15


def test_rate_table_is_bounded_and_forgets_the_oldest_source() -> None:
    table = udp.RateTable(rate=1, burst=1, size=3)
    for i in range(10):
        assert table.allow(f"10.0.0.{i}", 0.0)
    assert len(table) == 3
    assert list(table.buckets) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]
    assert not table.allow("10.0.0.9", 0.0)  # still remembered: its token is spent


def test_reply_size_cap_except_when_not_amplifying() -> None:
    class Big:
        def makeConnection(self, t: Any) -> None:
            self.transport = t

        def doStop(self) -> None:
            pass

        def datagramReceived(self, data: bytes, addr: Any) -> None:
            self.transport.write(b"y" * 1000, addr)

    w, t, _ = guarded(protocol=Big())
    w.datagramReceived(b"x", CLIENT)  # 1 byte -> 1000: an amplifier, dropped
    assert t.sent == [] and w.stats.dropped == 1
    w.datagramReceived(b"x" * 1000, CLIENT)  # 1000 -> 1000: no gain, allowed
    assert len(t.sent) == 1
    e, te, _ = guarded()  # echo of a big datagram still works
    e.datagramReceived(b"z" * 4000, CLIENT)
    assert te.sent == [(b"z" * 4000, CLIENT)]


def test_chargen_udp_reply_passes_the_cap() -> None:
    w, t, _ = guarded(protocol=classic.ChargenDatagram())
    w.datagramReceived(b"", CLIENT)
    assert len(t.sent) == 1 and len(t.sent[0][0]) <= 512


def test_drops_are_logged_at_most_once_per_interval() -> None:
    from twisted.logger import globalLogPublisher

    seen: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        w, _, clock = guarded(log_every=10)
        for _ in range(50):
            w.datagramReceived(b"x", ("127.0.0.1", 19))
        clock.advance(11)
        w.datagramReceived(b"x", ("127.0.0.1", 19))
    finally:
        globalLogPublisher.removeObserver(seen.append)
    lines = [
        e
        for e in seen
        if e.get("log_namespace") == "portsuite" and "UDP guard" in e.get("log_format", "")
    ]
    assert len(lines) == 2
    assert "source port 19" in lines[0]["text"]
    assert "49 more" in lines[1]["more"]
    assert w.stats.dropped == 51


# -- real sockets --------------------------------------------------------------


def test_real_echo_chargen_loop_attempt_stops_at_once() -> None:
    """
    The classic attack (CVE-2024-2169): one datagram to chargen with its source forged
    to be echo's address and port; without guards, chargen answers echo, echo echoes
    back to chargen, and the two bounce for ever. We make chargen see exactly that
    datagram by sending it from echo's own UDP socket; the guard stops it at once.
    """
    config = {
        "services": {
            "echo": {"type": "echo", "port": 0, "udp": True},
            "chargen": {"type": "chargen", "port": 0, "udp": True},
        }
    }
    with suite_running(config) as s:
        echo_port, chargen_port = s.port("echo", "udp"), s.port("chargen", "udp")
        # an ordinary client is answered by both
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(5)
        c.sendto(b"hi", ("127.0.0.1", chargen_port))
        assert len(c.recvfrom(2048)[0]) <= 512
        c.sendto(b"hi", ("127.0.0.1", echo_port))
        assert c.recvfrom(2048)[0] == b"hi"
        c.close()

        def kick() -> None:
            bound = [
                b for b in s.suite._bound if b.service == "echo" and b.listener.transport == "udp"
            ]
            bound[0].port.write(b"start the storm", ("127.0.0.1", chargen_port))

        call_in_reactor(kick)
        deadline = time.monotonic() + 5
        while s.service("chargen")["datagrams"]["dropped"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # room for a storm to show, had one started
        echo, chargen = s.service("echo"), s.service("chargen")
        assert chargen["datagrams"]["dropped"] == 1  # chargen refused echo's port
        assert chargen["datagrams"]["out"] == 1  # only the ordinary client got an answer
        assert echo["datagrams"]["in"] == 1  # nothing came back to echo: no storm
