"""
bench/tls.py: portsuite's echo with `tls = {…}` against a bare Twisted TLS echo, in one run.

The peer is C{twisted.protocols.wire.Echo} behind Twisted's own C{ssl:} endpoint, with
the same certificate: what portsuite's TLS layer (its wrapper inside TLS, the handshake
timer, the ALPN answer) costs, as ratios.

  handshakes   new TLS 1.3 connections per second (verify, one echo, close), 8 clients
  MiB/s        4 connections stream 16 KiB writes over TLS for --seconds, echoes read back
  rtt/s        1 connection, 64-byte request/response round trips per second over TLS

Both servers run as subprocesses pinned to cpu 0, this client to cpu 1 (when there are
two cpus). Rounds are interleaved; medians are printed. Every loop is bounded in time.

    .venv/bin/python bench/tls.py [--rounds 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import ssl
import statistics
import subprocess as sp
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import before_bin, free_port, pin, terminate, wait_listening

BIN = Path(sys.executable).parent
PEER = (
    "import sys\n"
    "from twisted.internet import reactor, protocol, endpoints\n"
    "from twisted.protocols.wire import Echo\n"
    "port, cert, key = sys.argv[1:4]\n"
    "ep = endpoints.serverFromString(reactor, "
    "f'ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}')\n"
    "ep.listen(protocol.Factory.forProtocol(Echo))\n"
    "reactor.run()\n"
)


class Server:
    def __init__(self, name: str, tmp: Path, certs: Path):
        self.name = name
        self.port = free_port()
        cert, key = certs / "server.crt", certs / "server.key"
        if name == "twisted":
            cmd = [sys.executable, "-c", PEER, str(self.port), str(cert), str(key)]
        else:
            config = tmp / f"tls-{name}.toml"
            config.write_text(
                f'[services.echo]\ntype = "echo"\nport = {self.port}\n'
                f'tls = {{ cert = "{cert}", key = "{key}" }}\n'
            )
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
        self.proc = sp.Popen([*pin(0), *cmd], stdout=sp.DEVNULL, stderr=sp.DEVNULL)
        wait_listening(self.port, self.proc, name)

    def stop(self) -> None:
        terminate(self.proc)


def connect(ctx: ssl.SSLContext, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def handshakes(ctx: ssl.SSLContext, port: int, seconds: float, clients: int = 8) -> float:
    """Full TLS 1.3 handshakes per second (no resumption), each checked by one echo."""
    counts = [0] * clients
    end = time.monotonic() + seconds

    def client(i: int) -> None:
        while time.monotonic() < end:
            with connect(ctx, port) as s:
                s.sendall(b"!")
                if s.recv(1) != b"!":
                    raise SystemExit("handshakes: wrong echo")
            counts[i] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return sum(counts) / (time.monotonic() - t0)


def throughput(ctx: ssl.SSLContext, port: int, seconds: float, conns: int = 4) -> float:
    """MiB/s of plaintext echoed over TLS, all read back before the clock stops."""
    sel = selectors.DefaultSelector()
    chunk = b"\xa5" * 16384
    state: dict[ssl.SSLSocket, list[int]] = {}
    for _ in range(conns):
        s = connect(ctx, port)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        state[s] = [0, 0]
    t0 = time.monotonic()
    end = t0 + seconds
    sending = True
    while True:
        now = time.monotonic()
        if sending and now >= end:
            sending = False
            for s in state:
                sel.modify(s, selectors.EVENT_READ)
        if not sending and all(st[1] >= st[0] for st in state.values()):
            break
        if now > end + 30:
            raise SystemExit("throughput: echoes did not come back within 30 s")
        for key, events in sel.select(0.5):
            s = key.fileobj  # type: ignore[assignment]
            st = state[s]  # type: ignore[index]
            if events & selectors.EVENT_READ or s.pending():  # type: ignore[attr-defined]
                try:
                    while True:
                        data = s.recv(1 << 17)  # type: ignore[attr-defined]
                        if not data:
                            raise SystemExit("throughput: server closed a connection")
                        st[1] += len(data)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            if sending and events & selectors.EVENT_WRITE and st[0] - st[1] < 1 << 20:
                try:
                    st[0] += s.send(chunk)  # type: ignore[attr-defined]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
    elapsed = time.monotonic() - t0
    for s in state:
        s.close()
    return sum(st[1] for st in state.values()) / elapsed / 2**20


def round_trips(ctx: ssl.SSLContext, port: int, seconds: float) -> float:
    msg = b"m" * 64
    done = 0
    with connect(ctx, port) as s:
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            s.sendall(msg)
            got = 0
            while got < 64:
                data = s.recv(4096)
                if not data:
                    raise SystemExit("rtt: server closed the connection")
                got += len(data)
            done += 1
        return done / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})
    from portsuite import certs

    names = ["twisted", "portsuite"] + (["before"] if before_bin() else [])
    results: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    with tempfile.TemporaryDirectory(prefix="portsuite-bench-tls-") as tmpdir:
        tmp = Path(tmpdir)
        issued = certs.make(tmp / "certs")
        ctx = ssl.create_default_context(cafile=str(issued.ca_cert))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        for r in range(args.rounds):
            for name in names:
                server = Server(name, tmp, issued.folder)
                try:
                    res = results[name]
                    res.setdefault("handshakes/s", []).append(
                        handshakes(ctx, server.port, args.seconds)
                    )
                    res.setdefault("MiB/s", []).append(throughput(ctx, server.port, args.seconds))
                    res.setdefault("rtt/s", []).append(
                        round_trips(ctx, server.port, args.seconds / 1.5)
                    )
                finally:
                    server.stop()
                print(f"round {r + 1}/{args.rounds}: {name} done", file=sys.stderr)
    print(f"{'metric':<14}{'twisted ssl:':>14}{'portsuite':>14}{'ratio':>8}")
    summary = {}
    for m in results["twisted"]:
        a = statistics.median(results["twisted"][m])
        b = statistics.median(results["portsuite"][m])
        ratio = b / a if a else float("nan")
        summary[m] = round(ratio, 3)
        print(f"{m:<14}{a:>14.2f}{b:>14.2f}{ratio:>8.2f}")
    print("(ratio = portsuite / bare Twisted TLS echo; higher is better, target >= 0.9)")
    print("SUMMARY " + json.dumps(summary))
    if "before" in results:
        print(f"\n{'metric':<14}{'before':>14}{'portsuite':>14}{'now/before':>11}  by round")
        for m in results["twisted"]:
            old, new = results["before"][m], results["portsuite"][m]
            a, b = statistics.median(old), statistics.median(new)
            rounds = " ".join(f"{y / x:.2f}" for x, y in zip(old, new, strict=False) if x)
            print(f"{m:<14}{a:>14.2f}{b:>14.2f}{b / a if a else float('nan'):>11.2f}  {rounds}")
        print(f"(before = {before_bin()}/twistd, loaded in the same rounds)")


if __name__ == "__main__":
    main()
