"""
The HTTP/1.1 server side (RFC 9110, RFC 9112) on twisted.web, with portsuite's guards,
and HTTP/2 (RFC 9113) on TLS listeners that negotiate it by ALPN.

L{Channel} reads each request head itself (L{portsuite_services.http.head}: bare LF
accepted, every mistake a page that says what was wrong) and hands twisted.web's
C{HTTPChannel} one checked, CRLF-framed request at a time. Its limits:

  - a deadline for the whole request head (C{head_timeout}, 60 s as nginx): from the
    first byte of a request (or the connection, for the first one) to the blank line
    that ends its headers, however active the client looks;
  - a deadline between two reads of a body (C{body_timeout});
  - a cap on the request body: a C{Content-Length} above C{max_body} is answered
    C{413} from the head, before any byte of the body is read; a chunked body is
    counted as it arrives and cut at the cap. Bodies are kept in memory (they are
    bounded), never spooled to a temporary file;
  - a request with a body to a method the files refuse gets 405 from its head;
  - what is pipelined behind a request being answered is bounded (reading pauses).

When TLS negotiated C{h2}, the channel hands the connection to twisted.web's own
C{H2Connection} and only passes bytes on.

The commonest request (a plain GET or HEAD on HTTP/1.1 of a small file cached and
checked in this tick, see L{portsuite_services.http.head.quick}) is answered by the
channel itself from its raw head, without a twisted.web Request: the bytes
L{Request.send_whole} writes and the line L{Site.log} logs for it, a quarter to a
third of the cpu. Every other request takes the full path.

L{Request} answers with C{Server: portsuite} (no version) and a cached C{Date}, and
sends the static files' prebuilt responses in one write (HTTP/1.1) or through the
public Request API (HTTP/2). L{Site} writes one access log line per request, in the
combined format with the client's port, to the Twisted log, service name first.
"""

from __future__ import annotations

import re
import time
from io import BytesIO
from typing import Any, Literal

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.http import (
    INTERNAL_SERVER_ERROR,
    HTTPChannel,
    datetimeToString,
    unquote,
)
from zope.interface import implementer

from portsuite.api import format_peer
from portsuite_services.http.h2fast import connection_class
from portsuite_services.http.head import (
    END,
    MAX_HEAD,
    MAX_HEADERS,
    ChunkedBody,
    Head,
    HeadError,
    incomplete,
    parse,
    quick,
)

log = Logger(namespace="portsuite.http")

# twisted.web's HTTP/2 connection, when the h2 package is installed (h2fast: many
# frames per reactor pass where Twisted's internals allow)
H2: Any = connection_class()

SERVER = b"portsuite"
# access log lines are emitted in batches: at most this late, at most this many
LOG_FLUSH = 0.25
LOG_BATCH = 200

# bytes of pipelined requests held while one is answered before reading pauses
PIPELINE_BUFFER = 1 << 16
# a big cached body is written in slices of this size
SLICE = 1 << 16
# what the channel is doing: reading a head, reading a body, waiting for an answer
HEAD, BODY, WAIT = "head", "body", "wait"

# what every response of Channel._answer_quick starts with (as Request._start writes)
_QUICK_START = b"HTTP/1.1 200 OK\r\nServer: portsuite\r\nDate: "
# request heads remembered by Site.learn_quick: how many, and the longest
QUICK_HEADS = 256
QUICK_HEAD_BYTES = 2048

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def plain_response(
    code: int, reason: bytes, text: str, close: bool = True, extra: bytes = b""
) -> bytes:
    """A whole short text/plain response, for answers sent outside a L{Request}."""
    body = text.encode("utf-8")
    return (
        b"HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n%s"
        % (
            code,
            reason,
            SERVER,
            len(body),
            extra,
            b"Connection: close\r\n" if close else b"",
            body,
        )
    )


def http_refusal(reason: str) -> bytes:
    """What a client refused by a connection limit reads: a 503 that says why."""
    return plain_response(503, b"Service Unavailable", f"portsuite: {reason}\n")


