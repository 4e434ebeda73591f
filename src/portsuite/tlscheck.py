"""
TLS certificates and keys: load them, check they match, are readable only by their
owner, and are valid now. Each problem is one C{"problem; fix"} line, never a
traceback: the config check (L{portsuite.loader}) and C{portsuite check} show them.
"""

from __future__ import annotations

import datetime
import stat
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.ssl import CertificateOptions, TLSVersion

from portsuite.api import TLSConfig
from portsuite.lang import N_, _

_MAKE_ONE = N_("portsuite cert makes a CA and a cert/key for localhost")
MINIMUM_VERSION = TLSVersion.TLSv1_2


@attrs.frozen
class Material:
    """A loaded, matching certificate and key, plus the chain sent after the leaf."""

    cert: x509.Certificate
    key: Any  # a cryptography private key
    chain: tuple[x509.Certificate, ...] = ()


# -- loading and checking ------------------------------------------------------------


def _read(path: Path, what: str, errors: list[str]) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        errors.append(
            _(
                "{what} file {path} does not exist; fix the path (relative to the config file) or make one: {MAKE_ONE}"
            ).format(what=what, path=path, MAKE_ONE=_(_MAKE_ONE))
        )
    except IsADirectoryError:
        errors.append(
            _("{what} file {path} is a folder; point {what} at the PEM file itself").format(
                what=what, path=path
            )
        )
    except OSError as e:
        errors.append(
            _(
                "cannot read {what} file {path} ({strerror}); let the user running the suite read it (see ls -l {path})"
            ).format(what=what, path=path, strerror=e.strerror)
        )
    return None


def _certs(data: bytes, path: Path, what: str, errors: list[str]) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if b"PRIVATE KEY-----" in data:
            errors.append(
                _(
                    "{what} file {path} holds a private key, not a certificate; are cert and key swapped?"
                ).format(what=what, path=path)
            )
        else:
            errors.append(
                _(
                    "{what} file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----); point {what} at a PEM certificate (convert DER with: openssl x509 -inform der -in FILE -out FILE.pem)"
                ).format(what=what, path=path)
            )
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as e:
        errors.append(
            _(
                "{what} file {path} does not parse as PEM certificates ({e}); replace it with an intact copy ({MAKE_ONE})"
            ).format(what=what, path=path, e=e, MAKE_ONE=_(_MAKE_ONE))
        )
        return []


def _key_mode(path: Path, errors: list[str]) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # reported by _read
    if mode & 0o077:
        who = _("readable") if mode & 0o044 else _("accessible")
        errors.append(
            _(
                "private key {path} is {who} by group or others (mode {mode:04o}); make it private: chmod 600 {path}"
            ).format(path=path, who=who, mode=mode)
        )


def _private_key(data: bytes, path: Path, errors: list[str]) -> Any:
    if b"PRIVATE KEY-----" not in data:
        if b"-----BEGIN CERTIFICATE-----" in data:
            errors.append(
                _(
                    "key file {path} holds a certificate, not a private key; point key at the cert's private key (are cert and key swapped?)"
                ).format(path=path)
            )
        else:
            errors.append(
                _(
                    "key file {path} holds no PEM private key (-----BEGIN PRIVATE KEY-----); point key at the private key of the cert"
                ).format(path=path)
            )
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        errors.append(
            _(
                "private key {path} is protected by a passphrase, which the suite cannot ask for; write a copy without it: openssl pkey -in {path} -out NEW.key (then chmod 600 NEW.key)"
            ).format(path=path)
        )
    except (ValueError, Exception) as e:  # unsupported algorithm, corrupt file
        errors.append(
            _(
                "private key {path} does not parse ({e}); replace it with an intact copy ({MAKE_ONE})"
            ).format(path=path, e=e, MAKE_ONE=_(_MAKE_ONE))
        )
    return None


