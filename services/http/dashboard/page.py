"""C{/_portsuite/}: the live dashboard page, in the reader's language."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.web import http, resource

from portsuite.api.i18n import IANA_DYNAMIC, ephemeral_range
from portsuite_services.http.dashboard.pages import choose_lang, escape, gettext_for, layout


def port_classes(lang: str) -> str:
    """The three classes of ports, and this machine's real range for client ports."""
    _ = gettext_for(lang)
    eph = ephemeral_range()
    here = (
        _("this machine gives its clients ports {lo}–{hi}").format(lo=eph[0], hi=eph[1])
        if eph
        else _("this machine's range of client ports is not known")
    )
    return f"""<ul class="classes">
<li><span class="badge well-known">{_("well-known")}</span> 0–1023 · {_("standard services (echo 7, HTTP 80, SMTP 25); binding them needs root")}</li>
<li><span class="badge registered">{_("registered")}</span> 1024–49151 · {_("assigned to applications (MySQL 3306, Redis 6379, HTTP-alt 8080)")}</li>
<li><span class="badge dynamic">{_("dynamic")}</span> {IANA_DYNAMIC[0]}–{IANA_DYNAMIC[1]} · {_("never assigned: for client (ephemeral) ports")} — <b class="ephemeral">{escape(here)}</b></li>
</ul>"""


class DashboardPage(resource.Resource):
    isLeaf = True

    def __init__(self, suite: Any = None, started_at: int | None = None):
        resource.Resource.__init__(self)
        self.suite = suite
        self.started_at = started_at  # Last-Modified: the page changes only with the suite

    def render(self, request: Any) -> bytes:
        """GET/HEAD with validators (a reload costs a 304) and nosniff, as the assets."""
        body = resource.Resource.render(self, request)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-cache")
        etag = b'"%s"' % hashlib.sha256(body).hexdigest()[:20].encode("ascii")
        # language and suite make the page: the tag changes with either
        request.setHeader(b"Vary", b"Accept-Language, Cookie")
        cached = request.setETag(etag)
        if self.started_at is not None:
            if request.getHeader(b"if-none-match") is None:
                cached = request.setLastModified(self.started_at)
            else:  # RFC 9110 13.2.2: If-None-Match decides; say Last-Modified, judge nothing
                request.setHeader(b"Last-Modified", http.datetimeToString(self.started_at))
        if cached == http.CACHED:
            request.setHeader(b"Content-Length", b"0")
            return b""
        return body

    def service_pages(self) -> str:
        """Links to the pages services published (mail's message view…), after the guide."""
        published = getattr(self.suite, "published", {}) or {}
        names = sorted(p for p in published if p and not p.startswith("api/"))
        return "".join(f' · <a href="{escape(n)}/">{escape(n)}</a>' for n in names)

    def render_GET(self, request: Any) -> bytes:
        lang = choose_lang(request)
        _ = gettext_for(lang)
        eph = ephemeral_range()
        body = f"""
<div class="dash-head">
  <h1>{_("portsuite live")}</h1>
  <p id="summary" class="summary" aria-live="polite">{_("loading…")}</p>
  <p id="status" class="status" role="status">{_("connecting…")}</p>
</div>
<noscript><p>{_("This page updates itself with JavaScript, which is off. The same data, as JSON:")}
<a href="api/services">api/services</a>.</p></noscript>
<p class="lead">{_("One service = one port. Each card is a server of this suite; the numbers change as clients connect, talk and leave.")}
<a href="learn/">{_("Lab guide")} →</a>{self.service_pages()}</p>
<div id="cards" class="cards" aria-label="{_("Services")}"><p class="empty">{_("waiting for the suite…")}</p></div>
<section class="legend" aria-labelledby="classes-title">
<h2 id="classes-title">{_("Port classes (IANA)")}</h2>
{port_classes(lang)}
</section>
<section id="sequences" class="sequences" hidden aria-labelledby="seq-title">
<h2 id="seq-title">{_("Recent conversations, as sequence diagrams")}</h2>
<div id="sequence-list" class="sequence-list"></div>
</section>
"""
        data = {"ephemeral": list(eph) if eph else None, "mode": "dashboard"}
        return layout(
            request,
            lang,
            _("portsuite live"),
            body,
            section="dashboard",
            scripts=("seq.js", "app.js"),
            data=data,
            wide=True,
        )

    def render_HEAD(self, request: Any) -> bytes:
        body = self.render_GET(request)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b""
