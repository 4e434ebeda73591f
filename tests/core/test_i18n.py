"""
French and English: the catalog holds every message of the code, each translated,
none fuzzy, and the committed .mo says the same as the .po; the CLI follows the
config's lang or the locale.
"""

from __future__ import annotations

import ast
import gettext
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portsuite.api.i18n import LOCALE_DIR, negotiate, normalize, translator
from portsuite.testing import twistd_command

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


def test_argparse_own_words_follow_the_locale() -> None:
    fr = cli("ports", "--bogus", env={"LANG": "fr_FR.UTF-8"})
    assert fr.returncode == 2
    assert "usage : portsuite" in fr.stderr
    assert "erreur : arguments non reconnus : --bogus" in fr.stderr
    helped = cli("ports", "-h", env={"LANG": "fr_FR.UTF-8"})
    assert "afficher cette aide et quitter" in helped.stdout
    en = cli("ports", "--bogus", env={"LANG": "C.UTF-8"})
    assert "error: unrecognized arguments: --bogus" in en.stderr and "erreur" not in en.stderr


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


# the modules whose words reach a person: config errors, the CLI, live control's answers
HUMAN_FACING = [
    "src/portsuite/config.py",
    "src/portsuite/loader.py",
    "src/portsuite/registry.py",
    "src/portsuite/endpoints.py",
    "src/portsuite/suite.py",
    "src/portsuite/faults.py",
    "src/portsuite/tlscheck.py",
    "src/portsuite/live.py",
    "src/portsuite/api/accounts.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src/portsuite/cli").glob("*.py")),
]
# three words or more: a sentence, not a key, a format or a command
PROSE = re.compile(r"[A-Za-z']+[ ,;:]+[A-Za-z']+[ ,;:(]+[A-Za-z(']+")
# prose that stays English on purpose: a twisted.cred error no person reads, a programming error
NOT_PROSE = {
    "wrong user name or password",
    "limit and max_hosts must be at least 1, window more than 0",
}


