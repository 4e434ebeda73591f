"""Real clients against portsuite's kv: redis-py (RESP2 and RESP3), redis-cli, telnet style."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis
from kv_raw import Raw

from portsuite.testing import need


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py(kv_port: int, protocol: int) -> None:
    r = redis.Redis(port=kv_port, protocol=protocol, decode_responses=True)
    r.flushall()
    assert r.ping() is True
    assert r.set("greeting", "hello", ex=100) is True
    assert r.get("greeting") == "hello"
    assert 0 < r.ttl("greeting") <= 100
    assert r.incrbyfloat("n", 1.5) == 1.5
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hgetall("h") == {"a": "1", "b": "2"}
    assert r.sadd("s", "x", "y") == 2
    assert r.smembers("s") == {"x", "y"}
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lrange("l", 0, -1) == ["a", "b", "c"]
    assert sorted(r.scan_iter("*")) == ["greeting", "h", "l", "n", "s"]
    assert r.info()["redis_version"].startswith("7.")
    assert r.client_getname() is None
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.lpush("greeting", "x")
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.set(f"k{i}", i)
    pipe.get("k42")
    assert pipe.execute()[-1] == "42"


@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub_one_publisher_many_subscribers(kv_port: int, protocol: int) -> None:
    subs = [redis.Redis(port=kv_port, protocol=protocol).pubsub() for _ in range(3)]
    for p in subs:
        p.subscribe("news")
        assert p.get_message(timeout=2)["type"] == "subscribe"
    assert redis.Redis(port=kv_port).publish("news", "hi") == 3
    for p in subs:
        msg = p.get_message(timeout=2)
        assert msg["type"] == "message" and msg["data"] == b"hi"
        p.close()


def test_redis_cli(kv_port: int) -> None:
    cli = need("redis-cli")
    run = subprocess.run(
        [cli, "-p", str(kv_port)],
        input="SET cli 'two words'\nGET cli\nLPUSH cli x\nDBSIZE\n",
        capture_output=True,
        text=True,
        timeout=20,
    )
    lines = run.stdout.splitlines()
    assert lines[0] == "OK"
    assert lines[1] == "two words"
    assert lines[2].startswith("WRONGTYPE") or lines[2].startswith("(error) WRONGTYPE")
    one = subprocess.run(
        [cli, "-p", str(kv_port), "--no-raw", "GET", "cli"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert one.stdout.strip() == '"two words"'


def test_telnet_style_inline(kv_port: int) -> None:
    raw = Raw(kv_port)
    raw.send(b'SET t "tab\\there"\r\nGET t\r\n')
    time.sleep(0.2)
    assert raw.reply() == b"+OK\r\n"
    assert raw.reply() == b"$8\r\ntab\there\r\n"
    raw.close()


def test_big_values_and_long_pipelines(kv_port: int) -> None:
    """Requests split across many reads take the exact reader; nothing is lost."""
    r = redis.Redis(port=kv_port)
    big = bytes(range(256)) * 20_000  # 5 MB, with CRLFs and '*' inside
    assert r.set("big", big)
    assert r.get("big") == big
    assert r.append("big", b"\r\n") == len(big) + 2
    pipe = r.pipeline(transaction=False)
    for i in range(20_000):
        pipe.rpush("list", b"item-%d" % i)
    pipe.llen("list")
    assert pipe.execute()[-1] == 20_000
    assert r.lrange("list", -2, -1) == [b"item-19998", b"item-19999"]
    r.delete("big", "list")


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_transactions(kv_port: int, protocol: int) -> None:
    """redis-py's default pipeline is MULTI/EXEC; transaction() retries on WATCH."""
    r = redis.Redis(port=kv_port, protocol=protocol)
    r.delete("balance", "log")
    with r.pipeline() as pipe:
        pipe.set("balance", 100).incrby("balance", -30).rpush("log", "withdraw 30")
        assert pipe.execute() == [True, 70, 1]
    other = redis.Redis(port=kv_port, protocol=protocol)
    attempts = []

    def double(pipe: redis.client.Pipeline) -> None:
        value = int(pipe.get("balance"))
        attempts.append(value)
        if len(attempts) == 1:
            other.set("balance", 1)  # someone else writes between WATCH and EXEC
        pipe.multi()
        pipe.set("balance", value * 2)

    r.transaction(double, "balance")
    assert attempts == [70, 1]  # the first try was discarded, the retry saw the new value
    assert r.get("balance") == b"2"


def test_suite_counts_every_byte() -> None:
    """Replies written straight to the socket still show in the suite's counters."""
    from portsuite.testing import suite_running

    with suite_running({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        raw = Raw(s.port("kv"))
        sent = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        raw.send(sent)
        got = raw.reply() + raw.reply()
        assert got == b"+OK\r\n$5\r\nhello\r\n"
        svc = s.service("kv")
        assert (svc["bytes_in"], svc["bytes_out"]) == (len(sent), len(got))
        raw.close()
