"""
Which arguments of a command are keys, and how the command uses each: Redis 7.0's
C{getKeysFromCommandWithSpecs}. One function answers COMMAND GETKEYS and the ACL
key check, so the two always agree.

Redis prefers the command's key specs (C{key_specs.json}, redis-server 7.0's own);
where a spec cannot say (C{unknown} or C{incomplete} specs: SORT, MIGRATE), where
the flags depend on the arguments (SET … GET, BITFIELD) or where the arguments do
not fit the spec (a bad numkeys), it falls back to the command's C{getkeys_proc}
(C{sortGetKeys}, C{genericGetKeys}…), mirrored here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from itertools import chain, islice, repeat
from pathlib import Path
from typing import Any

from portsuite_services.kv.resp import string2ll

Keys = list[tuple[bytes, list[str]]]


def _load_specs() -> dict[str, list[Any]]:
    """redis-server 7.0's key specs (begin_search/find_keys) of every command."""
    try:
        path = Path(__file__).with_name("commands").joinpath("key_specs.json")
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):  # pragma: no cover - shipped with the package
        return {}


KEY_SPECS = _load_specs()


Ranges = list[tuple[int, int, int, list[str]]]


def _lazy(argv: list[bytes], ranges: Ranges) -> Iterator[tuple[bytes, list[str]]]:
    """The keys of L{spec_ranges}, made one at a time (an MGET of 200,000 checked in slices)."""
    return chain.from_iterable(
        zip(islice(argv, first, last + 1, step), repeat(flags))
        for first, last, step, flags in ranges
    )


class LazyKeys(Collection[tuple[bytes, list[str]]]):
    """The keys of L{spec_ranges} with their count, made as they are read (COMMAND GETKEYS
    of 300,000 keys made them in one step: 0.3-0.7 s of tuples before its sliced reply)."""

    def __init__(self, argv: list[bytes], ranges: Ranges) -> None:
        self.argv, self.ranges = argv, ranges

    def __len__(self) -> int:
        return sum(len(range(first, last + 1, step)) for first, last, step, _ in self.ranges)

    def __iter__(self) -> Iterator[tuple[bytes, list[str]]]:
        return _lazy(self.argv, self.ranges)

    def __contains__(self, item: object) -> bool:
        return any(item == key for key in self)


