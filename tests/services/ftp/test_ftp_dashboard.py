"""
The FTP lesson on the dashboard page, in a real browser: under the ftp service, each
session's control connection and its data connections (passive and active, both
ends with their ports, which way the bytes went, how many), as headless Chromium
draws them. The screenshot is kept (PORTSUITE_SCREENSHOTS=folder) for a look.
"""

from __future__ import annotations

import io
import os
import re
import socket
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ftphelp import login

from portsuite.testing import chromium


class _Connections(HTMLParser):
    """The ftp card's connection lines: (kind, state, text of the line)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str, str]] = []
        self._in_ftp = False
        self._depth = 0
        self._line: list[Any] | None = None
        self._line_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "article":
            self._in_ftp = a.get("data-service") == "ftp"
        if not self._in_ftp:
            return
        self._depth += 1
        if "conn" in (a.get("class") or "").split() and self._line is None:
            self._line = [a.get("data-kind") or "", a.get("data-state") or "", ""]
            self._line_depth = self._depth

    def handle_endtag(self, tag: str) -> None:
        if not self._in_ftp:
            return
        if self._line is not None and self._depth == self._line_depth:
            self.lines.append((self._line[0], self._line[1], " ".join(self._line[2].split())))
            self._line = None
        self._depth -= 1
        if tag == "article":
            self._in_ftp = False

    def handle_data(self, data: str) -> None:
        if self._line is not None:
            self._line[2] += " " + data


def test_the_page_shows_each_session_with_its_data_connections(
    ftp_suite: Any, tmp_path: Path
) -> None:
    s = ftp_suite(services={"web": {"type": "http", "port": 0, "root": "root"}})
    # one session that downloaded a file (passive), uploaded one (active), and has a
    # passive port open, waiting for its next data connection
    f = login(s, "alice", "wonderland")
    control = f"127.0.0.1:{f.sock.getsockname()[1]}"
    f.storbinary("STOR notes.txt", io.BytesIO(b"x" * 3000))
    f.set_pasv(False)
    f.retrbinary("RETR notes.txt", io.BytesIO().write)
    f.set_pasv(True)
    reply = f.sendcmd("PASV")
    n = [int(x) for x in re.search(r"\((.*)\)", reply).group(1).split(",")]  # type: ignore[union-attr]
    waiting = n[4] * 256 + n[5]
    # and a second session that only logged in
    other = login(s)

    url = f"http://127.0.0.1:{s.port('web')}/_portsuite/"
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    lines = _Connections()
    lines.feed(dom)
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for kind, state, text in lines.lines:
        by_kind.setdefault(kind, []).append((state, text))
    # the control connections: client ip:port ⇄ the service's port, who and where
    ftp_port = s.ftp_port
    controls = [t for _s, t in by_kind.get("control", [])]
    assert any(
        t.startswith(f"control {control} ⇄ 127.0.0.1:{ftp_port}") and "alice · /" in t
        for t in controls
    ), controls
    assert any("anonymous" in t for t in controls), controls
    # the upload (passive, client → server, its bytes), the download (active, server
    # → client), and the port still waiting
    passive = by_kind.get("passive", [])
    active = by_kind.get("active", [])
    up = [t for st, t in passive if "STOR /notes.txt" in t]
    assert up and re.search(
        r"127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+ STOR /notes\.txt · 2\.9 KiB", up[0]
    ), up
    down = [t for st, t in active if "RETR /notes.txt" in t]
    assert down and re.search(
        r"127\.0\.0\.1:\d+ ← 127\.0\.0\.1:\d+ RETR /notes\.txt · 2\.9 KiB", down[0]
    ), down
    assert any(st == "waiting" and f"127.0.0.1:{waiting}" in t for st, t in passive), passive

    folder = Path(os.environ.get("PORTSUITE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "ftp-dashboard.png"
    chromium(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1366,900")
    assert shot.stat().st_size > 10_000
    f.quit()
    other.quit()


def test_the_lines_go_when_the_session_ends(ftp_suite: Any, tmp_path: Path) -> None:
    s = ftp_suite(services={"web": {"type": "http", "port": 0, "root": "root"}})
    f = login(s)
    f.retrlines("LIST", lambda line: None)
    f.quit()
    # a client that never logs in shows as a session too, and a closed one not at all
    with socket.create_connection(("127.0.0.1", s.ftp_port), timeout=30) as raw:
        assert raw.recv(100).startswith(b"220")
        dom = chromium(
            f"http://127.0.0.1:{s.port('web')}/_portsuite/", tmp_path / "p", "--dump-dom"
        )
    lines = _Connections()
    lines.feed(dom)
    assert [k for k, _s, _t in lines.lines] == ["control"], lines.lines
    assert "not logged in" in lines.lines[0][2]
    assert not any("LIST" in t for _k, _s, t in lines.lines)
