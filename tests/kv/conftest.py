"""Shared fixtures of the kv tests: a real redis-server and a portsuite kv, side by side."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import hiredis
import pytest

from portsuite.testing import free_port, need, suite_running


class Raw:
    """A raw RESP connection: sends commands, returns each reply's exact bytes."""

    def __init__(self, port: int, resp3: bool = False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        if resp3:
            self.call(b"HELLO", b"3")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One complete reply, as bytes."""
        while True:
            if self.buf:
                reader = hiredis.Reader()
                reader.feed(self.buf)
                got = reader.gets()
                if got is not False:
                    # find how many bytes the first reply took
                    for end in range(1, len(self.buf) + 1):
                        r = hiredis.Reader()
                        r.feed(self.buf[:end])
                        if r.gets() is not False:
                            out, self.buf = self.buf[:end], self.buf[end:]
                            return out
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out + b"<closed>"
            self.buf += chunk

    def call(self, *argv: bytes | str) -> bytes:
        args = [a.encode() if isinstance(a, str) else a for a in argv]
        self.send(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        return self.reply()

    def rest(self, timeout: float = 2.0) -> bytes:
        """Everything until the server closes (or the timeout)."""
        self.sock.settimeout(timeout)
        out = self.buf
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                out += chunk
        except TimeoutError:
            out += b"<open>"
        self.buf = b""
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """A real redis-server 7 (the reference), memory-only, on a free port."""
    exe = need("redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def kv_port() -> Iterator[int]:
    """portsuite's kv, memory-only, in this process."""
    with suite_running({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        yield s.port("kv")
