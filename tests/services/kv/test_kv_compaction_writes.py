"""
A compaction under concurrent writes: whatever way kv compacts its data file (a
forked child, as by default; or in the server's own process, a slice a turn, with
C{fork_max_memory = 0}), the file it swaps in, replayed by a fresh server, holds
exactly the data set the running server holds, every write served while it ran
included.

The server is C{twistd portsuite} in a subprocess (its own reactor, turn after
turn, as in production); it is filled with every type of key in several databases,
big ones among them (so that a compaction lasts many turns), then BGREWRITEAOF is
sent and a seeded random mix of writes from a few clients goes on until it has
ended. The data sets are compared by type-aware reads (TYPE, PEXPIRETIME, then
GET/LRANGE/HGETALL/SMEMBERS/ZRANGE/XRANGE/XINFO STREAM FULL), on the running
server and on a second one started on a copy of the file.

The writes that prove something are the ones served between two INFO persistence
probes that both say the same compaction was running: the test counts them (and
requires the rare ones, FLUSHDB, SWAPDB, a big COPY, a blocked client served, among
them), and starts another compaction when the first one ended too soon for enough
of them. The smaller cases change whole databases while a BGSAVE runs: SWAPDB
(the snapshot's keys live on elsewhere), and FLUSHALL between SWAPDBs.

Checked the other way: with the child skipping sets, or the parent not copying the
appends made since the child's last copy, or the appends' SELECT left out, the
cases fail (a data set apart, or a file that does not load).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
from kvdb_help import wait_for

from portsuite.testing import suite_running
from portsuite_services.kv import Settings

pytestmark = pytest.mark.e2e

DATABASES = 16
USED_DBS = 4  # the random writes' databases (0-3): SELECT, MOVE, COPY … DB, SWAPDB
BIG = 100_000  # members of each big key: a compaction of many turns
MIN_DURING = 60  # batches of writes served while one compaction ran, at least
MAX_ROUNDS = 20  # compactions started, at most, to get them (without fork: short ones)
MAX_OPS = 12_000  # the random writes, at most (then the compaction is waited for)…
WRITE_SECONDS = 10.0  # …and for at most this long
LONG_TTL = (3600, 7200)  # seconds: alive when the data sets are compared
SHORT_TTL = (50, 800)  # milliseconds: expire while the compaction runs

MODES = [
    pytest.param({}, id="fork"),
    pytest.param(
        {"fork_max_memory": 0},
        id="in-process",
        marks=pytest.mark.skipif(
            "fork_max_memory" not in attrs.fields_dict(Settings),
            reason="kv has no fork_max_memory setting yet (the compaction without fork, "
            "services/kv/snapshot.py): this param runs once it is merged",
        ),
    ),
]


# -- the servers ---------------------------------------------------------------------


@contextmanager
def _kv(folder: Path, data: Path, mode: dict[str, Any]) -> Iterator[int]:
    """A kv (twistd in a subprocess) on the data file C{data}: its port."""
    folder.mkdir(exist_ok=True)
    cfg = {"services": {"kv": {"type": "kv", "port": 0, "data": str(data), **mode}}}
    with suite_running(cfg, base_dir=folder, subprocess=True, timeout=60) as s:
        yield s.port("kv")
        assert "Traceback" not in s.log(), s.log()[-3000:]


class _Conn:
    """One RESP connection: commands pipelined, the replies raw (errors as values)."""

    def __init__(self, port: int):
        self.c = redis.Connection(port=port, socket_timeout=120, protocol=2)
        self.c.connect()

    def send(self, cmds: list[list[Any]]) -> None:
        self.c.send_packed_command(self.c.pack_commands(cmds))

    def read(self) -> Any:
        try:
            return self.c.read_response()
        except redis.ResponseError as e:
            return e

    def run(self, cmds: list[list[Any]]) -> list[Any]:
        self.send(cmds)
        return [self.read() for _ in cmds]

    def call(self, *argv: Any) -> Any:
        reply = self.run([list(argv)])[0]
        assert not isinstance(reply, redis.ResponseError), (argv, reply)
        return reply

    def info(self, section: str = "persistence") -> dict[str, str]:
        text = self.call("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def close(self) -> None:
        self.c.disconnect()


# -- the data sets, type by type -----------------------------------------------------


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


# what a replay does not keep, as in Redis 7.0 (kv's reference): a consumer's last
# interaction (the time of the replay), a group's entries-read and so its lag (an
# XREADGROUP is recorded as XCLAIMs … LASTID, which leave entries-read unknown: Redis
# 7.0.15's AOF holds the same); and the radix tree's shape, not the data
_UNKEPT = {
    b"seen-time",
    b"active-time",
    b"entries-read",
    b"lag",
    b"radix-tree-keys",
    b"radix-tree-nodes",
}


def _stream_info(full: list[Any]) -> Any:
    """
    XINFO STREAM FULL as a replay keeps it, as Redis 7.0's rewrite does: pending entries
    whose ID was deleted (XDEL) are dropped by the rewrite's XCLAIM … FORCE (Redis 7's
    XCLAIM clears them; a consumer holding only such entries goes with them), and
    consumers come in name order (Redis keeps them in a radix tree). A compaction without fork writes a stream changed meanwhile that way, where a
    child's file replays the commands that changed it.
    """
    info = {k: v for k, v in _pairs(full).items() if k not in _UNKEPT}
    ids = {entry[0] for entry in info.get(b"entries") or []}
    groups = []
    for g in info.pop(b"groups") or []:
        group = {k: v for k, v in _pairs(g).items() if k not in _UNKEPT}
        group[b"pending"] = [p for p in group[b"pending"] if p[0] in ids]
        group[b"pel-count"] = len(group[b"pending"])
        consumers = []
        for c in group[b"consumers"]:
            consumer = {k: v for k, v in _pairs(c).items() if k not in _UNKEPT}
            kept = [p for p in consumer[b"pending"] if p[0] in ids]
            if consumer[b"pending"] and not kept:
                continue  # (made by its XCLAIMs alone, which all clear: gone, as in Redis)
            consumer[b"pending"] = kept
            consumer[b"pel-count"] = len(kept)
            consumers.append(consumer)
        group[b"consumers"] = sorted(consumers, key=lambda c: c[b"name"])
        groups.append(group)
    info[b"groups"] = sorted(groups, key=lambda g: g[b"name"])
    return info


def _reads(kind: bytes, key: bytes) -> list[list[Any]]:
    if kind == b"string":
        return [["GET", key]]
    if kind == b"list":
        return [["LRANGE", key, 0, -1]]
    if kind == b"hash":
        return [["HGETALL", key]]
    if kind == b"set":
        return [["SMEMBERS", key]]
    if kind == b"zset":
        return [["ZRANGE", key, 0, -1, "WITHSCORES"]]
    if kind == b"stream":
        return [["XRANGE", key, "-", "+"], ["XINFO", "STREAM", key, "FULL", "COUNT", 0]]
    raise AssertionError(f"{key!r}: unexpected type {kind!r}")


def _gone(kind: bytes, replies: list[Any]) -> bool:
    """The key expired between KEYS and its reads (a list, hash, set or zset is never empty)."""
    if kind == b"none" or any(r is None or isinstance(r, redis.ResponseError) for r in replies):
        return True
    return kind != b"stream" and replies[0] == []


def _value(kind: bytes, replies: list[Any]) -> Any:
    if kind == b"string":
        v = replies[0]
        # a HyperLogLog: its registers (the 8 bytes after "HYLL" and the encoding
        # byte cache a cardinality a PFCOUNT may have filled in or not)
        return v[:8] + v[16:] if v.startswith(b"HYLL") else v
    if kind == b"hash":
        return _pairs(replies[0])
    if kind == b"set":
        return sorted(replies[0])
    if kind == b"stream":
        return replies[0], _stream_info(replies[1])
    return replies[0]


Snapshot = dict[tuple[int, bytes], tuple[bytes, int, Any]]


def _snapshot(port: int) -> tuple[Snapshot, int]:
    """
    Every key of every database: (db, key) -> (type, PEXPIRETIME, value); and how
    many keys expired while they were read.
    """
    c = _Conn(port)
    out: Snapshot = {}
    gone = 0
    try:
        for db in range(DATABASES):
            c.call("SELECT", db)
            keys = c.call("KEYS", "*")
            for lo in range(0, len(keys), 200):
                chunk = keys[lo : lo + 200]
                meta = c.run([[cmd, k] for k in chunk for cmd in ("TYPE", "PEXPIRETIME")])
                kinds, ttls = meta[::2], meta[1::2]
                reads = [
                    _reads(kind, k) if kind != b"none" else []
                    for kind, k in zip(kinds, chunk, strict=True)
                ]
                replies = c.run([cmd for r in reads for cmd in r])
                at = 0
                for key, kind, ttl, r in zip(chunk, kinds, ttls, reads, strict=True):
                    got = replies[at : at + len(r)]
                    at += len(r)
                    if _gone(kind, got):
                        gone += 1
                    else:
                        out[db, key] = (kind, ttl, _value(kind, got))
    finally:
        c.close()
    return out, gone


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) < 300 else text[:300] + f"… ({len(text)} chars)"


def _where(a: Any, b: Any, path: str = "") -> str:
    """Where C{a} and C{b} first differ: a path into them, and the two values there."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            if a.get(k) != b.get(k):
                return _where(a.get(k), b.get(k), f"{path}[{k!r}]")
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                return _where(x, y, f"{path}[{i}]")
        if len(a) != len(b):
            return f"{path}: {len(a)} items, replayed {len(b)}"
    return f"{path}: {_short(a)}, replayed {_short(b)}"


