"""A raw RESP connection for the kv tests (replies as exact bytes)."""

from __future__ import annotations

import socket

import hiredis


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
