"""
C{/_portsuite/learn/}: the lab guide, in French and English.

  - one page per concept of the course (C{learn/<lang>/<slug>.html}, the prose of
    each language, with C{{{port:TYPE}}}, C{{{host:TYPE}}}, C{{{eph_lo}}}… filled in
    from the running suite);
  - one page per service of the running suite (C{learn/service/NAME}): what it does,
    its RFC, its well-known port and its port here, commands to try with this
    suite's host and port, an annotated sample session and, when traced, its live
    sequence diagrams;
  - the worksheets (TP), written for C{config/config.toml} as shipped;
  - C{learn/sequences}: the sequence diagrams of every traced service, live.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from twisted.web import resource
from twisted.web.pages import notFound

from portsuite.api import port_class
from portsuite.api.i18n import IANA_DYNAMIC, ephemeral_range
from portsuite_services.http.dashboard import samples
from portsuite_services.http.dashboard.page import port_classes
from portsuite_services.http.dashboard.pages import choose_lang, escape, gettext_for, layout


def N_(message: str) -> str:
    return message


CONCEPTS = ("protocol", "client-server", "many-clients", "one-port", "port-classes")
WORKSHEETS = ("tp-ephemeral", "tp-many-clients", "tp-http", "tp-mail", "tp-telnet-ssh", "tp-dns")
# the ports of config/config.toml as shipped, for a worksheet about a service not running
SHIPPED = {
    "echo": 7007,
    "daytime": 7013,
    "qotd": 7017,
    "chargen": 7019,
    "time": 7037,
    "http": 8080,
    "kv": 6379,
    "sql": 3306,
    "chat": 7200,
    "dns": 5053,
    "smtp": 2525,
    "pop3": 1110,
    "imap": 1143,
    "ssh": 2222,
    "telnet": 2323,
    "ftp": 2121,
}
WELL_KNOWN = {
    "echo": 7,
    "discard": 9,
    "daytime": 13,
    "qotd": 17,
    "chargen": 19,
    "time": 37,
    "http": 80,
    "dns": 53,
    "smtp": 25,
    "pop3": 110,
    "imap": 143,
    "ssh": 22,
    "telnet": 23,
    "ftp": 21,
    "kv": 6379,
    "sql": 3306,
}
# "try it": {host} {port}; the first line that applies is the one to start with
TRY = {
    "echo": ["nc {host} {port}", "echo hello | nc -u -w1 {host} {port}"],
    "discard": ["nc {host} {port}"],
    "daytime": ["nc {host} {port}", "telnet {host} {port}"],
    "qotd": ["nc {host} {port}"],
    "chargen": ["nc {host} {port} | head -5"],
    "time": ["nc {host} {port} | xxd"],
    "http": [
        "curl -v http://{host}:{port}/",
        "curl -I http://{host}:{port}/",
        "printf 'GET / HTTP/1.1\\r\\nHost: {host}\\r\\n\\r\\n' | nc {host} {port}",
    ],
    "kv": ["redis-cli -h {host} -p {port} ping", "redis-cli -h {host} -p {port} set name alice"],
    "sql": ["mysql -h {host} -P {port} -u alice -p"],
    "smtp": ["swaks --server {host}:{port} --to bob@lab.test", "telnet {host} {port}"],
    "pop3": ["telnet {host} {port}", "curl -u alice pop3://{host}:{port}/"],
    "imap": ["telnet {host} {port}", "curl -u alice imap://{host}:{port}/"],
    "ftp": ["lftp -u alice -p {port} {host}", "curl -u alice ftp://{host}:{port}/"],
    "ssh": ["ssh -p {port} alice@{host}"],
    "telnet": ["telnet {host} {port}"],
    "dns": [
        "dig @{host} -p {port} www.lab.test",
        "dig @{host} -p {port} SRV _http._tcp.lab.test +short",
    ],
    "chat": ["nc {host} {port}"],
}
DESCRIBE = {
    "echo": N_("sends back every byte it receives: the simplest request → response"),
    "discard": N_("swallows everything and answers nothing"),
    "daytime": N_("sends the date and time as a line of text, then closes"),
    "qotd": N_("sends a quote of the day, then closes"),
    "chargen": N_("sends characters without end until the client closes"),
    "time": N_("sends the time as a 4-byte binary number, then closes"),
    "http": N_("serves files and this dashboard: the web's protocol"),
    "kv": N_("a key-value store speaking Redis's protocol (RESP)"),
    "sql": N_("a database speaking MySQL's protocol"),
    "dns": N_("answers names with addresses, and says which port a service is on (SRV)"),
    "smtp": N_("accepts mail from clients (sending)"),
    "pop3": N_("lets a client fetch its mail (receiving)"),
    "imap": N_("lets a client read its mail on the server"),
    "ssh": N_("a remote shell, encrypted"),
    "telnet": N_("a remote shell, in clear text"),
    "ftp": N_("file transfer, with a control and a data connection"),
    "chat": N_("one server, many clients: each line goes to everyone"),
}
ENCRYPTED_TYPES = ("ssh",)
_VAR = re.compile(r"\{\{(\w+)(?::([\w-]+))?\}\}")
_TITLE = re.compile(r"<h1[^>]*>(.*?)</h1>", re.S)


def content(lang: str, slug: str) -> str:
    return (
        resources.files("portsuite_services.http.dashboard")
        .joinpath("learn", lang, slug + ".html")
        .read_text("utf-8")
    )


def title_of(html: str) -> str:
    m = _TITLE.search(html)
    return re.sub(r"<[^>]+>", "", m.group(1)).strip() if m else ""


class Lab:
    """What the pages need to know of the running suite."""

    def __init__(self, suite: Any, stats: Any):
        self.suite = suite
        self.stats = stats

    def services(self) -> list[dict[str, Any]]:
        if self.suite is not None:
            return list(self.suite.snapshot()["services"])
        return [self.stats.as_dict(0.0)]

    def stype(self, name: str) -> Any:
        return getattr(self.suite, "types", {}).get(name)

    def first_of_type(self, tname: str) -> dict[str, Any] | None:
        for svc in self.services():
            if svc["type"] == tname and svc.get("port"):
                return svc
        return None

    def variables(self) -> dict[str, Any]:
        eph = ephemeral_range() or IANA_DYNAMIC
        host = "127.0.0.1"
        web = self.first_of_type("http")
        if web and web.get("host") not in (None, "", "0.0.0.0", "::"):
            host = web["host"]
        return {
            "eph_lo": eph[0],
            "eph_hi": eph[1],
            "eph_iana": f"{IANA_DYNAMIC[0]}–{IANA_DYNAMIC[1]}",
            "host": host,
        }

    def fill(self, text: str) -> str:
        """C{{{port:smtp}}} → the port of this suite's smtp service (else the shipped one)."""
        base = self.variables()

        def sub(m: re.Match[str]) -> str:
            name, arg = m.group(1), m.group(2)
            if arg is None:
                return escape(str(base[name]))
            svc = self.first_of_type(arg)
            if name == "port":
                return str(svc["port"] if svc else SHIPPED[arg])
            if name == "host":
                h = svc.get("host") if svc else None
                return escape(h if h and h not in ("0.0.0.0", "::") else base["host"])
            raise KeyError(name)

        return _VAR.sub(sub, text)


