"""C{portsuite passwd}: print a C{[users]} line with a bcrypt hash of a password."""

from __future__ import annotations

import argparse
import sys

from portsuite.lang import N_, _

HELP = N_("print a [users] line with a bcrypt hash of a password (read from the terminal)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "name", nargs="?", default="alice", help=_("the user name to print the line for")
    )
    p.add_argument("--rounds", type=int, default=12, help=_("bcrypt cost (default 12)"))


def run(args: argparse.Namespace) -> int:
    import getpass

    from portsuite.api import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass(_("password for {name}: ").format(name=args.name))
        if getpass.getpass("again: ") != password:
            print(_("portsuite passwd: the two passwords differ; nothing printed"), file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(_("portsuite passwd: an empty password; nothing printed"), file=sys.stderr)
        return 1
    if not 4 <= args.rounds <= 16:
        print(_("portsuite passwd: --rounds must be 4-16"), file=sys.stderr)
        return 2
    print(_("# paste under [users] in the config:"))
    print(f'{args.name} = "{hash_password(password, args.rounds)}"')
    return 0
