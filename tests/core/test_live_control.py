"""portsuite reload / SIGHUP / disable / enable / status, on a real twistd, with real clients."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest
from livehelp import Talker, ask, ctl, refused, service, start, tcp_port, write

from portsuite import live
from portsuite.testing import wait_for


def echo(**extra: object) -> dict[str, object]:
    return {"type": "echo", "port": 0, **extra}


BASE = {"services": {"keep": echo(), "gone": echo(), "change": echo()}}


@pytest.fixture
def suite(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = start(tmp_path, BASE)
    yield s
    s.stop()


def test_reload_adds_removes_restarts_and_leaves_the_rest(suite, tmp_path: Path) -> None:
    keep, gone = Talker(tcp_port(suite, "keep")), Talker(tcp_port(suite, "gone"))
    gone_port = tcp_port(suite, "gone")
    assert keep.say("before") == "before" and gone.say("before") == "before"
    new = {"services": {"keep": echo(), "change": echo(max_connections=5), "added": echo()}}
    write(suite.config_path, new)
    r = ctl(suite, "reload", "--grace", "1")
    assert r.returncode == 0, r.stderr
    assert "added: added, listening on tcp 127.0.0.1:" in r.stdout
    assert "change: restarted" in r.stdout
    assert "gone: removed (1 open connection(s) get 1s to finish)" in r.stdout
    assert "unchanged: keep" in r.stdout
    # the unchanged service's client never noticed
    assert keep.say("after") == "after"
    assert service(suite, "gone") is None
    assert refused(gone_port)
    # the removed service's open client finished its exchange, then was closed after the grace
    assert gone.say("still here") == "still here"
    assert gone.closed(within=20)
    added = Talker(tcp_port(suite, "added"))
    assert added.say("new") == "new"
    assert service(suite, "change")["state"] == "listening"  # type: ignore[index]
    assert Talker(tcp_port(suite, "change")).say("x") == "x"
    keep.close()


def test_a_bad_config_changes_nothing_and_says_every_problem(suite) -> None:
    keep = Talker(tcp_port(suite, "keep"))
    before = tcp_port(suite, "gone")
    write(
        suite.config_path,
        {"services": {"keep": echo(), "x": {"type": "nope"}, "y": echo(port=99999)}},
    )
    r = ctl(suite, "reload")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert any("[services.x] type: unknown type 'nope'" in line for line in lines)
    assert any("[services.y] port: 99999 is out of range" in line for line in lines)
    assert lines[-1].endswith("nothing was changed")
    assert "Traceback" not in r.stderr
    assert keep.say("fine") == "fine"
    assert Talker(before).say("gone is still there") == "gone is still there"
    keep.close()


def test_sighup_reloads_like_the_command(suite) -> None:
    write(suite.config_path, {"services": {**BASE["services"], "hup": echo()}})
    os.kill(suite.pid, signal.SIGHUP)
    assert wait_for(lambda: service(suite, "hup") is not None)
    assert Talker(tcp_port(suite, "hup")).say("hup") == "hup"
    assert "reload: hup: added" in suite.log()


def test_disable_enable_status(suite) -> None:
    port = tcp_port(suite, "gone")
    open_client = Talker(port)
    r = ctl(suite, "disable", "gone")
    assert r.returncode == 0 and "gone: disabled" in r.stdout
    assert refused(port)
    assert open_client.say("open ones go on") == "open ones go on"
    assert service(suite, "gone")["state"] == "disabled"  # type: ignore[index]
    r = ctl(suite, "status")
    assert r.returncode == 0
    row = next(line for line in r.stdout.splitlines() if line.startswith("gone "))
    assert "disabled" in row and "keep" in r.stdout
    r = ctl(suite, "enable", "gone")
    assert r.returncode == 0 and f"127.0.0.1:{port}" in r.stdout  # the same port again
    assert Talker(port).say("back") == "back"
    assert service(suite, "gone")["state"] == "listening"  # type: ignore[index]
    # a reload keeps a disabled service disabled
    assert ask(suite, "disable", service="gone")["ok"]
    assert ask(suite, "reload")["ok"]
    assert service(suite, "gone")["state"] == "disabled"  # type: ignore[index]
    open_client.close()


def test_bad_input_one_line_nothing_changed(suite) -> None:
    for argv, says in [
        (("disable", "nope"), "unknown service 'nope'; services: keep, gone, change"),
        (("fault", "keep", "latncy=1s"), "latncy: unknown fault; did you mean 'latency'?"),
    ]:
        r = ctl(suite, *argv)
        assert r.returncode == 1, argv
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
        assert says in r.stderr, (argv, r.stderr)
    for payload, says in [
        ({"command": "enable", "service": "nope"}, "unknown service 'nope'"),
        ({"command": "fault", "service": "nope", "args": ["latency=1s"]}, "unknown service"),
        ({"command": "fault", "service": "keep", "args": ["latency=2h"]}, "is not a duration"),
        ({"command": "fault", "service": "keep", "args": ["latency=7200s"]}, "out of range"),
        ({"command": "fault", "service": "keep", "args": ["bandwidth=0"]}, "out of range"),
        ({"command": "fault", "service": "keep", "args": ["drop=0.5"]}, "drop: applies to UDP"),
        ({"command": "fault", "service": "keep", "args": ["latency"]}, "write KIND=VALUE"),
        ({"command": "fault", "service": "keep", "args": "latency=1s"}, "must be a list"),
        ({"command": "reload", "grace": -1}, "grace must be 0 to 3600"),
        ({"command": "explode"}, "unknown command 'explode'"),
    ]:
        answer = ask(suite, **payload)  # type: ignore[arg-type]
        assert answer["ok"] is False, payload
        assert len(answer["lines"]) == 1 and says in answer["lines"][0], (payload, answer)
    assert service(suite, "keep")["faults"] == {}  # type: ignore[index]
    assert Talker(tcp_port(suite, "keep")).say("ok") == "ok"
    assert "Traceback" not in suite.log()


def test_control_socket_is_the_owners_only(suite, tmp_path: Path) -> None:
    path = live.socket_path(suite.config_path).name
    sock = tmp_path / "run" / path
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
    # garbage on the channel: one answer, no harm
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(sock))
        s.sendall(b"\xff\xfegarbage\n")
        answer = json.loads(s.makefile("rb").readline())
    assert answer["ok"] is False and "bad request" in answer["lines"][0]
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(sock))
        s.sendall(b"x" * (live.MAX_REQUEST + 10))
        answer = json.loads(s.makefile("rb").readline())
    assert "longer than" in answer["lines"][0]
    assert ctl(suite, "status").returncode == 0


def test_no_suite_running(tmp_path: Path) -> None:
    path = write(tmp_path / "other.toml", BASE)
    import subprocess as sp

    from livehelp import PORTSUITE

    r = sp.run(
        [PORTSUITE, "status", "-c", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PORTSUITE_RUN_DIR": str(tmp_path / "run")},
    )
    assert r.returncode == 1
    assert "no suite is running with" in r.stderr and "twistd -n portsuite" in r.stderr


def test_twenty_reloads_lose_no_connection(suite) -> None:
    """Clients keep talking to an unchanged service while the config is reloaded 20 times."""
    talkers = [Talker(tcp_port(suite, "keep")) for _ in range(4)]
    errors: list[str] = []
    stop = threading.Event()
    said = [0]

    def talk() -> None:
        n = 0
        while not stop.is_set():
            for t in talkers:
                n += 1
                try:
                    got = t.say(f"line {n}")
                except OSError as e:
                    errors.append(repr(e))
                    return
                if got != f"line {n}":
                    errors.append(f"{got!r} != line {n}")
                    return
                said[0] += 1

    thread = threading.Thread(target=talk)
    thread.start()
    try:
        for i in range(20):
            services = dict(BASE["services"])
            if i % 2 == 0:
                services[f"extra{i}"] = echo()
            services["change"] = echo(max_connections=10 + i)
            write(suite.config_path, {"services": services})
            answer = ask(suite, "reload", grace=0)
            assert answer["ok"], answer
            assert "unchanged: keep" in answer["lines"][-1]
    finally:
        stop.set()
        thread.join(30)
    assert errors == []
    assert said[0] > 20
    for t in talkers:
        assert t.say("end") == "end"
        t.close()


def test_the_readme_live_commands_run_from_the_root(tmp_path: Path) -> None:
    """The README's Live control commands, as written, against a copy of config/config.toml."""
    import re
    import subprocess as sp
    import sys

    from corehelp import ROOT, repo_copy

    from portsuite.testing import SubprocessSuite

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Live control", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\.venv/bin/(portsuite [^#\n]*?)\s*(?:#.*)?$", section, flags=re.M)
    assert len(commands) >= 6
    config = repo_copy(tmp_path)
    env = {"PORTSUITE_RUN_DIR": str(tmp_path / "run")}
    s = SubprocessSuite(Path("config/config.toml"), tmp_path, env=env)
    s.wait_ready(60)
    assert wait_for(lambda: json.loads(s.ready_file.read_text()).get("control"), timeout=30)
    try:
        for command in commands:
            argv = command.split()
            r = sp.run(
                [str(Path(sys.executable).parent / argv[0]), *argv[1:]],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
                env={**os.environ, **env},
            )
            assert r.returncode == 0, (command, r.stderr)
            assert "Traceback" not in r.stderr
    finally:
        s.stop()
    assert config.exists()


