"""Shared fixtures of the sql tests: portsuite's sql service and a real MariaDB, side by side."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portsuite.api import hash_password
from portsuite.testing import free_port, need, suite_running, wait_listening

BOB_PASSWORD = "b0b-secret"


@pytest.fixture(scope="session")
def sql_port() -> Iterator[int]:
    """portsuite's sql service, memory only, open to any user name (no [users])."""
    with suite_running({"services": {"sql": {"type": "sql", "port": 0}}}) as s:
        yield s.port("sql")


@pytest.fixture(scope="session")
def sql_auth_port() -> Iterator[int]:
    """sql with accounts: alice has a clear password, bob a bcrypt hash."""
    config = {
        "users": {"alice": "wonderland", "bob": hash_password(BOB_PASSWORD)},
        "services": {"sql": {"type": "sql", "port": 0}},
    }
    with suite_running(config) as s:
        yield s.port("sql")


@pytest.fixture(scope="session")
def mariadb_port() -> Iterator[int]:
    """A real MariaDB server (Debian's mariadb-server) on a scratch data folder."""
    mariadbd = need("mariadbd")
    install = need("mariadb-install-db")
    folder = Path(tempfile.mkdtemp(prefix="portsuite-mariadb-"))
    user = (
        ["--user=root"]
        if hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0
        else []
    )
    subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={folder / 'data'}",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
            *user,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={folder / 'data'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={folder / 'sock'}",
            f"--pid-file={folder / 'pid'}",
            f"--log-error={folder / 'err.log'}",
            "--skip-grant-tables",
            "--innodb-buffer-pool-size=32M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc, timeout=60)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
