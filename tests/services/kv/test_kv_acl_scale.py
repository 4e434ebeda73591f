"""
ACL users with very many rules, and CLIENT KILL / CLIENT LIST over thousands of
clients: what used to hold the reactor (every service of the suite) for a long
time. A check looks at the patterns that may match the key, not all of them; a
long SETUSER, CLIENT KILL and CLIENT LIST run in slices (bigwork.py) and killed
clients' connections close a few dozen a turn. On a Clock and StringTransport first
(no timing), then side by side with redis-server on real sockets.
"""

from __future__ import annotations

import random
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hiredis
import pytest
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, glob
from portsuite_services.kv.acl import READ, WRITE, Patterns
from portsuite_services.kv.bigwork import BIG
from portsuite_services.kv.server import ABORTS_PER_TURN


@contextmanager
def _glob_calls(code: set[Any] | None = None) -> Iterator[list[int]]:
    """How many times glob.py's matchers (or C{code}) run meanwhile (a profile hook: nothing replaced)."""
    count = [0]
    if code is None:
        code = {
            f.__code__
            for f in vars(glob).values()
            if callable(f) and f.__name__.startswith("match")
        }

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in code:
            count[0] += 1

    sys.setprofile(hook)
    try:
        yield count
    finally:
        sys.setprofile(None)


def _glob(pattern: bytes, name: bytes) -> bool:
    """stringmatchlen's verdict, as ACL checks it (no KEYS-style C{*} shortcut: not on "")."""
    return glob.matches(glob.tokens(pattern), name)


def _random_pattern(rnd: random.Random) -> bytes:
    return bytes(rnd.choice(b"ab*?[]^-\\") for _ in range(rnd.randint(0, 7)))


def test_indexed_patterns_match_as_redis_globs() -> None:
    """Patterns (the index) answers what trying every pattern with glob.match answers."""
    rnd = random.Random(10)
    for _ in range(300):
        rules = [(_random_pattern(rnd), rnd.choice((READ, WRITE, READ | WRITE))) for _ in range(8)]
        # literal and prefix patterns too (the indexed cases), some with escapes
        rules += [(b"ab", READ), (b"a\\*b", WRITE), (b"ba*", READ | WRITE), (b"abab*", READ)]
        index = Patterns()
        for pat, mask in rules:
            index.add(pat, mask)
        for _ in range(40):
            key = bytes(rnd.choice(b"ab*?[]^-\\") for _ in range(rnd.randint(0, 9)))
            for need in (0, READ, WRITE, READ | WRITE):
                want = any(m & need == need and _glob(p, key) for p, m in rules)
                assert index.match(key, need) == want, (rules, key, need)


def _shown(reply: Any) -> Any:
    return f"-{reply}" if isinstance(reply, hiredis.ReplyError) else reply


def _logged_in(server: KVServer, user: str) -> tuple[Any, Any]:
    c, t = _client(server)
    c.dataReceived(_cmd("AUTH", user, "pw"))
    assert t.value() == b"+OK\r\n"
    t.clear()
    return c, t


