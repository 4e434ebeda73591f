"""C{portsuite reload}: the running suite reads its config again (as SIGHUP does)."""

from __future__ import annotations

import argparse

from portsuite import live
from portsuite.lang import N_, _

HELP = N_("the running suite reads its config again: added services start, removed ones stop")


def add_arguments(p: argparse.ArgumentParser) -> None:
    live.add_target_arguments(p)
    p.add_argument(
        "--grace",
        type=float,
        default=live.GRACE,
        help=_(
            "seconds the open connections of a removed or changed service get (default {GRACE:g})"
        ).format(GRACE=live.GRACE),
    )


def run(args: argparse.Namespace) -> int:
    return live.main(args, {"command": "reload", "grace": args.grace})
