"""
HTTP/2 (RFC 9113) on a TLS listener: offered by ALPN (h2 first, http/1.1 after),
served by twisted.web's own HTTP/2; the files, ranges, validators and the dashboard
answer the same over both. Real clients: curl --http2, nghttp, h2load.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from portsuite.testing import need


@pytest.fixture
def tls_site(portsuite: Any, docroot: Path, tmp_path: Path) -> Any:
    from portsuite import certs

    issued = certs.make(tmp_path / "certs")
    (docroot / "big.bin").write_bytes(bytes(range(256)) * 24_000)  # streamed, not cached
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
    s.ca = str(issued.ca_cert)
    return s


def curl(site: Any, *args: str, http2: bool = True) -> subprocess.CompletedProcess[bytes]:
    need("curl")
    port = site.port("web")
    return subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "20",
            "--http2" if http2 else "--http1.1",
            "--cacert",
            site.ca,
            "--resolve",
            f"localhost:{port}:127.0.0.1",
            *[a.replace("BASE", f"https://localhost:{port}") for a in args],
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )


def head_of(out: bytes) -> tuple[str, dict[str, str]]:
    head = out.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return head[0], fields


def test_curl_speaks_h2_and_gets_the_same_bytes(tls_site: Any, docroot: Path) -> None:
    for path in ("mid.bin", "big.bin", "a.txt"):
        out = curl(tls_site, "-w", "%{http_version}", "-o", "-", f"BASE/{path}")
        assert out.returncode == 0, out.stderr
        assert out.stdout.endswith(b"2")  # the version curl used
        assert out.stdout[:-1] == (docroot / path).read_bytes()


@pytest.mark.parametrize("http2", [True, False])
def test_ranges_validators_and_errors_are_the_same_over_both(tls_site: Any, http2: bool) -> None:
    out = curl(tls_site, "-i", "-r", "2-5", "BASE/a.txt", http2=http2)
    status, fields = head_of(out.stdout)
    assert status.split()[1] == "206" and out.stdout.endswith(b"2345")
    assert fields["content-range"] == "bytes 2-5/20"
    etag = fields["etag"]
    out = curl(tls_site, "-i", "-H", f"If-None-Match: {etag}", "BASE/a.txt", http2=http2)
    assert head_of(out.stdout)[0].split()[1] == "304"
    out = curl(tls_site, "-i", "-H", "Range: bytes=20-", "BASE/a.txt", http2=http2)
    assert head_of(out.stdout)[0].split()[1] == "416"
    out = curl(tls_site, "-i", "BASE/nope", http2=http2)
    assert head_of(out.stdout)[0].split()[1] == "404" and b"There is no file" in out.stdout
    out = curl(tls_site, "-i", "BASE/_portsuite/api/services", http2=http2)
    assert head_of(out.stdout)[0].split()[1] == "200" and b'"tls": true' in out.stdout
    out = curl(tls_site, "-i", "BASE/_portsuite/", http2=http2)
    assert b"<!doctype html>" in out.stdout.lower()


def test_nghttp_negotiates_h2(tls_site: Any) -> None:
    need("nghttp")
    port = tls_site.port("web")
    out = subprocess.run(
        ["nghttp", "-v", "-n", f"https://127.0.0.1:{port}/a.txt"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert b"The negotiated protocol: h2" in out.stdout, out.stdout[-500:]
    assert b":status: 200" in out.stdout


def test_h2load_many_streams_all_succeed(tls_site: Any) -> None:
    need("h2load")
    port = tls_site.port("web")
    out = subprocess.run(
        ["h2load", "-n", "300", "-c", "3", "-m", "10", f"https://127.0.0.1:{port}/a.txt"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    text = out.stdout.decode()
    assert "300 succeeded" in text and "0 failed" in text, text[-800:]
    assert "h2" in text


def test_plain_http_to_the_tls_port_gets_a_readable_400(tls_site: Any) -> None:
    need("curl")
    port = tls_site.port("web")
    out = subprocess.run(
        ["curl", "-sS", "-i", "--max-time", "20", f"http://127.0.0.1:{port}/a.txt"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert out.stdout.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"plain HTTP request was sent to HTTPS port" in out.stdout


def test_tls_sessions_resume_with_tickets(tls_site: Any, tmp_path: Path) -> None:
    need("openssl")
    port = tls_site.port("web")
    sess = tmp_path / "sess.pem"

    def s_client(*extra: str) -> str:
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", *extra],
            input=b"",
            capture_output=True,
            timeout=30,
            check=False,
        ).stdout.decode(errors="replace")

    first = s_client("-sess_out", str(sess))
    assert "TLS session ticket:" in first or "TLS session ticket lifetime hint" in first
    again = s_client("-sess_in", str(sess))
    assert "Reused, TLSv1.2" in again


def test_twisted_web_still_offers_what_the_h2_switch_uses() -> None:
    """Fails loudly when a Twisted upgrade moves what Channel._switch_to_h2 relies on."""
    pytest.importorskip("h2")
    from portsuite_services.http.site import H2

    assert H2 is not None, "h2 is installed but twisted.web.http.H2Connection is gone"
    h2 = H2(None)
    for name in ("requestFactory", "site", "factory", "timeOut", "callLater"):
        setattr(h2, name, None)
    for method in ("makeConnection", "dataReceived", "connectionLost", "pauseProducing"):
        assert callable(getattr(h2, method)), method


def test_an_h2_body_over_max_body_is_413_and_not_kept(
    portsuite: Any, docroot: Path, tmp_path: Path
) -> None:
    from portsuite import certs

    issued = certs.make(tmp_path / "certs")
    s = portsuite(
        {
            "services": {
                "web": {
                    "type": "http",
                    "port": 0,
                    "root": str(docroot),
                    "max_body": 10000,
                    "tls": {"cert": str(issued.cert), "key": str(issued.key)},
                }
            }
        }
    )
    s.ca = str(issued.ca_cert)
    body = tmp_path / "body.bin"
    body.write_bytes(b"x" * 300_000)
    out = curl(s, "-i", "--data-binary", f"@{body}", "BASE/_portsuite/api/services")
    assert head_of(out.stdout)[0].split() == ["HTTP/2", "413"]
    assert b"max_body" in out.stdout


def test_the_fast_h2_sender_still_finds_what_it_uses_in_twisted() -> None:
    """Fails loudly when a Twisted upgrade changes what h2fast reads (it falls back)."""
    pytest.importorskip("h2")
    from portsuite_services.http import h2fast
    from portsuite_services.http.site import H2

    assert h2fast.supported(), f"twisted.web's H2Connection changed: see {h2fast.PRIVATE_FIELDS}"
    assert H2 is h2fast.H2Connection


def test_parallel_streams_on_one_connection_each_get_their_whole_file(
    tls_site: Any, docroot: Path, tmp_path: Path
) -> None:
    # one connection, many streams at once: the sender interleaves frames of every
    # stream in one pass; each file must still arrive whole and in order
    paths = ["mid.bin", "big.bin", "a.txt"] * 3
    args = ["--parallel", "--parallel-max", "9"]
    for i, path in enumerate(paths):
        args += ["-o", str(tmp_path / f"got{i}"), f"BASE/{path}"]
    out = curl(tls_site, *args)
    assert out.returncode == 0, out.stderr
    for i, path in enumerate(paths):
        assert (tmp_path / f"got{i}").read_bytes() == (docroot / path).read_bytes(), path
