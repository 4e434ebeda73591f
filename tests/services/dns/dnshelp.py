"""Helpers for the dns tests: a suite with a dns service, and raw queries."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

RECORDS = {
    "www": "127.0.0.1",
    "mail": {"MX": "10 mail.lab.test.", "A": "127.0.0.1"},
    "info": {"TXT": "hello"},
    "alias": {"CNAME": "www.lab.test."},
    "v6": "::1",
}


def dns_suite(portsuite: Any, **options: Any) -> Any:
    dns_table = {"type": "dns", "port": 0, "records": RECORDS, **options}
    return portsuite(
        {
            "services": {
                "dns": dns_table,
                "web": {"type": "echo", "port": 0},
            }
        }
    )


def dig(port: int, *args: str) -> str:
    from portsuite.testing import need

    return subprocess.run(
        [need("dig"), "@127.0.0.1", "-p", str(port), "+time=5", "+tries=2", *args],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def udp(port: int, wire: bytes, timeout: float = 3.0) -> bytes | None:
    """Send one datagram; the reply, or None if none came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def query(name: str, rtype: str = "A", **kwargs: Any) -> dns.message.Message:
    return dns.message.make_query(name, dns.rdatatype.from_text(rtype), **kwargs)
