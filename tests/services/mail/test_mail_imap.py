"""imap with imaplib, curl imap:// and raw lines: INBOX is the Maildir smtp fills."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import mail_config
from mailhelp import Raw, at_once, curl, echo_works, idle_close, on_clock, stored

from portsuite.testing import wait_for
from portsuite_services.mail.imap import IMAPFactory


def send(port: int, to: str, subject: str, body: str = "hello") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.sendmail(
            "prof@school.test",
            [to],
            f"From: Prof <prof@school.test>\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode(),
        )


def login(port: int, user: str = "alice", password: str = "wonderland") -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    m.login(user, password)
    return m


def test_imaplib_select_search_fetch_store_expunge(mail: Any) -> None:
    send(mail.port("smtp"), "alice@lab.test", "un", "premier message")
    send(mail.port("smtp"), "alice@lab.test", "deux", "second message")
    m = imaplib.IMAP4("127.0.0.1", mail.port("imap"), timeout=30)
    assert "IDLE" in m.capabilities
    assert m.login("alice", "wonderland")[0] == "OK"
    typ, boxes = m.list()
    assert typ == "OK" and b'"INBOX"' in boxes[0]
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    assert m.search(None, "ALL") == ("OK", [b"1 2"])
    assert m.search(None, "UNSEEN") == ("OK", [b"1 2"])
    assert m.search(None, '(SUBJECT "deux")') == ("OK", [b"2"])
    # PEEK leaves the message unseen
    typ, data = m.fetch("1", "(RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
    assert typ == "OK"
    assert b"Subject: un" in data[0][1] and b"From: Prof <prof@school.test>" in data[0][1]
    size = int(data[0][0].split(b"RFC822.SIZE ")[1].split()[0])
    assert b"\\Seen" not in data[0][0]
    # BODY[] gives the message as stored, CRLF, exactly RFC822.SIZE octets, and sets \Seen
    typ, data = m.fetch("1", "(BODY[])")
    raw = data[0][1]
    assert len(raw) == size
    assert raw == stored(mail.maildir, "alice")[0].replace(b"\n", b"\r\n")
    assert m.search(None, "SEEN") == ("OK", [b"1"])
    # the flag is in the Maildir file name, where mutt or Dovecot would look
    assert [p.name.split(":2,")[1] for p in (mail.maildir / "alice" / "cur").iterdir()] == ["S"]
    typ, data = m.fetch("2", "(ENVELOPE)")
    assert b'"deux"' in data[0] and b'(("Prof" NIL "prof" "school.test"))' in data[0]
    # UID FETCH, STORE, EXPUNGE
    typ, data = m.uid("FETCH", "1:*", "(FLAGS)")
    assert [d.split(b"UID ")[1].rstrip(b")") for d in data] == [b"1", b"2"]
    typ, data = m.store("1", "+FLAGS", "(\\Deleted \\Flagged)")
    assert b"\\Deleted" in data[0] and b"\\Flagged" in data[0]
    typ, data = m.expunge()
    assert data == [b"1"]
    m.close()
    m.logout()
    left = stored(mail.maildir, "alice")
    assert len(left) == 1 and b"Subject: deux" in left[0]


def test_idle_sees_new_mail_at_once(mail: Any) -> None:
    r = Raw(mail.port("imap"))
    assert r.line().startswith(b"* OK")
    r.send(b"a LOGIN alice wonderland\r\n")
    assert r.line() == b"a OK LOGIN completed"
    r.send(b"b SELECT INBOX\r\n")
    while not r.line().startswith(b"b OK"):
        pass
    r.send(b"c IDLE\r\n")
    assert r.line().startswith(b"+")
    send(mail.port("smtp"), "alice@lab.test", "pendant IDLE")
    assert r.line() == b"* 1 EXISTS"
    assert r.line() == b"* 1 RECENT"
    r.send(b"DONE\r\n")
    assert r.line() == b"c OK IDLE terminated"
    r.send(b"d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    assert r.line().startswith(b"* 1 FETCH")
    assert r.line() == b"Subject: pendant IDLE"


def test_append_and_its_size_limit(portsuite: Any, tmp_path: Path) -> None:
    cfg = mail_config(tmp_path)
    cfg["services"]["imap"]["max_message_size"] = 5000
    s = portsuite(cfg)
    m = login(s.port("imap"), "bob", "builder")
    typ, _ = m.append("INBOX", "(\\Seen)", None, b"Subject: brouillon\r\n\r\nsaved\r\n")
    assert typ == "OK"
    m.select("INBOX")
    assert m.search(None, "SEEN") == ("OK", [b"1"])
    with pytest.raises(imaplib.IMAP4.error, match="too big"):
        m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * 6000 + b"\r\n")
    assert m.noop()[0] == "OK"
    m.logout()
    assert len(stored(tmp_path / "mail", "bob")) == 1


def test_curl_imap_lists_and_fetches(mail: Any) -> None:
    send(mail.port("smtp"), "bob@lab.test", "via curl imap", "le corps")
    base = f"imap://bob:builder@127.0.0.1:{mail.port('imap')}"
    out = curl(base + "/")
    assert out.returncode == 0, out.stderr
    assert '"INBOX"' in out.stdout
    out = curl(base + "/INBOX;UID=1")
    assert out.returncode == 0, out.stderr
    assert "Subject: via curl imap" in out.stdout and "le corps" in out.stdout


def test_starttls_then_login(portsuite: Any, tmp_path: Path, certdir: Path) -> None:
    cfg = mail_config(tmp_path)
    cfg["services"]["imap"]["starttls"] = {
        "cert": str(certdir / "server.crt"),
        "key": str(certdir / "server.key"),
    }
    s = portsuite(cfg)
    m = imaplib.IMAP4("127.0.0.1", s.port("imap"), timeout=30)
    assert "STARTTLS" in m.capabilities
    m.starttls(ssl.create_default_context(cafile=str(certdir / "ca.crt")))
    assert "STARTTLS" not in m.capabilities
    assert m.login("alice", "wonderland")[0] == "OK"
    m.logout()


def test_wrong_password_is_no_after_a_delay_and_limited(mail: Any) -> None:
    port = mail.port("imap")

    def attempt() -> tuple[bytes, float]:
        r = Raw(port)
        r.line()
        t0 = time.monotonic()
        r.send(b"a LOGIN alice guess\r\n")
        answer = (r.line(), time.monotonic() - t0)
        r.close()
        return answer

    assert at_once(attempt) == [b"a NO [AUTHENTICATIONFAILED] wrong user name or password"] * 10
    r = Raw(port)
    r.line()
    r.send(b"a LOGIN alice wonderland\r\n")
    assert r.line().startswith(b"a NO [UNAVAILABLE] too many failed logins")
    assert r.line().startswith(b"* BYE")
    assert r.closed()
    assert echo_works(mail.port("echo"))


def test_bad_input_gets_bad_or_no_and_the_session_goes_on(mail: Any) -> None:
    r = Raw(mail.port("imap"))
    assert r.line().startswith(b"* OK")
    for junk, start in (
        (b"a SELECT INBOX", b"a BAD"),  # not logged in
        (b"\x00\xff\xfe", b"\x00\xff\xfe BAD"),
        (b"b FROBNICATE", b"b BAD"),
        (b"c", b"c BAD"),
        (b"d LOGIN", b"d BAD"),
        (b"e LOGIN {999999}", b"e BAD"),  # a literal over the 4 KiB string limit
    ):
        r.send(junk + b"\r\n")
        assert r.line().startswith(start), junk
    r.send(b"f LOGIN alice wonderland\r\n")
    assert r.line() == b"f OK LOGIN completed"
    for junk, start in (
        (b"g SELECT Nowhere", b"g NO"),
        (b"h CREATE Archive", b"h NO"),
        (b"i DELETE INBOX", b"i NO"),
        (b"j FETCH 1 (FLAGS)", b"j BAD"),  # nothing selected
    ):
        r.send(junk + b"\r\n")
        assert r.line().startswith(start), junk
    r.send(b"k SELECT INBOX\r\n")
    while not r.line().startswith(b"k OK"):
        pass
    for junk in (b"l FETCH 99 (FLAGS)", b"m FETCH 1:* (BODY[5])", b"n STORE x FLAGS (\\Seen)"):
        r.send(junk + b"\r\n")
        reply = r.line()
        assert reply.split()[1] in (b"OK", b"BAD", b"NO"), (junk, reply)
    r.send(b"o NOOP\r\n")
    assert r.line() == b"o OK NOOP No operation performed"
    # a line over 8 KiB: a BYE, the connection closed; other services keep going
    r.send(b"p NOOP " + b"x" * 20000 + b"\r\n")
    assert r.line().startswith(b"* BYE line too long")
    assert r.closed()
    assert echo_works(mail.port("echo"))
    assert login(mail.port("imap")).noop()[0] == "OK"


def test_idle_client_is_closed_after_the_rfc_30_minutes() -> None:
    assert idle_close(IMAPFactory, "imap", 1800).endswith(
        b"* BYE autologout; idle for too long\r\n"
    )


def test_pop3_deleting_under_an_imap_session_does_not_break_it(mail: Any) -> None:
    import poplib

    send(mail.port("smtp"), "alice@lab.test", "shared")
    m = login(mail.port("imap"))
    m.select("INBOX")
    p = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=30)
    p.user("alice")
    p.pass_("wonderland")
    p.dele(1)
    p.quit()
    assert wait_for(lambda: stored(mail.maildir, "alice") == [])
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK"  # an empty message, not an error or a dropped connection
    assert m.noop()[0] == "OK"
    m.logout()


def test_status_polling_holds_nothing(mail: Any) -> None:
    """STATUS opens INBOX without selecting it: nothing may stay attached to the mailbox."""
    send(mail.port("smtp"), "alice@lab.test", "one")
    m = login(mail.port("imap"))
    for _ in range(50):
        typ, data = m.status("INBOX", "(MESSAGES UNSEEN UIDNEXT)")
        assert typ == "OK" and b"MESSAGES 1" in data[0]
    m.logout()
    from portsuite_services.mail.store import store_for

    store = store_for(mail.maildir, None, None)
    assert store.boxes["alice"].listeners == []


def test_commands_piling_up_behind_a_fetch_stop_the_reading() -> None:
    proto, transport = on_clock(IMAPFactory, "imap")
    proto.blocked = []  # what a FETCH in progress does
    proto.dataReceived(b"a NOOP\r\n" * 150)
    assert transport.producerState == "paused"
    proto._unblock()  # the FETCH is done: the waiting commands run, reading resumes
    assert transport.producerState == "producing"
    assert transport.value().count(b"a OK NOOP") == 150
