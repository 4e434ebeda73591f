"""Bounded line splitting for the mail protocols: an over-long line is answered once and dropped."""

from __future__ import annotations

from typing import Any


class BoundedLines:
    """
    A C{dataReceived} for line protocols: lines end with LF (CR stripped), a line
    over C{max_line} octets calls C{lineTooLong()} once and is skipped to its end,
    nothing is buffered beyond C{max_line}. While C{self.blocked is not None} (POP3,
    IMAP: a reply is being streamed) lines wait in order.
    """

    max_line = 1000
    _lbuf = b""
    _lskip = False
    _ldrop = False

    transport: Any

    def lineTooLong(self) -> None:
        raise NotImplementedError

    def oneLine(self, line: bytes) -> None:
        raise NotImplementedError

    def dropBuffered(self) -> None:
        """After STARTTLS/STLS: the plain-text bytes sent with the command are dropped."""
        self._lbuf = b""
        self._lskip = False
        self._ldrop = True

    def dataReceived(self, data: bytes) -> None:
        buf = self._lbuf + data if self._lbuf else data
        start = 0
        limit = self.max_line - 2
        while True:
            if self.transport.disconnecting:
                buf, start = b"", 0
                break
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            if self._lskip:
                self._lskip = False
                continue
            if len(line) > limit:
                self.lineTooLong()
                continue
            self.oneLine(line)
            if self._ldrop:
                self._ldrop = False
                buf, start = b"", 0
                break
        rest = buf[start:] if start else buf
        if len(rest) > limit:
            if not self._lskip:
                self.lineTooLong()
                self._lskip = True
            rest = b""
        self._lbuf = rest


def no_delay(transport: Any) -> None:
    """
    TCP_NODELAY: replies go out at once. Without it a reply written in two parts (POP3's
    "+OK" then the message) waits for the client's delayed ACK, 40 ms a message.
    """
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, OSError, NotImplementedError):
        pass
