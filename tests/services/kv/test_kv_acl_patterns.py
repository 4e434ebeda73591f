"""
ACL SETUSER's key and channel patterns side by side with redis-server 7.0, byte for
byte in RESP2 and RESP3: a pattern after C{allkeys}/C{~*} (or C{allchannels}/C{&*}) is
an error that changes nothing, GETUSER / LIST give a pattern's bytes back as they were
set, UTF-8 or not, and a key pattern given again adds its rights to the first.
"""

from __future__ import annotations

import pytest
from kv_raw import Raw

Argv = tuple[bytes, ...]


def _a(*words: str | bytes) -> Argv:
    return tuple(w.encode() if isinstance(w, str) else w for w in words)


# each case: the SETUSER rules of a user before, then the rules of a second SETUSER
AFTER_ALL = [
    (["on", "~pre", "&pre"], ["allkeys", "~foo"]),
    (["on", "~pre", "&pre"], ["~*", "~foo"]),
    (["on", "~pre", "&pre"], ["allkeys", "%RW~foo"]),
    (["on", "~pre", "&pre"], ["allkeys", "%R~foo"]),
    (["on", "~pre", "&pre"], ["allkeys", "%RW~*"]),
    (["on", "~pre", "&pre"], ["allkeys", "%X~foo"]),  # (this error, not a syntax error)
    (["on", "~pre", "&pre"], ["allkeys", "~a b"]),
    (["on", "~pre", "&pre"], ["allkeys", "~"]),
    (["on", "~pre", "&pre"], ["allkeys", "~a\0b"]),
    (["on", "~pre", "&pre"], ["allkeys", "~*"]),  # (allowed: no pattern added)
    (["on", "~pre", "&pre"], ["allkeys", "resetkeys", "~foo"]),  # (allowed: a new list)
    (["on", "~pre", "&pre"], ["allchannels", "&foo"]),
    (["on", "~pre", "&pre"], ["&*", "&foo"]),
    (["on", "~pre", "&pre"], ["allchannels", "&a b"]),
    (["on", "~pre", "&pre"], ["allchannels", "&"]),
    (["on", "~pre", "&pre"], ["allchannels", "&*"]),
    (["on", "~pre", "&pre"], ["allchannels", "resetchannels", "&foo"]),
    # the rest of the line is not applied: password, command, flag, channel
    (["on", "~pre", "&pre"], ["off", ">pw", "+get", "allkeys", "~foo", "&x"]),
    (["on", "~pre", "&pre"], ["nopass", "+@all", "allchannels", "&x", "~y"]),
    # the user had every key or channel already
    (["on", "allkeys", "allchannels"], ["off", "~foo"]),
    (["on", "allkeys", "allchannels"], ["off", "&foo"]),
    (["on", "~*", "&*"], ["off", "%W~foo"]),
]


def _session(port: int, resp3: bool, steps: list[list[Argv]]) -> list[bytes]:
    raw = Raw(port, resp3)
    out = []
    try:
        for script in steps:
            raw.call("ACL", "DELUSER", "u")
            for argv in script:
                out.append(b" ".join(argv) + b" -> " + raw.call(*argv))
            out.append(raw.call("ACL", "GETUSER", "u"))
            out.append(raw.call("ACL", "LIST"))
    finally:
        raw.call("ACL", "DELUSER", "u")
        raw.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_pattern_after_every_key_or_channel_as_redis(
    resp3: bool, redis_port: int, kv_port: int
) -> None:
    steps = [
        [_a("ACL", "SETUSER", "u", *before), _a("ACL", "SETUSER", "u", *after)]
        for before, after in AFTER_ALL
    ]
    want = _session(redis_port, resp3, steps)
    got = _session(kv_port, resp3, steps)
    for w, g in zip(want, got, strict=True):
        assert g == w


