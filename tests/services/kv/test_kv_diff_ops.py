"""
The server and connection side of Redis 7 (ACL, CLIENT, MONITOR, sharded pub/sub,
SLOWLOG, MEMORY, LATENCY, CONFIG, COMMAND GETKEYS, FUNCTION/SCRIPT…), side by side
with redis-server, byte for byte in RESP2 and RESP3; then hostile clients.
"""

from __future__ import annotations

import re
import shlex
import socket
import threading
import time
from pathlib import Path

import hiredis
import pytest
import redis
from kv_raw import Raw
from kvdb_help import same_replies

from portsuite import api as configmod
from portsuite import loader
from portsuite.testing import suite_running

CASES = {
    "acl": [
        "ACL SETUSER u1 foo",
        "ACL SETUSER u1 +@nosuch",
        "ACL SETUSER u1 +nosuch",
        "ACL SETUSER u1 <nopw",
        "ACL SETUSER u1 #abc",
        "ACL SETUSER u1 !abc",
        "ACL SETUSER u1 %X~a",
        "ACL SETUSER u1 +config|get|x",
        "ACL SETUSER u1 on >p ~a* &ch +get +config|get -@dangerous",
        "ACL DRYRUN u1 get b",
        "ACL DRYRUN u1 get a",
        "ACL DRYRUN u1 set a b",
        "ACL DRYRUN u1 publish x y",
        "ACL DRYRUN u1 publish ch y",
        "ACL DRYRUN u1 config get x",
        "ACL DRYRUN u1 config set x y",
        "ACL DRYRUN nouser get a",
        "ACL DRYRUN u1 nocmd",
        "ACL DRYRUN u1 get",
        "ACL GENPASS 0",
        "ACL GENPASS 5000",
        "ACL GENPASS x",
        "ACL WHOAMI",
        "ACL DELUSER default",
        "ACL SETUSER 'a b'",
        "ACL LOG x",
        "ACL LOG RESET",
        "ACL GETUSER nouser",
        "ACL SETUSER u2 reset",
        "ACL GETUSER u2",
        "ACL SETUSER u3 allkeys allchannels allcommands on nopass",
        "ACL GETUSER u3",
        "ACL SETUSER u4 %R~r* %W~w* ~b* resetchannels &x",
        "ACL GETUSER u4",
        "ACL SETUSER u4 allkeys %R~x",
        "ACL DELUSER nouser u1 u2 u3 u4",
        "ACL USERS",
        "ACL LIST",
        "ACL CAT nosuch",
        "ACL CAT",
        "ACL NOSUCH",
        "ACL LOAD",
        "AUTH nouser pw",
    ],
    "client": [
        "CLIENT PAUSE x",
        "CLIENT PAUSE -1",
        "CLIENT PAUSE 10 foo",
        "CLIENT PAUSE 10 write x",
        "CLIENT PAUSE 1e18",
        "CLIENT UNPAUSE",
        "CLIENT UNBLOCK x",
        "CLIENT UNBLOCK 1 foo",
        "CLIENT UNBLOCK 1 timeout x",
        "CLIENT UNBLOCK 999999",
        "CLIENT KILL 1.2.3.4:5",
        "CLIENT KILL id 0",
        "CLIENT KILL id x",
        "CLIENT KILL type x",
        "CLIENT KILL user nou",
        "CLIENT KILL skipme x",
        "CLIENT KILL foo bar",
        "CLIENT KILL id 1 x",
        "CLIENT KILL maxage x",
        "CLIENT KILL id 999999",
        "CLIENT KILL type master",
        "CLIENT REPLY x",
        "CLIENT NO-EVICT x",
        "CLIENT NO-EVICT on",
        "CLIENT NO-EVICT off",
        "CLIENT TRACKING x",
        "CLIENT TRACKING off",
        "CLIENT CACHING yes",
        "CLIENT TRACKINGINFO",
        "CLIENT GETREDIR",
    ],
    "server": [
        "CONFIG SET hz garbage",
        "CONFIG SET maxmemory garbage",
        "CONFIG SET maxmemory 100mb",
        "CONFIG GET maxmemory",
        "CONFIG SET maxmemory 0",
        "CONFIG SET daemonize yes",
        "CONFIG SET loglevel x",
        "CONFIG SET maxmemory-policy ALLKEYS-LRU",
        "CONFIG GET maxmemory-policy",
        "CONFIG SET maxmemory-policy noeviction",
        "CONFIG SET timeout 1 timeout 2",
        "CONFIG SET timeout",
        "CONFIG SET lazyfree-lazy-eviction maybe",
        "CONFIG SET save garbage",
        "CONFIG SET client-output-buffer-limit garbage",
        "CONFIG SET hash-max-listpack-entries -1",
        "CONFIG SET hash-max-listpack-entries 256 zset-max-listpack-entries 64",
        "CONFIG GET hash-max-listpack-entries",
        "CONFIG SET hash-max-listpack-entries 512 zset-max-listpack-entries 128",
        "CONFIG SET nosuch 1",
        "CONFIG GET",
        "CONFIG GET nosuch*",
        "SLOWLOG GET x",
        "SLOWLOG GET -2",
        "SLOWLOG NOSUCH",
        "LATENCY LATEST",
        "LATENCY HISTORY command",
        "LATENCY RESET",
        "LATENCY GRAPH command",
        "LATENCY DOCTOR",
        "MEMORY USAGE nokey",
        "MEMORY USAGE nokey SAMPLES x",
        "MEMORY PURGE",
        "ROLE",
        "REPLICAOF NO ONE",
        "REPLICAOF NO",
        "SLAVEOF NO ONE",
        "WAIT 0 0",
        "WAIT x 0",
        "FUNCTION LIST",
        "FUNCTION STATS",
        "FUNCTION FLUSH",
        "FUNCTION FLUSH x",
        "FUNCTION DUMP",
        "FUNCTION RESTORE xx",
        "SCRIPT EXISTS a b",
        "SCRIPT FLUSH",
        "SCRIPT FLUSH x",
        "SCRIPT KILL",
        "EVALSHA aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 0",
        "EVALSHA aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa -1",
        "EVAL 'return 1' 5",
        "FCALL f 0",
        "FCALL f x",
        "DEBUG SLEEP 0",
        "DEBUG JMAP",
        "COMMAND GETKEYS MSET a b c d",
        "COMMAND GETKEYS EVAL x 2 k1 k2 a",
        "COMMAND GETKEYS ping",
        "COMMAND GETKEYS nosuch a",
        "COMMAND GETKEYS get",
        "COMMAND GETKEYS get a",
        "COMMAND GETKEYS XREAD COUNT 2 STREAMS a b 0 0",
        "COMMAND GETKEYS ZUNIONSTORE d 2 a b",
        "COMMAND GETKEYS SET k v",
        "COMMAND GETKEYSANDFLAGS LMOVE a b left left",
        "COMMAND GETKEYSANDFLAGS SET k v",
        "COMMAND LIST FILTERBY pattern zzz*",
        "COMMAND LIST FILTERBY module nosuch",
        "COMMAND LIST FILTERBY nosuch x",
        "BGSAVE x",
        "MULTI",
        "SAVE",
        "DISCARD",
    ],
    "help": [
        *(
            f"{c} HELP"
            for c in (
                *("CLIENT", "SLOWLOG", "MEMORY", "LATENCY", "OBJECT", "ACL", "XGROUP", "XINFO"),
                *("CONFIG", "PUBSUB", "COMMAND", "FUNCTION", "SCRIPT"),
            )
        ),
        "PUBSUB HELP x",
        "CLIENT HELP x",
        "SLOWLOG help x",
    ],
    "sharded pub/sub": [
        "SPUBLISH ch m",
        "SPUBLISH ch",
        "PUBSUB SHARDCHANNELS",
        "PUBSUB SHARDNUMSUB a b",
        "SUNSUBSCRIBE",
    ],
}


