"""portsuite check / ports as a student runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from portsuite import cli
from portsuite.cli import check
from portsuite.testing import write_config


def test_check_warns_about_well_known_ports_for_a_normal_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(check, "can_bind_privileged", lambda: False)
    monkeypatch.setattr(check, "unprivileged_port_start", lambda: 1024)
    path = write_config(
        {"services": {"echo": {"type": "echo", "port": 7}, "alt": {"type": "echo", "port": 7007}}},
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
