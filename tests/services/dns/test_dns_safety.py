"""DNS over UDP is the classic amplifier: what a hostile or spoofed query gets."""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest
from dnshelp import RECORDS, dig, dns_suite, query, udp

BIG_TXT = "x" * 900  # an answer far larger than the query


@pytest.fixture
def lab(portsuite: Any) -> Any:
    records = {**RECORDS, "big": {"TXT": BIG_TXT}}
    return dns_suite(portsuite, records=records)


def _reply(port: int, q: dns.message.Message) -> dns.message.Message:
    """The reply, asked up to three times as a resolver does (a datagram may be lost)."""
    for _ in range(3):
        data = udp(port, q.to_wire())
        if data is not None:
            return dns.message.from_wire(data)
    raise AssertionError("no reply")


@pytest.mark.parametrize(
    "name,rtype",
    [
        ("lab.test", "A"),
        ("lab.test", "NS"),
        ("lab.test", "SOA"),
        ("lab.test", "ANY"),
        ("big.lab.test", "TXT"),
        ("mail.lab.test", "MX"),
        ("_echo._tcp.lab.test", "SRV"),
        ("alias.lab.test", "A"),
        ("nothing.lab.test", "A"),
        ("1.0.0.127.in-addr.arpa", "PTR"),
    ],
)
@pytest.mark.parametrize("edns", [False, True])
def test_no_reply_is_ten_times_its_query(lab: Any, name: str, rtype: str, edns: bool) -> None:
    q = query(name, rtype, use_edns=0 if edns else None, payload=4096)
    wire = q.to_wire()
    data = udp(lab.port("dns", "udp"), wire)
    assert data is not None
    assert len(data) < 10 * len(wire), f"{len(data)} bytes out for {len(wire)} in"


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(lab: Any) -> None:
    q = query("big.lab.test", "TXT", use_edns=0, payload=4096)
    r = _reply(lab.port("dns", "udp"), q)
    assert r.flags & dns.flags.TC and not r.answer
    full = dns.query.tcp(q, "127.0.0.1", port=lab.port("dns"), timeout=5)
    assert b"".join(full.answer[0][0].strings) == BIG_TXT.encode()
    # dig retries over TCP by itself, as a student would see
    shown = dig(lab.port("dns", "udp"), "+short", "TXT", "big.lab.test")
    assert shown.replace('"', "").replace(" ", "").strip() == BIG_TXT  # 255-byte strings


def test_edns_size_is_said_and_versions_above_0_get_badvers(lab: Any) -> None:
    r = _reply(lab.port("dns", "udp"), query("www.lab.test", use_edns=0, payload=4096))
    assert r.edns == 0 and r.payload == 1232
    assert _reply(lab.port("dns", "udp"), query("www.lab.test")).edns == -1  # none asked
    bad = _reply(lab.port("dns", "udp"), query("www.lab.test", use_edns=1))
    assert bad.rcode() == dns.rcode.BADVERS


def test_answers_malformed_packets_and_odd_opcodes_get_no_traceback(lab: Any, capfd: Any) -> None:
    port = lab.port("dns", "udp")
    answer = query("www.lab.test")
    answer.flags |= dns.flags.QR
    assert udp(port, answer.to_wire(), timeout=1) is None  # never answer an answer
    for garbage in [b"", b"\x00", os.urandom(11)]:  # too short for a header: dropped
        assert udp(port, garbage, timeout=0.5) is None
    cut = b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\x07ab"  # its question cut off
    reply = udp(port, cut)
    assert reply is not None and len(reply) == 12  # a bare header: FORMERR, nothing more
    assert dns.rcode.from_flags(int.from_bytes(reply[2:4], "big"), 0) == dns.rcode.FORMERR
    # random bytes that happen to parse get at most a header-sized refusal: no amplification
    for _ in range(20):
        junk = os.urandom(600)
        reply = udp(port, junk, timeout=0.3)
        assert reply is None or len(reply) < len(junk)
    notify = query("www.lab.test")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert _reply(port, notify).rcode() == dns.rcode.NOTIMP
    two = query("www.lab.test")
    two.question.append(query("mail.lab.test").question[0])
    assert _reply(port, two).rcode() == dns.rcode.FORMERR
    # still serving, and said nothing alarming
    assert _reply(port, query("www.lab.test")).rcode() == dns.rcode.NOERROR
    assert "Traceback" not in capfd.readouterr().err


def test_tcp_garbage_closes_only_that_connection(lab: Any) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", lab.port("dns")), timeout=5) as s:
        s.sendall(b"\x00\x05hello")
        assert s.recv(100) == b""  # closed
    r = dns.query.tcp(query("www.lab.test"), "127.0.0.1", port=lab.port("dns"), timeout=5)
    assert r.rcode() == dns.rcode.NOERROR


def test_response_rate_limiting_slips_and_drops(portsuite: Any, tmp_path: Any) -> None:
    s = portsuite(
        {
            "services": {
                "dns": {
                    "type": "dns",
                    "port": 0,
                    "rate_limit": 5,
                    "rate_limit_exempt": [],
                    "records": {"www": "127.0.0.1"},
                },
                "site": {"type": "http", "port": 0, "root": str(tmp_path)},
            }
        }
    )
    port = s.port("dns", "udp")
    full = truncated = silent = 0
    for _ in range(40):
        data = udp(port, query("www.lab.test").to_wire(), timeout=0.3)
        if data is None:
            silent += 1
        elif dns.message.from_wire(data).flags & dns.flags.TC:
            truncated += 1
        else:
            full += 1
    assert full >= 5 and truncated >= 5 and silent >= 5, (full, truncated, silent)
    assert full < 40
    url = f"http://127.0.0.1:{s.port('site')}/_portsuite/api/dns"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert json.loads(r.read())["rate_limited"] >= 10


def test_loopback_is_exempt_from_rate_limiting_by_default(lab: Any) -> None:
    port = lab.port("dns", "udp")
    for _ in range(150):
        r = _reply(port, query("www.lab.test"))
        assert not r.flags & dns.flags.TC
