"""
Pub/sub with many subscriptions (delivery.py): patterns are compiled once and indexed
by literal prefix or suffix, so a PUBLISH tries only the patterns its channel may
match, and finds every one the plain matcher would; what is still big (a PUBLISH or
a keyspace event that must try tens of thousands of patterns, SUBSCRIBE or
UNSUBSCRIBE of a hundred thousand channels, a client holding them going away,
PUBSUB CHANNELS over them) runs in slices: the rest of the suite is served between
them, every other kv client waits (Redis's atomicity and order of messages), and
what each client receives is what the command run whole sends. On a Clock and
StringTransport; side by side with redis-server at the end.
"""

from __future__ import annotations

import random
import socket
from typing import Any

from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigwork import BIG
from portsuite_services.kv.glob import match, matches, tokens

MANY = 3 * 4096  # patterns that must all be tried: 3 times what is tried at once (delivery.py)
N = BIG + 1234  # channels in one command: past what runs at once


def _server() -> tuple[Clock, KVServer]:
    clock = Clock()
    return clock, KVServer(Settings(), clock)


def _settle(clock: Clock, server: KVServer) -> None:
    _drive(clock, lambda: server.busy is None and not getattr(server, "outbox", ()), 100000)


def _turns_while_busy(clock: Clock, server: KVServer, waiting: Any) -> int:
    """Turns of the reactor while the server is busy: another service served each; C{waiting} empty."""
    other: list[int] = []
    turns = 0
    while server.busy is not None:
        clock.callLater(0, other.append, turns)
        _turn(clock)
        turns += 1
        if server.busy is not None:
            assert waiting.value() == b""  # another kv client waits for the whole of it
    assert other == list(range(turns))
    return turns


# -- the index finds what the matcher finds --------------------------------------------


def _random_pattern(rnd: random.Random) -> bytes:
    parts = []
    for _ in range(rnd.randint(0, 6)):
        parts.append(rnd.choice([b"a", b"b", b"ab", b"*", b"?", b"[ab]", b"[^a]", b"\\*", b"."]))
    return b"".join(parts)


def test_a_publish_reaches_exactly_the_patterns_that_match_in_subscription_order() -> None:
    rnd = random.Random(7)
    clock, server = _server()
    sub, ts = _client(server)
    pub, tp = _client(server)
    patterns = list(dict.fromkeys(_random_pattern(rnd) for _ in range(400)))
    sub.dataReceived(_cmd("PSUBSCRIBE", *patterns))
    # some go again: the index forgets them, and knows them anew, subscribed last
    gone = patterns[::3]
    sub.dataReceived(_cmd("PUNSUBSCRIBE", *gone) + _cmd("PSUBSCRIBE", *gone[::2]))
    order = [p for p in patterns if p not in gone] + gone[::2]
    ts.clear()
    channels = [b"", b"a", b"ab", b"ba", b"*", b"a.b", b"abab", b"bbb", b"a*b", b"xyz"]
    for ch in channels:
        pub.dataReceived(_cmd("PUBLISH", ch, "m"))
        # (stringmatchlen's verdict: an empty channel matches no pattern, not even *)
        expected = [p for p in order if matches(tokens(p), ch)]
        got = _replies(ts.value())
        ts.clear()
        assert [m[1] for m in got] == expected and all(m[2] == ch for m in got)
        assert _replies(tp.value())[-1] == len(expected)
    assert server.busy is None and clock.getDelayedCalls() == []


def test_patterns_that_cannot_match_are_not_tried() -> None:
    """200,000 patterns of another prefix: PUBLISH answers at once (it ran for 0.8 s)."""
    clock, server = _server()
    sub, ts = _client(server)
    pub, tp = _client(server)
    sub.dataReceived(_cmd("PSUBSCRIBE", *[b"p%d*" % i for i in range(200_000)]))
    _settle(clock, server)
    ts.clear()
    pub.dataReceived(_cmd("PUBLISH", "zz", "x") + _cmd("PUBLISH", "p123", "y"))
    # at once (nothing runs in slices) and only what matches: p1* p12* p123*
    assert server.busy is None and _replies(tp.value()) == [0, 3]
    assert [m[1] for m in _replies(ts.value())] == [b"p1*", b"p12*", b"p123*"]


# -- what must be tried runs in slices ---------------------------------------------------


