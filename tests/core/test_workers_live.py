"""
Live control of a service with workers = N, on a real twistd with real sockets and the
real CLI: disable/enable/reload/status act on the whole service (every worker process),
status shows the open connections summed over the workers.
"""

from __future__ import annotations

import subprocess as sp
import time
from pathlib import Path

import pytest
from livehelp import Talker, ctl, refused, start, tcp_port, write

from portsuite.testing import wait_for


def _workers(pid: int) -> set[int]:
    out = sp.run(["pgrep", "-P", str(pid), "-f", "portsuite.workerproc"], capture_output=True)
    return {int(x) for x in out.stdout.split()}


def _row(s, name: str) -> str:  # type: ignore[no-untyped-def]
    r = ctl(s, "status")
    assert r.returncode == 0, r.stderr
    return next(line for line in r.stdout.splitlines() if line.startswith(f"{name} "))


def _open_in_row(row: str) -> int:
    return int(row.split()[-2])  # SERVICE TYPE STATE (N workers) LISTENING OPEN FAULTS


CONFIG = {"services": {"e": {"type": "echo", "port": 0, "workers": 2}}}


@pytest.fixture
def suite(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = start(tmp_path, CONFIG)
    assert wait_for(lambda: len(_workers(s.pid)) == 2, timeout=30), s.log()
    yield s
    s.stop()


def test_disable_enable_and_status_act_on_every_worker(suite) -> None:
    port = tcp_port(suite, "e")
    pids = _workers(suite.pid)
    # enough clients that both workers hold some (the kernel spreads them)
    clients = [Talker(port) for _ in range(8)]
    assert all(c.say(f"hi {i}") == f"hi {i}" for i, c in enumerate(clients))
    assert wait_for(lambda: _open_in_row(_row(suite, "e")) == 8, timeout=20)
    assert "listening (2 workers)" in _row(suite, "e")

    r = ctl(suite, "disable", "e")
    assert r.returncode == 0 and "e: disabled" in r.stdout, r.stderr
    # no worker accepts any more: the port is closed for good, not queueing
    for _ in range(5):
        assert refused(port)
    # the open connections go on, in whichever worker holds them
    assert all(c.say(f"still {i}") == f"still {i}" for i, c in enumerate(clients))
    assert _workers(suite.pid) == pids  # the same processes, nothing restarted
    row = _row(suite, "e")
    assert "disabled" in row and _open_in_row(row) == 8

    r = ctl(suite, "enable", "e")
    assert r.returncode == 0 and f"127.0.0.1:{port}" in r.stdout, r.stderr
    fresh = [Talker(port) for _ in range(8)]
    assert all(c.say(f"back {i}") == f"back {i}" for i, c in enumerate(fresh))
    assert _workers(suite.pid) == pids
    # served by the workers, not by the suite's own process: their log lines say so
    assert wait_for(lambda: _open_in_row(_row(suite, "e")) == 16, timeout=20)
    log = suite.log()
    tail = log[log.rindex("enabled on") :]
    assert "connected" in tail and "(worker " in tail
    assert all("(worker " in line for line in tail.splitlines() if "connected (" in line), tail
    for c in clients + fresh:
        c.close()
    assert wait_for(lambda: _open_in_row(_row(suite, "e")) == 0, timeout=20)


def test_a_worker_started_again_while_disabled_accepts_nothing(suite) -> None:
    import os
    import signal

    port = tcp_port(suite, "e")
    assert ctl(suite, "disable", "e").returncode == 0
    victim = sorted(_workers(suite.pid))[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: len(w := _workers(suite.pid)) == 2 and victim not in w, timeout=30)
    assert refused(port)
    assert ctl(suite, "enable", "e").returncode == 0
    # both workers, the new one included, accept again
    talkers = [Talker(port) for _ in range(6)]
    assert all(t.say("x") == "x" for t in talkers)
    for t in talkers:
        t.close()


def test_reload_replaces_every_worker_and_lets_open_connections_finish(suite) -> None:
    port = tcp_port(suite, "e")
    old = _workers(suite.pid)
    held = Talker(port)
    assert held.say("before") == "before"
    # the suite knows of it once its worker has reported (within a second, slower when busy)
    assert wait_for(lambda: _open_in_row(_row(suite, "e")) == 1, timeout=20)
    write(
        suite.config_path,
        {"services": {"e": {"type": "echo", "port": port, "workers": 3, "idle_timeout": 600}}},
    )
    r = ctl(suite, "reload", "--grace", "5")
    assert r.returncode == 0, r.stderr
    assert "e: restarted, listening on tcp 127.0.0.1:" in r.stdout
    assert "1 open connection(s) of the old one get 5s to finish" in r.stdout
    # the old client finishes its exchange with its old worker
    assert held.say("still") == "still"
    # the new service's three workers take new clients at once
    assert wait_for(lambda: len(_workers(suite.pid) - old) == 3, timeout=30), suite.log()
    new = [Talker(port) for _ in range(6)]
    assert all(t.say("new") == "new" for t in new)
    # then is closed after the grace, with its worker
    assert held.closed(within=30)
    assert wait_for(lambda: not (_workers(suite.pid) & old), timeout=30), suite.log()
    assert "listening (3 workers)" in _row(suite, "e")
    for t in new:
        assert t.say("after") == "after"
        t.close()


def test_status_sums_open_connections_across_workers(suite) -> None:
    port = tcp_port(suite, "e")
    talkers = [Talker(port) for _ in range(10)]
    assert all(t.say("x") == "x" for t in talkers)
    assert wait_for(lambda: _open_in_row(_row(suite, "e")) == 10, timeout=20)
    for t in talkers[:4]:
        t.close()
    assert wait_for(lambda: _open_in_row(_row(suite, "e")) == 6, timeout=20)
    time.sleep(0.1)
    for t in talkers[4:]:
        t.close()


def test_faults_set_live_reach_every_worker(suite) -> None:
    port = tcp_port(suite, "e")
    r = ctl(suite, "fault", "e", "latency=500ms")
    assert r.returncode == 0, r.stderr
    time.sleep(1)  # (the order travels to the workers over their sockets)
    # whichever worker takes them: every new connection's replies are late
    talkers = [Talker(port) for _ in range(6)]
    for t in talkers:
        start = time.monotonic()
        assert t.say("slow") == "slow"
        assert time.monotonic() - start >= 0.45
        t.close()
    assert ctl(suite, "fault", "e", "clear").returncode == 0
    t = Talker(port)
    assert t.say("back") == "back"
    t.close()
