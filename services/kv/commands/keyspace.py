"""
Key-level Redis 7 commands and container extras: OBJECT, DUMP, RESTORE, LOLWUT,
LMPOP, HRANDFIELD, SSCAN. (COPY is the databases module's; it copies any value
that has a C{copy()}, streams included.)
"""

from __future__ import annotations

from collections import deque
from typing import Any

from portsuite_services.kv import bigreply, bigwork, glob, randompick, rdb, tuning
from portsuite_services.kv.commands import (
    NO_REPLY,
    NOT_INT,
    SYNTAX,
    CommandError,
    command,
    container,
    help_command,
    to_int,
    wrongtype,
)
from portsuite_services.kv.commands.connection import REDIS_VERSION
from portsuite_services.kv.commands.containers import _drop_if_empty, _get, pop_many, small_hash
from portsuite_services.kv.commands.keys import scan_reply
from portsuite_services.kv.resp import LLONG_MAX, NULL_ARRAY, OK, Map, Verbatim, string2ll
from portsuite_services.kv.sharded import kind
from portsuite_services.kv.zset import LISTPACK_LIMITS, listpack_fits

K = "generic"
MAX_RANDOM = 1 << 24  # HRANDFIELD key -COUNT: fields drawn at most (as SRANDMEMBER)
HASH_LIMITS = (512, 64)  # Redis 7.0's hash-max-listpack-entries and -value (by default)
SHARED_INTEGERS = 10000  # OBJ_SHARED_INTEGERS: their REFCOUNT is INT_MAX
OBJ_SHARED_REFCOUNT = 2147483647


# -- OBJECT -------------------------------------------------------------------------

container("object", K, "A container for object introspection commands")


def encoding(
    v: Any,
    zset_limits: tuple[int, int] = LISTPACK_LIMITS,
    hash_limits: tuple[int, int] = HASH_LIMITS,
) -> str:
    """
    The encoding Redis 7.0 would use for this value (its default thresholds; for a
    sorted set, C{zset_limits}: zset-max-listpack-entries and -value; for a hash,
    C{hash_limits}: hash-max-listpack-entries and -value).
    """
    t = kind(v)  # (a big hash or set, sharded, is one)
    if t is bytes:
        if len(v) <= 20 and string2ll(v) is not None:
            return "int"
        return "embstr" if len(v) <= 44 else "raw"
    if t is deque:
        return "quicklist"
    if t is dict:
        return "listpack" if small_hash(v, hash_limits) else "hashtable"
    if t is set:
        if len(v) <= 512 and all(string2ll(m) is not None for m in v):
            return "intset"
        return "hashtable"
    from portsuite_services.kv.store import TYPE_NAMES

    name = TYPE_NAMES.get(t, "")
    if name == "stream":
        return "stream"
    if name == "zset":
        return "listpack" if listpack_fits(v, zset_limits) else "skiplist"
    return "raw"


@command(
    "encoding",
    3,
    "readonly",
    K,
    "Inspect the internal encoding of a Redis object",
    keys=(2, 2, 1),
    parent="object",
)
def object_encoding(c: Any, argv: list[bytes]) -> Any:
    store = c.store
    v = store.get(argv[2])
    if v is None:
        return None
    if type(v) is bytes and argv[2] in store.raw:
        return b"raw"  # (APPEND, SETRANGE, SETBIT, BITOP, BITFIELD, PFADD… changed it)
    params = c.server.tuning
    return encoding(v, tuning.zset_limits(params), tuning.hash_limits(params)).encode()


@command(
    "freq",
    3,
    "readonly",
    K,
    "Get the logarithmic access frequency counter of a Redis object",
    keys=(2, 2, 1),
    parent="object",
)
def object_freq(c: Any, argv: list[bytes]) -> Any:
    if c.store.get(argv[2]) is None:
        return None
    raise CommandError(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some time "
        "to adjust."
    )


def _idle_since(c: Any) -> dict[bytes, int]:
    d = getattr(c.store, "idle_since", None)
    if d is None:
        d = c.store.idle_since = {}
    return d


@command(
    "idletime",
    3,
    "readonly",
    K,
    "Get the time since a Redis object was last accessed",
    keys=(2, 2, 1),
    parent="object",
)
def object_idletime(c: Any, argv: list[bytes]) -> Any:
    if c.store.get(argv[2]) is None:
        return None
    since = _idle_since(c).get(argv[2])
    if since is None:
        return 0
    return max(c.store.now_ms() - since, 0) // 1000


