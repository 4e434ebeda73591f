"""C{portsuite enable NAME}: a disabled service listens again, on the same port."""

from __future__ import annotations

import argparse

from portsuite import live
from portsuite.lang import N_, _

HELP = N_("a disabled service of the running suite listens again, on the same port")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", help=_("the service's name, as in [services.NAME]"))
    live.add_target_arguments(p)


def run(args: argparse.Namespace) -> int:
    return live.main(args, {"command": "enable", "service": args.service})
