"""
A quieter log for twisted.conch's classes: its debug and info lines (every packet of
SFTP, every key exchange step) would bury the suite's own one line per connection.
Warnings and errors still reach the log, except a client's ordinary goodbye
(disconnect reason 11, "disconnected by user"), which conch logs as an error.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    globalLogPublisher,
)

BY_APPLICATION = 11  # RFC 4253 11.1: SSH_DISCONNECT_BY_APPLICATION


def _not_a_goodbye(event: dict[str, Any]) -> PredicateResult:
    if (
        str(event.get("log_format", "")).startswith("Got remote error")
        and event.get("code") == BY_APPLICATION
    ):
        return PredicateResult.no
    return PredicateResult.maybe


def quiet_logger() -> Logger:
    """A Logger for a conch subclass's C{_log}: warnings and errors only."""
    levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    predicates: list[Any] = [levels, _not_a_goodbye]  # ILogFilterPredicate, through zope
    publisher: Any = globalLogPublisher
    observer: Any = FilteringLogObserver(publisher, predicates)
    return Logger(observer=observer)
