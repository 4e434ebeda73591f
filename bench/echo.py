"""
bench/echo.py: portsuite's echo against a bare twisted.protocols.wire.Echo and a stdlib
asyncio echo (Protocol API, default event loop), in one run.

What the shared wrapper (counters, client list, limits, error guard, backpressure, the
connection log) costs, as ratios against the same protocol without it:

  throughput   8 connections stream 64 KiB writes for --seconds, echoes read back;
               and the server's CPU per MiB echoed
  rtt          1 connection, 64-byte request/response round trips per second
  rr50         50 connections, one 64-byte message in flight each
  idle         --idle connections held open (each checked to echo), RSS per 1,000
  startup      seconds from exec to the port accepting (portsuite: all its ports)

The servers run as subprocesses pinned to cpu 0, this client to cpu 1 (when there are
two cpus). Rounds are interleaved; medians are printed. Every loop is bounded in time.

    .venv/bin/python bench/echo.py [--rounds 3] [--seconds 3] [--idle 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess as sp
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    before_bin,
    cpu_seconds,
    free_port,
    open_files,
    pin,
    terminate,
    wait_listening,
)

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PEER = (
    "import sys\n"
    "from twisted.internet import reactor, protocol\n"
    "from twisted.protocols.wire import Echo\n"
    "reactor.listenTCP(int(sys.argv[1]), protocol.Factory.forProtocol(Echo), backlog=1024, interface='127.0.0.1')\n"
    "reactor.run()\n"
)
ASYNCIO_PEER = (
    "import asyncio, sys\n"
    "class Echo(asyncio.Protocol):\n"
    "    def connection_made(self, transport):\n"
    "        self.transport = transport\n"
    "    def data_received(self, data):\n"
    "        self.transport.write(data)\n"
    "async def serve():\n"
    "    server = await asyncio.get_running_loop().create_server(\n"
    "        Echo, '127.0.0.1', int(sys.argv[1]), backlog=1024)\n"
    "    async with server:\n"
    "        await server.serve_forever()\n"
    "asyncio.run(serve())\n"
)


class Server:
    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.port = free_port()
        if name == "twisted":
            cmd = [sys.executable, "-c", PEER, str(self.port)]
        elif name == "asyncio":
            cmd = [sys.executable, "-c", ASYNCIO_PEER, str(self.port)]
        else:
            config = tmp / f"echo-{name}.toml"
            config.write_text(f'[services.echo]\ntype = "echo"\nport = {self.port}\n')
            bindir = before_bin() if name == "before" else BIN
            assert bindir is not None
            cmd = [
                str(bindir / "twistd"),
                "-n",
                "--pidfile=",
                f"--logfile={tmp}/{name}.log",
                "portsuite",
                "-c",
                str(config),
            ]
        t0 = time.monotonic()
        self.proc = sp.Popen([*pin(0), *cmd], stdout=sp.DEVNULL, stderr=sp.DEVNULL)
        wait_listening(self.port, self.proc, self.name)
        self.startup = time.monotonic() - t0

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        terminate(self.proc)


def throughput(port: int, seconds: float, conns: int = 8) -> tuple[float, float]:
    """MiB/s echoed, all bytes read back before the clock stops counting; and MiB."""
    sel = selectors.DefaultSelector()
    chunk = b"\xa5" * 65536
    socks = []
    state = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        socks.append(s)
        state[s] = [0, 0]  # sent, received
    t0 = time.monotonic()
    end = t0 + seconds
    sending = True
    while True:
        now = time.monotonic()
        if sending and now >= end:
            sending = False
            for s in socks:
                sel.modify(s, selectors.EVENT_READ)
        if not sending and all(st[1] >= st[0] for st in state.values()):
            break
        if now > end + 30:
            raise SystemExit("throughput: echoes did not come back within 30 s")
        for key, events in sel.select(0.5):
            s = key.fileobj  # type: ignore[assignment]
            st = state[s]  # type: ignore[index]
            if events & selectors.EVENT_READ:
                data = s.recv(1 << 20)  # type: ignore[attr-defined]
                if not data:
                    raise SystemExit("throughput: server closed a connection")
                st[1] += len(data)
            if sending and events & selectors.EVENT_WRITE and st[0] - st[1] < 4 << 20:
                try:
                    st[0] += s.send(chunk)  # type: ignore[attr-defined]
                except BlockingIOError:
                    pass
    elapsed = time.monotonic() - t0
    for s in socks:
        s.close()
    mib = sum(st[1] for st in state.values()) / 2**20
    return mib / elapsed, mib


def round_trips(port: int, seconds: float, conns: int) -> tuple[float, int]:
    """Round trips per second of 64-byte messages, one in flight per connection."""
    msg = b"m" * 64
    sel = selectors.DefaultSelector()
    pending = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        s.send(msg)
        pending[s] = 64
    done = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(1):
            s = key.fileobj
            data = s.recv(4096)  # type: ignore[union-attr]
            if not data:
                raise SystemExit("rtt: server closed a connection")
            pending[s] -= len(data)
            if pending[s] == 0:
                done += 1
                s.send(msg)  # type: ignore[union-attr]
                pending[s] = 64
    elapsed = time.monotonic() - t0
    for s in pending:
        s.close()
    return done / elapsed, done


def idle(server: Server, count: int) -> tuple[int, float]:
    """Open count connections, check each echoes, hold; held count and MiB per 1,000."""
    before = server.rss_kib()
    socks = []
    deadline = time.monotonic() + 120
    for i in range(count):
        if time.monotonic() > deadline:
            break
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        except OSError:
            break
        s.sendall(b"?")
        if s.recv(1) != b"?":
            break
        socks.append(s)
        if i % 1000 == 999:
            time.sleep(0)  # let the server's accept loop breathe
    time.sleep(1)
    held = 0
    for s in socks:
        try:
            s.sendall(b"!")
            if s.recv(1) == b"!":
                held += 1
        except OSError:
            pass
    after = server.rss_kib()
    for s in socks:
        s.close()
    per_1k = (after - before) / 1024 / max(held, 1) * 1000
    return held, per_1k


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--idle", type=int, default=10000)
    args = ap.parse_args()
    open_files(args.idle * 2 + 512)
    os.sched_setaffinity(0, {1}) if os.cpu_count() and os.cpu_count() >= 2 else None  # type: ignore[func-returns-value,operator]
    names = ["twisted", "asyncio", "portsuite"] + (["before"] if before_bin() else [])
    results: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    with tempfile.TemporaryDirectory(prefix="portsuite-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for r in range(args.rounds):
            for name in names:
                server = Server(name, tmp)
                try:
                    res = results[name]
                    res.setdefault("startup s", []).append(server.startup)
                    cpu0 = server.cpu_seconds()
                    rate, mib = throughput(server.port, args.seconds)
                    res.setdefault("MiB/s", []).append(rate)
                    cpu = server.cpu_seconds() - cpu0
                    res.setdefault("cpu ms/MiB", []).append(cpu / max(mib, 1e-9) * 1e3)
                    cpu0 = server.cpu_seconds()
                    rate, done = round_trips(server.port, args.seconds / 1.5, 1)
                    res.setdefault("rtt/s", []).append(rate)
                    cpu = server.cpu_seconds() - cpu0
                    res.setdefault("rtt cpu us/rt", []).append(cpu / max(done, 1) * 1e6)
                    cpu0 = server.cpu_seconds()
                    rate, done = round_trips(server.port, args.seconds / 1.5, 50)
                    res.setdefault("rr50/s", []).append(rate)
                    # CPU per message: what the server spends, whatever else the machine runs
                    cpu = server.cpu_seconds() - cpu0
                    res.setdefault("rr50 cpu us/rt", []).append(cpu / max(done, 1) * 1e6)
                    if r == 0 and args.idle:
                        held, per_1k = idle(server, args.idle)
                        res["idle held"] = [held]
                        res["MiB/1k conns"] = [per_1k]
                finally:
                    server.stop()
                print(f"round {r + 1}/{args.rounds}: {name} done", file=sys.stderr)
    metrics = list(results["twisted"])
    print(
        f"{'metric':<14}{'twisted Echo':>14}{'asyncio':>10}{'portsuite':>11}"
        f"{'x Echo':>8}{'x asyncio':>10}"
    )
    summary = {}
    for m in metrics:
        a = statistics.median(results["twisted"][m])
        c = statistics.median(results["asyncio"][m])
        b = statistics.median(results["portsuite"][m])
        ratio = b / a if a else float("nan")
        ratio_a = b / c if c else float("nan")
        summary[m] = round(ratio, 3)
        summary[f"{m} x asyncio"] = round(ratio_a, 3)
        print(f"{m:<14}{a:>14.2f}{c:>10.2f}{b:>11.2f}{ratio:>8.2f}{ratio_a:>10.2f}")
    print(
        "(ratio = portsuite / peer; for throughput and round trips higher is better; for CPU "
        "per MiB or round trip, startup and MiB/1k lower is better. With a busy machine, CPU per "
        "round trip is the steady figure: wall-clock rates follow what else runs)"
    )
    print("SUMMARY " + json.dumps(summary))
    if "before" in results:
        print(
            f"\n{'metric':<14}{'before':>14}{'portsuite':>14}{'now/before':>11}{'before x Echo':>14}"
        )
        for m in metrics:
            a = statistics.median(results["before"][m])
            b = statistics.median(results["portsuite"][m])
            peer = statistics.median(results["twisted"][m])
            print(
                f"{m:<14}{a:>14.2f}{b:>14.2f}{b / a if a else float('nan'):>11.2f}{a / peer if peer else float('nan'):>14.2f}"
            )
        print(f"(before = {before_bin()}/twistd, loaded in the same rounds)")
        rounds = {
            m: [
                round(b / a, 3)
                for a, b in zip(results["before"][m], results["portsuite"][m], strict=False)
                if a
            ]
            for m in metrics
        }
        print("BEFORE " + json.dumps(rounds))


if __name__ == "__main__":
    main()
