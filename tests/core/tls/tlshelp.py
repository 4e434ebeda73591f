"""Helpers of the TLS tests (imported as tlshelp: test dirs have no __init__.py)."""

from __future__ import annotations

import subprocess as sp
from pathlib import Path
from typing import Any


def tls_echo(certdir: Path, **tls: Any) -> dict[str, Any]:
    """A config dict: echo on a free port with TLS from certdir."""
    table = {"cert": str(certdir / "server.crt"), "key": str(certdir / "server.key"), **tls}
    return {"services": {"echo": {"type": "echo", "port": 0, "tls": table}}}


def s_client(
    port: int, *args: str, host: str = "127.0.0.1", stdin: bytes = b"", timeout: float = 20
) -> sp.CompletedProcess[str]:
    """openssl s_client -brief against the suite; stdin then EOF (so it exits)."""
    from portsuite.testing import need

    openssl = need("openssl")
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return sp.run(
        [openssl, "s_client", "-connect", target, "-brief", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
