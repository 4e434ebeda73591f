"""
ACL SETUSER that takes channels away from a user disconnects its subscribers whose
subscriptions are no longer allowed, as Redis 7.0 does (C{ACLKillPubsubClientsIfNeeded}):
side by side with redis-server; then a subscriber of very many channels, on a Clock.
"""

from __future__ import annotations

import socket
from typing import Any

import hiredis
import pytest
from test_kv_acl_scale import _logged_in
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import BIG

# (label, the user's channel rules, what its client subscribes, the SETUSER that follows)
CASES: list[tuple[str, list[str], list[list[str]], list[str] | None]] = [
    ("revoked", ["&a*"], [["SUBSCRIBE", "ab"]], ["resetchannels", "&b*"]),
    ("still allowed", ["&a*", "&b*"], [["SUBSCRIBE", "ax"]], ["resetchannels", "&a*"]),
    ("allchannels revoked", ["allchannels"], [["SUBSCRIBE", "x"]], ["resetchannels"]),
    ("allchannels narrowed", ["allchannels"], [["SUBSCRIBE", "x"]], ["resetchannels", "&y"]),
    ("same rules again", ["&a*"], [["SUBSCRIBE", "ab"]], ["resetchannels", "&a*"]),
    ("reset", ["&a*"], [["SUBSCRIBE", "ab"]], ["reset", "on", "nopass", "+@all"]),
    ("pattern, allchannels", ["&a*"], [["PSUBSCRIBE", "a*"]], ["resetchannels", "&*"]),
    ("pattern, more", ["&a*"], [["PSUBSCRIBE", "a*"]], ["&b"]),
    ("pattern, not as it is", ["&a*", "&a?"], [["PSUBSCRIBE", "a?"]], ["resetchannels", "&a*"]),
    ("not subscribed", ["&a*"], [], ["resetchannels"]),
    ("unsubscribed", ["&a*"], [["SUBSCRIBE", "ab"], ["UNSUBSCRIBE"]], ["resetchannels"]),
    ("resp3", ["&a*"], [["HELLO", "3"], ["SUBSCRIBE", "ab"]], ["resetchannels"]),
    ("shard channel", ["&a*"], [["SSUBSCRIBE", "ab"]], ["resetchannels", "&b*"]),
    ("a bad rule: nothing changes", ["&a*"], [["SUBSCRIBE", "ab"]], ["resetchannels", "bogus"]),
    ("another user changes", ["&a*"], [["SUBSCRIBE", "ab"]], None),
    (
        "many, one revoked",
        ["&a*", "&b"],
        [["SUBSCRIBE", "ab", "b", "ac"]],
        ["resetchannels", "&a*"],
    ),
]


def _call(s: socket.socket, reader: Any, *args: str) -> Any:
    s.sendall(_cmd(*args))
    while (got := reader.gets()) is False:
        data = s.recv(65536)
        if not data:
            return "closed"
        reader.feed(data)
    return got


def _after(port: int, i: int, rules: list[str], subs: list[list[str]], change: Any) -> Any:
    """SETUSER's reply, and whether the subscriber is still served (a PING answered) or closed."""
    name = f"rv{i}"
    admin = socket.create_connection(("127.0.0.1", port), timeout=10)
    ra = hiredis.Reader()
    _call(admin, ra, "ACL", "SETUSER", name, "reset", "on", "nopass", "+@all", "~*", *rules)
    sub = socket.create_connection(("127.0.0.1", port), timeout=10)
    rs = hiredis.Reader()
    try:
        _call(sub, rs, "AUTH", name, "x")
        for cmd in subs:
            _call(sub, rs, *cmd)
            for _ in range(len(cmd) - 2):  # (one reply per channel: the others)
                while rs.gets() is False:
                    rs.feed(sub.recv(65536))
        if change is None:
            reply = _call(admin, ra, "ACL", "SETUSER", f"{name}other", "on", "resetchannels")
        else:
            reply = _call(admin, ra, "ACL", "SETUSER", name, *change)
        try:
            sub.sendall(_cmd("PING"))
            while True:
                data = sub.recv(65536)
                if not data:
                    state = "closed"
                    break
                rs.feed(data)
                if b"pong" in data.lower():
                    state = "served"
                    break
        except (ConnectionResetError, BrokenPipeError):
            state = "closed"
        return (str(reply), state)
    finally:
        sub.close()
        _call(admin, ra, "ACL", "DELUSER", name)
        admin.close()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_revoked_subscribers_as_redis(i: int, redis_port: int, kv_port: int) -> None:
    _label, rules, subs, change = CASES[i]
    want = _after(redis_port, i, rules, subs, change)
    assert _after(kv_port, i, rules, subs, change) == want
    assert want[1] in ("closed", "served")


def test_a_subscriber_of_very_many_channels_is_checked_in_slices() -> None:
    """4 x BIG channels, the last one revoked: the check goes over turns, then the client goes."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, ta = _client(server)
    admin.dataReceived(_cmd("ACL", "SETUSER", "u", "on", ">pw", "+@all", "&c*", "&z"))
    _drive(clock, lambda: ta.value() == b"+OK\r\n")
    ta.clear()
    u, tu = _logged_in(server, "u")
    names = [b"c%d" % i for i in range(4 * BIG)]
    u.dataReceived(_cmd("SUBSCRIBE", *names, "z"))
    _drive(clock, lambda: len(u.channels) == len(names) + 1, 100_000)
    stays, ts = _logged_in(server, "u")  # (not subscribed: stays)
    admin.dataReceived(_cmd("ACL", "SETUSER", "u", "resetchannels", "&c*"))
    turns = 0
    while not ta.value() and turns < 100_000:
        _turn(clock)
        turns += 1
    assert turns >= 2 and _replies(ta.value()) == [b"OK"]
    assert u.closed and tu.disconnecting
    assert not stays.closed
