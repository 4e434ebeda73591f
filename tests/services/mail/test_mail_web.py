"""
The mail view on the dashboard and its JSON API (/_portsuite/api/mail/), with curl-like
requests (urllib) and headless Chromium: lists, reads, empties; HTML bodies never load
anything remote.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import socket
import threading
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from conftest import mail_config
from mailhelp import stored

from portsuite.testing import chromium


@pytest.fixture
def web(portsuite: Any, tmp_path: Path) -> Any:
    (tmp_path / "www").mkdir()
    cfg = mail_config(tmp_path)
    cfg["services"]["web"] = {"type": "http", "port": 0, "root": str(tmp_path / "www")}
    s = portsuite(cfg)
    s.maildir = tmp_path / "mail"
    s.base = f"http://127.0.0.1:{s.port('web')}"
    return s


def call(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(s: Any, path: str = "", method: str = "GET") -> Any:
    code, _headers, body = call(f"{s.base}/_portsuite/api/mail/{path}", method)
    assert code == 200, body
    return json.loads(body)


def html_mail(port: int, to: str, tracker: str) -> None:
    msg = EmailMessage()
    msg["From"] = "Shop <shop@dev.test>"
    msg["To"] = to
    msg["Subject"] = "Votre facture"
    msg["Date"] = formatdate()
    msg.set_content("Bonjour, votre facture est jointe.")
    msg.add_alternative(
        f"<html><body><h1 id=title>Facture</h1><img src='{tracker}/pixel.png'>"
        f"<link rel=stylesheet href='{tracker}/style.css'>"
        f"<script>document.title='pwned'; fetch('{tracker}/script')</script></body></html>",
        subtype="html",
    )
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="f.pdf")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.send_message(msg)


class Tracker:
    """A listener standing for a remote server: it records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hits: list[bytes] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                self.hits.append(conn.recv(1000))
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_api_lists_reads_and_empties(web: Any) -> None:
    tracker = Tracker()
    try:
        html_mail(web.port("smtp"), "alice@lab.test", tracker.url)
        top = api(web)
        assert {"name": "alice", "messages": 1, "unseen": 1} == {
            k: top["mailboxes"][0][k] for k in ("name", "messages", "unseen")
        }
        listing = api(web, "alice")
        [m] = listing["messages"]
        assert m["subject"] == "Votre facture"
        assert m["from"] == ["Shop <shop@dev.test>"] and m["to"] == ["alice@lab.test"]
        assert m["date"] and m["size"] > 0 and m["flags"] == []
        detail = api(web, f"alice/{m['id']}")
        assert detail["text"].strip() == "Bonjour, votre facture est jointe."
        assert detail["html"] is True
        assert ["Subject", "Votre facture"] in detail["headers"]
        assert detail["attachments"] == [
            {"filename": "f.pdf", "content_type": "application/pdf", "size": 13}
        ]
        code, headers, raw = call(f"{web.base}/_portsuite/api/mail/alice/{m['id']}/raw")
        assert code == 200 and raw == stored(web.maildir, "alice")[0]
        assert headers["Content-Type"].startswith("text/plain")
        code, headers, body = call(f"{web.base}/_portsuite/api/mail/alice/{m['id']}/html")
        assert code == 200 and b"<h1 id=title>Facture</h1>" in body
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "sandbox" in csp and "img-src data:" in csp
        # a test of an app can assert "the email was sent", then clean up
        assert api(web, "alice", "DELETE") == {"mailbox": "alice", "deleted": 1}
        assert api(web, "alice")["messages"] == []
        assert stored(web.maildir, "alice") == []
        assert tracker.hits == []  # nothing above ever reached the "remote" server
    finally:
        tracker.close()


def test_api_refuses_bad_names_and_ids(web: Any) -> None:
    for path in (
        "..",
        "../../etc",
        "alice/..%2F..%2Fpasswd",
        "alice/nope",
        "alice/x/y/z",
        ".hidden",
        "alice/%00",
    ):
        code, _h, body = call(f"{web.base}/_portsuite/api/mail/{path}")
        assert code == 404, (path, code)
        assert "error" in json.loads(body)
    code, _h, _b = call(f"{web.base}/_portsuite/api/mail/alice?limit=lots")
    assert code == 400
    code, _h, _b = call(f"{web.base}/_portsuite/api/mail/", "DELETE")
    assert code == 405


def test_version_moves_as_mail_arrives(web: Any) -> None:
    before = api(web)["version"]
    with smtplib.SMTP("127.0.0.1", web.port("smtp"), timeout=30) as c:
        c.sendmail("a@b.test", ["bob@lab.test"], b"Subject: live\r\n\r\nx\r\n")
    after = api(web)
    assert after["version"] > before
    assert [b["name"] for b in after["mailboxes"]] == ["bob"]


def test_page_is_served_with_a_strict_policy(web: Any) -> None:
    code, headers, body = call(f"{web.base}/_portsuite/mail/")
    assert code == 200 and b"<title>portsuite" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    code, headers, _ = call(f"{web.base}/_portsuite/mail/mail.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript")
    conn = http.client.HTTPConnection("127.0.0.1", web.port("web"), timeout=30)
    conn.request("GET", "/_portsuite/mail")
    r = conn.getresponse()
    assert r.status == 301 and r.getheader("Location") == "/_portsuite/mail/"
    conn.close()


def test_browser_shows_the_mail_and_the_html_body_loads_nothing(web: Any, tmp_path: Path) -> None:
    tracker = Tracker()
    try:
        html_mail(web.port("smtp"), "bob@lab.test", tracker.url)
        dom = chromium(
            f"{web.base}/_portsuite/mail/", tmp_path / "profile", "--dump-dom", budget=4000
        )
        assert "Votre facture" in dom and "Shop &lt;shop@dev.test&gt;" in dom
        assert "bob (1, 1 new)" in dom
        [m] = api(web, "bob")["messages"]
        # the HTML body itself, opened as a page: its image, style and script stay blocked
        dom = chromium(
            f"{web.base}/_portsuite/api/mail/bob/{m['id']}/html",
            tmp_path / "p2",
            "--dump-dom",
            budget=4000,
        )
        assert "Facture" in dom and "<title>pwned" not in dom  # the script never ran
        assert tracker.hits == []
    finally:
        tracker.close()


def test_unknown_mail_page_is_404(web: Any) -> None:
    code, _h, body = call(f"{web.base}/_portsuite/mail/nope.js")
    assert code == 404 and b"/_portsuite/mail/" in body


def test_the_dashboard_links_to_the_mail_page(portsuite: Any, tmp_path: Path) -> None:
    import urllib.request

    s = portsuite(
        {
            "services": {
                "smtp": {"type": "smtp", "port": 0, "domains": ["lab.test"]},
                "web": {"type": "http", "port": 0, "root": str(tmp_path)},
            }
        }
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{s.port('web')}/_portsuite/", timeout=30) as r:
        page = r.read().decode()
    assert '<a href="mail/">mail</a>' in page
