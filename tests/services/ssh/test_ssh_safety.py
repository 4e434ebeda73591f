"""No way out of the lab shell, and logins that cannot be guessed at leisure."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from sshhelp import shell_suite, ssh

from portsuite import loader
from portsuite.api import ConfigError
from portsuite_services.ssh.files import Jail, JailError
from portsuite_services.ssh.shell import MAX_LINE, Commands, Sessions


def _commands(lab: Any) -> Commands:
    return Commands("alice", "ssh", Jail(lab["files"]), Sessions(), time.time, None)


@pytest.mark.parametrize(
    "line",
    [
        "cat ../secret.txt",
        "cat ../../../../etc/passwd",
        "cat /etc/passwd",
        "cat passwd",  # a symlink to /etc/passwd
        "cat escape/passwd",  # through a symlinked folder
        "cd escape",
        "ls ..",
        "cat docs/../../secret.txt",
    ],
)
def test_no_path_leaves_the_files_folder(lab: Any, line: str) -> None:
    output, status, _ = _commands(lab).run(line)
    assert "root:" not in output and "outside the jail" not in output
    if not line.startswith("ls"):
        assert status != 0 and "no such file" in output


def test_ls_hides_links_out_and_cat_never_blocks_on_a_fifo(lab: Any) -> None:
    cmds = _commands(lab)
    listing, _, _ = cmds.run("ls")
    assert "hello.txt" in listing and "docs/" in listing
    assert "escape" not in listing and "passwd" not in listing
    output, status, _ = cmds.run("cat fifo")  # returns at once: not a regular file
    assert status == 1 and "not a regular file" in output


@pytest.mark.parametrize(
    "line,shown",
    [
        ("echo $(whoami)", "$(whoami)\n"),
        ("echo `id`", "`id`\n"),
        ("echo hi; cat /etc/passwd", "hi; cat /etc/passwd\n"),
        ("echo a | cat hello.txt", "a | cat hello.txt\n"),
        ("echo a && whoami > x", "a && whoami > x\n"),
    ],
)
def test_shell_syntax_is_plain_text(lab: Any, line: str, shown: str) -> None:
    output, status, _ = _commands(lab).run(line)
    assert (output, status) == (shown, 0)
    assert not (lab["files"] / "x").exists()


def test_odd_lines_get_an_answer_not_a_crash(lab: Any) -> None:
    cmds = _commands(lab)
    assert "quotes must be closed" in cmds.run('echo "unclosed')[0]
    assert "command not found" in cmds.run("\x1b[31mred")[0]
    assert "command not found" in cmds.run("/bin/sh")[0]
    assert "command not found" in cmds.run("__class__")[0]
    assert cmds.run("cat " + "a/" * 5000)[1] == 1
    with pytest.raises(JailError):
        Jail(lab["files"]).virtual("/", "nul\0byte")


def test_a_very_long_line_is_cut_and_the_session_goes_on(portsuite: Any, lab: Any) -> None:
    from sshhelp import ssh_shell

    s = shell_suite(portsuite, lab)
    child = ssh_shell(s.port("ssh"))
    child.expect(r"alice@lab:/\$ ")
    child.send("echo " + "x" * (MAX_LINE + 500) + "\x01\x02\x1b[Z\r")  # control keys ignored
    child.expect("x" * (MAX_LINE - 10))
    child.expect(r"alice@lab:/\$ ")
    child.send("whoami\r")
    child.expect("alice")
    child.send("exit\r")


def _transport(port: int) -> Any:
    import paramiko

    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=30)
    return t


def test_three_wrong_passwords_close_the_connection(portsuite: Any, lab: Any) -> None:
    import paramiko

    s = shell_suite(portsuite, lab)
    t = _transport(s.port("ssh"))
    started = time.monotonic()
    try:
        for attempt in range(2):
            with pytest.raises(paramiko.AuthenticationException):
                t.auth_password("alice", f"guess{attempt}")
        with pytest.raises((paramiko.AuthenticationException, paramiko.SSHException, EOFError)):
            t.auth_password("alice", "guess2")
        assert time.monotonic() - started >= 3.5  # each failure told after a 2 s delay
        deadline = time.monotonic() + 30
        while t.is_active() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not t.is_active()  # the third closed the connection
    finally:
        t.close()


def test_an_address_with_too_many_failures_is_refused_even_with_the_password(
    portsuite: Any, lab: Any
) -> None:
    import paramiko

    s = shell_suite(portsuite, lab, ssh={"login_failures": 2})
    t = _transport(s.port("ssh"))
    try:
        for attempt in range(2):
            with pytest.raises(paramiko.AuthenticationException):
                t.auth_password("alice", f"guess{attempt}")
    finally:
        t.close()
    r = ssh(s.port("ssh"), "whoami")  # the right password, but too late from this address
    assert r.returncode != 0 and r.stdout == ""
    assert ssh(s.port("ssh"), "whoami", user="bob", password="builder").stdout == ""


def test_a_client_that_never_logs_in_is_dropped(portsuite: Any, lab: Any) -> None:
    s = shell_suite(portsuite, lab, ssh={"login_grace": 1})
    with socket.create_connection(("127.0.0.1", s.port("ssh")), timeout=30) as c:
        assert c.recv(100).startswith(b"SSH-2.0-")  # the banner, then silence from us
        c.settimeout(30)
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    # closed by the server within the grace time (the recv above did not time out)


def test_a_host_key_readable_by_others_stops_the_config(lab: Any, tmp_path: Path) -> None:
    key = lab["keys"] / "ssh_host_ed25519_key"
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError) as e:
        loader.from_dict(
            {"services": {"ssh": {"type": "ssh", "port": 0, "host_keys": str(lab["keys"])}}},
            base_dir=tmp_path,
            label="lab.toml",
        )
    (line,) = e.value.errors
    assert line.startswith("lab.toml: [services.ssh] host_keys:")
    assert f"chmod 600 {key}" in line


def test_host_keys_are_made_once_and_never_overwritten(tmp_path: Path) -> None:
    from portsuite_services.ssh import hostkeys

    folder = tmp_path / "keys"
    first = hostkeys.load_or_make(folder)
    mode = os.stat(folder / "ssh_host_ed25519_key").st_mode & 0o777
    assert mode == 0o600
    again = hostkeys.load_or_make(folder)
    assert {k: v.fingerprint() for k, v in first.items()} == {
        k: v.fingerprint() for k, v in again.items()
    }


def test_portsuite_check_shows_the_fingerprints_ssh_will_show(
    lab: Any, tmp_path: Path, capsys: Any
) -> None:
    from twisted.conch.ssh import keys

    from portsuite import cli
    from portsuite_services.ssh import hostkeys

    config = tmp_path / "lab.toml"
    config.write_text(f'[services.ssh]\ntype = "ssh"\nport = 0\nhost_keys = "{lab["keys"]}"\n')
    assert cli.main(["check", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    for kind, name in hostkeys.KINDS.items():
        fp = hostkeys.fingerprint(keys.Key.fromFile(str(lab["keys"] / name)))
        assert f"note: [services.ssh] host key {kind.upper()} {fp}" in out


def test_an_ssh_service_without_host_keys_is_one_config_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        loader.from_dict(
            {"services": {"ssh": {"type": "ssh", "port": 0}}}, base_dir=tmp_path, label="lab.toml"
        )
    (line,) = e.value.errors
    assert line.startswith("lab.toml: [services.ssh] host_keys: missing")
