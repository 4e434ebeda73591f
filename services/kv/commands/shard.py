"""
Sharded pub/sub: SSUBSCRIBE SUNSUBSCRIBE SPUBLISH, PUBSUB SHARDCHANNELS/SHARDNUMSUB.
A standalone Redis 7 is one shard: shard channels are channels of their own
(no patterns), counted apart from the others.
"""

from __future__ import annotations

from typing import Any

from portsuite_services.kv.commands import command
from portsuite_services.kv.commands.pubsub import subscribing, unsubscribing
from portsuite_services.kv.delivery import publish

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
    return subscribing(c, argv, b"ssubscribe", "shards", c.server.shards, lambda: len(c.shards))


@command(
    "sunsubscribe",
    -1,
    "pubsub noscript loading stale",
    P,
    "Stop listening for messages posted to the given shard channels",
    keys=(1, -1, 1),
)
def sunsubscribe(c: Any, argv: list[bytes]) -> Any:
    return unsubscribing(c, argv, b"sunsubscribe", "shards", c.server.shards, lambda: len(c.shards))


@command(
    "spublish",
    3,
    "pubsub loading stale fast",
    P,
    "Post a message to a shard channel",
    keys=(1, 1, 1),
)
def spublish(c: Any, argv: list[bytes]) -> Any:
    return publish(c, argv, shard=True)