def _run(raw: Raw, line: str) -> bytes:
    return raw.call(*shlex.split(line))


def _norm(line: str, reply: bytes) -> object:
    """Replies whose order or content legitimately differ are compared by shape."""
    if line.startswith(
        ("ACL CAT", "COMMAND GETKEYSANDFLAGS", "CONFIG GET")
    ) and not reply.startswith(b"-"):
        r = hiredis.Reader()
        r.feed(reply)
        v = r.gets()
        if isinstance(v, list) and line.startswith("CONFIG GET"):
            return sorted(zip(v[::2], v[1::2], strict=True))
        return sorted(map(repr, v)) if isinstance(v, list) else v
    return reply


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_same_replies_as_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    same_replies(redis_port, kv_port, CASES[name], resp3, _norm)


def test_memory_doctor_as_a_fresh_redis(fresh_redis_port: int, kv_port: int) -> None:
    # (Redis's report depends on its allocator's history, peak and RSS, which the
    # session's reference accumulates over the big loads of other tests: compared
    # with a redis-server that has seen nothing)
    same_replies(fresh_redis_port, kv_port, ["MEMORY DOCTOR"], False, _norm)


def _push_sequence(port: int, resp3: bool) -> list[bytes]:
    """Sharded subscriptions with the channel counts Redis 7.0 gives (shard ones apart)."""
    raw = Raw(port, resp3)
    pub = Raw(port)
    out = []
    try:
        out.append(raw.call("SUNSUBSCRIBE"))
        out.append(raw.call("SUBSCRIBE", "c"))
        out.append(raw.call("SSUBSCRIBE", "a", "b"))
        out.append(raw.reply())
        out.append(raw.call("PSUBSCRIBE", "p*"))
        out.append(raw.call("SSUBSCRIBE", "a"))
        if not resp3:
            out.append(raw.call("GET", "x"))
        out.append(pub.call("SPUBLISH", "a", "hello"))
        out.append(raw.reply())
        out.append(pub.call("PUBLISH", "a", "not-shard"))
        out.append(pub.call("PUBSUB", "SHARDNUMSUB", "a", "b", "zz"))
        out.append(raw.call("SUNSUBSCRIBE", "a", "zz"))
        out.append(raw.reply())
        out.append(raw.call("SUNSUBSCRIBE"))
        out.append(raw.call("PING"))
    finally:
        raw.close()
        pub.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_sharded_pubsub_pushes_match_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    assert _push_sequence(kv_port, resp3) == _push_sequence(redis_port, resp3)


