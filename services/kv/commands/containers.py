"""Hash, list and set commands. An emptied container deletes its key, as in Redis."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from itertools import islice
from typing import Any

from portsuite_services.kv import bigreply, bigwork, glob, longdouble, notify, tuning
from portsuite_services.kv.commands import (
    NO_REPLY,
    NO_SUCH_KEY,
    NOT_INT,
    OVERFLOW,
    CommandError,
    check_overflow,
    command,
    incr_float,
    to_int,
    wrong_arity,
    wrongtype,
)
from portsuite_services.kv.commands.keys import scan_reply
from portsuite_services.kv.resp import NULL_ARRAY, OK, Map, SetReply, string2ll
from portsuite_services.kv.sharded import KIND, SHARD_AT, copy_steps


def _get(c: Any, key: bytes, kind: type) -> Any:
    v = c.store.get(key)
    if v is None or type(v) is kind:
        return v
    if KIND.get(type(v)) is kind:  # (a big hash or set, sharded: sharded.py)
        return v
    raise wrongtype()


def _drop_if_empty(c: Any, key: bytes, v: Any) -> None:
    if not v:
        c.store.delete(key)


# -- hashes ----------------------------------------------------------------------

H = "hash"


@command("hset", -4, "write denyoom fast", H, "Set the string value of a hash field")
def hset(c: Any, argv: list[bytes]) -> Any:
    if len(argv) % 2:
        raise wrong_arity("hset")
    h = _get(c, argv[1], dict)
    if len(argv) >= 2 * ARGS_HASH:  # a million fields: the new hash built aside, in slices
        made = bigwork.sliced(c, argv, len(argv) + len(h or ()), lambda: _grown(h, argv, True))
        if made is not None:
            return _store_grown(c, argv[1], made)
    if h is None:
        h = {}
        c.store.set(argv[1], h)
    if len(h) + len(argv) // 2 > SHARD_AT and type(h) is dict:
        h = c.store.reshard(argv[1], h)  # (big from now on: it grows a shard at a time)
    if type(h) is not dict:  # (a big hash, sharded: its loop in one method)
        added = h.set_many(zip(argv[2::2], argv[3::2], strict=True))
        c.store.dirty += 1
        return added
    added = 0
    for i in range(2, len(argv), 2):
        if argv[i] not in h:
            added += 1
        h[argv[i]] = argv[i + 1]
    c.store.dirty += 1
    return added


# SADD's members, HSET's fields from which the new value is built aside (bigwork):
# fewer are added in place within ~15 ms. That many make a set or hash sharded
# (sharded.py), whose adds are method calls, about 4 times a plain set's: 65,536
# members or fields (2^16 = SHARD_AT), where a plain set took 262,144 in that time
ARGS_SET = 2 * bigwork.BIG
ARGS_HASH = 2 * bigwork.BIG


def _grown(old: Any, argv: list[bytes], pairs: bool) -> bigwork.Steps[tuple[Any, int]]:
    """
    A copy of C{old} (a set, a dict, or None) with C{argv[2:]} added (members, or
    field value pairs when C{pairs}), a piece at a time; and how many were new.
    """
    n = len(argv)
    plain = dict if pairs else set
    if type(old) in KIND or len(old or ()) + n // (1 + pairs) > SHARD_AT:
        # (big, or to be: sharded, so that it grows a shard at a time; copied so too)
        new: Any = yield from copy_steps(plain() if old is None else old, True)
    else:
        new = plain(old or ())  # (a C-level copy, sized at once)
    before = len(new)
    step = 2 * bigwork.PIECE if pairs else bigwork.PIECE
    for lo in range(2, n, step):
        hi = min(n, lo + step)
        if pairs:
            new.update(zip(argv[lo:hi:2], argv[lo + 1 : hi : 2], strict=True))
        else:
            new.update(argv[lo:hi])
        yield
    return new, len(new) - before


def _store_grown(c: Any, key: bytes, made: Any) -> Any:
    """SADD's or HSET's value built by L{_grown}: stored (the old one freed lazily)."""
    if made is NO_REPLY:
        return made
    new, added = made
    if KIND.get(type(new), type(new)) is set and not added:  # nothing changed: the copy goes
        c.server.lazyfree.free(new)
        return 0
    c.store.set(key, new, keepttl=True)
    return added


REMOVES_IN_PLACE = bigwork.BIG // 2  # members SREM or HDEL removes in place (~2 ms), else aside


def _without(old: Any, argv: list[bytes]) -> bigwork.Steps[tuple[Any, Any]]:
    """
    SREM's or HDEL's of many (L{bigwork.removed}): the members (fields) of C{argv[2:]}
    that C{old} holds, found in slices, and None when at most C{REMOVES_IN_PLACE}
    (removed in place), else the new value built aside without them.
    """
    pairs = type(old) is dict
    found = old.keys().__and__ if pairs else old.intersection  # (looked up in C)
    gone: set[bytes] = set()
    for lo in range(2, len(argv), bigwork.PIECE):
        gone.update(found(argv[lo : lo + bigwork.PIECE]))
        yield
    if len(gone) <= REMOVES_IN_PLACE:
        return gone, None
    kept: Any = type(old)()
    if len(gone) < len(old):
        it = iter(old.items() if pairs else old)
        for _ in range(0, len(old), bigwork.PIECE):
            piece = islice(it, bigwork.PIECE)
            kept.update([kv for kv in piece if kv[0] not in gone] if pairs else set(piece) - gone)
            yield
    return gone, kept


@command("hmset", -4, "write denyoom fast", H, "Set multiple hash fields to multiple values")
def hmset(c: Any, argv: list[bytes]) -> Any:
    if len(argv) % 2:
        raise wrong_arity("hmset")
    if hset(c, argv) is NO_REPLY:  # (a million fields: built in slices, then run again)
        return NO_REPLY
    return OK


@command(
    "hsetnx",
    4,
    "write denyoom fast",
    H,
    "Set the value of a hash field, only if the field does not exist",
)
def hsetnx(c: Any, argv: list[bytes]) -> Any:
    h = _get(c, argv[1], dict)
    if h is not None and argv[2] in h:
        return 0
    return hset(c, argv)


@command("hget", 3, "readonly fast", H, "Get the value of a hash field")
def hget(c: Any, argv: list[bytes]) -> Any:
    h = _get(c, argv[1], dict)
    return None if h is None else h.get(argv[2])


@command("hmget", -3, "readonly fast", H, "Get the values of all the given hash fields")
def hmget(c: Any, argv: list[bytes]) -> Any:
    h = _get(c, argv[1], dict) or {}
    if len(argv) > bigwork.ARGS:  # a million fields: looked up in slices
        return bigwork.each(c, argv, 2, lambda fields: list(map(h.get, fields)))
    return [h.get(f) for f in argv[2:]]


@command("hdel", -3, "write fast", H, "Delete one or more hash fields")
def hdel(c: Any, argv: list[bytes]) -> Any:
    h = _get(c, argv[1], dict)
    if h is None:
        return 0
    fields = bigwork.removed(c, argv, lambda: _without(h, argv))  # (a million: in slices)
    if fields is NO_REPLY or type(fields) is int:
        return fields
    n = 0
    for f in fields:
        if h.pop(f, None) is not None:
            n += 1
    if n:
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], h)
    return n


@command("hgetall", 2, "readonly", H, "Get all the fields and values in a hash")
def hgetall(c: Any, argv: list[bytes]) -> Any:
    h = _get(c, argv[1], dict) or {}
    if not bigreply.possible(c, len(h)):
        return Map(h.items())
    # a snapshot (fields, values: no tuple each), copied in slices when big
    both = bigwork.compute(c, argv, 2 * len(h), lambda: _fields_values(h))
    if both is NO_REPLY:
        return both
    return bigreply.hash_map(c, *both)


def _fields_values(h: dict[bytes, bytes]) -> bigwork.Steps[tuple[list[bytes], list[bytes]]]:
    fields = yield from bigwork.as_list(h)
    values = yield from bigwork.as_list(h.values())
    return fields, values


def _snapshot_reply(c: Any, argv: list[bytes], items: Collection[bytes]) -> Any:
    """A whole-collection reply (HKEYS, HVALS): its snapshot copied in slices when big."""
    found = bigwork.compute(c, argv, len(items), lambda: bigwork.as_list(items))
    if found is NO_REPLY:
        return found
    return bigreply.array(c, found, own=True)


@command("hkeys", 2, "readonly", H, "Get all the fields in a hash")
def hkeys(c: Any, argv: list[bytes]) -> Any:
    return _snapshot_reply(c, argv, _get(c, argv[1], dict) or {})


@command("hvals", 2, "readonly", H, "Get all the values in a hash")
def hvals(c: Any, argv: list[bytes]) -> Any:
    return _snapshot_reply(c, argv, (_get(c, argv[1], dict) or {}).values())


@command("hlen", 2, "readonly fast", H, "Get the number of fields in a hash")
def hlen(c: Any, argv: list[bytes]) -> Any:
    return len(_get(c, argv[1], dict) or ())


@command("hstrlen", 3, "readonly fast", H, "Get the length of the value of a hash field")
def hstrlen(c: Any, argv: list[bytes]) -> Any:
    return len((_get(c, argv[1], dict) or {}).get(argv[2], b""))


@command("hexists", 3, "readonly fast", H, "Determine if a hash field exists")
def hexists(c: Any, argv: list[bytes]) -> Any:
    return int(argv[2] in (_get(c, argv[1], dict) or ()))


@command(
    "hincrby",
    4,
    "write denyoom fast",
    H,
    "Increment the integer value of a hash field by the given number",
)
def hincrby(c: Any, argv: list[bytes]) -> Any:
    by = to_int(argv[3])
    h = _get(c, argv[1], dict)
    cur = 0
    if h is not None and argv[2] in h:
        v = string2ll(h[argv[2]])
        if v is None:
            raise CommandError("ERR hash value is not an integer")
        cur = v
    new = check_overflow(cur + by, OVERFLOW)
    if h is None:
        h = {}
        c.store.set(argv[1], h)
    elif len(h) >= SHARD_AT and type(h) is dict:
        h = c.store.reshard(argv[1], h)
    h[argv[2]] = b"%d" % new
    c.store.dirty += 1
    return new


def small_hash(h: dict[bytes, bytes], limits: tuple[int, int]) -> bool:
    """
    Whether Redis would keep this hash as a listpack (HSCAN returns it whole; OBJECT
    ENCODING): C{limits} are hash-max-listpack-entries and -value (L{tuning.hash_limits}).
    """
    entries, value = limits
    return len(h) <= entries and all(len(k) <= value and len(v) <= value for k, v in h.items())


@command("hscan", -3, "readonly", H, "Incrementally iterate hash fields and associated values")
def hscan(c: Any, argv: list[bytes]) -> Any:
    h = _get(c, argv[1], dict)
    if h is None:
        scan_reply([], argv[2], argv, 3, c, False)  # validates the arguments
        return [b"0", []]
    if small_hash(h, tuning.hash_limits(c.server.tuning)):
        scan_reply([], argv[2], argv, 3, c, False)  # validates the arguments
        pattern = _match_arg(argv)
        out: list[bytes] = []
        for k, v in h.items():
            if pattern is None or glob.match(pattern, k):
                out += (k, v)
        return [b"0", out]
    r = scan_reply(h, argv[2], argv, 3, c, False, value=h.__getitem__)
    if r is None:
        return NO_REPLY
    return [b"%d" % r[0], r[1]]


def _match_arg(argv: list[bytes]) -> bytes | None:
    for j in range(3, len(argv) - 1, 2):
        if argv[j].lower() == b"match":
            return argv[j + 1]
    return None


# -- lists -----------------------------------------------------------------------

L = "list"


def _push(c: Any, argv: list[bytes], left: bool) -> Any:
    lst = _get(c, argv[1], deque)
    if lst is None:
        lst = deque()
        c.store.set(argv[1], lst)
    if left:
        lst.extendleft(argv[2:])
    else:
        lst.extend(argv[2:])
    c.store.dirty += 1
    return len(lst)


@command("lpush", -3, "write denyoom fast", L, "Prepend one or multiple elements to a list")
def lpush(c: Any, argv: list[bytes]) -> Any:
    return _push(c, argv, True)


@command("rpush", -3, "write denyoom fast", L, "Append one or multiple elements to a list")
def rpush(c: Any, argv: list[bytes]) -> Any:
    return _push(c, argv, False)


def _pop(c: Any, argv: list[bytes], left: bool) -> Any:
    if len(argv) > 3:
        raise wrong_arity("lpop" if left else "rpop")
    count = None
    if len(argv) == 3:
        count = string2ll(argv[2])
        if count is None or count < 0:
            raise CommandError("ERR value is out of range, must be positive")
    lst = _get(c, argv[1], deque)
    if lst is None:
        return None if count is None else NULL_ARRAY
    pop = lst.popleft if left else lst.pop
    if count is None:
        v = pop()
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], lst)
        return v
    out = pop_many(c, argv, argv[1], lst, min(count, len(lst)), left)
    if out is NO_REPLY:
        return out
    if out:
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], lst)
    return bigreply.array(c, out, own=True)


POP_ASIDE = 4 * bigwork.BIG  # popping this many of a longer list: the rest makes a new list


def pop_many(c: Any, argv: list[bytes], key: bytes, lst: Any, k: int, left: bool) -> Any:
    """
    The first (or last) C{k} elements of C{lst} at C{key}, popped (LPOP/RPOP/LMPOP
    with a count): past C{bigwork.BIG} they are copied in slices first (C{NO_REPLY}
    then, and the command runs again with them), and all of them dropping the key
    (its list freed by lazyfree), or past C{POP_ASIDE} the rest built aside as a new
    list, rather than popped one by one while the suite waits (a million: 5 s).
    """
    n = len(lst)
    made = bigwork.sliced(c, argv, k if k < POP_ASIDE else n, lambda: _pop_steps(lst, k, left))
    if made is NO_REPLY:
        return made
    if made is None:
        pop = lst.popleft if left else lst.pop
        return [pop() for _ in range(k)]
    popped, kept = made
    if k == n:
        c.store.drop(key)  # (what the caller sees as not emptied: gone anyway)
    elif kept is not None:
        c.store.set(key, kept, keepttl=True)  # (the old list freed by lazyfree)
        c.store.dirty -= 1  # (counted by the caller, once)
    else:
        pop = lst.popleft if left else lst.pop
        for _ in range(k):
            pop()
    return popped


def _pop_steps(lst: Any, k: int, left: bool) -> bigwork.Steps[tuple[list[bytes], Any]]:
    """L{pop_many}'s copies: the C{k} popped, in order, and past C{POP_ASIDE} the others."""
    n = len(lst)
    popped = yield from bigwork.take(iter(lst) if left else reversed(lst), k)
    kept = None
    if POP_ASIDE <= k < n:
        kept = yield from _deque_steps(lst, k if left else 0, n - k)
    return popped, kept


