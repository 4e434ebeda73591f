"""
The suite: every service of one config, bound to its ports in one reactor.

L{Suite} is a C{MultiService}. It binds every listener in
C{privilegedStartService} (so C{twistd --uid/--gid} can bind well-known ports as root
and then drop privileges); if any bind fails, it closes what it had bound, says which
service and port failed and how to fix it, in one line, and stops startup: nothing is
left half-started.

Each TCP factory is wrapped by L{portsuite.wrappers.ServiceFactory} (counters, limits,
open/close log, error guard; the tracing subclass where C{trace = true}), then by TLS
where C{tls} is set; each UDP protocol by the UDP guards.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from typing import Any

import attrs
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import (
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    serverFromString,
)
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from portsuite.api import ServiceConfig, ServiceContext, ServiceType, StartupError
from portsuite.api.stats import Listener, ServiceStats, port_class
from portsuite.config import SuiteConfig
from portsuite.wrappers import DatagramWrapper, ServiceFactory, ServiceProtocol

log = Logger(namespace="portsuite")


@attrs.define(eq=False)
class _Bound:
    service: str
    listener: Listener
    port: Any  # IListeningPort
    factory: Any


def _bind_fix(err: BaseException, transport: str, host: str, port: int | None) -> str:
    code = getattr(getattr(err, "socketError", None), "errno", None) or getattr(err, "errno", None)
    if code == errno.EADDRINUSE:
        return (
            f"port {port} is already in use by another program "
            f"(see: ss -lnp 'sport = :{port}'); stop it or choose another port"
        )
    if code == errno.EACCES:
        if port is not None and port < 1024:
            return (
                f"permission denied: port {port} is well-known (0-1023) and needs root or "
                f"CAP_NET_BIND_SERVICE; run as root with twistd --uid/--gid, or use a port >= 1024"
            )
        return "permission denied; check the path or the user running the suite"
    if code in (errno.EADDRNOTAVAIL, socket.EAI_NONAME if hasattr(socket, "EAI_NONAME") else -2):
        return f"{host!r} is not an address of this machine; use 127.0.0.1, ::1 or 0.0.0.0"
    return f"{err}; check host and port"


class Suite(MultiService):
    """All services of a L{SuiteConfig}."""

    def __init__(self, config: SuiteConfig, reactor: Any = None, ready_file: str | None = None):
        MultiService.__init__(self)
        self.config = config
        self._reactor = reactor
        self.ready_file = ready_file
        self.started_at: float | None = None
        self.stats: dict[str, ServiceStats] = {}
        self.types: dict[str, ServiceType] = {}
        for svc in config.services:
            stype = config.registry.resolve(svc.type)
            self.types[svc.name] = stype
            self.stats[svc.name] = ServiceStats(
                name=svc.name, type=svc.type, description=stype.description
            )
        self._bound: list[_Bound] = []
        # pages the services show on the dashboard: "api/mail" -> a twisted.web resource
        self.published: dict[str, Any] = {}
        self.listening = False

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    # -- startup ---------------------------------------------------------------

    def privilegedStartService(self) -> None:
        try:
            self.listen()
        except StartupError as e:
            log.critical("{line}", line=str(e))
            print(f"portsuite: {e}", file=sys.__stderr__, flush=True)
            raise SystemExit(1) from None
        MultiService.privilegedStartService(self)

    def startService(self) -> None:
        if not self.listening:
            # not started through twistd's privileged step
            self.privilegedStartService()
        MultiService.startService(self)

    def listen(self) -> list[Listener]:
        """
        Bind every listener now.

        @raise StartupError: one line naming the service, the port and the fix;
            every listener bound before the failure is closed again.
        """
        self.started_at = self.reactor.seconds()
        try:
            for svc in self.config.services:
                self._listen_service(svc)
        except StartupError:
            for b in self._bound:
                b.port.stopListening()
            self._bound.clear()
            for stats in self.stats.values():
                stats.listeners.clear()
            raise
        for b in self._bound:
            li = b.listener
            where = f"{li.host}:{li.port}" if li.port is not None else li.description
            extra = f", {port_class(li.port)} port" if li.port is not None else ""
            log.info(
                "{service}: listening on {transport}{tls} {where} ({type}{extra})",
                service=b.service,
                transport=li.transport,
                tls="+tls" if li.tls else "",
                where=where,
                type=self.stats[b.service].type,
                extra=extra,
            )
        self.listening = True
        if self.ready_file:
            self._write_ready()
        return [b.listener for b in self._bound]

    def _listen_service(self, svc: ServiceConfig) -> None:
        stype = self.types[svc.name]
        stats = self.stats[svc.name]
        ctx = ServiceContext(
            reactor=self.reactor,
            config=svc,
            stats=stats,
            suite=self,
            accounts=self.config.accounts.narrow(svc.users),
        )
        tcp_port: int | None = None
        if svc.tcp and stype.tcp_factory is not None:
            factory = self._tcp_factory(svc, stype, ctx)
            descriptions = (
                [d for d in svc.listen if not d.startswith("udp:")] if svc.listen else [None]
            )
            for desc in descriptions:
                bound = self._listen_tcp(svc, factory, desc)
                if tcp_port is None:
                    tcp_port = bound.listener.port
        if svc.udp and stype.udp_protocol is not None:
            if svc.listen:
                for desc in svc.listen:
                    if desc.startswith("udp:"):
                        host, port = _parse_udp(desc, svc.host)
                        self._listen_udp(svc, stype, ctx, host, port)
            else:
                assert svc.port is not None
                # port = 0: try the number TCP got, so one service keeps one port number
                port = svc.port or tcp_port or 0
                try:
                    self._listen_udp(svc, stype, ctx, svc.host, port)
                except StartupError:
                    if svc.port != 0 or not port:
                        raise
                    self._listen_udp(svc, stype, ctx, svc.host, 0)

    def _tcp_factory(self, svc: ServiceConfig, stype: ServiceType, ctx: ServiceContext) -> Any:
        assert stype.tcp_factory is not None
        protocol_class: type[ServiceProtocol] | None = None
        if svc.trace:
            from portsuite.trace import TraceProtocol

            protocol_class = TraceProtocol
        factory: Any = ServiceFactory(
            stype.tcp_factory(ctx),
            ctx.stats,
            self.reactor,
            max_connections=svc.max_connections,
            max_per_host=svc.max_per_host,
            idle_timeout=svc.idle_timeout,
            refusal=stype.refusal,
            protocol_class=protocol_class,
        )
        if svc.tls is not None:
            from portsuite import tls

            factory = tls.wrap_factory(factory, svc.tls, self.reactor)
        return factory

    def _listen_tcp(self, svc: ServiceConfig, factory: Any, desc: str | None) -> _Bound:
        if desc is None:
            assert svc.port is not None
            cls = TCP6ServerEndpoint if ":" in svc.host else TCP4ServerEndpoint
            endpoint: Any = cls(self.reactor, svc.port, interface=svc.host)
            shown = f"tcp {svc.host}:{svc.port}"
        else:
            shown = desc
            try:
                endpoint = serverFromString(self.reactor, desc)
            except Exception as e:
                hint = (
                    "no socket was passed by systemd (LISTEN_FDS/LISTEN_FDNAMES)"
                    if desc.startswith("systemd:") and isinstance(e, (IndexError, KeyError))
                    else str(e) or type(e).__name__
                )
                raise StartupError(
                    f"cannot start [services.{svc.name}] on {desc}: {hint}; "
                    f"fix the listen description (see Twisted's endpoint syntax)"
                ) from None
        results: list[Any] = []
        endpoint.listen(factory).addBoth(results.append)
        if not results:
            raise StartupError(
                f"[services.{svc.name}] {shown}: the endpoint did not bind at startup"
            )
        result = results[0]
        if isinstance(result, Failure):
            err = result.value
            host = getattr(endpoint, "_interface", svc.host)
            port = getattr(endpoint, "_port", svc.port)
            raise StartupError(
                f"cannot start [services.{svc.name}] on {shown}: {_bind_fix(err, 'tcp', host, port)}"
            )
        address = result.getHost()
        port_number = getattr(address, "port", None)
        host = getattr(address, "host", None) or getattr(address, "name", "") or ""
        if isinstance(host, bytes):
            host = host.decode()
        kind = "tcp" if port_number is not None else (desc or "tcp").split(":", 1)[0]
        listener = Listener(
            transport=kind,
            host=str(host),
            port=port_number,
            description=desc or f"tcp:{port_number}:interface={svc.host}",
            tls=svc.tls is not None or (desc or "").startswith("ssl:"),
        )
        self.stats[svc.name].listeners.append(listener)
        bound = _Bound(svc.name, listener, result, factory)
        self._bound.append(bound)
        return bound

    def _listen_udp(
        self, svc: ServiceConfig, stype: ServiceType, ctx: ServiceContext, host: str, port: int
    ) -> _Bound:
        assert stype.udp_protocol is not None
        wrapper = self.udp_wrapper(stype.udp_protocol(ctx), ctx)
        try:
            listening = self.reactor.listenUDP(port, wrapper, interface=host)
        except CannotListenError as e:
            raise StartupError(
                f"cannot start [services.{svc.name}] on udp {host}:{port}: {_bind_fix(e, 'udp', host, port)}"
            ) from None
        address = listening.getHost()
        listener = Listener(
            transport="udp",
            host=address.host,
            port=address.port,
            description=f"udp:{address.port}:interface={host}",
        )
        self.stats[svc.name].listeners.append(listener)
        bound = _Bound(svc.name, listener, listening, wrapper)
        self._bound.append(bound)
        return bound

    def udp_wrapper(self, protocol: Any, ctx: ServiceContext) -> DatagramWrapper:
        """The wrapper every UDP service gets: counters and the UDP guards."""
        from portsuite.udp import GuardedDatagramWrapper, UdpPolicy

        own = self.types[ctx.config.name].udp_policy
        policy = attrs.evolve(UdpPolicy(), **own) if own else None
        return GuardedDatagramWrapper.for_context(protocol, ctx, policy=policy)

    def _write_ready(self) -> None:
        assert self.ready_file
        data = json.dumps(self.snapshot(), indent=2)
        tmp = f"{self.ready_file}.tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, self.ready_file)

    # -- what the suite shows --------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every service, its listeners and counters: the dashboard's JSON."""
        now = self.reactor.seconds()
        return {
            "started_at": self.started_at,
            "now": now,
            "config": str(self.config.path) if self.config.path else None,
            "services": [self.stats[s.name].as_dict(now) for s in self.config.services],
        }

    def ports(self, name: str) -> list[int]:
        """The bound port numbers of a service (what tests connect to)."""
        return [li.port for li in self.stats[name].listeners if li.port is not None]

    def port(self, name: str, transport: str = "tcp") -> int:
        for li in self.stats[name].listeners:
            if li.transport == transport and li.port is not None:
                return li.port
        raise KeyError(f"{name} has no {transport} listener")

    # -- shutdown --------------------------------------------------------------

    def stopService(self) -> defer.Deferred[Any]:
        MultiService.stopService(self)
        waits = []
        for b in self._bound:
            waits.append(defer.maybeDeferred(b.port.stopListening))
            protocols = getattr(b.factory, "protocols", None)
            if protocols is None:
                protocols = getattr(getattr(b.factory, "wrappedFactory", None), "protocols", {})
            for p in list(protocols):
                transport = getattr(p, "transport", None)
                if transport is not None:
                    transport.loseConnection()
        self._bound.clear()
        self.listening = False
        log.info("portsuite: all listeners closed")
        return defer.DeferredList(waits, consumeErrors=True)


def _parse_udp(desc: str, default_host: str) -> tuple[str, int]:
    """C{udp:PORT[:interface=HOST]}, portsuite's own description for a UDP listener."""
    parts = desc.split(":")
    port = int(parts[1])
    host = default_host
    for part in parts[2:]:
        key, _, value = part.partition("=")
        if key == "interface":
            host = value
    return host, port
