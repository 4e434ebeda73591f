"""
kv: a Redis-compatible key-value store (RESP2/RESP3, inline commands, pub/sub),
memory-only or persisted in an append-only file.

It listens on 6379 by default, Redis's own port, so redis-cli and redis-py reach it
with no -p; MySQL's 3306 belongs to the sql service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.logger import Logger

from portsuite.api import Option, ServiceContext, ServiceType, is_loopback_host
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _
from portsuite_services.kv.acl import check_lines
from portsuite_services.kv.aof import FSYNC_CHOICES, AOFError
from portsuite_services.kv.protocol import KVProtocol
from portsuite_services.kv.server import KVServer, Settings, check_data_file

log = Logger(namespace="portsuite.kv")

__all__ = ["KV", "KVProtocol", "KVServer", "Settings", "build"]


def _non_negative(v: int) -> str | None:
    return None if v >= 0 else _("must be 0 or more")


def _positive(v: int) -> str | None:
    return None if v > 0 else _("must be 1 or more")


def _password(v: str) -> str | None:
    if not v:
        return _("must not be empty; remove the key for no password")
    if any(ord(ch) < 33 or ord(ch) > 126 for ch in v):
        return _("must be printable ASCII without spaces (it is typed in AUTH)")
    return None


MAX_DATABASES = 10000


def _databases(v: int) -> str | None:
    return None if 1 <= v <= MAX_DATABASES else _("must be 1 to {max}").format(max=MAX_DATABASES)


def _notify_flags(v: str) -> str | None:
    from portsuite_services.kv.notify import parse_flags

    if parse_flags(v) is None:
        return _('must be made of Redis\'s letters K E g $ l s h z x e t m d n A (e.g. "KEA")')
    return None


OPTIONS = (
    Option(
        "data", Path, None, help=N_("append-only file; without it the data lives in memory only")
    ),
    Option(
        "fsync",
        str,
        "everysec",
        choices=FSYNC_CHOICES,
        help=N_("when appended writes reach the disk: always (before each reply), everysec, no"),
    ),
    Option(
        "password",
        str,
        None,
        check=_password,
        help=N_("clients must AUTH with it; without it only loopback clients are served"),
    ),
    Option(
        "acl",
        list,
        None,
        help=N_(
            "ACL users, one Redis aclfile line each: "
            '"user alice on >secret ~app:* &news +@all -@dangerous"; a [users] account named '
            "here with no password rule logs in with its suite password"
        ),
    ),
    Option(
        "protected_mode",
        bool,
        True,
        help=N_("without a password, refuse clients that are not on the loopback interface"),
    ),
    Option("maxclients", int, 10000, check=_positive, help=N_("clients connected at once")),
    Option(
        "proto_max_bulk_len",
        int,
        512 * 1024 * 1024,
        check=_positive,
        help=N_("largest string a client may send, in bytes (Redis's proto-max-bulk-len)"),
    ),
    Option(
        "client_output_buffer_limit",
        int,
        32 * 1024 * 1024,
        check=_non_negative,
        help=N_(
            "bytes of replies queued for a client that does not read before it is "
            "disconnected (0 = no limit)"
        ),
    ),
    Option(
        "timeout",
        int,
        0,
        check=_non_negative,
        help=N_("close a client idle for this many seconds (0 = never), as Redis's timeout"),
    ),
    Option(
        "aof_rewrite_min_size",
        int,
        64 * 1024 * 1024,
        check=_positive,
        help=N_(
            "compact the data file once it is this big and twice its size after the last compaction"
        ),
    ),
    Option(
        "fork_max_memory",
        int,
        256 * 1024 * 1024,
        check=_non_negative,
        help=N_(
            "compact the data file in a forked child while the server uses less memory than "
            "this, in bytes; past it, in slices without fork (fork() holds every service "
            "20-50 ms a GB); 0 = never fork"
        ),
    ),
    Option(
        "databases",
        int,
        16,
        check=_databases,
        help=N_("number of databases (SELECT 0 to databases-1), as Redis's databases"),
    ),
    Option(
        "notify_keyspace_events",
        str,
        "",
        check=_notify_flags,
        help=N_(
            'keyspace notifications, Redis\'s notify-keyspace-events letters ("KEA" = all; '
            '"" = off)'
        ),
    ),
)


def settings_from(options: Any) -> Settings:
    return Settings(
        data=options.get("data"),
        fsync=options.get("fsync") or "everysec",
        password=options.get("password"),
        protected_mode=options.get("protected_mode", True),
        maxclients=options.get("maxclients") or 10000,
        proto_max_bulk_len=options.get("proto_max_bulk_len") or 512 * 1024 * 1024,
        client_output_buffer_limit=options.get("client_output_buffer_limit", 32 * 1024 * 1024),
        timeout=options.get("timeout") or 0,
        aof_rewrite_min_size=options.get("aof_rewrite_min_size") or 64 * 1024 * 1024,
        fork_max_memory=options.get("fork_max_memory", 256 * 1024 * 1024),
        databases=options.get("databases") or 16,
        notify_keyspace_events=options.get("notify_keyspace_events") or "",
        acl=list(options.get("acl") or []),
    )


def build(ctx: ServiceContext) -> KVServer:
    """
    The kv factory; loads the data file now.

    @raise portsuite.suite.StartupError: the data file is corrupt (one line: the
        file, the byte, the fix), so startup stops and nothing is left half-started.
    """
    svc = ctx.config
    settings = settings_from(ctx.options)
    if settings.protected_mode and not settings.password and not is_loopback_host(svc.host):
        log.warn(
            "{service}: listening on {host} without a password: clients from other machines "
            "get -DENIED (protected mode); set password (or protected_mode = false on a "
            "trusted network)",
            service=svc.name,
            host=svc.host,
        )
    try:
        server = KVServer(settings, ctx.reactor, name=svc.name, port=svc.port)
    except AOFError as e:
        from portsuite.api import StartupError

        raise StartupError(
            _("cannot start [services.{name}]: {error}").format(name=svc.name, error=e)
        ) from None
    except OSError as e:
        from portsuite.api import StartupError

        raise StartupError(
            _(
                "cannot start [services.{name}]: data file {file}: "
                "{error}; check that the folder exists and is writable by this user"
            ).format(name=svc.name, file=e.filename or ctx.options.get("data"), error=e.strerror)
        ) from None
    _account_passwords(server, ctx.accounts)
    return server


def _account_passwords(server: KVServer, accounts: Any) -> None:
    """ACL users named after [users] accounts, with no password of their own, get theirs."""
    if accounts is None:
        return
    for name, user in server.users.items():
        account = accounts.get(name) if name != "default" else None
        if account is None or user.passwords or user.nopass or not account.secret:
            continue
        if account.hashed:  # bcrypt on every AUTH would stall the reactor
            log.warn(
                "{service}: ACL user {name}: the [users] password is a bcrypt hash, which kv "
                "cannot check on AUTH; give the acl line a >password or #sha256",
                service=server.name,
                name=name,
            )
            continue
        user.apply([b">" + account.secret.encode()])


def check(svc: Any) -> list[str]:
    """C{portsuite check}: bad ACL lines, and a data file that cannot be loaded."""
    errors = check_lines(svc.options.get("password"), svc.options.get("acl"))
    data = svc.options.get("data")
    if data is None:
        return errors
    problem = check_data_file(Path(data), settings_from(svc.options))
    return errors + ([f"data: {problem}"] if problem else [])


def _refusal(reason: str) -> bytes:
    return f"-ERR {reason}\r\n".encode()


KV = ServiceType(
    name="kv",
    description=N_(
        "Redis-compatible key-value store (redis-cli, redis-py, telnet), on Redis's port"
    ),
    default_port=6379,
    options=OPTIONS,
    tcp_factory=build,
    refusal=_refusal,
    check=check,
    rfc="RESP (Redis serialization protocol)",
)