def _deque_steps(lst: Any, start: int, count: int) -> bigwork.Steps[deque[bytes]]:
    """A new list of C{count} elements of C{lst} from C{start}, a piece at a time."""
    out: deque[bytes] = deque()
    it = islice(lst, start, start + count)
    for _ in range(0, count, bigwork.PIECE):
        out.extend(islice(it, bigwork.PIECE))
        yield
    return out


@command("lpop", -2, "write fast", L, "Remove and get the first elements in a list")
def lpop(c: Any, argv: list[bytes]) -> Any:
    return _pop(c, argv, True)


@command("rpop", -2, "write fast", L, "Remove and get the last elements in a list")
def rpop(c: Any, argv: list[bytes]) -> Any:
    return _pop(c, argv, False)


@command("llen", 2, "readonly fast", L, "Get the length of a list")
def llen(c: Any, argv: list[bytes]) -> Any:
    return len(_get(c, argv[1], deque) or ())


@command("lrange", 4, "readonly", L, "Get a range of elements from a list")
def lrange(c: Any, argv: list[bytes]) -> Any:
    start = to_int(argv[2])
    end = to_int(argv[3])
    lst = _get(c, argv[1], deque)
    if lst is None:
        return []
    n = len(lst)
    if start < 0:
        start = n + start
    if end < 0:
        end = n + end
    if start < 0:
        start = 0
    if start > end or start >= n:
        return []
    if end >= n:
        end = n - 1
    if start == 0 and end == n - 1:
        return bigreply.array(c, list(lst), own=True)
    return bigreply.array(c, list(islice(lst, start, end + 1)), own=True)


