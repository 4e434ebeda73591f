"""
WCAG AA contrast of the colours the dashboard and the lab guide use, computed from
style.css itself: 4.5:1 for text, 3:1 for large text and for the focus ring.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

CSS = (
    resources.files("portsuite_services.http.dashboard")
    .joinpath("static", "style.css")
    .read_text("utf-8")
)
VARS = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", CSS))
WHITE = "#ffffff"

# (text, background, minimum): every pair the stylesheet puts together
PAIRS = [
    ("ink", "paper", 4.5),
    ("ink", "band", 4.5),
    ("ink", "code", 4.5),
    ("ink", "flash", 4.5),
    ("muted", "paper", 4.5),
    ("muted", "band", 4.5),
    ("accent", "paper", 4.5),
    ("accent", "band", 4.5),
    ("bar-ink", "bar", 4.5),
    ("bar-link", "bar", 4.5),
    ("c2s", "paper", 4.5),
    ("s2c", "paper", 4.5),
    ("udp", "paper", 4.5),  # hex in the diagrams
    ("tls", "paper", 4.5),
    ("bad", "paper", 4.5),
    ("dynamic", "band", 3.0),  # the "live" dot
    ("focus", "paper", 3.0),  # the keyboard focus ring (non-text)
    ("focus", "bar", 3.0),
] + [
    # white bold text on the badges and protocol tags
    (WHITE, name, 4.5)
    for name in ("well-known", "registered", "dynamic", "tcp", "udp", "tls", "bad", "muted")
]


def luminance(colour: str) -> float:
    rgb = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def colour(name: str) -> str:
    return name if name.startswith("#") else VARS[name]


def test_the_stylesheet_declares_its_colours() -> None:
    assert len(VARS) >= 15
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)


@pytest.mark.parametrize(("fg", "bg", "minimum"), PAIRS)
def test_wcag_aa_contrast(fg: str, bg: str, minimum: float) -> None:
    ratio = contrast(colour(fg), colour(bg))
    assert ratio >= minimum, f"{fg} on {bg}: {ratio:.2f}:1 < {minimum}:1"
