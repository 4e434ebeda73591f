"""
mail: smtp, pop3 and imap on twisted.mail, over one set of Maildirs.

The telnet exercise of every networking course (speak SMTP by hand on port 25, read
the mail with POP3 on 110) and a mail catcher for developers: smtp accepts mail for
its C{domains} only (never an open relay, never a connection out), stores it in one
Maildir per user under C{mailboxes}, and pop3, imap and the dashboard
(C{/_portsuite/mail/}, JSON at C{/_portsuite/api/mail/}) read it back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from portsuite.api import Option, ServiceConfig, ServiceContext, ServiceType, StartupError
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _

__all__ = ["IMAP", "POP3", "SMTP"]

DOMAIN = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
MAILBOX_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def _positive(v: int) -> str | None:
    return None if v > 0 else _("must be 1 or more")


def _domains(v: list[str]) -> str | None:
    if not v:
        return _('needs at least one domain, e.g. domains = ["lab.test"]')
    for d in v:
        if not DOMAIN.fullmatch(d):
            return _('{value!r} is not a domain name; write it like "lab.test"').format(value=d)
    return None


def _mailbox_name(v: str) -> str | None:
    if not MAILBOX_NAME.fullmatch(v):
        return _(
            "must be a mailbox name: letters, digits, '_', '.', '-' (not starting with '.' or '-')"
        )
    return None


MAILBOXES = Option(
    "mailboxes",
    Path,
    None,
    help=N_("folder of the Maildirs, one per user (FOLDER/alice/new/…); without it, memory only"),
)
STARTTLS = Option(
    "starttls",
    dict,
    None,
    help=N_('offer STARTTLS on this plain listener: { cert = "server.crt", key = "server.key" }'),
)

SMTP_OPTIONS = (
    Option(
        "domains",
        list,
        ["localhost"],
        check=_domains,
        help=N_("mail for these domains is delivered here; every other recipient gets 550 5.7.1"),
    ),
    MAILBOXES,
    Option(
        "max_message_size",
        int,
        10 * 1024 * 1024,
        check=_positive,
        help=N_("largest message in octets (advertised as SIZE); 552 above it, nothing stored"),
    ),
    Option(
        "max_recipients", int, 100, check=_positive, help=N_("recipients per message; 452 beyond")
    ),
    STARTTLS,
    Option(
        "catch_all",
        str,
        None,
        check=_mailbox_name,
        help=N_("mailbox for local recipients that are not in [users] (without it: 550 5.1.1)"),
    ),
)


def _resolve(svc: ServiceConfig, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(svc.base_dir) / path


def _check_starttls(svc: ServiceConfig) -> list[str]:
    value = svc.options.get("starttls")
    if value is None:
        return []
    errors = []
    for key in value:
        if key not in ("cert", "key"):
            errors.append(
                _("starttls.{key}: unknown key; use starttls = {{ cert = …, key = … }}").format(
                    key=key
                )
            )
    for key in ("cert", "key"):
        if key not in value:
            errors.append(
                _(
                    'starttls: needs {key}, e.g. starttls = {{ cert = "server.crt", '
                    'key = "server.key" }} (portsuite cert makes a pair)'
                ).format(key=key)
            )
        elif not isinstance(value[key], str):
            errors.append(_("starttls.{key}: must be a file name (a string)").format(key=key))
        elif not _resolve(svc, value[key]).is_file():
            errors.append(
                _("starttls.{key}: {path} does not exist; make one with portsuite cert").format(
                    key=key, path=_resolve(svc, value[key])
                )
            )
    if not errors:
        try:
            _tls_context(svc)
        except Exception as e:
            errors.append(
                _(
                    "starttls: cannot load the cert and key ({error}); check they are a PEM pair"
                ).format(error=e)
            )
    return errors


def _check_mailboxes(svc: ServiceConfig) -> list[str]:
    folder = svc.options.get("mailboxes")
    if folder is None:
        return []
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return [
            _("mailboxes: {path} is a file; name a folder (it holds one Maildir per user)").format(
                path=folder
            )
        ]
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                return [
                    _(
                        "mailboxes: {path} is a file; name a folder (it holds one Maildir per user)"
                    ).format(path=parent)
                ]
            break
    return []


def check(svc: ServiceConfig) -> list[str]:
    return _check_mailboxes(svc) + _check_starttls(svc)


def _tls_context(svc: ServiceConfig) -> Any:
    value = svc.options.get("starttls")
    if not value:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from twisted.internet.ssl import CertificateOptions, TLSVersion

    certs = x509.load_pem_x509_certificates(_resolve(svc, value["cert"]).read_bytes())
    key = load_pem_private_key(_resolve(svc, value["key"]).read_bytes(), None)
    options = CertificateOptions(
        privateKey=key,  # type: ignore[arg-type]
        certificate=certs[0],  # type: ignore[arg-type]
        extraCertChain=certs[1:],  # type: ignore[arg-type]
        raiseMinimumTo=TLSVersion.TLSv1_2,
    )
    options.getContext()  # a key that does not match the cert fails here, at startup
    return options


def _store(ctx: ServiceContext) -> Any:
    from portsuite_services.mail.store import store_for

    folder = ctx.options.get("mailboxes")
    if folder is not None:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StartupError(
                _(
                    "cannot start [services.{name}]: mailboxes {folder}: {error}; "
                    "check that the folder can be created by this user"
                ).format(name=ctx.config.name, folder=folder, error=e.strerror)
            ) from None
    return store_for(folder, ctx.suite, ctx.reactor)


def _tls(ctx: ServiceContext) -> Any:
    try:
        return _tls_context(ctx.config)
    except Exception as e:
        raise StartupError(
            _("cannot start [services.{name}]: starttls: {error}; check the cert and key").format(
                name=ctx.config.name, error=e
            )
        ) from None


def build_smtp(ctx: ServiceContext) -> Any:
    from portsuite_services.mail.smtp import SMTPFactory
    from portsuite_services.mail.web import publish

    store = _store(ctx)
    factory = SMTPFactory(
        name=ctx.config.name,
        store=store,
        domains=list(ctx.options.get("domains") or ["localhost"]),
        accounts=ctx.accounts,
        reactor=ctx.reactor,
        catch_all=ctx.options.get("catch_all"),
        max_message_size=ctx.options.get("max_message_size") or 10 * 1024 * 1024,
        max_recipients=ctx.options.get("max_recipients") or 100,
        tls_context=_tls(ctx),
    )
    publish(ctx, store, primary=True)
    return factory


def build_pop3(ctx: ServiceContext) -> Any:
    from portsuite_services.mail.pop3 import POP3Factory
    from portsuite_services.mail.web import publish

    store = _store(ctx)
    publish(ctx, store)
    return POP3Factory(
        name=ctx.config.name,
        store=store,
        accounts=ctx.accounts,
        reactor=ctx.reactor,
        tls_context=_tls(ctx),
    )


def build_imap(ctx: ServiceContext) -> Any:
    from portsuite_services.mail.imap import IMAPFactory
    from portsuite_services.mail.web import publish

    store = _store(ctx)
    publish(ctx, store)
    return IMAPFactory(
        name=ctx.config.name,
        store=store,
        accounts=ctx.accounts,
        reactor=ctx.reactor,
        tls_context=_tls(ctx),
        max_message_size=ctx.options.get("max_message_size") or 10 * 1024 * 1024,
    )


def _smtp_refusal(reason: str) -> bytes:
    return f"421 4.7.0 {reason}\r\n".encode()


def _pop3_refusal(reason: str) -> bytes:
    return f"-ERR {reason}\r\n".encode()


def _imap_refusal(reason: str) -> bytes:
    return f"* BYE {reason}\r\n".encode()


SMTP = ServiceType(
    name="smtp",
    description=N_(
        "SMTP mail server (swaks, telnet, smtplib): delivers to local Maildirs, never relays"
    ),
    default_port=25,
    options=SMTP_OPTIONS,
    tcp_factory=build_smtp,
    refusal=_smtp_refusal,
    check=check,
    rfc="RFC 5321",
)

POP3 = ServiceType(
    name="pop3",
    description=N_("POP3 server (telnet, poplib, curl pop3://): reads the mailboxes smtp fills"),
    default_port=110,
    options=(MAILBOXES, STARTTLS),
    tcp_factory=build_pop3,
    refusal=_pop3_refusal,
    check=check,
    rfc="RFC 1939",
)

IMAP = ServiceType(
    name="imap",
    description=N_(
        "IMAP4rev1 server (imaplib, curl imap://, mail clients) over the same mailboxes"
    ),
    default_port=143,
    options=(
        MAILBOXES,
        STARTTLS,
        Option(
            "max_message_size",
            int,
            10 * 1024 * 1024,
            check=_positive,
            help=N_("largest message APPEND accepts, in octets"),
        ),
    ),
    tcp_factory=build_imap,
    refusal=_imap_refusal,
    check=check,
    rfc="RFC 3501",
)
