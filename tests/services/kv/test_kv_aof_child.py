"""
Compaction in a child process (aof.py): BGREWRITEAOF, BGSAVE, SAVE and the automatic
rewrite fork a child that writes the snapshot while the server goes on serving. The
file after it replays to exactly the data set, writes served meanwhile included; a
killed child leaves the file as it was; a second request answers as Redis 7's; no
zombie is left; the suite under twistd stops one cleanly.

The reactor is a MemoryReactorClock: the test plays its part for the child's pipe
(L{_finish}: wait until it is readable, then C{doRead}), so what runs between the
fork and the end is the test's choice.
"""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from kvdb_help import PollReactor, wait_compacted, wait_for
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport

from portsuite.testing import suite_running
from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.aof import ChildWatch

PEER = IPv4Address("TCP", "127.0.0.1", 1)


def _server(aof: Path, **settings: Any) -> tuple[MemoryReactorClock, KVServer]:
    reactor = MemoryReactorClock()
    reactor.advance(1_700_000_000)
    settings.setdefault("fork_max_memory", 1 << 62)  # (a child, whatever the test process uses)
    server = KVServer(Settings(data=aof, **settings), reactor)
    server.startFactory()
    assert server.can_fork
    return reactor, server


class _Client:
    def __init__(self, server: KVServer):
        self.p = server.buildProtocol(PEER)
        self.t = StringTransport(peerAddress=PEER)
        self.p.makeConnection(self.t)

    def send(self, *argv: bytes | str) -> None:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        self.p.dataReceived(
            b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        )

    def call(self, *argv: bytes | str) -> bytes:
        self.t.clear()
        self.send(*argv)
        return self.t.value()


def _finish(reactor: MemoryReactorClock, server: KVServer) -> None:
    """Play the reactor until the running compaction has ended (swapped in or dropped)."""
    rw = server.rewriting
    assert rw is not None
    deadline = time.monotonic() + 60
    while server.rewriting is rw and time.monotonic() < deadline:
        watches = [r for r in reactor.getReaders() if isinstance(r, ChildWatch)]
        if watches:
            select.select([watches[0].fileno()], [], [], 0.1)
            watches[0].doRead()
        else:  # (the pipe ended before the exit: the reaping is retried a moment later)
            time.sleep(0.001)
            reactor.advance(0.01)
    assert server.rewriting is not rw, "the compaction never ended"


def _ended(reactor: MemoryReactorClock, server: KVServer, c: _Client) -> dict[str, str]:
    """L{_finish}, then: the child reaped, no temp file left; INFO persistence."""
    rw = server.rewriting
    assert rw is not None and server.aof is not None
    _finish(reactor, server)
    assert _reaped(rw.pid)
    assert not list(server.aof.path.parent.glob("*.tmp"))
    return _info(c)


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not a child of ours any more: reaped
    return False


def _data(server: KVServer) -> list[dict[bytes, Any]]:
    return [dict(db.data.items()) for db in server.dbs]


def _replayed(aof: Path) -> list[dict[bytes, Any]]:
    clock = Clock()
    clock.advance(1_700_000_000)
    again = KVServer(Settings(data=aof), clock)
    try:
        return _data(again)
    finally:
        again.stopFactory()


def _info(c: _Client) -> dict[str, str]:
    text = c.call("INFO", "persistence").decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def test_writes_served_during_the_rewrite_are_in_the_new_file(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server)
    for i in range(3000):
        c.send("SET", f"k{i}", "old")  # overwritten below: the compacted file has one each
    for i in range(3000):
        c.send("SET", f"k{i}", f"v{i}")
    c.send("SELECT", "3")
    c.send("RPUSH", "l", *(f"e{i}" for i in range(500)))
    c.send("SELECT", "9")
    c.send("SET", "nine", "9")
    c.send("SELECT", "5")  # the file's appends go on in db 5; the snapshot ends in db 9
    c.send("HSET", "h", "f", "1")
    c.send("HSET", "h5", "f", "1")
    c.send("DEL", "h5")
    before = aof.stat().st_size
    assert c.call("BGREWRITEAOF") == b"+Background append only file rewriting started\r\n"
    rw = server.rewriting
    assert rw is not None
    os.kill(rw.pid, signal.SIGSTOP)  # (it may be done already: the server is not told yet)
    try:
        # served while it runs, and recorded only in the old file for now: more than
        # the child's catch-up copies at once (CATCH_UP), and a SELECT-free tail
        for i in range(400):
            c.send("SET", f"during{i}", "x" * 4000)
        c.send("DEL", "h")
        c.send("INCR", "n")
        c.send("SELECT", "0")
        c.send("DEL", "k7")
        assert c.call("BGREWRITEAOF") == (
            b"-ERR Background append only file rewriting already in progress\r\n"
        )
        assert c.call("BGSAVE").startswith(b"-ERR Another child process is active (AOF?)")
        assert c.call("BGSAVE", "SCHEDULE") == b"+Background saving scheduled\r\n"
        info = _info(c)
        assert info["aof_rewrite_in_progress"] == "1" and info["rdb_bgsave_in_progress"] == "0"
        assert info["aof_current_rewrite_time_sec"] != "-1"
        assert list(tmp_path.glob("kv.aof.rewrite-*.tmp"))
    finally:
        os.kill(rw.pid, signal.SIGCONT)
    info = _ended(reactor, server, c)
    assert info["aof_rewrite_in_progress"] == "0"
    assert info["aof_last_bgrewrite_status"] == "ok"
    text = aof.read_bytes()
    assert b"$3\r\nold\r\n" not in text  # compacted…
    assert aof.stat().st_size < before + 400 * 4000
    assert _replayed(aof) == _data(server)  # …and exactly the data set, writes meanwhile too
    assert b"during399" in _replayed(aof)[5] and b"k7" not in _replayed(aof)[0]
    # the BGSAVE scheduled meanwhile starts at the next tick of the cron; the file's
    # appends are in db 0, its snapshot ends in db 9: the few appends that follow
    # are copied by the server, after a SELECT 0
    reactor.advance(0.1)
    assert server.rewriting is not None and server.rewriting.kind == "rdb"
    assert _info(c)["rdb_bgsave_in_progress"] == "1"
    c.send("SET", "last", "1")
    _finish(reactor, server)
    assert _info(c)["rdb_last_bgsave_status"] == "ok"
    server.stopFactory()
    assert _replayed(aof) == _data(server)
    assert aof.read_bytes().endswith(
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$4\r\nlast\r\n$1\r\n1\r\n"
    )


