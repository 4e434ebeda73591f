#!/usr/bin/env python3
"""
kv's request path in instructions (callgrind), beside the bare RESP floor of
bench/resp_floor.py: what one SET / GET costs in KVProtocol.dataReceived (parse,
dispatch, reply) on a fake transport, alone and in a pipeline of 16, without the
reactor and the sockets; then the same in a database of 100,000 keys ("big": a
sharded keyspace, see services/kv/sharded.py); then SADD, HSET and ZADD of a member
already in a small set, hash and sorted set (the container path). Instruction counts do not move with the load of a shared
machine, so small changes show; they are not time (C string scans, syscalls).

    .venv/bin/python bench/kv_callgrind.py          # N=2000 to change
    PORTSUITE_BEFORE_BIN=/tmp/before/.venv/bin .venv/bin/python bench/kv_callgrind.py

Each case runs N and then 2N times with the instrumentation on (callgrind_control);
the difference over N is the figure: the setup and the toggling cancel out.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

N = int(os.environ.get("N", "2000"))
BIG = 100_000  # keys of the "big" cases' database
CASES = ("SET", "GET", "SET x16", "GET x16", "SET big", "GET big", "SET x16 big", "GET x16 big")
# commands of a few keys or arguments (their many-argument forms run in slices): the
# floor answers them with an error, only kv's figure and now/before mean something
FEW = ("MGET 3", "MSET 2", "EXISTS 2", "DEL 2", "SADD 3", "HMGET 3")
CASES += ("SADD", "HSET", "ZADD")  # (a small set, hash, sorted set: a member set again)
HERE = Path(__file__).resolve().parent


def _cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def inner() -> None:
    """Under callgrind: the cases, each dumped twice (N, then 2N runs)."""
    import time

    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock

    from portsuite_services.kv.server import KVServer, Settings

    sys.path.append(str(HERE))  # (appended: bench/http.py must not shadow http)
    from resp_floor import Floor

    class Transport:
        disconnecting = False

        def write(self, data: bytes) -> None:
            pass

        def getPeer(self) -> IPv4Address:
            return IPv4Address("TCP", "127.0.0.1", 5555)

        getHost = getPeer

        def registerProducer(self, producer: object, streaming: bool) -> None:
            pass

    clock = Clock()
    clock.seconds = time.time  # type: ignore[method-assign]
    kv = KVServer(Settings(), clock).buildProtocol(None)
    kv.makeConnection(Transport())
    # a database of BIG keys (sharded past 65,536 since services/kv/sharded.py; its
    # old dict moved into the shards, as the cron does)
    big = KVServer(Settings(), clock)
    for i in range(BIG):
        big.store.set(b"key:%d" % i, b"xxx")
    getattr(big.store, "rehash", lambda n: 0)(BIG)
    kv_big = big.buildProtocol(None)
    kv_big.makeConnection(Transport())
    floor = Floor({})
    set_ = _cmd(b"SET", b"key:__rand_int__", b"xxx")
    get = _cmd(b"GET", b"key:__rand_int__")
    done = []
    for name, data, per, proto in (
        ("SET", set_, 1, kv),
        ("GET", get, 1, kv),
        ("SET x16", set_ * 16, 16, kv),
        ("GET x16", get * 16, 16, kv),
        ("SET big", set_, 1, kv_big),
        ("GET big", get, 1, kv_big),
        ("SET x16 big", set_ * 16, 16, kv_big),
        ("GET x16 big", get * 16, 16, kv_big),
        ("MGET 3", _cmd(b"MGET", b"key:1", b"key:2", b"key:3"), 1, kv_big),
        ("MSET 2", _cmd(b"MSET", b"key:1", b"xxx", b"key:2", b"xxx"), 1, kv_big),
        ("EXISTS 2", _cmd(b"EXISTS", b"key:1", b"nokey"), 1, kv_big),
        ("DEL 2", _cmd(b"DEL", b"nokey", b"nokey2"), 1, kv_big),
        ("SADD 3", _cmd(b"SADD", b"s", b"a", b"b", b"c"), 1, kv),
        ("HMGET 3", _cmd(b"HMGET", b"h", b"a", b"b", b"c"), 1, kv),
        ("SADD", _cmd(b"SADD", b"set:small", b"member:1"), 1, kv),
        ("HSET", _cmd(b"HSET", b"hash:small", b"field:1", b"xxx"), 1, kv),
        ("ZADD", _cmd(b"ZADD", b"zset:small", b"1", b"member:1"), 1, kv),
    ):
        for who, run in (("kv", proto.dataReceived), ("floor", floor.replies)):
            n = N // per
            for _ in range(100):
                run(data)
            for k in (1, 2):
                _control("-i", "on")
                for _ in range(k * n):
                    run(data)
                _control("-d", f"{who}-{name}-{k}".replace(" ", "_"))
                _control("-i", "off")
            done.append((who, name, n * per))
    print(repr(done))


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True, capture_output=True)


def measure(python: str) -> dict[tuple[str, str], float]:
    """{(who, case): instructions per command} for one build's python."""
    tmp = Path(tempfile.mkdtemp(prefix="kv-callgrind-"))
    try:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={tmp / 'cg.out'}",
                python,
                "-P",
                str(Path(__file__).resolve()),
                "--inner",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cases = ast.literal_eval(out.strip().splitlines()[-1])

        def total(part: int) -> int:
            for line in (tmp / f"cg.out.{part}").read_text(errors="replace").splitlines():
                if line.startswith("totals:"):
                    return int(line.split()[1])
            raise SystemExit(f"no totals in dump {part}")

        return {
            (who, name): (total(2 * i + 2) - total(2 * i + 1)) / n
            for i, (who, name, n) in enumerate(cases)
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    if "--inner" in sys.argv:
        return inner()
    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install valgrind")
    now = measure(sys.executable)
    before_dir = os.environ.get("PORTSUITE_BEFORE_BIN")
    before = measure(str(Path(before_dir) / "python")) if before_dir else None
    print(f"instructions per command, KVProtocol.dataReceived on a fake transport, N={N}")
    head = f"{'case':12} {'kv':>8}" + (f" {'before':>8} {'now/before':>10}" if before else "")
    print(head + f" {'floor':>8} {'kv/floor':>8}")
    for case in CASES + FEW:
        kv, floor = now[("kv", case)], now[("floor", case)]
        row = f"{case:12} {kv:8.0f}"
        if before:
            row += f" {before[('kv', case)]:8.0f} {kv / before[('kv', case)]:10.2f}"
        print(row + f" {floor:8.0f} {kv / floor:8.2f}")


if __name__ == "__main__":
    main()