def _log_time(now: float) -> str:
    t = time.gmtime(now)
    return (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]"
    )


_ESCAPES = {i: f"\\x{i:02x}" for i in (*range(0x20), *range(0x7F, 0x100))}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"
_PLAIN = re.compile(rb"[\x20\x21\x23-\x5b\x5d-\x7e]*").fullmatch


def _quoted(value: bytes | None) -> str:
    """A request field as the combined log format shows it: quoted, escaped."""
    if not value:
        return "-"
    if _PLAIN(value):
        return value.decode("ascii")
    return value.decode("latin-1").translate(_ESCAPES)


class Channel(HTTPChannel):
    """
    HTTP/1.1 (RFC 9112) connection: the request head is read and checked here
    (L{portsuite_services.http.head}), then given to twisted.web's parser, one
    request at a time, as well-formed CRLF text.

    Limits: a deadline for the whole request head (C{head_timeout}, 60 s like
    nginx's client_header_timeout): from the first byte of a request (or the
    connection, for the first one) to the empty line that ends its headers, however
    active the client looks; a deadline between two reads of a body
    (C{body_timeout}, nginx's client_body_timeout); a cap on the body (C{max_body}):
    a C{Content-Length} above it is answered 413 from the head, before any byte of
    the body is read or "100 Continue" invites it. Bodies are kept in memory (they
    are bounded), never spooled to a temporary file. Requests pipelined behind one
    being answered wait here, bounded: reading pauses past L{PIPELINE_BUFFER}.
    """

    site: Site
    transport: Any
    callLater: Any
    # twisted.web's own head limits stay above ours: ours answer first, with a page
    totalHeadersSize = MAX_HEAD * 2
    maxHeaders = MAX_HEADERS * 2
    MAX_LENGTH = MAX_HEAD * 2

    _head_call: Any = None
    _body_call: Any = None
    _abort_call: Any = None
    _host: Any = None
    _peer: Any = None
    _refused = False
    _h2: Any = None  # the HTTP/2 connection this one became (ALPN h2)
    _checked_alpn = False
    _busy = False  # inside _advance
    _paused = False  # reading paused: too much pipelined
    log_peer: str | None = None  # the client as the access log shows it
    log_prefix: str | None = None  # the access log line's start: service and client

    def connectionMade(self) -> None:
        HTTPChannel.connectionMade(self)
        self._pending = b""
        self._phase = HEAD
        self._head: Head | None = None
        self._body: Any = None
        # the first head's clock starts with the connection: a client that
        # connects and says nothing is cut off as well
        self._head_call = self.callLater(self.site.head_timeout, self._head_expired)

    def dataReceived(self, data: bytes) -> None:
        h2 = self._h2
        if h2 is not None:
            h2.dataReceived(data)
            return
        if self._refused:
            return
        if not self._checked_alpn:
            self._checked_alpn = True
            if getattr(self.transport, "negotiatedProtocol", None) == b"h2" and H2 is not None:
                self._switch_to_h2(data)
                return
        self.resetTimeout()
        if (
            self._phase == HEAD
            and not self._pending
            and data.endswith(b"\r\n\r\n")
            and self._answer_quick(data)
        ):
            return
        self._pending += data
        if self._phase == WAIT:
            self._hold()
            return
        if self._phase == BODY and self._body_call is not None:
            self._body_call.reset(self.site.body_timeout)
        self._advance()

    def _answer_quick(self, data: bytes) -> bool:
        """
        The common case without a twisted.web L{Request}: a plain GET or HEAD (see
        L{quick}) of a small file whose cached entry is fresh, answered with the
        bytes L{Request.send_whole} would write for it, and the same access log line.
        False, having done nothing, for every other request.
        """
        site = self.site
        known = site.quick_heads.get(data)
        if known is None:
            known = site.learn_quick(data)
        if not known:
            return False
        path, head_only, said, agents = known
        entry = site.static.fresh(path)
        if entry is None:
            return False
        self._cancel_head()
        if head_only:
            self.transport.write(b"".join((_QUICK_START, site.date, b"\r\n", entry.head, b"\r\n")))
            sent = "-"
        else:
            self.transport.write(
                b"".join((_QUICK_START, site.date, b"\r\n", entry.head, b"\r\n", entry.body))
            )
            sent = entry.size_text
        if site.access_log:
            site.log_quick(self, said, sent, agents)
        return True

    def _switch_to_h2(self, data: bytes) -> None:
        """
        TLS negotiated C{h2} by ALPN (RFC 7301): twisted.web's own HTTP/2 connection
        (RFC 9113) takes over this transport; this channel only passes bytes on.
        """
        self._cancel_head()
        self.setTimeout(None)
        transport = self.transport
        transport.unregisterProducer()
        h2: Any = H2(self.site.reactor)
        h2.requestFactory = self.requestFactory
        h2.site = self.site
        h2.factory = self.factory
        h2.timeOut = self.timeOut
        h2.callLater = self.callLater
        self._h2 = h2
        h2.makeConnection(transport)
        transport.registerProducer(h2, True)
        h2.dataReceived(data)

    def _advance(self) -> None:
        """Read heads and bodies from the buffer while no request is being answered."""
        if self._busy:
            return
        self._busy = True
        try:
            while not self._refused and self._phase != WAIT:
                if self._phase == HEAD:
                    if not self._read_head():
                        return
                elif not self._read_body():
                    return
        finally:
            self._busy = False
        if self._phase == WAIT:
            self._hold()

    def _hold(self) -> None:
        """Stop reading while too much is pipelined behind the request being answered."""
        if len(self._pending) > PIPELINE_BUFFER and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _read_head(self) -> bool:
        buffer = self._pending
        if buffer[:1] in (b"\r", b"\n"):
            # empty lines before a request line are ignored (RFC 9112, 2.2)
            buffer = self._pending = buffer.lstrip(b"\r\n")
        if not buffer:
            return False
        end = END.search(buffer)
        if end is None:
            error = incomplete(buffer)
            if error is not None:
                self.refuse(error)
            elif self._head_call is None:
                # the head's clock starts with its first byte (a whole head in one
                # packet, the common case, never needs it)
                self._head_call = self.callLater(self.site.head_timeout, self._head_expired)
            return False
        self._pending = buffer[end.end() :]
        self._cancel_head()
        text = buffer[: end.start()]
        if text.endswith(b"\r"):
            text = text[:-1]
        try:
            head = parse(text)
        except HeadError as e:
            self.refuse(e)
            return False
        if not head.has_body:
            self._dispatch(head, None)
            return True
        if head.length > self.site.max_body:
            self.refuse_body(head.length)
            return False
        allow = self.site.refuses_body(head.method, head.target)
        if allow is not None:
            self.refuse(
                HeadError(
                    405,
                    b"Method Not Allowed",
                    f"{head.method.decode('latin-1')} is not allowed here; this server "
                    f"only reads files ({allow.decode()})",
                ),
                extra=b"Allow: " + allow + b"\r\n",
            )
            return False
        if head.expect_continue and head.version == b"HTTP/1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._head = head
        self._body = ChunkedBody(self.site.max_body) if head.chunked else []
        self._got = 0
        self._phase = BODY
        self._body_call = self.callLater(self.site.body_timeout, self._body_expired)
        return True

    def _read_body(self) -> bool:
        head = self._head
        assert head is not None
        body = self._body
        if isinstance(body, ChunkedBody):
            try:
                done, self._pending = body.feed(self._pending)
            except HeadError as e:
                if e.code == 413:
                    self.refuse_body(None)
                else:
                    self.refuse(e)
                return False
            if not done:
                return False
            whole = b"".join(body.parts)
        else:
            want = head.length - self._got
            take = self._pending[:want]
            self._pending = self._pending[len(take) :]
            body.append(take)
            self._got += len(take)
            if self._got < head.length:
                return False
            whole = b"".join(body)
        self._cancel_body()
        self._head = self._body = None
        self._dispatch(head, whole)
        return True

    def _dispatch(self, head: Head, body: bytes | None) -> None:
        """
        Hand one whole, checked request to a twisted.web L{Request}, as
        C{HTTPChannel} does once it has parsed a head (its line parser is not used:
        the head was read and checked here already, and parsing it twice was a fifth
        of the server's time per request).
        """
        self._phase = WAIT
        request = self.requestFactory(self)
        self.requests.append(request)
        add = request.requestHeaders.addRawHeader
        for name, value in head.fields:
            add(name, value)
        if body is not None:
            add(b"Content-Length", b"%d" % len(body))
        request.parseCookies()
        self.persistent = self.checkPersistence(request, head.version)
        # the idle timer keeps running while a request is answered (timeoutConnection
        # re-arms it then): cheaper than cancelling and re-creating it per request
        self._handlingRequest = True
        request.gotLength(len(body) if body is not None else 0)
        if body:
            request.handleContentChunk(body)
        request.requestReceived(head.method, head.target, head.version)

    def requestDone(self, request: Any) -> None:
        HTTPChannel.requestDone(self, request)
        if not self.persistent or self._refused:
            return
        self._phase = HEAD
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        if self._pending:
            self._advance()

    # the addresses do not change: ask the socket once, not once per request
    def getHost(self) -> Any:
        host = self._host
        if host is None:
            host = self._host = self.transport.getHost()
        return host

    def getPeer(self) -> Any:
        peer = self._peer
        if peer is None:
            peer = self._peer = self.transport.getPeer()
        return peer

    def _cancel_head(self) -> None:
        call = self._head_call
        if call is not None:
            self._head_call = None
            if call.active():
                call.cancel()

    def _cancel_body(self) -> None:
        call = self._body_call
        if call is not None:
            self._body_call = None
            if call.active():
                call.cancel()

    def _head_expired(self) -> None:
        self._head_call = None
        if getattr(self.transport, "negotiatedProtocol", None) == b"h2":
            return  # the connection went to HTTP/2: its own timeouts apply
        timeout = self.site.head_timeout
        log.info(
            "{service}: {peer} did not send a complete request head within {timeout}s; closing",
            service=self.site.service,
            peer=format_peer(self.getPeer()),
            timeout=timeout,
        )
        self.refuse(
            HeadError(
                408,
                b"Request Timeout",
                f"the request head (request line, headers and the empty line that ends "
                f"them) must arrive within {timeout:g} s; raise head_timeout in the "
                f"service's config to allow more",
            ),
            log_it=False,
        )

    def _body_expired(self) -> None:
        self._body_call = None
        timeout = self.site.body_timeout
        log.info(
            "{service}: {peer} sent nothing of its request body for {timeout}s; closing",
            service=self.site.service,
            peer=format_peer(self.getPeer()),
            timeout=timeout,
        )
        self.refuse(
            HeadError(
                408,
                b"Request Timeout",
                f"the request body stalled: nothing arrived for {timeout:g} s; raise "
                f"body_timeout in the service's config to allow more",
            ),
            log_it=False,
        )

    def refuse(self, error: HeadError, extra: bytes = b"", log_it: bool = True) -> None:
        """Answer a request we do not serve with a page that says why, and close."""
        if self._refused:
            return
        self._refused = True
        self._cancel_head()
        self._cancel_body()
        if log_it:
            log.info(
                "{service}: {peer} answered {code}: {text}",
                service=self.site.service,
                peer=format_peer(self.getPeer()),
                code=error.code,
                text=error.text,
            )
        self.transport.write(
            plain_response(
                error.code,
                error.reason,
                f"{error.code} {error.reason.decode()}\n\nportsuite: {error.text}\n",
                extra=extra,
            )
        )
        self._close_soon()

    def _close_soon(self) -> None:
        """Close after what was written is sent; abort if the client does not read it."""
        if self._abort_call is None and self.abortTimeout is not None:
            self._abort_call = self.callLater(self.abortTimeout, self.transport.abortConnection)
        self.loseConnection()

    def refuse_body(self, length: int | None = None) -> None:
        """Answer 413 and close: the request body is larger than C{max_body}."""
        cap = self.site.max_body
        said = f"{length} bytes" if length is not None else "a chunked body that grew"
        log.info(
            "{service}: {peer} sent {said} of request body, over max_body = {cap}; answered 413",
            service=self.site.service,
            peer=format_peer(self.getPeer()),
            said=said,
            cap=cap,
        )
        self.refuse(
            HeadError(
                413,
                b"Content Too Large",
                f"request bodies are limited to {cap} bytes (max_body)",
            ),
            log_it=False,
        )

    def timeoutConnection(self) -> None:
        if self._phase == WAIT and self.requests:
            # a request is being answered: the idle deadline is for between requests
            self.resetTimeout()
            return
        if self._phase == HEAD and self._pending:
            self._head_expired()  # a head in progress: say which deadline it was
            return
        if self._phase == BODY:
            self._body_expired()
            return
        # the idle timeout (between requests): no log line per idle browser socket
        self._cancel_head()
        self._close_soon()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._h2 is not None:
            self._h2.connectionLost(reason)
            return
        self._cancel_head()
        self._cancel_body()
        call = self._abort_call
        if call is not None and call.active():
            call.cancel()
        HTTPChannel.connectionLost(self, reason)


