"""
Keyspace notifications (Redis's C{notify-keyspace-events}): a change to a key is
published on C{__keyspace@<db>__:<key>} (the message is the event, e.g. C{lpush}) and
C{__keyevent@<db>__:<event>} (the message is the key), as Redis's C{notify.c}.

Which classes are sent is a string of Redis's letters: K (keyspace channel), E
(keyevent channel), g (generic: del expire rename…), $ (strings), l (lists), s
(sets), h (hashes), z (sorted sets), x (expired), e (evicted), t (streams), m (key
misses), d (module types), n (new keys), A (= g$lshzxetd). Set in the TOML
(C{notify_keyspace_events = "KEA"}) or with CONFIG SET notify-keyspace-events.

Off (the default), it costs one attribute test per command. On, the dispatcher
notes which of a command's keys exist before it runs (L{notify_before}) and, once a
write has changed something, publishes the events Redis publishes for it
(L{notify_after}, from the table L{EVENTS}). A command group that is not in the
table (sorted sets, streams…) calls L{notify} itself, one call per event::

    notify(c, "z", "zadd", key)

A command of many keys that runs in slices (DEL, UNLINK, MSET, MSETNX, MGET of a
million: bigwork.py) does not have them all looked up first: L{notify_before} answers
L{TOLD}, and its steps tell each key's events as they change it (L{teller}), in the
order and number Redis tells them (a key given twice: one "new", two "set" or
"keymiss"); the dispatcher then tells nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portsuite_services.kv.bigwork import ARGS
from portsuite_services.kv.delivery import announce_event
from portsuite_services.kv.resp import string2ll

KEYSPACE, KEYEVENT = 1, 2
CLASSES = {
    "g": 4,
    "$": 8,
    "l": 16,
    "s": 32,
    "h": 64,
    "z": 128,
    "x": 256,
    "e": 512,
    "t": 1024,
    "m": 2048,
    "d": 4096,
    "n": 8192,
}
ALL = sum(CLASSES[ch] for ch in "g$lshzxetd")  # 'A'
MISS = CLASSES["m"]
_ORDER = "g$lshzxetdn"


def parse_flags(text: str) -> int | None:
    """Redis's C{keyspaceEventsStringToFlags}: the bits, or None for a bad letter."""
    flags = 0
    for ch in text:
        if ch == "A":
            flags |= ALL
        elif ch == "K":
            flags |= KEYSPACE
        elif ch == "E":
            flags |= KEYEVENT
        elif ch in CLASSES:
            flags |= CLASSES[ch]
        else:
            return None
    return flags


def flags_text(flags: int) -> str:
    """Redis's C{keyspaceEventsFlagsToString} (what CONFIG GET shows)."""
    if flags & ALL == ALL:
        out = "A"
    else:
        out = "".join(ch for ch in _ORDER if flags & CLASSES[ch])
    if flags & KEYSPACE:
        out += "K"
    if flags & KEYEVENT:
        out += "E"
    if flags & CLASSES["m"]:
        out += "m"
    return out


def notify(c: Any, kind: str, event: str | bytes, key: bytes) -> None:
    """Publish the event C{event} of class C{kind} (a flag letter) on C{key} of c's db."""
    if c.server.notify_flags:
        notify_db(c.server, c.store.id, kind, event, key)


def notify_db(server: Any, db: int, kind: str, event: str | bytes, key: bytes) -> None:
    flags = server.notify_flags
    if not flags & CLASSES[kind]:
        return
    if isinstance(event, str):
        ev = _EVENT_BYTES.get(event)
        if ev is None:
            ev = _EVENT_BYTES[event] = event.encode()
    else:
        ev = event
    # (at once, or in slices after the command: delivery.py)
    announce_event(server, db, ev, key, flags & (KEYSPACE | KEYEVENT))


_EVENT_BYTES: dict[str, bytes] = {}  # (one bytes object per event name)


# -- what the dispatcher calls ---------------------------------------------------------


TOLD: dict[bytes, bool] = {}  # notify_before's answer when the command tells its own events
_TELLS = frozenset(
    ("del", "unlink", "mset", "msetnx", "mget", "touch")
)  # (with more than ARGS keys)


