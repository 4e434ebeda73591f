"""C{portsuite trace}: the command line of the transcript follower in L{portsuite.trace}."""

from __future__ import annotations

from portsuite.lang import N_
from portsuite.trace import add_arguments, run

HELP = N_("follow the live transcript of a service that has trace = true")

__all__ = ["HELP", "add_arguments", "run"]
