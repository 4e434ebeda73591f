"""The append-only file: load, truncated tail, corruption, compaction, SIGTERM, kill -9."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from kvdb_help import wait_compacted
from twisted.internet.task import Clock

from portsuite import api as configmod
from portsuite import loader
from portsuite.testing import run_twistd, suite_running
from portsuite_services.kv import KVServer, Settings, check
from portsuite_services.kv.aof import AOFError


def _cfg(path: Path, **extra: object) -> dict:
    return {"services": {"kv": {"type": "kv", "port": 0, "data": str(path), **extra}}}


def test_survives_restart_with_expiry_made_absolute(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        r.set("a", "1")
        r.set("t", "x", ex=1000)
        r.hset("h", mapping={"f": "v"})
        r.rpush("l", "1", "2")
        r.sadd("s", "m")
        r.incrbyfloat("f", "0.5")
        r.set("gone", "x")
        r.delete("gone")
    text = aof.read_bytes()
    assert b"PXAT" in text and b"EX\r\n" not in text  # relative time stored as absolute
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.get("a") == b"1"
        assert 990 < r.ttl("t") <= 1000
        assert r.hgetall("h") == {b"f": b"v"}
        assert r.lrange("l", 0, -1) == [b"1", b"2"]
        assert r.smembers("s") == {b"m"}
        assert r.get("f") == b"0.5"
        assert r.exists("gone") == 0


def test_truncated_last_record_is_dropped(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2\r\n2"
    )
    server = KVServer(Settings(data=aof), Clock())
    assert server.store.data == {b"a": b"1"}
    assert aof.stat().st_size == 27  # the partial record was cut off, appends stay valid
    server.stopFactory()


def test_corruption_in_the_middle_stops_startup(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\nGARBAGE\r\n*1\r\n$4\r\nPING\r\n")
    with pytest.raises(AOFError, match=r"corrupt at byte 27 .*redis-check-aof --fix"):
        KVServer(Settings(data=aof), Clock())
    # portsuite check reports it too, as one line naming the service and the key
    with pytest.raises(configmod.ConfigError) as e:
        loader.from_dict(_cfg(aof), base_dir=tmp_path)
    assert len(e.value.errors) == 1
    assert "[services.kv] data: data file" in e.value.errors[0]
    assert check(configmod.ServiceConfig(name="kv", type="kv", options={"data": aof})) != []


def test_compaction_is_atomic_and_shrinks(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    clock = Clock()
    clock.advance(1_700_000_000)
    server = KVServer(Settings(data=aof, fsync="always", aof_rewrite_min_size=2000), clock)
    server.startFactory()
    from portsuite_services.kv.protocol import KVProtocol

    c = KVProtocol(server)
    for i in range(200):
        out: list[bytes] = []
        c.execute([b"SET", b"counter", b"%d" % i], out)
        server.aof.flush()
    assert server.aof.size > 2000
    clock.advance(0.1)  # the cron sees the growth and compacts
    assert server.aof.rewrites == 1
    assert aof.read_bytes() == b"*3\r\n$3\r\nSET\r\n$7\r\ncounter\r\n$3\r\n199\r\n"
    assert not list(tmp_path.glob("*.tmp"))
    server.stopFactory()


def test_bgrewriteaof_command(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        for i in range(50):
            r.set("k", i)
        assert r.bgrewriteaof()
        wait_compacted(r)
        assert aof.read_bytes() == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n49\r\n"
        r.set("after", "1")
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        assert redis.Redis(port=s.port("kv")).mget("k", "after") == [b"49", b"1"]


@pytest.mark.e2e
def test_kill_9_keeps_acknowledged_writes_with_fsync_always(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof, fsync="always"), base_dir=tmp_path, subprocess=True) as s:
        r = redis.Redis(port=s.port("kv"))
        pipe = r.pipeline(transaction=False)
        for i in range(500):
            pipe.set(f"key{i}", i)
        assert all(pipe.execute())
        assert r.incr("last") == 1
        os.killpg(s.pid, signal.SIGKILL)  # no flush, no goodbye
        s.proc.wait(10)
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.dbsize() == 501
        assert r.get("key499") == b"499" and r.get("last") == b"1"


@pytest.mark.e2e
def test_sigterm_flushes_and_corrupt_file_stops_twistd(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof, fsync="no"), base_dir=tmp_path, subprocess=True) as s:
        redis.Redis(port=s.port("kv")).set("kept", "yes")
        assert s.stop() in (0, -signal.SIGTERM)
        assert "flushed and fsynced" in s.log()
    assert b"kept" in aof.read_bytes()
    aof.write_bytes(aof.read_bytes() + b"junk\r\n*1\r\n$4\r\nPING\r\n")
    cfg = tmp_path / "ps.toml"
    cfg.write_text(f'[services.kv]\ntype = "kv"\nport = 0\ndata = "{aof}"\n')
    run = run_twistd(cfg)
    assert run.returncode != 0
    assert "corrupt at byte" in run.stderr
    assert "Traceback" not in run.stderr
    time.sleep(0)


def test_disk_full_refuses_writes_instead_of_lying(tmp_path: Path) -> None:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    aof = tmp_path / "kv.aof"
    clock = Clock()
    server = KVServer(Settings(data=aof, fsync="always"), clock)
    server.startFactory()
    good_fd = server.aof.fd
    server.aof.fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    peer = IPv4Address("TCP", "127.0.0.1", 1)
    p, t = server.buildProtocol(peer), StringTransport(peerAddress=peer)
    p.makeConnection(t)
    p.dataReceived(b"SET a 1\r\n")
    assert t.value() == b"" and t.disconnected  # not on disk: not acknowledged
    p, t = server.buildProtocol(peer), StringTransport(peerAddress=peer)
    p.makeConnection(t)
    p.dataReceived(b"SET b 2\r\nGET a\r\n")
    assert t.value().startswith(b"-MISCONF Errors writing to the AOF file: No space left")
    os.close(server.aof.fd)
    server.aof.fd = good_fd  # space again: the retry writes the pending record
    clock.advance(0.1)
    t.clear()
    p.dataReceived(b"SET b 2\r\n")
    assert t.value() == b"+OK\r\n"
    server.stopFactory()
    assert b"$1\r\na\r\n$1\r\n1\r\n" in aof.read_bytes()


def _rec(*argv: bytes) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


SET_A = _rec(b"SET", b"a", b"1")


@pytest.mark.parametrize(
    ("records", "why"),
    [
        (_rec(b"EXEC"), "EXEC without MULTI"),
        (_rec(b"AUTH", b"pw"), "(AUTH) is not a change"),
        (_rec(b"NOSUCH", b"x"), "(NOSUCH) is not a change"),
        (_rec(b"SELECT", b"99"), "DB index is out of range"),
        (_rec(b"SUBSCRIBE", b"ch"), "(SUBSCRIBE) is not a change"),
        (_rec(b"GET", b"a"), "(GET) is not a change"),
        (_rec(b"SET", b"a"), "wrong number of arguments"),
    ],
)
def test_check_replays_the_file_as_startup_does(tmp_path: Path, records: bytes, why: str) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(SET_A + records + SET_A)
    with pytest.raises(AOFError) as started:
        KVServer(Settings(data=aof), Clock())
    assert why in str(started.value)
    checked = check(configmod.ServiceConfig(name="kv", type="kv", options={"data": aof}))
    assert checked == [f"data: {started.value}"]  # the same verdict, the same line
    assert aof.read_bytes() == SET_A + records + SET_A  # check leaves the file alone


@pytest.mark.e2e
def test_subscribe_record_stops_twistd_with_one_line(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(_rec(b"SUBSCRIBE", b"ch"))
    cfg = tmp_path / "ps.toml"
    cfg.write_text(f'[services.kv]\ntype = "kv"\nport = 0\ndata = "{aof}"\n')
    run = run_twistd(cfg)
    assert run.returncode != 0
    assert "record 1 (SUBSCRIBE) is not a change" in run.stderr
    assert "Traceback" not in run.stderr


def test_file_ending_inside_multi_drops_the_transaction(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    head = SET_A + _rec(b"MULTI") + _rec(b"SET", b"b", b"2")
    aof.write_bytes(head + _rec(b"SET", b"c", b"3"))
    assert check(configmod.ServiceConfig(name="kv", type="kv", options={"data": aof})) == []
    server = KVServer(Settings(data=aof), Clock())
    assert server.store.data == {b"a": b"1"}
    assert aof.read_bytes() == SET_A  # cut before MULTI: what is appended next is valid
    server.stopFactory()


def test_transactions_are_written_between_multi_and_exec(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof, fsync="always"), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        with r.pipeline(transaction=True) as p:
            p.set("x", 1).incr("x").get("x")
            assert p.execute() == [True, 2, b"2"]
    text = aof.read_bytes()
    assert text == (
        _rec(b"MULTI") + _rec(b"SET", b"x", b"1") + _rec(b"INCRBY", b"x", b"1") + _rec(b"EXEC")
    )
    # a crash after MULTI and the first write: on restart, nothing of it
    aof.write_bytes(text[: text.index(b"*3\r\n$6\r\nINCRBY")])
    server = KVServer(Settings(data=aof), Clock())
    assert server.store.data == {}
    server.stopFactory()


def test_a_stream_made_by_xgroup_create_mkstream_is_made_again(tmp_path: Path) -> None:
    # the record had no MKSTREAM: the file did not load ("requires the key to exist")
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.xgroup_create("new", "g", "$", mkstream=True)
        r.xadd("old", {"f": "v"}, id="1-1")
        assert r.xgroup_create("old", "g", "0", mkstream=True)  # (there already: none)
    text = aof.read_bytes()
    assert text.count(b"MKSTREAM") == 1
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.xlen("new") == 0 and [g["name"] for g in r.xinfo_groups("new")] == [b"g"]
        assert [g["name"] for g in r.xinfo_groups("old")] == [b"g"]


def test_temp_files_of_a_killed_compaction_are_removed(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(SET_A)
    left = tmp_path / "kv.aof.rewrite-4242.tmp"
    left.write_bytes(SET_A[:10])
    other = tmp_path / "other.aof.rewrite-1.tmp"  # another service's: not ours to remove
    other.write_bytes(b"x")
    server = KVServer(Settings(data=aof), Clock())
    assert not left.exists() and other.exists()
    assert server.store.data == {b"a": b"1"}
    server.stopFactory()


@pytest.mark.parametrize(
    "bad",
    [
        b"*+2\r\n$3\r\nGET\r\n$1\r\na\r\n",
        b"*2\r\n$ 3\r\nGET\r\n$1\r\na\r\n",
        b"*1_0\r\n",
        b"*02\r\n$3\r\nGET\r\n$1\r\na\r\n",
        b"*2\r\n$+3\r\nGET\r\n$1\r\na\r\n",
        b"*2\r\n$3 \r\nGET\r\n$1\r\na\r\n",
    ],
)
def test_headers_are_read_strictly(tmp_path: Path, bad: bytes) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(SET_A + bad + SET_A)
    with pytest.raises(AOFError, match="is corrupt at byte"):
        KVServer(Settings(data=aof), Clock())
