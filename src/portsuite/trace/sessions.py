"""
Sessions: each connection (or, over UDP, each run of datagrams from one peer) of a
traced service, kept for the dashboard, logged, and written to the service's file.

L{ServiceTrace} holds what every session of one service shares: its counters, its
file (in its suite's folder) and which directions are always hex. The suite builds it
from the service's context (L{ServiceTrace.for_context}) and hands it to
L{TraceProtocol} (TCP, inside TLS) or L{DatagramTracer} (UDP).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from twisted.logger import Logger

from portsuite.api import format_peer
from portsuite.api.stats import ServiceStats
from portsuite.trace.render import MAX_CHUNK, render
from portsuite.trace.sink import TraceFile, trace_dir, trace_file
from portsuite.wrappers import ServiceProtocol

log = Logger(namespace="portsuite.trace")

MAX_LINES = 200  # lines kept per session
MAX_TEXT = 16_000  # characters of text kept per session
UDP_SESSION_GAP = 10.0  # seconds of silence after which a UDP peer starts a new session
UDP_PEERS = 64  # UDP peers followed at once per service
CUT = "… cut …"
ARROWS = {"c2s": "C→S", "s2c": "S→C", "note": "··"}  # note: a line the service adds
DIRECTIONS = frozenset({"c2s", "s2c"})

_session_ids = itertools.count(1)


class ServiceTrace:
    """
    The transcripts of one service: where they go and how its bytes are shown.

    @ivar hex: the directions (C{"c2s"}, C{"s2c"}) always shown as hex, from the
        type's C{trace_hex}; other chunks are judged one by one.
    """

    def __init__(
        self,
        stats: ServiceStats,
        reactor: Any,
        sink: TraceFile | None = None,
        hex: Iterable[str] = (),
    ):
        self.stats = stats
        self.reactor = reactor
        self.sink = sink if sink is not None else trace_file(stats.name)
        self.hex = frozenset(hex) & DIRECTIONS

    @classmethod
    def for_context(cls, ctx: Any) -> ServiceTrace:
        """
        The trace of the service a L{portsuite.api.ServiceContext} describes: its file
        in the folder of its suite (keyed by the suite's config file), the hex
        directions its type declares.
        """
        suite = ctx.suite
        config = getattr(suite, "config", None)
        folder = trace_dir(getattr(config, "path", None))
        stype = getattr(suite, "types", {}).get(ctx.config.name)
        return cls(
            ctx.stats,
            ctx.reactor,
            sink=trace_file(ctx.stats.name, folder),
            hex=getattr(stype, "trace_hex", ()),
        )

    def session(self, peer: str, transport: str = "tcp") -> Session:
        return Session(self.stats, peer, self.reactor, transport, self.sink, hex=self.hex)


class Session:
    """
    One traced connection: kept in C{stats.transcripts} (the dashboard's format),
    logged, and written to the service's JSON-lines file; bounded.
    """

    def __init__(
        self,
        stats: ServiceStats,
        peer: str,
        reactor: Any,
        transport: str = "tcp",
        sink: TraceFile | None = None,
        hex: Iterable[str] = (),
    ):
        self.stats = stats
        self.peer = peer
        self.reactor = reactor
        self.transport = transport
        self.sink = sink if sink is not None else trace_file(stats.name)
        self.hex = frozenset(hex)
        self.id = f"{os.getpid()}-{next(_session_ids)}"
        self.started = reactor.seconds()
        self.last = self.started
        self.text_size = 0
        self.omitted = {"c2s": 0, "s2c": 0}
        self.record: dict[str, Any] = {
            "service": stats.name,
            "peer": peer,
            "started": self.started,
            "transport": transport,
            "lines": [],
            "cut": False,
            "closed": None,  # seconds from the open to the close, once closed
        }
        stats.transcripts.append(self.record)
        self._emit("open")
        log.info(
            "{service}: trace {peer} {transport} session started",
            service=stats.name,
            peer=peer,
            transport=transport,
        )

    def _emit(self, event: str, **fields: Any) -> None:
        record = {
            "event": event,
            "service": self.stats.name,
            "session": self.id,
            "peer": self.peer,
            "transport": self.transport,
            "time": time.time(),
            **fields,
        }
        self.sink.append(record)

    @property
    def cut(self) -> bool:
        return bool(self.record["cut"])

    def add(self, direction: str, data: bytes) -> None:
        """Record one chunk: C{direction} is C{"c2s"} or C{"s2c"}."""
        now = self.reactor.seconds()
        self.last = now
        t = round(now - self.started, 3)
        if self.cut:
            self.omitted[direction] += len(data)
            return
        lines = self.record["lines"]
        if len(lines) >= MAX_LINES or self.text_size >= MAX_TEXT:
            self.record["cut"] = True
            self.omitted[direction] += len(data)
            lines.append({"dir": direction, "t": t, "text": CUT})
            self._emit("cut", dir=direction, t=t, text=CUT)
            log.info(
                "{service}: trace {peer} cut after {n} lines; only byte counts from now on",
                service=self.stats.name,
                peer=self.peer,
                n=len(lines) - 1,
            )
            return
        text = render(
            data,
            min(MAX_CHUNK, max(16, MAX_TEXT - self.text_size)),
            binary=True if direction in self.hex else None,
        )
        self.text_size += len(text)
        lines.append({"dir": direction, "t": t, "text": text})
        self._emit("data", dir=direction, t=t, bytes=len(data), text=text)
        log.info(
            "{service}: {peer} {arrow} +{t:.3f}s {text}",
            service=self.stats.name,
            peer=self.peer,
            arrow=ARROWS[direction],
            t=t,
            text=text,
        )

    def note(self, text: str) -> None:
        """
        A line the service adds to explain what just went by (direction C{"note"}):
        e.g. ftp decodes the data port of C{227 Entering Passive Mode (…)}.
        """
        if self.cut:
            return
        t = round(self.reactor.seconds() - self.started, 3)
        text = text[:MAX_CHUNK]
        self.text_size += len(text)
        self.record["lines"].append({"dir": "note", "t": t, "text": text})
        self._emit("data", dir="note", t=t, bytes=0, text=text)
        log.info(
            "{service}: {peer} ·· +{t:.3f}s {text}",
            service=self.stats.name,
            peer=self.peer,
            t=t,
            text=text,
        )

    def close(self) -> None:
        duration = round(self.reactor.seconds() - self.started, 3)
        self.record["closed"] = duration
        self._emit("close", t=duration, omitted=dict(self.omitted))
        if self.cut:
            log.info(
                "{service}: trace {peer} ended after {t:.3f}s; cut: {c2s} B client→server "
                "and {s2c} B server→client not shown",
                service=self.stats.name,
                peer=self.peer,
                t=duration,
                c2s=self.omitted["c2s"],
                s2c=self.omitted["s2c"],
            )


class TraceProtocol(ServiceProtocol):
    """
    L{ServiceProtocol} that also records the connection's transcript (the class the
    suite uses for a TCP service with C{trace = true}); sits inside TLS, so it sees
    plaintext. Used as is, it writes to L{trace_dir}(); the suite uses
    L{for_context}, bound to its service's L{ServiceTrace}.
    """

    service_trace: ServiceTrace | None = None
    session: Session | None = None

    @classmethod
    def for_context(cls, ctx: Any) -> type[TraceProtocol]:
        """This class bound to the L{ServiceTrace} of C{ctx}'s service."""
        bound: type[TraceProtocol] = type(
            cls.__name__, (cls,), {"service_trace": ServiceTrace.for_context(ctx)}
        )
        return bound

    def makeConnection(self, transport: Any) -> None:
        # before the service's connectionMade, which may already write (qotd, time …)
        if self.service_trace is not None:
            self.session = self.service_trace.session(self.client.peer)
        else:
            self.session = Session(self.stats, self.client.peer, self.factory.reactor)
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self.session is not None:
            self.session.add("c2s", data)
        super().dataReceived(data)

    def write(self, data: bytes) -> None:
        if self.session is not None and data:
            self.session.add("s2c", data)
        super().write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        data = list(data)
        if self.session is not None:
            joined = b"".join(data)
            if joined:
                self.session.add("s2c", joined)
        super().writeSequence(data)

    def annotate(self, text: str) -> None:
        """
        Public hook for the wrapped protocol: add an explanatory line to this
        connection's transcript (a protocol finds it with C{getattr(self.transport,
        "annotate", None)}; untraced connections have none).
        """
        if self.session is not None:
            self.session.note(text)

    def connectionLost(self, reason: Any = None) -> None:
        try:
            super().connectionLost(reason)
        finally:
            if self.session is not None:
                self.session.close()
                self.session = None


class DatagramTracer:
    """
    Transcripts of a UDP service: one session per peer, until it is quiet for
    L{UDP_SESSION_GAP} seconds; at most L{UDP_PEERS} peers followed at once.
    """

    def __init__(
        self, stats: ServiceStats, reactor: Any, service_trace: ServiceTrace | None = None
    ):
        self.stats = stats
        self.reactor = reactor
        self.trace = service_trace or ServiceTrace(stats, reactor)
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def _session(self, addr: Any) -> Session:
        peer = format_peer(addr)
        now = self.reactor.seconds()
        s = self.sessions.get(peer)
        if s is not None and now - s.last > UDP_SESSION_GAP:
            s.close()
            del self.sessions[peer]
            s = None
        if s is None:
            s = self.trace.session(peer, transport="udp")
            self.sessions[peer] = s
            while len(self.sessions) > UDP_PEERS:
                _, old = self.sessions.popitem(last=False)
                old.close()
        else:
            self.sessions.move_to_end(peer)
        return s

    def received(self, addr: Any, data: bytes) -> None:
        self._session(addr).add("c2s", data)

    def sent(self, addr: Any, data: bytes) -> None:
        self._session(addr).add("s2c", data)

    def dropped(self, addr: Any, data: bytes, reason: str) -> None:
        self.trace.sink.append(
            {
                "event": "drop",
                "service": self.stats.name,
                "peer": format_peer(addr),
                "transport": "udp",
                "time": time.time(),
                "bytes": len(data),
                "text": reason,
            }
        )
