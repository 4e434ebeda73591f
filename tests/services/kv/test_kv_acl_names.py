"""
ACL user names, and the keys and channels a user is denied, that are not UTF-8: kept
byte for byte as redis-server 7.0 keeps them (two names that differ in such bytes are
two users, not one), in every reply that shows them (USERS, WHOAMI, CLIENT INFO/LIST,
ACL LOG, DRYRUN, errors), RESP2 and RESP3.
"""

from __future__ import annotations

import re

import hiredis
import pytest
from kv_raw import Raw

NAMES = (b"u\xff", b"u\xfe", b"caf\xc3\xa9")


def _parse(reply: bytes) -> object:
    r = hiredis.Reader()
    r.feed(reply)
    return r.gets()


def _user_field(info: bytes) -> bytes:
    found = re.search(rb"user=\S+", info)
    assert found is not None, info
    return found.group(0)


def _session(port: int, resp3: bool) -> list[object]:
    admin, user, other = Raw(port, resp3), Raw(port, resp3), Raw(port, resp3)
    out: list[object] = []
    try:
        admin.call("ACL", "DELUSER", *NAMES)
        admin.call("ACL", "LOG", "RESET")
        out += [
            admin.call("ACL", "SETUSER", b"u\xff", "on", ">pw", "~a*", "&a*", "+@all"),
            admin.call("ACL", "SETUSER", b"caf\xc3\xa9", "on", "nopass", "~*", "+@all"),
            admin.call("ACL", "GETUSER", b"u\xfe"),  # another name: no such user
            admin.call("ACL", "USERS"),
            user.call("AUTH", b"u\xfe", "pw"),
            user.call("AUTH", b"u\xff", "pw"),
            user.call("ACL", "WHOAMI"),
            user.call("GET", b"\xffk"),
            user.call("PUBLISH", b"\xffc", "m"),
            _user_field(user.call("CLIENT", "INFO")),
            sorted(re.findall(rb"user=\S+", admin.call("CLIENT", "LIST"))),
            other.call("AUTH", b"caf\xc3\xa9", "x"),
            _user_field(other.call("CLIENT", "INFO")),
            other.call("ACL", "WHOAMI"),
        ]
        log = _parse(admin.call("ACL", "LOG"))
        assert isinstance(log, list)
        for e in log:
            d = e if isinstance(e, dict) else dict(zip(e[::2], e[1::2], strict=True))
            out.append([d[k] for k in (b"count", b"reason", b"context", b"object", b"username")])
            out.append(_user_field(d[b"client-info"]))
        out += [
            admin.call("ACL", "DRYRUN", b"u\xff", "get", b"\xffk"),
            admin.call("ACL", "DRYRUN", b"u\xff", "publish", b"\xffc", "m"),
            admin.call("ACL", "DRYRUN", b"u\xfe", "get", b"\xffk"),
            admin.call("CLIENT", "KILL", "USER", b"u\xfe"),
            admin.call("CLIENT", "KILL", "USER", b"u\xff"),
            admin.call("ACL", "DELUSER", *NAMES),
        ]
    finally:
        admin.call("ACL", "DELUSER", *NAMES)
        admin.call("ACL", "LOG", "RESET")
        for r in (admin, user, other):
            r.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_names_not_utf8_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    want = _session(redis_port, resp3)
    got = _session(kv_port, resp3)
    for w, g in zip(want, got, strict=True):
        assert g == w


def test_two_names_that_differ_in_bytes_not_utf8_are_two_users(kv_port: int) -> None:
    """kv alone: U+FFFD no longer stands for both (u\\xfe was u\\xff, with its password)."""
    admin, user = Raw(kv_port), Raw(kv_port)
    try:
        assert admin.call("ACL", "SETUSER", b"u\xff", "on", ">pw", "+@all") == b"+OK\r\n"
        assert admin.call("ACL", "GETUSER", b"u\xfe") == b"$-1\r\n"
        assert user.call("AUTH", b"u\xfe", "pw").startswith(b"-WRONGPASS")
        assert user.call("AUTH", b"u\xff", "pw") == b"+OK\r\n"
        assert user.call("ACL", "WHOAMI") == b"$2\r\nu\xff\r\n"
        assert admin.call("ACL", "DELUSER", b"u\xfe") == b":0\r\n"
        assert b"\r\n$2\r\nu\xff\r\n" in admin.call("ACL", "USERS")
    finally:
        admin.call("ACL", "DELUSER", b"u\xff")
        admin.close()
        user.close()
