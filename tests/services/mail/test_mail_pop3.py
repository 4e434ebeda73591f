"""pop3 with poplib, curl pop3:// and raw lines: the mail smtp stored, and every bad input."""

from __future__ import annotations

import poplib
import smtplib
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import mail_config
from mailhelp import Raw, at_once, curl, echo_works, idle_close, on_clock, stored
from twisted.internet.task import Clock

from portsuite.api import Account, Accounts
from portsuite.testing import wait_for
from portsuite_services.mail.pop3 import POP3Factory
from portsuite_services.mail.store import MailStore


def send(port: int, to: str, subject: str, body: str = "hello\n") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.sendmail(
            "prof@school.test",
            [to],
            f"From: prof@school.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}".replace(
                "\n", "\r\n"
            )
            .replace("\r\r", "\r")
            .encode(),
        )


def pop_line(r: Raw) -> bytes:
    return r.line()


def pop_cmd(r: Raw, text: bytes) -> bytes:
    r.send(text + b"\r\n")
    return r.line()


def test_poplib_reads_what_smtp_stored(mail: Any) -> None:
    send(mail.port("smtp"), "alice@lab.test", "premier", "ligne 1\n.\nligne 3\n")
    send(mail.port("smtp"), "alice@lab.test", "second")
    p = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=30)
    try:
        caps = p.capa()
        assert {"TOP", "USER", "UIDL", "PIPELINING"} <= set(caps)
        p.user("alice")
        assert p.pass_("wonderland").startswith(b"+OK")
        count, octets = p.stat()
        assert count == 2
        _resp, listing, _ = p.list()
        sizes = [int(x.split()[1]) for x in listing]
        assert sum(sizes) == octets
        _resp, lines, got = p.retr(1)
        assert b"Subject: premier" in lines
        # byte-stuffing undone by the client: the lone dot is back
        assert lines[-3:] == [b"ligne 1", b".", b"ligne 3"]
        # the size LIST announced is the size RETR sent (CRLF line ends)
        assert got == sizes[0]
        _resp, top, _ = p.top(2, 0)
        assert b"Subject: second" in top and b"hello" not in top
        _resp, uidls, _ = p.uidl()
        assert len({u.split()[1] for u in uidls}) == 2
        p.dele(1)
        with pytest.raises(poplib.error_proto):
            p.retr(1)  # deleted in this session
        assert p.stat()[0] == 1
        assert [x.split()[0] for x in p.list()[1]] == [b"2"]
        assert [x.split()[0] for x in p.uidl()[1]] == [b"2"]
    finally:
        p.quit()
    # DELE took effect at QUIT: one message left on disk
    left = stored(mail.maildir, "alice")
    assert len(left) == 1 and b"Subject: second" in left[0]


def test_rset_undoes_dele(mail: Any) -> None:
    send(mail.port("smtp"), "bob@lab.test", "keep me")
    p = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=30)
    p.user("bob")
    p.pass_("builder")
    p.dele(1)
    p.rset()
    p.quit()
    assert len(stored(mail.maildir, "bob")) == 1


def test_a_dropped_session_deletes_nothing(mail: Any) -> None:
    send(mail.port("smtp"), "bob@lab.test", "still here")
    r = Raw(mail.port("pop3"))
    assert r.line().startswith(b"+OK")
    assert pop_cmd(r, b"USER bob").startswith(b"+OK")
    assert pop_cmd(r, b"PASS builder").startswith(b"+OK")
    assert pop_cmd(r, b"DELE 1").startswith(b"+OK")
    r.close()  # no QUIT: no UPDATE state (RFC 1939 6)

    def stat() -> bytes:  # once the server has let the dropped session go
        again = Raw(mail.port("pop3"))
        again.line()
        pop_cmd(again, b"USER bob")
        answer = pop_cmd(again, b"PASS builder")
        if answer.startswith(b"+OK"):
            answer = pop_cmd(again, b"STAT")
        again.close()
        return answer if not answer.startswith(b"-ERR [IN-USE]") else b""

    answer = wait_for(stat)
    assert answer.startswith(b"+OK 1 "), answer  # DELE 1 was not carried out
    assert len(stored(mail.maildir, "bob")) == 1


def test_curl_pop3_lists_and_retrieves(mail: Any) -> None:
    send(mail.port("smtp"), "alice@lab.test", "via curl", "corps du message\n")
    base = f"pop3://alice:wonderland@127.0.0.1:{mail.port('pop3')}"
    listing = curl(base + "/")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split()[0] == "1"
    msg = curl(base + "/1")
    assert msg.returncode == 0, msg.stderr
    assert "Subject: via curl" in msg.stdout and "corps du message" in msg.stdout


def test_stls_then_login(portsuite: Any, tmp_path: Path, certdir: Path) -> None:
    cfg = mail_config(tmp_path)
    cfg["services"]["pop3"]["starttls"] = {
        "cert": str(certdir / "server.crt"),
        "key": str(certdir / "server.key"),
    }
    s = portsuite(cfg)
    send(s.port("smtp"), "alice@lab.test", "secret")
    p = poplib.POP3("127.0.0.1", s.port("pop3"), timeout=30)
    assert "STLS" in p.capa()
    p.stls(ssl.create_default_context(cafile=str(certdir / "ca.crt")))
    assert "STLS" not in p.capa()
    p.user("alice")
    p.pass_("wonderland")
    assert p.stat()[0] == 1
    p.quit()