def spec_ranges(name: str, argv: list[bytes]) -> Ranges | None:
    """
    Redis's C{getKeysUsingKeySpecs} as where its keys are: (first, last, step, flags),
    no key copied; None when a spec is unknown, incomplete or does not fit the arguments.
    """
    argc = len(argv)
    out: Ranges = []
    for flags, bs_type, bs, fk_type, fk in KEY_SPECS.get(name, ()):
        if "not_key" in flags:  # SPUBLISH's shard channel
            continue
        if bs_type == "index":
            first = bs["index"]
        elif bs_type == "keyword":
            first = _after_keyword(argv, bs["keyword"].encode().lower(), bs["startfrom"])
            if not first:
                continue
        else:
            return None
        if fk_type == "range":
            lastkey, step, limit = fk["lastkey"], fk["keystep"], fk["limit"]
            if lastkey >= 0:
                last = first + lastkey
            elif not limit:
                last = argc + lastkey
            else:
                last = first + ((argc - first) // limit + lastkey)
        elif fk_type == "keynum":
            at = first + fk["keynumidx"]
            n = string2ll(argv[at]) if at < argc else None
            if n is None or n < 0:
                return None
            step = fk["keystep"]
            first += fk["firstkey"]
            last = first + n - 1
        else:
            return None
        if last >= argc or last < first or first >= argc:
            return None
        out.append((first, last, step or 1, flags))
        if "incomplete" in flags:
            return None
    return out


def _after_keyword(argv: list[bytes], kw: bytes, start: int) -> int:
    """The index after the first C{kw} searched from C{start} (from the end if negative)."""
    argc = len(argv)
    rng = range(start, argc) if start > 0 else range(argc + start, 0, -1)
    for i in rng:
        if 0 < i < argc and argv[i].lower() == kw:
            return i + 1
    return 0


# -- the getkeys_proc of Redis's commands ---------------------------------------

_ATOI = re.compile(rb"\s*([+-]?\d+)")


def _atoi(b: bytes) -> int:
    m = _ATOI.match(b)
    return int(m.group(1)) if m else 0


def _generic(store: int, count: int, first: int) -> Callable[[list[bytes]], Keys]:
    """C{genericGetKeys}: numkeys at C{count}, keys from C{first}, a store key at C{store}."""

    def keys(argv: list[bytes]) -> Keys:
        if count >= len(argv):
            return []
        num = _atoi(argv[count])
        if num < 1 or num > len(argv) - first:
            return []
        out: Keys = list(zip(argv[first : first + num], repeat([])))
        if store:
            out.append((argv[store], []))
        return out

    return keys


def _sort(argv: list[bytes]) -> Keys:
    """C{sortGetKeys}: the sorted key, and the last STORE's key (SORT keeps the last)."""
    out: Keys = [(argv[1], ["RO", "access"])]
    store = None
    skip = {b"limit": 2, b"get": 1, b"by": 1}
    i = 2
    while i < len(argv):
        o = argv[i].lower()
        if o in skip:
            i += skip[o]
        elif o == b"store" and i + 1 < len(argv):
            store = argv[i + 1]
        i += 1
    if store is not None:
        out.append((store, ["OW", "update"]))
    return out


def _sort_ro(argv: list[bytes]) -> Keys:
    return [(argv[1], ["RO", "access"])]


def _migrate(argv: list[bytes]) -> Keys:
    """C{migrateGetKeys}: argv[3], or what follows KEYS (with an empty argv[3])."""
    first, num = 3, 1
    skip = {b"copy": 0, b"replace": 0, b"auth": 1, b"auth2": 2}
    i = 6
    while i < len(argv):
        o = argv[i].lower()
        if o == b"keys":
            if argv[3]:
                return []
            first, num = i + 1, len(argv) - i - 1
            break
        i += skip.get(o, 0) + 1
    flags = ["RW", "access", "delete"]
    return [(argv[first + j], flags) for j in range(num) if first + j < len(argv)]


def _georadius(argv: list[bytes]) -> Keys:
    """C{georadiusGetKeys}: the source, and the last STORE/STOREDIST key."""
    out: Keys = [(argv[1], [])]
    stored = None
    i = 5
    while i < len(argv):
        if argv[i].lower() in (b"store", b"storedist") and i + 1 < len(argv):
            stored = argv[i + 1]
            i += 1
        i += 1
    if stored is not None:
        out.append((stored, []))
    return out


def _xread(argv: list[bytes]) -> Keys:
    """C{xreadGetKeys}: the stream keys after the first STREAMS that is the option."""
    skip = {b"block": 1, b"count": 1, b"group": 2, b"noack": 0}
    streams = -1
    i = 1
    while i < len(argv):
        o = argv[i].lower()
        if o == b"streams":
            streams = i
            break
        if o not in skip:
            break
        i += skip[o] + 1
    num = len(argv) - streams - 1
    if streams < 0 or num == 0 or num % 2:
        return []
    return [(k, []) for k in argv[streams + 1 : streams + 1 + num // 2]]


def _set(argv: list[bytes]) -> Keys:
    """C{setGetKeys}: read and written with GET, only written without."""
    if any(a.lower() == b"get" for a in argv[3:]):
        return [(argv[1], ["RW", "access", "update"])]
    return [(argv[1], ["OW", "update"])]


def _bitfield(argv: list[bytes]) -> Keys:
    """C{bitfieldGetKeys}: read-only when every operation is a GET (or OVERFLOW)."""
    readonly = True
    i = 2
    n = len(argv)
    while i < n:
        o = argv[i].lower()
        left = n - i - 1
        if o == b"get" and left >= 2:
            i += 3
        elif o == b"overflow" and left >= 1:
            i += 2
        else:
            readonly = False  # SET, INCRBY, or a syntax error: assume a write
            break
    if readonly:
        return [(argv[1], ["RO", "access"])]
    return [(argv[1], ["RW", "access", "update"])]


GETKEYS_PROCS: dict[str, Callable[[list[bytes]], Keys]] = {
    "sort": _sort,
    "sort_ro": _sort_ro,
    "migrate": _migrate,
    "georadius": _georadius,
    "georadiusbymember": _georadius,
    "xread": _xread,
    "xreadgroup": _xread,
    "set": _set,
    "bitfield": _bitfield,
    "zunionstore": _generic(1, 2, 3),
    "zinterstore": _generic(1, 2, 3),
    "zdiffstore": _generic(1, 2, 3),
    "zunion": _generic(0, 1, 2),
    "zinter": _generic(0, 1, 2),
    "zdiff": _generic(0, 1, 2),
    "zintercard": _generic(0, 1, 2),
    "sintercard": _generic(0, 1, 2),
    "lmpop": _generic(0, 1, 2),
    "zmpop": _generic(0, 1, 2),
    "blmpop": _generic(0, 2, 3),
    "bzmpop": _generic(0, 2, 3),
    "eval": _generic(0, 2, 3),
    "evalsha": _generic(0, 2, 3),
    "eval_ro": _generic(0, 2, 3),
    "evalsha_ro": _generic(0, 2, 3),
    "fcall": _generic(0, 2, 3),
    "fcall_ro": _generic(0, 2, 3),
}


# commands whose keys may all be absent (EVAL s 0): GETKEYS answers an empty array
NO_MANDATORY_KEYS = frozenset(("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"))


def has_keys(name: str, cmd: Any) -> bool:
    """Redis's C{doesCommandHaveKeys} (C{cmd}: kv's command, None if kv lacks it)."""
    if name in GETKEYS_PROCS:
        return True
    if name in KEY_SPECS:
        return any("not_key" not in s[0] for s in KEY_SPECS[name])
    return cmd is not None and bool(cmd.first_key) and cmd.parent is None


def command_keys(name: str, argv: list[bytes]) -> Collection[tuple[bytes, list[str]]]:
    """
    Redis's C{getKeysFromCommandWithSpecs}: the keys of C{argv} (C{name} is the
    command's full name, C{object|encoding} for a subcommand) with their flags,
    made as they are read where the specs say where they are.
    """
    specs = KEY_SPECS.get(name, ())
    varflags = any("variable_flags" in s[0] for s in specs)
    if specs and not varflags:
        ranges = spec_ranges(name, argv)
        if ranges is not None:
            return LazyKeys(argv, ranges)
    proc = GETKEYS_PROCS.get(name)
    return proc(argv) if proc is not None else []


def acl_keys(cmd: Any, argv: list[bytes]) -> Iterable[tuple[bytes, list[str]]]:
    """
    The keys the ACL checks for C{cmd}: Redis's (L{command_keys}), and the keys
    kv's handler would use where Redis's specs see another one. A repeated
    keyword (C{GEORADIUS … STORE a STORE b} writes C{b}, the spec names C{a};
    C{XREADGROUP GROUP g STREAMS STREAMS k 0}) would otherwise let a user write a
    key outside its patterns: every key the command may touch is checked. Made as
    they are checked, not as a list first (a check of many keys goes in slices).
    """
    name = cmd.fullname
    if name not in KEY_SPECS:
        return _kv_only(cmd, argv)
    specs = KEY_SPECS[name]
    keys: Iterable[tuple[bytes, list[str]]] | None = None
    if specs and not any("variable_flags" in s[0] for s in specs):
        ranges = spec_ranges(name, argv)
        if ranges is not None:
            keys = _lazy(argv, ranges)
    if keys is None:
        proc = GETKEYS_PROCS.get(name)
        keys = proc(argv) if proc is not None else []
    proc = GETKEYS_PROCS.get(name)
    if proc is _georadius:  # (its first key is the source, already checked)
        return chain(keys, [(k, ["OW", "update"]) for k, _ in _georadius(argv)[1:]])
    if proc is _xread:
        return chain(keys, [(k, ["RO", "access"]) for k, _ in _xread(argv)])
    return keys


def _kv_only(cmd: Any, argv: list[bytes]) -> Iterable[tuple[bytes, list[str]]]:
    """A command Redis 7.0 does not have: kv's first/last/step positions."""
    if not cmd.first_key or cmd.parent is not None:
        return []
    last = cmd.last_key if cmd.last_key >= 0 else len(argv) + cmd.last_key
    flags = ["RW", "access", "update"] if cmd.write else ["RO", "access"]
    return _lazy(argv, [(cmd.first_key, last, cmd.key_step or 1, flags)])
