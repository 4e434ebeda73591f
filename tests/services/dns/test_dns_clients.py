"""The dns service with the clients people use: dig, host, nslookup, dnspython."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from typing import Any

import dns.query
import dns.rcode
import pytest
from dnshelp import dig, dns_suite, query

from portsuite.testing import need


@pytest.fixture
def lab(portsuite: Any) -> Any:
    return dns_suite(portsuite)


def test_dig_answers_the_zone(lab: Any) -> None:
    port = lab.port("dns", "udp")
    assert dig(port, "+short", "www.lab.test").split() == ["127.0.0.1"]
    assert dig(port, "+short", "AAAA", "v6.lab.test").split() == ["::1"]
    assert dig(port, "+short", "MX", "mail.lab.test").split() == ["10", "mail.lab.test."]
    assert dig(port, "+short", "TXT", "info.lab.test").split() == ['"hello"']
    assert dig(port, "+short", "alias.lab.test").split() == ["www.lab.test.", "127.0.0.1"]
    assert "lab.test." in dig(port, "+short", "-x", "127.0.0.1").split()
    out = dig(port, "www.lab.test")
    assert "flags: qr aa rd;" in out  # authoritative, no "ra": no recursion here


def test_srv_records_say_which_port_each_service_is_on(lab: Any) -> None:
    port = lab.port("dns", "udp")
    echo_port = lab.port("web")  # an echo service named "web", bound to port 0
    assert dig(port, "+short", "SRV", "_echo._tcp.lab.test").split() == [
        "0",
        "0",
        str(echo_port),
        "lab.test.",
    ]
    # by the service's own name too, and the dns service itself, on UDP
    assert str(echo_port) in dig(port, "+short", "SRV", "_web._tcp.lab.test")
    assert f"0 0 {port} lab.test." in dig(port, "+short", "SRV", "_domain._udp.lab.test")
    # the SRV target's address comes along (RFC 2782)
    assert "lab.test.\t\t300\tIN\tA\t127.0.0.1" in dig(
        port, "SRV", "_echo._tcp.lab.test", "+noall", "+additional"
    )


def test_negative_answers_and_names_outside_the_zone(lab: Any) -> None:
    port = lab.port("dns", "udp")
    nx = dig(port, "nothing.lab.test")
    assert "status: NXDOMAIN" in nx and "IN\tSOA\tns1.lab.test." in nx
    nodata = dig(port, "MX", "www.lab.test")
    assert "status: NOERROR" in nodata and "ANSWER: 0" in nodata and "SOA" in nodata
    assert "status: REFUSED" in dig(port, "example.com")
    assert "status: REFUSED" in dig(port, "lab.test.example.com")


def test_any_is_answered_minimally(lab: Any) -> None:
    out = dig(lab.port("dns", "udp"), "ANY", "mail.lab.test", "+noall", "+answer")
    assert out.split() == ["mail.lab.test.", "3600", "IN", "HINFO", '"RFC8482"', '""']


def test_host_and_nslookup(lab: Any) -> None:
    port = str(lab.port("dns", "udp"))
    host = subprocess.run(
        [need("host"), "-p", port, "www.lab.test", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "www.lab.test has address 127.0.0.1" in host
    ns = subprocess.run(
        [need("nslookup"), f"-port={port}", "-type=SRV", "_echo._tcp.lab.test", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert f"service = 0 0 {lab.port('web')} lab.test." in ns


def test_dnspython_over_udp_and_tcp(lab: Any) -> None:
    q = query("mail.lab.test", "MX")
    r = dns.query.udp(q, "127.0.0.1", port=lab.port("dns", "udp"), timeout=5)
    assert r.rcode() == dns.rcode.NOERROR
    assert [str(rr) for rr in r.answer[0]] == ["10 mail.lab.test."]
    assert [str(rr) for rr in r.additional[0]] == ["127.0.0.1"]  # the MX host's address
    t = dns.query.tcp(q, "127.0.0.1", port=lab.port("dns"), timeout=5)
    assert t.answer == r.answer


def test_the_dashboard_lists_the_zone_and_counts_queries(portsuite: Any, tmp_path: Any) -> None:
    s = portsuite(
        {
            "services": {
                "dns": {"type": "dns", "port": 0, "records": {"www": "127.0.0.1"}},
                "site": {"type": "http", "port": 0, "root": str(tmp_path)},
            }
        }
    )
    dig(s.port("dns", "udp"), "www.lab.test")
    dig(s.port("dns", "udp"), "TXT", "www.lab.test")
    url = f"http://127.0.0.1:{s.port('site')}/_portsuite/api/dns"
    with urllib.request.urlopen(url, timeout=10) as r:
        data = json.loads(r.read())
    assert data["queries_by_type"]["A"] >= 1 and data["queries_by_type"]["TXT"] >= 1
    records = {(x["name"], x["type"]) for z in data["zones"] for x in z["records"]}
    assert ("www.lab.test", "A") in records
    assert ("_http._tcp.lab.test", "SRV") in records
