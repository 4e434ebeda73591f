"""
The http type's static serving, on the real twisted.web stack in memory: index,
MIME types, HEAD, ranges, conditional GET, error pages, listings, the access log.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from httphelp import MID_SIZE, Web, parse_responses
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher

from portsuite.api import ConfigError
from portsuite.loader import from_dict
from portsuite_services.http import HTTP
from portsuite_services.http.site import LOG_FLUSH, http_refusal


def test_root_serves_index_html(web: Web) -> None:
    r = web.get("/")
    assert r.status == 200
    assert b"<h1>Welcome</h1>" in r.body
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert r.header("content-length") == str(len(r.body))


def test_server_header_has_no_version(web: Web) -> None:
    for path in ("/", "/nope", "/_portsuite/api/services"):
        r = web.get(path)
        assert r.header("server") == "portsuite", path
        assert "twisted" not in r.raw.decode("latin-1").lower()
        assert r.header(
            "date",
        ) and r.header("date").endswith("GMT")


def test_folder_with_index_and_redirect_to_slash(web: Web) -> None:
    r = web.get("/docs")
    assert r.status == 301
    assert r.header("location") == "/docs/"
    r = web.get("/docs?x=1")
    assert r.header("location") == "/docs/?x=1"
    r = web.get("/docs/")
    assert r.status == 200 and r.body == b"<h1>docs</h1>"


@pytest.mark.parametrize(
    "path, ctype",
    [
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json; charset=utf-8"),
        ("/pic.png", "image/png"),
        ("/a.txt", "text/plain; charset=utf-8"),
        ("/blob.xyz123", "application/octet-stream"),
    ],
)
def test_mime_types(web: Web, path: str, ctype: str) -> None:
    r = web.get(path)
    assert r.status == 200
    assert r.header("content-type") == ctype
    assert r.header("x-content-type-options") == "nosniff"


def test_head_has_the_headers_of_get_and_no_body(web: Web) -> None:
    g = web.get("/a.txt")
    h = web.request("HEAD", "/a.txt")
    assert h.status == 200 and h.body == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "accept-ranges"):
        assert h.header(name) == g.header(name)
    # nothing after the head: the next bytes on the wire would be a body
    _c, t = web.send(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert t.value().endswith(b"\r\n\r\n")


def test_keep_alive_answers_several_requests_on_one_connection(web: Web) -> None:
    _c, t = web.send(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    rs = parse_responses(t.value())
    assert [r.status for r in rs] == [200, 200, 404]
    assert rs[1].body == b"bee"
    assert not t.disconnecting


def test_a_file_name_with_a_space(web: Web) -> None:
    assert web.get("/sub/with%20space.txt").body == b"spaced"


def test_absolute_form_request_target(web: Web) -> None:
    assert web.get("http://localhost/a.txt").body == b"0123456789abcdefghij"


def test_non_utf8_and_unicode_file_names(docroot: Path) -> None:
    (docroot / "sub" / "café.txt").write_bytes(b"coffee")
    os.makedirs(os.fsencode(docroot / "raw"))
    (Path(os.fsdecode(os.fsencode(docroot / "raw") + b"/caf\xe9.txt"))).write_bytes(b"latin")
    web = Web(docroot, listing=True)
    assert web.get("/sub/caf%C3%A9.txt").body == b"coffee"
    assert web.get("/raw/caf%E9.txt").body == b"latin"
    listing = web.get("/raw/")
    assert listing.status == 200 and b'href="caf%E9.txt"' in listing.body


def test_symlink_inside_root_is_served(web: Web) -> None:
    assert web.get("/alias.txt").body == b"0123456789abcdefghij"


# -- ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, first, last",
    [("bytes=0-9", 0, 9), ("bytes=5-", 5, 19), ("bytes=-4", 16, 19), ("bytes=15-100", 15, 19)],
)
def test_single_range(web: Web, spec: str, first: int, last: int) -> None:
    r = web.get("/a.txt", range=spec)
    assert r.status == 206
    assert r.body == b"0123456789abcdefghij"[first : last + 1]
    assert r.header("content-range") == f"bytes {first}-{last}/20"
    assert r.header("content-length") == str(last - first + 1)


@pytest.fixture
def uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files above 1000 bytes are not cached: mid.bin goes through the FileProducer."""
    from portsuite_services.http import static

    monkeypatch.setattr(static, "SMALL", 1000)


