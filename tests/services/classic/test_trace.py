"""Transcripts (trace = true): what a student sees, and that it stays bounded."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ServerFactory
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite import trace, udp
from portsuite.api import ServiceStats
from portsuite.testing import DatagramRecorder, memory_suite, suite_running
from portsuite.wrappers import ServiceFactory
from portsuite_services import classic
from portsuite_services.echo import Echo, EchoDatagram

PLUGINS = str(Path(__file__).parents[3] / "plugins")


@pytest.fixture(autouse=True)
def trace_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "traces"
    monkeypatch.setenv("PORTSUITE_TRACE_DIR", str(folder))
    return folder


def records(folder: Path, service: str) -> list[dict[str, Any]]:
    path = folder / f"{service}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def traced(protocol_factory: Any, clock: Clock, name: str = "echo") -> tuple[Any, StringTransport]:
    stats = ServiceStats(name, name)
    factory = ServiceFactory(protocol_factory, stats, clock, protocol_class=trace.TraceProtocol)
    p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 51234))
    t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 51234))
    p.makeConnection(t)
    return p, t


# -- rendering -------------------------------------------------------------------


def test_render_text_with_escapes() -> None:
    assert (
        trace.render(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        == "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    )
    assert trace.render(b"a\tb\\c") == "a\\tb\\\\c"
    assert trace.render(b"caf\xc3\xa9 \x1b[0m ok") == "café \\x1b[0m ok"
    assert trace.render(b"bad \xff byte") == "bad \\xff byte"
    assert trace.render(b"") == "(empty)"


def test_render_binary_as_hex() -> None:
    assert trace.render(classic.rfc868_time(0)) == "hex: 83 aa 7e 80"
    big = bytes(range(256))
    text = trace.render(big)
    assert text.startswith("hex: 00 01 02") and text.endswith("(+192 bytes)")


def test_render_long_text_is_cut_with_the_count() -> None:
    text = trace.render(b"x" * 5000, limit=100)
    assert text == "x" * 100 + " … (+4900 bytes)"


# -- TCP sessions --------------------------------------------------------------------


def test_tcp_session_format_for_the_dashboard(trace_dir: Path) -> None:
    clock = Clock()
    clock.advance(1000)
    p, t = traced(ServerFactory.forProtocol(Echo), clock)
    clock.advance(0.25)
    p.dataReceived(b"hello\r\n")
    assert t.value() == b"hello\r\n"  # tracing does not change the bytes
    p.connectionLost(None)
    (session,) = p.stats.transcripts
    assert session == {
        "service": "echo",
        "peer": "127.0.0.1:51234",
        "started": 1000.0,
        "lines": [
            {"dir": "c2s", "t": 0.25, "text": "hello\\r\\n"},
            {"dir": "s2c", "t": 0.25, "text": "hello\\r\\n"},
        ],
        "cut": False,
        "transport": "tcp",
        "closed": 0.25,  # seconds after the open: the close arrow of the sequence diagram
    }
    events = [(r["event"], r.get("dir")) for r in records(trace_dir, "echo")]
    assert events == [("open", None), ("data", "c2s"), ("data", "s2c"), ("close", None)]


def test_what_the_service_writes_on_connect_is_traced() -> None:
    clock = Clock()
    clock.advance(classic.EPOCH_1900)  # 2040: past the 2036 wrap
    ctx_stats = ServiceStats("time", "time")
    from portsuite import api as configmod
    from portsuite.api import ServiceContext

    cfg = configmod.ServiceConfig(name="time", type="time", port=0)
    inner = classic.TIME.tcp_factory(ServiceContext(clock, cfg, ctx_stats))
    factory = ServiceFactory(inner, ctx_stats, clock, protocol_class=trace.TraceProtocol)
    p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    p.makeConnection(StringTransport())
    assert ctx_stats.transcripts[0]["lines"][0]["text"].startswith("hex: ")


def test_a_long_session_is_cut_with_a_marker_and_stays_bounded(trace_dir: Path) -> None:
    clock = Clock()
    p, t = traced(ServerFactory.forProtocol(Echo), clock)
    for i in range(1000):
        p.dataReceived(f"line {i}\n".encode())
    p.connectionLost(None)
    session = p.stats.transcripts[0]
    assert session["cut"] is True
    assert len(session["lines"]) == trace.MAX_LINES + 1
    assert session["lines"][-1]["text"] == trace.CUT
    assert len(t.value()) == sum(len(f"line {i}\n") for i in range(1000))  # all echoed
    close = records(trace_dir, "echo")[-1]
    assert close["event"] == "close" and close["omitted"]["c2s"] > 0
    assert len(records(trace_dir, "echo")) == trace.MAX_LINES + 3  # open, lines, cut, close


def test_chargen_flood_is_cut_by_text_size() -> None:
    clock = Clock()
    p, t = traced(classic.CHARGEN.tcp_factory(_ctx(clock)), clock, "chargen")
    for _ in range(5):
        p.wrappedProtocol._produce()
    p.connectionLost(None)
    session = p.stats.transcripts[0]
    assert session["cut"] is True
    assert sum(len(line["text"]) for line in session["lines"]) <= trace.MAX_TEXT + 100


def _ctx(clock: Clock) -> Any:
    from portsuite import api as configmod
    from portsuite.api import ServiceContext

    cfg = configmod.ServiceConfig(name="chargen", type="chargen", port=0)
    return ServiceContext(clock, cfg, ServiceStats("chargen", "chargen"))


def test_only_the_last_five_sessions_are_kept() -> None:
    clock = Clock()
    stats = ServiceStats("echo", "echo")
    factory = ServiceFactory(
        ServerFactory.forProtocol(Echo), stats, clock, protocol_class=trace.TraceProtocol
    )
    for i in range(8):
        p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000 + i))
        p.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000 + i)))
        p.connectionLost(None)
    assert [s["peer"] for s in stats.transcripts] == [f"127.0.0.1:{50000 + i}" for i in range(3, 8)]


def test_the_file_is_rotated_with_a_marker(tmp_path: Path) -> None:
    f = trace.TraceFile("svc", tmp_path, max_bytes=500)
    for i in range(40):
        f.append({"event": "data", "i": i})
    assert (tmp_path / "svc.jsonl").stat().st_size < 600
    assert (tmp_path / "svc.jsonl.1").exists()
    assert json.loads((tmp_path / "svc.jsonl").read_text().splitlines()[0])["event"] in (
        "rotated",
        "data",
    )
    assert any(
        json.loads(line)["event"] == "rotated"
        for p in (tmp_path / "svc.jsonl", tmp_path / "svc.jsonl.1")
        for line in p.read_text().splitlines()
    )


def test_an_unwritable_trace_dir_does_not_break_the_service(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    f = trace.TraceFile("svc", blocker / "sub")
    f.append({"event": "open"})
    assert f.broken  # disabled once, with one log line; the service goes on


# -- UDP sessions ----------------------------------------------------------------------


def test_udp_datagrams_traced_per_peer_and_drops_noted(trace_dir: Path) -> None:
    clock = Clock()
    clock.advance(100)
    stats = ServiceStats("echo", "echo")
    w = udp.GuardedDatagramWrapper(EchoDatagram(), stats, clock, trace=True)
    w.makeConnection(DatagramRecorder())
    w.datagramReceived(b"ping", ("127.0.0.1", 40000))
    clock.advance(1)
    w.datagramReceived(b"ping2", ("127.0.0.1", 40000))
    for _ in range(5):
        w.datagramReceived(b"loop", ("127.0.0.1", 19))  # dropped by the guard
    (session,) = stats.transcripts
    assert session["peer"] == "127.0.0.1:40000"
    assert [(line["dir"], line["t"], line["text"]) for line in session["lines"]] == [
        ("c2s", 0.0, "ping"),
        ("s2c", 0.0, "ping"),
        ("c2s", 1.0, "ping2"),
        ("s2c", 1.0, "ping2"),
    ]
    drops = [r for r in records(trace_dir, "echo") if r["event"] == "drop"]
    assert len(drops) == 1 and "source port 19" in drops[0]["text"]  # rate-limited like the log
    clock.advance(trace.UDP_SESSION_GAP + 1)
    w.datagramReceived(b"later", ("127.0.0.1", 40000))
    assert len(stats.transcripts) == 2  # a quiet gap starts a new session


# -- following from a terminal -----------------------------------------------------------


def test_follow_once_prints_a_readable_transcript(trace_dir: Path) -> None:
    clock = Clock()
    p, _ = traced(ServerFactory.forProtocol(Echo), clock)
    p.dataReceived(b"hi\r\n")
    p.connectionLost(None)
    out = io.StringIO()
    assert trace.follow("echo", once=True, from_start=True, out=out) == 0
    text = out.getvalue()
    assert "echo: 127.0.0.1:51234 connected (tcp)" in text
    assert "127.0.0.1:51234 C→S hi\\r\\n" in text
    assert "127.0.0.1:51234 S→C hi\\r\\n" in text
    assert "closed after" in text


def test_follow_picks_up_new_lines_and_rotation(tmp_path: Path) -> None:
    import threading

    f = trace.TraceFile("svc", tmp_path, max_bytes=2000)
    f.append({"event": "open", "service": "svc", "peer": "p", "time": 0})
    out = io.StringIO()
    th = threading.Thread(
        target=trace.follow,
        args=("svc", tmp_path),
        kwargs={"out": out, "poll": 0.02, "stop_after": 3.0},
    )
    th.start()
    deadline = time.monotonic() + 5
    while "following" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)  # the banner comes once the file is open, at its end
    for i in range(60):  # crosses a rotation
        f.append(
            {"event": "data", "peer": "p", "dir": "c2s", "t": i, "text": f"msg{i:02d}" + "." * 40}
        )
        time.sleep(0.01)
    th.join(10)
    shown = out.getvalue()
    assert "connected" not in shown  # it starts at the end, like tail -f
    assert "msg00" in shown and "msg59" in shown
    assert (tmp_path / "svc.jsonl.1").exists()


# -- real sockets ---------------------------------------------------------------------------


def test_trace_on_a_plugin_service_over_real_sockets(trace_dir: Path, tmp_path: Path) -> None:
    config = {
        "suite": {"plugin_dirs": [PLUGINS]},
        "services": {"shout": {"type": "upper:Upper", "port": 0, "trace": True}},
    }
    with suite_running(config, base_dir=tmp_path) as s:
        c = socket.create_connection(("127.0.0.1", s.port("shout")))
        c.settimeout(5)
        c.sendall(b"hello\n")
        assert c.recv(100) == b"HELLO\n"
        peer = f"127.0.0.1:{c.getsockname()[1]}"
        c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            recs = records(trace_dir, "shout") if (trace_dir / "shout.jsonl").exists() else []
            if any(r["event"] == "close" for r in recs):
                break
            time.sleep(0.02)
        texts = [(r["dir"], r["text"]) for r in recs if r["event"] == "data"]
        assert texts == [("c2s", "hello\\n"), ("s2c", "HELLO\\n")]
        assert recs[0]["peer"] == peer
        # the same, through the CLI a student runs in another terminal
        out = subprocess.run(
            [sys.executable, "-m", "portsuite.cli", "trace", "shout", "--once"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert f"{peer} C→S hello\\n" in out.stdout
        assert f"{peer} S→C HELLO\\n" in out.stdout


def test_udp_trace_over_real_sockets(trace_dir: Path) -> None:
    config = {"services": {"t": {"type": "time", "port": 0, "udp": True, "trace": True}}}
    with suite_running(config) as s:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(5)
        c.sendto(b"\n", ("127.0.0.1", s.port("t", "udp")))
        answer = c.recvfrom(100)[0]
        c.close()
        recs = records(trace_dir, "t")
        data = [(r["dir"], r["text"]) for r in recs if r["event"] == "data"]
        assert data == [("c2s", "\\n"), ("s2c", "hex: " + answer.hex(" "))]
        assert recs[0]["transport"] == "udp"


def test_cli_says_when_a_service_is_not_traced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from portsuite import cli

    config = tmp_path / "c.toml"
    config.write_text('[services.echo]\ntype = "echo"\nport = 0\n')
    assert cli.main(["trace", "echo", "-c", str(config)]) == 2
    assert "add trace = true" in capsys.readouterr().err
    assert cli.main(["trace", "ehco", "-c", str(config)]) == 2
    assert "has no service 'ehco'" in capsys.readouterr().err


@given(st.binary(max_size=3000))
def test_render_any_bytes_is_one_printable_bounded_line(data: bytes) -> None:
    text = trace.render(data)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert all(ch.isprintable() for ch in text)
    assert len(text) <= trace.MAX_CHUNK + 40


def test_trace_inside_tls_shows_the_plaintext(trace_dir: Path, tmp_path: Path) -> None:
    """The transcript sits inside TLS: the class sees the protocol, not ciphertext."""
    import ssl

    from portsuite import certs

    certs.make(tmp_path / "certs")
    config = {
        "services": {
            "secure": {
                "type": "echo",
                "port": 0,
                "trace": True,
                "tls": {"cert": "certs/server.crt", "key": "certs/server.key"},
            }
        }
    }
    with suite_running(config, base_dir=tmp_path) as s:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "certs" / "ca.crt"))
        with socket.create_connection(("127.0.0.1", s.port("secure"))) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.settimeout(5)
                c.sendall(b"secret hello\r\n")
                assert c.recv(100) == b"secret hello\r\n"
        texts = [r.get("text") for r in records(trace_dir, "secure") if r["event"] == "data"]
        assert texts == ["secret hello\\r\\n", "secret hello\\r\\n"]


# -- binary protocols: hex per service, not per chunk ----------------------------------------

# a time reply (2026-04-12) whose 4 bytes happen to be valid UTF-8: "한!"
LOOKS_LIKE_TEXT = b"\xed\x95\x9c!"


def test_time_replies_are_hex_even_when_they_look_like_text(trace_dir: Path) -> None:
    """The flake of the UDP trace test: judged alone, such a reply reads as text."""
    assert trace.render(LOOKS_LIKE_TEXT) == "한!"  # what the chunk alone looks like
    when = int.from_bytes(LOOKS_LIKE_TEXT, "big") - classic.EPOCH_1900
    assert classic.rfc868_time(when) == LOOKS_LIKE_TEXT
    config = {"services": {"t": {"type": "time", "port": 0, "udp": True, "trace": True}}}
    with memory_suite(config, start_time=when) as s:
        c = s.connect("t")
        assert c.received() == LOOKS_LIKE_TEXT and c.closed
        assert s.datagram("t", b"\n", ("127.0.0.1", 40000)) == [LOOKS_LIKE_TEXT]
        tcp, udp_session = s.stats("t").transcripts
    assert [line["text"] for line in tcp["lines"]] == ["hex: ed 95 9c 21"]
    assert [(line["dir"], line["text"]) for line in udp_session["lines"]] == [
        ("c2s", "\\n"),  # what the client sent is still judged as it comes
        ("s2c", "hex: ed 95 9c 21"),
    ]
    data = [r["text"] for r in records(trace_dir, "t") if r["event"] == "data"]
    assert data == ["hex: ed 95 9c 21", "\\n", "hex: ed 95 9c 21"]


def test_a_type_declares_its_binary_directions() -> None:
    clock = Clock()
    stats = ServiceStats("bin", "bin")
    both = trace.ServiceTrace(stats, clock, hex=("c2s", "s2c"))
    session = both.session("127.0.0.1:1")
    session.add("c2s", b"GET /\r\n")
    session.add("s2c", b"ok")
    assert [line["text"] for line in session.record["lines"]] == [
        "hex: 47 45 54 20 2f 0d 0a",
        "hex: 6f 6b",
    ]
    assert classic.TIME.trace_hex == {"s2c"}
    assert classic.DAYTIME.trace_hex == frozenset()  # text protocols keep the per-chunk view


# -- one folder per suite ------------------------------------------------------------------


def _suite_config(folder: Path) -> Path:
    folder.mkdir()
    path = folder / "config.toml"
    path.write_text('[services.echo]\ntype = "echo"\nport = 0\ntrace = true\n')
    return path


def test_two_suites_keep_their_transcripts_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two suites with a service of the same name: each transcript in its suite's folder."""
    import tempfile

    from portsuite import cli

    monkeypatch.delenv("PORTSUITE_TRACE_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # instead of /tmp
    (tmp_path / "tmp").mkdir()
    first = _suite_config(tmp_path / "first")
    second = _suite_config(tmp_path / "second")
    with memory_suite(first) as a, memory_suite(second) as b:
        a.connect("echo", peer=("127.0.0.1", 41111)).send(b"from the first suite\n").close()
        b.connect("echo", peer=("127.0.0.1", 42222)).send(b"from the second suite\n").close()
    folders = sorted(p.parent for p in (tmp_path / "tmp").glob("portsuite-trace-*/*/echo.jsonl"))
    assert [f.name for f in folders] == sorted([trace.suite_key(first), trace.suite_key(second)])
    assert folders[0].name.startswith("config-")
    texts = {
        f.name: [
            json.loads(line).get("text") for line in (f / "echo.jsonl").read_text().splitlines()
        ]
        for f in folders
    }
    assert "from the first suite\\n" in texts[trace.suite_key(first)]
    assert not any("second" in (t or "") for t in texts[trace.suite_key(first)])
    assert not any("first" in (t or "") for t in texts[trace.suite_key(second)])
    # portsuite trace SERVICE -c CONFIG follows that suite, from any folder
    monkeypatch.chdir(tmp_path / "second")
    assert cli.main(["trace", "echo", "-c", "config.toml", "--once"]) == 0
    out = capsys.readouterr().out
    assert "127.0.0.1:42222 C→S from the second suite\\n" in out
    assert "first suite" not in out
    assert cli.main(["trace", "echo", "-c", str(first), "--once"]) == 0
    out = capsys.readouterr().out
    assert "127.0.0.1:41111 C→S from the first suite\\n" in out
    assert "second suite" not in out
    # without -c: the newest, and a word about the other
    assert cli.main(["trace", "echo", "--once"]) == 0
    out = capsys.readouterr().out
    assert "traced by 2 suites" in out and "-c CONFIG" in out


def test_the_suite_folder_must_belong_to_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder planted in the shared /tmp (a link elsewhere) is not written through."""
    import tempfile

    monkeypatch.delenv("PORTSUITE_TRACE_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    trace.user_dir().symlink_to(elsewhere)
    f = trace.TraceFile("svc", trace.trace_dir(tmp_path / "c.toml"))
    f.append({"event": "open"})
    assert f.broken and list(elsewhere.iterdir()) == []


def test_dns_transcripts_are_hex_both_ways(trace_dir: Path) -> None:
    """A DNS message is binary, even when its long names make it look like text."""
    from twisted.names import dns

    query = dns.Message(id=0x6C61, recDes=False)  # "la": even the id reads as text
    query.addQuery(b"a" * 63 + b"." + b"b" * 63 + b".lab.test", dns.A)  # label lengths: "?"
    raw = query.toStr()
    assert not trace.is_binary(raw)  # judged alone, the query would show as text
    config = {"services": {"d": {"type": "dns", "port": 0, "trace": True}}}
    with memory_suite(config) as s:
        (answer,) = s.datagram("d", raw, ("127.0.0.1", 40000))
        (session,) = s.stats("d").transcripts
    reply = dns.Message()
    reply.fromStr(answer)
    assert reply.id == 0x6C61 and reply.rCode == dns.ENAME  # no such name in the zone
    assert [(line["dir"], line["text"]) for line in session["lines"]] == [
        ("c2s", trace.render_hex(raw)),
        ("s2c", trace.render_hex(answer)),
    ]
