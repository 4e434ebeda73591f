"""Plugins reloaded on save: new connections get the new code, open ones keep the old."""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from portsuite import reloader
from portsuite.testing import call_in_reactor, wait_for

CODE = """
from twisted.protocols.basic import LineReceiver


class Shout(LineReceiver):
    delimiter = b"\\n"

    def lineReceived(self, line):
        self.sendLine(b"{tag} " + line)
"""


def save(path: Path, text: str) -> None:
    """As an editor saves: a new file moved over the old one."""
    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")

    def say(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\n")
        return self.file.readline().decode().strip()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def once(port: int, text: str) -> str:
    c = Client(port)
    try:
        return c.say(text)
    finally:
        c.close()


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    path = folder / f"shout_{uuid.uuid4().hex[:8]}.py"
    path.write_text(CODE.replace("{tag}", "v1"))
    return path


def start(portsuite: Any, plugin: Path, reload_plugins: bool = True) -> Any:
    return portsuite(
        {
            "suite": {"plugin_dirs": [str(plugin.parent)], "reload_plugins": reload_plugins},
            "services": {"shout": {"type": f"{plugin.stem}:Shout", "port": 0}},
        }
    )


def test_saved_plugin_is_picked_up(portsuite: Any, plugin: Path) -> None:
    s = start(portsuite, plugin)
    port = s.port("shout")
    old = Client(port)
    assert old.say("a") == "v1 a"
    save(plugin, CODE.replace("{tag}", "v2"))
    saved = time.monotonic()
    assert wait_for(lambda: once(port, "b") == "v2 b", timeout=20)
    print(f"picked up {time.monotonic() - saved:.2f}s after the save")
    assert old.say("c") == "v1 c"  # the open connection keeps the old code
    # a syntax error: the previous version goes on, the error is shown (file, line, message)
    save(plugin, CODE.replace("{tag}", "v3").replace("def lineReceived(self, line):", "def x(:"))
    assert wait_for(lambda: s.snapshot()["plugin_errors"] != [], timeout=20)
    (error,) = s.snapshot()["plugin_errors"]
    assert error.startswith(f"{plugin}:8: SyntaxError:"), error
    assert once(port, "d") == "v2 d"
    # an error while importing: the same
    save(plugin, CODE.replace("{tag}", "v4") + "\nundefined_name\n")
    assert wait_for(lambda: "NameError" in "".join(s.snapshot()["plugin_errors"]), timeout=20)
    (error,) = s.snapshot()["plugin_errors"]
    assert error.startswith(f"{plugin}:11: NameError:"), error
    assert once(port, "e") == "v2 e"
    # fixed: the error goes away, the new code runs
    save(plugin, CODE.replace("{tag}", "v5"))
    assert wait_for(lambda: once(port, "f") == "v5 f", timeout=20)
    assert s.snapshot()["plugin_errors"] == []
    assert s.service("shout")["state"] == "listening"
    old.close()


def test_polling_fallback(portsuite: Any, plugin: Path) -> None:
    s = start(portsuite, plugin, reload_plugins=False)
    port = s.port("shout")
    save(plugin, CODE.replace("{tag}", "v2"))
    time.sleep(0.3)
    assert once(port, "a") == "v1 a"  # reload_plugins off: nothing watches
    watcher = reloader.Watcher(s.suite, use_inotify=False)
    call_in_reactor(watcher.start)
    try:
        assert watcher.how.startswith("polling")
        save(plugin, CODE.replace("{tag}", "v3") + "\n# bigger\n")
        assert wait_for(lambda: once(port, "b") == "v3 b", timeout=20)
    finally:
        call_in_reactor(watcher.stop)


def test_dev_option(tmp_path: Path, plugin: Path) -> None:
    from portsuite import tap

    config = tmp_path / "suite.toml"
    config.write_text(
        f'[suite]\nplugin_dirs = ["{plugin.parent}"]\n'
        f'[services.shout]\ntype = "{plugin.stem}:Shout"\nport = 0\n'
    )
    options = tap.Options()
    options.parseOptions(["--dev", "-c", str(config)])
    suite = tap.makeService(options)
    assert suite.dev is True
    assert suite.config.reload_plugins is False


def test_reload_plugins_key_is_checked(tmp_path: Path) -> None:
    from portsuite import loader
    from portsuite.api import ConfigError

    with pytest.raises(ConfigError) as e:
        loader.from_dict(
            {"suite": {"reload_plugins": "yes"}, "services": {"e": {"type": "echo", "port": 0}}},
            base_dir=tmp_path,
            label="suite.toml",
        )
    assert e.value.errors == [
        "suite.toml: [suite] reload_plugins: 'yes' is not true or false; write reload_plugins = true"
    ]
