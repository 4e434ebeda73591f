"""
The language of the CLI and of config errors: C{[suite] lang} if the config sets it,
else the locale (LC_ALL / LC_MESSAGES / LANG). L{_} translates one message through
the catalogs of L{portsuite.api.i18n}.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from portsuite.api import i18n
from portsuite.api.i18n import from_environment, translator


def set_language(lang: str | None) -> str:
    """Use C{lang} from now on (None: the locale's); returns the language chosen."""
    chosen = from_environment(lang)
    i18n.set_current(chosen)
    return chosen


def language() -> str:
    return i18n.current()


def _(message: str) -> str:
    """C{message} in the current language."""
    return translator(language()).gettext(message)


def N_(message: str) -> str:
    """Mark C{message} for the catalogs; translated later, where it is shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    return translator(language()).ngettext(singular, plural, n)


def configured_language(path: str | Path) -> str | None:
    """C{[suite] lang} of a config file, read before the config is checked (None if unset)."""
    try:
        with open(path, "rb") as f:
            suite = tomllib.load(f).get("suite", {})
    except (OSError, ValueError):
        return None
    lang = suite.get("lang") if isinstance(suite, dict) else None
    return lang if isinstance(lang, str) else None
