"""The errors a config or a service type raises, shown to the user as one line each."""

from __future__ import annotations


class ConfigError(Exception):
    """A config that cannot run; C{errors} has one line per problem."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


class StartupError(Exception):
    """
    A service cannot start (a port cannot be bound, a data file is corrupt…); the
    text is the one line shown to the user, naming the service and the fix.
    """