@command("lindex", 3, "readonly", L, "Get an element from a list by its index")
def lindex(c: Any, argv: list[bytes]) -> Any:
    lst = _get(c, argv[1], deque)
    if lst is None:
        return None
    idx = to_int(argv[2])
    if idx < 0:
        idx += len(lst)
    if 0 <= idx < len(lst):
        return lst[idx]
    return None


@command("lset", 4, "write denyoom", L, "Set the value of an element in a list by its index")
def lset(c: Any, argv: list[bytes]) -> Any:
    lst = _get(c, argv[1], deque)
    if lst is None:
        raise CommandError(NO_SUCH_KEY)
    idx = to_int(argv[2])
    if idx < 0:
        idx += len(lst)
    if not 0 <= idx < len(lst):
        raise CommandError("ERR index out of range")
    lst[idx] = argv[3]
    c.store.dirty += 1
    return OK


@command("lrem", 4, "write", L, "Remove elements from a list")
def lrem(c: Any, argv: list[bytes]) -> Any:
    count = to_int(argv[2])
    lst = _get(c, argv[1], deque)
    if lst is None:
        return 0
    made = bigwork.compute(c, argv, len(lst), lambda: _lrem_steps(lst, count, argv[3]))
    if made is NO_REPLY:  # (a big list: read in slices, then the command runs again)
        return made
    removed, keep = made
    if removed:
        lst.clear()
        lst.extend(keep)
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], lst)
    return removed


