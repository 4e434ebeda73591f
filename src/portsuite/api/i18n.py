"""
French and English: gettext catalogs for the suite's pages and messages.

The catalogs are C{portsuite/locale/LANG/LC_MESSAGES/portsuite.po} (the source, in
the repository) and their compiled C{.mo} (committed beside them, checked against the
C{.po} by the tests). English is the source language: an English translator is the
identity. This module is part of the plugin API (a leaf): a service type asks for
L{translator}C{(lang)} and calls its C{gettext}.

  - L{LANGUAGES}: the languages with a catalog, English first;
  - L{negotiate}: the best of them for an HTTP C{Accept-Language} header;
  - L{from_environment}: the CLI's language, from C{[suite] lang} else the locale.
"""

from __future__ import annotations

import gettext as _gettext
import os
from functools import lru_cache
from pathlib import Path

DOMAIN = "portsuite"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "fr")
DEFAULT = "en"


@lru_cache(maxsize=16)
def translator(lang: str | None = None) -> _gettext.NullTranslations:
    """The catalog of C{lang} (C{"fr"}, C{"en"}…); English, the identity, otherwise."""
    lang = normalize(lang)
    if lang == DEFAULT:
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def normalize(lang: str | None) -> str:
    """C{"fr_FR.UTF-8"}, C{"fr-CA"}, C{"FR"} → C{"fr"}; anything unknown → C{"en"}."""
    if not lang:
        return DEFAULT
    base = lang.strip().replace("-", "_").split("_")[0].split(".")[0].lower()
    return base if base in LANGUAGES else DEFAULT


def negotiate(accept_language: str | None) -> str:
    """The language an C{Accept-Language} header prefers among L{LANGUAGES}."""
    best, best_q = DEFAULT, -1.0
    for order, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        base = tag.strip().split("-")[0].lower()
        if base in LANGUAGES and q > 0 and q - order * 1e-6 > best_q:
            best, best_q = base, q - order * 1e-6
    return best


def from_environment(configured: str | None = None) -> str:
    """The CLI's language: C{[suite] lang} if set, else LC_ALL / LC_MESSAGES / LANG."""
    if configured and normalize(configured) != DEFAULT or (configured or "").lower() == DEFAULT:
        return normalize(configured)  # an unknown one is reported by the config check
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var)
        if value:
            return normalize(value.split(":")[0])
    return DEFAULT


_current: list[str | None] = [None]


def set_current(lang: str | None) -> None:
    """The language of the CLI and config errors from now on (None: the locale's)."""
    _current[0] = lang


def current() -> str:
    """The language of the CLI and config errors: as set, else the locale's."""
    lang = _current[0]
    if lang is None:
        lang = _current[0] = from_environment(None)
    return lang


def gettext(message: str) -> str:
    """C{message} in the CLI's language (L{current}): for the plugin API's own messages."""
    return translator(current()).gettext(message)


def N_(message: str) -> str:
    """Mark C{message} for the catalogs (an C{Option}'s help); translated where it is shown."""
    return message


def ephemeral_range() -> tuple[int, int] | None:
    """This machine's ephemeral (client) port range, from Linux; None where unknown."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        return int(lo), int(hi)
    except (OSError, ValueError):
        return None


IANA_DYNAMIC = (49152, 65535)

__all__ = [
    "DEFAULT",
    "IANA_DYNAMIC",
    "LANGUAGES",
    "LOCALE_DIR",
    "N_",
    "current",
    "ephemeral_range",
    "from_environment",
    "gettext",
    "negotiate",
    "normalize",
    "set_current",
    "translator",
]
