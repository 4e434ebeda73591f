"""
One worker process of a service with C{workers = N} (see L{portsuite.workers}).

Started by the suite as C{python -m portsuite.workerproc CONFIG SERVICE SLOT FAMILIES
SHARED_FD}: the listening sockets are fds 3, 4, … (one per family in C{FAMILIES}),
the shared connection count is C{SHARED_FD}; stdin is a unix socket to the suite.
It reads the same config, builds the service's wrapped factory as the suite would,
adopts the sockets and reports its counters and log lines on that socket.

The suite's messages on it, one JSON line each: its snapshot (what this worker's
dashboard shows), C{{"op": "unlisten"}} (C{portsuite disable}, or a reload that
replaces the service: stop accepting, answer C{{"unlistened": true}}, let the open
connections go on) and C{{"op": "listen", "families": [...]}}, the new listening
sockets passed along with it (C{SCM_RIGHTS}; C{portsuite enable}) and
C{{"op": "faults", "faults": {...}}} (C{portsuite fault}).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

OP = b'{"op":'  # how a message of the suite starts (a snapshot starts otherwise)


class _Channel:
    """The socket to the suite: reports out, its messages in; its end (the suite gone) stops us."""

    def __init__(self, reactor: Any):
        from twisted.internet.interfaces import IFileDescriptorReceiver
        from twisted.internet.protocol import Factory, Protocol
        from zope.interface import implementer

        channel = self

        @implementer(IFileDescriptorReceiver)
        class _Pipe(Protocol):
            def fileDescriptorReceived(self, descriptor: int) -> None:
                channel.fds.append(descriptor)

            def dataReceived(self, data: bytes) -> None:
                channel.received(data)

            def connectionLost(self, reason: Any = None) -> None:
                channel.gone = True
                if reactor.running:
                    reactor.stop()

        self.reactor = reactor
        self.gone = False
        self.pipe = _Pipe()
        self.factory = Factory.forProtocol(lambda: self.pipe)
        self.buffer = b""
        self.suite: Any = None
        self.fds: list[int] = []  # listening sockets received, not yet adopted
        self.ports: list[Any] = []  # the listening ports this worker accepts on
        self.service_factory: Any = None
        self.name = ""  # the service's

    def received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > 16 << 20:
            self.buffer = b""
        mirror = None
        for line in lines:
            if line.startswith(OP):
                try:
                    self.command(json.loads(line))
                except ValueError:
                    continue
            else:
                mirror = line
        if mirror is not None and self.suite is not None:
            self.suite.mirror = mirror

    def adopt(self, fds: list[int], families: list[int]) -> None:
        for fd, family in zip(fds, families, strict=True):
            self.ports.append(self.reactor.adoptStreamPort(fd, family, self.service_factory))
            os.close(fd)

    def command(self, msg: Any) -> None:
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "unlisten":
            ports, self.ports = self.ports, []
            for port in ports:
                port.stopListening()
            self.send({"unlistened": True})
        elif op == "faults" and self.suite is not None:
            from portsuite import faults as faultsmod

            table = msg.get("faults") or {}
            try:
                new = faultsmod.parse(table, faultsmod.Faults()) if table else None
            except (faultsmod.FaultError, TypeError):
                return
            self.suite.getServiceNamed(self.name).set_faults(new)
        elif op == "listen":
            families = [int(f) for f in msg.get("families", [])]
            fds, self.fds = self.fds[: len(families)], self.fds[len(families) :]
            if len(fds) == len(families):
                self.adopt(fds, families)

    def send(self, msg: dict[str, Any]) -> None:
        transport: Any = self.pipe.transport
        if transport is not None and not self.gone:
            transport.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")


def _observer(channel: _Channel) -> Any:
    from twisted.logger import LogLevel, formatEvent

    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level", LogLevel.info)
        if level < LogLevel.info:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        channel.send({"log": text, "level": level.name})

    return observe


def _report(stats: Any) -> dict[str, Any]:
    from portsuite.workers import MAX_CLIENTS_REPORTED

    clients = list(stats.clients.values())[:MAX_CLIENTS_REPORTED]
    return {
        "open": stats.open,
        "total": stats.total,
        "refused": stats.refused,
        "errors": stats.errors,
        "closed_in": stats.closed_bytes_in,
        "closed_out": stats.closed_bytes_out,
        "clients": [
            {"peer": c.peer, "since": c.since, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out}
            for c in clients
        ],
    }


def main(argv: list[str] | None = None) -> int:
    config_path, name, slot_text, families_text, shared_text = (argv or sys.argv[1:])[:5]
    slot, shared_fd = int(slot_text), int(shared_text)
    families = [int(f) for f in families_text.split(",") if f]

    from portsuite import internals

    internals.install_reactor()  # as twistd portsuite does
    from twisted.internet import reactor as _reactor
    from twisted.internet.task import LoopingCall
    from twisted.logger import globalLogBeginner

    from portsuite import gcpause, loader
    from portsuite.api import ConfigError, StartupError
    from portsuite.suite import Suite
    from portsuite.workers import REPORT_INTERVAL, SharedCount

    reactor: Any = _reactor
    channel = _Channel(reactor)
    os.set_blocking(0, False)
    reactor.adoptStreamConnection(0, socket.AF_UNIX, channel.factory)
    globalLogBeginner.beginLoggingTo([_observer(channel)], redirectStandardIO=False)
    try:
        cfg = loader.load(config_path)
        suite = Suite(cfg, reactor=reactor)
        svc = cfg.service(name)
        if svc.max_connections is not None or svc.max_per_host is not None:
            suite.gates[name] = SharedCount(shared_fd, slot, svc.max_connections, svc.max_per_host)
        factory = suite.getServiceNamed(name).factory()
        channel.suite = suite
        channel.name = name
    except (ConfigError, StartupError, KeyError) as e:
        print(f"portsuite worker {slot + 1} of [services.{name}]: {e}", file=sys.stderr)
        return 1
    channel.service_factory = factory
    channel.adopt([3 + i for i in range(len(families))], families)
    stats = suite.stats[name]
    last: list[Any] = [None]

    def report() -> None:
        msg = _report(stats)
        if msg != last[0]:
            last[0] = msg
            channel.send(msg)

    LoopingCall(report).start(REPORT_INTERVAL)
    gcpause.install(reactor)  # as twistd portsuite does
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
