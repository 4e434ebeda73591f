"""XREAD / XREADGROUP BLOCK waiting with the blocking mechanism, compared with redis-server."""

from __future__ import annotations

import threading
import time

import pytest
import redis


def _later(port: int, *cmd: object) -> threading.Thread:
    def run() -> None:
        time.sleep(0.3)
        redis.Redis(port=port).execute_command(*cmd)

    t = threading.Thread(target=run)
    t.start()
    return t


@pytest.mark.parametrize("server", ["kv", "redis"])
def test_xread_block_waits_for_xadd(server: str, redis_port: int, kv_port: int) -> None:
    port = kv_port if server == "kv" else redis_port
    r = redis.Redis(port=port, socket_timeout=30)
    r.flushall()
    r.xadd("s", {"a": "1"}, id="1-1")
    # data there: at once
    assert r.xread({"s": "0"}, block=100) == [[b"s", [(b"1-1", {b"a": b"1"})]]]
    # '$': waits for the next entry, whenever it comes
    t = _later(port, "XADD", "s", "2-1", "b", "2")
    started = time.monotonic()
    got = r.xread({"s": "$"}, block=20000)
    t.join()
    assert got == [[b"s", [(b"2-1", {b"b": b"2"})]]]
    assert time.monotonic() - started < 15
    # nothing comes: the timeout's null
    assert r.xread({"s": "$"}, block=200) == []
    # a group: '>' waits, the entry is pending afterwards
    r.xgroup_create("s", "g", id="$")
    t = _later(port, "XADD", "s", "3-1", "c", "3")
    got = r.xreadgroup("g", "alice", {"s": ">"}, block=20000)
    t.join()
    assert got == [[b"s", [(b"3-1", {b"c": b"3"})]]]
    assert r.xpending("s", "g")["pending"] == 1
    # history never waits
    assert r.xreadgroup("g", "bob", {"s": "0"}, block=20000) == [[b"s", []]]
    # inside MULTI: at once
    p = r.pipeline(transaction=True)
    p.xread({"s": "$"}, block=0)
    assert p.execute() == [[]]
