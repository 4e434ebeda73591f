"""C{portsuite ports}: the port ranges, and where a config's services fall."""

from __future__ import annotations

import argparse
from typing import Any

from portsuite.api.i18n import IANA_DYNAMIC, ephemeral_range
from portsuite.cli.common import (
    CLASS_NAMES,
    RANGES,
    listener_rows,
    load_config,
    unprivileged_port_start,
)
from portsuite.lang import N_, _

HELP = N_("the port ranges, and where a config's services fall")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help=_("also place this config's services"))


def run(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    if args.config:
        cfg = load_config(args.config)
        if cfg is None:
            return 2
        rows = listener_rows(cfg)
    print(_("1 service = 1 port: a client finds a service by its port number."))
    for name, lo, hi, what in RANGES:
        print(f"\n{_(CLASS_NAMES[name]):<12} {lo:>5}-{hi:<5}  {_(what)}")
        for r in rows:
            if r["port"] and lo <= r["port"] <= hi:
                print(f"    {r['port']:>5}/{r['transport']:<4} {r['service']} ({r['type']})")
    zero = [r for r in rows if r["port"] == 0]
    if zero:
        print("\n" + _("port = 0 (the OS picks a free port at start):"))
        for r in zero:
            print(f"    {r['service']} ({r['type']}, {r['transport']})")
    eph = ephemeral_range()
    if eph is not None:
        lo, hi = eph
        print(
            "\n"
            + _(
                "Client (ephemeral) ports on this machine: {lo}-{hi} "
                "(/proc/sys/net/ipv4/ip_local_port_range), not IANA's {ilo}-{ihi}: "
                "a client's port is taken from this range for each connection."
            ).format(lo=lo, hi=hi, ilo=IANA_DYNAMIC[0], ihi=IANA_DYNAMIC[1])
        )
        clash = [r for r in rows if r["port"] and lo <= r["port"] <= hi]
        for r in clash:
            print(
                "    "
                + _(
                    "{service} listens on {port}, inside that range: a client may hold it already"
                ).format(service=r["service"], port=r["port"])
            )
    print(
        "\n"
        + _("On this machine a normal user may bind ports >= {port}.").format(
            port=unprivileged_port_start()
        )
    )
    return 0
