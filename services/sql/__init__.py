"""
sql: MySQL's client/server protocol over an embedded SQLite, on MySQL's port 3306.

    [services.sql]
    type = "sql"
    port = 3306
    data = "../data/sql"          # one SQLite file per database; omit for memory only
    # max_execution_time = 10     # seconds per statement; past it: MySQL's error 3024
    # ssl = { cert = "server.crt", key = "server.key" }

C{mysql -h 127.0.0.1 -P 3306}, PyMySQL, mysql-connector, SQLAlchemy and PHP's PDO
connect as to MySQL; statements are translated from MySQL's dialect by sqlglot and run
by SQLite on worker threads, never on the reactor's.

TLS is MySQL's own upgrade inside the protocol (the client asks for it after the
greeting), so this type takes C{ssl = {cert, key}} rather than the suite-wide C{tls}
key, which would wrap the listener in TLS from the first byte and no MySQL client
could connect. Without C{ssl}, a self-signed certificate is made at startup (as
MySQL's auto_generate_certs does), so clients that ask for SSL get it.

Accounts are the suite's C{[users]}. mysql_native_password and caching_sha2_password's
fast path prove the password by a challenge, which needs the password in clear on
the server: accounts stored as a bcrypt hash log in through caching_sha2_password's
full authentication, which sends the password over TLS or encrypted with the
server's RSA key. With no account at all, every user name and password is let in
(a lab's database on the loopback interface).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from portsuite.api import Account, Option, ServiceContext, ServiceType, StartupError, peer_host
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _

log = Logger(namespace="portsuite.sql")

__all__ = ["SQL", "SQLServer"]


def _positive(v: Any) -> str | None:
    return None if v > 0 else _("must be more than 0")


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else _("must be 0 or more")


def _ssl(v: Any) -> str | None:
    if not isinstance(v, dict) or set(v) - {"cert", "key"} or not {"cert", "key"} <= set(v):
        return _('must be a table { cert = "server.crt", key = "server.key" }')
    return None


OPTIONS = (
    Option(
        "data",
        Path,
        None,
        help=N_("folder of the databases (one SQLite file each); omit for memory only"),
    ),
    Option(
        "max_execution_time",
        float,
        0.0,
        check=_non_negative,
        help=N_("seconds a statement may run (0 = no limit); past it: error 3024"),
    ),
    Option(
        "ssl",
        dict,
        None,
        check=_ssl,
        help=N_(
            "MySQL's in-protocol SSL: { cert, key } (PEM files); omitted: a self-signed certificate"
        ),
    ),
    Option(
        "default_auth",
        str,
        "caching_sha2_password",
        choices=("caching_sha2_password", "mysql_native_password"),
        help=N_("the authentication plugin named in the greeting"),
    ),
    Option(
        "require_secure_transport",
        bool,
        False,
        help=N_("refuse clients that do not upgrade to SSL"),
    ),
    Option("threads", int, 8, check=_positive, help=N_("worker threads running statements")),
    Option(
        "max_allowed_packet",
        int,
        64 * 1024 * 1024,
        check=_positive,
        help=N_("largest packet (statement) a client may send, in bytes"),
    ),
    Option(
        "max_rows",
        int,
        1_000_000,
        check=_positive,
        help=N_("rows of one result set held in memory; past it the statement fails"),
    ),
)


class SQLServer(ServerFactory):
    """The sql service's factory: databases, worker threads, TLS and RSA material, accounts."""

    def __init__(self, ctx: ServiceContext):
        from portsuite_services.sql.engine import Catalog, Settings

        opts = ctx.options
        self.reactor = ctx.reactor
        self.name = ctx.config.name
        self.accounts = ctx.accounts
        self.open_access = self.accounts is None or len(self.accounts) == 0
        data = opts.get("data")
        self.temp: str | None = None
        if data is None:
            self.temp = tempfile.mkdtemp(prefix="portsuite-sql-")
            folder = Path(self.temp)
        else:
            folder = Path(data)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                probe = folder / ".portsuite-write-test"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise StartupError(
                    _(
                        "cannot start [services.{name}]: data folder {folder}: {error}; "
                        "check that it is a folder this user can write"
                    ).format(name=self.name, folder=folder, error=e.strerror)
                ) from None
        self.catalog = Catalog(folder)
        self.settings = Settings(
            max_execution_time=float(opts.get("max_execution_time") or 0),
            max_rows=int(opts.get("max_rows") or 1_000_000),
        )
        self.default_auth = opts.get("default_auth") or "caching_sha2_password"
        self.require_secure_transport = bool(opts.get("require_secure_transport"))
        self.max_allowed_packet = int(opts.get("max_allowed_packet") or 64 * 1024 * 1024)
        self.threads = int(opts.get("threads") or 8)
        ssl = opts.get("ssl")
        if ssl is not None:
            base = Path(ctx.config.base_dir)
            ssl = {k: str(base / v) for k, v in ssl.items()}
        self.tls_options, self.rsa_key, self.rsa_public_pem = _tls_material(ssl, self.name)
        self._ids = itertools.count(1)
        self.pool: Any = None

    def next_id(self) -> int:
        return next(self._ids)

    def startFactory(self) -> None:
        pass  # the worker threads start with the first client (see workers())

    def workers(self) -> Any:
        """
        The worker threads, started at the first client: a daemon binds its ports
        before it forks, and threads started then would not survive the fork.
        """
        from portsuite_services.sql.workers import Workers

        if self.pool is None or self.pool.pid != os.getpid():
            self.pool = Workers(self.reactor, self.threads, f"portsuite-sql-{self.name}")
            self.pool.start()
        return self.pool

    def stopFactory(self) -> None:
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)

    def buildProtocol(self, addr: Any) -> Any:
        from portsuite_services.sql.protocol import MySQLProtocol

        p = MySQLProtocol(self)
        p.factory = self
        return p

    def run(self, f: Any, *args: Any) -> Any:
        """f(*args) on a worker thread; a Deferred of its result, fired on the reactor."""
        return self.workers().run(f, *args)

    def account(self, name: str) -> Any:
        return None if self.accounts is None else self.accounts.get(name)

    def check_password(self, account: Any, password: bytes) -> Any:
        from twisted.internet import defer

        if account is None:
            return defer.succeed(False)
        return self.run(account.check_password, password)

    def burn(self, then: Any) -> None:
        """A wrong user name costs as long as a password check."""
        dummy = Account("-", "$2b$10$" + "." * 53)
        self.run(dummy.check_password, b"x").addBoth(lambda _: then())

    def peer_host(self, transport: Any) -> str:
        try:
            return peer_host(transport.getPeer())
        except Exception:
            return "localhost"