def test_a_killed_child_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof, fsync="always")
    c = _Client(server)
    for i in range(300):
        c.send("SET", "k", f"{i}")
        c.send("SADD", "s", f"m{i}")
    c.send("SET", "big", "x" * (64 << 20))  # (the child writes a while: killed before its end)
    assert c.call("BGREWRITEAOF").startswith(b"+Background")
    rw = server.rewriting
    assert rw is not None
    os.kill(rw.pid, signal.SIGKILL)
    assert c.call("SET", "meanwhile", "1") == b"+OK\r\n"
    info = _ended(reactor, server, c)
    assert info["aof_last_bgrewrite_status"] == "err"
    assert info["aof_rewrites_consecutive_failures"] == "1"
    assert _replayed(aof) == _data(server)
    # the automatic rewrite waits a moment after a failure; a command does not
    assert c.call("BGREWRITEAOF").startswith(b"+Background")
    _finish(reactor, server)
    assert _info(c)["aof_last_bgrewrite_status"] == "ok"
    assert aof.read_bytes().count(b"SET") == 3  # k, big and meanwhile
    server.stopFactory()


def test_save_answers_when_the_child_is_done_and_others_are_served(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    saver, other = _Client(server), _Client(server)
    for i in range(100):
        saver.send("SET", "k", f"{i}")
    assert saver.call("SAVE") == b""  # the reply waits for the child
    assert server.rewriting is not None
    assert other.call("SET", "x", "1") == b"+OK\r\n"  # kv goes on serving meanwhile
    assert other.call("SAVE") == b""  # a second SAVE waits for the same one
    assert other.call("PING") == b""  # (its pipelined commands wait behind it)
    saver.t.clear()
    _finish(reactor, server)
    reactor.advance(0)  # (what waited behind a reply runs at the next turn)
    assert saver.t.value() == b"+OK\r\n"
    assert other.t.value() == b"+OK\r\n+PONG\r\n"
    assert _replayed(aof) == _data(server)
    # BGSAVE's child: SAVE and BGSAVE are refused as by Redis
    assert saver.call("BGSAVE") == b"+Background saving started\r\n"
    assert saver.call("SAVE") == b"-ERR Background save already in progress\r\n"
    assert saver.call("BGSAVE") == b"-ERR Background save already in progress\r\n"
    assert saver.call("BGREWRITEAOF") == (b"+Background append only file rewriting scheduled\r\n")
    assert _info(saver)["aof_rewrite_scheduled"] == "1"
    _finish(reactor, server)
    reactor.advance(0.1)
    assert server.rewriting is not None and server.rewriting.kind == "aof"
    _finish(reactor, server)
    assert _info(saver)["aof_rewrite_scheduled"] == "0"
    server.stopFactory()


def test_bgrewriteaof_inside_exec_is_scheduled(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server)
    c.send("MULTI")
    c.send("SET", "a", "1")
    c.send("BGREWRITEAOF")
    assert c.call("EXEC") == (b"*2\r\n+OK\r\n+Background append only file rewriting scheduled\r\n")
    assert server.rewriting is None
    reactor.advance(0.1)
    assert server.rewriting is not None
    _finish(reactor, server)
    assert aof.read_bytes() == b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"
    server.stopFactory()


def test_the_automatic_rewrite_forks_too(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof, aof_rewrite_min_size=2000)
    c = _Client(server)
    for i in range(200):
        c.send("SET", "counter", f"{i}")
    reactor.advance(0.1)  # the cron sees the growth
    assert server.rewriting is not None and server.rewriting.kind == "aof"
    _finish(reactor, server)
    assert aof.read_bytes() == b"*3\r\n$3\r\nSET\r\n$7\r\ncounter\r\n$3\r\n199\r\n"
    server.stopFactory()


def test_stopping_the_service_kills_and_reaps_the_child(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server)
    c.send("SET", "a", "1")
    assert c.call("SAVE") == b""
    rw = server.rewriting
    assert rw is not None
    os.kill(rw.pid, signal.SIGSTOP)
    server.stopFactory()
    assert _reaped(rw.pid)
    assert not list(tmp_path.glob("*.tmp"))
    assert not reactor.getReaders()
    assert _replayed(aof) == [{b"a": b"1"}] + [{}] * 15


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(x) for x in (task / "children").read_text().split()]
    return out