def test_a_publish_trying_many_patterns_runs_in_slices() -> None:
    clock, server = _server()
    sub, ts = _client(server)
    pub, tp = _client(server)
    other, to = _client(server)
    # no literal prefix nor suffix: every one is tried for every channel
    sub.dataReceived(_cmd("PSUBSCRIBE", *[b"?%d*" % i for i in range(MANY)]))
    _settle(clock, server)
    ts.clear()
    pub.dataReceived(_cmd("PUBLISH", "x12", "hello") + _cmd("PING", "after"))
    assert tp.value() == b"" and server.busy is not None  # the rest on the next turns
    other.dataReceived(_cmd("PUBLISH", "x12", "second"))
    assert _turns_while_busy(clock, server, to) >= 2
    _drive(clock, lambda: b"after" in tp.value())
    assert _replies(tp.value()) == [2, b"after"] and _replies(to.value()) == [2]
    got = [(m[1], m[3]) for m in _replies(ts.value())]
    # in Redis's order: the whole of the first PUBLISH, then the second
    assert got == [
        (b"?1*", b"hello"),
        (b"?12*", b"hello"),
        (b"?1*", b"second"),
        (b"?12*", b"second"),
    ]


def test_keyspace_events_past_a_commands_share_are_delivered_in_slices_in_order() -> None:
    clock, server = _server()
    sub, ts = _client(server)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("CONFIG", "SET", "notify-keyspace-events", "KEA"))
    sub.dataReceived(_cmd("PSUBSCRIBE", *[b"?_key*@0__:*k%d*" % i for i in range(MANY)]))
    _settle(clock, server)
    sub.dataReceived(_cmd("SUBSCRIBE", "__keyevent@0__:set"))
    ts.clear()
    ta.clear()
    a.dataReceived(_cmd("SET", "k1", "v") + _cmd("SET", "k2", "w"))
    b.dataReceived(_cmd("PUBLISH", "__keyspace@0__:k1", "mine") + _cmd("SET", "k1", "x"))
    assert server.busy is not None  # the events of the first SET: on the next turns
    assert _turns_while_busy(clock, server, tb) >= 2
    _drive(clock, lambda: len(_replies(tb.value())) == 2 and len(_replies(ta.value())) == 2)
    assert _replies(ta.value()) == [b"OK", b"OK"] and _replies(tb.value()) == [1, b"OK"]
    got = [m[-1] for m in _replies(ts.value())]
    # every message in the order of the commands (Redis's): k1's event, then its keyevent
    # (at once: a channel), k2's, b's message, then b's SET
    assert got == [b"set", b"k1", b"set", b"k2", b"mine", b"set", b"k1"]


def test_subscribe_and_unsubscribe_of_many_channels_run_in_slices() -> None:
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    names = [b"c%d" % ((i * 7919) % N) for i in range(N)]
    a.dataReceived(_cmd("SUBSCRIBE", *names) + _cmd("PING"))
    b.dataReceived(_cmd("PUBSUB", "NUMSUB", "c1"))
    assert len(_replies(ta.value())) < N  # confirmed a piece at a time
    assert _turns_while_busy(clock, server, tb) >= 2
    _drive(clock, lambda: tb.value() != b"" and len(_replies(ta.value())) == N + 1)
    got = _replies(ta.value())
    assert got[:-1] == [[b"subscribe", ch, i + 1] for i, ch in enumerate(names)]
    assert got[-1] == [b"pong", b""] and _replies(tb.value()) == [[b"c1", 1]]
    ta.clear()
    tb.clear()
    a.dataReceived(_cmd("UNSUBSCRIBE"))
    b.dataReceived(_cmd("PUBSUB", "NUMSUB", "c1"))
    assert _turns_while_busy(clock, server, tb) >= 2
    _drive(clock, lambda: tb.value() != b"")
    got = _replies(ta.value())
    assert got == [[b"unsubscribe", ch, N - 1 - i] for i, ch in enumerate(sorted(names))]
    assert _replies(tb.value()) == [[b"c1", 0]] and server.channels == {}


def _holding(server: KVServer) -> tuple[Any, Any]:
    a, ta = _client(server)
    a.dataReceived(_cmd("SUBSCRIBE", *[b"c%d" % i for i in range(N)]))
    a.dataReceived(_cmd("PSUBSCRIBE", *[b"p%d*" % i for i in range(N)]))
    a.dataReceived(_cmd("SSUBSCRIBE", *[b"s%d" % i for i in range(N)]))
    _settle(server.reactor, server)
    ta.clear()
    return a, ta


