"""smtp with real clients: swaks (plain, AUTH, STARTTLS, pipelining), smtplib, curl smtp://."""

from __future__ import annotations

import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from conftest import mail_config
from mailhelp import curl, stored

from portsuite.testing import need


def swaks(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    exe = need("swaks")
    return subprocess.run(
        [exe, "--server", f"127.0.0.1:{port}", "--timeout", "30", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_swaks_delivers_to_the_users_maildir(mail: Any) -> None:
    out = swaks(
        mail.port("smtp"),
        "--from",
        "prof@school.test",
        "--to",
        "alice@lab.test",
        "--header",
        "Subject: TP SMTP",
        "--body",
        "Bonjour Alice",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "250 2.0.0 OK: queued as" in out.stdout
    [msg] = stored(mail.maildir, "alice")
    assert b"Subject: TP SMTP" in msg
    assert b"Bonjour Alice" in msg
    assert msg.startswith(b"Return-Path: <prof@school.test>\nReceived: from ")
    # a Maildir: the file sits in new/, nothing is left in tmp/
    assert list((mail.maildir / "alice" / "tmp").iterdir()) == []
    assert len(list((mail.maildir / "alice" / "new").iterdir())) == 1
    assert stored(mail.maildir, "bob") == []


def test_swaks_pipelining(mail: Any) -> None:
    out = swaks(mail.port("smtp"), "--pipeline", "--to", "bob@lab.test", "--from", "a@b.test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "250 2.0.0 OK" in out.stdout
    assert len(stored(mail.maildir, "bob")) == 1


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_swaks_auth_on_loopback(mail: Any, mech: str) -> None:
    out = swaks(
        mail.port("smtp"),
        "--to",
        "bob@lab.test",
        "--from",
        "alice@lab.test",
        "--auth",
        mech,
        "--auth-user",
        "alice",
        "--auth-password",
        "wonderland",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 2.7.0" in out.stdout
    [msg] = stored(mail.maildir, "bob")
    assert b"authenticated as alice" in msg


def test_swaks_wrong_password_gets_535(mail: Any) -> None:
    out = swaks(
        mail.port("smtp"),
        "--to",
        "bob@lab.test",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "not-it",
    )
    assert out.returncode != 0
    assert "535 5.7.8" in out.stdout
    assert stored(mail.maildir, "bob") == []


def test_swaks_starttls_then_auth(portsuite: Any, tmp_path: Path, certdir: Path) -> None:
    s = portsuite(
        mail_config(
            tmp_path,
            starttls={"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key")},
        )
    )
    out = swaks(
        s.port("smtp"),
        "--tls",
        "--tls-ca-path",
        str(certdir / "ca.crt"),
        "--tls-verify",
        "--to",
        "alice@lab.test",
        "--from",
        "bob@lab.test",
        "--auth",
        "PLAIN",
        "--auth-user",
        "bob",
        "--auth-password",
        "builder",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "220 2.0.0 ready to start TLS" in out.stdout
    assert "TLS started" in out.stdout
    assert "235 2.7.0" in out.stdout
    [msg] = stored(tmp_path / "mail", "alice")
    assert b"authenticated as bob" in msg


def test_smtplib_send_message_and_multiple_recipients(mail: Any) -> None:
    msg = EmailMessage()
    msg["From"] = "app@dev.test"
    msg["To"] = "alice@lab.test, bob@lab.test"
    msg["Subject"] = "Votre commande"
    msg.set_content("Merci pour votre commande n° 42.\n.\n..deux points\n")
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=30) as c:
        c.ehlo("client.test")
        assert c.has_extn("size") and c.has_extn("8bitmime") and c.has_extn("pipelining")
        refused = c.send_message(msg)
    assert refused == {}
    for user in ("alice", "bob"):
        [got] = stored(mail.maildir, user)
        assert b"Subject: Votre commande" in got
        body = got.split(b"\n\n", 1)[1]
        # dot-stuffing undone: the lines arrive as they were written
        assert b"\n.\n..deux points\n" in body


def test_smtplib_message_is_on_disk_when_250_arrives(mail: Any) -> None:
    with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=30) as c:
        c.ehlo("client.test")
        c.mail("a@b.test")
        c.rcpt("alice@lab.test")
        code, text = c.data(b"Subject: sync\r\n\r\nbody\r\n")
        assert code == 250
        # no waiting: the 250 came after the rename into new/
        [msg] = stored(mail.maildir, "alice")
        assert b"Subject: sync" in msg


def test_curl_smtp_upload(mail: Any, tmp_path: Path) -> None:
    mailfile = tmp_path / "mail.txt"
    mailfile.write_bytes(b"From: curl@dev.test\r\nSubject: from curl\r\n\r\nhello from curl\r\n")
    out = curl(
        f"smtp://127.0.0.1:{mail.port('smtp')}/client.test",
        *("--mail-from", "curl@dev.test", "--mail-rcpt", "bob@lab.test"),
        *("--upload-file", str(mailfile)),
    )
    assert out.returncode == 0, out.stderr
    [msg] = stored(mail.maildir, "bob")
    assert b"hello from curl" in msg


def test_curl_smtp_relay_is_refused(mail: Any, tmp_path: Path) -> None:
    mailfile = tmp_path / "mail.txt"
    mailfile.write_bytes(b"Subject: spam\r\n\r\nx\r\n")
    out = curl(
        f"smtp://127.0.0.1:{mail.port('smtp')}/client.test",
        *("-v", "--mail-from", "a@b.test", "--mail-rcpt", "victim@example.com"),
        *("--upload-file", str(mailfile)),
    )
    assert out.returncode != 0
    assert "550 5.7.1 relaying denied" in out.stderr


def test_smtputf8_addresses_with_smtplib(portsuite: Any, tmp_path: Path) -> None:
    s = portsuite(mail_config(tmp_path, catch_all="autres"))
    msg = "From: Élève <élève@école.test>\r\nSubject: accentué\r\n\r\nBonjour\r\n".encode()
    with smtplib.SMTP("127.0.0.1", s.port("smtp"), timeout=30) as c:
        c.ehlo("client.test")
        assert c.has_extn("smtputf8")
        refused = c.sendmail(
            "élève@école.test", ["alice@lab.test", "josé@lab.test"], msg, mail_options=["SMTPUTF8"]
        )
        assert refused == {}
        # a UTF-8 recipient in another domain is still no relay
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            c.sendmail("élève@école.test", ["zoë@ailleurs.test"], msg, mail_options=["SMTPUTF8"])
        assert info.value.recipients["zoë@ailleurs.test"] == (550, b"5.7.1 relaying denied")
    [got] = stored(tmp_path / "mail", "alice")
    assert got.startswith("Return-Path: <élève@école.test>\n".encode())
    assert "Subject: accentué".encode() in got
    assert len(stored(tmp_path / "mail", "autres")) == 1  # josé: no account, the catch-all


def test_a_utf8_address_without_smtputf8_is_553(mail: Any) -> None:
    from mailhelp import smtp_session

    r = smtp_session(mail.port("smtp"))
    assert r.cmd("MAIL FROM:<élève@école.test>".encode()).startswith(b"553 5.6.7")
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert r.cmd("RCPT TO:<josé@lab.test>".encode()).startswith(b"553 5.6.7")
    assert r.cmd("MAIL FROM:<\xff\xfe@x> SMTPUTF8".encode("latin-1")).startswith(b"503")
    assert r.cmd(b"RSET").startswith(b"250")
    assert r.cmd(b"MAIL FROM:<\xff\xfe@x.test> SMTPUTF8").startswith(b"501")
