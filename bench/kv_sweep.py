#!/usr/bin/env python3
"""
Every kv command against the rest of the suite, on big values: the attacker's sweep
for issue 10's target (no input of any size from one kv client delays another service
of the suite by more than 50 ms).

For each family (list, set of strings, set of integers, hash, sorted set, stream,
HyperLogLog + geo, keyspace, clients/server, transactions and pipelines, and kv with an
append-only file: FAMILY=aof) a fresh suite of
kv + echo runs in twistd (pinned to cpu 0), the family's values of N members are loaded,
then a process of its own sends one echo round trip every 5 ms while one kv client runs
each step (a command or a pipeline of them) and reads the whole reply. Per step: the
worst and the p99 echo round trip while it ran, kv's time for it as the client sees it,
and what it answered (a type and a length, or the error). At the end, every command of
kv's COMMAND table that takes a key and that no step names is listed, so nothing is
skipped unseen.

    flock /tmp/bench.lock .venv/bin/python bench/kv_sweep.py            # every family
    FAMILY=list,zset N=300000 flock /tmp/bench.lock .venv/bin/python bench/kv_sweep.py
    ONLY="LRANGE 0 -1,SORT" ...   # only the steps whose names start with these

Each family stays well under three minutes at N=1,000,000 on the dev VM.
With C{PORTSUITE_BEFORE_BIN} (bench/README.md) the same steps on that build first,
in the same run ("before" columns); C{KV_SWEEP_TWISTD} runs another twistd instead of
this tree's (a before table on its own while this tree is being edited).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hiredis
from benchlib import before_bin, open_files, pin
from kv import TWISTD, _cmd, _pinger, start_kv_and_echo, stop

N = int(os.environ.get("N", "1000000"))
BIGCOUNT = b"10000000"  # a count argument past every value's size
HUGE = 100 << 20  # bytes of a huge value (a client name, a stream entry's field)
FAMILIES = [f for f in os.environ.get("FAMILY", "").split(",") if f]
ONLY = [s for s in os.environ.get("ONLY", "").split(",") if s]
CLIENTS = int(os.environ.get("CLIENTS", "2000"))  # connections open for CLIENT LIST

Argv = list[bytes]
# a step: its name and its commands (a list, or a function making it: big argument
# lists are made only when the step runs); one command is sent and read alone, several
# are sent as one pipeline; [b"sleep", s] waits s seconds within the step
Step = tuple[str, "list[Argv] | Callable[[], list[Argv]]"]


def one(*argv: bytes) -> list[Argv]:
    return [list(argv)]


def words(line: str) -> list[Argv]:
    """One command written as its words."""
    return [line.encode().split()]


def members(prefix: bytes, n: int = N, start: int = 0) -> list[bytes]:
    return [prefix + b"%d" % i for i in range(start, start + n)]


# -- loading --------------------------------------------------------------------


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def pipeline(self, cmds: list[Argv]) -> list[Any]:
        """Send C{cmds} at once, read every reply."""
        self.sock.sendall(b"".join(_cmd(*c) for c in cmds))
        reader = hiredis.Reader()
        out: list[Any] = []
        while len(out) < len(cmds):
            got = reader.gets()
            if got is False:
                data = self.sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("closed")
                reader.feed(data)
                continue
            out.append(got)
        return out


def fill(c: Client, make: Callable[[int, int], Argv], n: int = N, per: int = 5000) -> None:
    """C{make(lo, hi)} commands for ranges of C{per}, ten (or more when small) to a pipeline."""
    batch = []
    for lo in range(0, n, per):
        batch.append(make(lo, min(n, lo + per)))
        if len(batch) == max(10, 20000 // per):
            c.pipeline(batch)
            batch = []
    if batch:
        c.pipeline(batch)


def pairs(lo: int, hi: int, a: bytes, b: bytes) -> list[bytes]:
    return [x for i in range(lo, hi) for x in (a + b"%d" % i, b + b"%d" % i)]


def load_list(c: Client) -> None:
    fill(c, lambda lo, hi: [b"RPUSH", b"l", *(b"%d" % ((i * 7919) % N) for i in range(lo, hi))])
    c.pipeline([[b"RPUSH", b"small", b"a", b"b"], [b"SET", b"w_1", b"1"]])


def load_set(c: Client) -> None:
    fill(c, lambda lo, hi: [b"SADD", b"s", *members(b"m", hi - lo, lo)])
    fill(c, lambda lo, hi: [b"SADD", b"s2", *(b"m%d" % (i * 2) for i in range(lo, hi))])


def load_intset(c: Client) -> None:
    fill(c, lambda lo, hi: [b"SADD", b"s", *(b"%d" % i for i in range(lo, hi))])
    fill(c, lambda lo, hi: [b"SADD", b"s2", *(b"%d" % (i * 2) for i in range(lo, hi))])


def load_hash(c: Client) -> None:
    fill(c, lambda lo, hi: [b"HSET", b"h", *pairs(lo, hi, b"f", b"")])


def load_zset(c: Client) -> None:
    fill(
        c,
        lambda lo, hi: [
            b"ZADD",
            b"z",
            *(x for i in range(lo, hi) for x in (b"%d" % i, b"m%d" % i)),
        ],
    )
    fill(
        c,
        lambda lo, hi: [b"ZADD", b"zl", *(x for i in range(lo, hi) for x in (b"0", b"m%07d" % i))],
    )


def load_stream(c: Client) -> None:
    n = N // 4  # (a stream entry costs kv about four set members)
    fill(c, lambda lo, hi: [b"XADD", b"x", b"%d-1" % (hi), b"f", b"%d" % hi], n, 1)
    c.pipeline(
        [[b"XGROUP", b"CREATE", b"x", b"g", b"0"], [b"XGROUP", b"CREATE", b"x", b"g2", b"0"]]
    )


def load_hllgeo(c: Client) -> None:
    fill(c, lambda lo, hi: [b"PFADD", b"hll", *members(b"e", hi - lo, lo)])
    fill(c, lambda lo, hi: [b"PFADD", b"hll%d" % lo, b"a", b"b%d" % lo], 1000, 1)
    fill(
        c,
        lambda lo, hi: [
            b"GEOADD",
            b"geo",
            *(
                x
                for i in range(lo, hi)
                for x in (
                    b"%.6f" % (-179.0 + (i * 0.000358) % 358),
                    b"%.6f" % (-80.0 + (i * 0.000161) % 160),
                    b"p%d" % i,
                )
            ),
        ],
    )


def load_keys(c: Client) -> None:
    n = min(N, 600_000)  # (past ~700,000 keys the keyspace's dict grows in one go: not ours)
    fill(c, lambda lo, hi: [b"MSET", *pairs(lo, hi, b"k", b"v")], n)
    fill(c, lambda lo, hi: [b"SADD", b"s", *members(b"m", hi - lo, lo)])
    fill(c, lambda lo, hi: [b"MSET", *pairs(lo, hi, b"e", b"v")], 100_000)


def load_server(c: Client) -> None:
    fill(c, lambda lo, hi: [b"SADD", b"s", *members(b"m", hi - lo, lo)])
    fill(c, lambda lo, hi: [b"RPUSH", b"l", *members(b"", hi - lo, lo)])
    fill(c, lambda lo, hi: [b"HSET", b"h", *pairs(lo, hi, b"f", b"")])


def load_aof(c: Client) -> None:
    """Big values and many keys, with the append-only file on (the family's option)."""
    fill(c, lambda lo, hi: [b"SADD", b"s", *members(b"m", hi - lo, lo)])
    fill(c, lambda lo, hi: [b"HSET", b"h", *pairs(lo, hi, b"f", b"")])
    fill(c, lambda lo, hi: [b"MSET", *pairs(lo, hi, b"k", b"v")], min(N, 600_000))
    fill(c, lambda lo, hi: [b"MSET", *pairs(lo, hi, b"e", b"v")], 100_000)


def load_nothing(c: Client) -> None:
    """The admin family needs no data: its size is in its arguments."""


def load_multi(c: Client) -> None:
    load_set(c)
    load_list(c)
    fill(c, lambda lo, hi: [b"HSET", b"h", *pairs(lo, hi, b"f", b"")])
    load_zset(c)


# -- the steps --------------------------------------------------------------------

K = BIGCOUNT
H = b"%d" % N
MID = b"%d" % (N // 2)


def generic(key: bytes, copy: bytes = b"cp") -> list[Step]:
    """What every type is asked: the keyspace commands on a big key (destructive last)."""
    return [
        ("TYPE", one(b"TYPE", key)),
        ("EXISTS", one(b"EXISTS", key)),
        ("OBJECT ENCODING", one(b"OBJECT", b"ENCODING", key)),
        (
            "OBJECT FREQ/IDLETIME/REFCOUNT",
            [[b"OBJECT", b"IDLETIME", key], [b"OBJECT", b"REFCOUNT", key]],
        ),
        ("MEMORY USAGE", one(b"MEMORY", b"USAGE", key)),
        ("MEMORY USAGE SAMPLES 0", one(b"MEMORY", b"USAGE", key, b"SAMPLES", b"0")),
        ("DEBUG OBJECT", one(b"DEBUG", b"OBJECT", key)),
        ("TOUCH", one(b"TOUCH", key)),
        ("EXPIRE/TTL/PERSIST", [[b"EXPIRE", key, b"1000"], [b"TTL", key], [b"PERSIST", key]]),
        (
            "EXPIREAT/PEXPIREAT/PTTL/EXPIRETIME/PEXPIRETIME",
            [
                [b"EXPIREAT", key, b"99999999999"],
                [b"PEXPIREAT", key, b"99999999999000"],
                [b"PTTL", key],
                [b"EXPIRETIME", key],
                [b"PEXPIRETIME", key],
                [b"PERSIST", key],
            ],
        ),
        ("COPY", one(b"COPY", key, copy)),
        ("COPY REPLACE over a copy", one(b"COPY", key, copy, b"REPLACE")),
        ("COPY to db 1", one(b"COPY", key, copy, b"DB", b"1")),
        ("RENAME", one(b"RENAME", copy, copy + b"r")),
        ("RENAMENX", one(b"RENAMENX", copy + b"r", copy)),
        ("MOVE to db 2", one(b"MOVE", copy, b"2")),
        ("SWAPDB 0 2 twice", [[b"SWAPDB", b"0", b"2"], [b"SWAPDB", b"0", b"2"]]),
        ("DUMP (kvlzf's)", one(b"DUMP", key)),
        (
            "expiry of a copy",
            [[b"COPY", key, b"ex"], [b"PEXPIRE", b"ex", b"50"], [b"sleep", b"0.5"]],
        ),
        ("SET over a copy", [[b"COPY", key, b"ov"], [b"SET", b"ov", b"x"]]),
        ("DEL of a copy", [[b"COPY", key, b"dl"], [b"DEL", b"dl"]]),
        ("UNLINK of a copy", [[b"COPY", key, b"ul"], [b"UNLINK", b"ul"]]),
        ("FLUSHDB SYNC (db 1)", [[b"SELECT", b"1"], [b"FLUSHDB", b"SYNC"], [b"SELECT", b"0"]]),
        ("FLUSHDB ASYNC (db 2)", [[b"SELECT", b"2"], [b"FLUSHDB", b"ASYNC"], [b"SELECT", b"0"]]),
        (
            "MULTI COPY x3 EXEC",
            [[b"MULTI"], *([b"COPY", key, b"m%d" % i] for i in range(3)), [b"EXEC"]],
        ),
        ("pipeline DEL x3", [[b"DEL", b"m%d" % i] for i in range(3)]),
    ]


def final(key: bytes) -> list[Step]:
    return [("DEL", one(b"DEL", key)), ("FLUSHALL SYNC", one(b"FLUSHALL", b"SYNC"))]


def sort_steps(key: bytes, alpha: bool) -> list[Step]:
    a = [b"ALPHA"] if alpha else []
    return [
        ("SORT", one(b"SORT", key, *a)),
        ("SORT LIMIT 0 10", one(b"SORT", key, *a, b"LIMIT", b"0", b"10")),
        ("SORT DESC LIMIT big", one(b"SORT", key, *a, b"DESC", b"LIMIT", b"0", K)),
        ("SORT_RO", one(b"SORT_RO", key, *a)),
        ("SORT BY nosort", one(b"SORT", key, b"BY", b"nosort")),
        ("SORT BY nosort GET #", one(b"SORT", key, b"BY", b"nosort", b"GET", b"#")),
        (
            "SORT BY w_* GET # GET w_*",
            one(b"SORT", key, b"BY", b"w_*", b"GET", b"#", b"GET", b"w_*"),
        ),
        ("SORT STORE", one(b"SORT", key, *a, b"STORE", b"sorted")),
    ]


LIST: list[Step] = [
    *sort_steps(b"l", False),  # (first: the steps below store words in the list)
    ("LLEN", one(b"LLEN", b"l")),
    ("LINDEX middle", one(b"LINDEX", b"l", MID)),
    ("LRANGE 0 -1", one(b"LRANGE", b"l", b"0", b"-1")),
    ("LRANGE huge bounds", one(b"LRANGE", b"l", b"-" + K, K)),
    ("LRANGE middle 1000", one(b"LRANGE", b"l", MID, b"%d" % (N // 2 + 1000))),
    ("LPOS missing", one(b"LPOS", b"l", b"nothing")),
    ("LPOS COUNT 0", one(b"LPOS", b"l", b"1", b"COUNT", b"0")),
    ("LPOS RANK -1 MAXLEN 0", one(b"LPOS", b"l", b"nothing", b"RANK", b"-1", b"MAXLEN", b"0")),
    ("LINSERT missing pivot", one(b"LINSERT", b"l", b"BEFORE", b"nothing", b"x")),
    ("LINSERT at the end", one(b"LINSERT", b"l", b"AFTER", b"%d" % ((N - 1) * 7919 % N), b"y")),
    ("LSET middle", one(b"LSET", b"l", MID, b"x")),
    ("LREM 0 missing", one(b"LREM", b"l", b"0", b"nothing")),
    ("LREM -1 missing", one(b"LREM", b"l", b"-1", b"nothing")),
    ("LPUSHX/RPUSHX", [[b"LPUSHX", b"l", b"a"], [b"RPUSHX", b"l", b"b"]]),
    *generic(b"l"),
    ("RPUSH N args", lambda: [[b"RPUSH", b"nl", *members(b"a")]]),
    ("LPUSH N args", lambda: [[b"LPUSH", b"nl2", *members(b"a")]]),
    ("LMOVE / RPOPLPUSH", [[b"LMOVE", b"l", b"l", b"LEFT", b"RIGHT"], [b"RPOPLPUSH", b"l", b"l"]]),
    ("LPOP N", one(b"LPOP", b"nl", K)),
    ("RPOP N", one(b"RPOP", b"nl2", K)),
    ("LMPOP COUNT big", [[b"COPY", b"l", b"lm"], [b"LMPOP", b"1", b"lm", b"LEFT", b"COUNT", K]]),
    (
        "BLMPOP COUNT big",
        [[b"COPY", b"l", b"lb"], [b"BLMPOP", b"0", b"1", b"lb", b"RIGHT", b"COUNT", K]],
    ),
    (
        "BLPOP / BRPOP / BLMOVE",
        [
            [b"BLPOP", b"l", b"0"],
            [b"BRPOP", b"l", b"0"],
            [b"BLMOVE", b"l", b"l", b"LEFT", b"LEFT", b"0"],
        ],
    ),
    ("BRPOPLPUSH", one(b"BRPOPLPUSH", b"l", b"l", b"0")),
    ("LTRIM 1 -2", one(b"LTRIM", b"l", b"1", b"-2")),
    ("LTRIM keep 10 of a copy", [[b"COPY", b"l", b"lt"], [b"LTRIM", b"lt", b"0", b"9"]]),
    *final(b"l"),
]


def set_steps(m: Callable[[int], bytes]) -> list[Step]:
    return [
        ("SCARD", one(b"SCARD", b"s")),
        ("SISMEMBER", one(b"SISMEMBER", b"s", m(5))),
        ("SMISMEMBER N args", lambda: [[b"SMISMEMBER", b"s", *(m(i) for i in range(N))]]),
        ("SMEMBERS", one(b"SMEMBERS", b"s")),
        ("SRANDMEMBER 1", one(b"SRANDMEMBER", b"s")),
        ("SRANDMEMBER big", one(b"SRANDMEMBER", b"s", K)),
        ("SRANDMEMBER -N", one(b"SRANDMEMBER", b"s", b"-" + H)),
        ("SSCAN COUNT big", one(b"SSCAN", b"s", b"0", b"COUNT", K)),
        ("SSCAN MATCH COUNT big", one(b"SSCAN", b"s", b"0", b"MATCH", b"*9", b"COUNT", K)),
        ("SUNION", one(b"SUNION", b"s", b"s2")),
        ("SINTER", one(b"SINTER", b"s", b"s2")),
        ("SDIFF", one(b"SDIFF", b"s", b"s2")),
        ("SINTERCARD", one(b"SINTERCARD", b"2", b"s", b"s2")),
        ("SINTERCARD LIMIT", one(b"SINTERCARD", b"2", b"s", b"s2", b"LIMIT", K)),
        ("SUNIONSTORE", one(b"SUNIONSTORE", b"u", b"s", b"s2")),
        ("SINTERSTORE", one(b"SINTERSTORE", b"i", b"s", b"s2")),
        ("SDIFFSTORE", one(b"SDIFFSTORE", b"d", b"s", b"s2")),
        ("SMOVE", one(b"SMOVE", b"s2", b"s", m(1))),
        *sort_steps(b"s", True),
        *generic(b"s"),
        ("SADD N args (new)", lambda: [[b"SADD", b"ns", *(m(i) for i in range(N))]]),
        ("SADD N args (existing)", lambda: [[b"SADD", b"ns", *(m(i) for i in range(N))]]),
        ("SREM N args", lambda: [[b"SREM", b"ns", *(m(i) for i in range(N))]]),
        ("SPOP 1", one(b"SPOP", b"s")),
        ("SPOP N/2", [[b"COPY", b"s", b"sp"], [b"SPOP", b"sp", b"%d" % (N // 2)]]),
        ("SPOP big", [[b"COPY", b"s", b"sp2"], [b"SPOP", b"sp2", K]]),
        *final(b"s"),
    ]


SET = set_steps(lambda i: b"m%d" % i)
INTSET = set_steps(lambda i: b"%d" % i)

HASH: list[Step] = [
    ("HLEN", one(b"HLEN", b"h")),
    (
        "HGET/HEXISTS/HSTRLEN",
        [[b"HGET", b"h", b"f5"], [b"HEXISTS", b"h", b"f5"], [b"HSTRLEN", b"h", b"f5"]],
    ),
    (
        "HINCRBY/HINCRBYFLOAT/HSETNX",
        [
            [b"HINCRBY", b"h", b"f5", b"1"],
            [b"HINCRBYFLOAT", b"h", b"f6", b"1.5"],
            [b"HSETNX", b"h", b"f7", b"x"],
        ],
    ),
    ("HGETALL", one(b"HGETALL", b"h")),
    ("HKEYS", one(b"HKEYS", b"h")),
    ("HVALS", one(b"HVALS", b"h")),
    ("HMGET N args", lambda: [[b"HMGET", b"h", *members(b"f")]]),
    ("HRANDFIELD big WITHVALUES", one(b"HRANDFIELD", b"h", K, b"WITHVALUES")),
    ("HRANDFIELD -N", one(b"HRANDFIELD", b"h", b"-" + H)),
    ("HSCAN COUNT big", one(b"HSCAN", b"h", b"0", b"COUNT", K)),
    ("HSCAN MATCH COUNT big", one(b"HSCAN", b"h", b"0", b"MATCH", b"*9", b"COUNT", K)),
    *generic(b"h"),
    ("HSET N args (new)", lambda: [[b"HSET", b"nh", *pairs(0, N, b"f", b"")]]),
    ("HSET N args (existing)", lambda: [[b"HSET", b"nh", *pairs(0, N, b"f", b"x")]]),
    ("HMSET N args", lambda: [[b"HMSET", b"nh2", *pairs(0, N, b"f", b"")]]),
    ("HDEL N args", lambda: [[b"HDEL", b"nh", *members(b"f")]]),
    *final(b"h"),
]

ZSET: list[Step] = [
    (
        "ZCARD/ZSCORE/ZRANK",
        [
            [b"ZCARD", b"z"],
            [b"ZSCORE", b"z", b"m5"],
            [b"ZRANK", b"z", b"m5"],
            [b"ZREVRANK", b"z", b"m5"],
        ],
    ),
    ("ZMSCORE N args", lambda: [[b"ZMSCORE", b"z", *members(b"m")]]),
    ("ZCOUNT all", one(b"ZCOUNT", b"z", b"-inf", b"+inf")),
    ("ZLEXCOUNT all", one(b"ZLEXCOUNT", b"zl", b"-", b"+")),
    ("ZRANGE 0 -1", one(b"ZRANGE", b"z", b"0", b"-1")),
    ("ZRANGE 0 -1 WITHSCORES", one(b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES")),
    ("ZRANGE huge bounds REV", one(b"ZRANGE", b"z", b"-" + K, K, b"REV")),
    (
        "ZRANGE BYSCORE LIMIT big",
        one(b"ZRANGE", b"z", b"-inf", b"+inf", b"BYSCORE", b"LIMIT", b"0", K),
    ),
    (
        "ZRANGE BYSCORE LIMIT far offset",
        one(b"ZRANGE", b"z", b"-inf", b"+inf", b"BYSCORE", b"LIMIT", MID, b"10"),
    ),
    ("ZRANGE BYLEX", one(b"ZRANGE", b"zl", b"-", b"+", b"BYLEX")),
    (
        "ZRANGE BYLEX LIMIT far offset",
        one(b"ZRANGE", b"zl", b"-", b"+", b"BYLEX", b"LIMIT", MID, b"10"),
    ),
    ("ZRANGEBYSCORE WITHSCORES", one(b"ZRANGEBYSCORE", b"z", b"-inf", b"+inf", b"WITHSCORES")),
    (
        "ZREVRANGEBYSCORE LIMIT big",
        one(b"ZREVRANGEBYSCORE", b"z", b"+inf", b"-inf", b"LIMIT", b"0", K),
    ),
    ("ZRANGEBYLEX", one(b"ZRANGEBYLEX", b"zl", b"-", b"+")),
    ("ZREVRANGEBYLEX", one(b"ZREVRANGEBYLEX", b"zl", b"+", b"-")),
    ("ZREVRANGE 0 -1 WITHSCORES", one(b"ZREVRANGE", b"z", b"0", b"-1", b"WITHSCORES")),
    ("ZRANDMEMBER big WITHSCORES", one(b"ZRANDMEMBER", b"z", K, b"WITHSCORES")),
    ("ZRANDMEMBER -N", one(b"ZRANDMEMBER", b"z", b"-" + H)),
    ("ZSCAN COUNT big", one(b"ZSCAN", b"z", b"0", b"COUNT", K)),
    ("ZRANGESTORE all", one(b"ZRANGESTORE", b"zr", b"z", b"0", b"-1")),
    ("ZRANGESTORE BYSCORE", one(b"ZRANGESTORE", b"zr", b"z", b"-inf", b"+inf", b"BYSCORE")),
    ("ZUNION WITHSCORES", one(b"ZUNION", b"2", b"z", b"zl", b"WITHSCORES")),
    ("ZINTER", one(b"ZINTER", b"2", b"z", b"zr")),
    ("ZDIFF", one(b"ZDIFF", b"2", b"z", b"zl")),
    ("ZINTERCARD", one(b"ZINTERCARD", b"2", b"z", b"zr")),
    ("ZUNIONSTORE", one(b"ZUNIONSTORE", b"zu", b"2", b"z", b"zl")),
    ("ZINTERSTORE", one(b"ZINTERSTORE", b"zi", b"2", b"z", b"zr")),
    ("ZDIFFSTORE", one(b"ZDIFFSTORE", b"zd", b"2", b"z", b"zl")),
    ("ZINCRBY/ZADD one", [[b"ZINCRBY", b"z", b"1", b"m5"], [b"ZADD", b"z", b"5", b"m5"]]),
    *sort_steps(b"z", True),
    *generic(b"z"),
    ("ZADD N args (new)", lambda: [[b"ZADD", b"nz", *pairs(0, N, b"", b"a")]]),
    ("ZADD N args (existing)", lambda: [[b"ZADD", b"nz", *pairs(0, N, b"1", b"a")]]),
    ("ZADD GT CH INCR one", one(b"ZADD", b"nz", b"GT", b"CH", b"INCR", b"5", b"a5")),
    ("ZREM N args", lambda: [[b"ZREM", b"nz", *members(b"a")]]),
    ("ZPOPMIN big", [[b"COPY", b"z", b"zp"], [b"ZPOPMIN", b"zp", K]]),
    ("ZPOPMAX big", [[b"COPY", b"z", b"zp"], [b"ZPOPMAX", b"zp", K]]),
    ("ZMPOP COUNT big", [[b"COPY", b"z", b"zp"], [b"ZMPOP", b"1", b"zp", b"MIN", b"COUNT", K]]),
    (
        "BZMPOP COUNT big",
        [[b"COPY", b"z", b"zp"], [b"BZMPOP", b"0", b"1", b"zp", b"MAX", b"COUNT", K]],
    ),
    ("BZPOPMIN/BZPOPMAX", [[b"BZPOPMIN", b"z", b"0"], [b"BZPOPMAX", b"z", b"0"]]),
    ("ZREMRANGEBYRANK half", [[b"COPY", b"z", b"zq"], [b"ZREMRANGEBYRANK", b"zq", b"0", MID]]),
    (
        "ZREMRANGEBYSCORE half",
        [[b"COPY", b"z", b"zq2"], [b"ZREMRANGEBYSCORE", b"zq2", b"-inf", MID]],
    ),
    (
        "ZREMRANGEBYLEX half",
        [[b"COPY", b"zl", b"zq3"], [b"ZREMRANGEBYLEX", b"zq3", b"-", b"[m%07d" % (N // 2)]],
    ),
    *final(b"z"),
]

STREAM: list[Step] = [
    ("XLEN", one(b"XLEN", b"x")),
    ("XRANGE - +", one(b"XRANGE", b"x", b"-", b"+")),
    ("XRANGE COUNT big", one(b"XRANGE", b"x", b"-", b"+", b"COUNT", K)),
    ("XREVRANGE + -", one(b"XREVRANGE", b"x", b"+", b"-")),
    ("XREAD COUNT big", one(b"XREAD", b"COUNT", K, b"STREAMS", b"x", b"0")),
    ("XREAD", one(b"XREAD", b"STREAMS", b"x", b"0")),
    (
        "XREADGROUP COUNT big >",
        one(b"XREADGROUP", b"GROUP", b"g", b"c1", b"COUNT", K, b"STREAMS", b"x", b">"),
    ),
    ("XREADGROUP 0 (its PEL)", one(b"XREADGROUP", b"GROUP", b"g", b"c1", b"STREAMS", b"x", b"0")),
    (
        "XREADGROUP NOACK",
        one(b"XREADGROUP", b"GROUP", b"g2", b"c1", b"NOACK", b"STREAMS", b"x", b">"),
    ),
    ("XPENDING summary", one(b"XPENDING", b"x", b"g")),
    ("XPENDING - + big", one(b"XPENDING", b"x", b"g", b"-", b"+", K)),
    ("XPENDING IDLE - + big c1", one(b"XPENDING", b"x", b"g", b"IDLE", b"0", b"-", b"+", K, b"c1")),
    ("XINFO STREAM", one(b"XINFO", b"STREAM", b"x")),
    ("XINFO STREAM FULL COUNT 0", one(b"XINFO", b"STREAM", b"x", b"FULL", b"COUNT", b"0")),
    ("XINFO GROUPS/CONSUMERS", [[b"XINFO", b"GROUPS", b"x"], [b"XINFO", b"CONSUMERS", b"x", b"g"]]),
    (
        "XAUTOCLAIM COUNT big",
        one(b"XAUTOCLAIM", b"x", b"g", b"c2", b"0", b"0", b"COUNT", b"100000"),
    ),
    (
        "XAUTOCLAIM JUSTID",
        one(b"XAUTOCLAIM", b"x", b"g", b"c3", b"0", b"0", b"COUNT", b"100000", b"JUSTID"),
    ),
    (
        "XCLAIM N/4 ids",
        lambda: [
            [b"XCLAIM", b"x", b"g", b"c4", b"0", *(b"%d-1" % i for i in range(1, N // 4 + 1))]
        ],
    ),
    (
        "XGROUP SETID / CREATECONSUMER",
        [
            [b"XGROUP", b"SETID", b"x", b"g2", b"0"],
            [b"XGROUP", b"CREATECONSUMER", b"x", b"g2", b"c9"],
        ],
    ),
    ("XACK N/4 ids", lambda: [[b"XACK", b"x", b"g", *(b"%d-1" % i for i in range(1, N // 4 + 1))]]),
    (
        "XGROUP DESTROY (big PEL)",
        [
            [b"XREADGROUP", b"GROUP", b"g2", b"c1", b"COUNT", K, b"STREAMS", b"x", b">"],
            [b"XGROUP", b"DESTROY", b"x", b"g2"],
        ],
    ),
    ("XADD / XSETID", [[b"XADD", b"x", b"*", b"f", b"v"], [b"XSETID", b"x", b"99999999999999-0"]]),
    ("XADD of a 100 MB value", lambda: one(b"XADD", b"xh", b"1-1", b"f", b"v" * HUGE, b"g", b"1")),
    ("DUMP of a 100 MB entry", one(b"DUMP", b"xh")),
    ("RESTORE of it", one(b"RESTORE", b"xh2", b"0", b"$last")),
    ("XRANGE of a 100 MB entry", one(b"XRANGE", b"xh2", b"-", b"+")),
    ("XREAD of a 100 MB entry", one(b"XREAD", b"STREAMS", b"xh", b"0")),
    ("DEL of 100 MB entries", one(b"DEL", b"xh", b"xh2")),
    *generic(b"x"),
    ("XDEL N/8 ids", lambda: [[b"XDEL", b"x", *(b"%d-1" % i for i in range(1, N // 8 + 1))]]),
    ("XTRIM MINID half", [[b"COPY", b"x", b"xt"], [b"XTRIM", b"xt", b"MINID", b"%d" % (N // 8)]]),
    ("XTRIM MAXLEN 0", [[b"COPY", b"x", b"xt2"], [b"XTRIM", b"xt2", b"MAXLEN", b"0"]]),
    (
        "XADD MAXLEN 0",
        [[b"COPY", b"x", b"xt3"], [b"XADD", b"xt3", b"MAXLEN", b"0", b"*", b"f", b"v"]],
    ),
    *final(b"x"),
]

HLLGEO: list[Step] = [
    ("PFCOUNT", one(b"PFCOUNT", b"hll")),
    ("PFCOUNT 1000 keys", [[b"PFCOUNT", *(b"hll%d" % i for i in range(1000))]]),
    ("PFMERGE 1000 keys", [[b"PFMERGE", b"pm", b"hll", *(b"hll%d" % i for i in range(1000))]]),
    ("PFADD N args", lambda: [[b"PFADD", b"hll2", *members(b"z")]]),
    (
        "GEOSEARCH all BYRADIUS",
        one(b"GEOSEARCH", b"geo", b"FROMLONLAT", b"0", b"0", b"BYRADIUS", b"20000", b"km"),
    ),
    (
        "GEOSEARCH all ASC WITHCOORD WITHDIST",
        words("GEOSEARCH geo FROMLONLAT 0 0 BYRADIUS 20000 km ASC WITHCOORD WITHDIST WITHHASH"),
    ),
    (
        "GEOSEARCH COUNT 10 ANY",
        words("GEOSEARCH geo FROMMEMBER p5 BYBOX 40000 40000 km COUNT 10 ANY"),
    ),
    (
        "GEOSEARCH COUNT 10 ASC",
        words("GEOSEARCH geo FROMLONLAT 0 0 BYRADIUS 20000 km COUNT 10 ASC"),
    ),
    ("GEORADIUS all", one(b"GEORADIUS", b"geo", b"0", b"0", b"20000", b"km")),
    ("GEORADIUS_RO all DESC", one(b"GEORADIUS_RO", b"geo", b"0", b"0", b"20000", b"km", b"DESC")),
    ("GEORADIUSBYMEMBER all", one(b"GEORADIUSBYMEMBER", b"geo", b"p5", b"20000", b"km")),
    (
        "GEORADIUSBYMEMBER_RO",
        one(b"GEORADIUSBYMEMBER_RO", b"geo", b"p5", b"20000", b"km", b"COUNT", b"5"),
    ),
    (
        "GEOSEARCHSTORE all",
        words("GEOSEARCHSTORE gs geo FROMLONLAT 0 0 BYRADIUS 20000 km"),
    ),
    (
        "GEOSEARCHSTORE STOREDIST",
        words("GEOSEARCHSTORE gs geo FROMLONLAT 0 0 BYRADIUS 20000 km STOREDIST"),
    ),
    ("GEORADIUS STORE", one(b"GEORADIUS", b"geo", b"0", b"0", b"20000", b"km", b"STORE", b"gs2")),
    ("GEOPOS N args", lambda: [[b"GEOPOS", b"geo", *members(b"p")]]),
    ("GEOHASH N args", lambda: [[b"GEOHASH", b"geo", *members(b"p")]]),
    ("GEODIST", one(b"GEODIST", b"geo", b"p1", b"p2")),
    (
        "GEOADD N args",
        lambda: [[b"GEOADD", b"geo2", *(x for i in range(N) for x in (b"1", b"1", b"q%d" % i))]],
    ),
    *generic(b"geo"),
    *final(b"geo"),
]

KEYS: list[Step] = [
    ("DBSIZE / RANDOMKEY", [[b"DBSIZE"], [b"RANDOMKEY"]]),
    ("KEYS *", one(b"KEYS", b"*")),
    ("KEYS k*9", one(b"KEYS", b"k*9")),
    ("KEYS long pattern", one(b"KEYS", b"*a*a*a*a*a*a*a*a*a*a*a*a*a*b")),
    ("SCAN COUNT big", one(b"SCAN", b"0", b"COUNT", K)),
    (
        "SCAN MATCH TYPE COUNT big",
        one(b"SCAN", b"0", b"MATCH", b"*9", b"TYPE", b"set", b"COUNT", K),
    ),
    ("MGET 600k", lambda: [[b"MGET", *members(b"k", min(N, 600_000))]]),
    ("EXISTS 600k", lambda: [[b"EXISTS", *members(b"k", min(N, 600_000))]]),
    ("TOUCH 600k", lambda: [[b"TOUCH", *members(b"k", min(N, 600_000))]]),
    ("INFO keyspace", one(b"INFO", b"keyspace")),
    (
        "expire 100k keys at once",
        lambda: [*([b"PEXPIRE", b"e%d" % i, b"20"] for i in range(100_000)), [b"sleep", b"1.0"]],
    ),
    ("DEL 100k keys", lambda: [[b"DEL", *members(b"k", 100_000)]]),
    ("UNLINK 100k keys", lambda: [[b"UNLINK", *members(b"k", 100_000, 100_000)]]),
    ("MSET 100k pairs", lambda: [[b"MSET", *pairs(0, 100_000, b"k", b"v")]]),
    ("MSETNX 100k pairs", lambda: [[b"MSETNX", *pairs(0, 100_000, b"n", b"v")]]),
    ("WATCH 100k keys", lambda: [[b"WATCH", *members(b"k", 100_000)], [b"UNWATCH"]]),
    ("WATCH 600k keys", lambda: [[b"WATCH", *members(b"k", min(N, 600_000))], [b"UNWATCH"]]),
    ("SUNIONSTORE 600k keys", lambda: [[b"SUNIONSTORE", b"u", *members(b"x", min(N, 600_000))]]),
    (
        "SINTERCARD 600k keys",
        lambda: [[b"SINTERCARD", b"%d" % min(N, 600_000), *members(b"x", min(N, 600_000))]],
    ),
    (
        "ZINTERCARD 600k keys",
        lambda: [[b"ZINTERCARD", b"%d" % min(N, 600_000), *members(b"x", min(N, 600_000))]],
    ),
    (
        "ZUNIONSTORE 600k keys",
        lambda: [[b"ZUNIONSTORE", b"zu", b"%d" % min(N, 600_000), *members(b"x", min(N, 600_000))]],
    ),
    (
        "ZINTERSTORE 600k keys (k0 first)",
        lambda: [[b"ZINTERSTORE", b"zu", b"%d" % min(N, 600_000), *members(b"k", min(N, 600_000))]],
    ),
    (
        "ZDIFF 600k keys",
        lambda: [[b"ZDIFF", b"%d" % min(N, 600_000), *members(b"x", min(N, 600_000))]],
    ),
    (
        "ZUNION 600k keys WEIGHTS",
        lambda: [
            [
                b"ZUNION",
                b"%d" % min(N, 600_000),
                *members(b"x", min(N, 600_000)),
                b"WEIGHTS",
                *[b"2"] * min(N, 600_000),
            ]
        ],
    ),
    (
        "BITFIELD N/4 ops",
        lambda: [
            [
                b"BITFIELD",
                b"bf",
                *(
                    x
                    for i in range(N // 4)
                    for x in (b"INCRBY", b"u8", b"#%d" % (i % 100_000), b"1")
                ),
            ]
        ],
    ),
    ("DEL 600k keys", lambda: [[b"DEL", *members(b"k", min(N, 600_000))]]),
    ("SWAPDB 0 1 twice", [[b"SWAPDB", b"0", b"1"], [b"SWAPDB", b"0", b"1"]]),
    ("MOVE big set", one(b"MOVE", b"s", b"1")),
    ("FLUSHDB ASYNC db 1", [[b"SELECT", b"1"], [b"FLUSHDB", b"ASYNC"], [b"SELECT", b"0"]]),
    ("BGREWRITEAOF / SAVE", [[b"SAVE"]]),
    ("FLUSHALL ASYNC", one(b"FLUSHALL", b"ASYNC")),
]


WAIT = [b"wait"]  # a step's pseudo-command: until no compaction's child runs

AOF: list[Step] = [  # kv with an append-only file (FAMILY_OPTIONS)
    ("BGREWRITEAOF of the big keyspace", [[b"BGREWRITEAOF"], WAIT]),
    ("SAVE of the big keyspace", one(b"SAVE")),
    ("BGSAVE", [[b"BGSAVE"], WAIT]),
    (
        "SADD N args during a BGREWRITEAOF",
        lambda: [[b"BGREWRITEAOF"], [b"SADD", b"ns", *members(b"n")], WAIT],
    ),
    ("HSET N args (AOF record)", lambda: [[b"HSET", b"nh", *pairs(0, N, b"f", b"")]]),
    ("DEL of the big set (AOF)", one(b"DEL", b"ns")),
    ("COPY / RENAME onto the big hash", [[b"COPY", b"h", b"h2"], [b"RENAME", b"k1", b"h2"]]),
    ("SET 100 MB", lambda: [[b"SET", b"big", b"x" * (100 << 20)]]),
    ("BGREWRITEAOF with a 100 MB string", [[b"BGREWRITEAOF"], WAIT]),
    ("SET over the 100 MB string", one(b"SET", b"big", b"small")),
    (
        "expire 100k keys at once (AOF: a DEL each)",
        lambda: [*([b"PEXPIRE", b"e%d" % i, b"20"] for i in range(100_000)), [b"sleep", b"1.0"]],
    ),
    (
        "RANDOMKEY among expired keys",
        lambda: [
            *([b"PEXPIRE", b"k%d" % i, b"1"] for i in range(min(N, 600_000))),
            [b"sleep", b"0.05"],
            [b"RANDOMKEY"],
        ],
    ),
    ("SWAPDB 0 1 twice (AOF)", [[b"SWAPDB", b"0", b"1"], [b"SWAPDB", b"0", b"1"]]),
    ("MOVE the big hash", one(b"MOVE", b"h", b"3")),
    ("FLUSHALL SYNC (AOF)", one(b"FLUSHALL", b"SYNC")),
    ("BGREWRITEAOF of nothing", [[b"BGREWRITEAOF"], WAIT]),
]


def _many_clients(port: int) -> list[socket.socket]:
    socks = []
    for i in range(CLIENTS):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(_cmd(b"CLIENT", b"SETNAME", b"c%d" % i))
        socks.append(s)
    for s in socks:
        s.recv(16)
    return socks


SERVER: list[Step] = [
    ("CLIENT LIST (many clients)", one(b"CLIENT", b"LIST")),
    ("CLIENT INFO", one(b"CLIENT", b"INFO")),
    ("CLIENT KILL USER nobody", one(b"CLIENT", b"KILL", b"USER", b"nobody")),
    (
        "CLIENT NO-EVICT/TRACKINGINFO",
        [[b"CLIENT", b"NO-EVICT", b"on"], [b"CLIENT", b"TRACKINGINFO"]],
    ),
    ("INFO", one(b"INFO")),
    ("INFO everything", one(b"INFO", b"everything")),
    ("MEMORY STATS/DOCTOR", [[b"MEMORY", b"STATS"], [b"MEMORY", b"DOCTOR"]]),
    ("CONFIG GET *", one(b"CONFIG", b"GET", b"*")),
    ("COMMAND", one(b"COMMAND")),
    ("COMMAND DOCS", one(b"COMMAND", b"DOCS")),
    ("COMMAND GETKEYS SORT", one(b"COMMAND", b"GETKEYS", b"SORT", b"l", b"STORE", b"d")),
    ("SLOWLOG GET -1", one(b"SLOWLOG", b"GET", b"-1")),
    ("LATENCY LATEST/DOCTOR", [[b"LATENCY", b"LATEST"], [b"LATENCY", b"DOCTOR"]]),
    ("ACL LIST/LOG", [[b"ACL", b"LIST"], [b"ACL", b"LOG"]]),
    ("PUBLISH to many subscribers", [[b"PUBLISH", b"ch", b"x" * 1000]]),
    ("PUBSUB CHANNELS/NUMSUB", [[b"PUBSUB", b"CHANNELS"], [b"PUBSUB", b"NUMSUB", b"ch"]]),
    ("SPUBLISH (SSUBSCRIBE/SUNSUBSCRIBE: a client of their own)", one(b"SPUBLISH", b"ch", b"x")),
    ("DEBUG DIGEST (refused: enable-debug-command no)", one(b"DEBUG", b"DIGEST")),
    ("LOLWUT", one(b"LOLWUT")),
    ("OBJECT HELP", one(b"OBJECT", b"HELP")),
    ("SAVE", one(b"SAVE")),
    ("BGSAVE", [[b"BGSAVE"], [b"sleep", b"1"]]),
    ("BGREWRITEAOF", [[b"BGREWRITEAOF"], [b"sleep", b"1"]]),
    ("PUBLISH of 4 MB to many subscribers", lambda: [[b"PUBLISH", b"ch", b"x" * (4 << 20)]]),
    (
        "HELLO 3 HGETALL / SMEMBERS (RESP3 map, set)",
        [[b"HELLO", b"3"], [b"HGETALL", b"h"], [b"SMEMBERS", b"s"], [b"HELLO", b"2"]],
    ),
    ("pipeline of 100k INCR", [[b"INCR", b"c%d" % (i % 100)] for i in range(100_000)]),
    (
        "MULTI of 100k INCR, EXEC",
        [[b"MULTI"], *([b"INCR", b"c%d" % (i % 100)] for i in range(100_000)), [b"EXEC"]],
    ),
    (
        "MULTI of 100k LRANGE 0 99, EXEC",
        [[b"MULTI"], *([b"LRANGE", b"l", b"0", b"99"] for _ in range(100_000)), [b"EXEC"]],
    ),
    (
        "SLOWLOG of commands of huge arguments",
        lambda: [
            [b"CONFIG", b"SET", b"slowlog-log-slower-than", b"0"],
            *([b"SET", b"sl", b"x" * (8 << 20)] for _ in range(20)),
            [b"SADD", b"sl2", *members(b"q", N // 4)],
            [b"SLOWLOG", b"GET", b"-1"],
            [b"CONFIG", b"SET", b"slowlog-log-slower-than", b"10000"],
        ],
    ),
    ("CLIENT KILL all the others", one(b"CLIENT", b"KILL", b"SKIPME", b"yes")),
]

HUGE_NAME = HUGE  # bytes of a client name

ADMIN: list[Step] = [
    ("CONFIG GET of N names", lambda: one(b"CONFIG", b"GET", *members(b"nosuch"))),
    (
        "CONFIG GET of 2,000 patterns",
        lambda: one(b"CONFIG", b"GET", *[b"*x%d*" % i for i in range(2000)]),
    ),
    ("CLIENT SETNAME of 100 MB", lambda: one(b"CLIENT", b"SETNAME", b"n" * HUGE_NAME)),
    ("HELLO 2 SETNAME of 100 MB", lambda: one(b"HELLO", b"2", b"SETNAME", b"n" * HUGE_NAME)),
    (
        "CLIENT SETINFO LIB-NAME of 100 MB",
        lambda: one(b"CLIENT", b"SETINFO", b"LIB-NAME", b"n" * HUGE_NAME),
    ),
    (
        "COMMAND GETKEYSANDFLAGS DEL of N keys",
        lambda: one(b"COMMAND", b"GETKEYSANDFLAGS", b"DEL", *members(b"k")),
    ),
    ("COMMAND INFO of N names", lambda: one(b"COMMAND", b"INFO", *members(b"x"))),
    ("LMPOP of N keys", lambda: one(b"LMPOP", b"%d" % N, *members(b"x"), b"LEFT")),
    ("ZMPOP of N keys", lambda: one(b"ZMPOP", b"%d" % N, *members(b"x"), b"MIN")),
    ("BITOP of N keys", lambda: one(b"BITOP", b"AND", b"dst", *members(b"x"))),
    ("CONFIG SET of N names", lambda: one(b"CONFIG", b"SET", *members(b"x"))),
    ("LATENCY HISTOGRAM of N names", lambda: one(b"LATENCY", b"HISTOGRAM", *members(b"x"))),
    ("SORT of N/2 GET #", lambda: one(b"SORT", b"nolist", *[b"GET", b"#"] * (N // 2))),
    (
        "SORT_RO of N/2 GET pattern",
        lambda: one(b"SORT_RO", b"nolist", *[b"GET", b"w_*"] * (N // 2)),
    ),
    ("COMMAND DOCS of N names", lambda: one(b"COMMAND", b"DOCS", *members(b"x"))),
]


def _ids(n: int) -> list[bytes]:
    return [b"%d" % (10**9 + i) for i in range(n)]  # (no such clients)


def _streams(n: int, prefix: bytes = b"b") -> list[bytes]:
    return members(prefix, n) + [b"$"] * n


BLOCKING: list[Step] = [  # blocking commands, CLIENT LIST/KILL ID and notifications, N keys
    ("BLPOP of N keys, timeout", lambda: one(b"BLPOP", *members(b"b"), b"0.3")),
    ("BZPOPMIN of N keys, timeout", lambda: one(b"BZPOPMIN", *members(b"b"), b"0.3")),
    (
        "BLMPOP of N keys, timeout",
        lambda: one(b"BLMPOP", b"0.3", b"%d" % N, *members(b"b"), b"LEFT"),
    ),
    (
        "BLPOP of N keys, the last one there",
        lambda: [[b"RPUSH", b"b%d" % (N - 1), b"x"], [b"BLPOP", *members(b"b"), b"0"]],
    ),
    (
        "XREAD BLOCK of N/2 streams, timeout",
        lambda: one(b"XREAD", b"BLOCK", b"300", b"STREAMS", *_streams(N // 2)),
    ),
    (
        "XREAD of N/2 streams, the last one there",
        lambda: [
            [b"XADD", b"b%d" % (N // 2 - 1), b"1-1", b"f", b"v"],
            [b"XREAD", b"COUNT", BIGCOUNT, b"STREAMS", *members(b"b", N // 2), *[b"0"] * (N // 2)],
            [b"DEL", b"b%d" % (N // 2 - 1)],
        ],
    ),
    (
        "XGROUP CREATE MKSTREAM of N/4 streams",
        lambda: [
            [b"XGROUP", b"CREATE", b"g%d" % i, b"g", b"$", b"MKSTREAM"] for i in range(N // 4)
        ],
    ),
    (
        "XREADGROUP BLOCK of N/4 streams, timeout",
        lambda: one(
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"BLOCK",
            b"300",
            b"STREAMS",
            *members(b"g", N // 4),
            *[b">"] * (N // 4),
        ),
    ),
    (
        "XADD to each of the N/4 streams",
        lambda: [[b"XADD", b"g%d" % i, b"1-1", b"f", b"v"] for i in range(N // 4)],
    ),
    (
        "XREADGROUP of N/4 streams, each one new",
        lambda: one(
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"STREAMS",
            *members(b"g", N // 4),
            *[b">"] * (N // 4),
        ),
    ),
    (
        "XREAD of N/4 streams, each one there",
        lambda: one(b"XREAD", b"STREAMS", *members(b"g", N // 4), *[b"0"] * (N // 4)),
    ),
    ("DEL of the N/4 streams", lambda: one(b"DEL", *members(b"g", N // 4))),
    ("CLIENT LIST ID of N IDs", lambda: one(b"CLIENT", b"LIST", b"ID", *_ids(N))),
    (
        "CLIENT KILL ID of N/2 options",
        lambda: one(b"CLIENT", b"KILL", *(x for i in _ids(N // 2) for x in (b"ID", i))),
    ),
    ("notify KEA on", one(b"CONFIG", b"SET", b"notify-keyspace-events", b"KEAm")),
    ("MSET of N keys, notified", lambda: one(b"MSET", *pairs(0, N, b"k", b"v"))),
    ("MGET of N keys, notified", lambda: one(b"MGET", *members(b"k"), *members(b"none"))),
    ("DEL of N keys, notified", lambda: one(b"DEL", *members(b"k"))),
    ("MSETNX of N keys, notified", lambda: one(b"MSETNX", *pairs(0, N, b"k", b"v"))),
    ("UNLINK of N keys, notified", lambda: one(b"UNLINK", *members(b"k"))),
    ("LPUSH of N elements, notified", lambda: one(b"LPUSH", b"l", *members(b"e"))),
    ("RPUSH of N elements, notified", lambda: one(b"RPUSH", b"l", *members(b"e"))),
    ("notify off", one(b"CONFIG", b"SET", b"notify-keyspace-events", b"")),
]

MULTI: list[Step] = [
    (
        "MULTI SMEMBERS+HGETALL+ZRANGE EXEC",
        [
            [b"MULTI"],
            [b"SMEMBERS", b"s"],
            [b"HGETALL", b"h"],
            [b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES"],
            [b"EXEC"],
        ],
    ),
    (
        "MULTI SUNIONSTORE+SORT+ZUNIONSTORE EXEC",
        [
            [b"MULTI"],
            [b"SUNIONSTORE", b"u", b"s", b"s2"],
            [b"SORT", b"l"],
            [b"ZUNIONSTORE", b"zu", b"2", b"z", b"zl"],
            [b"EXEC"],
        ],
    ),
    (
        "MULTI SRANDMEMBER+SPOP+ZPOPMIN EXEC",
        [
            [b"MULTI"],
            [b"SRANDMEMBER", b"s", b"-" + H],
            [b"COPY", b"z", b"zp"],
            [b"ZPOPMIN", b"zp", K],
            [b"EXEC"],
        ],
    ),
    (
        "MULTI COPY x4 EXEC",
        [
            [b"MULTI"],
            [b"COPY", b"s", b"c1"],
            [b"COPY", b"h", b"c2"],
            [b"COPY", b"z", b"c3"],
            [b"COPY", b"l", b"c4"],
            [b"EXEC"],
        ],
    ),
    ("MULTI DEL x4 EXEC", [[b"MULTI"], [b"DEL", b"c1", b"c2", b"c3", b"c4"], [b"EXEC"]]),
    (
        "MULTI LRANGE+LPOP big EXEC",
        [
            [b"MULTI"],
            [b"LRANGE", b"l", b"0", b"-1"],
            [b"COPY", b"l", b"lp"],
            [b"LPOP", b"lp", K],
            [b"EXEC"],
        ],
    ),
    ("MULTI SMEMBERS x4 EXEC", [[b"MULTI"], *([b"SMEMBERS", b"s"] for _ in range(4)), [b"EXEC"]]),
    (
        "pipeline SMEMBERS HGETALL LRANGE ZRANGE",
        [
            [b"SMEMBERS", b"s"],
            [b"HGETALL", b"h"],
            [b"LRANGE", b"l", b"0", b"-1"],
            [b"ZRANGE", b"z", b"0", b"-1"],
        ],
    ),
    (
        "pipeline SUNION SINTER SDIFF SORT",
        [
            [b"SUNION", b"s", b"s2"],
            [b"SINTER", b"s", b"s2"],
            [b"SDIFF", b"s", b"s2"],
            [b"SORT", b"l"],
        ],
    ),
    (
        "pipeline COPY x4 DEL x4",
        [
            [b"COPY", b"s", b"c1"],
            [b"COPY", b"h", b"c2"],
            [b"COPY", b"z", b"c3"],
            [b"COPY", b"l", b"c4"],
            [b"DEL", b"c1", b"c2", b"c3", b"c4"],
        ],
    ),
    ("pipeline 8 SRANDMEMBER -N", [[b"SRANDMEMBER", b"s", b"-" + H] for _ in range(8)]),
    ("FLUSHALL SYNC", one(b"FLUSHALL", b"SYNC")),
]

FAMILY_STEPS: dict[str, tuple[Callable[[Client], None], list[Step]]] = {
    "list": (load_list, LIST),
    "set": (load_set, SET),
    "intset": (load_intset, INTSET),
    "hash": (load_hash, HASH),
    "zset": (load_zset, ZSET),
    "stream": (load_stream, STREAM),
    "hllgeo": (load_hllgeo, HLLGEO),
    "keys": (load_keys, KEYS),
    "server": (load_server, SERVER),
    "multi": (load_multi, MULTI),
    "admin": (load_nothing, ADMIN),
    "blocking": (load_nothing, BLOCKING),
    "aof": (load_aof, AOF),
}
FAMILY_OPTIONS = {"aof": 'data = "kv.aof"\n'}  # more lines of the kv service's table


# -- running -----------------------------------------------------------------------


def _short(reply: Any) -> str:
    if isinstance(reply, hiredis.ReplyError):
        return "-" + str(reply)[:40]
    if isinstance(reply, list):
        return f"[{len(reply)}]"
    if isinstance(reply, bytes):
        return f"${len(reply)}" if len(reply) > 20 else reply.decode(errors="replace")
    return repr(reply)[:20]


def _p99(xs: list[float]) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.99 * (len(xs) - 1) + 0.5))]


Row = tuple[float, float, float, str]  # worst ms, p99 ms, kv s, reply


def run_family(name: str, twistd: str | None) -> tuple[dict[str, Row], float, list[Any]]:
    """One family on a fresh suite: {step: row}, the load time, kv's COMMAND table."""
    loader, steps = FAMILY_STEPS[name]
    tmp = Path(tempfile.mkdtemp(prefix="kv-sweep-"))
    proc, kv, echo = start_kv_and_echo(tmp, pin(0), twistd or TWISTD, FAMILY_OPTIONS.get(name, ""))
    out: dict[str, Row] = {}
    table: list[Any] = []
    try:
        c = Client(kv)
        t = time.perf_counter()
        loader(c)
        loaded = time.perf_counter() - t
        table = c.pipeline([[b"COMMAND"]])[0]
        extra = _many_clients(kv) if name == "server" else []
        subs = []
        if name == "server":  # PUBLISH's subscribers: they read nothing
            for _ in range(200):
                s = socket.create_connection(("127.0.0.1", kv))
                s.sendall(_cmd(b"SUBSCRIBE", b"ch"))
                subs.append(s)
        ctx = multiprocessing.get_context("fork")
        stop_flag = ctx.Event()
        parent_end, child_end = ctx.Pipe()
        pinger = ctx.Process(  # (waits up to 600 s a round trip: a stall of minutes too)
            target=_pinger, args=(echo, stop_flag, ctx.Value("i", 0), child_end, 600), daemon=True
        )
        pinger.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        spans = []
        payload = b""
        for step, cmds in steps:
            if ONLY and not any(step.startswith(o) for o in ONLY):
                continue
            argvs = cmds() if callable(cmds) else cmds
            time.sleep(0.15)
            a = time.monotonic()
            t = time.perf_counter()
            replies: list[Any] = []
            try:
                chunk: list[Argv] = []
                for argv in [*argvs, [b"sleep", b"0"]]:
                    if b"$last" in argv:  # (the previous step's reply: DUMP's payload)
                        argv = [payload if x == b"$last" else x for x in argv]
                    if argv[0] in (b"sleep", b"wait"):
                        if chunk:
                            replies += c.pipeline(chunk)
                            chunk = []
                        if argv[0] == b"wait":
                            _compacted(c)
                        else:
                            time.sleep(float(argv[1]))
                    else:
                        chunk.append(argv)
            except (ConnectionError, OSError) as e:
                replies = [f"closed: {e}"]
                c = Client(kv)
            del argvs
            payload = replies[-1] if replies and type(replies[-1]) is bytes else b""
            print(f"  {name} {step}: {time.perf_counter() - t:.2f} s", file=sys.stderr, flush=True)
            spans.append(
                (step, a - t0, time.monotonic() - t0, time.perf_counter() - t, replies[-1:])
            )
        time.sleep(0.3)
        stop_flag.set()
        samples = parent_end.recv()
        pinger.join(10)
        base = samples[0][0]
        for step, a, b, took, last in spans:
            during = [r * 1000 for w, r in samples if a - 0.01 <= w - base - 0.5 <= b + 0.05]
            out[step] = (
                max(during, default=0.0),
                _p99(during),
                took,
                _short(last[0]) if last else "",
            )
        quiet = [r * 1000 for w, r in samples if w - base < 0.5]
        out["(baseline)"] = (max(quiet, default=0.0), _p99(quiet), 0.0, "")
        for s in extra + subs:
            s.close()
    finally:
        stop(proc)
    return out, loaded, table


def _compacted(c: Client) -> None:
    """Until no BGREWRITEAOF or BGSAVE child runs (INFO persistence), 300 s at most."""
    end = time.monotonic() + 300
    while time.monotonic() < end:
        info = c.pipeline([[b"INFO", b"persistence"]])[0]
        if b"_in_progress:1" not in info and b"scheduled:1" not in info:
            return
        time.sleep(0.05)


def coverage(table: list[Any]) -> list[str]:
    """kv's commands that take a key (or are containers of such) and that no step names."""
    named = set()
    for _, steps in FAMILY_STEPS.values():
        for step, cmds in steps:  # (a step made by a function names its command first)
            if not callable(cmds):
                named.update(a[0].lower() for a in cmds)
            named.update(w.lower().encode() for w in step.replace("/", " ").split())
    missing = []
    for entry in table:
        cmd, first_key = entry[0], entry[3]
        if first_key and cmd.lower() not in named:
            missing.append(cmd.decode())
    return sorted(missing)


def main() -> None:
    # (killed by `timeout`: the suite it started is stopped too, by run_family's finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    # (the `server` family's CLIENTS connections and 200 subscribers, in this process and
    # in the suite's: a normal user's 1,024 open files stopped it with EMFILE)
    open_files(CLIENTS + 1024)
    fams = FAMILIES or list(FAMILY_STEPS)
    before: dict[str, dict[str, Row]] = {}
    bindir = before_bin()
    results: dict[str, dict[str, Row]] = {}
    table: list[Any] = []
    for fam in fams:
        if bindir is not None:
            before[fam] = run_family(fam, str(bindir / "twistd"))[0]
        t = time.monotonic()
        results[fam], loaded, table = run_family(fam, os.environ.get("KV_SWEEP_TWISTD"))
        print(
            f"# {fam}: loaded in {loaded:.1f} s, run in {time.monotonic() - t:.0f} s, "
            f"load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    print(f"\nN = {N:,}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    head = f"{'family':7} {'step':42} {'worst ms':>9} {'p99 ms':>7} {'kv s':>7}"
    if before:
        head += f" {'before':>7} {'b p99':>6}"
    print(head + "  reply")
    over = []
    for fam, rows in results.items():
        for step, (worst, p99, took, reply) in rows.items():
            line = f"{fam:7} {step[:42]:42} {worst:9.1f} {p99:7.1f} {took:7.2f}"
            if before:
                b = before.get(fam, {}).get(step)
                line += f" {b[0]:7.1f} {b[1]:6.1f}" if b else f" {'':>7} {'':>6}"
            print(f"{line}  {reply}")
            if worst > 50 and step != "(baseline)":
                over.append(f"{fam}/{step}={worst:.0f}")
    print(f"\nover 50 ms: {len(over)}: " + ", ".join(over))
    if table:
        print(
            "kv commands with a key no step runs (strings: another sweep's): "
            + " ".join(coverage(table))
        )


if __name__ == "__main__":
    main()
