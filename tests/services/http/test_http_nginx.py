"""
Side by side with nginx: the same raw requests, over real sockets, to nginx serving
the same folder and to portsuite; the status each one answers must be the same
(where portsuite deliberately says more, the test says which and why).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from portsuite.testing import free_port, need, wait_listening


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("side") / "www"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "a.txt").write_bytes(b"0123456789abcdefghij")
    (root / "é.txt").write_bytes(b"accent")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>\n")
    os.chmod(root.parent, 0o755)
    return root


@pytest.fixture(scope="module")
def nginx(www: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    need("nginx")
    work = tmp_path_factory.mktemp("nginx")
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""
    (work / "nginx.conf").write_text(
        f"{user}worker_processes 1;\ndaemon off;\npid {work}/nginx.pid;\n"
        f"error_log {work}/error.log warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{ access_log off; default_type application/octet-stream;\n"
        f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;\n"
        f"  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi;\n"
        f"  scgi_temp_path {work}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {www}; }} }}\n"
    )
    proc = subprocess.Popen(
        ["nginx", "-p", f"{work}/", "-e", f"{work}/error.log", "-c", str(work / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc, timeout=30)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def ours(www: Path) -> Iterator[int]:
    from portsuite.testing import suite_running

    with suite_running({"services": {"web": {"type": "http", "port": 0, "root": str(www)}}}) as s:
        yield s.port("web")


def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes, half-close, read until the server closes (or 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def status(out: bytes) -> int:
    assert out.startswith(b"HTTP/1."), out[:80]
    return int(out.split(b" ", 2)[1])


SAME = {
    "plain": b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "bare LF": b"GET /a.txt HTTP/1.1\nHost: x\nConnection: close\n\n",
    "lowercase method": b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
    "no Host": b"GET / HTTP/1.1\r\n\r\n",
    "two Host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad Host": b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "unknown TE": b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "HTTP/2.0 line": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "HTTP/1.2": b"GET /a.txt HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n",
    "long line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw UTF-8 target": "GET /é.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    "range past end": b"GET /a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=20-\r\nConnection: close\r\n\r\n",
    "POST body": b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "If-Match fails": b'GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-Match: "nope"\r\nConnection: close\r\n\r\n',
    "If-Unmodified-Since past": b"GET /a.txt HTTP/1.1\r\nHost: x\r\n"
    b"If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\nConnection: close\r\n\r\n",
    "If-Modified-Since future": b"GET /a.txt HTTP/1.1\r\nHost: x\r\n"
    b"If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(SAME))
def test_the_same_status_as_nginx(nginx: int, ours: int, case: str) -> None:
    theirs = status(exchange(nginx, SAME[case]))
    mine = exchange(ours, SAME[case])
    assert status(mine) == theirs, (case, mine[:300])
    if theirs >= 400:
        # and ours says why in words
        assert b"portsuite: " in mine or b"<h1>%d " % theirs in mine


def test_an_over_long_header_is_431_where_nginx_says_400(nginx: int, ours: int) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 9000 + b"\r\n\r\n"
    assert status(exchange(nginx, raw)) == 400  # "Request Header Or Cookie Too Large"
    assert status(exchange(ours, raw)) == 431  # RFC 6585's own status for it


def test_a_line_without_colon_is_400_where_nginx_ignores_it(nginx: int, ours: int) -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\nConnection: close\r\n\r\n"
    assert status(exchange(nginx, raw)) == 200  # dropped silently (logged)
    out = exchange(ours, raw)  # RFC 9112 5: not a field line; the page says so
    assert status(out) == 400 and b"has no colon" in out


def test_no_version_is_a_page_where_nginx_answers_http_0_9(nginx: int, ours: int) -> None:
    assert b"<h1>home</h1>" in exchange(nginx, b"GET /\r\n")  # the bare body, no status
    out = exchange(ours, b"GET /\r\n\r\n")
    assert status(out) == 400 and b"GET / HTTP/1.1" in out


def test_folder_redirects_stay_on_this_host(nginx: int, ours: int) -> None:
    for port in (nginx, ours):
        out = exchange(port, b"GET //docs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status(out) == 301
        location = next(
            line for line in out.split(b"\r\n") if line.lower().startswith(b"location:")
        )
        target = location.split(b":", 1)[1].strip()
        assert not target.startswith(b"//"), (port, target)
        assert target.endswith(b"/docs/")


def test_nc_without_crlf_is_served(ours: int) -> None:
    need("nc")
    proc = subprocess.run(
        ["nc", "-q", "5", "127.0.0.1", str(ours)],
        input=b"GET /a.txt HTTP/1.1\nHost: localhost\nConnection: close\n\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.stdout.startswith(b"HTTP/1.1 200 OK")
    assert proc.stdout.endswith(b"0123456789abcdefghij")
