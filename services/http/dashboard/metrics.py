"""
The suite's counters as Prometheus / OpenMetrics text, through prometheus_client.

One L{SuiteCollector} reads the suite's snapshot at each scrape (nothing is counted
twice: the numbers are the ones the wrappers keep in L{portsuite.stats}); each suite
gets its own C{CollectorRegistry}, never the process-wide default one, so two suites
in one process (tests) do not mix.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

_registries: weakref.WeakKeyDictionary[Any, CollectorRegistry] = weakref.WeakKeyDictionary()


class SuiteCollector(Collector):
    """Every service's counters, labelled by service name and type."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot()
        labels = ["service", "type"]
        open_ = GaugeMetricFamily(
            "portsuite_connections_open", "Connections open right now", labels=labels
        )
        total = CounterMetricFamily(
            "portsuite_connections", "Connections accepted since start", labels=labels
        )
        refused = CounterMetricFamily(
            "portsuite_connections_refused",
            "Connections refused by a limit (max_connections, max_per_host)",
            labels=labels,
        )
        received = CounterMetricFamily(
            "portsuite_received_bytes", "Bytes received from clients", labels=labels
        )
        sent = CounterMetricFamily("portsuite_sent_bytes", "Bytes sent to clients", labels=labels)
        errors = CounterMetricFamily(
            "portsuite_errors", "Unexpected protocol errors (connection closed)", labels=labels
        )
        datagrams = CounterMetricFamily(
            "portsuite_datagrams",
            "UDP datagrams, by direction (in, out, dropped)",
            labels=[*labels, "direction"],
        )
        listener = InfoMetricFamily(
            "portsuite_listener",
            "Where each service listens, and the IANA class of its port",
            labels=["service", "type", "transport", "host", "port", "port_class", "tls"],
        )
        for svc in snap["services"]:
            key = [svc["name"], svc["type"]]
            conns = svc["connections"]
            open_.add_metric(key, conns["open"])
            total.add_metric(key, conns["total"])
            refused.add_metric(key, conns["refused"])
            received.add_metric(key, svc["bytes_in"])
            sent.add_metric(key, svc["bytes_out"])
            errors.add_metric(key, svc.get("errors", 0))
            for direction, value in svc.get("datagrams", {}).items():
                datagrams.add_metric([*key, direction], value)
            for li in svc.get("listeners", []):
                listener.add_metric(
                    key,
                    {
                        "transport": str(li["transport"]),
                        "host": str(li["host"]),
                        "port": "" if li["port"] is None else str(li["port"]),
                        "port_class": li["port_class"] or "",
                        "tls": "true" if li["tls"] else "false",
                    },
                )
        yield from (open_, total, refused, received, sent, errors, datagrams, listener)
        if snap.get("started_at") is not None:
            yield GaugeMetricFamily(
                "portsuite_start_time_seconds",
                "When the suite started listening (Unix time)",
                value=snap["started_at"],
            )


def registry_for(suite: Any, snapshot: Callable[[], dict[str, Any]]) -> CollectorRegistry:
    """The suite's own registry (shared by its http services)."""
    if suite is not None:
        try:
            return _registries[suite]
        except (KeyError, TypeError):
            pass
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SuiteCollector(snapshot))
    if suite is not None:
        try:
            _registries[suite] = registry
        except TypeError:
            pass
    return registry
