"""Faults on demand: real clients (curl's timing, redis-py's timeouts, nc) see them."""

from __future__ import annotations

import subprocess as sp
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport

from portsuite import faults, loader
from portsuite.api import ConfigError
from portsuite.testing import call_in_reactor, need


def timed(argv: list[str], stdin: bytes = b"") -> tuple[float, sp.CompletedProcess[bytes]]:
    start = time.monotonic()
    r = sp.run(argv, input=stdin, capture_output=True, timeout=60)
    return time.monotonic() - start, r


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "big.bin").write_bytes(bytes(range(256)) * 240)  # 61440 bytes
    (root / "index.html").write_text("<h1>hello</h1>\n")
    return root


def set_faults(s: Any, name: str, **table: Any) -> None:
    unit = s.suite.getServiceNamed(name)
    call_in_reactor(unit.set_faults, faults.parse(table) if table else None)


def curl(port: int, path: str = "/index.html") -> tuple[float, sp.CompletedProcess[bytes]]:
    need("curl")
    return timed(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "--max-time",
            "30",
            f"http://127.0.0.1:{port}{path}",
        ]
    )


def test_latency_bandwidth_reset_limit_with_curl(portsuite, www: Path) -> None:
    s = portsuite(
        {
            "services": {
                "web": {"type": "http", "port": 0, "root": str(www), "faults": {"latency": "300ms"}}
            }
        }
    )
    port = s.port("web")
    took, r = curl(port)
    assert r.returncode == 0 and r.stdout == b"15"
    assert took >= 0.55  # 300ms on the request, 300ms on the answer
    assert s.service("web")["faults"] == {"latency": "300ms"}
    # bandwidth: 60 KiB at 100 KiB/s takes about 0.6 s
    set_faults(s, "web", bandwidth="100KiB/s")
    took, r = curl(port, "/big.bin")
    assert r.returncode == 0 and r.stdout == b"61440"
    assert took >= 0.4
    # reset_peer after 2 KiB: curl sees the connection reset, not a short file
    set_faults(s, "web", reset_after="2KiB")
    took, r = curl(port, "/big.bin")
    assert r.returncode == 56, r
    assert b"reset" in r.stderr.lower()
    # limit_data: a clean close after 10 KiB: curl says the transfer was cut
    set_faults(s, "web", limit_data="10KiB")
    took, r = curl(port, "/big.bin")
    assert r.returncode == 18, r
    # cleared: the whole file, at once
    set_faults(s, "web")
    took, r = curl(port, "/big.bin")
    assert r.returncode == 0 and r.stdout == b"61440"
    assert s.service("web")["faults"] == {}


def test_timeout_with_redis_py(portsuite) -> None:
    s = portsuite({"services": {"kv": {"type": "kv", "port": 0, "faults": {"timeout": 0}}}})
    once = Retry(NoBackoff(), 0)  # redis-py retries by default: one try shows the fault
    client = redis.Redis(port=s.port("kv"), socket_timeout=0.5, retry=once)
    with pytest.raises(redis.exceptions.TimeoutError):
        client.ping()
    set_faults(s, "kv", latency="100ms")
    start = time.monotonic()
    assert client.ping() is True  # a new connection, slower but answered
    assert time.monotonic() - start >= 0.15
    set_faults(s, "kv", timeout="1s")
    with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        redis.Redis(port=s.port("kv"), socket_timeout=20, retry=once).ping()  # closed after 1 s


def test_slow_close_close_after_timeout_with_nc(portsuite) -> None:
    need("nc")
    s = portsuite({"services": {"echo": {"type": "echo", "port": 0}}})
    port = str(s.port("echo"))
    set_faults(s, "echo", slow_close="1s")
    took, r = timed(["nc", "-N", "127.0.0.1", port], b"hello\n")
    assert r.stdout == b"hello\n"  # the answer at once, the close a second later
    assert took >= 0.9
    set_faults(s, "echo", close_after="1s")
    took, r = timed(["nc", "-d", "127.0.0.1", port])
    assert r.returncode == 0 and took >= 0.9
    set_faults(s, "echo", timeout="1s")
    took, r = timed(["nc", "-N", "127.0.0.1", port], b"hello\n")
    assert r.stdout == b"" and took >= 0.9  # nothing through, then closed


def test_plugins_get_faults_too(portsuite) -> None:
    need("nc")
    plugins = str(Path(__file__).parents[2] / "plugins")
    s = portsuite(
        {
            "suite": {"plugin_dirs": [plugins]},
            "services": {
                "shout": {
                    "type": "upper:Upper",
                    "port": 0,
                    "faults": {"latency": "250ms", "jitter": "50ms"},
                }
            },
        }
    )
    took, r = timed(["nc", "-N", "127.0.0.1", str(s.port("shout"))], b"a\nb\nc\n")
    assert r.stdout == b"A\nB\nC\n"  # jitter never reorders
    assert took >= 0.35


