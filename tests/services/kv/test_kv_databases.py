"""
16 databases, side by side with redis-server: SELECT MOVE SWAPDB COPY, FLUSHDB vs
FLUSHALL, per-db keys, WATCH per (db, key), INFO keyspace, CLIENT LIST db=, and the
append-only file (SELECT records, rewrite, replay, a SELECT out of range).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from kv_raw import Raw
from kvdb_help import same_replies
from twisted.internet.task import Clock

from portsuite import api as configmod
from portsuite.testing import suite_running
from portsuite_services.kv import KVServer, Settings, check
from portsuite_services.kv.aof import AOFError, read_records

CASES = {
    "select": [
        "SELECT 0",
        "SELECT 15",
        "SELECT 16",
        "SELECT -1",
        "SELECT 99999999999999999999",
        "SELECT 2147483648",
        "SELECT abc",
        "SELECT ''",
        "SELECT",
        "SELECT 1",
        "SET a 1",
        "GET a",
        "DBSIZE",
        "KEYS *",
        "RANDOMKEY",
        "SCAN 0",
        "SELECT 0",
        "GET a",
        "DBSIZE",
        "KEYS *",
        "RANDOMKEY",
        "SCAN 0",
        "EXISTS a",
    ],
    "move": [
        "SET a 1",
        "MOVE a 1",
        "MOVE a 1",
        "GET a",
        "SELECT 1",
        "GET a",
        "MOVE a 1",
        "MOVE a 16",
        "MOVE a -1",
        "MOVE a x",
        "MOVE a 99999999999999999999",
        "MOVE nokey 0",
        "SELECT 0",
        "SET a 3",
        "SELECT 1",
        "MOVE a 0",
        "GET a",
        "SET t v EX 100",
        "MOVE t 2",
        "SELECT 2",
        "TTL t",
        "RPUSH l 1 2",
        "MOVE l 3",
        "SELECT 3",
        "LRANGE l 0 -1",
        "MOVE",
        "MOVE a",
    ],
    "swapdb": [
        "SET a 0",
        "SELECT 1",
        "SET b 1",
        "SWAPDB 0 1",
        "GET a",
        "GET b",
        "SELECT 0",
        "GET a",
        "GET b",
        "DBSIZE",
        "SWAPDB 0 0",
        "SWAPDB a 1",
        "SWAPDB 1 a",
        "SWAPDB 0 16",
        "SWAPDB -1 0",
        "SWAPDB 99999999999999999999 0",
        "SWAPDB 0",
        "SWAPDB 15 0",
        "DBSIZE",
    ],
    "copy": [
        "SET a 1",
        "COPY a b",
        "GET b",
        "COPY a b",
        "COPY a b REPLACE",
        "COPY a a",
        "COPY a a DB 0",
        "COPY a a DB 1",
        "COPY a a REPLACE DB 2 REPLACE",
        "SELECT 1",
        "GET a",
        "SELECT 0",
        "COPY a b DB 16",
        "COPY a b DB x",
        "COPY a b foo",
        "COPY a b DB",
        "COPY nokey x",
        "RPUSH l 1 2",
        "COPY l l2",
        "RPUSH l2 3",
        "LRANGE l 0 -1",
        "LRANGE l2 0 -1",
        "HSET h f v",
        "COPY h h2 DB 2",
        "HSET h f w",
        "SELECT 2",
        "HGET h2 f",
        "SELECT 0",
        "SADD s m",
        "COPY s s3",
        "SADD s3 n",
        "SCARD s",
        "SET e v EX 100",
        "COPY e e2",
        "TTL e2",
        "SET x y",
        "COPY e x DB 0",
        "GET x",
    ],
    "flush": [
        "SET a 1",
        "SELECT 1",
        "SET b 2",
        "FLUSHDB",
        "DBSIZE",
        "SELECT 0",
        "DBSIZE",
        "SELECT 1",
        "SET b 2",
        "FLUSHDB ASYNC",
        "FLUSHDB SYNC",
        "FLUSHDB x",
        "FLUSHDB SYNC ASYNC",
        "SET b 2",
        "FLUSHALL ASYNC",
        "DBSIZE",
        "SELECT 0",
        "DBSIZE",
        "FLUSHALL SYNC",
        "FLUSHALL x",
    ],
    "multi": [
        "MULTI",
        "SELECT 1",
        "SET a 1",
        "SELECT 2",
        "SET b 2",
        "EXEC",
        "GET b",
        "GET a",
        "SELECT 1",
        "GET a",
        "MULTI",
        "SELECT 99",
        "SET c 1",
        "EXEC",
        "GET c",
        "MULTI",
        "SELECT 0",
        "EXEC",
        "GET a",
    ],
    "config": [
        "CONFIG GET databases",
        "CONFIG SET databases 4",
        "CONFIG GET databases",
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_replies_as_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    same_replies(redis_port, kv_port, CASES[name], resp3)


def _keyspace(r: Raw) -> str:
    text = hiredis_text(r.call("INFO", "keyspace"))
    return re.sub(r"avg_ttl=\d+", "avg_ttl=N", text).strip()


def hiredis_text(reply: bytes) -> str:
    return reply.split(b"\r\n", 1)[1].decode()


def test_info_keyspace_lists_each_non_empty_db(redis_port: int, kv_port: int) -> None:
    seen = []
    for port in (redis_port, kv_port):
        r = Raw(port)
        r.call("FLUSHALL")
        r.call("SET", "a", "1")
        r.call("SELECT", "3")
        r.call("SET", "b", "1", "EX", "100")
        r.call("SET", "c", "1")
        r.call("SELECT", "15")
        r.call("SET", "d", "1")
        seen.append(_keyspace(r))
        r.call("FLUSHALL")
        assert _keyspace(r) == "# Keyspace"
        r.close()
    assert seen[1] == seen[0]
    assert "db3:keys=2,expires=1,avg_ttl=N" in seen[1]


def test_client_list_shows_the_selected_db(kv_port: int, redis_port: int) -> None:
    for port in (redis_port, kv_port):
        r = redis.Redis(port=port, db=7)
        line = r.client_info()
        assert line["db"] == 7, port
        r.close()


def _watch_story(port: int) -> list[object]:
    """WATCH is per (db, key): what changes another db's key leaves the transaction alone."""
    a = redis.Redis(port=port, db=1)
    b = redis.Redis(port=port, db=0)
    b1 = redis.Redis(port=port, db=1)
    a.flushall()
    out: list[object] = []

    def attempt(change: object) -> None:
        with a.pipeline() as p:
            p.watch("k")
            change()  # type: ignore[operator]
            p.multi()
            p.set("done", 1)
            try:
                out.append(p.execute())
            except redis.WatchError:
                out.append("aborted")

    attempt(lambda: b.set("k", 1))  # db 0's k: not the watched key
    attempt(lambda: b1.set("k", 1))  # db 1's k: aborts
    attempt(lambda: b.move("k", 1) if b.set("k", 2) else None)  # MOVE into db 1 fails (exists)
    attempt(lambda: b1.move("k", 2))  # moved out of db 1: a change
    attempt(lambda: b.execute_command("SWAPDB", 1, 2))  # k exists in db 2: a change
    attempt(lambda: b.execute_command("FLUSHDB"))  # db 0 flushed: not db 1
    attempt(lambda: b.flushall())  # everything: a change
    b1.sadd("src", "m")
    b1.sadd("k", "m")
    attempt(lambda: b1.smove("src", "k", "m"))  # k already holds m: unchanged
    b1.sadd("src", "n")
    attempt(lambda: b1.smove("src", "k", "n"))  # k gets n: a change
    attempt(lambda: b1.copy("k", "k", destination_db=3))  # another db's k
    attempt(lambda: b.copy("other", "k", destination_db=1) if b.set("other", 1) else None)
    for c in (a, b, b1):
        c.flushall()
        c.close()
    return out


