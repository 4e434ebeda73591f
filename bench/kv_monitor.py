#!/usr/bin/env python3
"""
A MONITOR client watching a SET of one huge argument: the worst and p99 round trip of
an echo service of the same suite (pinged every 5 ms) while a kv client SETs C{SIZE_MB}
(64) MB of random bytes (C{KIND=bin}) or of text (C{KIND=text}) and a MONITOR client
reads its whole line (Redis's: every byte escaped); kv's time for it, the bytes the
MONITOR client read. With C{PORTSUITE_BEFORE_BIN}, that build first in the same run.

    KIND=bin SIZE_MB=32 flock /tmp/bench.lock .venv/bin/python bench/kv_monitor.py
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

from kv import _cmd, on_each_build, start_pinger

SIZE = int(os.environ.get("SIZE_MB", "64")) << 20
KIND = os.environ.get("KIND", "bin")


def run(value: bytes, kv: int, echo: int) -> tuple[float, float, float, int]:
    mon = socket.create_connection(("127.0.0.1", kv))
    mon.sendall(_cmd(b"MONITOR"))
    assert mon.recv(5) == b"+OK\r\n"
    got = [0]

    def read() -> None:  # until the line's CRLF, past the value's size
        tail = b""
        while d := mon.recv(1 << 20):
            got[0] += len(d)
            if (tail + d).endswith(b"\r\n") and got[0] > len(value):
                return
            tail = d[-2:]

    reader = threading.Thread(target=read)
    reader.start()
    stop = start_pinger(echo)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", kv)) as c:
        c.sendall(_cmd(b"SET", b"k", value))
        assert c.recv(5) == b"+OK\r\n"
    reader.join(300)
    took = time.perf_counter() - start
    rtts = sorted(r for _, r in stop())
    mon.close()
    return rtts[-1] * 1000, rtts[int(len(rtts) * 0.99)] * 1000, took, got[0]


def main() -> None:
    value = os.urandom(SIZE) if KIND == "bin" else b"x" * SIZE
    print("load average", os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="kv-monitor-"))
    results = on_each_build(tmp, lambda kv, echo, _pid: run(value, kv, echo))
    for label, (worst, p99, took, n) in results.items():
        print(
            f"{label}: SET of {SIZE >> 20} MB ({KIND}) with a MONITOR client: echo worst "
            f"{worst:.1f} ms, p99 {p99:.1f} ms; {took:.2f} s; the MONITOR read {n} bytes"
        )
    print("load average", os.getloadavg())


if __name__ == "__main__":
    main()
