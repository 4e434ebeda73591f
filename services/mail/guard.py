"""
Wrong passwords cost time, and too many from one host close its connections.

Every failed login (SMTP AUTH, POP3 PASS, IMAP LOGIN) is answered only after
C{delay} seconds; a host with C{max_failures} failures inside C{window} seconds is
refused further logins until the window has passed (its connection is closed).
"""

from __future__ import annotations

from typing import Any

from portsuite.api import FailedLogins


class LoginGuard:
    """The delay of mail's logins, over the suite's per-host table (L{FailedLogins})."""

    def __init__(
        self,
        reactor: Any,
        delay: float = 1.0,
        max_failures: int = 10,
        window: float = 600.0,
        max_hosts: int = 10000,
    ):
        self.reactor = reactor
        self.delay = delay
        self.failures = FailedLogins(
            reactor, limit=max_failures, window=window, max_hosts=max_hosts
        )

    def blocked(self, host: str) -> bool:
        """Has this host used up its failures?"""
        return self.failures.blocked(host)

    def failed(self, host: str, answer: Any) -> bool:
        """
        Count a failure of C{host}; call C{answer()} after the delay. Returns True
        when the host is now blocked (the caller closes the connection after answering).
        """
        blocked = self.failures.failed(host)
        self.reactor.callLater(self.delay, answer)
        return blocked