def test_watch_is_per_db_and_key_as_in_redis(redis_port: int, kv_port: int) -> None:
    want = _watch_story(redis_port)
    assert _watch_story(kv_port) == want
    assert want.count("aborted") == 5  # the story tells something


# -- the append-only file ---------------------------------------------------------------


def _cfg(path: Path, **extra: object) -> dict:
    return {"services": {"kv": {"type": "kv", "port": 0, "data": str(path), **extra}}}


def _dump(r: redis.Redis, dbs: int = 16) -> dict[int, dict[bytes, object]]:
    out: dict[int, dict[bytes, object]] = {}
    for db in range(dbs):
        r.execute_command("SELECT", db)
        keys = sorted(r.keys("*"))
        if keys:
            out[db] = {k: (r.type(k), r.dump_value(k) if False else _value(r, k)) for k in keys}
    r.execute_command("SELECT", 0)
    return out


def _value(r: redis.Redis, k: bytes) -> object:
    t = r.type(k)
    if t == b"string":
        return r.get(k)
    if t == b"list":
        return r.lrange(k, 0, -1)
    if t == b"hash":
        return r.hgetall(k)
    return sorted(r.smembers(k))


def _fill(r: redis.Redis) -> None:
    r.set("zero", "0")
    r.execute_command("SELECT", 3)
    r.set("a", "3")
    r.set("t", "x", ex=1000)
    r.rpush("l", "1", "2")
    r.execute_command("SELECT", 15)
    r.hset("h", "f", "v")
    r.sadd("s", "m")
    r.set("gone", "1")
    r.execute_command("MOVE", "gone", "4")
    r.execute_command("SELECT", 5)
    r.set("x", "5")
    r.execute_command("SWAPDB", "5", "6")
    r.set("x-in-5", "y")
    r.execute_command("SELECT", 7)
    r.set("flushed", "1")
    r.execute_command("FLUSHDB")
    r.execute_command("COPY", "nokey", "x")
    r.execute_command("SELECT", 0)


