"""
The fast path of the http type (L{Channel._answer_quick}): a plain GET or HEAD of a
small cached file answered from the raw head, without a twisted.web Request. What a
client reads and what the access log says must be the full path's, byte for byte;
every other request must still get the full path's answer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from httphelp import Web, parse_responses
from twisted.logger import globalLogPublisher

from portsuite_services.http.site import LOG_FLUSH, QUICK_HEAD_BYTES, QUICK_HEADS, Request


class Counted(Request):
    """twisted.web's Request, counted: the full path builds one, the fast path none."""

    made = 0

    def __init__(self, *args: Any, **kw: Any):
        Counted.made += 1
        super().__init__(*args, **kw)


@pytest.fixture
def counted(web: Web) -> Web:
    Counted.made = 0
    web.site.requestFactory = Counted
    return web


def exchange(web: Web, raw: bytes) -> tuple[bytes, list[str], int, Any]:
    """Send C{raw} on a new connection: the bytes read back, the access log lines,
    how many Requests the full path built, and the transport."""
    web.clock.advance(LOG_FLUSH)  # earlier requests' log lines are out of the way
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    before = Counted.made
    try:
        _channel, transport = web.send(raw)
        web.clock.advance(LOG_FLUSH)  # gathered log lines are written
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = "\n".join(e["access_log"] for e in events if "access_log" in e).splitlines()
    return transport.value(), lines, Counted.made - before, transport


def head(method: str, target: str, *fields: str, version: str = "HTTP/1.1") -> bytes:
    return "\r\n".join([f"{method} {target} {version}", *fields, "", ""]).encode("latin-1")


AGENTS = (
    "Host: localhost",
    'User-Agent: Mozilla/5.0 "quoted" \\ back',
    "Referer: http://localhost/a b",
    "Accept: */*",
    "Connection: keep-alive",
)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "target, fields",
    [
        ("/a.txt", ("Host: localhost",)),
        ("/", ("Host: localhost:8080",)),
        ("/docs/", ("host: 127.0.0.1",)),
        ("/style.css?v=3&x=%20", AGENTS),
        ("/data.json", ("Host: localhost", "Cookie: a=b", "Accept-Encoding: gzip")),
        ("/pic.png", ("Host: [::1]:8080", "USER-AGENT: first", "User-Agent: second")),
        ("/sub/with%20space.txt", ("Host: localhost",)),
    ],
)
def test_fast_answer_and_log_line_are_the_full_paths(
    counted: Web, method: str, target: str, fields: tuple[str, ...]
) -> None:
    raw = head(method, target, *fields)
    full, full_log, built, _t = exchange(counted, raw)  # not cached yet: the full path
    assert built == 1
    fast, fast_log, built, _t = exchange(counted, raw)  # cached and fresh: the fast path
    assert built == 0
    assert fast == full
    assert fast_log == full_log and len(fast_log) == 1
    (response,) = parse_responses(fast, head_only=method == "HEAD")
    assert response.status == 200
    for name in ("date", "server", "etag", "last-modified", "content-type", "content-length"):
        assert response.header(name), name
    assert response.header("x-content-type-options") == "nosniff"


def test_a_keep_alive_connection_is_answered_request_after_request(counted: Web) -> None:
    counted.get("/a.txt")
    channel, transport = counted.connect()
    raw = head("GET", "/a.txt", "Host: localhost")
    for _ in range(3):
        channel.dataReceived(raw)
    responses = parse_responses(transport.value())
    assert [r.body for r in responses] == [b"0123456789abcdefghij"] * 3
    assert Counted.made == 1  # only the first request, before the file was cached
    assert not transport.disconnecting


