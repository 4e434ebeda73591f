"""The per-host brake on failed logins every service shares (portsuite.api.FailedLogins)."""

from __future__ import annotations

import tracemalloc

import pytest
from twisted.internet.task import Clock

from portsuite.api import FailedLogins


def test_an_address_is_blocked_at_the_limit_and_freed_by_the_window() -> None:
    clock = Clock()
    table = FailedLogins(clock, limit=3, window=60)
    assert not table.failed("10.0.0.1")
    clock.advance(10)
    assert not table.failed("10.0.0.1")
    assert not table.blocked("10.0.0.1")
    clock.advance(10)
    assert table.failed("10.0.0.1")  # the third within 60 s
    assert table.blocked("10.0.0.1")
    assert table.retry_after("10.0.0.1") == pytest.approx(40)  # the first one is 20 s old
    assert not table.blocked("10.0.0.2")  # only that address
    clock.advance(39.5)
    assert table.blocked("10.0.0.1")
    clock.advance(1)  # the first failure has left the window: two remain
    assert not table.blocked("10.0.0.1")
    assert table.count("10.0.0.1") == 2
    assert table.retry_after("10.0.0.1") == 0.0
    clock.advance(60)  # all of them have
    assert table.count("10.0.0.1") == 0
    assert len(table) == 0  # and the address is forgotten


def test_failures_keep_an_address_blocked_while_they_go_on() -> None:
    clock = Clock()
    table = FailedLogins(clock, limit=2, window=100)
    table.failed("h")
    table.failed("h")
    for _ in range(10):  # a client that keeps trying stays blocked
        clock.advance(30)
        assert table.blocked("h")
        table.failed("h")
    assert table.count("h") == 2  # never more than the limit kept


def test_a_million_addresses_stay_in_a_bounded_table() -> None:
    clock = Clock()
    table = FailedLogins(clock, limit=5, window=300, max_hosts=1000)

    def address(i: int) -> str:
        return f"{i >> 24}.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"

    for i in range(1_000_000):
        table.failed(address(i))
    assert len(table) == 1000
    # the most recent addresses are the ones kept; the oldest were forgotten
    assert table.count(address(999_999)) == 1
    assert table.count(address(1)) == 0
    # and the memory it holds does not grow with more of them: once every entry is
    # one made while tracing, 20,000 more addresses leave the traced total as it was
    tracemalloc.start()
    try:
        for i in range(1_000_000, 1_020_000):
            table.failed(address(i))
        before, _ = tracemalloc.get_traced_memory()
        for i in range(1_020_000, 1_040_000):
            table.failed(address(i))
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == 1000
    assert before > 1000 * 100  # the 1,000 entries are counted …
    assert after - before < 16 * 1024  # … and 20,000 more addresses added nothing


def test_the_least_recently_failed_address_is_forgotten_first() -> None:
    clock = Clock()
    table = FailedLogins(clock, limit=2, window=300, max_hosts=2)
    table.failed("a")
    table.failed("b")
    table.failed("a")  # a failed again: b is now the oldest
    assert table.blocked("a")
    table.failed("c")
    assert len(table) == 2
    assert table.count("b") == 0 and table.blocked("a") and table.count("c") == 1


@pytest.mark.parametrize(
    "kwargs", [{"limit": 0}, {"window": 0}, {"window": -1.0}, {"max_hosts": 0}]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FailedLogins(Clock(), **kwargs)  # type: ignore[arg-type]
