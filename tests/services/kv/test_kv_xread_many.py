"""
XREAD / XREADGROUP naming many streams (hundreds of thousands held the suite half a
second: each stream looked up and checked, read, and a blocked read registered on
them all, in one step). On a Clock: one job looks them up, reads them and registers
the client a piece a step while the other kv clients wait, so an XADD sent meanwhile
is not missed; a client gone half-way leaves nothing registered. Side by side with
redis-server: what a woken read answers (the stream that woke it alone, as Redis 7.0
serves it), with few streams and with many, and the errors of a bad stream among many.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kv_raw import Raw
from kvdb_help import wait_for
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from test_kv_blocking_many import _forgotten_in_pieces, _registrations, _server
from test_kv_sweep import _busy_turns

from portsuite_services.kv.bigwork import MAX_STEPS
from portsuite_services.kv.blocking import MANY, PIECE

K = max(MANY, MAX_STEPS * PIECE) * 2 + 1000  # streams: more than a turn looks up or registers
G = MANY + 2000  # streams of a group (each made by a command: fewer)


def _keys(n: int = K, prefix: bytes = b"s") -> list[bytes]:
    return [prefix + b"%d" % i for i in range(n)]


def _xread(keys: list[bytes], ids: list[bytes] | bytes, *opts: str | bytes) -> bytes:
    ids = ids if isinstance(ids, list) else [ids] * len(keys)
    return _cmd("XREAD", *opts, "STREAMS", *keys, *ids)


def _xreadgroup(keys: list[bytes], *opts: str | bytes) -> bytes:
    return _cmd("XREADGROUP", "GROUP", "g", "c", *opts, "STREAMS", *keys, *[b">"] * len(keys))


# -- on a Clock: in slices -------------------------------------------------------------


def test_a_blocked_read_of_many_streams_registers_in_slices_and_an_xadd_meanwhile_wakes_it() -> (
    None
):
    clock, server, _ = _server()
    keys = _keys()
    a, ta = _client(server)
    pusher, tp = _client(server)
    a.dataReceived(_xread(keys, b"$", "BLOCK", "0"))
    pusher.dataReceived(_cmd("XADD", keys[-1], "5-1", "f", "v"))  # sent while it registers
    _busy_turns(clock, server, tp)
    _drive(clock, lambda: tp.value() != b"" and ta.value() != b"")
    assert _replies(tp.value()) == [b"5-1"]
    assert _replies(ta.value()) == [[[keys[-1], [[b"5-1", [b"f", b"v"]]]]]]
    assert a.blocked is None
    _drive(clock, lambda: not server.store.blocking)


def test_a_group_read_of_many_streams_waits_and_is_served_from_the_stream_that_woke_it() -> None:
    clock, server, records = _server()
    keys = _keys(G)
    admin, tadmin = _client(server)
    for k in keys:
        admin.dataReceived(_cmd("XGROUP", "CREATE", k, "g", "$", "MKSTREAM"))
    tadmin.clear()
    a, ta = _client(server)
    a.dataReceived(_xreadgroup(keys, "COUNT", "1", "BLOCK", "0"))
    _drive(clock, lambda: a.blocked is not None and server.busy is None)
    assert _registrations(server, a) == G
    del records[:]
    k = keys[G // 2]
    admin.dataReceived(
        _cmd("MULTI") + _cmd("XADD", k, "1-1", "a", "1") + _cmd("XADD", k, "2-1", "b", "2")
    )
    admin.dataReceived(_cmd("EXEC"))
    assert _replies(ta.value()) == [[[k, [[b"1-1", [b"a", b"1"]]]]]]  # (COUNT 1)
    tadmin.clear()
    admin.dataReceived(_cmd("XPENDING", k, "g"))
    assert _replies(tadmin.value()) == [[1, b"1-1", b"1-1", [[b"c", b"1"]]]]
    assert [r[0] for r in records[-2:]] == [b"XGROUP", b"XCLAIM"]  # (consumer made, delivery)
    _drive(clock, lambda: not server.store.blocking)


def test_a_client_gone_while_it_registers_on_many_streams_leaves_nothing_registered() -> None:
    clock, server, _ = _server()
    a, _ = _client(server)
    keys = _keys()
    a.dataReceived(_xread(keys, b"0", "BLOCK", "0"))
    while not _registrations(server, a):  # (it looks them up first)
        _turn(clock)
    assert server.busy is not None and 0 < _registrations(server, a) < K
    a.connectionLost(None)
    _drive(clock, lambda: server.busy is None and not server.store.blocking)
    assert type(server.store.blocking) is dict  # (plain again: sharded while big)
    b, tb = _client(server)
    b.dataReceived(_cmd("XADD", keys[0], "1-1", "f", "v") + _cmd("XLEN", keys[0]))
    assert _replies(tb.value()) == [b"1-1", 1]


@pytest.mark.parametrize("how", ["timeout", "unblock", "close"])
def test_a_read_of_many_streams_that_stops_waiting_is_forgotten_a_piece_a_turn(how: str) -> None:
    clock, server, _ = _server()
    a, ta = _client(server)
    a.dataReceived(_xread(_keys(), b"$", "BLOCK", "5000" if how == "timeout" else "0"))
    _drive(clock, lambda: a.blocked is not None and server.busy is None)
    assert _registrations(server, a) == K
    if how == "timeout":
        clock.rightNow += 5
        _turn(clock)
    elif how == "unblock":
        admin, _ = _client(server)
        admin.dataReceived(_cmd("CLIENT", "UNBLOCK", str(a.id)))
    else:
        a.connectionLost(None)
    assert a.blocked is None and server.blocked_clients == set()
    if how != "close":
        assert ta.value() == b"*-1\r\n"
    _forgotten_in_pieces(clock, server, a)


def test_a_read_of_many_streams_with_entries_answers_at_once_what_few_would() -> None:
    clock, server, _ = _server()
    keys = _keys()
    there = [keys[7], keys[K // 2], keys[-1]]
    admin, tadmin = _client(server)
    for i, k in enumerate(there):
        admin.dataReceived(_cmd("XADD", k, "1-1", "f", b"%d" % i))
        admin.dataReceived(_cmd("XADD", k, "2-1", "g", b"%d" % i))
    few = _client(server)
    few[0].dataReceived(_xread(there, b"0", "COUNT", "9223372036854775807"))
    a, ta = _client(server)
    other, to = _client(server)
    # (a key named twice: read twice, as Redis does)
    a.dataReceived(_xread([*keys, keys[7]], b"0", "COUNT", "9223372036854775807", "BLOCK", "0"))
    other.dataReceived(_cmd("PING"))
    _busy_turns(clock, server, to)
    _drive(clock, lambda: ta.value() != b"")
    want = _replies(few[1].value())[0]
    assert _replies(ta.value()) == [[*want, want[0]]]
    assert a.blocked is None and not server.store.blocking  # (nothing registered)


@pytest.mark.parametrize(
    "bad, error",
    [
        ("SET", b"-WRONGTYPE"),
        ("ID", b"-ERR Invalid stream ID"),
        ("GT", b"-ERR The > ID can be specified only"),
    ],
)
def test_a_bad_stream_among_many_is_the_error_of_few_and_nothing_waits(
    bad: str, error: bytes
) -> None:
    clock, server, _ = _server()
    keys = _keys()
    ids = [b"$"] * K
    admin, _ = _client(server)
    if bad == "SET":
        admin.dataReceived(_cmd("SET", keys[-5], "x"))
    else:
        ids[-5] = b"1-x" if bad == "ID" else b">"
    a, ta = _client(server)
    a.dataReceived(_xread(keys, ids, "BLOCK", "0"))
    _drive(clock, lambda: ta.value() != b"")
    assert ta.value().startswith(error)
    assert a.blocked is None and not server.store.blocking


def test_a_duplicate_stream_waits_after_its_first_id() -> None:
    clock, server, _ = _server()
    keys = _keys()
    d = keys[3]
    ids = [b"$"] * K
    a, ta = _client(server)
    a.dataReceived(_xread([*keys, d], [*ids[:3], b"5-0", *ids[4:], b"0"], "BLOCK", "0"))
    _drive(clock, lambda: a.blocked is not None and server.busy is None)
    admin, _ = _client(server)
    admin.dataReceived(_cmd("XADD", d, "3-0", "f", "old"))
    assert ta.value() == b""  # (3-0 is not after 5-0)
    admin.dataReceived(_cmd("XADD", d, "6-0", "f", "new"))
    assert _replies(ta.value()) == [[[d, [[b"6-0", [b"f", b"new"]]]]]]


# -- side by side with redis-server ----------------------------------------------------


def _ports(redis_port: int, kv_port: int) -> Iterator[tuple[str, int]]:
    yield "redis", redis_port
    yield "kv", kv_port


def _blocked(admin: Raw, n: int = 1) -> None:
    wait_for(lambda: b"blocked_clients:%d\r\n" % n in admin.call("INFO", "clients"))


def _woken(
    port: int, setup: list[list[bytes]], wait: bytes, then: list[list[bytes]], resp3: bool = False
) -> tuple[bytes, list[bytes]]:
    """What a client blocked by C{wait} gets after C{then} (CLIENT UNBLOCK last), and C{then}'s replies."""
    admin = Raw(port)
    admin.call("FLUSHALL")
    admin.send(b"".join(_cmd(*argv) for argv in setup))
    for _ in setup:
        admin.reply()
    waiter = Raw(port, resp3)
    wid = _replies(waiter.call("CLIENT", "ID"))[0]
    waiter.send(wait)
    _blocked(admin)
    got = [admin.call(*argv) for argv in then]
    admin.call("CLIENT", "UNBLOCK", str(wid))
    out = waiter.reply()
    admin.call("FLUSHALL")
    admin.close()
    waiter.close()
    return out, got


