"""
C{portsuite cert}: a local certificate authority and a server certificate for
localhost, 127.0.0.1 and ::1, so any service can speak TLS with one config line.

    portsuite cert [--dir certs] [--days 365] [--force]

writes, in C{--dir}::

    ca.crt      the local CA: what clients are told to trust (curl --cacert …)
    ca.key      its private key (mode 0600)
    server.crt  the server certificate, signed by the CA
    server.key  its private key (mode 0600)

Keys are EC P-256. The CA is limited by name constraints to localhost, 127.0.0.0/8
and ::1: even if C{ca.key} leaks, it cannot sign a certificate for any other site,
so importing C{ca.crt} into a browser is safe. Existing files are never overwritten
without C{--force}; when only the CA exists, it is reused, so clients that already
trust it keep working.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import secrets
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
DEFAULT_DIR = "certs"
DEFAULT_DAYS = 365
CA_DAYS = 3650
DNS_NAMES = ("localhost",)
IP_ADDRESSES = ("127.0.0.1", "::1")
# what the CA may ever sign for
PERMITTED = (
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
    x509.IPAddress(ipaddress.ip_network("::1/128")),
)


class CertError(Exception):
    """Why no certificate was made: one line with the fix."""


@attrs.frozen
class Issued:
    """The files C{make} wrote (or reused), all absolute."""

    folder: Path
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    not_after: datetime.datetime
    reused_ca: bool = False


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically: a new file created with C{mode}, then renamed over C{path}."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_name() -> x509.Name:
    who = f"{os.environ.get('USER') or os.environ.get('USERNAME') or 'user'}@{socket.gethostname()}"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "portsuite"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"portsuite local CA ({who})"[:64]),
        ]
    )


def make_ca(
    days: int = CA_DAYS, now: datetime.datetime | None = None
) -> tuple[x509.Certificate, Any]:
    """A CA (basicConstraints CA:true, pathlen 0) limited to localhost names."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = _ca_name()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(permitted_subtrees=list(PERMITTED), excluded_subtrees=None),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server(
    ca_cert: x509.Certificate,
    ca_key: Any,
    days: int = DEFAULT_DAYS,
    now: datetime.datetime | None = None,
) -> tuple[x509.Certificate, Any]:
    """A server certificate for localhost, 127.0.0.1 and ::1, signed by the CA."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in DNS_NAMES] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in IP_ADDRESSES
    ]
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_ca(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, Any]:
    """The existing CA, if it is one, matches its key and is still valid."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CertError(
            f"cannot reuse the CA in {cert_path} ({e}); replace everything with --force"
        ) from None
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    pub = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if not is_ca or cert.public_key().public_bytes(*pub) != key.public_key().public_bytes(*pub):
        raise CertError(
            f"{cert_path} and {key_path} are not a CA certificate and its key; "
            f"replace everything with --force"
        )
    if cert.not_valid_after_utc < _now() + datetime.timedelta(days=1):
        raise CertError(f"the CA in {cert_path} has expired; make a new one with --force")
    return cert, key


def make(folder: str | Path = DEFAULT_DIR, days: int = DEFAULT_DAYS, force: bool = False) -> Issued:
    """
    Write the CA and the server certificate into C{folder}.

    @raise CertError: a file exists (and not C{force}), or the folder is not writable.
    """
    if days < 1:
        raise CertError(f"--days {days}: a certificate must be valid for at least 1 day")
    folder = Path(folder).expanduser().resolve()
    paths = {n: folder / n for n in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)}
    existing = [p for p in paths.values() if p.exists()]
    reuse = False
    if existing and not force:
        ca_only = {paths[CA_CERT], paths[CA_KEY]} == set(existing)
        if not ca_only:
            names = ", ".join(str(p) for p in existing)
            raise CertError(
                f"{names} already exist(s); nothing was changed. Use --force to replace them "
                f"(clients must then trust the new ca.crt), or --dir for another folder"
            )
        reuse = True
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if reuse:
            ca_cert, ca_key = _load_ca(paths[CA_CERT], paths[CA_KEY])
        else:
            ca_cert, ca_key = make_ca(days=max(CA_DAYS, days))
        cert, key = make_server(ca_cert, ca_key, days=days)
        if not reuse:
            _write(paths[CA_KEY], _key_pem(ca_key), 0o600)
            _write(paths[CA_CERT], _cert_pem(ca_cert), 0o644)
        _write(paths[SERVER_KEY], _key_pem(key), 0o600)
        _write(paths[SERVER_CERT], _cert_pem(cert), 0o644)
    except OSError as e:
        raise CertError(
            f"cannot write in {folder} ({e.strerror}); choose a folder you may write with --dir"
        ) from None
    return Issued(
        folder=folder,
        ca_cert=paths[CA_CERT],
        ca_key=paths[CA_KEY],
        cert=paths[SERVER_CERT],
        key=paths[SERVER_KEY],
        not_after=cert.not_valid_after_utc,
        reused_ca=reuse,
    )


def instructions(issued: Issued) -> str:
    """What to tell the user: the files, the config line, how each client trusts the CA."""
    q = shlex.quote
    ca = q(str(issued.ca_cert))
    until = issued.not_after.strftime("%Y-%m-%d")
    made = "reused" if issued.reused_ca else "made"
    return f"""\
portsuite cert: wrote {issued.folder}
  {CA_CERT:<11} the local CA ({made}): clients that trust it trust the suite
  {CA_KEY:<11} the CA's private key (0600); it can sign only for localhost, 127.0.0.0/8 and ::1
  {SERVER_CERT:<11} the server certificate for localhost, 127.0.0.1 and ::1, valid until {until}
  {SERVER_KEY:<11} its private key (0600)

Turn on TLS for any TCP service in the config (paths may also be relative to the config file):
  tls = {{ cert = {json.dumps(str(issued.cert))}, key = {json.dumps(str(issued.key))} }}

Then tell each client to trust the CA (PORT = the service's port):
  curl:        curl --cacert {ca} https://localhost:PORT/
  redis-cli:   redis-cli --tls --cacert {ca} -p PORT ping
  openssl:     openssl s_client -connect localhost:PORT -CAfile {ca} -verify_return_error
  redis-py:    redis.Redis(port=PORT, ssl=True, ssl_ca_certs={str(issued.ca_cert)!r})
  python ssl:  ssl.create_default_context(cafile={str(issued.ca_cert)!r})
  browser:     import {issued.ca_cert} as a certificate authority:
               Chromium: Settings > Privacy and security > Security > Manage certificates >
                         Authorities > Import (on Linux also: certutil -d sql:$HOME/.pki/nssdb
                         -A -t C,, -n "portsuite local CA" -i {ca})
               Firefox:  Settings > Privacy & Security > Certificates > View Certificates >
                         Authorities > Import, tick "identify websites"
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir", default=DEFAULT_DIR, help=f"where to write the files (default: {DEFAULT_DIR})"
    )
    p.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help=f"how long the server certificate is valid (default: {DEFAULT_DAYS})",
    )
    p.add_argument("--force", action="store_true", help="replace existing files (a new CA too)")


def run(args: argparse.Namespace) -> int:
    try:
        issued = make(args.dir, days=args.days, force=args.force)
    except CertError as e:
        print(f"portsuite cert: {e}", file=sys.stderr)
        return 1
    print(instructions(issued), end="")
    return 0
