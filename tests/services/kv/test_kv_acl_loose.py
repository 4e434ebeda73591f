"""
ACL patterns that hold no literal byte (C{*?*}, C{[ab]*}, C{[a-c]?}), long names
and commands of very many keys, by users of hostile sizes: same verdicts as
stringmatchlen, and a check that would hold kv for long goes in slices (another
callback of the reactor runs between them). On a Clock and StringTransport.
"""

from __future__ import annotations

import random
from typing import Any

from test_kv_acl_scale import _glob_calls, _logged_in, _shown, same_as_globs_at_random
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, glob
from portsuite_services.kv.acl import READ, TABLE_AT, WRITE, Patterns
from portsuite_services.kv.bigwork import BIG

KEY_DENIED = "-NOPERM this user has no permissions to access one of the keys used as arguments"
WILD = [
    b"*",
    b"?",
    b"[ab]",
    b"[^a]",
    b"[a-c]",
    b"[c-a]",
    b"[]",
    b"[^]",
    b"[\\]]",
    b"[b",
    b"[\xff-a]",
]


def _no_literal(rnd: random.Random) -> bytes:
    return b"".join(rnd.choice(WILD) for _ in range(rnd.randint(1, 5)))


def test_patterns_of_no_literal_byte_match_as_stringmatchlen() -> None:
    """Lengths, one form for C{*?}/C{?*}, classes indexed by their bytes: what each pattern says."""
    same_as_globs_at_random(12, 300, _no_literal, 10, (b"abc]\xff", 40, 30), WRITE)


def _server_with(*rules: bytes) -> tuple[Clock, KVServer, Any, Any]:
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    admin.dataReceived(_cmd("ACL", "SETUSER", "u", "on", ">pw", "+@all", *rules))
    _drive(clock, lambda: ta.value() == b"+OK\r\n", 100_000)
    ta.clear()
    return clock, server, admin, ta


def _sliced(clock: Clock, u: Any, tu: Any, data: bytes, n: int = 1) -> tuple[list[Any], int]:
    """Send C{data}; its C{n} replies, and the turns of the reactor (others served) it took."""
    u.dataReceived(data)
    turns = 0
    while len(_replies(tu.value())) < n and turns < 100_000:
        other: list[int] = []
        clock.callLater(0, other.append, 1)
        _turn(clock)
        assert other == [1]
        turns += 1
    return _replies(tu.value()), turns