class Learn(resource.Resource):
    """C{/_portsuite/learn/…}."""

    def __init__(self, suite: Any, stats: Any):
        resource.Resource.__init__(self)
        self.lab = Lab(suite, stats)

    def getChild(self, path: bytes, request: Any) -> Any:
        name = path.decode("utf-8", "replace")
        if name == "service":
            return _ServicePages(self.lab)
        if name in ("", "index.html"):
            return _Page(self.index)
        if name in CONCEPTS or name in WORKSHEETS:
            return _Page(lambda req, lang: self.document(req, lang, name))
        if name == "sequences":
            return _Page(self.sequences)
        return notFound("No such page", "The lab guide is at /_portsuite/learn/")

    def render(self, request: Any) -> bytes:
        request.setResponseCode(301)
        request.setHeader(b"Location", b"/_portsuite/learn/")
        return b""

    def index(self, request: Any, lang: str) -> bytes:
        _ = gettext_for(lang)
        concepts = "".join(
            f'<li><a href="{slug}">{escape(title_of(content(lang, slug)))}</a></li>'
            for slug in CONCEPTS
        )
        sheets = "".join(
            f'<li><a href="{slug}">{escape(title_of(content(lang, slug)))}</a></li>'
            for slug in WORKSHEETS
        )
        svcs = "".join(
            f'<li><a href="service/{escape(s["name"])}">{escape(s["name"])}</a> '
            f'<span class="type">({escape(s["type"])}, {_("port")} {s.get("port") or "—"})</span></li>'
            for s in self.lab.services()
        )
        body = f"""<h1>{_("Lab guide")}</h1>
<p class="lead">{_("From “here is a port” to “here is the protocol talking”: read a concept, try it on this suite, watch it on the dashboard.")}</p>
<div class="columns">
<section><h2>{_("Concepts")}</h2><ol>{concepts}</ol></section>
<section><h2>{_("The services of this suite")}</h2><ul>{svcs}</ul></section>
<section><h2>{_("Worksheets")}</h2><ol>{sheets}</ol>
<p><a href="sequences">{_("Sequence diagrams, live")}</a></p></section>
</div>"""
        return layout(request, lang, _("Lab guide"), body, section="learn")

    def document(self, request: Any, lang: str, slug: str) -> bytes:
        _ = gettext_for(lang)
        html = self.lab.fill(content(lang, slug))
        if slug == "port-classes":
            html = html.replace("<!-- classes -->", port_classes(lang))
        kind = _("Worksheet") if slug.startswith("tp-") else _("Concept")
        body = f'<p class="crumbs"><a href="./">{_("Lab guide")}</a> › {kind}</p>\n{html}'
        return layout(request, lang, title_of(html), body, section="learn")

    def sequences(self, request: Any, lang: str) -> bytes:
        _ = gettext_for(lang)
        body = f"""<h1>{_("Sequence diagrams, live")}</h1>
<p class="lead">{_("Each connection to a service with trace = true: the client on the left, the server on the right, time going down. Connect with nc or curl and watch it appear.")}</p>
<p id="status" class="status" role="status"></p>
<div id="sequence-list" class="sequence-list"><p class="empty">{_("No traced conversation yet.")}</p></div>"""
        return layout(
            request,
            lang,
            _("Sequence diagrams, live"),
            body,
            section="sequences",
            scripts=("seq.js",),
            data={"mode": "sequences"},
        )


