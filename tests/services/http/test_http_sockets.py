"""
The http type over real sockets, with the clients people use: curl and urllib
against a suite running in-process, then real twistd in a subprocess (end to end).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from httphelp import SECRET

from portsuite.testing import need

BIG = 5 * 1024 * 1024 + 123  # above the body cache: streamed by a producer


@pytest.fixture
def site(portsuite: Any, docroot: Path) -> Any:
    (docroot / "big.bin").write_bytes(bytes(range(256)) * (BIG // 256) + b"t" * (BIG % 256))
    return portsuite(
        {
            "services": {
                "web": {
                    "type": "http",
                    "port": 0,
                    "root": str(docroot),
                    "max_body": 4096,
                    "head_timeout": 1.0,
                }
            }
        }
    )


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    need("curl")
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=30, check=False
    )


def test_curl_gets_the_index(site: Any) -> None:
    out = curl("-i", f"http://127.0.0.1:{site.port('web')}/")
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"\r\nServer: portsuite\r\n" in head
    assert b"<h1>Welcome</h1>" in body


def test_curl_head_and_range(site: Any) -> None:
    base = f"http://127.0.0.1:{site.port('web')}"
    out = curl("-I", f"{base}/a.txt")
    assert b"Content-Length: 20" in out.stdout and b"Accept-Ranges: bytes" in out.stdout
    out = curl("-r", "2-5", f"{base}/a.txt")
    assert out.stdout == b"2345"
    out = curl("-r", "1000-1010", "-w", "%{http_code}", "-o", "/dev/null", f"{base}/a.txt")
    assert out.stdout == b"416"


def test_curl_path_as_is_cannot_leave_root(site: Any) -> None:
    base = f"http://127.0.0.1:{site.port('web')}"
    for path in ("/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/leak.txt", "/.env"):
        out = curl("--path-as-is", "-w", "\n%{http_code}", f"{base}{path}")
        body, _, code = out.stdout.rpartition(b"\n")
        assert code in (b"400", b"404"), (path, code)
        assert SECRET not in body and b"hunter2" not in body


def test_big_files_arrive_intact(site: Any, docroot: Path) -> None:
    base = f"http://127.0.0.1:{site.port('web')}"
    for name in ("big.bin", "mid.bin"):
        with urllib.request.urlopen(f"{base}/{name}", timeout=20) as r:
            assert r.read() == (docroot / name).read_bytes(), name
    out = curl("-r", "5000000-5000099", f"{base}/big.bin")
    assert out.stdout == (docroot / "big.bin").read_bytes()[5000000:5000100]


def test_conditional_get_with_curl(site: Any, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{site.port('web')}"
    etag_file = tmp_path / "etag"
    first = curl(
        "--etag-save", str(etag_file), "-o", "/dev/null", "-w", "%{http_code}", f"{base}/a.txt"
    )
    assert first.stdout == b"200"
    again = curl(
        "--etag-compare", str(etag_file), "-o", "/dev/null", "-w", "%{http_code}", f"{base}/a.txt"
    )
    assert again.stdout == b"304"


def test_keep_alive_with_http_client(site: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", site.port("web"), timeout=10)
    try:
        for path in ("/a.txt", "/sub/b.txt", "/nope", "/a.txt"):
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.status in (200, 404)
        assert conn.sock is not None  # still the same connection
    finally:
        conn.close()


def test_413_for_a_large_upload(site: Any, tmp_path: Path) -> None:
    payload = tmp_path / "up.bin"
    payload.write_bytes(b"u" * 100_000)
    out = curl(
        "-w",
        "\n%{http_code}",
        "--data-binary",
        f"@{payload}",
        f"http://127.0.0.1:{site.port('web')}/a.txt",
    )
    assert out.stdout.endswith(b"413"), out.stdout[-200:]
    assert b"4096 bytes" in out.stdout


def test_slowloris_is_cut_off(site: Any) -> None:
    with socket.create_connection(("127.0.0.1", site.port("web")), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\n")
        start = time.monotonic()
        got = b""
        for i in range(40):  # at most 4 s of dribbling
            try:
                s.sendall(b"X-%d: y\r\n" % i)
            except OSError:
                break
            s.settimeout(0.1)
            try:
                chunk = s.recv(1000)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        elapsed = time.monotonic() - start
    assert got.startswith(b"HTTP/1.1 408"), got
    assert elapsed < 2.5


def test_urllib_404_is_a_page(site: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{site.port('web')}/missing.html", timeout=10)
    assert e.value.code == 404
    assert b"404 Not Found" in e.value.read()


def test_many_clients_at_once(site: Any) -> None:
    base = f"http://127.0.0.1:{site.port('web')}/a.txt"
    from concurrent.futures import ThreadPoolExecutor

    def get(_: int) -> bytes:
        with urllib.request.urlopen(base, timeout=10) as r:
            return r.read()

    with ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(get, range(64)))
    assert bodies == [b"0123456789abcdefghij"] * 64


# -- end to end: real twistd ------------------------------------------------------------


@pytest.mark.e2e
def test_twistd_serves_the_shipped_welcome_page_and_logs_access(
    portsuite: Any, tmp_path: Path
) -> None:
    www = Path(__file__).resolve().parents[3] / "www"
    assert (www / "index.html").exists()
    s = portsuite(
        {"services": {"web": {"type": "http", "port": 0, "root": str(www)}}}, subprocess=True
    )
    out = curl("-A", "e2e-agent", f"http://127.0.0.1:{s.port('web')}/")
    assert b"/_portsuite/" in out.stdout  # the welcome page links to the dashboard
    assert b"one port" in out.stdout.lower()
    dash = curl(f"http://127.0.0.1:{s.port('web')}/_portsuite/api/services")
    assert b'"name": "web"' in dash.stdout

    def logged() -> str | None:
        text: str = s.log()
        return text if '"GET / HTTP/1.1" 200' in text else None

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = logged()
    assert text, s.log()
    (line,) = [x for x in text.splitlines() if '"GET / HTTP/1.1"' in x]
    assert "web: 127.0.0.1:" in line and '"e2e-agent"' in line


@pytest.mark.e2e
def test_twistd_without_root_says_the_fix(tmp_path: Path) -> None:
    from portsuite.testing import run_twistd

    cfg = tmp_path / "c.toml"
    cfg.write_text('[services.web]\ntype = "http"\nport = 0\n')
    proc = run_twistd(cfg)
    assert proc.returncode == 2
    assert '[services.web] root: missing; set root = "../www"' in proc.stderr


def test_https_with_the_suites_own_ca(portsuite: Any, docroot: Path, tmp_path: Path) -> None:
    from portsuite import certs

    issued = certs.make(tmp_path / "certs")
    s = portsuite(
        {
            "services": {
                "web": {
                    "type": "http",
                    "port": 0,
                    "root": str(docroot),
                    "tls": {"cert": str(issued.cert), "key": str(issued.key)},
                }
            }
        }
    )
    base = f"https://localhost:{s.port('web')}"
    resolve = f"localhost:{s.port('web')}:127.0.0.1"
    out = curl("--cacert", str(issued.ca_cert), "--resolve", resolve, f"{base}/mid.bin")
    assert out.returncode == 0, out.stderr
    assert out.stdout == (docroot / "mid.bin").read_bytes()
    out = curl(
        "--cacert", str(issued.ca_cert), "--resolve", resolve, f"{base}/_portsuite/api/services"
    )
    assert b'"tls": true' in out.stdout


def test_a_reader_that_stops_then_reads_gets_a_cached_file_whole_then_the_next(
    site: Any, docroot: Path
) -> None:
    # a cached body (< 4 MiB) is sent from the cache as the socket takes it; while
    # the client does not read, the rest waits (nothing copied), then all of it comes
    body = bytes(range(256)) * (3 * 1024 * 1024 // 256) + b"THE-END"
    (docroot / "cached.bin").write_bytes(body)
    with socket.socket() as s:
        s.settimeout(20)
        # a small window (set before connecting: a 4 KiB one makes the kernel
        # itself crawl), so the server's sends fill it while the client waits
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", site.port("web")))
        s.sendall(
            b"GET /cached.bin HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        time.sleep(0.5)  # not reading: the server must wait, not fail
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest[: len(body)] == body
    second = rest[len(body) :]
    assert second.startswith(b"HTTP/1.1 200 OK") and second.endswith(b"0123456789abcdefghij")


def test_repeated_gets_on_one_socket_read_the_same_bytes_and_are_counted(site: Any) -> None:
    """
    The first GET of a file takes twisted.web's full path, the next ones the fast
    path (the file is cached by then): a client reads the same response each time
    (but the Date), and the service's byte counters hold every byte of both.
    """
    raw = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", site.port("web")), timeout=10) as s:
        answers = []
        for _ in range(3):
            s.sendall(raw)
            data = b""
            while not data.endswith(b"0123456789abcdefghij"):
                chunk = s.recv(65536)
                assert chunk, f"closed after {data!r}"
                data += chunk
            answers.append(data)
        web = site.service("web")
        assert web["bytes_in"] == 3 * len(raw)
        assert web["bytes_out"] == sum(len(a) for a in answers)
    without_date = [
        b"\r\n".join(line for line in a.split(b"\r\n") if not line.startswith(b"Date: "))
        for a in answers
    ]
    assert without_date[0] == without_date[1] == without_date[2]
    assert answers[0].startswith(b"HTTP/1.1 200 OK\r\n")
