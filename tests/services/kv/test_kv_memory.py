"""
The kv service in memory (portsuite.testing.memory_suite): no socket, the clock in
the test's hands. What a redis client would see, through the suite's own wrapper.
"""

from __future__ import annotations

from typing import Any

from portsuite.testing import MemorySuite, memory_suite


def kv(**options: Any) -> MemorySuite:
    return memory_suite({"services": {"kv": {"type": "kv", "port": 0, **options}}})


def test_pipelined_commands_are_answered_in_order() -> None:
    with kv() as s:
        c = s.connect("kv")
        c.send(b"PING\r\nSET greeting hello\r\nGET greeting\r\nINCR n\r\nINCR n\r\n")
        assert c.received() == b"+PONG\r\n+OK\r\n$5\r\nhello\r\n:1\r\n:2\r\n"
        assert s.stats("kv").total == 1


def test_keys_expire_on_the_suite_clock() -> None:
    with kv(timeout=0) as s:
        c = s.connect("kv")
        c.send(b"SET session abc EX 10\r\n")
        assert c.received() == b"+OK\r\n"
        s.advance(9)
        c.send(b"TTL session\r\nGET session\r\n")
        assert c.received() == b":1\r\n$3\r\nabc\r\n"
        s.advance(2)
        c.send(b"GET session\r\nEXISTS session\r\n")
        assert c.received() == b"$-1\r\n:0\r\n"


def test_protected_mode_judges_the_peer_address() -> None:
    """Without a password only this machine is served; IPv4-mapped loopback is this machine."""
    with kv() as s:
        remote = s.connect("kv", peer=("192.0.2.7", 50000))
        assert remote.received().startswith(b"-DENIED Redis is running in protected mode")
        assert remote.closed
        for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.0.2"):
            local = s.connect("kv", peer=(host, 50001))
            local.send(b"PING\r\n")
            assert local.received() == b"+PONG\r\n", host


def test_with_a_password_remote_clients_must_auth() -> None:
    with kv(password="s3cret") as s:
        c = s.connect("kv", peer=("192.0.2.7", 50000))
        c.send(b"GET k\r\n")
        assert c.received().startswith(b"-NOAUTH")
        c.send(b"AUTH wrong\r\n")
        assert c.received().startswith(b"-WRONGPASS")
        c.send(b"AUTH s3cret\r\nGET k\r\n")
        assert c.received() == b"+OK\r\n$-1\r\n"


def test_maxclients_refuses_with_redis_words_and_others_are_served() -> None:
    with kv(maxclients=2) as s:
        first = s.connect("kv")
        s.connect("kv")
        third = s.connect("kv")
        assert third.received() == b"-ERR max number of clients reached\r\n"
        assert third.closed
        first.send(b"PING\r\n")
        assert first.received() == b"+PONG\r\n"
        first.close()
        fourth = s.connect("kv")
        fourth.send(b"PING\r\n")
        assert fourth.received() == b"+PONG\r\n"


def test_garbage_gets_a_protocol_error_and_only_that_client_goes() -> None:
    with kv() as s:
        bad = s.connect("kv")
        good = s.connect("kv")
        bad.send(b"*1\r\n$not-a-number\r\n")
        assert bad.received().startswith(b"-ERR Protocol error")
        assert bad.closed
        good.send(b"PING\r\n")
        assert good.received() == b"+PONG\r\n" and not good.closed
        assert s.stats("kv").errors == 0  # a client's mistake, not a crash


def test_a_message_reaches_every_subscriber() -> None:
    with kv() as s:
        subs = [s.connect("kv") for _ in range(3)]
        for sub in subs:
            sub.send(b"SUBSCRIBE news\r\n")
            assert sub.received() == b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        pub = s.connect("kv")
        pub.send(b"PUBLISH news hello\r\n")
        assert pub.received() == b":3\r\n"
        for sub in subs:
            assert sub.received() == b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"


def test_redis_timeout_closes_an_idle_client() -> None:
    with kv(timeout=5) as s:
        idle = s.connect("kv")
        busy = s.connect("kv")
        for _ in range(4):
            s.advance(2, step=0.1)  # the kv checks idle clients in its 100 ms cron
            busy.send(b"PING\r\n")
        assert idle.closed and not busy.closed
