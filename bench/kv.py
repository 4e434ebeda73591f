#!/usr/bin/env python3
"""
kv vs redis-server, same run: redis-benchmark -t set,get -c 50, -P 1 and -P 16.

Two setups: both memory-only, then both with an append-only file fsynced every
second (redis: appendonly yes, appendfsync everysec; kv: data = "...", fsync =
"everysec"). Servers are pinned to CPU 0 and redis-benchmark to CPU 1 when the
machine has two CPUs. Prints ops/s and the ratio kv / redis.

    .venv/bin/python bench/kv.py            # N1=50000 NP=400000 ROUNDS=2 to change
                                            # SETUPS=memory: the memory-only setup alone
    .venv/bin/python bench/kv.py --hostile  # echo round trips while kv clients attack
    .venv/bin/python bench/kv.py --memory   # bytes per small key, kv vs redis used_memory
    .venv/bin/python bench/kv.py --floors   # memory-only, beside bare RESP servers
                                            # (bench/resp_floor.py: Twisted, asyncio)

--hostile: a suite of kv + echo in twistd; one thread measures echo round trips every
few ms while hostile kv clients run (a pipeline of 2,000 GET of a 1 MiB value never
read, declared counts *4294967295 / *400000000 / *2147483647 opened and closed, a
100 MB bulk, a 1,000,000-argument request, FILL=1500000 small sets stored); prints the
worst and the 99th percentile round trip during each attack, and the server's RSS growth.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import before_bin, cpu_seconds, free_port, pin, terminate, wait_listening

N1 = int(os.environ.get("N1", "50000"))
NP = int(os.environ.get("NP", "400000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
CLIENTS = int(os.environ.get("CLIENTS", "50"))
PIPE = int(os.environ.get("PIPE", "16"))
FILL = int(os.environ.get("FILL", "1500000"))  # --hostile: small sets stored
# the setups run, in this order: SETUPS=memory leaves out the append-only one
SETUPS = tuple(os.environ.get("SETUPS", "memory,aof everysec").split(","))
TWISTD = str(Path(sys.executable).parent / "twistd")
FLOORS = ("twisted", "twisted-direct", "asyncio")  # bench/resp_floor.py


def pong(sock: socket.socket) -> bool:
    """The probe of a RESP server: PING answered +PONG."""
    sock.sendall(b"PING\r\n")
    return sock.recv(16).startswith(b"+PONG")


def start(kind: str, aof: bool, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind == "redis":
        d = tmp / "redis"
        d.mkdir(exist_ok=True)
        cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(d),
            "--appendonly",
            "yes" if aof else "no",
            "--appendfsync",
            "everysec",
            "--logfile",
            "",
        ]
    elif kind in FLOORS:
        # (-P: bench/http.py must not shadow the http package)
        cmd = [sys.executable, "-P", str(Path(__file__).parent / "resp_floor.py"), kind, str(port)]
    else:
        cfg = tmp / "kv.toml"
        data = f'data = "{tmp / "kv.aof"}"\nfsync = "everysec"\n' if aof else ""
        cfg.write_text(f'[services.kv]\ntype = "kv"\nport = {port}\n{data}')
        bindir = before_bin() if kind == "before" else None
        cmd = [
            str(bindir / "twistd") if bindir else TWISTD,
            "-n",
            "--pidfile=",
            "--logfile",
            str(tmp / "twistd.log"),
            "portsuite",
            "-c",
            str(cfg),
        ]
    proc = subprocess.Popen(
        [*pin(0), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_listening(port, proc, kind, probe=pong)
    except SystemExit:
        log = tmp / "twistd.log"
        if log.exists():  # why it did not start (a port taken in between, say)
            print(log.read_text()[-2000:], file=sys.stderr)
        raise
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    terminate(proc, group=True, timeout=20)


def bench(pid: int, port: int, pipeline: int, n: int) -> dict[str, tuple[float, float]]:
    """{test: (ops/s, server CPU microseconds per request)}."""
    out = {}
    for test in ("set", "get"):
        before = cpu_seconds(pid)
        text = subprocess.run(
            [
                *pin(1),
                "redis-benchmark",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-t",
                test,
                "-c",
                str(CLIENTS),
                "-P",
                str(pipeline),
                "-n",
                str(n),
                "--csv",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        used = cpu_seconds(pid) - before
        rows = list(csv.reader(io.StringIO(text)))
        ops = next(float(r[1]) for r in rows[1:] if r and r[0] == test.upper())
        out[test.upper()] = (ops, used / n * 1e6)
    return out


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _pinger(port: int, stop_flag: Any, mark: Any, out: Any, timeout: float = 30) -> None:
    """One echo round trip every 5 ms until told to stop; sends [(t, rtt)] back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    start_at = time.monotonic()
    samples = []
    while not stop_flag.is_set():
        t = time.perf_counter()
        s.sendall(b"x")
        s.recv(1)
        samples.append((time.monotonic() - start_at, time.perf_counter() - t))
        time.sleep(0.005)
    s.close()
    out.send(samples)


