"""
The dashboard of every http service: its page and assets, the JSON API and the
Prometheus / OpenMetrics text, in memory and over a running suite.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from httphelp import Web
from prometheus_client.parser import text_string_to_metric_families

from portsuite.testing import wait_for
from portsuite_services.http.dashboard.metrics import SuiteCollector


def test_page_and_assets(web: Web) -> None:
    page = web.get("/_portsuite/")
    assert page.status == 200
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert b'id="cards"' in page.body and b'src="/_portsuite/app.js"' in page.body
    assert b'src="/_portsuite/seq.js"' in page.body and b'href="learn/"' in page.body
    for icon, ctype in (("favicon.svg", "image/svg+xml"), ("favicon.ico", "image/x-icon")):
        assert web.get("/_portsuite/" + icon).header("content-type") == ctype
    assert web.get("/_portsuite/learn/").status == 200
    assert web.get("/_portsuite/learn/tp-mail").status == 200
    assert web.get("/_portsuite/learn/service/web").status == 200
    assert web.get("/_portsuite/learn/service/nope").status == 404
    assert web.get("/_portsuite/learn/../../etc/passwd").status in (400, 404)
    js = web.get("/_portsuite/app.js")
    assert js.header("content-type") == "text/javascript; charset=utf-8"
    assert b"api/services" in js.body
    assert web.get("/_portsuite/style.css").header("content-type") == "text/css; charset=utf-8"
    assert web.get("/_portsuite/nope").status == 404


def test_dashboard_without_slash_redirects(web: Web) -> None:
    r = web.get("/_portsuite")
    assert r.status == 301 and r.header("location") == "/_portsuite/"


def test_dashboard_can_be_turned_off(docroot: Path) -> None:
    web = Web(docroot, dashboard=False)
    assert web.get("/_portsuite/").status == 404
    assert web.get("/_portsuite/api/services").status == 404
    assert b"/_portsuite/" not in web.get("/nope").body  # no dead link on error pages


def test_api_of_a_service_built_alone(web: Web) -> None:
    web.get("/a.txt")
    r = web.get("/_portsuite/api/services")
    assert r.header("content-type") == "application/json"
    data = json.loads(r.body)
    (svc,) = data["services"]
    assert svc["name"] == "web" and svc["type"] == "http"
    for key in (
        "transports",
        "host",
        "port",
        "port_class",
        "connections",
        "clients",
        "bytes_in",
        "bytes_out",
    ):
        assert key in svc, key
    assert set(svc["connections"]) >= {"open", "total", "refused"}
    assert svc["transcripts"] == []


def test_metrics_text_is_prometheus_and_counts(web: Web) -> None:
    web.stats.total = 7
    web.stats.open = 2
    web.stats.closed_bytes_out = 1234
    r = web.get("/_portsuite/metrics")
    assert r.status == 200
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    sample = {
        (s.name, s.labels.get("service")): s.value for f in families.values() for s in f.samples
    }
    assert sample[("portsuite_connections_total", "web")] == 7
    assert sample[("portsuite_connections_open", "web")] == 2
    assert sample[("portsuite_sent_bytes_total", "web")] == 1234


def test_metrics_speak_openmetrics_when_asked(web: Web) -> None:
    r = web.get("/_portsuite/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert r.header("content-type").startswith("application/openmetrics-text")
    assert r.body.rstrip().endswith(b"# EOF")


def test_each_suite_has_its_own_registry() -> None:
    from prometheus_client import REGISTRY

    from portsuite_services.http.dashboard.metrics import registry_for

    class FakeSuite:
        pass

    snap: Any = lambda: {"services": [], "started_at": None}  # noqa: E731
    a, b = FakeSuite(), FakeSuite()
    ra = registry_for(a, snap)
    assert registry_for(a, snap) is ra
    assert registry_for(b, snap) is not ra
    assert ra is not REGISTRY
    assert not any(isinstance(c, SuiteCollector) for c in REGISTRY._collector_to_names)


# -- over a running suite -------------------------------------------------------------


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"] == "application/json"
        return json.loads(r.read())  # type: ignore[no-any-return]


def _service(data: dict[str, Any], name: str) -> dict[str, Any]:
    (svc,) = [s for s in data["services"] if s["name"] == name]
    return svc


def test_api_lists_every_service_and_who_is_connected(portsuite: Any, docroot: Path) -> None:
    s = portsuite(
        {
            "services": {
                "web": {"type": "http", "port": 0, "root": str(docroot)},
                "echo": {"type": "echo", "port": 0, "udp": True},
            }
        }
    )
    url = f"http://127.0.0.1:{s.port('web')}/_portsuite/api/services"
    data = _json(url)
    assert [x["name"] for x in data["services"]] == ["web", "echo"]
    echo = _service(data, "echo")
    assert echo["type"] == "echo"
    assert echo["transports"] == ["tcp", "udp"]
    assert echo["host"] == "127.0.0.1" and echo["port"] == s.port("echo")
    assert echo["port_class"] in ("registered", "dynamic")
    assert echo["connections"]["open"] == 0 and echo["clients"] == []
    with socket.create_connection(("127.0.0.1", s.port("echo")), timeout=5) as c:
        c.sendall(b"hello\n")
        assert c.recv(100) == b"hello\n"
        me = f"127.0.0.1:{c.getsockname()[1]}"
        echo = wait_for(
            lambda: (e := _service(_json(url), "echo"))["connections"]["open"] == 1 and e
        )
        assert echo, "the echo client never showed up"
        (client,) = echo["clients"]
        assert client["peer"] == me
        assert client["bytes_in"] == 6 and client["bytes_out"] == 6
        assert echo["connections"]["total"] == 1
    gone = wait_for(lambda: _service(_json(url), "echo")["connections"]["open"] == 0)
    assert gone
    # the dashboard's own requests are connections of the web service
    assert _service(_json(url), "web")["connections"]["total"] >= 3


def test_metrics_over_a_running_suite(portsuite: Any, docroot: Path) -> None:
    s = portsuite(
        {
            "services": {
                "web": {"type": "http", "port": 0, "root": str(docroot)},
                "echo": {"type": "echo", "port": 0},
            }
        }
    )
    with socket.create_connection(("127.0.0.1", s.port("echo")), timeout=5) as c:
        c.sendall(b"x")
        c.recv(1)
        with urllib.request.urlopen(
            f"http://127.0.0.1:{s.port('web')}/_portsuite/metrics", timeout=10
        ) as r:
            text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    opened = {s.labels["service"]: s.value for s in families["portsuite_connections_open"].samples}
    assert opened["echo"] == 1
    info = families.get("portsuite_listener") or families["portsuite_listener_info"]
    (echo,) = [x.labels for x in info.samples if x.labels["service"] == "echo"]
    assert echo["transport"] == "tcp" and echo["host"] == "127.0.0.1"
    assert echo["port"] == str(s.port("echo"))
    assert echo["port_class"] in ("registered", "dynamic") and echo["tls"] == "false"
    assert "portsuite_start_time_seconds" in families


@pytest.mark.parametrize("path", ["/_portsuite/", "/_portsuite/app.js", "/_portsuite/style.css"])
def test_assets_are_shipped_with_the_package(path: str, web: Web) -> None:
    assert web.get(path).status == 200


def test_a_service_publishes_a_page_on_the_dashboard(portsuite: Any, tmp_path: Path) -> None:
    """ServiceContext.publish: another service's JSON appears under /_portsuite/api/."""
    (tmp_path / "pub.py").write_text(
        "from twisted.internet.protocol import ServerFactory, Protocol\n"
        "from twisted.web.static import Data\n"
        "from portsuite.api import ServiceType\n"
        "def build(ctx):\n"
        "    ctx.publish('api/demo', Data(b'{\"port\": %d}' % 1, 'application/json'))\n"
        "    return ServerFactory.forProtocol(Protocol)\n"
        "DEMO = ServiceType(name='demo', description='publishes', default_port=None,\n"
        "                   tcp_factory=build)\n"
    )
    s = portsuite(
        {
            "suite": {"plugin_dirs": [str(tmp_path)]},
            "services": {
                "web": {"type": "http", "port": 0, "root": str(tmp_path)},
                "demo": {"type": "demo", "port": 0},
            },
        }
    )
    base = f"http://127.0.0.1:{s.port('web')}/_portsuite"
    with urllib.request.urlopen(f"{base}/api/demo") as r:
        assert json.loads(r.read()) == {"port": 1}
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{base}/api/nothing")
    assert e.value.code == 404


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=x",
        "application/openmetrics-text; version=9.9.9",
        "application/openmetrics-text;;;",
        "*/*",
        "\x01garbage",
    ],
)
def test_metrics_answer_any_accept_without_a_500(web: Web, accept: str) -> None:
    r = web.get("/_portsuite/metrics", accept=accept)
    assert r.status in (200, 406)
    assert b"portsuite_connections" in r.body


