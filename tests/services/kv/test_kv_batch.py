"""
A read of GETs alone or SETs alone runs as a batch (protocol.BATCH, resp.split_alike),
without the parser. What a user sees must be what the parser's path gives: the same
server fed the same bytes one at a time (never a whole request in a read, so never
the batch) is the reference, for the replies, the keys, their TTLs, the dirty count,
the append-only file, INFO's and CLIENT LIST's counters and SLOWLOG. Whatever the
batch does not cover (WATCH, notifications, MULTI, ACL rules, CLIENT REPLY, MONITOR,
TTLs, containers, raw strings, big replies, a blocked client, an AOF in another
database, a read cut inside a request) goes the parser's way; and side by side with
redis-server on real sockets.
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kv_raw import Raw
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite_services.kv import KVServer, Settings, protocol
from portsuite_services.kv.resp import RequestParser, split_alike


def _cmd(*args: str | bytes) -> bytes:
    argv = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)


class _Side:
    """One kv server (AOF on), a setup client and the client under test."""

    def __init__(self, tmp: Path, whole: bool, **settings: Any) -> None:
        self.whole = whole
        self.batched = 0  # reads the batch path answered
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.server = KVServer(Settings(data=tmp / "kv.aof", **settings), self.clock)
        self.server.startFactory()
        self.admin, self.admin_t = self.connect()
        self.client, self.t = self.connect()

    def connect(self) -> tuple[Any, StringTransport]:
        proto = self.server.buildProtocol(None)
        t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555))
        proto.makeConnection(t)
        return proto, t

    def admin_call(self, *args: str | bytes) -> bytes:
        self.admin_t.clear()
        self.admin.dataReceived(_cmd(*args))
        self.settle()
        return bytes(self.admin_t.value())

    def settle(self) -> None:
        """
        Let work that went on across turns end: an EXEC that ran past its budget of
        5 ms (a busy machine, the process preempted mid-way) goes on at the next
        turns (multiwork, C{callLater(0)}) with the server busy, and replies then, as
        in twistd. This clock does not turn by itself: without this, EXEC's reply was
        missing on one side, once in a while (and INFO's, behind it). So does a big
        reply once the service's output for the turn went (protocol.TurnOut). Only while
        something goes on: the expiry timer stays where each story put it.
        """
        clock = self.clock
        for _ in range(10_000):
            if (
                self.server.busy is None
                and self.client.blocked is None
                and self.client.drain_call is None
                and self.admin.drain_call is None
            ):
                return
            clock.advance(0)
        raise AssertionError("work across turns never ended")

    def send(self, data: bytes) -> bytes:
        """C{data} to the client under test (whole, or a byte at a time); what it got."""
        self.t.clear()
        ready = self.client.parser.ready
        if self.whole:
            self.client.dataReceived(data)
        else:
            for i in range(len(data)):
                self.client.dataReceived(data[i : i + 1])
        self.settle()
        # (the batch path leaves the parser alone: its last result stays)
        self.batched += self.client.parser.ready is ready
        return bytes(self.t.value())

    def seen(self) -> tuple[Any, ...]:
        """What a user could see of the server, besides the replies."""
        s = self.server
        # a transaction watching "h" (the watched-key story): run or not
        watched = self.admin_call("EXEC") if self.admin.watching else b""
        assert s.aof is not None
        s.aof.flush()
        store = s.dbs[0]
        data = {k: v if type(v) is bytes else repr(v) for k, v in store.data.items()}
        info = self.admin_call("INFO", "stats").split(b"\r\n")
        processed = next(x for x in info if x.startswith(b"total_commands_processed:"))
        listing = self.admin_call("CLIENT", "LIST").split(b"\n")[1]
        cmd = listing.split(b" cmd=")[1].split(b" ")[0]
        aof = s.aof.path.read_bytes()
        # OBJECT ENCODING (raw, embstr…), and the count of containers SET relies on
        kinds = [self.admin_call("OBJECT", "ENCODING", k) for k in ("a", "h", "t")], store.boxed
        return data, dict(store.expires), store.dirty, aof, processed, cmd, watched, kinds

    def stop(self) -> None:
        self.server.stopFactory()


def _both(
    tmp_path: Path, setup: Callable[[_Side], None], batches: list[bytes], **settings: Any
) -> tuple[list[bytes], tuple[Any, ...], int]:
    """The same story whole and a byte at a time: replies, what is seen, batches run."""
    got = []
    for whole in (True, False):
        d = tmp_path / ("whole" if whole else "bytes")
        d.mkdir()
        side = _Side(d, whole, **settings)
        try:
            setup(side)
            side.batched = 0
            replies = [side.send(b) for b in batches]
            got.append((replies, side.seen(), side.batched))
        finally:
            side.stop()
    (replies, seen, batched), (ref_replies, ref_seen, _) = got
    assert replies == ref_replies
    assert seen == ref_seen
    return replies, seen, batched


ODD = [b"", b"a\r\nb", b"\r\n", b"*2", b"$3", b"*2\r\n$3\r\nGET\r\n", b"x" * 1023, b"y" * 1024]


def _random_batches(rng: random.Random, n: int) -> list[bytes]:
    keys = [b"k%d" % i for i in range(6)]
    out = []
    for _ in range(n):
        name = rng.choice([b"GET", b"get", b"SET", b"set"])
        count = rng.choice([1, 1, 2, 16, 32, 33])
        reqs = []
        for _ in range(count):
            key = rng.choice(ODD[:4] if rng.random() < 0.03 else keys)
            if name.upper() == b"GET":
                reqs.append(_cmd(name, key))
            else:
                value = rng.choice(ODD) if rng.random() < 0.05 else b"%d" % rng.randrange(100)
                reqs.append(_cmd(name, key, value))
        out.append(b"".join(reqs))
    return out


@pytest.mark.parametrize("resp3", [False, True])
def test_random_batches_answer_as_the_parser_path(tmp_path: Path, resp3: bool) -> None:
    def setup(side: _Side) -> None:
        if resp3:
            side.send(_cmd("HELLO", "3"))

    rng = random.Random(2026 + resp3)
    replies, seen, batched = _both(tmp_path, setup, _random_batches(rng, 120))
    assert batched > 60  # (most reads took the batch path)
    assert b"$-1\r\n" in b"".join(replies) or b"_\r\n" in b"".join(replies)
    assert seen[2] > 100  # (dirty: the SETs ran)


def _with(*commands: tuple[str | bytes, ...], client: bool = False) -> Callable[[_Side], None]:
    """A setup: C{commands} from the admin client (or the client under test)."""

    def setup(side: _Side) -> None:
        for argv in commands:
            if client:
                side.send(_cmd(*argv))
            else:
                side.admin_call(*argv)

    return setup


def _expired(side: _Side) -> None:
    side.admin_call("SET", "a", "x")
    side.admin_call("SET", "t", "z", "PX", "1")
    side.admin_call("SET", "h", "y", "PX", "1")
    # time passes, the expiry timer has not run yet: the keys go when looked up (a DEL
    # in the AOF, the dirty count), as between two of Redis's expiry cycles
    side.clock.rightNow += 1


GETS = _cmd("GET", "a") + _cmd("GET", "h") + _cmd("GET", "t") + _cmd("GET", "nope")
SETS = _cmd("SET", "a", "v1") + _cmd("SET", "h", "v2") + _cmd("SET", "t", "v3")


@pytest.mark.parametrize(
    "name,setup",
    [
        ("plain", _with(("SET", "a", "x"), ("SET", "h", "y"), ("SET", "t", "z"))),
        ("a container", _with(("SET", "a", "x"), ("HSET", "h", "f", "v"))),
        ("a TTL", _with(("SET", "a", "x"), ("SET", "t", "z", "EX", "100"))),
        ("an expired key", _expired),
        ("a raw string", _with(("SET", "a", "x"), ("SET", "h", "y"), ("APPEND", "h", "z"))),
        ("a big value", _with(("SET", "a", "x" * 300_000))),
        ("replies over 64 KiB", _with(("SET", "a", "x" * 30_000), ("SET", "t", "y" * 20_000))),
        ("a watched key", _with(("WATCH", "h"), ("MULTI",), ("GET", "h"))),
        ("notifications", _with(("CONFIG", "SET", "notify-keyspace-events", "KEA"))),
        ("MULTI", _with(("MULTI",), client=True)),
        ("CLIENT REPLY OFF", _with(("CLIENT", "REPLY", "OFF"), client=True)),
        ("CLIENT REPLY SKIP", _with(("CLIENT", "REPLY", "SKIP"), client=True)),
        ("MONITOR", _with(("MONITOR",))),
        ("another database", _with(("SELECT", "3"), ("SET", "x", "1"))),
        ("an AOF in another database", _with(("SELECT", "3"), ("SET", "x", "1"), client=True)),
        (
            "an ACL user",
            _with(
                ("ACL", "SETUSER", "u", "on", ">p", "~a", "+@all"), ("AUTH", "u", "p"), client=True
            ),
        ),
        ("SLOWLOG of everything", _with(("CONFIG", "SET", "slowlog-log-slower-than", "0"))),
    ],
)
def test_what_the_batch_leaves_to_the_parser_path(
    tmp_path: Path, name: str, setup: Callable[[_Side], None]
) -> None:
    def story(side: _Side) -> None:
        setup(side)
        if name == "MULTI":  # the queued commands run too
            side.send(SETS)

    batches = [GETS, _cmd("GET", "a") * 3, SETS, GETS, _cmd("GET", "a"), _cmd("SET", "a", "b")]
    batches += [_cmd("GET", "t"), _cmd("GET", "t") * 4]
    if name == "MULTI":
        batches.append(_cmd("EXEC"))
    replies, _seen, _ = _both(tmp_path, story, batches)
    if name == "a container":
        assert replies[0].count(b"-WRONGTYPE") == 1
    if name == "CLIENT REPLY OFF":
        assert replies == [b""] * len(batches)


def test_slowlog_entries_of_a_batch(tmp_path: Path) -> None:
    side = _Side(tmp_path, True)
    try:
        side.admin_call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        side.admin_call("SLOWLOG", "RESET")
        side.send(_cmd("SET", "k", "v") * 3)
        side.send(_cmd("GET", "k"))
        log = side.admin_call("SLOWLOG", "GET")
        # newest first: GET k, then the pipeline of three SETs
        assert b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" in log
        more = b"... (and 2 more pipelined commands)"
        assert b"*4\r\n" + _cmd("SET", "k", "v")[4:] + b"$%d\r\n%s\r\n" % (len(more), more) in log
        assert log.startswith(b"*3\r\n")  # (and SLOWLOG RESET, logged as Redis does)
    finally:
        side.stop()


def test_a_failed_aof_refuses_the_batch(tmp_path: Path) -> None:
    side = _Side(tmp_path, True)
    try:
        aof = side.server.aof
        assert aof is not None
        aof.ok = False
        aof.error = "disk full"
        assert side.send(_cmd("SET", "a", "1") * 2).startswith(b"-MISCONF")
        assert side.server.dbs[0].data == {}
    finally:
        side.stop()


# -- split_alike against the exact reader -----------------------------------------------


def _exact(data: bytes) -> list[list[bytes]] | None:
    p = RequestParser()
    p._fast = None
    cmds: list[list[bytes]] = []
    try:
        for i in range(0, len(data), 7):  # never a whole request at once
            cmds += p.feed(data[i : i + 7])
    except Exception:
        return None
    return cmds if not p.buf and p.argv is None else None


def test_split_alike_reads_as_the_exact_reader() -> None:
    rng = random.Random(17)
    taken = 0
    args = [b"k", b"key:000000012", b"", *ODD, b"z" * 2000]
    for _ in range(600):
        name = rng.choice([b"GET", b"SET"])
        argc = 2 if name == b"GET" else 3
        data = b"".join(
            _cmd(name, *(rng.choice(args) for _ in range(argc - 1)))
            for _ in range(rng.choice([1, 2, 5, 16]))
        )
        if rng.random() < 0.2:  # something else in the read: cut, another command, an extra
            data = rng.choice(
                [data[:-1], data + _cmd("DEL", "k"), data[: len(data) // 2], data + b"\r\n"]
            )
        parts = split_alike(data, 2 * argc + 1)
        exact = _exact(data)
        if parts is None:
            continue
        taken += 1
        stride = 2 * argc + 1
        n = (len(parts) - 1) // stride
        got = [parts[i * stride + 2 : (i + 1) * stride : 2] for i in range(n)]
        assert got == exact
    assert taken > 100  # (and checked)


# -- side by side with redis-server ------------------------------------------------------


@pytest.mark.parametrize("resp3", [False, True])
def test_batches_side_by_side_with_redis(kv_port: int, redis_port: int, resp3: bool) -> None:
    rng = random.Random(99)
    keys = [b"batch:%d" % i for i in range(4)] + [b"batch:a\r\nb", b"batch:" + b"q" * 1100]
    batches = []
    for _ in range(40):
        n = rng.choice([1, 16])
        if rng.random() < 0.5:
            sets = (
                _cmd("SET", rng.choice(keys), b"v" * rng.choice([0, 3, 1030])) for _ in range(n)
            )
            batches.append((n, b"".join(sets)))
        else:
            gets = (_cmd(rng.choice(["GET", "get"]), rng.choice(keys)) for _ in range(n))
            batches.append((n, b"".join(gets)))

    def story(port: int) -> list[bytes]:
        c = Raw(port, resp3)
        try:
            c.call("DEL", *keys)
            got = []
            for n, batch in batches:
                c.send(batch)
                got += [c.reply() for _ in range(n)]
            c.call("DEL", *keys)
            return got
        finally:
            c.close()

    assert story(kv_port) == story(redis_port)


def test_gets_of_big_values_are_not_built_as_a_batch_to_be_dropped() -> None:
    # 2,000 pipelined GETs of a 1 MiB value (66 KB sent, never read) made the batch
    # join 2 GiB before it saw the reply was too big for it: seconds of the whole suite
    server = KVServer(Settings(), Clock())
    proto = server.buildProtocol(None)
    proto.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555)))
    proto.dataReceived(_cmd("SET", "big", b"x" * 2**20))
    data = _cmd("GET", "big") * 200
    parts = split_alike(data, 5)
    assert parts is not None
    tracemalloc.start()
    try:
        assert protocol._batch_get(proto, parts, data) is None  # left to the parser
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**22, f"{peak} bytes allocated"
