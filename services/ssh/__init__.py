"""
ssh and telnet: the same lab shell, encrypted (RFC 4251-4254, twisted.conch) and in
clear (RFC 854, twisted.conch.telnet).

    [services.ssh]
    type = "ssh"                 # port 22
    host_keys = "../data/ssh"    # ed25519 and RSA host keys, made at first start, mode 0600
    # files = "../ftp"           # what ls/cat and SFTP see, read-only unless writable
    [services.telnet]
    type = "telnet"              # port 23

Accounts are the suite's [users] (passwords, and keys for ssh). The lab shell runs no
program of the machine (L{portsuite_services.ssh.shell}).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from portsuite.api import Option, ServiceConfig, ServiceContext, ServiceType, StartupError
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _
from portsuite_services.ssh import hostkeys
from portsuite_services.ssh.common import ShellService

log = Logger(namespace="portsuite.ssh")


def _files_check(svc: ServiceConfig) -> list[str]:
    files = svc.options.get("files")
    if files is not None and not Path(files).is_dir():
        return [_("files: {path} is not a folder; create it or fix the path").format(path=files)]
    return []


def _ssh_check(svc: ServiceConfig) -> list[str]:
    errors = _files_check(svc)
    folder = svc.options.get("host_keys")
    if folder is not None:  # missing: the config already says so
        errors += hostkeys.check(Path(folder))
    return errors


def _notes(svc: ServiceConfig) -> list[str]:
    """The host keys' fingerprints: what ssh asks a student to trust at first login."""
    if svc.options.get("host_keys") is None:
        return []
    folder = Path(svc.options["host_keys"])
    out = []
    for kind, name in hostkeys.KINDS.items():
        path = folder / name
        if not path.exists():
            out.append(
                _("host key {kind}: made at first start in {folder}").format(
                    kind=kind.upper(), folder=folder
                )
            )
            continue
        try:
            from twisted.conch.ssh import keys

            fp = hostkeys.fingerprint(keys.Key.fromFile(str(path)))
        except Exception:
            continue  # the config check says what is wrong with it
        out.append(
            _("host key {kind} {fingerprint} (ssh asks you to trust this fingerprint)").format(
                kind=kind.upper(), fingerprint=fp
            )
        )
    return out


def _grace(value: float) -> str | None:
    return None if 0 < value <= 3600 else _("must be 1-3600 seconds")


def ssh_factory(ctx: ServiceContext) -> ServerFactory:
    from portsuite_services.ssh.server import LabSSHFactory

    folder = Path(ctx.options["host_keys"])
    try:
        keys = hostkeys.load_or_make(folder)
    except (OSError, ValueError) as e:
        raise StartupError(
            _("cannot start [services.{name}]: {error}").format(name=ctx.config.name, error=e)
        ) from None
    for kind, key in keys.items():
        log.info(
            "{service}: host key {kind} {fp} (ssh asks you to trust this fingerprint)",
            service=ctx.config.name,
            kind=kind.upper(),
            fp=hostkeys.fingerprint(key),
        )
    shell = ShellService(ctx, ctx.options["files"], ctx.options["writable"])
    factory: Any = LabSSHFactory(keys, shell, ctx.reactor, ctx.options["login_grace"])
    return factory  # builds conch's transport, not a _ProtoWithFactory


def telnet_factory(ctx: ServiceContext) -> ServerFactory:
    from portsuite_services.ssh.telnet import LabTelnetFactory

    shell = ShellService(ctx, ctx.options["files"], False)
    return LabTelnetFactory(shell)


def _files_options(writable: bool) -> tuple[Option, ...]:
    opts: tuple[Option, ...] = (
        Option("files", Path, help=N_("the folder the shell's ls/cat (and SFTP) show")),
        Option("login_grace", float, default=120.0, help=N_("seconds to log in"), check=_grace),
        Option(
            "login_failures",
            int,
            default=10,
            help=N_("failed logins from one address (in 5 minutes) before it is refused"),
            check=lambda v: None if 1 <= v <= 1000 else _("must be 1-1000"),
        ),
    )
    if writable:
        opts += (Option("writable", bool, default=False, help=N_("SFTP may write in files")),)
    return opts


def _no_notice(reason: str) -> Any:
    return None  # ssh: a text line would be a protocol error to the client


SSH = ServiceType(
    name="ssh",
    description=N_("SSH: the lab shell, encrypted; SFTP in files (twisted.conch)"),
    default_port=22,
    options=(
        Option(
            "host_keys",
            Path,
            required=True,
            help=N_("a folder for the host keys, e.g. ../data/ssh"),
        ),
        *_files_options(writable=True),
    ),
    tcp_factory=ssh_factory,
    refusal=_no_notice,
    check=_ssh_check,
    notes=_notes,
    rfc="RFC 4251-4254",
)

TELNET = ServiceType(
    name="telnet",
    description=N_("telnet: the same lab shell, in clear (passwords too: compare the transcripts)"),
    default_port=23,
    options=_files_options(writable=False),
    tcp_factory=telnet_factory,
    check=_files_check,
    rfc="RFC 854",
)
