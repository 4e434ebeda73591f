"""End to end: twistd itself in a subprocess, as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess as sp
import sys
import time
from pathlib import Path

import pytest
from corehelp import repo_copy

from portsuite.testing import run_twistd, suite_running, twistd_command, wait_for, write_config

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent


def first_port_when_ready(
    ready: Path, proc: sp.Popen[bytes] | None = None, timeout: float = 30
) -> int:
    """Wait for a --ready-file (while the process lives); the first listener's port."""
    deadline = time.monotonic() + timeout
    while not ready.exists() and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    assert ready.exists(), "the suite never wrote its ready file"
    return int(json.loads(ready.read_text())["services"][0]["listeners"][0]["port"])


def test_shipped_config_starts_every_service(tmp_path: Path) -> None:
    path = repo_copy(tmp_path)
    with suite_running(path, subprocess=True) as s:
        names = [svc["name"] for svc in s.ready["services"]]
        assert names
        for svc in s.ready["services"]:
            for li in svc["listeners"]:
                if li["transport"] == "tcp":
                    socket.create_connection(("127.0.0.1", li["port"]), timeout=5).close()
        c = socket.create_connection(("127.0.0.1", s.port("echo")), timeout=5)
        c.sendall(b"over the wire\r\n")
        assert c.recv(100) == b"over the wire\r\n"
        c.close()
        # every connection is logged with the client's ephemeral port, duration and
        # bytes, once the server has seen the close (a busy machine may take a while)
        assert wait_for(lambda: "15 B in, 15 B out" in s.log(), timeout=60), s.log()[-2000:]
    log = s.log()
    assert "echo: listening on tcp 127.0.0.1:" in log
    assert "closed after" in log


