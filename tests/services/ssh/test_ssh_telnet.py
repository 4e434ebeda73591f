"""telnet: a login prompt, then the same lab shell as ssh, in clear."""

from __future__ import annotations

from typing import Any

import pexpect
from sshhelp import SSH_OPTS, shell_suite

from portsuite.testing import need


def _telnet(port: int) -> pexpect.spawn:
    return pexpect.spawn(need("telnet"), ["127.0.0.1", str(port)], timeout=30, encoding="utf-8")


def _ssh_shell(port: int) -> pexpect.spawn:
    return pexpect.spawn(
        need("sshpass"),
        ["-p", "builder", need("ssh"), *SSH_OPTS, "-tt", "-p", str(port), "bob@127.0.0.1"],
        timeout=30,
        encoding="utf-8",
    )


def test_the_telnet_exercise_logs_in_and_meets_the_ssh_user(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab)
    tn = _telnet(s.port("telnet"))
    tn.expect("IN CLEAR")
    tn.expect("login: ")
    tn.send("alice\r")
    tn.expect("Password: ")
    tn.send("wonderland\r")
    tn.expect(r"alice@lab:/\$ ")
    assert "wonderland" not in tn.before  # the server did not echo it
    sh = _ssh_shell(s.port("ssh"))
    sh.expect(r"bob@lab:/\$ ")
    tn.send("who\r")
    tn.expect(r"alice\s+telnet\s+127\.0\.0\.1:\d+.*\(you\)")
    tn.expect(r"bob\s+ssh\s+127\.0\.0\.1:\d+")
    tn.send("say le cours commence\r")
    tn.expect("said to 1 other")
    sh.expect(r"\[alice via telnet\] le cours commence")
    sh.send("cat hello.txt\r")
    sh.expect("bonjour le monde")
    sh.send("\x04")  # Ctrl-D on an empty line: logout
    sh.expect("logout")
    sh.expect(pexpect.EOF)
    tn.send("exit\r")
    tn.expect("logout")
    tn.expect(pexpect.EOF)


def test_wrong_passwords_are_told_slowly_and_three_close(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab)
    tn = _telnet(s.port("telnet"))
    for attempt in range(3):
        tn.expect("login: ")
        tn.send("alice\r")
        tn.expect("Password: ")
        tn.send(f"guess{attempt}\r")
        tn.expect("Login incorrect")
    tn.expect("Too many failures")
    tn.expect(pexpect.EOF)


def test_a_login_that_never_comes_is_dropped(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab, telnet={"login_grace": 1})
    tn = _telnet(s.port("telnet"))
    tn.expect("login: ")
    tn.expect("Login timed out")
    tn.expect(pexpect.EOF)


def test_the_transcripts_show_the_password_over_telnet_and_not_over_ssh(
    portsuite: Any, lab: Any
) -> None:
    s = shell_suite(portsuite, lab, ssh={"trace": True}, telnet={"trace": True})
    tn = _telnet(s.port("telnet"))
    tn.expect("login: ")
    tn.send("alice\r")
    tn.expect("Password: ")
    tn.send("wonderland\r")
    tn.expect(r"alice@lab:/\$ ")
    tn.send("exit\r")
    tn.expect(pexpect.EOF)
    from sshhelp import ssh

    assert ssh(s.port("ssh"), "whoami").stdout == "alice\n"

    def said(service: str) -> tuple[str, str]:
        """What the client sent, as the transcript shows it: the text, and the hex."""
        from portsuite.testing import call_in_reactor

        sessions = call_in_reactor(lambda: list(s.suite.stats[service].transcripts))
        assert sessions, f"no transcript for {service}"
        lines = [x for sess in sessions for x in sess["lines"] if x["dir"] == "c2s"]
        text = "".join(x["text"] for x in lines)
        return text, text.replace(" ", "").lower()

    text, _ = said("telnet")
    assert "wonderland" in text  # every keystroke crossed in clear
    text, hexed = said("ssh")
    assert text.startswith("SSH-2.0-")  # the banners are clear text
    assert "wonderland" not in text and b"wonderland".hex() not in hexed  # the rest: ciphertext


def test_telnet_lines_end_with_one_crlf(portsuite: Any, lab: Any) -> None:
    """
    A line the lab shell writes reaches a telnet client ending in one CR LF (RFC 854's
    end of line): Twisted's telnet layers each turn LF into CR LF, which a raw client
    (nc, a transcript) saw as "\\r\\r\\r\\r\\n".
    """
    import socket

    s = shell_suite(portsuite, lab)
    got = b""
    with socket.create_connection(("127.0.0.1", s.port("telnet")), timeout=20) as c:
        while b"login: " not in got:
            got += c.recv(4096)
        c.sendall(b"alice\r\nwonderland\r\nhelp\r\n")
        while b"whoami" not in got:
            got += c.recv(4096)
    assert b"IN CLEAR" in got and b"\r\r" not in got
    assert b"Password: \r\nWelcome, alice." in got