@implementer(IPushProducer)
class _Rest:
    """
    Sends the rest of a cached body while the socket takes it, never a copy of it.

    Where the connection offers C{send_some} (plain TCP): the socket is given
    slices of the cached bytes as they are; what it does not take stays here, and
    the producer waits (paused) until the socket drains. A client that stops
    reading holds no copy of the body at all (only the kernel's socket buffer).
    Elsewhere (TLS): slices of L{SLICE} bytes through C{write}, paused as soon as
    the transport's buffer is full.
    """

    def __init__(self, request: Request, parts: list[bytes]):
        self.request: Request | None = request
        self.parts = [memoryview(p) for p in parts if p]
        self.offset = 0  # in parts[0]
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        request = self.request
        if request is None:
            return
        transport = request.channel.transport
        parts = self.parts
        if getattr(transport, "sends_some", False):
            send = transport.send_some
            while parts and not self.paused:
                part = parts[0]
                offset = self.offset
                n = send(part[offset:] if offset else part)
                if self.request is None:
                    return  # lost meanwhile
                if offset + n < len(part):
                    self.offset = offset + n
                    return  # the socket is full: resumed when it drains
                parts.pop(0)
                self.offset = 0
        else:
            write = transport.write
            views = getattr(transport, "writes_views", False)
            while parts and not self.paused:
                part = parts[0]
                end = self.offset + SLICE
                piece = part[self.offset : end]
                write(piece if views else piece.tobytes())
                if self.request is None:
                    return
                if end >= len(part):
                    parts.pop(0)
                    self.offset = 0
                else:
                    self.offset = end
        if not parts:
            self.request = None
            request.unregisterProducer()
            request.finish()

    def stopProducing(self) -> None:
        self.request = None
        self.parts = []


