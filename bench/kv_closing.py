#!/usr/bin/env python3
"""
Many peers closing at once, against the rest of the suite (issue 10: no input of any
size from one kv client delays another service by more than 50 ms).

A kv + echo suite in twistd (pinned to cpu 0), a process sending one echo round trip
every 5 ms; per round, N (3,000) connections are opened to kv (each answered a PING)
or to echo (each echoed a byte), then closed together (one close() after the other,
from this process, pinned to cpu 1); the worst echo round trip from the first close to
1.5 s after the last, and the server's CPU for the closes (per 1,000 connections).
With C{PORTSUITE_BEFORE_BIN}, that build first, in the same run.

    flock /tmp/bench.lock .venv/bin/python bench/kv_closing.py
    N=1000 ROUNDS=2 ...                                  # smaller
    RESET=1 ...                                          # the peers reset (SO_LINGER 0)
    CMD=1 ...                                            # each sends a command, then closes
    CONNECT=1 ...                                        # N peers connecting together instead
    PORTSUITE_BEFORE_BIN=/tmp/before/.venv/bin ...       # that build first, same run
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import cpu_seconds
from kv import on_each_build, start_pinger

N = int(os.environ.get("N", "3000"))
RESET = os.environ.get("RESET") == "1"  # close with a reset (SO_LINGER 0), not a FIN
CMD = os.environ.get("CMD") == "1"  # each peer sends one command (SET, or a byte) and closes
CONNECT = os.environ.get("CONNECT") == "1"  # what is measured: N connecting together
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SETTLE = 1.5  # seconds after the last close that count


def _open(port: int, kv: bool) -> list[socket.socket]:
    """N connections, each served once (so the server holds all of them)."""
    socks = []
    for _ in range(N):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if kv:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            assert s.recv(16) == b"+PONG\r\n"
        else:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
        socks.append(s)
    return socks


def _connect_together(port: int) -> list[socket.socket]:
    """N connects started at once (non-blocking), then waited for (SYN retries too)."""
    import selectors

    socks = []
    sel = selectors.DefaultSelector()
    for _ in range(N):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    waiting = len(socks)
    deadline = time.monotonic() + 30
    while waiting and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            sel.unregister(key.fileobj)
            waiting -= 1
    sel.close()
    return socks


def _close(socks: list[socket.socket], kv: bool) -> None:
    """Close them together (a command sent first with CMD=1; reset with RESET=1)."""
    if RESET:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    command = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n" if kv else b"x"
    for s in socks:
        if CMD:
            s.sendall(command)
        s.close()


def run(kv: int, echo: int, pid: int) -> dict[str, Any]:
    """{target: ([worst echo rtt ms per round], [server CPU ms per 1,000 peers])}."""
    pinger = start_pinger(echo)
    t0 = time.monotonic() - 0.5  # (about where the pinger's clock starts)
    spans: list[tuple[str, float, float]] = []
    cpu: dict[str, list[float]] = {"kv": [], "echo": []}
    quiet: list[tuple[float, float]] = []
    for _ in range(ROUNDS):
        for target, port in (("kv", kv), ("echo", echo)):
            socks = [] if CONNECT else _open(port, target == "kv")
            time.sleep(0.5)
            q = time.monotonic() - t0
            time.sleep(0.3)
            quiet.append((q, time.monotonic() - t0))
            c0 = cpu_seconds(pid)
            a = time.monotonic() - t0
            if CONNECT:
                socks = _connect_together(port)
            else:
                _close(socks, target == "kv")
                socks.clear()
            time.sleep(SETTLE)
            cpu[target].append((cpu_seconds(pid) - c0) * 1000 / (N / 1000))
            spans.append((target, a, time.monotonic() - t0))
            for s in socks:  # (the connected ones go, outside the measured span)
                s.close()
            time.sleep(1.0 if socks else 0)
    samples = pinger()
    out: dict[str, Any] = {}
    for target in ("kv", "echo"):
        worst = [
            max((r for w, r in samples if a - 0.01 <= w <= b), default=0) * 1000
            for name, a, b in spans
            if name == target
        ]
        out[target] = (worst, cpu[target])
    out["quiet"] = max((r for w, r in samples for a, b in quiet if a <= w <= b), default=0) * 1000
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kv-closing-"))
    if os.cpu_count() and os.cpu_count() > 1:  # the closer beside the servers, not on them
        os.sched_setaffinity(0, {1})
    results = on_each_build(tmp, run)
    load = os.getloadavg()
    if CONNECT:
        what = "opened"
    else:
        what = ("reset" if RESET else "closed") + (" after a command" if CMD else "")
    print(
        f"\nN = {N:,} connections {what} together, {ROUNDS} rounds; "
        f"load average "
        f"{load[0]:.2f} {load[1]:.2f}"
    )
    print(
        f"{'build':8} {'peers of':9} {'worst echo ms (rounds)':32} {'median':>7} "
        f"{'CPU ms / 1,000 peers':>22} {'idle worst':>11}"
    )
    for label, res in results.items():
        for target in ("kv", "echo"):
            worst, cpu = res[target]
            rounds = " ".join(f"{w:.0f}" for w in worst)
            print(
                f"{label:8} {target:9} {rounds:32} {statistics.median(worst):7.0f} "
                f"{statistics.median(cpu):22.1f} {res['quiet']:11.1f}"
            )
    now = results["now"]
    line = "SUMMARY worst echo rtt ms: " + " ".join(
        f"{t}={statistics.median(now[t][0]):.0f}" for t in ("kv", "echo")
    )
    if "before" in results:
        b = results["before"]
        line += " now/before CPU: " + " ".join(
            f"{t}={statistics.median(now[t][1]) / statistics.median(b[t][1]):.2f}"
            for t in ("kv", "echo")
        )
    print(line)


if __name__ == "__main__":
    main()
