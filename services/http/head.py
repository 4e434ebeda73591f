"""
The request head of HTTP/1.1 (RFC 9112, 2-3 and 5-6), read and checked before
twisted.web sees it, so every mistake gets a status and a sentence that says what
was wrong (never a bare 400, never a silent close).

What is accepted, as RFC 9112 allows and nginx does:
  - bare LF line endings (C{nc} without C{-C}), and empty lines before a request;
  - C{HTTP/1.x} for any x >= 1, answered as HTTP/1.1 (RFC 9110, 2.5).

What is refused, and how (nginx's limits: 8 KiB lines, 32 KiB of head):
  - a request line over L{MAX_LINE}: 414; a header line over L{MAX_LINE}, a head over
    L{MAX_HEAD}, more than L{MAX_HEADERS} fields: 431;
  - no version (HTTP/0.9), a method in lower case, a header line without a colon or
    with space before it, folded lines, NUL or CR in a value: 400;
  - HTTP/1.1 without exactly one valid Host: 400 (RFC 9112, 3.2);
  - a Transfer-Encoding other than C{chunked}: 501; with Content-Length too: 400;
  - a major version other than 1 (C{HTTP/2.0} typed by hand): 505.
"""

from __future__ import annotations

import re

MAX_LINE = 8192
MAX_HEAD = 32768
MAX_HEADERS = 100
# where a head ends: the first empty line, CRLF or bare LF
END = re.compile(rb"\n\r?\n")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}").fullmatch
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])").fullmatch
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?").fullmatch
_TARGET_BAD = re.compile(rb"[\x00-\x20\x7f]").search
_NON_ASCII = re.compile(rb"[\x80-\xff]").search
_NON_ASCII_SUB = re.compile(rb"[\x80-\xff]").sub
_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE")
_HOP = (b"transfer-encoding", b"content-length", b"expect")


class HeadError(Exception):
    """A request head we do not serve: the status, its reason phrase, a sentence."""

    def __init__(self, code: int, reason: bytes, text: str):
        super().__init__(text)
        self.code = code
        self.reason = reason
        self.text = text


def _bad(text: str) -> HeadError:
    return HeadError(400, b"Bad Request", text)


def _shown(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("latin-1").encode("unicode_escape").decode("ascii")
    return text + ("..." if len(data) > limit else "")


class Head:
    """One checked request head: what twisted.web's Request is given for it."""

    __slots__ = ("method", "target", "version", "fields", "length", "chunked", "expect_continue")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,  # b"HTTP/1.0" or b"HTTP/1.1"
        fields: list[tuple[bytes, bytes]],
        length: int = 0,  # Content-Length (0 when chunked: see chunked)
        chunked: bool = False,
        expect_continue: bool = False,
    ):
        self.method = method
        self.target = target
        self.version = version
        # the header fields twisted.web's Request is given: (name, value) in
        # order, values trimmed, without the body's framing (Content-Length,
        # Transfer-Encoding, Expect: the channel reads the body and tells the
        # Request its length)
        self.fields = fields
        self.length = length
        self.chunked = chunked
        self.expect_continue = expect_continue

    @property
    def has_body(self) -> bool:
        return self.chunked or self.length > 0


def incomplete(buffer: bytes) -> HeadError | None:
    """The error for a head not yet complete that is already too long, if any."""
    first_end = buffer.find(b"\n")
    if first_end < 0:
        if len(buffer) > MAX_LINE:
            return HeadError(
                414,
                b"URI Too Long",
                f"the request line is longer than {MAX_LINE} bytes; ask for a shorter address",
            )
        return None
    if len(buffer) > MAX_HEAD:
        return _too_large(f"the request head is longer than {MAX_HEAD} bytes")
    last = buffer.rfind(b"\n")
    if len(buffer) - last - 1 > MAX_LINE:
        return _too_large(f"a header line is longer than {MAX_LINE} bytes")
    return None


def _too_large(text: str) -> HeadError:
    return HeadError(431, b"Request Header Fields Too Large", text)


# the common case, checked by one regular expression: CRLF lines, a request line
# "METHOD /path HTTP/1.1", well-formed fields (no blank at the end of a value), none
# of which frames a body
_FAST = re.compile(
    rb"([A-Z]{1,20}) (/[\x21-\x7e]{0,8191}) HTTP/1\.([01])"
    rb"((?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}:[ \t]*(?:[^\x00\r\n]{0,7899}[^\x00\r\n \t])?)*)"
).fullmatch
_FAST_SPECIAL = re.compile(
    rb"\n(host|content-length|transfer-encoding|expect):[ \t]*([^\r]*)", re.IGNORECASE
).findall
# the fields of a head _FAST accepted: name and value
_FAST_PAIRS = re.compile(rb"\n([^:]+):[ \t]*([^\r]*)").findall


