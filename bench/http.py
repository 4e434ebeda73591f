#!/usr/bin/env python3
"""
bench/http.py: static GET throughput of portsuite's http service against its peers,
in one run: python -m http.server, twistd web --path (same Twisted), nginx (1 worker,
if installed).

    .venv/bin/python bench/http.py                 # 3 rounds x 4 s, 1 KiB and 1 MiB
    .venv/bin/python bench/http.py --rounds 1 --duration 2 --peers twistd-web

Every server is started here on a free 127.0.0.1 port (pinned to cpu 0, wrk to cpu 1
when there are two cpus), checked to serve the exact bytes, then loaded with
`wrk -t1 -c50 --latency`, servers and files interleaved round by round (a noisy
neighbour hits everyone alike). Printed: medians of req/s, p50, p99, the server's CPU
time per request (robust when the machine is shared), the ratios and the targets.
Every process started is stopped at the end (its own process group).
"""

from __future__ import annotations

import os
import sys

# this file is named http.py: keep its folder from shadowing the stdlib's http package
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import argparse  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.append(str(HERE))  # last, now that the stdlib's http is imported
from benchlib import before_bin, free_port, terminate, wait_listening  # noqa: E402

VENV_BIN = Path(sys.executable).parent
FILES = {"1k.bin": 1024, "1m.bin": 1024 * 1024}
TARGETS = [  # (file, peer, minimum ratio of portsuite's req/s)
    ("1k.bin", "twistd-web", 1.5),
    ("1k.bin", "http.server", 3.0),
    ("1m.bin", "twistd-web", 1.0),
    ("1k.bin", "nginx", 0.5),  # issue 19 (issue 11 asked 0.39)
    ("1m.bin", "nginx", 0.95),
]


STARTED: dict[str, Server] = {}  # everything started, stopped at the end whatever happens


# --workers N: nginx's worker_processes and portsuite's workers (unpinned then)
WORKERS = 1


def pinned(cpu: int, cmd: list[str]) -> list[str]:
    if WORKERS == 1 and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *cmd]
    return cmd


