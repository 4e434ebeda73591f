"""
The course's exercise, replayed: speak SMTP by hand in telnet, then read the mail in
POP3, as README.md ("Mail") shows it, keystroke for keystroke.
"""

from __future__ import annotations

from typing import Any

import pexpect

from portsuite.testing import need

SMTP_TRANSCRIPT = [
    # (what the student types, what the server answers)
    (None, r"220 lab\.test ESMTP portsuite"),
    ("HELO poste1.lab.test", r"250 lab\.test Hello 127\.0\.0\.1"),
    ("MAIL FROM:<prof@lab.test>", r"250 2\.1\.0 sender OK"),
    ("RCPT TO:<alice@lab.test>", r"250 2\.1\.5 recipient OK"),
    ("DATA", r"354 end data with <CR><LF>\.<CR><LF>"),
    ("Subject: TP telnet", None),
    ("", None),
    ("Bonjour Alice, ceci est un message tape a la main.", None),
    (".", r"250 2\.0\.0 OK: queued as \S+"),
    ("QUIT", r"221 2\.0\.0 bye"),
]

POP3_TRANSCRIPT = [
    (None, r"\+OK portsuite POP3 server ready"),
    ("USER alice", r"\+OK send PASS"),
    ("PASS wonderland", r"\+OK alice's maildrop has 1 message \(\d+ octets\)"),
    ("LIST", r"\+OK 1 messages \(\d+ octets\)\r\n1 \d+\r\n\.\r\n"),
    (
        "RETR 1",
        r"\+OK \d+\r\nReturn-Path: <prof@lab\.test>\r\n(.|\r\n)*Subject: TP telnet\r\n\r\n"
        r"Bonjour Alice, ceci est un message tape a la main\.\r\n\.\r\n",
    ),
    ("QUIT", r"\+OK bye"),
]


def replay(port: int, transcript: list[tuple[str | None, str | None]]) -> str:
    telnet = need("telnet")
    child = pexpect.spawn(telnet, ["127.0.0.1", str(port)], timeout=30, encoding="utf-8")
    log: list[str] = []
    try:
        child.expect("Escape character is")
        for typed, answer in transcript:
            if typed is not None:
                child.send(typed + "\r")
            if answer is not None:
                child.expect(answer)
                log.append(child.before + child.after)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    return "".join(log)


def test_the_telnet_exercise_smtp_then_pop3(mail: Any) -> None:
    replay(mail.port("smtp"), SMTP_TRANSCRIPT)
    out = replay(mail.port("pop3"), POP3_TRANSCRIPT)
    assert "Bonjour Alice" in out
