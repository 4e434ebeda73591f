"""
MONITOR's lines: each argument quoted and escaped as Redis's C{sdscatrepr} writes it,
at C speed, and the line of big or many arguments escaped as it is sent
(L{MonitorLine}), a queued output item of a client as a L{resp.Chain} is.
"""

from __future__ import annotations

from collections.abc import Iterator

from portsuite_services.kv.resp import SLICE


def _escape(b: int) -> bytes:
    if b == 0x5C or b == 0x22:
        return b"\\" + bytes((b,))
    special = {10: b"\\n", 13: b"\\r", 9: b"\\t", 7: b"\\a", 8: b"\\b"}
    if b in special:
        return special[b]
    return bytes((b,)) if 32 <= b < 127 else b"\\x%02x" % b


_ESCAPED = [_escape(b) for b in range(256)]
_PLAIN = bytes(b for b in range(32, 127) if b not in (0x5C, 0x22))  # written as they are


def _escape_plain(piece: bytes) -> bytes:
    """sdscatrepr's escapes of bytes holding no backslash (see L{_repr})."""
    out = piece.decode("latin-1").encode("unicode_escape").replace(b'"', b'\\"')
    if b"\x07" in piece:
        out = out.replace(b"\\x07", b"\\a")  # (no backslash in piece: each is one byte's)
    if b"\x08" in piece:
        out = out.replace(b"\\x08", b"\\b")
    return out


def _repr(arg: bytes) -> bytes:
    """
    Redis's C{sdscatrepr}: the argument quoted, with C-style escapes, at C speed. Text
    is checked by C{translate} (100 MB in ~40 ms); other bytes are escaped by the
    C{unicode_escape} codec, which writes each byte as sdscatrepr does (lower-case
    C{\\xNN}, C{\\n}, C{\\\\}, printable as it is) but for C{"}, 0x07 and 0x08
    (C{\\"}, C{\\a}, C{\\b}), fixed after it between the backslashes of the data.
    """
    return b'"' + _escaped(arg) + b'"'


def _escaped(arg: bytes) -> bytes:
    """L{_repr} without its quotes: each byte as sdscatrepr writes it (so any slice alone)."""
    if not arg.translate(None, _PLAIN):
        return arg
    return b"\\\\".join(map(_escape_plain, arg.split(b"\\")))


ESCAPED_PIECE = 16 * 1024  # bytes a slice of a MONITOR line escapes at most (~1 ms)
ARG_COST = 16  # what an argument costs that slice beyond its bytes


class MonitorLine:
    """
    A MONITOR line of big or many arguments, escaped (sdscatrepr) as it is sent, a
    piece at a time: the same bytes as Redis's line, never built whole (a SET of
    512 MB was escaped, quoted and formatted in one step, seconds for binary data and
    up to four times its size). A queued output item, as a L{Chain} is, read in order
    by the client's drain (C{line[a:b]}, C{a} where the last slice ended), which may
    get less than it asked for: a slice escapes C{ESCAPED_PIECE} bytes at most (text
    that needs no escape is taken as it is). Its length is what it will be as far as
    it is known: the arguments not yet escaped count as their own size, and the line
    grows as they are (the client's C{queued} with it).
    """

    __slots__ = ("pieces", "size", "buf", "base")

    def __init__(self, head: bytes, argv: list[bytes]):
        # known now: the head, the quotes, spaces and CRLF; each argument's own bytes
        self.size = len(head) + 3 * len(argv) + 1 + sum(map(len, argv))
        self.pieces = self._pieces(head, argv)
        self.buf = b""
        self.base = 0  # where buf starts in the line

    @staticmethod
    def _pieces(head: bytes, argv: list[bytes]) -> Iterator[tuple[bytes, int, int]]:
        """The line's bytes in order: each piece, how much longer than counted, its cost."""
        yield head, 0, 0
        sep = b'"'
        for a in argv:
            if len(a) < ESCAPED_PIECE:
                e = _escaped(a)
                yield sep + e, len(e) - len(a), ARG_COST + (len(a) if e is not a else 0)
                sep = b'" "'
                continue
            yield sep, 0, 0
            view = memoryview(a)
            for i in range(0, len(a), SLICE):
                raw = view[i : i + SLICE].tobytes()
                if not raw.translate(None, _PLAIN):
                    yield raw, 0, 0  # (text: as it is)
                    continue
                for k in range(0, len(raw), ESCAPED_PIECE):
                    e = _escaped(raw[k : k + ESCAPED_PIECE])
                    yield e, len(e) - min(ESCAPED_PIECE, len(raw) - k), ESCAPED_PIECE
            sep = b'" "'
        yield b'"\r\n', 0, 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, s: slice) -> bytes:
        start, stop = s.start, s.stop
        assert start == self.base, "a MONITOR line is read in order"
        buf = self.buf
        if len(buf) < stop - start:
            more = [buf]
            have, spent = len(buf), 0
            for piece, longer, cost in self.pieces:
                more.append(piece)
                have += len(piece)
                self.size += longer
                spent += cost
                if have >= stop - start or spent >= ESCAPED_PIECE:
                    break
            buf = b"".join(more)
        out, self.buf = buf[: stop - start], buf[stop - start :]
        self.base = start + len(out)
        return out
