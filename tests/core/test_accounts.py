"""[users]: one table of accounts for every service that logs users in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from portsuite import loader
from portsuite.api import ConfigError, hash_password
from portsuite.api.accounts import parse_users

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bob@laptop"


def _errors(data: dict, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        loader.from_dict(data, base_dir=tmp_path, label="lab.toml")
    return e.value.errors


def _result(d: object) -> object:
    out: list[object] = []
    d.addBoth(out.append)  # type: ignore[attr-defined]
    return out[0]


def test_clear_and_hashed_passwords_and_keys_log_in(tmp_path: Path) -> None:
    hashed = hash_password("s3cret", rounds=4)
    cfg = loader.from_dict(
        {
            "users": {"alice": "wonderland", "bob": {"password": hashed, "keys": [KEY]}},
            "services": {"e": {"type": "echo", "port": 0}},
        },
        base_dir=tmp_path,
    )
    checker = cfg.accounts.checker()
    assert _result(checker.requestAvatarId(UsernamePassword(b"alice", b"wonderland"))) == "alice"
    assert _result(checker.requestAvatarId(UsernamePassword(b"bob", b"s3cret"))) == "bob"
    for user, pw in [(b"alice", b"Wonderland"), (b"bob", b"wonderland"), (b"eve", b"x")]:
        failure = _result(checker.requestAvatarId(UsernamePassword(user, pw)))
        assert failure.check(UnauthorizedLogin)  # type: ignore[attr-defined]
    assert cfg.accounts.get("bob").key_blobs()[0].startswith(b"\0\0\0\x0bssh-ed25519")  # type: ignore[union-attr]


def test_a_service_narrows_the_accounts(tmp_path: Path) -> None:
    cfg = loader.from_dict(
        {
            "users": {"alice": "a", "bob": "b"},
            "services": {"e": {"type": "echo", "port": 0, "users": ["bob"]}},
        },
        base_dir=tmp_path,
    )
    assert cfg.service("e").users == ("bob",)
    assert cfg.accounts.narrow(cfg.service("e").users).names() == ["bob"]


def test_every_problem_of_the_table_is_one_line(tmp_path: Path) -> None:
    errs = _errors(
        {
            "users": {
                "alice": "$2b$12$tooshort",
                "bob": {"pasword": "x"},
                "carol": {"keys": ["ssh-ed25519 !!!"]},
                "-x": "pw",
                "dave": 12,
            },
            "services": {"e": {"type": "echo", "port": 0, "users": ["zoe"]}},
        },
        tmp_path,
    )
    text = "\n".join(errs)
    assert "[users] alice: '$2b$12$toosh'… is not a bcrypt hash" in text
    assert "[users] bob.pasword: unknown key" in text
    assert "[users] carol.keys: the key's base64 is damaged" in text
    assert "[users] -x: not a usable user name" in text
    assert "[users] dave: must be a password string" in text
    assert "[services.e] users: 'zoe' is not in [users]" in text
    assert all(line.startswith("lab.toml: ") for line in errs)


def test_a_key_of_another_type_than_it_says_is_refused() -> None:
    wrong = KEY.replace("ssh-ed25519 ", "ssh-rsa ", 1)
    _, errors = parse_users({"bob": {"keys": [wrong]}}, "x.toml")
    assert errors and "is not a ssh-rsa key" in errors[0]


def test_portsuite_passwd_prints_a_line_that_logs_in(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "portsuite.cli", "passwd", "zoe", "--rounds", "4"],
        input="tea time\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = [x for x in out.splitlines() if x.startswith("zoe = ")][0]
    hashed = line.split('"')[1]
    accounts, errors = parse_users({"zoe": hashed}, "x.toml")
    assert errors == []
    assert accounts.get("zoe").check_password("tea time")  # type: ignore[union-attr]
    assert not accounts.get("zoe").check_password("tea  time")  # type: ignore[union-attr]
