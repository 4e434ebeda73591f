"""C{portsuite status}: every service of the running suite, its state, ports and faults."""

from __future__ import annotations

import argparse

from portsuite import live
from portsuite.lang import N_

HELP = N_("every service of the running suite: listening or disabled, ports, open connections")


def add_arguments(p: argparse.ArgumentParser) -> None:
    live.add_target_arguments(p)


def run(args: argparse.Namespace) -> int:
    return live.main(args, {"command": "status"})
