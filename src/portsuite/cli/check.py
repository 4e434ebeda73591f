"""
C{portsuite check}: validate a config without binding; one row per listener, then a
warning for everything startup would hit: a well-known port without the right to bind
it, a port already in use (and by which program, where C{ss} can tell), a host that is
not an address of this machine, a C{root}/C{data} folder the user the suite runs as
(C{--uid/--gid}, as twistd's) could not read or write.
"""

from __future__ import annotations

import argparse
import errno
import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from portsuite.cli.common import (
    can_bind_privileged,
    class_of,
    listener_rows,
    load_config,
    table,
    unprivileged_port_start,
)
from portsuite.config import SuiteConfig
from portsuite.lang import N_, _

HELP = N_("validate a config without binding; show every listener")
PROBED = ("tcp", "tcp6", "ssl", "udp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="config.toml", help=_("the TOML config"))
    p.add_argument(
        "-u",
        "--uid",
        default=None,
        help=_("the user twistd will run as (twistd --uid): check its access to root/data folders"),
    )
    p.add_argument(
        "-g",
        "--gid",
        default=None,
        help=_("the group twistd will run as (twistd --gid; default: the --uid user's group)"),
    )


def run(args: argparse.Namespace) -> int:
    try:
        who = User.of(args.uid, args.gid)
    except LookupError as e:
        print(f"portsuite check: {e}", file=sys.stderr)
        return 2
    cfg = load_config(args.config)
    if cfg is None:
        return 2
    rows = listener_rows(cfg)
    out = [[_("SERVICE"), _("TYPE"), _("TRANSPORT"), _("HOST"), _("PORT"), _("CLASS"), _("TLS")]]
    warnings = []
    low = unprivileged_port_start()
    privileged = can_bind_privileged()
    for r in rows:
        port = r["port"]
        out.append(
            [
                r["service"],
                r["type"],
                r["transport"],
                r["host"],
                "-" if port is None else str(port),
                class_of(port),
                r["tls"] or "-",
            ]
        )
        if port and port < low and not privileged:
            warnings.append(
                _(
                    "warning: [services.{service}] port {port} is well-known (0-1023) and needs "
                    "root or CAP_NET_BIND_SERVICE; run as root with twistd --uid/--gid, "
                    "or use a port >= 1024"
                ).format(service=r["service"], port=port)
            )
        elif r["transport"] in PROBED and port is not None:
            problem = probe(r["transport"], r["host"], port)
            if problem:
                warnings.append(
                    _("warning: [services.{service}] {transport} {host}:{port}: {problem}").format(
                        service=r["service"],
                        transport=r["transport"],
                        host=r["host"],
                        port=port,
                        problem=problem,
                    )
                )
    warnings.extend(folder_warnings(cfg, who))
    print(table(out))
    for w in dict.fromkeys(warnings):
        print(w)
    for svc in cfg.services:
        stype = cfg.registry.resolve(svc.type)
        if stype.notes is not None:
            for note in stype.notes(svc):
                print(_("note: [services.{service}] {note}").format(service=svc.name, note=note))
    print(
        _("ok: {services} service(s), {listeners} listener(s) in {path}").format(
            services=len(cfg.services), listeners=len(rows), path=args.config
        )
    )
    return 0


# -- ports: what binding would say ------------------------------------------------


def probe(transport: str, host: str, port: int) -> str | None:
    """Bind and close at once, as the suite would bind; None, or what startup would say."""
    from portsuite.suite import bind_fix

    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host or None, port, type=kind, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError):
        return bind_fix(errno.EADDRNOTAVAIL, "", host, port)
    with socket.socket(family, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted does
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EACCES:
                return None  # the well-known port warning says it
            holder = holder_of(transport, port) if e.errno == errno.EADDRINUSE else None
            return bind_fix(e.errno, e.strerror or str(e), host, port, holder)
    return None


def holder_of(transport: str, port: int) -> str | None:
    """C{nc (pid 1234)}: the program listening on a port, where C{ss} can tell."""
    ss = shutil.which("ss")
    if ss is None:
        return None
    flag = "-lnup" if transport == "udp" else "-lntp"
    try:
        r = subprocess.run(
            [ss, "-H", flag, f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'\("([^"]+)",pid=(\d+)', r.stdout)
    if not found:
        return None
    return f"{found.group(1)} (pid {found.group(2)})"


# -- folders: what the user the suite runs as may do ------------------------------


class User:
    """Who the suite runs as: twistd's C{--uid/--gid} (names or numbers), else this process."""

    def __init__(self, uid: int, gids: set[int], label: str):
        self.uid = uid
        self.gids = gids
        self.label = label

    @classmethod
    def of(cls, uid_arg: str | None, gid_arg: str | None) -> User:
        if uid_arg is None and gid_arg is None:
            uid = os.geteuid()
            gids = {os.getegid(), *os.getgroups()}
            return cls(uid, gids, _user_label(uid))
        uid = os.geteuid() if uid_arg is None else _lookup_user(uid_arg)
        try:
            entry: Any = pwd.getpwuid(uid)
        except KeyError:
            entry = None
        if gid_arg is not None:
            gid = _lookup_group(gid_arg)
        elif entry is not None:
            gid = entry.pw_gid
        else:
            gid = os.getegid()
        gids = {gid}
        if entry is not None:
            gids.update(os.getgrouplist(entry.pw_name, gid))  # twistd's initgroups
        return cls(uid, gids, _user_label(uid))

    def may(self, path: Path, want: str) -> bool:
        """Mode bits only (no ACLs): may this user C{r}, C{w}, C{x} path?"""
        st = path.stat()
        if self.uid == 0:
            return "x" not in want or bool(st.st_mode & 0o111) or stat.S_ISDIR(st.st_mode)
        if st.st_uid == self.uid:
            bits = (st.st_mode >> 6) & 7
        elif st.st_gid in self.gids:
            bits = (st.st_mode >> 3) & 7
        else:
            bits = st.st_mode & 7
        need = (4 if "r" in want else 0) | (2 if "w" in want else 0) | (1 if "x" in want else 0)
        return bits & need == need


def _user_label(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _lookup_user(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise LookupError(
            _("--uid {value}: no such user on this machine").format(value=value)
        ) from None


def _lookup_group(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise LookupError(
            _("--gid {value}: no such group on this machine").format(value=value)
        ) from None


def access_problem(path: Path, who: User, write: bool) -> str | None:
    """Why C{who} could not read (or write) C{path}, as one clause with the fix; or None."""
    path = path.resolve()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            return None
        existing = existing.parent
    for folder in reversed(existing.parents):
        if not who.may(folder, "x"):
            return _(
                "{folder} cannot be entered by {label}; chmod o+x {folder} or use another --uid"
            ).format(folder=folder, label=who.label)
    if existing != path:
        # not there yet: the suite creates it in the nearest folder that exists
        if write and not who.may(existing, "wx"):
            return _(
                "{existing} is not writable by {label}; chmod or chown it, or use another --uid"
            ).format(existing=existing, label=who.label)
        return None
    is_dir = path.is_dir()
    want = ("r" if not write else "w") + ("x" if is_dir else "")
    if write and is_dir:
        want = "rwx"
    if not who.may(path, want):
        verb = _("writable") if write else _("readable")
        mode = "u+rwX" if write else "o+rX"
        return _(
            "{path} is not {verb} by {label}; chmod {mode} {path} (or chown it), or use another --uid"
        ).format(path=path, verb=verb, label=who.label, mode=mode)
    if write and not is_dir and not who.may(path.parent, "wx"):
        return _(
            "{parent} (where {name} is rewritten) is not writable by {label}; chmod or chown it, or use another --uid"
        ).format(parent=path.parent, name=path.name, label=who.label)
    return None


def folder_warnings(cfg: SuiteConfig, who: User) -> list[str]:
    """The file options of every service (root, data, …) against the user the suite runs as."""
    warnings = []
    for svc in cfg.services:
        stype = cfg.registry.resolve(svc.type)
        for opt in stype.options:
            value = svc.options.get(opt.name)
            if opt.kind is not Path or not isinstance(value, Path):
                continue
            problem = access_problem(value, who, write=opt.name == "data")
            if problem:
                warnings.append(f"warning: [services.{svc.name}] {opt.name}: {problem}")
    return warnings
