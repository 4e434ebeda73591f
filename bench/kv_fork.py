#!/usr/bin/env python3
"""
The fork of BGREWRITEAOF and BGSAVE of a big keyspace, against the rest of the suite,
with redis-server on the same data in the same run.

A suite of kv (with an append-only file) + echo runs in twistd pinned to cpu 0; the
`aof` family of kv_sweep.py is loaded (a set and a hash of N members, 600,000 keys,
100,000 more), then EXTRA more small keys. While a process of its own sends an echo
round trip every 5 ms, BGREWRITEAOF and BGSAVE run ROUNDS times each, one at a time,
each waited for (STEPS=BGSAVE: one of them). Per compaction: kv's own fork time
(INFO `latest_fork_usec`), the worst and p99 echo round trip while the child ran, when
the worst came, how many were over 20 and 50 ms, how long the server waited for a cpu
meanwhile (/proc/PID/schedstat: a stall with no long turn is that), and the reactor's
turns over 10 ms during it (TURNSITE: the folder of a sitecustomize.py logging them,
each line starting with its time.monotonic()). Then redis-server (REDIS=0: not) gets
the same data and the same compactions, a PING every 5 ms instead of the echo: its
`latest_fork_usec` and worst PING, and its RSS.

    flock /tmp/bench.lock .venv/bin/python bench/kv_fork.py     # 900 MB: EXTRA=4000000
    N=500000 EXTRA=2000000 ROUNDS=2 flock /tmp/bench.lock .venv/bin/python bench/kv_fork.py

Each of MODES (default both) is a run of its own: "fork" compacts in a child (the
server's fork_max_memory past its size), "slices" without fork (fork_max_memory = 0,
snapshot.py; its "child" column is the compaction's time, its fork 0). WRITES=1:
redis-benchmark sends SETs of random keys all through each compaction. With
C{PORTSUITE_BEFORE_BIN} (bench/README.md) the same on that build first.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import before_bin, free_port, pin, wait_listening
from kv import TWISTD, _rss, pong, start, stop
from kv_sweep import Client, _compacted, _p99, fill, load_aof, pairs

EXTRA = int(os.environ.get("EXTRA", "0"))  # more small keys, past the aof family's
ROUNDS = int(os.environ.get("ROUNDS", "3"))
# a folder whose sitecustomize.py logs the reactor's long turns to $TURNLOG, each line
# starting with its time.monotonic() (optional: without it, no turns are shown)
TURNSITE = os.environ.get("TURNSITE", "")
STEPS = os.environ.get("STEPS", "BGREWRITEAOF,BGSAVE").encode().split(b",")
REDIS = os.environ.get("REDIS", "1") == "1"  # REDIS=0: kv alone
# this build's ways to compact, each its own run: "fork" (fork_max_memory past the
# server's size: a child), "slices" (fork_max_memory = 0: snapshot.py, no fork)
MODES = os.environ.get("MODES", "fork,slices").split(",")
FORK_MAX = {"fork": 1 << 50, "slices": 0}
# WRITES=1: redis-benchmark sends SETs of random keys (-r 1000000, -P 16) to the server
# all through each compaction (the keys a compaction without fork writes again)
WRITES = os.environ.get("WRITES", "0") == "1"


def _pinger(port: int, ask: bytes, answer: int, stop_flag: Any, out: Any) -> None:
    """A round trip every 5 ms until told to stop: [(monotonic time, round trip)]."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    samples = []
    while not stop_flag.is_set():
        t = time.perf_counter()
        s.sendall(ask)
        got = 0
        while got < answer:
            got += len(s.recv(answer - got))
        samples.append((time.monotonic(), time.perf_counter() - t))
        time.sleep(0.005)
    s.close()
    out.send(samples)


def _load(c: Client) -> None:
    load_aof(c)
    if EXTRA:
        fill(c, lambda lo, hi: [b"MSET", *pairs(lo, hi, b"x", b"v")], EXTRA)
    _compacted(c)  # (an automatic compaction started by the load's growth)


def _stat(c: Client, field: bytes) -> int:
    info: bytes = c.pipeline([[b"INFO", b"stats"]])[0]
    for line in info.split(b"\r\n"):
        if line.startswith(field + b":"):
            return int(line.split(b":")[1])
    return -1


def _turns(log: Path, since: int) -> tuple[list[str], int]:
    """The turn logger's lines since byte C{since}, and where they end."""
    if not log.exists():
        return [], since
    data = log.read_bytes()
    return data[since:].decode(errors="replace").splitlines(), len(data)


