"""Shared fixtures of the TLS tests: one CA and server cert per session, made by portsuite cert."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from portsuite import certs


@pytest.fixture(scope="session")
def certdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, ca.key, server.crt, server.key (as portsuite cert writes them). Read only."""
    folder = tmp_path_factory.mktemp("certs")
    certs.make(folder)
    return folder


@pytest.fixture
def pair(certdir: Path, tmp_path: Path) -> dict[str, Path]:
    """A private copy of the server cert/key that a test may break."""
    out = {
        "cert": tmp_path / "server.crt",
        "key": tmp_path / "server.key",
        "ca": tmp_path / "ca.crt",
    }
    for path in out.values():
        shutil.copy2(certdir / path.name, path)
    return out
