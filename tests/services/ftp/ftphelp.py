"""Helpers of the ftp tests (a module name unique across the test tree)."""

from __future__ import annotations

import ftplib
import socket
from typing import Any

PASSWORD = "wonderland"


def login(
    s: Any,
    user: str = "anonymous",
    password: str = "guest@",
    host: str = "127.0.0.1",
    passive: bool = True,
) -> ftplib.FTP:
    f = ftplib.FTP(timeout=30)
    f.connect(host, s.ftp_port)
    f.login(user, password)
    f.set_pasv(passive)
    return f


class Raw:
    """A control connection typed by hand: send a line, read one reply (multi-line too)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> str:
        line = self.file.readline().decode("utf-8", "replace")
        if not line:
            return ""
        if len(line) > 3 and line[3] == "-":
            code = line[:3]
            while True:
                more = self.file.readline().decode("utf-8", "replace")
                line += more
                if not more or (more.startswith(code) and more[3:4] == " "):
                    break
        return line

    def cmd(self, text: str | bytes) -> str:
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        self.sock.sendall(data + b"\r\n")
        return self.reply()

    def login(self, user: str = "anonymous", password: str = "guest@") -> str:
        self.cmd(f"USER {user}")
        return self.cmd(f"PASS {password}")

    def close(self) -> None:
        self.sock.close()
