"""
Accounts of the suite's [users]: mysql_native_password and caching_sha2_password (fast
auth for clear passwords; full auth over TLS or the RSA key exchange for bcrypt hashes),
the in-protocol SSL upgrade, and the config's tls key refused with a fix.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pymysql
import pytest
from conftest import BOB_PASSWORD

from portsuite.api import ServiceConfig, TLSConfig
from portsuite.testing import need


def _connect(port: int, user: str, password: str, **kw: object) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=port, user=user, password=password, connect_timeout=20, **kw
    )


def test_clear_password_fast_auth(sql_auth_port: int) -> None:
    conn = _connect(sql_auth_port, "alice", "wonderland", ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0].startswith("alice@")
    finally:
        conn.close()


def test_wrong_password_and_unknown_user_get_1045(sql_auth_port: int) -> None:
    for user, password in (("alice", "nope"), ("mallory", "x"), ("bob", "wrong")):
        with pytest.raises(pymysql.err.OperationalError) as e:
            _connect(sql_auth_port, user, password, ssl_disabled=True)
        assert e.value.args[0] == 1045
        assert f"Access denied for user '{user}'" in e.value.args[1]


def test_bcrypt_account_over_tls(sql_auth_port: int) -> None:
    """bob's password is a bcrypt hash: the client sends it in clear, inside TLS."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = _connect(sql_auth_port, "bob", BOB_PASSWORD, ssl=ctx)
    try:
        assert isinstance(conn._sock, ssl.SSLSocket)  # the upgrade happened
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_bcrypt_account_with_rsa_key_exchange(sql_auth_port: int) -> None:
    """Without TLS the client asks for the server's RSA key and encrypts the password."""
    conn = _connect(sql_auth_port, "bob", BOB_PASSWORD, ssl_disabled=True)
    try:
        assert not isinstance(conn._sock, ssl.SSLSocket)
        conn.ping()
    finally:
        conn.close()


def test_cli_native_password_and_ssl(sql_auth_port: int) -> None:
    exe = need("mariadb")
    base = [exe, "-h", "127.0.0.1", "-P", str(sql_auth_port), "--batch", "-e", "SELECT 40 + 2"]
    out = subprocess.run(
        [
            *base,
            "-u",
            "alice",
            "-pwonderland",
            "--default-auth=mysql_native_password",
            "--skip-ssl",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["40", "+", "2", "42"]
    out = subprocess.run(
        [*base, "-u", "bob", f"-p{BOB_PASSWORD}", "--ssl", "--ssl-verify-server-cert=0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        [*base, "-u", "alice", "-pwrong", "--skip-ssl"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and "ERROR 1045 (28000)" in out.stderr


def test_tls_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    from portsuite_services.sql import SQL

    svc = ServiceConfig(
        name="db", type="sql", port=3306, tls=TLSConfig(cert=tmp_path / "c", key=tmp_path / "k")
    )
    problems = SQL.check(svc)
    assert len(problems) == 1 and problems[0].startswith("tls:") and "ssl = {" in problems[0]


def test_require_secure_transport(portsuite) -> None:  # type: ignore[no-untyped-def]
    s = portsuite(
        {"services": {"db": {"type": "sql", "port": 0, "require_secure_transport": True}}}
    )
    with pytest.raises(pymysql.err.OperationalError) as e:
        _connect(s.port("db"), "any", "", ssl_disabled=True)
    assert e.value.args[0] == 3159
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _connect(s.port("db"), "any", "", ssl=ctx).close()