@command(
    "refcount",
    3,
    "readonly",
    K,
    "Get the number of references to the value of the key",
    keys=(2, 2, 1),
    parent="object",
)
def object_refcount(c: Any, argv: list[bytes]) -> Any:
    v = c.store.get(argv[2])
    if v is None:
        return None
    if type(v) is bytes:
        n = string2ll(v) if len(v) <= 20 else None
        if n is not None and 0 <= n < SHARED_INTEGERS:
            return OBJ_SHARED_REFCOUNT
    return 1


help_command(
    "object",
    K,
    (
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
    ),
)


# -- DUMP RESTORE -------------------------------------------------------------------


@command(
    "dump", 2, "readonly", K, "Return a serialized version of the value stored at the specified key"
)
def dump(c: Any, argv: list[bytes]) -> Any:
    v = c.store.get(argv[1])
    if v is None:
        return None
    if not rdb.dumpable(v):
        raise CommandError(
            f"ERR DUMP of a {c.store.type_name(v)} is not supported by kv (strings, lists, sets, "
            "hashes, sorted sets and streams are)"
        )
    limits = tuning.zset_limits(c.server.tuning)
    lzf = c.server.tuning.get("rdbcompression") != "no"
    return bigwork.compute(c, argv, rdb.effort(v), lambda: rdb.dump_steps(v, limits, lzf))


def _restored(payload: bytes, zset_limits: tuple[int, int]) -> bigwork.Steps[Any]:
    """RESTORE's value: the payload checked then read, in slices when big (bigwork.py)."""
    if not (yield from rdb.verify_steps(payload)):
        raise CommandError("ERR DUMP payload version or checksum are wrong")
    try:
        return (yield from rdb.load_steps(payload, zset_limits))
    except rdb.BadPayload:
        raise CommandError("ERR Bad data format") from None


