"""Shared fixtures of the mail tests: a suite with smtp, pop3, imap, an echo and a web dashboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portsuite import certs

USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture(scope="session")
def certdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, server.crt, server.key as portsuite cert writes them."""
    folder = tmp_path_factory.mktemp("mailcerts")
    certs.make(folder)
    return folder


def mail_config(tmp: Path, **smtp: Any) -> dict[str, Any]:
    box = str(tmp / "mail")
    return {
        "users": dict(USERS),
        "services": {
            "smtp": {
                "type": "smtp",
                "port": 0,
                "domains": ["lab.test"],
                "mailboxes": box,
                **smtp,
            },
            "pop3": {"type": "pop3", "port": 0, "mailboxes": box},
            "imap": {"type": "imap", "port": 0, "mailboxes": box},
            "echo": {"type": "echo", "port": 0},
        },
    }


@pytest.fixture
def mail(portsuite: Callable[..., Any], tmp_path: Path) -> Any:
    """A started suite (smtp, pop3, imap, echo) whose Maildirs are in tmp_path/mail."""
    s = portsuite(mail_config(tmp_path))
    s.maildir = tmp_path / "mail"
    return s
