"""
The command table: every command a client can send, with Redis's arity and flags.

A handler is C{f(client, argv) -> reply}; it raises L{CommandError} (whose text is
the reply, e.g. C{"ERR syntax error"}) for a client's mistake. Commands that change
the keyspace are flagged C{write}: what they change goes to the append-only file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from portsuite_services.kv import longdouble
from portsuite_services.kv.resp import LLONG_MAX, LLONG_MIN, string2ll


class CommandError(Exception):
    """A reply error; C{str(e)} is the text after the C{-} (C{"ERR ..."})."""


SYNTAX = "ERR syntax error"
NOT_INT = "ERR value is not an integer or out of range"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
OVERFLOW = "ERR increment or decrement would overflow"
NO_SUCH_KEY = "ERR no such key"
NO_REPLY = object()  # the handler already pushed its replies (SUBSCRIBE)


@attrs.frozen
class Command:
    """
    @ivar arity: Redis's convention: N = exactly N words (the name included),
        -N = at least N.
    @ivar flags: C{write}, C{readonly}, C{noauth} (allowed before AUTH),
        C{pubsub} (allowed while subscribed in RESP2), C{admin}, C{fast}.
    @ivar subcommands: for container commands (CONFIG, CLIENT, COMMAND).
    """

    name: str
    handler: Callable[[Any, list[bytes]], Any]
    arity: int
    flags: frozenset[str]
    group: str = "generic"
    summary: str = ""
    first_key: int = 1
    last_key: int = 1
    key_step: int = 1
    subcommands: dict[bytes, Command] = attrs.field(factory=dict)
    parent: str | None = None
    write: bool = attrs.field(init=False)
    noauth: bool = attrs.field(init=False)
    fullname: str = attrs.field(init=False)
    lname: bytes = attrs.field(init=False)
    stateful: bool = attrs.field(init=False)  # may change AUTH/MULTI/SUBSCRIBE state

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "write", "write" in self.flags)
        object.__setattr__(self, "noauth", "noauth" in self.flags)
        full = f"{self.parent}|{self.name}" if self.parent else self.name
        object.__setattr__(self, "fullname", full)
        object.__setattr__(self, "lname", self.name.encode())
        object.__setattr__(self, "stateful", self.parent is None and self.name in STATEFUL)


STATEFUL = frozenset(
    (
        "auth",
        "hello",
        "multi",
        "exec",
        "discard",
        "subscribe",
        "unsubscribe",
        "ssubscribe",
        "sunsubscribe",
        "psubscribe",
        "punsubscribe",
        "reset",
    )
)
COMMANDS: dict[bytes, Command] = {}
COMMANDS_ANY_CASE: dict[bytes, Command] = {}  # also GET, Get: found without lower()


def command(
    name: str,
    arity: int,
    flags: str = "",
    group: str = "generic",
    summary: str = "",
    keys: tuple[int, int, int] | None = None,
    parent: str | None = None,
) -> Callable[[Callable[[Any, list[bytes]], Any]], Callable[[Any, list[bytes]], Any]]:
    """
    Register a handler under C{name} (or as a subcommand of C{parent}). C{keys}: first,
    last and step of its keys; by default the first argument for a command, none for
    a subcommand (CLIENT SETINFO's argv[1] is "SETINFO", not a key).
    """
    if keys is None:
        keys = (1, 1, 1) if parent is None else (0, 0, 0)

    def register(f: Callable[[Any, list[bytes]], Any]) -> Callable[[Any, list[bytes]], Any]:
        cmd = Command(
            name=name,
            handler=f,
            arity=arity,
            flags=frozenset(flags.split()),
            group=group,
            summary=summary or (f.__doc__ or "").strip().splitlines()[0] if f.__doc__ else summary,
            first_key=keys[0],
            last_key=keys[1],
            key_step=keys[2],
            parent=parent,
        )
        if parent is None:
            COMMANDS[name.encode()] = cmd
            COMMANDS_ANY_CASE[name.encode()] = cmd
            COMMANDS_ANY_CASE[name.upper().encode()] = cmd
        else:
            COMMANDS[parent.encode()].subcommands[name.encode()] = cmd
        return f

    return register


def container(
    name: str, group: str, summary: str, alone: Callable[[Any, list[bytes]], Any] | None = None
) -> None:
    """A command that groups subcommands (CONFIG, CLIENT); C{alone} answers it bare (COMMAND)."""

    def no_subcommand(c: Any, argv: list[bytes]) -> Any:  # pragma: no cover
        raise CommandError(f"ERR wrong number of arguments for '{name}' command")

    COMMANDS[name.encode()] = COMMANDS_ANY_CASE[name.encode()] = COMMANDS_ANY_CASE[
        name.upper().encode()
    ] = Command(
        name=name,
        handler=alone or no_subcommand,
        arity=-1 if alone else -2,
        flags=frozenset(),
        group=group,
        summary=summary,
        first_key=0,
        last_key=0,
        key_step=0,
    )


def help_reply(parent: str, lines: tuple[str, ...]) -> list[Any]:
    """
    C{PARENT HELP}'s reply: the subcommands, C{lines}, between the head and the tail
    that Redis's C{addReplyHelp} puts around them; a simple string a line.
    """
    from portsuite_services.kv.resp import Simple

    head = f"{parent.upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    return [Simple(s) for s in (head, *lines, "HELP", "    Prints this help.")]


def help_command(parent: str, group: str, lines: tuple[str, ...]) -> None:
    """Register C{PARENT HELP} for a container: L{help_reply}."""
    reply = help_reply(parent, lines)

    def help_(c: Any, argv: list[bytes]) -> Any:
        return list(reply)

    command(
        "help",
        2,
        "loading stale",
        group,
        "Show helpful text about the different subcommands",
        keys=(0, 0, 0),
        parent=parent,
    )(help_)


# -- argument helpers ------------------------------------------------------------


def to_int(b: bytes, error: str = NOT_INT) -> int:
    v = string2ll(b)
    if v is None:
        raise CommandError(error)
    return v


def check_overflow(v: int, error: str = OVERFLOW) -> int:
    if v > LLONG_MAX or v < LLONG_MIN:
        raise CommandError(error)
    return v


def wrongtype() -> CommandError:
    return CommandError(WRONGTYPE)


def incr_float(old: bytes | None, by: bytes, not_float: str) -> bytes:
    """
    C{old} (a missing value counts as 0) plus C{by}, as INCRBYFLOAT and HINCRBYFLOAT
    compute and print it (long double); C{not_float}: the error when C{old} is no number.
    """
    if old is not None and not longdouble.valid_float(old):
        raise CommandError(not_float)
    r = longdouble.incr_float(old if old is not None else b"0", by)
    if r == "value":
        raise CommandError(not_float)
    if r == "result":
        raise CommandError("ERR increment would produce NaN or Infinity")
    assert isinstance(r, bytes)
    return r


def expire_at(c: Any, key: bytes, when: int) -> None:
    """
    Give C{key} the absolute expiry C{when} (ms, Unix time): deleted at once when that
    is past (not while the AOF is replayed), and C{c.also} says it to the AOF the way
    Redis propagates it (C{DEL}, or C{PEXPIREAT} with the absolute time).
    """
    store = c.store
    if when <= store.now_ms() and not store.loading:
        store.drop(key)
        c.also = [[b"DEL", key]]
    else:
        store.set_expire(key, when)
        store.dirty += 1
        c.also = [[b"PEXPIREAT", key, b"%d" % when]]


def wrong_arity(name: str) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name}' command")


def _register_all() -> None:
    import importlib

    for module in (
        "strings",
        "keys",
        "containers",
        "extras",
        "connection",
        "server",
        "pubsub",
        "databases",
        "blocklists",
        "security",
        "clients",
        "shard",
        "ops",
    ):
        importlib.import_module(f"portsuite_services.kv.commands.{module}")
    for module in ("streams", "hyperloglog", "bitops", "keyspace", "zsets", "geo", "sort"):
        importlib.import_module(f"portsuite_services.kv.commands.{module}")


_register_all()
