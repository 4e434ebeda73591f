"""The zone: a BIND zone file or the config's records table, checked before startup."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import dns.query
import dns.rdatatype
import dns.zone
import pytest

from portsuite import loader
from portsuite.api import ConfigError
from portsuite.testing import need

ZONE = """\
$TTL 600
$ORIGIN lab.test.
@       IN SOA ns1.lab.test. admin.lab.test. ( 2026120101 ; serial
                3600 600 86400 300 )
@       IN NS  ns1.lab.test.
@       IN A   127.0.0.1
ns1     IN A   127.0.0.1
www         A  127.0.0.2   ; a comment
web     300 IN CNAME www
mail    IN MX  10 mx.lab.test.
mx      IN A   127.0.0.3
motd    IN TXT "bonjour ; le monde"
_ssh._tcp IN SRV 0 0 2222 lab.test.
"""


def _errors(options: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        loader.from_dict(
            {"services": {"dns": {"type": "dns", "port": 0, **options}}},
            base_dir=tmp_path,
            label="lab.toml",
        )
    return e.value.errors


def test_a_zone_file_round_trips_through_a_zone_transfer(portsuite: Any, tmp_path: Path) -> None:
    (tmp_path / "lab.zone").write_text(ZONE)
    s = portsuite(
        {"services": {"dns": {"type": "dns", "port": 0, "zone_file": str(tmp_path / "lab.zone")}}}
    )
    served = dns.zone.from_xfr(
        dns.query.xfr("127.0.0.1", "lab.test", port=s.port("dns"), timeout=10)
    )
    written = dns.zone.from_text(ZONE, origin="lab.test", relativize=True)
    for name, node in written.nodes.items():
        for rdataset in node.rdatasets:
            got = served.find_rdataset(name, rdataset.rdtype)
            assert set(got) == set(rdataset), (name, rdataset)
            assert got.ttl == rdataset.ttl
    soa = served.find_rdataset("@", dns.rdatatype.SOA)[0]
    assert soa.serial == 2026120101 and str(soa.rname) == "admin"
    out = subprocess.run(
        [
            need("dig"),
            "@127.0.0.1",
            "-p",
            str(s.port("dns", "udp")),
            "+short",
            "TXT",
            "motd.lab.test",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert out.strip() == '"bonjour ; le monde"'


def test_zone_transfers_only_over_tcp(portsuite: Any, tmp_path: Path) -> None:
    s = portsuite({"services": {"dns": {"type": "dns", "port": 0}}})
    q = dns.message.make_query("lab.test", dns.rdatatype.AXFR)
    r = dns.query.udp(q, "127.0.0.1", port=s.port("dns", "udp"), timeout=5)
    assert r.rcode() == dns.rcode.REFUSED


def test_zone_file_errors_name_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    bad = (
        ZONE.replace("www         A  127.0.0.2", "www         A  127.0.0.999").replace(
            "mail    IN MX  10 mx.lab.test.", "mail    IN MX  mx.lab.test."
        )
        + "x IN WKS 1 2 3\n$INCLUDE other.zone\n"
    )
    (tmp_path / "lab.zone").write_text(bad)
    errs = _errors({"zone_file": "lab.zone"}, tmp_path)
    where = f"lab.toml: [services.dns] zone_file: {tmp_path / 'lab.zone'}"
    assert f"{where}:8: A '127.0.0.999' is not an IPv4 address, e.g. 127.0.0.1" in errs
    assert any(e.startswith(f"{where}:10: MX") and "PREFERENCE HOST" in e for e in errs)
    assert any(e.startswith(f"{where}:14:") and "WKS" in e for e in errs)
    assert any(e.startswith(f"{where}:15: $INCLUDE is not supported") for e in errs)
    assert len(errs) == 4


def test_records_table_errors_are_one_line_each(tmp_path: Path) -> None:
    errs = _errors(
        {
            "zone": "lab.test",
            "records": {
                "www": "not-an-ip",
                "mail": {"MX": "ten mail"},
                "bad name!": "127.0.0.1",
                "alias": {"CNAME": "www", "A": "127.0.0.1"},
                "far": {"SRV": "0 0 99999 x"},
                "odd": {"LOC": "somewhere"},
            },
        },
        tmp_path,
    )
    text = "\n".join(errs)
    for expected in [
        "[services.dns] records.www.A: A 'not-an-ip' is not an IPv4 address",
        "[services.dns] records.mail.MX: MX 'ten mail': write \"PREFERENCE HOST\"",
        "[services.dns] records.bad name!: 'bad name!' is not a valid DNS name",
        "[services.dns] records.alias: a CNAME cannot stand beside other records",
        "[services.dns] records.far.SRV:",
        "[services.dns] records.odd.LOC: record type 'LOC' is not served here",
    ]:
        assert expected in text, expected
    assert len(errs) == 6


def test_a_missing_zone_file_is_one_line(tmp_path: Path) -> None:
    errs = _errors({"zone_file": "nowhere.zone"}, tmp_path)
    assert len(errs) == 1 and "zone_file: cannot read" in errs[0] and "nowhere.zone" in errs[0]
