"""A bad cert or key stops the config with one clear line and the fix (portsuite.tls.check)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from portsuite import certs, tlscheck
from portsuite.api import ConfigError, TLSConfig
from portsuite.loader import from_dict, load


def config_errors(cert: Path, key: Path, **extra: object) -> list[str]:
    data = {
        "services": {
            "web": {"type": "echo", "port": 0, "tls": {"cert": str(cert), "key": str(key), **extra}}
        }
    }
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    for line in info.value.errors:
        assert "\n" not in line and "Traceback" not in line
        assert line.startswith("<config>: [services.web] tls: ")
    return info.value.errors


def test_good_pair_loads_and_has_no_problem(pair: dict[str, Path]) -> None:
    cfg = from_dict(
        {
            "services": {
                "web": {
                    "type": "echo",
                    "port": 0,
                    "tls": {"cert": str(pair["cert"]), "key": str(pair["key"])},
                }
            }
        }
    )
    assert cfg.service("web").tls == TLSConfig(cert=pair["cert"], key=pair["key"])
    assert tlscheck.check(cfg.service("web").tls) == []


def test_relative_paths_resolve_against_the_config_file(
    certdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    (folder / "tls").mkdir(parents=True)
    for name in ("server.crt", "server.key"):
        (folder / "tls" / name).write_bytes((certdir / name).read_bytes())
    (folder / "tls" / "server.key").chmod(0o600)
    path = folder / "suite.toml"
    path.write_text(
        '[services.echo]\ntype = "echo"\nport = 0\n'
        'tls = { cert = "tls/server.crt", key = "tls/server.key" }\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    assert load(path).service("echo").tls.key == folder / "tls" / "server.key"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_group_or_others_gives_the_chmod_fix(
    pair: dict[str, Path], mode: int
) -> None:
    pair["key"].chmod(mode)
    errors = config_errors(pair["cert"], pair["key"])
    assert len(errors) == 1
    assert f"chmod 600 {pair['key']}" in errors[0]
    assert f"mode {mode:04o}" in errors[0]
    pair["key"].chmod(0o600)
    assert tlscheck.check(TLSConfig(cert=pair["cert"], key=pair["key"])) == []


def test_key_from_another_pair_does_not_match(pair: dict[str, Path], tmp_path: Path) -> None:
    other = certs.make(tmp_path / "other")
    errors = config_errors(pair["cert"], other.key)
    assert len(errors) == 1
    assert "do not belong together" in errors[0]
    assert str(pair["cert"]) in errors[0] and str(other.key) in errors[0]


@pytest.mark.parametrize("which", ["cert", "key"])
def test_missing_file_names_the_path_and_portsuite_cert(pair: dict[str, Path], which: str) -> None:
    pair[which].unlink()
    errors = config_errors(pair["cert"], pair["key"])
    assert len(errors) == 1
    assert f"{which} file {pair[which]} does not exist" in errors[0]
    assert "portsuite cert" in errors[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_unreadable_cert(pair: dict[str, Path]) -> None:
    pair["cert"].chmod(0)
    errors = config_errors(pair["cert"], pair["key"])
    assert any("cannot read cert file" in e and "Permission denied" in e for e in errors)


def test_folder_instead_of_file(pair: dict[str, Path], tmp_path: Path) -> None:
    errors = config_errors(tmp_path, pair["key"])
    assert any("is a folder" in e for e in errors)


def test_swapped_cert_and_key(pair: dict[str, Path]) -> None:
    errors = config_errors(pair["key"], pair["cert"])
    assert any("holds a private key, not a certificate" in e and "swapped" in e for e in errors)
    assert any("holds a certificate, not a private key" in e for e in errors)


def test_garbage_cert(pair: dict[str, Path]) -> None:
    pair["cert"].write_text("hello\n")
    errors = config_errors(pair["cert"], pair["key"])
    assert errors == [
        f"<config>: [services.web] tls: cert file {pair['cert']} holds no PEM "
        f"certificate (-----BEGIN CERTIFICATE-----); point cert at a PEM certificate "
        f"(convert DER with: openssl x509 -inform der -in FILE -out FILE.pem)"
    ]


def test_truncated_cert(pair: dict[str, Path]) -> None:
    data = pair["cert"].read_bytes()
    pair["cert"].write_bytes(data[:200] + b"\n-----END CERTIFICATE-----\n")
    errors = config_errors(pair["cert"], pair["key"])
    assert len(errors) == 1 and "does not parse" in errors[0]


def test_chain_that_does_not_parse(pair: dict[str, Path], tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_text("not a certificate\n")
    errors = config_errors(pair["cert"], pair["key"], chain=str(chain))
    assert len(errors) == 1
    assert f"chain file {chain} holds no PEM certificate" in errors[0]


def test_missing_chain(pair: dict[str, Path], tmp_path: Path) -> None:
    errors = config_errors(pair["cert"], pair["key"], chain=str(tmp_path / "nope.pem"))
    assert len(errors) == 1 and "chain file" in errors[0] and "does not exist" in errors[0]


def test_valid_chain_and_fullchain_are_accepted(pair: dict[str, Path], tmp_path: Path) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pair["ca"].read_bytes())
    assert tlscheck.check(TLSConfig(cert=pair["cert"], key=pair["key"], chain=chain)) == []
    full = tmp_path / "fullchain.pem"
    full.write_bytes(pair["cert"].read_bytes() + pair["ca"].read_bytes())
    material, errors = tlscheck.load(TLSConfig(cert=full, key=pair["key"]))
    assert errors == [] and material is not None
    assert len(material.chain) == 1  # the CA goes after the leaf


def test_expired_cert_is_an_error_with_the_renew_fix(certdir: Path, tmp_path: Path) -> None:
    ca = x509.load_pem_x509_certificate((certdir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((certdir / "ca.key").read_bytes(), None)
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    cert, key = certs.make_server(ca, ca_key, days=2, now=long_ago)
    (tmp_path / "old.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs._write(tmp_path / "old.key", certs._key_pem(key), 0o600)
    errors = config_errors(tmp_path / "old.crt", tmp_path / "old.key")
    assert len(errors) == 1
    assert "expired on" in errors[0] and "portsuite cert --force" in errors[0]


def test_passphrase_protected_key(pair: dict[str, Path]) -> None:
    key = serialization.load_pem_private_key(pair["key"].read_bytes(), None)
    pair["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    errors = config_errors(pair["cert"], pair["key"])
    assert len(errors) == 1 and "passphrase" in errors[0] and "openssl pkey" in errors[0]


def test_several_problems_are_all_reported(pair: dict[str, Path], tmp_path: Path) -> None:
    pair["key"].chmod(0o644)
    errors = config_errors(tmp_path / "missing.crt", pair["key"])
    assert len(errors) == 2
    assert "does not exist" in errors[0] and "chmod 600" in errors[1]


def test_a_cert_file_as_key_gets_no_chmod_advice(pair: dict[str, Path]) -> None:
    errors = config_errors(pair["cert"], pair["ca"])  # ca.crt is 0644, and not a key
    assert len(errors) == 1
    assert "holds a certificate, not a private key" in errors[0] and "chmod" not in errors[0]


def test_the_ca_as_server_cert_says_use_server_crt(certdir: Path) -> None:
    errors = config_errors(certdir / "ca.crt", certdir / "ca.key")
    assert len(errors) == 1
    assert "is the local CA that portsuite cert made" in errors[0] and "server.crt" in errors[0]