def _waited(pid: int) -> float:
    """Seconds C{pid} has spent runnable but waiting for a cpu (/proc/PID/schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def compactions(
    c: Client, port: int, ask: bytes, answer: int, log: Path | None, pid: int
) -> list[str]:
    """ROUNDS of each of STEPS, waited for, under a pinger of C{port}: a line each."""
    ctx = multiprocessing.get_context("fork")
    stop_flag = ctx.Event()
    parent_end, child_end = ctx.Pipe()
    pinger = ctx.Process(
        target=_pinger, args=(port, ask, answer, stop_flag, child_end), daemon=True
    )
    pinger.start()
    time.sleep(0.5)
    spans = []
    seen = 0
    if log is not None:
        seen = _turns(log, 0)[1]
    for _ in range(ROUNDS):
        for step in STEPS:
            time.sleep(0.3)
            w0, p0 = _waited(pid), _waited(pinger.pid or 0)
            writer = _writer(c.sock.getpeername()[1]) if WRITES else None
            a = time.monotonic()
            reply = c.pipeline([[step]])[0]
            _compacted(c)
            b = time.monotonic()
            if writer is not None:
                writer.terminate()
                writer.wait(10)
            waits = (_waited(pid) - w0, _waited(pinger.pid or 0) - p0)
            turns: list[str] = []
            if log is not None:
                turns, seen = _turns(log, seen)
            fork = _stat(c, b"latest_fork_usec")
            spans.append((step.decode(), a, b, fork, reply, turns, waits))
    time.sleep(0.3)
    stop_flag.set()
    samples = parent_end.recv()
    pinger.join(10)
    quiet = [r * 1000 for w, r in samples if w < spans[0][1]]
    lines = [f"    (baseline: worst {max(quiet, default=0):.1f} ms, p99 {_p99(quiet):.1f})"]
    for step, a, b, fork, reply, turns, waits in spans:
        during = [(r * 1000, w - r - a) for w, r in samples if a - 0.01 <= w <= b + 0.05]
        worst = max(during, default=(0.0, 0.0))
        lines.append(
            f"    {step:<13} fork {fork / 1000:6.1f} ms  worst {worst[0]:6.1f} (at +{worst[1]:.2f} s)"
            f"  p99 {_p99([r for r, _ in during]):5.1f}  child {b - a:5.2f} s  {_short(reply)}"
        )
        over = [sum(r > x for r, _ in during) for x in (20, 50)]
        lines.append(f"        round trips over 20 ms: {over[0]}, over 50 ms: {over[1]}")
        lines.append(
            f"        waited for a cpu: server {waits[0] * 1000:.0f} ms, pinger {waits[1] * 1000:.0f} ms"
        )
        lines.extend(f"        {_turn(t, a)}" for t in turns)
    return lines


def _writer(port: int) -> subprocess.Popen[bytes]:
    """redis-benchmark's SETs of random keys, for at most 10,000,000 requests."""
    cmd = ["redis-benchmark", "-p", str(port), "-t", "set", "-n", "10000000", "-r", "1000000"]
    return subprocess.Popen(
        [*pin(1), *cmd, "-P", "16", "-c", "4", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _turn(line: str, a: float) -> str:
    """A turn logger's line, its time (if it starts with one) made relative to C{a}."""
    when, _, rest = line.partition(" ")
    try:
        return f"+{float(when) - a:.2f} s {rest[:150]}"
    except ValueError:
        return line[:160]


def _short(reply: Any) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else repr(reply)[:40]


def kv_suite(
    tmp: Path, twistd: str, fork_max: int | None = None
) -> tuple[subprocess.Popen[bytes], int, int, Path | None]:
    kv, echo = free_port(), free_port()
    cfg = tmp / "suite.toml"
    cfg.write_text(
        f'[services.kv]\ntype = "kv"\nport = {kv}\ndata = "{tmp / "kv.aof"}"\n'
        + (f"fork_max_memory = {fork_max}\n" if fork_max is not None else "")
        + f'[services.echo]\ntype = "echo"\nport = {echo}\n'
    )
    env = dict(os.environ)
    log = None
    if TURNSITE:
        log = tmp / "turns.log"
        env["PYTHONPATH"] = TURNSITE
        env["TURNLOG"] = str(log)
    cmd = [twistd, "-n", "--pidfile=", "--logfile", str(tmp / "t.log"), "portsuite", "-c", str(cfg)]
    proc = subprocess.Popen(
        [*pin(0), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    wait_listening(kv, proc, "kv", probe=pong)
    return proc, kv, echo, log


def main() -> None:
    print(f"load {os.getloadavg()[0]:.2f}", flush=True)
    bindir = before_bin()
    builds: list[tuple[str, str, int | None]] = []
    if bindir is not None:
        builds.append(("before", str(bindir / "twistd"), None))
    builds += [(f"now, {mode}", TWISTD, FORK_MAX[mode]) for mode in MODES]
    for label, twistd, fork_max in builds:
        tmp = Path(tempfile.mkdtemp(prefix="kv-fork-"))
        proc, kv, echo, log = kv_suite(tmp, twistd, fork_max)
        try:
            c = Client(kv)
            t = time.perf_counter()
            _load(c)
            print(
                f"kv {label}: loaded in {time.perf_counter() - t:.1f} s, "
                f"RSS {_rss(proc.pid) / 1e6:.0f} MB, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            print("\n".join(compactions(c, echo, b"x", 1, log, proc.pid)), flush=True)
        finally:
            stop(proc)
    if REDIS:
        redis()
    print(f"load {os.getloadavg()[0]:.2f}", flush=True)


def redis() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kv-fork-redis-"))
    proc, port = start("redis", True, tmp)
    try:
        c = Client(port)
        _load(c)
        print(
            f"redis-server: RSS {_rss(proc.pid) / 1e6:.0f} MB, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        print("\n".join(compactions(c, port, b"PING\r\n", 7, None, proc.pid)), flush=True)
    finally:
        stop(proc)


if __name__ == "__main__":
    sys.exit(main())
