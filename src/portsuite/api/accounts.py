"""
The suite's accounts: the C{[users]} table, once for every service that logs users in.

    [users]
    alice = "wonderland"                      # a password, in clear (a lab's choice)
    bob = "$2b$12$…"                          # or a bcrypt hash: portsuite passwd
    carol = { password = "…", keys = ["ssh-ed25519 AAAA… carol@laptop"] }

Mail, FTP, SSH, telnet and SQL log users in through L{Accounts.checker}, a
C{twisted.cred} credentials checker; a service narrows the accounts with
C{users = ["alice", …]} (L{Accounts.narrow}). Parsing and checking the table is
L{parse_users}: one line per problem, never a traceback.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import attrs
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from zope.interface import implementer

from portsuite.api.i18n import gettext as _

# bcrypt's modular crypt format: $2b$ (or 2a/2y), a two-digit cost, 53 characters
BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
# what a failed check costs in time, so a wrong guess is not free (bcrypt costs more)
_DUMMY_HASH = b"$2b$10$" + b"." * 53


@attrs.frozen
class Account:
    """
    One user. C{secret} is the password in clear, or a bcrypt hash (C{$2b$…}); C{keys}
    are SSH public keys in C{authorized_keys} form (C{"ssh-ed25519 AAAA… comment"}).
    """

    name: str
    secret: str | None = None
    keys: tuple[str, ...] = ()

    @property
    def hashed(self) -> bool:
        return self.secret is not None and self.secret.startswith("$")

    def check_password(self, password: bytes | str) -> bool:
        """Does C{password} open this account? Constant time for clear passwords."""
        if isinstance(password, str):
            password = password.encode("utf-8")
        if self.secret is None:
            return False
        if self.hashed:
            import bcrypt

            try:
                return bool(bcrypt.checkpw(password, self.secret.encode("ascii")))
            except ValueError:
                return False
        return hmac.compare_digest(password, self.secret.encode("utf-8"))

    def key_blobs(self) -> list[bytes]:
        """The public keys as SSH wire blobs (what a client's key is compared with)."""
        out = []
        for line in self.keys:
            parts = line.split()
            if len(parts) >= 2:
                try:
                    out.append(base64.b64decode(parts[1], validate=True))
                except ValueError:
                    continue
        return out


@implementer(ICredentialsChecker)
class PasswordChecker:
    """
    A C{twisted.cred} checker of username/password credentials against L{Accounts};
    the avatar id is the account name (C{str}). Unknown users cost as much time as a
    wrong password, so a client cannot tell which names exist.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, accounts: Accounts):
        self.accounts = accounts

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[str]:
        name = credentials.username
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        account = self.accounts.get(name)
        password = credentials.password
        if account is not None and account.check_password(password):
            return defer.succeed(account.name)
        if account is None:
            _burn_time(password)
        return defer.fail(UnauthorizedLogin("wrong user name or password"))


def _burn_time(password: bytes | str) -> None:
    """As long as a bcrypt check, for a name that does not exist."""
    try:
        import bcrypt

        bcrypt.checkpw(b"x", _DUMMY_HASH)
    except (ImportError, ValueError):
        pass


@attrs.frozen
class Accounts:
    """Every account of the suite (or of one service, once narrowed), by name."""

    by_name: Mapping[str, Account] = attrs.field(factory=dict)

    def names(self) -> list[str]:
        return sorted(self.by_name)

    def get(self, name: str) -> Account | None:
        return self.by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __len__(self) -> int:
        return len(self.by_name)

    def narrow(self, names: Iterable[str] | None) -> Accounts:
        """Only these accounts (a service's C{users = [...]}); None keeps them all."""
        if names is None:
            return self
        keep = set(names)
        return Accounts({n: a for n, a in self.by_name.items() if n in keep})

    def checker(self) -> PasswordChecker:
        """A C{twisted.cred} checker for a C{Portal}: username and password."""
        return PasswordChecker(self)


class Clock(Protocol):
    """What L{FailedLogins} needs of a reactor: C{seconds()} (any C{IReactorTime})."""

    def seconds(self) -> float: ...


class FailedLogins:
    """
    Failed logins per client address, in one bounded table: the brute-force brake of
    every service that logs users in (ssh and telnet, smtp/pop3/imap, ftp).

    An address with C{limit} failures within the last C{window} seconds is
    L{blocked} until the oldest of them is C{window} seconds old. Memory is bounded
    whatever clients do: at most C{max_hosts} addresses (the one that failed least
    recently is forgotten first) and at most C{limit} times each. The clock is the
    service's reactor (or a C{twisted.internet.task.Clock} in a test).

        failures = FailedLogins(ctx.reactor, limit=5, window=300)
        if failures.blocked(host): refuse …
        if failures.failed(host): that was the last try allowed …
    """

    def __init__(
        self, clock: Clock, limit: int = 10, window: float = 300.0, max_hosts: int = 10_000
    ):
        if limit < 1 or window <= 0 or max_hosts < 1:
            raise ValueError("limit and max_hosts must be at least 1, window more than 0")
        self.clock = clock
        self.limit = limit
        self.window = window
        self.max_hosts = max_hosts
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """Addresses remembered right now (never more than C{max_hosts})."""
        return len(self._seen)

    def _recent(self, host: str) -> deque[float] | None:
        times = self._seen.get(host)
        if times is None:
            return None
        now = self.clock.seconds()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._seen[host]
            return None
        return times

    def count(self, host: str) -> int:
        """Failures of C{host} within the window (at most C{limit})."""
        times = self._recent(host)
        return 0 if times is None else len(times)

    def retry_after(self, host: str) -> float:
        """Seconds until C{host} may try again; 0.0 when it is not blocked."""
        times = self._recent(host)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window - self.clock.seconds())

    def blocked(self, host: str) -> bool:
        """Has C{host} used up its failures for now?"""
        return self.retry_after(host) > 0

    def failed(self, host: str) -> bool:
        """Count one failure of C{host}; True when C{host} is now blocked."""
        times = self._recent(host)
        if times is None:
            times = deque(maxlen=self.limit)
            self._seen[host] = times
        else:
            self._seen.move_to_end(host)
        times.append(self.clock.seconds())
        while len(self._seen) > self.max_hosts:
            self._seen.popitem(last=False)
        return self.blocked(host)


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash for C{[users]} (what C{portsuite passwd} prints)."""
    import bcrypt

    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def _check_secret(where: str, value: str, errors: list[str]) -> None:
    if value == "":
        errors.append(
            _("{where}: an empty password; set one, or a hash from portsuite passwd").format(
                where=where
            )
        )
    elif value.startswith("$"):
        if not BCRYPT.match(value):
            errors.append(
                _(
                    "{where}: {value_12!r}… is not a bcrypt hash ($2b$NN$ and 53 characters); paste the whole line that portsuite passwd prints"
                ).format(where=where, value_12=value[:12])
            )


def _check_key(where: str, key: Any, errors: list[str]) -> None:
    if not isinstance(key, str):
        errors.append(
            _('{where}: keys must be strings, e.g. "ssh-ed25519 AAAA… you@laptop"').format(
                where=where
            )
        )
        return
    parts = key.split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        errors.append(
            _(
                "{where}: {key_30!r} is not a public key line; paste the line of your ~/.ssh/id_ed25519.pub (it starts with ssh-ed25519, ssh-rsa or ecdsa-…)"
            ).format(where=where, key_30=key[:30])
        )
        return
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        errors.append(
            _("{where}: the key's base64 is damaged; paste the .pub line again").format(where=where)
        )
        return
    if not blob.startswith(len(parts[0]).to_bytes(4, "big") + parts[0].encode()):
        errors.append(
            _("{where}: the key's body is not a {parts_0} key; paste the .pub line again").format(
                where=where, parts_0=parts[0]
            )
        )


def parse_users(table: Any, label: str) -> tuple[Accounts, list[str]]:
    """The C{[users]} table as L{Accounts}, and its problems, one line each."""
    errors: list[str] = []
    if table is None:
        return Accounts(), errors
    if not isinstance(table, dict):
        return Accounts(), [
            _('{label}: [users]: must be a table: [users] then alice = "password"').format(
                label=label
            )
        ]
    accounts = {}
    for name, value in table.items():
        where = f"{label}: [users] {name}"
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}", name):
            errors.append(
                _(
                    "{where}: not a usable user name; use letters, digits, '_', '.', '-' (at most 32, not starting with '.' or '-')"
                ).format(where=where)
            )
            continue
        if isinstance(value, str):
            _check_secret(where, value, errors)
            accounts[name] = Account(name, secret=value)
        elif isinstance(value, dict):
            for key in value:
                if key not in ("password", "keys"):
                    errors.append(
                        _("{where}.{key}: unknown key; use password and keys").format(
                            where=where, key=key
                        )
                    )
            secret = value.get("password")
            if secret is not None and not isinstance(secret, str):
                errors.append(
                    _("{where}.password: must be a string (a password or a hash)").format(
                        where=where
                    )
                )
                secret = None
            if secret is not None:
                _check_secret(f"{where}.password", secret, errors)
            keys = value.get("keys", [])
            if not isinstance(keys, list):
                errors.append(
                    _('{where}.keys: must be a list, e.g. keys = ["ssh-ed25519 AAAA…"]').format(
                        where=where
                    )
                )
                keys = []
            for key in keys:
                _check_key(f"{where}.keys", key, errors)
            if secret is None and not keys:
                errors.append(_("{where}: needs a password or keys (or both)").format(where=where))
            accounts[name] = Account(
                name, secret=secret, keys=tuple(k for k in keys if isinstance(k, str))
            )
        else:
            errors.append(
                _(
                    '{where}: must be a password string or a table {{ password = "…", keys = [...] }}'
                ).format(where=where)
            )
    return Accounts(accounts), errors
