"""
bench/ftp.py — the ftp service against pyftpdlib, in the same run.

    .venv/bin/python bench/ftp.py [--rounds 3] [--big 3] [--size-mb 100] [--files 1000]

Both servers serve the same folder on 127.0.0.1 (free ports), logged in as the same
user with write access, pinned on cpu 0; the clients run on cpu 1. The folder is on a
tmpfs (/dev/shm) unless --dir says otherwise: on a disk, creating each new file costs
the server as much as the rest of a small put, and moves with other jobs' disk work.
Per round, the servers in turn, the order flipping each time: curl downloads the big
file --big times per server, then uploads it as often, each time under a new name
(MiB/s from curl's own clock, so the start of the curl process is not counted; the
file is deleted after, untimed: every upload writes a new file and no dirty pages
pile up); then Python's ftplib gets and puts N small files, one data connection
each, in blocks of N/10 that alternate between the servers (files/s): a busy
machine's slow moments fall on both alike.

Medians of all the measurements, the median of each one's ratio to the peer's next to
it ("paired"), and each server's CPU per operation (every thread's run time from
schedstat, in ns), which a machine shared with other work disturbs far less than the
rates. The load average is printed at the start and the end. SUMMARY: portsuite /
pyftpdlib for each rate (>= 1.0: portsuite as fast or faster), and pyftpdlib's CPU /
portsuite's (>= 1.0: portsuite uses no more CPU).

PORTSUITE_BEFORE_BIN=/path/to/other/venv/bin also runs that build's twistd, interleaved
with the other two, and prints this build over that one (before/after from one run).
"""

from __future__ import annotations

import argparse
import ftplib
import io
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import before_bin, free_port, pin, run_seconds, terminate, wait_listening  # noqa: E402

USER, PASSWORD = "alice", "wonderland"
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SMALL = 2048  # bytes per small file
BLOCKS = 10  # the small files of a round, in this many blocks, servers alternating


def greets(sock: socket.socket) -> bool:
    """The probe of an FTP server: its 220 greeting."""
    return sock.recv(4).startswith(b"220")


