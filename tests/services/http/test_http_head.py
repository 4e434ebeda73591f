"""
The request head as a person types it (telnet, nc) and as a hostile client sends it:
every mistake gets a status and a sentence, never a bare 400 or a silent close.
In memory (twisted.web on a StringTransport with a fake clock).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from httphelp import Web, parse_responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport


@pytest.fixture(scope="module")
def docroot_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"0123456789abcdefghij")
    return root


def answer(web: Web, raw: bytes) -> tuple[int, bytes, bool]:
    _c, t = web.send(raw)
    (r,) = parse_responses(t.value())
    return r.status, r.body, t.disconnecting


def test_a_person_typing_for_40_seconds_is_served(docroot: Path) -> None:
    web = Web(docroot)
    channel, t = web.connect()
    for line in (b"GET /a.txt HTTP/1.1\r\n", b"Host: localhost\r\n", b"\r\n"):
        for byte in line:
            channel.dataReceived(bytes([byte]))
            web.clock.advance(0.9)  # ~35 s in all: a slow typist
    (r,) = parse_responses(t.value())
    assert r.status == 200 and r.body == b"0123456789abcdefghij"


def test_the_408_page_names_the_setting_to_raise(docroot: Path) -> None:
    web = Web(docroot)
    channel, t = web.connect()
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    web.clock.advance(59)
    assert not t.disconnecting
    web.clock.advance(2)
    (r,) = parse_responses(t.value())
    assert r.status == 408 and b"head_timeout" in r.body and b"60 s" in r.body
    assert t.disconnecting


def test_bare_lf_line_endings_are_accepted(web: Web) -> None:
    _c, t = web.send(b"GET /a.txt HTTP/1.1\nHost: x\n\nGET /sub/b.txt HTTP/1.1\nHost: x\n\n")
    rs = parse_responses(t.value())
    assert [r.status for r in rs] == [200, 200]
    assert rs[1].body == b"bee"


def test_empty_lines_before_a_request_are_skipped(web: Web) -> None:
    assert answer(web, b"\r\n\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"GET /\r\n\r\n", 400, b"no HTTP version"),
        (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"GET, not get"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, b"has no colon"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400, b"not a valid token"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, b"before the colon"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n  folded\r\n\r\n", 400, b"folding"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, b"need a Host"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, b"two Host"),
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, b"not a host name"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, b"gzip"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            b"both",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400, b"Content-Length"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, b"ALPN"),
        (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, b"HTTP/3.0"),
        (b"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400, b"version"),
        (b"GET  /  HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"single spaces"),
        (b"GET nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"must start with /"),
    ],
)
def test_every_mistake_gets_a_page_saying_what_was_wrong(
    web: Web, raw: bytes, code: int, words: bytes
) -> None:
    status, body, closed = answer(web, raw)
    assert (status, closed) == (code, True)
    assert words in body, body
    assert body.startswith(b"%d " % code)


def test_http_1_2_is_served_as_1_1(web: Web) -> None:
    _c, t = web.send(b"GET /a.txt HTTP/1.2\r\nHost: x\r\n\r\n")
    assert t.value().startswith(b"HTTP/1.1 200 OK")
    assert not t.disconnecting  # and kept alive, as 1.1


def test_http_1_0_without_host_is_served(web: Web) -> None:
    _c, t = web.send(b"GET /a.txt HTTP/1.0\r\n\r\n")
    assert b" 200 OK" in t.value().split(b"\r\n")[0]


def test_an_over_long_request_line_is_414(web: Web) -> None:
    channel, t = web.connect()
    channel.dataReceived(b"GET /" + b"a" * 9000)  # not even finished
    (r,) = parse_responses(t.value())
    assert r.status == 414 and b"8192" in r.body and t.disconnecting


def test_an_over_long_header_line_is_431(web: Web) -> None:
    channel, t = web.connect()
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 9000)
    (r,) = parse_responses(t.value())
    assert r.status == 431 and b"header line" in r.body and t.disconnecting


def test_too_many_header_fields_is_431(web: Web) -> None:
    fields = b"".join(b"X-%d: y\r\n" % i for i in range(150))
    status, body, _closed = answer(web, b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert status == 431 and b"100 header fields" in body


def test_a_huge_head_in_short_lines_is_431(web: Web) -> None:
    channel, t = web.connect()
    channel.dataReceived(b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 4000 + b"\r\n")
    for _ in range(10):
        channel.dataReceived(b"X: " + b"y" * 4000 + b"\r\n")
    (r,) = parse_responses(t.value())
    assert r.status == 431 and t.disconnecting


def test_a_body_to_a_refused_method_gets_405_from_the_head(web: Web) -> None:
    channel, t = web.connect()
    channel.dataReceived(
        b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n"
    )
    out = t.value()
    assert out.startswith(b"HTTP/1.1 405 Method Not Allowed")
    assert b"100 Continue" not in out  # the final status, not an invitation
    assert b"\r\nAllow: GET, HEAD\r\n" in out
    assert t.disconnecting


def test_a_wanted_body_with_expect_gets_100_continue_first(web: Web) -> None:
    channel, t = web.connect()
    channel.dataReceived(
        b"POST /_portsuite/api/services HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert t.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    channel.dataReceived(b"hello")
    assert b"HTTP/1.1 405" in t.value()  # the JSON is GET only: twisted.web says so


def test_a_stalled_body_gets_the_body_deadline(docroot: Path) -> None:
    web = Web(docroot, body_timeout=5.0)
    channel, t = web.connect()
    channel.dataReceived(
        b"POST /_portsuite/api/services HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n"
    )
    for _ in range(4):  # a byte every 4 s keeps it going
        web.clock.advance(4)
        channel.dataReceived(b"x")
    assert not t.disconnecting
    web.clock.advance(5.1)
    (r,) = parse_responses(t.value())
    assert r.status == 408 and b"body_timeout" in r.body and t.disconnecting


def test_a_chunked_body_with_bare_lf_is_read(web: Web) -> None:
    _c, t = web.send(
        b"POST /_portsuite/api/services HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"
        b"3\nabc\n0\n\n"
        b"GET /a.txt HTTP/1.1\nHost: x\n\n"
    )
    assert [r.status for r in parse_responses(t.value())] == [405, 200]


def test_bad_chunk_sizes_are_400(web: Web) -> None:
    status, body, closed = answer(
        web,
        b"POST /_portsuite/api/services HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0x10\r\n",
    )
    assert (status, closed) == (400, True) and b"hex" in body


class _PushBack(StringTransport):
    """A socket that is full past 64 KiB: it pauses its producer, like a real one."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.io.getvalue()) > 65536 and self.producer is not None:
            self.producer.pauseProducing()


