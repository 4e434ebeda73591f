"""
ftp: an FTP server on C{twisted.protocols.ftp} — the protocol with two connections.

A control connection on port 21 (commands and replies, like any text protocol),
and a new data connection, on another port, for every listing and transfer:
the lesson of "1 service = 1 port" and its limits. Anonymous users see C{root},
read-only; each C{[users]} account gets C{homes/NAME}, read-write. Nothing outside
those folders is reachable (C{..}, absolute paths and symlinks included), and the
data connections go only to, and come only from, the client's own address.

    [services.ftp]
    type = "ftp"
    port = 2121
    root = "../ftp"
    anonymous = true
    homes = "../data/ftp-homes"
    passive_ports = [30000, 30099]
    # max_upload = 104857600
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

from twisted.cred.checkers import AllowAnonymousAccess, ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.python.filepath import FilePath
from twisted.web.resource import Resource

from portsuite.api import Option, ServiceContext, ServiceType, StartupError
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _
from portsuite_services.ftp.protocol import FTPServer, FTPSession
from portsuite_services.ftp.shell import JailShell, Realm

__all__ = ["FTP", "FTPServer", "FTPSession", "JailShell", "Realm", "build"]

DEFAULT_IDLE = 300.0


def _passive(v: Any) -> str | None:
    if len(v) != 2 or not all(isinstance(p, int) for p in v) or not 1024 <= v[0] <= v[1] <= 65535:
        return _(
            "must be two ports [first, last] with 1024 <= first <= last <= 65535, "
            "e.g. [30000, 30099]"
        )
    return None


def _positive(v: Any) -> str | None:
    return None if v > 0 else _("must be more than 0")


OPTIONS = (
    Option(
        "root",
        Path,
        None,
        required=True,
        help=N_('the folder anonymous users see, read-only, e.g. root = "../ftp"'),
    ),
    Option("anonymous", bool, True, help=N_("allow anonymous (user anonymous or ftp) logins")),
    Option(
        "homes",
        Path,
        None,
        help=N_(
            "each [users] account gets homes/NAME, read-write (created at first login); "
            "without it accounts see root, read-only"
        ),
    ),
    Option(
        "passive_ports",
        list,
        None,
        check=_passive,
        help=N_("ports for passive data connections, [first, last]; default: any free port"),
    ),
    Option(
        "max_upload",
        int,
        100 * 1024 * 1024,
        check=_positive,
        help=N_("largest file a client may upload, in bytes (552 beyond, nothing kept)"),
    ),
    Option(
        "starttls",
        dict,
        None,
        help=N_(
            "offer AUTH TLS (FTPS, RFC 4217) with this pair: "
            'starttls = { cert = "server.crt", key = "server.key" }'
        ),
    ),
    Option(
        "data_timeout",
        float,
        30.0,
        check=_positive,
        help=N_("seconds to wait for a data connection after PASV/PORT before 425"),
    ),
)


class SessionsAPI(Resource):
    """C{/_portsuite/api/ftp}: every FTP session and its data connections, as JSON."""

    isLeaf = True

    def __init__(self, servers: list[FTPServer]):
        super().__init__()
        self.servers = servers

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        body = {"services": [s.as_dict() for s in self.servers]}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _publish(ctx: ServiceContext, server: FTPServer) -> None:
    suite = ctx.suite
    if suite is None:
        return
    existing = getattr(suite, "published", {}).get("api/ftp")
    if isinstance(existing, SessionsAPI):
        existing.servers.append(server)  # several ftp services share one page
    else:
        ctx.publish("api/ftp", SessionsAPI([server]))


def build(ctx: ServiceContext) -> FTPServer:
    svc = ctx.config
    opts = ctx.options
    root = FilePath(str(opts["root"]))
    homes = FilePath(str(opts["homes"])) if opts.get("homes") else None
    if homes is not None and not homes.isdir():
        try:
            os.makedirs(homes.path, 0o755, exist_ok=True)
        except OSError as e:
            raise StartupError(
                _(
                    "cannot start [services.{name}]: homes {folder}: {error}; "
                    "create the folder or fix the path"
                ).format(name=svc.name, folder=homes.path, error=e.strerror)
            ) from None
    # both implement their interface through zope, which mypy cannot see
    portal = Portal(cast(IRealm, Realm(root, homes)))
    if ctx.accounts is not None and len(ctx.accounts):
        portal.registerChecker(ctx.accounts.checker())
    if opts.get("anonymous", True):
        portal.registerChecker(cast(ICredentialsChecker, AllowAnonymousAccess()))
    ports = opts.get("passive_ports")
    options = implicit = None
    try:
        if opts.get("starttls") is not None:
            options = tls_options(_tls_files(svc, opts["starttls"]))
        if svc.tls is not None:
            # tls = {…}: the suite makes the whole control port TLS (implicit FTPS, as on
            # port 990); the same certificate then protects the data connections
            implicit = tls_options(svc.tls)
    except Exception as e:
        raise StartupError(
            _(
                "cannot start [services.{name}]: tls: {error}; check cert and key "
                "(portsuite cert makes a pair)"
            ).format(name=svc.name, error=e)
        ) from None
    server = FTPServer(
        svc.name,
        ctx.reactor,
        portal,
        anonymous=bool(opts.get("anonymous", True)),
        passive_range=(ports[0], ports[1]) if ports else None,
        max_upload=opts.get("max_upload"),
        data_timeout=float(opts.get("data_timeout") or 30.0),
        idle_timeout=float(svc.idle_timeout or DEFAULT_IDLE),
        tls_options=options or implicit,
        implicit_tls=implicit is not None,
    )
    _publish(ctx, server)
    ctx.stats.set_detail(server.detail)  # the dashboard page: sessions and data connections
    return server


def tls_options(tls: Any) -> Any:
    """
    Twisted's server TLS options (TLS >= 1.2) from the service's C{tls = {cert, key,
    chain}}, for AUTH TLS and PROT P: the files are read with cryptography and handed
    over as cryptography objects (pyOpenSSL >= 24.3), as the suite's own TLS does.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from twisted.internet import ssl

    key = load_pem_private_key(Path(tls.key).read_bytes(), password=None)
    pems = Path(tls.cert).read_bytes() + (Path(tls.chain).read_bytes() if tls.chain else b"")
    certs = x509.load_pem_x509_certificates(pems)

    def build(k: Any, c: Any, chain: list[Any]) -> Any:
        return ssl.CertificateOptions(
            privateKey=k,
            certificate=c,
            extraCertChain=chain,
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        )

    try:
        options = build(key, certs[0], certs[1:])
        options.getContext()
    except TypeError:  # an older pyOpenSSL: its own objects
        from OpenSSL import crypto

        options = build(
            # pyOpenSSL's stubs name fewer key types than cryptography loads; any other
            # raises here, as it did before
            crypto.PKey.from_cryptography_key(key),  # type: ignore[arg-type]
            crypto.X509.from_cryptography(certs[0]),
            [crypto.X509.from_cryptography(c) for c in certs[1:]],
        )
    return options


