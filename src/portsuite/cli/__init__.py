"""
The C{portsuite} command.

    portsuite check -c config.toml     validate; one row per listener, with its port class
    portsuite ports [-c config.toml]   the port ranges, and where each service falls
    portsuite plugins [-c config.toml] every service type the suite can see
    portsuite passwd [NAME]            a [users] line with a bcrypt hash
    portsuite cert [--dir certs]       a local CA and a TLS cert for localhost
    portsuite trace SERVICE            follow a traced service's bytes live
    portsuite status / reload          the running suite: its services; read the config again
    portsuite disable|enable NAME      a service stops / resumes listening
    portsuite fault NAME latency=200ms faults on a service's next connections (or: clear)

One module per subcommand in this package, each with C{HELP}, C{add_arguments(parser)}
and C{run(args) -> exit status}; L{COMMANDS} lists them in the order C{--help} shows.
"""

from __future__ import annotations

import argparse
import gettext
import os
import sys
from types import ModuleType

from portsuite.api.i18n import DOMAIN, LOCALE_DIR
from portsuite.cli import (
    cert,
    check,
    disable,
    enable,
    fault,
    passwd,
    plugins,
    ports,
    reload,
    status,
    trace,
)
from portsuite.lang import N_, _

COMMANDS: dict[str, ModuleType] = {
    "check": check,
    "ports": ports,
    "plugins": plugins,
    "cert": cert,
    "passwd": passwd,
    "trace": trace,
    "status": status,
    "reload": reload,
    "disable": disable,
    "enable": enable,
    "fault": fault,
}


DESCRIPTION = N_("A multi-protocol server suite. Run it with: twistd -n portsuite -c CONFIG")

# argparse's own words, which it translates through gettext's current domain (Python's
# argparse howto, "How to translate the argparse output"): listed here so that the
# catalog carries them (make i18n), and main() makes our catalog that domain.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("unrecognized arguments: %s"),
    N_("the following arguments are required: %s"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("not allowed with argument %s"),
    N_("one of the arguments %s is required"),
    N_("ignored explicit argument %r"),
)


def main(argv: list[str] | None = None) -> int:
    # argparse speaks the locale's language too (its messages come before any config)
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)
    parser = argparse.ArgumentParser(
        prog="portsuite",
        description=_(DESCRIPTION),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=_(module.HELP), description=_(module.HELP))
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BrokenPipeError:  # portsuite plugins | head: the reader left, nothing to say
        # point stdout at /dev/null so the interpreter's final flush does not fail too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


__all__ = ["COMMANDS", "main"]

if __name__ == "__main__":
    sys.exit(main())
