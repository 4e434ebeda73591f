"""String commands: SET GET INCR APPEND GETRANGE ... with Redis's replies and errors."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from portsuite_services.kv import bigstr, bigwork, longdouble, notify
from portsuite_services.kv.commands import (
    NO_REPLY,
    NOT_INT,
    OVERFLOW,
    SYNTAX,
    CommandError,
    check_overflow,
    command,
    expire_at,
    incr_float,
    to_int,
    wrong_arity,
    wrongtype,
)
from portsuite_services.kv.resp import LLONG_MAX, LLONG_MIN, OK, string2ll

VIEW = 1 << 20  # a GETRANGE this long answers a view of the value, not a copy (bigstr.py)

G = "string"


def get_string(c: Any, key: bytes) -> bytes | None:
    v = c.store.get(key)
    if v is None or type(v) is bytes:
        return v
    raise wrongtype()


def expire_ms(c: Any, raw: bytes, unit_ms: int, absolute: bool, cmd: str) -> int:
    """An EX/PX/EXAT/PXAT argument as an absolute time in ms (Redis's checks)."""
    v = to_int(raw)
    invalid = CommandError(f"ERR invalid expire time in '{cmd}' command")
    if v <= 0:
        raise invalid
    if unit_ms == 1000:
        if v > LLONG_MAX // 1000:
            raise invalid
        v *= 1000
    if not absolute:
        now = c.store.now_ms()
        if v > LLONG_MAX - now:
            raise invalid
        v += now
    return v


_UNITS = {b"ex": (1000, False), b"px": (1, False), b"exat": (1000, True), b"pxat": (1, True)}


def parse_set_options(argv: list[bytes], start: int, allow: str) -> dict[str, Any]:
    """Redis's parseExtendedStringArgumentsOrReply, for SET (allow "set") and GETEX."""
    opts: dict[str, Any] = {}
    j = start
    n = len(argv)
    while j < n:
        opt = argv[j].lower()
        nxt = argv[j + 1] if j + 1 < n else None
        if opt == b"nx" and allow == "set" and "xx" not in opts:
            opts["nx"] = True
        elif opt == b"xx" and allow == "set" and "nx" not in opts:
            opts["xx"] = True
        elif opt == b"get" and allow == "set":
            opts["get"] = True
        elif opt == b"keepttl" and allow == "set" and "persist" not in opts and "unit" not in opts:
            opts["keepttl"] = True
        elif (
            opt == b"persist" and allow == "getex" and "unit" not in opts and "keepttl" not in opts
        ):
            opts["persist"] = True
        elif (
            opt in _UNITS
            and nxt is not None
            and "unit" not in opts
            and "keepttl" not in opts
            and "persist" not in opts
        ):
            opts["unit"] = _UNITS[opt]
            opts["expire"] = nxt
            j += 1
        else:
            raise CommandError(SYNTAX)
        j += 1
    return opts


@command("set", -3, "write denyoom", G, "Set the string value of a key")
def set_(c: Any, argv: list[bytes]) -> Any:
    store = c.store
    key = argv[1]
    if len(argv) == 3:
        store.set(key, argv[2])
        return OK
    opts = parse_set_options(argv, 3, "set")
    when = None
    if "unit" in opts:
        unit, absolute = opts["unit"]
        when = expire_ms(c, opts["expire"], unit, absolute, "set")
    old = None
    if "get" in opts:
        old = get_string(c, key)
    found = store.get(key) is not None
    if ("nx" in opts and found) or ("xx" in opts and not found):
        return old if "get" in opts else None
    keepttl = "keepttl" in opts
    store.set(key, argv[2], keepttl=keepttl)
    if when is not None:
        store.set_expire(key, when)
        c.also = [[b"SET", key, argv[2], b"PXAT", b"%d" % when]]
    else:
        c.also = [[b"SET", key, argv[2]] + ([b"KEEPTTL"] if keepttl else [])]
    return old if "get" in opts else OK


@command("get", 2, "readonly fast", G, "Get the value of a key")
def get(c: Any, argv: list[bytes]) -> Any:
    v = c.store.get(argv[1])
    if v is None or type(v) is bytes:
        return v
    raise wrongtype()


@command(
    "getset", 3, "write denyoom fast", G, "Set the string value of a key and return its old value"
)
def getset(c: Any, argv: list[bytes]) -> Any:
    old = get_string(c, argv[1])
    c.store.set(argv[1], argv[2])
    return old


@command("getdel", 2, "write fast", G, "Get the value of a key and delete the key")
def getdel(c: Any, argv: list[bytes]) -> Any:
    old = get_string(c, argv[1])
    if old is not None:
        c.store.delete(argv[1])
        c.also = [[b"DEL", argv[1]]]
    return old


@command("getex", -2, "write fast", G, "Get the value of a key and optionally set its expiration")
def getex(c: Any, argv: list[bytes]) -> Any:
    opts = parse_set_options(argv, 2, "getex")
    key = argv[1]
    v = get_string(c, key)
    if v is None:
        return None
    when = None
    if "unit" in opts:
        unit, absolute = opts["unit"]
        when = expire_ms(c, opts["expire"], unit, absolute, "getex")
    store = c.store
    if when is not None:
        expire_at(c, key, when)
    elif "persist" in opts:
        if store.persist(key):
            store.dirty += 1
            c.also = [[b"PERSIST", key]]
    return v


@command(
    "setnx", 3, "write denyoom fast", G, "Set the value of a key, only if the key does not exist"
)
def setnx(c: Any, argv: list[bytes]) -> Any:
    if c.store.get(argv[1]) is not None:
        return 0
    c.store.set(argv[1], argv[2])
    return 1


def _setex(c: Any, argv: list[bytes], unit: int, name: str) -> Any:
    when = expire_ms(c, argv[2], unit, False, name)
    c.store.set(argv[1], argv[3])
    c.store.set_expire(argv[1], when)
    c.also = [[b"SET", argv[1], argv[3], b"PXAT", b"%d" % when]]
    return OK


@command("setex", 4, "write denyoom", G, "Set the value and expiration of a key")
def setex(c: Any, argv: list[bytes]) -> Any:
    return _setex(c, argv, 1000, "setex")


@command("psetex", 4, "write denyoom", G, "Set the value and expiration in milliseconds of a key")
def psetex(c: Any, argv: list[bytes]) -> Any:
    return _setex(c, argv, 1, "psetex")


@command("mget", -2, "readonly fast", G, "Get the values of all the given keys", keys=(1, -1, 1))
def mget(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # a million keys: looked up in slices
        return bigwork.each(
            c, argv, 1, partial(_values, c.store.get, notify.teller(c, "m", "keymiss")), 2
        )
    get_ = c.store.get
    out = []
    for key in argv[1:]:
        v = get_(key)
        out.append(v if type(v) is bytes else None)
    return out


def _values(
    get: Callable[[bytes], Any], missed: Callable[[bytes], None] | None, keys: list[bytes]
) -> list[bytes | None]:
    values = list(map(get, keys))
    if missed is not None:  # (keyspace notifications' "keymiss", each key as it is read)
        for key, v in zip(keys, values, strict=True):
            if v is None:
                missed(key)
    return [v if type(v) is bytes else None for v in values]


@command("mset", -3, "write denyoom", G, "Set multiple keys to multiple values", keys=(1, -1, 2))
def mset(c: Any, argv: list[bytes]) -> Any:
    if len(argv) % 2 == 0:
        raise wrong_arity("mset")
    if len(argv) > bigwork.ARGS:  # a million keys: set a slice at a time
        done = bigwork.applied(c, argv, 2 * len(argv), lambda: _set_all(c, argv, False))
        if done is NO_REPLY:
            return done
        c.store.dirty += 1  # (the last change: the dispatch sees the command's)
        return OK
    for i in range(1, len(argv), 2):
        c.store.set(argv[i], argv[i + 1])
    return OK


def _set_all(c: Any, argv: list[bytes], nx: bool) -> bigwork.Steps[int]:
    """
    MSET's (or MSETNX's: when C{nx}, none may exist) pairs set, a piece a step: 1,
    or 0 when MSETNX found one. Their keyspace events told as each is set, if so asked.
    """
    store = c.store
    get = store.get
    if nx:
        for lo in range(1, len(argv), 2 * bigwork.PIECE):
            if any(get(k) is not None for k in argv[lo : lo + 2 * bigwork.PIECE : 2]):
                return 0
            yield
    put = store.set
    new, told = notify.teller(c, "n", "new"), notify.teller(c, "$", "set")
    step = 2 * bigwork.PIECE if told is None else bigwork.PIECE // 2  # (an event each)
    for lo in range(1, len(argv), step):
        for i in range(lo, min(len(argv), lo + step), 2):
            key = argv[i]
            if new is not None and get(key) is None:
                put(key, argv[i + 1])
                new(key)  # (Redis's "new" as the key is added: once for a key given twice)
            else:
                put(key, argv[i + 1])
            if told is not None:
                told(key)
        yield
    store.dirty -= 1  # (counted again by the command, when it runs again)
    return 1


@command(
    "msetnx",
    -3,
    "write denyoom",
    G,
    "Set multiple keys only if none of them exist",
    keys=(1, -1, 2),
)
def msetnx(c: Any, argv: list[bytes]) -> Any:
    if len(argv) % 2 == 0:
        raise wrong_arity("msetnx")
    if len(argv) > bigwork.ARGS:  # a million keys: looked up, then set, a slice at a time
        done = bigwork.applied(c, argv, 2 * len(argv), lambda: _set_all(c, argv, True))
        if done == 1:
            c.store.dirty += 1  # (the last change: the dispatch sees the command's)
        return done
    for i in range(1, len(argv), 2):
        if c.store.get(argv[i]) is not None:
            return 0
    for i in range(1, len(argv), 2):
        c.store.set(argv[i], argv[i + 1])
    return 1


def _check_size(c: Any, n: int) -> None:
    if n > c.server.settings.proto_max_bulk_len:
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


@command("append", 3, "write denyoom fast", G, "Append a value to a key")
def append(c: Any, argv: list[bytes]) -> Any:
    old = get_string(c, argv[1])
    if old is None:
        c.store.set(argv[1], argv[2])
        return len(argv[2])
    _check_size(c, len(old) + len(argv[2]))
    new = bigstr.joined(c, argv, [old, argv[2]])  # (a big one in slices)
    if new is NO_REPLY:
        return new
    c.store.set_raw(argv[1], new, keepttl=True)
    return len(new)


@command("strlen", 2, "readonly fast", G, "Get the length of the value stored in a key")
def strlen(c: Any, argv: list[bytes]) -> Any:
    v = get_string(c, argv[1])
    return 0 if v is None else len(v)


def _incr(c: Any, key: bytes, by: int) -> Any:
    old = get_string(c, key)
    if old is None:
        cur = 0
    else:
        cur = string2ll(old)  # type: ignore[assignment]
        if cur is None:
            raise CommandError(NOT_INT)
    new = check_overflow(cur + by)
    c.store.set(key, b"%d" % new, keepttl=True)
    return new


@command("incr", 2, "write denyoom fast", G, "Increment the integer value of a key by one")
def incr(c: Any, argv: list[bytes]) -> Any:
    return _incr(c, argv[1], 1)


@command("decr", 2, "write denyoom fast", G, "Decrement the integer value of a key by one")
def decr(c: Any, argv: list[bytes]) -> Any:
    return _incr(c, argv[1], -1)


@command(
    "incrby", 3, "write denyoom fast", G, "Increment the integer value of a key by the given amount"
)
def incrby(c: Any, argv: list[bytes]) -> Any:
    return _incr(c, argv[1], to_int(argv[2]))


@command(
    "decrby", 3, "write denyoom fast", G, "Decrement the integer value of a key by the given number"
)
def decrby(c: Any, argv: list[bytes]) -> Any:
    by = to_int(argv[2])
    if by == LLONG_MIN:
        raise CommandError("ERR decrement would overflow")
    return _incr(c, argv[1], -by)


@command(
    "incrbyfloat",
    3,
    "write denyoom fast",
    G,
    "Increment the float value of a key by the given amount",
)
def incrbyfloat(c: Any, argv: list[bytes]) -> Any:
    key = argv[1]
    old = get_string(c, key)
    if old is not None and not longdouble.valid_float(old):
        raise CommandError("ERR value is not a valid float")
    if not longdouble.valid_float(argv[2]):
        raise CommandError("ERR value is not a valid float")
    r = incr_float(old, argv[2], "ERR value is not a valid float")
    c.store.set(key, r, keepttl=True)
    c.also = [[b"SET", key, r, b"KEEPTTL"]]
    return r


@command("getrange", 4, "readonly", G, "Get a substring of the string stored at a key")
def getrange(c: Any, argv: list[bytes]) -> Any:
    start = to_int(argv[2])
    end = to_int(argv[3])
    v = get_string(c, argv[1])
    if v is None:
        return b""
    n = len(v)
    if start < 0 and end < 0 and start > end:
        return b""
    if start < 0:
        start = n + start
    if end < 0:
        end = n + end
    if start < 0:
        start = 0
    if end < 0:
        end = 0
    if end >= n:
        end = n - 1
    if start > end or n == 0:
        return b""
    if end + 1 - start >= VIEW:  # no copy of a big range (the reply goes out in slices)
        return memoryview(v)[start : end + 1]
    return v[start : end + 1]


@command(
    "setrange",
    4,
    "write denyoom",
    G,
    "Overwrite part of a string at key starting at the specified offset",
)
def setrange(c: Any, argv: list[bytes]) -> Any:
    key = argv[1]
    offset = to_int(argv[2])
    value = argv[3]
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    old = get_string(c, key)
    if not value:
        return 0 if old is None else len(old)
    _check_size(c, offset + len(value))
    new = bigstr.patched(c, argv, old or b"", offset, value)  # (a big one in slices)
    if new is NO_REPLY:
        return new
    c.store.set_raw(key, new, keepttl=old is not None)
    return len(new)


__all__ = ["OVERFLOW"]
