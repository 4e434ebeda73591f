"""
Blocking commands (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP, CLIENT UNBLOCK), side by side
with redis-server: the same bytes for the same story told to both, with real clients
blocked on real sockets; then the hostile paths and the timer on a Clock.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import redis
from kv_raw import Raw
from kvdb_help import same_replies, wait_for
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite.testing import suite_running
from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.aof import read_records

CASES = {
    "at-once": [
        "RPUSH a 1 2",
        "RPUSH b 3 4",
        "BLPOP b a 1",
        "BRPOP b a 1",
        "BLPOP b a 1",
        "BLPOP a 0",
        "EXISTS a b",
        "BLPOP nothing 0.01",
        "BRPOP nothing 0.01",
        "RPUSH src x y",
        "BLMOVE src dst LEFT RIGHT 0",
        "BRPOPLPUSH src dst 0",
        "LRANGE dst 0 -1",
        "BLMOVE dst dst RIGHT LEFT 0",
        "LRANGE dst 0 -1",
        "BLMOVE nothing dst LEFT LEFT 0.01",
        "BRPOPLPUSH nothing dst 0.01",
        "RPUSH m 1 2 3 4 5",
        "BLMPOP 1 2 b m LEFT COUNT 2",
        "BLMPOP 1 2 b m RIGHT",
        "BLMPOP 1 2 b m RIGHT COUNT 100",
        "BLMPOP 0.01 1 m LEFT",
    ],
    "errors": [
        "SET s x",
        "BLPOP s 0",
        "BLPOP nothing s 0",
        "BRPOPLPUSH s d 0",
        "RPUSH l 1",
        "BLMOVE l s LEFT LEFT 0",
        "BLMOVE l d UP LEFT 0",
        "BLMOVE l d LEFT DOWN 0",
        "BLPOP l abc",
        "BLPOP l -1",
        "BLPOP l -0.0001",
        "BLPOP nothing nan",
        "BLPOP nothing 1e300",
        "BLPOP nothing inf",
        "BLPOP nothing -inf",
        "BLPOP nothing 1e5000",
        "BLPOP nothing 1e16",
        "BLPOP nothing ' 1'",
        "BLPOP nothing ''",
        "BLPOP l",
        "BLMPOP 0 0 l LEFT",
        "BLMPOP 0 abc l LEFT",
        "BLMPOP 0 -1 l LEFT",
        "BLMPOP 0 1 l",
        "BLMPOP 0 2 l LEFT",
        "BLMPOP 0 1 l UP",
        "BLMPOP 0 1 l LEFT COUNT 0",
        "BLMPOP 0 1 l LEFT COUNT abc",
        "BLMPOP 0 1 l LEFT COUNT 1 COUNT 1",
        "BLMPOP 0 1 l LEFT foo",
        "BLMPOP abc 1 l LEFT",
        "BLMPOP -1 1 l LEFT",
        "BLMPOP 0 99999999999999999999 l LEFT",
        "BLMPOP 0 1 s LEFT",
        "BLMPOP 0",
        "CLIENT UNBLOCK 999999",
        "CLIENT UNBLOCK abc",
        "CLIENT UNBLOCK 1 foo",
        "CLIENT UNBLOCK 1 TIMEOUT",
        "CLIENT UNBLOCK 1 ERROR",
        "CLIENT UNBLOCK",
    ],
    "in-multi": [
        "MULTI",
        "BLPOP nothing 0",
        "BRPOP nothing 0",
        "BLMOVE nothing d LEFT LEFT 0",
        "BRPOPLPUSH nothing d 0",
        "BLMPOP 0 1 nothing LEFT",
        "RPUSH q x",
        "BLPOP q 0",
        "BLPOP q 0",
        "EXEC",
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_replies_as_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    same_replies(redis_port, kv_port, CASES[name], resp3)


# -- stories with clients blocked on real sockets --------------------------------------


def _cmd(*argv: str) -> bytes:
    args = [a.encode() for a in argv]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _blocked(admin: Raw) -> int:
    info = admin.call("INFO", "clients").decode()
    return int(info.split("blocked_clients:")[1].split("\r\n")[0])


class Story:
    """Clients of one server; C{block()} sends a blocking command and waits until it waits."""

    def __init__(self, port: int, resp3: bool):
        self.port = port
        self.resp3 = resp3
        self.admin = Raw(port)
        self.admin.call("FLUSHALL")
        self.clients: list[Raw] = []

    def client(self) -> Raw:
        c = Raw(self.port, self.resp3)
        self.clients.append(c)
        return c

    def block(self, c: Raw, *argv: str) -> None:
        before = _blocked(self.admin)
        c.send(_cmd(*argv))
        wait_for(lambda: _blocked(self.admin) > before, message=f"{argv} to block")

    def close(self) -> None:
        self.admin.call("FLUSHALL")
        for c in [*self.clients, self.admin]:
            c.close()


def _story_push_order_and_pipeline(port: int, resp3: bool) -> list[bytes]:
    s = Story(port, resp3)
    a, b, c, w = s.client(), s.client(), s.client(), s.client()
    out = []
    # arrival order per key: a, then b, then c
    s.block(a, "BLPOP", "q", "other", "0")
    s.block(b, "BRPOP", "q", "0")
    s.block(c, "BLMPOP", "0", "2", "zz", "q", "LEFT", "COUNT", "5")
    out.append(w.call("RPUSH", "q", "1", "2", "3", "4"))
    out += [a.reply(), b.reply(), c.reply()]
    # a pipelined LPOP after the push comes after the blocked client is served
    s.block(a, "BLPOP", "q", "0")
    w.send(_cmd("RPUSH", "q", "x") + _cmd("LPOP", "q"))
    out += [w.reply(), w.reply(), a.reply()]
    # MULTI/EXEC: served after EXEC, so the LPOP inside takes the element
    s.block(a, "BLPOP", "q", "0")
    for line in (("MULTI",), ("RPUSH", "q", "m"), ("LPOP", "q"), ("EXEC",)):
        out.append(w.call(*line))
    out.append(w.call("RPUSH", "q", "after"))
    out.append(a.reply())
    # two of its keys made ready by one EXEC: served from the first made ready (Redis 7.0)
    for block in (("BLPOP", "r1", "r2", "0"), ("BLMPOP", "0", "2", "r1", "r2", "LEFT")):
        s.block(a, *block)
        for line in (("MULTI",), ("RPUSH", "r2", "x"), ("RPUSH", "r1", "y"), ("EXEC",)):
            out.append(w.call(*line))
        out += [a.reply(), w.call("LRANGE", "r1", "0", "-1"), w.call("DEL", "r1", "r2")]
    # a key made ready by RENAME, MOVE and SWAPDB
    s.block(a, "BLPOP", "q", "0")
    w.call("RPUSH", "tmp", "renamed")
    out += [w.call("RENAME", "tmp", "q"), a.reply()]
    s.block(a, "BLPOP", "q", "0")
    w.call("SELECT", "1")
    w.call("RPUSH", "q", "moved")
    out += [w.call("MOVE", "q", "0"), a.reply()]
    s.block(a, "BLPOP", "q", "0")
    w.call("RPUSH", "q", "swapped")
    out += [w.call("SWAPDB", "0", "1"), a.reply()]
    w.call("SELECT", "0")
    # BLMOVE feeds a client blocked on its destination
    s.block(a, "BLMOVE", "src", "dst", "LEFT", "RIGHT", "0")
    s.block(b, "BLPOP", "dst", "0")
    out += [w.call("LPUSH", "src", "v"), a.reply(), b.reply()]
    out.append(w.call("EXISTS", "src", "dst"))
    # a key of another type does not wake it (Redis 7.0); a list then does
    s.block(a, "BLPOP", "k", "0")
    out.append(w.call("SET", "k", "string"))
    out.append(w.call("DEL", "k"))
    out += [w.call("RPUSH", "k", "list"), a.reply()]
    # commands pipelined behind a blocked one wait for it
    a.send(_cmd("BLPOP", "late", "0") + _cmd("PING") + _cmd("GET", "x"))
    wait_for(lambda: _blocked(s.admin) == 1)
    out.append(w.call("RPUSH", "late", "1"))
    out += [a.reply(), a.reply(), a.reply()]
    # CLIENT UNBLOCK, both ways
    a_id = a.call("CLIENT", "ID")
    s.block(a, "BLPOP", "never", "0")
    out += [w.call("CLIENT", "UNBLOCK", a_id[1:-2].decode()), a.reply()]
    s.block(a, "BRPOPLPUSH", "never", "d", "0")
    out += [w.call("CLIENT", "UNBLOCK", a_id[1:-2].decode(), "ERROR"), a.reply()]
    out.append(w.call("CLIENT", "UNBLOCK", a_id[1:-2].decode()))
    s.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_blocked_clients_are_served_as_redis_serves_them(
    resp3: bool, redis_port: int, kv_port: int
) -> None:
    want = _story_push_order_and_pipeline(redis_port, resp3)
    assert _story_push_order_and_pipeline(kv_port, resp3) == want


def test_timeout_and_redis_py(kv_port: int) -> None:
    r = redis.Redis(port=kv_port)
    start = time.monotonic()
    assert r.blpop(["nothing"], timeout=0.2) is None
    assert time.monotonic() - start >= 0.15
    assert r.brpoplpush("nothing", "d", timeout=0.1) is None
    assert r.blmpop(0.1, 1, "nothing", direction="LEFT") is None
    r.close()


def test_redis_cli_blocks_and_is_served(kv_port: int) -> None:
    import subprocess

    from portsuite.testing import need

    cli = need("redis-cli")
    r = redis.Redis(port=kv_port)
    r.delete("cliq")
    proc = subprocess.Popen(
        [cli, "-p", str(kv_port), "BLPOP", "cliq", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: r.info("clients")["blocked_clients"] >= 1)
        r.rpush("cliq", "hello")
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.split() == ["cliq", "hello"]
    r.close()


# -- hostile paths -----------------------------------------------------------------------


def test_a_blocked_client_that_disconnects_is_forgotten(kv_port: int) -> None:
    admin = Raw(kv_port)
    admin.call("DEL", "gq")
    sock = socket.create_connection(("127.0.0.1", kv_port))
    sock.sendall(_cmd("BLPOP", "gq", "0"))
    wait_for(lambda: _blocked(admin) == 1)
    sock.close()
    wait_for(lambda: _blocked(admin) == 0, message="the closed client to be dropped")
    assert admin.call("RPUSH", "gq", "kept") == b":1\r\n"
    assert admin.call("LLEN", "gq") == b":1\r\n"  # nobody took it
    admin.call("DEL", "gq")
    admin.close()


def test_blpop_on_100k_keys_from_one_client(kv_port: int) -> None:
    admin = Raw(kv_port)
    keys = [f"many:{i}" for i in range(100_000)]
    c = Raw(kv_port)
    c.send(_cmd("BLPOP", *keys, "0"))
    wait_for(lambda: _blocked(admin) == 1, timeout=60)
    start = time.monotonic()
    assert admin.call("PING") == b"+PONG\r\n"
    assert time.monotonic() - start < 5  # others are served meanwhile
    admin.call("RPUSH", "many:99999", "last")
    assert c.reply() == b"*2\r\n$10\r\nmany:99999\r\n$4\r\nlast\r\n"
    # every registration is gone: a new waiter on one of those keys is the only one served
    d = Raw(kv_port)
    d.send(_cmd("BLPOP", "many:5", "0"))
    wait_for(lambda: _blocked(admin) == 1)
    admin.call("RPUSH", "many:5", "a", "b")
    assert d.reply() == b"*2\r\n$6\r\nmany:5\r\n$1\r\na\r\n"
    assert admin.call("LLEN", "many:5") == b":1\r\n"
    admin.call("DEL", "many:5")
    for x in (admin, c, d):
        x.close()


def test_a_blocked_client_that_keeps_sending_and_never_reads(kv_port: int) -> None:
    admin = Raw(kv_port)
    admin.call("DEL", "nr")
    sock = socket.create_connection(("127.0.0.1", kv_port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(_cmd("BLPOP", "nr", "0"))
    wait_for(lambda: _blocked(admin) == 1)
    sock.settimeout(0.5)
    sent = 0
    ping = _cmd("PING") * 10_000
    try:  # until the server stops reading (or 300k commands)
        for _ in range(30):
            sock.sendall(ping)
            sent += 10_000
    except (TimeoutError, BlockingIOError):
        pass
    assert admin.call("PING") == b"+PONG\r\n"  # the others are served
    assert admin.call("RPUSH", "nr", "x") == b":1\r\n"
    sock.close()  # it never reads: closing is all it does
    wait_for(lambda: _blocked(admin) == 0)
    assert admin.call("PING") == b"+PONG\r\n"
    admin.close()


# -- the append-only file records what was popped ---------------------------------------


def test_aof_records_the_pop_not_the_blocking_command(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    cfg = {"services": {"kv": {"type": "kv", "port": 0, "data": str(aof)}}}
    with suite_running(cfg, base_dir=tmp_path) as s:
        port = s.port("kv")
        admin, a = Raw(port), Raw(port)
        admin.call("SELECT", "2")
        a.call("SELECT", "2")
        a.send(_cmd("BLPOP", "q", "0"))
        wait_for(lambda: _blocked(admin) == 1)
        admin.call("RPUSH", "q", "1", "2")
        assert a.reply() == b"*2\r\n$1\r\nq\r\n$1\r\n1\r\n"
        a.send(_cmd("BLMOVE", "q2", "d", "LEFT", "RIGHT", "0"))
        wait_for(lambda: _blocked(admin) == 1)
        admin.call("RPUSH", "q2", "v")
        assert a.reply() == b"$1\r\nv\r\n"
        admin.close()
        a.close()
    cmds, _, _, _ = read_records(aof)
    assert cmds == [
        [b"SELECT", b"2"],
        [b"RPUSH", b"q", b"1", b"2"],
        [b"LPOP", b"q"],
        [b"RPUSH", b"q2", b"v"],
        [b"LMOVE", b"q2", b"d", b"LEFT", b"RIGHT"],
    ]
    with suite_running(cfg, base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"), db=2)
        assert r.lrange("q", 0, -1) == [b"2"] and r.lrange("d", 0, -1) == [b"v"]
        r.close()


# -- the timer, on a Clock --------------------------------------------------------------


def _client(server: KVServer) -> tuple[object, StringTransport]:
    proto = server.buildProtocol(None)
    t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555))
    proto.makeConnection(t)
    return proto, t


def test_timeouts_run_on_the_reactor_clock() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    a.dataReceived(_cmd("BLPOP", "q", "5"))  # type: ignore[attr-defined]
    clock.advance(4.9)
    assert ta.value() == b""
    clock.advance(0.2)
    assert ta.value() == b"*-1\r\n"
    # a timeout of ten years: one timer at a time, re-armed, answered in time
    ta.clear()
    a.dataReceived(_cmd("BLPOP", "q", str(10 * 365 * 86400)))  # type: ignore[attr-defined]
    for _ in range(100):
        clock.advance(3600)
    assert len(clock.getDelayedCalls()) == 1 and ta.value() == b""
    clock.advance(10 * 365 * 86400)
    assert ta.value() == b"*-1\r\n"
    # served before its time: the timer is cancelled
    ta.clear()
    a.dataReceived(_cmd("BLPOP", "q", "5"))  # type: ignore[attr-defined]
    b, tb = _client(server)
    b.dataReceived(_cmd("RPUSH", "q", "x"))  # type: ignore[attr-defined]
    assert ta.value() == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"
    clock.advance(0)  # (what waited behind it runs on the next turn)
    assert clock.getDelayedCalls() == []  # the timer was cancelled
    clock.advance(10)
    assert ta.value() == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n"


def test_idle_timeout_spares_a_blocked_client() -> None:
    clock = Clock()
    server = KVServer(Settings(timeout=1), clock)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("BLPOP", "q", "0"))  # type: ignore[attr-defined]
    clock.advance(5)
    for _ in range(10):  # the idle check runs once a second (every 10 ticks)
        server._cron()
    assert not ta.disconnecting and tb.disconnecting  # as Redis: blocked clients wait
