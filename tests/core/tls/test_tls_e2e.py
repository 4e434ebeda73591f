"""End to end: twistd with TLS, and the one-line refusals of a bad key, as a user sees them."""

from __future__ import annotations

import shutil
import subprocess as sp
import sys
from pathlib import Path

import pytest
from tlshelp import s_client

from portsuite import certs
from portsuite.testing import run_twistd, suite_running

pytestmark = pytest.mark.e2e
SCRIPT = Path(sys.executable).parent / "portsuite"
PORTSUITE = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "portsuite.cli"]


def write_config(folder: Path, cert: str = "tls/server.crt", key: str = "tls/server.key") -> Path:
    path = folder / "suite.toml"
    path.write_text(
        '[services.secure]\ntype = "echo"\nport = 0\n'
        f'tls = {{ cert = "{cert}", key = "{key}" }}\n'
        '[services.plain]\ntype = "echo"\nport = 0\n'
    )
    return path


@pytest.fixture
def conf(certdir: Path, tmp_path: Path) -> Path:
    """A config with relative tls paths, and a private copy of the pair in tls/."""
    (tmp_path / "tls").mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy2(certdir / name, tmp_path / "tls" / name)
    return write_config(tmp_path)


def test_twistd_serves_tls_and_logs_it(conf: Path) -> None:
    ca = conf.parent / "tls" / "ca.crt"
    with suite_running(conf, subprocess=True) as s:
        r = s_client(
            s.port("secure"),
            "-tls1_3",
            "-CAfile",
            str(ca),
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        )
        assert r.returncode == 0, r.stderr
        assert "Protocol version: TLSv1.3" in r.stdout + r.stderr
        secure = next(svc for svc in s.ready["services"] if svc["name"] == "secure")
        plain = next(svc for svc in s.ready["services"] if svc["name"] == "plain")
        assert secure["tls"] is True and plain["tls"] is False
        # a TLS 1.1 client is refused, and the log says why
        r = s_client(s.port("secure"), "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        assert r.returncode != 0
    log = s.log()
    assert "secure: listening on tcp+tls 127.0.0.1:" in log
    assert "plain: listening on tcp 127.0.0.1:" in log
    assert "TLS handshake with 127.0.0.1:" in log and "unsupported protocol" in log
    assert "Traceback" not in log


def refused(config: Path) -> list[str]:
    """twistd must exit 2 before binding, with one line per problem and no traceback."""
    r = run_twistd(config)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert lines[-1].endswith("nothing was started")
    return lines[:-1]


def test_key_readable_by_others_stops_twistd_with_the_chmod_fix(conf: Path) -> None:
    key = conf.parent / "tls" / "server.key"
    key.chmod(0o644)
    lines = refused(conf)
    assert lines == [
        f"{conf}: [services.secure] tls: private key {key} is readable by group or "
        f"others (mode 0644); make it private: chmod 600 {key}"
    ]


def test_mismatched_key_stops_twistd(conf: Path, tmp_path: Path) -> None:
    other = certs.make(tmp_path / "other")
    config = write_config(conf.parent, key=str(other.key))
    lines = refused(config)
    assert len(lines) == 1 and "do not belong together" in lines[0]


def test_missing_cert_stops_twistd(conf: Path) -> None:
    config = write_config(conf.parent, cert="tls/nope.crt")
    lines = refused(config)
    assert len(lines) == 1
    assert f"cert file {conf.parent / 'tls' / 'nope.crt'} does not exist" in lines[0]


def test_portsuite_check_shows_tls_and_refuses_a_bad_key(conf: Path) -> None:
    r = sp.run([*PORTSUITE, "check", "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:] if line.strip()}
    assert rows["secure"][-1] == "tls"
    assert rows["plain"][-1] == "-"
    (conf.parent / "tls" / "server.key").chmod(0o640)
    r = sp.run([*PORTSUITE, "check", "-c", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"chmod 600 {conf.parent / 'tls' / 'server.key'}" in r.stderr
    assert "Traceback" not in r.stderr


def test_sigterm_with_tls_clients_connected_exits_cleanly(conf: Path) -> None:
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(conf.parent / "tls" / "ca.crt"))
    with suite_running(conf, subprocess=True) as s:
        done = ctx.wrap_socket(
            socket.create_connection(("127.0.0.1", s.port("secure")), timeout=10),
            server_hostname="localhost",
        )
        done.sendall(b"x")
        assert done.recv(1) == b"x"
        stalled = socket.create_connection(("127.0.0.1", s.port("secure")), timeout=10)
        status = s.stop()
        # twistd re-raises the SIGTERM it handled; -9 would mean it had to be killed
        assert status in (0, -15)
        for c in (done, stalled):
            try:
                assert c.recv(10) == b""  # the suite hung up on both
            except (ConnectionResetError, ssl.SSLError):
                pass
            c.close()
    log = s.log()
    assert "portsuite: all listeners closed" in log and "Server Shut Down." in log
    assert "Traceback" not in log