def _lrem_steps(lst: deque[bytes], count: int, value: bytes) -> bigwork.Steps[Any]:
    """LREM's (removed, what is kept): C{count} from the head (> 0), the tail (< 0) or all."""
    removed = 0
    keep: list[bytes] = []
    backwards = count < 0
    it = reversed(lst) if backwards else iter(lst)
    count = abs(count)
    for _ in range(0, len(lst), bigwork.PIECE):
        piece = list(islice(it, bigwork.PIECE))
        if (count and removed >= count) or value not in piece:  # (found in C)
            keep += piece
        else:
            for x in piece:
                if x == value and (count == 0 or removed < count):
                    removed += 1
                else:
                    keep.append(x)
        yield
    if backwards:
        keep.reverse()
    return removed, keep


# -- sets ------------------------------------------------------------------------

S = "set"


@command("sadd", -3, "write denyoom fast", S, "Add one or more members to a set")
def sadd(c: Any, argv: list[bytes]) -> Any:
    s = _get(c, argv[1], set)
    if len(argv) >= ARGS_SET:  # a million members: the new set built aside, in slices
        made = bigwork.sliced(c, argv, len(argv) + len(s or ()), lambda: _grown(s, argv, False))
        if made is not None:
            return _store_grown(c, argv[1], made)
    if s is None:
        s = set()
        c.store.set(argv[1], s)
    if len(s) + len(argv) > SHARD_AT and type(s) is set:
        s = c.store.reshard(argv[1], s)  # (big from now on: it grows a shard at a time)
    before = len(s)
    s.update(argv[2:])
    added = len(s) - before
    if added:
        c.store.dirty += 1
    return added


