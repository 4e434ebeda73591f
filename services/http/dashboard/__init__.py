"""
The live dashboard, mounted by every C{http} service at C{/_portsuite/}.

  - C{/_portsuite/}: a page meant to be projected in class: every service, its port
    and port class, its counters and the clients connected right now; it polls the
    JSON below every second, so it updates without a reload;
  - C{/_portsuite/api/services}: C{suite.snapshot()} as JSON, C{{"services": [...]}};
  - C{/_portsuite/metrics}: the same counters as Prometheus / OpenMetrics text
    (L{portsuite_services.http.dashboard.metrics}).
"""

from __future__ import annotations

import hashlib
import html
import json
from importlib import resources
from typing import Any

from twisted.web import http, resource

from portsuite.api import format_peer
from portsuite_services.http.conditions import etag_matches, http_date
from portsuite_services.http.dashboard.learn import Learn
from portsuite_services.http.dashboard.metrics import registry_for
from portsuite_services.http.dashboard.page import DashboardPage
from portsuite_services.http.pages import page

_ASSETS = {
    b"app.js": ("app.js", b"text/javascript; charset=utf-8"),
    b"seq.js": ("seq.js", b"text/javascript; charset=utf-8"),
    b"style.css": ("style.css", b"text/css; charset=utf-8"),
    b"favicon.svg": ("favicon.svg", b"image/svg+xml"),
    b"favicon.ico": ("favicon.ico", b"image/x-icon"),
}


MAX_VIEWERS = 256


def _asset(name: str) -> bytes:
    return (
        resources.files("portsuite_services.http.dashboard").joinpath("static", name).read_bytes()
    )


class Snapshot:
    """What the dashboard shows: the whole suite, or one service built alone."""

    def __init__(self, suite: Any, stats: Any, reactor: Any):
        self.suite = suite
        self.stats = stats
        self.reactor = reactor

    def __call__(self) -> dict[str, Any]:
        if self.suite is not None:
            snap = self.suite.snapshot()
            stats = self.suite.stats
        else:
            now = self.reactor.seconds()
            snap = {
                "started_at": None,
                "now": now,
                "config": None,
                "services": [self.stats.as_dict(now)],
            }
            stats = {self.stats.name: self.stats}
        for svc in snap["services"]:
            # the recent transcripts of services with trace = true
            own = stats.get(svc["name"])
            svc.setdefault("transcripts", list(own.transcripts) if own is not None else [])
        return snap


def error_page(request: Any, code: int, text: str) -> bytes:
    """The dashboard's errors, in the style of the rest of the server."""
    title = f"{code} {http.RESPONSES.get(code, b'').decode()}"
    path = html.escape(request.path.decode("latin-1"))
    body = page(
        title, f"<p>{html.escape(text)}</p>\n<p>You asked for <code>{path}</code>.</p>", True
    )
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return b"" if request.method == b"HEAD" else body


class NotFound(resource.Resource):
    """A styled 404 for every address of the dashboard that is not one of its pages."""

    isLeaf = True

    def render(self, request: Any) -> bytes:
        return error_page(request, 404, "There is no dashboard page here; it is at /_portsuite/.")


class _Leaf(resource.Resource):
    """A page of the dashboard: GET and HEAD, anything else a styled 405."""

    isLeaf = True

    def __init__(self, render: Any):
        resource.Resource.__init__(self)
        self._render = render

    def render(self, request: Any) -> bytes:
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD")
            return error_page(
                request,
                405,
                f"{request.method.decode('latin-1')[:20]} is not allowed here (GET, HEAD)",
            )
        body: bytes = self._render(request)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b"" if request.method == b"HEAD" or request.code == 304 else body


class _Published(resource.Resource):
    """A folder of the dashboard (C{api/}) where services may publish pages too."""

    def __init__(self, dashboard: Any, prefix: bytes):
        resource.Resource.__init__(self)
        self.dashboard = dashboard
        self.prefix = prefix

    def render(self, request: Any) -> bytes:
        return NotFound().render(request)

    def getChild(self, path: bytes, request: Any) -> Any:
        page = self.dashboard.published((self.prefix + b"/" + path).decode("utf-8", "replace"))
        if page is not None:
            return page
        return NotFound()


