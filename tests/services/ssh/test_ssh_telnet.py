"""telnet: a login prompt, then the same lab shell as ssh, in clear."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pexpect
from sshhelp import shell_suite, ssh_shell

from portsuite.testing import need


def _telnet(port: int) -> pexpect.spawn:
    return pexpect.spawn(need("telnet"), ["127.0.0.1", str(port)], timeout=30, encoding="utf-8")


def _raw(port: int) -> socket.socket:
    """A raw client, as nc is: it answers no telnet option."""
    return socket.create_connection(("127.0.0.1", port), timeout=20)


def _read_until(c: socket.socket, got: bytes, done: Callable[[bytes], bool]) -> bytes:
    """C{got} and what C{c} receives next, until C{done} says it is all there."""
    while not done(got):
        chunk = c.recv(4096)
        assert chunk, f"closed first: {got!r}"
        got += chunk
    return got


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
    sh = ssh_shell(s.port("ssh"), "bob", "builder")
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
    s = shell_suite(portsuite, lab)
    with _raw(s.port("telnet")) as c:
        got = _read_until(c, b"", lambda got: b"login: " in got)
        c.sendall(b"alice\r\nwonderland\r\nhelp\r\n")
        got = _read_until(c, got, lambda got: b"whoami" in got)
    assert b"IN CLEAR" in got and b"\r\r" not in got
    assert b"Password: \r\nWelcome, alice." in got


def test_a_telnet_fed_by_a_pipe_never_shows_the_password(portsuite: Any, lab: Any) -> None:
    """
    printf 'alice\\r\\nwonderland\\r\\n' | telnet: the client turns each CR LF of the pipe
    into CR NUL CR LF (a CR, then an end of line). That is one Enter, not two: an empty
    password went first, and the real one, typed while it was checked, came back on screen.
    """
    import select
    import subprocess
    import time

    s = shell_suite(portsuite, lab)
    proc = subprocess.Popen(
        [need("telnet"), "127.0.0.1", str(s.port("telnet"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"alice\r\nwonderland\r\nwhoami\r\n")
    proc.stdin.flush()
    out = b""
    deadline = time.monotonic() + 30
    while out.count(b"alice@lab:/$ ") < 2 and time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 1)[0]:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            out += chunk
    proc.stdin.close()
    proc.wait(30)
    proc.stdout.close()
    assert b"Password: \r\nWelcome, alice." in out, out
    assert b"alice@lab:/$ whoami\r\nalice\r\n" in out, out
    assert b"wonderland" not in out and b"Login incorrect" not in out, out


def test_what_comes_while_a_password_is_checked_is_never_shown(portsuite: Any, lab: Any) -> None:
    """
    An empty password, then the real one and a command before "Login incorrect": what came
    during the check is neither echoed nor taken as the next login name or password.
    """
    s = shell_suite(portsuite, lab)
    with _raw(s.port("telnet")) as c:
        got = _read_until(c, b"", lambda got: b"login: " in got)
        c.sendall(b"alice\r\n\r\nwonderland\r\nwhoami\r\n")
        got = _read_until(c, got, lambda got: got.count(b"login: ") == 2)
        c.sendall(b"alice\r\n")
        got = _read_until(c, got, lambda got: b"Password: " in got.rsplit(b"login: ", 1)[1])
    assert b"Login incorrect\r\nlogin: alice\r\nPassword: " in got, got
    assert b"wonderland" not in got and b"whoami" not in got and b"Welcome" not in got, got


def test_a_client_that_refuses_echo_gets_nothing_echoed(portsuite: Any, lab: Any) -> None:
    """
    RFC 857: a client that refuses the server's ECHO echoes for itself. As a real telnetd
    then, the server draws nothing the client types (the login name neither), and the
    session goes on.
    """
    refuse = bytes([255, 252, 34, 255, 252, 31, 255, 252, 3, 255, 252, 24])  # WONT: LINEMODE…
    refuse += bytes([255, 254, 1])  # DONT ECHO
    s = shell_suite(portsuite, lab)
    with _raw(s.port("telnet")) as c:
        got = _read_until(c, b"", lambda got: b"login: " in got)
        c.sendall(refuse + b"alice\r\n")
        got = _read_until(c, got, lambda got: b"Password: " in got)
        c.sendall(b"wonderland\r\nwhoami\r\n")
        got = _read_until(c, got, lambda got: got.count(b"alice@lab:/$ ") == 2)
    typed = got.split(b"login: ", 1)[1]
    assert b"alice" not in typed.split(b"Welcome, alice.")[0], got
    assert b"wonderland" not in got and b"whoami" not in got, got
    assert b"alice@lab:/$ alice\r\nalice@lab:/$ " in got, got


def test_closed_telnet_sessions_are_freed_at_once(portsuite: Any, lab: Any) -> None:
    # Twisted's telnet and line-editing layers keep maps of their own bound methods: a
    # closed session (about 60 objects) was left in reference cycles for the collector
    import gc

    from portsuite.testing import call_in_reactor, wait_for

    s = shell_suite(portsuite, lab)
    n = 30
    call_in_reactor(gc.collect)
    peers = [_raw(s.port("telnet")) for _ in range(n)]
    for c in peers:
        _read_until(c, b"", lambda got: b"login: " in got)
    for c in peers:
        c.close()
    wait_for(lambda: s.service("telnet")["connections"]["open"] == 0)
    left = call_in_reactor(gc.collect)  # unreachable objects it found (60 a session)
    # (a few from elsewhere in the suite may be found too: 31 once, for 30 sessions)
    assert left < 3 * n, f"{left} objects of {n} closed telnet sessions left to the collector"