def _cmds(*lines: str) -> list[list[bytes]]:
    return [line.encode().split() for line in lines]


# (setup, the blocked command's streams and IDs or a group read's, what is sent then)
FEW = _cmds("XADD a 1-0 f 0", "XADD b 1-0 f 0")
ONE_EXEC = _cmds("MULTI", "XADD b 2-0 g 1", "XADD a 2-0 g 1", "EXEC")
SCENARIOS: dict[str, tuple[list[list[bytes]], bytes, list[list[bytes]]]] = {
    "one EXEC, two streams": (FEW, _xread([b"a", b"b"], b"$", "BLOCK", "0"), ONE_EXEC),
    "one EXEC, two of many streams": (
        FEW,
        _xread([*_keys(MANY + 10), b"a", b"b"], b"$", "BLOCK", "0"),
        ONE_EXEC,
    ),
    "COUNT 1 of many": (
        [],
        _xread(_keys(MANY + 10), b"0", "COUNT", "1", "BLOCK", "0"),
        _cmds("MULTI", "XADD s9 1-0 a 1", "XADD s9 2-0 b 2", "EXEC"),
    ),
    "its group destroyed": (
        _cmds("XGROUP CREATE a g $ MKSTREAM"),
        _xreadgroup([b"a"], "BLOCK", "0"),
        _cmds("MULTI", "XGROUP DESTROY a g", "XADD a 5-0 f v", "EXEC"),
    ),
    "made a string": (
        FEW,
        _xread([b"a", b"b"], b"$", "BLOCK", "0"),
        _cmds("MULTI", "DEL a", "SET a x", "EXEC", "XLEN b"),
    ),
    "deleted, made again": (
        FEW,
        _xread([b"a"], b"$", "BLOCK", "0"),
        _cmds("DEL a", "XADD a 1-0 f again", "XADD a 3-0 f after"),
    ),
    "a stream named twice": (
        [],
        _xread([b"d", b"x", b"d"], [b"5-0", b"0", b"0"], "BLOCK", "0"),
        _cmds("XADD d 3-0 f old", "XADD d 6-0 f new"),
    ),
    "NOACK of many": (
        _cmds(*[f"XGROUP CREATE g{i} g $ MKSTREAM" for i in range(MANY + 10)]),
        _xreadgroup(_keys(MANY + 10, b"g"), "NOACK", "BLOCK", "0"),
        _cmds("XADD g77 1-0 f v", "XPENDING g77 g", "XINFO GROUPS g77"),
    ),
    "> of many": (
        _cmds(*[f"XGROUP CREATE g{i} g $ MKSTREAM" for i in range(MANY + 10)]),
        _xreadgroup(_keys(MANY + 10, b"g"), "COUNT", "5", "BLOCK", "0"),
        _cmds("MULTI", "XADD g77 1-0 f v", "XADD g78 1-0 f v", "EXEC", "XPENDING g77 g"),
    ),
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_what_a_woken_read_answers_is_redis_s(
    name: str, resp3: bool, redis_port: int, kv_port: int
) -> None:
    setup, wait, then = SCENARIOS[name]
    ref, got = (_woken(port, setup, wait, then, resp3) for _, port in _ports(redis_port, kv_port))
    assert got == ref


def _both(redis_port: int, kv_port: int, setup: list[list[bytes]], cmd: bytes) -> list[bytes]:
    out = []
    for _, port in _ports(redis_port, kv_port):
        r = Raw(port)
        r.call("FLUSHALL")
        r.send(b"".join(_cmd(*argv) for argv in setup))
        for _ in setup:
            r.reply()
        r.send(cmd)
        out.append(r.reply())
        r.call("FLUSHALL")
        r.close()
    return out


M = _keys(MANY + 10)
ENTRIES = _cmds("XADD s3 1-0 f 1", "XADD s3 2-0 f 2", "XADD s9000 7-0 g 1", "XADD s5 1-0 h 1")
READS = {
    "entries of some": (ENTRIES, _xread(M, b"0", "COUNT", "1")),
    "$ and IDs, a stream twice": (
        ENTRIES,
        _xread([*M, b"s3"], [*[b"$"] * 3, b"1-0", *[b"0"] * (len(M) - 4), b"0"]),
    ),
    "none there": ([], _xread(M, b"0", "COUNT", "9223372036854775807")),
    "a string among them": (
        [*ENTRIES, [b"SET", b"s4000", b"x"]],
        _xread(M, b"0", "BLOCK", "0"),
    ),
    "a bad ID among them": (ENTRIES, _xread(M, [*[b"0"] * 5000, b"zz", *[b"0"] * (len(M) - 5001)])),
    "a group missing": (
        _cmds("XGROUP CREATE s1 g $ MKSTREAM"),
        _xreadgroup([b"s1", *M], "BLOCK", "0"),
    ),
}


@pytest.mark.parametrize("name", list(READS))
def test_a_read_of_many_streams_answers_what_redis_does(
    name: str, redis_port: int, kv_port: int
) -> None:
    setup, cmd = READS[name]
    ref, got = _both(redis_port, kv_port, setup, cmd)
    assert got == ref


def test_in_multi_a_blocked_read_of_many_streams_is_answered_at_once(
    redis_port: int, kv_port: int
) -> None:
    out = []
    for _, port in _ports(redis_port, kv_port):
        r = Raw(port)
        r.call("FLUSHALL")
        r.call("MULTI")
        r.call(*_xread_args(M))
        out.append(r.call("EXEC"))
        r.close()
    assert out[0] == out[1] == b"*1\r\n*-1\r\n"


def _xread_args(keys: list[bytes]) -> list[Any]:
    return ["XREAD", "BLOCK", "0", "STREAMS", *keys, *[b"$"] * len(keys)]


@pytest.mark.parametrize("noack", [False, True], ids=["pending", "NOACK"])
def test_a_woken_group_read_of_many_entries_is_delivered_in_slices(noack: bool) -> None:
    clock, server, records = _server()
    admin, tadmin = _client(server)
    admin.dataReceived(
        _cmd("XGROUP", "CREATE", "x", "g", "$", "MKSTREAM")
        + _cmd("XGROUP", "CREATE", "other", "g", "$", "MKSTREAM")
    )
    a, ta = _client(server)
    a.dataReceived(_xreadgroup([b"other", b"x"], *(["NOACK"] if noack else []), "BLOCK", "0"))
    assert a.blocked is not None
    n = 4 * PIECE  # (entries a delivery of which goes on in slices)
    admin.dataReceived(
        _cmd("MULTI")
        + b"".join(_cmd("XADD", "x", b"%d-1" % (i + 1), "f", b"%d" % i) for i in range(n))
        + _cmd("EXEC")
    )
    b, tb = _client(server)
    b.dataReceived(_cmd("XLEN", "x"))
    _busy_turns(clock, server, tb)
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")
    got = _replies(ta.value())[0]
    assert [k for k, _ in got] == [b"x"] and len(got[0][1]) == n
    assert got[0][1][-1] == [b"%d-1" % n, [b"f", b"%d" % (n - 1)]]
    assert a.blocked is None and _replies(tb.value()) == [n]
    c, tc = _client(server)
    c.dataReceived(_cmd("XPENDING", "x", "g") + _cmd("XINFO", "GROUPS", "x"))
    _drive(clock, lambda: len(_replies(tc.value())) == 2)
    pending, groups = _replies(tc.value())
    assert pending[0] == (0 if noack else n)
    assert groups[0][groups[0].index(b"last-delivered-id") + 1] == b"%d-1" % n
    _drive(clock, lambda: not server.store.blocking)