@command("srem", -3, "write fast", S, "Remove one or more members from a set")
def srem(c: Any, argv: list[bytes]) -> Any:
    s = _get(c, argv[1], set)
    if s is None:
        return 0
    members = bigwork.removed(c, argv, lambda: _without(s, argv))  # (a million: in slices)
    if members is NO_REPLY or type(members) is int:
        return members
    before = len(s)
    s.difference_update(members)
    removed = before - len(s)
    if removed:
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], s)
    return removed


def _intset_order(s: Collection[bytes]) -> list[bytes]:
    """Small all-integer sets come out sorted, as Redis's intset encoding does."""
    if len(s) <= 512:
        nums = []
        for m in s:
            v = string2ll(m)
            if v is None:
                return list(s)
            nums.append((v, m))
        nums.sort()
        return [m for _, m in nums]
    return s if type(s) is list else list(s)


@command("smembers", 2, "readonly", S, "Get all the members in a set")
def smembers(c: Any, argv: list[bytes]) -> Any:
    s = _get(c, argv[1], set)
    if not s:
        return bigreply.set_members(c, [])
    # the snapshot of a big set is copied in slices too (others wait meanwhile)
    members = bigwork.compute(c, argv, len(s), lambda: bigwork.as_list(s))
    if members is NO_REPLY:
        return members
    return bigreply.set_members(c, _intset_order(members), own=True)