def start_pinger(echo: int) -> Callable[[], list[tuple[float, float]]]:
    """L{_pinger} in a process of its own (the load's threads must not hold its GIL),
    started half a second before this returns: call the result to stop it and get its
    samples, [(seconds since it started, round trip)]."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    stop_flag = ctx.Event()
    parent_end, child_end = ctx.Pipe()
    pinger = ctx.Process(
        target=_pinger, args=(echo, stop_flag, ctx.Value("i", 0), child_end), daemon=True
    )
    pinger.start()
    time.sleep(0.5)

    def done() -> list[tuple[float, float]]:
        stop_flag.set()
        samples: list[tuple[float, float]] = parent_end.recv()
        pinger.join(10)
        return samples

    return done


def start_kv_and_echo(
    tmp: Path, prefix: list[str], twistd: str = TWISTD, kv_options: str = ""
) -> tuple[subprocess.Popen[bytes], int, int]:
    """
    A suite of kv + echo in twistd (C{prefix}: a pinning command, or []): (proc, kv, echo).
    C{kv_options}: more lines of the kv service's table (C{data = "…"}).
    """
    kv, echo = free_port(), free_port()
    cfg = tmp / "suite.toml"
    cfg.write_text(
        f'[services.kv]\ntype = "kv"\nport = {kv}\n{kv_options}'
        f'[services.echo]\ntype = "echo"\nport = {echo}\n'
    )
    cmd = [twistd, "-n", "--pidfile=", "--logfile", str(tmp / "t.log"), "portsuite", "-c", str(cfg)]
    proc = subprocess.Popen(
        [*prefix, *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_listening(kv, proc, "kv", probe=pong)
    return proc, kv, echo


def on_each_build(
    tmp: Path, run: Callable[[int, int, int], Any], options: Callable[[str], str] = lambda _: ""
) -> dict[str, Any]:
    """
    C{run(kv port, echo port, pid)} on a suite of kv + echo (pinned to cpu 0) of each
    build: "before" (C{PORTSUITE_BEFORE_BIN}) first when given, then "now";
    C{options(label)}: lines of TOML for that build's kv.
    """
    bindir = before_bin()
    builds = [("before", str(bindir / "twistd"))] if bindir is not None else []
    builds.append(("now", TWISTD))
    results = {}
    for label, twistd in builds:
        proc, kv, echo = start_kv_and_echo(tmp, pin(0), twistd, options(label))
        try:
            results[label] = run(kv, echo, proc.pid)
        finally:
            stop(proc)
    return results


def hostile() -> None:
    import threading

    tmp = Path(tempfile.mkdtemp(prefix="kv-hostile-"))
    proc, kv, echo = start_kv_and_echo(tmp, [])
    import multiprocessing

    # the pinger is a process of its own: the attackers' threads must not hold its GIL
    ctx = multiprocessing.get_context("fork")
    stop_flag = ctx.Event()
    mark = ctx.Value("i", 0)
    parent_end, child_end = ctx.Pipe()
    pinger = ctx.Process(target=_pinger, args=(echo, stop_flag, mark, child_end), daemon=True)

    with socket.create_connection(("127.0.0.1", kv)) as s:
        s.sendall(_cmd(b"SET", b"big", b"x" * 2**20))
        s.recv(16)

    def pipeline_never_read() -> None:
        h = socket.create_connection(("127.0.0.1", kv))
        h.sendall(_cmd(b"GET", b"big") * 2000)
        time.sleep(3)
        h.close()

    def counts() -> None:
        for payload in (b"*4294967295\r\n", b"*400000000\r\n", b"*2147483647\r\n$3\r\nGET\r\n"):
            for _ in range(20):
                with socket.create_connection(("127.0.0.1", kv)) as h:
                    h.sendall(payload)
                    time.sleep(0.01)

    def big_bulk() -> None:
        with socket.create_connection(("127.0.0.1", kv)) as h:
            h.sendall(_cmd(b"SET", b"huge", b"y" * 100 * 2**20))
            h.recv(16)
            h.sendall(_cmd(b"GET", b"huge"))  # and the reply back
            got = 0
            while got < 100 * 2**20 + 14:
                got += len(h.recv(1 << 20))
            h.sendall(_cmd(b"DEL", b"huge"))
            h.recv(16)

    def many_args() -> None:
        with socket.create_connection(("127.0.0.1", kv)) as h:
            h.sendall(b"*1000001\r\n$4\r\nSADD\r\n" + b"$1\r\nx\r\n" * 1000000)
            time.sleep(1)  # (the key name is "x"; one request)
            h.sendall(_cmd(b"DEL", b"x"))
            h.recv(16)

    def fill_sets() -> None:
        # many small containers: what a full garbage collection has to visit
        # (portsuite.gcpause); FILL=0 leaves this attack out
        with socket.create_connection(("127.0.0.1", kv)) as h:
            batch = 10000
            for i in range(0, FILL, batch):
                h.sendall(b"".join(_cmd(b"SADD", b"s:%d" % j, b"m") for j in range(i, i + batch)))
                got = 0
                while got < batch:
                    got += h.recv(1 << 20).count(b"\r\n")
            h.sendall(_cmd(b"FLUSHALL"))
            h.recv(16)

    pinger.start()
    time.sleep(1)
    t0 = time.monotonic()
    print(f"{'attack':28} {'echo rtt max ms':>16} {'p99 ms':>7} {'rss growth MiB':>15}")
    rows = []
    for name, attack in (
        ("pipeline 2000 x GET 1MiB", pipeline_never_read),
        ("declared counts x60", counts),
        ("SET+GET of a 100 MB value", big_bulk),
        ("1,000,000 arguments", many_args),
        (f"{FILL:,} small sets stored", fill_sets),
    ):
        if attack is fill_sets and not FILL:
            continue
        rss0 = _rss(proc.pid)
        peak = rss0
        begin = time.monotonic()
        t = threading.Thread(target=attack)
        t.start()
        while t.is_alive():
            peak = max(peak, _rss(proc.pid))
            time.sleep(0.02)
        time.sleep(0.3)
        rows.append((name, begin - t0, time.monotonic() - t0, (peak - rss0) // 2**20))
    stop_flag.set()
    samples = parent_end.recv()  # [(when since start, rtt)]
    pinger.join(10)
    base = [r for w, r in samples if w < 1]
    rows.insert(0, ("(none: baseline)", -1.0, 1.0, 0))
    for name, a, b, grown in rows:
        # (the pinger started about 1 s before t0)
        during = [r for w, r in samples if a <= w - 1 <= b] if a >= 0 else base
        q = statistics.quantiles(during, n=100)[98] * 1000 if len(during) > 2 else 0
        print(f"{name:28} {max(during) * 1000:16.1f} {q:7.1f} {grown:15}")
    stop(proc)
    shutil.rmtree(tmp, ignore_errors=True)


def memory(n: int = 1_000_000) -> None:
    """Bytes per small key (SET key:N value-of-8-bytes), kv's RSS vs redis's used_memory."""
    print(f"{n} keys of ~10 bytes with 8-byte values")
    for kind in ("redis", "kv"):
        tmp = Path(tempfile.mkdtemp(prefix="kv-mem-"))
        proc, port = start(kind, False, tmp)
        try:
            with socket.create_connection(("127.0.0.1", port)) as s:

                def info() -> int:
                    s.sendall(_cmd(b"INFO", b"memory"))
                    data = b""
                    while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
                        data += s.recv(65536)
                    for line in data.split(b"\r\n"):
                        if line.startswith(b"used_memory:"):
                            return int(line.split(b":")[1])
                    return 0

                before, rss0 = info(), _rss(proc.pid)
                batch = 10000
                for i in range(0, n, batch):
                    s.sendall(
                        b"".join(
                            _cmd(b"SET", b"key:%d" % j, b"v%07d" % j) for j in range(i, i + batch)
                        )
                    )
                    got = 0
                    while got < batch:
                        got += s.recv(1 << 20).count(b"+OK")
                after, rss1 = info(), _rss(proc.pid)
            print(
                f"{kind:6} used_memory {(after - before) / n:6.1f} B/key   "
                f"RSS {(rss1 - rss0) / n:6.1f} B/key"
            )
        finally:
            stop(proc)
            shutil.rmtree(tmp, ignore_errors=True)


def floors() -> None:
    """Memory-only: redis, the bare RESP floors and kv (and before), CPU per request."""
    kinds = ("redis", *FLOORS, "kv") + (("before",) if before_bin() else ())
    results: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for r in range(ROUNDS):
        for kind in kinds:
            tmp = Path(tempfile.mkdtemp(prefix="kv-bench-"))
            proc, port = start(kind, False, tmp)
            try:
                for pipeline, n in ((1, N1), (PIPE, NP)):
                    for test, got in bench(proc.pid, port, pipeline, n).items():
                        results.setdefault((kind, pipeline, test), []).append(got)
                print(f"  round {r + 1} {kind} done", file=sys.stderr)
            finally:
                stop(proc)
                shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nredis-benchmark -c {CLIENTS}, memory-only, medians of {ROUNDS} round(s): "
        f"ops/s as x redis, then server CPU us per request"
    )
    print(f"{'test':4} {'-P':>3} " + " ".join(f"{k:>16}" for k in kinds))
    for pipeline in (1, PIPE):
        for test in ("SET", "GET"):
            r_ops = statistics.median(x[0] for x in results[("redis", pipeline, test)])
            cells = []
            for kind in kinds:
                got = results[(kind, pipeline, test)]
                ops = statistics.median(x[0] for x in got)
                cpu = statistics.median(x[1] for x in got)
                cells.append(f"{ops / r_ops:5.2f}x {cpu:6.2f}us")
            print(f"{test:4} {pipeline:>3} " + " ".join(f"{c:>16}" for c in cells))


def main() -> None:
    if "--hostile" in sys.argv:
        return hostile()
    if "--memory" in sys.argv:
        return memory()
    if "--floors" in sys.argv:
        return floors()
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install redis-server redis-tools")
    results: dict[tuple[str, str, int, str], list[tuple[float, float]]] = {}
    for setup in SETUPS:
        for r in range(ROUNDS):
            for kind in ("redis", "kv") + (("before",) if before_bin() else ()):
                tmp = Path(tempfile.mkdtemp(prefix="kv-bench-"))
                proc, port = start(kind, setup != "memory", tmp)
                try:
                    for pipeline, n in ((1, N1), (PIPE, NP)):
                        for test, got in bench(proc.pid, port, pipeline, n).items():
                            results.setdefault((setup, kind, pipeline, test), []).append(got)
                        print(
                            f"  {setup:12} round {r + 1} {kind:5} -P {pipeline:<2} done",
                            file=sys.stderr,
                        )
                finally:
                    stop(proc)
                    shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nredis-benchmark -c {CLIENTS}, medians of {ROUNDS} round(s); servers on cpu 0, "
        f"client on cpu 1.\ncpu us/req = server CPU time per request: the fair figure when "
        f"the machine is busy or the client is the limit"
    )
    print(
        f"{'setup':13} {'test':4} {'-P':>3} {'redis ops/s':>12} {'kv ops/s':>10} "
        f"{'kv/redis':>9} {'target':>7} {'redis cpu us/req':>17} {'kv cpu us/req':>14} "
        f"{'redis/kv cpu':>13}"
    )
    for setup in SETUPS:
        for pipeline in (1, PIPE):
            for test in ("SET", "GET"):
                ref = results[(setup, "redis", pipeline, test)]
                ours = results[(setup, "kv", pipeline, test)]
                r_ops = statistics.median(x[0] for x in ref)
                k_ops = statistics.median(x[0] for x in ours)
                r_cpu = statistics.median(x[1] for x in ref)
                k_cpu = statistics.median(x[1] for x in ours)
                target = 0.9 if pipeline == 1 else 0.45  # (issue 19)
                print(
                    f"{setup:13} {test:4} {pipeline:>3} {r_ops:12.0f} {k_ops:10.0f} "
                    f"{k_ops / r_ops:9.2f} {target:7.1f} {r_cpu:17.2f} {k_cpu:14.2f} "
                    f"{r_cpu / k_cpu if k_cpu else 0:13.2f}"
                )
    if before_bin():
        print(f"\nkv now against kv before ({before_bin()}/twistd), same rounds:")
        print(
            f"{'setup':13} {'test':4} {'-P':>3} {'before ops/s':>13} {'now ops/s':>10} "
            f"{'now/before':>11} {'before/redis':>13} {'before cpu/now cpu':>19}  now/before by round"
        )
        for setup in SETUPS:
            for pipeline in (1, PIPE):
                for test in ("SET", "GET"):
                    old = results[(setup, "before", pipeline, test)]
                    new = results[(setup, "kv", pipeline, test)]
                    ref = results[(setup, "redis", pipeline, test)]
                    o_ops = statistics.median(x[0] for x in old)
                    n_ops = statistics.median(x[0] for x in new)
                    r_ops = statistics.median(x[0] for x in ref)
                    o_cpu = statistics.median(x[1] for x in old)
                    n_cpu = statistics.median(x[1] for x in new)
                    print(
                        f"{setup:13} {test:4} {pipeline:>3} {o_ops:13.0f} {n_ops:10.0f} "
                        f"{n_ops / o_ops:11.2f} {o_ops / r_ops:13.2f} "
                        f"{o_cpu / n_cpu if n_cpu else 0:19.2f}  "
                        + " ".join(f"{b[0] / a[0]:.2f}" for a, b in zip(old, new, strict=False))
                    )


if __name__ == "__main__":
    main()
