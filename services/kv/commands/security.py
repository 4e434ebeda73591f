"""ACL: users, their passwords and command/key/channel rules (Redis 7.0's ACL commands)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from portsuite_services.kv import bigwork
from portsuite_services.kv.acl import (
    CATEGORIES,
    RULE_BYTES,
    RULES_PIECE,
    ACLError,
    User,
    category_names,
    revoked_subscribers,
)
from portsuite_services.kv.commands import (
    COMMANDS,
    NO_REPLY,
    NOT_INT,
    CommandError,
    command,
    container,
    help_command,
)
from portsuite_services.kv.resp import OK, RAW, Double, Map, SetReply, string2ll

S = "server"
_BAD_NAME = re.compile(rb"[\x00- ]")  # (a username of 100 MB is looked at in C)

container("acl", S, "A container for Access List Control commands")


def _text(b: bytes) -> str:
    """A client's bytes (a user name, a word in an error), UTF-8 or not, kept (L{RAW})."""
    return b.decode("utf-8", RAW)


@command(
    "cat", -2, "", S, "List the ACL categories or the commands inside a category", parent="acl"
)
def acl_cat(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise CommandError("ERR wrong number of arguments for 'acl|cat' command")
    if len(argv) == 2:
        return [cat.encode() for cat in CATEGORIES]
    cat = argv[2].lower().decode("utf-8", "replace")
    if cat not in CATEGORIES:
        raise CommandError(f"ERR Unknown category '{_text(argv[2])}'")
    return [n.encode() for n in sorted(category_names(cat))]


@command(
    "setuser",
    -3,
    "admin noscript loading stale",
    S,
    "Modify or create the rules for a specific ACL user",
    parent="acl",
)
def acl_setuser(c: Any, argv: list[bytes]) -> Any:
    if _BAD_NAME.search(argv[2]):
        raise CommandError("ERR Usernames can't contain spaces or null characters")
    name = _text(argv[2])
    users = c.server.users

    clients = c.server.clients.values()

    def changed() -> bigwork.Steps[tuple[User, list[Any]]]:  # the user's new version, made aside
        old = users.get(name)
        user = User(name) if old is None else old.copy()
        yield from user.apply_steps(argv, 3)  # (its rules: argv[3:], not copied)
        revoked = [] if old is None else (yield from revoked_subscribers(clients, old, user))
        return user, revoked

    # a long list of rules (a million key patterns) is applied in slices, the rest of kv
    # waiting (bigwork.py): each step applies RULES_PIECE rules, worth PIECE elements; a
    # user of many patterns is copied, and its descriptions made again, in slices too, and
    # so are the subscriptions of its clients checked against its new channel rules
    old = users.get(name)
    size = 0 if old is None else len(old.keys) + len(old.channels)
    if old is not None and c.server.clients_subscribed():
        size += sum(
            len(x.channels) + len(x.patterns) + len(x.shards) for x in clients if x.user is old
        )
    rules = len(argv) - 3
    if rules < bigwork.BIG:  # (and the bytes of a few long ones: a pattern of megabytes)
        rules += sum(map(len, argv[3:])) // RULE_BYTES
    cost = rules * (bigwork.PIECE // RULES_PIECE) + size
    try:
        done = bigwork.compute(c, argv, cost, changed)
    except ACLError as e:
        raise CommandError(f"ERR {e}") from None
    if done is NO_REPLY:
        return NO_REPLY
    user, revoked = done
    users[name] = user
    for victim in revoked:  # (as Redis 7.0: their subscriptions are no longer allowed)
        if not victim.closed:
            victim.kill()
    c.server.user_changed(name, user)
    return OK


@command(
    "getuser",
    3,
    "admin noscript loading stale",
    S,
    "Get the rules for a specific ACL user",
    parent="acl",
)
def acl_getuser(c: Any, argv: list[bytes]) -> Any:
    user = c.server.users.get(_text(argv[2]))
    if user is None:
        return None
    return Map(
        [
            (b"flags", SetReply([f.encode() for f in user.flags()])),
            (b"passwords", [p.encode() for p in user.passwords]),
            (b"commands", user.commands_text().encode()),
            (b"keys", user.keys_text().encode("utf-8", RAW)),
            (b"channels", user.channels_text().encode("utf-8", RAW)),
            (b"selectors", []),
        ]
    )


@command(
    "deluser", -3, "admin noscript loading stale", S, "Remove the specified ACL users", parent="acl"
)
def acl_deluser(c: Any, argv: list[bytes]) -> Any:
    names = [_text(a) for a in argv[2:]]
    if "default" in names:
        raise CommandError("ERR The 'default' user cannot be removed")
    gone: dict[str, User | None] = {}
    for name in names:
        user = c.server.users.pop(name, None)
        if user is not None:
            gone[name] = None
            for part in user.parts():  # (100,000 patterns: tens of ms to free at once)
                c.server.lazyfree.free(part)
    if gone:
        c.server.users_changed(gone)
    return len(gone)


@command(
    "users",
    2,
    "admin noscript loading stale",
    S,
    "List the username of all the configured ACL users",
    parent="acl",
)
def acl_users(c: Any, argv: list[bytes]) -> Any:
    return [n.encode("utf-8", RAW) for n in sorted(c.server.users)]


@command(
    "list",
    2,
    "admin noscript loading stale",
    S,
    "List the current ACL rules in ACL config file format",
    parent="acl",
)
def acl_list(c: Any, argv: list[bytes]) -> Any:
    return [c.server.users[n].describe().encode("utf-8", RAW) for n in sorted(c.server.users)]


@command(
    "whoami",
    2,
    "noscript loading stale",
    S,
    "Return the name of the user associated to the current connection",
    parent="acl",
)
def acl_whoami(c: Any, argv: list[bytes]) -> Any:
    return c.user.name.encode("utf-8", RAW)


@command(
    "genpass",
    -2,
    "noscript loading stale",
    S,
    "Generate a pseudorandom secure password to use for ACL users",
    parent="acl",
)
def acl_genpass(c: Any, argv: list[bytes]) -> Any:
    bits = 256
    if len(argv) > 3:
        raise CommandError("ERR wrong number of arguments for 'acl|genpass' command")
    if len(argv) == 3:
        v = string2ll(argv[2])
        if v is None:
            raise CommandError(NOT_INT)
        if v <= 0 or v > 4096:
            raise CommandError(
                "ERR ACL GENPASS argument must be the number of bits for the output password, "
                "a positive number up to 4096"
            )
        bits = v
    chars = (bits + 3) // 4
    return secrets.token_hex((chars + 1) // 2)[:chars].encode()


@command(
    "log",
    -2,
    "admin noscript loading stale",
    S,
    "List latest events denied because of ACLs in place",
    parent="acl",
)
def acl_log(c: Any, argv: list[bytes]) -> Any:
    log = c.server.acl_log
    count = 10  # Redis's default: the 10 latest
    if len(argv) > 3:
        raise CommandError("ERR wrong number of arguments for 'acl|log' command")
    if len(argv) == 3:
        if argv[2].lower() == b"reset":
            log.entries.clear()
            return OK
        v = string2ll(argv[2])
        if v is None or v < 0:
            raise CommandError(NOT_INT)
        count = v
    now = log.clock()
    return [
        Map(
            [
                (b"count", e["count"]),
                (b"reason", e["reason"].encode()),
                (b"context", e["context"].encode()),
                (b"object", e["object"].encode("utf-8", RAW)),
                (b"username", e["username"].encode("utf-8", RAW)),
                (b"age-seconds", Double(round(now - e["created"], 3))),
                (b"client-info", e["client-info"].encode("utf-8", RAW)),
            ]
        )
        for e in log.entries[:count]
    ]


@command(
    "dryrun",
    -4,
    "admin noscript loading stale",
    S,
    "Returns whether the user can execute the given command without executing the command",
    parent="acl",
)
def acl_dryrun(c: Any, argv: list[bytes]) -> Any:
    user = c.server.users.get(_text(argv[2]))
    if user is None:
        raise CommandError(f"ERR User '{_text(argv[2])}' not found")
    args = argv[3:]
    cmd = COMMANDS.get(args[0].lower())
    if cmd is None:
        raise CommandError(f"ERR Command '{_text(args[0])}' not found")
    if cmd.subcommands and len(args) > 1:
        sub = cmd.subcommands.get(args[1].lower())
        if sub is not None:
            cmd = sub
    if (cmd.arity > 0 and len(args) != cmd.arity) or len(args) < -cmd.arity:
        raise CommandError(f"ERR wrong number of arguments for '{cmd.fullname}' command")
    denied = user.denies(cmd, args)
    if denied is None:
        return OK
    return noperm_text(denied, cmd, dryrun=True).encode("utf-8", RAW)


def exec_noperm_text(denied: tuple[str, str]) -> str:
    """Redis 7.0's EXEC answer for a queued command the ACL no longer allows."""
    reason = {
        "command": "no permission to execute the command or subcommand",
        "key": "no permission to touch the specified keys",
        "channel": "no permission to access one of the channels used as arguments",
    }[denied[0]]
    return (
        "ACLs rules changed between the moment the transaction was accumulated and the "
        f"EXEC call. This command is no longer allowed for the following reason: {reason}"
    )


def noperm_text(denied: tuple[str, str], cmd: Any, dryrun: bool = False) -> str:
    """Redis 7.0's words: C{this user has no permissions to run the 'get' command}…"""
    reason, obj = denied
    who = "This user" if dryrun else "this user"
    if reason == "command":
        return f"{who} has no permissions to run the '{cmd.fullname}' command"
    if dryrun:
        return f"{who} has no permissions to access the '{obj}' {reason}"
    if reason == "key":
        return f"{who} has no permissions to access one of the keys used as arguments"
    return f"{who} has no permissions to access one of the channels used as arguments"


@command(
    "load",
    2,
    "admin noscript loading stale",
    S,
    "Reload the ACLs from the configured ACL file",
    parent="acl",
)
def acl_load(c: Any, argv: list[bytes]) -> Any:
    raise CommandError(
        "ERR This Redis instance is not configured to use an ACL file. You may want to "
        "specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming "
        "you have a Redis configuration file set) in order to store users in the Redis "
        "configuration."
    )


@command(
    "save",
    2,
    "admin noscript loading stale",
    S,
    "Save the current ACL rules in the configured ACL file",
    parent="acl",
)
def acl_save(c: Any, argv: list[bytes]) -> Any:
    acl_load(c, argv)


help_command(
    "acl",
    S,
    (
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
    ),
)
