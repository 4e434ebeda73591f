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