def test_another_user_cannot_use_the_control_socket(tmp_path: Path) -> None:
    """
    Another user cannot reach the socket (its folder is 0700), and even with the folder
    and the socket opened up, the suite refuses a peer of another uid (SO_PEERCRED).
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    import shutil
    import subprocess as sp
    import tempfile

    from portsuite.testing import need

    setpriv = need("setpriv")
    base = Path(tempfile.mkdtemp(prefix="portsuite-live-"))
    os.chmod(base, 0o755)  # everyone may walk to the run folder
    s = start(tmp_path, BASE, run=base / "run")
    sock = base / "run" / live.socket_path(s.config_path).name
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.settimeout(20)\n"
        "try:\n"
        f"    s.connect({str(sock)!r})\n"
        "except PermissionError:\n"
        "    sys.exit(3)\n"
        "print(s.makefile().readline())\n"  # the refusal comes first, unasked
    )
    argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
    try:
        r = sp.run([*argv, probe], capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, (r.stdout, r.stderr)
        os.chmod(base / "run", 0o755)
        os.chmod(sock, 0o666)
        r = sp.run([*argv, probe], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        answer = json.loads(r.stdout)
        assert answer["ok"] is False and "only the suite's owner" in answer["lines"][0]
        assert service(s, "keep")["state"] == "listening"  # type: ignore[index]
    finally:
        s.stop()
        shutil.rmtree(base, ignore_errors=True)
