"""
What the attacker's sweep of branch kvprobe found holding the suite (bench/kv_sweep.py),
each now in slices as the other big commands are (bigwork.py): the rest of the suite is
served between them, every other kv client waits, and the reply is the one of the
command run whole. On a Clock.
"""

from __future__ import annotations

from typing import Any

from test_kv_bigreply import _client, _cmd, _drive, _replies, _settle
from test_kv_bigwork import _turn
from test_kv_sweep import _busy_turns
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings

KEYS = 40_000  # past bigwork.BIG: a pass over them is big work


def _expiring(live: list[bytes]) -> tuple[Clock, KVServer]:
    """KEYS keys whose TTL has just passed (not yet removed by active expiry), and C{live}."""
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    pairs: list[Any] = [x for i in range(KEYS) for x in (b"k%d" % i, b"v")]
    admin.dataReceived(_cmd("MSET", *pairs))
    _settle(server)
    admin.dataReceived(b"".join(_cmd("PEXPIRE", b"k%d" % i, "1") for i in range(KEYS)))
    for key in live:
        admin.dataReceived(_cmd("SET", key, "v"))
    _settle(server)
    clock.advance(0.01)  # (their time is past; the expiry cycle has not run)
    return clock, server


def test_randomkey_among_expired_keys_looks_for_a_live_one_in_slices() -> None:
    # 600,000 keys all expired: RANDOMKEY told them apart in one step, 0.5 s
    for live in ([], [b"alive", b"also"]):
        clock, server = _expiring(live)
        a, ta = _client(server)
        b, tb = _client(server)
        a.dataReceived(_cmd("RANDOMKEY"))
        b.dataReceived(_cmd("PING"))
        if ta.value() == b"":  # (100 tries at random missed the live keys: a pass)
            _busy_turns(clock, server, tb)
        _drive(clock, lambda ta=ta, tb=tb: ta.value() != b"" and tb.value() != b"")
        got = _replies(ta.value())[0]
        assert got in live if live else got is None
        assert _replies(tb.value()) == [b"PONG"]
    # (with no live key at all the pass always happens)
    clock, server = _expiring([])
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("RANDOMKEY"))
    b.dataReceived(_cmd("PING"))
    assert ta.value() == b""
    _busy_turns(clock, server, tb)


def test_active_expiry_of_many_keys_goes_in_slices() -> None:
    # 2,000 keys expired in one tick of the cron with the AOF on: 18 ms of CPU at once,
    # every 100 ms, 50-80 ms of the suite's time on a busy machine
    clock, server = _expiring([b"alive"])
    store = server.store
    assert store.expire_cycle(until=0.0) <= 32  # (a time past: stops at its first look)
    server._cron()
    assert 0 < KEYS - len(store.data) <= 2000 + 32
    assert server._expiry_call is not None  # more are due: the next slice, next turn
    served: list[int] = []
    clock.callLater(0, served.append, 1)
    _turn(clock)
    assert served == [1]  # the reactor's other calls ran in that turn too
    for _ in range(KEYS):
        if len(store.data) == 1:
            break
        while server._expiry_call is not None:
            _turn(clock)
        clock.advance(0.1)
        server._cron()  # (the next tick)
    assert list(store.data) == [b"alive"] and server._expiry_call is None


def test_a_big_message_is_published_to_a_few_subscribers_a_step() -> None:
    # PUBLISH of 4 MB pushed it to 128 subscribers in the command's own step, each
    # handed a turn's output of it: 148 ms in-process
    clock = Clock()
    server = KVServer(Settings(), clock)
    subs = [_client(server) for _ in range(40)]
    for s, _ in subs:
        s.dataReceived(_cmd("SUBSCRIBE", "ch"))
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("PUBLISH", "ch", b"x" * (1 << 20)))
    b.dataReceived(_cmd("PING"))
    assert ta.value() == b""  # delivery goes on in slices
    _busy_turns(clock, server, tb)
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")
    assert _replies(ta.value()) == [40] and _replies(tb.value()) == [b"PONG"]
    whole = len(_cmd("SUBSCRIBE", "ch")) + len(_cmd("message", "ch", b"x" * (1 << 20)))
    _drive(clock, lambda: all(len(t.value()) >= whole for _, t in subs))  # (a slice a turn)
    for _, t in subs:
        assert _replies(t.value())[-1] == [b"message", b"ch", b"x" * (1 << 20)]
