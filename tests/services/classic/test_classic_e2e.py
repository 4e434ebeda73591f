"""
config/classic.toml end to end: the real well-known ports, root binding them, and
twistd dropping to nobody:nogroup right after.
"""

from __future__ import annotations

import ftplib
import grp
import json
import os
import random
import shutil
import socket
import struct
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portsuite import cli, loader
from portsuite.testing import suite_running
from portsuite_services import classic

ROOT = Path(__file__).parents[3]
CLASSIC = ROOT / "config" / "classic.toml"
WELL_KNOWN = {"echo": 7, "discard": 9, "daytime": 13, "qotd": 17, "chargen": 19, "time": 37}

pytestmark = pytest.mark.e2e


def test_classic_toml_names_the_real_ports(capsys: pytest.CaptureFixture[str]) -> None:
    data = tomllib.loads(CLASSIC.read_text())
    services = data["services"]
    assert data["suite"]["host"] == "127.0.0.1"  # opened to a network only on purpose
    for name, port in WELL_KNOWN.items():
        assert services[name]["type"] == name and services[name]["port"] == port
        assert services[name]["udp"] is True
    assert (services["web"]["type"], services["web"]["port"]) == ("http", 80)
    assert (services["kv"]["type"], services["kv"]["port"]) == ("kv", 6379)
    assert (services["sql"]["type"], services["sql"]["port"]) == ("sql", 3306)
    assert cli.main(["check", "-c", str(CLASSIC)]) == 0
    out = capsys.readouterr().out
    for port in (*WELL_KNOWN.values(), 80):
        assert f"  {port}  " in out or f" {port} " in out
    # one row per listener below 1024: tcp (and udp where the service speaks it)
    listeners = sum(
        int(svc.tcp) + int(svc.udp)
        for svc in loader.load(CLASSIC).services
        if svc.port is not None and svc.port < 1024
    )
    assert listeners >= 2 * len(WELL_KNOWN) + 1
    assert out.count("well-known") == listeners


def _free_privileged_ports(n: int) -> list[int]:
    """Ports below 1024 free on loopback for TCP and UDP right now (never fixed numbers)."""
    found: list[int] = []
    candidates = random.sample(range(600, 1024), 424)
    for port in candidates:
        try:
            with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                t.bind(("127.0.0.1", port))
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        found.append(port)
        if len(found) == n:
            return found
    pytest.skip("not enough free ports below 1024")
    raise AssertionError


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder nobody can write (the dropped user's transcripts go there)."""
    folder = Path(tempfile.mkdtemp(prefix="portsuite-e2e-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _status(pid: int) -> dict[str, list[int]]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            out[key] = [int(v) for v in value.split()]
    return out


def _recv_all(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_root_binds_well_known_ports_then_runs_as_nobody(tmp_path: Path, shared_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: binding ports below 1024 and twistd --uid/--gid")
    try:
        grp.getgrnam("nogroup")
    except KeyError:
        pytest.skip("no group nogroup on this system")
    data: dict[str, Any] = tomllib.loads(CLASSIC.read_text())
    names = list(data["services"])
    ports = dict(zip(names, _free_privileged_ports(len(names)), strict=True))
    for name, table in data["services"].items():
        table["port"] = ports[name]  # a well-known port, but one that is free now
    # a copy the dropped user can read wherever the checkout lives (a clone under /root is not)
    www = shutil.copytree(ROOT / "www", shared_dir / "www")
    for path in [www, *www.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    data["services"]["web"]["root"] = str(www)
    pub = shutil.copytree(ROOT / "ftp", shared_dir / "ftp")  # ftp's anonymous root, the same way
    for path in [pub, *pub.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    data["services"]["ftp"]["root"] = str(pub)
    for name, table in data["services"].items():
        if "host_keys" in table:  # made by root at start: keep them out of /var/lib here
            table["host_keys"] = str(tmp_path / f"{name}-keys")
    config = {k: data[k] for k in ("suite", "users", "services") if k in data}
    with suite_running(
        config,
        base_dir=tmp_path,
        subprocess=True,
        args=("--uid", "nobody", "--gid", "nogroup"),
        env={"PORTSUITE_TRACE_DIR": str(shared_dir)},
    ) as s:
        for name in names:
            assert s.port(name) == ports[name] < 1024
        # bound as root, now running as nobody:nogroup (real, effective, saved, fs ids)
        deadline = time.monotonic() + 5
        while _status(s.pid)["Uid"][0] != 65534 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = _status(s.pid)
        assert st["Uid"] == [65534] * 4 and st["Gid"] == [65534] * 4
        # every service answers, as its client would see it
        with socket.create_connection(("127.0.0.1", ports["time"])) as c:
            assert abs(classic.rfc868_to_unix(_recv_all(c)) - time.time()) <= 2
        with socket.create_connection(("127.0.0.1", ports["daytime"])) as c:
            assert _recv_all(c).endswith(b"-UTC\r\n")
        with socket.create_connection(("127.0.0.1", ports["qotd"])) as c:
            assert 0 < len(_recv_all(c)) < 512
        with socket.create_connection(("127.0.0.1", ports["echo"])) as c:
            c.sendall(b"ping\r\n")
            c.settimeout(5)
            assert c.recv(100) == b"ping\r\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"", ("127.0.0.1", ports["time"]))
            (value,) = struct.unpack("!I", u.recvfrom(10)[0])
            u.sendto(b"x", ("127.0.0.1", ports["chargen"]))
            assert len(u.recvfrom(1000)[0]) <= 512
        with socket.create_connection(("127.0.0.1", ports["web"])) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert _recv_all(c).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", ports["kv"])) as c:
            c.sendall(b"PING\r\n")
            c.settimeout(5)
            assert c.recv(100) == b"+PONG\r\n"
        ftp = ftplib.FTP(timeout=20)  # ftp: files read by nobody, a data connection
        ftp.connect("127.0.0.1", ports["ftp"])
        ftp.login()
        assert "README.txt" in ftp.nlst()
        ftp.quit()
        # the echo transcript was written by the dropped user, readable by the student
        trace_file = shared_dir / "echo.jsonl"
        deadline = time.monotonic() + 5
        while not trace_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trace_file.stat().st_uid == 65534
        texts = [json.loads(line).get("text") for line in trace_file.read_text().splitlines()]
        assert "ping\\r\\n" in texts
        assert "set uid/gid 65534/65534" in s.log()
