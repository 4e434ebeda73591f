"""
The HTTP/1.1 server side (RFC 9110, RFC 9112) on twisted.web, with portsuite's guards.

L{Channel} is Twisted's C{HTTPChannel} with two limits added:

  - a deadline for the whole request head: from the first byte of a request (or the
    connection, for the first one) to the blank line that ends its headers. A client
    that dribbles its headers byte by byte is cut off after C{head_timeout} seconds,
    however active it looks (the idle timeout alone cannot catch that);
  - a cap on the request body: a C{Content-Length} above C{max_body} is answered
    C{413} from the head, before any byte of the body is read; a chunked body is
    counted as it arrives and cut at the cap. Bodies are kept in memory (they are
    bounded), never spooled to a temporary file.

L{Request} answers with C{Server: portsuite} (no version) and a cached C{Date}, and
sends the static files' prebuilt responses in one write. L{Site} writes one access
log line per request, in the combined format with the client's port, to the Twisted
log, service name first.
"""

from __future__ import annotations

import re
import time
from io import BytesIO
from typing import Any

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

log = Logger(namespace="portsuite.http")

SERVER = b"portsuite"
# access log lines are emitted in batches: at most this late, at most this many
LOG_FLUSH = 0.25
LOG_BATCH = 200

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def plain_response(code: int, reason: bytes, text: str, close: bool = True) -> bytes:
    """A whole short text/plain response, for answers sent outside a L{Request}."""
    body = text.encode("utf-8")
    return (
        b"HTTP/1.1 %d %s\r\nServer: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\n%s\r\n%s"
        % (code, reason, SERVER, len(body), b"Connection: close\r\n" if close else b"", body)
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
    HTTP/1.1 (RFC 9112) connection with a request-head deadline and a body cap.
    """

    site: Site
    transport: Any
    callLater: Any
    _head_call: Any = None
    _host: Any = None
    _peer: Any = None
    # True while we wait for (or read) a request head
    _awaiting_head = True
    _refused = False

    def connectionMade(self) -> None:
        HTTPChannel.connectionMade(self)
        # the first head's clock starts with the connection: a client that
        # connects and says nothing is cut off as well
        self._head_call = self.callLater(self.site.head_timeout, self._head_expired)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head and self._head_call is None:
            self._head_call = self.callLater(self.site.head_timeout, self._head_expired)
        HTTPChannel.dataReceived(self, data)

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        HTTPChannel.rawDataReceived(self, data)

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

    def _head_expired(self) -> None:
        self._head_call = None
        self._refused = True
        log.info(
            "{service}: {peer} did not send a complete request head within {timeout}s; closing",
            service=self.site.service,
            peer=format_peer(self.transport.getPeer()),
            timeout=self.site.head_timeout,
        )
        self.transport.write(
            plain_response(
                408,
                b"Request Timeout",
                f"portsuite: the request head must arrive within {self.site.head_timeout:g}s\n",
            )
        )
        self._close_soon()

    def _close_soon(self) -> None:
        """Close after what was written is sent; abort if the client does not read it."""
        if self.abortTimeout is not None and self._abortingCall is None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)
        self.loseConnection()

    def allHeadersReceived(self) -> None:
        self._cancel_head()
        self._awaiting_head = False
        length = self.length
        if length is not None and length > self.site.max_body:
            # answered from the head, before the body is read (and before any
            # "100 Continue" invites the client to send it)
            self.refuse_body(length)
            return
        HTTPChannel.allHeadersReceived(self)

    def refuse_body(self, length: int | None = None) -> None:
        """Answer 413 and close: the request body is larger than C{max_body}."""
        if self._refused:
            return
        self._refused = True
        cap = self.site.max_body
        said = f"{length} bytes" if length is not None else "a chunked body that grew"
        request = self.requests[-1] if self.requests else None
        log.info(
            "{service}: {peer} sent {said} of request body, over max_body = {cap}; answered 413",
            service=self.site.service,
            peer=format_peer(self.transport.getPeer()),
            said=said,
            cap=cap,
        )
        if request is not None:
            request.content = BytesIO()
        self.transport.write(
            plain_response(
                413,
                b"Content Too Large",
                f"portsuite: request bodies are limited to {cap} bytes (max_body)\n",
            )
        )
        self._close_soon()

    def allContentReceived(self) -> None:
        if self._refused:
            return
        HTTPChannel.allContentReceived(self)

    def requestDone(self, request: Any) -> None:
        self._awaiting_head = True
        HTTPChannel.requestDone(self, request)

    def timeoutConnection(self) -> None:
        # the idle timeout (between requests): no log line per idle browser socket
        self._cancel_head()
        self._close_soon()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._cancel_head()
        HTTPChannel.connectionLost(self, reason)


@implementer(IPushProducer)
class _Rest:
    """Writes the rest of a cached body once the transport asks for more."""

    def __init__(self, request: Request, rest: bytes):
        self.request: Request | None = request
        self.rest = rest
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        request = self.request
        if request is None:
            return
        self.request = None
        request.channel.transport.write(self.rest)
        request.unregisterProducer()
        request.finish()

    def stopProducing(self) -> None:
        self.request = None


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

    def handleContentChunk(self, data: bytes) -> None:
        content = self.content
        if content.tell() + len(data) > self.channel.site.max_body:
            self.channel.refuse_body()
            return
        content.write(data)

    def process(self) -> None:
        site = self.site = self.channel.site
        self.sitepath = []
        self.prepath = []
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
                site.static.serve(self)
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
        self.channel.transport.writeSequence((*self._start(code, reason, head, sent), body))
        self.finish()

    def send_big(
        self, code: int, reason: bytes, head: bytes, first: bytes, rest: bytes, sent: int
    ) -> None:
        """
        Like L{send_whole}, for a body cached in two parts: the head and C{first}
        (at least the transport's buffer size) are written now, C{rest} once the
        transport has sent them. C{rest} then reaches the socket as is: one big
        C{write} of head and body would make Twisted copy the whole body into a
        fresh buffer for every response.
        """
        parts = self._start(code, reason, head, sent)
        producer = _Rest(self, rest)
        self.registerProducer(producer, True)
        self.channel.transport.writeSequence((*parts, first))
        if not producer.paused:
            # the transport did not push back (TLS, tests): no reason to wait
            producer.resumeProducing()

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
        head_timeout: float = 10.0,
        max_body: int = 1 << 20,
        idle_timeout: float = 60.0,
        access_log: bool = True,
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
        self.max_body = max_body
        self.access_log = access_log
        self.date = datetimeToString(reactor.seconds())
        self._log_time = _log_time(reactor.seconds())
        self._log_lines: list[str] = []
        self._log_call: Any = None

    def buildProtocol(self, addr: Any) -> Any:
        channel: Any = self.protocol()
        channel.factory = self
        channel.site = self
        channel.requestFactory = self.requestFactory
        channel.callLater = self.reactor.callLater
        channel.timeOut = self.timeOut
        return channel

    def _updateLogDateTime(self) -> None:
        now = self.reactor.seconds()
        self.static.tick()
        self.date = datetimeToString(now)
        self._log_time = _log_time(now)
        # next update on the next whole second
        self._logDateTimeCall = self.reactor.callLater(1.0 - now % 1.0, self._updateLogDateTime)

    def startFactory(self) -> None:
        if self._logDateTimeCall is None:
            self._updateLogDateTime()

    def stopFactory(self) -> None:
        call: Any = self._logDateTimeCall
        if call is not None and call.active():
            call.cancel()
        self._logDateTimeCall = None
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
        line = (
            f"{self.service}: {format_peer(request.client)} - - {self._log_time} "
            f'"{_quoted(request.method)} {_quoted(request.uri)} {_quoted(request.clientproto)}" '
            f"{request.code} {request.sentLength or '-'} "
            f'"{_quoted(referer[0] if referer else None)}" "{_quoted(agent[0] if agent else None)}"'
        )
        if self._log_call is None:
            # quiet until now: write it, and gather what follows for a while
            self._emit(line, 1)
            self._log_call = self.reactor.callLater(LOG_FLUSH, self.flush_log)
            return
        self._log_lines.append(line)
        if len(self._log_lines) >= LOG_BATCH:
            self.flush_log()