# patterns that are not UTF-8 (a lone byte, a cut sequence), next to ones that are
RAW_BYTES = [
    [
        _a("ACL", "SETUSER", "u", "on", ">pw", b"~\xff*", b"%R~a\xfe\xc3", b"%W~\x80w"),
        _a("ACL", "SETUSER", "u", b"&\xffch", b"&caf\xc3\xa9", b"~caf\xc3\xa9", "+@all"),
    ],
    [_a("ACL", "SETUSER", "u", b"~\xff x")],  # errors quote the rule as it was sent
    [_a("ACL", "SETUSER", "u", b"&\xff x")],
    [_a("ACL", "SETUSER", "u", b"+g\xffet")],
    [_a("ACL", "SETUSER", "u", b"\xfe")],
    [_a("ACL", "SETUSER", "u", b"%R\xff~x")],
    [_a("ACL", "SETUSER", "u", "allkeys", b"~\xff")],
]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_patterns_not_utf8_come_back_as_set_as_redis(
    resp3: bool, redis_port: int, kv_port: int
) -> None:
    want = _session(redis_port, resp3, RAW_BYTES)
    got = _session(kv_port, resp3, RAW_BYTES)
    for w, g in zip(want, got, strict=True):
        assert g == w


def test_getuser_gives_a_patterns_bytes_back(kv_port: int) -> None:
    """kv alone: the bytes set, not U+FFFD (EF BF BD) in their place."""
    raw = Raw(kv_port, resp3=True)
    try:
        raw.call("ACL", "DELUSER", "u")
        assert raw.call("ACL", "SETUSER", "u", b"~k\xff", b"&c\xfe") == b"+OK\r\n"
        reply = raw.call("ACL", "GETUSER", "u")
        assert b"$4\r\nkeys\r\n$3\r\n~k\xff\r\n" in reply
        assert b"$8\r\nchannels\r\n$3\r\n&c\xfe\r\n" in reply
        assert raw.call("ACL", "LIST").endswith(b"user u off ~k\xff resetchannels &c\xfe -@all\r\n")
    finally:
        raw.call("ACL", "DELUSER", "u")
        raw.close()


# a key pattern given again with other rights: one pattern, its rights added up, where
# it was first given (Redis 7.0 describes %R~a %W~a as ~a)
REPEATED = [
    ["%R~a", "%W~a"],
    ["%R~a", "~a"],
    ["~a", "%R~a"],
    ["%R~a", "%R~a"],
    ["%R~a", "~b", "%W~a"],
    ["%R~*", "%W~*"],
    ["%W~a", "%RW~a", "%R~a"],
    ["%R~a", "%WR~a"],
]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_a_pattern_given_again_adds_its_rights_as_redis(
    resp3: bool, redis_port: int, kv_port: int
) -> None:
    steps = [[_a("ACL", "SETUSER", "u", "on", *rules)] for rules in REPEATED]
    want = _session(redis_port, resp3, steps)
    got = _session(kv_port, resp3, steps)
    for w, g in zip(want, got, strict=True):
        assert g == w


def test_pattern_after_allkeys_is_an_error_that_changes_nothing(kv_port: int) -> None:
    """What a user sees on kv alone: the error, and the user as it was."""
    raw = Raw(kv_port)
    try:
        raw.call("ACL", "DELUSER", "u")
        assert raw.call("ACL", "SETUSER", "u", "on", "~pre") == b"+OK\r\n"
        reply = raw.call("ACL", "SETUSER", "u", ">pw", "allkeys", "~foo")
        assert reply == (
            b"-ERR Error in ACL SETUSER modifier '~foo': Adding a pattern after the * "
            b"pattern (or the 'allkeys' flag) is not valid and does not have any effect. "
            b"Try 'resetkeys' to start with an empty list of patterns\r\n"
        )
        reply = raw.call("ACL", "SETUSER", "u", "allchannels", "&foo")
        assert reply == (
            b"-ERR Error in ACL SETUSER modifier '&foo': Adding a pattern after the * "
            b"pattern (or the 'allchannels' flag) is not valid and does not have any effect. "
            b"Try 'resetchannels' to start with an empty list of channels\r\n"
        )
        assert raw.call("ACL", "LIST").endswith(b"user u on ~pre resetchannels -@all\r\n")
    finally:
        raw.call("ACL", "DELUSER", "u")
        raw.close()
