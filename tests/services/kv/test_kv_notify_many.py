"""
Keyspace notifications of commands of many keys (DEL, UNLINK, MSET, MSETNX of 300,000
keys held the suite 0.6-1.1 s with notify-keyspace-events on: every key looked up
before the command, the command run at once, then an event per key). Their steps now
tell each key's events as they reach it (notify.teller), in slices like the command;
the events are redis-server's, duplicates included.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from test_kv_sweep import _busy_turns
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import ARGS, MAX_STEPS, PIECE

K = max(ARGS, MAX_STEPS * PIECE) + 2000  # keys: past ARGS, more than a turn's steps


def _keys(prefix: str, n: int = K) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _commands() -> list[list[str]]:
    """Big writes and reads, some keys there, some not, some given twice."""
    some = _keys("k", K // 2)
    return [
        ["MSET", *[x for k in [*some, "k1", *_keys("n", 50)] for x in (k, "v")]],
        ["MGET", *_keys("k", K // 2 + 20), "k3", "gone"],
        ["MSETNX", *[x for k in [*_keys("x", K // 2), "x5"] for x in (k, "1")]],
        ["MSETNX", *[x for k in [*_keys("y", K // 2), "k1"] for x in (k, "1")]],  # (k1: 0)
        ["DEL", *_keys("k", K // 4), "k1", "nope", *_keys("x", 10)],
        ["UNLINK", *_keys("k", K // 2), *_keys("n", 60)],
        ["MGET", *_keys("k", K)],
    ]


def _events(port: int) -> list[Any]:
    r = redis.Redis(port=port)  # (its CLIENT SETINFO on connect: no keymiss, as in Redis)
    r.flushall()
    r.config_set("notify-keyspace-events", "KEAnm")
    p = r.pubsub()
    p.psubscribe("__keyevent@0__:*")
    out: list[Any] = []
    for argv in _commands():
        out.append(("reply", r.execute_command(*argv) if argv[0] != "MGET" else None))
        out.append(("end", r.execute_command("ECHO", "end")))  # (told after the command's)
    r.execute_command("PUBLISH", "__keyevent@0__:done", "x")
    deadline = time.monotonic() + 60
    events: list[Any] = []
    while time.monotonic() < deadline:
        m = p.get_message(timeout=1)
        if m is None or m["type"] != "pmessage":
            continue
        if m["channel"] == b"__keyevent@0__:done":
            break
        events.append((m["channel"].split(b":")[1], m["data"]))
    p.close()
    r.config_set("notify-keyspace-events", "")
    r.close()
    return [*out, *events]


@pytest.mark.filterwarnings("ignore:Call to '__init__':DeprecationWarning")
def test_events_of_many_keys_as_redis(redis_port: int, kv_port: int) -> None:
    assert _events(kv_port) == _events(redis_port)


@pytest.mark.parametrize("name", ["DEL", "UNLINK", "MSET", "MSETNX", "MGET"])
def test_with_notifications_on_a_command_of_many_keys_runs_in_slices(name: str) -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    admin, _ = _client(server)
    keys = _keys("k")
    admin.dataReceived(_cmd("MSET", *[x for k in keys[: K // 2] for x in (k, "v")]))
    _drive(clock, lambda: server.busy is None)
    admin.dataReceived(_cmd("CONFIG", "SET", "notify-keyspace-events", "KEAnm"))
    sub, ts = _client(server)
    sub.dataReceived(_cmd("SUBSCRIBE", f"__keyevent@0__:{'keymiss' if name == 'MGET' else 'new'}"))
    sub.dataReceived(_cmd("PSUBSCRIBE", "__keyevent@0__:[ds]e[lt]"))
    ts.clear()
    a, ta = _client(server)
    b, tb = _client(server)
    if name == "MSETNX":  # (none there: all set)
        keys = _keys("z")
    if name.startswith("MSET"):
        a.dataReceived(_cmd(name, *[x for k in keys for x in (k, "w")]))
    else:
        a.dataReceived(_cmd(name, *keys))
    b.dataReceived(_cmd("PING"))
    _turn(clock)
    data = server.store.data
    if name != "MGET":  # not done in one go: some keys changed, not all
        last = data.get(keys[-1].encode() if name.startswith("MSET") else keys[K // 2 - 1].encode())
        assert (last is None) is name.startswith("MSET")
    _busy_turns(clock, server, tb, 1)
    _drive(clock, lambda: ta.value() != b"" and tb.value() != b"")
    _drive(clock, lambda: not clock.getDelayedCalls(), 100_000)  # (events delivered in slices)
    got = [(m[-2].split(b":")[1], m[-1]) for m in _replies(ts.value())]
    there, missing = [k.encode() for k in keys[: K // 2]], [k.encode() for k in keys[K // 2 :]]
    want = {
        "DEL": [(b"del", k) for k in there],
        "UNLINK": [(b"del", k) for k in there],
        "MSET": [x for k in there for x in [(b"set", k)]]
        + [x for k in missing for x in [(b"new", k), (b"set", k)]],
        "MSETNX": [x for k in map(str.encode, keys) for x in [(b"new", k), (b"set", k)]],
        "MGET": [(b"keymiss", k) for k in missing],
    }[name]
    if name == "MSET":  # (interleaved in argument order)
        want = [
            x
            for k in map(str.encode, keys)
            for x in ([(b"set", k)] if k in set(there) else [(b"new", k), (b"set", k)])
        ]
    assert got == want
