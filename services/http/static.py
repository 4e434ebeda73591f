"""
Static files from one folder, safely (RFC 9110: GET, HEAD, conditional requests,
single byte ranges).

Safety rules, checked on every path before the file system is touched:

  - the URL path is percent-decoded once, segment by segment; a segment that decodes
    to C{..}, C{.}, or that holds a slash, a backslash or a NUL is refused (400);
  - no dotfile or dot-folder is served (404), nor C{.rpy}/C{.epy} scripts, which are
    neither run nor shown (403);
  - the real path (symlinks resolved) must stay inside C{root}: a symlink that leads
    out of it is answered 404 like a missing file;
  - only regular files are opened (never a FIFO or a device).

Speed: the metadata and prebuilt headers of every file served, and the bodies of
files up to L{SMALL}, are cached by URL path. An entry is checked against the file
(inode, size, mtime: one C{stat}) at most once per L{tick} (the site ticks every
second), so an edited file is served fresh within a second. Bigger files are streamed
by L{FileProducer}. On plain TCP, every body above L{SPLIT} (cached or not) goes out
by C{sendfile}: the kernel copies the file to the socket, and a client that stops
reading holds nothing here. On TLS and HTTP/2 the cached copy is written (or the file
read 64 KiB at a time).
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
import time
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import http, resource, server
from zope.interface import implementer

from portsuite_services.http.conditions import etag_matches, http_date, parse_range
from portsuite_services.http.pages import human_size, page
from portsuite_services.http.paths import (
    INDEX_FILES,
    SCRIPT_SUFFIXES,
    Refused,
    inside,
)
from portsuite_services.http.paths import segments as segments_of

log = Logger(namespace="portsuite.http")

# bodies up to this size are kept in memory
SMALL = 4 << 20
# bodies above this size are written in two steps (see Request.send_big)
SPLIT = 1 << 16
CACHE_BYTES = 64 << 20
CACHE_ENTRIES = 4096

_types = mimetypes.MimeTypes()
_EXTRA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon",
    ".md": "text/markdown",
    ".toml": "application/toml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".py": "text/x-python",
    ".gz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}


def content_type(name: str) -> bytes:
    """The Content-Type for a file name; text types say they are UTF-8."""
    ext = os.path.splitext(name)[1].lower()
    ctype = _EXTRA_TYPES.get(ext)
    if ctype is None:
        ctype, _encoding = _types.guess_type(name, strict=False)
        if ctype is None:
            ctype = "application/octet-stream"
    if ctype.startswith("text/") or ctype in ("application/json", "image/svg+xml"):
        ctype += "; charset=utf-8"
    return ctype.encode("ascii")


@attrs.define(eq=False)
class Entry:
    """A file as served: its identity (to notice changes), headers, maybe its body."""

    path: str  # the path below root, symlinks not resolved (stat follows them)
    key: tuple[int, int, int, int]  # (ino, dev, size, mtime_ns)
    size: int
    mtime: int  # whole seconds, as Last-Modified shows it
    etag: bytes
    last_modified: bytes
    head: bytes  # the header lines of a full 200 answer
    validators: bytes  # ETag and Last-Modified lines (for 304 and 206)
    ctype: bytes
    body: bytes | None = None  # the whole body, when cached and up to SPLIT
    first: bytes = b""  # a body above SPLIT, cached in two parts
    rest: bytes = b""
    checked: int = 0  # the StaticFiles.generation it was last checked in
    size_text: str = attrs.field(init=False)  # the size as the access log shows it

    def __attrs_post_init__(self) -> None:
        self.size_text = str(self.size) if self.size else "-"

    @property
    def cached(self) -> bool:
        return self.body is not None or bool(self.rest)

    def part(self, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of a cached body."""
        if self.body is not None:
            return self.body[start:stop]
        n = len(self.first)
        if stop <= n:
            return self.first[start:stop]
        if start >= n:
            return self.rest[start - n : stop - n]
        return self.first[start:] + self.rest[: stop - n]


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class StaticFiles(resource.Resource):
    """
    Serves the files of C{root} (see the module docstring for the rules).

    @ivar listing: show an index of folders without an C{index.html}.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, listing: bool = False, dashboard: bool = True
    ):
        resource.Resource.__init__(self)
        self.root = os.path.realpath(os.fspath(root))
        self.listing = listing
        self.dashboard = dashboard
        self._cache: dict[bytes, Entry] = {}
        self._cache_bytes = 0
        self.generation = 1

    def tick(self) -> None:
        """Cached entries are checked against their files again after a tick."""
        self.generation += 1

    # -- looking a path up -----------------------------------------------------

    def fresh(self, raw: bytes) -> Entry | None:
        """
        The cached entry of a small file for a URL path when it was checked against
        its file in this tick already (what L{lookup} would answer without touching
        the file system); None otherwise (L{lookup} then decides).
        """
        entry = self._cache.get(raw)
        if entry is not None and entry.checked == self.generation and entry.body is not None:
            return entry
        return None

    def inside(self, real: str) -> bool:
        return inside(self.root, real)

    def lookup(self, raw: bytes) -> Entry | tuple[str, list[str]]:
        """
        The cached entry for a URL path, or (folder path, segments) for a folder
        that has no index file.

        @raise Refused: for every path not served.
        """
        entry = self._cache.get(raw)
        if entry is not None:
            if entry.checked == self.generation:
                return entry
            try:
                st = os.stat(entry.path)
            except OSError:
                st = None
            if st is not None and _key(st) == entry.key:
                entry.checked = self.generation
                return entry
            self._forget(raw)
        segments = segments_of(raw)
        path = os.path.join(self.root, *segments)
        real = os.path.realpath(path)
        if not self.inside(real):
            log.warn("refused {path}: it leads out of root (symlink?)", path=raw)
            raise Refused(404, "not found")
        try:
            st = os.stat(real)
        except OSError:
            raise Refused(404, "not found") from None
        if stat.S_ISDIR(st.st_mode):
            if segments and not raw.endswith(b"/"):
                # built from the clean segments: "//docs" must not become "//docs/",
                # which a browser reads as another host (an open redirect)
                where = "".join("/" + quote(os.fsencode(seg)) for seg in segments) + "/"
                raise Refused(301, "a folder", location=where.encode("ascii"))
            for index in INDEX_FILES:
                candidate = os.path.join(path, index)
                try:
                    ist = os.stat(candidate)
                except OSError:
                    continue
                if stat.S_ISREG(ist.st_mode) and self.inside(os.path.realpath(candidate)):
                    return self._remember(raw, candidate, ist)
            return (real, segments)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(404, "not found")
        if segments and segments[-1].lower().endswith(SCRIPT_SUFFIXES):
            raise Refused(403, "scripts (.rpy, .epy) are neither run nor shown here")
        if raw.endswith(b"/"):
            raise Refused(404, "not found")
        return self._remember(raw, path, st)

    def _remember(self, raw: bytes, path: str, st: os.stat_result) -> Entry:
        mtime = int(st.st_mtime)
        etag = b'"%x-%x"' % (st.st_mtime_ns, st.st_size)
        last_modified = http.datetimeToString(mtime)
        ctype = content_type(path)
        # no-cache: browsers may keep the file but must ask (a cheap 304) before
        # showing it, so an edited page shows on the next reload
        validators = b"ETag: %s\r\nLast-Modified: %s\r\nCache-Control: no-cache\r\n" % (
            etag,
            last_modified,
        )
        head = (
            b"Content-Type: %s\r\nContent-Length: %d\r\nAccept-Ranges: bytes\r\n"
            b"X-Content-Type-Options: nosniff\r\n%s" % (ctype, st.st_size, validators)
        )
        entry = Entry(
            path=path,
            key=_key(st),
            size=st.st_size,
            mtime=mtime,
            etag=etag,
            last_modified=last_modified,
            head=head,
            validators=validators,
            ctype=ctype,
            checked=self.generation,
        )
        if st.st_size <= SMALL:
            try:
                with open(path, "rb") as f:
                    body = f.read(SMALL + 1)
                    fst = os.fstat(f.fileno())
            except OSError:
                raise Refused(404, "not found") from None
            if _key(fst) != entry.key or len(body) != st.st_size:
                # changed while we read it: stream it this time, keep nothing
                return entry
            if len(body) > SPLIT:
                entry.first, entry.rest = body[:SPLIT], body[SPLIT:]
            else:
                entry.body = body
        if len(self._cache) >= CACHE_ENTRIES or self._cache_bytes > CACHE_BYTES:
            self._cache.clear()
            self._cache_bytes = 0
        self._cache[raw] = entry
        self._cache_bytes += entry.size if entry.cached else 0
        return entry

    def _forget(self, raw: bytes) -> None:
        entry = self._cache.pop(raw, None)
        if entry is not None:
            self._cache_bytes -= entry.size if entry.cached else 0

    # -- answering ----------------------------------------------------------------

    isLeaf = True

    def render(self, request: Any) -> Any:
        """twisted.web's entry point: every method, every path below this resource."""
        self.serve(request)
        return server.NOT_DONE_YET

    def serve(self, request: Any) -> None:
        method = request.method
        if method != b"GET" and method != b"HEAD":
            request.setHeader(b"Allow", b"GET, HEAD")
            self.error(
                request,
                405,
                f"{_safe(method)} is not allowed here; this server only reads files (GET, HEAD)",
            )
            return
        try:
            found = self.lookup(request.path)
        except Refused as r:
            self.refused(request, r)
            return
        if isinstance(found, tuple):
            self.folder(request, *found)
            return
        self.send(request, found)

    def send(self, request: Any, entry: Entry) -> None:
        head_only = request.method == b"HEAD"
        headers = request.requestHeaders
        # preconditions in RFC 9110's order (13.2.2): If-Match, else If-Unmodified-Since
        im = headers.getRawHeaders(b"if-match")
        if im is not None:
            if not etag_matches(b",".join(im), entry.etag, strong=True):
                self.failed_precondition(request, entry, "If-Match")
                return
        else:
            ius = headers.getRawHeaders(b"if-unmodified-since")
            if ius is not None:
                since = http_date(ius[0])
                if since is not None and entry.mtime > since:
                    self.failed_precondition(request, entry, "If-Unmodified-Since")
                    return
        # conditional GET (RFC 9110, 13.1): If-None-Match wins over If-Modified-Since
        inm = headers.getRawHeaders(b"if-none-match")
        if inm is not None:
            if etag_matches(b",".join(inm), entry.etag):
                request.send_whole(304, b"Not Modified", entry.validators, b"", 0)
                return
        else:
            ims = headers.getRawHeaders(b"if-modified-since")
            if ims is not None:
                since = http_date(ims[0])
                # a date in the future is ignored (RFC 9110, 13.1.3), as nginx does
                if since is not None and entry.mtime <= since <= time.time():
                    request.send_whole(304, b"Not Modified", entry.validators, b"", 0)
                    return
        rng = headers.getRawHeaders(b"range")
        if rng is not None and not head_only:
            if_range = headers.getRawHeaders(b"if-range")
            if if_range is None or if_range[0] in (entry.etag, entry.last_modified):
                wanted = parse_range(rng[0], entry.size)
                if wanted is False:
                    text = (
                        b"portsuite: the range starts at or past the end of the file (%d bytes)\n"
                        % (entry.size)
                    )
                    request.send_whole(
                        416,
                        b"Range Not Satisfiable",
                        b"Content-Range: bytes */%d\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Length: %d\r\n" % (entry.size, len(text)),
                        text,
                        len(text),
                    )
                    return
                if wanted is not None:
                    self.send_range(request, entry, *wanted)  # type: ignore[misc]
                    return
        if head_only:
            request.send_whole(200, b"OK", entry.head, b"", 0)
        elif entry.body is not None:
            request.send_whole(200, b"OK", entry.head, entry.body, entry.size)
        elif entry.rest:
            if getattr(getattr(request.channel, "transport", None), "sends_files", False):
                # plain TCP: the kernel sends the file (sendfile), a third less cpu
                # per MiB than writing the cached copy, and nothing held per client
                self.stream(request, entry, None)
            else:
                request.send_big(200, b"OK", entry.head, entry.first, entry.rest, entry.size)
        else:
            self.stream(request, entry, None)

    def failed_precondition(self, request: Any, entry: Entry, header: str) -> None:
        request.setHeader(b"ETag", entry.etag)
        request.setHeader(b"Last-Modified", entry.last_modified)
        self.error(
            request,
            412,
            f"The {header} condition of this request does not hold for the file as "
            "it is now (it changed since your copy).",
        )

    def send_range(self, request: Any, entry: Entry, first: int, last: int) -> None:
        length = last - first + 1
        head = (
            b"Content-Type: %s\r\nContent-Length: %d\r\nContent-Range: bytes %d-%d/%d\r\n"
            b"Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n%s"
            % (entry.ctype, length, first, last, entry.size, entry.validators)
        )
        if entry.cached:
            request.send_whole(206, b"Partial Content", head, entry.part(first, last + 1), length)
            return
        self.stream(request, entry, (first, length, head))

    def stream(self, request: Any, entry: Entry, part: tuple[int, int, bytes] | None) -> None:
        """Files too big for the cache: read and sent 64 KiB at a time (L{FileProducer})."""
        try:
            f = open(entry.path, "rb")
        except OSError:
            self.error(request, 404, "There is no file at this address.", title="404 Not Found")
            return
        if _key(os.fstat(f.fileno())) != entry.key:
            # not the file that was checked (replaced since, maybe by a symlink out)
            f.close()
            self._forget(request.path)
            self.error(request, 404, "There is no file at this address.", title="404 Not Found")
            return
        request.set_common_headers()
        headers = request.responseHeaders
        headers.setRawHeaders(b"Content-Type", [entry.ctype])
        headers.setRawHeaders(b"Accept-Ranges", [b"bytes"])
        headers.setRawHeaders(b"X-Content-Type-Options", [b"nosniff"])
        headers.setRawHeaders(b"ETag", [entry.etag])
        headers.setRawHeaders(b"Last-Modified", [entry.last_modified])
        headers.setRawHeaders(b"Cache-Control", [b"no-cache"])
        if part is None:
            first, length = 0, entry.size
        else:
            first, length, _head = part
            request.setResponseCode(206)
            headers.setRawHeaders(
                b"Content-Range", [b"bytes %d-%d/%d" % (first, first + length - 1, entry.size)]
            )
        headers.setRawHeaders(b"Content-Length", [b"%d" % length])
        FileProducer(request, f, first, length).start()

    # -- pages ----------------------------------------------------------------------

    def refused(self, request: Any, r: Refused) -> None:
        if r.code == 301:
            location = r.location or b"/"
            query = request.uri.partition(b"?")[2]
            if query:
                location += b"?" + query
            body = page(
                "Moved",
                f'<p>This is a folder: <a href="{html.escape(location.decode("latin-1"))}">follow the link with a slash</a>.</p>',
                self.dashboard,
            )
            request.set_common_headers()
            request.setResponseCode(301)
            request.setHeader(b"Location", location)
            request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
            request.setHeader(b"Content-Length", b"%d" % len(body))
            request.write(b"" if request.method == b"HEAD" else body)
            request.finish()
            return
        messages = {
            400: ("400 Bad Request", r.reason),
            403: ("403 Forbidden", r.reason),
            404: ("404 Not Found", "There is no file at this address."),
        }
        title, text = messages.get(r.code, (f"{r.code}", r.reason))
        self.error(request, r.code, text, title=title)

    def error(self, request: Any, code: int, text: str, title: str | None = None) -> None:
        if title is None:
            title = f"{code} {http.RESPONSES.get(code, b'').decode()}"
        path = html.escape(request.path.decode("latin-1"))
        body = page(
            title,
            f"<p>{html.escape(text)}</p>\n<p>You asked for <code>{path}</code>.</p>",
            self.dashboard,
        )
        request.set_common_headers()
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(b"" if request.method == b"HEAD" else body)
        request.finish()

    def folder(self, request: Any, real: str, segments: list[str]) -> None:
        if not self.listing:
            self.error(
                request,
                403,
                "This folder has no index.html, and folder listings are off "
                "(listing = true in the service's config turns them on).",
                title="403 No listing here",
            )
            return
        rows = []
        if segments:
            rows.append('<tr><td><a href="../">../</a></td><td></td></tr>')
        try:
            names = sorted(os.listdir(real))
        except OSError:
            self.error(request, 403, "This folder cannot be read.")
            return
        items = []
        for name in names:
            if name.startswith(".") or name.lower().endswith(SCRIPT_SUFFIXES):
                continue
            full = os.path.join(real, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if not self.inside(os.path.realpath(full)):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            items.append((not is_dir, name, is_dir, st.st_size))
        for _, name, is_dir, size in sorted(items):
            href = quote(os.fsencode(name)) + ("/" if is_dir else "")
            shown = html.escape(name) + ("/" if is_dir else "")
            rows.append(
                f'<tr><td><a href="{href}">{shown}</a></td>'
                f'<td class="n">{"" if is_dir else human_size(size)}</td></tr>'
            )
        where = "/" + "/".join(segments) + ("/" if segments else "")
        body = page(
            f"Index of {where}",
            "<table>\n" + "\n".join(rows) + "\n</table>",
            self.dashboard,
        )
        request.set_common_headers()
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(b"" if request.method == b"HEAD" else body)
        request.finish()


@implementer(IPushProducer)
class FileProducer:
    """
    Sends bytes [offset, offset + length) of an open file to a request, a chunk at a
    time, as fast as the transport takes them (a push producer: the transport pauses
    it when its buffer is full, resumes it when drained; no timer, no global reactor).
    """

    chunk = 1 << 16

    def __init__(self, request: Any, f: Any, offset: int, length: int):
        self.request: Any = request
        self.file = f
        self.offset = offset
        self.remaining = length
        self.paused = False

    def start(self) -> None:
        self.file.seek(self.offset)
        self.request.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        request = self.request
        if request is None:
            return
        transport = request.channel.transport
        if getattr(transport, "sends_files", False):
            self._send_file(transport)
            return
        while not self.paused and self.request is not None:
            data = self.file.read(min(self.chunk, self.remaining))
            if not data:
                # the file shrank under us: the promised length cannot be kept
                request = self._done()
                transport = request.channel.transport
                request.finish()
                transport.loseConnection()
                return
            self.remaining -= len(data)
            self.request.write(data)
            if self.remaining <= 0 and self.request is not None:
                self._done().finish()

    def _send_file(self, transport: Any) -> None:
        """
        Plain TCP: the kernel copies the file to the socket (C{sendfile}), as fast
        as the client reads; nothing of it is buffered here, however slow the
        client is (the producer waits, paused, until the socket drains).
        """
        request = self.request
        if not request.startedWriting:
            request.write(b"")  # the status line and headers, through twisted.web
        fd = self.file.fileno()
        while not self.paused and self.request is not None and self.remaining > 0:
            try:
                n = transport.send_file(fd, self.offset, self.remaining)
            except (EOFError, OSError):
                # the file shrank under us: the promised length cannot be kept
                request = self._done()
                request.finish()
                transport.loseConnection()
                return
            self.offset += n
            self.remaining -= n
            request.sentLength += n  # what the access log shows
            if self.remaining > 0:
                return  # the socket is full: resumed when it drains
        if self.remaining <= 0 and self.request is not None:
            self._done().finish()

    def stopProducing(self) -> None:
        self.request = None
        self.file.close()

    def _done(self) -> Any:
        request, self.request = self.request, None
        self.file.close()
        request.unregisterProducer()
        return request


def _safe(method: bytes) -> str:
    return method.decode("latin-1")[:20]