def test_wrong_password_is_err_after_a_delay_and_limited(mail: Any) -> None:
    port = mail.port("pop3")

    def attempt() -> tuple[bytes, float]:
        r = Raw(port)
        r.line()
        pop_cmd(r, b"USER alice")
        t0 = time.monotonic()
        answer = (pop_cmd(r, b"PASS guess"), time.monotonic() - t0)
        r.close()
        return answer

    assert at_once(attempt) == [b"-ERR [AUTH] wrong user name or password"] * 10
    r = Raw(port)
    r.line()
    pop_cmd(r, b"USER alice")
    assert pop_cmd(r, b"PASS wonderland").startswith(b"-ERR [AUTH] too many failed logins")
    assert r.closed()
    assert echo_works(mail.port("echo"))


def test_bad_input_gets_err_and_the_session_goes_on(mail: Any) -> None:
    send(mail.port("smtp"), "alice@lab.test", "one")
    r = Raw(mail.port("pop3"))
    assert r.line().startswith(b"+OK")
    assert pop_cmd(r, b"STAT").startswith(b"-ERR log in first")
    assert pop_cmd(r, b"PASS x").startswith(b"-ERR USER first")
    assert pop_cmd(r, b"\x00\xff garbage").startswith(b"-ERR")
    assert pop_cmd(r, b"HELO there").startswith(b"-ERR")
    assert pop_cmd(r, b"").startswith(b"-ERR")
    assert pop_cmd(r, b"APOP alice 0123456789abcdef").startswith(b"-ERR APOP is not offered")
    assert pop_cmd(r, b"USER " + b"x" * 2000) == b"-ERR line too long (over 1000 octets)"
    assert pop_cmd(r, b"USER alice").startswith(b"+OK")
    assert pop_cmd(r, b"PASS wonderland").startswith(b"+OK")
    for bad in (
        b"RETR 0",
        b"RETR 2",
        b"RETR abc",
        b"RETR -1",
        b"DELE 9",
        b"DELE x",
        b"TOP 1 -3",
        b"LIST 5",
        b"RETR",
        b"DELE 1 2 3",
        b"USER bob",
    ):
        assert pop_cmd(r, bad).startswith(b"-ERR"), bad
    assert pop_cmd(r, b"NOOP").startswith(b"+OK")
    assert (
        pop_cmd(r, b"STAT")
        == b"+OK 1 " + str(len(stored(mail.maildir, "alice")[0].replace(b"\n", b"\r\n"))).encode()
    )
    assert pop_cmd(r, b"QUIT").startswith(b"+OK")
    assert echo_works(mail.port("echo"))


def test_second_session_of_a_user_is_in_use(mail: Any) -> None:
    first = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=30)
    first.user("alice")
    first.pass_("wonderland")
    second = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=30)
    second.user("alice")
    with pytest.raises(poplib.error_proto, match=r"IN-USE"):
        second.pass_("wonderland")
    first.quit()
    second.user("alice")
    assert second.pass_("wonderland").startswith(b"+OK")
    second.quit()


def test_pipelined_commands_are_answered_in_order(mail: Any) -> None:
    send(mail.port("smtp"), "bob@lab.test", "pipe", ("x" * 70 + "\n") * 3000)
    r = Raw(mail.port("pop3"))
    r.line()
    r.send(b"USER bob\r\nPASS builder\r\nRETR 1\r\nSTAT\r\nQUIT\r\n")
    assert r.line().startswith(b"+OK")
    assert r.line().startswith(b"+OK bob's maildrop has 1 message")
    assert r.line().startswith(b"+OK")
    while r.line() != b".":
        pass
    assert r.line().startswith(b"+OK 1 ")
    assert r.line().startswith(b"+OK")


def test_idle_client_is_closed_after_the_rfc_10_minutes() -> None:
    assert idle_close(POP3Factory, "pop3", 600).endswith(b"-ERR autologout: idle too long\r\n")


def test_commands_piling_up_behind_a_retr_stop_the_reading() -> None:
    """A client pipelining without reading: past 100 waiting commands it is not read."""
    store = MailStore(None, Clock())
    store.deliver(["alice"], b"Subject: x\n\n" + b"y" * 100000 + b"\n")
    proto, transport = on_clock(POP3Factory, "pop3", store)
    portal = proto.factory.portal
    portal.checkers.clear()
    portal.registerChecker(Accounts({"alice": Account("alice", "pw")}).checker())
    proto.dataReceived(b"USER alice\r\nPASS pw\r\nRETR 1\r\n")
    assert transport.producer is not None  # the message is being streamed
    proto.dataReceived(b"NOOP\r\n" * 150)
    assert transport.producerState == "paused"
    for _ in range(100):  # the client reads: the message goes out, the commands are answered
        if transport.producer is None:
            break
        transport.producer.resumeProducing()
    assert transport.producerState == "producing"
    assert transport.value().count(b"+OK \r\n") == 150  # NOOP: "+OK "
