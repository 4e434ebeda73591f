#!/usr/bin/env python3
"""
A hash, a set and a sorted set of millions of members against the rest of the suite:
the worst round trip of an echo service of the same suite while one kv client grows
one key to N members with pipelined HSET / SADD / ZADD of small batches (issue 10's
target: no kv input delays another service by more than 50 ms). A Python dict or set
grows by copying its whole table at once (45 ms at 1.26 million members, 86 ms at
2.5 million); kv shards a container past 65,536 members (services/kv/sharded.py) so
that no added member does.

A suite of kv + echo runs in twistd (pinned to cpu 0); a process of its own sends one
echo round trip every 5 ms all along; the client (cpu 1) grows one key per load,
BATCH members a command, 100 commands a write, then DELs it. Prints per load its
time, the worst echo round trip, its 99th percentile and how many were over 50 ms.

    flock /tmp/bench.lock .venv/bin/python bench/kv_containers.py    # N=3000000 to change

With C{PORTSUITE_BEFORE_BIN} (see bench/README.md), that build's figures too, in the
same run ("before"). C{ONLY="SADD"}: a subset of the loads. C{REDIS=1}: the same loads
against a redis-server (pinned to cpu 0 too) in the same run, and kv's time over its.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from benchlib import pin
from kv import _cmd, start, start_pinger, stop
from kv_keyspace import _replies, each_build, figures

N = int(os.environ.get("N", "3000000"))
ONLY = os.environ.get("ONLY", "")  # a comma-separated subset of the load names
BATCH = 100  # members a command adds
COMMANDS = 100  # commands written at once, their replies read before the next write


def _sadd(lo: int, hi: int) -> bytes:
    return _cmd(b"SADD", b"set", *(b"member:%d" % j for j in range(lo, hi)))


def _hset(lo: int, hi: int) -> bytes:
    return _cmd(b"HSET", b"hash", *(x for j in range(lo, hi) for x in (b"f:%d" % j, b"v")))


def _zadd(lo: int, hi: int) -> bytes:
    return _cmd(b"ZADD", b"zset", *(x for j in range(lo, hi) for x in (b"%d" % j, b"m:%d" % j)))


LOADS: list[tuple[str, bytes, Callable[[int, int], bytes]]] = [
    ("SADD", b"set", _sadd),
    ("HSET", b"hash", _hset),
    ("ZADD", b"zset", _zadd),
]


def run(port: int, echo: int | None) -> dict[str, tuple[Any, ...]]:
    """{load: (seconds, worst echo rtt ms, p99 ms, round trips over 50 ms)}; without an
    echo service (redis-server), {load: (seconds,)}."""
    pinger = start_pinger(echo) if echo is not None else None
    sock = socket.create_connection(("127.0.0.1", port), timeout=300)
    spans = []
    t0 = time.monotonic()
    step = BATCH * COMMANDS
    for name, key, make in LOADS:
        if ONLY and name not in ONLY.split(","):
            continue
        time.sleep(0.3)
        a = time.monotonic()
        for lo in range(0, N, step):
            hi = min(N, lo + step)
            sock.sendall(b"".join(make(i, min(hi, i + BATCH)) for i in range(lo, hi, BATCH)))
            _replies(sock, -(-(hi - lo) // BATCH))
        b = time.monotonic()
        spans.append((name, a - t0, b - t0))
        sock.sendall(_cmd(b"DEL", key))  # (freed a slice per turn: not measured)
        _replies(sock, 1)
        time.sleep(1.5)
    sock.close()
    if pinger is None:
        return {name: (b - a,) for name, a, b in spans}
    return figures(pinger(), spans)


def redis_times() -> dict[str, tuple[Any, ...]]:
    """The loads against a redis-server on cpu 0: {load: (seconds,)}."""
    import tempfile
    from pathlib import Path

    proc, port = start("redis", False, Path(tempfile.mkdtemp(prefix="kv-containers-redis-")))
    try:
        if pin(0):  # (as the suite's twistd)
            os.sched_setaffinity(proc.pid, {0})
        return run(port, None)
    finally:
        stop(proc)


def main() -> None:
    builds, results = each_build("kv-containers-", lambda kv, echo, pid: run(kv, echo))
    print(f"\nN = {N:,} members, {BATCH} a command; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'load':12} {'build':7} {'s':>6} {'worst echo rtt ms':>18} {'p99 ms':>7} {'> 50 ms':>8}"
    )
    for name in ["(baseline)", *(n for n, _, _ in LOADS)]:
        for label in builds:
            if name not in results[label]:
                continue
            s, worst, p99, over = results[label][name]
            print(f"{name:12} {label:7} {s:6.1f} {worst:18.1f} {p99:7.1f} {over:8}")
    if os.environ.get("REDIS") == "1":
        redis = redis_times()
        for name, (s,) in redis.items():
            ratio = results["now"][name][0] / s
            print(f"{name:12} {'redis':7} {s:6.1f}   kv now / redis-server time: {ratio:.2f}")
    print(
        "SUMMARY worst echo rtt ms: "
        + " ".join(f"{label}:{n}={r[1]:.0f}" for label in builds for n, r in results[label].items())
    )


if __name__ == "__main__":
    main()
