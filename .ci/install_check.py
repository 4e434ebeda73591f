#!/usr/bin/env python3
"""
CI: both ways to install portsuite give a working `twistd portsuite` with every built-in.

  plain     a scratch venv, `pip install . ./services` (no -e) from a copy of the clone's
            files (so the build leaves nothing in the clone): what a user gets from a
            clone; the packages must come from site-packages.
  editable  the project's .venv (`make venv`: pip install -e . -e services): the
            built-ins come from services/ through setuptools' editable finder, which
            twistd's plugin discovery must survive.

For each, run from a folder outside the clone (so the clone cannot shadow anything):
`twistd --help` lists portsuite; `portsuite plugins` lists every built-in type named
in services/pyproject.toml's entry points (the list is read there, not written here);
`twistd -n portsuite` starts one service of every built-in type on free ports (its
--ready-file lists them all), echo, qotd and http (a file, the dashboard) answer,
SIGTERM stops it.

    python3 .ci/install_check.py [plain] [editable]      (both by default)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess as sp
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
# options a built-in cannot start without (anything else runs on its defaults); a new
# type with a required option makes this check fail, showing what twistd printed
REQUIRED = {"http": {"root": "www"}, "ssh": {"host_keys": "keys"}, "ftp": {"root": "www"}}


def fail(message: str) -> None:
    raise SystemExit(f"install check: {message}")


def builtin_types() -> list[str]:
    meta = tomllib.loads((ROOT / "services" / "pyproject.toml").read_text())
    types = list(meta["project"]["entry-points"]["portsuite.services"])
    if not types:
        fail("services/pyproject.toml names no portsuite.services entry point")
    return types


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> str:
    r = sp.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r.stdout


def where(python: Path, module: str, cwd: Path) -> Path:
    out = run([str(python), "-c", f"import {module}; print({module}.__file__)"], cwd)
    return Path(out.strip()).resolve()


def check_suite(bindir: Path, types: list[str], work: Path) -> None:
    """twistd -n portsuite with one service of each built-in type; echo must answer."""
    (work / "www").mkdir(exist_ok=True)
    (work / "www" / "index.html").write_text("ok\n")
    lines = []
    for name in types:
        lines += [f"[services.{name}]", f'type = "{name}"', "port = 0"]
        lines += [f'{k} = "{v}"' for k, v in REQUIRED.get(name, {}).items()] + [""]
    config = work / "all.toml"
    config.write_text("\n".join(lines))
    ready = work / "ready.json"
    ready.unlink(missing_ok=True)
    log = open(work / "twistd.log", "w")
    cmd = [str(bindir / "twistd"), "-n", "--pidfile=", "portsuite", "-c", str(config)]
    proc = sp.Popen([*cmd, "--ready-file", str(ready)], cwd=work, stdout=log, stderr=sp.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not ready.exists():
            fail(f"twistd portsuite never got ready:\n{(work / 'twistd.log').read_text()[-3000:]}")
        snapshot = json.loads(ready.read_text())
        started = {s["type"]: s for s in snapshot["services"] if s.get("listeners")}
        missing = [t for t in types if t not in started]
        if missing:
            fail(f"twistd portsuite started no listener for {missing}")
        port = {t: s["listeners"][0]["port"] for t, s in started.items()}
        if "echo" in port:
            with socket.create_connection(("127.0.0.1", port["echo"]), timeout=10) as c:
                c.sendall(b"installed\n")
                if c.recv(100) != b"installed\n":
                    fail("echo did not echo")
        if "qotd" in port:  # its quotes are package data
            with socket.create_connection(("127.0.0.1", port["qotd"]), timeout=10) as c:
                if len(c.recv(1000).strip()) < 10:
                    fail("qotd sent no quote")
        if "http" in port:  # the dashboard's page and script are package data
            for path in ("/index.html", "/_portsuite/", "/_portsuite/app.js"):
                url = f"http://127.0.0.1:{port['http']}{path}"
                with urllib.request.urlopen(url, timeout=10) as reply:
                    if reply.status != 200 or not reply.read():
                        fail(f"GET {url}: {reply.status}, or an empty body")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except sp.TimeoutExpired:
            proc.kill()
            fail("twistd portsuite did not stop on SIGTERM")
        log.close()
    if code not in (0, -signal.SIGTERM):  # twistd re-raises the SIGTERM it handled
        fail(f"twistd portsuite exited {code} on SIGTERM")


def check(bindir: Path, label: str, types: list[str], work: Path) -> None:
    helps = run([str(bindir / "twistd"), "--help"], work)
    if not any(line.split()[:1] == ["portsuite"] for line in helps.splitlines()):
        fail(f"{label}: twistd --help does not list portsuite (its dropin was not found)")
    listing = run([str(bindir / "portsuite"), "plugins"], work).splitlines()
    rows = {line.split()[0]: line for line in listing if line.strip()}
    absent = [t for t in types if t not in rows or "built-in" not in rows[t]]
    if absent:
        fail(f"{label}: portsuite plugins does not list the built-in types {absent}")
    check_suite(bindir, types, work)
    print(f"install check ({label}): twistd --help lists portsuite; built-ins: {' '.join(types)}")


def copy_of_the_clone(dest: Path) -> Path:
    """The clone's files (tracked, and new ones not ignored): setuptools builds in the
    source folder, and must neither leave build/ there nor pick up a stale one."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def plain(types: list[str], scratch: Path) -> None:
    venv = scratch / "venv"
    clone = copy_of_the_clone(scratch / "clone")
    run([sys.executable, "-m", "venv", str(venv)], scratch)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run([*pip, "--upgrade", "pip"], scratch, timeout=600)
    run([*pip, str(clone), str(clone / "services")], scratch, timeout=900)
    for module in ("portsuite", "portsuite_services"):
        path = where(venv / "bin" / "python", module, scratch)
        if not path.is_relative_to(venv.resolve()):
            fail(f"plain install: {module} comes from {path}, not the scratch venv")
    check(venv / "bin", "plain pip install", types, scratch)


def editable(types: list[str], scratch: Path) -> None:
    python = VENV / "bin" / "python"
    if not python.exists():
        fail(f"no {VENV}: run make venv first")
    for module, folder in (("portsuite", ROOT / "src"), ("portsuite_services", ROOT / "services")):
        path = where(python, module, scratch)
        if not path.is_relative_to(folder):
            fail(f"editable install: {module} comes from {path}, not {folder}")
    check(VENV / "bin", "editable install", types, scratch)


def main() -> None:
    which = sys.argv[1:] or ["plain", "editable"]
    types = builtin_types()
    for name in which:
        with tempfile.TemporaryDirectory(prefix=f"portsuite-install-{name}-") as tmp:
            {"plain": plain, "editable": editable}[name](types, Path(tmp))


if __name__ == "__main__":
    main()