def untranslated(
    source: str, config_time_only: bool = False, also: tuple[str, ...] = ()
) -> list[tuple[int, str]]:
    """
    The sentences of a module that do not go through _() or N_() (docstrings and logs
    aside); with C{config_time_only}, only those of its config checks (L{config_time}),
    and of its functions named in C{also}.
    """
    tree = ast.parse(source)
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    found = []
    scope = config_time(tree, also) if config_time_only else [tree]
    for node in (n for root in scope for n in ast.walk(root)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        else:
            continue
        parent = parents.get(node)
        if not PROSE.search(text) or text in NOT_PROSE or isinstance(parent, ast.JoinedStr):
            continue
        if isinstance(parent, ast.Expr) and isinstance(
            parents.get(parent), ast.Module | ast.FunctionDef | ast.ClassDef
        ):
            continue  # a docstring
        up, through_catalog = node, False
        while up in parents and not through_catalog:
            up = parents[up]
            if isinstance(up, ast.Call):
                f = up.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", "")
                owner = (
                    f.value.id
                    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                    else ""
                )
                through_catalog = name in ("_", "N_", "ngettext") or owner == "log"
        if not through_catalog:
            found.append((node.lineno, text))
    return found


def config_time(tree: ast.Module, also: tuple[str, ...] = ()) -> list[ast.AST]:
    """
    The parts of a service type's module that speak at config time (C{portsuite check}):
    its C{check=} and C{notes=} functions (a type's and an C{Option}'s, lambdas
    included), the functions C{also} names (a module's checks that its type's check
    calls), the functions of the module they call, the C{help=} of its options and its
    C{description=} (C{portsuite plugins}). The
    rest (the protocol's replies, which stay English on the wire) is left alone.
    """
    functions = {
        n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    roots: list[ast.AST] = []
    todo: list[str] = list(also)
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        for kw in call.keywords:
            if kw.arg in ("check", "notes") and isinstance(kw.value, ast.Name):
                todo.append(kw.value.id)
            elif kw.arg in ("check", "notes", "help", "description"):
                roots.append(kw.value)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        roots.append(functions[name])
        todo.extend(
            c.func.id
            for c in ast.walk(functions[name])
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
        )
    return roots


# the built-in types' config checks: what `portsuite check` says of a [services.X]
# option; with the functions of other modules their checks call
SERVICE_CONFIG: dict[str, tuple[str, ...]] = {
    "services/classic.py": (),
    "services/dns/__init__.py": (),
    "services/dns/zone.py": ("records_from_table", "records_from_file"),
    "services/echo.py": (),
    "services/ftp/__init__.py": (),
    "services/http/__init__.py": (),
    "services/kv/__init__.py": (),
    "services/kv/server.py": ("check_data_file",),
    # its rules' errors (User.apply) are ACL SETUSER's replies too: English on the wire
    "services/kv/acl.py": ("check_lines",),
    "services/mail/__init__.py": (),
    "services/sql/__init__.py": (),
    "services/ssh/__init__.py": (),
    "services/ssh/hostkeys.py": ("check",),
}


@pytest.mark.parametrize("path", HUMAN_FACING)
def test_every_sentence_of_the_cli_and_config_errors_goes_through_the_catalog(path: str) -> None:
    # an f-string or a bare literal cannot be translated: each must be _("…").format(…)
    # (the test above then fails until the French catalog has it)
    found = untranslated((ROOT / path).read_text("utf-8"))
    assert not found, f"{path}: not through the catalog: {found}"


@pytest.mark.parametrize("path", SERVICE_CONFIG)
def test_every_sentence_of_the_service_types_config_checks_goes_through_the_catalog(
    path: str,
) -> None:
    source = (ROOT / path).read_text("utf-8")
    found = untranslated(source, config_time_only=True, also=SERVICE_CONFIG[path])
    assert not found, f"{path}: a config check not through the catalog: {found}"


def test_the_config_time_finder_leaves_protocol_replies_alone() -> None:
    source = (
        "def _refusal(reason):\n    return f'421 {reason} is what the wire says'\n"
        "def _helper(v):\n    return 'must be more than zero here'\n"
        "def _positive(v):\n    return None if v > 0 else _helper(v)\n"
        "X = Option('a', int, check=_positive, help='seconds to wait for it')\n"
        "Y = Option('b', int, check=lambda v: 'must be one or more')\n"
    )
    assert sorted(untranslated(source, config_time_only=True)) == [
        (4, "must be more than zero here"),
        (7, "seconds to wait for it"),
        (8, "must be one or more"),
    ]


def test_the_prose_finder_finds_an_untranslated_sentence() -> None:
    bad = 'def f(x):\n    """A docstring, left alone."""\n    raise OSError(f"{x} is not a folder here")\n'
    good = 'def f(x):\n    raise OSError(_("{x} is not a folder here").format(x=x))\n'
    assert untranslated(bad) == [(3, "{} is not a folder here")]
    assert untranslated(good) == []


def test_live_control_and_config_errors_speak_french(tmp_path: Path) -> None:
    """What a French student reads: a config error, the live-control CLI's help and its answer."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[suite]\nlang = "fr"\n[services.echo]\ntype = "echo"\nport = 7\nworkers = 0\n'
        '[services.web]\ntype = "echo"\nport = 1\nlisten = ["bogus:1"]\n'
    )
    r = cli("check", "-c", str(bad), env={"LANG": "C.UTF-8"})
    assert r.returncode == 2
    assert "doit être un entier 1-64" in r.stderr, r.stderr
    assert "genre de point d'écoute inconnu 'bogus'" in r.stderr, r.stderr
    for command in ("status", "reload", "disable", "enable", "fault"):
        h = cli(command, "--help", env={"LANG": "fr_FR.UTF-8"})
        assert h.returncode == 0, h.stderr
        assert "la configuration avec laquelle la suite a été lancée" in h.stdout, (
            command,
            h.stdout,
        )
    r = cli(
        "status",
        "-c",
        str(tmp_path / "none.toml"),
        env={"LANG": "fr_FR.UTF-8", "PORTSUITE_RUN_DIR": str(tmp_path)},
    )
    assert r.returncode == 1
    assert r.stderr.startswith("portsuite : aucune suite ne tourne avec"), r.stderr


def test_the_service_types_config_errors_speak_french_or_english(tmp_path: Path) -> None:
    """What `portsuite check` says of bad [services.X] options of the built-in types."""
    config = (
        '[suite]\nlang = "{lang}"\n'
        '[services.ftp]\ntype = "ftp"\nport = 0\nroot = "."\npassive_ports = [30099, 30000]\n'
        'max_upload = "big"\n'
        '[services.kv]\ntype = "kv"\nport = 0\ndatabases = 0\nacl = ["bogus"]\n'
        '[services.dns]\ntype = "dns"\nport = 0\nzone = "bad name!"\n'
        '[services.dns.records]\n"www" = "not-an-address"\n'
        '[services.web]\ntype = "http"\nport = 0\nroot = "nowhere"\n'
        '[services.ssh]\ntype = "ssh"\nport = 0\n'
    )
    said = {}
    for lang in ("fr", "en"):
        path = tmp_path / f"{lang}.toml"
        path.write_text(config.format(lang=lang))
        # the locale says the other language: the config's lang wins
        r = cli(
            "check", "-c", str(path), env={"LANG": "en_US.UTF-8" if lang == "fr" else "fr_FR.UTF-8"}
        )
        assert r.returncode == 2, r.stderr
        said[lang] = r.stderr
    fr, en = said["fr"], said["en"]
    expected = [
        (
            "[services.ftp] passive_ports: doit être deux ports [premier, dernier] avec "
            "1024 <= premier <= dernier <= 65535",
            "[services.ftp] passive_ports: must be two ports [first, last] with "
            "1024 <= first <= last <= 65535",
        ),
        (
            "[services.ftp] max_upload: 'big' n'est pas un entier (plus gros fichier qu'un "
            "client peut envoyer, en octets",
            "[services.ftp] max_upload: 'big' is not an integer (largest file a client may "
            "upload, in bytes",
        ),
        (
            "[services.kv] acl[0] ('bogus'): doit commencer par 'user NOM'",
            "[services.kv] acl[0] ('bogus'): must start with 'user NAME'",
        ),
        (
            "[services.kv] databases: doit être entre 1 et 10000",
            "[services.kv] databases: must be 1 to 10000",
        ),
        (
            "[services.dns] zone: 'bad name!' n'est pas un nom de domaine ; utilisez par ex. lab.test",
            "[services.dns] zone: 'bad name!' is not a domain name; use e.g. lab.test",
        ),
        (
            "[services.dns] records.www.A: A 'not-an-address' n'est pas une adresse IPv4",
            "[services.dns] records.www.A: A 'not-an-address' is not an IPv4 address",
        ),
        (
            f"[services.web] root: {tmp_path / 'nowhere'} n'existe pas ; créez-le ou faites "
            "pointer root vers le dossier à servir",
            f"[services.web] root: {tmp_path / 'nowhere'} does not exist; create it or point "
            "root at the folder to serve",
        ),
        (
            "[services.ssh] host_keys: manquant ; ce type en a besoin (un dossier pour les "
            "clés d'hôte, par ex. ../data/ssh)",
            "[services.ssh] host_keys: missing; this type needs it (a folder for the host "
            "keys, e.g. ../data/ssh)",
        ),
    ]
    for french, english in expected:
        assert french in fr, (french, fr)
        assert english in en, (english, en)
        assert english not in fr and french not in en
    assert fr.splitlines()[-1].startswith("portsuite : 8 problème(s) dans"), fr
    assert en.splitlines()[-1].startswith("portsuite: 8 problem(s) in"), en


def test_plugins_describes_the_built_in_types_in_the_locales_language() -> None:
    fr = cli("plugins", env={"LANG": "fr_FR.UTF-8"})
    assert fr.returncode == 0, fr.stderr
    assert "Echo : renvoie chaque octet qu'il reçoit (RFC 862)" in fr.stdout, fr.stdout
    assert "Serveur de fichiers FTP" in fr.stdout and "FTP file server" not in fr.stdout
    en = cli("plugins", env={"LANG": "C.UTF-8"})
    assert "Echo: sends back every byte it receives (RFC 862)" in en.stdout, en.stdout


def test_a_port_in_use_is_told_in_the_suites_language(tmp_path: Path) -> None:
    """The error a student meets first: the port is taken (check, and startup, say why)."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        for lang, want in (
            ("fr", f"le port {port} est déjà utilisé par"),
            ("en", f"port {port} is already in use by"),
        ):
            cfg = tmp_path / f"{lang}.toml"
            cfg.write_text(
                f'[suite]\nlang = "{lang}"\n[services.echo]\ntype = "echo"\nport = {port}\n'
            )
            r = cli("check", "-c", str(cfg), env={"LANG": "C.UTF-8"})
            assert want in r.stdout + r.stderr, (lang, r.stdout, r.stderr)
            # and twistd, at startup: the one line, exit status 1
            started = subprocess.run(
                [*twistd_command(), "-n", "--pidfile=", "--logfile", str(tmp_path / "log")]
                + ["portsuite", "-c", str(cfg)],
                capture_output=True,
                text=True,
                timeout=60,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                cwd=tmp_path,
            )
            assert started.returncode == 1
            assert want in started.stderr, (lang, started.stderr)
