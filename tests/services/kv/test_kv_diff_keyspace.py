"""
COPY OBJECT DUMP RESTORE LOLWUT LMPOP HRANDFIELD SSCAN on kv and on redis-server 7,
side by side (RESP2 and RESP3), and DUMP payloads carried from one to the other.
"""

from __future__ import annotations

import random

import pytest
import redis
from kvx_diff import compare

CASES = {
    "copy": [
        "SET a 1",
        "EXPIRE a 1000",
        "COPY a b",
        "TTL b",
        "COPY a b",
        "SET a 2",
        "COPY a b REPLACE",
        "GET b",
        "COPY a a",
        "COPY nope b",
        "RPUSH l x y",
        "COPY l l2",
        "RPUSH l2 z",
        "LRANGE l 0 -1",
        "LRANGE l2 0 -1",
        "HSET h f v",
        "COPY h h2",
        "HSET h2 g w",
        "HLEN h",
        "SADD s m",
        "COPY s s2",
        "SADD s2 n",
        "SCARD s",
        "XADD x 1-1 f v",
        "XGROUP CREATE x g 0",
        "XREADGROUP GROUP g c STREAMS x >",
        "COPY x x2",
        "XADD x2 2-1 f v",
        "XLEN x",
        "XINFO GROUPS x2",
        "COPY a b FOO",
        "COPY a b DB",
        "COPY a b DB x",
        "COPY a",
    ],
    "object": [
        "SET i 12345",
        "SET e hello",
        "SET r 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        "SET neg -9223372036854775808",
        "SET big 9223372036854775808",
        "OBJECT ENCODING i",
        "OBJECT ENCODING e",
        "OBJECT ENCODING r",
        "OBJECT ENCODING neg",
        "OBJECT ENCODING big",
        "OBJECT ENCODING nope",
        "RPUSH l a b",
        "OBJECT ENCODING l",
        "HSET h f v",
        "OBJECT ENCODING h",
        "SADD s 1 2 3",
        "OBJECT ENCODING s",
        "SADD s x",
        "OBJECT ENCODING s",
        "XADD x 1-1 f v",
        "OBJECT ENCODING x",
        "OBJECT REFCOUNT i",
        "OBJECT REFCOUNT e",
        "SET small 5",
        "OBJECT REFCOUNT small",
        "OBJECT REFCOUNT nope",
        "OBJECT FREQ e",
        "OBJECT FREQ nope",
        "OBJECT IDLETIME nope",
        "OBJECT FOO e",
        "OBJECT ENCODING",
        "OBJECT",
        "OBJECT HELP",
        "TYPE x",
        "TYPE h",
        "TYPE nope",
    ],
    # hash-max-listpack-entries is 512 in Redis 7.0 (its redis.conf example says 128):
    # a hash of 200 fields is a listpack, which HSCAN returns whole
    "encoding-hash": [
        "HSET h200 f0 v f1 v f2 v f3 v f4 v f5 v f6 v f7 v f8 v f9 v f10 v f11 v f12 v f13 v f14 v f15 v f16 v f17 v f18 v f19 v f20 v f21 v f22 v f23 v f24 v f25 v f26 v f27 v f28 v f29 v f30 v f31 v f32 v f33 v f34 v f35 v f36 v f37 v f38 v f39 v f40 v f41 v f42 v f43 v f44 v f45 v f46 v f47 v f48 v f49 v f50 v f51 v f52 v f53 v f54 v f55 v f56 v f57 v f58 v f59 v f60 v f61 v f62 v f63 v f64 v f65 v f66 v f67 v f68 v f69 v f70 v f71 v f72 v f73 v f74 v f75 v f76 v f77 v f78 v f79 v f80 v f81 v f82 v f83 v f84 v f85 v f86 v f87 v f88 v f89 v f90 v f91 v f92 v f93 v f94 v f95 v f96 v f97 v f98 v f99 v f100 v f101 v f102 v f103 v f104 v f105 v f106 v f107 v f108 v f109 v f110 v f111 v f112 v f113 v f114 v f115 v f116 v f117 v f118 v f119 v f120 v f121 v f122 v f123 v f124 v f125 v f126 v f127 v f128 v f129 v f130 v f131 v f132 v f133 v f134 v f135 v f136 v f137 v f138 v f139 v f140 v f141 v f142 v f143 v f144 v f145 v f146 v f147 v f148 v f149 v f150 v f151 v f152 v f153 v f154 v f155 v f156 v f157 v f158 v f159 v f160 v f161 v f162 v f163 v f164 v f165 v f166 v f167 v f168 v f169 v f170 v f171 v f172 v f173 v f174 v f175 v f176 v f177 v f178 v f179 v f180 v f181 v f182 v f183 v f184 v f185 v f186 v f187 v f188 v f189 v f190 v f191 v f192 v f193 v f194 v f195 v f196 v f197 v f198 v f199 v",
        "OBJECT ENCODING h200",
        "HSCAN h200 0 COUNT 10",
        "HSET h600 f0 v f1 v f2 v f3 v f4 v f5 v f6 v f7 v f8 v f9 v f10 v f11 v f12 v f13 v f14 v f15 v f16 v f17 v f18 v f19 v f20 v f21 v f22 v f23 v f24 v f25 v f26 v f27 v f28 v f29 v f30 v f31 v f32 v f33 v f34 v f35 v f36 v f37 v f38 v f39 v f40 v f41 v f42 v f43 v f44 v f45 v f46 v f47 v f48 v f49 v f50 v f51 v f52 v f53 v f54 v f55 v f56 v f57 v f58 v f59 v f60 v f61 v f62 v f63 v f64 v f65 v f66 v f67 v f68 v f69 v f70 v f71 v f72 v f73 v f74 v f75 v f76 v f77 v f78 v f79 v f80 v f81 v f82 v f83 v f84 v f85 v f86 v f87 v f88 v f89 v f90 v f91 v f92 v f93 v f94 v f95 v f96 v f97 v f98 v f99 v f100 v f101 v f102 v f103 v f104 v f105 v f106 v f107 v f108 v f109 v f110 v f111 v f112 v f113 v f114 v f115 v f116 v f117 v f118 v f119 v f120 v f121 v f122 v f123 v f124 v f125 v f126 v f127 v f128 v f129 v f130 v f131 v f132 v f133 v f134 v f135 v f136 v f137 v f138 v f139 v f140 v f141 v f142 v f143 v f144 v f145 v f146 v f147 v f148 v f149 v f150 v f151 v f152 v f153 v f154 v f155 v f156 v f157 v f158 v f159 v f160 v f161 v f162 v f163 v f164 v f165 v f166 v f167 v f168 v f169 v f170 v f171 v f172 v f173 v f174 v f175 v f176 v f177 v f178 v f179 v f180 v f181 v f182 v f183 v f184 v f185 v f186 v f187 v f188 v f189 v f190 v f191 v f192 v f193 v f194 v f195 v f196 v f197 v f198 v f199 v f200 v f201 v f202 v f203 v f204 v f205 v f206 v f207 v f208 v f209 v f210 v f211 v f212 v f213 v f214 v f215 v f216 v f217 v f218 v f219 v f220 v f221 v f222 v f223 v f224 v f225 v f226 v f227 v f228 v f229 v f230 v f231 v f232 v f233 v f234 v f235 v f236 v f237 v f238 v f239 v f240 v f241 v f242 v f243 v f244 v f245 v f246 v f247 v f248 v f249 v f250 v f251 v f252 v f253 v f254 v f255 v f256 v f257 v f258 v f259 v f260 v f261 v f262 v f263 v f264 v f265 v f266 v f267 v f268 v f269 v f270 v f271 v f272 v f273 v f274 v f275 v f276 v f277 v f278 v f279 v f280 v f281 v f282 v f283 v f284 v f285 v f286 v f287 v f288 v f289 v f290 v f291 v f292 v f293 v f294 v f295 v f296 v f297 v f298 v f299 v f300 v f301 v f302 v f303 v f304 v f305 v f306 v f307 v f308 v f309 v f310 v f311 v f312 v f313 v f314 v f315 v f316 v f317 v f318 v f319 v f320 v f321 v f322 v f323 v f324 v f325 v f326 v f327 v f328 v f329 v f330 v f331 v f332 v f333 v f334 v f335 v f336 v f337 v f338 v f339 v f340 v f341 v f342 v f343 v f344 v f345 v f346 v f347 v f348 v f349 v f350 v f351 v f352 v f353 v f354 v f355 v f356 v f357 v f358 v f359 v f360 v f361 v f362 v f363 v f364 v f365 v f366 v f367 v f368 v f369 v f370 v f371 v f372 v f373 v f374 v f375 v f376 v f377 v f378 v f379 v f380 v f381 v f382 v f383 v f384 v f385 v f386 v f387 v f388 v f389 v f390 v f391 v f392 v f393 v f394 v f395 v f396 v f397 v f398 v f399 v f400 v f401 v f402 v f403 v f404 v f405 v f406 v f407 v f408 v f409 v f410 v f411 v f412 v f413 v f414 v f415 v f416 v f417 v f418 v f419 v f420 v f421 v f422 v f423 v f424 v f425 v f426 v f427 v f428 v f429 v f430 v f431 v f432 v f433 v f434 v f435 v f436 v f437 v f438 v f439 v f440 v f441 v f442 v f443 v f444 v f445 v f446 v f447 v f448 v f449 v f450 v f451 v f452 v f453 v f454 v f455 v f456 v f457 v f458 v f459 v f460 v f461 v f462 v f463 v f464 v f465 v f466 v f467 v f468 v f469 v f470 v f471 v f472 v f473 v f474 v f475 v f476 v f477 v f478 v f479 v f480 v f481 v f482 v f483 v f484 v f485 v f486 v f487 v f488 v f489 v f490 v f491 v f492 v f493 v f494 v f495 v f496 v f497 v f498 v f499 v f500 v f501 v f502 v f503 v f504 v f505 v f506 v f507 v f508 v f509 v f510 v f511 v f512 v f513 v f514 v f515 v f516 v f517 v f518 v f519 v f520 v f521 v f522 v f523 v f524 v f525 v f526 v f527 v f528 v f529 v f530 v f531 v f532 v f533 v f534 v f535 v f536 v f537 v f538 v f539 v f540 v f541 v f542 v f543 v f544 v f545 v f546 v f547 v f548 v f549 v f550 v f551 v f552 v f553 v f554 v f555 v f556 v f557 v f558 v f559 v f560 v f561 v f562 v f563 v f564 v f565 v f566 v f567 v f568 v f569 v f570 v f571 v f572 v f573 v f574 v f575 v f576 v f577 v f578 v f579 v f580 v f581 v f582 v f583 v f584 v f585 v f586 v f587 v f588 v f589 v f590 v f591 v f592 v f593 v f594 v f595 v f596 v f597 v f598 v f599 v",
        "OBJECT ENCODING h600",
        "HSET long f 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        "OBJECT ENCODING long",
        "CONFIG SET hash-max-listpack-entries 100",
        "HSET h2 f0 v f1 v f2 v f3 v f4 v f5 v f6 v f7 v f8 v f9 v f10 v f11 v f12 v f13 v f14 v f15 v f16 v f17 v f18 v f19 v f20 v f21 v f22 v f23 v f24 v f25 v f26 v f27 v f28 v f29 v f30 v f31 v f32 v f33 v f34 v f35 v f36 v f37 v f38 v f39 v f40 v f41 v f42 v f43 v f44 v f45 v f46 v f47 v f48 v f49 v f50 v f51 v f52 v f53 v f54 v f55 v f56 v f57 v f58 v f59 v f60 v f61 v f62 v f63 v f64 v f65 v f66 v f67 v f68 v f69 v f70 v f71 v f72 v f73 v f74 v f75 v f76 v f77 v f78 v f79 v f80 v f81 v f82 v f83 v f84 v f85 v f86 v f87 v f88 v f89 v f90 v f91 v f92 v f93 v f94 v f95 v f96 v f97 v f98 v f99 v f100 v f101 v f102 v f103 v f104 v f105 v f106 v f107 v f108 v f109 v f110 v f111 v f112 v f113 v f114 v f115 v f116 v f117 v f118 v f119 v f120 v f121 v f122 v f123 v f124 v f125 v f126 v f127 v f128 v f129 v f130 v f131 v f132 v f133 v f134 v f135 v f136 v f137 v f138 v f139 v f140 v f141 v f142 v f143 v f144 v f145 v f146 v f147 v f148 v f149 v f150 v f151 v f152 v f153 v f154 v f155 v f156 v f157 v f158 v f159 v f160 v f161 v f162 v f163 v f164 v f165 v f166 v f167 v f168 v f169 v f170 v f171 v f172 v f173 v f174 v f175 v f176 v f177 v f178 v f179 v f180 v f181 v f182 v f183 v f184 v f185 v f186 v f187 v f188 v f189 v f190 v f191 v f192 v f193 v f194 v f195 v f196 v f197 v f198 v f199 v",
        "OBJECT ENCODING h2",
        "CONFIG SET hash-max-ziplist-value 100",
        "HSET long2 f 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        "OBJECT ENCODING long2",
        "CONFIG SET hash-max-listpack-entries 512 hash-max-listpack-value 64",
    ],
    # strings changed in place are "raw" whatever their length; a new value is not
    "encoding-raw": [
        "SET a 12",
        "APPEND a 3",
        "OBJECT ENCODING a",
        "APPEND n hello",
        "OBJECT ENCODING n",
        "APPEND n2 123",
        "OBJECT ENCODING n2",
        "SET e x",
        "APPEND e ''",
        "OBJECT ENCODING e",
        "SETRANGE sr 0 ab",
        "OBJECT ENCODING sr",
        "SET big 123",
        "SETRANGE big 0 ''",
        "OBJECT ENCODING big",
        "SETRANGE big 1 x",
        "OBJECT ENCODING big",
        "SETBIT sb 1 1",
        "OBJECT ENCODING sb",
        "BITOP OR bo sb",
        "OBJECT ENCODING bo",
        "BITFIELD bf SET u8 0 1",
        "OBJECT ENCODING bf",
        "PFADD p a",
        "OBJECT ENCODING p",
        "INCRBYFLOAT f 1.5",
        "OBJECT ENCODING f",
        "RENAME a a2",
        "OBJECT ENCODING a2",
        "COPY a2 cp",
        "OBJECT ENCODING cp",
        "MOVE a2 1",
        "SELECT 1",
        "OBJECT ENCODING a2",
        "SELECT 0",
        "SET n hello",
        "OBJECT ENCODING n",
        "SET h2 5",
        "APPEND h2 ''",
        "INCR h2",
        "OBJECT ENCODING h2",
        "SET x abc",
        "APPEND x d",
        "PEXPIRE x 1",
        "DEBUG SLEEP 0.01",
        "SET x abc",
        "OBJECT ENCODING x",
        "SETRANGE y 0 abc",
        "GETDEL y",
        "SET y abc",
        "OBJECT ENCODING y",
    ],
    "restore": [
        "SET a hello",
        "RESTORE a 0 x",
        "RESTORE b 0 x",
        "RESTORE b -1 x",
        "RESTORE b abc x",
        "RESTORE b 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n'",
        "GET b",
        "RESTORE b 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n'",
        "RESTORE b 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' REPLACE",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\x00'",
        "RESTORE c 0 '\\x00\\x05hello\\x0b\\x00cr\\xdfve4 \\n'",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' IDLETIME -1",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' FREQ 256",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' IDLETIME 1 FREQ 1",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' FOO",
        "RESTORE c 0 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' IDLETIME 1000",
        "OBJECT IDLETIME c",
        "RESTORE d 1 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n' ABSTTL",
        "EXISTS d",
        "RESTORE d 100000 '\\x00\\x05hello\\n\\x00cr\\xdfve4 \\n'",
        "PTTL d",
        "DUMP a",
        "DUMP nope",
        "DUMP",
    ],
    "lmpop": [
        "RPUSH a 1 2 3",
        "RPUSH b x",
        "LMPOP 2 nope a LEFT",
        "LMPOP 2 nope a RIGHT COUNT 5",
        "EXISTS a",
        "LMPOP 2 a b LEFT COUNT 1",
        "LMPOP 1 a LEFT",
        "LMPOP 0 a LEFT",
        "LMPOP -1 a LEFT",
        "LMPOP x a LEFT",
        "LMPOP 3 a b LEFT",
        "LMPOP 1 a MIDDLE",
        "LMPOP 1 a LEFT COUNT 0",
        "LMPOP 1 a LEFT COUNT -1",
        "LMPOP 1 a LEFT COUNT 1 COUNT 1",
        "LMPOP 1 a LEFT FOO",
        "SET s x",
        "LMPOP 1 s LEFT",
        "LMPOP 2 nope s LEFT",
    ],
    "hrandfield": [
        "HSET h a 1",
        "HRANDFIELD h",
        "HRANDFIELD h 1",
        "HRANDFIELD h 5",
        "HRANDFIELD h -3",
        "HRANDFIELD h -2 WITHVALUES",
        "HRANDFIELD h 1 WITHVALUES",
        "HRANDFIELD h 0",
        "HRANDFIELD h x",
        "HRANDFIELD h 1 FOO",
        "HRANDFIELD h 1 WITHVALUES x",
        "HRANDFIELD h -9223372036854775808",
        "HRANDFIELD h -9223372036854775807 WITHVALUES",
        "HRANDFIELD nope",
        "HRANDFIELD nope 3",
        "SET s x",
        "HRANDFIELD s",
    ],
    "sscan": [
        "SADD s 1 2 3 10 20",
        "SSCAN s 0",
        "SSCAN s 0 MATCH 1*",
        "SSCAN s 0 COUNT 1",
        "SSCAN s 0 COUNT 0",
        "SSCAN s x",
        "SSCAN s 0 FOO",
        "SSCAN nope 0",
        "SMISMEMBER s 1 9 2",
        "SINTERCARD 1 s",
        "SINTERCARD 1 s LIMIT 2",
        "SET str x",
        "SSCAN str 0",
    ],
    "lolwut": [
        "LOLWUT VERSION x",
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_keyspace_like_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    compare(redis_port, kv_port, CASES[name], resp3)


def _fill(r: redis.Redis) -> None:
    r.set("s_short", "hello")
    r.set("s_int", "-12345")
    r.set("s_lzf", "ab" * 30000)  # redis-server compresses it (LZF)
    r.rpush("l_small", "a", "1", "-5", "300000")
    r.rpush("l_big", *[f"elem{i}" * 3 for i in range(2000)], "x" * 20000)
    r.sadd("set_int", 1, 2, -70000, 2**40)
    r.sadd("set_str", "a", "b", "c")
    r.hset("h_small", mapping={"a": "1", "b": "xyz"})
    r.hset("h_big", mapping={f"f{i}": "v" * 70 for i in range(300)})


def _value(r: redis.Redis, key: str) -> object:
    t = r.type(key)
    if t == b"string":
        return r.get(key)
    if t == b"list":
        return r.lrange(key, 0, -1)
    if t == b"set":
        return sorted(r.smembers(key))
    return sorted(r.hgetall(key).items())


def test_dump_payloads_cross_over(redis_port: int, kv_port: int) -> None:
    """A DUMP from redis-server RESTOREs in kv (every encoding), and the other way round."""
    kv, ref = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (kv, ref):
        r.flushall()
        _fill(r)
    keys = ["s_short", "s_int", "s_lzf", "l_small", "l_big", "set_int", "set_str"]
    keys += ["h_small", "h_big"]
    for src, dst in ((ref, kv), (kv, ref)):
        for key in keys:
            dst.restore(f"copy_{key}", 0, src.dump(key), replace=True)
            assert _value(dst, f"copy_{key}") == _value(src, key), key
    assert kv.dump("s_short") == ref.dump("s_short")


def _stream(r: redis.Redis, key: str) -> object:
    """What a client sees of a stream: entries, its counters, groups, pending entries."""
    info = r.xinfo_stream(key)
    counters = [
        info[k] for k in ("length", "last-generated-id", "max-deleted-entry-id", "entries-added")
    ]
    groups = [(g["name"], g["last-delivered-id"], g["entries-read"]) for g in r.xinfo_groups(key)]
    pending = [
        (g[0], [(p["message_id"], p["consumer"], p["times_delivered"]) for p in pel])
        for g in groups
        if (pel := r.xpending_range(key, g[0], "-", "+", 1000))
    ]
    consumers = [
        sorted((c["name"], c["pending"]) for c in r.xinfo_consumers(key, g[0])) for g in groups
    ]
    return r.xrange(key), counters, groups, pending, consumers


def _fill_stream(r: redis.Redis) -> None:
    """Entries of every listpack encoding, over several nodes; groups with pending entries."""
    rnd = random.Random(3)
    ms = 1000
    for i in range(400):
        ms += rnd.choice([0, 0, 1, 5, 100000])
        fields = {}
        for _ in range(rnd.choice([1, 2, 2, 3])):
            f = rnd.choice(["f", "a", "name", "123", "-5", "x" * 70])
            fields[f] = rnd.choice(
                ["v", "1", "-1", "300", "70000", "9999999999", "-42"]
                + ["y" * rnd.choice([1, 63, 64, 200, 5000])]
            )
        r.xadd("x", fields, id=f"{ms}-{i}")
    r.xgroup_create("x", "g1", id="0")
    r.xgroup_create("x", "7", id="$")  # (a name Redis writes as an integer)
    r.xreadgroup("g1", "alice", {"x": ">"}, count=7)
    r.xreadgroup("g1", "bob", {"x": ">"}, count=3)
    r.xdel("x", *[e[0] for e in r.xrange("x", count=6)][1::2])


def test_stream_dump_payloads_cross_over(redis_port: int, kv_port: int) -> None:
    """A stream's DUMP from redis-server RESTOREs in kv, and the other way round."""
    kv, ref = redis.Redis(port=kv_port), redis.Redis(port=redis_port)
    for r in (kv, ref):
        r.flushall()
        _fill_stream(r)
    assert _stream(kv, "x") == _stream(ref, "x")
    for src, dst in ((ref, kv), (kv, ref)):
        dst.restore("copy", 0, src.dump("x"), replace=True)
        assert _stream(dst, "copy") == _stream(src, "x")
    # a small stream (no LZF) is written byte for byte as redis-server writes it
    for r in (kv, ref):
        r.xadd("small", {"f": "v", "a": "b"}, id="1-1")
        r.xadd("small", {"f": "w", "a": "12"}, id="1-2")
        r.xadd("small", {"g": "-3"}, id="2-0")
        r.xgroup_create("small", "grp", id="$")
    assert kv.dump("small") == ref.dump("small")


def test_garbled_stream_payloads_are_refused(kv_port: int) -> None:
    """Any byte of a stream's payload changed (its CRC made right): an error, or a stream."""
    from portsuite_services.kv import rdb

    kv = redis.Redis(port=kv_port)
    kv.flushall()
    kv.xadd("x", {"f": "v", "a": "1"}, id="1-1")
    kv.xadd("x", {"g": "w" * 100}, id="5-7")
    kv.xgroup_create("x", "g", id="0")
    kv.xreadgroup("g", "c", {"x": ">"}, count=1)
    body = kv.dump("x")[:-8]
    rnd = random.Random(5)
    refused = 0
    for _ in range(300):
        garbled = bytearray(body)
        for _ in range(rnd.choice([1, 2])):
            garbled[rnd.randrange(1, len(body) - 2)] = rnd.randrange(256)
        payload = bytes(garbled) + rdb.crc64(bytes(garbled)).to_bytes(8, "little")
        try:
            kv.restore("y", 0, payload, replace=True)
        except redis.ResponseError as e:
            assert "Bad data format" in str(e)
            refused += 1
            continue
        kv.xrange("y")  # a stream it reads back
        kv.xinfo_stream("y")
    assert refused > 100 and kv.ping()