def test_lengths_are_numbers_however_many_patterns_say_them() -> None:
    """20,000 patterns of C{*} and C{?} only: a check is a comparison, no glob run."""
    rules = [b"~" + b"?" * (i % 40) + b"*" + b"?" * (i // 40 % 20) + b"*" for i in range(20_000)]
    rules += [b"%R~" + b"?" * i for i in range(1, 200)]  # exact lengths, read only
    clock, server, _admin, _ta = _server_with(*rules)
    u, tu = _logged_in(server, "u")
    with _glob_calls() as calls:
        u.dataReceived(
            _cmd("GET", "")  # (no pattern but an empty one matches an empty name)
            + _cmd("GET", "abc")
            + _cmd("SET", "a" * 200, "v")
            + _cmd("SET", "abc", "v")
        )
    assert [_shown(r) for r in _replies(tu.value())] == [KEY_DENIED, None, b"OK", b"OK"]
    assert calls[0] <= 4


def test_thousands_of_class_patterns_are_checked_in_slices() -> None:
    """50,000 distinct C{[xyz]*}-like patterns (and 5,000 C{[^x]*}): verdicts exact, in slices."""
    rnd = random.Random(13)
    alpha = [bytes([b]) for b in range(0x21, 0x7F) if b not in b"]\\-^*?["]
    pats: set[bytes] = set()
    while len(pats) < 50_000:
        pats.add(b"~[" + b"".join(rnd.sample(alpha, 3)) + b"]*")
    negated = {b"~[^\x01" + b"".join(rnd.sample(alpha, 60)) + b"]?*" for _ in range(5_000)}
    clock, server, _admin, _ta = _server_with(*sorted(pats), *sorted(negated))
    u, tu = _logged_in(server, "u")
    allowed = next(iter(pats))[2:3] + b"zz"
    got, turns = _sliced(clock, u, tu, _cmd("SET", allowed, "v") + _cmd("GET", "\x01"), 2)
    assert [_shown(r) for r in got] == [b"OK", KEY_DENIED]
    assert turns >= 2  # (the denied one tried every negated class: not in one step)
    # the other way round: the empty key matches none of them
    tu.clear()
    got, _turns = _sliced(clock, u, tu, _cmd("GET", ""))
    assert [_shown(r) for r in got] == [KEY_DENIED]


def test_a_megabyte_name_is_checked_in_slices() -> None:
    """A key of 1 MB against 20,000 C{*x<i>*} patterns: one step of 400 ms and more before."""
    clock, server, _admin, _ta = _server_with(*[b"~*x%d*" % i for i in range(20_000)])
    u, tu = _logged_in(server, "u")
    big = b"a" * 1_000_000
    got, turns = _sliced(clock, u, tu, _cmd("GET", big))
    assert [_shown(r) for r in got] == [KEY_DENIED]
    assert turns >= 2
    tu.clear()
    got, _turns = _sliced(clock, u, tu, _cmd("SET", big + b"x1234" + big, "v"))
    assert got == [b"OK"]


def test_a_command_of_very_many_keys_is_checked_as_they_come() -> None:
    """MGET of 4 x BIG keys, the last denied: denied whole, in slices; the keys never listed."""
    clock, server, admin, ta = _server_with(b"~k*", b"~[ab]*")
    u, tu = _logged_in(server, "u")
    keys = [b"k%d" % i for i in range(4 * BIG)]
    got, turns = _sliced(clock, u, tu, _cmd("MGET", *keys, "z"))
    assert [_shown(r) for r in got] == [KEY_DENIED]
    assert turns >= 2
    tu.clear()
    got, _turns = _sliced(clock, u, tu, _cmd("MGET", *keys, "b"))
    assert len(got[0]) == len(keys) + 1
    # the keys are made one at a time: the first step of a check asks for few of them
    from portsuite_services.kv import keyspecs
    from portsuite_services.kv.commands import COMMANDS

    made = keyspecs.acl_keys(COMMANDS[b"mget"], [b"mget", *keys])
    assert not isinstance(made, list) and next(iter(made)) == (b"k0", ["RO", "access"])


def test_a_copy_of_a_big_table_changes_only_itself() -> None:
    """Past TABLE_AT entries a Table is cut in parts; a copy writes its own parts only."""
    from portsuite_services.kv.acl import TABLE_AT, Table

    t = Table(ordered=True)
    names = [b"k%d" % i for i in range(3 * TABLE_AT)]
    for n in names:
        t[n] = None
    c = t.copy()
    for n in names[::7] + [b"new%d" % i for i in range(TABLE_AT)]:
        c[n] = 1
    assert list(t) == names and len(t) == len(names)
    assert all(t.get(n) is None for n in names) and b"new1" not in t
    assert list(c) == names + [b"new%d" % i for i in range(TABLE_AT)]
    assert c.get(names[7]) == 1 and c.get(names[8]) is None and b"new1" in c
    index = Patterns()
    for n in names:
        index.add(n, READ)
    more = index.copy()
    more.add(names[3], WRITE)
    assert index.match(names[3], READ) and not index.match(names[3], WRITE)
    assert more.match(names[3], WRITE) and more.match(names[4], READ)


def test_thousands_of_loose_patterns_are_kept_in_parts() -> None:
    """
    Patterns of no literal byte tried one by one (C{[^…]?*}) past TABLE_AT are cut in
    parts as users' rules are (Patterns.loose was one dict: a million of them grew it
    by copies of a million entries in one step, and every copy of the user copied
    it whole); a copy writes its own parts only; the verdicts stay stringmatchlen's.
    """
    rnd = random.Random(14)
    alpha = [bytes([b]) for b in range(0x21, 0x7F) if b not in b"]\\-^*?["]
    pats = sorted(
        {b"[^" + b"".join(sorted(rnd.sample(alpha, 3))) + b"]?*" for _ in range(3 * TABLE_AT)}
    )
    index = Patterns()
    for pat in pats:
        index.add(pat, READ)
    assert len(index.loose) == len(pats) > 2 * TABLE_AT
    assert max(map(len, index.loose.containers())) < TABLE_AT
    copy = index.copy()
    copy.add(b"[^" + bytes(range(0x21, 0x7F)) + b"]?*", WRITE)
    assert len(copy.loose) == len(index.loose) + 1
    for key in (b"!!", b"ab", b"~", b"".join(alpha) * 2, b""):
        for need in (0, READ, WRITE):
            want = need != WRITE and any(glob.match(p, key) for p in pats)
            assert index.match(key, need) == want, (key, need)
            more = need != READ and glob.match(b"[^" + bytes(range(0x21, 0x7F)) + b"]?*", key)
            assert copy.match(key, need) == (want or more), (key, need)


def test_a_pattern_of_a_megabyte_is_added_in_slices() -> None:
    """
    ACL SETUSER of key and channel patterns of a megabyte each: tokenized and indexed
    in slices, another callback of the reactor running between them (Redis takes any
    length; kv spent 0.5-3 s on one of 4 MB in one step); the checks stay
    stringmatchlen's.
    """
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    classes = b"[ab]" * 250_000
    inner = b"*" + b"x" * 1_000_000 + b"*"
    rules = [b"~" + classes, b"%R~" + inner, b"&" + classes]
    got, turns = _sliced(
        clock, admin, ta, _cmd("ACL", "SETUSER", "u", "on", ">pw", "+@all", *rules)
    )
    assert got == [b"OK"]
    assert turns >= 10
    u, tu = _logged_in(server, "u")
    inside = b"a" + b"x" * 1_000_000 + b"b"
    got, _turns = _sliced(
        clock,
        u,
        tu,
        _cmd("SET", b"ab" * 125_000, "v")
        + _cmd("SET", b"ab" * 124_999 + b"ac", "v")
        + _cmd("GET", inside)
        + _cmd("SET", inside, "v")
        + _cmd("PUBLISH", b"ba" * 125_000, "m")
        + _cmd("PUBLISH", b"ba", "m"),
        6,
    )
    channel_denied = (
        "-NOPERM this user has no permissions to access one of the channels used as arguments"
    )
    assert [_shown(r) for r in got] == [b"OK", KEY_DENIED, None, KEY_DENIED, 0, channel_denied]
