"""
What a service tells the suite's garbage-collection policy (L{portsuite.gcpause}):
that it is building, or has just built, a container of a great many elements, which
no collection should walk again and again. A leaf: the policy registers itself here
when it runs (under twistd); otherwise the hint does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

_freeze: Callable[[bool], None] | None = None


def freeze_young(now: bool = False) -> None:
    """
    Freeze what is young now (C{gc.freeze}: O(1)), so that no collection walks it
    again: while building a container of a great many elements (at most so often, see
    L{portsuite.gcpause}), or just after (C{now}). Cyclic garbage among what is frozen
    stays in memory. Nothing when no policy runs (an in-process suite leaves the test
    process's collector alone).
    """
    if _freeze is not None:
        _freeze(now)


def set_freezer(freeze: Callable[[bool], None] | None) -> None:
    """What L{freeze_young} calls (L{portsuite.gcpause}, while it owns the collector)."""
    global _freeze
    _freeze = freeze


def freezer() -> Callable[[bool], None] | None:
    """What L{freeze_young} calls now, if anything."""
    return _freeze
