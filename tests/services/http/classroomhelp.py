"""The shipped config/config.toml, made to run in a test: every port 0, paths absolute."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def shipped_config(scratch: Path, **traced: bool) -> dict[str, Any]:
    data = tomllib.loads((ROOT / "config" / "config.toml").read_text())
    data["suite"]["plugin_dirs"] = [str(ROOT / "plugins")]
    for name, svc in data["services"].items():
        svc["port"] = 0
        svc.pop("data", None)
        if svc["type"] == "http":
            svc["root"] = str(ROOT / "www")
        if "files" in svc:
            svc["files"] = str(ROOT / "www")
        if "host_keys" in svc:
            svc["host_keys"] = str(scratch / "ssh")
        if svc["type"] == "ftp":
            svc["root"] = str(ROOT / "ftp")
            svc["homes"] = str(scratch / "ftp-homes")
            svc.pop("passive_ports", None)  # any free port, not the shipped fixed range
        if "mailboxes" in svc:
            svc["mailboxes"] = str(scratch / "mail")
        if name in traced:
            svc["trace"] = traced[name]
    return data
