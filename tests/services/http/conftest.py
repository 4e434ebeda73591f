"""
Fixtures of the http tests: a served folder with traps in it, and an in-memory client
(L{httphelp.Web}) that drives the real twisted.web stack over a StringTransport with a
fake clock.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from httphelp import MID_SIZE, SECRET, Web


@pytest.fixture
def docroot(tmp_path: Path) -> Path:
    """
    www/ with pages, a folder without index, dotfiles, scripts and symlinks; the
    file outside/secret.txt must never be served.
    """
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("<!doctype html><title>home</title><h1>Welcome</h1>\n")
    (www / "a.txt").write_bytes(b"0123456789abcdefghij")
    (www / "style.css").write_text("body { color: red; }\n")
    (www / "app.js").write_text("console.log(1);\n")
    (www / "data.json").write_text('{"ok": true}\n')
    (www / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    (www / "blob.xyz123").write_bytes(b"\x00\x01")
    (www / "mid.bin").write_bytes(bytes(i % 251 for i in range(MID_SIZE)))
    (www / ".env").write_bytes(b"PASSWORD=hunter2")
    (www / ".git").mkdir()
    (www / ".git" / "config").write_bytes(b"[core] secret")
    (www / "x.rpy").write_bytes(b"# rpy source: resource = EVIL\n")
    (www / "y.epy").write_bytes(b"# epy source EVIL\n")
    (www / "Z.RPY").write_bytes(b"# upper-case rpy EVIL\n")
    sub = www / "sub"
    sub.mkdir()
    (sub / "b.txt").write_bytes(b"bee")
    (sub / ".hidden").write_bytes(b"HIDDEN")
    (sub / "with space.txt").write_bytes(b"spaced")
    withindex = www / "docs"
    withindex.mkdir()
    (withindex / "index.html").write_text("<h1>docs</h1>")
    os.symlink(outside / "secret.txt", www / "leak.txt")
    os.symlink(outside, www / "leakdir")
    os.symlink(www / "a.txt", www / "alias.txt")
    os.symlink("../.env", sub / "env-link")
    return www


@pytest.fixture
def web(docroot: Path) -> Web:
    return Web(docroot)
