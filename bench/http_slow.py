#!/usr/bin/env python3
"""
bench/http_slow.py: memory a server holds for clients that ask for a large file and
then stop reading (slow readers), portsuite's http service against nginx (1 worker),
in one run.

    .venv/bin/python bench/http_slow.py                  # 500 readers, 4 MiB and 20 MiB
    .venv/bin/python bench/http_slow.py --readers 200

Each server is started on a free 127.0.0.1 port; N clients (small receive buffers)
send one GET each and never read; after a few seconds the resident memory of the
server's processes is read from /proc. Printed: MB before, after, and MB per 1,000
slow readers, for a file portsuite keeps in memory (4 MiB) and one it streams
(20 MiB). Every process started is stopped at the end.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_http", HERE / "http.py")
assert _spec is not None and _spec.loader is not None
bench_http = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_http)

FILES = {"4m.bin": 4 * 1024 * 1024, "20m.bin": 20 * 1024 * 1024}


def rss_mb(pgrp: int) -> float:
    """Resident memory of every process in a process group, in MB."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            if int(fields[2]) != pgrp:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def slow_readers(port: int, path: str, count: int) -> list[socket.socket]:
    socks = []
    request = f"GET /{path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
    for _ in range(count):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        socks.append(s)
    return socks


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--readers", type=int, default=500)
    parser.add_argument("--settle", type=float, default=4.0, help="seconds before measuring")
    args = parser.parse_args()
    if args.readers > 2000:
        raise SystemExit("--readers: at most 2000")
    work = Path(tempfile.mkdtemp(prefix="portsuite-slow-"))
    docroot = work / "www"
    docroot.mkdir()
    for name, size in {**bench_http.FILES, **FILES}.items():
        (docroot / name).write_bytes(os.urandom(size))
    os.chmod(work, 0o755)
    results = []
    try:
        for fname in FILES:
            # fresh servers for each file: memory freed by one round would hide the next
            servers = bench_http.start_servers(["nginx"], docroot, work)
            for name, server in servers.items():
                # warm the cache: the file's own bytes are not the readers' cost
                slow_readers(server.port, fname, 1)[0].close()
                time.sleep(0.5)
                before = rss_mb(server.proc.pid)
                socks = slow_readers(server.port, fname, args.readers)
                time.sleep(args.settle)
                after = rss_mb(server.proc.pid)
                for s in socks:
                    s.close()
                per_1000 = (after - before) / args.readers * 1000
                results.append((fname, name, before, after, per_1000))
                print(
                    f"{fname:8} {name:10} {before:7.1f} MB -> {after:7.1f} MB  "
                    f"{per_1000:7.1f} MB per 1,000 slow readers",
                    flush=True,
                )
            for server in bench_http.STARTED.values():
                server.stop()
            bench_http.STARTED.clear()
    finally:
        for server in bench_http.STARTED.values():
            server.stop()
    print(f"\nslow readers: {args.readers} clients that never read, RSS of the server's processes")
    by = {(f, n): p for f, n, _b, _a, p in results}
    for fname in FILES:
        mine, theirs = by.get((fname, "portsuite")), by.get((fname, "nginx"))
        if mine is not None and theirs is not None:
            print(
                f"{fname:8} portsuite {mine:6.1f} MB/1000, nginx {theirs:6.1f} MB/1000 "
                f"({mine - theirs:+.1f} MB per 1,000 readers)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
