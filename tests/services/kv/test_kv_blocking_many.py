"""
Blocking commands over many keys (BLPOP of 200,000 keys held the suite 0.4 s: the
first attempt looked every key up and the client was registered on them all in one
go; serving, timing out, unblocking or closing it forgot them all in one go too). On
a Clock: the first run goes on in slices while the other kv clients wait (so a key
pushed meanwhile is not missed), the first key that exists is served at once, and
forgetting the keys takes a piece a turn; replies and AOF records are those of the
command run on few keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kv_raw import Raw
from kvdb_help import wait_for
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _RecordingAOF, _turn
from test_kv_sweep import _busy_turns
from twisted.internet.task import Clock

from portsuite.testing import suite_running
from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.aof import read_records
from portsuite_services.kv.bigwork import MAX_STEPS
from portsuite_services.kv.blocking import MANY, PIECE

K = max(MANY, MAX_STEPS * PIECE) * 2 + 1000  # keys: more than a turn looks up or registers


def _keys(n: int = K) -> list[bytes]:
    return [b"q%d" % i for i in range(n)]


def _server() -> tuple[Clock, KVServer, list[list[bytes]]]:
    clock = Clock()
    clock.advance(1000)
    server = KVServer(Settings(), clock)
    records: list[list[bytes]] = []
    server.aof = _RecordingAOF(records)  # type: ignore[assignment]
    return clock, server, records


# (command, a push of one element to a key ({k}), the reply it then gives, its AOF record)
WAITS = [
    (["BLPOP", "{keys}", "0"], ["RPUSH", "{k}", "a"], [b"{k}", b"a"], ["LPOP", "{k}"]),
    (["BRPOP", "{keys}", "0"], ["LPUSH", "{k}", "a"], [b"{k}", b"a"], ["RPOP", "{k}"]),
    (
        ["BLMPOP", "0", "{n}", "{keys}", "LEFT", "COUNT", "3"],
        ["RPUSH", "{k}", "a"],
        [b"{k}", [b"a"]],
        ["LPOP", "{k}", "1"],
    ),
    (
        ["BZPOPMIN", "{keys}", "0"],
        ["ZADD", "{k}", "1", "a"],
        [b"{k}", b"a", b"1"],
        ["ZPOPMIN", "{k}"],
    ),
    (
        ["BZPOPMAX", "{keys}", "0"],
        ["ZADD", "{k}", "1", "a"],
        [b"{k}", b"a", b"1"],
        ["ZPOPMAX", "{k}"],
    ),
    (
        ["BZMPOP", "0", "{n}", "{keys}", "MIN"],
        ["ZADD", "{k}", "1", "a"],
        [b"{k}", [[b"a", b"1"]]],
        None,
    ),
]


def _argv(template: list[str], keys: list[bytes], k: bytes) -> list[bytes]:
    out: list[bytes] = []
    for x in template:
        if x == "{keys}":
            out += keys
        elif x == "{n}":
            out.append(b"%d" % len(keys))
        else:
            out.append(k if x == "{k}" else x.encode())
    return out


def _reply(template: Any, k: bytes) -> Any:
    if type(template) is list:
        return [_reply(x, k) for x in template]
    return k if template == b"{k}" else template


def _registrations(server: KVServer, c: Any) -> int:
    return sum(1 for waiters in server.store.blocking.values() if c in waiters)


@pytest.mark.parametrize("wait", WAITS, ids=[w[0][0] for w in WAITS])
def test_many_keys_are_registered_in_slices_and_a_push_meanwhile_wakes_it(
    wait: tuple[Any, ...],
) -> None:
    template, push, served, _ = wait
    clock, server, _records = _server()
    keys = _keys()
    last = keys[-1]
    early, te = _client(server)  # blocked on the last key before: served first
    early.dataReceived(_cmd(*_argv(template, [last], last)))
    a, ta = _client(server)
    pusher, tp = _client(server)
    a.dataReceived(_cmd(*_argv(template, keys, last)))
    pusher.dataReceived(_cmd(*_argv(push, [], last)))  # sent while it registers
    pusher.dataReceived(_cmd(*_argv(push, [], last)))
    _busy_turns(clock, server, tp)
    _drive(clock, lambda: len(_replies(tp.value())) == 2)
    assert _replies(te.value()) == [_reply(served, last)]
    assert _replies(ta.value()) == [_reply(served, last)]
    assert a.blocked is None and early.blocked is None


@pytest.mark.parametrize("wait", WAITS, ids=[w[0][0] for w in WAITS])
def test_the_first_key_that_exists_is_served_at_once_and_recorded(wait: tuple[Any, ...]) -> None:
    template, push, served, record = wait
    clock, server, records = _server()
    keys = _keys()
    first, then = keys[-9], keys[-3]
    admin, _ = _client(server)
    admin.dataReceived(_cmd(*_argv(push, [], then)) + _cmd(*_argv(push, [], first)))
    a, ta = _client(server)
    b, tb = _client(server)
    del records[:]
    a.dataReceived(_cmd(*_argv(template, keys, first)))
    b.dataReceived(_cmd("EXISTS", first))
    _busy_turns(clock, server, tb)
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")
    assert _replies(ta.value()) == [_reply(served, first)]
    assert a.blocked is None and not server.store.blocking
    if record is not None:  # what the AOF records: the pop, as Redis propagates it
        assert records == [_argv(record, [], first)]


def test_a_key_of_another_type_first_is_wrongtype_as_with_few_keys() -> None:
    clock, server, _ = _server()
    keys = _keys()
    admin, _ = _client(server)
    admin.dataReceived(_cmd("SET", keys[-5], "x") + _cmd("RPUSH", keys[-2], "v"))
    a, ta = _client(server)
    a.dataReceived(_cmd("BLPOP", *keys, "0"))
    _drive(clock, lambda: ta.value() != b"")
    assert ta.value().startswith(b"-WRONGTYPE")
    assert not server.store.blocking and a.blocked is None


def _blocked_on_many(clock: Clock, server: KVServer, timeout: str = "0") -> tuple[Any, Any]:
    a, ta = _client(server)
    a.dataReceived(_cmd("BLPOP", *_keys(), timeout))
    _drive(clock, lambda: a.blocked is not None and server.busy is None)
    assert _registrations(server, a) == K
    return a, ta


def _forgotten_in_pieces(clock: Clock, server: KVServer, a: Any) -> None:
    left = _registrations(server, a)
    assert left > PIECE  # not all at once…
    while left:
        _turn(clock)
        now = _registrations(server, a)
        assert left - PIECE <= now < left  # …a piece a turn
        left = now
    assert not server.store.blocking


@pytest.mark.parametrize("how", ["unblock", "timeout", "close", "served"])
def test_forgetting_many_keys_takes_a_piece_a_turn(how: str) -> None:
    clock, server, _ = _server()
    a, ta = _blocked_on_many(clock, server, "5" if how == "timeout" else "0")
    admin, tadmin = _client(server)
    if how == "unblock":
        admin.dataReceived(_cmd("CLIENT", "UNBLOCK", str(a.id)))
        assert _replies(tadmin.value()) == [1]
    elif how == "timeout":
        clock.rightNow += 5
        _turn(clock)  # (the timer alone)
    elif how == "close":
        a.connectionLost(None)
    else:
        admin.dataReceived(_cmd("RPUSH", _keys()[K // 2], "v"))
    assert a.blocked is None and server.blocked_clients == set()
    if how != "close":
        want = [[_keys()[K // 2], b"v"]] if how == "served" else [None]
        assert _replies(ta.value()) == want
    _forgotten_in_pieces(clock, server, a)


def test_a_registration_not_yet_forgotten_wakes_nobody_out_of_turn() -> None:
    clock, server, _ = _server()
    a, ta = _blocked_on_many(clock, server)
    admin, _ = _client(server)
    admin.dataReceived(_cmd("CLIENT", "UNBLOCK", str(a.id)))
    ta.clear()
    key = _keys()[-1]  # (forgotten last)
    b, tb = _client(server)
    b.dataReceived(_cmd("BLPOP", key, "0"))
    a.dataReceived(_cmd("BLPOP", "elsewhere", key, "0"))  # again, after b
    _turn(clock)  # (it runs once its unblocked reply is out)
    assert a.blocked is not None and server.store.blocking[key][a] is a.blocked
    admin.dataReceived(_cmd("RPUSH", key, "1") + _cmd("RPUSH", "elsewhere", "2"))
    assert _replies(tb.value()) == [[key, b"1"]]  # b came first
    assert _replies(ta.value()) == [[b"elsewhere", b"2"]]
    _drive(clock, lambda: not server.store.blocking)


def test_a_client_gone_while_it_registers_leaves_no_registration() -> None:
    clock, server, _ = _server()
    a, _ = _client(server)
    a.dataReceived(_cmd("BLPOP", *_keys(), "0"))
    while not _registrations(server, a):  # (it looks the keys up first)
        _turn(clock)
    assert server.busy is not None and 0 < _registrations(server, a) < K
    a.connectionLost(None)
    _drive(clock, lambda: server.busy is None and not server.store.blocking)
    b, tb = _client(server)
    b.dataReceived(_cmd("RPUSH", _keys()[0], "kept") + _cmd("LLEN", _keys()[0]))
    assert _replies(tb.value()) == [1, 1]


def test_the_append_only_file_records_the_pops_of_many_keys(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    cfg = {"services": {"kv": {"type": "kv", "port": 0, "data": str(aof)}}}
    keys = [k.decode() for k in _keys()]
    with suite_running(cfg, base_dir=tmp_path) as s:
        port = s.port("kv")
        admin, a = Raw(port), Raw(port)
        admin.call("RPUSH", keys[-2], "1")
        assert a.call("BLPOP", *keys, "0") == _cmd(keys[-2], "1")  # (an array of two bulks)
        a.send(_cmd("BRPOP", *keys, "0"))
        wait_for(lambda: b"blocked_clients:1" in admin.call("INFO", "clients"))
        admin.call("RPUSH", keys[-1], "x", "y")
        assert a.reply() == _cmd(keys[-1], "y")
        admin.close()
        a.close()
    cmds, _, _, _ = read_records(aof)
    assert cmds == [
        [b"RPUSH", keys[-2].encode(), b"1"],
        [b"LPOP", keys[-2].encode()],
        [b"RPUSH", keys[-1].encode(), b"x", b"y"],
        [b"RPOP", keys[-1].encode()],
    ]
