"""
The dashboard's mail view, and a JSON API for tests that check "the email was sent".

Published on every http dashboard of the suite (C{ServiceContext.publish}):

    GET    /_portsuite/api/mail/                  mailboxes: name, messages, unseen, size
    GET    /_portsuite/api/mail/NAME              its messages, newest first (?limit=200)
    DELETE /_portsuite/api/mail/NAME              empty the mailbox
    GET    /_portsuite/api/mail/NAME/ID           one message: headers, text, html?, parts
    GET    /_portsuite/api/mail/NAME/ID/raw       its source, as stored
    GET    /_portsuite/api/mail/NAME/ID/html      its HTML body, for a sandboxed iframe
    DELETE /_portsuite/api/mail/NAME/ID           delete one message
    GET    /_portsuite/mail/                      the page (lists, reads; live, polling)

An HTML body is served with a Content-Security-Policy that forbids scripts and every
remote load (images, styles, fonts, frames: only inline styles and data: images), and
the page shows it in an C{<iframe sandbox>}: a message can neither run code nor tell
its sender it was opened.
"""

from __future__ import annotations

import email
import email.policy
import json
from email.utils import getaddresses, parsedate_to_datetime
from importlib import resources
from typing import Any

from twisted.web import pages, resource

from portsuite_services.mail.store import FLAG_LETTERS, Mailbox, MailStore, Message, valid_name

HTML_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "form-action 'none'; base-uri 'none'; sandbox"
)
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
MAX_LIMIT = 1000
SUMMARY_BYTES = 64 * 1024  # headers are read from at most this much of a message


def publish(ctx: Any, store: MailStore, primary: bool = False) -> None:
    """
    Mount the API and the page. smtp's store wins (C{primary}); pop3 and imap publish
    theirs only when no smtp did, so a suite with only pop3 still has a mail view.
    """
    suite = getattr(ctx, "suite", None)
    if suite is None:
        return
    existing = getattr(suite, "published", {}).get("api/mail")
    if isinstance(existing, MailAPI) and not primary:
        return
    ctx.publish("api/mail", MailAPI(store))
    ctx.publish("mail", MailPage())


def _json(request: Any, value: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8")


def _error(request: Any, code: int, text: str) -> bytes:
    return _json(request, {"error": text}, code)


def _text(value: Any) -> str:
    return str(value) if value is not None else ""


def _addresses(value: Any) -> list[str]:
    if not value:
        return []
    out = []
    for name, addr in getaddresses([str(value)]):
        out.append(f"{name} <{addr}>" if name else addr)
    return out


def _date(value: Any) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value)).isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def _parse(data: bytes) -> Any:
    return email.message_from_bytes(data, policy=email.policy.default)


def _safe_header(msg: Any, name: str) -> str:
    try:
        return _text(msg.get(name))
    except Exception:  # a malformed header must not take the view down
        return ""