# the commonest request of all, whole in one read: GET or HEAD of a path on HTTP/1.1,
# the fields _FAST accepts, then the empty line (nothing pipelined behind it)
_QUICK = re.compile(
    rb"(GET|HEAD) (/[\x21-\x7e]{0,8191}) HTTP/1\.1"
    rb"((?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}:[ \t]*(?:[^\x00\r\n]{0,7899}[^\x00\r\n \t])?)*)"
    rb"\r\n\r\n"
).fullmatch
# the fields that matter to a plain GET: Host (checked), Connection (persistence),
# Referer and User-Agent (the access log); the rest of these change the answer
# (conditionals, ranges) or frame a body: such requests take the full path
_QUICK_SPECIAL = re.compile(
    rb"\n(host|connection|referer|user-agent|if-[a-z-]*|range|content-length"
    rb"|transfer-encoding|expect):[ \t]*([^\r]*)",
    re.IGNORECASE,
).findall


def quick(data: bytes) -> tuple[bytes, bytes, bytes | None, bytes | None] | None:
    """
    The common request recognised from its raw bytes: a GET or HEAD on HTTP/1.1, one
    valid Host, no field that changes the answer (conditionals, Range), frames a body
    or ends the connection, and nothing after the head. Every such head is one that
    L{parse} accepts as it is.

    @return: (method, target, Referer, User-Agent), the last two as the access log
        shows them (the first of each, or None); None for every other request.
    """
    m = _QUICK(data)
    if m is None or data.count(b"\n") > MAX_HEADERS + 2:
        return None
    host = referer = agent = None
    for name, value in _QUICK_SPECIAL(data, m.start(3)):
        lower = name.lower()
        if lower == b"host":
            if host is not None:
                return None
            host = value
        elif lower == b"user-agent":
            if agent is None:
                agent = value
        elif lower == b"referer":
            if referer is None:
                referer = value
        elif lower != b"connection" or value.lower() != b"keep-alive":
            # twisted.web reads only the first Connection field: a second one,
            # or any other value, takes the full path
            return None
    if host is None or not _HOST(host):
        return None
    return m.group(1), m.group(2), referer, agent


def parse(head: bytes) -> Head:
    """
    Check one request head (without the empty line that ends it).

    @raise HeadError: for every head not served, with the status to answer.
    """
    m = _FAST(head)
    if m is not None and head.count(b"\n") <= MAX_HEADERS:
        start = m.start(4)
        special = _FAST_SPECIAL(head, start)
        if len(special) == 1 and special[0][0].lower() == b"host" and _HOST(special[0][1]):
            return Head(
                m.group(1),
                m.group(2),
                b"HTTP/1.1" if m.group(3) == b"1" else b"HTTP/1.0",
                _FAST_PAIRS(head, start),
            )
    return _parse(head)


