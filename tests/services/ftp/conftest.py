"""Shared fixtures of the ftp tests: a public tree, homes, and a started ftp service."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ftphelp import PASSWORD


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ (public), homes/, and outside/ (a secret next to them)."""
    root = tmp_path / "root"
    (root / "pub").mkdir(parents=True)
    (root / "README.txt").write_text("Bonjour ! Hello!\n", encoding="utf-8")
    (root / "pub" / "data.bin").write_bytes(bytes(range(256)) * 400)  # 102400 bytes
    (root / "pub" / "été.txt").write_text("accents\n", encoding="utf-8")
    (tmp_path / "homes").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET\n")
    os.symlink(outside / "secret.txt", root / "link-out.txt")
    os.symlink(outside, root / "dir-out")
    os.symlink(root / "README.txt", root / "link-in.txt")
    return tmp_path


@pytest.fixture
def ftp_suite(portsuite: Any, tree: Path) -> Callable[..., Any]:
    """Start a suite with one ftp service (extra keys override), return it."""

    def start(host: str = "127.0.0.1", services: dict[str, Any] | None = None, **opts: Any) -> Any:
        svc = {
            "type": "ftp",
            "port": 0,
            "host": host,
            "root": str(tree / "root"),
            "homes": str(tree / "homes"),
            **opts,
        }
        config = {
            "users": {"alice": PASSWORD, "bob": "builder"},
            "services": {"ftp": svc, **(services or {})},
        }
        s = portsuite(config, base_dir=tree)
        s.tree = tree
        s.ftp_port = s.port("ftp")
        return s

    return start
