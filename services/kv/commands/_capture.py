"""
Developer tool: regenerate C{redis_commands.json}, the exact COMMAND INFO and
COMMAND DOCS replies of redis-server 7.0 (BSD-3-Clause, (c) Redis Ltd.) for the
commands kv implements, so redis-cli shows the same hints and help.

    redis-server --port 7399 --save '' &
    python -m portsuite_services.kv.commands._capture 7399
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import hiredis

from portsuite_services.kv.commands import COMMANDS


class _Conn:
    def __init__(self, port: int, resp3: bool):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        if resp3:
            self.call(b"HELLO", b"3")

    def call(self, *argv: bytes) -> bytes:
        self.sock.sendall(
            b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv)
        )
        reader = hiredis.Reader()
        data = b""
        while True:
            chunk = self.sock.recv(1 << 20)
            data += chunk
            reader.feed(chunk)
            if reader.gets() is not False:
                return data


def _strip(reply: bytes, header_lines: int) -> bytes:
    for _ in range(header_lines):
        reply = reply[reply.index(b"\r\n") + 2 :]
    return reply


def main(port: int) -> None:
    out: dict[str, dict[str, str]] = {}
    for resp in (2, 3):
        conn = _Conn(port, resp == 3)
        for name in COMMANDS:
            info = conn.call(b"COMMAND", b"INFO", name)
            docs = conn.call(b"COMMAND", b"DOCS", name)
            if (
                info.startswith((b"*1\r\n*", b"*1\r\n"))
                and not info.startswith(b"*1\r\n$-1")
                and not info.startswith(b"*1\r\n_")
            ):
                entry = out.setdefault(name.decode(), {})
                entry[f"info{resp}"] = _strip(info, 1).decode("latin-1")
                if docs not in (b"*0\r\n", b"%0\r\n"):
                    entry[f"docs{resp}"] = _strip(docs, 3).decode("latin-1")
    path = Path(__file__).with_name("redis_commands.json")
    path.write_text(json.dumps(out, indent=0, sort_keys=True))
    print(f"wrote {len(out)} commands to {path}")


if __name__ == "__main__":
    main(int(sys.argv[1]))