@command("sismember", 3, "readonly fast", S, "Determine if a given value is a member of a set")
def sismember(c: Any, argv: list[bytes]) -> Any:
    return int(argv[2] in (_get(c, argv[1], set) or ()))


@command(
    "smismember",
    -3,
    "readonly fast",
    S,
    "Returns the membership associated with the given elements",
)
def smismember(c: Any, argv: list[bytes]) -> Any:
    s = _get(c, argv[1], set) or ()
    if len(argv) > bigwork.ARGS:  # a million members: looked up in slices
        return bigwork.each(c, argv, 2, lambda members: [int(m in s) for m in members])
    return [int(m in s) for m in argv[2:]]


@command("scard", 2, "readonly fast", S, "Get the number of members in a set")
def scard(c: Any, argv: list[bytes]) -> Any:
    return len(_get(c, argv[1], set) or ())


__all__ = ["NOT_INT"]


# -- more list, set and hash commands ----------------------------------------------


@command("ltrim", 4, "write", L, "Trim a list to the specified range")
def ltrim(c: Any, argv: list[bytes]) -> Any:
    start = to_int(argv[2])
    end = to_int(argv[3])
    lst = _get(c, argv[1], deque)
    if lst is None:
        return OK
    n = len(lst)
    if start < 0:
        start += n
    if end < 0:
        end += n
    if start < 0:
        start = 0
    if start > end or start >= n:
        start = stop = 0
    else:
        stop = min(end, n - 1) + 1
    if stop - start == n:
        return OK
    if n < bigwork.BIG:
        keep = list(islice(lst, start, stop))
        lst.clear()
        lst.extend(keep)
        c.store.dirty += 1
        _drop_if_empty(c, argv[1], lst)
        return OK
    # a big list: what it keeps makes a new one (in slices when many), the old one
    # freed by lazyfree (cleared at once, a million elements held the suite 100 ms)
    made = bigwork.compute(c, argv, stop - start, lambda: _deque_steps(lst, start, stop - start))
    if made is NO_REPLY:
        return made
    if made:
        c.store.set(argv[1], made, keepttl=True)
    else:
        c.store.drop(argv[1])
        c.store.dirty += 1
    return OK


@command(
    "linsert", 5, "write denyoom", L, "Insert an element before or after another element in a list"
)
def linsert(c: Any, argv: list[bytes]) -> Any:
    where = argv[2].lower()
    if where not in (b"before", b"after"):
        raise CommandError("ERR syntax error")
    lst = _get(c, argv[1], deque)
    if lst is None:
        return 0
    try:
        i = lst.index(argv[3])
    except ValueError:
        return -1
    lst.insert(i if where == b"before" else i + 1, argv[4])
    c.store.dirty += 1
    return len(lst)


@command("smove", 4, "write fast", S, "Move a member from one set to another", keys=(1, 2, 1))
def smove(c: Any, argv: list[bytes]) -> Any:
    src = c.store.get(argv[1])
    dst = c.store.get(argv[2])
    if src is None:
        return 0
    if KIND.get(type(src), type(src)) is not set or (
        dst is not None and KIND.get(type(dst), type(dst)) is not set
    ):
        raise wrongtype()
    member = argv[3]
    if src is dst:
        return int(member in src)
    if member not in src:
        return 0
    src.discard(member)
    _drop_if_empty(c, argv[1], src)
    if dst is None:
        dst = set()
        c.store.set(argv[2], dst)
    if member in dst:  # the destination does not change: a WATCH on it holds
        c.touched = [argv[1]]
    elif len(dst) >= SHARD_AT and type(dst) is set:
        dst = c.store.reshard(argv[2], dst)
    dst.add(member)
    c.store.dirty += 1
    return 1


def _sets(c: Any, keys: list[bytes]) -> list[set[bytes] | None]:
    """The sets of C{keys} (None: missing, told as a key miss), as Redis looks them up."""
    out = []
    get = c.store.get
    for key in keys:
        v = get(key)
        if v is None:
            notify.missed(c, key)
        elif type(v) is not set and KIND.get(type(v)) is not set:
            raise wrongtype()
        out.append(v)
    return out


