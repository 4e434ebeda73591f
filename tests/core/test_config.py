"""The config contract: keys from DESIGN.md, every error at once, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from portsuite import loader as config
from portsuite.api import ConfigError


def errors_of(data: dict, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.from_dict(data, base_dir=tmp_path, label="lab.toml")
    return info.value.errors


def test_defaults_loopback_and_type_default_port(tmp_path: Path) -> None:
    cfg = config.from_dict({"services": {"e": {"type": "echo"}}}, base_dir=tmp_path)
    svc = cfg.service("e")
    assert (svc.host, svc.port, svc.udp) == ("127.0.0.1", 7, False)


def test_suite_host_and_per_service_override(tmp_path: Path) -> None:
    cfg = config.from_dict(
        {
            "suite": {"host": "0.0.0.0"},
            "services": {
                "a": {"type": "echo", "port": 7007},
                "b": {"type": "echo", "port": 7008, "host": "::1"},
            },
        },
        base_dir=tmp_path,
    )
    assert cfg.service("a").host == "0.0.0.0"
    assert cfg.service("b").host == "::1"


def test_every_error_at_once_one_line_each(tmp_path: Path) -> None:
    errs = errors_of(
        {
            "echo": {"port": 7},
            "services": {
                "a": {"type": "echo", "port": 70000, "prot": 1},
                "b": {"type": "nope"},
                "c": {"type": "echo", "port": 7007},
                "d": {"type": "echo", "port": 7007},
                "e": {"type": "echo", "port": "7"},
                "f": {"type": "echo", "port": 7101, "udp": "yes"},
                "g": {"type": "echo", "port": 7102, "max_connections": 0},
            },
        },
        tmp_path,
    )
    assert len(errs) == 8, errs
    assert all(e.startswith("lab.toml: [") and "\n" not in e for e in errs)
    text = "\n".join(errs)
    assert "[echo]: unknown table; services go in [services.echo]" in text
    assert "[services.a] prot: unknown key for type 'echo'; did you mean 'port'?" in text
    assert "[services.a] port: 70000 is out of range; use 0-65535" in text
    assert "[services.b] type: unknown type 'nope'; known types:" in text
    assert "[services.d] port: tcp 127.0.0.1:7007 is already taken by [services.c]" in text
    assert "[services.e] port: '7' is not a port number" in text
    assert "[services.f] udp: 'yes' is not true or false" in text
    assert "[services.g] max_connections: 0 must be a positive integer" in text


def test_wildcard_host_clashes_with_loopback_on_same_port(tmp_path: Path) -> None:
    errs = errors_of(
        {
            "services": {
                "a": {"type": "echo", "port": 7007, "host": "0.0.0.0"},
                "b": {"type": "echo", "port": 7007},
            }
        },
        tmp_path,
    )
    assert len(errs) == 1 and "already taken by [services.a]" in errs[0]


def test_same_port_on_tcp_and_udp_of_different_services_is_no_clash(tmp_path: Path) -> None:
    plugin = tmp_path / "plug"
    plugin.mkdir()
    (plugin / "dgram.py").write_text(
        "from twisted.internet.protocol import DatagramProtocol\n"
        "class Quiet(DatagramProtocol):\n    pass\n"
    )
    cfg = config.from_dict(
        {
            "suite": {"plugin_dirs": ["plug"]},
            "services": {
                "t": {"type": "echo", "port": 7007},
                "u": {"type": "dgram:Quiet", "port": 7007},
            },
        },
        base_dir=tmp_path,
    )
    assert cfg.service("u").udp and not cfg.service("u").tcp


def test_toml_syntax_error_names_file_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[services.e\ntype = 'echo'\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    (line,) = info.value.errors
    assert line.startswith(f"{path}: TOML syntax error") and "fix the syntax" in line


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(tmp_path / "nope.toml")
    assert "cannot read the config" in info.value.errors[0]


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "roomy.py").write_text(
        "from pathlib import Path\n"
        "from portsuite.api import Option, ServiceType\n"
        "from portsuite_services.echo import _factory\n"
        "ROOMY = ServiceType(name='roomy', description='d', default_port=None,\n"
        "    options=(Option('data', Path, required=True, help='a file'),), tcp_factory=_factory)\n"
    )
    path = tmp_path / "conf" / "c.toml"
    path.write_text(
        '[suite]\nplugin_dirs = ["../plugins"]\n'
        '[services.r]\ntype = "roomy"\nport = 0\ndata = "../data/x.aof"\n'
        '[services.u]\ntype = "echo"\nlisten = ["unix:sock/e.sock", "tcp:0"]\n'
    )
    cfg = config.load(path)
    assert cfg.plugin_dirs == ((tmp_path / "plugins").resolve(),)
    assert cfg.service("r").options["data"] == (tmp_path / "data" / "x.aof").resolve()
    assert cfg.service("u").listen[0] == f"unix:{(tmp_path / 'conf' / 'sock' / 'e.sock').resolve()}"
    assert cfg.service("u").port is None


def test_missing_required_option_and_bad_option_value(tmp_path: Path) -> None:
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "needy.py").write_text(
        "from portsuite.api import Option, ServiceType\n"
        "from portsuite_services.echo import _factory\n"
        "NEEDY = ServiceType(name='needy', description='d', default_port=7300,\n"
        "    options=(Option('root', str, required=True, help='the folder to serve'),\n"
        "             Option('level', int, default=1, check=lambda v: None if v < 5 else 'must be < 5; lower it')),\n"
        "    tcp_factory=_factory)\n"
    )
    errs = errors_of(
        {
            "suite": {"plugin_dirs": ["p"]},
            "services": {
                "n": {"type": "needy"},
                "m": {"type": "needy", "port": 7301, "root": "x", "level": 9},
            },
        },
        tmp_path,
    )
    assert errs == [
        "lab.toml: [services.n] root: missing; this type needs it (the folder to serve)",
        "lab.toml: [services.m] level: must be < 5; lower it",
    ]


def test_udp_on_a_tcp_only_type_is_refused(tmp_path: Path) -> None:
    errs = errors_of(
        {
            "suite": {"plugin_dirs": []},
            "services": {"r": {"type": "twisted.protocols.wire:Discard", "port": 0, "udp": True}},
        },
        tmp_path,
    )
    assert errs == [
        "lab.toml: [services.r] udp: type 'twisted.protocols.wire:Discard' speaks only tcp; remove udp"
    ]


def test_listen_rejects_unknown_endpoint_kinds(tmp_path: Path) -> None:
    errs = errors_of({"services": {"e": {"type": "echo", "listen": ["http:80"]}}}, tmp_path)
    assert "unknown endpoint kind 'http'" in errs[0]


def test_no_services(tmp_path: Path) -> None:
    assert "no service configured" in errors_of({}, tmp_path)[0]


def test_shipped_config_is_valid_and_unprivileged() -> None:
    cfg = config.load(Path(__file__).parents[2] / "config" / "config.toml")
    assert cfg.services
    for svc in cfg.services:
        assert svc.port is None or svc.port >= 1024, svc
        assert svc.host == "127.0.0.1"


def test_tls_table_and_an_ssl_listen_endpoint_are_refused_together(tmp_path: Path) -> None:
    errs = errors_of(
        {
            "services": {
                "e": {"type": "echo", "listen": ["ssl:7443"], "tls": {"cert": "c", "key": "k"}}
            }
        },
        tmp_path,
    )
    assert errs == [
        "lab.toml: [services.e] tls: the listen list has an ssl: endpoint too, which would wrap TLS "
        "twice; use tcp: endpoints with tls, or drop tls"
    ]


def test_not_utf8_is_one_line_naming_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[services.e]\ntype = "echo"\n# café\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.errors == [
        f"{path}: line 3: not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


def test_every_problem_of_one_service_at_once_a_missing_root_too(tmp_path: Path) -> None:
    """A missing http root shows with the service's other mistakes, not after they are fixed."""
    errs = errors_of(
        {"services": {"web": {"type": "http", "port": 99999, "prot": 8080, "listing": "yes"}}},
        tmp_path,
    )
    assert len(errs) == 4, errs
    assert errs[0] == (
        "lab.toml: [services.web] prot: unknown key for type 'http'; did you mean 'root'?"
    )
    assert any("port: 99999 is out of range" in e for e in errs)
    assert any("listing: 'yes' is not true or false" in e for e in errs)
    assert errs[-1].startswith("lab.toml: [services.web] root: missing; set root = ")


