#!/usr/bin/env python3
"""
Memory per million small keys: kv against redis-server, in the same run.

Each server gets the same N keys (`key:000000123` → a 10-byte value), sent in pipelines;
then the figures are read: redis-server's own `used_memory` (what Redis counts, the
figure its users know) and its resident memory, and kv's resident memory (the whole
twistd process, so the suite's own start-up memory is measured first and taken off).

    .venv/bin/python bench/kv_memory.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from benchlib import free_port

BIN = Path(sys.executable).parent


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no VmRSS for {pid}")


def start(kind: str, tmp: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    port = free_port()
    if kind == "redis-server":
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(tmp)]
    else:
        cfg = tmp / "kv.toml"
        cfg.write_text(f'[services.kv]\ntype = "kv"\nport = {port}\n')
        cmd = [str(BIN / "twistd"), "-n", "--pidfile=", "--logfile", str(tmp / "kv.log")]
        cmd += ["portsuite", "-c", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, start_new_session=True)
    client = redis.Redis(port=port, socket_timeout=120)
    deadline = time.monotonic() + 30
    while True:
        try:
            if int(client.info("server")["process_id"]) != proc.pid:
                raise SystemExit(f"another program answers on {port}")
            return proc, client
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{kind} did not start") from None
            time.sleep(0.1)


def fill(client: redis.Redis, n: int) -> None:
    batch = 10000
    for start in range(0, n, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + batch)):
            pipe.set(b"key:%09d" % i, b"v" * 10)
        pipe.execute()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    args = ap.parse_args()
    per = 1_000_000 / args.keys
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("redis-server", "kv"):
            folder = Path(tmp) / kind
            folder.mkdir()
            proc, client = start(kind, folder)
            try:
                empty = rss(proc.pid)
                t0 = time.monotonic()
                fill(client, args.keys)
                took = time.monotonic() - t0
                assert client.dbsize() == args.keys
                full = rss(proc.pid)
                used = int(client.info("memory")["used_memory"]) if kind == "redis-server" else 0
                rows.append((kind, empty, full, used, took))
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
    mb = 1024 * 1024
    print(f"{args.keys} keys of 10-byte values; MB per million keys (RSS grown since start)")
    print(f"{'server':14} {'start RSS':>10} {'RSS grown':>10} {'used_memory':>12} {'load s':>7}")
    for kind, empty, full, used, took in rows:
        used_text = f"{used * per / mb:12.1f}" if used else f"{'-':>12}"
        print(
            f"{kind:14} {empty / mb:10.1f} {(full - empty) * per / mb:10.1f} {used_text} {took:7.1f}"
        )
    (_, r_empty, r_full, r_used, _), (_, k_empty, k_full, _, _) = rows
    print(f"kv RSS grown / redis-server used_memory: {(k_full - k_empty) / r_used:.2f}")
    print(f"kv RSS grown / redis-server RSS grown:   {(k_full - k_empty) / (r_full - r_empty):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