def _parse(head: bytes) -> Head:
    """L{parse}, line by line: every case, and the sentence for every mistake."""
    lines = head.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    line = lines[0]
    if len(line) > MAX_LINE:
        raise HeadError(
            414,
            b"URI Too Long",
            f"the request line is longer than {MAX_LINE} bytes; ask for a shorter address",
        )
    parts = line.split(b" ")
    if len(parts) == 2 and parts[0] and parts[1]:
        raise _bad(
            f"the request line has no HTTP version: {_shown(line)!r}; "
            "type it as METHOD TARGET VERSION, e.g. GET / HTTP/1.1"
        )
    if len(parts) != 3 or not all(parts):
        raise _bad(
            f"the request line must be METHOD TARGET VERSION separated by single spaces, "
            f"e.g. GET / HTTP/1.1; got {_shown(line)!r}"
        )
    method, target, version = parts
    if not _TOKEN(method):
        raise _bad(f"the method {_shown(method)!r} is not a valid token")
    if method.upper() in _METHODS and method != method.upper():
        raise _bad(f"methods are case-sensitive: {method.upper().decode()}, not {method.decode()}")
    m = _VERSION(version)
    if m is None:
        raise _bad(f"the version must be HTTP/1.1 (or HTTP/1.0); got {_shown(version)!r}")
    major, minor = m.group(1), m.group(2)
    if major != b"1":
        raise HeadError(
            505,
            b"HTTP Version Not Supported",
            f"this request line asked for {version.decode()}; requests typed as text are "
            "HTTP/1.1 (HTTP/2 is negotiated by TLS ALPN on an https:// port, not sent like this)",
        )
    if minor != b"0" and minor != b"1":
        version = b"HTTP/1.1"
    if _TARGET_BAD(target):
        raise _bad(f"the request target holds control characters: {_shown(target)!r}")
    if _NON_ASCII(target):
        # raw UTF-8 typed in an address (curl "http://h/é"): served, as nginx does,
        # once percent-encoded (twisted.web would refuse it with a bare 400)
        target = _NON_ASCII_SUB(lambda m: b"%%%02X" % m.group()[0], target)
    if not (
        target.startswith(b"/")
        or target[:7].lower() == b"http://"
        or target[:8].lower() == b"https://"
        or (target == b"*" and method == b"OPTIONS")
        or method == b"CONNECT"
    ):
        raise _bad(f"the request target must start with /; got {_shown(target)!r}")

    if len(lines) - 1 > MAX_HEADERS:
        raise _too_large(f"the request has more than {MAX_HEADERS} header fields")
    hosts: list[bytes] = []
    lengths: list[bytes] = []
    codings: list[bytes] = []
    expect = False
    fields: list[tuple[bytes, bytes]] = []
    for field in lines[1:]:
        if len(field) > MAX_LINE:
            raise _too_large(f"a header line is longer than {MAX_LINE} bytes")
        if field[:1] in (b" ", b"\t"):
            raise _bad(
                f"a header line starts with a space (obsolete line folding): {_shown(field)!r}"
            )
        name, colon, value = field.partition(b":")
        if not colon:
            raise _bad(f"a header line has no colon: {_shown(field)!r}; write it as Name: value")
        if not _TOKEN(name):
            if name.rstrip(b" \t") != name:
                raise _bad(f"no space is allowed before the colon: {_shown(field)!r}")
            raise _bad(f"the header name {_shown(name)!r} is not a valid token")
        value = value.strip(b" \t")
        if b"\x00" in value or b"\r" in value:
            raise _bad(f"the value of {name.decode()} holds a NUL or CR")
        lower = name.lower()
        if lower == b"host":
            hosts.append(value)
        elif lower in _HOP:
            if lower == b"content-length":
                lengths.extend(v.strip(b" \t") for v in value.split(b","))
            elif lower == b"transfer-encoding":
                codings.extend(v.strip(b" \t").lower() for v in value.split(b","))
            elif value.lower() == b"100-continue":
                expect = True
            continue
        fields.append((name, value))

    if len(hosts) > 1:
        raise _bad("the request has two Host headers; send exactly one")
    if hosts and not _HOST(hosts[0]):
        raise _bad(f"the Host header is not a host name or address: {_shown(hosts[0])!r}")
    if not hosts and version == b"HTTP/1.1":
        raise _bad("HTTP/1.1 requests need a Host header, e.g. Host: localhost")

    parsed = Head(method, target, version, fields, expect_continue=expect)
    if codings:
        if lengths:
            raise _bad("the request has both Content-Length and Transfer-Encoding")
        if version != b"HTTP/1.1":
            raise _bad("Transfer-Encoding needs HTTP/1.1")
        if codings != [b"chunked"]:
            shown = ", ".join(c.decode("latin-1") for c in codings)
            raise HeadError(
                501,
                b"Not Implemented",
                f"Transfer-Encoding: {shown} is not supported; send chunked, or a Content-Length",
            )
        parsed.chunked = True
    elif lengths:
        if not all(v.isdigit() and len(v) <= 18 for v in lengths) or len(set(lengths)) != 1:
            raise _bad("the Content-Length header is not one decimal number")
        parsed.length = int(lengths[0])
    return parsed


class ChunkedBody:
    """
    A chunked request body (RFC 9112, 7.1) decoded as it arrives, bounded by
    C{limit} bytes of data and L{MAX_LINE} per size or trailer line.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self._want = -1  # bytes of chunk data still expected; -1: a size line; -2: trailers
        self._trailer_bytes = 0

    def feed(self, buffer: bytes) -> tuple[bool, bytes]:
        """
        Decode what C{buffer} holds. @return: (done, what is left over in C{buffer}).

        @raise HeadError: bad framing (400) or a body over the limit (413).
        """
        while buffer:
            if self._want >= 0:
                if self._want > 0:
                    take = buffer[: self._want]
                    self.parts.append(take)
                    self._want -= len(take)
                    buffer = buffer[len(take) :]
                    if self._want:
                        return False, b""
                # the CRLF after the data
                if buffer.startswith(b"\r\n"):
                    buffer = buffer[2:]
                elif buffer.startswith(b"\n"):
                    buffer = buffer[1:]
                elif len(buffer) < 2 and buffer == b"\r":
                    return False, buffer
                else:
                    raise _bad("a chunk of the body is not followed by CRLF")
                self._want = -1
                continue
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_LINE:
                    raise _bad("a chunk size line is too long")
                return False, buffer
            line, buffer = buffer[:end].rstrip(b"\r"), buffer[end + 1 :]
            if self._want == -2:
                self._trailer_bytes += len(line)
                if self._trailer_bytes > MAX_HEAD:
                    raise _too_large("the body's trailer fields are too long")
                if not line:
                    return True, buffer
                continue
            size_text = line.partition(b";")[0].strip(b" \t")
            if not _HEX(size_text):
                raise _bad(f"a chunk size is not a hex number: {_shown(line)!r}")
            size = int(size_text, 16)
            if size == 0:
                self._want = -2
                continue
            self.size += size
            if self.size > self.limit:
                raise HeadError(413, b"Content Too Large", "")
            self._want = size
        return False, b""
