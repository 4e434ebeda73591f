"""
C{portsuite fault NAME latency=200ms jitter=50ms}: faults for a service's next
connections (C{portsuite fault NAME clear} removes them; C{kind=off} one of them).
Kinds: see L{portsuite.faults}.
"""

from __future__ import annotations

import argparse

from portsuite import faults, live
from portsuite.lang import N_, _

HELP = N_(
    "faults on a running service's next connections: latency=200ms, bandwidth=10KiB/s… or clear"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", help=_("the service's name, as in [services.NAME]"))
    p.add_argument(
        "faults",
        nargs="+",
        metavar="KIND=VALUE",
        help=_("one or more of: {join_faults_KIND} (KIND=off removes one); or clear").format(
            join_faults_KIND=", ".join(faults.KINDS)
        ),
    )
    live.add_target_arguments(p)


def run(args: argparse.Namespace) -> int:
    return live.main(args, {"command": "fault", "service": args.service, "args": args.faults})