def _differences(live: Snapshot, replayed: Snapshot) -> list[str]:
    out = []
    for k in sorted(live.keys() | replayed.keys()):
        a, b = live.get(k), replayed.get(k)
        if a != b:
            out.append(f"db {k[0]} {k[1]!r} (type, pexpiretime, value){_where(a, b)}")
    return out


def _assert_same(live: Snapshot, replayed: Snapshot) -> None:
    diff = _differences(live, replayed)
    assert not diff, f"{len(diff)} keys differ, e.g.:\n" + "\n".join(diff[:8])


def _settled_snapshot(port: int) -> Snapshot:
    """
    The live data set once the short TTLs have all run out (a key expiring between
    this read and the replay's would differ by time, not by a fault).
    """
    got: list[Snapshot] = []

    def settled() -> bool:
        snap, gone = _snapshot(port)
        soon = time.time() * 1000 + LONG_TTL[0] * 1000 / 2
        if gone or any(0 < ttl < soon for _, ttl, _ in snap.values()):
            return False
        got.append(snap)
        return True

    wait_for(settled, 60, "the short TTLs' end")
    return got[0]


def _replay(tmp_path: Path, aof: Path) -> Snapshot:
    """The data set a fresh server holds, started on a copy of C{aof}."""
    fresh = tmp_path / "replay"
    fresh.mkdir()
    shutil.copyfile(aof, fresh / "kv.aof")
    try:
        with _kv(fresh, fresh / "kv.aof", {}) as port:
            snap, gone = _snapshot(port)
    except RuntimeError as e:  # ("twistd exited …": it refused the file, in one line)
        pytest.fail(f"a fresh server does not load the compacted file: {e}")
    assert not gone
    return snap