@pytest.mark.e2e
def test_under_twistd_the_child_is_reaped_and_a_stop_kills_it(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    cfg = {"services": {"kv": {"type": "kv", "port": 0, "data": str(aof)}}}
    with suite_running(cfg, base_dir=tmp_path, subprocess=True) as s:
        r = redis.Redis(port=s.port("kv"))
        for i in range(100):
            r.set("k", i)
        assert r.bgrewriteaof()
        wait_compacted(r)
        assert aof.read_bytes() == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n99\r\n"
        assert _children(s.pid) == []  # reaped: no zombie
        r.set("big", b"x" * 1_000_000)
        assert r.bgsave()
        kids = _children(s.pid)
        if kids:  # (unless it was done already)
            os.kill(kids[0], signal.SIGSTOP)
            r.set("after", "1")
            assert r.info("persistence")["rdb_bgsave_in_progress"] == 1
        assert s.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in s.log()
        for kid in kids:
            wait_for(lambda kid=kid: not Path(f"/proc/{kid}").exists(), message="the child's end")
    assert not list(tmp_path.glob("*.tmp"))
    with suite_running(cfg, base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.mget("k", "after") == [b"99", b"1"] and r.strlen("big") == 1_000_000


def test_a_client_paused_and_resumed_while_its_replies_wait_for_the_aof_reads_again(
    tmp_path: Path,
) -> None:
    # a pipelining client whose transport paused it (its buffer full) and resumed it
    # (drained) within the poll that held its replies for the AOF's write: after the
    # write its replies go and its socket is read again (it stalled for ever before)
    reactor = PollReactor()
    server = KVServer(Settings(data=tmp_path / "kv.aof"), reactor)
    server.startFactory()
    c = _Client(server)
    c.send("SET", "a", "1")
    assert c.t.value() == b""  # held until the file is written
    c.p.pauseProducing()  # (the transport's buffer went over its mark…)
    c.p.resumeProducing()  # (…and drained, in the same poll)
    assert c.t.producerState == "paused"
    reactor.end_poll()
    assert c.t.value() == b"+OK\r\n"
    assert c.t.producerState == "producing"
    server.stopFactory()


def _stats(c: _Client) -> dict[str, str]:
    text = c.call("INFO", "stats").decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def test_the_child_yields_the_cpu_to_the_suite(tmp_path: Path) -> None:
    """
    `ps -o ni` shows the compaction's child at nice 19 (CHILD_NICE), the server
    unchanged: on a busy cpu the suite's reactor is run first, the child after it.
    """
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server)
    c.send("SET", "big", "x" * (64 << 20))  # (the child writes a while)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert c.call("BGREWRITEAOF").startswith(b"+Background")
    rw = server.rewriting
    assert rw is not None
    # (set by the child as it starts: looked at until then, or until it has exited)
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, rw.pid) != ours or _exited(rw.pid), 10)
    assert os.getpriority(os.PRIO_PROCESS, rw.pid) == max(ours, 19)
    assert os.getpriority(os.PRIO_PROCESS, 0) == ours
    _finish(reactor, server)
    assert _info(c)["aof_last_bgrewrite_status"] == "ok"
    server.stopFactory()


def _exited(pid: int) -> bool:
    """A zombie: the child has exited, not yet reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_info_tells_the_forks_and_the_latest_ones_time(tmp_path: Path) -> None:
    """INFO stats' total_forks and latest_fork_usec, as Redis's: the fork holds the suite."""
    aof = tmp_path / "kv.aof"
    reactor, server = _server(aof)
    c = _Client(server)
    c.send("SET", "a", "1")
    assert (_stats(c)["total_forks"], _stats(c)["latest_fork_usec"]) == ("0", "0")
    assert c.call("BGSAVE") == b"+Background saving started\r\n"
    _finish(reactor, server)
    assert c.call("BGREWRITEAOF").startswith(b"+Background")
    _finish(reactor, server)
    stats = _stats(c)
    assert stats["total_forks"] == "2"
    assert 0 < int(stats["latest_fork_usec"]) < 60_000_000
    server.stopFactory()