def test_listen_descriptions_are_checked_when_read(tmp_path: Path) -> None:
    errs = errors_of(
        {
            "services": {
                "e": {"type": "echo", "listen": ["udp:seven", "tcp"]},
                "r": {"type": "twisted.protocols.wire:Discard", "listen": ["udp:0"]},
            }
        },
        tmp_path,
    )
    assert errs == [
        "lab.toml: [services.e] listen: 'udp:seven': 'seven' is not a port number 0-65535; "
        "write e.g. 'udp:7007:interface=127.0.0.1'",
        "lab.toml: [services.e] listen: 'tcp' has no port; write e.g. 'tcp:7007'",
        "lab.toml: [services.r] listen: type 'twisted.protocols.wire:Discard' speaks only tcp; "
        "remove the udp: entries",
    ]


def test_listen_paths_resolve_and_escapes_survive(tmp_path: Path) -> None:
    cfg = config.from_dict(
        {
            "services": {
                "e": {"type": "echo", "listen": ["unix:e.sock", "tcp6:0:interface=\\:\\:1"]}
            }
        },
        base_dir=tmp_path,
    )
    assert cfg.service("e").listen == (
        f"unix:{tmp_path.resolve() / 'e.sock'}",
        "tcp6:0:interface=\\:\\:1",
    )


def test_a_table_option_is_passed_as_is_and_a_string_is_refused(tmp_path: Path) -> None:
    plugins = tmp_path / "p"
    plugins.mkdir()
    (plugins / "tabled.py").write_text(
        "from portsuite.api import Option, ServiceType\n"
        "from portsuite_services.echo import _factory\n"
        "TABLED = ServiceType(name='tabled', description='d', default_port=7302,\n"
        "    options=(Option('extra', dict, None, help='a table'),), tcp_factory=_factory)\n"
    )
    base = {"suite": {"plugin_dirs": ["p"]}}
    cfg = config.from_dict(
        {**base, "services": {"t": {"type": "tabled", "extra": {"a": "b"}}}}, base_dir=tmp_path
    )
    assert cfg.services[0].options["extra"] == {"a": "b"}
    errs = errors_of({**base, "services": {"t": {"type": "tabled", "extra": "b"}}}, tmp_path)
    assert errs == ["lab.toml: [services.t] extra: 'b' is not a table (a table)"]
