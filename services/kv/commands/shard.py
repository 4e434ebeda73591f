"""
Sharded pub/sub: SSUBSCRIBE SUNSUBSCRIBE SPUBLISH, PUBSUB SHARDCHANNELS/SHARDNUMSUB.
A standalone Redis 7 is one shard: shard channels are channels of their own
(no patterns), counted apart from the others.
"""

from __future__ import annotations

from typing import Any

from portsuite_services.kv import glob
from portsuite_services.kv.commands import NO_REPLY, command
from portsuite_services.kv.resp import Push

P = "pubsub"


@command(
    "ssubscribe",
    -2,
    "pubsub noscript loading stale",
    P,
    "Listen for messages published to the given shard channels",
    keys=(1, -1, 1),
)
def ssubscribe(c: Any, argv: list[bytes]) -> Any:
    where = c.server.shards
    for ch in argv[1:]:
        if ch not in c.shards:
            c.shards.add(ch)
            where.setdefault(ch, set()).add(c)
        c.push([b"ssubscribe", ch, len(c.shards)])
    return NO_REPLY


@command(
    "sunsubscribe",
    -1,
    "pubsub noscript loading stale",
    P,
    "Stop listening for messages posted to the given shard channels",
    keys=(1, -1, 1),
)
def sunsubscribe(c: Any, argv: list[bytes]) -> Any:
    where = c.server.shards
    targets = argv[1:] or sorted(c.shards)
    if not targets:
        c.push([b"sunsubscribe", None, 0])
    for ch in targets:
        if ch in c.shards:
            c.shards.discard(ch)
            subs = where.get(ch)
            if subs is not None:
                subs.discard(c)
                if not subs:
                    del where[ch]
        c.push([b"sunsubscribe", ch, len(c.shards)])
    return NO_REPLY


@command(
    "spublish",
    3,
    "pubsub loading stale fast",
    P,
    "Post a message to a shard channel",
    keys=(1, 1, 1),
)
def spublish(c: Any, argv: list[bytes]) -> Any:
    ch, msg = argv[1], argv[2]
    subs = list(c.server.shards.get(ch, ()))
    for sub in subs:
        sub.push(Push([b"smessage", ch, msg]))
    return len(subs)


def shardchannels(c: Any, pattern: bytes | None) -> list[bytes]:
    return [ch for ch in c.server.shards if pattern is None or glob.match(pattern, ch)]


def shardnumsub(c: Any, channels: list[bytes]) -> list[Any]:
    return [x for ch in channels for x in (ch, len(c.server.shards.get(ch, ())))]