class _Files:
    def __init__(self, cert: Path, key: Path, chain: Path | None = None):
        self.cert, self.key, self.chain = cert, key, chain


def _tls_files(svc: Any, table: Any) -> _Files:
    def resolve(value: Any) -> Path:
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() else Path(svc.base_dir) / path

    chain = table.get("chain")
    return _Files(resolve(table["cert"]), resolve(table["key"]), resolve(chain) if chain else None)


def _check_starttls(svc: Any) -> list[str]:
    table = svc.options.get("starttls")
    if table is None:
        return []
    errors = [
        _("starttls.{key}: unknown key; use starttls = {{ cert = …, key = … }}").format(key=k)
        for k in table
        if k not in ("cert", "key", "chain")
    ]
    for k in ("cert", "key"):
        if not isinstance(table.get(k), str):
            errors.append(
                _(
                    'starttls: needs {key}, e.g. starttls = {{ cert = "server.crt", '
                    'key = "server.key" }} (portsuite cert makes a pair)'
                ).format(key=k)
            )
    if errors:
        return errors
    files = _tls_files(svc, table)
    for k in ("cert", "key"):
        if not getattr(files, k).is_file():
            errors.append(
                _("starttls.{key}: {path} does not exist; make one with portsuite cert").format(
                    key=k, path=getattr(files, k)
                )
            )
    if not errors:
        try:
            tls_options(files)
        except Exception as e:
            errors.append(
                _(
                    "starttls: cannot load the cert and key ({error}); check they are a PEM pair"
                ).format(error=e)
            )
    return errors


def check(svc: Any) -> list[str]:
    errors = _check_starttls(svc)
    root = svc.options.get("root")
    if root is not None and not Path(root).is_dir():
        errors.append(
            _("root: {path} is not a folder; create it or fix the path").format(path=root)
        )
    homes = svc.options.get("homes")
    if homes is not None and Path(homes).exists() and not Path(homes).is_dir():
        errors.append(
            _("homes: {path} is not a folder; remove it or fix the path").format(path=homes)
        )
    return errors


def _refusal(reason: str) -> bytes:
    return f"421 {reason}\r\n".encode()


FTP = ServiceType(
    name="ftp",
    description=N_(
        "FTP file server (curl, lftp, ftp, ftplib, FileZilla): a control connection "
        "plus one data connection per transfer"
    ),
    default_port=21,
    options=OPTIONS,
    tcp_factory=build,
    refusal=_refusal,
    check=check,
    rfc="RFC 959, RFC 4217 (AUTH TLS)",
)