def _gone_in_slices(clock: Clock, server: KVServer, b: Any, tb: Any) -> None:
    b.dataReceived(_cmd("PUBSUB", "NUMSUB", "c7") + _cmd("PUBLISH", "p12", "x"))
    b.dataReceived(_cmd("PUBSUB", "NUMPAT") + _cmd("PUBSUB", "SHARDNUMSUB", "s7"))
    assert _turns_while_busy(clock, server, tb) >= 2  # dropped in slices, the others waiting
    _drive(clock, lambda: len(_replies(tb.value())) == 4)
    assert _replies(tb.value()) == [[b"c7", 0], 0, 0, [b"s7", 0]]
    assert not (server.channels or server.patterns or server.shards)
    assert not (server.patterns.prefixed or server.patterns.compiled)


def test_a_client_holding_many_subscriptions_goes_in_slices() -> None:
    clock, server = _server()
    a, _ = _holding(server)
    b, tb = _client(server)
    a.connectionLost(None)
    _gone_in_slices(clock, server, b, tb)


def test_client_kill_and_reset_of_a_client_holding_many() -> None:
    clock, server = _server()
    a, _ = _holding(server)
    b, tb = _client(server)
    b.dataReceived(_cmd("CLIENT", "KILL", "ID", str(a.id)))
    assert tb.value() == b":1\r\n"
    tb.clear()
    _gone_in_slices(clock, server, b, tb)
    a, ta = _holding(server)
    tb.clear()
    a.dataReceived(_cmd("RESET") + _cmd("SUBSCRIBE", "c7"))
    assert ta.value() == b"+RESET\r\n"  # its next command waits for the old ones to go
    b.dataReceived(_cmd("PUBSUB", "NUMSUB", "c7"))
    assert _turns_while_busy(clock, server, tb) >= 2
    _drive(clock, lambda: tb.value() != b"")
    assert _replies(ta.value()) == [b"RESET", [b"subscribe", b"c7", 1]]
    # (the clients that waited run in the order they connected: b first)
    b.dataReceived(_cmd("PUBSUB", "NUMSUB", "c7"))
    assert _replies(tb.value()) == [[b"c7", 0], [b"c7", 1]] and len(server.patterns) == 0


def test_pubsub_channels_of_many_runs_in_slices() -> None:
    clock, server = _server()
    a, _ = _holding(server)
    b, tb = _client(server)
    c, tc = _client(server)
    b.dataReceived(_cmd("PUBSUB", "CHANNELS", "c1*") + _cmd("PUBSUB", "SHARDCHANNELS"))
    c.dataReceived(_cmd("PING"))
    assert tb.value() == b""
    assert _turns_while_busy(clock, server, tc) >= 2
    _drive(clock, lambda: len(_replies(tb.value())) == 2)
    names, shards = _replies(tb.value())
    assert sorted(names) == sorted(b"c%d" % i for i in range(N) if match(b"c1*", b"c%d" % i))
    assert sorted(shards) == sorted(b"s%d" % i for i in range(N))


# -- no table of a million subscriptions grows at once ----------------------------------

TABLE_LIMIT = 100_000  # no dict or set of pub/sub's holds more: a resize copies at most that
_INSIDE = ("old", "shards", "segments", "order", "compiled", "prefixed", "suffixed", "free")


def _pubsub_tables(x: Any, out: list[Any]) -> list[Any]:
    """The dicts and sets that hold subscriptions, in C{x} and what it is made of."""
    if isinstance(x, (dict, set)):
        out.append(x)
    if isinstance(x, dict):
        for v in x.values():
            if not isinstance(v, (bytes, set)):  # (a set of clients: one channel's)
                _pubsub_tables(v, out)
    if isinstance(x, list):
        for v in x:
            _pubsub_tables(v, out)
    for name in _INSIDE:
        if not isinstance(x, (dict, set, list)) or type(x) not in (dict, set, list):
            inner = getattr(x, name, None)
            if inner is not None and not isinstance(inner, int):
                _pubsub_tables(inner, out)
    return out


def _check_tables(server: KVServer, clients: list[Any]) -> None:
    roots = [server.channels, server.patterns, server.shards]
    for c in clients:
        roots += [c.channels, c.patterns, c.shards]
    for table in _pubsub_tables(roots, []):
        assert len(table) <= TABLE_LIMIT