def _acl_user_session(port: int, resp3: bool) -> list[bytes]:
    admin = Raw(port)
    out = []
    try:
        out.append(
            admin.call(
                "ACL",
                "SETUSER",
                "kvops",
                "reset",
                "on",
                ">pw",
                "+get",
                "+subscribe",
                "+multi",
                "+exec",
                "~k*",
                "&news",
            )
        )
        user = Raw(port, resp3)
        try:
            for line in [
                "AUTH kvops wrong",
                "AUTH kvops pw",
                "ACL WHOAMI",
                "GET k1",
                "GET z",
                "SET k1 v",
                "PUBLISH news x",
                "MULTI",
                "GET z",
                "GET k",
                "EXEC",
                "SUBSCRIBE other",
                "SUBSCRIBE news",
            ]:
                out.append(_run(user, line))
            out.append(admin.call("ACL", "SETUSER", "kvops", "+set"))
            out.append(_run(user, "PING"))
        finally:
            user.close()
        admin.call("ACL", "DELUSER", "kvops")
        out.append(_run(admin, "ACL GETUSER kvops"))
    finally:
        admin.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_restricted_user_gets_noperm_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    assert _acl_user_session(kv_port, resp3) == _acl_user_session(redis_port, resp3)


def test_acl_log_and_deleted_user_with_redis_py(kv_port: int) -> None:
    """What redis-py sees: NoPermissionError, ACL LOG entries, clients of a deleted user gone."""
    admin = redis.Redis(port=kv_port)
    admin.acl_setuser(
        "logme", enabled=True, reset=True, nopass=True, commands=["+get"], keys=["cache:*"]
    )
    admin.acl_log_reset()
    user = redis.Redis(port=kv_port, username="logme", password="x")
    assert user.get("cache:1") is None
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.get("other")
    with pytest.raises(redis.exceptions.NoPermissionError):
        user.set("cache:1", "v")
    log = admin.acl_log()
    assert [e["reason"] for e in log][:2] == ["command", "key"]  # (then CLIENT SETINFO's)
    assert log[0]["username"] == "logme" and log[0]["client-info"]["user"] == "logme"
    assert any(c["user"] == "logme" for c in admin.client_list())
    assert admin.acl_deluser("logme") == 1
    assert not any(c["user"] == "logme" for c in admin.client_list())
    user.close()


def test_client_kill_itself_answers_then_closes(redis_port: int, kv_port: int) -> None:
    for port in (redis_port, kv_port):
        raw = Raw(port)
        cid = raw.call("CLIENT", "ID")[1:-2]
        raw.send(b"CLIENT KILL ID %s SKIPME no\r\nPING\r\n" % cid)
        assert raw.rest() == b":1\r\n", port


def test_client_reply_off_skip_on(kv_port: int, redis_port: int) -> None:
    def session(port: int) -> bytes:
        raw = Raw(port)
        raw.send(
            b"CLIENT REPLY OFF\r\nSET a 1\r\nGET a\r\nCLIENT REPLY SKIP\r\nGET a\r\n"
            b"CLIENT REPLY ON\r\nCLIENT REPLY SKIP\r\nECHO skipped\r\nECHO shown\r\n"
        )
        return raw.rest(1.0)

    assert session(kv_port) == session(redis_port) == b"+OK\r\n$5\r\nshown\r\n<open>"


