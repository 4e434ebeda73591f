"""Pub/sub: SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE PUBLISH PUBSUB (RESP3 pushes)."""

from __future__ import annotations

from typing import Any

from portsuite_services.kv import glob
from portsuite_services.kv.commands import (
    NO_REPLY,
    CommandError,
    command,
    help_reply,
    to_int,
    wrong_arity,
)
from portsuite_services.kv.resp import (
    Push,
)

P = "pubsub"


# -- pub/sub ---------------------------------------------------------------------


def _sub(c: Any, argv: list[bytes], pattern: bool) -> Any:
    kind = b"psubscribe" if pattern else b"subscribe"
    mine = c.patterns if pattern else c.channels
    where = c.server.patterns if pattern else c.server.channels
    for ch in argv[1:]:
        if ch not in mine:
            mine.add(ch)
            where.setdefault(ch, set()).add(c)
        c.push([kind, ch, len(c.channels) + len(c.patterns)])
    return NO_REPLY


def _unsub(c: Any, argv: list[bytes], pattern: bool) -> Any:
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    mine = c.patterns if pattern else c.channels
    where = c.server.patterns if pattern else c.server.channels
    targets = argv[1:] or sorted(mine)
    if not targets:
        c.push([kind, None, len(c.channels) + len(c.patterns)])
    for ch in targets:
        if ch in mine:
            mine.discard(ch)
            subs = where.get(ch)
            if subs is not None:
                subs.discard(c)
                if not subs:
                    del where[ch]
        c.push([kind, ch, len(c.channels) + len(c.patterns)])
    return NO_REPLY


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
    ch, msg = argv[1], argv[2]
    n = 0
    for sub in list(c.server.channels.get(ch, ())):
        sub.push(Push([b"message", ch, msg]))
        n += 1
    for pat, subs in list(c.server.patterns.items()):
        if glob.match(pat, ch):
            for sub in list(subs):
                sub.push(Push([b"pmessage", pat, ch, msg]))
                n += 1
    return n


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
        pat = argv[2] if len(argv) == 3 else None
        return [ch for ch in c.server.channels if pat is None or glob.match(pat, ch)]
    if sub == b"numsub":
        return [x for ch in argv[2:] for x in (ch, len(c.server.channels.get(ch, ())))]
    if sub == b"numpat" and len(argv) == 2:
        return len(c.server.patterns)
    if sub == b"shardchannels" and len(argv) <= 3:
        from portsuite_services.kv.commands.shard import shardchannels

        return shardchannels(c, argv[2] if len(argv) == 3 else None)
    if sub == b"shardnumsub":
        from portsuite_services.kv.commands.shard import shardnumsub

        return shardnumsub(c, argv[2:])
    if sub == b"help":
        if len(argv) != 2:
            raise wrong_arity("pubsub|help")
        return list(PUBSUB_HELP)
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode('utf-8', 'replace')}'. Try PUBSUB HELP."
    )


__all__ = ["to_int"]
