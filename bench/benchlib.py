"""The few helpers every bench script shares: free ports, waiting for a server, cpu pinning,
process CPU time."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(
    port: int,
    proc: subprocess.Popen[bytes] | None = None,
    what: str = "the server",
    timeout: float = 30,
    probe: Callable[[socket.socket], bool] | None = None,
) -> None:
    """
    Wait until C{what} accepts connections on 127.0.0.1:C{port} and, with C{probe},
    answers as it should (C{probe(sock)} true; a false or an OSError tries again).
    Exits the script when C{proc} has exited or after C{timeout} seconds. Tries every
    10 ms: echo.py times the startup with it. (The tests have
    C{portsuite.testing.wait_listening}; the scripts, which do not import portsuite, this.)
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.settimeout(5)
                if probe is None or probe(sock):
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"{what} did not answer on port {port} within {timeout:g} s")


def terminate(*procs: subprocess.Popen[bytes], group: bool = False, timeout: float = 10) -> None:
    """
    Stop servers: SIGTERM to each one still running (to its whole process group with
    C{group}, for those started with C{start_new_session}), then wait up to C{timeout}
    seconds for each; SIGKILL to any that is left.
    """

    def send(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass

    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        send(proc, signal.SIGTERM)
    for proc in running:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            send(proc, signal.SIGKILL)
            proc.wait(timeout)


def open_files(want: int) -> int:
    """
    Raise this process's soft limit of open files towards C{want} (the servers it starts
    inherit it): a normal user's is often 1,024. Returns the limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        soft = min(hard, want)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def pin(cpu: int) -> list[str]:
    """A `taskset` prefix that keeps a process on one cpu, when there are two to share."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def before_bin() -> Path | None:
    """
    C{PORTSUITE_BEFORE_BIN}: the bin folder of another portsuite install (a venv made
    from an older commit, say). The scripts then also load that build, interleaved
    with the others, and print this build's figures over that one's: a before/after
    from one run, which a busy machine disturbs far less than two runs would.
    """
    value = os.environ.get("PORTSUITE_BEFORE_BIN")
    if not value:
        return None
    path = Path(value)
    if not (path / "twistd").exists():
        raise SystemExit(f"PORTSUITE_BEFORE_BIN={value}: no twistd there")
    return path


def run_seconds(pid: int) -> tuple[float, float]:
    """
    Seconds every thread of a process has run on a cpu, and waited for one while
    runnable (Linux schedstat, nanoseconds: finer than the 10 ms ticks of
    L{cpu_seconds}, which a few hundred small requests do not fill). Falls back to
    L{cpu_seconds} and no wait where schedstat is missing.
    """
    ran = waited = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        if not Path(f"/proc/{pid}/schedstat").exists():
            return cpu_seconds(pid), 0.0
    except OSError:
        return cpu_seconds(pid), 0.0
    for task in tasks:
        try:
            fields = Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()
        except OSError:
            continue  # a thread that ended in between
        ran += int(fields[0])
        waited += int(fields[1])
    return ran / 1e9, waited / 1e9
