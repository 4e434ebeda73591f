#!/usr/bin/env python3
"""
kv vs redis-server, same run: redis-benchmark -t set,get -c 50, -P 1 and -P 16.

Two setups: both memory-only, then both with an append-only file fsynced every
second (redis: appendonly yes, appendfsync everysec; kv: data = "...", fsync =
"everysec"). Servers are pinned to CPU 0 and redis-benchmark to CPU 1 when the
machine has two CPUs. Prints ops/s and the ratio kv / redis.

    .venv/bin/python bench/kv.py            # N1=50000 NP=400000 ROUNDS=2 to change
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import before_bin, cpu_seconds, free_port, pin

N1 = int(os.environ.get("N1", "50000"))
NP = int(os.environ.get("NP", "400000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
CLIENTS = int(os.environ.get("CLIENTS", "50"))
PIPE = int(os.environ.get("PIPE", "16"))
TWISTD = str(Path(sys.executable).parent / "twistd")


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port} within 30 s")


def start(kind: str, aof: bool, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind == "redis":
        d = tmp / "redis"
        d.mkdir(exist_ok=True)
        cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(d),
            "--appendonly",
            "yes" if aof else "no",
            "--appendfsync",
            "everysec",
            "--logfile",
            "",
        ]
    else:
        cfg = tmp / "kv.toml"
        data = f'data = "{tmp / "kv.aof"}"\nfsync = "everysec"\n' if aof else ""
        cfg.write_text(f'[services.kv]\ntype = "kv"\nport = {port}\n{data}')
        bindir = before_bin() if kind == "before" else None
        cmd = [
            str(bindir / "twistd") if bindir else TWISTD,
            "-n",
            "--pidfile=",
            "--logfile",
            str(tmp / "twistd.log"),
            "portsuite",
            "-c",
            str(cfg),
        ]
    proc = subprocess.Popen(
        [*pin(0), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_port(port, proc, kind)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def bench(pid: int, port: int, pipeline: int, n: int) -> dict[str, tuple[float, float]]:
    """{test: (ops/s, server CPU microseconds per request)}."""
    out = {}
    for test in ("set", "get"):
        before = cpu_seconds(pid)
        text = subprocess.run(
            [
                *pin(1),
                "redis-benchmark",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-t",
                test,
                "-c",
                str(CLIENTS),
                "-P",
                str(pipeline),
                "-n",
                str(n),
                "--csv",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        used = cpu_seconds(pid) - before
        rows = list(csv.reader(io.StringIO(text)))
        ops = next(float(r[1]) for r in rows[1:] if r and r[0] == test.upper())
        out[test.upper()] = (ops, used / n * 1e6)
    return out


def main() -> None:
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install redis-server redis-tools")
    results: dict[tuple[str, str, int, str], list[tuple[float, float]]] = {}
    for setup in ("memory", "aof everysec"):
        for r in range(ROUNDS):
            for kind in ("redis", "kv") + (("before",) if before_bin() else ()):
                tmp = Path(tempfile.mkdtemp(prefix="kv-bench-"))
                proc, port = start(kind, setup != "memory", tmp)
                try:
                    for pipeline, n in ((1, N1), (PIPE, NP)):
                        for test, got in bench(proc.pid, port, pipeline, n).items():
                            results.setdefault((setup, kind, pipeline, test), []).append(got)
                        print(
                            f"  {setup:12} round {r + 1} {kind:5} -P {pipeline:<2} done",
                            file=sys.stderr,
                        )
                finally:
                    stop(proc)
                    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nredis-benchmark -c {CLIENTS}, medians of {ROUNDS} round(s); servers on cpu 0, "
        f"client on cpu 1.\ncpu us/req = server CPU time per request: the fair figure when "
        f"the machine is busy or the client is the limit"
    )
    print(
        f"{'setup':13} {'test':4} {'-P':>3} {'redis ops/s':>12} {'kv ops/s':>10} "
        f"{'kv/redis':>9} {'target':>7} {'redis cpu us/req':>17} {'kv cpu us/req':>14} "
        f"{'redis/kv cpu':>13}"
    )
    for setup in ("memory", "aof everysec"):
        for pipeline in (1, PIPE):
            for test in ("SET", "GET"):
                ref = results[(setup, "redis", pipeline, test)]
                ours = results[(setup, "kv", pipeline, test)]
                r_ops = statistics.median(x[0] for x in ref)
                k_ops = statistics.median(x[0] for x in ours)
                r_cpu = statistics.median(x[1] for x in ref)
                k_cpu = statistics.median(x[1] for x in ours)
                target = 0.6 if pipeline == 1 else 0.3
                print(
                    f"{setup:13} {test:4} {pipeline:>3} {r_ops:12.0f} {k_ops:10.0f} "
                    f"{k_ops / r_ops:9.2f} {target:7.1f} {r_cpu:17.2f} {k_cpu:14.2f} "
                    f"{r_cpu / k_cpu if k_cpu else 0:13.2f}"
                )
    if before_bin():
        print(f"\nkv now against kv before ({before_bin()}/twistd), same rounds:")
        print(
            f"{'setup':13} {'test':4} {'-P':>3} {'before ops/s':>13} {'now ops/s':>10} "
            f"{'now/before':>11} {'before/redis':>13} {'before cpu/now cpu':>19}  now/before by round"
        )
        for setup in ("memory", "aof everysec"):
            for pipeline in (1, PIPE):
                for test in ("SET", "GET"):
                    old = results[(setup, "before", pipeline, test)]
                    new = results[(setup, "kv", pipeline, test)]
                    ref = results[(setup, "redis", pipeline, test)]
                    o_ops = statistics.median(x[0] for x in old)
                    n_ops = statistics.median(x[0] for x in new)
                    r_ops = statistics.median(x[0] for x in ref)
                    o_cpu = statistics.median(x[1] for x in old)
                    n_cpu = statistics.median(x[1] for x in new)
                    print(
                        f"{setup:13} {test:4} {pipeline:>3} {o_ops:13.0f} {n_ops:10.0f} "
                        f"{n_ops / o_ops:11.2f} {o_ops / r_ops:13.2f} "
                        f"{o_cpu / n_cpu if n_cpu else 0:19.2f}  "
                        + " ".join(f"{b[0] / a[0]:.2f}" for a, b in zip(old, new, strict=False))
                    )


if __name__ == "__main__":
    main()