# -- the fill ------------------------------------------------------------------------

N = {"s": 60, "n": 20, "l": 30, "h": 30, "S": 30, "z": 30, "x": 10, "p": 10, "t": 40}
BIG_KEYS = ("big:list", "big:set", "big:hash", "big:zset")


def _fill(c: _Conn, rng: random.Random, big: int = BIG) -> None:
    """Every type of key in databases 0-3, some with TTLs; the big keys in db 0."""
    for db in range(USED_DBS):
        cmds: list[list[Any]] = [["SELECT", db]]
        for i in range(N["s"]):
            cmds.append(["SET", f"s:{i}", f"v{db}.{i}" * rng.randint(1, 20)])
        for i in range(N["n"]):
            cmds.append(["SET", f"n:{i}", rng.randint(-1000, 1000)])
        for i in range(N["l"]):
            cmds.append(["RPUSH", f"l:{i}", *(f"e{j}" for j in range(rng.randint(1, 20)))])
        for i in range(N["h"]):
            fields = [x for j in range(rng.randint(1, 20)) for x in (f"f{j}", f"{rng.random()}")]
            cmds.append(["HSET", f"h:{i}", *fields])
        for i in range(N["S"]):
            cmds.append(["SADD", f"S:{i}", *(f"m{rng.randrange(50)}" for _ in range(10))])
        for i in range(N["z"]):
            pairs = [x for j in range(rng.randint(1, 20)) for x in (rng.randint(-9, 9), f"m{j}")]
            cmds.append(["ZADD", f"z:{i}", *pairs])
        for i in range(N["p"]):  # sparse ones, and dense ones (thousands of elements)
            cmds.append(["PFADD", f"p:{i}", *(f"e{j}" for j in range(10 if i % 2 else 3000))])
        for i in range(N["x"]):
            key = f"x:{i}"
            for j in range(30):
                cmds.append(["XADD", key, f"{j + 1}-{db}", "f", f"{j}", "g", f"{i}"])
            cmds += [
                ["XGROUP", "CREATE", key, "g1", "0"],
                ["XGROUP", "CREATE", key, "g2", "$"],
                ["XREADGROUP", "GROUP", "g1", "c1", "COUNT", 10, "STREAMS", key, ">"],
                ["XREADGROUP", "GROUP", "g1", "c2", "COUNT", 5, "STREAMS", key, ">"],
                ["XACK", key, "g1", f"2-{db}", f"3-{db}"],
                ["XDEL", key, f"20-{db}"],
                ["XGROUP", "CREATECONSUMER", key, "g2", "idle"],
            ]
        for prefix in ("s", "l", "h", "S", "z"):  # long TTLs on some
            for i in range(0, N[prefix], 7):
                cmds.append(["EXPIRE", f"{prefix}:{i}", rng.randint(*LONG_TTL)])
        for r in c.run(cmds):
            assert not isinstance(r, redis.ResponseError), r
    c.call("SELECT", 0)
    step = 1000
    for lo in range(0, big, step):
        members = [f"m{j}" for j in range(lo, min(big, lo + step))]
        c.run(
            [
                ["RPUSH", "big:list", *members],
                ["SADD", "big:set", *members],
                ["HSET", "big:hash", *(x for m in members for x in (m, m * 2))],
                ["ZADD", "big:zset", *(x for j, m in enumerate(members) for x in (lo + j, m))],
            ]
        )
    assert c.call("LLEN", "big:list") == big


