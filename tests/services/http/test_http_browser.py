"""
The dashboard in a real browser: headless Chromium loads /_portsuite/, runs its
script, lists the services, and shows a client when one connects.
"""

from __future__ import annotations

import socket
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from portsuite.testing import chromium


class _Rows(HTMLParser):
    """The dashboard's cards as the browser left them: service -> {field: value}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.summary_open: str | None = None
        self._service: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "article" and a.get("data-service"):
            self._service = a["data-service"]
            self.rows[self._service or ""] = {}
        elif self._service and a.get("data-field"):
            self.rows[self._service][a["data-field"] or ""] = a.get("data-value") or ""
        elif a.get("id") == "summary":
            self.summary_open = a.get("data-open")


def rows(dom: str) -> _Rows:
    parser = _Rows()
    parser.feed(dom)
    return parser


@pytest.fixture
def suite(portsuite: Any, docroot: Path) -> Any:
    return portsuite(
        {
            "services": {
                "web": {"type": "http", "port": 0, "root": str(docroot)},
                "echo": {"type": "echo", "port": 0, "udp": True},
                "quiet": {"type": "discard", "port": 0},
            }
        }
    )


def test_the_page_lists_the_services_and_a_count_changes_when_a_client_connects(
    suite: Any, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{suite.port('web')}/_portsuite/"
    before_dom = chromium(url, tmp_path / "profile", "--dump-dom")
    before = rows(before_dom)
    assert list(before.rows) == ["web", "echo", "quiet"], before.rows
    assert before.rows["echo"]["open"] == "0"
    assert before.rows["web"]["open"] == "0"  # the browser itself: "this page", not counted
    assert 'class="this-page"' in before_dom

    with socket.create_connection(("127.0.0.1", suite.port("echo")), timeout=5) as client:
        client.sendall(b"hi\n")
        assert client.recv(10) == b"hi\n"
        me = f"127.0.0.1:{client.getsockname()[1]}"
        dom = chromium(url, tmp_path / "profile", "--dump-dom")
        during = rows(dom)
        assert during.rows["echo"]["open"] == "1"
        assert during.rows["echo"]["total"] == "1"
        assert me in dom  # who is connected: ip and the client's own port
        assert "registered" in dom or "dynamic" in dom  # the port class is shown

    shot = tmp_path / "dashboard.png"
    chromium(url, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.stat().st_size > 10_000


def test_the_welcome_page_links_to_the_dashboard(portsuite: Any, tmp_path: Path) -> None:
    www = Path(__file__).resolve().parents[3] / "www"
    s = portsuite({"services": {"web": {"type": "http", "port": 0, "root": str(www)}}})
    dom = chromium(f"http://127.0.0.1:{s.port('web')}/", tmp_path / "profile", "--dump-dom")
    assert 'href="/_portsuite/"' in dom
    assert "well-known" in dom and "registered" in dom and "dynamic" in dom
    # the client ports as Linux gives them, not only IANA's 49152-65535
    assert "32768" in dom and "ip_local_port_range" in dom
    assert 'rel="icon"' in dom


def test_the_welcome_page_looks_the_same_in_both_languages(portsuite: Any, tmp_path: Path) -> None:
    """index.html and index.fr.html share www/welcome.css: both load it, and each links the other."""
    from cdphelp import Browser

    www = Path(__file__).resolve().parents[3] / "www"
    s = portsuite({"services": {"web": {"type": "http", "port": 0, "root": str(www)}}})
    base = f"http://127.0.0.1:{s.port('web')}"
    browser = Browser(tmp_path / "cdp", size=(1280, 900))
    try:
        for page, lang, other in (("/", "en", "/index.fr.html"), ("/index.fr.html", "fr", "/")):
            browser.goto(base + page)
            assert browser.evaluate("document.documentElement.lang") == lang
            assert browser.evaluate("new URL(document.querySelector('.lang a').href).pathname") == (
                other
            )
            look = browser.evaluate(
                "[...document.querySelectorAll('header, .cta, .badge.wk')]"
                ".map(el => getComputedStyle(el).backgroundColor)"
            )
            assert look == [
                "rgb(29, 35, 48)",
                "rgb(20, 87, 184)",
                "rgb(20, 87, 184)",
                "rgb(179, 38, 30)",
            ]
        assert not browser.console_errors(), browser.console_errors()
    finally:
        browser.close()


def test_transcripts_of_traced_services_are_shown(
    portsuite: Any, docroot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTSUITE_TRACE_DIR", str(tmp_path / "trace"))
    s = portsuite(
        {
            "services": {
                "web": {"type": "http", "port": 0, "root": str(docroot)},
                "talk": {"type": "echo", "port": 0, "trace": True},
            }
        }
    )
    with socket.create_connection(("127.0.0.1", s.port("talk")), timeout=5) as c:
        c.sendall(b"<b>hello</b> class\n")
        assert c.recv(100) == b"<b>hello</b> class\n"
    dom = chromium(f"http://127.0.0.1:{s.port('web')}/_portsuite/", tmp_path / "p", "--dump-dom")
    assert "Recent conversations" in dom
    assert '<figure class="seq" data-service="talk">' in dom
    assert f"127.0.0.1:{s.port('talk')}" in dom  # the server's lifeline
    # the client's bytes are shown as text, never run as HTML
    assert "client → server" in dom and "&lt;b&gt;hello&lt;/b&gt; class\\n" in dom
    assert "<b>hello</b>" not in dom
