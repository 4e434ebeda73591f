#!/usr/bin/env python3
"""
A keyspace of millions of keys against the rest of the suite: the worst round trip of
an echo service of the same suite while one kv client loads N small keys (issue 10's
target: no kv input delays another service by more than 50 ms). A Python dict grows
by copying its whole table at once (at 0.7, 1.4, 2.8 million keys…); kv's keyspace is
sharded past 65,536 keys (services/kv/sharded.py) so that no write does.

A suite of kv + echo runs in twistd (pinned to cpu 0); a process of its own sends one
echo round trip every 5 ms all along; the client (cpu 1) loads N keys three ways, each
followed by a FLUSHALL: SET pipelined 10,000 at a time, MSET of 100 pairs (100 of them
a batch), SETEX (every key with a TTL: the expiry times grow as the keys do). Prints
per load its time, the worst echo round trip, its 99th percentile, how many were over
50 ms, and the server's RSS growth per key.

C{ONLY=BGREWRITEAOF}: the kv service gets an append-only file (fsync no) of N SETs,
written before it starts (loaded at startup, untimed), then BGREWRITEAOF runs and INFO persistence is polled until
the rewrite is over (a build that rewrites in the reactor answers when it is done):
its time and the echo round trips while it ran.

    flock /tmp/bench.lock .venv/bin/python bench/kv_keyspace.py     # N=3000000 to change

With C{PORTSUITE_BEFORE_BIN} (see bench/README.md), that build's figures too, in the
same run ("before"). C{ONLY="SETEX"}: a subset of the loads.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kv import _cmd, _rss, on_each_build, start_pinger

N = int(os.environ.get("N", "3000000"))
ONLY = os.environ.get("ONLY", "")  # a comma-separated subset of the load names
BATCH = 10_000  # keys sent at once, their replies read before the next batch
REWRITE = "BGREWRITEAOF" in ONLY.split(",")  # (its kv gets a data file)


def _set(lo: int, hi: int) -> tuple[bytes, int]:
    return b"".join(_cmd(b"SET", b"key:%d" % j, b"v%07d" % j) for j in range(lo, hi)), hi - lo


def _mset(lo: int, hi: int) -> tuple[bytes, int]:
    cmds = [
        _cmd(b"MSET", *(x for j in range(i, min(hi, i + 100)) for x in (b"key:%d" % j, b"v")))
        for i in range(lo, hi, 100)
    ]
    return b"".join(cmds), len(cmds)


def _setex(lo: int, hi: int) -> tuple[bytes, int]:
    return b"".join(_cmd(b"SETEX", b"key:%d" % j, b"3600", b"v") for j in range(lo, hi)), hi - lo


LOADS: list[tuple[str, Callable[[int, int], tuple[bytes, int]]]] = [
    ("SET pipelined", _set),
    ("MSET x100", _mset),
    ("SETEX", _setex),
]


def _replies(sock: socket.socket, n: int) -> None:
    """Read n simple replies (+OK, or :n of FLUSHALL… all end a line)."""
    got = 0
    last = b""  # (a CRLF cut in two by the reads is counted too)
    while got < n:
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        got += (last + data).count(b"\r\n")
        last = data[-1:]


def _info_field(sock: socket.socket, field: bytes) -> bytes:
    """INFO persistence's C{field} (read off a raw socket)."""
    sock.sendall(_cmd(b"INFO", b"persistence"))
    buf = b""
    while b"\r\n" not in buf:
        buf += sock.recv(1 << 16)
    head, rest = buf.split(b"\r\n", 1)
    while len(rest) < int(head[1:]) + 2:
        rest += sock.recv(1 << 16)
    return rest.split(field + b":", 1)[1].split(b"\r\n", 1)[0]


def _rewrite(sock: socket.socket) -> None:
    """BGREWRITEAOF, then until it is over."""
    sock.sendall(_cmd(b"BGREWRITEAOF"))
    _replies(sock, 1)
    while _info_field(sock, b"aof_rewrite_in_progress") != b"0":
        time.sleep(0.01)


