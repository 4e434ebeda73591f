"""
The C{portsuite} pytest fixture (registered through the C{pytest11} entry point).

    def test_kv(portsuite):
        s = portsuite({"services": {"kv": {"type": "kv", "port": 0}}})
        r = redis.Redis(port=s.port("kv"))

Each call starts a suite (in-process by default, C{subprocess=True} for a real
twistd) and waits until it listens; every suite is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from portsuite.testing import start_suite


@pytest.fixture
def portsuite(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    started: list[Any] = []

    def start(config: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("base_dir", tmp_path)
        s = start_suite(config, **kwargs)
        started.append(s)
        return s

    yield start
    for s in reversed(started):
        s.stop()