def _tls_material(ssl: Any, name: str) -> tuple[Any, Any, bytes]:
    """The SSL context options and the RSA key of caching_sha2_password's key exchange."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key_pem: bytes
    cert_pem: bytes
    if ssl is not None:
        try:
            cert_pem = Path(ssl["cert"]).read_bytes()
            key_pem = Path(ssl["key"]).read_bytes()
            options = _options(cert_pem, key_pem)
        except OSError as e:
            raise StartupError(
                _(
                    "cannot start [services.{name}]: ssl: {file}: {error}; fix the path of cert/key"
                ).format(name=name, file=e.filename, error=e.strerror)
            ) from None
        except Exception as e:
            raise StartupError(
                _(
                    "cannot start [services.{name}]: ssl: cannot load the certificate and key "
                    "({error}); give PEM files that match"
                ).format(name=name, error=e)
            ) from None
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert_pem, key_pem = _self_signed(key)
        options = _options(cert_pem, key_pem)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return options, key, public


def _options(cert_pem: bytes, key_pem: bytes) -> Any:
    """Server TLS options (TLS 1.2 at least) from PEM; cryptography objects where accepted."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from OpenSSL import crypto
    from twisted.internet.ssl import CertificateOptions, TLSVersion

    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    try:
        # pyOpenSSL >= 24.3 takes cryptography objects (and deprecates its own)
        # Twisted's stubs still name pyOpenSSL's own PKey and X509 here
        options = CertificateOptions(
            privateKey=key,  # type: ignore[arg-type]
            certificate=cert,  # type: ignore[arg-type]
            raiseMinimumTo=TLSVersion.TLSv1_2,
        )
        options.getContext()
    except TypeError:
        options = CertificateOptions(
            # pyOpenSSL's stubs name fewer key types than cryptography loads; any other
            # raises here, as it did before
            privateKey=crypto.PKey.from_cryptography_key(key),  # type: ignore[arg-type]
            certificate=crypto.X509.from_cryptography(cert),
            raiseMinimumTo=TLSVersion.TLSv1_2,
        )
    return options


def _self_signed(key: Any) -> tuple[bytes, bytes]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portsuite sql auto-generated")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )


def build(ctx: ServiceContext) -> SQLServer:
    return SQLServer(ctx)


def check(svc: Any) -> list[str]:
    out = []
    if svc.tls is not None:
        out.append(
            _(
                "tls: MySQL upgrades to SSL inside its protocol, so a TLS-wrapped listener "
                'would reach no MySQL client; use ssl = { cert = "…", key = "…" } instead'
            )
        )
    ssl = svc.options.get("ssl")
    if ssl is not None:
        for k in ("cert", "key"):
            p = Path(ssl[k])
            if not p.is_absolute():
                p = Path(svc.base_dir) / p
            if not p.is_file():
                out.append(
                    _("ssl: {key} {path} does not exist; give the path of a PEM file").format(
                        key=k, path=p
                    )
                )
    data = svc.options.get("data")
    if data is not None and Path(data).exists() and not Path(data).is_dir():
        out.append(
            _("data: {path} is a file; give a folder (one SQLite file per database)").format(
                path=data
            )
        )
    return out


def _refusal(reason: str) -> bytes:
    from portsuite_services.sql import packets as P

    payload = P.err_packet(1040, "08004", f"Too many connections ({reason})")
    return len(payload).to_bytes(3, "little") + b"\0" + payload


SQL = ServiceType(
    name="sql",
    description=N_("MySQL's protocol over an embedded SQLite (mysql, PyMySQL, PDO, SQLAlchemy)"),
    default_port=3306,
    options=OPTIONS,
    tcp_factory=build,
    refusal=_refusal,
    check=check,
    rfc="MySQL client/server protocol",
)