class Dashboard(resource.Resource):
    """C{/_portsuite/}: the page, its script and style, the JSON and the metrics."""

    def __init__(self, suite: Any, stats: Any, reactor: Any):
        resource.Resource.__init__(self)
        self.suite = suite
        self.snapshot = Snapshot(suite, stats, reactor)
        self.registry = registry_for(suite, self.snapshot)
        api: Any = _Published(self, b"api")
        api.putChild(b"services", _Leaf(self.render_services))
        self.putChild(b"api", api)
        self.putChild(b"metrics", _Leaf(self.render_metrics))  # type: ignore[arg-type]
        self._assets: dict[bytes, tuple[bytes, bytes]] = {}
        self.started = http.datetimeToString(int(reactor.seconds()))
        self.started_at = int(reactor.seconds())
        # the page itself (in the reader's language) and the lab guide
        self.own = getattr(stats, "name", None)
        self.viewers: dict[str, None] = {}  # peers that loaded dashboard pages, newest last
        started = int(reactor.seconds())
        self.putChild(b"", DashboardPage(suite, started))  # type: ignore[arg-type]
        self.putChild(b"index.html", DashboardPage(suite, started))  # type: ignore[arg-type]
        self.putChild(b"learn", Learn(suite, stats))  # type: ignore[arg-type]

    def published(self, path: str) -> Any:
        """A page another service published at /_portsuite/PATH (ServiceContext.publish)."""
        return getattr(self.suite, "published", {}).get(path)

    def getChildWithDefault(self, path: bytes, request: Any) -> Any:
        # remember the connections that load the dashboard: they are not the class's clients
        try:
            peer = format_peer(request.transport.getPeer())
        except Exception:
            peer = None
        if peer is not None:
            self.viewers.pop(peer, None)
            self.viewers[peer] = None
            while len(self.viewers) > MAX_VIEWERS:
                self.viewers.pop(next(iter(self.viewers)))
        return resource.Resource.getChildWithDefault(self, path, request)

    def getChild(self, path: bytes, request: Any) -> Any:
        if path in _ASSETS:
            return _Leaf(lambda req: self.render_asset(path, req))
        page = self.published(path.decode("utf-8", "replace"))
        if page is not None:
            return page
        return NotFound()

    def render(self, request: Any) -> bytes:
        # /_portsuite without the slash: relative links need the slash
        request.setResponseCode(301)
        request.setHeader(b"Location", b"/_portsuite/")
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"the dashboard is at /_portsuite/\n"

    def render_asset(self, name: bytes, request: Any) -> bytes:
        """The page, its script and style, with validators (a reload costs a 304)."""
        fname, ctype = _ASSETS[name]
        cached = self._assets.get(name)
        if cached is None:
            body = _asset(fname)
            etag = b'"%s"' % hashlib.sha256(body).hexdigest()[:20].encode("ascii")
            cached = self._assets[name] = (body, etag)
        body, etag = cached
        request.setHeader(b"Content-Type", ctype)
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"ETag", etag)
        request.setHeader(b"Last-Modified", self.started)
        inm = request.requestHeaders.getRawHeaders(b"if-none-match")
        ims = request.requestHeaders.getRawHeaders(b"if-modified-since")
        if inm is not None:
            fresh = etag_matches(b",".join(inm), etag)
        elif ims is not None:
            since = http_date(ims[0])
            fresh = since is not None and since >= self.started_at
        else:
            fresh = False
        if fresh:
            request.setResponseCode(304)
            return b""
        return body

    def render_services(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(self.mark_this_page(self.snapshot(), request), indent=1).encode("utf-8")

    def mark_this_page(self, snap: dict[str, Any], request: Any) -> dict[str, Any]:
        """
        The connection asking (this page, polling) marked C{this_page}, the other
        connections that loaded dashboard pages C{dashboard}: the page does not count
        them as the class's clients.
        """
        try:
            me = format_peer(request.transport.getPeer())
        except Exception:
            return snap
        for svc in snap["services"]:
            if svc["name"] != self.own:
                continue
            for c in svc.get("clients", []):
                if c.get("peer") == me:
                    c["this_page"] = True
                elif c.get("peer") in self.viewers:
                    c["dashboard"] = True
            # a traced dashboard service: its pages' own polling is not a conversation to draw
            svc["transcripts"] = [
                dict(t, dashboard=True)
                if t.get("peer") == me or t.get("peer") in self.viewers
                else t
                for t in svc.get("transcripts", [])
            ]
        return snap

    def render_metrics(self, request: Any) -> bytes:
        from prometheus_client.exposition import choose_encoder

        accept = request.getHeader(b"accept") or b""
        try:
            encoder, ctype = choose_encoder(accept.decode("latin-1"))
        except Exception:
            # prometheus_client cannot parse every Accept (a bad version=...):
            # the classic text format is always acceptable (RFC 9110, 12.5.1)
            encoder, ctype = choose_encoder("")
        request.setHeader(b"Content-Type", ctype.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return encoder(self.registry)  # type: ignore[no-any-return]
