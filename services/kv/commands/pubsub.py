"""Pub/sub: SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB (RESP3 pushes)."""

from __future__ import annotations

from collections.abc import MutableSet
from typing import Any

from portsuite_services.kv import delivery
from portsuite_services.kv.bigwork import Steps, as_list, compute, sort
from portsuite_services.kv.commands import (
    NO_REPLY,
    CommandError,
    command,
    help_reply,
    to_int,
    wrong_arity,
)
from portsuite_services.kv.delivery import Subscriptions, in_pieces
from portsuite_services.kv.glob import matches, tokens
from portsuite_services.kv.sharded import SHARD_AT, ShardedSet

P = "pubsub"


# -- pub/sub ---------------------------------------------------------------------
#
# A command naming a million channels (or UNSUBSCRIBE of all of a client's million)
# runs in slices (bigwork.compute: the server busy meanwhile), its confirmations
# sent a piece at a time; PUBLISH delivers in slices when it has much to do
# (delivery.py).

PIECE = 512  # channels (un)subscribed, and confirmations encoded, per step
# what a channel (un)subscribed costs, in bigwork's elements (a C-level set operation
# on one): a few microseconds of Python, so 2,048 channels are what runs at once
SUBSCRIBE_COST = 16
MATCH_COST = 4  # a channel name matched against a pattern (PUBSUB CHANNELS)


def subscribing(
    c: Any, argv: list[bytes], kind: bytes, attr: str, where: Subscriptions, count: Any
) -> Any:
    """
    (P|S)SUBSCRIBE: each name added to the client's set C{attr} and to C{where}, each
    confirmed (C{count()}: the client's count).
    """
    names = argv[1:]
    cost = len(names) * SUBSCRIBE_COST
    compute(c, argv, cost, lambda: _subscribe(c, names, kind, attr, where, count))
    return NO_REPLY


def _subscribe(
    c: Any, names: list[bytes], kind: bytes, attr: str, where: Subscriptions, count: Any
) -> Steps[None]:
    for piece in in_pieces(names, PIECE):
        mine = getattr(c, attr)
        if type(mine) is set and len(mine) + len(piece) > SHARD_AT:
            # past it, the client's set is sharded too: it never copies a big table at once
            mine = ShardedSet(mine)
            setattr(c, attr, mine)
        out: list[bytes] = []
        head = _head(c, kind)
        for ch in piece:
            if ch not in mine:
                mine.add(ch)
                where.add(ch, c)
            out.append(b"%s$%d\r\n%s\r\n:%d\r\n" % (head, len(ch), ch, count()))
        c.push_encoded(b"".join(out))
        yield


def _head(c: Any, kind: bytes) -> bytes:
    """The start of a confirmation (a push of 3: the kind, the name, the count)."""
    return b"%s3\r\n$%d\r\n%s\r\n" % (b">" if c.resp == 3 else b"*", len(kind), kind)


def unsubscribing(
    c: Any, argv: list[bytes], kind: bytes, attr: str, where: Subscriptions, count: Any
) -> Any:
    """(P|S)UNSUBSCRIBE: the names given, or all the client's (sorted), each confirmed."""
    mine = getattr(c, attr)
    cost = (len(argv) - 1 or len(mine)) * SUBSCRIBE_COST
    compute(c, argv, cost, lambda: _unsubscribe(c, argv[1:], kind, mine, where, count))
    return NO_REPLY


def _unsubscribe(
    c: Any,
    names: list[bytes],
    kind: bytes,
    mine: MutableSet[bytes],
    where: Subscriptions,
    count: Any,
) -> Steps[None]:
    if not names:
        if not mine:
            c.push([kind, None, count()])
            return
        names = yield from sort((yield from as_list(mine)))
    for piece in in_pieces(names, PIECE):
        out: list[bytes] = []
        head = _head(c, kind)
        for ch in piece:
            if ch in mine:
                mine.discard(ch)
                where.remove(ch, c)
            out.append(b"%s$%d\r\n%s\r\n:%d\r\n" % (head, len(ch), ch, count()))
        c.push_encoded(b"".join(out))
        yield


def _count(c: Any) -> int:
    return len(c.channels) + len(c.patterns)


