"""C{portsuite cert}: the command line of L{portsuite.certs}, which does the work."""

from __future__ import annotations

from portsuite.certs import add_arguments, run
from portsuite.lang import N_

HELP = N_("make a local CA and a TLS cert for localhost, 127.0.0.1 and ::1")

__all__ = ["HELP", "add_arguments", "run"]
