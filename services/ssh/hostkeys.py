"""
The ssh service's host keys: ed25519 and RSA, made once at first start (mode 0600, in
OpenSSH's format), never overwritten; their SHA256 fingerprints are what students
compare with what C{ssh} asks them to trust.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from twisted.conch.ssh import keys

from portsuite.api.i18n import gettext as _

KINDS = {"ed25519": "ssh_host_ed25519_key", "rsa": "ssh_host_rsa_key"}


def _problem(path: Path) -> str | None:
    try:
        mode = path.stat().st_mode
    except OSError as e:
        return _("host_keys: cannot read {path} ({error}); fix its permissions").format(
            path=path, error=e.strerror
        )
    if mode & 0o077:
        return _(
            "host_keys: {path} is readable by others (mode {mode}); "
            "a host key must stay private: chmod 600 {path}"
        ).format(path=path, mode=f"{stat.S_IMODE(mode):o}")
    try:
        keys.Key.fromFile(str(path))
    except Exception as e:  # BadKeyError, EncryptedKeyError, ValueError…
        return _(
            "host_keys: {path} is not a usable private key ({error}); move it away to make a new one"
        ).format(path=path, error=e)
    return None


def check(folder: Path) -> list[str]:
    """Problems of the keys already there (missing ones are made at start)."""
    errors = []
    if folder.exists() and not folder.is_dir():
        return [
            _("host_keys: {path} is not a folder; point host_keys at a folder").format(path=folder)
        ]
    for name in KINDS.values():
        path = folder / name
        if path.exists():
            problem = _problem(path)
            if problem:
                errors.append(problem)
        elif folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            errors.append(
                _(
                    "host_keys: cannot create {path} (folder not writable); fix its permissions"
                ).format(path=path)
            )
    return errors


def load_or_make(folder: Path) -> dict[str, keys.Key]:
    """The private host keys by kind, made (atomically, 0600) where missing."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = {}
    for kind, name in KINDS.items():
        path = folder / name
        if not path.exists():
            if kind == "ed25519":
                key = keys.Key(ed25519.Ed25519PrivateKey.generate())
            else:
                key = keys.Key(rsa.generate_private_key(public_exponent=65537, key_size=3072))
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key.toString("OPENSSH"))
            os.replace(tmp, path)
            pub = path.with_name(name + ".pub")
            pub.write_bytes(key.public().toString("OPENSSH") + b" portsuite\n")
        problem = _problem(path)
        if problem:
            raise ValueError(problem)
        out[kind] = keys.Key.fromFile(str(path))
    return out


def fingerprint(key: keys.Key) -> str:
    """As OpenSSH shows it: C{SHA256:base64} (no padding)."""
    fp = key.fingerprint(keys.FingerprintFormats.SHA256_BASE64)
    fp = fp if isinstance(fp, str) else fp.decode()
    return fp if fp.startswith("SHA256:") else "SHA256:" + fp.rstrip("=")