def run(port: int, echo: int, pid: int) -> dict[str, tuple[float, float, float, int, float]]:
    """{load: (seconds, worst echo rtt ms, p99 ms, round trips over 50 ms, RSS bytes per key)}."""
    pinger = start_pinger(echo)
    sock = socket.create_connection(("127.0.0.1", port), timeout=300)
    spans = []
    t0 = time.monotonic()
    for name, make in LOADS + [("FLUSHALL", _set), ("BGREWRITEAOF", _set)]:
        if (ONLY and name not in ONLY.split(",")) or (name == "BGREWRITEAOF" and not REWRITE):
            continue
        if name == "FLUSHALL":  # (of N keys, loaded by SET first, untimed)
            for lo in range(0, N, BATCH):
                data, n = _set(lo, min(N, lo + BATCH))
                sock.sendall(data)
                _replies(sock, n)
        time.sleep(0.3)
        rss0 = _rss(pid)
        a = time.monotonic()
        if name == "FLUSHALL":
            sock.sendall(_cmd(b"FLUSHALL"))
            _replies(sock, 1)
            time.sleep(1.0)  # (the old keys are freed a slice per turn meanwhile)
        elif name == "BGREWRITEAOF":
            _rewrite(sock)
        else:
            for lo in range(0, N, BATCH):
                data, n = make(lo, min(N, lo + BATCH))
                sock.sendall(data)
                _replies(sock, n)
        b = time.monotonic()
        per_key = (_rss(pid) - rss0) / N
        spans.append((name, a - t0, b - t0, per_key))
        if name != "FLUSHALL":
            sock.sendall(_cmd(b"FLUSHALL"))
            _replies(sock, 1)
            time.sleep(1.5)
    sock.close()
    return figures(pinger(), spans)


def figures(samples: list[tuple[float, float]], spans: list[Any]) -> dict[str, tuple[Any, ...]]:
    """
    {name: (seconds, worst echo rtt ms, p99 ms, round trips over 50 ms, *more)} of each
    span (name, start, end, *more) of the pinger's C{samples}; and "(baseline)".
    """
    base = samples[0][0]  # (the pinger's clock started about 0.5 s before t0)
    out = {}
    for name, a, b, *more in spans:
        during = [r * 1000 for w, r in samples if a - 0.01 <= w - base - 0.5 <= b + 0.05]
        p99 = statistics.quantiles(during, n=100)[98] if len(during) > 2 else 0.0
        over = sum(1 for r in during if r > 50)
        out[name] = (b - a, max(during, default=0), p99, over, *more)
    quiet = [r * 1000 for w, r in samples if w - base < 0.5]
    out["(baseline)"] = (0.0, max(quiet, default=0), 0.0, 0, *([0.0] * len(more)))
    return out


def each_build(
    prefix: str,
    run: Callable[[int, int, int], dict[str, Any]],
    options: Callable[[Path, str], str] = lambda _tmp, _label: "",
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """
    L{on_each_build} in a scratch folder: the builds' labels (before, now) and results;
    C{options(folder, label)}: lines of TOML for that build's kv.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    results: dict[str, dict[str, Any]] = on_each_build(tmp, run, lambda label: options(tmp, label))
    shutil.rmtree(tmp, ignore_errors=True)
    return list(results), results


def _data_file(tmp: Path, label: str) -> str:
    """With BGREWRITEAOF: the keys in a data file, loaded at startup (fsync off)."""
    if not REWRITE:
        return ""
    data = tmp / (label + ".aof")
    with data.open("wb") as f:
        for lo in range(0, N, BATCH):
            f.write(_set(lo, min(N, lo + BATCH))[0])
    return f'data = "{data}"\nfsync = "no"\n'


def main() -> None:
    builds, results = each_build("kv-keyspace-", run, _data_file)
    print(f"\nN = {N:,} keys; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'load':16} {'build':7} {'s':>6} {'worst echo rtt ms':>18} {'p99 ms':>7} "
        f"{'> 50 ms':>8} {'RSS B/key':>10}"
    )
    for name in ["(baseline)", *(n for n, _ in LOADS), "FLUSHALL", "BGREWRITEAOF"]:
        for label in builds:
            if name not in results[label]:
                continue
            s, worst, p99, over, per_key = results[label][name]
            print(f"{name:16} {label:7} {s:6.1f} {worst:18.1f} {p99:7.1f} {over:8} {per_key:10.1f}")
    print(
        "SUMMARY worst echo rtt ms: "
        + " ".join(
            f"{label}:{n.replace(' ', '_')}={r[1]:.0f}"
            for label in builds
            for n, r in results[label].items()
        )
    )


if __name__ == "__main__":
    main()