def many_sets(c: Any, keys: list[bytes], op: str, out: Any, limit: int = 0) -> bigwork.Steps[Any]:
    """
    SINTER, SUNION, SDIFF (C{op}: "inter", "union", "diff"), their STOREs and
    SINTERCARD ("card", up to C{limit}) over many keys: the sets looked up a piece a
    step (missing: None, another type: WRONGTYPE, as L{_sets}), then the operation's
    steps, into C{out} (a list for a reply, a set to store).
    """
    sets: list[set[bytes] | None] = []
    for lo in range(0, len(keys), bigwork.PIECE):
        sets += _sets(c, keys[lo : lo + bigwork.PIECE])
        yield
    if op == "union":
        live = [s for s in sets if s]
        return (yield from (bigwork.union_members if type(out) is list else bigwork.union)(live))
    first = sets[0]
    if op == "diff":
        if first is None:
            return out
        return (yield from bigwork.diff(first, [s for s in sets[1:] if s], out))
    if any(s is None for s in sets):
        return 0 if op == "card" else out
    if op == "card":
        return (yield from bigwork.inter_count(sets, limit))  # type: ignore[arg-type]
    return (yield from bigwork.inter(sets, out))  # type: ignore[arg-type]


def inter_cost(sets: list[set[bytes]]) -> int:
    """About how many lookups an intersection makes: the smallest set's size, per set."""
    return min(map(len, sets)) * len(sets)


def _set_reply(c: Any, argv: list[bytes], cost: int, work: Any) -> Any:
    """The reply of SINTER/SUNION/SDIFF: computed in slices when big (bigwork.py)."""
    members = bigwork.compute(c, argv, cost, work)
    if members is NO_REPLY:
        return members
    return bigreply.set_members(c, _intset_order(members), own=True)


@command("sinter", -2, "readonly", S, "Intersect multiple sets", keys=(1, -1, 1))
def sinter(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # many keys: looked up in slices too
        return _set_reply(c, argv, 2 * len(argv), lambda: many_sets(c, argv[1:], "inter", []))
    sets = _sets(c, argv[1:])
    if any(s is None for s in sets):
        return SetReply()
    live: list[set[bytes]] = sets  # type: ignore[assignment]
    return _set_reply(c, argv, inter_cost(live), lambda: bigwork.inter(live, []))


@command("sunion", -2, "readonly", S, "Add multiple sets", keys=(1, -1, 1))
def sunion(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # many keys: looked up in slices too
        return _set_reply(c, argv, 2 * len(argv), lambda: many_sets(c, argv[1:], "union", []))
    sets = [s for s in _sets(c, argv[1:]) if s is not None]
    return _set_reply(c, argv, sum(map(len, sets)), lambda: bigwork.union_members(sets))


@command("sdiff", -2, "readonly", S, "Subtract multiple sets", keys=(1, -1, 1))
def sdiff(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # many keys: looked up in slices too
        return _set_reply(c, argv, 2 * len(argv), lambda: many_sets(c, argv[1:], "diff", []))
    sets = _sets(c, argv[1:])
    first = sets[0]
    if first is None:
        return SetReply()
    others = [s for s in sets[1:] if s]
    cost = len(first) * len(sets)
    return _set_reply(c, argv, cost, lambda: bigwork.diff(first, others, []))


@command(
    "hincrbyfloat",
    4,
    "write denyoom fast",
    H,
    "Increment the float value of a hash field by the given amount",
)
def hincrbyfloat(c: Any, argv: list[bytes]) -> Any:
    if not longdouble.valid_float(argv[3]):
        raise CommandError("ERR value is not a valid float")
    if argv[3].lower().lstrip(b"+-") in (b"inf", b"infinity"):
        raise CommandError("ERR value is NaN or Infinity")
    h = _get(c, argv[1], dict)
    old = h.get(argv[2]) if h is not None else None
    r = incr_float(old, argv[3], "ERR hash value is not a float")
    if h is None:
        h = {}
        c.store.set(argv[1], h)
    elif len(h) >= SHARD_AT and type(h) is dict:
        h = c.store.reshard(argv[1], h)
    h[argv[2]] = r
    c.store.dirty += 1
    c.also = [[b"HSET", argv[1], argv[2], r]]
    return r
