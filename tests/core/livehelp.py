"""Helpers of the live-control tests: a twistd suite with its own run folder, the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess as sp
import sys
from pathlib import Path
from typing import Any

import tomli_w

from portsuite.testing import SubprocessSuite, start_suite, wait_for

PORTSUITE = str(Path(sys.executable).parent / "portsuite")


def write(path: Path, config: dict[str, Any]) -> Path:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(config))
    os.replace(tmp, path)
    return path


def start(
    tmp_path: Path, config: dict[str, Any], args: tuple[str, ...] = (), run: Path | None = None
) -> SubprocessSuite:
    """C{twistd -n portsuite -c tmp_path/suite.toml}, its control socket in tmp_path/run."""
    path = write(tmp_path / "suite.toml", config)
    env = {"PORTSUITE_RUN_DIR": str(run or tmp_path / "run")}
    s = start_suite(path, subprocess=True, env=env, args=args)
    assert isinstance(s, SubprocessSuite)
    # the ready file is written once bound, then again once the control socket is open
    assert wait_for(lambda: snapshot(s).get("control") is not None, timeout=30), s.log()
    return s


def ctl(s: SubprocessSuite, *argv: str) -> sp.CompletedProcess[str]:
    """C{portsuite ARGV -c CONFIG}, as a user types it (the same run folder as the suite)."""
    run_dir = str(Path(s.config_path).parent / "run")
    return sp.run(
        [PORTSUITE, *argv, "-c", str(s.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PORTSUITE_RUN_DIR": run_dir},
    )


def ask(s: SubprocessSuite, command: str, **payload: Any) -> dict[str, Any]:
    """One request on the suite's control socket, as the CLI sends it (without its start-up)."""
    from portsuite import live

    path = Path(s.config_path).parent / "run" / live.socket_path(s.config_path).name
    return live.request(path, {"command": command, **payload})


def snapshot(s: SubprocessSuite) -> dict[str, Any]:
    """The ready file, which the suite writes again after every change."""
    data: dict[str, Any] = json.loads(s.ready_file.read_text())
    return data


def service(s: SubprocessSuite, name: str) -> dict[str, Any] | None:
    for svc in snapshot(s)["services"]:
        if svc["name"] == name:
            return svc  # type: ignore[no-any-return]
    return None


def tcp_port(s: SubprocessSuite, name: str) -> int:
    svc = service(s, name)
    assert svc is not None, name
    return int(next(li["port"] for li in svc["listeners"] if li["transport"] == "tcp"))


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


class Talker:
    """An echo client that stays connected: each L{say} must come back."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")

    def say(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\n")
        return self.file.readline().decode().rstrip("\n")

    def closed(self, within: float = 20) -> bool:
        """Whether the server closes this connection within that many seconds."""
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()
