"""Mail configs: one-line errors, memory-only mailboxes, implicit TLS (465/995/993 style)."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import ssl
from pathlib import Path
from typing import Any

import pytest

from portsuite import loader
from portsuite.api import ConfigError


def errors_of(services: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader.from_dict(
            {"users": {"alice": "wonderland"}, "services": services},
            base_dir=tmp_path,
            label="lab.toml",
        )
    return info.value.errors


def test_bad_mail_configs_get_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    errs = errors_of(
        {
            "a": {"type": "smtp", "port": 2525, "domains": []},
            "b": {"type": "smtp", "port": 2526, "domains": ["not a domain"]},
            "c": {"type": "smtp", "port": 2527, "mailboxes": "afile"},
            "d": {"type": "smtp", "port": 2528, "starttls": {"cert": "missing.crt"}},
            "e": {"type": "pop3", "port": 1110, "starttls": "server.crt"},
            "f": {"type": "smtp", "port": 2529, "catch_all": "../etc"},
            "g": {"type": "smtp", "port": 2530, "max_recipients": 0},
        },
        tmp_path,
    )
    # option errors come first, then each type's own checks (files, the TLS pair)
    assert sorted(errs) == [
        'lab.toml: [services.a] domains: needs at least one domain, e.g. domains = ["lab.test"]',
        "lab.toml: [services.b] domains: 'not a domain' is not a domain name; write it like \"lab.test\"",
        f"lab.toml: [services.c] mailboxes: {tmp_path / 'afile'} is a file; name a folder (it holds one Maildir per user)",
        f"lab.toml: [services.d] starttls.cert: {tmp_path / 'missing.crt'} does not exist; make one with portsuite cert",
        'lab.toml: [services.d] starttls: needs key, e.g. starttls = { cert = "server.crt", key = "server.key" } (portsuite cert makes a pair)',
        'lab.toml: [services.e] starttls: \'server.crt\' is not a table (offer STARTTLS on this plain listener: { cert = "server.crt", key = "server.key" })',
        "lab.toml: [services.f] catch_all: must be a mailbox name: letters, digits, '_', '.', '-' (not starting with '.' or '-')",
        "lab.toml: [services.g] max_recipients: must be 1 or more",
    ]


def test_without_mailboxes_smtp_and_pop3_share_memory(portsuite: Any) -> None:
    s = portsuite(
        {
            "users": {"alice": "wonderland"},
            "services": {
                "smtp": {"type": "smtp", "port": 0, "domains": ["lab.test"]},
                "pop3": {"type": "pop3", "port": 0},
            },
        }
    )
    with smtplib.SMTP("127.0.0.1", s.port("smtp"), timeout=30) as c:
        c.sendmail("a@b.test", ["alice@lab.test"], b"Subject: in memory\r\n\r\nx\r\n")
    p = poplib.POP3("127.0.0.1", s.port("pop3"), timeout=30)
    p.user("alice")
    p.pass_("wonderland")
    assert b"Subject: in memory" in p.retr(1)[1]
    p.dele(1)
    p.quit()
    p = poplib.POP3("127.0.0.1", s.port("pop3"), timeout=30)
    p.user("alice")
    p.pass_("wonderland")
    assert p.stat()[0] == 0
    p.quit()


def test_implicit_tls_on_all_three(portsuite: Any, tmp_path: Path, certdir: Path) -> None:
    tls = {"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key")}
    box = str(tmp_path / "mail")
    s = portsuite(
        {
            "users": {"alice": "wonderland"},
            "services": {
                "smtps": {
                    "type": "smtp",
                    "port": 0,
                    "domains": ["lab.test"],
                    "mailboxes": box,
                    "tls": tls,
                },
                "pop3s": {"type": "pop3", "port": 0, "mailboxes": box, "tls": tls},
                "imaps": {"type": "imap", "port": 0, "mailboxes": box, "tls": tls},
            },
        }
    )
    ctx = ssl.create_default_context(cafile=str(certdir / "ca.crt"))
    with smtplib.SMTP_SSL("localhost", s.port("smtps"), context=ctx, timeout=30) as c:
        c.ehlo("client.test")
        assert "auth" in c.esmtp_features and "starttls" not in c.esmtp_features
        c.login("alice", "wonderland")
        c.sendmail("alice@lab.test", ["alice@lab.test"], b"Subject: over TLS\r\n\r\nx\r\n")
    p = poplib.POP3_SSL("localhost", s.port("pop3s"), context=ctx, timeout=30)
    p.user("alice")
    p.pass_("wonderland")
    assert p.stat()[0] == 1
    p.quit()
    m = imaplib.IMAP4_SSL("localhost", s.port("imaps"), ssl_context=ctx, timeout=30)
    m.login("alice", "wonderland")
    assert m.select("INBOX") == ("OK", [b"1"])
    m.logout()
