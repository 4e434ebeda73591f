"""
FTPS: explicit (RFC 4217, C{starttls = {cert, key}}): AUTH TLS on the control
connection, PROT P on the data connections; curl, lftp and ftplib's FTP_TLS. Implicit
(C{tls = {cert, key}}, the whole control port in TLS, as on port 990): curl ftps://.
"""

from __future__ import annotations

import ftplib
import io
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ftphelp import PASSWORD, Raw

from portsuite import certs
from portsuite.testing import call_in_reactor, need


@pytest.fixture(scope="module")
def certdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ftp-certs")
    certs.make(folder)
    return folder


@pytest.fixture
def ftps(ftp_suite: Any, certdir: Path) -> Any:
    pair = {"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key")}
    s = ftp_suite(starttls=pair, trace=True)
    s.ca = certdir / "ca.crt"
    return s


def test_curl_over_ftps(ftps: Any, tmp_path: Path) -> None:
    exe = need("curl")
    base = ["--ssl-reqd", "--cacert", str(ftps.ca), "-sS", "--max-time", "60"]
    url = f"ftp://127.0.0.1:{ftps.ftp_port}"

    def run(*args: str) -> bytes:
        proc = subprocess.run([exe, *base, *args], capture_output=True, timeout=90, check=False)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        return proc.stdout

    assert b"README.txt" in run(f"{url}/")
    assert run(f"{url}/pub/data.bin") == bytes(range(256)) * 400
    src = tmp_path / "s.txt"
    src.write_bytes(b"sent over TLS\n")
    run("-T", str(src), f"ftp://alice:{PASSWORD}@127.0.0.1:{ftps.ftp_port}/s.txt")
    assert (ftps.tree / "homes" / "alice" / "s.txt").read_bytes() == b"sent over TLS\n"
    # the transcript (inside TLS) still shows the commands, the password line included
    lines = call_in_reactor(
        lambda: [x["text"] for t in ftps.suite.stats["ftp"].transcripts for x in t["lines"]]
    )
    assert any(t.startswith("234 ") for t in lines) and any(
        t.startswith("USER alice") for t in lines
    )


def test_lftp_over_ftps(ftps: Any, tmp_path: Path) -> None:
    exe = need("lftp")
    script = (
        f"set ssl:ca-file {ftps.ca}; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; "
        f"set net:max-retries 1; set cmd:fail-exit yes; "
        f"cls -1; get README.txt -o {tmp_path / 'r.txt'}; bye"
    )
    proc = subprocess.run(
        [exe, "-p", str(ftps.ftp_port), "-u", "anonymous,x", "-e", script, "localhost"],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert "README.txt" in proc.stdout.decode()
    assert (tmp_path / "r.txt").read_text() == "Bonjour ! Hello!\n"


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftplib_ftp_tls(ftps: Any, passive: bool) -> None:
    context = ssl.create_default_context(cafile=str(ftps.ca))
    f = ftplib.FTP_TLS(context=context, timeout=30)
    f.connect("127.0.0.1", ftps.ftp_port)
    f.login("alice", PASSWORD)  # AUTH TLS first, then USER/PASS encrypted
    f.prot_p()
    f.set_pasv(passive)
    f.storbinary("STOR t.bin", io.BytesIO(b"t" * 300_000))
    got = io.BytesIO()
    f.retrbinary("RETR t.bin", got.write)
    assert got.getvalue() == b"t" * 300_000
    assert f.nlst() == ["t.bin"]
    f.prot_c()  # back to clear data connections
    assert f.nlst() == ["t.bin"]
    f.quit()


def test_ftps_commands_in_the_wrong_place(ftp_suite: Any, ftps: Any) -> None:
    plain = ftp_suite()  # no tls: AUTH TLS is not offered
    r = Raw(plain.ftp_port)
    assert "AUTH TLS" not in r.cmd("FEAT")
    assert r.cmd("AUTH TLS").startswith("502")
    r.close()
    r = Raw(ftps.ftp_port)
    assert "AUTH TLS" in r.cmd("FEAT")
    assert r.cmd("PBSZ 0").startswith("503")
    assert r.cmd("PROT P").startswith("503")
    assert r.cmd("AUTH KERBEROS").startswith("504")
    r.close()


def test_implicit_ftps_with_curl(ftp_suite: Any, certdir: Path, tmp_path: Path) -> None:
    exe = need("curl")
    pair = {"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key")}
    s = ftp_suite(tls=pair)  # the control port speaks TLS from the first byte
    base = ["--cacert", str(certdir / "ca.crt"), "-sS", "--max-time", "60"]
    url = f"ftps://127.0.0.1:{s.ftp_port}"
    proc = subprocess.run(
        [exe, *base, f"{url}/README.txt"], capture_output=True, timeout=90, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == b"Bonjour ! Hello!\n"
    src = tmp_path / "i.txt"
    src.write_bytes(b"implicit\n")
    proc = subprocess.run(
        [exe, *base, "-T", str(src), f"ftps://alice:{PASSWORD}@127.0.0.1:{s.ftp_port}/i.txt"],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert (s.tree / "homes" / "alice" / "i.txt").read_bytes() == b"implicit\n"
    # plain FTP on that port gets nowhere
    with socket.create_connection(("127.0.0.1", s.ftp_port), timeout=20) as sock:
        sock.sendall(b"USER anonymous\r\n")
        assert not sock.recv(100).startswith(b"220")  # a TLS alert, or the door closed


def test_starttls_config_errors_are_one_line(ftp_suite: Any, tree: Path) -> None:
    from portsuite import loader
    from portsuite.api import ConfigError

    config = {
        "services": {
            "ftp": {
                "type": "ftp",
                "port": 0,
                "root": str(tree / "root"),
                "starttls": {"cert": "missing.crt", "key": "missing.key", "x": 1},
            }
        }
    }
    with pytest.raises(ConfigError) as e:
        loader.from_dict(config, base_dir=tree)
    text = "\n".join(e.value.errors)
    assert "starttls.x: unknown key" in text
