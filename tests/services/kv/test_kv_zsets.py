"""
Sorted sets, geo and SORT through redis-py: what the byte-for-byte comparison cannot
check (random members, persistence across a restart and a compaction) and hostile
sizes (huge COUNT/LIMIT, big sets, huge radius) that must get a bounded answer fast.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kvdb_help import wait_compacted

from portsuite.testing import suite_running


def _cfg(path: Path) -> dict:
    return {"services": {"kv": {"type": "kv", "port": 0, "data": str(path)}}}


SCORES = {
    b"a": 1.1,
    b"b": -0.5,
    b"inf": math.inf,
    b"-inf": -math.inf,
    b"tiny": 1e-310,
    b"big": 1.7976931348623157e308,
    b"\x00bin\xff": 3.0,
    b"ts": 1349673917.939762,
}


def test_zsets_and_geo_survive_a_restart_and_a_compaction(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    many = {b"m%d" % i: i / 7 for i in range(300)}  # more than one ZADD batch
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:
        r = redis.Redis(port=s.port("kv"))
        r.zadd("z", SCORES)
        r.zadd("many", many)
        r.zincrby("z", 2.5, "a")
        r.zrem("many", "m0")
        r.geoadd("Sicily", (13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"))
        r.zunionstore("u", ["z", "many"])
        r.zpopmin("many")
        r.sort("many", by="nosort", start=0, num=3, store="sorted")
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:  # replayed as written
        r = redis.Redis(port=s.port("kv"))
        assert r.type("z") == b"zset"
        assert r.zscore("z", "a") == 1.1 + 2.5
        assert r.zscore("z", "tiny") == 1e-310 and r.zscore("z", "inf") == math.inf
        assert r.zcard("many") == 298 and r.zrange("many", 0, 0) == [b"m2"]
        assert r.lrange("sorted", 0, -1) == [b"m2", b"m3", b"m4"]
        before = {k: r.zrange(k, 0, -1, withscores=True) for k in (b"z", b"many", b"Sicily", b"u")}
        assert r.geodist("Sicily", "Palermo", "Catania") == 166274.1516
        assert r.bgrewriteaof()
        wait_compacted(r)
        text = aof.read_bytes()
        assert b"ZADD" in text and b"ZINCRBY" not in text and b"GEOADD" not in text
    with suite_running(_cfg(aof), base_dir=tmp_path) as s:  # the compacted file replayed
        r = redis.Redis(port=s.port("kv"))
        after = {k: r.zrange(k, 0, -1, withscores=True) for k in (b"z", b"many", b"Sicily", b"u")}
        assert after == before
        assert r.zscore("z", b"\x00bin\xff") == 3.0
        assert r.geopos("Sicily", "Palermo") == [(13.361389338970184, 38.1155563954963)]


@pytest.mark.parametrize("protocol", [2, 3])
def test_zrandmember_draws_members_of_the_set(protocol: int) -> None:
    with suite_running({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        r = redis.Redis(port=s.port("kv"), protocol=protocol)
        members = {b"m%d" % i: float(i) for i in range(20)}
        r.zadd("z", members)
        assert r.zrandmember("z") in members
        five = r.zrandmember("z", 5)
        assert len(five) == len(set(five)) == 5 and set(five) <= set(members)
        assert sorted(r.zrandmember("z", 100)) == sorted(members)  # at most all, no repeats
        repeated = r.zrandmember("z", -50)
        assert len(repeated) == 50 and set(repeated) <= set(members)
        pairs = r.zrandmember("z", -7, withscores=True)
        if protocol == 2:
            pairs = list(zip(pairs[::2], pairs[1::2], strict=True))
            pairs = [(m, float(v)) for m, v in pairs]
        assert len(pairs) == 7 and all(members[m] == float(v) for m, v in pairs)
        assert r.zrandmember("nokey") is None and r.zrandmember("nokey", 3) == []


def _echo_rtt(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        t = time.monotonic()
        s.sendall(b"ping\n")
        assert s.recv(5) == b"ping\n"
        return time.monotonic() - t


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A kv holding a 200,000-member sorted set, beside an echo service."""
    config = {"services": {"kv": {"type": "kv", "port": 0}, "echo": {"type": "echo", "port": 0}}}
    base = tmp_path_factory.mktemp("zhostile")
    with suite_running(config, subprocess=True, base_dir=base, timeout=60) as s:
        r = redis.Redis(port=s.port("kv"), socket_timeout=120)
        pipe = r.pipeline(transaction=False)
        for i in range(0, 200_000, 5000):
            pipe.zadd("big", {b"m%06d" % j: j for j in range(i, i + 5000)})
        pipe.execute()
        yield s


