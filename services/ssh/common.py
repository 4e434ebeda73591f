"""What the ssh and telnet services share: the accounts, the failures, the files, the shell."""

from __future__ import annotations

from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer

from portsuite.api import FailedLogins, ServiceContext
from portsuite_services.ssh.files import Jail
from portsuite_services.ssh.shell import Sessions, TooManyFailures, sessions_of

FAIL_DELAY = 2.0  # seconds before "Login incorrect" / a password failure is told
HOST_WINDOW = 300.0  # login_failures within this many seconds: that address is refused a while


class ShellService:
    """One ssh or telnet service's view of the lab: who may log in, and what they see."""

    max_tries = 3

    def __init__(self, ctx: ServiceContext, files: Any, writable: bool):
        self.ctx = ctx
        self.clock_source = ctx.reactor
        self.jail = Jail(files, writable)
        self.sessions: Sessions = sessions_of(ctx)
        self.failures = FailedLogins(
            ctx.reactor, limit=ctx.options["login_failures"], window=HOST_WINDOW, max_hosts=4096
        )
        self.login_grace = ctx.options["login_grace"]
        self.accounts = ctx.accounts

    def clock(self) -> float:
        return float(self.clock_source.seconds())

    def started(self) -> float | None:
        suite = self.ctx.suite
        return getattr(suite, "started_at", None) if suite is not None else None

    def banner(self, via: str) -> str:
        name = self.ctx.config.name
        if via == "telnet":
            return (
                f"portsuite {name} (telnet, RFC 854): everything you type, your password too,\n"
                f"crosses the network IN CLEAR. Compare with ssh on the transcript.\n"
            )
        return f"portsuite {name} (ssh): this session is encrypted.\n"

    def check_password(self, user: str, password: str, peer: str) -> defer.Deferred[str]:
        """The account name, after a delay on failure; refused while the host is blocked."""
        host = peer.rsplit(":", 1)[0].strip("[]")
        if self.failures.blocked(host):
            return self._later(defer.fail(TooManyFailures(host)))
        if self.accounts is None:
            return self._later(defer.fail(UnauthorizedLogin("no accounts")))
        d = self.accounts.checker().requestAvatarId(
            UsernamePassword(user.encode("utf-8"), password.encode("utf-8"))
        )

        def failed(f: Any) -> Any:
            self.failures.failed(host)
            return self._later(defer.fail(f))

        d.addErrback(failed)
        return d

    def _later(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        out: defer.Deferred[Any] = defer.Deferred()
        self.clock_source.callLater(FAIL_DELAY, lambda: d.chainDeferred(out))
        return out
