"""Helpers of the core tests (imported as corehelp: test dirs have no __init__.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).parents[2]


def repo_copy(tmp_path: Path, ports_to_zero: bool = True) -> Path:
    """
    The repository's config/ folder in tmp_path, every port set to 0: config.toml rewritten,
    everything beside it (and beside config/ in the repository: plugins, www…) linked,
    so each relative path of the config (plugin_dirs, root, tls files…) means what it
    means in the repository. Data files go to the copy, never into the repository.
    Returns the copy of config.toml.
    """
    for entry in ROOT.iterdir():
        if entry.name not in ("config", ".git", ".venv", "data"):
            (tmp_path / entry.name).symlink_to(entry)
    folder = tmp_path / "config"
    folder.mkdir()
    for entry in (ROOT / "config").iterdir():
        if entry.name != "config.toml":
            (folder / entry.name).symlink_to(entry)
    data = tomllib.loads((ROOT / "config" / "config.toml").read_text())
    for svc in data["services"].values():
        if ports_to_zero:
            svc["port"] = 0
        if isinstance(svc.get("data"), str):
            svc["data"] = str(tmp_path / Path(svc["data"]).name)
    path = folder / "config.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def drain(conn: Any, peer: Any, expected: int) -> bytes:
    """
    Let a real tcp.Connection write what it queued (its doWrite, as the reactor would)
    while C{peer}, non-blocking, reads it; the bytes read, once C{expected} or bounded.
    """
    peer.setblocking(False)
    got = bytearray()
    for _ in range(100000):
        if len(got) == expected:
            break
        conn.doWrite()
        try:
            got += peer.recv(1 << 20)
        except BlockingIOError:
            pass
    return bytes(got)
