"""Generic key commands: DEL EXISTS TYPE KEYS SCAN RENAME EXPIRE TTL ..."""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from itertools import islice
from typing import Any

from portsuite_services.kv import bigreply, bigwork, glob, notify, randompick
from portsuite_services.kv import scan as cursors
from portsuite_services.kv.commands import (
    NO_REPLY,
    NO_SUCH_KEY,
    SYNTAX,
    CommandError,
    command,
    expire_at,
    to_int,
)
from portsuite_services.kv.resp import LLONG_MAX, LLONG_MIN, Simple, string2ll

G = "generic"


@command("del", -2, "write", G, "Delete a key", keys=(1, -1, 1))
def del_(c: Any, argv: list[bytes]) -> Any:
    drop = c.store.drop  # a big value is freed a slice at a time, DEL as UNLINK
    if len(argv) > bigwork.ARGS:  # a million keys: deleted a slice at a time
        gone = notify.teller(c, "g", "del")
        n = bigwork.applied(c, argv, 2 * len(argv), lambda: _dropped(c.store, argv, gone))
        if n is not NO_REPLY and n:
            c.store.dirty += 1  # (the last change: the dispatch sees the command's)
        return n
    return sum(1 for key in argv[1:] if drop(key))


def _dropped(
    store: Any, argv: list[bytes], gone: Callable[[bytes], None] | None
) -> bigwork.Steps[int]:
    """DEL's keys dropped, a piece a step, C{gone(key)} for each: how many there were."""
    drop = store.drop
    n = 0
    if gone is None:
        for lo in range(1, len(argv), bigwork.PIECE):
            n += sum(1 for key in argv[lo : lo + bigwork.PIECE] if drop(key))
            yield
    else:  # (an event each: smaller pieces)
        for lo in range(1, len(argv), bigwork.PIECE // 4):
            for key in argv[lo : lo + bigwork.PIECE // 4]:
                if drop(key):
                    n += 1
                    gone(key)
            yield
    store.dirty -= n > 0  # (counted again by the command, when it runs again)
    return n


@command("unlink", -2, "write fast", G, "Delete a key asynchronously", keys=(1, -1, 1))
def unlink(c: Any, argv: list[bytes]) -> Any:
    return del_(c, argv)


@command("exists", -2, "readonly fast", G, "Determine if a key exists", keys=(1, -1, 1))
def exists(c: Any, argv: list[bytes]) -> Any:
    get = c.store.get
    if len(argv) > bigwork.ARGS:  # a million keys: looked up in slices
        counts = bigwork.each(
            c, argv, 1, lambda keys: [sum(1 for k in keys if get(k) is not None)], 2
        )
        return counts if counts is NO_REPLY else sum(counts)
    return sum(1 for key in argv[1:] if get(key) is not None)


@command("type", 2, "readonly fast", G, "Determine the type stored at key")
def type_(c: Any, argv: list[bytes]) -> Any:
    v = c.store.get(argv[1])
    return Simple("none" if v is None else c.store.type_name(v))


@command("keys", 2, "readonly", G, "Find all keys matching the given pattern", keys=(0, 0, 0))
def keys(c: Any, argv: list[bytes]) -> Any:
    pattern = argv[1]
    store = c.store
    found = bigwork.compute(c, argv, len(store.data), lambda: _matching(store, pattern))
    if found is NO_REPLY:
        return found
    return bigreply.array(c, found, own=True)


def _matching(store: Any, pattern: bytes) -> bigwork.Steps[list[bytes]]:
    """The live keys matching C{pattern}, a piece of the keyspace a step."""
    match = glob.match
    expires = store.expires
    now = store.now_ms()
    out: list[bytes] = []
    it = iter(store.data)
    for _ in range(0, len(store.data), bigwork.PIECE):
        piece = list(islice(it, bigwork.PIECE))
        if expires:
            piece = [k for k in piece if k not in expires or expires[k] > now]
        if pattern != b"*":
            piece = [k for k in piece if match(pattern, k)]
        out += piece
        yield
    return out


def scan_reply(
    coll: Collection[bytes],
    cursor_raw: bytes,
    argv: list[bytes],
    start: int,
    c: Any,
    with_type: bool,
    present: Callable[[bytes], bool] | None = None,
    value: Callable[[bytes], bytes] | None = None,
) -> tuple[int, list[bytes]] | None:
    """
    One SCAN-family call over the live collection C{coll} (L{cursors.steps}: O(COUNT)
    once the scan has started); C{present} tells whether an element is still there
    (None: any element of C{coll} is);
    with C{value}, each element is followed by its value (HSCAN, ZSCAN). A call of
    many elements (a new scan's snapshot, a COUNT of a million) runs in slices, the
    page a piece at a time, matched and paired as it goes: None meanwhile (the
    command answers when it runs again, see bigwork.py).
    """
    cursor = string2ll(cursor_raw)
    if cursor is None or cursor < 0:
        raise CommandError("ERR invalid cursor")
    count = 10
    pattern = None
    type_filter = None
    j = start
    while j < len(argv):
        opt = argv[j].lower()
        left = len(argv) - j - 1
        if opt == b"count" and left >= 1:
            count = to_int(argv[j + 1])
            if count < 1:
                raise CommandError(SYNTAX)
            j += 2
        elif opt == b"match" and left >= 1:
            pattern = argv[j + 1]
            j += 2
        elif opt == b"type" and left >= 1 and with_type:
            type_filter = argv[j + 1].decode("latin-1").lower()
            j += 2
        else:
            raise CommandError(SYNTAX)
    if not coll:
        return 0, []
    if pattern == b"*":
        pattern = None
    snaps = c.server.scans
    at = cursors.where(snaps, coll, cursor)
    if present is None and at[2] is not None:  # (a snapshot taken now holds what is there)
        present = coll.__contains__
    keep = _keeper(c, present, pattern, type_filter, value)
    filtered = pattern is not None or type_filter is not None or value is not None
    weight = cursors.FILTERED if filtered else 1
    if pattern is not None:  # (a match costs up to the pattern's length times the key's)
        weight *= 1 + len(pattern) // 16
    r = bigwork.compute(
        c,
        argv,
        cursors.cost(coll, count, at[1], at[2], weight),
        lambda: cursors.steps(snaps, coll, count, keep, c.id, at, max(1, bigwork.PIECE // weight)),
    )
    return None if r is NO_REPLY else r  # type: ignore[no-any-return]


def _keeper(
    c: Any,
    present: Callable[[bytes], bool] | None,
    pattern: bytes | None,
    type_filter: str | None,
    value: Callable[[bytes], bytes] | None,
) -> cursors.Keep:
    """What a SCAN call answers of a piece of its page (Redis's order: MATCH, then TYPE)."""
    match = glob.match
    store = c.store

    def keep(xs: list[bytes]) -> list[bytes]:
        if pattern is not None:
            xs = [x for x in xs if match(pattern, x)]
        if type_filter is not None:
            get, name = store.get, store.type_name
            xs = [k for k in xs if (v := get(k)) is not None and name(v) == type_filter]
        elif present is not None:
            xs = [x for x in xs if present(x)]
        if value is None:
            return xs
        flat: list[bytes] = []
        for x in xs:
            flat += (x, value(x))
        return flat

    return keep


@command("scan", -2, "readonly", G, "Incrementally iterate the keys space", keys=(0, 0, 0))
def scan(c: Any, argv: list[bytes]) -> Any:
    store = c.store
    # (without TTLs every key there is live; else an expired one is left out, as Redis)
    live = (lambda k: store.get(k) is not None) if store.expires else None
    r = scan_reply(store.data, argv[1], argv, 2, c, True, live)
    if r is None:
        return NO_REPLY
    return [b"%d" % r[0], r[1]]


@command("randomkey", 1, "readonly", G, "Return a random key from the keyspace", keys=(0, 0, 0))
def randomkey(c: Any, argv: list[bytes]) -> Any:
    store = c.store
    expires = store.expires
    if getattr(c, "precomputed", None) is None:  # (not when its live keys are found)
        for _ in range(100):  # a key at random, not a copy of them all; an expired one: again
            if not store.data:
                return None
            key = randompick.one(store.data)
            if key not in expires or store.get(key) is not None:
                return key
    # mostly expired keys: the live ones, a piece of the keyspace a step (600,000 keys
    # told apart at once held the suite 0.5 s)
    live = bigwork.compute(c, argv, len(store.data), lambda: _matching(store, b"*"))
    if live is NO_REPLY:
        return live
    return random.choice(live) if live else None


def _rename(c: Any, argv: list[bytes], nx: bool) -> Any:
    store = c.store
    old, new = argv[1], argv[2]
    if store.get(old) is None:
        raise CommandError(NO_SUCH_KEY)
    if old == new:
        return 0 if nx else Simple("OK")
    if nx and store.get(new) is not None:
        return 0
    store.get(new)
    store.rename(old, new)
    return 1 if nx else Simple("OK")


@command("rename", 3, "write", G, "Rename a key", keys=(1, 2, 1))
def rename(c: Any, argv: list[bytes]) -> Any:
    return _rename(c, argv, False)


@command(
    "renamenx",
    3,
    "write fast",
    G,
    "Rename a key, only if the new key does not exist",
    keys=(1, 2, 1),
)
def renamenx(c: Any, argv: list[bytes]) -> Any:
    return _rename(c, argv, True)


def _expire(c: Any, argv: list[bytes], unit: int, absolute: bool, name: str) -> Any:
    flags = set()
    for raw in argv[3:]:
        opt = raw.lower()
        if opt in (b"nx", b"xx", b"gt", b"lt"):
            flags.add(opt)
        else:
            raise CommandError(f"ERR Unsupported option {raw.decode('utf-8', 'replace')}")
    if b"nx" in flags and (b"xx" in flags or b"gt" in flags or b"lt" in flags):
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if b"gt" in flags and b"lt" in flags:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    when = to_int(argv[2])
    invalid = CommandError(f"ERR invalid expire time in '{name}' command")
    if unit == 1000:
        if when > LLONG_MAX // 1000 or when < -(-LLONG_MIN // 1000):
            raise invalid
        when *= 1000
    store = c.store
    if not absolute:
        now = store.now_ms()
        if when > LLONG_MAX - now:
            raise invalid
        when += now
    key = argv[1]
    if store.get(key) is None:
        return 0
    if flags:
        cur = store.ttl_ms(key)
        if b"nx" in flags and cur != -1:
            return 0
        if b"xx" in flags and cur == -1:
            return 0
        if b"gt" in flags and (cur == -1 or when <= cur):
            return 0
        if b"lt" in flags and cur != -1 and when >= cur:
            return 0
    expire_at(c, key, when)
    return 1


@command("expire", -3, "write fast", G, "Set a key's time to live in seconds")
def expire(c: Any, argv: list[bytes]) -> Any:
    return _expire(c, argv, 1000, False, "expire")


@command("pexpire", -3, "write fast", G, "Set a key's time to live in milliseconds")
def pexpire(c: Any, argv: list[bytes]) -> Any:
    return _expire(c, argv, 1, False, "pexpire")


@command("expireat", -3, "write fast", G, "Set the expiration for a key as a UNIX timestamp")
def expireat(c: Any, argv: list[bytes]) -> Any:
    return _expire(c, argv, 1000, True, "expireat")


@command(
    "pexpireat",
    -3,
    "write fast",
    G,
    "Set the expiration for a key as a UNIX timestamp in milliseconds",
)
def pexpireat(c: Any, argv: list[bytes]) -> Any:
    return _expire(c, argv, 1, True, "pexpireat")


def _ttl(c: Any, key: bytes, ms: bool, absolute: bool) -> int:
    store = c.store
    if store.get(key) is None:
        return -2
    when = store.ttl_ms(key)
    if when == -1:
        return -1
    ttl = when if absolute else when - store.now_ms()
    if ttl < 0:
        ttl = 0
    return ttl if ms else (ttl + 500) // 1000


@command("ttl", 2, "readonly fast", G, "Get the time to live for a key in seconds")
def ttl(c: Any, argv: list[bytes]) -> Any:
    return _ttl(c, argv[1], False, False)


@command("pttl", 2, "readonly fast", G, "Get the time to live for a key in milliseconds")
def pttl(c: Any, argv: list[bytes]) -> Any:
    return _ttl(c, argv[1], True, False)


@command("expiretime", 2, "readonly fast", G, "Get the expiration Unix timestamp for a key")
def expiretime(c: Any, argv: list[bytes]) -> Any:
    return _ttl(c, argv[1], False, True)


@command(
    "pexpiretime",
    2,
    "readonly fast",
    G,
    "Get the expiration Unix timestamp for a key in milliseconds",
)
def pexpiretime(c: Any, argv: list[bytes]) -> Any:
    return _ttl(c, argv[1], True, True)


@command("persist", 2, "write fast", G, "Remove the expiration from a key")
def persist(c: Any, argv: list[bytes]) -> Any:
    store = c.store
    if store.get(argv[1]) is None:
        return 0
    if store.persist(argv[1]):
        store.dirty += 1
        return 1
    return 0