def test_pipelined_requests_wait_bounded_and_are_all_answered(web: Web) -> None:
    channel = web.site.buildProtocol(None)
    t = _PushBack()
    channel.makeConnection(t)
    big = b"GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n"  # fills the socket
    small = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    channel.dataReceived(big + small * 3000)  # 96 KB of requests behind it, never read
    assert t.producerState == "paused"  # we stopped reading the socket
    got = t.value()
    assert got.count(b"HTTP/1.1 200") <= 2
    for _ in range(10_000):
        if got.count(b"HTTP/1.1 200 OK") == 3001:
            break
        t.clear()
        channel.resumeProducing()  # the client read everything: the socket drained
        got += t.value()
    assert got.count(b"HTTP/1.1 200 OK") == 3001


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Trap: Host: ok\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 8190 + b"\r\n\r\n",
    ],
)
def test_the_fast_path_agrees_with_the_careful_one(raw: bytes) -> None:
    from portsuite_services.http.head import HeadError, _parse, parse

    head = raw[: raw.index(b"\r\n\r\n")]
    results = []
    for check in (parse, _parse):
        try:
            h = check(head)
            results.append((h.method, h.target, h.version, h.length, h.fields))
        except HeadError as e:
            results.append((e.code, e.text))
    assert results[0] == results[1]


def test_raw_utf8_in_the_address_is_served_like_nginx(web: Web, docroot: Path) -> None:
    (docroot / "café.txt").write_bytes(b"coffee")
    status, body, _closed = answer(
        web, "GET /café.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert (status, body) == (200, b"coffee")


_PIECES = [
    b"GET",
    b"get",
    b"POST",
    b" ",
    b"  ",
    b"/",
    b"/a.txt",
    b"*",
    b"http://x/a.txt",
    b"\xc3\xa9",
    b"\x00",
    b"\x7f",
    b"\xb5",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"HTTP/1.9",
    b"HTTP/x",
    b"\r\n",
    b"\n",
    b"\r",
    b"Host: x",
    b"Host:",
    b"Host: a b",
    b"Content-Length: 3",
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Expect: 100-continue",
    b"X:",
    b":",
    b"Na me: v",
    b"\t",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"zz\r\n",
    b"abc",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=25))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_bare_400_or_a_traceback(docroot_once: Path, parts: list[bytes]) -> None:
    web = Web(docroot_once)
    channel, t = web.connect()
    channel.dataReceived(b"".join(parts) + b"\r\n\r\n")
    out = t.value()
    assert b"HTTP/1.1 400 Bad Request\r\n\r\n" not in out  # twisted.web's bare answer
    assert b"Traceback" not in out
    if out.startswith(b"HTTP/1.1 4") or out.startswith(b"HTTP/1.1 5"):
        status = int(out[9:12])
        if status not in (405, 412, 416) and b"Content-Type: text/plain" in out[:300]:
            assert b"portsuite: " in out
