"""
MULTI/EXEC goes on across turns of the reactor when long (multiwork.py): a
transaction of many commands, or one holding a big SUNION or SORT, lets the rest of
the suite be served between slices, while every other kv client waits for the whole
transaction (atomic, as in Redis) and sees all of its effect. Replies, the AOF
record, WATCH, errors, blocking commands and clients gone mid-way are checked on a
Clock and StringTransport, then the replies side by side with redis-server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _Conn, _drive, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.aof import read_records
from portsuite_services.kv.bigwork import BIG
from portsuite_services.kv.multiwork import MAX_COMMANDS, Transaction

N = 20_000  # queued commands: many turns' worth (MAX_COMMANDS a turn at most)
M = BIG // 2 + 1000  # members of each big set: SUNION of two is big work


def _server(tmp_path: Path | None = None) -> tuple[Clock, KVServer]:
    clock = Clock()
    clock.advance(1000)
    settings = Settings() if tmp_path is None else Settings(data=tmp_path / "kv.aof")
    return clock, KVServer(settings, clock)


def _fill(server: KVServer) -> None:
    admin, _ = _client(server)
    admin.dataReceived(_cmd("SADD", "s", *[b"m%d" % i for i in range(M)]))
    admin.dataReceived(_cmd("SADD", "s2", *[b"m%d" % (3 * i) for i in range(M)]))
    admin.dataReceived(_cmd("RPUSH", "l", *[b"%d" % ((i * 7919) % M) for i in range(M)]))


def _transaction(*cmds: tuple[str, ...]) -> bytes:
    return _cmd("MULTI") + b"".join(_cmd(*c) for c in cmds) + _cmd("EXEC")


def _run_turns(clock: Clock, c: Any) -> int:
    """Turns of the reactor until C{c}'s transaction is done; another service's call
    is due at each turn and must be served in it."""
    other: list[int] = []
    turns = 0
    while type(c.blocked) is Transaction:
        clock.callLater(0, other.append, turns)
        _turn(clock)
        turns += 1
        assert other == list(range(turns))  # served between slices
    return turns


def test_a_long_transaction_goes_on_across_turns_and_others_wait() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    sets = [("SET", f"k{i}", str(i)) for i in range(N)]
    a.dataReceived(_transaction(*sets, ("SADD", "s", "x"), ("INCR", "n")) + _cmd("PING", "after"))
    assert ta.value().count(b"+QUEUED") == N + 2
    head = len(ta.value())
    assert server.busy is not None  # not done in one turn
    b.dataReceived(_cmd("GET", f"k{N - 1}") + _cmd("GET", "n") + _cmd("PING"))
    assert tb.value() == b""  # b waits for the whole transaction
    turns = _run_turns(clock, a)
    assert turns >= N // MAX_COMMANDS
    _drive(clock, lambda: b"after" in ta.value())
    replies = _replies(ta.value()[head:])
    assert replies == [[b"OK"] * N + [1, 1], b"after"]
    assert tb.value() == b"$%d\r\n%d\r\n$1\r\n1\r\n+PONG\r\n" % (len(str(N - 1)), N - 1)
    assert server.busy is None and clock.getDelayedCalls() == []


def test_a_short_transaction_answers_at_once() -> None:
    clock, server = _server()
    a, ta = _client(server)
    a.dataReceived(_transaction(("SET", "a", "1"), ("INCR", "a"), ("GET", "a")))
    assert ta.value() == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n:2\r\n$1\r\n2\r\n"
    assert server.busy is None and clock.getDelayedCalls() == []


BIG_IN_MULTI = [
    [("SUNION", "s", "s2")],
    [("SUNIONSTORE", "u", "s", "s2"), ("SCARD", "u"), ("SINTER", "s", "s2")],
    [("SET", "x", "1"), ("SORT", "l"), ("SMEMBERS", "s"), ("SDIFF", "s", "s2"), ("GET", "x")],
    [("SORT", "l", "STORE", "sl"), ("LRANGE", "sl", "0", "-1"), ("INCR", "s"), ("DEL", "s")],
]


@pytest.mark.parametrize("cmds", BIG_IN_MULTI, ids=lambda c: " ".join(x[0] for x in c))
def test_big_commands_in_exec_are_computed_in_slices(cmds: list[tuple[str, ...]]) -> None:
    clock, server = _server()
    _fill(server)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_transaction(*cmds) + _cmd("PING", "after"))
    head = len(ta.value())
    assert server.busy is not None  # not done at once
    b.dataReceived(_cmd("SADD", "s", "new") + _cmd("SCARD", "s"))
    assert tb.value() == b""
    assert _run_turns(clock, a) >= 1
    _drive(clock, lambda: b"after" in ta.value())
    assert ta.value()[head:].endswith(b"$5\r\nafter\r\n")
    exec_reply = ta.value()[head : -len(b"$5\r\nafter\r\n")]
    # each reply is the one of the command sent alone, on the same data (its own
    # slices, bigwork.py and bigreply.py)
    clock2, server2 = _server()
    _fill(server2)
    alone, t2 = _client(server2)
    parts = [b"*%d\r\n" % len(cmds)]
    for c in cmds:
        t2.clear()
        alone.dataReceived(_cmd(*c))
        _drive(clock2, lambda: alone.blocked is None and _replies(t2.value()) != [])
        parts.append(t2.value())
    assert exec_reply == b"".join(parts)
    # b ran after the whole transaction
    card = server.store.data[b"s"] if b"s" in server.store.data else set()
    assert _replies(tb.value()) == [1, len(card)]
    assert server.busy is None and server.lazyfree.pending >= 0


def test_watch_and_execabort_as_before() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    sets = [("SET", f"k{i}", "v") for i in range(N)]
    # a watched key changed: nothing runs, the null reply at once
    a.dataReceived(_cmd("WATCH", "w"))
    b.dataReceived(_cmd("SET", "w", "1"))
    ta.clear()
    a.dataReceived(_transaction(*sets))
    assert ta.value().endswith(b"+QUEUED\r\n*-1\r\n") and server.busy is None
    assert b"k0" not in server.store.data
    # an error when queued: EXECABORT, nothing runs
    ta.clear()
    a.dataReceived(_transaction(*sets[:100], ("SET",), *sets[100:]))
    assert ta.value().endswith(b"-EXECABORT Transaction discarded because of previous errors.\r\n")
    assert b"k0" not in server.store.data and server.busy is None
    # a long transaction touches what another client watches: its EXEC does nothing
    b.dataReceived(_cmd("WATCH", f"k{N - 1}") + _cmd("MULTI") + _cmd("SET", "z", "1"))
    ta.clear()
    a.dataReceived(_transaction(*sets))
    b.dataReceived(_cmd("EXEC"))
    _run_turns(clock, a)
    _drive(clock, lambda: tb.value().endswith((b"*-1\r\n", b"*1\r\n+OK\r\n")))
    assert tb.value().endswith(b"*-1\r\n") and b"z" not in server.store.data
    assert _replies(ta.value())[-1] == [b"OK"] * N


def test_a_runtime_error_does_not_stop_the_others() -> None:
    clock, server = _server()
    _fill(server)
    a, ta = _client(server)
    cmds = [("SET", f"k{i}", "v") for i in range(N)]
    cmds[N // 2] = ("INCR", "s")  # WRONGTYPE, half-way
    cmds[N // 3] = ("SINTERCARD", "2", "s", "l")  # WRONGTYPE, found by big work
    cmds.append(("SUNIONSTORE", "u", "s", "s2"))
    a.dataReceived(_transaction(*cmds))
    _run_turns(clock, a)
    _drive(clock, lambda: a.blocked is None and server.busy is None)
    reply = _replies(ta.value())[-1]
    wrongtype = b"WRONGTYPE Operation against a key holding the wrong kind of value"
    assert [str(reply[N // 3]), str(reply[N // 2])] == [wrongtype.decode()] * 2
    assert reply[-1] == len(server.store.data[b"u"]) > M
    assert reply.count(b"OK") == N - 2 and len(server.store.data) == 3 + N - 2 + 1


def test_the_aof_records_one_transaction(tmp_path: Path) -> None:
    clock, server = _server(tmp_path)
    a, ta = _client(server)
    b, tb = _client(server)
    start = len(read_records(tmp_path / "kv.aof")[0])
    cmds = [("SET", f"k{i}", "v") for i in range(N)]
    a.dataReceived(_transaction(("SELECT", "1"), ("SET", "one", "1"), ("SELECT", "0"), *cmds))
    _turn(clock)
    b.dataReceived(_cmd("SET", "after", "1"))  # (waits: recorded after the transaction)
    _turn(clock)
    server.write_aof()  # whatever writes the file meanwhile writes no half transaction
    assert len(read_records(tmp_path / "kv.aof")[0]) == start
    _run_turns(clock, a)
    _drive(clock, lambda: tb.value() == b"+OK\r\n")
    records = read_records(tmp_path / "kv.aof")[0][start:]
    assert records[0] == [b"MULTI"] and records[-2:] == [[b"EXEC"], [b"SET", b"after", b"1"]]
    assert records[1:4] == [[b"SELECT", b"1"], [b"SET", b"one", b"1"], [b"SELECT", b"0"]]
    assert len(records) == 1 + 3 + N + 1 + 1
    # and it loads to the same keyspace
    server.aof.flush()  # type: ignore[union-attr]
    _, again = _server(tmp_path)
    assert again.store.data == server.store.data
    assert again.dbs[1].data == {b"one": b"1"}


def test_a_client_gone_mid_exec_still_runs_all_of_it(tmp_path: Path) -> None:
    clock, server = _server(tmp_path)
    a, ta = _client(server)
    b, tb = _client(server)
    cmds = [("SET", f"k{i}", "v") for i in range(N)]
    a.dataReceived(_transaction(*cmds, ("SET", "last", "1")))
    b.dataReceived(_cmd("EXISTS", "k0", "last"))
    _turn(clock)
    a.connectionLost(None)
    _drive(clock, lambda: tb.value() != b"")
    assert tb.value() == b":2\r\n"  # all of it, never half
    assert server.busy is None and a.id not in server.clients
    records = read_records(tmp_path / "kv.aof")[0]
    assert records[0] == [b"MULTI"] and records[-1] == [b"EXEC"] and len(records) == N + 3
    clock.advance(1)
    assert [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()] == []


def test_client_kill_of_the_client_running_exec_waits_for_its_end() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    cmds = [("SET", f"k{i}", "v") for i in range(N)]
    a.dataReceived(_transaction(*cmds))
    head = len(ta.value())
    b.dataReceived(_cmd("CLIENT", "KILL", "ID", str(a.id)) + _cmd("DBSIZE"))
    assert tb.value() == b""
    _run_turns(clock, a)
    _drive(clock, lambda: tb.value() != b"")
    assert tb.value() == b":1\r\n:%d\r\n" % N
    assert _replies(ta.value()[head:]) == [[b"OK"] * N]  # its reply went out whole first
    assert a.closed and a.id not in server.clients
    # killed from inside its own transaction: the rest runs, the reply goes, then it
    # is closed (as Redis)
    c, tc = _client(server)
    kill = ("CLIENT", "KILL", "ID", str(c.id), "SKIPME", "no")
    c.dataReceived(_transaction(kill, *cmds[:3000], ("SET", "end", "1")) + _cmd("PING"))
    _drive(clock, lambda: server.busy is None)
    assert server.store.data[b"end"] == b"1" and tc.disconnecting
    assert _replies(tc.value())[-1] == [1] + [b"OK"] * 3001  # and no PONG


def test_blocking_commands_answer_at_once_and_blocked_clients_are_served_after() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    w, tw = _client(server)
    b.dataReceived(_cmd("BLPOP", "q", "0"))  # blocked before the transaction
    cmds = [("SET", f"k{i}", "v") for i in range(N)]
    a.dataReceived(
        _transaction(("BLPOP", "nothing", "0"), ("RPUSH", "q", "1", "2"), *cmds, ("LLEN", "q"))
    )
    w.dataReceived(_cmd("LLEN", "q"))  # waits for the transaction and for b's pop
    assert tb.value() == tw.value() == b""
    _run_turns(clock, a)
    _drive(clock, lambda: tw.value() != b"")
    reply = _replies(ta.value())[-1]
    assert reply[:2] == [None, 2] and reply[-1] == 2  # BLPOP inside: nil at once
    assert _replies(tb.value()) == [[b"q", b"1"]]  # served after EXEC, before w
    assert tw.value() == b":1\r\n"


def test_time_stands_still_from_exec_start() -> None:
    clock, server = _server()
    a, ta = _client(server)
    a.dataReceived(_cmd("SET", "t", "v", "PX", "10"))
    cmds = [("SET", f"k{i}", "v") for i in range(N)]
    a.dataReceived(_transaction(*cmds, ("GET", "t")) + _cmd("EXISTS", "t"))
    clock.advance(0.5)  # t's time passes while the transaction runs
    _drive(clock, lambda: server.busy is None and a.blocked is None and a.pending is None)
    replies = _replies(ta.value())
    assert replies[-2][-1] == b"v" and replies[-1] == 0  # there for it, gone after


# -- side by side with redis-server -------------------------------------------------


def _session(port: int, resp3: bool) -> list[Any]:
    conn = _Conn(port, resp3)
    out: list[Any] = []
    try:
        conn.call("FLUSHALL")
        conn.call("SADD", "s", *[b"m%d" % i for i in range(M)])
        conn.call("SADD", "s2", *[b"m%d" % (3 * i) for i in range(M)])
        conn.call("RPUSH", "l", *[b"%d" % ((i * 7919) % M) for i in range(M)])
        many = [("SET", f"k{i}", str(i)) for i in range(N // 4)]
        for cmds in (
            [("SORT", "l"), ("SINTERCARD", "2", "s", "s2"), ("SUNIONSTORE", "u", "s", "s2")],
            [*many, ("INCR", "s"), ("SCARD", "u"), ("LPUSH", "k1", "x"), ("GET", "k7")],
            [("SORT", "l", "DESC", "STORE", "sl"), ("LRANGE", "sl", "0", "-1"), *many],
            [("BLPOP", "none", "0"), ("SDIFFSTORE", "d", "s", "s2"), ("SCARD", "d")],
        ):
            sent = b"".join(_cmd(*c) for c in cmds)
            conn.sock.sendall(_cmd("MULTI") + sent)
            got = b""
            while got.count(b"+QUEUED\r\n") < len(cmds):
                got += conn.sock.recv(1 << 20)
            out.append(conn.call("EXEC"))
        out.append(conn.call("DBSIZE"))
    finally:
        conn.sock.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_big_transactions_answer_as_redis(resp3: bool, redis_port: int, kv_port: int) -> None:
    assert _session(kv_port, resp3) == _session(redis_port, resp3)


def test_a_client_blocked_on_what_a_sliced_command_stores_is_served() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    n = 2 * BIG
    a.dataReceived(_cmd("RPUSH", "l", *[b"%d" % (n - i) for i in range(n)]))
    b.dataReceived(_cmd("BLPOP", "sl", "0"))
    ta.clear()
    a.dataReceived(_cmd("SORT", "l", "STORE", "sl") + _cmd("LLEN", "sl"))
    assert server.busy is not None  # computed in slices (bigwork.py), not in EXEC
    _drive(clock, lambda: len(_replies(ta.value())) == 2)
    assert _replies(tb.value()) == [[b"sl", b"1"]]  # (it was left waiting for ever)
    assert _replies(ta.value()) == [n, n - 1]


def _multi_field(c: Any, field: str) -> int:
    line = c.info_line()
    return int(line.split(f" {field}=")[1].split()[0])


def test_the_queue_of_multi_is_bounded() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    b.dataReceived(_cmd("CONFIG", "SET", "client-query-buffer-limit", "1mb"))
    assert tb.value() == b"+OK\r\n"
    # counted as Redis's multi-mem: the arguments' bytes, and kv's own cost per command
    a.dataReceived(_cmd("MULTI") + _cmd("SET", "k", "v" * 100))
    mem = _multi_field(a, "multi-mem")
    assert 100 + 2 < mem < 1000 and _multi_field(a, "multi") == 1
    # a client queuing for ever: past the limit its queue goes, EXEC aborts
    value = b"x" * 1000
    for i in range(0, 2000, 100):
        a.dataReceived(b"".join(_cmd("SET", b"k%d" % j, value) for j in range(i, i + 100)))
    replies = _replies(ta.value())
    first_error = next(i for i, r in enumerate(replies) if not isinstance(r, bytes))
    assert "client-query-buffer-limit" in str(replies[first_error])
    assert 800 < first_error < 1000  # (1 MB of 1 KB values, and what each costs)
    assert all(r == b"QUEUED" for r in replies[first_error + 1 :])
    assert _multi_field(a, "multi") == 0 and _multi_field(a, "multi-mem") == 0
    ta.clear()
    a.dataReceived(_cmd("EXEC"))
    assert ta.value() == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert server.store.data == {} and server.busy is None


def test_nothing_more_is_queued_once_the_transaction_failed() -> None:
    """As redis-server 7.0.15: after an error, QUEUED but not kept (multi= stays)."""
    clock, server = _server()
    a, ta = _client(server)
    a.dataReceived(_transaction(("SET", "a", "1"), ("NOSUCH",), *[("SET", "b", "2")] * 10)[:-14])
    assert _multi_field(a, "multi") == 1 and ta.value().endswith(b"+QUEUED\r\n")
    a.dataReceived(_cmd("EXEC"))
    assert ta.value().endswith(b"-EXECABORT Transaction discarded because of previous errors.\r\n")


@pytest.mark.parametrize("n", [0, N])
def test_client_reply_off_inside_a_transaction(n: int) -> None:
    """
    As kv answers it run whole: the array whole, then OFF holds until ON. (redis-server
    7.0 stops answering inside the array: a client cannot parse that, so kv keeps it.)
    """
    clock, server = _server()
    a, ta = _client(server)
    sets = [("SET", f"k{i}", "v") for i in range(n)]
    a.dataReceived(
        _transaction(("CLIENT", "REPLY", "OFF"), *sets, ("GET", "k0"))
        + _cmd("PING", "off")
        + _cmd("CLIENT", "REPLY", "ON")
        + _cmd("PING")
    )
    _drive(clock, lambda: server.busy is None and a.pending is None)
    reply = ta.value()[ta.value().rindex(b"QUEUED\r\n") + 8 :]
    get = b"$1\r\nv\r\n" if n else b"$-1\r\n"
    assert reply == b"*%d\r\n+OK\r\n" % (n + 2) + b"+OK\r\n" * n + get + b"+OK\r\n+PONG\r\n"


def test_keyspace_events_are_those_of_the_commands_run_whole() -> None:
    cmds = [
        ("SUNIONSTORE", "u", "s", "s2"),
        ("SINTERCARD", "2", "s", "nothing"),
        *[("SET", f"k{i}", "v") for i in range(3000)],
        ("SORT", "l", "STORE", "sl"),
        ("DEL", "k1", "nothing"),
        ("GET", "nothing"),
    ]

    def events(in_multi: bool) -> list[Any]:
        clock, server = _server()
        _fill(server)
        sub, ts = _client(server)
        a, ta = _client(server)
        sub.dataReceived(_cmd("CONFIG", "SET", "notify-keyspace-events", "KEAm"))
        sub.dataReceived(_cmd("PSUBSCRIBE", "__key*__:*"))
        ts.clear()
        if in_multi:
            a.dataReceived(_transaction(*cmds))
            assert server.busy is not None
        else:
            for c in cmds:
                a.dataReceived(_cmd(*c))
                _drive(clock, lambda: server.busy is None and a.blocked is None)
        _drive(clock, lambda: server.busy is None and a.blocked is None)
        return _replies(ts.value())

    sliced = events(True)
    assert len(sliced) > 6000 and sliced == events(False)


def test_two_long_transactions_run_one_after_the_other() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_transaction(*[("SET", f"k{i}", "a") for i in range(N)], ("GET", "k0")))
    b.dataReceived(_transaction(*[("SET", f"k{i}", "b") for i in range(N)], ("GET", "k0")))
    assert type(a.blocked) is Transaction and type(b.blocked) is not Transaction
    assert tb.value() == b""  # (b's MULTI too waits for a's EXEC)
    _drive(clock, lambda: tb.value().endswith(b"$1\r\nb\r\n") and server.busy is None)
    assert _replies(ta.value())[-1][-1] == b"a" and _replies(tb.value())[-1][-1] == b"b"
    assert {server.store.data[b"k%d" % i] for i in range(N)} == {b"b"}


@pytest.mark.parametrize("n", [0, N])
def test_pushes_to_the_client_itself_come_before_the_reply(n: int) -> None:
    """A RESP3 client subscribed to what its transaction publishes: as run whole."""
    clock, server = _server()
    a, ta = _client(server)
    a.dataReceived(_cmd("HELLO", "3") + _cmd("SUBSCRIBE", "ch"))
    ta.clear()
    sets = [("SET", f"k{i}", "v") for i in range(n)]
    a.dataReceived(
        _transaction(("PUBLISH", "ch", "x"), *sets, ("PUBLISH", "ch", "y"), ("SMEMBERS", "s"))
    )
    _drive(clock, lambda: server.busy is None and a.blocked is None)
    replies = _replies(ta.value())[n + 4 :]  # (after OK and QUEUED)
    assert replies[:2] == [[b"message", b"ch", b"x"], [b"message", b"ch", b"y"]]
    assert replies[2:] == [[1, *[b"OK"] * n, 1, []]]


def test_the_reply_of_a_big_transaction_is_not_copied_whole_in_one_turn() -> None:
    """
    EXEC of 100,000 `LRANGE l 0 99` answered 50 MB: its parts, runs of JOIN replies
    made across turns, were joined into one string in the turn that ended it (60-90 ms
    of every other service's time). No turn of it now allocates half of the reply
    beyond what it holds already, and the reply is the same bytes.
    """
    import tracemalloc

    clock, server = _server()
    admin, _ = _client(server)
    admin.dataReceived(_cmd("RPUSH", "l", *[b"item%d" % i for i in range(100)]))
    lrange = _cmd("LRANGE", "l", "0", "99")
    one = b"*100\r\n" + b"".join(
        b"$%d\r\n%s\r\n" % (len(b"item%d" % i), b"item%d" % i) for i in range(100)
    )
    n = 5000  # (a reply of 5 MB: past BIG_ARG)
    a, ta = _client(server)
    a.dataReceived(_cmd("MULTI") + lrange * n)
    ta.clear()
    tracemalloc.start()
    try:
        a.dataReceived(_cmd("EXEC"))
        peaks = []
        while type(a.blocked) is Transaction:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]  # (the reply so far is held)
            _turn(clock)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    _drive(clock, lambda: len(ta.value()) >= len(one) * n)
    assert len(peaks) >= n // MAX_COMMANDS
    assert max(peaks) < len(one) * n // 2
    assert ta.value() == b"*%d\r\n" % n + one * n
