"""How a protocol joins the suite: module:Class, drop-in named types, entry points."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.protocol import DatagramProtocol, ServerFactory
from twisted.internet.testing import StringTransport

from portsuite.cli import main as cli
from portsuite.registry import Registry

PLUGINS = Path(__file__).parents[2] / "plugins"


def test_builtins_come_through_the_entry_point_group() -> None:
    reg = Registry.discover()
    assert reg.types["echo"].source == "built-in"
    assert reg.types["echo"].transports == {"tcp", "udp"}


def test_module_class_binds_a_protocol_from_a_plugin_dir() -> None:
    reg = Registry.discover((PLUGINS,))
    stype = reg.resolve("upper:Upper")
    factory = stype.tcp_factory(None)  # type: ignore[misc,arg-type]
    assert isinstance(factory, ServerFactory)
    proto = factory.buildProtocol(None)
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(b"hello there\r\n")
    assert t.value() == b"HELLO THERE\n"


def test_module_class_accepts_factories_and_datagram_protocols(tmp_path: Path) -> None:
    (tmp_path / "mixed.py").write_text(
        "from twisted.internet.protocol import DatagramProtocol, ServerFactory, Protocol\n"
        "class F(ServerFactory):\n    protocol = Protocol\n"
        "class D(DatagramProtocol):\n    pass\n"
        "class NotOne:\n    pass\n"
    )
    reg = Registry.discover((tmp_path,))
    assert isinstance(reg.resolve("mixed:F").tcp_factory(None), ServerFactory)  # type: ignore[misc,arg-type]
    d = reg.resolve("mixed:D")
    assert d.transports == {"udp"} and isinstance(d.udp_protocol(None), DatagramProtocol)  # type: ignore[misc,arg-type]
    with pytest.raises(LookupError, match="not a Protocol, ServerFactory or DatagramProtocol"):
        reg.resolve("mixed:NotOne")
    with pytest.raises(LookupError, match="has no 'Missing'"):
        reg.resolve("mixed:Missing")
    with pytest.raises(LookupError, match="cannot import module 'nosuchmod'.*plugin dir"):
        reg.resolve("nosuchmod:X")


def test_drop_in_named_type_with_options() -> None:
    reg = Registry.discover((PLUGINS,))
    chat = reg.types["chat"]
    assert chat.source.startswith("plugin dir")
    assert {o.name for o in chat.options} == {"greeting", "max_line"}


def test_broken_plugin_is_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('oops')\n")
    reg = Registry.discover((tmp_path,))
    assert "echo" in reg.types
    assert any("broken.py failed to import" in p for p in reg.problems)


def test_installed_package_entry_point_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    # plugins/portsuite-rot13 is pip-installed by `make venv` (and so by .ci/run)
    assert cli(["plugins"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("rot13"))
    assert "entry point (portsuite-rot13)" in row and "7013" in row


def _stdlib_named_plugins(folder: Path) -> Path:
    folder.mkdir()
    (folder / "http.py").write_text(
        '"""A plugin module named like the standard library\'s http package."""\n'
        "from http import HTTPStatus  # the standard library's, not this file\n"
        "from twisted.internet.protocol import Protocol\n"
        "from portsuite.api import ServiceType\n"
        "from twisted.internet.protocol import ServerFactory\n"
        "class Web(Protocol):\n"
        '    """Answers every chunk with the status line of 200."""\n'
        "    def dataReceived(self, data):\n"
        "        self.transport.write(f'{HTTPStatus.OK.value} {HTTPStatus.OK.phrase}\\n'.encode())\n"
        "WEBISH = ServiceType(name='webish', description='from http.py', default_port=None,\n"
        "    tcp_factory=lambda ctx: ServerFactory.forProtocol(Web))\n"
    )
    (folder / "time.py").write_text(
        "import time  # the standard library's: this file is not on sys.path\n"
        "from twisted.internet.protocol import DatagramProtocol\n"
        "STARTED = time.time()\n"
        "class Clock(DatagramProtocol):\n"
        '    """Tells the time."""\n'
        "    def datagramReceived(self, data, addr):\n"
        "        self.transport.write(b'%d' % time.time(), addr)\n"
    )
    (folder / "calendar.py").write_text("from . import time as sibling  # neighbours: relative\n")
    return folder


def test_plugin_files_named_like_the_standard_library(tmp_path: Path) -> None:
    """http.py and time.py in a plugin dir: neither shadows the standard library nor is shadowed."""
    import http
    import sys
    import time

    folder = _stdlib_named_plugins(tmp_path / "plugins")
    reg = Registry.discover((folder,))
    assert not reg.problems
    assert reg.types["webish"].source == f"plugin dir ({folder / 'http.py'})"
    proto = reg.resolve("http:Web").tcp_factory(None).buildProtocol(None)  # type: ignore[misc,arg-type]
    t = StringTransport()
    proto.makeConnection(t)
    proto.dataReceived(b"GET /\r\n")
    assert t.value() == b"200 OK\n"
    clock = reg.resolve("time:Clock")
    assert clock.transports == {"udp"} and clock.description == "Tells the time."
    # the standard library is untouched, and nothing was put on sys.path
    assert sys.modules["http"] is http and sys.modules["time"] is time
    assert http.HTTPStatus.NOT_FOUND == 404 and time.time() > 0
    assert str(folder) not in sys.path
    # module:Class still finds the import path when no plugin dir has the module
    assert reg.resolve("twisted.protocols.wire:Echo").transports == {"tcp"}


def test_plugin_files_never_shadow_a_module_imported_later(tmp_path: Path) -> None:
    """In a fresh interpreter: the plugins load first, then the standard modules are the real ones."""
    import subprocess
    import sys

    folder = _stdlib_named_plugins(tmp_path / "plugins")
    script = (
        "import sys\n"
        "from portsuite.registry import Registry\n"
        "from pathlib import Path\n"
        f"reg = Registry.discover((Path({str(folder)!r}),))\n"
        "assert not reg.problems, reg.problems\n"
        "import calendar, http.client, time\n"
        "assert calendar.monthrange(2024, 2) == (3, 29), calendar.__file__\n"
        "assert http.client.OK == 200 and time.time() > 0\n"
        "plugin = sys.modules[reg.packages[0].name + '.calendar']\n"
        "assert plugin.sibling.Clock.__doc__ == 'Tells the time.'\n"
        "print(reg.resolve('time:Clock').description)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Tells the time."


def test_two_plugin_dirs_may_hold_modules_of_the_same_name(tmp_path: Path) -> None:
    for name, text in (("a", "A"), ("b", "B")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "same.py").write_text(
            f"from twisted.internet.protocol import Protocol\nclass P(Protocol):\n    '''{text}'''\n"
        )
    first = Registry.discover((tmp_path / "a", tmp_path / "b"))
    assert first.resolve("same:P").description == "A"  # the first dir wins, like a path
    assert Registry.discover((tmp_path / "b",)).resolve("same:P").description == "B"