class Server:
    """One server under test, in its own process group."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path):
        self.name = name
        self.port = port
        self.log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            pinned(0, cmd),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
        )

    def wait(self, timeout: float = 30) -> None:
        wait_listening(self.port, self.proc, f"{self.name} (its log: {self.log.name})", timeout)

    def cpu_seconds(self) -> tuple[float, float]:
        """
        User + system time of every process in the server's process group, and the
        time they waited for a cpu while runnable (other programs on a shared
        machine: what shows up in p99, whoever the server is).
        """
        total = 0.0
        waited = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid:  # pgrp
                total += (int(fields[11]) + int(fields[12])) / tick
                try:
                    with open(f"/proc/{entry}/schedstat") as f:
                        waited += int(f.read().split()[1]) / 1e9
                except (OSError, IndexError, ValueError):
                    pass
        return total, waited

    def stop(self) -> None:
        terminate(self.proc, group=True, timeout=5)
        self.log.close()


def start_servers(peers: list[str], docroot: Path, workdir: Path) -> dict[str, Server]:
    servers = STARTED
    twistd = str(VENV_BIN / "twistd")
    before = before_bin()
    for name in [*peers, *(["before"] if before else []), "portsuite"]:
        port = free_port()
        if name == "http.server":
            cmd = [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(docroot),
                str(port),
            ]
        elif name == "twistd-web":
            cmd = [
                twistd,
                "-n",
                "--pidfile=",
                f"--logfile={workdir}/twistd-web.access",
                "web",
                "--path",
                str(docroot),
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
            ]
        elif name == "nginx":
            conf = workdir / "nginx.conf"
            user = "user nobody nogroup;" if os.geteuid() == 0 else ""
            conf.write_text(
                f"{user}\nworker_processes {WORKERS};\ndaemon off;\npid {workdir}/nginx.pid;\n"
                f"error_log {workdir}/nginx.error warn;\nevents {{ worker_connections 4096; }}\n"
                f"http {{ default_type application/octet-stream; access_log {workdir}/nginx.access;\n"
                f"  sendfile on; client_body_temp_path {workdir}/nb; proxy_temp_path {workdir}/np;\n"
                f"  fastcgi_temp_path {workdir}/nf; uwsgi_temp_path {workdir}/nu; scgi_temp_path {workdir}/ns;\n"
                f"  server {{ listen 127.0.0.1:{port}; root {docroot}; }} }}\n"
            )
            cmd = ["nginx", "-p", f"{workdir}/", "-e", f"{workdir}/nginx.error", "-c", str(conf)]
        elif name in ("portsuite", "before"):
            cfg = workdir / f"{name}.toml"
            cfg.write_text(
                f'[services.web]\ntype = "http"\nport = {port}\nroot = "{docroot}"\n'
                + (f"workers = {WORKERS}\n" if WORKERS > 1 else "")
            )
            cmd = [
                str(before / "twistd") if name == "before" and before else twistd,
                "-n",
                "--pidfile=",
                f"--logfile={workdir}/{name}.twistd.log",
                "portsuite",
                "-c",
                str(cfg),
            ]
        else:
            raise SystemExit(f"unknown peer {name!r}")
        servers[name] = Server(name, cmd, port, workdir)
    for s in servers.values():
        s.wait()
    for s in servers.values():
        for fname in FILES:
            with urllib.request.urlopen(f"http://127.0.0.1:{s.port}/{fname}", timeout=10) as r:
                if r.read() != (docroot / fname).read_bytes():
                    raise SystemExit(f"{s.name} did not serve /{fname} correctly")
    return servers


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, seconds: float, conns: int) -> dict[str, float]:
    out = subprocess.run(
        pinned(
            1,
            [
                "wrk",
                "-t1",
                f"-c{conns}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "5s",
                "--latency",
                url,
            ],
        ),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise SystemExit(f"cannot parse wrk output:\n{out}")
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50": to_ms(p50.group(1)) if p50 else float("nan"),
        "p99": to_ms(p99.group(1)) if p99 else float("nan"),
        "requests": float(total.group(1)) if total else 0.0,
        "errors": float(errors + (int(non2xx.group(1)) if non2xx else 0)),
    }


def start_h2_servers(docroot: Path, workdir: Path) -> dict[str, Server]:
    """nginx (1 worker, http2 on) and portsuite, both on TLS with the same certificate."""
    sys.path.insert(0, str(REPO / "src"))
    from portsuite import certs

    issued = certs.make(workdir / "certs")
    servers: dict[str, Server] = {}
    port = free_port()
    conf = workdir / "nginx-h2.conf"
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    conf.write_text(
        f"{user}\nworker_processes 1;\ndaemon off;\npid {workdir}/nginx-h2.pid;\n"
        f"error_log {workdir}/nginx-h2.error warn;\nevents {{ worker_connections 4096; }}\n"
        f"http {{ default_type application/octet-stream; access_log off;\n"
        f"  client_body_temp_path {workdir}/nb; proxy_temp_path {workdir}/np;\n"
        f"  fastcgi_temp_path {workdir}/nf; uwsgi_temp_path {workdir}/nu; scgi_temp_path {workdir}/ns;\n"
        f"  keepalive_requests 1000000;\n"
        f"  server {{ listen 127.0.0.1:{port} ssl http2; root {docroot};\n"
        f"    ssl_certificate {issued.cert}; ssl_certificate_key {issued.key}; }} }}\n"
    )
    cmd = ["nginx", "-p", f"{workdir}/", "-e", f"{workdir}/nginx-h2.error", "-c", str(conf)]
    servers["nginx-h2"] = STARTED["nginx-h2"] = Server("nginx-h2", cmd, port, workdir)
    port = free_port()
    cfg = workdir / "portsuite-h2.toml"
    cfg.write_text(
        f'[services.web]\ntype = "http"\nport = {port}\nroot = "{docroot}"\naccess_log = false\n'
        f'tls = {{ cert = "{issued.cert}", key = "{issued.key}" }}\n'
    )
    twistd = str(VENV_BIN / "twistd")
    cmd = [twistd, "-n", "--pidfile=", f"--logfile={workdir}/portsuite-h2.log"]
    cmd += ["portsuite", "-c", str(cfg)]
    servers["portsuite-h2"] = STARTED["portsuite-h2"] = Server("portsuite-h2", cmd, port, workdir)
    for s in servers.values():
        s.wait()
    return servers


def h2load(url: str, requests: int) -> dict[str, float]:
    out = subprocess.run(
        pinned(1, ["h2load", "-t1", "-c10", "-m10", f"-n{requests}", url]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ).stdout
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    done = re.search(r"(\d+) succeeded, (\d+) failed", out)
    if not rps or not done or "h2" not in out:
        raise SystemExit(f"cannot parse h2load output:\n{out}")
    return {"rps": float(rps.group(1)), "failed": float(done.group(2))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, configs)")
    default_peers = ["http.server", "twistd-web"] + (["nginx"] if shutil.which("nginx") else [])
    ap.add_argument("--peers", nargs="*", default=default_peers)
    ap.add_argument(
        "--h2-requests",
        type=int,
        default=20000,
        help="HTTP/2 round: h2load -c10 -m10 requests per file (0: skip; needs nginx, h2load)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="nginx worker_processes and portsuite workers = N (servers and wrk unpinned)",
    )
    args = ap.parse_args()
    global WORKERS
    WORKERS = args.workers
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    workdir = Path(tempfile.mkdtemp(prefix="portsuite-bench-http-"))
    docroot = workdir / "www"
    docroot.mkdir()
    for fname, size in FILES.items():
        (docroot / fname).write_bytes(os.urandom(size))
        (docroot / fname).chmod(0o644)
    workdir.chmod(0o755)  # nginx's worker runs as nobody
    docroot.chmod(0o755)
    servers: dict[str, Server] = {}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        servers.update(start_servers(args.peers, docroot, workdir))
        for r in range(1, args.rounds + 1):
            for fname in FILES:
                for name, s in servers.items():
                    url = f"http://127.0.0.1:{s.port}/{fname}"
                    if args.warmup:
                        wrk(url, args.warmup, args.conns)
                    cpu0, wait0 = s.cpu_seconds()
                    res = wrk(url, args.duration, args.conns)
                    cpu1, wait1 = s.cpu_seconds()
                    res["cpu_us"] = (cpu1 - cpu0) / max(res["requests"], 1) * 1e6
                    res["waited_ms"] = (wait1 - wait0) * 1000
                    results.setdefault((fname, name), []).append(res)
                    print(
                        f"  round {r} {fname:7} {name:12} {res['rps']:9.0f} req/s  "
                        f"p50 {res['p50']:7.2f} ms  p99 {res['p99']:7.2f} ms  "
                        f"{res['cpu_us']:7.1f} us cpu/req  waited for a cpu {res['waited_ms']:6.0f} ms",
                        flush=True,
                    )
    finally:
        for s in STARTED.values():
            s.stop()
        if not results:
            print(f"(logs and configs: {workdir})")

    def med(fname: str, name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[(fname, name)])

    print(
        f"\nhttp bench: wrk -t1 -c{args.conns} -d{args.duration:g}s, {args.rounds} round(s), medians"
        f" (load avg {os.getloadavg()[0]:.2f}, {os.cpu_count()} cpus)"
    )
    names = list(servers)
    print(
        f"{'file':7} {'server':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>7} "
        f"{'cpu us/req':>10} {'waited ms':>9} {'errors':>6} "
        + " ".join(f"{'x ' + n:>13}" for n in names if n != "portsuite")
    )
    for fname in FILES:
        for name in names:
            rps = med(fname, name, "rps")
            p50, p99 = med(fname, name, "p50"), med(fname, name, "p99")
            ratios = " ".join(
                f"{rps / med(fname, n, 'rps'):13.2f}" for n in names if n != "portsuite"
            )
            errors = sum(x["errors"] for x in results[(fname, name)])
            print(
                f"{fname:7} {name:12} {rps:9.0f} {p50:8.2f} {p99:8.2f} {p99 / p50:7.2f} "
                f"{med(fname, name, 'cpu_us'):10.1f} {med(fname, name, 'waited_ms'):9.0f} "
                f"{errors:6.0f} {ratios}"
            )
    print(
        "(waited ms = time the server was runnable while another program had its cpu, per"
        " measurement: on a shared machine that, not the server, is most of p99)\n"
    )
    if "before" in servers:
        for fname in FILES:
            now = [x["rps"] for x in results[(fname, "portsuite")]]
            old = [x["rps"] for x in results[(fname, "before")]]
            per_round = " ".join(f"{b / a:.2f}" for a, b in zip(old, now, strict=False))
            cpu = med(fname, "before", "cpu_us") / med(fname, "portsuite", "cpu_us")
            print(
                f"{fname} portsuite / before ({before_bin()}): "
                f"{med(fname, 'portsuite', 'rps') / med(fname, 'before', 'rps'):.2f}x req/s "
                f"(rounds: {per_round}), {cpu:.2f}x less cpu per request"
            )
        print()
    ok = True
    for fname, peer, want in TARGETS:
        if peer not in servers:
            continue
        got = med(fname, "portsuite", "rps") / med(fname, peer, "rps")
        cpu = med(fname, peer, "cpu_us") / med(fname, "portsuite", "cpu_us")
        verdict = "ok" if got >= want else "MISSED"
        ok &= got >= want
        print(
            f"target {fname} portsuite >= {want}x {peer}: {got:.2f}x req/s "
            f"({cpu:.2f}x less cpu per request) {verdict}"
        )
    for fname in FILES:
        ratio = med(fname, "portsuite", "p99") / med(fname, "portsuite", "p50")
        verdict = "ok" if ratio <= 3 else "MISSED"
        ok &= ratio <= 3
        print(f"target {fname} portsuite p99 <= 3x p50: {ratio:.2f}x {verdict}")
    if args.h2_requests and shutil.which("h2load") and shutil.which("nginx"):
        ok &= h2_bench(docroot, workdir, args.rounds, min(args.h2_requests, 200_000))
    if args.keep:
        print(f"(logs and configs: {workdir})")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def h2_bench(docroot: Path, workdir: Path, rounds: int, requests: int) -> bool:
    """HTTP/2 over TLS: h2load against portsuite and nginx's http2, ratios printed."""
    h2: dict[tuple[str, str], list[float]] = {}
    try:
        servers = start_h2_servers(docroot, workdir)
        for r in range(1, rounds + 1):
            for fname in FILES:
                n = requests if fname == "1k.bin" else max(200, requests // 20)
                for name, s in servers.items():
                    res = h2load(f"https://127.0.0.1:{s.port}/{fname}", n)
                    h2.setdefault((fname, name), []).append(res["rps"])
                    print(
                        f"  h2 round {r} {fname:7} {name:12} {res['rps']:9.0f} req/s "
                        f"failed {res['failed']:.0f}",
                        flush=True,
                    )
    finally:
        for name in ("nginx-h2", "portsuite-h2"):
            if name in STARTED:
                STARTED.pop(name).stop()
    print("\nHTTP/2 over TLS: h2load -c10 -m10, medians")
    for fname in FILES:
        mine = statistics.median(h2[(fname, "portsuite-h2")])
        theirs = statistics.median(h2[(fname, "nginx-h2")])
        print(
            f"h2 {fname:7} portsuite {mine:9.0f} req/s  nginx {theirs:9.0f} req/s  "
            f"{mine / theirs:.2f}x nginx"
        )
    return True


if __name__ == "__main__":
    sys.exit(main())