# -- the random writes ---------------------------------------------------------------

PREFIXES = ["s", "n", "l", "h", "S", "z", "x", "p"]  # (t: short TTLs; big:, bl:, bz: apart)
# the rare writes: each compaction sees them all, early (see Writes.batch)
SPECIALS = ["FLUSHDB", "FLUSHDB", "SWAPDB", "SWAPDB", "SWAPDB", "SWAPDB", "COPYBIG", "COPYBIG"]
SPECIALS_WITHIN = 12  # batches of a compaction's start (one without fork may last 10-20)
ALL_RARE = {*SPECIALS, "served a BLOCK"}
# what a random write may be answered (a key of another type, none, a group missing…;
# redis-py drops the "ERR " prefix)
EXPECTED_ERRORS = (
    "WRONGTYPE",
    "NOGROUP",
    "BUSYGROUP",
    "no such key",
    "source and destination objects are the same",
    "value is not an integer",
    "value is not a valid float",
    "hash value is not a float",
    "no such key",
    "index out of range",
    "The XGROUP subcommand requires the key to exist",
)


class Writes:
    """A seeded random mix of writes, every type and keyspace command, a batch at a time."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.ids: list[bytes] = []  # stream ids seen (XDEL, XACK, XCLAIM take them)
        self.specials: dict[int, str] = {}
        self.last: str | None = None  # the rare write of the last batch
        self.done: set[str] = set()  # the rare writes served while a compaction ran
        self.errors: dict[str, int] = {}

    def round(self) -> None:
        """A compaction starts: its rare writes, at random batches among its first ones."""
        at = self.rng.sample(range(SPECIALS_WITHIN), len(SPECIALS) + 1)
        self.specials = dict(zip(at, [*SPECIALS, "BLOCK"], strict=True))

    def batch(self, n: int) -> tuple[list[list[Any]], bool]:
        """The C{n}th batch of this compaction: (its commands, whether a client blocks first)."""
        special = self.specials.pop(n, None)
        self.last = None
        cmds = [c for _ in range(self.rng.randint(1, 6)) for c in self.op()]
        if special is not None and special != "BLOCK":
            self.last = special
            cmds += self.rare(special)
        return cmds, special == "BLOCK"

    def key(self, prefix: str | None = None) -> str:
        p = prefix or self.rng.choice(PREFIXES)
        return f"{p}:{self.rng.randrange(N[p])}"

    def member(self) -> str:
        return f"m{self.rng.randrange(60)}"

    def sid(self) -> bytes:
        return self.rng.choice(self.ids) if self.ids else b"1-0"

    def op(self) -> list[list[Any]]:
        rng, key, m = self.rng, self.key, self.member
        r = rng.random()
        if r < 0.08:  # the big keys (in whatever database SWAPDB put them)
            return [
                rng.choice(
                    [
                        ["RPUSH", "big:list", m()],
                        ["LPOP", "big:list"],
                        ["LMOVE", "big:list", key("l"), "LEFT", "RIGHT"],
                        ["RPOPLPUSH", key("l"), "big:list"],
                        ["HSET", "big:hash", m(), rng.random()],
                        ["HDEL", "big:hash", f"m{rng.randrange(BIG)}"],
                        ["SADD", "big:set", f"new{rng.randrange(1000)}"],
                        ["SREM", "big:set", f"m{rng.randrange(BIG)}"],
                        ["ZADD", "big:zset", rng.randint(-5, 5), m()],
                        ["ZREM", "big:zset", f"m{rng.randrange(BIG)}"],
                        ["ZPOPMIN", "big:zset"],
                    ]
                )
            ]
        if r < 0.10:
            return [["SELECT", rng.randrange(USED_DBS)]]
        if r < 0.13:  # a transaction
            ops = [c for _ in range(rng.randint(1, 4)) for c in self.simple()]
            return [["MULTI"], *ops, ["EXEC"]]
        return self.simple()

    def rare(self, what: str) -> list[list[Any]]:
        rng = self.rng
        if what == "FLUSHDB":  # never db 0's: the big keys stay (a compaction stays long)
            return [["SELECT", rng.randint(2, USED_DBS - 1)], ["FLUSHDB"]]
        if what == "SWAPDB":
            return [["SWAPDB", rng.randrange(USED_DBS), rng.randrange(USED_DBS)]]
        big = rng.choice(BIG_KEYS)
        return [["COPY", big, f"{big}:copy", "REPLACE"]]

    def simple(self) -> list[list[Any]]:
        rng, key, m = self.rng, self.key, self.member
        p = rng.choice(["str", "list", "hash", "set", "zset", "stream", "hll", "ttl", "keys"])
        if p == "str":
            t = f"t:{rng.randrange(N['t'])}"
            choices = [
                ["SET", key("s"), f"v{rng.random()}"],
                ["SET", t, "short", "PX", rng.randint(*SHORT_TTL)],
                ["APPEND", key("s"), "+"],
                ["SETRANGE", key("s"), rng.randrange(30), "~"],
                ["GET", t],  # (expired: deleted as it is read, the DEL recorded)
                ["GETDEL", key("s")],
                ["GETEX", key("s"), "PX", rng.randint(*SHORT_TTL)],
                ["INCR", key("n")],
                ["INCRBY", key("n"), rng.randint(-50, 50)],
                ["INCRBYFLOAT", key("n"), f"{rng.random():.3f}"],
            ]
        elif p == "list":
            choices = [
                ["RPUSH", key("l"), m(), m()],
                ["LPOP", key("l")],
                ["LMOVE", key("l"), key("l"), "LEFT", "RIGHT"],
                ["RPOPLPUSH", key("l"), key("l")],
                ["LSET", key("l"), 0, m()],
                ["LTRIM", key("l"), 0, rng.randint(3, 15)],
            ]
        elif p == "hash":
            choices = [
                ["HSET", key("h"), f"f{rng.randrange(25)}", rng.random(), "g", m()],
                ["HDEL", key("h"), f"f{rng.randrange(25)}"],
                ["HINCRBYFLOAT", key("h"), f"f{rng.randrange(25)}", "0.5"],
            ]
        elif p == "set":
            choices = [
                ["SADD", key("S"), m(), m()],
                ["SREM", key("S"), m()],
                ["SMOVE", key("S"), key("S"), m()],
                ["SPOP", key("S")],
                ["SUNIONSTORE", key("S"), key("S"), key("S")],
            ]
        elif p == "zset":
            choices = [
                ["ZADD", key("z"), rng.randint(-20, 20), m()],
                ["ZADD", key("z"), "INCR", f"{rng.random():.6f}", m()],
                ["ZREM", key("z"), m()],
                ["ZPOPMIN", key("z")],
                ["ZUNIONSTORE", key("z"), 2, key("z"), key("z"), "AGGREGATE", "MAX"],
            ]
        elif p == "stream":
            x, c = key("x"), f"c{rng.randint(1, 3)}"
            choices = [
                ["XADD", x, "*", "f", m()],
                ["XADD", x, "MAXLEN", "~", 40, "*", "f", m()],
                ["XDEL", x, self.sid()],
                ["XTRIM", x, "MAXLEN", rng.randint(10, 40)],
                ["XREADGROUP", "GROUP", "g1", c, "COUNT", 2, "STREAMS", x, ">"],
                ["XACK", x, "g1", self.sid(), self.sid()],
                ["XCLAIM", x, "g1", c, 0, self.sid()],
                ["XAUTOCLAIM", x, "g1", c, 0, "0-0", "COUNT", 2],
                ["XGROUP", "CREATE", x, "g1", "0", "MKSTREAM"],
                ["XGROUP", "DELCONSUMER", x, "g1", c],
            ]
        elif p == "hll":  # (a PFMERGE of dense ones takes kv ~20 ms: a few)
            choices = [["PFADD", key("p"), m(), f"x{rng.randrange(10**6)}"]] * 9
            choices.append(["PFMERGE", key("p"), key("p"), key("p")])
        elif p == "ttl":
            k = key()
            choices = [
                ["EXPIRE", k, rng.randint(*LONG_TTL)],
                ["PEXPIRE", k, rng.randint(*SHORT_TTL)],
                ["PERSIST", k],
                ["PEXPIREAT", k, int(time.time() * 1000) + rng.randint(*SHORT_TTL)],
            ]
        else:
            k = key()
            other = key(k.split(":")[0])
            choices = [
                ["DEL", k],
                ["UNLINK", k],
                ["RENAME", k, other],
                ["COPY", k, other, "REPLACE"],
                ["COPY", k, other, "DB", rng.randrange(USED_DBS), "REPLACE"],
                ["MOVE", k, rng.randrange(USED_DBS)],
            ]
        return [rng.choice(choices)]

    def seen(self, cmds: list[list[Any]], replies: list[Any]) -> None:
        """The replies: the stream ids the XADDs made kept; only the errors expected."""
        for cmd, reply in zip(cmds, replies, strict=True):
            if cmd[0] == "XADD" and isinstance(reply, bytes) and reply[:1].isdigit():
                self.ids = (self.ids + [reply])[-200:]
            for r in reply if cmd[0] == "EXEC" and isinstance(reply, list) else [reply]:
                if isinstance(r, redis.ResponseError):
                    assert str(r).startswith(EXPECTED_ERRORS), (cmd, r)
                    kind = str(r).split(" ", 1)[0]
                    self.errors[kind] = self.errors.get(kind, 0) + 1


class Blocked:
    """A client blocked on an empty key (BLPOP, BLMOVE, BZPOPMIN), then served by a push."""

    def __init__(self, port: int, rng: random.Random):
        self.c = _Conn(port)
        self.rng = rng
        self.waiting: tuple[int, str, str] | None = None
        self.served = 0

    def block(self) -> None:
        db, i = self.rng.randrange(USED_DBS), self.rng.randrange(4)
        kind = self.rng.choice(["BLPOP", "BLMOVE", "BZPOPMIN"])
        if kind == "BLPOP":
            cmd: list[Any] = ["BLPOP", f"bl:{i}", 60]
        elif kind == "BLMOVE":
            cmd = ["BLMOVE", f"bl:{i}", f"l:{i}", "LEFT", "RIGHT", 60]
        else:
            cmd = ["BZPOPMIN", f"bz:{i}", 60]
        self.c.send([["SELECT", db], cmd])
        assert self.c.read() == b"OK"
        self.waiting = (db, cmd[1], kind)

    def push(self) -> list[list[Any]]:
        """The commands that serve it (once it is blocked)."""
        assert self.waiting is not None
        db, key, kind = self.waiting
        push = ["ZADD", key, 1, "pushed"] if kind == "BZPOPMIN" else ["RPUSH", key, "pushed"]
        return [["SELECT", db], push]

    def answered(self) -> None:
        reply = self.c.read()
        assert reply == b"pushed" or (isinstance(reply, list) and b"pushed" in reply), reply
        self.waiting = None
        self.served += 1


# -- the probes ----------------------------------------------------------------------


def _running(info: dict[str, str]) -> bool:
    return info["aof_rewrite_in_progress"] == "1" or info["rdb_bgsave_in_progress"] == "1"


def _compacting(c: _Conn) -> tuple[bool, str]:
    """(a compaction runs, which one: INFO's aof_rewrites, counted when one starts)."""
    info = c.info()
    return _running(info), info["aof_rewrites"]


def _blocked_clients(c: _Conn) -> int:
    return int(c.info("clients")["blocked_clients"])


# -- the tests -----------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES)
def test_writes_of_every_kind_during_a_compaction_are_in_the_file(
    tmp_path: Path, mode: dict[str, Any]
) -> None:
    rng = random.Random(20261202)
    aof = tmp_path / "kv.aof"
    with _kv(tmp_path, aof, mode) as port:
        a, b = _Conn(port), _Conn(port)
        blocked = Blocked(port, rng)
        _fill(a, rng)
        for i in range(N["t"]):  # keys that expire while the compaction runs
            a.call("SET", f"t:{i}", "soon", "PX", rng.randint(200, 3000))
        writes = Writes(rng)
        rounds = batches = during = during_batches = ops = 0
        deadline = time.monotonic() + WRITE_SECONDS

        def start() -> tuple[bool, str]:
            nonlocal rounds, batches
            assert a.call("BGREWRITEAOF") == b"Background append only file rewriting started"
            rounds += 1
            batches = 0
            writes.round()
            return _compacting(a)

        before = start()
        while True:
            cmds, block = writes.batch(batches)
            batches += 1
            if block and blocked.waiting is None:
                blocked.block()
                wait_for(lambda: _blocked_clients(a) == 1, 60, "the client to block")
            pushing = blocked.waiting is not None and not block and rng.random() < 0.3
            if pushing:
                cmds += blocked.push()
            replies = rng.choice([a, b]).run(cmds)
            writes.seen(cmds, replies)
            if pushing:
                blocked.answered()
            ops += len(cmds)
            after = _compacting(a)
            if before[0] and after == before:  # one compaction ran all along the batch
                during += len(cmds)
                during_batches += 1
                if writes.last is not None:
                    writes.done.add(writes.last)
                if pushing:
                    writes.done.add("served a BLOCK")
            before = after
            if not after[0]:  # it ended
                info = a.info()
                assert info["aof_last_bgrewrite_status"] == "ok", info
                if during_batches >= MIN_DURING and writes.done == ALL_RARE:
                    break
                if rounds >= MAX_ROUNDS:
                    break
                before = start()  # too soon for enough writes served meanwhile: again
            if ops >= MAX_OPS or time.monotonic() > deadline:
                break
        if blocked.waiting is not None:
            a.run(blocked.push())
            blocked.answered()
        wait_for(lambda: not _compacting(a)[0], 120, "the compaction's end")
        info = a.info()
        assert info["aof_last_bgrewrite_status"] == "ok", info
        assert info["aof_rewrites"] == str(rounds)
        assert not list(tmp_path.glob("*.tmp"))
        # what makes the test prove something: writes, and all the rare ones, served
        # while a compaction ran
        summary = (
            f"{during} writes in {during_batches} batches of {ops} were served while one "
            f"of {rounds} compactions ran; rare ones: {writes.done}, blocked clients "
            f"served: {blocked.served}; errors: {writes.errors}"
        )
        assert during_batches >= MIN_DURING, summary
        assert writes.done == ALL_RARE, summary
        live = _settled_snapshot(port)
        for c in (a, b, blocked.c):
            c.close()
    # (the server stopped: SIGTERM, its file flushed and fsynced)
    assert {kind for kind, _, _ in live.values()} == {
        b"string",
        b"list",
        b"hash",
        b"set",
        b"zset",
        b"stream",
    }
    assert len({db for db, _ in live}) >= 2  # (several databases: FLUSHDB may empty some)
    _assert_same(live, _replay(tmp_path, aof))


# the writes of the smaller cases, sent at once while a compaction runs, and the
# keys they leave
DURING = {
    "SWAPDB": (  # the snapshot's keys live on, in other databases
        [
            ["SWAPDB", 0, 1],  # the big keys are in db 1 now
            ["SELECT", 1],
            ["RPUSH", "big:list", "after-swap"],
            ["HSET", "big:hash", "new", "v"],
            ["SELECT", 0],
            ["SET", "s:0", "after-swap"],
            ["DEL", "l:0"],
            ["SWAPDB", 2, 0],
            ["SADD", "S:1", "new"],
            ["SWAPDB", 1, 3],  # the big keys in db 3
            ["SELECT", 3],
            ["ZADD", "big:zset", 0, "new"],
            ["MOVE", "s:2", 2],
            ["SWAPDB", 3, 3],
        ],
        {(3, b"big:list"), (3, b"big:zset"), (2, b"s:2"), (2, b"S:1"), (0, b"s:0")},
    ),
    "FLUSHALL": (  # nothing of the snapshot lives on
        [
            ["SWAPDB", 0, 1],
            ["SELECT", 1],
            ["RPUSH", "big:list", "after-swap"],
            ["SELECT", 0],
            ["SET", "s:0", "after-swap"],
            ["FLUSHALL"],
            ["SET", "a", "after-flushall"],
            ["SELECT", 2],
            ["RPUSH", "l", "1", "2"],
            ["XADD", "x", "1-1", "f", "v"],
            ["XGROUP", "CREATE", "x", "g", "0"],
            ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">"],
            ["SWAPDB", 2, 0],
            ["SELECT", 0],
            ["HSET", "h", "f", "v"],
            ["SELECT", 3],
            ["SADD", "big:set", *(f"m{j}" for j in range(2000))],
            ["EXPIRE", "big:set", 3600],
            ["SWAPDB", 3, 1],
        ],
        {(0, b"l"), (0, b"x"), (0, b"h"), (1, b"big:set"), (2, b"a")},
    ),
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("during", list(DURING))
@pytest.mark.parametrize("mode", MODES)
def test_swapdb_and_flushall_during_a_compaction(
    tmp_path: Path, mode: dict[str, Any], during: str
) -> None:
    """A BGSAVE (the "rdb" kind) while SWAPDB, or FLUSHALL too, change whole databases."""
    rng = random.Random(7)
    aof = tmp_path / "kv.aof"
    cmds, keys = DURING[during]
    with _kv(tmp_path, aof, mode) as port:
        c = _Conn(port)
        for _attempt in range(3):
            _fill(c, rng, big=BIG // 2)
            c.call("SELECT", 0)
            assert c.call("BGSAVE") == b"Background saving started"
            before = _compacting(c)
            for cmd, r in zip(cmds, c.run(cmds), strict=True):
                assert not isinstance(r, redis.ResponseError), (cmd, r)
            after = _compacting(c)
            if before[0] and after == before:  # all of them while it ran
                break
            # it ended before the writes did: again, on a new fill
            wait_for(lambda: not _compacting(c)[0], 120, "the compaction's end")
            c.call("FLUSHALL")
        else:
            pytest.fail("the compaction never lasted as long as a few writes")
        wait_for(lambda: not _compacting(c)[0], 120, "the compaction's end")
        info = c.info()
        assert info["rdb_last_bgsave_status"] == "ok", info
        live = _settled_snapshot(port)
        c.close()
    if during == "FLUSHALL":
        assert set(live) == keys, sorted(live)
    else:
        assert set(live) >= keys and {db for db, _ in live} == {0, 1, 2, 3}, sorted(live)
    _assert_same(live, _replay(tmp_path, aof))
