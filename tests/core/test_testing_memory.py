"""portsuite.testing.memory_suite: the suite on a MemoryReactorClock, clients through iosim."""

from __future__ import annotations

from portsuite.testing import Recorder, memory_suite


def test_stopping_tells_every_client_and_closes_every_listener() -> None:
    config = {
        "services": {"a": {"type": "echo", "port": 0, "udp": True}, "b": {"type": "kv", "port": 0}}
    }
    s = memory_suite(config)
    clients = [s.connect("a"), s.connect("b")]
    assert sorted(s.reactor.ports) == [
        ("TCP", s.port("a")),
        ("TCP", s.port("b")),
        ("UDP", s.port("a", "udp")),
    ]
    assert s.service("a")["port_class"] == "registered"  # numbered like real ports, nothing bound
    s.stop()
    assert all(c.closed for c in clients) and s.reactor.ports == {}
    assert not s.suite.running


def test_any_client_protocol_and_its_address() -> None:
    class Greeter(Recorder):
        def connectionMade(self) -> None:
            self.transport.write(b"hello from a client\n")

    with memory_suite({"services": {"e": {"type": "echo", "port": 0}}}) as s:
        c = s.connect("e", Greeter(), peer=("::1", 4242))
        assert isinstance(c.client, Greeter)
        assert c.received() == b"hello from a client\n"
        assert [cl["peer"] for cl in s.service("e")["clients"]] == ["[::1]:4242"]


def test_datagrams_reach_the_guards_like_real_ones() -> None:
    with memory_suite({"services": {"e": {"type": "echo", "port": 0, "udp": True}}}) as s:
        assert s.datagram("e", b"ping", ("127.0.0.1", 40000)) == [b"ping"]
        assert s.datagram("e", b"loop", ("127.0.0.1", 19)) == []  # chargen's port: dropped
        assert s.stats("e").dropped == 1
