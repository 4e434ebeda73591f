"""
bench/chargen.py: portsuite's chargen (RFC 864) against its peers, in one run.

Peers:
  twisted   twisted.protocols.wire.Chargen: a pull producer, 72 bytes per write
  socat     socat streaming /dev/zero: no protocol at all, the loopback ceiling

Measures, as medians over interleaved rounds:
  1conn     MiB/s one client reads for --seconds
  8conn     MiB/s eight clients read at once (total), and the slowest one's share
  cpu       server CPU seconds per GiB sent (8conn)

Servers run as subprocesses (pinned to cpu 0 when there are two), the client here.
Every loop is bounded in time.

    .venv/bin/python bench/chargen.py [--rounds 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import socket
import statistics
import subprocess as sp
import sys
import tempfile
import time
from pathlib import Path

from benchlib import free_port, pin, terminate, wait_listening

BIN = Path(sys.executable).parent
TWISTED_PEER = (
    "import sys\n"
    "from twisted.internet import reactor, protocol\n"
    "from twisted.protocols.wire import Chargen\n"
    "reactor.listenTCP(int(sys.argv[1]), protocol.Factory.forProtocol(Chargen), interface='127.0.0.1')\n"
    "reactor.run()\n"
)


class Server:
    def __init__(self, name: str, tmp: Path):
        self.name = name
        self.port = free_port()
        if name == "twisted":
            cmd = [sys.executable, "-c", TWISTED_PEER, str(self.port)]
        elif name == "socat":
            cmd = [
                "socat",
                f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork",
                "OPEN:/dev/zero",
            ]
        else:
            config = tmp / "chargen.toml"
            config.write_text(f'[services.chargen]\ntype = "chargen"\nport = {self.port}\n')
            cmd = [str(BIN / "twistd"), "-n", "--pidfile=", f"--logfile={tmp}/portsuite.log",
                   "portsuite", "-c", str(config)]  # fmt: skip
        self.proc = sp.Popen([*pin(0), *cmd], stdout=sp.DEVNULL, stderr=sp.DEVNULL,
                             start_new_session=True)  # fmt: skip
        first = b""

        def streams(s: socket.socket) -> bool:
            nonlocal first
            first = s.recv(74)
            return True

        wait_listening(self.port, self.proc, name, probe=streams)
        if name == "portsuite":
            assert first == bytes(range(32, 104))[: len(first)] + b"\r\n"[: max(0, len(first) - 72)]

    def cpu_seconds(self) -> float:
        # the server and its children (socat forks per connection)
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [self.proc.pid, *children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError):
                pass
        return total

    def stop(self) -> None:
        terminate(self.proc, group=True)


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def read_for(port: int, seconds: float, conns: int) -> list[int]:
    """Bytes each of C{conns} clients read in C{seconds}."""
    sel = selectors.DefaultSelector()
    got: dict[socket.socket, int] = {}
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        got[s] = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.2):
            s = key.fileobj  # type: ignore[assignment]
            try:
                data = s.recv(1 << 20)  # type: ignore[attr-defined]
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("server closed a connection")
            got[s] += len(data)  # type: ignore[index]
    for s in got:
        s.close()
    return list(got.values())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    names = ["portsuite", "twisted"] + (["socat"] if shutil.which("socat") else [])
    results: dict[str, dict[str, list[float]]] = {
        n: {"1conn": [], "8conn": [], "min8": [], "cpu": []} for n in names
    }
    with tempfile.TemporaryDirectory() as tmp:
        servers = {n: Server(n, Path(tmp)) for n in names}
        try:
            for _ in range(args.rounds):
                for n, srv in servers.items():
                    one = read_for(srv.port, args.seconds, 1)
                    results[n]["1conn"].append(one[0] / args.seconds / 2**20)
                    cpu0 = srv.cpu_seconds()
                    eight = read_for(srv.port, args.seconds, 8)
                    cpu = srv.cpu_seconds() - cpu0
                    total = sum(eight)
                    results[n]["8conn"].append(total / args.seconds / 2**20)
                    results[n]["min8"].append(min(eight) / (total / 8) if total else 0.0)
                    results[n]["cpu"].append(cpu / (total / 2**30) if total else 0.0)
        finally:
            for srv in servers.values():
                srv.stop()
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    print(
        f"{'server':<10} {'1conn MiB/s':>12} {'8conn MiB/s':>12} {'slowest/fair':>13} {'cpu s/GiB':>10}"
    )
    for n in names:
        m = med[n]
        cpu = "n/a" if n == "socat" else f"{m['cpu']:.2f}"  # its forked children are gone
        print(f"{n:<10} {m['1conn']:>12.1f} {m['8conn']:>12.1f} {m['min8']:>13.2f} {cpu:>10}")
    p = med["portsuite"]
    ratios = []
    for peer in names[1:]:
        q = med[peer]
        ratios.append(
            f"vs {peer}: 1conn x{p['1conn'] / q['1conn']:.2f}, 8conn x{p['8conn'] / q['8conn']:.2f}"
        )
    print("SUMMARY chargen portsuite " + "; ".join(ratios))


if __name__ == "__main__":
    main()