def notify_before(c: Any, cmd: Any, argv: list[bytes]) -> dict[bytes, bool] | None:
    """Which of the command's keys exist (for del/new events, and key misses of reads)."""
    server = c.server
    server.delivery_spent = 0  # (each command delivers a share of events at once)
    server.telling = False
    if not cmd.write and not server.notify_flags & CLASSES["m"]:
        return None
    if len(argv) > ARGS and cmd.name in _TELLS:
        server.telling = True
        return TOLD
    if not cmd.first_key or (cmd.parent or cmd.name) in _NO_MISS:
        return None
    if cmd.name in MISS_INLINE:  # (its lookups tell their misses; a write: its destination)
        return {argv[1]: c.store.get(argv[1]) is not None} if cmd.write else None
    last = cmd.last_key if cmd.last_key >= 0 else len(argv) + cmd.last_key
    get = c.store.get
    pre = {k: get(k) is not None for k in argv[cmd.first_key : last + 1 : cmd.key_step or 1]}
    if cmd.name in _STORE_OPTION:  # SORT … STORE dst: a key the key spec does not name
        dst = _store_key(argv)
        if dst is not None:
            pre[dst] = get(dst) is not None
    return pre


def missed(c: Any, key: bytes) -> None:
    """
    A command's lookup found no C{key}: Redis's "keymiss" (class m), told where the
    command looks the key up (L{MISS_INLINE}), so that a lookup before an error is told
    too, as Redis tells it; not again when a command whose work ran in slices runs
    again with its result (bigwork.py).
    """
    server = c.server
    if server.notify_flags & MISS and getattr(c, "precomputed", None) is None:
        notify_db(server, c.store.id, "m", "keymiss", key)


def teller(c: Any, kind: str, event: str) -> Callable[[bytes], None] | None:
    """
    For a command whose L{notify_before} was L{TOLD}: what tells C{event} (of class
    C{kind}) on one key as the command's steps reach it; None if it is not told.
    """
    server = c.server
    if not server.telling or not server.notify_flags & CLASSES[kind]:
        return None
    db = c.store.id
    ev = event.encode()
    return lambda key: notify_db(server, db, kind, ev, key)


def _store_key(argv: list[bytes]) -> bytes | None:
    for i in range(len(argv) - 2, 1, -1):
        if argv[i].lower() in (b"store", b"storedist"):
            return argv[i + 1]
    return None


def notify_after(
    c: Any, cmd: Any, argv: list[bytes], reply: Any, pre: Any, changed: bool = True
) -> None:
    """The events of a command that ran: key misses of its reads, then its changes."""
    if pre is TOLD:  # (its steps told them)
        return
    if pre and c.server.notify_flags & CLASSES["m"]:
        if not cmd.write:  # (each time a key is given, as Redis looks it up each time)
            last = cmd.last_key if cmd.last_key >= 0 else len(argv) + cmd.last_key
            missed: Any = argv[cmd.first_key : last + 1 : cmd.key_step or 1]
        else:  # a write's lookups that are reads in Redis (GETDEL, COPY's source…)
            reads = _READ_LOOKUPS.get(cmd.name)
            missed = reads(argv) if reads is not None else ()
        for key in missed:
            if pre.get(key) is False:
                notify(c, "m", "keymiss", key)
    if not cmd.write or not changed:
        return
    pre = pre or {}
    if c.server.notify_flags & CLASSES["n"] and cmd.name not in _NEW_INLINE:
        data = c.store.data
        for key, existed in pre.items():
            if not existed and key in data:
                notify(c, "n", "new", key)
    spec = EVENTS.get(cmd.fullname)  # "xgroup|create" for a subcommand
    if spec is not None:
        spec(c, argv, reply, pre)


def _gone(c: Any, key: bytes, pre: dict[bytes, bool]) -> None:
    """An emptied container was deleted: Redis's "del" after the command's event."""
    if pre.get(key) and key not in c.store.data:
        notify(c, "g", "del", key)


def _new(c: Any, key: bytes, pre: Any, db: Any = None) -> None:
    """Redis's "new" (class n) for a key the command created (in db C{db}, else c's)."""
    server = c.server
    if not server.notify_flags & CLASSES["n"]:
        return
    if db is None:
        if not pre.get(key) and key in c.store.data:
            notify(c, "n", "new", key)
    elif key in db.data:
        notify_db(server, db.id, "n", "new", key)


