"""portsuite check / ports as a student runs them."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from portsuite import cli
from portsuite.cli import check
from portsuite.testing import free_port, need, write_config


def test_check_warns_about_well_known_ports_for_a_normal_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(check, "can_bind_privileged", lambda: False)
    monkeypatch.setattr(check, "unprivileged_port_start", lambda: 1024)
    free = free_port()  # a fixed registered port may be in use: check would say so too
    path = write_config(
        {"services": {"echo": {"type": "echo", "port": 7}, "alt": {"type": "echo", "port": free}}},
        tmp_path,
    )
    assert cli.main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: [services.echo] port 7 is well-known (0-1023) and needs root or "
        "CAP_NET_BIND_SERVICE; run as root with twistd --uid/--gid, or use a port >= 1024"
    ]


def test_ports_places_each_service_in_its_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        {
            "services": {
                "echo": {"type": "echo", "port": 7},
                "kvish": {"type": "echo", "port": 3306},
                "any": {"type": "echo", "port": 0},
            }
        },
        tmp_path,
    )
    assert cli.main(["ports", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    well_known = out.index("well-known")
    registered = out.index("registered")
    dynamic = out.index("dynamic")
    assert (
        well_known < out.index("7/tcp  echo") < registered < out.index("3306/tcp  kvish") < dynamic
    )
    assert "port = 0 (the OS picks a free port at start)" in out


def rows_of(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


def test_check_lists_listen_entries_as_bound_ipv6_unescaped_udp_included(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        {
            "services": {
                "six": {"type": "echo", "listen": ["tcp6:0:interface=\\:\\:1"]},
                "dgram": {"type": "echo", "listen": ["udp:0:interface=127.0.0.1"]},
            }
        },
        tmp_path,
    )
    assert cli.main(["check", "-c", str(path)]) == 0
    rows = rows_of(capsys.readouterr().out)
    assert ["six", "echo", "tcp6", "::1", "0", "any", "free", "port", "-"] in rows
    assert ["dgram", "echo", "udp", "127.0.0.1", "0", "any", "free", "port", "-"] in rows


def test_check_names_a_port_in_use_and_its_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need("ss")
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    taken = held.getsockname()[1]
    path = write_config(
        {
            "services": {
                "busy": {"type": "echo", "port": taken},
                "fine": {"type": "echo", "port": 0, "udp": True},
            }
        },
        tmp_path,
    )
    try:
        assert cli.main(["check", "-c", str(path)]) == 0
    finally:
        held.close()
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, out
    assert warnings[0].startswith(
        f"warning: [services.busy] tcp 127.0.0.1:{taken}: port {taken} is already in use by "
    )
    assert f"(pid {os.getpid()})" in warnings[0]  # this test's own process holds it
    assert warnings[0].endswith("; stop it or choose another port")


def test_check_names_a_host_that_is_not_of_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        {"services": {"far": {"type": "echo", "port": 0, "host": "192.0.2.1"}}}, tmp_path
    )
    assert cli.main(["check", "-c", str(path)]) == 0
    assert (
        "warning: [services.far] tcp 192.0.2.1:0: '192.0.2.1' is not an address of this "
        "machine; use 127.0.0.1, ::1 or 0.0.0.0"
    ) in capsys.readouterr().out.splitlines()


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A folder every user can enter (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="portsuite-check-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_check_uid_finds_folders_that_user_cannot_use(
    open_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--uid as twistd's: a private www, a data folder it cannot write."""
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() == nobody.pw_uid:
        pytest.skip("runs as nobody itself")
    tmp_path = open_tmp
    private = tmp_path / "private"
    (private / "www").mkdir(parents=True)
    private.chmod(0o700)
    public = tmp_path / "public"
    (public / "www").mkdir(parents=True)
    public.chmod(0o755)
    (public / "data").mkdir()
    (public / "data").chmod(0o755)
    path = write_config(
        {
            "services": {
                "hidden": {"type": "http", "port": 0, "root": "private/www"},
                "shown": {"type": "http", "port": 0, "root": "public/www"},
                "store": {"type": "kv", "port": 0, "data": "public/data/kv.aof"},
            }
        },
        tmp_path,
    )
    assert cli.main(["check", "-c", str(path), "--uid", "nobody"]) == 0
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    who = f"nobody (uid {nobody.pw_uid})"
    assert warnings == [
        f"warning: [services.hidden] root: {private} cannot be entered by {who}; "
        f"chmod o+x {private} or use another --uid",
        f"warning: [services.store] data: {public / 'data'} is not writable by {who}; "
        f"chmod or chown it, or use another --uid",
    ]
    # the user it runs as now can use every one of them
    assert cli.main(["check", "-c", str(path)]) == 0
    assert "warning:" not in capsys.readouterr().out


def test_check_refuses_an_unknown_uid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config({"services": {"e": {"type": "echo", "port": 0}}}, tmp_path)
    assert cli.main(["check", "-c", str(path), "--uid", "no-such-user-here"]) == 2
    assert capsys.readouterr().err.strip() == (
        "portsuite check: --uid no-such-user-here: no such user on this machine"
    )


def test_plugins_piped_into_a_reader_that_left_ends_quietly() -> None:
    """portsuite plugins | head: the reader may be gone before a line is written."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has already left: every write fails with EPIPE
    try:
        out = subprocess.run(
            [sys.executable, "-m", "portsuite.cli", "plugins"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert out.returncode == 0
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr
