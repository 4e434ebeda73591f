"""kill -9 in the middle of deliveries: every message in new/ is whole, every 250 is on disk."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from portsuite.testing import suite_running

MARK = b"END-OF-MESSAGE"


def _sender(port: int, acked: list[int], n: int, stop: threading.Event) -> None:
    body = b"".join(b"line %06d " % i + b"x" * 60 + b"\r\n" for i in range(1500))  # ~100 KB
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"HELO crash.test\r\n")
        f.readline()
        while not stop.is_set():
            s.sendall(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@lab.test>\r\nDATA\r\n")
            for _ in range(3):
                f.readline()
            s.sendall(b"Subject: crash %d\r\n\r\n" % n + body + MARK + b"\r\n.\r\n")
            if not f.readline().startswith(b"250"):
                return
            acked[n] += 1
    except OSError:
        return


@pytest.mark.e2e
def test_kill_9_never_leaves_half_a_message(tmp_path: Path) -> None:
    box = tmp_path / "mail"
    config = {
        "users": {"alice": "wonderland"},
        "services": {
            "smtp": {"type": "smtp", "port": 0, "domains": ["lab.test"], "mailboxes": str(box)}
        },
    }
    acked = [0] * 4
    stop = threading.Event()
    with suite_running(config, subprocess=True, base_dir=tmp_path) as s:
        port = s.port("smtp")
        threads = [
            threading.Thread(target=_sender, args=(port, acked, i, stop), daemon=True)
            for i in range(4)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while sum(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        s.kill()  # SIGKILL while the senders are mid-message
        stop.set()
        for t in threads:
            t.join(30)
    assert sum(acked) >= 20
    files = sorted((box / "alice" / "new").iterdir())
    # every acknowledged message is there (a 250 is sent only after the rename) ...
    assert len(files) >= sum(acked)
    # ... and nothing in new/ is cut: each ends with its last line
    for path in files:
        data = path.read_bytes()
        assert data.endswith(MARK + b"\n"), path.name
        assert data.count(b"\n") > 1500
