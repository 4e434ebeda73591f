#!/usr/bin/env python3
"""
Pub/sub with many subscriptions against the rest of the suite: the worst round trip of
an echo service of the same suite while one kv command runs (issue 10's target: no kv
input delays another service by more than 50 ms), and kv's time for the command.

A suite of kv + echo runs in twistd (pinned to cpu 0); a process of its own sends one
echo round trip every 5 ms all along; the clients (cpu 1) run, in order:
PSUBSCRIBE of N patterns C{p0*}..C{p<N>*} (client A); PUBLISH to a channel none of
them matches, then to one three match; with keyspace events on (KEA), a SET; then
N patterns with no literal prefix or suffix (C{?0*}..: every one is tried for every
channel; client C), PUBLISH and SET again; SUBSCRIBE of N channels in one command
(client D), PUBSUB CHANNELS c1*, UNSUBSCRIBE of all of them; client A going away
(the next command of another client waits for its patterns to go).

    flock /tmp/bench.lock .venv/bin/python bench/kv_pubsub.py     # N=200000 to change

With C{PORTSUITE_BEFORE_BIN} (see bench/README.md), that build's figures too, in the
same run ("before").
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import hiredis
from kv import _cmd, on_each_build, start_pinger

N = int(os.environ.get("N", "200000"))


_READERS: dict[socket.socket, tuple[hiredis.Reader, list[object]]] = {}


def _read(sock: socket.socket, n: int) -> list[object]:
    """The next n replies (pushes too) of C{sock}."""
    reader, ready = _READERS.setdefault(sock, (hiredis.Reader(), []))
    while len(ready) < n:
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        reader.feed(data)
        while (x := reader.gets()) is not False:
            ready.append(x)
    got = ready[:n]
    del ready[:n]
    return got


def run(port: int, echo: int, pid: int) -> list[tuple[str, float, float, str]]:
    """[(step, seconds, worst echo rtt ms during it, what it answered)]."""
    pinger = start_pinger(echo)
    conns = {k: socket.create_connection(("127.0.0.1", port), timeout=120) for k in "ABCD"}
    spans: list[tuple[str, float, float, str]] = []
    t0 = time.monotonic()

    def step(name: str, who: str, request: bytes, n: int, drain: str = "") -> None:
        a = time.monotonic()
        conns[who].sendall(request)
        got = _read(conns[who], n)
        if drain:  # a subscriber's messages, read after
            _read(conns[drain], 1)
        b = time.monotonic()
        spans.append((name, a - t0, b - t0, repr(got[-1])[:40]))
        time.sleep(0.2)

    prefixed = [b"p%d*" % i for i in range(N)]
    step(f"PSUBSCRIBE {N:,} p<i>*", "A", _cmd(b"PSUBSCRIBE", *prefixed), N)
    step("PUBLISH zz (no match)", "B", _cmd(b"PUBLISH", b"zz", b"x"), 1)
    step("PUBLISH p123 (3 match)", "B", _cmd(b"PUBLISH", b"p123", b"x"), 1, drain="A")
    _read(conns["A"], 2)
    conns["B"].sendall(_cmd(b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"))
    _read(conns["B"], 1)
    step("SET, events on", "B", _cmd(b"SET", b"k", b"v"), 1)
    free = [b"?%d*" % i for i in range(N)]
    step(f"PSUBSCRIBE {N:,} ?<i>*", "C", _cmd(b"PSUBSCRIBE", *free), N)
    step("PUBLISH x12 (all tried)", "B", _cmd(b"PUBLISH", b"x12", b"x"), 1, drain="C")
    _read(conns["C"], 1)
    step("SET, events on, all tried", "B", _cmd(b"SET", b"k", b"v"), 1)
    channels = [b"c%d" % i for i in range(N)]
    step(f"SUBSCRIBE {N:,} channels", "D", _cmd(b"SUBSCRIBE", *channels), N)
    step("PUBSUB CHANNELS c1*", "B", _cmd(b"PUBSUB", b"CHANNELS", b"c1*"), 1)
    step("UNSUBSCRIBE (all)", "D", _cmd(b"UNSUBSCRIBE"), N)
    a = time.monotonic()
    conns["A"].close()
    conns["B"].sendall(_cmd(b"PUBSUB", b"NUMPAT"))
    got = _read(conns["B"], 1)
    time.sleep(0.3)  # (the close is seen by kv while B's command may already be answered)
    conns["B"].sendall(_cmd(b"PUBSUB", b"NUMPAT"))
    got = _read(conns["B"], 1)
    spans.append((f"client of {N:,} patterns gone", a - t0, time.monotonic() - t0, repr(got)))
    for k in "BCD":
        conns[k].close()
    samples = pinger()
    base = samples[0][0]
    out = []
    for name, a, b, reply in spans:
        during = [r * 1000 for w, r in samples if a - 0.01 <= w - base - 0.5 <= b + 0.05]
        out.append((name, b - a, max(during, default=0.0), reply))
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kv-pubsub-"))
    results: dict[str, list[tuple[str, float, float, str]]] = on_each_build(tmp, run)
    builds = list(results)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nN = {N:,}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'step':32} {'build':7} {'kv s':>7} {'worst echo rtt ms':>18}  reply")
    for i, (name, *_) in enumerate(results["now"]):
        for label in builds:
            _, s, worst, reply = results[label][i]
            print(f"{name:32} {label:7} {s:7.2f} {worst:18.1f}  {reply}")
    print(
        "SUMMARY worst echo rtt ms: "
        + " ".join(
            f"{label}:{name.split()[0]}_{i}={worst:.0f}"
            for label in builds
            for i, (name, _, worst, _) in enumerate(results[label])
        )
    )


if __name__ == "__main__":
    main()
