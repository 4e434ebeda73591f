"""Blocking list commands: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP, and CLIENT UNBLOCK."""

from __future__ import annotations

from collections import deque
from typing import Any

from portsuite_services.kv import bigreply, bigwork
from portsuite_services.kv.blocking import (
    NOT_READY,
    client_unblock,
    parse_timeout,
    retrying,
)
from portsuite_services.kv.commands import NO_REPLY, SYNTAX, CommandError, command, wrongtype
from portsuite_services.kv.commands.containers import pop_many
from portsuite_services.kv.resp import NULL_ARRAY, string2ll

L = "list"
LLONG_MAX = 2**63 - 1


def _list(c: Any, key: bytes) -> Any:
    """The list at C{key}, or None; WRONGTYPE, or None when a woken client re-tries."""
    v = c.store.get(key)
    if v is None or type(v) is deque:
        return v
    if retrying(c):
        return None  # Redis 7.0: a key of another type does not wake a blocked client
    raise wrongtype()


def _pop_first(
    c: Any, keys: list[bytes], left: bool, count: int | None, argv: list[bytes] | None = None
) -> Any:
    """
    Pop from the first non-empty list of C{keys}; the AOF records LPOP/RPOP. With a
    C{count}, C{argv} is the command (many elements are copied in slices: L{pop_many}).
    """
    for key in keys:
        lst = _list(c, key)
        if not lst:
            continue
        pop = lst.popleft if left else lst.pop
        store = c.store
        name = b"LPOP" if left else b"RPOP"
        if count is None:
            value = pop()
            c.also = [[name, key]]
            reply: Any = [key, value]
        else:
            assert argv is not None
            got = pop_many(c, argv, key, lst, min(count, len(lst)), left)
            if got is NO_REPLY:
                return got
            c.also = [[name, key, b"%d" % len(got)]]
            reply = bigreply.keyed_array(c, key, got)
        store.dirty += 1
        if not lst:
            store.delete(key)
        c.touched = [key]  # (BLMPOP's keys are not where the dispatcher looks)
        return reply
    return NOT_READY


def _bpop(c: Any, argv: list[bytes], left: bool) -> Any:
    timeout = parse_timeout(argv[-1])
    keys = argv[1:-1]
    return bigwork.block_on(
        c, argv, keys, timeout, lambda ks: _pop_first(c, ks, left, None), NULL_ARRAY
    )


@command(
    "blpop",
    -3,
    "write noscript blocking",
    L,
    "Remove and get the first element in a list, or block until one is available",
    keys=(1, -2, 1),
)
def blpop(c: Any, argv: list[bytes]) -> Any:
    return _bpop(c, argv, True)


@command(
    "brpop",
    -3,
    "write noscript blocking",
    L,
    "Remove and get the last element in a list, or block until one is available",
    keys=(1, -2, 1),
)
def brpop(c: Any, argv: list[bytes]) -> Any:
    return _bpop(c, argv, False)


def _side(b: bytes) -> bool:
    s = b.lower()
    if s == b"left":
        return True
    if s == b"right":
        return False
    raise CommandError(SYNTAX)


def _lmove(c: Any, src: bytes, dst: bytes, frm: bool, to: bool, record: list[bytes]) -> Any:
    lst = _list(c, src)
    if not lst:
        return NOT_READY
    target = c.store.get(dst)
    if target is not None and type(target) is not deque:
        if retrying(c):
            return NOT_READY
        raise wrongtype()
    value = lst.popleft() if frm else lst.pop()
    store = c.store
    if target is None:
        if src == dst:
            target = lst
        else:
            target = deque()
            store.set(dst, target)
    if to:
        target.appendleft(value)
    else:
        target.append(value)
    if not lst:
        store.delete(src)
    store.dirty += 1
    c.also = [record]
    return value


@command(
    "blmove",
    6,
    "write denyoom noscript blocking",
    L,
    "Pop an element from a list, push it to another list and return it; or block until one "
    "is available",
    keys=(1, 2, 1),
)
def blmove(c: Any, argv: list[bytes]) -> Any:
    frm, to = _side(argv[3]), _side(argv[4])
    timeout = parse_timeout(argv[5])
    src, dst = argv[1], argv[2]
    record = [b"LMOVE", src, dst, argv[3], argv[4]]
    attempt = lambda _: _lmove(c, src, dst, frm, to, record)  # noqa: E731
    return bigwork.block_on(c, argv, [src], timeout, attempt, NULL_ARRAY, None)


@command(
    "brpoplpush",
    4,
    "write denyoom noscript blocking",
    L,
    "Pop an element from a list, push it to another list and return it; or block until one "
    "is available",
    keys=(1, 2, 1),
)
def brpoplpush(c: Any, argv: list[bytes]) -> Any:
    timeout = parse_timeout(argv[3])
    src, dst = argv[1], argv[2]
    record = [b"RPOPLPUSH", src, dst]
    attempt = lambda _: _lmove(c, src, dst, False, True, record)  # noqa: E731
    return bigwork.block_on(c, argv, [src], timeout, attempt, NULL_ARRAY, None)


def _range_arg(raw: bytes, error: str) -> int:
    v = string2ll(raw)
    if v is None or v < 1:
        raise CommandError(error)
    return v


@command(
    "blmpop",
    -5,
    "write noscript blocking",
    L,
    "Pop elements from a list, or block until one is available",
    keys=(0, 0, 0),
)
def blmpop(c: Any, argv: list[bytes]) -> Any:
    numkeys = _range_arg(argv[2], "ERR numkeys should be greater than 0")
    where = 2 + numkeys + 1
    if where >= len(argv):
        raise CommandError(SYNTAX)
    left = _side(argv[where])
    count = -1
    j = where + 1
    while j < len(argv):
        if count == -1 and argv[j].lower() == b"count" and j + 1 < len(argv):
            count = _range_arg(argv[j + 1], "ERR count should be greater than 0")
            j += 2
        else:
            raise CommandError(SYNTAX)
    if count == -1:
        count = 1
    timeout = parse_timeout(argv[1])
    keys = argv[3:where]
    attempt = lambda ks: _pop_first(c, ks, left, count, argv)  # noqa: E731
    return bigwork.block_on(c, argv, keys, timeout, attempt, NULL_ARRAY)


command(
    "unblock",
    -3,
    "admin noscript",
    "connection",
    "Unblock a client blocked in a blocking command from a different connection",
    parent="client",
)(client_unblock)