def test_files_too_big_for_the_cache_are_streamed(web: Web, uncached: None) -> None:
    whole = bytes(i % 251 for i in range(MID_SIZE))
    r = web.get("/mid.bin")
    assert r.status == 200 and r.body == whole
    assert r.header("content-length") == str(MID_SIZE) and r.header("etag")
    r = web.get("/mid.bin", range="bytes=70000-200000")
    assert r.status == 206 and r.body == whole[70000:]
    assert r.header("content-range") == f"bytes 70000-{MID_SIZE - 1}/{MID_SIZE}"
    h = web.request("HEAD", "/mid.bin")
    assert h.header("content-length") == str(MID_SIZE) and h.body == b""
    assert web.get("/mid.bin", if_none_match=web.get("/mid.bin").header("etag")).status == 304


def test_streaming_follows_the_transport(web: Web, uncached: None) -> None:
    channel, t = web.connect()
    producer_pauses = []

    # a transport that pushes back after every write, like a full socket buffer
    def write(data: bytes) -> None:
        t.io.write(data)
        if channel._requestProducer is not None:
            producer_pauses.append(1)
            channel._requestProducer.pauseProducing()

    t.write = write  # type: ignore[method-assign]
    channel.dataReceived(b"GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    sent = len(t.value())
    assert sent < MID_SIZE  # paused after a chunk
    while channel._requestProducer is not None:
        channel._requestProducer.resumeProducing()
    (r,) = parse_responses(t.value())
    assert r.body == bytes(i % 251 for i in range(MID_SIZE))
    assert len(producer_pauses) >= MID_SIZE // (1 << 16)


def test_a_big_file_swapped_after_the_check_is_not_sent(
    web: Web, docroot: Path, uncached: None
) -> None:
    assert web.get("/mid.bin").status == 200
    (docroot / "mid.bin").unlink()
    os.symlink(docroot.parent / "outside" / "secret.txt", docroot / "mid.bin")
    r = web.get("/mid.bin")  # same tick: the cached entry is not checked yet...
    assert r.status == 404 and b"TOPSECRET" not in r.body  # ...but the opened file is


def test_range_across_the_split_of_a_big_cached_body(web: Web) -> None:
    whole = bytes(i % 251 for i in range(MID_SIZE))
    r = web.get("/mid.bin", range="bytes=65000-70000")
    assert r.status == 206 and r.body == whole[65000:70001]
    r = web.get("/mid.bin", range="bytes=100000-100009")
    assert r.body == whole[100000:100010]


def test_unsatisfiable_range_is_416(web: Web) -> None:
    r = web.get("/a.txt", range="bytes=20-30")
    assert r.status == 416
    assert r.header("content-range") == "bytes */20"
    assert b"past the end of the file (20 bytes)" in r.body


def test_a_range_from_the_end_is_416_so_curl_resume_stops(web: Web) -> None:
    # curl -C - on a complete download asks for bytes=SIZE-
    r = web.get("/a.txt", range="bytes=20-")
    assert r.status == 416 and r.header("content-range") == "bytes */20"
    assert web.get("/a.txt", range="bytes=19-").body == b"j"


def test_if_match_and_if_unmodified_since_give_412(web: Web) -> None:
    etag = web.get("/a.txt").header("etag")
    assert web.get("/a.txt", if_match='"other"').status == 412
    assert web.get("/a.txt", if_match=f"W/{etag}").status == 412  # strong comparison
    assert web.get("/a.txt", if_match=etag).status == 200
    assert web.get("/a.txt", if_match="*").status == 200
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert web.get("/a.txt", if_unmodified_since=old).status == 412
    future = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert web.get("/a.txt", if_unmodified_since=future).status == 200


def test_if_modified_since_in_the_future_is_ignored(web: Web) -> None:
    r = web.get("/a.txt", if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT")
    assert r.status == 200 and r.body == b"0123456789abcdefghij"


def test_a_folder_redirect_stays_on_this_host(web: Web) -> None:
    for path in ("//docs", "///docs", "/sub//..%2f/docs"):
        r = web.get(path)
        if r.status == 301:
            assert r.header("location") == "/docs/", path
    assert web.get("//docs").header("location") == "/docs/"


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=0-1,3-4",  # several ranges
        "bytes=0-15,5-10",  # overlapping
        "bytes=" + ",".join(f"{i}-{i}" for i in range(20)),  # many
        "bytes=" + ",".join("0-" for _ in range(200)),  # amplification attempt
        "bytes=abc",
        "items=0-1",
        "bytes=9-2",
    ],
)
def test_many_overlapping_or_bad_ranges_get_the_whole_file(web: Web, spec: str) -> None:
    r = web.get("/a.txt", range=spec)
    assert r.status == 200
    assert r.body == b"0123456789abcdefghij"
    assert len(r.raw) < 1000  # no multipart amplification