@pytest.mark.parametrize(
    "raw, status, closes",
    [
        (head("GET", "/a.txt", "Host: localhost", 'If-None-Match: "x", *'), 304, False),
        (head("GET", "/a.txt", "Host: localhost", 'If-Match: "nope"'), 412, False),
        (head("GET", "/a.txt", "Host: localhost", "Range: bytes=2-4"), 206, False),
        (head("GET", "/a.txt", "Host: localhost", "Range: bytes=99-"), 416, False),
        (
            head(
                "GET", "/a.txt", "Host: localhost", "If-Modified-Since: Sat, 1 Jan 2000 0:0:0 GMT"
            ),
            200,
            False,
        ),
        (head("GET", "/a.txt", "Host: localhost", "Connection: close"), 200, True),
        (head("GET", "/a.txt", "Host: localhost", "Connection: keep-alive, close"), 200, True),
        (head("GET", "/a.txt", "Host: localhost", version="HTTP/1.0"), 200, True),
        (head("GET", "/a.txt", version="HTTP/1.0"), 200, True),
        (head("GET", "/a.txt"), 400, True),
        (head("GET", "/a.txt", "Host: a", "Host: b"), 400, True),
        (head("GET", "/a.txt", "Host: a b"), 400, True),
        (head("get", "/a.txt", "Host: localhost"), 400, True),
        (head("POST", "/a.txt", "Host: localhost"), 405, False),
        (head("GET", "/a.txt", "Host: localhost", "Content-Length: 2") + b"hi", 200, False),
        (head("GET", "/a.txt", "Host: localhost", "Transfer-Encoding: gzip"), 501, True),
        (head("GET", "/a.txt", "Host: localhost", "Bad header"), 400, True),
        (head("GET", "/a.txt", "Host: localhost", "X: trailing blank "), 200, False),
        (b"\r\n" + head("GET", "/a.txt", "Host: localhost"), 200, False),
        (b"GET /a.txt HTTP/1.1\nHost: localhost\n\n", 200, False),
        (head("GET", "/a.txt", "Host: localhost", version="HTTP/1.2"), 200, False),
        (head("GET", "/_portsuite/api/services", "Host: localhost"), 200, False),
        (head("GET", "/mid.bin", "Host: localhost"), 200, False),
        (head("GET", "/sub", "Host: localhost"), 301, False),
        (head("GET", "/nope", "Host: localhost"), 404, False),
    ],
)
def test_every_other_request_gets_the_full_paths_answer(
    counted: Web, raw: bytes, status: int, closes: bool
) -> None:
    for path in ("/a.txt", "/mid.bin"):
        counted.get(path)  # cached and fresh: the fast path would answer these
    data, _log, _built, transport = exchange(counted, raw)
    (response,) = parse_responses(data)
    assert response.status == status, response.raw[:300]
    assert transport.disconnecting == closes
    if closes and status == 200:
        assert response.header("connection") in (None, "close")


def test_pipelined_requests_are_all_answered_in_order(counted: Web) -> None:
    counted.get("/a.txt")
    counted.get("/style.css")
    raw = head("GET", "/a.txt", "Host: localhost") + head("GET", "/style.css", "Host: localhost")
    data, lines, built, _t = exchange(counted, raw)
    responses = parse_responses(data)
    assert [r.body for r in responses] == [b"0123456789abcdefghij", b"body { color: red; }\n"]
    assert len(lines) == 2 and built == 2


def test_a_head_split_over_two_reads_is_answered(counted: Web) -> None:
    counted.get("/a.txt")
    channel, transport = counted.connect()
    raw = head("GET", "/a.txt", "Host: localhost")
    channel.dataReceived(raw[:10])
    channel.dataReceived(raw[10:])
    (response,) = parse_responses(transport.value())
    assert response.body == b"0123456789abcdefghij"


def test_an_edited_or_removed_file_is_served_fresh_after_a_tick(
    counted: Web, docroot: Path
) -> None:
    counted.get("/a.txt")
    assert counted.get("/a.txt").body == b"0123456789abcdefghij"
    (docroot / "a.txt").write_bytes(b"edited, and longer than before")
    counted.clock.advance(1)
    r = counted.get("/a.txt")
    assert r.body == b"edited, and longer than before"
    assert r.header("content-length") == "30"
    assert counted.get("/a.txt").body == b"edited, and longer than before"
    os.unlink(docroot / "a.txt")
    counted.clock.advance(1)
    assert counted.get("/a.txt").status == 404


def test_remembered_heads_are_bounded(counted: Web) -> None:
    counted.get("/a.txt")
    for i in range(QUICK_HEADS * 3):
        data, _l, _b, _t = exchange(counted, head("GET", f"/a.txt?{i}", "Host: localhost"))
        assert parse_responses(data)[0].status == 200
    assert len(counted.site.quick_heads) <= QUICK_HEADS
    counted.get("/a.txt")  # checked again in this tick
    big = head("GET", "/a.txt", "Host: localhost", "X-Pad: " + "p" * QUICK_HEAD_BYTES)
    data, _l, built, _t = exchange(counted, big)
    assert parse_responses(data)[0].body == b"0123456789abcdefghij" and built == 0
    assert big not in counted.site.quick_heads


def test_no_access_log_line_when_the_log_is_off(docroot: Path) -> None:
    web = Web(docroot, access_log=False)
    Counted.made = 0
    web.site.requestFactory = Counted
    web.get("/a.txt")
    data, lines, built, _t = exchange(web, head("GET", "/a.txt", "Host: localhost"))
    assert built == 0 and lines == []
    assert parse_responses(data)[0].status == 200
