"""The dashboard's mail view and JSON API (filled in by a later step)."""

from __future__ import annotations

from typing import Any


def publish(ctx: Any, store: Any) -> None:
    """Nothing yet."""
