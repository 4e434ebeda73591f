"""C{portsuite disable NAME}: a service stops listening (its open connections go on)."""

from __future__ import annotations

import argparse

from portsuite import live
from portsuite.lang import N_, _

HELP = N_("a service of the running suite stops listening, without a restart")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", help=_("the service's name, as in [services.NAME]"))
    live.add_target_arguments(p)


def run(args: argparse.Namespace) -> int:
    return live.main(args, {"command": "disable", "service": args.service})
