"""
Real portsuite servers for tests: started from a config dict or file, torn down cleanly.

In-process (fast; the reactor runs in a background thread)::

    from portsuite.testing import suite_running

    with suite_running({"services": {"kv": {"type": "kv", "port": 0}}}) as s:
        r = redis.Redis(port=s.port("kv"))

As a real C{twistd -n portsuite} subprocess (end to end)::

    with suite_running("config/config.toml", subprocess=True) as s:
        ...  # s.port("echo"), s.log(), s.stop()

With pytest, the C{portsuite} fixture (registered by the C{portsuite.pytest_plugin}
entry point) does the same and stops every suite at teardown::

    def test_echo(portsuite):
        s = portsuite({"services": {"echo": {"type": "echo", "port": 0}}})

Use C{port = 0} in configs: the OS picks free ports, and C{s.port(name)} tells which.
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
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "InProcessSuite",
    "SubprocessSuite",
    "call_in_reactor",
    "free_port",
    "need",
    "start_suite",
    "suite_running",
]

Config = Mapping[str, Any] | str | Path


def free_port(kind: str = "tcp", host: str = "127.0.0.1") -> int:
    """A port that is free right now (prefer C{port = 0} where you can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(family, stype) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def need(tool: str) -> str:
    """
    The path of an external tool (redis-server, chromium, openssl…). Skips the test
    when it is missing, unless C{PORTSUITE_REQUIRE_TOOLS=1} (CI), where it fails.
    """
    path = shutil.which(tool)
    if path:
        return path
    import pytest

    message = f"{tool} is not installed (apt-get install it, or run .ci/run)"
    if os.environ.get("PORTSUITE_REQUIRE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


# -- in-process: the global reactor in a background thread -------------------------

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _reactor() -> Any:
    global _reactor_thread
    from twisted.internet import reactor

    with _reactor_lock:
        if _reactor_thread is None:
            _reactor_thread = threading.Thread(
                target=reactor.run,  # type: ignore[misc]
                kwargs={"installSignalHandlers": False},
                name="portsuite-reactor",
                daemon=True,
            )
            _reactor_thread.start()
            deadline = time.monotonic() + 10
            while not reactor.running and time.monotonic() < deadline:
                time.sleep(0.01)
    return reactor


def call_in_reactor(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run C{f} in the reactor thread; wait for its result (Deferreds included)."""
    from twisted.internet.threads import blockingCallFromThread

    return blockingCallFromThread(_reactor(), f, *args, **kwargs)


class InProcessSuite:
    """A L{portsuite.suite.Suite} running in this process's reactor thread."""

    def __init__(self, suite: Any):
        self.suite = suite

    def port(self, name: str, transport: str = "tcp") -> int:
        return int(self.suite.port(name, transport))

    def snapshot(self) -> dict[str, Any]:
        return call_in_reactor(self.suite.snapshot)  # type: ignore[no-any-return]

    def service(self, name: str) -> dict[str, Any]:
        """The snapshot entry of one service (counters, clients, listeners)."""
        for svc in self.snapshot()["services"]:
            if svc["name"] == name:
                return svc  # type: ignore[no-any-return]
        raise KeyError(name)

    def stop(self) -> None:
        if self.suite.running:
            call_in_reactor(self.suite.stopService)


def _load(config: Config, base_dir: str | Path | None) -> Any:
    from portsuite import loader

    if isinstance(config, (str, Path)):
        return loader.load(config)
    return loader.from_dict(config, base_dir=base_dir or os.getcwd())


def _start_in_process(config: Config, base_dir: str | Path | None) -> InProcessSuite:
    from portsuite.suite import Suite

    reactor = _reactor()
    suite_config = _load(config, base_dir)

    def start() -> Any:
        suite = Suite(suite_config, reactor=reactor)
        suite.listen()  # raises StartupError with the one-line reason
        suite.startService()
        return suite

    return InProcessSuite(call_in_reactor(start))


# -- subprocess: real twistd ---------------------------------------------------------


def twistd_command() -> list[str]:
    """C{twistd} of this Python environment."""
    here = Path(sys.executable).parent / "twistd"
    if here.exists():
        return [str(here)]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class SubprocessSuite:
    """C{twistd -n portsuite -c CONFIG} in a child process."""

    def __init__(
        self,
        config_path: Path,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.config_path = config_path
        self.workdir = workdir
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "twistd.log"
        self.ready_file.unlink(missing_ok=True)
        cmd = [
            *twistd_command(),
            "-n",
            "--pidfile=",
            f"--logfile={self.log_file}",
            *args,
            "portsuite",
            "-c",
            str(config_path),
            "--ready-file",
            str(self.ready_file),
        ]
        self.proc = sp.Popen(
            cmd,
            cwd=workdir,
            stdout=sp.PIPE,
            stderr=sp.PIPE,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                self.ready = json.loads(self.ready_file.read_text())
                return
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(
                    f"twistd exited with {self.proc.returncode} before listening:\n"
                    f"{err.decode(errors='replace')}{out.decode(errors='replace')}\n{self.log()}"
                )
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"twistd did not listen within {timeout}s:\n{self.log()}")

    def port(self, name: str, transport: str = "tcp") -> int:
        for svc in self.ready.get("services", []):
            if svc["name"] == name:
                for li in svc["listeners"]:
                    if li["transport"] == transport and li["port"] is not None:
                        return int(li["port"])
        raise KeyError(f"{name} has no {transport} listener")

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except sp.TimeoutExpired:
                self.kill()
        self.proc.communicate()
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, nothing flushed."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def write_config(config: Mapping[str, Any], folder: Path) -> Path:
    """Write a config dict as TOML (relative paths then resolve against C{folder})."""
    import tomli_w

    fd, name = tempfile.mkstemp(prefix="portsuite-", suffix=".toml", dir=folder)
    with os.fdopen(fd, "wb") as f:
        tomli_w.dump(dict(config), f)
    return Path(name)


def _start_subprocess(
    config: Config,
    base_dir: str | Path | None,
    timeout: float,
    env: Mapping[str, str] | None,
    args: tuple[str, ...],
) -> SubprocessSuite:
    workdir = Path(tempfile.mkdtemp(prefix="portsuite-run-"))
    if isinstance(config, (str, Path)):
        path = Path(config).resolve()
    else:
        path = write_config(config, Path(base_dir) if base_dir else workdir)
    s = SubprocessSuite(path, workdir, env=env, args=args)
    s.wait_ready(timeout)
    return s


def start_suite(
    config: Config,
    *,
    base_dir: str | Path | None = None,
    subprocess: bool = False,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> InProcessSuite | SubprocessSuite:
    """Start a suite and wait until every listener is bound; the caller stops it."""
    if subprocess:
        return _start_subprocess(config, base_dir, timeout, env, args)
    return _start_in_process(config, base_dir)


@contextmanager
def suite_running(config: Config, **kwargs: Any) -> Iterator[Any]:
    """L{start_suite} as a context manager: stopped (SIGTERM for a subprocess) on exit."""
    s = start_suite(config, **kwargs)
    try:
        yield s
    finally:
        s.stop()
