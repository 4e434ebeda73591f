"""
SCAN, SSCAN, HSCAN and ZSCAN calls of many elements (a COUNT of ten million, with or
without MATCH or TYPE) in slices (bigwork.py): the page is matched, typed and paired
with values a piece at a time, the rest of the suite served between them, every other
kv client waiting for the whole call; the reply is the one of the call run whole
(inside MULTI/EXEC), and redis-server's elements.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from test_kv_sweep import _big_values, _busy_turns, _call, _server

from portsuite_services.kv.bigreply import SLICE_ITEMS

M = 20_000  # members: each command's page costs past bigwork.BIG
K = "10000000"


def _values(n: int = M) -> list[tuple[Any, ...]]:
    return _big_values(n)


SCANS = [
    ("SSCAN", "s", "0", "COUNT", K),
    ("SSCAN", "s", "0", "MATCH", "*9", "COUNT", K),
    ("HSCAN", "h", "0", "COUNT", K),
    ("HSCAN", "h", "0", "MATCH", "f1*", "COUNT", K),
    ("ZSCAN", "z", "0", "COUNT", K),
    ("ZSCAN", "z", "0", "MATCH", "*[27]", "COUNT", K),
    ("SCAN", "0", "COUNT", K),
    ("SCAN", "0", "MATCH", "k*9", "TYPE", "string", "COUNT", K),
    ("SCAN", "0", "TYPE", "zset", "COUNT", K),
]


def _sliced_call(
    setup: list[tuple[Any, ...]], before: list[tuple[Any, ...]], argv: tuple[Any, ...]
) -> Any:
    """
    C{argv} after C{before} (the same client's): it answers nothing at once, takes
    several turns while a second client's PING waits (the reactor's other calls run
    between them); its reply is the one of C{argv} run whole in MULTI/EXEC after the
    same C{before} on a server loaded the same way (returned).
    """
    got = _one_call(setup, before, argv, False)
    assert got == _one_call(setup, before, argv, True)
    return got


def _one_call(
    setup: list[tuple[Any, ...]], before: list[tuple[Any, ...]], argv: tuple[Any, ...], whole: bool
) -> Any:
    clock, server = _server(*setup)
    a, ta = _client(server)
    for line in before:
        a.dataReceived(_cmd(*line))
        _drive(clock, lambda: server.busy is None and a.blocked is None)
    ta.clear()
    if whole:
        a.dataReceived(_cmd("MULTI") + _cmd(*argv) + _cmd("EXEC"))
        _drive(clock, lambda: server.busy is None and len(_replies(ta.value())) == 3)
        return _replies(ta.value())[2][0]
    b, tb = _client(server)
    a.dataReceived(_cmd(*argv))
    b.dataReceived(_cmd("PING"))
    assert ta.value() == tb.value() == b""
    _busy_turns(clock, server, tb)
    after = 0  # turns its reply took to go out (a big one: in slices, bigreply.py)
    while _replies(ta.value()) == []:
        _turn(clock)
        after += 1
    if len(_replies(ta.value())[0][-1]) >= 2 * SLICE_ITEMS:
        assert after >= 2
    _drive(clock, lambda: _replies(tb.value()) != [])
    assert _replies(tb.value()) == [b"PONG"]
    return _replies(ta.value())[0]


@pytest.mark.parametrize("argv", SCANS, ids=" ".join)
def test_a_scan_of_many_elements_in_slices(argv: tuple[str, ...]) -> None:
    """*SCAN with MATCH or TYPE and COUNT 10^7 held the suite 1.2-1.8 s at a million."""
    cursor, got = _sliced_call(_values(), [], argv)
    assert cursor == b"0" and got


def test_a_big_page_of_a_scan_in_progress_in_slices() -> None:
    """The second call of a scan, from its snapshot, with a big COUNT and a MATCH."""
    before = [("SSCAN", "s", "0", "COUNT", "10")]
    clock, server = _server(*_values())
    a, ta = _client(server)
    a.dataReceived(_cmd(*before[0]))
    cursor = _replies(ta.value())[0][0]
    assert cursor != b"0"
    nxt, got = _sliced_call(
        _values(), before, ("SSCAN", "s", cursor, "MATCH", "*1", "COUNT", "15000")
    )
    assert nxt not in (b"0", cursor) and got and all(m.endswith(b"1") for m in got)


def test_scan_leaves_out_an_expired_key() -> None:
    """A whole keyspace in one call answered a key whose TTL had passed (Redis never does)."""
    clock, server = _server(("SET", "a", "1"), ("SET", "b", "1", "PX", "5"))
    clock.calls.clear()  # (no active expiry: the key is only past its time)
    clock.rightNow += 1
    a, ta = _client(server)
    a.dataReceived(_cmd("SCAN", "0") + _cmd("SCAN", "0", "COUNT", "1000"))
    assert _replies(ta.value()) == [[b"0", [b"a"]]] * 2


def _elements(reply: list[Any], pairs: bool) -> list[Any]:
    if not pairs:
        return sorted(reply)
    return sorted(zip(reply[::2], reply[1::2], strict=True))


def test_scans_of_many_elements_as_redis(redis_port: int, kv_port: int) -> None:
    """Cursor 0 and the same elements (values and scores too): in any order, as Redis."""
    conns = [socket.create_connection(("127.0.0.1", p), timeout=120) for p in (redis_port, kv_port)]
    try:
        for s in conns:
            _call(s, "FLUSHALL")
            for line in _values(5000):
                _call(s, *line)
        for argv in SCANS:
            got = []
            for s in conns:
                raw = _call(s, *argv)
                cursor, elements = _replies(raw)[0]
                got.append((cursor, _elements(elements, argv[0] in ("HSCAN", "ZSCAN"))))
            assert got[0] == got[1], argv
            assert got[0][1], argv
    finally:
        for s in conns:
            _call(s, "FLUSHALL")
            s.close()


def test_a_long_pattern_over_long_members_in_slices() -> None:
    """
    Few members, but each long, matched against a long pattern (up to its length
    times theirs, each): 2,000 members of 2 KB and a pattern of 200 took 0.8 s at once.
    """
    setup = [
        ("SADD", "s", *[b"a" * 2000 + b"%d" % i for i in range(500 * j, 500 * j + 500)])
        for j in range(4)
    ]
    pattern = b"*a" * 100 + b"*1"
    cursor, got = _sliced_call(setup, [], ("SSCAN", "s", "0", "MATCH", pattern, "COUNT", K))
    assert cursor == b"0" and len(got) == len([i for i in range(2000) if i % 10 == 1])
