"""
Redis 7 ACL users for kv: passwords and command/key/channel rules, as Redis's
C{ACL SETUSER} reads them (C{on off >pass <pass #hash !hash nopass resetpass
+cmd -cmd +@cat -@cat +cmd|sub allcommands nocommands ~pat %R~pat %W~pat allkeys
resetkeys &pat allchannels resetchannels reset}).

The C{default} user is what every connection starts as. While it may run
everything (the usual case), the dispatch path checks nothing: only a client
logged in as a restricted user has its commands checked (L{User.denies}).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from portsuite.api.i18n import gettext as _
from portsuite_services.kv import glob, keyspecs


def _load_categories() -> tuple[list[str], dict[str, list[str]]]:
    """redis-server 7.0's ACL CAT answers: the categories, and each command's."""
    try:
        data = json.loads(
            Path(__file__).with_name("commands").joinpath("acl_categories.json").read_text()
        )
    except (OSError, ValueError):  # pragma: no cover - shipped with the package
        return [], {}
    return data["categories"], data["commands"]


CATEGORIES, REDIS_CATEGORIES = _load_categories()


class ACLError(Exception):
    """A bad rule; C{str(e)} is Redis's reason (after C{Error in ACL SETUSER modifier})."""


def command_categories(cmd: Any) -> list[str]:
    """The ACL categories of a kv command (Redis's own, else from its flags)."""
    cats = REDIS_CATEGORIES.get(cmd.fullname)
    if cats is not None:
        return cats
    flags = cmd.flags
    out = []
    if "write" in flags:
        out.append("write")
    if "readonly" in flags:
        out.append("read")
    if "admin" in flags:
        out += ["admin", "dangerous"]
    out.append("fast" if "fast" in flags else "slow")
    group = {"pubsub": "pubsub", "connection": "connection", "transactions": "transaction"}.get(
        cmd.group
    )
    if group:
        out.append(group)
    return out


def all_commands() -> list[Any]:
    """Every command and subcommand of kv's table (COMMAND's universe)."""
    from portsuite_services.kv.commands import COMMANDS

    out = []
    for cmd in COMMANDS.values():
        out.append(cmd)
        out.extend(cmd.subcommands.values())
    return out


_BY_CATEGORY: dict[str, frozenset[str]] = {}
_ALL: list[frozenset[str]] = []


def category_names(cat: str) -> frozenset[str]:
    """The full names of kv's commands in an ACL category (computed once)."""
    if not _BY_CATEGORY:
        found: dict[str, set[str]] = {c: set() for c in CATEGORIES}
        for cmd in all_commands():
            for c in command_categories(cmd):
                found.setdefault(c, set()).add(cmd.fullname)
        _BY_CATEGORY.update((k, frozenset(v)) for k, v in found.items())
    return _BY_CATEGORY.get(cat, frozenset())


def every_name() -> frozenset[str]:
    if not _ALL:
        _ALL.append(frozenset(c.fullname for c in all_commands()))
    return _ALL[0]


