"""
What every page of the dashboard and of the lab guide shares: the language (from
C{?lang=}, then the C{portsuite_lang} cookie, then C{Accept-Language}), the frame
(header, navigation, language switch, favicon, stylesheet) and escaping.
"""

from __future__ import annotations

import json
import re
from html import escape
from importlib import resources
from typing import Any

from portsuite.api.i18n import LANGUAGES, negotiate, translator

COOKIE = b"portsuite_lang"
BASE = "/_portsuite/"
JS_FILES = ("app.js", "seq.js")
_JS_MESSAGE = re.compile(r"""\b_\("((?:[^"\\]|\\.)*)"\)""")


def choose_lang(request: Any) -> str:
    """The page's language; C{?lang=fr} also sets the cookie so that it sticks."""
    asked = (request.args.get(b"lang") or [b""])[0].decode("ascii", "replace").lower()
    if asked in LANGUAGES:
        request.addCookie(COOKIE, asked.encode(), path=BASE, max_age="31536000")
        return asked
    cookie = (request.getCookie(COOKIE) or b"").decode("ascii", "replace")
    if cookie in LANGUAGES:
        return cookie
    return negotiate((request.getHeader(b"accept-language") or b"").decode("latin-1"))


def gettext_for(lang: str) -> Any:
    return translator(lang).gettext


def static_text(name: str) -> str:
    return (
        resources.files("portsuite_services.http.dashboard")
        .joinpath("static", name)
        .read_text("utf-8")
    )


def js_messages(lang: str) -> dict[str, str]:
    """The translations of every C{_(...)} of the page scripts, for the page to embed."""
    _ = gettext_for(lang)
    out = {}
    for name in JS_FILES:
        for m in _JS_MESSAGE.finditer(static_text(name)):
            msgid = json.loads('"' + m.group(1) + '"')
            out[msgid] = _(msgid)
    return out


def json_script(ident: str, data: Any) -> str:
    """Data for the page's scripts, safe inside a <script> element."""
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")
    return f'<script type="application/json" id="{ident}">{text}</script>'


def layout(
    request: Any,
    lang: str,
    title: str,
    body: str,
    *,
    section: str = "",
    scripts: tuple[str, ...] = (),
    data: dict[str, Any] | None = None,
    wide: bool = False,
) -> bytes:
    """A whole page: the frame around C{body} (already HTML, escaped by the caller)."""
    _ = gettext_for(lang)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-cache")
    request.setHeader(b"Vary", b"Accept-Language, Cookie")
    request.setHeader(b"Content-Language", lang.encode())
    names = {"en": "English", "fr": "Français"}
    switch = " ".join(
        f'<a href="?lang={code}" hreflang="{code}" lang="{code}"'
        + (' aria-current="true"' if code == lang else "")
        + f">{names[code]}</a>"
        for code in LANGUAGES
    )
    nav = [
        ("dashboard", BASE, _("Live dashboard")),
        ("learn", BASE + "learn/", _("Lab guide")),
        ("sequences", BASE + "learn/sequences", _("Sequence diagrams")),
    ]
    links = " ".join(
        f'<a href="{href}"' + (' aria-current="page"' if key == section else "") + f">{label}</a>"
        for key, href, label in nav
    )
    payload = ""
    if scripts:
        payload = json_script("i18n", js_messages(lang)) + json_script(
            "page", dict(data or {}, lang=lang)
        )
    tags = "".join(f'<script src="{BASE}{s}"></script>' for s in scripts)
    page = f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · portsuite</title>
<link rel="icon" href="{BASE}favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{BASE}style.css">
</head>
<body class="{"wide" if wide else "doc"}">
<a class="skip" href="#main">{_("Skip to the content")}</a>
<header class="top">
  <span class="brand">portsuite</span>
  <nav aria-label="{_("Sections")}">{links}</nav>
  <nav class="lang" aria-label="{_("Language")}">{switch}</nav>
</header>
<main id="main" tabindex="-1">
{body}
</main>
<footer>portsuite · <a href="/">{_("home")}</a> · <a href="{BASE}api/services">JSON</a> ·
<a href="{BASE}metrics">metrics</a></footer>
{payload}{tags}
</body>
</html>
"""
    return page.encode("utf-8")


__all__ = ["choose_lang", "escape", "gettext_for", "js_messages", "layout"]