@command("restore", -4, "write denyoom", K, "Create a key using the provided serialized value")
def restore(c: Any, argv: list[bytes]) -> Any:
    replace = absttl = False
    idle = freq = -1
    j = 4
    while j < len(argv):
        opt = argv[j].lower()
        more = j + 1 < len(argv)
        if opt == b"replace":
            replace = True
        elif opt == b"absttl":
            absttl = True
        elif opt == b"idletime" and more and freq == -1:
            idle = to_int(argv[j + 1])
            if idle < 0:
                raise CommandError("ERR Invalid IDLETIME value, must be >= 0")
            j += 1
        elif opt == b"freq" and more and idle == -1:
            freq = to_int(argv[j + 1])
            if freq < 0 or freq > 255:
                raise CommandError("ERR Invalid FREQ value, must be >= 0 and <= 255")
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    key = argv[1]
    store = c.store
    if not replace and store.get(key) is not None:
        raise CommandError("BUSYKEY Target key name already exists.")
    ttl = to_int(argv[2], NOT_INT)
    if ttl < 0:
        raise CommandError("ERR Invalid TTL value, must be >= 0")
    payload = argv[3]
    limits = tuning.zset_limits(c.server.tuning)
    value = bigwork.compute_growing(c, argv, len(payload) // 8, lambda: _restored(payload, limits))
    if value is NO_REPLY:
        return value
    existed = store.get(key) is not None
    if replace and existed:
        store.drop(key)
    now = store.now_ms()
    if ttl and not absttl:
        if ttl > LLONG_MAX - now:
            ttl = LLONG_MAX
        else:
            ttl += now
    if ttl and ttl <= now and not store.loading:
        c.also = [[b"DEL", key]] if existed else []
        store.dirty += 1
        return OK
    store.set(key, value)
    if ttl:
        store.set_expire(key, ttl)
    if idle >= 0:
        _idle_since(c)[key] = now - idle * 1000
    else:
        _idle_since(c).pop(key, None)
    c.also = [[b"RESTORE", key, b"%d" % ttl, payload, b"ABSTTL", b"REPLACE"]]
    return OK


# -- LOLWUT -------------------------------------------------------------------------


@command(
    "lolwut",
    -1,
    "readonly fast",
    "server",
    "Display some computer art and the Redis version",
    keys=(0, 0, 0),
)
def lolwut(c: Any, argv: list[bytes]) -> Any:
    j = 1
    while j < len(argv):
        if argv[j].lower() == b"version" and j + 1 < len(argv):
            to_int(argv[j + 1])
            j += 2
        else:
            j += 1
    return Verbatim(f"Redis ver. {REDIS_VERSION}\n")


# -- LMPOP HRANDFIELD SSCAN ---------------------------------------------------------


@command("lmpop", -4, "write", "list", "Pop elements from the first non-empty list", keys=(0, 0, 0))
def lmpop(c: Any, argv: list[bytes]) -> Any:
    numkeys = string2ll(argv[1])
    if numkeys is None or numkeys <= 0:
        raise CommandError("ERR numkeys should be greater than 0")
    where_at = 2 + numkeys
    if where_at >= len(argv):
        raise CommandError(SYNTAX)
    where = argv[where_at].lower()
    if where not in (b"left", b"right"):
        raise CommandError(SYNTAX)
    count = -1
    j = where_at + 1
    while j < len(argv):
        if argv[j].lower() == b"count" and j + 1 < len(argv) and count == -1:
            count = string2ll(argv[j + 1])  # type: ignore[assignment]
            if count is None or count <= 0:
                raise CommandError("ERR count should be greater than 0")
            j += 2
        else:
            raise CommandError(SYNTAX)
    if count == -1:
        count = 1
    keys = argv[2:where_at]
    start = bigwork.first(c, argv, keys, lambda key: _get(c, key, deque))
    if start is NO_REPLY:
        return start
    for key in keys[start:] if start else keys:
        lst = _get(c, key, deque)
        if not lst:
            continue
        n = min(count, len(lst))
        got = pop_many(c, argv, key, lst, n, where == b"left")
        if got is NO_REPLY:
            return got
        _drop_if_empty(c, key, lst)
        c.store.dirty += 1
        side = b"LPOP" if where == b"left" else b"RPOP"
        c.also = [[side, key, b"%d" % n]]
        c.touched = [key]
        return bigreply.keyed_array(c, key, got)
    return NULL_ARRAY


@command("hrandfield", -2, "readonly", "hash", "Get one or multiple random fields from a hash")
def hrandfield(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 4:
        raise CommandError(SYNTAX)
    withvalues = False
    if len(argv) == 4:
        if argv[3].lower() != b"withvalues":
            raise CommandError(SYNTAX)
        withvalues = True
    count = None
    if len(argv) >= 3:
        count = string2ll(argv[2])
        if count is None:
            raise CommandError(NOT_INT)
        if count < -LLONG_MAX:
            raise CommandError(
                "ERR value is out of range, value must between -9223372036854775807 and "
                "9223372036854775807"
            )
        if withvalues and (count < -LLONG_MAX // 2 or count > LLONG_MAX // 2):
            raise CommandError("ERR value is out of range")
    h = _get(c, argv[1], dict)
    if count is None:
        return randompick.one(h) if h else None
    if not h or count == 0:
        return []
    if count < 0 and -count > MAX_RANDOM:
        raise CommandError("ERR value is out of range")
    k = min(count, len(h)) if count > 0 else -count
    picked = randompick.pick(c, argv, h, k, count > 0, h if withvalues else None)
    if picked is NO_REPLY:  # (drawn in slices: the command runs again with the draw)
        return picked
    if not withvalues:
        return bigreply.array(c, picked, True)
    fields, values = picked
    if bigreply.possible(c, len(fields)):
        return bigreply.field_value_pairs(c, fields, values)
    if c.resp == 3:
        return [[f, v] for f, v in zip(fields, values, strict=True)]
    out: list[bytes] = []
    for pair in zip(fields, values, strict=True):
        out += pair
    return out


@command("sscan", -3, "readonly", "set", "Incrementally iterate Set elements")
def sscan(c: Any, argv: list[bytes]) -> Any:
    s = _get(c, argv[1], set)
    if s is None:
        scan_reply([], argv[2], argv, 3, c, False)  # validates the arguments
        return [b"0", []]
    if encoding(s) == "intset":  # Redis returns a small encoding whole
        scan_reply([], argv[2], argv, 3, c, False)
        pattern = None
        for j in range(3, len(argv) - 1, 2):
            if argv[j].lower() == b"match":
                pattern = argv[j + 1]
        return [b"0", [m for m in s if pattern is None or glob.match(pattern, m)]]
    r = scan_reply(s, argv[2], argv, 3, c, False)
    if r is None:
        return NO_REPLY
    return [b"%d" % r[0], r[1]]


_ = (Map, wrongtype)