class _Page(resource.Resource):
    isLeaf = True

    def __init__(self, render: Any):
        resource.Resource.__init__(self)
        self._render = render

    def render_GET(self, request: Any) -> bytes:
        return self._render(request, choose_lang(request))  # type: ignore[no-any-return]


class _ServicePages(resource.Resource):
    def __init__(self, lab: Lab):
        resource.Resource.__init__(self)
        self.lab = lab

    def getChild(self, path: bytes, request: Any) -> Any:
        name = path.decode("utf-8", "replace")
        for svc in self.lab.services():
            if svc["name"] == name:
                return _Page(lambda req, lang, svc=svc: self.page(req, lang, svc))
        return notFound("No such service", "The lab guide is at /_portsuite/learn/")

    def page(self, request: Any, lang: str, svc: dict[str, Any]) -> bytes:
        _ = gettext_for(lang)
        stype = self.lab.stype(svc["name"])
        tname = svc["type"]
        rfc = getattr(stype, "rfc", "") or ""
        default = getattr(stype, "default_port", None) or WELL_KNOWN.get(tname)
        what = _(DESCRIBE[tname]) if tname in DESCRIBE else escape(svc.get("description") or "")
        host = svc.get("host") or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):
            host = self.lab.variables()["host"]
        port = svc.get("port")
        rows = []
        if rfc:
            rows.append((_("Standard"), escape(rfc)))
        if default is not None:
            rows.append(
                (
                    _("Well-known port"),
                    f'{default} <span class="badge {port_class(default)}">{_(port_class(default))}</span>',
                )
            )
        listens = []
        for li in svc.get("listeners", []):
            where = (
                f"{escape(str(li['host']))}:{li['port']}"
                if li.get("port")
                else escape(li.get("endpoint", ""))
            )
            badge = (
                f' <span class="badge {li["port_class"]}">{_(li["port_class"])}</span>'
                if li.get("port_class")
                else ""
            )
            proto = "tls" if li.get("tls") else li["transport"]
            listens.append(f"<code>{proto.upper()} {where}</code>{badge}")
        rows.append((_("Port here"), "<br>".join(listens) or "—"))
        table = "".join(f"<tr><th scope=row>{k}</th><td>{v}</td></tr>" for k, v in rows)
        cmds = TRY.get(tname) or (
            ["nc {host} {port}"] if "tcp" in svc.get("transports", []) else []
        )
        if svc.get("tls") and tname == "http":
            cmds = ["curl -v --cacert certs/ca.pem https://{host}:{port}/"]
        elif svc.get("tls"):
            cmds = ["openssl s_client -connect {host}:{port}"] + cmds
        tries = "\n".join(escape(c.format(host=host, port=port or "PORT")) for c in cmds)
        sample_html = self._sample(svc, _, host, port)
        traced = (
            _(
                "This service is traced (trace = true): its last conversations, live, as sequence diagrams."
            )
            if self._traced(svc)
            else _(
                "Add trace = true to this service in the config to see its conversations here, live."
            )
        )
        body = f"""<p class="crumbs"><a href="../">{_("Lab guide")}</a> › {_("Service")}</p>
<h1>{escape(svc["name"])} <span class="type">({escape(tname)})</span></h1>
<p class="lead">{what}</p>
<table class="facts">{table}</table>
<h2>{_("Try it")}</h2>
<p>{_("From a terminal on this machine (the host and port are this suite's):")}</p>
<pre class="try">{tries or escape(_("(no command-line client for this one)"))}</pre>
{sample_html}
<h2>{_("Live conversations")}</h2>
<p>{traced}</p>
<div id="sequence-list" class="sequence-list"></div>"""
        return layout(
            request,
            lang,
            svc["name"],
            body,
            section="learn",
            scripts=("seq.js",),
            data={"mode": "service", "service": svc["name"]},
        )

    def _sample(self, svc: dict[str, Any], _: Any, host: str, port: Any) -> str:
        """The annotated sample session: the service's own last one when traced, else recorded."""
        tname = svc["type"]
        own = getattr(self.lab.suite, "stats", {}).get(svc["name"])
        recent = svc.get("transcripts") or list(getattr(own, "transcripts", []))
        live = samples.last_conversation(recent) if self._traced(svc) else None
        if live is not None:
            lines = samples.annotate(tname, live)
            caption = _(
                "Taken live from this suite's transcript: the last conversation of client {peer}."
            ).format(peer=f"<code>{escape(str(live.get('peer', '')))}</code>")
        else:
            lines = [(d, text, note) for d, text, note, _p in samples.steps(tname)]
            if not lines:
                return ""
            cmd = samples.RECORDED_WITH.get(samples.sample_type(tname), "")
            caption = _("Recorded against this suite with a real client: {command}").format(
                command=f"<code>{escape(cmd.format(host=host, port=port or 'PORT'))}</code>"
            )
        arrows = {"c2s": _("client → server"), "s2c": _("server → client")}
        items = "".join(
            f'<li class="{d}"><span class="arrow">{arrows[d]}</span> '
            f"<code>{escape(text)}</code>"
            + (f" <span class=note>{_(note)}</span>" if note else "")
            + "</li>"
            for d, text, note in lines
        )
        return (
            f"<h2>{_('An annotated sample session')}</h2>"
            f'<p class="caption">{caption}</p><ol class="sample">{items}</ol>'
        )

    def _traced(self, svc: dict[str, Any]) -> bool:
        suite = self.lab.suite
        cfg = getattr(suite, "config", None)
        for s in getattr(cfg, "services", []) or []:
            if s.name == svc["name"]:
                return bool(getattr(s, "trace", False))
        return bool(svc.get("transcripts"))