class Request(server.Request):
    """
    One request: bounded in-memory body, no version in C{Server}, cached C{Date}.
    """

    channel: Channel
    site: Site
    content: Any
    sitepath: list[bytes]
    defaultContentType = b"text/html; charset=utf-8"

    def gotLength(self, length: int | None) -> None:
        # Never a temporary file: bodies are capped by max_body (checked by the
        # channel from Content-Length, and below for chunked bodies).
        self.content = BytesIO()

    too_large = False

    def handleContentChunk(self, data: bytes) -> None:
        # HTTP/1.1 bodies are bounded by the channel already; HTTP/2 streams are
        # bounded here: past max_body the rest is dropped and the answer is 413
        content = self.content
        if self.too_large or content.tell() + len(data) > self.channel.site.max_body:
            self.too_large = True
            return
        content.write(data)

    def process(self) -> None:
        site = self.site = self.channel.site
        self.sitepath = []
        self.prepath = []
        if self.too_large:
            site.static.error(
                self,
                413,
                f"Request bodies are limited to {site.max_body} bytes (max_body).",
            )
            return
        try:
            path = self.path
            if site.dashboard is not None and (
                path == b"/_portsuite" or path.startswith(b"/_portsuite/")
            ):
                self.setHeader(b"Server", SERVER)
                self.setHeader(b"Date", site.date)
                self.postpath = [unquote(p) for p in path[1:].split(b"/")]
                self.render(resource.getChildForRequest(site.root, self))
            else:
                self.render(site.static)
        except Exception:
            self.processingFailed(Failure())

    def set_common_headers(self) -> None:
        self.setHeader(b"Server", SERVER)
        self.setHeader(b"Date", self.site.date)

    def _start(self, code: int, reason: bytes, head: bytes, sent: int) -> tuple[bytes, ...]:
        """Mark the response started; its status line and headers, ready to write."""
        self.code = code
        self.code_message = reason
        self.startedWriting = 1
        self.sentLength = sent
        extra = b""
        connection = self.responseHeaders.getRawHeaders(b"Connection")
        if connection:
            extra = b"Connection: " + connection[0] + b"\r\n"
        return (
            self.clientproto,
            b" %d %s\r\nServer: portsuite\r\nDate: " % (code, reason),
            self.site.date,
            b"\r\n",
            head,
            extra,
            b"\r\n",
        )

    def send_whole(self, code: int, reason: bytes, head: bytes, body: bytes, sent: int) -> None:
        """
        Write a prebuilt response in one go and finish.

        @param head: the header lines (each ending in CRLF) after Server and Date.
        @param body: the body to send (empty for HEAD or 304).
        @param sent: the length to log.
        """
        if type(self.channel) is not Channel:
            self._send_public(code, reason, head, body)
            return
        self.channel.transport.writeSequence((*self._start(code, reason, head, sent), body))
        self.finish()

    def send_big(
        self, code: int, reason: bytes, head: bytes, first: bytes, rest: bytes, sent: int
    ) -> None:
        """
        Like L{send_whole}, for a body cached in two parts: the head and C{first}
        are written now, C{rest} in slices while the transport takes them (L{_Rest}:
        a slow reader holds at most a slice and the socket's buffer, never a copy of
        the whole body).
        """
        if type(self.channel) is not Channel:
            self._send_public(code, reason, head, first, rest)
            return
        parts = self._start(code, reason, head, sent)
        transport = self.channel.transport
        if getattr(transport, "sends_some", False):
            # the head alone (small, sent at once), the body straight from the cache
            producer = _Rest(self, [first, rest])
            self.registerProducer(producer, True)
            transport.writeSequence(parts)
        else:
            producer = _Rest(self, [rest])
            self.registerProducer(producer, True)
            transport.writeSequence((*parts, first))
        if not producer.paused:
            producer.resumeProducing()

    def _send_public(
        self, code: int, reason: bytes, head: bytes, body: bytes, rest: bytes = b""
    ) -> None:
        """The same answer through twisted.web's public Request API (HTTP/2 streams)."""
        self.setResponseCode(code, reason)
        self.set_common_headers()
        headers = self.responseHeaders
        for line in head.split(b"\r\n"):
            name, sep, value = line.partition(b": ")
            if sep:
                headers.setRawHeaders(name, [value])
        if body and self.method != b"HEAD":
            self.write(body)
            if rest:
                self.write(rest)  # queued as it is: HTTP/2 frames slice it (h2fast)
        self.finish()

    def processingFailed(self, reason: Failure) -> Any:
        log.failure(
            "{service}: error while answering {method} {uri}",
            reason,
            service=self.channel.site.service,
            method=self.method,
            uri=self.uri,
        )
        if self.startedWriting:
            self.channel.transport.loseConnection()
            return reason
        body = b"portsuite: internal error (logged on the server)\n"
        self.setHeader(b"Server", SERVER)
        self.setResponseCode(INTERNAL_SERVER_ERROR)
        self.responseHeaders.setRawHeaders(b"Content-Type", [b"text/plain; charset=utf-8"])
        self.responseHeaders.setRawHeaders(b"Content-Length", [b"%d" % len(body)])
        self.write(body)
        self.finish()
        return reason


