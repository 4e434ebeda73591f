"""
The C{portsuite} command.

    portsuite check -c config.toml     validate; one row per listener, with its port class
    portsuite ports [-c config.toml]   the port ranges, and where each service falls
    portsuite plugins [-c config.toml] every service type the suite can see
    portsuite cert [--dir certs]       a local CA and a TLS cert for localhost
    portsuite trace SERVICE            follow a traced service's bytes live

A subcommand is a function C{run(args) -> exit status} plus one C{add_*} function that
declares its arguments; both are listed in L{COMMANDS}.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portsuite import certs, loader, trace
from portsuite import config as configmod
from portsuite.api import ConfigError, port_class
from portsuite.registry import Registry

CAP_NET_BIND_SERVICE = 10
RANGES = (
    (
        "well-known",
        0,
        1023,
        "system services (echo 7, http 80…): binding needs root or CAP_NET_BIND_SERVICE",
    ),
    (
        "registered",
        1024,
        49151,
        "assigned by IANA to applications (mysql 3306, redis 6379, http-alt 8080…)",
    ),
    ("dynamic", 49152, 65535, "never assigned: the OS hands them out as ephemeral client ports"),
)


def unprivileged_port_start() -> int:
    """The lowest port a normal user may bind (Linux sysctl; 1024 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def can_bind_privileged() -> bool:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_NET_BIND_SERVICE & 1)
    except OSError:
        pass
    return False


def listener_rows(cfg: configmod.SuiteConfig) -> list[dict[str, Any]]:
    """What each service will bind, before binding: one row per listener."""
    rows = []
    for svc in cfg.services:
        stype = cfg.registry.resolve(svc.type)
        tls = "tls" if svc.tls is not None else ""
        if svc.listen:
            for desc in svc.listen:
                kind = desc.split(":", 1)[0]
                port = _desc_port(desc)
                rows.append(
                    dict(
                        service=svc.name,
                        type=svc.type,
                        transport=kind,
                        host=_desc_host(desc, svc.host),
                        port=port,
                        tls="tls" if tls or kind == "ssl" else "",
                    )
                )
            continue
        if svc.tcp and stype.tcp_factory is not None:
            rows.append(
                dict(
                    service=svc.name,
                    type=svc.type,
                    transport="tcp",
                    host=svc.host,
                    port=svc.port,
                    tls=tls,
                )
            )
        if svc.udp:
            rows.append(
                dict(
                    service=svc.name,
                    type=svc.type,
                    transport="udp",
                    host=svc.host,
                    port=svc.port,
                    tls="",
                )
            )
    return rows


def _desc_port(desc: str) -> int | None:
    parts = desc.split(":")
    for part in parts[1:]:
        if part.isdigit():
            return int(part)
        key, _, value = part.partition("=")
        if key == "port" and value.isdigit():
            return int(value)
    return None


def _desc_host(desc: str, default: str) -> str:
    kind = desc.split(":", 1)[0]
    if kind == "unix":
        return desc.split(":")[1]
    for part in desc.split(":")[2:]:
        key, _, value = part.partition("=")
        if key == "interface":
            return value
    return default


def _class_of(port: int | None) -> str:
    if port is None:
        return "-"
    if port == 0:
        return "any free port"
    return port_class(port)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _load(args: argparse.Namespace) -> configmod.SuiteConfig | None:
    try:
        return loader.load(args.config)
    except ConfigError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        print(f"portsuite: {len(e.errors)} problem(s) in {args.config}", file=sys.stderr)
        return None


# -- check ------------------------------------------------------------------------


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default="config.toml", help="the TOML config")


