"""The README's commands, run as written from the repository root (the quick start's folder)."""

from __future__ import annotations

import re
import subprocess as sp
import sys
import textwrap
from pathlib import Path

from corehelp import ROOT, repo_copy

from portsuite.testing import need

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent
PORTSUITE = [str(BIN / "portsuite")]


def toml_block(containing: str) -> str:
    """The README's ```toml block that contains a given line (dedented: some sit in lists)."""
    for block in re.findall(r"```toml\n(.*?)```", README, flags=re.S):
        text = textwrap.dedent(block)
        if containing in text:
            return text
    raise AssertionError(f"no toml block with {containing!r} in the README")


def test_every_repository_path_the_readme_names_exists() -> None:
    paths = set(
        re.findall(
            r"(?<![\w/.])((?:config|plugins|bench|tests|services|src|www|\.ci)/[\w./-]*[\w/])",
            README,
        )
    )
    assert "config/config.toml" in paths
    made_by_following_it = {"config/certs", "config/certs/", "config/certs/ca.crt"}
    missing = sorted(p for p in paths - made_by_following_it if not (ROOT / p).exists())
    assert missing == []


def test_the_check_ports_and_plugins_commands_run_from_the_root() -> None:
    for command in re.findall(r"portsuite (?:check|ports|plugins) -c config/config\.toml", README):
        r = sp.run(
            [*PORTSUITE, *command.split()[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert r.returncode == 0, (command, r.stderr)
        assert "problem" not in r.stderr


def test_the_tls_and_rot13_examples_make_a_valid_config(tmp_path: Path) -> None:
    """portsuite cert, then the README's TLS services and rot13 added to config/config.toml."""
    need("openssl")  # the README's client; the check itself needs only Python
    config = repo_copy(tmp_path, ports_to_zero=False)
    r = sp.run(
        [*PORTSUITE, "cert", "--dir", "config/certs"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "config" / "certs" / "ca.crt").exists()
    tls = toml_block("[services.secure-echo]")
    rot13 = toml_block('type = "rot13"')
    config.write_text(config.read_text() + "\n" + tls + "\n" + rot13)
    r = sp.run(
        [*PORTSUITE, "check", "-c", "config/config.toml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr  # no clash (rot13's own port), every TLS file found
    rows = [line.split() for line in r.stdout.splitlines()]
    assert ["secure-web", "http", "tcp", "127.0.0.1", "8443", "registered", "tls"] in rows
    assert ["secure-kv", "kv", "tcp", "127.0.0.1", "6380", "registered", "tls"] in rows
    assert ["rot13", "rot13", "tcp", "127.0.0.1", "7113", "registered", "-"] in rows
