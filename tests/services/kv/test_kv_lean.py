"""
GET and SET take a lean path for a client in no special state (protocol.LEAN). What
that path skips must not be missed: a WATCH, keyspace notifications turned on while
the client is connected, MONITOR started after it connected, MULTI or AUTH in the same
pipeline, RESP3, TTLs, wrong types, the append-only file, CLIENT LIST and INFO's
counters. Side by side with redis-server where both can answer.

And the append-only file written once a poll for every client served (Redis's
beforeSleep): no reply before the write, pushes after the held reply, a failed
write acknowledges nothing.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kv_raw import Raw
from kvdb_help import PollingClock, wait_for
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from portsuite.testing import suite_running
from portsuite_services.kv import KVServer, Settings


def _cmd(*args: str | bytes) -> bytes:
    argv = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


def _pipeline(
    port: int, cmds: list[tuple[str, ...]], resp3: bool = False, unanswered: int = 0
) -> list[bytes]:
    """C{cmds} sent in one write on a new connection; each reply's bytes."""
    c = Raw(port, resp3)
    try:
        c.send(b"".join(_cmd(*argv) for argv in cmds))
        return [c.reply() for _ in range(len(cmds) - unanswered)]
    finally:
        c.close()


@pytest.mark.parametrize("resp3", [False, True])
def test_pipelines_answer_as_redis(kv_port: int, redis_port: int, resp3: bool) -> None:
    cmds = [
        ("FLUSHALL",),
        ("SET", "k", "v1"),
        ("get", "k"),
        ("GET", "missing"),
        ("set", "t", "x", "EX", "100"),
        ("SET", "t", "y"),  # clears the TTL, as SET does
        ("TTL", "t"),
        ("SET", "e", "x", "PX", "1"),
        ("HSET", "h", "f", "v"),
        ("GET", "h"),  # WRONGTYPE
        ("SET", "h", "s"),  # SET replaces any type
        ("TYPE", "h"),
        ("SET", "r", "a"),
        ("APPEND", "r", "b"),
        ("OBJECT", "ENCODING", "r"),  # raw
        ("SET", "r", "cd"),  # a new string: embstr again
        ("OBJECT", "ENCODING", "r"),
        ("GET", "k", "extra"),
        ("SET", "k"),
        ("MULTI",),
        ("SET", "k", "in-multi"),  # queued, not run
        ("GET", "k"),
        ("EXEC",),
        ("GET", "k"),
        ("CLIENT", "REPLY", "SKIP"),
        ("SET", "skipped", "1"),
        ("GET", "skipped"),
        ("DBSIZE",),
        ("FLUSHALL",),
    ]
    # (CLIENT REPLY SKIP: no reply to it nor to the SET after it)
    assert _pipeline(kv_port, cmds, resp3, 2) == _pipeline(redis_port, cmds, resp3, 2)


def test_pipeline_before_and_after_auth(kv_auth_port: int, redis_auth_port: int) -> None:
    cmds = [
        ("SET", "k", "v"),
        ("GET", "k"),
        ("AUTH", "s3cret"),
        ("SET", "k", "v"),
        ("GET", "k"),
        ("DEL", "k"),
    ]
    assert _pipeline(kv_auth_port, cmds) == _pipeline(redis_auth_port, cmds)


@pytest.mark.parametrize("other_key", [False, True])
def test_watch_sees_a_set_from_a_plain_client(
    kv_port: int, redis_port: int, other_key: bool
) -> None:
    def story(port: int) -> list[bytes]:
        watcher, writer = Raw(port), Raw(port)
        try:
            writer.call("SET", "w", "0")
            watcher.call("WATCH", "w")
            writer.send(_cmd("SET", "w2" if other_key else "w", "1") + _cmd("GET", "w"))
            got = [writer.reply(), writer.reply()]
            watcher.send(_cmd("MULTI") + _cmd("SET", "w", "2") + _cmd("EXEC"))
            got += [watcher.reply() for _ in range(3)]
            got.append(writer.call("GET", "w"))
            writer.call("DEL", "w", "w2")
            return got
        finally:
            watcher.close()
            writer.close()

    ours = story(kv_port)
    assert ours == story(redis_port)
    assert ours[4] == (b"*1\r\n+OK\r\n" if other_key else b"*-1\r\n")


