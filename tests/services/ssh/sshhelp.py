"""Helpers for the ssh/telnet tests: a suite with both, and the real clients."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from portsuite.testing import need

SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=30",
]


def shell_suite(portsuite: Any, lab: dict[str, Any], users: Any = None, **extra: Any) -> Any:
    ssh = {"type": "ssh", "port": 0, "host_keys": str(lab["keys"]), "files": str(lab["files"])}
    ssh.update(extra.pop("ssh", {}))
    telnet = {"type": "telnet", "port": 0, "files": str(lab["files"])}
    telnet.update(extra.pop("telnet", {}))
    return portsuite(
        {
            "users": users or {"alice": "wonderland", "bob": "builder"},
            "services": {"ssh": ssh, "telnet": telnet},
        }
    )


def ssh(
    port: int,
    *command: str,
    password: str | None = "wonderland",
    user: str = "alice",
    opts: tuple[str, ...] = (),
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """OpenSSH's ssh running C{command}; typing C{password} (None: keys in C{opts} only)."""
    typist = [] if password is None else [need("sshpass"), "-p", password]
    return subprocess.run(
        [
            *typist,
            need("ssh"),
            *opts,
            *SSH_OPTS,
            "-p",
            str(port),
            f"{user}@127.0.0.1",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sftp(
    port: int, batch: str, tmp: Path, password: str = "wonderland"
) -> subprocess.CompletedProcess[str]:
    # commands on stdin, not -b: a batch file would turn password logins off
    return subprocess.run(
        [
            need("sshpass"),
            "-p",
            password,
            need("sftp"),
            *SSH_OPTS,
            "-P",
            str(port),
            "alice@127.0.0.1",
        ],
        input=batch + "bye\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def ssh_shell(port: int, user: str = "alice", password: str = "wonderland") -> Any:
    """An interactive ssh session on a terminal (pexpect), as a student opens one."""
    import pexpect

    return pexpect.spawn(
        need("sshpass"),
        ["-p", password, need("ssh"), *SSH_OPTS, "-tt", "-p", str(port), f"{user}@127.0.0.1"],
        timeout=30,
        encoding="utf-8",
    )
