"""Helpers of the mail tests: raw SMTP lines, reading the Maildirs, a still-alive check,
the idle timers on a Clock."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite.api import Accounts
from portsuite.testing import need
from portsuite_services.mail.store import MailStore


def stored(maildir: Path, user: str) -> list[bytes]:
    """Every message in USER's Maildir (new/ and cur/), oldest first."""
    files: list[Path] = []
    for sub in ("new", "cur"):
        folder = maildir / user / sub
        if folder.is_dir():
            files.extend(folder.iterdir())
    return [p.read_bytes() for p in sorted(files, key=lambda p: p.stat().st_mtime)]


class Raw:
    """A plain socket speaking SMTP/POP3 lines, as telnet would."""

    def __init__(self, port: int, timeout: float = 20.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self) -> bytes:
        """One SMTP reply (the last line of a multi-line one)."""
        while True:
            line = self.line()
            if line[3:4] != b"-":
                return line

    def cmd(self, text: bytes) -> bytes:
        self.send(text + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def echo_works(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"still here\r\n")
        got = b""
        while len(got) < 12:
            chunk = s.recv(100)
            if not chunk:
                break
            got += chunk
        return got == b"still here\r\n"


def smtp_session(port: int) -> Raw:
    r = Raw(port)
    assert r.reply().startswith(b"220 ")
    assert r.cmd(b"EHLO client.test").startswith(b"250 ")
    return r


def start_data(r: Raw) -> None:
    """A message from a@b.test to alice@lab.test, up to DATA's 354: the content may follow."""
    assert r.cmd(b"MAIL FROM:<a@b.test>").startswith(b"250")
    assert r.cmd(b"RCPT TO:<alice@lab.test>").startswith(b"250")
    assert r.cmd(b"DATA").startswith(b"354")


def curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """curl on C{url} (pop3://, imap://, smtp://…), at most 30 s; checked by the caller."""
    return subprocess.run(
        [need("curl"), "-sS", "--max-time", "30", *args, url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def at_once(attempt: Callable[[], tuple[bytes, float]], clients: int = 10) -> list[bytes]:
    """
    C{attempt} (one client's wrong password: the answer, and how long it took) from
    C{clients} connections at once; the answers, once each came only after the
    one-second delay: a wrong guess is slow even when many are tried together.
    """
    answers: list[tuple[bytes, float]] = []
    threads = [threading.Thread(target=lambda: answers.append(attempt())) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == clients
    assert all(took >= 0.9 for _, took in answers), answers
    return [answer for answer, _ in answers]


def on_clock(
    factory_class: Any,
    name: str,
    store: MailStore | None = None,
    *,
    accounts: Accounts | None = None,
    peer: str = "127.0.0.1",
    **options: Any,
) -> tuple[Any, Any]:
    """
    A C{factory_class} (SMTP/POP3/IMAP; C{options}: its other arguments, such as smtp's
    C{domains}) server on a Clock with one client, from C{peer}, connected through a
    StringTransport: C{(protocol, transport)}; the clock is C{protocol.factory.reactor}.
    """
    clock = Clock()
    factory = factory_class(
        name=name,
        store=store or MailStore(None, clock),
        accounts=accounts or Accounts(),
        reactor=clock,
        **options,
    )
    proto = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 4000))
    proto.makeConnection(transport)
    return proto, transport


def idle_close(factory_class: Any, name: str, seconds: int) -> bytes:
    """
    What a client of a C{factory_class} server that says nothing gets: still open a second
    before C{seconds}, closed a second after; returns what it was sent.
    """
    proto, transport = on_clock(factory_class, name)
    proto.factory.reactor.advance(seconds - 1)
    assert not transport.disconnecting
    proto.factory.reactor.advance(2)
    assert transport.disconnecting
    return bytes(transport.value())