def _simple(kind: str, event: str, step: int = 1) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        added: set[bytes] = set()
        for key in argv[1 : len(argv) if step > 1 else 2 : step]:
            if step > 1 and key not in added:  # MSET: a key's "new" before its first "set"
                added.add(key)
                _new(c, key, pre)
            notify(c, kind, event, key)

    return spec


def _and_gone(kind: str, event: str) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        notify(c, kind, event, argv[1])
        _gone(c, argv[1], pre)

    return spec


def _set(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    notify(c, "$", "set", argv[1])
    also = c.also
    if also and b"PXAT" in also[0]:
        notify(c, "g", "expire", argv[1])


def _del(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    data = c.store.data
    for key, existed in pre.items():
        if existed and key not in data:
            notify(c, "g", "del", key)


def _expire(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    also = c.also
    if also and also[0][0] == b"DEL":
        notify(c, "g", "del", argv[1])
    else:
        notify(c, "g", "expire", argv[1])


def _getex(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    also = c.also
    if also:
        kind = also[0][0]
        event = "del" if kind == b"DEL" else "persist" if kind == b"PERSIST" else "expire"
        notify(c, "g", event, argv[1])


def _rename(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    notify(c, "g", "rename_from", argv[1])
    notify(c, "g", "rename_to", argv[2])


def _move(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    db = string2ll(argv[2])
    if db is not None:
        _new(c, argv[1], {}, c.server.dbs[db])
    notify(c, "g", "move_from", argv[1])
    if db is not None and c.server.notify_flags:
        notify_db(c.server, db, "g", "move_to", argv[1])


def _copy(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    db = c.store.id
    for i in range(3, len(argv) - 1):
        if argv[i].lower() == b"db":
            db = string2ll(argv[i + 1]) or 0
    if c.server.notify_flags & CLASSES["n"]:  # a copy is always added anew (dbAdd)
        notify_db(c.server, db, "n", "new", argv[2])
    if c.server.notify_flags:
        notify_db(c.server, db, "g", "copy_to", argv[2])


def _side(b: bytes) -> str:
    return "l" if b.lower() == b"left" else "r"


def _lmove_events(c: Any, src: bytes, dst: bytes, frm: str, to: str, pre: Any) -> None:
    notify(c, "l", f"{to}push", dst)
    notify(c, "l", f"{frm}pop", src)
    _gone(c, src, pre)


def _rpoplpush(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    _lmove_events(c, argv[1], argv[2], "r", "l", pre)


def _lmove(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    _lmove_events(c, argv[1], argv[2], _side(argv[3]), _side(argv[4]), pre)


def _bpop(side: str) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        if isinstance(reply, list) and reply:
            notify(c, "l", f"{side}pop", reply[0])
            _gone(c, reply[0], pre)

    return spec


def _mpop(numkeys_at: int) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        if not (isinstance(reply, list) and reply):
            return
        n = string2ll(argv[numkeys_at]) or 0
        side = _side(argv[numkeys_at + n + 1])
        notify(c, "l", f"{side}pop", reply[0])
        if reply[0] not in c.store.data:
            notify(c, "g", "del", reply[0])

    return spec


def _smove(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    notify(c, "s", "srem", argv[1])
    _gone(c, argv[1], pre)
    _new(c, argv[2], pre)
    if c.touched is None:  # the member was not in the destination already
        notify(c, "s", "sadd", argv[2])


def _store(event: str, kind: str = "s", at: int = 1) -> Callable[..., None]:
    """A command that stores its result in argv[at]: its event, or "del" when empty."""

    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        dst = argv[at]
        if dst in c.store.data:
            notify(c, kind, event, dst)
        elif pre.get(dst):
            notify(c, "g", "del", dst)

    return spec


def _store_option(event: str, kind: str) -> Callable[..., None]:
    """SORT … STORE dst, GEORADIUS … STORE|STOREDIST dst: as L{_store}, when given."""

    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        dst = _store_key(argv)
        if dst is None:
            return
        if dst in c.store.data:
            notify(c, kind, event, dst)
        elif pre.get(dst):
            notify(c, "g", "del", dst)

    return spec


def _zadd(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    incr = any(a.lower() == b"incr" for a in argv[2:-2])
    notify(c, "z", "zincr" if incr else "zadd", argv[1])


def _bzpop(event: str) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        if isinstance(reply, list) and reply:
            notify(c, "z", event, reply[0])
            _gone(c, reply[0], pre)

    return spec


def _zmpop(numkeys_at: int) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        if not (isinstance(reply, list) and reply):
            return
        n = string2ll(argv[numkeys_at]) or 0
        side = argv[numkeys_at + n + 1].lower()
        notify(c, "z", "zpopmin" if side == b"min" else "zpopmax", reply[0])
        if reply[0] not in c.store.data:
            notify(c, "g", "del", reply[0])

    return spec


def _bitop(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    if argv[2] in c.store.data:
        notify(c, "$", "set", argv[2])
    elif pre.get(argv[2]):
        notify(c, "g", "del", argv[2])


def _if_some(kind: str, event: str) -> Callable[..., None]:
    """Told only when the reply counts something done (XDEL, XTRIM: how many went)."""

    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        if reply:
            notify(c, kind, event, argv[1])
            _gone(c, argv[1], pre)

    return spec


def _xgroup(event: str, at: int = 2, always: bool = False) -> Callable[..., None]:
    def spec(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
        # +OK, or 1 (a consumer made, a group destroyed); DELCONSUMER answers how many
        # entries were pending (0 too): it is told whenever it changed something
        if reply or always:
            notify(c, "t", event, argv[at])

    return spec


def _setex(c: Any, argv: list[bytes], reply: Any, pre: Any) -> None:
    notify(c, "$", "set", argv[1])
    notify(c, "g", "expire", argv[1])


EVENTS: dict[str, Callable[[Any, list[bytes], Any, Any], None]] = {
    # strings
    "set": _set,
    "setnx": _simple("$", "set"),
    "getset": _simple("$", "set"),
    "setex": _setex,
    "psetex": _setex,
    "mset": _simple("$", "set", 2),
    "msetnx": _simple("$", "set", 2),
    "append": _simple("$", "append"),
    "setrange": _simple("$", "setrange"),
    "incr": _simple("$", "incrby"),
    "decr": _simple("$", "incrby"),
    "incrby": _simple("$", "incrby"),
    "decrby": _simple("$", "incrby"),
    "incrbyfloat": _simple("$", "incrbyfloat"),
    "getdel": _simple("g", "del"),
    "getex": _getex,
    "setbit": _simple("$", "setbit"),
    # keys
    "del": _del,
    "unlink": _del,
    "expire": _expire,
    "pexpire": _expire,
    "expireat": _expire,
    "pexpireat": _expire,
    "persist": _simple("g", "persist"),
    "rename": _rename,
    "renamenx": _rename,
    "move": _move,
    "copy": _copy,
    # lists
    "lpush": _simple("l", "lpush"),
    "lpushx": _simple("l", "lpush"),
    "rpush": _simple("l", "rpush"),
    "rpushx": _simple("l", "rpush"),
    "lpop": _and_gone("l", "lpop"),
    "rpop": _and_gone("l", "rpop"),
    "linsert": _simple("l", "linsert"),
    "lset": _simple("l", "lset"),
    "lrem": _and_gone("l", "lrem"),
    "ltrim": _and_gone("l", "ltrim"),
    "rpoplpush": _rpoplpush,
    "brpoplpush": _rpoplpush,
    "lmove": _lmove,
    "blmove": _lmove,
    "blpop": _bpop("l"),
    "brpop": _bpop("r"),
    "lmpop": _mpop(1),
    "blmpop": _mpop(2),
    # hashes
    "hset": _simple("h", "hset"),
    "hmset": _simple("h", "hset"),
    "hsetnx": _simple("h", "hset"),
    "hincrby": _simple("h", "hincrby"),
    "hincrbyfloat": _simple("h", "hincrbyfloat"),
    "hdel": _and_gone("h", "hdel"),
    # sets
    "sadd": _simple("s", "sadd"),
    "srem": _and_gone("s", "srem"),
    "spop": _and_gone("s", "spop"),
    "smove": _smove,
    "sinterstore": _store("sinterstore"),
    "sunionstore": _store("sunionstore"),
    "sdiffstore": _store("sdiffstore"),
    # sorted sets, geo, SORT
    "zadd": _zadd,
    "zincrby": _simple("z", "zincr"),
    "zrem": _and_gone("z", "zrem"),
    "zremrangebyscore": _and_gone("z", "zremrangebyscore"),
    "zremrangebyrank": _and_gone("z", "zremrangebyrank"),
    "zremrangebylex": _and_gone("z", "zremrangebylex"),
    "zpopmin": _and_gone("z", "zpopmin"),
    "zpopmax": _and_gone("z", "zpopmax"),
    "bzpopmin": _bzpop("zpopmin"),
    "bzpopmax": _bzpop("zpopmax"),
    "zmpop": _zmpop(1),
    "bzmpop": _zmpop(2),
    "zunionstore": _store("zunionstore", "z"),
    "zinterstore": _store("zinterstore", "z"),
    "zdiffstore": _store("zdiffstore", "z"),
    "zrangestore": _store("zrangestore", "z"),
    "geoadd": _simple("z", "zadd"),
    "geosearchstore": _store("geosearchstore", "z"),
    "georadius": _store_option("georadiusstore", "z"),
    "georadiusbymember": _store_option("georadiusstore", "z"),
    "sort": _store_option("sortstore", "l"),
    # strings: bitmaps, HyperLogLog; RESTORE
    "bitop": _bitop,
    "bitfield": _simple("$", "setbit"),
    "pfadd": _simple("$", "pfadd"),
    "pfmerge": _simple("$", "pfadd"),
    "restore": _simple("g", "restore"),
    # streams
    "xadd": _simple("t", "xadd"),
    "xtrim": _if_some("t", "xtrim"),
    "xdel": _if_some("t", "xdel"),
    "xsetid": _simple("t", "xsetid"),
    "xgroup|create": _xgroup("xgroup-create"),
    "xgroup|setid": _xgroup("xgroup-setid"),
    "xgroup|destroy": _xgroup("xgroup-destroy"),
    "xgroup|createconsumer": _xgroup("xgroup-createconsumer"),
    "xgroup|delconsumer": _xgroup("xgroup-delconsumer", always=True),
}
# writes whose lookups of argv[n:] (SINTERSTORE…) or argv[n] are reads (a key miss is told)
_READ_LOOKUPS: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "getdel": lambda argv: argv[1:2],
    "getex": lambda argv: argv[1:2],
    "copy": lambda argv: argv[1:2],
    "sort": lambda argv: argv[1:2],  # (not its STORE destination)
    "georadius": lambda argv: argv[1:2],
    "georadiusbymember": lambda argv: argv[1:2],
    "zrangestore": lambda argv: argv[2:3],  # (its source, not its destination)
    "geosearchstore": lambda argv: argv[2:3],
    "bitop": lambda argv: argv[3:],  # (its sources)
    "bitfield": lambda argv: argv[1:2] if _gets_only(argv) else [],
}


def _gets_only(argv: list[bytes]) -> bool:
    """BITFIELD of GETs only, which Redis looks up as a read (SET, INCRBY: a write)."""
    return not any(a.lower() in (b"set", b"incrby") for a in argv[2:])


# commands whose handlers tell their own key misses (L{missed}), each as it looks its
# keys up: many keys in slices, and those looked up before an error (WRONGTYPE) too
MISS_INLINE = frozenset(
    (
        "sinter",
        "sunion",
        "sdiff",
        "sinterstore",
        "sunionstore",
        "sdiffstore",
        "pfcount",
        "pfmerge",
    )
)
_STORE_OPTION = frozenset(("sort", "georadius", "georadiusbymember"))
# commands whose "new" events come inside their own (specs call _new)
_NEW_INLINE = frozenset(("mset", "msetnx", "move", "copy", "smove"))
# reads that look a key up without a key-miss event in Redis
_NO_MISS = frozenset(("scan", "keys", "object", "watch"))