class Site(server.Site):
    """
    The twisted.web site of one C{http} service: static files from C{root}, the
    dashboard under C{/_portsuite/}, an access log line per request.
    """

    protocol = Channel  # type: ignore[assignment]
    reactor: Any
    requestFactory = Request
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        static: Any,
        *,
        service: str,
        reactor: Any,
        dashboard: Any = None,
        head_timeout: float = 60.0,
        body_timeout: float = 60.0,
        max_body: int = 1 << 20,
        idle_timeout: float = 60.0,
        access_log: bool = True,
        h2: bool = True,
    ):
        root = resource.Resource()
        if dashboard is not None:
            root.putChild(b"_portsuite", dashboard)
        server.Site.__init__(self, root, reactor=reactor, timeout=idle_timeout)
        self.root = root
        self.static = static
        self.dashboard = dashboard
        self.service = service
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.h2 = h2
        self.max_body = max_body
        self.access_log = access_log
        self.date = datetimeToString(reactor.seconds())
        self._log_time = _log_time(reactor.seconds())
        self._log_lines: list[str] = []
        self._log_call: Any = None
        self._tick_call: Any = None
        # request heads seen, and what Channel._answer_quick makes of each
        self.quick_heads: dict[bytes, tuple[bytes, bool, str, str] | Literal[False]] = {}

    def reply_to_plain_text(self, data: bytes) -> bytes | None:
        """
        What a plain HTTP request sent to this site's TLS port reads (the core's TLS
        listener asks): a 400 that says to use https://, as nginx does.
        """
        if not re.match(rb"[A-Z]{3,10} ", data):
            return None
        return plain_response(
            400,
            b"Bad Request",
            "400 Bad Request\n\nportsuite: the plain HTTP request was sent to HTTPS port; "
            "use https:// (this port speaks TLS)\n",
        )

    def acceptableProtocols(self) -> list[bytes]:
        """What TLS offers by ALPN: C{h2} first when twisted.web can speak it."""
        return [b"h2", b"http/1.1"] if H2 is not None and self.h2 else [b"http/1.1"]

    def learn_quick(self, data: bytes) -> tuple[bytes, bool, str, str] | Literal[False]:
        """
        What L{Channel._answer_quick} needs of a whole request head, remembered in
        L{quick_heads} (clients repeat theirs byte for byte): the URL path, HEAD or
        not, and the request's parts of the access log line; False for a request
        that takes the full path (also remembered).
        """
        found = quick(data)
        if found is None:
            known: tuple[bytes, bool, str, str] | Literal[False] = False
        else:
            method, target, referer, agent = found
            path = target.partition(b"?")[0]
            if path.startswith(b"/_portsuite"):
                known = False  # the dashboard's, or one the full path checks for it
            else:
                known = (
                    path,
                    method == b"HEAD",
                    f'"{_quoted(method)} {_quoted(target)} HTTP/1.1" 200 ',
                    f' "{_quoted(referer)}" "{_quoted(agent)}"',
                )
        if len(data) <= QUICK_HEAD_BYTES:
            heads = self.quick_heads
            if len(heads) >= QUICK_HEADS:
                heads.clear()
            heads[data] = known
        return known

    def refuses_body(self, method: bytes, target: bytes) -> bytes | None:
        """
        The Allow value when a request with a body is refused from its head (405
        before the body is read); None when the body is wanted (the dashboard's
        pages decide for themselves).
        """
        if method in (b"GET", b"HEAD"):
            return None
        if self.dashboard is not None:
            path = target.partition(b"?")[0]
            if path[:7].lower() in (b"http://", b"https:/"):
                path = b"/" + path.split(b"/", 3)[-1] if path.count(b"/") >= 3 else b"/"
            if path == b"/_portsuite" or path.startswith(b"/_portsuite/"):
                return None
        return b"GET, HEAD"

    def buildProtocol(self, addr: Any) -> Any:
        channel: Any = self.protocol()
        channel.factory = self
        channel.site = self
        channel.requestFactory = self.requestFactory
        channel.callLater = self.reactor.callLater
        channel.timeOut = self.timeOut
        return channel

    def tick(self) -> None:
        """Once a second: the cached Date and log time, and the file cache's checks."""
        now = self.reactor.seconds()
        self.static.tick()
        self.date = datetimeToString(now)
        self._log_time = _log_time(now)
        # next update on the next whole second
        self._tick_call = self.reactor.callLater(1.0 - now % 1.0, self.tick)

    def startFactory(self) -> None:
        # not HTTPFactory's: it would open a log file this site never writes
        if self._tick_call is None:
            self.tick()

    def stopFactory(self) -> None:
        call: Any = self._tick_call
        if call is not None and call.active():
            call.cancel()
        self._tick_call = None
        self.flush_log(rearm=False)

    def flush_log(self, rearm: bool = True) -> None:
        """Emit the access log lines gathered since the last flush, as one event."""
        call = self._log_call
        self._log_call = None
        if call is not None and call.active():
            call.cancel()
        lines = self._log_lines
        if not lines:
            return  # quiet again: the next line is written at once
        self._log_lines = []
        self._emit("\n".join(lines), len(lines))
        if rearm:
            # still busy: keep gathering for another period
            self._log_call = self.reactor.callLater(LOG_FLUSH, self.flush_log)

    def _emit(self, text: str, count: int) -> None:
        log.info("{access_log}", access_log=text, service=self.service, requests=count)

    def log(self, request: Any) -> None:
        """
        One access log line, combined format, with the client's port.

        When the service is quiet the line is written at once; under load, lines are
        gathered and emitted together every L{LOG_FLUSH} seconds (or every
        L{LOG_BATCH} lines): one log event per request would cost more than the
        request itself.
        """
        if not self.access_log:
            return
        headers = request.requestHeaders
        referer = headers.getRawHeaders(b"referer")
        agent = headers.getRawHeaders(b"user-agent")
        channel = request.channel
        # the client's address, formatted once per connection
        peer = getattr(channel, "log_peer", None)
        if peer is None:
            peer = format_peer(request.client)
            if isinstance(channel, Channel):
                channel.log_peer = peer
        self.log_line(
            peer,
            request.method,
            request.uri,
            request.clientproto,
            request.code,
            request.sentLength,
            referer[0] if referer else None,
            agent[0] if agent else None,
        )

    def log_quick(self, channel: Channel, said: str, sent: str, agents: str) -> None:
        """L{log_line} for a request answered by L{Channel._answer_quick}."""
        prefix = channel.log_prefix
        if prefix is None:
            peer = channel.log_peer
            if peer is None:
                peer = channel.log_peer = format_peer(channel.getPeer())
            prefix = channel.log_prefix = f"{self.service}: {peer} - - "
        self._add_line(f"{prefix}{self._log_time} {said}{sent}{agents}")

    def log_line(
        self,
        peer: str,
        method: bytes,
        uri: bytes,
        version: bytes,
        code: int,
        sent: int,
        referer: bytes | None,
        agent: bytes | None,
    ) -> None:
        """The access log line of one request (see L{log}), from its parts."""
        line = (
            f"{self.service}: {peer} - - {self._log_time} "
            f'"{_quoted(method)} {_quoted(uri)} {_quoted(version)}" '
            f"{code} {sent or '-'} "
            f'"{_quoted(referer)}" "{_quoted(agent)}"'
        )
        self._add_line(line)

    def _add_line(self, line: str) -> None:
        if self._log_call is None:
            # quiet until now: write it, and gather what follows for a while
            self._emit(line, 1)
            self._log_call = self.reactor.callLater(LOG_FLUSH, self.flush_log)
            return
        self._log_lines.append(line)
        if len(self._log_lines) >= LOG_BATCH:
            self.flush_log()