def test_bad_config_stops_before_binding_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[services.a]\ntype = "echo"\nport = 99999\n[services.b]\ntype = "ehco"\n')
    r = run_twistd(bad)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert (
        lines[0]
        == f"{bad}: [services.a] port: 99999 is out of range; use 0-65535 (0 = any free port)"
    )
    assert lines[1].startswith(f"{bad}: [services.b] type: unknown type 'ehco'; known types: ")
    assert "Traceback" not in r.stderr + r.stdout
    check = sp.run(
        [str(BIN / "portsuite"), "check", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 2 and check.stderr.splitlines()[:2] == lines[:2]


def _echoes_then_stops(command: list[str], ready: Path, text: bytes) -> None:
    """Run a suite of one echo service (written to C{ready}), check it echoes, SIGTERM it."""
    proc = sp.Popen(command, stdout=sp.DEVNULL, stderr=sp.STDOUT, start_new_session=True)
    try:
        port = first_port_when_ready(ready, proc)
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(text)
        assert c.recv(100) == text
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_twist_runs_the_plugin_too(tmp_path: Path) -> None:
    path = write_config({"services": {"e": {"type": "echo", "port": 0}}}, tmp_path)
    ready = tmp_path / "ready.json"
    command = [str(BIN / "twist"), "portsuite", "-c", str(path), "--ready-file", str(ready)]
    _echoes_then_stops(command, ready, b"twist")


@pytest.mark.parametrize(
    ("choice", "reactor"),
    [
        ([], "portsuite.internals.QuietEPollReactor"),
        (["--reactor=poll"], "twisted.internet.pollreactor.PollReactor"),
    ],
)
def test_twistd_runs_on_the_reactor_chosen(tmp_path: Path, choice: list[str], reactor: str) -> None:
    """No --reactor: portsuite's epoll (no per-event log context); --reactor: that one."""
    path = write_config({"services": {"e": {"type": "echo", "port": 0}}}, tmp_path)
    ready, logfile = tmp_path / "ready.json", tmp_path / "ps.log"
    command = [*twistd_command(), "-n", "--pidfile=", f"--logfile={logfile}", *choice]
    command += ["portsuite", "-c", str(path), "--ready-file", str(ready)]
    _echoes_then_stops(command, ready, b"which reactor")
    assert f"reactor class: {reactor}." in logfile.read_text()


def test_daemonized_twistd_writes_pidfile_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = write_config({"services": {"e": {"type": "echo", "port": 0}}}, tmp_path)
    pidfile, ready = tmp_path / "ps.pid", tmp_path / "ready.json"
    r = sp.run(
        [
            *twistd_command(),
            f"--pidfile={pidfile}",
            f"--logfile={tmp_path}/ps.log",
            "portsuite",
            "-c",
            str(path),
            "--ready-file",
            str(ready),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    try:
        port = first_port_when_ready(ready)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        os.kill(pid, signal.SIGTERM)
    # on a busy machine shutting down can take a while: wait for it, generously
    assert wait_for(lambda: not pidfile.exists(), timeout=60), "twistd left its pidfile behind"


def test_a_sigterm_before_the_reactor_runs_still_shuts_down_cleanly() -> None:
    """
    twistd starts the suite (ports bound, ready file written) before it runs the reactor,
    which installs Twisted's own SIGTERM handler: a SIGTERM in between must still go
    through the normal shutdown (the pidfile removed), not kill the process at once.
    """
    script = (
        "import os, signal\n"
        "from portsuite import tap\n"
        "from twisted.internet import reactor\n"
        "tap._stop_cleanly_on_early_sigterm()\n"
        "reactor.addSystemEventTrigger('before', 'shutdown', print, 'shutdown ran')\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "reactor.callLater(30, print, 'still running')\n"
        "reactor.run()\n"
    )
    r = sp.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["shutdown ran"]


def test_check_shows_each_listener_with_its_port_class(tmp_path: Path) -> None:
    path = write_config(
        {
            "services": {
                "echo": {"type": "echo", "port": 7, "udp": True},
                "web": {"type": "echo", "port": 8080},
                "high": {"type": "echo", "port": 50000},
            }
        },
        tmp_path,
    )
    r = sp.run(
        [str(BIN / "portsuite"), "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert ["echo", "echo", "tcp", "127.0.0.1", "7", "well-known", "-"] in rows
    assert ["echo", "echo", "udp", "127.0.0.1", "7", "well-known", "-"] in rows
    assert ["web", "echo", "tcp", "127.0.0.1", "8080", "registered", "-"] in rows
    assert ["high", "echo", "tcp", "127.0.0.1", "50000", "dynamic", "-"] in rows
    if os.geteuid() != 0:
        assert "port 7 is well-known (0-1023) and needs root or CAP_NET_BIND_SERVICE" in r.stdout


def test_systemd_socket_activation(tmp_path: Path) -> None:
    """listen = ["systemd:..."]: the socket is inherited as fd 3, as systemd passes it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    path = write_config(
        {"services": {"e": {"type": "echo", "listen": ["systemd:domain=INET:index=0"]}}}, tmp_path
    )
    launcher = (
        "import os, sys\n"
        "fd = int(sys.argv[1])\n"
        "os.dup2(fd, 3)\n"
        "os.environ.update(LISTEN_FDS='1', LISTEN_FDNAMES='echo', LISTEN_PID=str(os.getpid()))\n"
        "os.execv(sys.argv[2], sys.argv[2:])\n"
    )
    ready = tmp_path / "ready.json"
    cmd = [
        sys.executable,
        "-c",
        launcher,
        str(sock.fileno()),
        *twistd_command(),
        "-n",
        "--pidfile=",
        f"--logfile={tmp_path}/log",
        "portsuite",
        "-c",
        str(path),
        "--ready-file",
        str(ready),
    ]
    if len(twistd_command()) > 1:
        pytest.skip("needs the twistd script next to python")
    proc = sp.Popen(cmd, pass_fds=(sock.fileno(),), start_new_session=True)
    sock.close()
    try:
        first_port_when_ready(ready, proc)
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"activated")
        assert c.recv(20) == b"activated"
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_config_toml_from_the_repo_root_points_at_config_folder(tmp_path: Path) -> None:
    """The card's own line, run from the repository root: one line that says where it is."""
    r = run_twistd("config.toml", cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == (
        "config.toml: cannot read the config (No such file or directory); "
        "there is none in this folder; use -c config/config.toml"
    )
    assert "Traceback" not in r.stderr + r.stdout
    assert not (ROOT / "twistd.pid").exists()


def test_config_toml_from_the_config_folder_starts(tmp_path: Path) -> None:
    """cd config && twistd -n portsuite -c config.toml: the same relative paths as in the repo."""
    path = repo_copy(tmp_path)
    ready = tmp_path / "ready.json"
    proc = sp.Popen(
        [
            *twistd_command(),
            "-n",
            "--pidfile=",
            f"--logfile={tmp_path}/log",
            "portsuite",
            "-c",
            "config.toml",
            "--ready-file",
            str(ready),
        ],
        cwd=path.parent,
        start_new_session=True,
    )
    try:
        first_port_when_ready(ready, proc, timeout=60)
        snapshot = json.loads(ready.read_text())
        names = {svc["name"] for svc in snapshot["services"]}
        assert {"echo", "web", "shout", "chat"} <= names  # plugins found through ../plugins
        web = next(svc for svc in snapshot["services"] if svc["name"] == "web")
        port = web["listeners"][0]["port"]
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
        c.close()
        assert reply.startswith(b"HTTP/1.0 200") or reply.startswith(b"HTTP/1.1 200")
        assert (ROOT / "www" / "index.html").read_bytes() in reply  # root = "../www"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_config_not_utf8_is_one_line_for_twistd_and_check(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[services.e]\ntype = "echo"\nport = 0\n# café\n'.encode("latin-1"))
    line = f"{bad}: line 4: not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    for cmd in (
        [*twistd_command(), "-n", "--pidfile=", "portsuite", "-c", str(bad)],
        [*twistd_command(), f"--pidfile={tmp_path}/t.pid", "portsuite", "-c", str(bad)],
        [str(BIN / "portsuite"), "check", "-c", str(bad)],
    ):
        r = sp.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert r.returncode == 2, cmd
        assert r.stderr.splitlines()[0] == line
        assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "t.pid").exists()


def test_port_in_use_stops_the_whole_suite_with_one_line(tmp_path: Path) -> None:
    """
    With -n and without (a daemon): the one line on the terminal, exit 1, no traceback,
    no pidfile left, no hang.
    """
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    path = write_config(
        {"services": {"a": {"type": "echo", "port": 0}, "b": {"type": "echo", "port": taken}}},
        tmp_path,
    )
    pidfile = tmp_path / "twistd.pid"
    results = {}
    try:
        for mode, flags in (
            ("foreground", ["-n", "--pidfile="]),
            ("daemon", [f"--pidfile={pidfile}"]),
        ):
            results[mode] = sp.run(
                [*twistd_command(), *flags, f"--logfile={tmp_path}/{mode}.log", "portsuite"]
                + ["-c", str(path)],
                capture_output=True,
                text=True,
                timeout=120,  # it used to hang for ever here
                cwd=tmp_path,
            )
    finally:
        blocker.close()
    line = (
        f"portsuite: cannot start [services.b] on tcp 127.0.0.1:{taken}: port {taken} is already "
        f"in use by another program (see: ss -lnp 'sport = :{taken}'); stop it or choose another port"
    )
    for mode, r in results.items():
        assert r.returncode == 1, (mode, r.stderr)
        assert r.stderr.strip() == line, mode
        log = tmp_path / f"{mode}.log"
        assert "Traceback" not in r.stderr + (log.read_text() if log.exists() else ""), mode
    assert not pidfile.exists()
