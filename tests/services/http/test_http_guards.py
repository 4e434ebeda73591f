"""
The http type's safety rules, each with the attack it stops: paths out of root in
every encoding, symlinks out, dotfiles, .rpy/.epy, the request-head deadline and the
request-body cap (413 before anything is spooled to disk).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from httphelp import SECRET, Web, parse_responses


@pytest.mark.parametrize(
    "path",
    [
        b"/../outside/secret.txt",
        b"/sub/../../outside/secret.txt",
        b"/%2e%2e/outside/secret.txt",
        b"/%2E%2E/outside/secret.txt",
        b"/.%2e/outside/secret.txt",
        b"/%2e./outside/secret.txt",
        b"/sub/..%2f..%2foutside%2fsecret.txt",
        b"/sub/..%2F..%2Foutside%2Fsecret.txt",
        b"/..%2foutside/secret.txt",
        b"/..\\outside\\secret.txt",
        b"/..%5coutside%5csecret.txt",
        b"/sub/..%5c..%5coutside%5csecret.txt",
        b"/%252e%252e/outside/secret.txt",  # double encoding: decoded once, stays literal
        b"/%252e%252e%252foutside%252fsecret.txt",
        b"/..%252foutside%252fsecret.txt",
        b"/%c0%ae%c0%ae/outside/secret.txt",  # overlong UTF-8 dots
        b"/a.txt%00.html",
        b"/%00",
        b"/sub/%00/../../outside/secret.txt",
        b"//..//outside/secret.txt",
        b"/./../outside/secret.txt",
        b"/leakdir/secret.txt",  # a symlinked folder leading out
        b"/leak.txt",  # a symlinked file leading out
        b"outside/secret.txt",  # not even a path
        b"http://localhost/../outside/secret.txt",
    ],
)
def test_no_path_leads_out_of_root(web: Web, path: bytes) -> None:
    r = web.get(path)
    assert r.status in (400, 404), (path, r.status)
    assert SECRET not in r.body
    assert b"Traceback" not in r.body


def test_traversal_attempts_are_400_with_a_page(web: Web) -> None:
    r = web.get(b"/%2e%2e/outside/secret.txt")
    assert r.status == 400
    assert b"leave the served folder" in r.body


def test_symlinks_out_of_root_look_like_missing_files(web: Web) -> None:
    assert web.get("/leak.txt").status == 404
    assert web.get("/leakdir/").status == 404
    assert web.get("/leakdir").status == 404


def test_a_file_swapped_for_a_symlink_out_is_refused_after_a_tick(web: Web, docroot: Path) -> None:
    assert web.get("/a.txt").status == 200  # now cached
    (docroot / "a.txt").unlink()
    os.symlink(docroot.parent / "outside" / "secret.txt", docroot / "a.txt")
    web.clock.advance(1.0)
    r = web.get("/a.txt")
    assert r.status == 404 and SECRET not in r.body


@pytest.mark.parametrize(
    "path",
    ["/.env", "/%2eenv", "/.git/config", "/.git/", "/sub/.hidden", "/sub/env-link", "/.", "/sub/."],
)
def test_no_dotfiles(web: Web, path: str) -> None:
    r = web.get(path)
    assert r.status in (400, 404), path
    for secret in (b"hunter2", b"[core]", b"HIDDEN"):
        assert secret not in r.body


@pytest.mark.parametrize("path", ["/x.rpy", "/y.epy", "/Z.RPY", "/x.rpy?src=1", "/x%2erpy"])
def test_scripts_are_neither_run_nor_shown(web: Web, path: str) -> None:
    r = web.get(path)
    assert r.status == 403
    assert b"EVIL" not in r.body
    assert b"neither run nor shown" in r.body
    assert web.request("HEAD", path).status == 403


def test_a_fifo_is_not_opened(web: Web, docroot: Path) -> None:
    os.mkfifo(docroot / "pipe")
    r = web.get("/pipe")  # opening it would block the whole server
    assert r.status == 404


def test_bad_request_line_gets_400_not_a_traceback(web: Web) -> None:
    _c, t = web.send(b"GARBAGE\r\n\r\n")
    assert t.value().startswith(b"HTTP/1.1 400")
    assert t.disconnecting


# -- the request-head deadline ----------------------------------------------------------


def test_a_client_dribbling_its_head_is_cut_off_at_the_deadline(docroot: Path) -> None:
    web = Web(docroot, head_timeout=5.0)
    channel, t = web.connect()
    channel.dataReceived(b"GET / HTTP/1.1\r\n")
    sent = 0
    # one byte of a header every 0.5 s: always active, never done
    for _ in range(9):
        web.clock.advance(0.5)
        channel.dataReceived(b"X")
        sent += 1
        assert not t.disconnecting, f"cut too early, after {sent * 0.5}s"
    web.clock.advance(0.6)  # 5.1 s after the first byte
    assert t.disconnecting
    assert t.value().startswith(b"HTTP/1.1 408 Request Timeout")
    channel.dataReceived(b"-Header: y\r\n\r\n")  # too late: ignored
    assert b"200 OK" not in t.value()


def test_a_silent_connection_is_cut_off_at_the_deadline(docroot: Path) -> None:
    web = Web(docroot, head_timeout=3.0)
    _channel, t = web.connect()
    web.clock.advance(2.9)
    assert not t.disconnecting
    web.clock.advance(0.2)
    assert t.disconnecting


def test_each_request_on_a_kept_alive_connection_gets_its_own_deadline(docroot: Path) -> None:
    web = Web(docroot, head_timeout=3.0)
    channel, t = web.connect()
    for _ in range(3):
        web.clock.advance(2.0)
        channel.dataReceived(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    # idle between requests is the idle timeout's business, not the head deadline's
    web.clock.advance(20.0)
    assert not t.disconnecting
    assert [r.status for r in parse_responses(t.value())] == [200, 200, 200]
    channel.dataReceived(b"GET /a.txt HTTP/1.1\r\n")  # a new head starts the clock
    web.clock.advance(3.1)
    assert t.disconnecting


def test_a_complete_head_in_time_is_answered(docroot: Path) -> None:
    web = Web(docroot, head_timeout=3.0)
    channel, t = web.connect()
    for byte in b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n":
        channel.dataReceived(bytes([byte]))
        web.clock.advance(0.05)
    web.clock.advance(10)
    (r,) = parse_responses(t.value())
    assert r.status == 200 and r.body == b"0123456789abcdefghij"


def test_no_deadline_call_is_left_behind(docroot: Path) -> None:
    web = Web(docroot, head_timeout=3.0)
    channel, t = web.connect()
    channel.dataReceived(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure

    channel.connectionLost(Failure(ConnectionDone()))
    pending = [c for c in web.clock.getDelayedCalls() if c.func.__name__ == "_head_expired"]
    assert pending == []


# -- the request-body cap ---------------------------------------------------------------


@pytest.fixture
def no_temp_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test if twisted.web tries to spool a body to disk."""
    calls: list[str] = []

    def refuse(*a: object, **k: object) -> None:
        calls.append("TemporaryFile")
        raise AssertionError("a request body was spooled to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    return calls


def test_a_declared_body_over_the_cap_is_413_before_it_is_sent(
    docroot: Path, no_temp_files: list[str]
) -> None:
    web = Web(docroot, max_body=1000)
    channel, t = web.connect()
    channel.dataReceived(
        b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    out = t.value()
    assert out.startswith(b"HTTP/1.1 413 Content Too Large")
    assert b"100 Continue" not in out  # never invited to send the body
    assert b"1000 bytes" in out
    assert t.disconnecting
    channel.dataReceived(b"x" * 100_000)  # what arrives anyway is dropped
    assert channel.requests == []  # twisted.web never saw the request
    assert no_temp_files == []


def test_a_chunked_body_growing_over_the_cap_is_cut(
    docroot: Path, no_temp_files: list[str]
) -> None:
    web = Web(docroot, max_body=1000)
    channel, t = web.connect()
    # a dashboard address: the static files refuse bodies from the head (405)
    channel.dataReceived(
        b"POST /_portsuite/api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    channel.dataReceived(b"200\r\n" + b"a" * 0x200 + b"\r\n")
    assert t.value() == b""  # 512 bytes: still fine
    channel.dataReceived(b"400\r\n" + b"b" * 0x400 + b"\r\n" + b"0\r\n\r\n")
    out = t.value()
    assert out.startswith(b"HTTP/1.1 413")
    assert out.count(b"HTTP/1.1") == 1  # the request was not processed after all
    assert t.disconnecting
    assert no_temp_files == []


def test_a_body_under_the_cap_stays_in_memory(docroot: Path, no_temp_files: list[str]) -> None:
    # twisted.web alone would spool anything over 100 kB (or chunked) to a temp file
    web = Web(docroot, max_body=1 << 20)
    r = web.request("POST", "/a.txt", body=b"z" * 300_000)
    assert r.status == 405
    channel, t = web.connect()
    channel.dataReceived(b"POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    channel.dataReceived(b"10\r\n" + b"q" * 16 + b"\r\n0\r\n\r\n")
    assert t.value().startswith(b"HTTP/1.1 405")
    assert no_temp_files == []