def test_subscribing_to_very_many_names_never_grows_one_big_table() -> None:
    """
    A dict of 200,000 names copies its whole table when it grows (10-20 ms; the index's
    dicts grew together in one step: 53-99 ms of the suite's time): checked by structure.
    """
    clock, server = _server()
    a, ta = _client(server)
    b, tb = _client(server)
    b.dataReceived(_cmd("HELLO", "3"))
    many = TABLE_LIMIT + 20_000
    subscribed = [
        ("PSUBSCRIBE", [b"*x%d" % i for i in range(many)]),  # a suffix each
        ("PSUBSCRIBE", [b"?x%d*" % i for i in range(many)]),  # neither: all in order
        ("PSUBSCRIBE", [b"q*%d" % i for i in range(many)]),  # one prefix: one bucket
        ("SSUBSCRIBE", [b"s%d" % i for i in range(many)]),
    ]
    for c, (cmd, names) in [
        (a, ("SUBSCRIBE", [b"c%d" % i for i in range(many)])),
        (a, ("PSUBSCRIBE", [b"p%d*" % i for i in range(many)])),  # a prefix each
    ] + [(b, s) for s in subscribed]:
        c.dataReceived(_cmd(cmd, *names))
        _settle(clock, server)
        _check_tables(server, [a, b])  # (the tables only grew meanwhile)
    ta.clear()
    tb.clear()
    # every name is there, in order: a PUBLISH reaches each pattern that matches, in
    # subscription order, and PUBSUB counts them all
    b.dataReceived(_cmd("PUBLISH", "qx12", "m") + _cmd("PUBSUB", "NUMPAT"))
    _settle(clock, server)
    got = _replies(tb.value())
    mine = [p for cmd, names in subscribed if cmd == "PSUBSCRIBE" for p in names]
    expected = [p for p in mine if match(p, b"qx12")]
    assert len(expected) == 5  # *x12 ?x1* ?x12* q*2 q*12
    assert [m[1] for m in got[:-2]] == expected and got[-2:] == [5, 4 * many]
    b.dataReceived(_cmd("PUBLISH", "p777", "m"))
    assert [m[1] for m in _replies(ta.value())] == [b"p7*", b"p77*", b"p777*"]
    b.dataReceived(_cmd("PUNSUBSCRIBE") + _cmd("SUNSUBSCRIBE"))
    a.connectionLost(None)
    _settle(clock, server)
    _check_tables(server, [a, b])
    assert not (server.channels or server.patterns or server.shards)
    assert not (server.patterns.order or server.patterns.free or server.patterns.suffixed)


# -- side by side with redis-server --------------------------------------------------


def _exchange(port: int, commands: list[bytes], replies: int) -> bytes:
    """The unsubscriptions' confirmations, the publisher's replies, the messages."""
    sub = socket.create_connection(("127.0.0.1", port))
    pub = socket.create_connection(("127.0.0.1", port))
    try:
        sub.sendall(commands[0])
        _read(sub, replies)
        sub.sendall(commands[1])
        got = _read(sub, replies - 2)
        for cmd in commands[2:]:
            pub.sendall(cmd)
            got += b"|" + _read(pub, 1)
        got += b"|" + _read(sub, 2)
        return got
    finally:
        sub.close()
        pub.close()


def _read(s: socket.socket, n: int) -> bytes:
    import hiredis

    reader = hiredis.Reader()
    data = b""
    got = 0
    s.settimeout(120)
    while got < n:
        chunk = s.recv(1 << 20)
        assert chunk
        data += chunk
        reader.feed(chunk)
        while reader.gets() is not False:
            got += 1
    return data


def test_many_patterns_side_by_side_with_redis(redis_port: int, kv_port: int) -> None:
    pats = [b"p%d*" % i for i in range(N)] + [b"?%d*" % i for i in range(2000)]
    commands = [
        _cmd("PSUBSCRIBE", *pats),
        _cmd("PUNSUBSCRIBE", *pats[2:]),
        _cmd("PUBLISH", "p1", "x"),
        _cmd("PUBLISH", "zz", "y"),
        _cmd("PUBSUB", "NUMPAT"),
        _cmd("PUBLISH", "p0", "z"),
    ]
    assert _exchange(kv_port, commands, len(pats)) == _exchange(redis_port, commands, len(pats))


# -- subscribers that never read -----------------------------------------------------


