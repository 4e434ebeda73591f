"""
twistd glue: C{twistd -n portsuite -c config.toml}.

The config is read and validated while the options are parsed, before anything is
bound or the process daemonizes: a bad config prints every problem, one line each,
and exits with status 2, without a traceback or the usage text.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.python import usage

from portsuite import internals, loader
from portsuite.api import ConfigError
from portsuite.lang import _, configured_language, set_language


class Options(usage.Options):
    synopsis = "-c CONFIG [--ready-file PATH]"
    longdesc = (
        "Start every service of a portsuite TOML config in one reactor, each on its "
        "own port. Check a config first with: portsuite check -c CONFIG"
    )
    optFlags = [
        [
            "dev",
            None,
            "reload plugin-dir modules when they are saved (as [suite] reload_plugins = true)",
        ],
    ]
    optParameters = [
        ["config", "c", "config.toml", "the suite's TOML config file"],
        [
            "ready-file",
            None,
            None,
            "once every listener is bound, write the bound ports there as JSON "
            "(for scripts and tests that use port = 0)",
        ],
    ]

    def postOptions(self) -> None:
        # first, before a service type's module imports the default reactor: epoll
        # without Twisted's per-event log context, unless --reactor chose one
        internals.install_reactor()
        # [suite] lang (else the locale): config errors and startup failures in French too
        set_language(configured_language(self["config"]))
        try:
            self["suite_config"] = loader.load(self["config"])
        except ConfigError as e:
            for line in e.errors:
                print(line, file=sys.stderr)
            print(
                _("portsuite: {n} problem(s) in {path}; nothing was started").format(
                    n=len(e.errors), path=self["config"]
                ),
                file=sys.stderr,
            )
            raise SystemExit(2) from None


def makeService(options: Options) -> Any:
    """
    The suite. As a daemon (twistd without C{-n}) it binds here, before twistd forks:
    a port that cannot be bound is then reported on the terminal that started it, in
    the same one line as in the foreground, exit status 1, no pidfile left behind.
    (Binding later, in the daemon, the line would go to /dev/null and twistd's parent
    would wait on its status pipe.) Binding still happens as the user that started
    twistd, before C{--uid/--gid} drop privileges. So a type's C{tcp_factory} must not
    start threads of its own: they would not survive the fork (reactor timers, open
    files and the reactor's thread pool, which starts when the reactor runs, do).
    """
    from portsuite.api import StartupError
    from portsuite.suite import Suite

    suite = Suite(options["suite_config"], ready_file=options["ready-file"])
    suite.dev = bool(options["dev"])
    parent = getattr(options, "parent", None)
    if parent is not None and "nodaemon" in parent and not parent["nodaemon"]:
        suite.daemon = True
        try:
            suite.listen()
        except StartupError as e:
            print(f"portsuite: {e}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
    _stop_cleanly_on_early_sigterm()
    _short_collections()
    return suite


def _short_collections() -> None:
    """Full garbage collections on a timer, in short passes (L{portsuite.gcpause})."""
    from twisted.internet import reactor

    from portsuite import gcpause

    if not reactor.running:  # twistd, about to run it (not a test's running reactor)
        gcpause.install(reactor)


def _stop_cleanly_on_early_sigterm() -> None:
    """
    The ready file is written, and the ports answer, before twistd runs the reactor,
    which is when Twisted installs its SIGTERM handler. A SIGTERM in between (a script
    that stops the suite as soon as it is ready) would kill the process at once and
    leave the pidfile behind: until the reactor's handler replaces this one, a SIGTERM
    stops the reactor as soon as it runs, through the normal shutdown.
    """
    import signal

    from twisted.internet import reactor as installed

    reactor: Any = installed

    def stop_when_running(signum: int, frame: Any) -> None:
        reactor.callWhenRunning(reactor.stop)

    signal.signal(signal.SIGTERM, stop_when_running)