def test_databases_survive_restart_and_rewrite(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"), single_connection_client=True)
        _fill(r)
        before = _dump(r)
        r.close()
    assert sorted(before) == [0, 3, 4, 5, 6, 15] and before[6] == {b"x": (b"string", b"5")}
    cmds, _, _, _ = read_records(aof)
    selects = [c[1] for c in cmds if c[0].upper() == b"SELECT"]
    # a SELECT only where the db changes
    assert all(x != y for x, y in zip(selects, selects[1:], strict=False))
    assert selects[0] == b"3"
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"), single_connection_client=True)
        assert _dump(r) == before
        assert 990 < r.execute_command("SELECT", 3) and r.ttl("t") or True
        r.execute_command("SELECT", 3)
        assert 990 < r.ttl("t") <= 1000
        r.execute_command("SELECT", 0)
        r.save()  # the rewrite writes each db back
        r.execute_command("SELECT", 9)
        r.set("after", "rewrite")  # appended after the rewrite: needs its SELECT
        r.close()
    cmds, _, _, _ = read_records(aof)
    assert [c[1] for c in cmds if c[0] == b"SELECT"] == [b"3", b"4", b"5", b"6", b"15", b"9"]
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"), single_connection_client=True)
        after = _dump(r)
        assert after.pop(9) == {b"after": (b"string", b"rewrite")}
        assert after == before
        r.close()


def test_select_out_of_range_in_the_file_is_one_line_for_check_and_startup(
    tmp_path: Path,
) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(b"*2\r\n$6\r\nSELECT\r\n$2\r\n99\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n")
    with pytest.raises(AOFError) as started:
        KVServer(Settings(data=aof), Clock())
    assert "record 1 (SELECT) fails: ERR DB index is out of range" in str(started.value)
    checked = check(configmod.ServiceConfig(name="kv", type="kv", options={"data": aof}))
    assert checked == [f"data: {started.value}"]
    # with 100 databases the same file loads, for check and for startup
    options = {"data": aof, "databases": 100}
    before = aof.read_bytes()
    assert check(configmod.ServiceConfig(name="kv", type="kv", options=options)) == []
    assert aof.read_bytes() == before  # check replays it, never opens it for writing
    server = KVServer(Settings(data=aof, databases=100), Clock())
    assert server.dbs[99].data == {b"a": b"1"}
    server.stopFactory()
    # and a huge index is the integer error, not a crash
    aof.write_bytes(b"*2\r\n$6\r\nSELECT\r\n$20\r\n99999999999999999999\r\n")
    with pytest.raises(AOFError, match="value is not an integer or out of range"):
        KVServer(Settings(data=aof), Clock())


def test_databases_option_is_checked_and_shown(tmp_path: Path) -> None:
    with suite_running({"services": {"kv": {"type": "kv", "port": 0, "databases": 2}}}) as s:
        r = redis.Redis(port=s.port("kv"))
        assert r.config_get("databases") == {"databases": "2"}
        with pytest.raises(redis.ResponseError, match="DB index is out of range"):
            r.execute_command("SELECT", 2)
        r.close()
    from portsuite_services.kv import _databases

    assert _databases(0) and _databases(10**9) and _databases(16) is None