def test_subscribers_that_never_read_go_at_the_pubsub_limits() -> None:
    """client-output-buffer-limit's pubsub class: hard at once, soft after its seconds."""
    clock, server = _server()
    admin, ta = _client(server)
    admin.dataReceived(
        _cmd("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 256kb 10")
        + _cmd("CONFIG", "GET", "client-output-buffer-limit")
    )
    assert _replies(ta.value())[-1][1].endswith(b" pubsub 1048576 262144 10")
    subs = []
    for _ in range(300):  # a PUBLISH to them all runs in slices
        sub, ts = _client(server)
        sub.dataReceived(_cmd("SUBSCRIBE", "news"))
        sub.pauseProducing()  # their socket buffers are full: nothing more is written
        subs.append((sub, ts))
    message = b"x" * 100_000
    ta.clear()
    admin.dataReceived(_cmd("PUBLISH", "news", message) * 3)
    _drive(clock, lambda: len(_replies(ta.value())) == 3)
    assert _replies(ta.value()) == [300, 300, 300]  # queued: under the soft limit
    assert not any(ts.disconnected for _, ts in subs)
    for _ in range(2):  # over the soft limit, not for 10 s yet
        admin.dataReceived(_cmd("PUBLISH", "news", message))
        _settle(clock, server)
    clock.advance(5)
    admin.dataReceived(_cmd("PUBLISH", "news", message))
    _settle(clock, server)
    assert not any(ts.disconnected for _, ts in subs)
    clock.advance(5)  # over it for 10 s: the next message closes them
    admin.dataReceived(_cmd("PUBLISH", "news", message))
    _settle(clock, server)
    assert all(ts.disconnected for _, ts in subs)
    # one that stays over the hard limit goes at once
    sub, ts = _client(server)
    sub.dataReceived(_cmd("SUBSCRIBE", "news"))
    sub.pauseProducing()
    admin.dataReceived(_cmd("PUBLISH", "news", b"y" * 600_000) * 2)
    _settle(clock, server)  # (the 300 closed ones are tried too: gone when the reactor says)
    assert not ts.disconnected
    admin.dataReceived(_cmd("PUBLISH", "news", b"y" * 600_000))
    _settle(clock, server)
    assert ts.disconnected


def test_a_transaction_whose_events_go_to_the_outbox_runs_whole() -> None:
    clock, server = _server()
    sub, ts = _client(server)
    a, ta = _client(server)
    a.dataReceived(_cmd("CONFIG", "SET", "notify-keyspace-events", "KEA"))
    sub.dataReceived(_cmd("PSUBSCRIBE", *[b"?_key*@0__:*k%d*" % i for i in range(MANY)]))
    _settle(clock, server)
    ts.clear()
    ta.clear()
    a.dataReceived(
        _cmd("MULTI")
        + _cmd("SET", "k1", "v")
        + _cmd("SET", "k2", "w")
        + _cmd("PUBLISH", "__keyspace@0__:k1", "mine")
        + _cmd("GET", "k1")
        + _cmd("EXEC")
        + _cmd("GET", "k2")
    )
    _settle(clock, server)
    assert _replies(ta.value())[-2:] == [[b"OK", b"OK", 1, b"v"], b"w"]
    got = [(m[1], m[3]) for m in _replies(ts.value())]
    assert got == [
        (b"?_key*@0__:*k1*", b"set"),
        (b"?_key*@0__:*k2*", b"set"),
        (b"?_key*@0__:*k1*", b"mine"),
    ]


def test_a_publish_half_delivered_reaches_everyone_when_the_publisher_goes() -> None:
    clock, server = _server()
    subs = []
    for _ in range(3):
        sub, ts = _client(server)
        sub.dataReceived(_cmd("PSUBSCRIBE", *[b"?%d*" % i for i in range(MANY)]))
        subs.append(ts)
    _settle(clock, server)
    for ts in subs:
        ts.clear()
    pub, _ = _client(server)
    other, to = _client(server)
    pub.dataReceived(_cmd("PUBLISH", b"x%d" % (MANY - 1), "hello"))
    assert server.busy is not None
    _turn(clock)
    pub.connectionLost(None)  # gone mid-way
    other.dataReceived(_cmd("PING"))
    assert _turns_while_busy(clock, server, to) >= 1
    _drive(clock, lambda: to.value() != b"")
    assert to.value() == b"+PONG\r\n"
    for ts in subs:  # every subscriber has the message, as if the publisher had stayed
        got = [m[1] for m in _replies(ts.value())]
        assert got == [b"?%s*" % str(MANY - 1)[:n].encode() for n in range(1, 6)]


def test_a_subscriber_that_reads_up_starts_the_soft_limits_clock_anew() -> None:
    clock, server = _server()
    admin, _ = _client(server)
    admin.dataReceived(_cmd("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 256kb 10"))
    sub, ts = _client(server)
    sub.dataReceived(_cmd("SUBSCRIBE", "news"))
    message = b"x" * 200_000
    sub.pauseProducing()
    admin.dataReceived(_cmd("PUBLISH", "news", message) * 3)  # over the soft limit
    clock.advance(8)
    sub.resumeProducing()  # it reads everything
    _drive(clock, lambda: not sub.queue)
    clock.advance(8)
    sub.pauseProducing()
    admin.dataReceived(_cmd("PUBLISH", "news", message) * 3)  # over it again, just now
    assert not ts.disconnected
    clock.advance(10)
    admin.dataReceived(_cmd("PUBLISH", "news", message))
    assert ts.disconnected
