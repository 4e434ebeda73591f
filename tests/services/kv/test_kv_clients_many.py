"""
CLIENT LIST ID and CLIENT KILL of many arguments (CLIENT LIST ID of 200,000 IDs held
the suite 0.36 s: every ID parsed and looked up at once): the IDs and options are
taken a piece a step (bigwork.py) while the other kv clients wait; what they answer
is redis-server's (IDs in the order given, duplicates repeated; of two options of a
kind the last counts).
"""

from __future__ import annotations

import re
from typing import Any

from kv_raw import Raw
from kvdb_help import wait_for
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_sweep import _busy_turns
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import MAX_STEPS, PIECE

N = MAX_STEPS * PIECE * 3  # IDs: more than a turn takes


def _ids(text: bytes) -> list[int]:
    return [int(x) for x in re.findall(rb"^id=(\d+) ", text, re.M)]


def _server() -> tuple[Clock, KVServer, list[tuple[Any, StringTransport]]]:
    """A server on a Clock, and four clients."""
    clock = Clock()
    server = KVServer(Settings(), clock)
    return clock, server, [_client(server) for _ in range(4)]


def _done(clock: Clock, server: KVServer, ta: StringTransport, tb: StringTransport) -> None:
    """In slices: the other kv client (tb) answered once the command (ta) is."""
    _busy_turns(clock, server, tb)
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")


def test_client_list_of_many_ids_in_slices() -> None:
    clock, server, [(a, ta), (b, tb), (c, _), _] = _server()
    ids = [str(x) for x in range(10**6, 10**6 + N)]  # (none of them a client)
    ids[N // 2 : N // 2] = [str(c.id), str(a.id), str(c.id)]
    a.dataReceived(_cmd("CLIENT", "LIST", "ID", *ids))
    b.dataReceived(_cmd("PING"))
    _done(clock, server, ta, tb)
    assert _ids(_replies(ta.value())[0]) == [c.id, a.id, c.id]
    ta.clear()
    a.dataReceived(_cmd("CLIENT", "LIST", "ID", *ids, "x"))  # (checked to the end)
    _drive(clock, lambda: ta.value() != b"")
    assert ta.value() == b"-ERR Invalid client ID\r\n"


def test_client_kill_of_many_options_in_slices() -> None:
    clock, server, [(a, ta), (b, tb), (victim, _), (spared, _)] = _server()
    opts = [x for i in range(N // 2) for x in ("ID", str(spared.id if i % 2 else 10**6 + i))]
    a.dataReceived(_cmd("CLIENT", "KILL", *opts, "SKIPME", "yes", "ID", str(victim.id)))
    b.dataReceived(_cmd("PING"))
    _done(clock, server, ta, tb)
    assert _replies(ta.value()) == [1]
    assert victim.closed and not spared.closed


def _story(port: int) -> list[object]:
    """Three clients; CLIENT LIST ID in another order, with duplicates; CLIENT KILL ID ID."""
    me, one, two = Raw(port), Raw(port), Raw(port)
    ids = [int(x.call("CLIENT", "ID")[1:-2]) for x in (me, one, two)]
    mine, a, b = (str(i) for i in ids)
    out: list[object] = []
    listed = me.call("CLIENT", "LIST", "ID", b, mine, b, "999999", a)
    out.append([ids.index(i) for i in _ids(listed)])
    out.append(me.call("CLIENT", "KILL", "ID", a, "ID", b))  # the last ID counts
    out.append(me.call("CLIENT", "KILL", "ID", a, "ID", "999999"))
    out.append(me.call("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "ID", a, "SKIPME", "no"))
    wait_for(lambda: len(_ids(me.call("CLIENT", "LIST"))) < 3)
    out.append([ids.index(i) for i in _ids(me.call("CLIENT", "LIST"))])
    for x in (me, one, two):
        x.close()
    return out


def test_client_list_id_and_kill_as_redis(redis_port: int, kv_port: int) -> None:
    assert _story(kv_port) == _story(redis_port)