@pytest.mark.parametrize("path", ["/_portsuite/nope", "/_portsuite/api", "/_portsuite/api/nope"])
def test_dashboard_404s_are_styled_like_the_rest(web: Web, path: str) -> None:
    r = web.get(path)
    assert r.status == 404
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert b"<h1>404 Not Found</h1>" in r.body and b"/_portsuite/" in r.body


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "FOO"])
def test_dashboard_refuses_other_methods_with_405(web: Web, method: str) -> None:
    r = web.request(method, "/_portsuite/api/services")
    assert r.status == 405  # never twisted.web's 501 "Huh?"
    assert r.header("allow") == "GET, HEAD"
    assert b"<h1>405 Method Not Allowed</h1>" in r.body


@pytest.mark.parametrize("path", ["/_portsuite/", "/_portsuite/app.js", "/_portsuite/style.css"])
def test_dashboard_assets_carry_validators(web: Web, path: str) -> None:
    r = web.get(path)
    assert r.status == 200 and r.header("x-content-type-options") == "nosniff"
    etag, last_modified = r.header("etag"), r.header("last-modified")
    assert etag and last_modified
    again = web.get(path, if_none_match=etag)
    assert again.status == 304 and again.body == b""
    assert web.get(path, if_modified_since=last_modified).status == 304
    assert web.get(path, if_none_match='"other"').status == 200
