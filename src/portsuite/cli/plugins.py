"""C{portsuite plugins}: every service type the suite can see."""

from __future__ import annotations

import argparse
import sys

from portsuite.cli.common import load_config, table
from portsuite.lang import N_, _
from portsuite.registry import Registry

HELP = N_("list every service type the suite can see")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=None, help=_("also look in this config's plugin_dirs"))


def run(args: argparse.Namespace) -> int:
    if args.config:
        cfg = load_config(args.config)
        if cfg is None:
            return 2
        registry = cfg.registry
    else:
        registry = Registry.discover()
    rows = [[_("TYPE"), _("PORT"), _("TRANSPORTS"), _("SOURCE"), _("DESCRIPTION")]]
    for name in sorted(registry.types):
        t = registry.types[name]
        port = "-" if t.default_port is None else str(t.default_port)
        # a type's description is an N_() of its module: in the catalog for the built-ins
        desc = (_(t.description) if t.description else "") + (f" ({t.rfc})" if t.rfc else "")
        rows.append([name, port, "/".join(sorted(t.transports)), t.source, desc])
    print(table(rows))
    print(
        "\n"
        + _(
            "Any Protocol, ServerFactory or DatagramProtocol class also works as "
            'type = "module:Class".'
        )
    )
    for problem in registry.problems:
        print(_("problem: {problem}").format(problem=problem), file=sys.stderr)
    return 0