def test_client_pause_write_holds_writes_until_unpause(kv_port: int) -> None:
    admin = redis.Redis(port=kv_port)
    other = redis.Redis(port=kv_port, socket_timeout=30)
    # a pause of 10^18 ms is accepted (Redis does); writes wait, reads go on
    assert admin.client_pause(10**18, all=False)
    try:
        assert other.get("paused-key") is None
        done: list[object] = []
        t = threading.Thread(target=lambda: done.append(other.set("paused-key", "v")))
        t.start()
        time.sleep(0.5)
        assert done == [] and admin.get("paused-key") is None
    finally:
        admin.client_unpause()
    t.join(20)
    assert done == [True] and admin.get("paused-key") == b"v"
    admin.delete("paused-key")


def test_client_pause_ends_on_its_own(kv_port: int) -> None:
    admin = redis.Redis(port=kv_port)
    other = redis.Redis(port=kv_port, socket_timeout=30)
    start = time.monotonic()
    assert admin.client_pause(300, all=True)
    assert other.set("pause-ends", "1")
    assert time.monotonic() - start >= 0.25  # (generous: only a lower bound)
    admin.delete("pause-ends")


MONITOR_LINE = re.compile(rb"^\+\d{10}\.\d{6} \[0 127\.0\.0\.1:\d+\] (.*)\r$")


def test_monitor_lines_as_redis(kv_port: int, redis_port: int) -> None:
    def watch(port: int) -> list[bytes]:
        mon = Raw(port)
        assert mon.call("MONITOR") == b"+OK\r\n"
        cl = Raw(port)
        cl.call("SET", "k", 'a "q"\n\x01')
        cl.call("AUTH", "nobody", "secret")
        cl.call("HELLO", "2", "AUTH", "default", "secret")
        cl.call("CONFIG", "GET", "timeout")  # admin: not shown
        cl.call("GET", "k")
        mon.sock.settimeout(5)
        data = b""
        while data.count(b"\n") < 4:
            data += mon.sock.recv(65536)
        mon.close()
        cl.close()
        return [MONITOR_LINE.match(line + b"\r").group(1) for line in data.split(b"\r\n")[:4]]  # type: ignore[union-attr]

    assert (
        watch(kv_port)
        == watch(redis_port)
        == [
            b'"SET" "k" "a \\"q\\"\\n\\x01"',
            b'"AUTH" "(redacted)" "(redacted)"',
            b'"HELLO" "2" "AUTH" "(redacted)" "(redacted)"',
            b'"GET" "k"',
        ]
    )


def test_slowlog_records_requests(kv_port: int) -> None:
    r = redis.Redis(port=kv_port)
    old = r.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    assert old in ("10000", b"10000")
    try:
        r.config_set("slowlog-log-slower-than", 0)
        r.slowlog_reset()
        r.get("x" * 200)
        entries = r.slowlog_get()
        commands = [e["command"] for e in entries]
        assert b"GET " + b"x" * 128 + b"... (72 more bytes)" in commands
        assert r.slowlog_len() >= 2
    finally:
        r.config_set("slowlog-log-slower-than", old)
    r.slowlog_reset()
    r.get("y")
    assert r.slowlog_len() <= 1  # only SLOWLOG RESET's request can be that slow


def test_memory_usage_grows_with_the_value(kv_port: int) -> None:
    r = redis.Redis(port=kv_port)
    r.set("small", "x")
    r.set("big", "x" * 100_000)
    r.rpush("list", *range(1000))
    small, big, lst = (
        r.memory_usage("small"),
        r.memory_usage("big"),
        r.memory_usage("list", samples=0),
    )
    assert 0 < small < 200 < 100_000 <= big < 101_000
    assert lst > 1000 * 8
    assert isinstance(r.memory_stats()["keys.count"], int)
    r.delete("small", "big", "list")


def test_info_has_the_sections_clients_read(kv_port: int) -> None:
    r = redis.Redis(port=kv_port)
    info = r.info("everything")
    for key in (
        "redis_version",
        "connected_clients",
        "used_memory",
        "aof_enabled",
        "total_commands_processed",
        "role",
        "used_cpu_sys",
        "cluster_enabled",
    ):
        assert key in info, key
    assert info["used_memory"] > 1_000_000
    text = Raw(kv_port).call("INFO", "everything").decode()
    for section in ("# Commandstats", "# Latencystats", "# Errorstats", "# Modules"):
        assert section in text