class Summaries:
    """The list view's fields of each message, parsed once per message."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], dict[str, Any]] = {}

    def of(self, box: Mailbox, msg: Message) -> dict[str, Any]:
        key = (box.name, msg.key)
        summary = self.cache.get(key)
        if summary is None:
            head = box.read(msg)[:SUMMARY_BYTES].split(b"\n\n", 1)[0] + b"\n\n"
            parsed = _parse(head)
            summary = {
                "id": msg.key,
                "uid": msg.uid,
                "from": _addresses(_safe_header(parsed, "from")),
                "to": _addresses(_safe_header(parsed, "to")),
                "subject": _safe_header(parsed, "subject"),
                "date": _date(_safe_header(parsed, "date")),
                "size": msg.size,
                "received": msg.mtime,
            }
            if len(self.cache) > 100000:
                self.cache.clear()
            self.cache[key] = summary
        return {
            **summary,
            "flags": [FLAG_LETTERS[x] for x in sorted(msg.flags) if x in FLAG_LETTERS],
        }


def message_detail(box: Mailbox, msg: Message, summary: dict[str, Any]) -> dict[str, Any]:
    data = box.read(msg)
    parsed = _parse(data)
    headers = []
    for name, value in parsed.raw_items():
        headers.append([name, " ".join(str(value).split())])
    text = html = None
    parts = []
    try:
        body = parsed.get_body(preferencelist=("plain",))
        if body is not None:
            text = body.get_content()
    except Exception:
        text = None
    try:
        hbody = parsed.get_body(preferencelist=("html",))
        html = hbody is not None
    except Exception:
        html = False
    if text is None and not parsed.is_multipart():
        text = data.split(b"\n\n", 1)[-1].decode("utf-8", "replace")
    for part in parsed.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        if disposition == "attachment" or part.get_filename():
            payload = part.get_payload(decode=True) or b""
            parts.append(
                {
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "size": len(payload),
                }
            )
    return {**summary, "headers": headers, "text": text, "html": bool(html), "attachments": parts}


def html_body(box: Mailbox, msg: Message) -> str | None:
    try:
        hbody = _parse(box.read(msg)).get_body(preferencelist=("html",))
        return None if hbody is None else str(hbody.get_content())
    except Exception:
        return None


class MailAPI(resource.Resource):
    """C{/_portsuite/api/mail/…}"""

    isLeaf = True

    def __init__(self, store: MailStore):
        resource.Resource.__init__(self)
        self.store = store
        self.summaries = Summaries()

    def _route(
        self, request: Any
    ) -> tuple[Mailbox | None, Message | None, str | None, bytes | None]:
        parts = [p.decode("utf-8", "replace") for p in request.postpath if p]
        if len(parts) > 3:
            return None, None, None, _error(request, 404, "no such mail API path")
        if not parts:
            return None, None, None, None
        name = parts[0]
        if not valid_name(name):
            return None, None, None, _error(request, 404, "no such mailbox")
        box = self.store.mailbox(name)
        if len(parts) == 1:
            return box, None, None, None
        msg = box.by_key.get(parts[1])
        if msg is None:
            return box, None, None, _error(request, 404, "no such message")
        view = parts[2] if len(parts) == 3 else None
        if view not in (None, "raw", "html"):
            return box, msg, None, _error(request, 404, "use …/raw or …/html")
        return box, msg, view, None

    def render_GET(self, request: Any) -> bytes:
        box, msg, view, err = self._route(request)
        if err is not None:
            return err
        if box is None:
            return self._mailboxes(request)
        if msg is None:
            return self._messages(request, box)
        if view == "raw":
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            request.setHeader(b"Content-Security-Policy", b"default-src 'none'; sandbox")
            request.setHeader(b"Cache-Control", b"no-store")
            return box.read(msg)
        if view == "html":
            body = html_body(box, msg)
            if body is None:
                return _error(request, 404, "this message has no HTML body")
            request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
            request.setHeader(b"Content-Security-Policy", HTML_CSP.encode())
            request.setHeader(b"X-Content-Type-Options", b"nosniff")
            request.setHeader(b"Referrer-Policy", b"no-referrer")
            request.setHeader(b"Cache-Control", b"no-store")
            return body.encode("utf-8", "replace")
        return _json(request, message_detail(box, msg, self.summaries.of(box, msg)))

    def render_HEAD(self, request: Any) -> bytes:
        body = self.render_GET(request)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return b""

    def render_DELETE(self, request: Any) -> bytes:
        box, msg, view, err = self._route(request)
        if err is not None:
            return err
        if box is None or view is not None:
            return _error(request, 405, "DELETE a mailbox (…/mail/NAME) or a message (…/NAME/ID)")
        if msg is None:
            return _json(request, {"mailbox": box.name, "deleted": box.clear()})
        return _json(request, {"mailbox": box.name, "deleted": box.delete([msg])})

    def _mailboxes(self, request: Any) -> bytes:
        boxes = []
        for name in self.store.names():
            box = self.store.mailbox(name)
            boxes.append(
                {
                    "name": name,
                    "messages": len(box.messages),
                    "unseen": sum(1 for m in box.messages if "S" not in m.flags),
                    "size": sum(m.size for m in box.messages),
                }
            )
        return _json(
            request,
            {"version": self.store.version, "storage": _storage(self.store), "mailboxes": boxes},
        )

    def _messages(self, request: Any, box: Mailbox) -> bytes:
        try:
            limit = int(request.args.get(b"limit", [b"200"])[0])
        except ValueError:
            return _error(request, 400, "limit must be a number")
        limit = max(1, min(limit, MAX_LIMIT))
        newest = list(reversed(box.messages))[:limit]
        return _json(
            request,
            {
                "mailbox": box.name,
                "version": self.store.version,
                "total": len(box.messages),
                "messages": [self.summaries.of(box, m) for m in newest],
            },
        )


def _storage(store: MailStore) -> str:
    return "memory" if store.root is None else str(store.root)


def _asset(name: str) -> bytes:
    return (resources.files("portsuite_services.mail") / "static" / name).read_bytes()


class MailPage(resource.Resource):
    """C{/_portsuite/mail/}: the page, its script and its style."""

    ASSETS = {
        b"": ("mail.html", b"text/html; charset=utf-8"),
        b"mail.js": ("mail.js", b"text/javascript; charset=utf-8"),
        b"mail.css": ("mail.css", b"text/css; charset=utf-8"),
    }

    def __init__(self) -> None:
        resource.Resource.__init__(self)

    def getChild(self, path: bytes, request: Any) -> Any:
        if path in self.ASSETS and not request.postpath:
            return _Asset(*self.ASSETS[path])
        return pages.notFound("No such mail page", "The mail view is at /_portsuite/mail/")

    def render_GET(self, request: Any) -> bytes:
        request.setResponseCode(301)
        request.setHeader(b"Location", b"/_portsuite/mail/")
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"the mail view is at /_portsuite/mail/\n"


class _Asset(resource.Resource):
    isLeaf = True

    def __init__(self, name: str, ctype: bytes):
        resource.Resource.__init__(self)
        self.name = name
        self.ctype = ctype

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"Content-Type", self.ctype)
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Content-Security-Policy", PAGE_CSP.encode())
        return _asset(self.name)