def test_small_windows_of_a_big_zset_answer_at_once(busy: object) -> None:
    r = redis.Redis(port=busy.port("kv"), socket_timeout=120)  # type: ignore[attr-defined]
    t = time.monotonic()
    assert r.zrangebyscore("big", "(150000", "+inf", start=0, num=3) == [
        b"m150001",
        b"m150002",
        b"m150003",
    ]
    assert r.zrange("big", 0, 2, desc=True) == [b"m199999", b"m199998", b"m199997"]
    assert r.zrangebylex("big", "[m199998", "+", start=0, num=9223372036854775807) == [
        b"m199998",
        b"m199999",
    ]
    assert r.zrange("big", 199_998, 9223372036854775807) == [b"m199998", b"m199999"]
    assert r.zcount("big", 1000, 100_999) == 100_000
    assert r.zrank("big", "m123456") == 123456
    assert r.sort("big", by="nosort", start=199_999, num=9223372036854775807) == [b"m199999"]
    assert r.geosearch("big", longitude=0, latitude=0, radius=1e308, unit="km", count=2)
    # 9 commands over 200,000 members: each is O(log N + reply), not O(N)
    assert time.monotonic() - t < 20
    assert _echo_rtt(busy.port("echo")) < 10  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args, error",
    [
        (("ZRANDMEMBER", "big", "-4611686018427387904"), "out of range"),
        (("ZRANDMEMBER", "big", "-9223372036854775808"), "out of range"),
        (("ZUNIONSTORE", "d", "2147483647", "big"), "syntax error"),
        (("ZINTERCARD", "99999999999", "big"), "syntax error"),
        (("ZMPOP", "9223372036854775807", "big", "MIN"), "syntax error"),
        (("ZADD", "big", "1e999", "x"), "not a valid float"),
        (("ZADD", "big", "nan", "x"), "not a valid float"),
        (("ZINCRBY", "inf", "-inf", "a"), None),
        (("ZRANGEBYSCORE", "big", "nan", "1"), "not a float"),
        (("GEOSEARCH", "big", "FROMLONLAT", "0", "0", "BYRADIUS", "-1", "m"), "negative"),
        (("GEORADIUS", "big", "0", "0", "1", "m", "COUNT", "-5"), "COUNT must be > 0"),
        (("SORT", "big", "LIMIT", "0", "99999999999999999999"), "not an integer"),
    ],
)
def test_hostile_sizes_and_numbers_get_an_error(
    busy: object, args: tuple, error: str | None
) -> None:
    r = redis.Redis(port=busy.port("kv"), socket_timeout=60)  # type: ignore[attr-defined]
    if error is None:  # inf + -inf: NaN refused, the set keeps its score
        r.zadd("inf", {"a": math.inf})
        with pytest.raises(redis.ResponseError, match="NaN"):
            r.execute_command(*args)
        assert r.zscore("inf", "a") == math.inf
        return
    with pytest.raises(redis.ResponseError, match=error):
        r.execute_command(*args)
    assert r.zcard("big") == 200_000  # unchanged, and the server still answers
