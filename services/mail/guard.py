"""
Wrong passwords cost time, and too many from one host close its connections.

Every failed login (SMTP AUTH, POP3 PASS, IMAP LOGIN) is answered only after
C{delay} seconds; a host with C{max_failures} failures inside C{window} seconds is
refused further logins until the window has passed (its connection is closed).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class LoginGuard:
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
        self.max_failures = max_failures
        self.window = window
        self.max_hosts = max_hosts
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, host: str) -> list[float]:
        now = self.reactor.seconds()
        times = [t for t in self._failures.get(host, ()) if now - t < self.window]
        if times:
            self._failures[host] = times
        else:
            self._failures.pop(host, None)
        return times

    def blocked(self, host: str) -> bool:
        """Has this host used up its failures?"""
        return len(self._recent(host)) >= self.max_failures

    def failed(self, host: str, answer: Any) -> bool:
        """
        Count a failure of C{host}; call C{answer()} after the delay. Returns True
        when the host is now blocked (the caller closes the connection after answering).
        """
        times = self._recent(host)
        times.append(self.reactor.seconds())
        self._failures[host] = times
        self._failures.move_to_end(host)
        while len(self._failures) > self.max_hosts:
            self._failures.popitem(last=False)
        self.reactor.callLater(self.delay, answer)
        return len(times) >= self.max_failures