def sha256_hex(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _valid_hash(h: str) -> bool:
    return len(h) == 64 and all(ch in "0123456789abcdef" for ch in h)


class User:
    """One ACL user. C{allowed} holds the full names (C{get}, C{config|get}) it may run."""

    def __init__(self, name: str):
        self.name = name
        self.enabled = False
        self.nopass = False
        self.sanitize = False
        self.passwords: list[str] = []  # sha256 hex, in the order given
        self.allowed: set[str] = set()
        self.first_args: dict[str, set[bytes]] = {}  # +get|x: the command with that argument
        self.all_commands = False
        self.cmd_rules: dict[str, str] = {}  # the description after the base: body -> rule
        self.keys: dict[tuple[bytes, bool, bool], None] = {}  # (pattern, read, write), ordered
        self.all_keys = False
        self.channels: dict[bytes, None] = {}
        self.all_channels = False
        self.unrestricted = False

    def copy(self) -> User:
        """A copy to change (SETUSER applies all its rules or none)."""
        u = User(self.name)
        u.__dict__.update(self.__dict__)
        u.passwords = list(self.passwords)
        u.allowed = set(self.allowed)
        u.first_args = {k: set(v) for k, v in self.first_args.items()}
        u.cmd_rules = dict(self.cmd_rules)
        u.keys = dict(self.keys)
        u.channels = dict(self.channels)
        return u

    @property
    def open(self) -> bool:
        """Is a new connection logged in as this user without AUTH (default, nopass)?"""
        return self.enabled and self.nopass

    # -- rules --------------------------------------------------------------------

    def apply(self, rules: list[bytes]) -> None:
        """Apply SETUSER rules in order; raises L{ACLError} (with the rule) at the first bad one."""
        for raw in rules:
            try:
                self._apply(raw)
            except ACLError as e:
                text = raw.decode("utf-8", "replace")
                raise ACLError(f"Error in ACL SETUSER modifier '{text}': {e}") from None
        self.unrestricted = (
            len(self.allowed) >= len(every_name())
            and self.all_keys
            and self.all_channels
            and self.enabled
        )

    def _apply(self, raw: bytes) -> None:
        r = raw.decode("utf-8", "replace")
        low = r.lower()
        if low == "on":
            self.enabled = True
        elif low == "off":
            self.enabled = False
        elif low == "nopass":
            self.nopass = True
            self.passwords = []
        elif low == "resetpass":
            self.nopass = False
            self.passwords = []
        elif low in ("skip-sanitize-payload", "sanitize-payload"):
            self.sanitize = low == "sanitize-payload"
        elif low in ("allkeys", "~*"):
            self.all_keys = True
            self.keys = {(b"*", True, True): None}
        elif low == "resetkeys":
            self.all_keys = False
            self.keys = {}
        elif low in ("allchannels", "&*"):
            self.all_channels = True
            self.channels = {b"*": None}
        elif low == "resetchannels":
            self.all_channels = False
            self.channels = {}
        elif low in ("allcommands", "+@all"):
            self._base(True)
        elif low in ("nocommands", "-@all"):
            self._base(False)
        elif low == "reset":
            self.passwords = []
            self.nopass = False
            self.enabled = False
            self.sanitize = True
            self.all_keys = False
            self.keys = {}
            self.all_channels = False
            self.channels = {}
            self._base(False)
        elif r.startswith(">"):
            h = sha256_hex(raw[1:])
            if h not in self.passwords:
                self.passwords.append(h)
            self.nopass = False
        elif r.startswith("<"):
            h = sha256_hex(raw[1:])
            if h not in self.passwords:
                raise ACLError("The password you are trying to remove from the user does not exist")
            self.passwords.remove(h)
        elif r.startswith("#") or r.startswith("!"):
            h = r[1:]
            if not _valid_hash(h):
                raise ACLError(
                    "The password hash must be exactly 64 characters and contain only "
                    "lowercase hexadecimal characters"
                )
            if r[0] == "#":
                if h not in self.passwords:
                    self.passwords.append(h)
                self.nopass = False
            else:
                if h not in self.passwords:
                    raise ACLError(
                        "The password you are trying to remove from the user does not exist"
                    )
                self.passwords.remove(h)
        elif r.startswith("~") or r.startswith("%"):
            self._key_rule(raw)
        elif r.startswith("&"):
            if self.all_channels:
                return  # already every channel
            self.channels[raw[1:]] = None
        elif r.startswith("+") or r.startswith("-"):
            self._command_rule(r[0] == "+", low[1:])
        elif r.startswith("("):
            raise ACLError("selectors are not supported by kv")
        else:
            raise ACLError("Syntax error")

    def _key_rule(self, raw: bytes) -> None:
        if raw.startswith(b"~"):
            read = write = True
            pat = raw[1:]
        else:
            tilde = raw.find(b"~")
            flags = raw[1:tilde].upper() if tilde > 0 else b""
            if tilde < 0 or not flags or any(f not in b"RW" for f in flags):
                raise ACLError("Syntax error")
            read, write = b"R" in flags, b"W" in flags
            pat = raw[tilde + 1 :]
        if self.all_keys:
            if read and write:
                return
            raise ACLError(
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and "
                "does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            )
        self.keys[(pat, read, write)] = None

    def _base(self, allow: bool) -> None:
        self.all_commands = allow
        self.cmd_rules = {}
        self.first_args = {}
        self.allowed = set(every_name()) if allow else set()

    def _command_rule(self, allow: bool, what: str) -> None:
        from portsuite_services.kv.commands import COMMANDS

        sign = "+" if allow else "-"
        if what.startswith("@"):
            cat = what[1:]
            if cat not in CATEGORIES:
                raise ACLError("Unknown command or category name in ACL")
            names = category_names(cat)
        else:
            parts = what.split("|")
            top = COMMANDS.get(parts[0].encode())
            if top is None and len(parts) <= 2 and what in REDIS_CATEGORIES:
                # a Redis command kv does not have (CLUSTER…): allowed or not, it cannot run
                self._describe(sign + what)
                return
            if top is None or len(parts) > 2:
                if top is not None and len(parts) > 2:
                    raise ACLError("Allowing first-arg of a subcommand is not supported")
                raise ACLError("Unknown command or category name in ACL")
            if len(parts) == 1:
                names = frozenset({top.fullname} | {s.fullname for s in top.subcommands.values()})
            elif top.subcommands:
                sub = top.subcommands.get(parts[1].encode())
                if sub is None:
                    raise ACLError("Unknown command or category name in ACL")
                names = frozenset({sub.fullname})
            else:  # +select|0: that command with that first argument only
                if not allow:
                    raise ACLError("Syntax error")
                self.first_args.setdefault(top.fullname, set()).add(parts[1].encode())
                self._describe(sign + what)
                return
        if allow:
            self.allowed |= names
        else:
            self.allowed -= names
            for n in names:
                self.first_args.pop(n, None)
        self._describe(sign + what)

    def _describe(self, rule: str) -> None:
        # a later rule on the same thing replaces an earlier one (ACL LIST stays short)
        body = rule[1:]
        self.cmd_rules.pop(body, None)
        self.cmd_rules[body] = rule

    # -- checks ----------------------------------------------------------------------

    def check_password(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.nopass:
            return True
        h = sha256_hex(password)
        ok = False
        for p in self.passwords:
            ok |= hmac.compare_digest(h, p)
        return ok

    def denies(self, cmd: Any, argv: list[bytes]) -> tuple[str, str] | None:
        """
        None when this user may run C{argv}, else C{(reason, object)}: reason is
        C{command}, C{key} or C{channel}, as in ACL LOG.
        """
        if cmd.noauth:  # AUTH, HELLO, QUIT, RESET: always allowed, as in Redis
            return None
        name = cmd.fullname
        if name not in self.allowed:
            firsts = self.first_args.get(name)
            if firsts is None or len(argv) < 2 or argv[1].lower() not in firsts:
                return ("command", name)
        if not self.all_keys:
            for key, flags in keyspecs.acl_keys(cmd, argv):
                if not self._key_ok(key, flags):
                    return ("key", key.decode("utf-8", "replace"))
        if not self.all_channels:
            top = cmd.name if cmd.parent is None else ""
            if top in ("publish", "spublish"):
                chans, pattern = argv[1:2], False
            elif top in ("subscribe", "ssubscribe"):
                chans, pattern = argv[1:], False
            elif top == "psubscribe":
                chans, pattern = argv[1:], True
            else:
                chans, pattern = [], False
            for ch in chans:
                if not self._channel_ok(ch, pattern):
                    return ("channel", ch.decode("utf-8", "replace"))
        return None

    def _key_ok(self, key: bytes, flags: list[str]) -> bool:
        """Redis's C{ACLSelectorCheckKey}: a pattern with every permission the flags need."""
        read = "access" in flags
        write = "insert" in flags or "delete" in flags or "update" in flags
        for pat, r, w in self.keys:
            if (r or not read) and (w or not write) and glob.match(pat, key):
                return True
        return False

    def full_key_access(self, read: bool = True, write: bool = False) -> bool:
        """Redis's C{ACLSelectorHasUnrestrictedKeyAccess}: a C{*} pattern with those rights."""
        if self.all_keys:
            return True
        return any(pat == b"*" and (r or not read) and (w or not write) for pat, r, w in self.keys)

    def _channel_ok(self, ch: bytes, pattern: bool) -> bool:
        for pat in self.channels:
            if (pat == ch) if pattern else glob.match(pat, ch):
                return True
        return False

    # -- descriptions ----------------------------------------------------------------

    def commands_text(self) -> str:
        return " ".join([("+@all" if self.all_commands else "-@all"), *self.cmd_rules.values()])

    def keys_text(self) -> str:
        out = []
        for pat, read, write in self.keys:
            text = pat.decode("utf-8", "replace")
            out.append(f"~{text}" if read and write else f"%{'R' if read else 'W'}~{text}")
        return " ".join(out)

    def channels_text(self) -> str:
        return " ".join("&" + p.decode("utf-8", "replace") for p in self.channels)

    def flags(self) -> list[str]:
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.sanitize:
            out.append("sanitize-payload")
        return out

    def describe(self) -> str:
        """The ACL LIST line (aclfile syntax)."""
        parts = ["user", self.name, *self.flags()]
        parts += ["#" + p for p in self.passwords]
        if self.keys:
            parts.append(self.keys_text())
        parts.append(self.channels_text() if self.channels else "resetchannels")
        parts.append(self.commands_text())
        return " ".join(parts)


def default_user(password: str | None) -> User:
    """The C{default} user as the service options make it."""
    u = User("default")
    u.apply([b"on", b"allkeys", b"allchannels", b"allcommands"])
    u.apply([b">" + password.encode()] if password else [b"nopass"])
    return u


def parse_line(line: str) -> tuple[str, list[bytes]]:
    """One C{acl} option line (C{user NAME rule...}); raises L{ACLError} with a readable reason."""
    words = line.split()
    if not words or words[0] != "user" or len(words) < 2:
        raise ACLError(
            _("must start with 'user NAME' (aclfile syntax: user alice on >secret ~* +@all)")
        )
    name = words[1]
    if any(ord(ch) < 33 for ch in name):
        raise ACLError(_("Usernames can't contain spaces or null characters"))
    return name, [w.encode() for w in words[2:]]


def build_users(password: str | None, lines: list[str]) -> dict[str, User]:
    """The users of a kv service: the default user, then the C{acl} lines."""
    users = {"default": default_user(password)}
    for line in lines:
        name, rules = parse_line(line)
        user = users.get(name)
        if user is None:
            user = users[name] = User(name)
        user.apply(rules)
    return users


def check_lines(password: str | None, lines: Any) -> list[str]:
    """C{portsuite check}: one line per bad C{acl} entry."""
    if lines is None:
        return []
    if not isinstance(lines, (list, tuple)) or not all(isinstance(x, str) for x in lines):
        return [
            _('acl: must be a list of strings, e.g. acl = ["user alice on >secret ~app:* +@all"]')
        ]
    errors = []
    seen: dict[str, User] = {"default": default_user(password)}
    for i, line in enumerate(lines):
        try:
            name, rules = parse_line(line)
            if name == "default" and password and any(r[:1] in (b">", b"#") for r in rules):
                raise ACLError(
                    _("the default user's password is the 'password' option; set it in one place")
                )
            seen.setdefault(name, User(name)).apply(rules)
        except ACLError as e:
            errors.append(f"acl[{i}] ({line[:60]!r}): {e}")
    return errors


class ACLLog:
    """ACL LOG: the latest denials and failed logins (Redis's acllog-max-len, 128)."""

    MAX = 128

    def __init__(self, clock: Any = time.time):
        self.entries: list[dict[str, Any]] = []  # newest first
        self.clock = clock

    def add(self, reason: str, context: str, obj: str, username: str, client_info: str) -> None:
        now = self.clock()
        for e in self.entries[:10]:  # as Redis, only the 10 latest are looked at for a match
            if (
                e["reason"] == reason
                and e["context"] == context
                and e["object"] == obj
                and e["username"] == username
                and now - e["updated"] < 60
            ):
                e["count"] += 1
                e["updated"] = now
                e["client-info"] = client_info
                self.entries.remove(e)
                self.entries.insert(0, e)
                return
        self.entries.insert(
            0,
            {
                "count": 1,
                "reason": reason,
                "context": context,
                "object": obj[:128],
                "username": username[:128],
                "created": now,
                "updated": now,
                "client-info": client_info,
            },
        )
        del self.entries[self.MAX :]