def start_portsuite(
    work: Path, home: Path, bin_dir: Path = VENV_BIN, name: str = "portsuite"
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = work / f"bench-{name}.toml"
    cfg.write_text(
        f'[users]\n{USER} = "{PASSWORD}"\n\n'
        f'[services.ftp]\ntype = "ftp"\nport = {port}\nroot = "{work / "public"}"\n'
        f'homes = "{home.parent}"\nmax_upload = {2**31}\nanonymous = false\n'
    )
    twistd = bin_dir / "twistd"
    proc = subprocess.Popen(
        [
            *pin(0),
            str(twistd),
            "-n",
            "--pidfile=",
            "--logfile=/dev/null",
            "portsuite",
            "-c",
            str(cfg),
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, proc, name, probe=greets)
    return proc, port


def start_pyftpdlib(home: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    code = (
        "import logging, sys\n"
        "from pyftpdlib.authorizers import DummyAuthorizer\n"
        "from pyftpdlib.handlers import FTPHandler\n"
        "from pyftpdlib.servers import FTPServer\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "a = DummyAuthorizer()\n"
        f"a.add_user({USER!r}, {PASSWORD!r}, {str(home)!r}, perm='elradfmwMT')\n"
        "h = FTPHandler\nh.authorizer = a\n"
        f"FTPServer(('127.0.0.1', {port}), h).serve_forever()\n"
    )
    proc = subprocess.Popen(
        [*pin(0), sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # pyftpdlib logs each command and transfer (to stderr, here /dev/null), as portsuite logs
    wait_listening(port, proc, "pyftpdlib", probe=greets)
    return proc, port


def curl(*args: str) -> float:
    """Seconds the transfer took by curl's own clock (connect, login, transfer, reply)."""
    out = subprocess.run(
        [*pin(1), "curl", "-sS", "--max-time", "300", "-w", "%{time_total}", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def big_download(port: int, size: int) -> float:
    t = curl("-o", "/dev/null", f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/big.bin")
    return size / t / 2**20


def big_upload(port: int, src: Path, size: int, name: str) -> float:
    t = curl("-T", str(src), f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/{name}")
    return size / t / 2**20


class Session:
    """One ftplib session on one server, for the small files."""

    def __init__(self, port: int):
        self.ftp = ftplib.FTP()
        self.ftp.connect("127.0.0.1", port, timeout=60)
        self.ftp.login(USER, PASSWORD)

    def get(self, first: int, n: int) -> float:
        sink = io.BytesIO()
        start = time.perf_counter()
        for i in range(first, first + n):
            self.ftp.retrbinary(f"RETR small/{i:04d}.txt", sink.write)
        return time.perf_counter() - start

    def put(self, folder: str, first: int, n: int) -> float:
        payload = b"s" * SMALL
        start = time.perf_counter()
        for i in range(first, first + n):
            self.ftp.storbinary(f"STOR {folder}/{i:04d}.txt", io.BytesIO(payload))
        return time.perf_counter() - start

    def close(self) -> None:
        self.ftp.quit()


def scratch_folder(where: str) -> Path:
    """
    Where the files live: C{--dir}, else a tmpfs (/dev/shm) when it has room. On the
    dev VM's ext4 each new file costs the creating process 0.2-0.4 ms of kernel time,
    moving with other jobs' disk work: most of a small put's time, the same for both
    servers, and the noisiest part of it.
    """
    if where:
        return Path(tempfile.mkdtemp(prefix="portsuite-bench-ftp-", dir=where))
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 2 * 10**9:
        return Path(tempfile.mkdtemp(prefix="portsuite-bench-ftp-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="portsuite-bench-ftp-"))


def client_seconds() -> float:
    """CPU seconds of this process (ftplib) and of its finished children (curl)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--big", type=int, default=3, help="big-file transfers per server a round")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--dir", default="", help="folder for the files (default: /dev/shm)")
    ap.add_argument("--only", default="", help="run only the tests whose name has this word")
    args = ap.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("needs curl (apt-get install curl)")
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # ftplib runs here: the client cpu
    load_start = loadavg()
    size = args.size_mb * 10**6
    work = scratch_folder(args.dir)
    home = work / "homes" / USER
    (home / "small").mkdir(parents=True)
    (home / "put").mkdir()
    (work / "public").mkdir()
    src = work / "src.bin"
    with open(src, "wb") as out:
        block = os.urandom(1 << 20)
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))
    os.link(src, home / "big.bin")
    for i in range(args.files):
        (home / "small" / f"{i:04d}.txt").write_bytes(b"s" * SMALL)

    folders = iter(range(10**6))

    def fresh_folder() -> str:
        # every put run writes new files, as an upload of new files does: had a run
        # overwritten the files of the run before, pyftpdlib would truncate them in
        # place while portsuite writes a new file under a temporary name and renames it
        # (interrupted uploads never look complete), a new inode each time
        name = f"put/{next(folders)}"
        (home / name).mkdir()
        return name

    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    files = args.files
    per_block = max(1, files // BLOCKS)
    tests = [
        "download MiB/s",
        "upload MiB/s",
        f"get {files} files, files/s",
        f"put {files} files, files/s",
    ]
    tests = [t for t in tests if args.only in t]
    # per test and server: the rate of each measurement, and the server's cpu seconds
    # per operation (per MB for the big file, per file for the small ones)
    results: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    client_cpu: dict[str, dict[str, float]] = {}  # per test: the client's cpu per op
    waited: dict[str, float] = {}
    try:
        servers["portsuite"] = start_portsuite(work, home)
        servers["pyftpdlib"] = start_pyftpdlib(home)
        before = before_bin()
        if before is not None:  # an older build, interleaved: before/after from one run
            servers["before"] = start_portsuite(work, home, before, "before")
        results = {t: {s: [] for s in servers} for t in tests}
        cpu = {t: {s: [] for s in servers} for t in tests}
        client_cpu = {t: {} for t in tests}
        waited = dict.fromkeys(servers, 0.0)
        client = dict.fromkeys(servers, 0.0)  # the clients' cpu seconds, per test

        def measured(name: str, run: Callable[[], float]) -> tuple[float, float]:
            pid = servers[name][0].pid
            ran0, wait0 = run_seconds(pid)
            client0 = client_seconds()
            value = run()
            client[name] += client_seconds() - client0
            ran1, wait1 = run_seconds(pid)
            waited[name] += wait1 - wait0
            return value, ran1 - ran0

        uploads = iter(range(10**6))
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for test in tests:
                client = dict.fromkeys(servers, 0.0)
                if test.startswith(("download", "upload")):
                    # the servers in turn, the order flipping each time: A B C C B A …
                    for k in range(args.big):
                        for name in order if k % 2 == 0 else reversed(order):
                            port = servers[name][1]
                            if test.startswith("download"):
                                rate, used = measured(name, partial(big_download, port, size))
                            else:
                                target = home / f"up-{next(uploads)}.bin"
                                run = partial(big_upload, port, src, size, target.name)
                                rate, used = measured(name, run)
                                target.unlink()  # untimed: no dirty pages left for the next
                            results[test][name].append(rate)
                            cpu[test][name].append(used / args.size_mb)
                    for name in servers:
                        ops = args.size_mb * args.big * args.rounds
                        client_cpu[test][name] = (
                            client_cpu[test].get(name, 0.0) + client[name] / ops
                        )
                    continue
                upload = test.startswith("put")
                sessions = {name: Session(servers[name][1]) for name in order}
                folder = {name: fresh_folder() for name in order} if upload else {}
                took = dict.fromkeys(order, 0.0)
                used_all = dict.fromkeys(order, 0.0)
                for b, first in enumerate(range(0, files, per_block)):
                    n = min(per_block, files - first)
                    for name in order if b % 2 == 0 else reversed(order):
                        s = sessions[name]
                        if upload:
                            run = partial(s.put, folder[name], first, n)
                        else:
                            run = partial(s.get, first, n)
                        t, used = measured(name, run)
                        took[name] += t
                        used_all[name] += used
                for name in order:
                    sessions[name].close()
                    results[test][name].append(files / took[name])
                    cpu[test][name].append(used_all[name] / files)
                    ops = files * args.rounds
                    client_cpu[test][name] = client_cpu[test].get(name, 0.0) + client[name] / ops
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        terminate(*(proc for proc, _port in servers.values()), timeout=15)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nftp: portsuite vs pyftpdlib, {args.size_mb} MB file ({args.big} transfers a "
        f"round), {files} files of {SMALL} B, {args.rounds} rounds, files in {work.parent}; "
        f"load average {load_start} at the start, {loadavg()} at the end"
    )
    print(
        f"{'':26} {'portsuite':>9} {'pyftpdlib':>9} {'ratio':>6} {'paired':>6}   "
        "server cpu per MB / per file (ps / pyftpd), cpu ratio"
    )
    summary = []
    for test in tests:
        ps_all, py_all = results[test]["portsuite"], results[test]["pyftpdlib"]
        ps = statistics.median(ps_all)
        py = statistics.median(py_all)
        # each measurement over the peer's next to it (same moment of a busy machine)
        paired = statistics.median(a / b for a, b in zip(ps_all, py_all, strict=True))
        cps = statistics.median(cpu[test]["portsuite"])
        cpy = statistics.median(cpu[test]["pyftpdlib"])
        unit = "ms/MB" if test.startswith(("download", "upload")) else "us/file"
        scale = 1e3 if unit == "ms/MB" else 1e6
        summary.append(f"{test.split(',')[0]} {ps / py:.2f}x (cpu {cpy / cps:.2f}x)")
        print(
            f"{test:26} {ps:9.1f} {py:9.1f} {ps / py:5.2f}x {paired:5.2f}x   "
            f"{cps * scale:.3g} / {cpy * scale:.3g} {unit}, {cpy / cps:.2f}x"
        )
    print("each measurement, first to last:")
    for test in tests:
        rounds = "; ".join(
            f"{name} " + " ".join(f"{v:.0f}" for v in results[test][name]) for name in servers
        )
        print(f"  {test.split(',')[0]:22} {rounds}")
    print(
        "the clients' cpu (curl, ftplib) per MB / per file, mean, with portsuite / pyftpdlib: "
        + ", ".join(
            f"{t.split(',')[0]} {client_cpu[t]['portsuite'] * (1e3 if t[0] in 'du' else 1e6):.3g}"
            f" / {client_cpu[t]['pyftpdlib'] * (1e3 if t[0] in 'du' else 1e6):.3g}"
            for t in tests
        )
    )
    print(
        "servers' wait for a cpu while runnable: "
        + ", ".join(f"{name} {w:.2f}s" for name, w in waited.items())
    )
    print("SUMMARY ftp/pyftpdlib: " + ", ".join(summary))
    if "before" in servers:
        print(f"\nthis build / the one in {before_bin()} (same run):")
        for test in tests:
            now_all, old_all = results[test]["portsuite"], results[test]["before"]
            ps = statistics.median(now_all)
            old = statistics.median(old_all)
            paired = statistics.median(a / b for a, b in zip(now_all, old_all, strict=True))
            cps = statistics.median(cpu[test]["portsuite"])
            cold = statistics.median(cpu[test]["before"])
            print(
                f"{test:26} {ps:9.1f} {old:9.1f} {ps / old:5.2f}x {paired:5.2f}x   "
                f"server cpu {cps / cold:.2f}x of before's, the client's "
                f"{client_cpu[test]['portsuite'] / client_cpu[test]['before']:.2f}x"
            )


if __name__ == "__main__":
    main()
