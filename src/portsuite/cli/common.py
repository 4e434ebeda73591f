"""What several subcommands share: loading a config, the listener rows, tables."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from portsuite import endpoints, loader
from portsuite.api import ConfigError, port_class
from portsuite.config import SuiteConfig
from portsuite.lang import N_, _, configured_language, set_language

CAP_NET_BIND_SERVICE = 10
# the IANA classes (RFC 6335); the texts go through the catalogs (portsuite.lang._)
RANGES = (
    (
        "well-known",
        0,
        1023,
        N_("system services (echo 7, http 80…): binding needs root or CAP_NET_BIND_SERVICE"),
    ),
    (
        "registered",
        1024,
        49151,
        N_("assigned by IANA to applications (mysql 3306, redis 6379, http-alt 8080…)"),
    ),
    ("dynamic", 49152, 65535, N_("never assigned by IANA: free for ephemeral client ports")),
)
CLASS_NAMES = {
    "well-known": N_("well-known"),
    "registered": N_("registered"),
    "dynamic": N_("dynamic"),
}


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


def listener_rows(cfg: SuiteConfig) -> list[dict[str, Any]]:
    """What each service will bind, before binding: one row per listener, as the suite binds."""
    rows = []
    for svc in cfg.services:
        stype = cfg.registry.resolve(svc.type)
        for planned in endpoints.plan(svc, stype):
            rows.append(
                dict(
                    service=svc.name,
                    type=svc.type,
                    transport=planned.transport,
                    host=planned.host,
                    port=planned.port,
                    tls="tls" if planned.tls else "",
                )
            )
    return rows


def class_of(port: int | None) -> str:
    if port is None:
        return "-"
    if port == 0:
        return _("any free port")
    return _(CLASS_NAMES[port_class(port)])


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def load_config(path: str) -> SuiteConfig | None:
    """The validated config, or None after printing every problem (one line each)."""
    set_language(configured_language(path))
    try:
        return loader.load(path)
    except ConfigError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        print(
            _("portsuite: {n} problem(s) in {path}").format(n=len(e.errors), path=path),
            file=sys.stderr,
        )
        return None