# -- configuration ---------------------------------------------------------------


def test_acl_option_users_log_in(tmp_path: Path) -> None:
    config = {
        "services": {
            "kv": {
                "type": "kv",
                "port": 0,
                "acl": [
                    "user app on >apppw ~app:* &app.* +@all -@dangerous",
                    "user ro on >ropw ~* +@read",
                ],
            }
        }
    }
    with suite_running(config, base_dir=tmp_path) as s:
        port = s.port("kv")
        app = redis.Redis(port=port, username="app", password="apppw")
        assert app.set("app:1", "v") and app.get("app:1") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError, match="keys"):
            app.set("other", "v")
        with pytest.raises(redis.exceptions.NoPermissionError, match="'flushall' command"):
            app.flushall()
        ro = redis.Redis(port=port, username="ro", password="ropw")
        assert ro.get("app:1") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError):
            ro.set("app:1", "w")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, username="ro", password="bad").ping()
        assert redis.Redis(port=port).ping()  # the default user as before


def test_check_names_each_bad_acl_line(tmp_path: Path) -> None:
    config = {
        "services": {
            "kv": {
                "type": "kv",
                "port": 0,
                "password": "s3cret",
                "acl": [
                    "user ok on >pw +@all",
                    "alice on",
                    "user bob +nosuch",
                    "user default >other",
                ],
            }
        }
    }
    with pytest.raises(configmod.ConfigError) as e:
        loader.from_dict(config, base_dir=tmp_path)
    errors = [x for x in e.value.errors if "acl" in x]
    assert len(errors) == 3, e.value.errors
    assert "acl[1]" in errors[0] and "must start with 'user NAME'" in errors[0]
    assert "acl[2]" in errors[1] and "'+nosuch': Unknown command" in errors[1]
    assert "acl[3]" in errors[2] and "password" in errors[2]
    assert all("[services.kv]" in x for x in errors)


# -- hostile clients ---------------------------------------------------------------


def test_setuser_with_100k_rules_is_bounded(kv_port: int) -> None:
    raw = Raw(kv_port)
    rules = [b"~key:%d" % i for i in range(50_000)] + [b"+@read", b"-@write"] * 25_000
    start = time.monotonic()
    assert raw.call(b"ACL", b"SETUSER", b"huge", *rules) == b"+OK\r\n"
    other = Raw(kv_port)
    assert other.call("PING") == b"+PONG\r\n"
    assert time.monotonic() - start < 30
    getuser = raw.call("ACL", "GETUSER", "huge")
    assert b"-@all +@read -@write" in getuser  # repeated rules are kept once
    assert raw.call("ACL", "DELUSER", "huge") == b":1\r\n"
    raw.close()
    other.close()


def test_monitor_that_never_reads_is_disconnected(tmp_path: Path) -> None:
    config = {
        "services": {"kv": {"type": "kv", "port": 0, "client_output_buffer_limit": 1_000_000}}
    }
    with suite_running(config, base_dir=tmp_path) as s:
        port = s.port("kv")
        mon = socket.create_connection(("127.0.0.1", port), timeout=10)
        mon.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        mon.sendall(b"MONITOR\r\n")
        time.sleep(0.3)
        busy = redis.Redis(port=port)
        value = "v" * 1000
        for _ in range(40):  # some 40 MB of monitor lines, never read
            with busy.pipeline(transaction=False) as p:
                for i in range(1000):
                    p.set(f"k{i}", value)
                p.execute()
            if not any(
                "flags=O" in c.get("flags", "") or c.get("flags") == "O" for c in busy.client_list()
            ):
                break
        assert all(c.get("flags") != "O" for c in busy.client_list())
        assert busy.ping()
        mon.close()


def test_acl_user_named_after_an_account_uses_its_password(tmp_path: Path) -> None:
    config = {
        "users": {"alice": "wonderland"},
        "services": {"kv": {"type": "kv", "port": 0, "acl": ["user alice on ~* +@read"]}},
    }
    with suite_running(config, base_dir=tmp_path) as s:
        port = s.port("kv")
        alice = redis.Redis(port=port, username="alice", password="wonderland")
        assert alice.get("x") is None
        with pytest.raises(redis.exceptions.NoPermissionError):
            alice.set("x", "1")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, username="alice", password="other").ping()
