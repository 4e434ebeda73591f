"""
Bytes as a student reads them, one line per chunk: text with C{\\r \\n \\t \\\\} and
C{\\xNN} escapes, or C{hex: 83 aa 7e 80}.

Whether a chunk is shown as hex is decided per service and direction where the
service type says its bytes are binary (C{ServiceType.trace_hex}, e.g. the time
service's replies): a 4-byte number that happens to be valid UTF-8 must not turn into
text now and then. Other services' chunks are judged one by one (L{is_binary}), so
that a text protocol with a few binary bytes (telnet's option negotiation) stays
readable.
"""

from __future__ import annotations

import unicodedata

MAX_CHUNK = 1_000  # characters shown of one chunk
MAX_HEX = 64  # bytes shown as hex of one binary chunk

_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\"}


def is_binary(data: bytes) -> bool:
    """Mostly not text: over a quarter of the bytes are control bytes or invalid UTF-8."""
    text = data.decode("utf-8", "surrogateescape")
    odd = sum(
        1
        for ch in text
        if (ch < " " and ch not in "\r\n\t") or ch == "\x7f" or "\udc80" <= ch <= "\udcff"
    )
    return odd * 4 > len(text)


def render_hex(data: bytes) -> str:
    """C{hex: 83 aa 7e 80}: at most L{MAX_HEX} bytes, then how many were left out."""
    if not data:
        return "(empty)"
    shown = data[:MAX_HEX]
    text = "hex: " + shown.hex(" ")
    if len(data) > len(shown):
        text += f" … (+{len(data) - len(shown)} bytes)"
    return text


def render(data: bytes, limit: int = MAX_CHUNK, binary: bool | None = None) -> str:
    """
    Bytes as a student reads them: text with C{\\r \\n \\t \\\\} and C{\\xNN}
    escapes, or C{hex: 83 aa 7e 80}; at most C{limit} characters, then how many
    bytes were left out.

    @param binary: True to show hex whatever the bytes look like, False for text;
        None (the default) judges this chunk alone (L{is_binary}).
    """
    if not data:
        return "(empty)"
    if binary is None:
        binary = is_binary(data)
    if binary:
        return render_hex(data)
    out: list[str] = []
    size = 0
    consumed = 0
    for ch in data.decode("utf-8", "surrogateescape"):
        if ch in _ESCAPES:
            piece = _ESCAPES[ch]
        elif "\udc80" <= ch <= "\udcff":
            piece = f"\\x{ord(ch) - 0xDC00:02x}"
        elif unicodedata.category(ch)[0] == "C":
            code = ord(ch)
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        else:
            piece = ch
        if size + len(piece) > limit:
            left = len(data) - consumed
            out.append(f" … (+{left} bytes)")
            break
        out.append(piece)
        size += len(piece)
        consumed += 1 if "\udc80" <= ch <= "\udcff" else len(ch.encode("utf-8", "surrogatepass"))
    return "".join(out)
