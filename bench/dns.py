"""
dns: queries per second with dnsperf, portsuite's dns service against Twisted's own
authoritative server (`twistd dns --bindzone`, the baseline) and NSD, all serving the
same zone in the same run, rounds interleaved. Prints a table and a SUMMARY of ratios.

    .venv/bin/python bench/dns.py --rounds 3 --seconds 5

Needs dnsperf and nsd (`apt-get install dnsperf nsd`); a missing peer is skipped.
Rate limiting is off for the run (a benchmark is one source asking as fast as it can),
and the load stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import free_port, pin, terminate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
ZONE = """\
$TTL 300
$ORIGIN lab.test.
@    IN SOA ns1.lab.test. hostmaster.lab.test. 1 3600 600 86400 300
@    IN NS  ns1.lab.test.
@    IN A   127.0.0.1
ns1  IN A   127.0.0.1
www  IN A   127.0.0.1
mail IN MX  10 mx.lab.test.
mx   IN A   127.0.0.1
info IN TXT "hello"
"""
QUERIES = "www.lab.test A\nmail.lab.test MX\ninfo.lab.test TXT\nlab.test NS\nnope.lab.test A\n"


def wait_udp(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(port), "+time=1", "+tries=1", "+short", "www.lab.test"],
            capture_output=True,
            text=True,
        ).stdout
        if "127.0.0.1" in out:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no DNS answer on port {port}")


def start_portsuite(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (folder / "portsuite.toml").write_text(
        "[services.dns]\n"
        'type = "dns"\n'
        f"port = {port}\n"
        f'zone_file = "{folder / "lab.zone"}"\n'
        "rate_limit = 0\n"
    )
    cmd = [
        *pin(0),
        str(VENV / "twistd"),
        "-n",
        "--pidfile=",
        "-l",
        str(folder / "portsuite.log"),
        "portsuite",
        "-c",
        str(folder / "portsuite.toml"),
    ]
    return subprocess.Popen(cmd), port


def start_twistd_dns(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [
        *pin(0),
        str(VENV / "twistd"),
        "-n",
        "--pidfile=",
        "-l",
        str(folder / "twistd-dns.log"),
        "dns",
        "--bindzone",
        str(folder / "lab.test"),
        "-p",
        str(port),
        "-i",
        "127.0.0.1",
    ]
    return subprocess.Popen(cmd), port


def start_nsd(folder: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    nsd = shutil.which("nsd") or ("/usr/sbin/nsd" if os.path.exists("/usr/sbin/nsd") else None)
    if nsd is None:
        return None
    port = free_port()
    conf = folder / "nsd.conf"
    conf.write_text(
        "server:\n"
        "  ip-address: 127.0.0.1\n"
        f"  port: {port}\n"
        "  server-count: 1\n"
        f'  zonesdir: "{folder}"\n'
        f'  pidfile: "{folder / "nsd.pid"}"\n'
        f'  database: ""\n'
        f'  xfrdfile: "{folder / "xfrd.state"}"\n'
        f'  zonelistfile: "{folder / "zone.list"}"\n'
        '  username: ""\n'
        '  chroot: ""\n'
        "  verbosity: 0\n"
        "  rrl-ratelimit: 0\n"  # NSD's own rate limiting would drop a benchmark's queries
        "remote-control:\n"
        "  control-enable: no\n"
        "zone:\n"
        "  name: lab.test\n"
        f'  zonefile: "{folder / "lab.zone"}"\n'
    )
    return subprocess.Popen([*pin(0), nsd, "-d", "-c", str(conf)]), port


def dnsperf(port: int, seconds: float, queries: Path) -> float:
    out = subprocess.run(
        [
            *pin(1),
            "dnsperf",
            "-s",
            "127.0.0.1",
            "-p",
            str(port),
            "-d",
            str(queries),
            "-l",
            str(seconds),
            "-c",
            "4",
            "-q",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    found = re.search(r"Queries per second:\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not found:
        raise RuntimeError(f"dnsperf said:\n{out}")
    if lost and int(lost.group(1)) > 0:
        print(f"  (port {port}: {lost.group(1)} queries lost)")
    return float(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    for tool in ("dnsperf", "dig"):
        if shutil.which(tool) is None:
            print(f"bench/dns.py needs {tool}: apt-get install dnsperf dnsutils")
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "lab.zone").write_text(ZONE)
        (folder / "lab.test").write_text(ZONE)  # twistd dns names the zone after the file
        queries = folder / "queries.txt"
        queries.write_text(QUERIES)
        servers = {"portsuite": start_portsuite(folder), "twistd dns": start_twistd_dns(folder)}
        nsd = start_nsd(folder)
        if nsd is not None:
            servers["nsd"] = nsd
        results: dict[str, list[float]] = {name: [] for name in servers}
        try:
            for name, (_, port) in list(servers.items()):
                try:
                    wait_udp(port)
                except RuntimeError as e:
                    print(f"{name}: {e}; left out")
                    del results[name]
            for name in results:  # a first short run each, not counted (caches, first replies)
                dnsperf(servers[name][1], 1.0, queries)
            for _ in range(args.rounds):
                for name in results:
                    results[name].append(dnsperf(servers[name][1], args.seconds, queries))
        finally:
            terminate(*(proc for proc, _ in servers.values()))
        medians = {name: statistics.median(v) for name, v in results.items() if v}
        print(f"{'server':<12} {'queries/s (median)':>20}  rounds")
        for name, value in medians.items():
            rounds = ", ".join(f"{v:.0f}" for v in results[name])
            print(f"{name:<12} {value:>20.0f}  {rounds}")
        ours = medians.get("portsuite")
        summary = {
            f"vs {peer}": round(ours / value, 2)
            for peer, value in medians.items()
            if peer != "portsuite" and ours and value
        }
        print("SUMMARY " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