def test_notifications_turned_on_while_connected(kv_port: int, redis_port: int) -> None:
    def story(port: int) -> list[bytes]:
        admin, client, sub = Raw(port), Raw(port), Raw(port)
        try:
            client.call("GET", "n")  # connected (and lean) before notifications are on
            assert sub.call("PSUBSCRIBE", "__key*@0__:*").startswith(b"*3\r\n")
            admin.call("CONFIG", "SET", "notify-keyspace-events", "KEA$m")
            client.send(_cmd("SET", "n", "1") + _cmd("GET", "n") + _cmd("GET", "nokey-n"))
            replies = [client.reply() for _ in range(3)]
            # set and keymiss, each on the keyspace and the keyevent channel
            events = [sub.reply() for _ in range(4)]
            admin.call("CONFIG", "SET", "notify-keyspace-events", "")
            client.call("SET", "n", "2")  # off again: nothing more
            admin.call("DEL", "n")
            sub.send(_cmd("PING"))
            events.append(sub.reply())
            return replies + events
        finally:
            for c in (admin, client, sub):
                c.close()

    ours = story(kv_port)
    assert ours == story(redis_port)
    assert b"__keyspace@0__:n" in ours[3] and b"set" in ours[3]
    assert b"keymiss" in ours[5] and ours[7] == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"


def test_monitor_started_after_the_client_connected(kv_port: int) -> None:
    client = Raw(kv_port)
    mon = Raw(kv_port)
    try:
        client.call("GET", "m")  # a plain client before MONITOR starts
        assert mon.call("MONITOR") == b"+OK\r\n"
        client.send(_cmd("SET", "m", "1") + _cmd("GET", "m"))
        assert [client.reply(), client.reply()] == [b"+OK\r\n", b"$1\r\n1\r\n"]
        mon.sock.settimeout(10)
        data = b""
        while data.count(b"\r\n") < 2:
            data += mon.sock.recv(65536)
        lines = [line.split(b"] ", 1)[1] for line in data.split(b"\r\n")[:2]]
        assert lines == [b'"SET" "m" "1"', b'"GET" "m"']
    finally:
        mon.close()
        client.call("DEL", "m")
        client.close()


def test_counters_count_lean_commands(kv_port: int, redis_port: int) -> None:
    def story(port: int) -> tuple[int, bytes, bytes]:
        c, other = Raw(port), Raw(port)
        try:
            c.call("CLIENT", "SETNAME", "lean-counter")

            def processed() -> int:
                info = c.call("INFO", "stats").decode()
                return int(info.split("total_commands_processed:")[1].split("\r\n")[0])

            def last_command() -> bytes:  # as another client sees it in CLIENT LIST
                listing = other.call("CLIENT", "LIST")
                mine = next(x for x in listing.split(b"\n") if b"name=lean-counter" in x)
                return mine.split(b" cmd=")[1].split(b" ")[0]

            before = processed()
            c.send(_cmd("SET", "c", "1") * 16 + _cmd("GET", "c") * 16)
            for _ in range(32):
                c.reply()
            cmd = last_command()
            after = processed()
            c.call("SET", "c", "2")
            cmd2 = last_command()
            c.call("DEL", "c")
            return after - before, cmd, cmd2
        finally:
            c.close()
            other.close()

    assert story(kv_port) == story(redis_port) == (34, b"get", b"set")  # (32, CLIENT LIST, INFO)