def _user_with(*rules: bytes) -> tuple[Any, Any]:
    """A client logged in as user u (password pw, every command) with C{rules}."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    admin.dataReceived(_cmd("ACL", "SETUSER", "u", "on", ">pw", "+@all", *rules))
    _drive(clock, lambda: ta.value() == b"+OK\r\n")
    return _logged_in(server, "u")


def test_a_check_tries_only_the_patterns_that_may_match() -> None:
    """20,000 patterns: each check used to run the matcher on all of them (0.5 s at 100,000)."""
    rules = [b"~k%d" % i for i in range(10_000)] + [b"~p%d:*" % i for i in range(10_000)]
    u, tu = _user_with(*rules, b"&c*")
    with _glob_calls() as calls:
        u.dataReceived(
            _cmd("GET", "zzz")
            + _cmd("GET", "k9999")
            + _cmd("SET", "p1234:x", "v")
            + _cmd("GET", "p12345")
            + _cmd("PUBLISH", "d", "m")
        )
    key_denied = "-NOPERM this user has no permissions to access one of the keys used as arguments"
    assert [_shown(r) for r in _replies(tu.value())] == [
        key_denied,
        None,
        b"OK",
        key_denied,
        "-NOPERM this user has no permissions to access one of the channels used as arguments",
    ]
    assert calls[0] <= 4


def _wild_pattern(rnd: random.Random) -> bytes:
    """A pattern starting with a wildcard, with literal runs and suffixes (the indexed kinds)."""
    head = rnd.choice([b"*", b"?", b"[ab]", b"*?", b"[^a]*"])
    body = bytes(rnd.choice(b"ab*?[]^-\\") for _ in range(rnd.randint(0, 3)))
    tail = bytes(rnd.choice(b"abc") for _ in range(rnd.randint(0, 6)))
    return head + body + tail + rnd.choice([b"", b"*", b"?", b"[bc]"])


def same_as_globs(
    rules: list[tuple[bytes, int]], more: tuple[bytes, int], keys: list[bytes]
) -> None:
    """
    The index of C{rules} answers for each key what trying every pattern answers; a
    copy that adds C{more} to buckets it shares with the original changes only itself.
    """
    index = Patterns()
    for pat, mask in rules:
        index.add(pat, mask)
    copy = index.copy()
    copy.add(*more)
    for key in keys:
        for need in (0, READ, WRITE, READ | WRITE):
            want = any(m & need == need and _glob(p, key) for p, m in rules)
            assert index.match(key, need) == want, (rules, key, need)
            extra = more[1] & need == need and _glob(more[0], key)
            assert copy.match(key, need) == (want or extra), (rules, more, key, need)


def same_as_globs_at_random(
    seed: int,
    rounds: int,
    pattern: Callable[[random.Random], bytes],
    rules: int,
    key: tuple[bytes, int, int],
    more: int,
) -> None:
    """
    L{same_as_globs} on C{rounds} random sets of C{rules} patterns made by C{pattern},
    each allowing READ, WRITE or both, and keys of C{key}: (their bytes, how long at
    most, how many); C{more}: what the copy's extra pattern allows.
    """
    rnd = random.Random(seed)
    alphabet, longest, count = key
    for _ in range(rounds):
        drawn = [(pattern(rnd), rnd.choice((READ, WRITE, READ | WRITE))) for _ in range(rules)]
        keys = [
            bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, longest)))
            for _ in range(count)
        ]
        same_as_globs(drawn, (pattern(rnd), more), keys)


def test_patterns_starting_with_a_wildcard_match_as_redis_globs() -> None:
    """By literal suffix or by literal run: the index answers what glob.match answers."""
    same_as_globs_at_random(11, 200, _wild_pattern, 12, (b"abc*?[]^-\\", 12, 40), READ)


def test_a_check_among_patterns_starting_with_a_wildcard_tries_few() -> None:
    """20,000 C{*x<i>*} and C{*:<i>} patterns: each check tried them all (34 ms; 170 at 100k)."""
    rules = [b"~*x%d*" % i for i in range(10_000)] + [b"%%R~*:%d" % i for i in range(10_000)]
    u, tu = _user_with(*rules, *[b"&*c%d" % i for i in range(10_000)])
    with _glob_calls() as calls:
        u.dataReceived(
            _cmd("GET", "zzz")
            + _cmd("GET", "ax9999b")
            + _cmd("GET", "k:1234")
            + _cmd("SET", "k:1234", "v")
            + _cmd("PUBLISH", "d", "m")
            + _cmd("PUBLISH", "zc77", "m")
        )
    key_denied = "-NOPERM this user has no permissions to access one of the keys used as arguments"
    assert [_shown(r) for r in _replies(tu.value())] == [
        key_denied,
        None,
        None,
        key_denied,  # (%R~: read only)
        "-NOPERM this user has no permissions to access one of the channels used as arguments",
        0,
    ]
    assert calls[0] <= 20


def test_the_channel_check_of_a_subscribe_of_very_many_names_runs_in_slices() -> None:
    """
    200,000 channels by a user with channel rules: checked in one step (70-100 ms).
    In slices, every other kv client waiting, then the command as checked whole.
    """
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    admin.dataReceived(_cmd("ACL", "SETUSER", "u", "on", ">pw", "+@all", "~*", "&c*", "&*:x"))
    _drive(clock, lambda: ta.value() == b"+OK\r\n")
    ta.clear()
    u, tu = _logged_in(server, "u")
    names = [b"c%d" % i for i in range(4 * BIG)] + [b"d:x"]
    for cmd, last, ok in (("SUBSCRIBE", b"zz", False), ("SSUBSCRIBE", b"d:x", True)):
        with _glob_calls({Patterns.match.__code__}) as checks:
            u.dataReceived(_cmd(cmd, *names, last) + _cmd("PING"))
            admin.dataReceived(_cmd("PUBSUB", "NUMSUB", "c1"))
            assert tu.value() == b"" and ta.value() == b""  # nothing yet: the check goes on
            turns = 0
            while not tu.value() and turns < 1000:
                other: list[int] = []
                clock.callLater(0, other.append, 1)
                _turn(clock)  # (another service is served between slices)
                assert other == [1]
                turns += 1
            assert turns >= 2
            _drive(clock, lambda: b"pong" in tu.value().lower() and ta.value() != b"", 100_000)
        assert checks[0] <= len(names) + 1  # checked once (not again when it runs in slices)
        got = _replies(tu.value())
        if ok:
            assert got[0] == [b"ssubscribe", b"c0", 1] and len(got) == len(names) + 2
            assert got[-2] == [b"ssubscribe", b"d:x", len(names)]
            assert len(u.shards) == len(names)
        else:  # denied whole: nothing subscribed, the denial in ACL LOG
            assert [_shown(r) for r in got] == [
                "-NOPERM this user has no permissions to access one of the channels used "
                "as arguments",
                b"PONG",
            ]
            assert not u.channels and _replies(ta.value()) == [[b"c1", 0]]
            ta.clear()
            admin.dataReceived(_cmd("ACL", "LOG", "1"))
            log = _replies(ta.value())[0][0]
            assert log[log.index(b"object") + 1] == b"zz"
        tu.clear()
        ta.clear()


def test_a_long_setuser_runs_in_slices_and_is_atomic() -> None:
    """The other clients wait for it (as Redis, it is one command); a bad rule: nothing changes."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    other, to = _client(server)
    rules = [b"~k%d" % i for i in range(BIG)]
    admin.dataReceived(
        _cmd("ACL", "SETUSER", "u", "on", ">pw", "+get", *rules) + _cmd("ACL", "GETUSER", "u")
    )
    assert ta.value() == b""  # in slices: the reactor is free meanwhile
    other.dataReceived(_cmd("ACL", "GETUSER", "u"))
    assert to.value() == b""  # kv's other clients wait for the whole command
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    ok, got = _replies(ta.value())
    assert ok == b"OK"
    assert got[7] == b" ".join(b"~k%d" % i for i in range(BIG))
    assert _replies(to.value()) == [got]
    before = ta.value()
    # a bad rule at the end of a long list: an error, and the user as it was
    ta.clear()
    admin.dataReceived(
        _cmd("ACL", "SETUSER", "u", "resetkeys", *[b"~x%d" % i for i in range(BIG)], "bogus")
        + _cmd("ACL", "GETUSER", "u")
    )
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    err, again = _replies(ta.value())
    assert _shown(err) == "-ERR Error in ACL SETUSER modifier 'bogus': Syntax error"
    assert again == got and before


