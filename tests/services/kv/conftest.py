"""Shared fixtures of the kv tests: a real redis-server and a portsuite kv, side by side."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from portsuite.testing import free_port, need, suite_running, wait_listening


def _redis(*extra: str) -> Iterator[int]:
    exe = need("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_listening(port, proc, timeout=10)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """A real redis-server 7 (the reference), memory-only, on a free port."""
    yield from _redis()


@pytest.fixture
def fresh_redis_port() -> Iterator[int]:
    """A reference of its own, for replies that depend on what redis-server has seen."""
    yield from _redis()


@pytest.fixture(scope="session")
def redis_sanitize_port() -> Iterator[int]:
    """The reference checking RESTORE payloads deeply (without, a bad one can crash it)."""
    yield from _redis("--sanitize-dump-payload", "yes")


@pytest.fixture(scope="session")
def redis_auth_port() -> Iterator[int]:
    """The reference with a password."""
    yield from _redis("--requirepass", "s3cret")


@pytest.fixture(scope="session")
def kv_auth_port() -> Iterator[int]:
    """kv with a password."""
    config = {"services": {"kv": {"type": "kv", "port": 0, "password": "s3cret"}}}
    with suite_running(config) as s:
        yield s.port("kv")


@pytest.fixture(scope="session")
def kv_port() -> Iterator[int]:
    """portsuite's kv, memory-only, in this process."""
    with suite_running({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        yield s.port("kv")
