"""
The C{http} service type: a safe static web server (RFC 9110, RFC 9112) on
twisted.web, with the suite's live dashboard at C{/_portsuite/}.

    [services.web]
    type = "http"
    port = 8080
    root = "../www"        # the folder to serve, relative to the config file
    listing = false        # folder listings when there is no index.html
    dashboard = true       # the live dashboard at /_portsuite/

See L{portsuite_services.http.static} for what is served and what is refused, and
L{portsuite_services.http.site} for the request-head deadline and the body cap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portsuite.api import Option, ServiceContext, ServiceType
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _
from portsuite_services.http.site import Site, http_refusal
from portsuite_services.http.static import StaticFiles

__all__ = ["HTTP", "build_site"]


def _positive(value: float) -> str | None:
    if value <= 0:
        return _("must be a positive number; e.g. 10")
    return None


def _check(svc: Any) -> list[str]:
    root = svc.options.get("root")
    if root is None:
        return [
            _(
                'root: missing; set root = "../www" (the folder to serve, relative to the '
                "config file)"
            )
        ]
    root = Path(root)
    if not root.is_dir():
        if not root.exists():
            return [
                _(
                    "root: {path} does not exist; create it or point root at the folder to serve"
                ).format(path=root)
            ]
        return [
            _(
                "root: {path} is not a folder; create it or point root at the folder to serve"
            ).format(path=root)
        ]
    return []


def build_site(ctx: ServiceContext) -> Site:
    """The twisted.web site of one http service."""
    options = ctx.options
    dashboard = None
    if options.get("dashboard", True):
        from portsuite_services.http.dashboard import Dashboard

        dashboard = Dashboard(suite=ctx.suite, stats=ctx.stats, reactor=ctx.reactor)
    static = StaticFiles(
        options["root"],
        listing=bool(options.get("listing", False)),
        dashboard=dashboard is not None,
    )
    return Site(
        static,
        service=ctx.config.name,
        reactor=ctx.reactor,
        dashboard=dashboard,
        head_timeout=float(options.get("head_timeout") or 60.0),
        body_timeout=float(options.get("body_timeout") or 60.0),
        max_body=int(options.get("max_body") or (1 << 20)),
        access_log=bool(options.get("access_log", True)),
    )


HTTP = ServiceType(
    name="http",
    description=N_("HTTP/1.1 static files from root, and the live dashboard at /_portsuite/"),
    default_port=80,
    options=(
        Option(
            "root",
            kind=Path,
            default=None,
            help=N_('the folder to serve, e.g. "../www" (relative to the config file)'),
        ),
        Option(
            "listing", kind=bool, default=False, help=N_("list folders that have no index.html")
        ),
        Option("dashboard", kind=bool, default=True, help=N_("the live dashboard at /_portsuite/")),
        Option(
            "head_timeout",
            kind=float,
            default=60.0,
            help=N_("seconds a client has to send a whole request head (nginx: 60)"),
            check=_positive,
        ),
        Option(
            "body_timeout",
            kind=float,
            default=60.0,
            help=N_("seconds a request body may stall between two reads (nginx: 60)"),
            check=_positive,
        ),
        Option(
            "max_body",
            kind=int,
            default=1 << 20,
            help=N_("largest request body accepted, in bytes (larger: 413)"),
            check=lambda v: None if v >= 0 else _("must be 0 or more bytes"),
        ),
        Option(
            "access_log",
            kind=bool,
            default=True,
            help=N_("one combined-format log line per request"),
        ),
    ),
    tcp_factory=build_site,  # type: ignore[arg-type]
    refusal=http_refusal,
    check=_check,
    rfc="RFC 9110, RFC 9112",
    stateless=True,  # static files: any worker can answer (workers = N)
)