def test_if_range_with_an_old_validator_sends_everything(web: Web) -> None:
    r = web.get("/a.txt", range="bytes=0-1", if_range='"old-etag"')
    assert r.status == 200 and len(r.body) == 20
    etag = web.get("/a.txt").header("etag")
    r = web.get("/a.txt", range="bytes=0-1", if_range=etag)
    assert r.status == 206 and r.body == b"01"


# -- conditional GET -----------------------------------------------------------------


def test_etag_gives_304(web: Web) -> None:
    first = web.get("/a.txt")
    etag = first.header("etag")
    assert etag and etag.startswith('"')
    r = web.get("/a.txt", if_none_match=etag)
    assert r.status == 304 and r.body == b""
    assert r.header("etag") == etag
    # browsers must revalidate before showing a kept copy: edits show on reload
    assert first.header("cache-control") == "no-cache"
    assert web.get("/a.txt", if_none_match=f'"x", W/{etag}').status == 304
    assert web.get("/a.txt", if_none_match='"other"').status == 200


def test_last_modified_gives_304(web: Web) -> None:
    lm = web.get("/a.txt").header("last-modified")
    assert lm
    assert web.get("/a.txt", if_modified_since=lm).status == 304
    assert web.get("/a.txt", if_modified_since="Mon, 01 Jan 2001 00:00:00 GMT").status == 200
    assert web.get("/a.txt", if_modified_since="garbage").status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110, 13.2.2)
    assert web.get("/a.txt", if_modified_since=lm, if_none_match='"other"').status == 200


def test_an_edited_file_is_served_fresh_within_a_tick(web: Web, docroot: Path) -> None:
    old = web.get("/a.txt")
    path = docroot / "a.txt"
    path.write_bytes(b"changed!")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    web.clock.advance(1.0)  # the site's tick: cached entries are checked again
    new = web.get("/a.txt")
    assert new.body == b"changed!"
    assert new.header("etag") != old.header("etag")
    assert web.get("/a.txt", if_none_match=old.header("etag")).status == 200


# -- pages ----------------------------------------------------------------------------


def test_404_page_is_readable_and_escapes_the_path(web: Web) -> None:
    r = web.get("/no/such/<script>alert(1)</script>")
    assert r.status == 404
    assert r.header("content-type") == "text/html; charset=utf-8"
    text = r.body.decode()
    assert "404 Not Found" in text and "There is no file at this address" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert 'href="/_portsuite/"' in text


def test_folder_without_index_is_403_when_listing_is_off(web: Web) -> None:
    r = web.get("/sub/")
    assert r.status == 403
    assert b"listing = true" in r.body
    assert b"b.txt" not in r.body


def test_listing_when_enabled_hides_dotfiles_and_scripts(docroot: Path) -> None:
    web = Web(docroot, listing=True)
    r = web.get("/sub/")
    assert r.status == 200
    text = r.body.decode()
    assert 'href="b.txt"' in text and 'href="with%20space.txt"' in text
    assert ".hidden" not in text and "env-link" not in text
    top = web.get("/").body.decode()  # index.html wins over the listing
    assert "Welcome" in top
    (docroot / "index.html").unlink()
    web.clock.advance(1)
    top = web.get("/").body.decode()
    assert 'href="sub/"' in top and 'href="a.txt"' in top
    for hidden in (".env", ".git", "x.rpy", "y.epy", "Z.RPY", "leak.txt", "leakdir"):
        assert hidden not in top, hidden


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_get_and_head(web: Web, method: str) -> None:
    r = web.request(method, "/a.txt", body=b"x=1")
    assert r.status == 405
    assert r.header("allow") == "GET, HEAD"