def test_client_kill_of_thousands_closes_them_over_turns() -> None:
    """Gone from CLIENT LIST at once, their connections closed ABORTS_PER_TURN a turn."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    victims = [_client(server) for _ in range(3000)]
    admin.dataReceived(_cmd("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))

    def aborted() -> int:
        return sum(1 for _, t in victims if t.disconnecting)

    closed = [aborted()]  # (by the command itself)

    for _ in range(1000):
        if ta.value() and aborted() == len(victims):
            break
        before = aborted()
        _turn(clock)
        closed[0] = max(closed[0], aborted() - before)
    assert ta.value() == b":3000\r\n"
    assert aborted() == len(victims)
    assert closed[0] <= ABORTS_PER_TURN  # never all at once
    # what a killed client sends is not run
    c, t = victims[0]
    c.dataReceived(_cmd("SET", "k", "v"))
    assert t.value() == b""
    ta.clear()
    admin.dataReceived(_cmd("CLIENT", "LIST"))
    _drive(clock, lambda: bool(ta.value()))
    assert _replies(ta.value())[0].count(b"\n") == 1


def test_client_list_of_thousands_is_the_whole_list() -> None:
    """Made in slices: the same text as made whole (the caller's own line without flag b)."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    others = [_client(server) for _ in range(3000)]
    for i, (c, _t) in enumerate(others):
        c.dataReceived(_cmd("CLIENT", "SETNAME", f"c{i}"))
    admin.dataReceived(_cmd("CLIENT", "LIST"))
    assert ta.value() == b""  # in slices
    _drive(clock, lambda: bool(ta.value()))
    sliced = _replies(ta.value())[0]
    whole: list[bytes] = []
    admin.execute([b"CLIENT", b"LIST"], whole)  # (no batch: made whole)
    assert _replies(b"".join(whole))[0] == sliced
    lines = sliced.decode().splitlines()
    assert len(lines) == 3001 and " name=c2999 " in lines[-1]
    assert " flags=N " in lines[0] and " cmd=client|list " in lines[0]


# -- side by side with redis-server ----------------------------------------------------


def _call(sock: socket.socket, *args: str | bytes) -> bytes:
    """One command, its whole reply as bytes."""
    sock.sendall(_cmd(*args))
    data = b""
    while True:
        data += sock.recv(1 << 20)
        r = hiredis.Reader()
        r.feed(data)
        if r.gets() is not False:
            return data


BIG_USER = [
    "on",
    ">pw",
    *[f"~k{i}" for i in range(3000)],
    *[f"%R~r{i}:*" for i in range(1000)],
    *[f"%W~w*{i}" for i in range(500)],
    "~[ab]x?y",
    "~esc\\*aped",
    *[f"&c{i}*" for i in range(2000)],
    "+@all",
    "-hgetall",
]
DRYRUNS = [
    "GET k5",
    "GET k3000",
    "GET r5:x",
    "SET r5:x v",
    "SET w12345 v",
    "GET w12345",
    "GET ax5y",
    "GET esc*aped",
    "GET escXaped",
    "HGETALL k5",
    "MGET k1 k2 k2999",
    "MGET k1 zz",
    "PUBLISH c5x m",
    "PUBLISH zz m",
    "SUBSCRIBE c77 c1999abc",
    "SUBSCRIBE c77 d",
]


def _big_user(port: int) -> list[bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    out = []
    try:
        out.append(_call(s, "ACL", "SETUSER", "big", *BIG_USER))
        out.append(_call(s, "ACL", "GETUSER", "big"))
        out.append(b"\n".join(x for x in _call(s, "ACL", "LIST").split(b"\r\n") if b"big" in x))
        for line in DRYRUNS:
            out.append(_call(s, "ACL", "DRYRUN", "big", *line.split()) + line.encode())
        bad = [*[f"~q{i}" for i in range(5000)], "&x", "nosuchrule"]
        out.append(_call(s, "ACL", "SETUSER", "big", "resetkeys", *bad))
        out.append(_call(s, "ACL", "GETUSER", "big"))  # unchanged
    finally:
        _call(s, "ACL", "DELUSER", "big")
        s.close()
    return out


@pytest.mark.filterwarnings("ignore")
def test_a_big_user_as_redis(redis_port: int, kv_port: int) -> None:
    want = _big_user(redis_port)
    got = _big_user(kv_port)
    assert len(got) == len(want)
    for w, g in zip(want, got, strict=True):
        assert g == w


def _long_and_blank_patterns(port: int) -> list[bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    long = b"[ab]" * 250_000  # (a megabyte: Redis takes any length)
    try:
        out = [_call(s, "ACL", "SETUSER", "lp", "on", b"~" + long, b"%R~*x" + long, b"&" + long)]
        out.append(_call(s, "ACL", "GETUSER", "lp"))
        # a pattern holding an isspace byte or a NUL: refused (shown up to the NUL)
        for rule in (b"~a b", b"&a\tb", b"%R~a\nb", b"~a\vb", b"&a\fb", b"~a\0b"):
            out.append(_call(s, "ACL", "SETUSER", "lp", rule) + rule)
        out.append(_call(s, "ACL", "GETUSER", "lp"))
    finally:
        _call(s, "ACL", "DELUSER", "lp")
        s.close()
    return out


def test_long_and_blank_patterns_as_redis(redis_port: int, kv_port: int) -> None:
    assert _long_and_blank_patterns(kv_port) == _long_and_blank_patterns(redis_port)


def test_deluser_of_a_big_user_frees_it_in_slices() -> None:
    """Its clients are gone at once; its 100,000 patterns are freed a piece a turn."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    rules = [b"~k%d" % i for i in range(50_000)] + [b"&c%d*" % i for i in range(50_000)]
    admin.dataReceived(_cmd("ACL", "SETUSER", "u", "on", ">pw", "+@all", *rules))
    _drive(clock, lambda: ta.value() == b"+OK\r\n")
    u, tu = _logged_in(server, "u")
    ta.clear()
    admin.dataReceived(_cmd("ACL", "DELUSER", "u") + _cmd("ACL", "USERS"))
    assert _replies(ta.value()) == [1, [b"default"]]
    assert u.closed and tu.disconnecting
    assert server.lazyfree.pending > 0  # not all at once
    _drive(clock, lambda: server.lazyfree.pending == 0)