def test_aof_records_of_lean_sets(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    config = {"services": {"kv": {"type": "kv", "port": 0, "data": str(aof)}}}
    with suite_running(config, base_dir=tmp_path) as s:
        c = Raw(s.port("kv"))
        c.send(_cmd("set", "a", "1") + _cmd("SET", "b", "") + _cmd("GET", "a"))
        assert [c.reply() for _ in range(3)] == [b"+OK\r\n", b"+OK\r\n", b"$1\r\n1\r\n"]
        c.call("SELECT", "2")
        c.call("SET", "c", "x" * 300)
        c.call("SELECT", "0")
        c.call("SET", "a", "2")
        c.close()
    assert aof.read_bytes() == (
        _cmd("set", "a", "1")
        + _cmd("SET", "b", "")
        + _cmd("SELECT", "2")
        + _cmd("SET", "c", "x" * 300)
        + _cmd("SELECT", "0")
        + _cmd("SET", "a", "2")
    )
    with suite_running(config, base_dir=tmp_path) as s:
        c = Raw(s.port("kv"))
        assert c.call("GET", "a") == b"$1\r\n2\r\n"
        c.call("SELECT", "2")
        assert wait_for(lambda: c.call("STRLEN", "c") == b":300\r\n")
        c.close()


# -- the append-only file written once a poll (KVServer.hold / release) -------------


def _held_server(tmp_path: Path, fsync: str = "everysec") -> tuple[KVServer, PollingClock]:
    clock = PollingClock()
    server = KVServer(Settings(data=tmp_path / "kv.aof", fsync=fsync), clock)
    server.startFactory()
    return server, clock


def _client(server: KVServer, resp3: bool = False) -> tuple[Any, StringTransport]:
    proto = server.buildProtocol(None)
    t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555))
    proto.makeConnection(t)
    if resp3:
        proto.dataReceived(_cmd("HELLO", "3"))
        t.clear()
    return proto, t


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_replies_wait_for_the_one_write_of_the_poll(tmp_path: Path, fsync: str) -> None:
    server, clock = _held_server(tmp_path, fsync)
    a, ta = _client(server, resp3=True)
    b, tb = _client(server)
    a.dataReceived(_cmd("SUBSCRIBE", "ch"))
    ta.clear()
    a.dataReceived(_cmd("SET", "k", "1"))
    b.dataReceived(_cmd("PUBLISH", "ch", "m") + _cmd("SET", "j", "2") + _cmd("GET", "k"))
    # nothing acknowledged before the file holds it
    assert ta.value() == tb.value() == b""
    assert (tmp_path / "kv.aof").read_bytes() == b""
    clock.end_poll()
    assert (tmp_path / "kv.aof").read_bytes() == _cmd("SET", "k", "1") + _cmd("SET", "j", "2")
    # a's reply first, then the message published after it
    assert ta.value() == b"+OK\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n"
    assert tb.value() == b":1\r\n+OK\r\n$1\r\n1\r\n"
    # a read with no write is answered at once
    b.dataReceived(_cmd("GET", "j"))
    assert tb.value().endswith(b"$1\r\n2\r\n") and not clock.after
    server.stopFactory()


def test_a_failed_write_acknowledges_nothing_of_the_poll(tmp_path: Path) -> None:
    server, clock = _held_server(tmp_path)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("SET", "k", "1"))
    b.dataReceived(_cmd("SET", "j", "2"))
    aof = server.aof
    assert aof is not None
    good = aof.fd
    aof.fd = os.open(tmp_path / "kv.aof", os.O_RDONLY)  # writes fail (EBADF)
    clock.end_poll()
    assert ta.value() == tb.value() == b""
    assert a.closed and b.closed
    os.close(aof.fd)
    aof.fd = good
    c, tc = _client(server)
    c.dataReceived(_cmd("SET", "x", "1"))
    assert tc.value().startswith(b"-MISCONF")
    server.stopFactory()


def test_many_clients_write_through_a_real_suite(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    config = {"services": {"kv": {"type": "kv", "port": 0, "data": str(aof)}}}
    with suite_running(config, base_dir=tmp_path, subprocess=True) as s:
        port = s.port("kv")

        def client(n: int) -> list[bytes]:
            c = Raw(port)
            got = []
            for i in range(50):
                c.send(_cmd("SET", f"k{n}:{i}", str(i)) + _cmd("GET", f"k{n}:{i}"))
                got += [c.reply(), c.reply()]
            c.close()
            return got

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(8)))
        for got in results:
            assert got == [
                r for i in range(50) for r in (b"+OK\r\n", b"$%d\r\n%d\r\n" % (len(str(i)), i))
            ]
    records = aof.read_bytes()
    assert records.count(b"*3\r\n$3\r\nSET\r\n") == 400
    with suite_running(config, base_dir=tmp_path) as s:
        c = Raw(s.port("kv"))
        assert c.call("DBSIZE") == b":400\r\n"
        assert c.call("GET", "k7:49") == b"$2\r\n49\r\n"
        c.close()
