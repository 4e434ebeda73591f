"""
HyperLogLog, BITOP/BITPOS/BITFIELD/LCS on kv and on redis-server 7, side by side
(RESP2 and RESP3), then randomized comparisons and the exchange of HLL strings.
"""

from __future__ import annotations

import random

import pytest
import redis
from kvx_diff import compare

CASES = {
    "hll": [
        "PFADD h a b c",
        "PFADD h a",
        "PFADD h",
        "PFADD new",
        "PFCOUNT new",
        "GET h",
        "PFCOUNT h",
        "GET h",
        "PFCOUNT h h",
        "PFCOUNT h nope",
        "PFCOUNT nope",
        "PFADD h2 c d e f",
        "PFMERGE m h h2",
        "PFCOUNT m",
        "GET m",
        "PFMERGE m",
        "PFMERGE m2 nope",
        "PFCOUNT m2",
        "EXISTS m2",
        "SET str hello",
        "PFADD str x",
        "PFCOUNT str",
        "PFMERGE m str",
        "SET int 12345",
        "PFCOUNT int",
        "SET fake HYLLxxxxxxxxxxxxxxxx",
        "PFCOUNT fake",
        "PFADD fake x",
        "SET fake2 HYLL",
        "PFCOUNT fake2",
        "LPUSH l x",
        "PFADD l x",
        "PFCOUNT l",
        "PFMERGE l h",
        "PFMERGE h l",
        "TYPE h",
        "PFADD",
        "PFCOUNT",
    ],
    "bitop": [
        "SET a foobar",
        "SET b abcdef",
        "SET c x",
        "BITOP AND d a b",
        "GET d",
        "BITOP OR d a b c",
        "GET d",
        "BITOP XOR d a b c",
        "GET d",
        "BITOP NOT d a",
        "GET d",
        "BITOP NOT d a b",
        "BITOP NOT d",
        "BITOP FOO d a",
        "BITOP AND d nope",
        "EXISTS d",
        "BITOP AND d a nope",
        "GET d",
        "SET e ''",
        "BITOP NOT d e",
        "EXISTS d",
        "LPUSH l x",
        "BITOP OR d a l",
        "BITOP and d a a",
    ],
    "bitpos": [
        "SET a '\\xff\\xf0\\x00'",
        "BITPOS a 0",
        "BITPOS a 1",
        "BITPOS a 1 2",
        "BITPOS a 0 0 0",
        "BITPOS a 0 0 -1",
        "BITPOS a 1 0 -1 BIT",
        "BITPOS a 0 3 10 BIT",
        "BITPOS a 0 0 7 BIT",
        "BITPOS a 1 100",
        "BITPOS a 2",
        "BITPOS a x",
        "BITPOS a 1 x",
        "BITPOS a 1 0 x",
        "BITPOS a 1 0 1 FOO",
        "BITPOS a 1 0 1 BIT extra",
        "BITPOS nope 0",
        "BITPOS nope 1",
        "SET full '\\xff\\xff'",
        "BITPOS full 0",
        "BITPOS full 0 0 -1",
        "SET empty ''",
        "BITPOS empty 0",
        "BITPOS empty 1",
        "LPUSH l x",
        "BITPOS l 1",
        "BITCOUNT a 0 -1 BIT",
        "BITCOUNT a 1 1 BYTE",
        "BITCOUNT a 0 -1 FOO",
        "BITCOUNT a 0",
    ],
    "bitfield": [
        "BITFIELD b SET u8 0 255",
        "BITFIELD b GET u8 0 GET u4 0 GET i4 0 GET i8 0",
        "BITFIELD b INCRBY u2 100 1 OVERFLOW SAT INCRBY u2 102 1",
        "BITFIELD b OVERFLOW FAIL INCRBY u8 0 1",
        "BITFIELD b OVERFLOW WRAP INCRBY i8 0 200",
        "BITFIELD b SET i64 0 -1 GET u63 0 GET i64 0",
        "BITFIELD b SET u64 0 1",
        "BITFIELD b SET i65 0 1",
        "BITFIELD b SET u0 0 1",
        "BITFIELD b SET x8 0 1",
        "BITFIELD b GET u8 #2",
        "BITFIELD b SET u8 #2 7 GET u8 16",
        "BITFIELD b GET u8 -1",
        "BITFIELD b GET u8 #-1",
        "BITFIELD b GET u8 4294967296",
        "BITFIELD b GET u8 4294967288",
        "BITFIELD b GET u8 x",
        "BITFIELD b SET u8 0 x",
        "BITFIELD b OVERFLOW FOO",
        "BITFIELD b FOO",
        "BITFIELD b GET u8",
        "BITFIELD b",
        "BITFIELD nope GET u8 0",
        "EXISTS nope",
        "BITFIELD_RO b GET u8 0",
        "BITFIELD_RO b SET u8 0 1",
        "BITFIELD_RO b INCRBY u8 0 1",
        "BITFIELD_RO nope GET i8 0",
        "LPUSH l x",
        "BITFIELD l GET u8 0",
        "BITFIELD new OVERFLOW FAIL INCRBY u8 80 300",
        "STRLEN new",
        "GET b",
    ],
    "lcs": [
        "MSET a ohmytext b mynewtext",
        "LCS a b",
        "LCS a b LEN",
        "LCS a b IDX",
        "LCS a b IDX MINMATCHLEN 4",
        "LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN",
        "LCS a b IDX WITHMATCHLEN",
        "LCS a b IDX MINMATCHLEN -1",
        "LCS a b IDX LEN",
        "LCS a b FOO",
        "LCS a b MINMATCHLEN",
        "LCS a b MINMATCHLEN x",
        "LCS a nope",
        "LCS nope nope IDX",
        "LPUSH l x",
        "LCS a l",
        "LCS a",
    ],
    "bitbounds": [
        "SETBIT big 4294967296 1",
        "SETBIT big -1 1",
        "SETBIT big 0 2",
        "GETBIT big 4294967296",
        "BITFIELD big SET u8 4294967296 1",
        "BITFIELD big SET u8 #536870912 1",
        "SETRANGE big 536870912 x",
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_bits_like_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    compare(redis_port, kv_port, CASES[name], resp3)


def _both(redis_port: int, kv_port: int) -> tuple[redis.Redis, redis.Redis]:
    a, b = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (a, b):
        r.flushall()
    return a, b


def test_hll_counts_equal_redis_and_strings_cross_over(redis_port: int, kv_port: int) -> None:
    """Same elements, same strings and counts (a few thousand); each reads the other's."""
    kv, ref = _both(redis_port, kv_port)
    rng = random.Random(1)
    elements = [rng.randbytes(rng.randint(0, 24)) for _ in range(4000)]
    for n in (1, 7, 150, 1000, 4000):
        for r in (kv, ref):
            r.pfadd(f"h{n}", *elements[:n])
        assert kv.get(f"h{n}") == ref.get(f"h{n}")  # sparse, then dense: Redis's bytes
        assert kv.pfcount(f"h{n}") == ref.pfcount(f"h{n}")
    assert kv.pfcount("h7", "h1000") == ref.pfcount("h7", "h1000")
    for r in (kv, ref):
        r.pfmerge("m", "h7", "h150", "h4000")
    assert kv.pfcount("m") == ref.pfcount("m")
    assert kv.get("m") == ref.get("m")
    # kv's dense string in redis-server, and redis-server's sparse and dense ones in kv
    ref.set("from_kv", kv.get("h1000"))
    assert ref.pfcount("from_kv") == kv.pfcount("h1000")
    for key in ("h150", "h4000"):
        kv.set("from_redis", ref.get(key))
        assert kv.pfcount("from_redis") == ref.pfcount(key)
        assert kv.pfadd("from_redis", b"one more") == ref.pfadd(key, b"one more")
        assert kv.pfcount("from_redis") == ref.pfcount(key)


def test_corrupt_hll_is_an_error_like_redis(redis_port: int, kv_port: int) -> None:
    kv, ref = _both(redis_port, kv_port)
    ref.pfadd("h", "a", "b", "c")
    sparse = ref.get("h")
    kv.pfadd("d", "a")
    dense = kv.get("d")
    bad = [
        sparse[:16] + b"\x7f",  # cut inside an XZERO
        sparse[:16] + b"\xff" * 40,  # runs past 16384 registers
        sparse[:16],  # no registers at all
        dense[:-1],  # dense one byte short
        b"HYLL\x02" + sparse[5:],  # unknown encoding
    ]
    for payload in bad:
        for r in (kv, ref):
            r.set("bad", payload)
        for cmd in (("PFCOUNT", "bad"), ("PFADD", "bad", "zz"), ("PFMERGE", "out", "bad")):
            got = want = None
            try:
                want = ref.execute_command(*cmd)
            except redis.ResponseError as e:
                want = str(e)
            try:
                got = kv.execute_command(*cmd)
            except redis.ResponseError as e:
                got = str(e)
            if cmd[0] == "PFADD" and isinstance(want, int):
                continue  # redis-server may repair a sparse tail while adding
            assert got == want, (payload[:20], cmd)


def test_random_bit_commands_match_redis(redis_port: int, kv_port: int) -> None:
    kv, ref = _both(redis_port, kv_port)
    rng = random.Random(7)

    def run(*cmd: object) -> object:
        out = []
        for r in (kv, ref):
            try:
                out.append(r.execute_command(*cmd))
            except redis.ResponseError as e:
                out.append(str(e))
        assert out[0] == out[1], cmd
        return out[0]

    for _ in range(400):
        x = rng.randbytes(rng.randint(0, 6))
        for r in (kv, ref):
            r.set("x", x)
        ops: list[str] = []
        for _k in range(rng.randint(1, 4)):
            kind = rng.choice(["GET", "SET", "INCRBY", "OVERFLOW"])
            if kind == "OVERFLOW":
                ops += ["OVERFLOW", rng.choice(["WRAP", "SAT", "FAIL"])]
                continue
            typ = rng.choice("iu") + str(rng.randint(1, 64))
            off = str(rng.randint(0, 70)) if rng.random() < 0.7 else f"#{rng.randint(0, 5)}"
            ops += [kind, typ, off]
            if kind != "GET":
                big = rng.randint(-(2**63), 2**63 - 1)
                ops.append(str(rng.choice([rng.randint(-300, 300), big])))
        run("BITFIELD", "x", *ops)
        assert kv.get("x") == ref.get("x")
        bit = rng.randint(0, 1)
        args = [str(bit)] + [str(rng.randint(-60, 60)) for _ in range(rng.randint(0, 2))]
        if len(args) == 3 and rng.random() < 0.6:
            args.append(rng.choice(["BIT", "BYTE"]))
        run("BITPOS", "x", *args)
    for _ in range(150):
        a = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 40)))
        b = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 40)))
        for r in (kv, ref):
            r.mset({"a": a, "b": b})
        for extra in ([], ["LEN"], ["IDX", "WITHMATCHLEN"], ["IDX", "MINMATCHLEN", "2"]):
            run("LCS", "a", "b", *extra)
