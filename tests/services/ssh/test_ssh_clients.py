"""ssh with the clients people use: OpenSSH's ssh, sftp and scp, paramiko."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pexpect
import pytest
from sshhelp import SSH_OPTS, sftp, shell_suite, ssh, ssh_shell

from portsuite.testing import need
from portsuite_services.ssh import hostkeys


def test_exec_runs_a_lab_shell_command_with_its_exit_status(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab)
    r = ssh(s.port("ssh"), "whoami")
    assert (r.returncode, r.stdout) == (0, "alice\n")
    r = ssh(s.port("ssh"), "cat docs/cours.txt")
    assert r.stdout == "1 service = 1 port\n"
    r = ssh(s.port("ssh"), "uname -a")  # not a program of the machine: not found
    assert r.returncode == 127 and "command not found" in r.stdout


def test_public_key_login(portsuite: Any, lab: Any, tmp_path: Path) -> None:
    def keypair(name: str) -> Path:
        key = tmp_path / name
        subprocess.run(
            [
                need("ssh-keygen"),
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "carol@laptop",
                "-f",
                str(key),
            ],
            check=True,
            timeout=60,
        )
        return key

    def whoami(key: Path) -> subprocess.CompletedProcess[str]:
        opts = ("-o", "BatchMode=yes", "-i", str(key))
        return ssh(s.port("ssh"), "whoami", user="carol", password=None, opts=opts)

    key, other = keypair("id_ed25519"), keypair("other")
    pub = (tmp_path / "id_ed25519.pub").read_text().strip()
    s = shell_suite(portsuite, lab, users={"carol": {"keys": [pub]}})
    r = whoami(key)
    assert (r.returncode, r.stdout) == (0, "carol\n")
    r = whoami(other)
    assert r.returncode == 255 and "Permission denied" in r.stderr


def test_an_interactive_session_edits_lines_and_keeps_history(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab)
    child = ssh_shell(s.port("ssh"))
    child.expect(r"alice@lab:/\$ ")
    child.send("echo helo")
    child.send("\x1b[D\x1b[D")  # two steps left
    child.send("l\r")  # inserted: "echo hello"
    child.expect("hello\r+\n")
    child.send("cd docs\r")
    child.expect(r"alice@lab:/docs\$ ")
    child.send("\x1b[A\x1b[A\r")  # up twice: echo hello again
    child.expect("hello\r+\n")
    child.send("some half line\x03")  # Ctrl-C drops it
    child.expect(r"\^C")
    child.send("who\r")
    child.expect(r"alice\s+ssh\s+127\.0\.0\.1:\d+")
    child.send("exit\r")
    child.expect(pexpect.EOF)


def test_sftp_and_scp_read_the_files_and_may_not_write(
    portsuite: Any, lab: Any, tmp_path: Path
) -> None:
    s = shell_suite(portsuite, lab)
    got = tmp_path / "got.txt"
    r = sftp(s.port("ssh"), f"ls\nget hello.txt {got}\n", tmp_path)
    assert r.returncode == 0 and "hello.txt" in r.stdout and "docs" in r.stdout
    assert got.read_text() == "bonjour le monde\n"
    r = sftp(s.port("ssh"), "put /etc/hostname x.txt\n", tmp_path)
    assert "Permission denied" in r.stderr
    assert not (lab["files"] / "x.txt").exists()
    scp = tmp_path / "scp.txt"
    r = subprocess.run(
        [
            need("sshpass"),
            "-p",
            "wonderland",
            need("scp"),
            *SSH_OPTS,
            "-P",
            str(s.port("ssh")),
            "alice@127.0.0.1:docs/cours.txt",
            str(scp),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert scp.read_text() == "1 service = 1 port\n"


def test_sftp_writes_when_the_files_are_writable(portsuite: Any, lab: Any, tmp_path: Path) -> None:
    s = shell_suite(portsuite, lab, ssh={"writable": True})
    (tmp_path / "up.txt").write_text("envoyé\n")
    r = sftp(
        s.port("ssh"),
        f"put {tmp_path / 'up.txt'} docs/up.txt\nmkdir new\nrename docs/up.txt new/up.txt\n",
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (lab["files"] / "new" / "up.txt").read_text() == "envoyé\n"
    r = sftp(s.port("ssh"), f"put {tmp_path / 'up.txt'} escape/up.txt\n", tmp_path)
    assert "No such file" in r.stderr  # not through a link out of the jail
    assert not Path("/etc/up.txt").exists()


def test_paramiko_exec_and_refused_forwarding(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(
        "127.0.0.1",
        port=s.port("ssh"),
        username="bob",
        password="builder",
        look_for_keys=False,
        allow_agent=False,
        timeout=30,
    )
    try:
        _, out, _ = client.exec_command("whoami")
        assert out.read() == b"bob\n"
        transport = client.get_transport()
        assert transport is not None
        with pytest.raises(paramiko.ChannelException):  # no port forwarding
            transport.open_channel(
                "direct-tcpip", ("127.0.0.1", s.port("telnet")), ("127.0.0.1", 1)
            )
        with pytest.raises(paramiko.SSHException, match="denied"):  # no remote forwarding
            transport.request_port_forward("127.0.0.1", 0)
    finally:
        client.close()


def test_the_fingerprint_in_the_log_is_the_one_ssh_sees(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab)
    scanned = subprocess.run(
        [need("ssh-keyscan"), "-p", str(s.port("ssh")), "-t", "ed25519", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    shown = subprocess.run(
        [need("ssh-keygen"), "-lf", "-"], input=scanned, capture_output=True, text=True, timeout=60
    ).stdout
    from twisted.conch.ssh import keys

    ours = hostkeys.fingerprint(keys.Key.fromFile(str(lab["keys"] / "ssh_host_ed25519_key")))
    assert ours in shown


@pytest.mark.parametrize(
    "option",
    [
        "KexAlgorithms=diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
        "Ciphers=aes128-cbc,aes256-cbc",
        "HostKeyAlgorithms=ssh-rsa,ssh-dss",
        "MACs=hmac-sha1,hmac-md5",
    ],
)
def test_weak_algorithms_are_not_offered(portsuite: Any, lab: Any, option: str) -> None:
    s = shell_suite(portsuite, lab)
    r = ssh(s.port("ssh"), "whoami", opts=("-o", option, "-o", "LogLevel=INFO"))  # first wins
    assert r.returncode == 255 and re.search(r"no matching|Unable to negotiate", r.stderr), r.stderr
