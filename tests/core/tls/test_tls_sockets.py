"""TLS on real loopback sockets: openssl s_client and Python's ssl against a running suite."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess as sp
import time
from pathlib import Path

import pytest
from tlshelp import s_client, tls_echo

from portsuite.testing import need, suite_running


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def echo(certdir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    with suite_running(tls_echo(certdir), base_dir=tmp_path) as s:
        yield s


@pytest.mark.parametrize("flag, version", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_s_client_handshakes_and_verifies_localhost(
    echo, certdir: Path, flag: str, version: str
) -> None:  # type: ignore[no-untyped-def]
    r = s_client(
        echo.port("echo"),
        flag,
        "-CAfile",
        str(certdir / "ca.crt"),
        "-verify_return_error",
        "-verify_hostname",
        "localhost",
        "-servername",
        "localhost",
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert f"Protocol version: {version}" in out
    assert "Verification: OK" in out
    assert "Verified peername: localhost" in out


def test_s_client_verifies_the_ip_127_0_0_1(echo, certdir: Path) -> None:  # type: ignore[no-untyped-def]
    r = s_client(
        echo.port("echo"),
        "-CAfile",
        str(certdir / "ca.crt"),
        "-verify_return_error",
        "-verify_ip",
        "127.0.0.1",
    )
    assert r.returncode == 0, r.stderr
    assert "Verification: OK" in r.stdout + r.stderr


def test_s_client_tls_1_1_is_refused_by_the_server(echo) -> None:  # type: ignore[no-untyped-def]
    # SECLEVEL=0 lets the client really offer TLS 1.1; the server must say no
    r = s_client(echo.port("echo"), "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert r.returncode != 0
    assert "alert protocol version" in r.stderr  # alert 70, sent by the server
    assert "CONNECTION ESTABLISHED" not in r.stdout + r.stderr


def test_s_client_without_the_ca_fails_verification(echo) -> None:  # type: ignore[no-untyped-def]
    r = s_client(
        echo.port("echo"), "-verify_return_error", "-no-CAfile", "-no-CApath", "-no-CAstore"
    )
    assert r.returncode != 0
    assert "unable to get local issuer certificate" in r.stderr


def test_s_client_wrong_hostname_fails(echo, certdir: Path) -> None:  # type: ignore[no-untyped-def]
    r = s_client(
        echo.port("echo"),
        "-CAfile",
        str(certdir / "ca.crt"),
        "-verify_return_error",
        "-verify_hostname",
        "example.com",
    )
    assert r.returncode != 0
    assert "hostname mismatch" in r.stderr


def test_echo_over_tls_with_s_client(echo, certdir: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = need("openssl")
    proc = sp.Popen(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{echo.port('echo')}",
            "-quiet",
            "-CAfile",
            str(certdir / "ca.crt"),
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ],
        stdin=sp.PIPE,
        stdout=sp.PIPE,
        stderr=sp.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"hello over tls\n")
        proc.stdin.flush()
        got = b""
        deadline = time.monotonic() + 15
        while b"\n" not in got and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = proc.stdout.read1(100)  # type: ignore[attr-defined]
                if not chunk:
                    break
                got += chunk
        assert got == b"hello over tls\n"
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    svc = echo.service("echo")
    # the counters see plaintext: 15 bytes each way, not TLS records
    assert svc["bytes_in"] == 15 and svc["bytes_out"] == 15


def test_python_ssl_client_and_snapshot(echo, certdir: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = ssl.create_default_context(cafile=str(certdir / "ca.crt"))
    with socket.create_connection(("127.0.0.1", echo.port("echo")), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            assert c.version() in ("TLSv1.3", "TLSv1.2")
            assert c.compression() is None
            c.sendall(b"ping\n")
            assert c.recv(100) == b"ping\n"
            svc = echo.service("echo")
            assert svc["tls"] is True
            assert [li["tls"] for li in svc["listeners"]] == [True]
            assert svc["connections"]["open"] == 1
            assert svc["clients"][0]["bytes_in"] == 5


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 on loopback here")
def test_ipv6_loopback_verifies_as_ip(certdir: Path, tmp_path: Path) -> None:
    config = tls_echo(certdir)
    config["services"]["echo"]["host"] = "::1"
    with suite_running(config, base_dir=tmp_path) as s:
        r = s_client(
            s.port("echo"),
            "-CAfile",
            str(certdir / "ca.crt"),
            "-verify_return_error",
            "-verify_ip",
            "::1",
            host="::1",
        )
        assert r.returncode == 0, r.stderr
        assert "Verification: OK" in r.stdout + r.stderr


def test_stalled_handshake_is_dropped(certdir: Path, tmp_path: Path) -> None:
    with suite_running(tls_echo(certdir, handshake_timeout=0.5), base_dir=tmp_path) as s:
        c = socket.create_connection(("127.0.0.1", s.port("echo")), timeout=10)
        try:
            # a raw TCP client that sends nothing: after 0.5 s the server hangs up
            try:
                assert c.recv(100) == b""
            except ConnectionResetError:
                pass  # aborted: a reset is a hang-up too
        finally:
            c.close()
        deadline = time.monotonic() + 5
        while s.service("echo")["connections"]["open"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.service("echo")["connections"] == {"open": 0, "total": 1, "refused": 0}


def test_a_plain_client_does_not_break_the_listener(echo, certdir: Path) -> None:  # type: ignore[no-untyped-def]
    with socket.create_connection(("127.0.0.1", echo.port("echo")), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        try:
            while c.recv(4096):  # a TLS alert at most, then the close
                pass
        except ConnectionResetError:
            pass
    ctx = ssl.create_default_context(cafile=str(certdir / "ca.crt"))
    with ctx.wrap_socket(
        socket.create_connection(("127.0.0.1", echo.port("echo")), timeout=10),
        server_hostname="localhost",
    ) as c:
        c.sendall(b"still fine\n")
        assert c.recv(100) == b"still fine\n"
    assert echo.service("echo")["errors"] == 0
    assert echo.service("echo")["tls_failed"] == 1  # the dashboard shows the failed handshake


def test_s_client_offering_alpn_still_connects(echo, certdir: Path) -> None:  # type: ignore[no-untyped-def]
    r = s_client(
        echo.port("echo"),
        "-alpn",
        "h2,http/1.1",
        "-CAfile",
        str(certdir / "ca.crt"),
        "-verify_return_error",
    )
    assert r.returncode == 0, r.stderr
    assert "CONNECTION ESTABLISHED" in r.stdout + r.stderr


def test_tls_on_a_module_class_plugin(certdir: Path, tmp_path: Path) -> None:
    """Any TCP type gets TLS, a bare Protocol class named as module:Class included."""
    config = tls_echo(certdir)
    config["services"]["echo"]["type"] = "twisted.protocols.wire:Echo"
    with suite_running(config, base_dir=tmp_path) as s:
        ctx = ssl.create_default_context(cafile=str(certdir / "ca.crt"))
        raw = socket.create_connection(("127.0.0.1", s.port("echo")), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="localhost") as c:
            c.sendall(b"plugin\n")
            assert c.recv(100) == b"plugin\n"
        assert s.service("echo")["tls"] is True
