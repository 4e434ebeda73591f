"""
List, set and string extras: LPUSHX RPUSHX RPOPLPUSH LMOVE LPOS, SINTERSTORE SUNIONSTORE
SDIFFSTORE SINTERCARD SPOP SRANDMEMBER, TOUCH SUBSTR, SETBIT GETBIT BITCOUNT.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import Any

from portsuite_services.kv import bigreply, bigstr, bigwork, notify, randompick
from portsuite_services.kv.commands import (
    NO_REPLY,
    SYNTAX,
    CommandError,
    command,
    to_int,
    wrongtype,
)
from portsuite_services.kv.commands.containers import (
    _drop_if_empty,
    _get,
    _sets,
    inter_cost,
    many_sets,
)
from portsuite_services.kv.commands.keys import exists
from portsuite_services.kv.commands.strings import getrange
from portsuite_services.kv.resp import SetReply
from portsuite_services.kv.sharded import new_like

L, S, G, B, K = "list", "set", "string", "bitmap", "generic"
MAX_RANDOM = 1 << 24  # SRANDMEMBER key -COUNT: members drawn at most
SPLIT = 4 * bigwork.BIG  # SPOP of this many: the members left make a new set (bigwork)


# -- lists ----------------------------------------------------------------------------


def _pushx(c: Any, argv: list[bytes], left: bool) -> Any:
    lst = _get(c, argv[1], deque)
    if lst is None:
        return 0
    if left:
        lst.extendleft(argv[2:])
    else:
        lst.extend(argv[2:])
    c.store.dirty += 1
    return len(lst)


@command("lpushx", -3, "write denyoom fast", L, "Prepend elements to a list, only if it exists")
def lpushx(c: Any, argv: list[bytes]) -> Any:
    return _pushx(c, argv, True)


@command("rpushx", -3, "write denyoom fast", L, "Append elements to a list, only if it exists")
def rpushx(c: Any, argv: list[bytes]) -> Any:
    return _pushx(c, argv, False)


def _move(c: Any, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> Any:
    lst = _get(c, src, deque)
    if lst is None:
        return None
    target = _get(c, dst, deque)  # WRONGTYPE before anything moves
    v = lst.popleft() if from_left else lst.pop()
    if target is None:
        if src == dst:
            target = lst
        else:
            target = deque()
            c.store.set(dst, target)
    if to_left:
        target.appendleft(v)
    else:
        target.append(v)
    _drop_if_empty(c, src, lst)
    c.store.dirty += 1
    return v


@command(
    "rpoplpush",
    3,
    "write denyoom",
    L,
    "Remove the last element of a list and prepend it to another",
    keys=(1, 2, 1),
)
def rpoplpush(c: Any, argv: list[bytes]) -> Any:
    return _move(c, argv[1], argv[2], False, True)


def _side(b: bytes) -> bool:
    s = b.lower()
    if s == b"left":
        return True
    if s == b"right":
        return False
    raise CommandError(SYNTAX)


@command(
    "lmove",
    5,
    "write denyoom",
    L,
    "Pop an element from a list, push it to another list and return it",
    keys=(1, 2, 1),
)
def lmove(c: Any, argv: list[bytes]) -> Any:
    return _move(c, argv[1], argv[2], _side(argv[3]), _side(argv[4]))


@command("lpos", -3, "readonly", L, "Return the index of matching elements on a list")
def lpos(c: Any, argv: list[bytes]) -> Any:
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if i + 1 >= len(argv):
            raise CommandError(SYNTAX)
        if opt == b"rank":
            rank = to_int(argv[i + 1])
            if rank == 0 or rank == -(2**63):
                raise CommandError(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                    "second ... or use negative to start from the end of the list"
                )
        elif opt == b"count":
            count = to_int(argv[i + 1])
            if count < 0:
                raise CommandError("ERR COUNT can't be negative")
        elif opt == b"maxlen":
            maxlen = to_int(argv[i + 1])
            if maxlen < 0:
                raise CommandError("ERR MAXLEN can't be negative")
        else:
            raise CommandError(SYNTAX)
        i += 2
    lst = _get(c, argv[1], deque)
    if lst is None:
        return [] if count is not None else None
    n = len(lst)
    limit = min(maxlen, n) if maxlen else n  # how many elements are looked at
    # (a C-level copy of them, searched by list.index: a deque's [i] walks to i, so the
    # loop over indexes it replaces took 33 s for a million elements and no match)
    seq = list(islice(lst if rank > 0 else reversed(lst), limit))
    skip = abs(rank) - 1
    found: list[int] = []
    want = count if count else n
    elem = argv[2]
    pos = 0
    while len(found) < want:
        try:
            j = seq.index(elem, pos)
        except ValueError:
            break
        pos = j + 1
        if skip:
            skip -= 1
            continue
        found.append(j if rank > 0 else n - 1 - j)
    if count is None:
        return found[0] if found else None
    return found


# -- sets -----------------------------------------------------------------------------


def _store_set(c: Any, dst: bytes, members: set[bytes]) -> Any:
    existed = c.store.get(dst) is not None
    if members:
        c.store.set(dst, members)
    elif existed:
        c.store.drop(dst)
    else:
        c.touched = []  # nothing changed
    c.store.dirty += 1
    return len(members)


def _store_op(c: Any, argv: list[bytes], cost: int, work: Any) -> Any:
    """SINTERSTORE/SUNIONSTORE/SDIFFSTORE: the result computed in slices when big."""
    members = bigwork.compute(c, argv, cost, work)
    if members is NO_REPLY:
        return members
    return _store_set(c, argv[1], members)


@command(
    "sinterstore", -3, "write denyoom", S, "Intersect sets and store the result", keys=(1, -1, 1)
)
def sinterstore(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # many keys: looked up in slices too
        return _store_op(c, argv, 2 * len(argv), lambda: many_sets(c, argv[2:], "inter", set()))
    sets = _sets(c, argv[2:])
    if any(s is None for s in sets):
        return _store_set(c, argv[1], set())
    live: list[set[bytes]] = sets  # type: ignore[assignment]
    out = new_like(set, min(map(len, live)))  # (sharded when it may be big: sharded.py)
    return _store_op(c, argv, inter_cost(live), lambda: bigwork.inter(live, out))


@command("sunionstore", -3, "write denyoom", S, "Add sets and store the result", keys=(1, -1, 1))
def sunionstore(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # many keys: looked up in slices too
        return _store_op(c, argv, 2 * len(argv), lambda: many_sets(c, argv[2:], "union", set()))
    sets = [s for s in _sets(c, argv[2:]) if s is not None]
    return _store_op(c, argv, sum(map(len, sets)), lambda: bigwork.union(sets))


@command(
    "sdiffstore", -3, "write denyoom", S, "Subtract sets and store the result", keys=(1, -1, 1)
)
def sdiffstore(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > bigwork.ARGS:  # many keys: looked up in slices too
        return _store_op(c, argv, 2 * len(argv), lambda: many_sets(c, argv[2:], "diff", set()))
    sets = _sets(c, argv[2:])
    first = sets[0]
    if first is None:
        return _store_set(c, argv[1], set())
    others = [s for s in sets[1:] if s]
    out = new_like(set, len(first))
    return _store_op(c, argv, len(first) * len(sets), lambda: bigwork.diff(first, others, out))


@command(
    "sintercard",
    -3,
    "readonly",
    S,
    "Intersect multiple sets and return the cardinality of the result",
    keys=(0, 0, 0),
)
def sintercard(c: Any, argv: list[bytes]) -> Any:
    numkeys = to_int(argv[1], "ERR numkeys should be greater than 0")
    if numkeys <= 0:
        raise CommandError("ERR numkeys should be greater than 0")
    if numkeys > len(argv) - 2:
        raise CommandError("ERR Number of keys can't be greater than number of args")
    limit = 0
    rest = argv[2 + numkeys :]
    i = 0
    while i < len(rest):
        if rest[i].lower() == b"limit" and i + 1 < len(rest):
            limit = to_int(rest[i + 1], "ERR LIMIT can't be negative")
            if limit < 0:
                raise CommandError("ERR LIMIT can't be negative")
            i += 2
        else:
            raise CommandError(SYNTAX)
    if numkeys > bigwork.ARGS:  # many keys: looked up in slices too
        keys = argv[2 : 2 + numkeys]
        return bigwork.compute(
            c, argv, 2 * numkeys, lambda: many_sets(c, keys, "card", None, limit)
        )
    sets = _sets(c, argv[2 : 2 + numkeys])
    if any(s is None for s in sets):
        return 0
    live: list[set[bytes]] = sets  # type: ignore[assignment]
    return bigwork.compute(c, argv, inter_cost(live), lambda: bigwork.inter_count(live, limit))


@command("spop", -2, "write fast", S, "Remove and return one or multiple random members")
def spop(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    count = None
    if len(argv) == 3:
        count = to_int(argv[2], "ERR value is out of range, must be positive")
        if count < 0:
            raise CommandError("ERR value is out of range, must be positive")
    s = _get(c, argv[1], set)
    if s is None:
        return None if count is None else SetReply()
    if count == 0:
        return SetReply()
    k = min(count or 1, len(s))
    made = None
    if SPLIT <= k < len(s) and k * randompick.DENSE >= len(s):  # the others made a new set
        made = bigwork.sliced(c, argv, 2 * len(s), lambda: randompick.split_steps(s, k))
        if made is NO_REPLY:
            return made
    if made is not None:
        picked, kept = made
        c.store.set(argv[1], kept, keepttl=True)  # (the old set freed by lazyfree)
    else:
        picked = randompick.pick(c, argv, s, k, True)
        if picked is NO_REPLY:  # (drawn in slices: the command runs again with the draw)
            return picked
        if len(picked) == len(s):  # all of it: the key goes (its set freed by lazyfree)
            c.store.drop(argv[1])
        else:
            s.difference_update(picked)
    c.also = [[b"SREM", argv[1], *picked]]  # the AOF replays what was taken, not a new draw
    c.store.dirty += 1
    return picked[0] if count is None else bigreply.set_members(c, picked, True)


@command("srandmember", -2, "readonly", S, "Get one or multiple random members from a set")
def srandmember(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    s = _get(c, argv[1], set)
    if len(argv) == 2:
        return randompick.one(s) if s else None
    count = to_int(argv[2], "ERR value is out of range")
    if s is None or count == 0:
        return []
    if count > 0:
        picked = randompick.pick(c, argv, s, min(count, len(s)), True)
    elif -count > MAX_RANDOM:  # (Redis answers up to 2^62; a reply this big is refused here)
        raise CommandError("ERR value is out of range")
    else:
        picked = randompick.pick(c, argv, s, -count, False)
    return picked if picked is NO_REPLY else bigreply.array(c, picked, True)


# -- strings and keys -----------------------------------------------------------------


@command(
    "touch", -2, "readonly fast", K, "Alters the last access time of a key(s)", keys=(1, -1, 1)
)
def touch(c: Any, argv: list[bytes]) -> Any:
    # (no access times kept here: it counts the keys that exist, and tells the missing
    # ones as key misses, as Redis; many keys: told as they are looked up, in slices)
    missed = notify.teller(c, "m", "keymiss")
    if missed is None:
        return exists(c, argv)
    get = c.store.get

    def count(keys: list[bytes]) -> list[int]:
        n = 0
        for key in keys:
            if get(key) is None:
                missed(key)
            else:
                n += 1
        return [n]

    counts = bigwork.each(c, argv, 1, count, 2)
    return counts if counts is NO_REPLY else sum(counts)


@command("substr", 4, "readonly", G, "Get a substring of the string stored at a key")
def substr(c: Any, argv: list[bytes]) -> Any:
    return getrange(c, argv)


def _string(c: Any, key: bytes) -> bytes | None:
    v = c.store.get(key)
    if v is not None and type(v) is not bytes:
        raise wrongtype()
    return v


@command("getbit", 3, "readonly fast", B, "Returns the bit value at offset in the string value")
def getbit(c: Any, argv: list[bytes]) -> Any:
    off = _bit_offset(argv[2])
    v = _string(c, argv[1])
    if v is None or off >> 3 >= len(v):
        return 0
    return (v[off >> 3] >> (7 - (off & 7))) & 1


def _bit_offset(b: bytes) -> int:
    off = to_int(b, "ERR bit offset is not an integer or out of range")
    if off < 0 or off >= 512 * 1024 * 1024 * 8:
        raise CommandError("ERR bit offset is not an integer or out of range")
    return off


@command("setbit", 4, "write denyoom", B, "Sets or clears the bit at offset in the string value")
def setbit(c: Any, argv: list[bytes]) -> Any:
    off = _bit_offset(argv[2])
    if argv[3] not in (b"0", b"1"):
        raise CommandError("ERR bit is not an integer or out of range")
    v = _string(c, argv[1]) or b""
    byte = off >> 3
    mask = 1 << (7 - (off & 7))
    was = v[byte] if byte < len(v) else 0
    new = bigstr.patched(  # (a big string in slices)
        c, argv, v, byte, bytes([was | mask if argv[3] == b"1" else was & ~mask])
    )
    if new is NO_REPLY:
        return new
    c.store.set_raw(argv[1], new, keepttl=True)
    return 1 if was & mask else 0


@command("bitcount", -2, "readonly", B, "Count set bits in a string")
def bitcount(c: Any, argv: list[bytes]) -> Any:
    if len(argv) not in (2, 4, 5):
        raise CommandError(SYNTAX)
    v = _string(c, argv[1])
    if len(argv) == 2:
        return _bit_count(c, argv, v or b"", 0, len(v or b""))
    start, end = to_int(argv[2]), to_int(argv[3])
    bits = False
    if len(argv) == 5:
        unit = argv[4].lower()
        if unit == b"bit":
            bits = True
        elif unit != b"byte":
            raise CommandError(SYNTAX)
    if v is None:
        return 0
    total = len(v) * 8 if bits else len(v)
    if start < 0:
        start = max(total + start, 0)
    if end < 0:
        end = max(total + end, 0)
    if end >= total:
        end = total - 1
    if start > end:
        return 0
    if not bits:
        return _bit_count(c, argv, v, start, end + 1)
    # the bytes holding the range, less the bits before its start and after its end
    sb, eb = start >> 3, end >> 3
    n = _bit_count(c, argv, v, sb, eb + 1)
    if n is NO_REPLY:
        return n
    head = start & 7
    tail = 7 - (end & 7)
    return n - (v[sb] >> (8 - head)).bit_count() - (v[eb] & ((1 << tail) - 1)).bit_count()


def _bit_count(c: Any, argv: list[bytes], v: bytes, lo: int, hi: int) -> Any:
    """The set bits of C{v[lo:hi]} (a big range in slices: C{NO_REPLY} meanwhile)."""
    if hi - lo < bigstr.COUNT_STEP:
        return int.from_bytes(v[lo:hi], "big").bit_count()
    return bigstr.compute(c, argv, hi - lo, lambda: bigstr.bit_count(memoryview(v)[lo:hi]))
