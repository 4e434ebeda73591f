"""smtp against bad input: every mistake gets a reply, nothing half-stored, others still served."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from typing import Any

from conftest import mail_config
from mailhelp import Raw, at_once, echo_works, on_clock, smtp_session, start_data, stored

from portsuite_services.mail.smtp import SMTPFactory


def test_data_before_rcpt_is_503(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    assert r.cmd(b"DATA").startswith(b"503 5.5.1")
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert r.cmd(b"DATA").startswith(b"503 5.5.1")
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"


def test_relay_and_unknown_users_are_refused(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert r.cmd(b"RCPT TO:<someone@example.com>") == b"550 5.7.1 relaying denied"
    assert r.cmd(b"RCPT TO:<alice@lab.test.example.com>") == b"550 5.7.1 relaying denied"
    assert r.cmd(b"RCPT TO:<nobody@lab.test>") == b"550 5.1.1 no such user here"
    assert r.cmd(b"RCPT TO:<ALICE@LAB.TEST>").startswith(b"250")
    # VRFY never tells which accounts exist
    assert r.cmd(b"VRFY alice").startswith(b"252")
    assert r.cmd(b"VRFY nobody").startswith(b"252")


def test_relay_is_refused_even_when_authenticated(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    token = base64.b64encode(b"\0alice\0wonderland")
    assert r.cmd(b"AUTH PLAIN " + token).startswith(b"235")
    assert r.cmd(b"MAIL FROM:<alice@lab.test>").startswith(b"250")
    assert r.cmd(b"RCPT TO:<someone@example.com>") == b"550 5.7.1 relaying denied"


def test_catch_all_takes_unknown_local_users(portsuite: Any, tmp_path: Path) -> None:
    s = portsuite(mail_config(tmp_path, catch_all="catchall"))
    r = smtp_session(s.port("smtp"))
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert r.cmd(b"RCPT TO:<whoever@lab.test>").startswith(b"250")
    assert r.cmd(b"RCPT TO:<x@elsewhere.test>") == b"550 5.7.1 relaying denied"
    assert r.cmd(b"DATA").startswith(b"354")
    assert r.cmd(b"Subject: hi\r\n\r\nfor anyone\r\n.").startswith(b"250 2.0.0")
    [msg] = stored(tmp_path / "mail", "catchall")
    assert b"for anyone" in msg


def test_a_line_over_1000_octets_is_500_and_dropped(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    # a command line: 500, the line is dropped, the session goes on
    assert r.cmd(b"NOOP " + b"x" * 1200) == b"500 5.5.2 line too long (over 1000 octets)"
    # a long line sent in pieces with no newline yet: one 500, nothing buffered
    r.send(b"MAIL FROM:<" + b"y" * 5000)
    r.send(b"y" * 5000 + b">\r\n")
    assert r.reply() == b"500 5.5.2 line too long (over 1000 octets)"
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"
    # exactly 1000 octets with CRLF is fine
    assert r.cmd(b"NOOP " + b"z" * (998 - 5)) == b"250 2.0.0 OK"
    # in DATA: the message is refused (never stored cut), the session goes on
    start_data(r)
    r.send(b"Subject: long\r\n\r\n" + b"w" * 3000 + b"\r\nshort\r\n")
    assert r.cmd(b".").startswith(b"500 5.5.2 line too long")
    assert stored(mail.maildir, "alice") == []
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"


def test_a_message_over_the_size_limit_is_552_and_not_stored(
    portsuite: Any, tmp_path: Path
) -> None:
    s = portsuite(mail_config(tmp_path, max_message_size=10000))
    r = smtp_session(s.port("smtp"))
    # announced with SIZE= : refused at once
    assert r.cmd(b"MAIL FROM:<a@b.test> SIZE=20000").startswith(b"552 5.3.4")
    assert r.cmd(b"MAIL FROM:<a@b.test> SIZE=900").startswith(b"250")
    assert r.cmd(b"RCPT TO:<alice@lab.test>").startswith(b"250")
    assert r.cmd(b"DATA").startswith(b"354")
    line = b"a" * 70 + b"\r\n"
    for _ in range(300):  # 21,600 octets, more than announced and than allowed
        r.send(line)
    assert r.cmd(b".").startswith(b"552 5.3.4")
    assert stored(tmp_path / "mail", "alice") == []
    assert not list((tmp_path / "mail").glob("*/tmp/*"))
    # the session is still usable: a small message goes through
    start_data(r)
    assert r.cmd(b"Subject: small\r\n\r\nok\r\n.").startswith(b"250")
    assert len(stored(tmp_path / "mail", "alice")) == 1


def test_101_recipients_with_max_100_gets_452_for_the_extra(portsuite: Any, tmp_path: Path) -> None:
    s = portsuite(mail_config(tmp_path, max_recipients=100, catch_all="all"))
    r = smtp_session(s.port("smtp"))
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    # pipelined, as a bulk sender would
    r.send(b"".join(b"RCPT TO:<u%d@lab.test>\r\n" % i for i in range(101)))
    replies = [r.reply() for _ in range(101)]
    assert all(x.startswith(b"250") for x in replies[:100])
    assert replies[100] == b"452 4.5.3 too many recipients"
    assert r.cmd(b"DATA").startswith(b"354")
    assert r.cmd(b"Subject: many\r\n\r\nx\r\n.").startswith(b"250")
    # one copy for the catch-all mailbox, not 100
    assert len(stored(tmp_path / "mail", "all")) == 1


def test_garbage_commands_get_500_and_the_session_goes_on(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    for junk in (
        b"HELLO",
        b"\x00\x01\x02\xff\xfe",
        "MAÏL FROM:<a@b>".encode(),
        b"GET / HTTP/1.1",
        b"  ",
        b"MAIL",
    ):
        reply = r.cmd(junk)
        assert reply[:1] == b"5", (junk, reply)
    assert r.cmd(b"MAIL FROM:<a@b.test> BOGUS=1").startswith(b"555")
    assert r.cmd(b"MAIL FROM:<not an address>").startswith(b"501")
    assert r.cmd(b"AUTH PLAIN !!!notbase64").startswith(b"501")
    assert r.cmd(b"AUTH PLAIN " + base64.b64encode(b"no-nuls")).startswith(b"501")
    assert r.cmd(b"AUTH CRAM-MD5").startswith(b"504")
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"
    assert echo_works(mail.port("echo"))


def test_dot_stuffed_line_arrives_as_a_dot(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    start_data(r)
    r.send(b"Subject: dots\r\n\r\n..\r\n...\r\n..leading\r\n")
    assert r.cmd(b".").startswith(b"250")
    [msg] = stored(mail.maildir, "alice")
    assert msg.endswith(b"\n\n.\n..\n.leading\n")


def test_bare_lf_is_a_line_end_but_never_ends_the_data(mail: Any) -> None:
    """As Postfix (smtpd_forbid_bare_newline = normalize): LF.LF does not end DATA."""
    r = smtp_session(mail.port("smtp"))
    start_data(r)
    # a smuggling attempt: a bare-LF dot, then a second envelope
    r.send(b"Subject: lf\nline one\nline two\r\n\n.\nMAIL FROM:<evil@x.test>\r\n")
    assert r.cmd(b".").startswith(b"250")
    [msg] = stored(mail.maildir, "alice")
    assert msg.endswith(b"Subject: lf\nline one\nline two\n\n.\nMAIL FROM:<evil@x.test>\n")
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"


def test_starttls_drops_commands_pipelined_in_plain_text(
    portsuite: Any, tmp_path: Path, certdir: Path
) -> None:
    import ssl

    s = portsuite(
        mail_config(
            tmp_path,
            starttls={"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key")},
        )
    )
    r = smtp_session(s.port("smtp"))
    # the injected command must not be answered once TLS is up (CVE-2011-0411)
    r.send(b"STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n")
    assert r.reply().startswith(b"220 2.0.0")
    ctx = ssl.create_default_context(cafile=str(certdir / "ca.crt"))
    tls = ctx.wrap_socket(r.sock, server_hostname="localhost")
    tls.settimeout(20)
    tls.sendall(b"EHLO again.test\r\n")
    got = b""
    while not got.endswith(b"\r\n") or b"250 " not in got:
        got += tls.recv(4096)
    assert got.startswith(b"250-")
    assert b"STARTTLS" not in got and b"AUTH PLAIN LOGIN" in got
    tls.sendall(b"MAIL FROM:<a@b.test>\r\n")
    assert tls.recv(4096).startswith(b"250")  # no "nested MAIL" from the injected one


def test_auth_is_not_offered_in_plain_text_off_loopback(mail: Any) -> None:
    proto, transport = on_clock(SMTPFactory, "smtp", domains=["lab.test"], peer="192.0.2.7")
    proto.dataReceived(b"EHLO far.test\r\nAUTH PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=\r\n")
    out = transport.value()
    assert b"AUTH" not in out.split(b"\r\n538")[0].split(b"250-", 1)[1]
    assert b"538 5.7.11 encryption required" in out


def test_idle_client_gets_421_after_the_rfc_5_minutes() -> None:
    proto, transport = on_clock(SMTPFactory, "smtp", domains=["lab.test"])
    clock = proto.factory.reactor
    clock.advance(299)
    assert not transport.disconnecting
    proto.dataReceived(b"NOOP\r\n")
    clock.advance(299)
    assert not transport.disconnecting
    clock.advance(2)
    assert transport.disconnecting
    assert transport.value().endswith(b"421 4.4.2 lab.test idle too long; closing\r\n")


def test_wrong_passwords_are_slow_and_limited_per_host(mail: Any) -> None:
    port = mail.port("smtp")
    bad = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0guess")

    def attempt() -> tuple[bytes, float]:
        r = smtp_session(port)
        t0 = time.monotonic()
        answer = (r.cmd(bad), time.monotonic() - t0)
        r.close()
        return answer

    assert at_once(attempt) == [b"535 5.7.8 authentication credentials invalid"] * 10
    # the 11th try from this host: refused, even with the right password
    r = smtp_session(port)
    good = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0wonderland")
    assert r.cmd(good).startswith(b"421 4.7.0 too many failed logins")
    assert r.closed()
    # mail without AUTH and the other services still work
    r = smtp_session(port)
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert echo_works(mail.port("echo"))


def test_a_client_that_vanishes_mid_data_leaves_nothing(mail: Any) -> None:
    r = smtp_session(mail.port("smtp"))
    start_data(r)
    r.send(b"Subject: cut\r\n\r\n" + b"half a message\r\n" * 100)
    r.sock.shutdown(socket.SHUT_RDWR)
    r.close()
    # another client is served, and the cut message was never stored
    r2 = smtp_session(mail.port("smtp"))
    assert r2.cmd(b"NOOP") == b"250 2.0.0 OK"
    assert stored(mail.maildir, "alice") == []
    assert echo_works(mail.port("echo"))


def test_raw_bytes_flood_without_newline_is_bounded(mail: Any) -> None:
    r = Raw(mail.port("smtp"))
    assert r.reply().startswith(b"220")
    for _ in range(64):
        r.send(b"A" * 65536)  # 4 MiB, no newline: answered once, never buffered
    r.send(b"\r\n")
    assert r.reply() == b"500 5.5.2 line too long (over 1000 octets)"
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"


def _flood_without_reading(port: int, line: bytes, seconds: float = 4.0) -> int:
    """Send LINE over and over for SECONDS without ever reading; return the bytes sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.setblocking(False)
    chunk = line * (65536 // len(line))
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and sent < 64 * 1024 * 1024:
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    s.close()
    return sent


def test_when_replies_pile_up_the_client_is_not_read() -> None:
    """The transport says its write buffer is full: smtp stops reading until it drains."""
    proto, transport = on_clock(SMTPFactory, "smtp", domains=["lab.test"])
    assert transport.streaming and transport.producer is not None
    greeting = transport.value()
    transport.producer.pauseProducing()  # what a full write buffer does
    proto.dataReceived(b"NOOP\r\n")
    assert transport.value() == greeting  # held: no more replies while it does not read
    proto.dataReceived(b"NOOP\r\n" * 12000)  # 72 KB waiting: stop reading the client
    assert transport.producerState == "paused"
    transport.producer.resumeProducing()  # it read: the commands are answered, in order
    assert transport.producerState == "producing"
    assert transport.value()[len(greeting) :] == b"250 2.0.0 OK\r\n" * 12001


def test_a_client_that_never_reads_does_not_stop_the_others(mail: Any) -> None:
    _flood_without_reading(mail.port("smtp"), b"NOOP\r\n", seconds=2.0)
    r = smtp_session(mail.port("smtp"))
    assert r.cmd(b"NOOP") == b"250 2.0.0 OK"
    assert echo_works(mail.port("echo"))
