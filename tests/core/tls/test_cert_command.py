"""`portsuite cert`: a local CA and a server cert for localhost, 127.0.0.1 and ::1."""

from __future__ import annotations

import datetime
import ipaddress
import stat
import subprocess as sp
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from portsuite import certs, tlscheck
from portsuite.api import TLSConfig
from portsuite.testing import need

SCRIPT = Path(sys.executable).parent / "portsuite"
PORTSUITE = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "portsuite.cli"]
FILES = ("ca.crt", "ca.key", "server.crt", "server.key")


def run_cert(*args: str, cwd: Path, umask: int = 0o022) -> sp.CompletedProcess[str]:
    return sp.run(
        [*PORTSUITE, "cert", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        umask=umask,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def verify(folder: Path, name: x509.GeneralName) -> None:
    """Verify server.crt as a TLS server for C{name}, trusting only ca.crt (raises if not)."""
    store = Store([load_cert(folder / "ca.crt")])
    verifier = PolicyBuilder().store(store).build_server_verifier(name)
    verifier.verify(load_cert(folder / "server.crt"), [])


def test_cert_writes_four_files_with_private_keys_0600(tmp_path: Path) -> None:
    # even with a permissive umask, keys are born 0600
    r = run_cert("--dir", "tls", cwd=tmp_path, umask=0)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "tls"
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no temp files left
    assert mode(folder / "ca.key") == 0o600
    assert mode(folder / "server.key") == 0o600
    assert mode(folder / "ca.crt") == 0o644 and mode(folder / "server.crt") == 0o644


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("made")
    r = run_cert("--dir", str(folder / "certs"), "--days", "30", cwd=folder)
    assert r.returncode == 0, r.stderr
    return folder / "certs", r.stdout


@pytest.mark.parametrize(
    "name",
    [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ],
)
def test_server_cert_verifies_against_the_ca(
    made: tuple[Path, str], name: x509.GeneralName
) -> None:
    verify(made[0], name)


def test_server_cert_is_not_valid_for_other_names(made: tuple[Path, str]) -> None:
    with pytest.raises(VerificationError):
        verify(made[0], x509.DNSName("example.com"))


@pytest.mark.parametrize(
    "how", ["-verify_hostname localhost", "-verify_ip 127.0.0.1", "-verify_ip ::1"]
)
def test_openssl_verify_agrees(made: tuple[Path, str], how: str) -> None:
    openssl = need("openssl")
    folder = made[0]
    r = sp.run(
        [
            openssl,
            "verify",
            "-CAfile",
            str(folder / "ca.crt"),
            "-purpose",
            "sslserver",
            *how.split(),
            str(folder / "server.crt"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith(": OK")


def test_ca_and_server_extensions(made: tuple[Path, str]) -> None:
    folder = made[0]
    ca, server = load_cert(folder / "ca.crt"), load_cert(folder / "server.crt")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert server.issuer == ca.subject
    key = serialization.load_pem_private_key((folder / "server.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    days = (server.not_valid_after_utc - server.not_valid_before_utc).days
    assert 30 <= days <= 31  # --days 30


def test_the_ca_cannot_sign_for_other_sites(made: tuple[Path, str], tmp_path: Path) -> None:
    """Name constraints: importing ca.crt into a browser trusts it for localhost only."""
    folder = made[0]
    ca = load_cert(folder / "ca.crt")
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    evil = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bank.example")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    store = Store([ca])
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName("bank.example"))
    with pytest.raises(VerificationError):
        verifier.verify(evil, [])


def test_output_says_how_to_trust_and_configure(made: tuple[Path, str]) -> None:
    folder, out = made
    ca = str(folder / "ca.crt")
    assert f"curl --cacert {ca} https://localhost:PORT/" in out
    assert f"redis-cli --tls --cacert {ca}" in out
    assert f"openssl s_client -connect localhost:PORT -CAfile {ca}" in out
    assert f"ssl_ca_certs={ca!r}" in out  # redis-py
    assert "Authorities > Import" in out  # a browser
    assert f'tls = {{ cert = "{folder / "server.crt"}", key = "{folder / "server.key"}" }}' in out


def test_generated_pair_passes_the_tls_check(made: tuple[Path, str]) -> None:
    folder = made[0]
    assert tlscheck.check(TLSConfig(cert=folder / "server.crt", key=folder / "server.key")) == []


def test_existing_files_are_kept_without_force(tmp_path: Path) -> None:
    assert run_cert("--dir", "c", cwd=tmp_path).returncode == 0
    before = {n: (tmp_path / "c" / n).read_bytes() for n in FILES}
    r = run_cert("--dir", "c", cwd=tmp_path)
    assert r.returncode == 1
    assert "already exist" in r.stderr and "--force" in r.stderr and r.stdout == ""
    assert {n: (tmp_path / "c" / n).read_bytes() for n in FILES} == before
    r = run_cert("--dir", "c", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    after = {n: (tmp_path / "c" / n).read_bytes() for n in FILES}
    assert all(after[n] != before[n] for n in FILES)
    assert mode(tmp_path / "c" / "server.key") == 0o600
    verify(tmp_path / "c", x509.DNSName("localhost"))


def test_an_existing_ca_is_reused_for_a_new_server_cert(tmp_path: Path) -> None:
    assert run_cert("--dir", "c", cwd=tmp_path).returncode == 0
    ca_before = (tmp_path / "c" / "ca.crt").read_bytes()
    old_server = (tmp_path / "c" / "server.crt").read_bytes()
    (tmp_path / "c" / "server.crt").unlink()
    (tmp_path / "c" / "server.key").unlink()
    r = run_cert("--dir", "c", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "(reused)" in r.stdout
    assert (tmp_path / "c" / "ca.crt").read_bytes() == ca_before  # clients keep trusting it
    assert (tmp_path / "c" / "server.crt").read_bytes() != old_server
    verify(tmp_path / "c", x509.DNSName("localhost"))


def test_only_a_server_key_left_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "server.key").write_text("mine\n")
    r = run_cert("--dir", "c", cwd=tmp_path)
    assert r.returncode == 1
    assert (tmp_path / "c" / "server.key").read_text() == "mine\n"


def test_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    r = run_cert("--dir", "file/sub", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("portsuite cert: cannot write in ") and "Traceback" not in r.stderr


def test_days_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(certs.CertError, match="at least 1 day"):
        certs.make(tmp_path, days=0)