def _public_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def utc_text(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _is_portsuite_ca(cert: x509.Certificate) -> bool:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
    orgs = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return ca and any(o.value == "portsuite" for o in orgs)


def load(tls: TLSConfig, now: datetime.datetime | None = None) -> tuple[Material | None, list[str]]:
    """
    Read the cert, key and chain of C{tls}; every problem is one C{"problem; fix"} text.

    An expired certificate is an error (every client would refuse it; the fix is a new
    one); a certificate that is not valid yet, or expires soon, is only logged at start.
    """
    errors: list[str] = []
    now = now or datetime.datetime.now(datetime.UTC)
    cert_data = _read(tls.cert, "cert", errors)
    key_data = _read(tls.key, "key", errors)
    if key_data is not None and b"PRIVATE KEY-----" in key_data:
        _key_mode(tls.key, errors)
    chain_data = _read(tls.chain, "chain", errors) if tls.chain is not None else None
    certs = _certs(cert_data, tls.cert, "cert", errors) if cert_data is not None else []
    key = _private_key(key_data, tls.key, errors) if key_data is not None else None
    chain: list[x509.Certificate] = certs[1:]
    if chain_data is not None:
        assert tls.chain is not None
        chain += _certs(chain_data, tls.chain, "chain", errors)
    leaf = certs[0] if certs else None
    if leaf is not None and key is not None:
        try:
            match = _public_der(leaf.public_key()) == _public_der(key.public_key())
        except Exception:
            match = False
        if not match:
            errors.append(
                _(
                    "cert {cert} and key {key} do not belong together (the cert holds another public key); use the key made with this cert (portsuite cert writes server.crt with server.key)"
                ).format(cert=tls.cert, key=tls.key)
            )
    if leaf is not None and _is_portsuite_ca(leaf):
        errors.append(
            _(
                "cert {cert} is the local CA that portsuite cert made, not a server certificate; use server.crt and server.key from the same folder (clients get ca.crt)"
            ).format(cert=tls.cert)
        )
    if leaf is not None and leaf.not_valid_after_utc < now:
        errors.append(
            _(
                "cert {cert} expired on {utc_text_leaf_no}; clients refuse it: make a new one (portsuite cert --force for localhost)"
            ).format(cert=tls.cert, utc_text_leaf_no=utc_text(leaf.not_valid_after_utc))
        )
    if errors or leaf is None or key is None:
        return None, errors
    material = Material(cert=leaf, key=key, chain=tuple(chain))
    try:
        certificate_options(material).getContext()
    except SSL.Error as e:
        errors.append(
            _(
                "OpenSSL refuses cert {cert} with key {key} ({openssl_reason_e}); make a new pair ({MAKE_ONE})"
            ).format(
                cert=tls.cert,
                key=tls.key,
                openssl_reason_e=openssl_reason(e),
                MAKE_ONE=_(_MAKE_ONE),
            )
        )
        return None, errors
    except Exception as e:  # never a traceback for a file problem
        errors.append(
            _("cannot use cert {cert} with key {key} ({e}); make a new pair ({MAKE_ONE})").format(
                cert=tls.cert, key=tls.key, e=e, MAKE_ONE=_(_MAKE_ONE)
            )
        )
        return None, errors
    return material, []


def check(tls: TLSConfig) -> list[str]:
    """Every problem of C{tls}, one C{"problem; fix"} line each ([] when it will work)."""
    try:
        return load(tls)[1]
    except Exception as e:  # pragma: no cover - a last guard: no traceback ever
        return [
            _("cannot use cert {cert} with key {key} ({e!r}); {MAKE_ONE}").format(
                cert=tls.cert, key=tls.key, e=e, MAKE_ONE=_(_MAKE_ONE)
            )
        ]


def certificate_options(
    material: Material, cls: type[CertificateOptions] = CertificateOptions
) -> CertificateOptions:
    """Twisted's TLS server options: TLS >= 1.2, 1.3 offered, no compression."""

    def build(key: Any, cert: Any, chain: list[Any]) -> CertificateOptions:
        # session tickets (RFC 5077 / RFC 8446 resumption): a returning client
        # skips the full handshake; Twisted turns them off unless asked
        return cls(
            privateKey=key,
            certificate=cert,
            extraCertChain=chain,
            raiseMinimumTo=MINIMUM_VERSION,
            enableSessionTickets=True,
        )

    try:
        # pyOpenSSL >= 24.3 takes cryptography objects (and deprecates its own)
        options = build(material.key, material.cert, list(material.chain))
        options.getContext()
    except TypeError:
        options = build(
            crypto.PKey.from_cryptography_key(material.key),
            crypto.X509.from_cryptography(material.cert),
            [crypto.X509.from_cryptography(c) for c in material.chain],
        )
    return options


def openssl_reason(e: BaseException) -> str:
    """The short reason of an OpenSSL error, e.g. C{"unsupported protocol"}."""
    args = getattr(e, "args", ())
    if args and isinstance(args[0], list):
        reasons = [r[-1] for r in args[0] if isinstance(r, tuple) and r and r[-1]]
        if reasons:
            return "; ".join(reasons)
    return str(e) or e.__class__.__name__
