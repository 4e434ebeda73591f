"""
workers = N: real twistd, real curl and sockets. N processes accept on one port, the
suite shows one service (counters summed), max_connections holds for the whole
service, a killed worker comes back, stateful types refuse workers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess as sp
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portsuite import loader
from portsuite.api import ConfigError
from portsuite.testing import need, suite_running, wait_for

BODY = b"x" * 1024


def _errors(services: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader.from_dict({"services": services}, base_dir=tmp_path, label="lab.toml")
    return info.value.errors


def test_stateful_types_refuse_workers_and_say_what_to_use(tmp_path: Path) -> None:
    (kv,) = _errors({"kv": {"type": "kv", "port": 0, "workers": 2}}, tmp_path)
    assert kv.startswith("lab.toml: [services.kv] workers: ")
    assert "shared by all its clients" in kv and "Redis/Valkey" in kv
    (smtp,) = _errors({"m": {"type": "smtp", "port": 0, "workers": 4}}, tmp_path)
    assert "[services.m] workers" in smtp and "remove workers" in smtp
    assert "\n" not in kv + smtp


def test_workers_must_be_a_small_positive_integer(tmp_path: Path) -> None:
    for bad in (0, -1, "2", True, 1000):
        (line,) = _errors({"e": {"type": "echo", "port": 0, "workers": bad}}, tmp_path)
        assert "[services.e] workers: " in line and "integer 1-64" in line
    cfg = loader.from_dict(
        {"services": {"e": {"type": "echo", "port": 0, "workers": 3}}}, base_dir=tmp_path
    )
    assert cfg.service("e").workers == 3


def _wait(what: Callable[[], Any], timeout: float = 30.0) -> Any:
    value = wait_for(what, timeout)
    assert value, f"not reached in {timeout}s: {what}"
    return value


def _workers(pid: int) -> set[int]:
    out = sp.run(["pgrep", "-P", str(pid), "-f", "portsuite.workerproc"], capture_output=True)
    return {int(x) for x in out.stdout.split()}


def _service(port: int, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/_portsuite/api/services", timeout=10
    ) as r:
        snap = json.load(r)
    return next(s for s in snap["services"] if s["name"] == name)


def _curl(port: int, count: int) -> list[str]:
    urls = [a for _ in range(count) for a in ("-o", "/dev/null", f"http://127.0.0.1:{port}/1k.txt")]
    out = sp.run(
        [
            need("curl"),
            "-s",
            "-H",
            "Connection: close",
            "-w",
            "%{http_code}\\n",
            "--max-time",
            "20",
            *urls,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout.split()


def test_http_with_two_workers_serves_counts_as_one_and_survives_a_killed_worker(
    tmp_path: Path,
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "1k.txt").write_bytes(BODY)
    config = {"services": {"web": {"type": "http", "port": 0, "root": "www", "workers": 2}}}
    with suite_running(config, subprocess=True, base_dir=tmp_path) as s:
        port = s.port("web")
        first = _wait(lambda: len(_workers(s.pid)) == 2 and _workers(s.pid))
        assert _curl(port, 60) == ["200"] * 60
        # counters of both workers, summed: reports arrive within a second, and the worker
        # that answers the dashboard sees the sums once the suite has mirrored them to it
        svc = _wait(
            lambda: (
                (v := _service(port, "web"))["connections"]["total"] >= 60
                and v["workers"] == 2
                and v
            )
        )
        assert svc["bytes_out"] >= 60 * 1024
        log = s.log()
        assert "(worker 1)" in log and "(worker 2)" in log  # both started and logging
        # a worker killed outright is started again; the service never stops answering
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        again = _wait(lambda: len(w := _workers(s.pid)) == 2 and victim not in w and w)
        assert victim not in again
        assert _curl(port, 20) == ["200"] * 20
        # the dead worker's requests stay in the totals
        _wait(lambda: _service(port, "web")["connections"]["total"] >= 80)
        assert "ended" in s.log() and "starting it again" in s.log()
    assert s.proc.returncode in (0, -signal.SIGTERM)
    _wait(lambda: not _workers(s.pid), timeout=10)
    for pid in first | again:
        assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()


def _echo(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A client of the echo service from address C{source}: its socket and the echo."""
    c = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    c.sendall(b"ping\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = c.recv(200)
        if not chunk:
            break
        data += chunk
    return c, data


def test_max_connections_holds_across_workers(tmp_path: Path) -> None:
    config = {
        "services": {
            "echo": {"type": "echo", "port": 0, "workers": 2, "max_connections": 3},
            "web": {"type": "http", "port": 0, "root": "."},
        }
    }
    with suite_running(config, subprocess=True, base_dir=tmp_path) as s:
        port = s.port("echo")
        _wait(lambda: len(_workers(s.pid)) == 2)
        held = []
        for _ in range(3):
            c, data = _echo(port)
            assert data == b"ping\n"
            held.append(c)
        for _ in range(4):  # whichever worker takes them: refused
            c, data = _echo(port)
            assert data == b"portsuite: too many connections (max_connections = 3)\r\n"
            c.close()
        svc = _wait(
            lambda: (v := _service(s.port("web"), "echo"))["connections"]["refused"] >= 4 and v
        )
        assert svc["connections"]["open"] == 3
        assert len(svc["clients"]) == 3
        held.pop().close()
        # the place freed in one worker is free for the whole service
        c, data = _wait(lambda: (r := _echo(port))[1] == b"ping\n" and r)
        c.close()
        for c in held:
            c.close()


def test_workers_need_a_config_file_and_say_so(tmp_path: Path) -> None:
    from portsuite.api import StartupError
    from portsuite.suite import Suite
    from portsuite.testing import MemoryReactor

    cfg = loader.from_dict(
        {"services": {"e": {"type": "echo", "port": 0, "workers": 2}}}, base_dir=tmp_path
    )
    suite = Suite(cfg, reactor=MemoryReactor())
    with pytest.raises(StartupError) as info:
        suite.listen()
    assert "[services.e] workers" in str(info.value) and "-c FILE" in str(info.value)
    assert suite.stats["e"].listeners == []


def test_shared_count_per_host_over_workers_and_a_dead_workers_share() -> None:
    """Two workers' views of one shared table: the host's total is over both."""
    from portsuite.workers import SharedCount

    parent = SharedCount.create("t")
    try:
        w1 = SharedCount(parent.fd, 0, 10, per_host=3)
        w2 = SharedCount(parent.fd, 1, 10, per_host=3)
        assert w1.take("10.0.0.1") is None and w2.take("10.0.0.1") is None
        assert w1.take("10.0.0.1") is None
        assert w2.take("10.0.0.1") == "host"  # 3 open over both workers
        assert w2.take("10.0.0.2") is None  # another host is not counted with it
        assert parent.host_count("10.0.0.1") == 3 and parent.total() == 4
        w1.give("10.0.0.1")
        assert w2.take("10.0.0.1") is None  # the place freed in worker 1 is free for 2
        parent.reset(0)  # worker 1 died: only its connections go
        assert parent.host_count("10.0.0.1") == 2 and parent.total() == 3
        for _ in range(7):
            assert w2.take(None) is None
        assert w1.take("10.0.0.3") == "total"  # max_connections = 10 over both
        w1.map.close()
        w2.map.close()
    finally:
        parent.close()


def test_shared_count_reuses_places_and_stays_bounded() -> None:
    from portsuite.workers import HOSTS, SharedCount

    parent = SharedCount.create("t")
    try:
        w = SharedCount(parent.fd, 0, None, per_host=1)
        for i in range(3 * HOSTS):  # hosts come and go: the table never fills up
            host = f"10.1.{i // 256}.{i % 256}"
            assert w.take(host) is None
            assert w.take(host) == "host"
            w.give(host)
        held = [f"10.2.{i // 256}.{i % 256}" for i in range(HOSTS + 5)]
        for host in held:  # more hosts at once than places: admitted, logged once
            assert w.take(host) is None
        assert w.full_logged
        w.map.close()
    finally:
        parent.close()


def _holders(log: str) -> list[int]:
    """The worker (1, 2…) of each connection accepted, in order, from the suite's log."""
    return [int(n) for n in re.findall(r"connected \(\d+ open\) \(worker (\d+)\)", log)]


def _worker_pids(log: str) -> dict[int, int]:
    return {int(n): int(p) for n, p in re.findall(r"worker (\d+) started \(pid (\d+)\)", log)}


def test_max_per_host_holds_across_workers(tmp_path: Path) -> None:
    config = {
        "services": {
            "echo": {"type": "echo", "port": 0, "workers": 2, "max_per_host": 2},
            "web": {"type": "http", "port": 0, "root": "."},
        }
    }
    with suite_running(config, subprocess=True, base_dir=tmp_path) as s:
        port = s.port("echo")
        _wait(lambda: len(_workers(s.pid)) == 2)
        held = []
        for _ in range(2):
            c, data = _echo(port)
            assert data == b"ping\n"
            held.append(c)
        refusal = b"portsuite: too many connections from 127.0.0.1 (max_per_host = 2)\r\n"
        # which workers hold the two? If one holds both, it is stopped for a moment so
        # that the other, which holds none, takes the next one: refused all the same
        holders = _wait(lambda: len(h := _holders(s.log())) == 2 and h)
        stopped = None
        if holders[0] == holders[1]:
            stopped = _worker_pids(s.log())[holders[0]]
            os.kill(stopped, signal.SIGSTOP)
        try:
            c, data = _echo(port)
            assert data == refusal
            c.close()
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGCONT)
        for _ in range(5):  # whichever worker takes them: refused
            c, data = _echo(port)
            assert data == refusal
            c.close()
        # another host of the loopback range has its own two
        other = [_echo(port, "127.0.0.2") for _ in range(2)]
        assert [d for _, d in other] == [b"ping\n", b"ping\n"]
        # each worker reports on its own: both must have reported all of the above
        _wait(
            lambda: (
                (c := _service(s.port("web"), "echo")["connections"])["refused"] >= 6
                and c["open"] == 4
            )
        )
        held.pop().close()
        # the place freed in one worker is free in both
        c, data = _wait(lambda: (r := _echo(port))[1] == b"ping\n" and r)
        c.close()
        for c in held + [c for c, _ in other]:
            c.close()
