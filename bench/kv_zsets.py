#!/usr/bin/env python3
"""
kv vs redis-server, same run: sorted-set commands over one big sorted set.

Both servers memory-only (pinned to CPU 0 on a 2-CPU machine). Loads N members
(ZADD batches of 1,000 in one pipeline), then times small windows (ZRANGE BYSCORE
LIMIT, ZRANK, ZSCORE: per call), and whole-set commands (ZUNIONSTORE, ZINTERSTORE,
GEOSEARCH with a huge radius, ZRANGE 0 -1: one call each, which holds kv's event loop
for that long). Prints seconds and the ratio kv / redis.

    .venv/bin/python bench/kv_zsets.py          # N=1000000 to change
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import redis
from kv import start, stop

N = int(os.environ.get("N", "1000000"))
SMALL_CALLS = 1000


def load(r: redis.Redis) -> float:
    t = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i in range(0, N, 1000):
        pipe.zadd("big", {b"m%07d" % j: j for j in range(i, min(N, i + 1000))})
    pipe.execute()
    return time.perf_counter() - t


def small(r: redis.Redis, name: str) -> float:
    """Seconds per call of a command over a small window."""
    mid = N // 2
    calls = {
        "ZRANGE BYSCORE LIMIT 0 10": lambda i: r.zrangebyscore("big", mid + i, "+inf", 0, 10),
        "ZRANK": lambda i: r.zrank("big", b"m%07d" % (mid + i)),
        "ZSCORE": lambda i: r.zscore("big", b"m%07d" % (mid + i)),
    }
    f = calls[name]
    t = time.perf_counter()
    for i in range(SMALL_CALLS):
        f(i)
    return (time.perf_counter() - t) / SMALL_CALLS


WHOLE = {
    "ZUNIONSTORE big+big": lambda r: r.zunionstore("u", ["big", "big"]),
    "ZINTERSTORE big&big": lambda r: r.zinterstore("u", ["big", "big"]),
    "GEOSEARCH radius 1e308 km COUNT 10": lambda r: r.geosearch(
        "big", longitude=0, latitude=0, radius=1e308, unit="km", count=10
    ),
    "ZRANGE 0 -1": lambda r: r.zrange("big", 0, -1),
    "SORT BY nosort LIMIT 0 10": lambda r: r.sort("big", by="nosort", start=0, num=10),
}


def run(kind: str, tmp: Path) -> dict[str, float]:
    proc, port = start(kind, False, tmp)
    try:
        r = redis.Redis(port=port, socket_timeout=600)
        out = {"load (ZADD, pipelined)": load(r)}
        for name in ("ZRANGE BYSCORE LIMIT 0 10", "ZRANK", "ZSCORE"):
            out[name] = small(r, name)
        for name, f in WHOLE.items():
            t = time.perf_counter()
            f(r)
            out[name] = time.perf_counter() - t
        return out
    finally:
        stop(proc)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kv-zsets-"))
    try:
        ref = run("redis", tmp)
        ours = run("kv", tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"one sorted set of {N} members; small windows: seconds per call (client included)")
    print(f"{'command':40} {'redis s':>12} {'kv s':>12} {'kv/redis':>9}")
    for name in ref:
        print(f"{name:40} {ref[name]:12.6f} {ours[name]:12.6f} {ours[name] / ref[name]:9.1f}")


if __name__ == "__main__":
    main()