def run_check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return 2
    rows = listener_rows(cfg)
    table = [["SERVICE", "TYPE", "TRANSPORT", "HOST", "PORT", "CLASS", "TLS"]]
    warnings = []
    low = unprivileged_port_start()
    privileged = can_bind_privileged()
    for r in rows:
        port = r["port"]
        table.append(
            [
                r["service"],
                r["type"],
                r["transport"],
                r["host"],
                "-" if port is None else str(port),
                _class_of(port),
                r["tls"] or "-",
            ]
        )
        if port and port < low and not privileged:
            warnings.append(
                f"warning: [services.{r['service']}] port {port} is well-known (0-1023) and needs "
                f"root or CAP_NET_BIND_SERVICE; run as root with twistd --uid/--gid, or use a port >= 1024"
            )
    print(_table(table))
    for w in dict.fromkeys(warnings):
        print(w)
    print(f"ok: {len(cfg.services)} service(s), {len(rows)} listener(s) in {args.config}")
    return 0


# -- ports ------------------------------------------------------------------------


def add_ports(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="also place this config's services")


def run_ports(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    if args.config:
        cfg = _load(args)
        if cfg is None:
            return 2
        rows = listener_rows(cfg)
    print("1 service = 1 port: a client finds a service by its port number.")
    for name, lo, hi, what in RANGES:
        print(f"\n{name:<10} {lo:>5}-{hi:<5}  {what}")
        for r in rows:
            if r["port"] and lo <= r["port"] <= hi:
                print(f"    {r['port']:>5}/{r['transport']:<4} {r['service']} ({r['type']})")
    zero = [r for r in rows if r["port"] == 0]
    if zero:
        print("\nport = 0 (the OS picks a free port at start):")
        for r in zero:
            print(f"    {r['service']} ({r['type']}, {r['transport']})")
    print(f"\nOn this machine a normal user may bind ports >= {unprivileged_port_start()}.")
    return 0


# -- plugins ----------------------------------------------------------------------


def add_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="also look in this config's plugin_dirs")


def run_plugins(args: argparse.Namespace) -> int:
    if args.config:
        cfg = _load(args)
        if cfg is None:
            return 2
        registry = cfg.registry
    else:
        registry = Registry.discover()
    table = [["TYPE", "PORT", "TRANSPORTS", "SOURCE", "DESCRIPTION"]]
    for name in sorted(registry.types):
        t = registry.types[name]
        port = "-" if t.default_port is None else str(t.default_port)
        desc = t.description + (f" ({t.rfc})" if t.rfc else "")
        table.append([name, port, "/".join(sorted(t.transports)), t.source, desc])
    print(_table(table))
    print(
        '\nAny Protocol, ServerFactory or DatagramProtocol class also works as type = "module:Class".'
    )
    for problem in registry.problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 0


# -- passwd -----------------------------------------------------------------------


def add_passwd(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default="alice", help="the user name to print the line for")
    p.add_argument("--rounds", type=int, default=12, help="bcrypt cost (default 12)")


def run_passwd(args: argparse.Namespace) -> int:
    import getpass

    from portsuite.api import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("portsuite passwd: the two passwords differ; nothing printed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("portsuite passwd: an empty password; nothing printed", file=sys.stderr)
        return 1
    if not 4 <= args.rounds <= 16:
        print("portsuite passwd: --rounds must be 4-16", file=sys.stderr)
        return 2
    print("# paste under [users] in the config:")
    print(f'{args.name} = "{hash_password(password, args.rounds)}"')
    return 0


COMMANDS: dict[
    str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
] = {
    "check": ("validate a config without binding; show every listener", add_check, run_check),
    "ports": ("the port ranges, and where a config's services fall", add_ports, run_ports),
    "plugins": ("list every service type the suite can see", add_plugins, run_plugins),
    "cert": (
        "make a local CA and a TLS cert for localhost, 127.0.0.1 and ::1",
        certs.add_arguments,
        certs.run,
    ),
    "passwd": (
        "print a [users] line with a bcrypt hash of a password (read from the terminal)",
        add_passwd,
        run_passwd,
    ),
    "trace": (
        "follow the live transcript of a service that has trace = true",
        trace.add_arguments,
        trace.run,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="portsuite",
        description="A multi-protocol server suite. Run it with: twistd -n portsuite -c CONFIG",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (helptext, add, run) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        add(p)
        p.set_defaults(run=run)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
