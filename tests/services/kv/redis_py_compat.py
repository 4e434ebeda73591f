#!/usr/bin/env python3
"""
kv measured with redis-py's own test suite, against redis-server in the same run.

Downloads the sdist of the installed redis-py (it ships tests/, conftest unmodified),
starts a redis-server 7 and a portsuite kv (twistd) on free ports, and runs
tests/test_commands.py, test_pipeline.py and test_pubsub.py with redis-py's
standalone selection, RESP2 then RESP3, against each. Prints the pass counts and
kv / redis-server; with --failures, the tests redis-server passes and kv does not.

    .venv/bin/python tests/services/kv/redis_py_compat.py [--failures] [--protocol 2]

Exit status 0 when kv passes at least 90% of what redis-server passes, for every
protocol run. Takes a few minutes (redis-py's suite sleeps in places).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

from portsuite.testing import free_port, wait_listening

FILES = ["tests/test_commands.py", "tests/test_pipeline.py", "tests/test_pubsub.py"]
MARKS = "not onlycluster and not redismod and not ssl and not replica"
TARGET = 0.9
PY = sys.executable
TWISTD = str(Path(PY).parent / "twistd")


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the server started as C{proc} answers on C{port}: its own INFO says
    its pid (on a busy machine another program may have taken the port in between)."""

    def answers_as_proc(s: socket.socket) -> bool:
        s.sendall(b"INFO server\r\n")
        info = b""
        while b"\r\n\r\n" not in info[-4:] and len(info) < 65536:
            chunk = s.recv(65536)
            if not chunk:
                break
            info += chunk
        if b"process_id:%d\r\n" % proc.pid in info:
            return True
        raise SystemExit(f"another program answers on {port}: try again")

    wait_listening(port, proc, probe=answers_as_proc)


def sdist(cache: Path) -> Path:
    """redis-py's sdist of the installed version, unpacked (cached)."""
    ver = version("redis")
    root = cache / f"redis-{ver}"
    if (root / "tests" / "conftest.py").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [PY, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps"]
        + [f"redis=={ver}", "-d", str(cache)],
        check=True,
    )
    with tarfile.open(cache / f"redis-{ver}.tar.gz") as tar:
        tar.extractall(cache, filter="data")
    return root


def start(kind: str, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    if kind == "redis-server":
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(tmp)]
    else:
        cfg = tmp / "kv.toml"
        cfg.write_text(f'[services.kv]\ntype = "kv"\nport = {port}\n')
        cmd = [TWISTD, "-n", "--pidfile=", "--logfile", str(tmp / "kv.log")]
        cmd += ["portsuite", "-c", str(cfg)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_port(port, proc)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run_suite(root: Path, port: int, protocol: int, xml: Path) -> dict[str, str]:
    """{test id: passed | failed | skipped}."""
    with open(xml.with_suffix(".log"), "wb") as log:
        _pytest(root, port, protocol, xml, log)
    return _parse(xml)


def _pytest(root: Path, port: int, protocol: int, xml: Path, log: Any) -> None:
    subprocess.run(
        [PY, "-m", "pytest", *FILES, f"--redis-url=redis://127.0.0.1:{port}/0"]
        + [f"--protocol={protocol}", "-m", MARKS, "-q", "-p", "no:cacheprovider"]
        + ["--timeout=120", "--tb=no", "--durations=15", f"--junitxml={xml}"],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=3600,
    )


def _parse(xml: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if not xml.exists():  # pytest-timeout ended that run (a busy machine): say so
        print(f"{xml.name}: the run did not finish (see {xml.with_suffix('.log')})")
        return out
    for case in ET.parse(xml).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out[name] = "failed"
        elif case.find("skipped") is not None:
            out[name] = "skipped"
        else:
            out[name] = "passed"
    return out


def measure(root: Path, protocol: int, tmp: Path) -> tuple[set[str], set[str]]:
    """
    redis-py's selection run against a redis-server and a kv at once: the tests each
    passes, as C{(redis-server's, kv's)}.
    """
    servers = {kind: start(kind, tmp / kind) for kind in ("redis-server", "kv")}
    try:
        with ThreadPoolExecutor(2) as pool:  # both at once: half the wall time
            futures = {
                kind: pool.submit(run_suite, root, port, protocol, tmp / f"{kind}-{protocol}.xml")
                for kind, (_, port) in servers.items()
            }
            results = {kind: f.result() for kind, f in futures.items()}
    finally:
        for proc, _ in servers.values():
            stop(proc)
    ref, ours = ({t for t, r in results[k].items() if r == "passed"} for k in servers)
    return ref, ours


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--protocol", type=int, action="append", choices=(2, 3))
    ap.add_argument("--failures", action="store_true", help="list kv's missing passes")
    ap.add_argument("--keep", type=Path, help="keep the junit XML and logs in this folder")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "portsuite-redis-py")
    args = ap.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is missing: apt-get install redis-server")
    root = sdist(args.cache)
    ok = True
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="redis-py-compat-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for protocol in args.protocol or [2, 3]:
            ref, ours = measure(root, protocol, tmp)
            ratio = len(ours) / len(ref) if ref else 0.0
            ok = ok and ratio >= TARGET
            print(
                f"RESP{protocol}: redis-server passes {len(ref)}, kv passes {len(ours)} "
                f"({len(ours & ref)} of redis-server's): kv/redis {ratio:.2f} (target {TARGET})"
            )
            if args.failures:
                for t in sorted(ref - ours):
                    print(f"  kv fails: {t}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
