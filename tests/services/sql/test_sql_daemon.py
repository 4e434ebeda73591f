"""sql under `twistd portsuite` as a daemon: the worker threads live in the forked process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pymysql
import pytest

from portsuite.testing import free_port, twistd_command

pytestmark = pytest.mark.e2e


def test_a_daemon_answers_queries(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "lab.toml"
    config.write_text(
        f'[users]\nalice = "wonderland"\n[services.sql]\ntype = "sql"\nport = {port}\n'
        f'data = "{tmp_path / "sql"}"\n'
    )
    pidfile = tmp_path / "twistd.pid"
    cmd = [*twistd_command(), f"--pidfile={pidfile}", "-l", str(tmp_path / "log"), "portsuite"]
    subprocess.run([*cmd, "-c", str(config)], check=True, timeout=120, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pymysql.connect(
                    host="127.0.0.1", port=port, user="alice", password="wonderland",
                    connect_timeout=5, read_timeout=30,
                )  # fmt: skip
                break
            except pymysql.err.OperationalError:
                assert time.monotonic() < deadline, (tmp_path / "log").read_text()[-2000:]
                time.sleep(0.3)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE shop")
            cur.execute("USE shop")
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(20))")
            cur.execute("INSERT INTO t (name) VALUES ('café')")
            cur.execute("SELECT id, name FROM t")
            assert cur.fetchall() == ((1, "café"),)
        conn.close()
    finally:
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
