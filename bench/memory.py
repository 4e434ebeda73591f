"""
bench/memory.py: the RSS of a one-service suite at start, against a bare Twisted
script and a bare twistd serving the same echo, in one run.

  twisted   python -c: listenTCP(wire.Echo) and reactor.run()
  twistd    twistd -n -y echo.tac: the same Echo under twistd (its app, logging, pidfile
            handling): what every twistd plugin starts from
  portsuite twistd -n portsuite -c echo.toml: one echo service

Each is started --rounds times; its RSS is read once it accepts connections and has
echoed one line (medians). --modules also lists what portsuite has imported that the bare
twistd has not (a sys.modules dump, taken 2 s after start through a wrapper script).

    .venv/bin/python bench/memory.py [--rounds 3] [--modules]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess as sp
import sys
import tempfile
import time
from pathlib import Path

from benchlib import before_bin, free_port, terminate, wait_listening

BIN = Path(sys.executable).parent
SCRIPT = (
    "import sys\n"
    "from twisted.internet import reactor, protocol\n"
    "from twisted.protocols.wire import Echo\n"
    "reactor.listenTCP(int(sys.argv[1]), protocol.Factory.forProtocol(Echo), "
    "interface='127.0.0.1')\n"
    "reactor.run()\n"
)
TAC = (
    "import os\n"
    "from twisted.application import service, strports\n"
    "from twisted.internet import protocol\n"
    "from twisted.protocols.wire import Echo\n"
    "application = service.Application('echo')\n"
    "strports.service('tcp:%s:interface=127.0.0.1' % os.environ['PORT'],\n"
    "                 protocol.Factory.forProtocol(Echo)).setServiceParent(application)\n"
)
# run twistd in-process and dump sys.modules 2 s after the reactor starts
DUMP = (
    "import sys\n"
    "from twisted.internet import reactor\n"
    "out = sys.argv.pop(1)\n"
    "reactor.callLater(2, lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "from twisted.scripts.twistd import run\n"
    "sys.argv[0] = 'twistd'\n"
    "run()\n"
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def echoes(s: socket.socket) -> bool:
    """The probe of an echo server: a line comes back."""
    s.sendall(b"ping\n")
    return s.recv(16) == b"ping\n"


def command(kind: str, port: int, tmp: Path) -> list[str]:
    if kind == "twisted":
        return [sys.executable, "-c", SCRIPT, str(port)]
    if kind == "twistd":
        tac = tmp / "echo.tac"
        tac.write_text(TAC)
        return [str(BIN / "twistd"), "-n", "--pidfile=", f"--logfile={tmp}/t.log", "-y", str(tac)]
    config = tmp / "echo.toml"
    config.write_text(f'[services.echo]\ntype = "echo"\nport = {port}\n')
    bindir = before_bin() if kind == "before" else BIN
    assert bindir is not None
    return [
        str(bindir / "twistd"),
        "-n",
        "--pidfile=",
        f"--logfile={tmp}/{kind}.log",
        "portsuite",
        "-c",
        str(config),
    ]


def measure(kind: str, tmp: Path) -> int:
    port = free_port()
    proc = sp.Popen(
        command(kind, port, tmp),
        env={"PORT": str(port), "PATH": str(BIN)},
        stdout=sp.DEVNULL,
        stderr=sp.DEVNULL,
        cwd=tmp,
    )
    try:
        wait_listening(port, proc, kind, timeout=60, probe=echoes)
        time.sleep(0.5)
        return rss_kib(proc.pid)
    finally:
        terminate(proc)


def modules(kind: str, tmp: Path) -> set[str]:
    port = free_port()
    out = tmp / f"{kind}.modules"
    argv = command(kind, port, tmp)[1:]  # (twistd's own arguments)
    proc = sp.Popen(
        [sys.executable, "-c", DUMP, str(out), *argv],
        env={"PORT": str(port), "PATH": str(BIN)},
        stdout=sp.DEVNULL,
        stderr=sp.DEVNULL,
        cwd=tmp,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(0.2)
        return set(out.read_text().split()) if out.exists() else set()
    finally:
        terminate(proc)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--modules", action="store_true")
    args = ap.parse_args()
    kinds = ["twisted", "twistd", "portsuite"] + (["before"] if before_bin() else [])
    rss: dict[str, list[int]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="portsuite-mem-") as d:
        tmp = Path(d)
        for _ in range(args.rounds):
            for kind in kinds:
                rss[kind].append(measure(kind, tmp))
        print(f"{'server':<12}{'RSS MiB':>9}{'x twisted':>11}{'x twistd':>10}")
        base = statistics.median(rss["twisted"])
        bare = statistics.median(rss["twistd"])
        for kind in kinds:
            m = statistics.median(rss[kind])
            print(f"{kind:<12}{m / 1024:>9.1f}{m / base:>11.2f}{m / bare:>10.2f}")
        print(f"(RSS once the port echoes, medians of {args.rounds} round(s))")
        if args.modules:
            extra = modules("portsuite", tmp) - modules("twistd", tmp)
            tops = sorted({m.split(".")[0] for m in extra})
            print(f"\n{len(extra)} modules in portsuite and not in the bare twistd; packages:")
            print(" ".join(tops))


if __name__ == "__main__":
    main()
