"""
The classroom, checked in a real browser: the dashboard projected (1920×1080 and
1366×768, French and English) with traffic, the sequence diagrams, a lab page and a
worksheet; screenshots kept (set PORTSUITE_SCREENSHOTS=folder to keep them there).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from classroomhelp import shipped_config

from portsuite.api.i18n import ephemeral_range
from portsuite.testing import chromium_command, need

SIZES = {"projector": "1920,1080", "laptop": "1366,768"}


def shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PORTSUITE_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def browse(url: str, profile: Path, *extra: str, lang: str = "en") -> tuple[str, str]:
    """Chromium on C{url}: (the DOM as its script left it, its console on stderr)."""
    proc = subprocess.run(
        chromium_command(
            profile,
            f"--lang={lang}",
            f"--accept-lang={lang}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            *extra,
            url,
        ),
        capture_output=True,
        timeout=120,
        check=False,
    )
    err = proc.stderr.decode("utf-8", errors="replace")
    assert proc.returncode == 0, err[-2000:]
    return proc.stdout.decode("utf-8", errors="replace"), err


def screenshots(jobs: list[tuple[str, Path, str, Path]]) -> None:
    """Several screenshots at once (url, profile, window size, png): one Chromium each."""
    procs = []
    for url, profile, size, png in jobs:
        cmd = chromium_command(
            profile,
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            f"--window-size={size}",
            f"--screenshot={png}",
            url,
        )
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE), png))
    for proc, png in procs:
        _, err = proc.communicate(timeout=120)
        text = err.decode("utf-8", errors="replace")
        assert proc.returncode == 0, text[-2000:]
        assert not console_errors(text), console_errors(text)
        assert png.stat().st_size > 10_000, png


def console_errors(stderr: str) -> list[str]:
    """The page's own console messages that are errors (Chromium logs them as CONSOLE)."""
    return [
        line
        for line in stderr.splitlines()
        if "CONSOLE" in line and ("Uncaught" in line or "Error" in line or "error" in line)
    ]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once: the ssh host keys (slow to make) and the mailboxes."""
    return tmp_path_factory.mktemp("classroom")


@pytest.fixture
def classroom(
    portsuite: Any, scratch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """config/config.toml as shipped, on free ports, echo, daytime and dns traced."""
    monkeypatch.setenv("PORTSUITE_TRACE_DIR", str(tmp_path / "trace"))
    return portsuite(shipped_config(scratch, echo=True, daytime=True, dns=True))


@pytest.fixture
def small(portsuite: Any) -> Any:
    www = str(Path(__file__).resolve().parents[3] / "www")
    return portsuite(
        {
            "services": {
                "web": {"type": "http", "port": 0, "root": www},
                "echo": {"type": "echo", "port": 0},
            }
        }
    )


def traffic(s: Any) -> list[socket.socket]:
    """A class at work: two clients on chat, one on echo that talked, a daytime and a DNS query."""
    keep = []
    for _ in range(2):
        c = socket.create_connection(("127.0.0.1", s.port("chat")), timeout=10)
        keep.append(c)
    e = socket.create_connection(("127.0.0.1", s.port("echo")), timeout=10)
    e.sendall(b"still here\n")
    assert e.recv(100) == b"still here\n"
    keep.append(e)
    with socket.create_connection(("127.0.0.1", s.port("daytime")), timeout=10) as c:
        assert c.recv(100)
    with socket.create_connection(("127.0.0.1", s.port("echo")), timeout=10) as c:
        c.sendall(b"<b>bonjour</b> la classe\r\n")
        assert c.recv(100) == b"<b>bonjour</b> la classe\r\n"
    dig = need("dig")
    out = subprocess.run(
        [dig, "@127.0.0.1", "-p", str(s.port("dns")), "www.lab.test", "+short", "+tcp"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "127.0.0.1" in out.stdout
    return keep


def wait_closed(s: Any, service: str) -> None:
    """Until the suite has seen the closes (the diagrams then show them)."""
    for _ in range(100):
        if all(t.get("closed") is not None for t in s.suite.stats[service].transcripts):
            return
        time.sleep(0.05)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_projected_dashboard_shows_every_service_and_the_class_at_work(
    classroom: Any, tmp_path: Path, lang: str
) -> None:
    keep = traffic(classroom)
    try:
        wait_closed(classroom, "daytime")
        wait_closed(classroom, "dns")
        url = f"http://127.0.0.1:{classroom.port('web')}/_portsuite/?lang={lang}"
        dom, err = browse(url, tmp_path / "p", f"--window-size={SIZES['projector']}", "--dump-dom")
        assert not console_errors(err), console_errors(err)
        names = re.findall(r'<article class="card" data-service="([^"]+)"', dom)
        assert names == [svc.name for svc in classroom.suite.config.services]
        # every service on a 1080p projector at once, without scrolling
        assert 'data-fits="true"' in dom, "the cards do not fit in 1920×1080"
        # the chat's two clients, each with its own ephemeral port
        chat = dom.split('data-service="chat"')[1].split("</article>")[0]
        assert 'data-field="open" data-value="2"' in chat
        for c in keep[:2]:
            assert f"127.0.0.1:{c.getsockname()[1]}" in chat
        # the page's own polling connection is marked, and not counted
        web = dom.split('data-service="web"')[1].split("</article>")[0]
        assert 'class="this-page"' in web
        assert 'data-field="open" data-value="0"' in web
        # the sequence diagrams: the echo exchange, escaped, and daytime's close
        assert "&lt;b&gt;bonjour&lt;/b&gt; la classe\\r\\n" in dom
        assert "<b>bonjour</b>" not in dom
        assert 'data-service="daytime"' in dom.split('id="sequence-list"')[1]
        if lang == "fr":
            assert "processus client" in dom and "processus serveur" in dom
            assert "fermeture (FIN)" in dom
            assert "enregistrés" in dom and "Classes de ports" in dom
        else:
            assert "client process" in dom and "close (FIN)" in dom
        eph = ephemeral_range()
        if eph:
            assert f"{eph[0]}–{eph[1]}" in dom  # this machine's client ports
        shots = shots_dir(tmp_path)
        screenshots(
            [
                (
                    url,
                    tmp_path / f"s-{size_name}",
                    size,
                    shots / f"dashboard-{lang}-{size_name}.png",
                )
                for size_name, size in SIZES.items()
            ]
        )
    finally:
        for c in keep:
            c.close()


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_lab_pages_sequences_and_worksheets_in_both_languages(
    classroom: Any, tmp_path: Path, lang: str
) -> None:
    for c in traffic(classroom):
        c.close()
    wait_closed(classroom, "echo")
    base = f"http://127.0.0.1:{classroom.port('web')}/_portsuite/learn/"
    # the pages without script: every concept, every worksheet, filled in from this suite
    guide = fetch(base + f"?lang={lang}")
    slugs = re.findall(r'<li><a href="((?:tp-)?[a-z-]+)">', guide)
    assert len(slugs) == 11, slugs
    for slug in slugs:
        page = fetch(base + slug + f"?lang={lang}")
        assert f'<html lang="{lang}">' in page and "{{" not in page, slug
    tp = fetch(base + f"tp-http?lang={lang}")
    assert f"curl -v http://127.0.0.1:{classroom.port('web')}/" in tp
    assert ("Parler HTTP" if lang == "fr" else "Speak HTTP") in tp
    classes = fetch(base + f"port-classes?lang={lang}")
    eph = ephemeral_range()
    if eph:
        assert f"{eph[0]}–{eph[1]}" in classes and "49152–65535" in classes
    # the pages the browser draws: a service's page with its live diagram, all diagrams
    service, err = browse(base + f"service/echo?lang={lang}", tmp_path / "p", "--dump-dom")
    assert not console_errors(err), console_errors(err)
    assert f"nc 127.0.0.1 {classroom.port('echo')}" in service  # this suite's real port
    assert "RFC 862" in service and 'class="seq"' in service
    sequences, err = browse(base + f"sequences?lang={lang}", tmp_path / "p", "--dump-dom")
    assert not console_errors(err), console_errors(err)
    assert sequences.count('class="seq"') >= 3
    assert "hex: " in sequences  # dns is binary: shown as hex
    shots = shots_dir(tmp_path)
    screenshots(
        [
            (
                base + path + f"?lang={lang}",
                tmp_path / f"s-{name}-{size_name}",
                size,
                shots / f"{name}-{lang}-{size_name}.png",
            )
            for name, path in (
                ("service-echo", "service/echo"),
                ("worksheet-http", "tp-http"),
                ("sequences", "sequences"),
            )
            for size_name, size in SIZES.items()
        ]
    )


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200, url
        return str(r.read().decode("utf-8"))


def test_accept_language_picks_the_page_language_and_the_switch_sticks(small: Any) -> None:
    url = f"http://127.0.0.1:{small.port('web')}/_portsuite/learn/"
    fr = urllib.request.urlopen(
        urllib.request.Request(url, headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}),
        timeout=10,
    )
    body = fr.read().decode()
    assert '<html lang="fr">' in body and "Guide de TP" in body
    assert fr.headers["Content-Language"] == "fr"
    en = urllib.request.urlopen(
        urllib.request.Request(url + "?lang=en", headers={"Accept-Language": "fr"}), timeout=10
    )
    assert '<html lang="en">' in en.read().decode()
    cookie = en.headers["Set-Cookie"]
    assert cookie.startswith("portsuite_lang=en")
    again = urllib.request.urlopen(
        urllib.request.Request(
            url, headers={"Accept-Language": "fr", "Cookie": "portsuite_lang=en"}
        ),
        timeout=10,
    )
    assert '<html lang="en">' in again.read().decode()
    # and the visible switch is on every page
    assert 'href="?lang=fr"' in body and 'href="?lang=en"' in body


def test_the_favicon_is_served_everywhere_a_browser_asks(small: Any) -> None:
    port = small.port("web")
    for path in ("/favicon.ico", "/_portsuite/favicon.ico", "/_portsuite/favicon.svg"):
        r = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert r.status == 200 and len(r.read()) > 100, path


def test_every_lab_page_exists_in_both_languages_with_the_same_placeholders() -> None:
    from portsuite_services.http.dashboard import learn

    for slug in learn.CONCEPTS + learn.WORKSHEETS:
        en, fr = learn.content("en", slug), learn.content("fr", slug)
        assert learn.title_of(en) and learn.title_of(fr), slug
        assert sorted(set(learn._VAR.findall(en))) == sorted(set(learn._VAR.findall(fr))), slug
        for name, arg in learn._VAR.findall(en):
            assert name in ("port", "host", "eph_lo", "eph_hi", "eph_iana"), (slug, name)
            assert not arg or arg in learn.SHIPPED, (slug, arg)


def test_the_welcome_page_shows_the_same_commands_and_ports_in_both_languages() -> None:
    """www/index.fr.html is a translation of www/index.html: no command or port left out."""
    www = Path(__file__).resolve().parents[3] / "www"

    def facts(page: str) -> tuple[list[str], list[str]]:
        html = (www / page).read_text()
        block = re.search(r"<pre>(.*?)</pre>", html, re.S)
        assert block, page
        commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
        table = re.search(r"<table>(.*?)</table>", html, re.S)
        assert table, page
        # "HTTP 80", "MySQL 3306": each class of ports with its examples
        return commands, re.findall(r"\b([A-Za-z][\w-]* \d{1,5})\b", table.group(1))

    assert facts("index.fr.html") == facts("index.html")


def test_every_page_can_be_used_with_the_keyboard(small: Any) -> None:
    """A skip link first, a visible focus ring, links (not click handlers) for everything."""
    base = f"http://127.0.0.1:{small.port('web')}/_portsuite/"
    for path in ("", "learn/", "learn/tp-mail", "learn/service/echo", "learn/sequences"):
        page = fetch(base + path)
        assert re.search(r'<body[^>]*>\s*<a class="skip" href="#main">', page), path
        assert '<main id="main" tabindex="-1">' in page
        assert "onclick" not in page and 'tabindex="-1"' in page
    css = fetch(base + "style.css")
    assert ":focus-visible { outline: 3px solid var(--focus)" in css
    assert "@media print" in css


def test_every_service_type_of_the_shipped_config_has_an_annotated_sample() -> None:
    import tomllib

    from portsuite_services.http.dashboard import samples

    shipped = tomllib.loads(
        (Path(__file__).resolve().parents[3] / "config/config.toml").read_text()
    )
    for name, svc in shipped["services"].items():
        steps = samples.steps(svc["type"])
        assert steps, f"{name} ({svc['type']}) has no sample session"
        assert samples.sample_type(svc["type"]) in samples.RECORDED_WITH, name
        for direction, text, note, pattern in steps:
            assert direction in ("c2s", "s2c") and text and note
            # each recorded line is recognised by its own pattern (live annotation)
            assert re.search(pattern.rpartition("=>")[2], text), (name, text, pattern)


def test_a_traced_services_page_annotates_its_own_last_conversation(classroom: Any) -> None:
    """ftp is traced as shipped: curl's session is the sample; imap is not: the recorded one."""
    curl = need("curl")
    port = classroom.port("ftp")
    out = subprocess.run(
        [curl, "-s", f"ftp://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=60
    )
    assert "pub" in out.stdout
    for _ in range(100):
        if any(t.get("closed") is not None for t in classroom.suite.stats["ftp"].transcripts):
            break
        time.sleep(0.05)
    base = f"http://127.0.0.1:{classroom.port('web')}/_portsuite/learn/service/"
    ftp = fetch(base + "ftp?lang=fr")
    assert "Une session commentée, en exemple" in ftp
    assert "Pris en direct dans la transcription de cette suite" in ftp
    assert "USER anonymous" in ftp and "le serveur salue en premier (220)" in ftp
    assert "EPSV" in ftp and "le client demande un port de données (mode passif)" in ftp
    imap = fetch(base + "imap?lang=en")
    assert "Recorded against this suite with a real client" in imap
    assert f"curl imap://alice:wonderland@127.0.0.1:{classroom.port('imap')}/INBOX" in imap
    assert "A002 LOGIN alice wonderland" in imap and "the login, password in clear" in imap
    for name in ("sql", "ssh", "telnet", "shout", "chat", "discard", "chargen"):
        assert "An annotated sample session" in fetch(base + name), name


def test_telnet_keystrokes_read_as_words_in_the_live_sample() -> None:
    from portsuite_services.http.dashboard import samples

    lines = [("s2c", "login: ")]
    for ch in "alice":
        lines += [("c2s", ch), ("s2c", ch)]
    lines += [("c2s", "hex: 0d 00"), ("s2c", "Password: ")]
    lines += [("c2s", ch) for ch in "wonderland"] + [("c2s", "hex: 0d 00")]
    shown = samples.annotate(
        "telnet", {"lines": [{"dir": d, "text": t} for d, t in lines], "closed": 1.0}
    )
    assert [text for _d, text, _n in shown] == [
        "login: ",
        "a l i c e⏎",
        "Password: ",
        "w o n d e r l a n d⏎",
    ]
    assert "in clear" in (shown[3][2] or "")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_keyboard_walk_visible_focus_contrast_and_no_console_error(
    classroom: Any, tmp_path: Path, lang: str
) -> None:
    """
    Real Tab presses on the dashboard (with traffic and a redraw during the walk), a lab
    page, a worksheet and the sequence diagrams: every control is reached, the focus is
    always visible (a 2px+ outline) and survives the dashboard's redraws; every text's
    computed colour on its computed background is WCAG AA (one theme: light, also when
    the system asks for dark); and the console stays clean.
    """
    from cdphelp import CONTRAST, CONTROLS, FOCUSED, Browser

    keep = traffic(classroom)
    base = f"http://127.0.0.1:{classroom.port('web')}/_portsuite/"
    browser = Browser(tmp_path / "cdp", size=(1366, 768))
    try:
        for path in ("", "learn/service/telnet", "learn/tp-telnet-ssh", "learn/sequences"):
            for scheme in ("light", "dark"):
                browser.call(
                    "Emulation.setEmulatedMedia",
                    session=True,
                    features=[{"name": "prefers-color-scheme", "value": scheme}],
                )
                browser.goto(f"{base}{path}?lang={lang}")
                low = [c for c in browser.evaluate(CONTRAST) if c["ratio"] < c["minimum"]]
                assert not low, (path, scheme, low[:5])
            controls = browser.evaluate(CONTROLS)
            assert len(controls) >= 8, (path, controls)
            reached = []
            for i in range(len(controls) + 2):
                if path == "" and i == len(controls) // 2:
                    # the dashboard polls and redraws its cards: the focus must stay put
                    before = browser.evaluate(FOCUSED)
                    browser.evaluate("new Promise(r => setTimeout(r, 2500))")
                    after = browser.evaluate(FOCUSED)
                    assert after is not None and after["key"] == before["key"], (before, after)
                browser.press("Tab")
                focused = browser.evaluate(FOCUSED)
                if focused is None:
                    continue  # past the last control, the browser's own chrome
                assert focused["focusVisible"] and focused["outline"], (path, focused)
                assert focused["onScreen"], (path, focused)  # scrolled into view
                reached.append(focused["key"])
            assert reached[0].split("|")[2] == "#main", reached[0]  # the skip link first
            missing = [c for c in controls if c not in reached]
            assert not missing, (path, missing)
        # Enter on the skip link moves on to the content
        browser.goto(f"{base}learn/?lang={lang}")
        browser.press("Tab")
        browser.press("Enter", 13)
        assert browser.evaluate("document.activeElement.id") == "main"
        assert not browser.console_errors(), browser.console_errors()
    finally:
        browser.close()
        for c in keep:
            c.close()


def typed(command: list[str], lines: list[str], timeout: float = 30) -> str:
    """An interactive client in a pseudo-terminal, each line typed a key at a time."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the client itself
        os.execvp(command[0], command)
    out = b""

    def read_for(seconds: float) -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                out += chunk

    try:
        read_for(2)
        for line in lines:
            for key in line + "\r":
                os.write(fd, key.encode())
                time.sleep(0.02)
            read_for(1.5)
        read_for(1)
    finally:
        os.close(fd)
        deadline = time.monotonic() + timeout
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
    return out.decode("utf-8", "replace")


def test_the_telnet_versus_ssh_worksheet_works_as_written(
    classroom: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its commands, with this suite's ports, run with the real telnet, ssh, dig and portsuite."""
    import html

    telnet, ssh, sshpass, dig = need("telnet"), need("ssh"), need("sshpass"), need("dig")
    page = fetch(f"http://127.0.0.1:{classroom.port('web')}/_portsuite/learn/tp-telnet-ssh")
    commands = [html.unescape(c) for c in re.findall(r"<pre>(.*?)</pre>", page, re.S)]
    tport, sport, dport = classroom.port("telnet"), classroom.port("ssh"), classroom.port("dns")
    assert f"telnet 127.0.0.1 {tport}" in commands
    assert f"ssh -p {sport} alice@127.0.0.1" in commands
    # step 2: telnet, alice / wonderland as the worksheet says
    screen = typed([telnet, "127.0.0.1", str(tport)], ["alice", "wonderland", "whoami", "exit"])
    assert "Welcome, alice" in screen and "wonderland" not in screen  # the password is not echoed
    session = classroom.suite.stats["telnet"].transcripts[-1]
    # Q1: in clear, C→S, a keystroke (or a few, as TCP groups them) per chunk
    chunks = [li["text"] for li in session["lines"] if li["dir"] == "c2s"]
    assert "wonderland" in "".join(c for c in chunks if not c.startswith("hex:"))
    assert max(len(c) for c in chunks if "w" in c and not c.startswith("hex:")) < 10
    follow = subprocess.run(
        [str(Path(sys.executable).parent / "portsuite"), "trace", "telnet", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    typed_in = "".join(re.findall(r"C→S (\S{1,9})$", follow.stdout, re.M))
    assert "wonderland" in typed_in, follow.stdout[-2000:]
    # step 3: ssh, the same account
    r = subprocess.run(
        [
            sshpass,
            "-p",
            "wonderland",
            ssh,
            "-p",
            str(sport),
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
            "alice@127.0.0.1",
            "whoami",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.strip() == "alice", r.stderr
    for _ in range(100):
        if classroom.suite.stats["ssh"].transcripts[-1].get("closed") is not None:
            break
        time.sleep(0.05)
    lines = classroom.suite.stats["ssh"].transcripts[-1]["lines"]
    assert lines[0]["text"].startswith("SSH-2.0-")  # Q3: the version lines, in clear
    assert any("curve25519" in li["text"] for li in lines)  # and the algorithms' names
    everything = " ".join(li["text"] for li in lines)
    assert "wonderland" not in everything and "whoami" not in everything  # Q4
    assert sum(li["text"].startswith("hex:") for li in lines) >= 5
    # step 4: the ports, from the lab's DNS, exactly as written
    for command, port in (("_telnet", tport), ("_ssh", sport)):
        line = next(c for c in "\n".join(commands).splitlines() if command in c)
        assert line.startswith(f"dig @127.0.0.1 -p {dport} SRV"), line
        out = subprocess.run([dig, *line.split()[1:]], capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == ["0", "0", str(port), "lab.test."], out.stdout


def test_the_dns_worksheet_works_as_written(classroom: Any) -> None:
    """Each dig of the worksheet, as written with this suite's ports; the SRV port is the web's."""
    import html

    dig, curl = need("dig"), need("curl")
    page = fetch(f"http://127.0.0.1:{classroom.port('web')}/_portsuite/learn/tp-dns?lang=fr")
    lines = [
        line
        for block in re.findall(r"<pre>(.*?)</pre>", page, re.S)
        for line in html.unescape(block).splitlines()
    ]
    assert len(lines) == 5 and all(line.startswith("dig @127.0.0.1 -p ") for line in lines)
    out = {}
    for line in lines:
        r = subprocess.run([dig, *line.split()[1:]], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (line, r.stdout)
        out[line] = r.stdout
    assert "www.lab.test.\t\t300\tIN\tA\t127.0.0.1" in out[lines[0]]
    assert "(TCP)" in out[lines[4]] and "(UDP)" in out[lines[0]]
    web = out[lines[1]].split()
    assert web == ["0", "0", str(classroom.port("web")), "lab.test."]
    assert out[lines[2]].split()[2] == str(classroom.port("smtp"))
    zone = out[lines[3]]  # AXFR: every service, echo over both transports
    assert f"_echo._udp.lab.test.\t300\tIN\tSRV\t0 0 {classroom.port('echo')}" in zone
    head = subprocess.run(
        [curl, "-sI", f"http://127.0.0.1:{web[2]}/"], capture_output=True, text=True, timeout=30
    )
    assert head.stdout.startswith("HTTP/1.1 200"), head.stdout


def test_repeated_steps_of_a_live_sample_are_one_line() -> None:
    from portsuite_services.http.dashboard import samples

    lines = [("s2c", "220 lab.test ESMTP portsuite\\r\\n"), ("c2s", "EHLO vm\\r\\n")]
    lines += [
        ("s2c", f"250-{ext}\\r\\n") for ext in ("lab.test Hello", "SIZE 10485760", "8BITMIME")
    ]
    lines += [("s2c", "250 AUTH PLAIN LOGIN\\r\\n")]
    shown = samples.annotate("smtp", {"lines": [{"dir": d, "text": t} for d, t in lines]})
    assert [t for _d, t, _n in shown][2] == (
        "250-lab.test Hello\\r\\n · 250-SIZE 10485760\\r\\n · 250-8BITMIME\\r\\n"
    )
    assert len(shown) == 4 and shown[3][2] == "250: accepted"
