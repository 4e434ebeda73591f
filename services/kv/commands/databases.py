"""Databases (Redis's 16): MOVE SWAPDB COPY (SELECT, FLUSHDB/FLUSHALL and DBSIZE beside them)."""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

from portsuite_services.kv import bigwork
from portsuite_services.kv.commands import NO_REPLY, SYNTAX, CommandError, command
from portsuite_services.kv.lazyfree import effort
from portsuite_services.kv.resp import OK, string2ll
from portsuite_services.kv.sharded import KIND, SHARD_AT, new_like
from portsuite_services.kv.sharded import copy_steps as sharded_copy_steps
from portsuite_services.kv.stream import Stream
from portsuite_services.kv.zset import ZSet, sorted_list_steps

G = "generic"
SAME = "ERR source and destination objects are the same"
OUT_OF_RANGE = "ERR DB index is out of range"


def int_arg(raw: bytes, error: str | None = None) -> int:
    """Redis's C{getIntFromObjectOrReply}: a C int, with its two error texts."""
    v = string2ll(raw)
    if v is None:
        raise CommandError(error or "ERR value is not an integer or out of range")
    if not -(2**31) <= v < 2**31:
        raise CommandError(
            error or "ERR value is out of range, value must between -2147483648 and 2147483647"
        )
    return v


def db_index(c: Any, raw: bytes) -> Any:
    """A database number as Redis reads it (an int), checked against C{databases}."""
    db = int_arg(raw)
    if not 0 <= db < len(c.server.dbs):
        raise CommandError(OUT_OF_RANGE)
    return c.server.dbs[db]


def _changed(c: Any, store: Any, key: bytes) -> None:
    """A key of another database changed: its WATCHes fail, its blocked clients get a try."""
    if store is c.store:
        return
    c.server.touch(store, (key,))
    c.server.signal_ready(store, (key,))


@command("move", 3, "write fast", G, "Move a key to another database")
def move(c: Any, argv: list[bytes]) -> Any:
    src = c.store
    dst = db_index(c, argv[2])
    if dst is src:
        raise CommandError(SAME)
    key = argv[1]
    value = src.get(key)
    if value is None or dst.get(key) is not None:
        return 0
    when = src.ttl_ms(key)
    if key in src.raw:
        dst.set_raw(key, value)
    else:
        dst.set(key, value)
    if when != -1:
        dst.set_expire(key, when)
    src.delete(key)
    _changed(c, dst, key)
    return 1


def copy_value(v: Any) -> Any:
    """A copy of a stored value that shares nothing mutable with it."""
    t = type(v)
    if t is bytes:
        return v
    if t is dict or t is set or t is deque:
        return t(v)
    if hasattr(v, "copy"):
        return v.copy()
    return copy.deepcopy(v)


def copy_steps(v: Any) -> Any:
    """L{copy_value} a piece at a time (a bigwork generator: COPY of a million members)."""
    t = type(v)
    if t in KIND or ((t is dict or t is set) and len(v) > SHARD_AT):
        return (yield from sharded_copy_steps(v))  # (a big hash or set: sharded, see sharded.py)
    if t is dict or t is set:
        out: Any = t()
        yield from bigwork.fill(out.update, v.items() if t is dict else v)
        return out
    if t is deque:
        return deque((yield from bigwork.as_list(v)))
    if t is ZSet:
        pairs = yield from bigwork.as_list(v.sl)
        d: Any = new_like(dict, len(v))  # (a big one: sharded, see sharded.py)
        yield from bigwork.fill(d.update, v.dict.items())
        z = ZSet()
        z.dict = d
        z.sl = yield from sorted_list_steps(pairs)
        return z
    if t is Stream:
        return (yield from v.copy_steps())
    return copy_value(v)


@command("copy", -3, "write denyoom", G, "Copy a key", keys=(1, 2, 1))
def copy_(c: Any, argv: list[bytes]) -> Any:
    src = dst = c.store
    replace = False
    j = 3
    while j < len(argv):
        opt = argv[j].lower()
        if opt == b"replace":
            replace = True
        elif opt == b"db" and j + 1 < len(argv):
            dst = db_index(c, argv[j + 1])
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    key, new = argv[1], argv[2]
    if src is dst and key == new:
        raise CommandError(SAME)
    value = src.get(key)
    if value is None:
        return 0
    if dst.get(new) is not None and not replace:
        return 0
    if effort(value) < bigwork.BIG:
        made = copy_value(value)
    else:  # a big value: copied in slices (bigwork), then the command runs again with it
        made = bigwork.compute(c, argv, effort(value), lambda: copy_steps(value))
        if made is NO_REPLY:
            return made
    dst.drop(new)
    when = src.ttl_ms(key)
    if key in src.raw:  # (the copy keeps its encoding, as Redis's dupStringObject)
        dst.set_raw(new, value)
    else:
        dst.set(new, made)
    if when != -1:
        dst.set_expire(new, when)
    c.touched = [new] if dst is src else []  # the source is not changed
    _changed(c, dst, new)
    c.store.dirty += 1
    return 1


@command("swapdb", 3, "write fast", G, "Swaps two Redis databases", keys=(0, 0, 0))
def swapdb(c: Any, argv: list[bytes]) -> Any:
    server = c.server
    a = int_arg(argv[1], "ERR invalid first DB index")
    b = int_arg(argv[2], "ERR invalid second DB index")
    n = len(server.dbs)
    if not (0 <= a < n and 0 <= b < n):
        raise CommandError(OUT_OF_RANGE)
    c.store.dirty += 1
    if a == b:
        return OK
    one, two = server.dbs[a], server.dbs[b]
    for db, other in ((one, two), (two, one)):  # Redis's touchAllWatchedKeysInDb
        for key, watchers in db.watched.items():
            if key in db.data or key in other.data:
                for client in watchers:
                    if (db.id, key) in client.watching:  # (not one it is forgetting)
                        client.watch_dirty = True
    one.swap(two)
    for db in (one, two):  # clients blocked in either db may be served now
        server.signal_ready(db, [k for k in db.blocking if k in db.data])
    return OK
