"""The classic services, RFC by RFC, on StringTransport and a Clock (no sockets)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite import api as configmod
from portsuite import loader
from portsuite.api import ServiceContext, ServiceStats
from portsuite.registry import Registry
from portsuite.testing import DatagramRecorder as FakeUDP
from portsuite_services import classic

# 2026-11-24 01:35:07 UTC
NOW = 1795484107


def turn(clock: Clock) -> None:
    """One reactor turn: run the calls due now, not the ones they schedule (Clock.advance would)."""
    due = [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]
    for call in due:
        clock.calls.remove(call)
        call.called = 1
        call.func(*call.args, **call.kw)


def ctx_for(stype: Any, clock: Clock, **options: Any) -> ServiceContext:
    cfg = configmod.ServiceConfig(name=stype.name, type=stype.name, port=0, options=options)
    return ServiceContext(reactor=clock, config=cfg, stats=ServiceStats(stype.name, stype.name))


def connect(stype: Any, clock: Clock, **options: Any) -> tuple[Any, StringTransport]:
    factory = stype.tcp_factory(ctx_for(stype, clock, **options))
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def datagram(stype: Any, clock: Clock, data: bytes = b"x", **options: Any) -> list[bytes]:
    proto = stype.udp_protocol(ctx_for(stype, clock, **options))
    udp = FakeUDP()
    proto.makeConnection(udp)
    proto.datagramReceived(data, ("127.0.0.1", 40000))
    return [d for d, _ in udp.sent]


# -- discard -------------------------------------------------------------------


def test_discard_tcp_reads_everything_and_says_nothing() -> None:
    proto, t = connect(classic.DISCARD, Clock())
    proto.dataReceived(b"hello\r\n" * 1000)
    assert t.value() == b""
    assert not t.disconnecting  # the client decides when to stop


def test_discard_udp_never_answers() -> None:
    assert datagram(classic.DISCARD, Clock(), b"anything") == []


# -- chargen -------------------------------------------------------------------


def test_chargen_lines_follow_rfc_864() -> None:
    lines = classic.CYCLE.split(b"\r\n")[:-1]
    assert len(lines) == 95
    assert all(len(line) == 72 for line in lines)
    # RFC 864's sample: the first line starts at space, each next one a character later
    assert lines[0] == bytes(range(32, 104))
    assert lines[1] == bytes(range(33, 105))
    assert lines[94] == b"~" + bytes(range(32, 103))  # wraps around after ~
    assert set(classic.CYCLE) - {13, 10} == set(range(32, 127))


def test_chargen_tcp_produces_only_while_the_transport_wants_data() -> None:
    clock = Clock()
    proto, t = connect(classic.CHARGEN, clock)
    assert t.producer is proto and t.streaming  # a push producer: the transport can pause it
    turn(clock)
    first = len(t.value())
    assert first > 0
    assert t.value().startswith(classic.CYCLE)
    proto.pauseProducing()  # the send buffer is full: the client is not reading
    t.clear()
    turn(clock)
    clock.advance(1)
    assert t.value() == b""
    proto.resumeProducing()  # drained
    turn(clock)
    assert t.value().startswith(classic.CYCLE)  # always whole lines, the pattern goes on
    proto.connectionLost(None)
    t.clear()
    turn(clock)
    assert t.value() == b"" and not clock.getDelayedCalls()


def test_chargen_tcp_yields_between_bursts() -> None:
    """Other connections get their turn: one burst per reactor turn, not a loop for ever."""
    clock = Clock()
    proto, t = connect(classic.CHARGEN, clock)
    turn(clock)
    assert len(t.value()) == classic.Chargen.burst * len(classic.CYCLE)
    turn(clock)
    assert len(t.value()) == 2 * classic.Chargen.burst * len(classic.CYCLE)


def test_chargen_udp_answers_with_at_most_512_bytes_continuing_the_pattern() -> None:
    proto = classic.CHARGEN.udp_protocol(ctx_for(classic.CHARGEN, Clock()))
    udp = FakeUDP()
    proto.makeConnection(udp)
    proto.datagramReceived(b"", ("127.0.0.1", 40000))
    proto.datagramReceived(b"", ("127.0.0.1", 40000))
    (a, addr), (b, _) = udp.sent
    assert addr == ("127.0.0.1", 40000)
    assert 0 < len(a) <= 512 and 0 < len(b) <= 512
    assert a + b == classic.CYCLE[: len(a) + len(b)]


# -- qotd ----------------------------------------------------------------------


def test_qotd_tcp_sends_one_quote_under_512_then_closes() -> None:
    proto, t = connect(classic.QOTD, Clock())
    sent = t.value()
    assert 0 < len(sent) < 512
    assert sent.endswith(b"\r\n") and b"\n" not in sent.replace(b"\r\n", b"")
    assert t.disconnecting
    assert sent == classic.load_quotes(None)[0]


def test_qotd_cycles_through_a_quotes_file(tmp_path: Path) -> None:
    f = tmp_path / "q.txt"
    f.write_text("# my quotes\nfirst line\nsecond line\n%\nquote two\n%\nquote three\n")
    factory = classic.QOTD.tcp_factory(ctx_for(classic.QOTD, Clock(), quotes=f, order="cycle"))
    got = []
    for _ in range(4):
        t = StringTransport()
        factory.buildProtocol(None).makeConnection(t)
        got.append(t.value())
    assert got == [b"first line\r\nsecond line\r\n", b"quote two\r\n", b"quote three\r\n",
                   b"first line\r\nsecond line\r\n"]  # fmt: skip


def test_qotd_daily_changes_with_the_reactor_day(tmp_path: Path) -> None:
    f = tmp_path / "q.txt"
    f.write_text("a\n\nb\n\nc\n")  # blank lines separate quotes too
    clock = Clock()
    clock.advance(86400 * 10)
    got = datagram(classic.QOTD, clock, quotes=f, order="daily")
    clock.advance(86400)
    got += datagram(classic.QOTD, clock, quotes=f, order="daily")
    assert got == [b"b\r\n", b"c\r\n"]


def test_qotd_config_rejects_a_quote_too_long_and_a_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "q.txt"
    f.write_text("short\n%\n" + "x" * 600 + "\n")
    with pytest.raises(configmod.ConfigError) as e:
        loader.from_dict(
            {"services": {"q": {"type": "qotd", "port": 0, "quotes": "q.txt"}}}, base_dir=tmp_path
        )
    assert "quote 2" in str(e.value) and "512" in str(e.value)
    with pytest.raises(configmod.ConfigError) as e:
        loader.from_dict(
            {"services": {"q": {"type": "qotd", "port": 0, "quotes": "nope.txt"}}},
            base_dir=tmp_path,
        )
    assert "nope.txt does not exist" in str(e.value)


def test_shipped_quotes_all_fit_rfc_865() -> None:
    quotes = classic.load_quotes(None)
    assert len(quotes) >= 10
    assert all(len(q) < 512 for q in quotes)
    assert classic.check_quotes(classic.default_quotes_path()) == []


# -- daytime -------------------------------------------------------------------


def test_daytime_tcp_one_ascii_line_from_the_reactor_clock_then_close() -> None:
    clock = Clock()
    clock.advance(NOW)
    proto, t = connect(classic.DAYTIME, clock)
    assert t.value() == b"Tuesday, November 24, 2026 01:35:07-UTC\r\n"
    assert t.disconnecting
    proto.dataReceived(b"ignored")  # the RFC: input is ignored


def test_daytime_udp_answers_any_datagram() -> None:
    clock = Clock()
    clock.advance(NOW + 3600.9)
    assert datagram(classic.DAYTIME, clock, b"") == [b"Tuesday, November 24, 2026 02:35:07-UTC\r\n"]


# -- time ----------------------------------------------------------------------


def test_time_tcp_sends_4_bytes_since_1900_then_closes() -> None:
    clock = Clock()
    clock.advance(NOW)
    proto, t = connect(classic.TIME, clock)
    data = t.value()
    assert len(data) == 4 and t.disconnecting
    assert struct.unpack("!I", data)[0] == NOW + 2208988800
    assert classic.rfc868_to_unix(data, now=NOW) == NOW


def test_time_known_values_and_2036_wrap() -> None:
    assert classic.rfc868_time(0) == bytes.fromhex("83aa7e80")  # RFC 868: 1970 = 2,208,988,800
    assert classic.rfc868_time(-2208988800) == b"\0\0\0\0"  # 1900-01-01
    wrap = 2**32 - 2208988800  # 2036-02-07 06:28:16 UTC
    assert classic.rfc868_time(wrap) == b"\0\0\0\0"
    assert classic.rfc868_to_unix(b"\0\0\0\x05", now=wrap) == wrap + 5


def test_time_udp_answers_any_datagram_even_empty() -> None:
    clock = Clock()
    clock.advance(NOW)
    assert datagram(classic.TIME, clock, b"") == [classic.rfc868_time(NOW)]


def test_time_refusal_sends_no_text() -> None:
    """A text notice would be read as 4 bytes of time: a refused client sees only the close."""
    assert classic.TIME.refusal("too many connections") is None
    assert classic.DAYTIME.refusal("too many connections").startswith(b"portsuite:")


def test_all_five_types_registered_with_their_rfc_and_well_known_port() -> None:
    reg = Registry.discover()
    expected = {"discard": (9, "RFC 863"), "chargen": (19, "RFC 864"), "qotd": (17, "RFC 865"),
                "daytime": (13, "RFC 867"), "time": (37, "RFC 868")}  # fmt: skip
    for name, (port, rfc) in expected.items():
        t = reg.types[name]
        assert (t.default_port, t.rfc, t.source) == (port, rfc, "built-in")
        assert t.transports == {"tcp", "udp"}
