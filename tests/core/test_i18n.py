"""
French and English: the catalog holds every message of the code, each translated,
none fuzzy, and the committed .mo says the same as the .po; the CLI follows the
config's lang or the locale.
"""

from __future__ import annotations

import gettext
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portsuite.api.i18n import LOCALE_DIR, negotiate, normalize, translator

ROOT = Path(__file__).resolve().parents[2]
PO = LOCALE_DIR / "fr" / "LC_MESSAGES" / "portsuite.po"
MO = PO.with_suffix(".mo")


def code_messages() -> set[str]:
    """Every message of the code, extracted as `make i18n` does (babel.cfg)."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with open(ROOT / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = dict(DEFAULT_KEYWORDS, N_=None)
    found = set()
    for _filename, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_french_catalog_translates_every_message_of_the_code() -> None:
    from babel.messages.pofile import read_po

    catalog = read_po(PO.open("rb"), locale="fr")
    assert not catalog.fuzzy, "the catalog header is fuzzy"
    entries = {m.id: m for m in catalog if m.id}
    wanted = code_messages()
    assert len(wanted) > 100
    missing = sorted(wanted - set(entries))
    assert not missing, f"not in {PO.name} (run make i18n, then translate): {missing}"
    for msgid, m in entries.items():
        assert m.string, f"empty translation: {msgid!r}"
        assert "fuzzy" not in m.flags, f"fuzzy translation: {msgid!r}"
        # the same {placeholders} on both sides, or .format() breaks in French
        assert set(re.findall(r"\{\w*[^}]*\}", msgid)) == set(
            re.findall(r"\{\w*[^}]*\}", m.string)
        ), msgid
    stale = sorted(set(entries) - wanted)
    assert not stale, f"no longer in the code (make i18n drops them): {stale}"


def test_the_compiled_catalog_is_the_po_compiled() -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    fresh = io.BytesIO()
    write_mo(fresh, read_po(PO.open("rb"), locale="fr"))
    fresh.seek(0)
    compiled = gettext.GNUTranslations(fresh)
    shipped = gettext.GNUTranslations(MO.open("rb"))
    assert shipped._catalog == compiled._catalog, "portsuite.mo is stale: run make i18n"  # type: ignore[attr-defined]
    assert translator("fr").gettext("Lab guide") == "Guide de TP"
    assert translator("en").gettext("Lab guide") == "Lab guide"


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", "fr"),
        ("en-GB,en;q=0.9,fr;q=0.8", "en"),
        ("de-DE,fr;q=0.5", "fr"),
        ("de", "en"),
        ("", "en"),
        ("fr;q=0, en;q=0.1", "en"),
        ("fr;q=garbage", "en"),
        ("," * 10_000, "en"),
    ],
)
def test_accept_language(header: str, lang: str) -> None:
    assert negotiate(header) == lang


def test_locale_names() -> None:
    assert normalize("fr_FR.UTF-8") == "fr"
    assert normalize("C.UTF-8") == "en"
    assert normalize(None) == "en"


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portsuite.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
    )


def test_the_cli_speaks_the_locale_and_shows_this_machines_client_ports() -> None:
    fr = cli("ports", env={"LANG": "fr_FR.UTF-8"})
    assert fr.returncode == 0, fr.stderr
    assert "1 service = 1 port : un client trouve un service" in fr.stdout
    assert "connus" in fr.stdout and "enregistrés" in fr.stdout and "dynamiques" in fr.stdout
    en = cli("ports", env={"LANG": "C.UTF-8"})
    assert "well-known" in en.stdout and "connus" not in en.stdout
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except OSError:
        pytest.skip("no ephemeral range on this system")
    assert f"{lo}-{hi}" in en.stdout and f"{lo}-{hi}" in fr.stdout


def test_suite_lang_in_the_config_wins_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    good = tmp_path / "fr.toml"
    good.write_text('[suite]\nlang = "fr"\n[services.echo]\ntype = "echo"\nport = 0\n')
    r = cli("check", "-c", str(good), env={"LANG": "C.UTF-8"})
    assert r.returncode == 0, r.stderr
    assert "SERVICE" in r.stdout and "ok : 1 service(s), 1 écoute(s)" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[suite]\nlang = "klingon"\n[services.echo]\ntype = "echo"\nport = 99999\n')
    r = cli("check", "-c", str(bad), env={"LANG": "fr_FR.UTF-8"})
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert any("lang" in x and 'mettez "en" ou "fr"' in x for x in lines), lines
    assert any("port" in x and "hors limites" in x for x in lines), lines
    assert lines[-1].startswith("portsuite : 2 problème(s) dans")