def test_an_unexpected_error_is_a_500_without_traceback(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(raw: bytes) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(web.site.static, "lookup", boom)
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        r = web.get("/a.txt")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert r.status == 500 and r.header("server") == "portsuite"
    assert b"disk on fire" not in r.raw and b"Traceback" not in r.raw
    assert any(e.get("log_failure") is not None and e.get("service") == "web" for e in events)
    # the service goes on
    monkeypatch.undo()
    assert web.get("/a.txt").status == 200


def test_unknown_method_gets_405_not_a_traceback(web: Web) -> None:
    r = web.request("BREW", "/a.txt")
    assert r.status == 405
    assert b"Traceback" not in r.raw


# -- access log -------------------------------------------------------------------------


def test_access_log_is_combined_format_with_peer_port_service_first(web: Web) -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        web.get("/a.txt", user_agent="curl/8.0 test", referer="http://x/")
        web.get("/nope")
        web.clock.advance(LOG_FLUSH)
    finally:
        globalLogPublisher.removeObserver(events.append)
    texts = [e["access_log"] for e in events if "access_log" in e]
    assert texts, "no access log event"
    lines = "\n".join(texts).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("web: 127.0.0.1:5555 - - [")
    assert '"GET /a.txt HTTP/1.1" 200 20 "http://x/" "curl/8.0 test"' in lines[0]
    assert '"GET /nope HTTP/1.1" 404 ' in lines[1] and lines[1].endswith('"-" "-"')


def test_access_log_is_immediate_when_quiet_and_batched_under_load(web: Web) -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        web.get("/a.txt")
        assert len([e for e in events if "access_log" in e]) == 1  # at once, no waiting
        for _ in range(50):
            web.get("/a.txt")
        assert len([e for e in events if "access_log" in e]) == 1  # gathered...
        web.clock.advance(LOG_FLUSH)
        batched = [e for e in events if "access_log" in e]
        assert len(batched) == 2 and batched[1]["requests"] == 50  # ...and written together
        web.clock.advance(LOG_FLUSH * 2)  # quiet again
        web.get("/a.txt")
        assert len([e for e in events if "access_log" in e]) == 3
        web.get("/a.txt")
        web.site.stopFactory()  # nothing is lost at shutdown
        assert len([e for e in events if "access_log" in e]) == 4
        assert not [
            c for c in web.clock.getDelayedCalls() if c.active() and c.func == web.site.flush_log
        ]
    finally:
        globalLogPublisher.removeObserver(events.append)


def test_access_log_escapes_quotes_and_control_bytes(web: Web) -> None:
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        web.get('/a"b', user_agent='evil" injected\x01')
        web.site.flush_log()
    finally:
        globalLogPublisher.removeObserver(events.append)
    (line,) = [e["access_log"] for e in events if "access_log" in e]
    assert '"GET /a\\"b HTTP/1.1"' in line
    assert '"evil\\" injected\\x01"' in line
    assert "\n" not in line


def test_refusal_is_a_503_response() -> None:
    (r,) = parse_responses(http_refusal("too many connections (max_connections = 2)"))
    assert r.status == 503
    assert b"max_connections = 2" in r.body


# -- config ------------------------------------------------------------------------------


def test_missing_root_is_a_config_error_that_says_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict({"services": {"web": {"type": "http", "port": 0}}}, base_dir=tmp_path)
    assert "[services.web] root: missing" in str(e.value)
    assert 'root = "../www"' in str(e.value)


def test_root_that_is_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict(
            {"services": {"web": {"type": "http", "port": 0, "root": "nowhere"}}}, base_dir=tmp_path
        )
    assert "does not exist" in str(e.value) and "nowhere" in str(e.value)


def test_root_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "config").mkdir()
    cfg = from_dict(
        {"services": {"web": {"type": "http", "port": 0, "root": "../www"}}},
        base_dir=tmp_path / "config",
    )
    assert Path(cfg.service("web").options["root"]) == (tmp_path / "www").resolve()


def test_bad_option_values(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    with pytest.raises(ConfigError) as e:
        from_dict(
            {
                "services": {
                    "web": {
                        "type": "http",
                        "port": 0,
                        "root": "www",
                        "head_timeout": 0,
                        "max_body": -1,
                    }
                }
            },
            base_dir=tmp_path,
        )
    text = str(e.value)
    assert "head_timeout" in text and "max_body" in text


def test_type_metadata() -> None:
    assert HTTP.name == "http"
    assert HTTP.default_port == 80
    names = {o.name for o in HTTP.options}
    assert {"root", "listing", "dashboard", "head_timeout", "max_body"} <= names
    assert HTTP.option("listing").default is False
    assert HTTP.option("dashboard").default is True


class _FullSocket(StringTransport):
    """A transport whose buffer is 'full' past 64 KiB: it pauses its producer."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.io.getvalue()) > 65536 and self.producer is not None:
            self.producer.pauseProducing()


def test_a_slow_reader_of_a_big_cached_file_holds_a_bounded_buffer(docroot: Path) -> None:
    from portsuite_services.http.site import SLICE

    body = bytes(range(256)) * (3 * 1024 * 1024 // 256) + b"THE-END"  # cached (< 4 MiB)
    (docroot / "big.bin").write_bytes(body)
    web = Web(docroot)
    channel = web.site.buildProtocol(None)
    t = _FullSocket()
    channel.makeConnection(t)
    channel.dataReceived(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    # the client reads nothing: what was handed to the socket stays small
    assert len(t.value()) < 65536 + SLICE + 1024
    got = t.value()
    while not got.endswith(b"THE-END"):
        t.clear()
        channel.resumeProducing()  # the client read it all: the socket drained
        assert t.value(), "stalled"
        assert len(t.value()) <= SLICE + 65536  # never the whole rest at once
        got += t.value()
    assert got.split(b"\r\n\r\n", 1)[1] == body
