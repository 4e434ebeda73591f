"""
bench/ftp.py — the ftp service against pyftpdlib, in the same run.

    .venv/bin/python bench/ftp.py [--rounds 3] [--size-mb 100] [--files 1000]

Both servers serve the same folder on 127.0.0.1 (free ports), logged in as the same
user with write access, pinned on cpu 0; the clients run on cpu 1. Per round,
interleaved: curl downloads and uploads one big file (MiB/s), then Python's ftplib
gets and puts N small files in one session, one data connection each (files/s).
Medians of the rounds, the server's CPU seconds per operation, and a SUMMARY line of
ratios portsuite / pyftpdlib (>= 1.0: portsuite is as fast or faster).

PORTSUITE_BEFORE_BIN=/path/to/other/venv/bin also runs that build's twistd, interleaved
with the other two, and prints this build over that one (before/after from one run).
"""

from __future__ import annotations

import argparse
import ftplib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import before_bin, cpu_seconds, free_port, pin  # noqa: E402

USER, PASSWORD = "alice", "wonderland"
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SMALL = 2048  # bytes per small file


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early ({proc.returncode})")
        try:
            f = ftplib.FTP()
            f.connect("127.0.0.1", port, timeout=2)
            f.close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port}")


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
    wait_listening(port, proc)
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
    wait_listening(port, proc)
    return proc, port


def curl(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*pin(1), "curl", "-sS", "--max-time", "300", *args], check=True)
    return time.perf_counter() - start


def big_download(port: int, size: int) -> float:
    t = curl("-o", "/dev/null", f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/big.bin")
    return size / t / 2**20


def big_upload(port: int, src: Path, size: int) -> float:
    t = curl("-T", str(src), f"ftp://{USER}:{PASSWORD}@127.0.0.1:{port}/up.bin")
    return size / t / 2**20


def small_files(port: int, n: int, upload: bool, folder: str = "put") -> float:
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=60)
    f.login(USER, PASSWORD)
    payload = b"s" * SMALL
    start = time.perf_counter()
    if upload:
        for i in range(n):
            f.storbinary(f"STOR {folder}/{i:04d}.txt", io.BytesIO(payload))
    else:
        sink = io.BytesIO()
        for i in range(n):
            f.retrbinary(f"RETR small/{i:04d}.txt", sink.write)
    t = time.perf_counter() - start
    f.quit()
    return n / t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--only", default="", help="run only the tests whose name has this word")
    args = ap.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("needs curl (apt-get install curl)")
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {1})  # ftplib runs here: the client cpu
    size = args.size_mb * 10**6
    work = Path(tempfile.mkdtemp(prefix="portsuite-bench-ftp-"))
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

    servers = {}
    try:
        servers["portsuite"] = start_portsuite(work, home)
        servers["pyftpdlib"] = start_pyftpdlib(home)
        before = before_bin()
        if before is not None:  # an older build, interleaved: before/after from one run
            servers["before"] = start_portsuite(work, home, before, "before")
        tests = {
            "download MiB/s": lambda p: big_download(p, size),
            "upload MiB/s": lambda p: big_upload(p, src, size),
            f"get {args.files} files, files/s": lambda p: small_files(p, args.files, False),
            f"put {args.files} files, files/s": lambda p: small_files(
                p, args.files, True, fresh_folder()
            ),
        }
        tests = {k: v for k, v in tests.items() if args.only in k}
        results: dict[str, dict[str, list[float]]] = {t: {s: [] for s in servers} for t in tests}
        cpu: dict[str, dict[str, list[float]]] = {t: {s: [] for s in servers} for t in tests}
        for r in range(args.rounds):
            for test, run in tests.items():
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for name in order:
                    proc, port = servers[name]
                    before = cpu_seconds(proc.pid)
                    results[test][name].append(run(port))
                    cpu[test][name].append(cpu_seconds(proc.pid) - before)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for proc, _port in servers.values():
            proc.terminate()
            proc.wait(15)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nftp: portsuite vs pyftpdlib, {args.size_mb} MB file, {args.files} files of {SMALL} B")
    print(f"{'':34} {'portsuite':>10} {'pyftpdlib':>10} {'ratio':>7}   server cpu s (ps / pyftpd)")
    summary = []
    for test in tests:
        ps = statistics.median(results[test]["portsuite"])
        py = statistics.median(results[test]["pyftpdlib"])
        cps = statistics.median(cpu[test]["portsuite"])
        cpy = statistics.median(cpu[test]["pyftpdlib"])
        ratio = ps / py
        summary.append(f"{test.split(',')[0]} {ratio:.2f}x")
        print(f"{test:34} {ps:10.1f} {py:10.1f} {ratio:6.2f}x   {cps:.2f} / {cpy:.2f}")
    print("SUMMARY ftp/pyftpdlib: " + ", ".join(summary))
    if "before" in servers:
        print(f"\nthis build / the one in {before_bin()} (same run):")
        for test in tests:
            ps = statistics.median(results[test]["portsuite"])
            old = statistics.median(results[test]["before"])
            cps = statistics.median(cpu[test]["portsuite"])
            cold = statistics.median(cpu[test]["before"])
            print(
                f"{test:34} {ps:10.1f} {old:10.1f} {ps / old:6.2f}x   "
                f"server cpu s {cps:.2f} / {cold:.2f}"
            )


if __name__ == "__main__":
    main()