def _sub(c: Any, argv: list[bytes], pattern: bool) -> Any:
    if pattern:
        return subscribing(c, argv, b"psubscribe", "patterns", c.server.patterns, lambda: _count(c))
    return subscribing(c, argv, b"subscribe", "channels", c.server.channels, lambda: _count(c))


def _unsub(c: Any, argv: list[bytes], pattern: bool) -> Any:
    if pattern:
        return unsubscribing(
            c, argv, b"punsubscribe", "patterns", c.server.patterns, lambda: _count(c)
        )
    return unsubscribing(c, argv, b"unsubscribe", "channels", c.server.channels, lambda: _count(c))


def names_matching(c: Any, argv: list[bytes], names: Any, pattern: bytes | None) -> Any:
    """PUBSUB CHANNELS, SHARDCHANNELS: the names matching C{pattern} (None: all)."""
    cost = len(names) * (1 if pattern is None else MATCH_COST)
    return compute(c, argv, cost, lambda: _matching(names, pattern))


def _matching(names: Any, pattern: bytes | None) -> Steps[list[bytes]]:
    every = yield from as_list(names)
    if pattern is None:
        return every
    toks = tokens(pattern)
    out: list[bytes] = []
    for piece in in_pieces(every, 2 * PIECE):
        out += [ch for ch in piece if matches(toks, ch)]
        yield
    return out


def numbers(c: Any, argv: list[bytes], where: Subscriptions) -> Any:
    """PUBSUB NUMSUB, SHARDNUMSUB: each channel and its number of subscribers."""
    return compute(c, argv, len(argv) * MATCH_COST, lambda: _numbers(argv[2:], where))


def _numbers(names: list[bytes], where: Subscriptions) -> Steps[list[Any]]:
    out: list[Any] = []
    for piece in in_pieces(names, 2 * PIECE):
        out += [x for ch in piece for x in (ch, len(where.get(ch, ())))]
        yield
    return out


@command(
    "subscribe",
    -2,
    "pubsub",
    P,
    "Listen for messages published to the given channels",
    keys=(0, 0, 0),
)
def subscribe(c: Any, argv: list[bytes]) -> Any:
    return _sub(c, argv, False)


@command(
    "psubscribe",
    -2,
    "pubsub",
    P,
    "Listen for messages published to channels matching the given patterns",
    keys=(0, 0, 0),
)
def psubscribe(c: Any, argv: list[bytes]) -> Any:
    return _sub(c, argv, True)


@command(
    "unsubscribe",
    -1,
    "pubsub",
    P,
    "Stop listening for messages posted to the given channels",
    keys=(0, 0, 0),
)
def unsubscribe(c: Any, argv: list[bytes]) -> Any:
    return _unsub(c, argv, False)


@command(
    "punsubscribe",
    -1,
    "pubsub",
    P,
    "Stop listening for messages posted to channels matching the given patterns",
    keys=(0, 0, 0),
)
def punsubscribe(c: Any, argv: list[bytes]) -> Any:
    return _unsub(c, argv, True)


@command("publish", 3, "pubsub fast", P, "Post a message to a channel", keys=(0, 0, 0))
def publish(c: Any, argv: list[bytes]) -> Any:
    return delivery.publish(c, argv)


PUBSUB_HELP = help_reply(
    "pubsub",
    (
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
    ),
)


@command("pubsub", -2, "", P, "Inspect the state of the Pub/Sub subsystem", keys=(0, 0, 0))
def pubsub(c: Any, argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    if sub == b"channels" and len(argv) <= 3:
        return names_matching(c, argv, c.server.channels, argv[2] if len(argv) == 3 else None)
    if sub == b"numsub":
        return numbers(c, argv, c.server.channels)
    if sub == b"numpat" and len(argv) == 2:
        return len(c.server.patterns)
    if sub == b"shardchannels" and len(argv) <= 3:
        return names_matching(c, argv, c.server.shards, argv[2] if len(argv) == 3 else None)
    if sub == b"shardnumsub":
        return numbers(c, argv, c.server.shards)
    if sub == b"help":
        if len(argv) != 2:
            raise wrong_arity("pubsub|help")
        return list(PUBSUB_HELP)
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode('utf-8', 'replace')}'. Try PUBSUB HELP."
    )


__all__ = ["to_int"]