def test_udp_drop(portsuite) -> None:
    need("nc")
    s = portsuite(
        {"services": {"echo": {"type": "echo", "port": 0, "udp": True, "faults": {"drop": 1.0}}}}
    )
    port = str(s.port("echo", "udp"))
    r = sp.run(
        ["nc", "-u", "-w", "1", "127.0.0.1", port], input=b"lost\n", capture_output=True, timeout=30
    )
    assert r.stdout == b""
    assert s.service("echo")["datagrams"]["dropped"] >= 1
    set_faults(s, "echo", drop=0)
    r = sp.run(
        ["nc", "-u", "-w", "1", "127.0.0.1", port], input=b"back\n", capture_output=True, timeout=30
    )
    assert r.stdout == b"back\n"


def test_config_faults_errors_one_line_each(tmp_path: Path) -> None:
    config = {
        "services": {
            "web": {"type": "echo", "port": 0, "faults": {"lag": "1s", "latency": "-3ms"}},
            "u": {"type": "echo", "port": 0, "faults": {"drop": 2}},
            "x": {"type": "echo", "port": 0, "faults": "slow"},
        }
    }
    with pytest.raises(ConfigError) as e:
        loader.from_dict(config, base_dir=tmp_path, label="suite.toml")
    lines = e.value.errors
    assert "suite.toml: [services.web] faults.lag: unknown fault; known: latency," in lines[0]
    assert any("[services.web] faults.latency: '-3ms' is not a duration" in x for x in lines)
    assert any("[services.u] faults.drop: 2 is out of range; use a share" in x for x in lines)
    assert any("[services.x] faults: must be a table" in x for x in lines)
    assert len(lines) == 4


@pytest.mark.parametrize(
    ("table", "expect"),
    [
        ({"latency": "200ms"}, {"latency": 0.2}),
        ({"latency": 150}, {"latency": 0.15}),
        ({"latency": "1.5s", "jitter": "10ms"}, {"latency": 1.5, "jitter": 0.01}),
        ({"bandwidth": "10KiB/s"}, {"bandwidth": 10240}),
        ({"bandwidth": "1MB/s"}, {"bandwidth": 1000000}),
        ({"reset_after": "4KiB", "limit_data": 100}, {"reset_after": 4096, "limit_data": 100}),
        ({"timeout": 0}, {"timeout": 0.0}),
        ({"drop": 0.1}, {"drop": 0.1}),
    ],
)
def test_parse(table: dict[str, Any], expect: dict[str, Any]) -> None:
    f = faults.parse(table)
    for key, value in expect.items():
        assert getattr(f, key) == value


@pytest.mark.parametrize(
    "table",
    [
        {"latency": "fast"},
        {"latency": True},
        {"latency": "2h"},
        {"bandwidth": "0"},
        {"bandwidth": "lots"},
        {"reset_after": -1},
        {"drop": "half"},
        {"drop": 1.5},
        {"timeout": "3601s"},
        {"spin": 1},
    ],
)
def test_parse_refuses(table: dict[str, Any]) -> None:
    with pytest.raises(faults.FaultError) as e:
        faults.parse(table)
    assert "\n" not in str(e.value) and str(e.value).startswith(next(iter(table)))


class _Sink(Protocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.got.append(data)


def test_held_bytes_are_bounded() -> None:
    """A flood under latency stops the reading (TCP pushes back) instead of piling up."""
    from twisted.internet.task import Clock

    from portsuite.api import ServiceStats
    from portsuite.wrappers import ServiceFactory

    clock = Clock()
    inner = _Sink()

    class F:
        noisy = False

        def buildProtocol(self, addr: Any) -> Any:
            return inner

        def doStart(self) -> None: ...

        def doStop(self) -> None: ...

    factory = ServiceFactory(F(), ServiceStats(name="t", type="t"), clock)
    factory.faults = faults.parse({"latency": "10s"})
    from twisted.internet.address import IPv4Address

    p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5))
    t = StringTransport()
    p.makeConnection(t)
    for _ in range(100):
        p.dataReceived(b"x" * 8192)
    assert t.producerState == "paused"
    assert inner.got == []
    clock.advance(11)
    assert sum(map(len, inner.got)) == 100 * 8192
    assert t.producerState == "producing"
    # and a close waits for the bytes still held on the way out
    p.write(b"bye")
    p.loseConnection()
    assert not t.disconnecting
    clock.advance(11)
    assert t.value() == b"bye" and t.disconnecting
