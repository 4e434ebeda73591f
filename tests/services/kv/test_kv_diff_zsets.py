"""
Sorted sets, geo and SORT: the same commands to redis-server 7 and to portsuite's kv,
replies compared byte for byte in RESP2 and RESP3 (errors, bad floats, edge ranges
included).
"""

from __future__ import annotations

import concurrent.futures
import random
import socket
import time

import hiredis
import pytest
import redis
from kv_raw import Raw
from kvdb_help import same_replies

CASES = {
    "blocking_zset_pops_served_at_once": [
        "ZADD z 1 a 2 b 3 c",
        "ZADD y 5 x",
        "BZPOPMIN z 0",
        "BZPOPMAX z 0",
        "BZPOPMIN nokey y 0",
        "BZPOPMIN z x",
        "BZPOPMIN z -1",
        "BZPOPMIN z",
        "SET str v",
        "BZPOPMIN str 0.01",
        "BZMPOP 0 2 nokey z MIN",
        "ZADD z 1 a 2 b 3 c",
        "BZMPOP 0 2 nokey z MAX COUNT 5",
        "BZMPOP x 1 z MIN",
        "BZMPOP 0.01 1 z FOO",
        "BZMPOP 0.01 0 z MIN",
        "BZMPOP 0.01 1 str MIN",
        "BZPOPMIN nokey 0.01",
        "BZMPOP 0.01 1 nokey MIN",
        "MULTI",
        "BZPOPMIN nokey 0",
        "BZMPOP 0 1 nokey MAX",
        "EXEC",
        "EXISTS z",
    ],
    "sort_by_and_get_hash_fields": [
        "RPUSH l a b c d",
        "HSET w_a k 3",
        "HSET w_b k 1",
        "HSET w_d k 2",
        "SET n_a 3",
        "SET n_b x",
        "SORT l BY w_*->k",
        "SORT l BY w_*->k DESC",
        "SORT l BY w_*->k ALPHA",
        "SORT l BY w_*->k ALPHA DESC",
        "SORT l BY w_*->k ALPHA STORE d",
        "LRANGE d 0 -1",
        "SORT l BY w_*->nofield",
        "SORT l BY n_*",
        "SORT l BY n_* ALPHA GET # GET n_* GET w_*->k",
        "SORT l BY w_*-> ALPHA",
        "SORT l BY nosort GET w_*->k GET n_*",
        "SORT l BY nosort GET w_*->k GET n_* STORE d",
        "LRANGE d 0 -1",
        "ZADD z 3 a 1 b 2 c",
        "SORT z BY w_*->k",
        "SORT z ALPHA DESC LIMIT 1 1",
        "SORT z BY nosort DESC",
        "SORT z BY nosort GET # GET n_* LIMIT 1 -1",
        "SADD s c a b",
        "SORT s ALPHA",
        "SORT s ALPHA STORE d",
        "LRANGE d 0 -1",
        "SORT s BY w_*->k GET #",
        "SORT l ASC DESC ALPHA",
        "SORT l LIMIT 0 1 LIMIT 2 1 ALPHA",
        "SORT l GET",
        "SORT l BY",
        "SORT l STORE",
        "HSET h f v",
        "SORT h",
        "SORT l GET #->f",
        "SORT_RO l BY w_*->k GET # STORE x",
    ],
    "zsets_numbers_and_bounds": [
        "ZADD f +5 a .5 b 5. c 1e5 d 0x1p3 e -0 z0 1E-5 g 0X1P-2 h",
        "ZADD f 1_0 x",
        "ZADD f 18446744073709551616 big",
        "ZADD f 0x x",
        "ZADD f 1e x",
        "ZADD f - x",
        "ZADD f + x",
        "ZADD f . x",
        "ZADD f infinit x",
        "ZADD f -Infinity ninf",
        "ZADD f 4.9e-324 den",
        "ZADD f 2.2250738585072014e-308 norm",
        "ZRANGE f 0 -1 WITHSCORES",
        "ZSCORE f z0",
        "ZINCRBY f 0 z0",
        "ZINCRBY f -0 z0",
        "ZSCORE f z0",
        "ZSCORE f big",
        "ZRANGEBYSCORE f ( +inf",
        "ZRANGEBYSCORE f (-inf (+inf",
        "ZRANGEBYSCORE f -INF +Inf",
        "ZRANGEBYSCORE f (5 5",
        "ZRANGEBYSCORE f 5 (5",
        "ZRANGEBYSCORE f 5 5",
        "ZRANGEBYSCORE f 0x5 0x10",
        'ZRANGEBYSCORE f "(1 " 5',
        'ZRANGEBYSCORE f " (1" 5',
        "ZRANGEBYSCORE f 1e999 +inf",
        "ZRANGEBYSCORE f -1e999 0",
        "ZRANGE f 0 -1 REV LIMIT 0 -1",
        "ZRANGE f (0 +inf BYSCORE LIMIT -1 5",
        "ZRANGE f - + BYLEX LIMIT -1 5",
        "ZRANGE f - + BYLEX LIMIT 2 -3",
        "ZRANGE f +inf -inf BYSCORE REV LIMIT 2 3 WITHSCORES",
        "ZRANGE f 0 -1 withscores REV",
        "ZRANGESTORE d f 0 -1 REV",
        "ZRANGE d 0 -1 WITHSCORES",
        "ZREVRANGEBYSCORE f 5 1 WITHSCORES",
        "ZREVRANGEBYSCORE f 1 5",
        "ZREMRANGEBYRANK f -3 -2",
        "ZREMRANGEBYRANK f 5 2",
        "ZREMRANGEBYSCORE f (0 (1",
        "ZRANGE f 0 -1 WITHSCORES",
        'ZADD g 0 "" 0 a 0 aa 0 b',
        "ZRANGEBYLEX g [ +",
        "ZRANGEBYLEX g ( +",
        "ZRANGEBYLEX g - [",
        "ZLEXCOUNT g [a [aa",
        "ZLEXCOUNT g (a (b",
        'ZRANK g ""',
        'ZMSCORE g "" nope',
        "ZPOPMAX g 2",
        "ZADD h 1 a",
        "ZPOPMIN h 1",
        "EXISTS h",
        "ZADD h 1 a 2 b",
        "ZMPOP 1 h MIN COUNT 99",
        "EXISTS h",
        "ZUNIONSTORE h 1 nokey",
        "ZINTER 2 g g WITHSCORES",
        "ZUNION 1 g WEIGHTS inf WITHSCORES",
        "ZUNION 1 g WEIGHTS -inf WITHSCORES",
        "ZADD p inf a -inf b 0 c",
        "ZUNION 1 p WEIGHTS 0 WITHSCORES",
        "ZUNION 1 p WEIGHTS -1 WITHSCORES",
        "ZINTER 2 p p WEIGHTS 1 -1 WITHSCORES",
        "ZINTER 3 p p p WEIGHTS 1 -1 1 WITHSCORES",
        "ZUNION 3 p p p WEIGHTS 1 -1 1 WITHSCORES",
        "ZINTER 2 p p AGGREGATE max WEIGHTS 0 1 WITHSCORES",
        "ZDIFF 2 p g WITHSCORES",
        "ZADD q 1 a 1 b 2 c",
        "ZUNIONSTORE q 2 q q",
        "ZRANGE q 0 -1 WITHSCORES",
        "ZINTERSTORE q 2 q q WEIGHTS 0.5 0.5",
        "ZRANGE q 0 -1 WITHSCORES",
    ],
    "zsets": [
        "ZADD z 1 a 2 b 3 c",
        "ZADD z 1.1 d -inf e +inf f 1e-310 g",
        "ZADD z nan x",
        "ZADD z 1e400 x",
        "ZADD z 1e-400 x",
        'ZADD z " 1" x',
        'ZADD z "1 " x',
        "ZADD z 0x10 hx",
        "ZADD z infinity inf2",
        "ZADD z INF inf3",
        "ZADD z abc x",
        'ZADD z "" x',
        "ZADD z 1",
        "ZADD z 1 a 2",
        "ZADD z NX XX 1 a",
        "ZADD z NX GT 1 a",
        "ZADD z GT LT 1 a",
        "ZADD z INCR 1 a 2 b",
        "ZADD z INCR 5 a",
        "ZADD z INCR inf e",
        "ZADD z CH 5 a 7 b 8 new",
        "ZADD z GT CH 1 a 100 b",
        "ZADD z LT CH 1 a 100 b",
        "ZADD z XX 1 nope",
        "ZADD z XX INCR 1 nope",
        "ZADD z NX INCR 1 a",
        "ZADD z GT INCR -1 a",
        "ZADD nokey XX 1 a",
        "EXISTS nokey",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZINCRBY z 2.5 a",
        "ZINCRBY z abc a",
        "ZINCRBY z inf f",
        "ZINCRBY z -inf f",
        "ZINCRBY newz 1 m",
        "ZINCRBY newz -inf m",
        "ZINCRBY newz inf m",
        "ZCARD z",
        "ZCARD nokey",
        "ZSCORE z a",
        "ZSCORE z nope",
        "ZSCORE nokey a",
        "ZMSCORE z a nope b",
        "ZMSCORE nokey a b",
        "ZMSCORE z",
        "ZRANK z a",
        "ZRANK z nope",
        "ZREVRANK z a",
        "ZRANK nokey a",
        "ZCOUNT z -inf +inf",
        "ZCOUNT z (1 3",
        "ZCOUNT z 1 (3",
        "ZCOUNT z (1 (1",
        "ZCOUNT z abc 1",
        'ZCOUNT z "" 10',
        "ZCOUNT z ( 10",
        "ZCOUNT z 1e400 -1e400",
        'ZCOUNT z " 1" 10',
        "ZCOUNT z nan 1",
        "ZCOUNT nokey 0 1",
        "SET str x",
        "ZADD str 1 a",
        "ZRANGE str 0 -1",
        "ZCARD str",
        "ZSCORE str a",
        "ZCOUNT str 0 1",
        "ZRANGE z 0 -1",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZRANGE z -2 -1 WITHSCORES",
        "ZRANGE z 5 2",
        "ZRANGE z 1 100",
        "ZRANGE z -100 100",
        "ZRANGE z 0 -1 REV",
        "ZRANGE z 0 -1 REV WITHSCORES",
        "ZRANGE z 0 1 LIMIT 0 1",
        "ZRANGE z 0 1 LIMIT 0 -1",
        "ZRANGE z 0 1 BYLEX WITHSCORES",
        "ZRANGE z (1 3 BYSCORE",
        "ZRANGE z 3 (1 BYSCORE REV",
        "ZRANGE z -inf +inf BYSCORE LIMIT 1 2 WITHSCORES",
        "ZRANGE z -inf +inf BYSCORE LIMIT -1 2",
        "ZRANGE z -inf +inf BYSCORE LIMIT 1 -5",
        "ZRANGE z -inf +inf BYSCORE LIMIT 1 0",
        "ZRANGE z +inf -inf BYSCORE REV LIMIT 1 2",
        "ZRANGE z 0 1 BYSCORE BYLEX",
        "ZRANGE z 0 1 REV REV",
        "ZRANGE z 0 1 WITHSCORES WITHSCORES",
        "ZRANGE z 0 1 LIMIT 1",
        "ZRANGE z 0 1 foo",
        "ZRANGE z a b",
        "ZRANGE z a b BYSCORE",
        "ZRANGE z a b BYLEX",
        "ZRANGE nokey 0 -1",
        "ZRANGE nokey a b",
        "ZREVRANGE z 0 1 WITHSCORES",
        "ZREVRANGE z 0 1 LIMIT 0 1",
        "ZREVRANGE z 0 1 REV",
        "ZRANGEBYSCORE z -inf +inf WITHSCORES",
        "ZRANGEBYSCORE z 1 2 LIMIT 0 1",
        "ZRANGEBYSCORE z 1 2 BYSCORE",
        "ZREVRANGEBYSCORE z +inf -inf WITHSCORES LIMIT 1 3",
        "ZREVRANGEBYSCORE z 2 (1",
        "ZADD lex 0 a 0 b 0 c 0 d 0 e 0 f 0 g",
        "ZRANGEBYLEX lex - +",
        "ZRANGEBYLEX lex [b (e",
        "ZRANGEBYLEX lex (b [e LIMIT 1 2",
        "ZRANGEBYLEX lex + -",
        "ZRANGEBYLEX lex a b",
        "ZRANGEBYLEX lex [b +x",
        "ZRANGEBYLEX lex - + WITHSCORES",
        "ZREVRANGEBYLEX lex + -",
        "ZREVRANGEBYLEX lex [e (b LIMIT 1 2",
        "ZRANGE lex [b [d BYLEX",
        "ZRANGE lex [d [b BYLEX REV",
        "ZLEXCOUNT lex - +",
        "ZLEXCOUNT lex [b (d",
        "ZLEXCOUNT lex b d",
        "ZLEXCOUNT lex (z +",
        "ZLEXCOUNT nokey - +",
        "ZRANGESTORE dst z 0 -1",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZRANGESTORE dst z 10 20",
        "EXISTS dst",
        "ZRANGESTORE dst lex [b [d BYLEX",
        "ZRANGESTORE dst z 0 -1 WITHSCORES",
        "ZRANGESTORE dst nokey 0 -1",
        "ZRANGESTORE dst z -inf 2 BYSCORE LIMIT 0 2",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZREM z a nope b",
        "ZREM z",
        "ZREM nokey a",
        "ZREMRANGEBYRANK z 0 0",
        "ZREMRANGEBYRANK z a 0",
        "ZREMRANGEBYSCORE z -inf (2",
        "ZREMRANGEBYSCORE z x 1",
        "ZREMRANGEBYLEX lex [b (d",
        "ZREMRANGEBYLEX lex b d",
        "ZRANGE lex 0 -1",
        "ZREMRANGEBYLEX lex - +",
        "EXISTS lex",
        "ZRANGE z 0 -1 WITHSCORES",
        "TYPE z",
    ],
    "zsets_pop_combine_scan": [
        "ZADD z 1 a 2 b 3 c 4 d 5 e",
        "ZPOPMIN z",
        "ZPOPMAX z",
        "ZPOPMIN z 2",
        "ZPOPMIN z 0",
        "ZPOPMIN z -1",
        "ZPOPMIN z x",
        "ZPOPMIN z 1 2",
        "ZPOPMAX z 100",
        "EXISTS z",
        "ZPOPMIN nokey",
        "ZPOPMIN nokey 3",
        "ZADD z 1 a 2 b 3 c 4 d 5 e",
        "ZADD z2 10 x 20 y",
        "ZMPOP 2 nokey z MIN",
        "ZMPOP 2 nokey z MAX COUNT 2",
        "ZMPOP 1 nokey MIN",
        "ZMPOP 0 z MIN",
        "ZMPOP -1 z MIN",
        "ZMPOP x z MIN",
        "ZMPOP 3 z MIN",
        "ZMPOP 1 z FOO",
        "ZMPOP 1 z MIN COUNT 0",
        "ZMPOP 1 z MIN COUNT -1",
        "ZMPOP 1 z MIN COUNT x",
        "ZMPOP 1 z MIN COUNT 1 COUNT 1",
        "ZMPOP 1 z MIN COUNT",
        "ZMPOP 1 z MIN 5",
        "ZMPOP 2 z z2 MAX COUNT 10",
        "ZMPOP 2 z z2 MAX COUNT 10",
        "ZMPOP 2 z z2 MAX COUNT 10",
        "SET str x",
        "ZMPOP 1 str MIN",
        "ZPOPMIN str",
        "ZADD z 1 a 2 b",
        "ZRANDMEMBER nokey",
        "ZRANDMEMBER nokey 5",
        "ZRANDMEMBER nokey -5 WITHSCORES",
        "ZRANDMEMBER z 0",
        "ZRANDMEMBER z 1 2 3",
        "ZRANDMEMBER z 1 foo",
        "ZRANDMEMBER z x",
        "ZRANDMEMBER z -9223372036854775808",
        "ZRANDMEMBER z -9223372036854775807 WITHSCORES",
        "ZRANDMEMBER z -4611686018427387904 WITHSCORES",
        "ZRANDMEMBER z 99999999999999999999",
        "ZRANDMEMBER str 1",
        "ZADD za 1 a 2 b 3 c",
        "ZADD zb 10 b 20 c 30 d",
        "SADD sa a b x",
        "ZUNION 2 za zb",
        "ZUNION 2 za zb WITHSCORES",
        "ZUNION 3 za zb sa WITHSCORES",
        "ZUNION 2 za zb WEIGHTS 2 3 WITHSCORES",
        "ZUNION 2 za zb AGGREGATE MIN WITHSCORES",
        "ZUNION 2 za zb AGGREGATE MAX WITHSCORES",
        "ZUNION 2 za zb AGGREGATE FOO",
        "ZUNION 2 za zb WEIGHTS 1",
        "ZUNION 2 za zb WEIGHTS 1 x",
        "ZUNION 2 za zb WEIGHTS 1 nan",
        "ZUNION 0 za",
        "ZUNION -1 za",
        "ZUNION x za",
        "ZUNION 3 za zb",
        "ZUNION 2 za nokey WITHSCORES",
        "ZUNION 2 za str",
        "ZUNION 2 str za WEIGHTS x y",
        "ZINTER 2 za zb WITHSCORES",
        "ZINTER 3 za zb sa WITHSCORES",
        "ZINTER 2 za nokey",
        "ZINTER 2 za zb WEIGHTS 1 -1 AGGREGATE MIN WITHSCORES",
        "ZINTER 0 za",
        "ZDIFF 2 za zb WITHSCORES",
        "ZDIFF 2 za sa",
        "ZDIFF 1 za",
        "ZDIFF 2 nokey za",
        "ZDIFF 2 za zb WEIGHTS 1 2",
        "ZDIFF 2 za zb AGGREGATE MIN",
        "ZDIFF 0 za",
        "ZINTERCARD 2 za zb",
        "ZINTERCARD 2 za zb LIMIT 1",
        "ZINTERCARD 2 za zb LIMIT 0",
        "ZINTERCARD 2 za zb LIMIT -1",
        "ZINTERCARD 2 za zb LIMIT x",
        "ZINTERCARD 0 za",
        "ZINTERCARD x za",
        "ZINTERCARD 2 za zb WITHSCORES",
        "ZINTERCARD 3 za zb sa",
        "ZUNIONSTORE dst 2 za zb",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZUNIONSTORE dst 2 za zb WITHSCORES",
        "ZUNIONSTORE dst 0 za",
        "ZINTERSTORE dst 2 za zb AGGREGATE MAX",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZINTERSTORE dst 2 za nokey",
        "EXISTS dst",
        "ZDIFFSTORE dst 2 zb za",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZADD inf 1 a",
        "ZADD inf2 inf a",
        "ZUNION 2 inf inf2 WEIGHTS 0 1 WITHSCORES",
        "ZADD ninf -inf a",
        "ZUNION 2 inf2 ninf WITHSCORES",
        "ZINTER 2 inf2 ninf WITHSCORES",
        "ZUNIONSTORE u 2 inf2 ninf",
        "ZSCORE u a",
        "ZSCAN za 0",
        "ZSCAN za 0 MATCH a*",
        "ZSCAN za 0 COUNT 1",
        "ZSCAN za 0 COUNT 0",
        "ZSCAN za x",
        "ZSCAN nokey 0",
        "ZSCAN str 0",
        "ZSCAN za 0 FOO bar",
    ],
    "sort": [
        "RPUSH l 3 1 2 10 -1.5",
        "SORT l",
        "SORT l DESC",
        "SORT l ALPHA",
        "SORT l ALPHA DESC",
        "SORT l LIMIT 1 2",
        "SORT l LIMIT -5 2",
        "SORT l LIMIT 2 -1",
        "SORT l LIMIT 10 2",
        "SORT l LIMIT 0 0",
        "SORT l LIMIT x 1",
        "SORT l LIMIT 1",
        "SORT l FOO",
        "SORT l BY nosort",
        "SORT l BY nosort DESC",
        "SORT l BY nosort LIMIT 1 2",
        "SORT l BY nosort DESC LIMIT 1 2",
        "MSET w_3 30 w_1 10 w_2 20 w_10 5 o_1 one o_2 two",
        "HSET h_1 f a",
        "HSET h_2 f b",
        "HSET h_3 f c",
        "SORT l BY w_*",
        "SORT l BY w_* DESC",
        "SORT l BY h_*->f ALPHA",
        "SORT l BY h_*->f",
        "SORT l GET o_*",
        "SORT l GET # GET o_* GET h_*->f",
        "SORT l GET h_*->",
        "SORT l GET nostar",
        "SORT l BY w_* GET # LIMIT 0 2",
        "SORT l STORE dst",
        "LRANGE dst 0 -1",
        "SORT l GET o_* STORE dst",
        "LRANGE dst 0 -1",
        "SORT nokey STORE dst",
        "EXISTS dst",
        "SORT nokey",
        "SORT l BY nosort GET # STORE dst",
        "LRANGE dst 0 -1",
        "RPUSH bad 1 a 2",
        "SORT bad",
        "SORT bad ALPHA",
        "SORT bad STORE dst",
        "LRANGE dst 0 -1",
        "SADD s 5 3 9 1",
        "SORT s",
        "SORT s DESC LIMIT 1 2",
        "SORT s BY nosort STORE dst",
        "LRANGE dst 0 -1",
        "ZADD z 1 c 2 b 3 a",
        "SORT z ALPHA",
        "SORT z BY nosort",
        "SORT z BY nosort DESC",
        "SORT z BY nosort LIMIT 1 5",
        "SORT z BY nosort DESC LIMIT 1 1",
        "SORT z BY w_*",
        "SET str x",
        "SORT str",
        "SORT_RO l",
        "SORT_RO l STORE dst",
        "SORT_RO l BY w_* GET # DESC",
        "SORT_RO str",
        'RPUSH nums2 " 5" 3 ""',
        "SORT nums2",
        'RPUSH nums3 "5 " 3',
        "SORT nums3",
        "RPUSH nums4 inf -inf nan",
        "SORT nums4",
        "RPUSH ab b a c b",
        "SORT ab ALPHA",
        "SORT ab BY w_* ALPHA",
        "SORT ab BY w_*",
        "SORT l LIMIT 0 9223372036854775807",
        "SORT l LIMIT 9223372036854775807 9223372036854775807",
        "RPUSH nums 1e400 2",
        "SORT nums",
    ],
    "geo": [
        "GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOADD Sicily 13.361389 38.115556 Palermo",
        "GEOADD Sicily CH 13.361390 38.115556 Palermo",
        "GEOADD Sicily NX 1 1 Palermo 2 2 x",
        "GEOADD Sicily XX 1 1 nope",
        "GEOADD Sicily NX XX 1 1 nope",
        "GEOADD Sicily 1 2",
        "GEOADD Sicily 200 2 bad",
        "GEOADD Sicily 1 86 bad",
        "GEOADD Sicily abc 2 bad",
        "GEOADD Sicily CH CH CH",
        "GEOADD Sicily 180 85.05112878 corner -180 -85.05112878 corner2",
        "ZRANGE Sicily 0 -1 WITHSCORES",
        "GEOPOS Sicily Palermo Catania nope corner corner2",
        "GEOPOS nokey a b",
        "GEOPOS Sicily",
        "GEODIST Sicily Palermo Catania",
        "GEODIST Sicily Palermo Catania km",
        "GEODIST Sicily Palermo Catania MI",
        "GEODIST Sicily Palermo Catania ft",
        "GEODIST Sicily Palermo Catania parsec",
        "GEODIST Sicily Palermo Catania km x",
        "GEODIST Sicily Palermo nope",
        "GEODIST nokey a b",
        "GEODIST Sicily Palermo Palermo",
        "GEOHASH Sicily Palermo Catania nope corner corner2",
        "GEOHASH nokey a",
        "GEORADIUS Sicily 15 37 200 km",
        "GEORADIUS Sicily 15 37 200 km WITHDIST",
        "GEORADIUS Sicily 15 37 200 km WITHCOORD WITHDIST WITHHASH",
        "GEORADIUS Sicily 15 37 200 km WITHDIST DESC",
        "GEORADIUS Sicily 15 37 200 km COUNT 1",
        "GEORADIUS Sicily 15 37 200 km COUNT 1 DESC",
        "GEORADIUS Sicily 15 37 200 km COUNT 1 ANY",
        "GEORADIUS Sicily 15 37 200 km ANY",
        "GEORADIUS Sicily 15 37 200 km COUNT 0",
        "GEORADIUS Sicily 15 37 200 km COUNT -1",
        "GEORADIUS Sicily 15 37 200 km COUNT x",
        "GEORADIUS Sicily 15 37 200 km FOO",
        "GEORADIUS Sicily 15 37 -1 km",
        "GEORADIUS Sicily 15 37 x km",
        "GEORADIUS Sicily 15 37 200 parsec",
        "GEORADIUS Sicily 15 37 200 KM",
        "GEORADIUS Sicily 15 37 200 km STORE dst WITHDIST",
        "GEORADIUS Sicily 15 37 200 km STORE dst",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEORADIUS Sicily 15 37 200 km STOREDIST dst",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEORADIUS Sicily 15 37 1 km STORE dst",
        "EXISTS dst",
        "GEORADIUS nokey 15 37 200 km",
        "GEORADIUS nokey 15 37 200 km STORE dst",
        "GEORADIUS nokey 15 37 x km",
        "GEORADIUS_RO Sicily 15 37 200 km STORE dst",
        "GEORADIUS_RO Sicily 15 37 200 km ASC",
        "GEORADIUSBYMEMBER Sicily Palermo 200 km WITHDIST ASC",
        "GEORADIUSBYMEMBER Sicily nope 200 km",
        "GEORADIUSBYMEMBER nokey nope x km",
        "GEORADIUSBYMEMBER Sicily Palermo 500 km STOREDIST dst2",
        "ZRANGE dst2 0 -1 WITHSCORES",
        "GEORADIUSBYMEMBER_RO Sicily Palermo 500 km WITHCOORD",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ASC WITHDIST WITHCOORD WITHHASH",
        "GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 400 400 km ASC WITHDIST",
        "GEOSEARCH Sicily FROMMEMBER Palermo BYBOX 400 400 km DESC COUNT 1",
        "GEOSEARCH Sicily FROMMEMBER nope BYBOX 400 400 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km BYBOX 1 1 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 FROMMEMBER Palermo BYRADIUS 200 km",
        "GEOSEARCH Sicily BYRADIUS 200 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37",
        "geosearch Sicily FROMLONLAT 15 37",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX -1 1 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX x 1 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 x km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1 1 parsec",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km STORE dst",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST",
        "GEOSEARCH nokey FROMMEMBER x BYRADIUS 200 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 20000 km",
        "GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 20000 km WITHDIST",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1e300 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1e300 1e300 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km ANY",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHHASH COUNT 1 ANY",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST",
        "GEOSEARCHSTORE dst nokey FROMLONLAT 15 37 BYRADIUS 200 km",
        "EXISTS dst",
        "SET str x",
        "GEOADD str 1 1 a",
        "GEOPOS str a",
        "GEORADIUS str 15 37 200 km",
        "GEOSEARCH str FROMLONLAT 15 37 BYRADIUS 200 km",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 1e308 km ASC",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 1e308 1e308 km ASC",
        "GEORADIUS Sicily 0 0 1e308 km COUNT 2 DESC WITHDIST",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 0 m",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 10 km COUNT 9223372036854775807",
    ],
}


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_zsets_geo_sort_match_redis(name: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    same_replies(redis_port, kv_port, CASES[name], resp3)


@pytest.mark.parametrize("seed", [1, 2])
def test_geo_searches_match_redis_point_for_point(seed: int, redis_port: int, kv_port: int) -> None:
    """Random points (poles, the antimeridian, a dense cluster) and searches of every
    size: members, order (unsorted too), distances, hashes and coordinates as Redis's."""
    rng = random.Random(seed)
    ref, ours = redis.Redis(port=redis_port), redis.Redis(port=kv_port)
    points: list[object] = []
    for i in range(300):
        lon, lat = rng.uniform(-180, 180), rng.uniform(-85.05, 85.05)
        if i % 3 == 0:
            lon, lat = rng.uniform(10, 12), rng.uniform(40, 42)
        if i % 7 == 0:
            lon = rng.choice([-180, 180, 179.9999, -179.9999])
        points += [lon, lat, f"p{i}"]
    for r in (ref, ours):
        r.delete("g")
        r.geoadd("g", points)
    assert ours.zrange("g", 0, -1, withscores=True) == ref.zrange("g", 0, -1, withscores=True)
    for t in range(120):
        lon = rng.uniform(-180, 180) if t % 2 else rng.uniform(10, 12)
        lat = rng.uniform(-85.05, 85.05) if t % 2 else rng.uniform(40, 42)
        if t % 5 == 0:
            lat = rng.choice([84.9, -84.9, 0.0])
        rad = rng.choice([1, 50, 200, 1000, 5000, 20000])
        unit = rng.choice(["m", "km", "mi", "ft"])
        for cmd in (
            [
                "GEOSEARCH",
                "g",
                "FROMLONLAT",
                lon,
                lat,
                "BYRADIUS",
                rad,
                "km",
                "WITHDIST",
                "WITHHASH",
            ],
            ["GEOSEARCH", "g", "FROMLONLAT", lon, lat, "BYBOX", rad * 2, rad, unit, "WITHCOORD"],
            ["GEORADIUS", "g", lon, lat, rad, "km", "COUNT", 5, "ANY"],
            ["GEOSEARCH", "g", "FROMMEMBER", f"p{t}", "BYRADIUS", rad, unit, "DESC", "COUNT", 3],
        ):
            assert ours.execute_command(*cmd) == ref.execute_command(*cmd), cmd
    names = [f"p{i}" for i in range(300)]
    assert ours.geohash("g", *names) == ref.geohash("g", *names)
    assert ours.geopos("g", *names) == ref.geopos("g", *names)


ZOPS = [
    "ZADD z {s} {m}",
    "ZADD z GT CH {s} {m} {s2} {m2}",
    "ZADD z LT INCR {s} {m}",
    "ZINCRBY z {s} {m}",
    "ZREM z {m} {m2}",
    "ZRANGE z {i} {j} WITHSCORES",
    "ZRANGE z ({s} {s2} BYSCORE LIMIT {i} {j}",
    "ZRANGE z [{m} ({m2} BYLEX",
    "ZREVRANGEBYSCORE z {s2} {s} WITHSCORES LIMIT {i} 3",
    "ZCOUNT z {s} ({s2}",
    "ZRANK z {m}",
    "ZREVRANK z {m}",
    "ZPOPMIN z {n}",
    "ZPOPMAX z",
    "ZREMRANGEBYSCORE z {s} {s2}",
    "ZREMRANGEBYRANK z {i} {j}",
    "ZUNIONSTORE u 2 z u WEIGHTS {s} 1 AGGREGATE MAX",
    "ZINTER 2 z u WITHSCORES",
    "ZDIFF 2 u z WITHSCORES",
    "ZMPOP 2 u z MAX COUNT {n}",
    "ZRANGESTORE u z {i} {j}",
    "ZCARD z",
]


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_random_zset_sequences_match_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    rng = random.Random(7)
    lines = [
        rng.choice(ZOPS).format(
            s=rng.choice(["1", "2.5", "-3", "inf", "-inf", "0", "1e3", "0.1"]),
            s2=rng.choice(["1", "2.5", "-3", "+inf", "7", "0.3"]),
            m=rng.choice("abcdefgh"),
            m2=rng.choice("abcdefgh"),
            i=rng.randint(-5, 5),
            j=rng.randint(-5, 5),
            n=rng.randint(1, 4),
        )
        for _ in range(1500)
    ]
    same_replies(redis_port, kv_port, lines, resp3)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_replies_match_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    """Replies of hundreds of members (encoded in one go by kv) are Redis's bytes."""
    ref, ours = Raw(redis_port, resp3), Raw(kv_port, resp3)
    args: list[str] = []
    for i in range(600):
        args += [["inf", "-inf", str(i / 7), str(-i), "1e300"][i % 5], f"m{i:04d}\x00\xff"]
    try:
        for r in (ref, ours):
            r.call("FLUSHALL")
            r.call("ZADD", "z", *args)
            r.call("ZADD", "y", *args[:400])
        for line in (
            ["ZRANGE", "z", "0", "-1"],
            ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
            ["ZREVRANGEBYSCORE", "z", "+inf", "-inf", "WITHSCORES", "LIMIT", "3", "500"],
            ["ZUNION", "2", "z", "y", "WITHSCORES"],
            ["ZINTER", "2", "z", "y"],
            ["ZPOPMIN", "z", "300"],
            ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        ):
            want, got = ref.call(*line), ours.call(*line)
            assert got == want, line
    finally:
        ref.close()
        ours.close()


def _whole_reply(sock: socket.socket, *argv: str) -> bytes:
    """One command's reply, as its bytes (nothing else is in flight on C{sock})."""
    parts = [a.encode("latin-1") for a in argv]
    sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
    reader, got = hiredis.Reader(), b""
    while True:
        chunk = sock.recv(1 << 20)
        assert chunk, "closed"
        got += chunk
        reader.feed(chunk)
        if reader.gets() is not False:
            return got


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_zmpop_replies_match_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    """ZMPOP and BZMPOP of a COUNT past bigreply.BIG: kv's reply goes in slices, Redis's bytes."""
    args: list[str] = []
    for i in range(20_000):
        args += [["inf", "-inf", str(i / 7), str(-i), "1e300"][i % 5], f"m{i:05d}\x00\xff"]
    socks = [socket.create_connection(("127.0.0.1", p), timeout=30) for p in (redis_port, kv_port)]
    try:
        for sock in socks:
            if resp3:
                _whole_reply(sock, "HELLO", "3")
            _whole_reply(sock, "FLUSHALL")
            _whole_reply(sock, "ZADD", "z", *args)
        for line in (
            ["ZMPOP", "1", "z", "MIN", "COUNT", "9000"],
            ["BZMPOP", "0", "2", "nokey", "z", "MAX", "COUNT", "9000"],
            ["ZMPOP", "1", "z", "MAX", "COUNT", "10000000"],
            ["EXISTS", "z"],
        ):
            want, got = (_whole_reply(sock, *line) for sock in socks)
            assert got == want, line
    finally:
        for sock in socks:
            sock.close()


def test_bzpopmin_waits_for_a_zadd(kv_port: int) -> None:
    """A blocked BZPOPMIN is served by another client's ZADD; BZMPOP times out with nil."""
    waiter, writer = redis.Redis(port=kv_port, socket_timeout=30), redis.Redis(port=kv_port)
    writer.delete("bz")
    assert waiter.bzmpop(0.05, 1, ["bz"], min=True) is None
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        got = pool.submit(waiter.bzpopmin, ["bz"], 10)
        deadline = time.monotonic() + 10
        while not any(c.get("cmd") == "bzpopmin" for c in writer.client_list()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        writer.zadd("bz", {"m": 2.5, "n": 3})
        assert got.result(20) == (b"bz", b"m", 2.5)
        assert writer.zrange("bz", 0, -1) == [b"n"]
    finally:
        pool.shutdown()
