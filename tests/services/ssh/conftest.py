"""Fixtures of the ssh/telnet tests: host keys made once, a files folder with traps."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from portsuite_services.ssh import hostkeys


@pytest.fixture(scope="session")
def made_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostkeys")
    hostkeys.load_or_make(folder)  # RSA 3072 takes a while: once per run
    return folder


@pytest.fixture
def lab(tmp_path: Path, made_keys: Path) -> dict[str, Any]:
    keys = tmp_path / "keys"
    shutil.copytree(made_keys, keys)
    files = tmp_path / "files"
    (files / "docs").mkdir(parents=True)
    (files / "hello.txt").write_text("bonjour le monde\n")
    (files / "docs" / "cours.txt").write_text("1 service = 1 port\n")
    (files / "escape").symlink_to("/etc")  # a link out of the jail
    (files / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(files / "fifo")  # would block a naive cat
    (tmp_path / "secret.txt").write_text("outside the jail\n")
    return {"keys": keys, "files": files, "root": tmp_path}
