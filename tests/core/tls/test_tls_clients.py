"""
Real clients over TLS against the http and kv types: curl https, redis-cli --tls,
redis-py with ssl=True. Each test skips (with the reason) only while its type has
not landed yet.
"""

from __future__ import annotations

import ssl
import subprocess as sp
from pathlib import Path
from typing import Any

import pytest

from portsuite.testing import chromium_command, need, suite_running


def need_type(module: str, attr: str) -> None:
    mod = pytest.importorskip(module, reason=f"{module} is not written yet")
    if not hasattr(mod, attr):
        pytest.skip(f"{module}.{attr} is not written yet")


def tls_table(certdir: Path) -> dict[str, str]:
    return {"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key")}


# -- curl https -------------------------------------------------------------------------


@pytest.fixture
def web(certdir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    need_type("portsuite_services.http", "HTTP")
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello over https\n")
    config = {
        "services": {
            "web": {"type": "http", "port": 0, "root": str(root), "tls": tls_table(certdir)}
        }
    }
    with suite_running(config, base_dir=tmp_path) as s:
        yield s


def curl(
    port: int, *args: str, url: str = "https://localhost:{port}/hello.txt"
) -> sp.CompletedProcess[str]:
    exe = need("curl")
    return sp.run(
        [
            exe,
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--resolve",
            f"localhost:{port}:127.0.0.1",
            *args,
            url.format(port=port),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("version", ["--tlsv1.2 --tls-max 1.2", "--tlsv1.3"])
def test_curl_https_with_the_ca(web: Any, certdir: Path, version: str) -> None:
    r = curl(
        web.port("web"),
        "--cacert",
        str(certdir / "ca.crt"),
        *version.split(),
        "-w",
        "\n%{http_code} %{ssl_verify_result}",
    )
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("\n")
    assert body == "hello over https\n"
    assert tail == "200 0"  # 0 = the certificate verified


def test_curl_https_by_ip(web: Any, certdir: Path) -> None:
    r = curl(
        web.port("web"),
        "--cacert",
        str(certdir / "ca.crt"),
        url="https://127.0.0.1:{port}/hello.txt",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello over https\n"


def test_curl_without_the_ca_refuses(web: Any) -> None:
    r = curl(web.port("web"))
    assert r.returncode == 60  # peer certificate cannot be authenticated
    assert r.stdout == ""


def test_curl_tls_1_1_is_refused(web: Any, certdir: Path) -> None:
    r = curl(
        web.port("web"),
        "--cacert",
        str(certdir / "ca.crt"),
        "--tlsv1.1",
        "--tls-max",
        "1.1",
        "--ciphers",
        "DEFAULT@SECLEVEL=0",
    )
    assert r.returncode == 35  # TLS handshake failed
    assert r.stdout == ""


def test_plain_http_to_the_tls_port_fails_cleanly(web: Any) -> None:
    r = curl(web.port("web"), url="http://localhost:{port}/hello.txt")
    # the http service's own words, as nginx: a 400 that says to use https://
    assert "plain HTTP request was sent to HTTPS port" in r.stdout
    # and the port still serves https afterwards
    svc = web.service("web")
    assert svc["tls"] is True and svc["errors"] == 0


# -- redis-cli --tls and redis-py ssl=True ----------------------------------------------


@pytest.fixture
def kv(certdir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    need_type("portsuite_services.kv", "KV")
    config = {"services": {"kv": {"type": "kv", "port": 0, "tls": tls_table(certdir)}}}
    with suite_running(config, base_dir=tmp_path) as s:
        yield s


def redis_cli(port: int, certdir: Path, *args: str) -> sp.CompletedProcess[str]:
    exe = need("redis-cli")
    return sp.run(
        [
            exe,
            "--tls",
            "--cacert",
            str(certdir / "ca.crt"),
            "-h",
            "localhost",
            "-p",
            str(port),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_redis_cli_tls(kv: Any, certdir: Path) -> None:
    port = kv.port("kv")
    r = redis_cli(port, certdir, "ping")
    assert (r.returncode, r.stdout.strip()) == (0, "PONG"), r.stderr
    assert redis_cli(port, certdir, "set", "greeting", "hello tls").stdout.strip() == "OK"
    assert redis_cli(port, certdir, "get", "greeting").stdout.strip() == "hello tls"
    assert kv.service("kv")["tls"] is True


def test_redis_cli_without_tls_gets_nothing(kv: Any) -> None:
    exe = need("redis-cli")
    r = sp.run([exe, "-p", str(kv.port("kv")), "ping"], capture_output=True, text=True, timeout=30)
    assert "PONG" not in r.stdout


def test_redis_py_ssl(kv: Any, certdir: Path) -> None:
    redis = pytest.importorskip("redis")
    r = redis.Redis(
        host="localhost",
        port=kv.port("kv"),
        ssl=True,
        ssl_ca_certs=str(certdir / "ca.crt"),
        ssl_cert_reqs="required",
        socket_timeout=10,
    )
    try:
        assert r.ping() is True
        assert r.set("k", b"v" * 1000) is True
        assert r.get("k") == b"v" * 1000
        conn = r.connection_pool.get_connection("PING")
        try:
            assert isinstance(conn._sock, ssl.SSLSocket)
            assert conn._sock.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            r.connection_pool.release(conn)
    finally:
        r.close()


def test_redis_py_rejects_an_untrusted_server(kv: Any, tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    from portsuite import certs

    other = certs.make(tmp_path / "other-ca")
    r = redis.Redis(
        host="localhost",
        port=kv.port("kv"),
        ssl=True,
        ssl_ca_certs=str(other.ca_cert),
        socket_timeout=10,
    )
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        r.ping()
    r.close()


# -- a browser that trusts the CA (as the portsuite cert instructions say) ---------------


def chromium_get(url: str, home: Path, *extra: str) -> sp.CompletedProcess[str]:
    """Chromium's DOM of C{url} (not checked: a refused certificate is a result too)."""
    return sp.run(
        chromium_command(home / "profile", *extra, "--dump-dom", url),
        capture_output=True,
        text=True,
        timeout=90,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def nss_home(tmp_path: Path, ca: Path | None) -> Path:
    """A HOME whose NSS database (what Chromium on Linux trusts) holds the CA, or nothing."""
    certutil = need("certutil")
    home = tmp_path / ("home-ca" if ca else "home-empty")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    sp.run([certutil, "-d", f"sql:{db}", "-N", "--empty-password"], check=True, timeout=30)
    if ca is not None:
        sp.run(
            [
                certutil,
                "-d",
                f"sql:{db}",
                "-A",
                "-t",
                "C,,",
                "-n",
                "portsuite local CA",
                "-i",
                str(ca),
            ],
            check=True,
            timeout=30,
        )
    return home


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_chromium_trusts_the_imported_ca(
    web: Any, certdir: Path, tmp_path: Path, host: str
) -> None:
    home = nss_home(tmp_path, certdir / "ca.crt")
    r = chromium_get(f"https://{host}:{web.port('web')}/hello.txt", home)
    assert "hello over https" in r.stdout, r.stderr[-2000:]


def test_chromium_without_the_ca_refuses(web: Any, tmp_path: Path) -> None:
    home = nss_home(tmp_path, None)
    r = chromium_get(f"https://localhost:{web.port('web')}/hello.txt", home)
    assert "hello over https" not in r.stdout
    assert "ERR_CERT_AUTHORITY_INVALID" in r.stderr


def test_dashboard_over_https_marks_the_tls_listener(certdir: Path, tmp_path: Path) -> None:
    """The live dashboard, served over https itself, shows which listeners speak TLS."""
    import re

    need_type("portsuite_services.http", "HTTP")
    pytest.importorskip(
        "portsuite_services.http.dashboard", reason="the dashboard is not written yet"
    )
    root = tmp_path / "www"
    root.mkdir()
    config = {
        "services": {
            "web": {"type": "http", "port": 0, "root": str(root), "tls": tls_table(certdir)},
            "plain": {"type": "echo", "port": 0},
        }
    }
    home = nss_home(tmp_path, certdir / "ca.crt")
    with suite_running(config, base_dir=tmp_path) as s:
        r = chromium_get(
            f"https://localhost:{s.port('web')}/_portsuite/", home, "--virtual-time-budget=5000"
        )
    marks = re.findall(r'<span class="proto (\w+)">', r.stdout)
    assert sorted(marks) == ["tcp", "tls"], r.stdout[-3000:]


# -- ALPN: curl offers h2 and http/1.1 ------------------------------------------------------


def test_curl_gets_what_the_http_service_names_by_alpn(web: Any, certdir: Path) -> None:
    r = curl(web.port("web"), "--verbose", "--cacert", str(certdir / "ca.crt"))
    assert r.returncode == 0, r.stderr
    # the http service names h2 first (twisted.web's HTTP/2), then http/1.1
    assert "ALPN: server accepted h2" in r.stderr
    r = curl(web.port("web"), "--verbose", "--http1.1", "--cacert", str(certdir / "ca.crt"))
    assert "ALPN: server accepted http/1.1" in r.stderr
    assert r.stdout == "hello over https\n"


def test_curl_offering_alpn_to_a_service_that_names_none_gets_through(
    certdir: Path, tmp_path: Path
) -> None:
    """
    echo names no ALPN protocol: the handshake goes on without one (Twisted's own
    answer, an empty name, made OpenSSL 3 fail it: curl exit 35, internal error).
    """
    config = {"services": {"echo": {"type": "echo", "port": 0, "tls": tls_table(certdir)}}}
    with suite_running(config, base_dir=tmp_path) as s:
        r = curl(
            s.port("echo"),
            "--verbose",
            "--cacert",
            str(certdir / "ca.crt"),
            url="https://localhost:{port}/",
        )
    assert "SSL connection using TLSv1.3" in r.stderr
    assert "ALPN: server did not agree on a protocol" in r.stderr
    # echo sent curl's own request back: not an HTTP reply, which curl says
    assert r.returncode == 1 and "Received HTTP/0.9" in r.stderr, r.stderr
