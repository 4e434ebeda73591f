"""C{portsuite ports}: the port ranges, and where a config's services fall."""

from __future__ import annotations

import argparse
from typing import Any

from portsuite.cli.common import RANGES, listener_rows, load_config, unprivileged_port_start

HELP = "the port ranges, and where a config's services fall"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help="also place this config's services")


def run(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    if args.config:
        cfg = load_config(args.config)
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
