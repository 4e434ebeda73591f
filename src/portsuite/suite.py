"""
The suite: every service of one config, bound to its ports in one reactor.

L{Suite} is a C{MultiService} with one named child per configured service
(L{ConfiguredService}: C{suite.getServiceNamed("kv")}), whose children are its
listeners: L{StreamListener} (an endpoint and a factory, as
C{twisted.application.strports.service} builds them) and L{DatagramListener} (as
C{internet.UDPServer}). The suite binds every listener in C{privilegedStartService}
(so C{twistd --uid/--gid} can bind well-known ports as root and then drop
privileges); if any bind fails, it closes what it had bound, says which service and
port failed and how to fix it, in one line, and stops startup: nothing is left
half-started.

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
from collections.abc import Mapping
from typing import Any

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from portsuite import endpoints
from portsuite.api import ServiceConfig, ServiceContext, ServiceType, StartupError
from portsuite.api.stats import Listener, ServiceStats, port_class
from portsuite.config import SuiteConfig
from portsuite.lang import _
from portsuite.wrappers import DatagramWrapper, ServiceFactory, ServiceProtocol

log = Logger(namespace="portsuite")


@attrs.define(eq=False)
class _Bound:
    service: str
    listener: Listener
    port: Any  # IListeningPort
    factory: Any


def _bind_fix(
    err: BaseException, transport: str, host: str, port: int | None, holder: str | None = None
) -> str:
    code = getattr(getattr(err, "socketError", None), "errno", None) or getattr(err, "errno", None)
    return bind_fix(code, str(err), host, port, holder)


def bind_fix(
    code: int | None, text: str, host: str, port: int | None, holder: str | None = None
) -> str:
    """What a failed bind means and how to fix it, for one errno (also C{portsuite check}'s)."""
    if code == errno.EADDRINUSE:
        by = holder or _("another program")
        return _(
            "port {port} is already in use by {by} "
            "(see: ss -lnp 'sport = :{port}'); stop it or choose another port"
        ).format(port=port, by=by)
    if code == errno.EACCES:
        if port is not None and port < 1024:
            return _(
                "permission denied: port {port} is well-known (0-1023) and needs root or "
                "CAP_NET_BIND_SERVICE; run as root with twistd --uid/--gid, or use a port >= 1024"
            ).format(port=port)
        return _("permission denied; check the path or the user running the suite")
    if code in (errno.EADDRNOTAVAIL, socket.EAI_NONAME if hasattr(socket, "EAI_NONAME") else -2):
        return _("{host} is not an address of this machine; use 127.0.0.1, ::1 or 0.0.0.0").format(
            host=repr(host)
        )
    return _("{error}; check host and port").format(error=text)


class _Listener(Service):
    """What a service's stream and datagram listeners share: bind when started (the
    privileged start binds first, as twistd binds before it drops privileges), stop
    listening when stopped."""

    unit: ConfiguredService
    bound: _Bound | None

    def bind(self) -> _Bound:
        raise NotImplementedError

    def privilegedStartService(self) -> None:
        Service.privilegedStartService(self)
        if self.bound is None:
            self.bind()

    def startService(self) -> None:
        Service.startService(self)
        if self.bound is None:
            self.bind()

    def unbind(self) -> defer.Deferred[Any]:
        """Stop listening; the open connections go on."""
        bound, self.bound = self.bound, None
        if bound is None:
            return defer.succeed(None)
        self.unit.suite._forget(self.unit, bound)
        return defer.maybeDeferred(bound.port.stopListening)

    def stopService(self) -> defer.Deferred[Any]:
        Service.stopService(self)
        return self.unbind()


class StreamListener(_Listener):
    """
    One stream listener of a service: an endpoint description and the service's
    factory, as C{twisted.application.strports.service} builds them, except that it
    binds at once and a failure is a L{StartupError} of one line (the service, the
    port, the fix) instead of a logged traceback.
    """

    def __init__(self, unit: ConfiguredService, description: str, shown: str, listed: bool):
        self.unit = unit
        self.description = description
        self.shown = shown  # how the error line names it: "tcp 127.0.0.1:7007" or the entry
        self.listed = listed  # written in the config's listen list (else from port/host)
        self.bound: _Bound | None = None

    def bind(self) -> _Bound:
        unit = self.unit
        svc = unit.config
        factory = unit.factory()
        desc = self.description
        try:
            endpoint = endpoints.server_endpoint(unit.reactor, desc)
        except Exception as e:
            hint = (
                _("no socket was passed by systemd (LISTEN_FDS/LISTEN_FDNAMES)")
                if desc.startswith("systemd:") and isinstance(e, (IndexError, KeyError))
                else str(e) or type(e).__name__
            )
            raise StartupError(
                _(
                    "cannot start [services.{name}] on {where}: {hint}; "
                    "fix the listen description (see Twisted's endpoint syntax)"
                ).format(name=svc.name, where=desc, hint=hint)
            ) from None
        results: list[Any] = []
        endpoint.listen(factory).addBoth(results.append)
        if not results:
            raise StartupError(
                _("[services.{name}] {where}: the endpoint did not bind at startup").format(
                    name=svc.name, where=self.shown
                )
            )
        result = results[0]
        if isinstance(result, Failure):
            parsed = endpoints.parse(desc)
            host = parsed.host(svc.host)
            port = parsed.port
            raise StartupError(
                _("cannot start [services.{name}] on {where}: {fix}").format(
                    name=svc.name, where=self.shown, fix=_bind_fix(result.value, "tcp", host, port)
                )
            )
        address = result.getHost()
        port_number = getattr(address, "port", None)
        host = getattr(address, "host", None) or getattr(address, "name", "") or ""
        if isinstance(host, bytes):
            host = host.decode()
        kind = "tcp" if port_number is not None else desc.split(":", 1)[0]
        listener = Listener(
            transport=kind,
            host=str(host),
            port=port_number,
            description=desc if self.listed else f"tcp:{port_number}:interface={svc.host}",
            tls=svc.tls is not None or desc.startswith("ssl:"),
        )
        if not self.listed and port_number:
            # port = 0: the same number again when the service is enabled after a disable
            self.description = endpoints.for_port(svc.host, port_number)
        self.bound = unit.suite._record(unit, listener, result, factory)
        return self.bound

    def stopService(self) -> defer.Deferred[Any]:
        d = _Listener.stopService(self)
        self.unit.close_connections()
        return d


class DatagramListener(_Listener):
    """
    One UDP listener of a service, as C{twisted.application.internet.UDPServer}
    (C{reactor.listenUDP}) with the UDP guards in front of the protocol. C{port} None:
    the number the service's TCP listener got (C{port = 0}: one service, one number),
    else any free port.
    """

    def __init__(self, unit: ConfiguredService, host: str, port: int | None):
        self.unit = unit
        self.host = host
        self.port = port
        self.bound: _Bound | None = None

    def bind(self) -> _Bound:
        if self.port is not None:
            self.bound = self._bind(self.port)
            return self.bound
        tcp_port = self.unit.tcp_port()
        try:
            self.bound = self._bind(tcp_port or 0)
        except StartupError:
            if not tcp_port:
                raise
            self.bound = self._bind(0)
        return self.bound

    def _bind(self, port: int) -> _Bound:
        unit = self.unit
        svc, stype = unit.config, unit.stype
        assert stype.udp_protocol is not None
        protocol = _built(stype.udp_protocol, unit.context)
        wrapper = unit.suite.udp_wrapper(protocol, unit.context)
        wrapper.faults = unit.faults
        try:
            listening = unit.reactor.listenUDP(port, wrapper, interface=self.host)
        except CannotListenError as e:
            raise StartupError(
                _("cannot start [services.{name}] on {where}: {fix}").format(
                    name=svc.name,
                    where=f"udp {self.host}:{port}",
                    fix=_bind_fix(e, "udp", self.host, port),
                )
            ) from None
        address = listening.getHost()
        listener = Listener(
            transport="udp",
            host=address.host,
            port=address.port,
            description=f"udp:{address.port}:interface={self.host}",
        )
        self.port = address.port  # the same number again after a disable
        return unit.suite._record(unit, listener, listening, wrapper)


class ConfiguredService(MultiService):
    """
    One C{[services.NAME]} of the config, a named child of the suite; its children are
    its listeners (TCP first, so UDP can take the same port number).
    """

    def __init__(self, suite: Suite, svc: ServiceConfig, stype: ServiceType):
        MultiService.__init__(self)
        self.setName(svc.name)
        self.suite = suite
        self.config = svc
        self.stype = stype
        self.stats = suite.stats[svc.name]
        self.context = ServiceContext(
            reactor=suite.reactor,
            config=svc,
            stats=self.stats,
            suite=suite,
            accounts=suite.config.accounts.narrow(svc.users),
        )
        self._factory: Any = None
        self.faults: Any = suite.config.faults.get(svc.name)  # portsuite.faults.Faults
        self.disabled = False
        self.grace: float | None = None  # removed by a reload: seconds left to open connections
        for planned in endpoints.plan(svc, stype):
            child: Service
            if planned.transport == "udp":
                # port = 0 without a listen list: try the number TCP got (1 service = 1 port)
                shared = not planned.listed and planned.port == 0
                child = DatagramListener(self, planned.host, None if shared else planned.port)
            else:
                child = StreamListener(self, planned.description, planned.shown, planned.listed)
            child.setServiceParent(self)
        if svc.workers > 1:
            # last child: started after the listeners are bound, stopped before they close
            from portsuite.workers import WorkerPool

            WorkerPool(self, svc.workers).setServiceParent(self)

    @property
    def reactor(self) -> Any:
        return self.suite.reactor

    def listening_ports(self) -> list[Any]:
        """The bound stream ports (what the workers accept on)."""
        return [c.bound.port for c in self if isinstance(c, StreamListener) and c.bound is not None]

    def factory(self) -> Any:
        """The service's wrapped TCP factory, built once (a type's factory may refuse to start)."""
        if self._factory is None:
            self._factory = self.suite._tcp_factory(self.config, self.stype, self.context)
            self._service_factory().faults = self.faults
        return self._factory

    def _service_factory(self) -> Any:
        """The L{ServiceFactory} (under TLS, if any), or None before the first bind."""
        factory = self._factory
        while factory is not None and not isinstance(factory, ServiceFactory):
            factory = getattr(factory, "wrappedFactory", None)
        return factory

    def set_faults(self, faults: Any) -> None:
        """Faults for the next connections (and the next datagrams)."""
        self.faults = faults if faults is not None and faults.active else None
        factory = self._service_factory()
        if factory is not None:
            factory.faults = self.faults
        for child in self:
            if isinstance(child, DatagramListener) and child.bound is not None:
                child.bound.factory.faults = self.faults
        pool = self.pool
        if pool is not None:
            pool.set_faults(self.faults)  # the workers serve the connections

    @property
    def pool(self) -> Any:
        """The L{portsuite.workers.WorkerPool} of a service with C{workers = N}, else None."""
        for child in self:
            if child.name == f"{self.name}-workers":
                return child
        return None

    def connections(self) -> list[Any]:
        """The open connections of this service in this process (its wrapped protocols)."""
        factory = self._service_factory()
        return list(factory.protocols) if factory is not None else []

    def close_connections(self) -> None:
        pool = self.pool
        if pool is not None and pool.running:
            pool.stopService()  # the workers hold the connections: they stop
        for p in self.connections():
            transport = getattr(p, "transport", None)
            if transport is not None:
                transport.loseConnection()

    @property
    def state(self) -> str:
        if self.grace is not None:
            return "stopping"
        if self.disabled:
            return "disabled"
        bound = any(getattr(c, "bound", None) is not None for c in self)
        return "listening" if bound else "stopped"

    def unbind(self) -> defer.Deferred[Any]:
        """Stop listening on every port; the open connections go on."""
        return defer.gatherResults([child.unbind() for child in self], consumeErrors=True)

    @defer.inlineCallbacks
    def drain(self, grace: float) -> Any:
        """
        Stop listening, let the open connections finish for C{grace} seconds, then
        close what is left (a removed or restarted service).
        """
        self.grace = grace
        yield self.unbind()
        deadline = self.reactor.seconds() + grace
        pool = self.pool

        def left() -> int:
            # with workers: the open connections they report (summed), else our own
            return self.stats.open if pool is not None else len(self.connections())

        while left() and self.reactor.seconds() < deadline:
            yield deferLater(self.reactor, min(0.2, grace), lambda: None)
        n = left()
        if n:
            log.info(
                "{service}: closing {n} connection(s) left after {grace}s",
                service=self.name,
                n=n,
                grace=grace,
            )
        if n or pool is not None:
            self.close_connections()

    def tcp_port(self) -> int | None:
        for child in self:
            if isinstance(child, StreamListener) and child.bound is not None:
                port: int | None = child.bound.listener.port
                if port is not None:
                    return port
        return None

    def bind(self) -> None:
        """Bind every listener of this service now. @raise StartupError: one line."""
        if self.config.workers > 1 and self.suite.config.path is None:
            raise StartupError(
                _(
                    "[services.{name}] workers: the worker processes read the "
                    "config file; start the suite from a file (twistd portsuite -c FILE)"
                ).format(name=self.config.name)
            )
        for child in self:
            if isinstance(child, (StreamListener, DatagramListener)) and child.bound is None:
                child.bind()
        pool = self.pool
        if pool is not None and pool.running:
            pool.bind()  # (enable: at startup the pool takes them when it starts)

    def privilegedStartService(self) -> None:
        if not self.disabled:
            self.bind()
        MultiService.privilegedStartService(self)

    def startService(self) -> None:
        Service.startService(self)
        if not self.disabled:
            for child in self:
                child.startService()

    def stopService(self) -> defer.Deferred[Any]:
        if self.grace is not None:
            # removed by a reload: the drain closes the connections
            Service.stopService(self)
            return defer.succeed(None)
        return MultiService.stopService(self)


class Suite(MultiService):
    """All services of a L{SuiteConfig}, each a named child (L{ConfiguredService})."""

    def __init__(self, config: SuiteConfig, reactor: Any = None, ready_file: str | None = None):
        MultiService.__init__(self)
        self.config = config
        self._reactor = reactor
        self.ready_file = ready_file
        self.started_at: float | None = None
        self.stats: dict[str, ServiceStats] = {}
        self.types: dict[str, ServiceType] = {}
        # twistd in daemon mode: a failure raises (twistd reports it through its status
        # pipe and removes the pidfile) instead of exiting
        self.daemon = False
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
        # in a worker process: the service's max_connections shared across its workers
        self.gates: dict[str, Any] = {}
        # in a worker process: the suite's snapshot as the main process sees it (JSON)
        self.mirror: bytes | None = None
        # live control (portsuite.live): the control socket, services draining after a
        # reload, plugin reload on save (--dev or [suite] reload_plugins)
        self.control: Any = None
        # absolute: a daemon changes its folder after the fork
        self.config_file = config.path.resolve() if config.path is not None else None
        self.control_path: Any = None  # None: the default for the config file
        self.draining: set[ConfiguredService] = set()
        self.dev = False
        self.watcher: Any = None
        self.plugin_errors: dict[str, str] = {}  # file -> "file:line: message"
        self._reloading = defer.DeferredLock()
        self._sighup: Any = None
        for svc in config.services:
            ConfiguredService(self, svc, self.types[svc.name]).setServiceParent(self)

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    # -- startup ---------------------------------------------------------------

    def privilegedStartService(self) -> None:
        if not self.listening:
            try:
                self.listen()
            except StartupError as e:
                log.critical("{line}", line=str(e))
                print(f"portsuite: {e}", file=sys.__stderr__, flush=True)
                if self.daemon:
                    raise
                raise SystemExit(1) from None
        MultiService.privilegedStartService(self)

    def startService(self) -> None:
        if not self.listening:
            # not started through twistd's privileged step
            self.privilegedStartService()
        MultiService.startService(self)
        self._start_live_control()
        # again, with the control socket (a daemon run as --uid may not write there: it
        # was written before, as the user that started it)
        if self.ready_file:
            try:
                self._write_ready()
            except OSError as e:
                log.warn("cannot write {path} again: {e}", path=self.ready_file, e=e)

    # -- live control (portsuite.live) -------------------------------------------

    def _start_live_control(self) -> None:
        from portsuite import live

        if self.config_file is not None and self.control_path is not False:
            path = self.control_path or live.socket_path(self.config_file)
            self.control = live.listen(self, path)
        self._install_sighup()
        if self.dev or self.config.reload_plugins:
            from portsuite import reloader

            self.watcher = reloader.watch(self)

    def _install_sighup(self) -> None:
        """SIGHUP reloads (installed before the ready file says the suite is up)."""
        import signal
        import threading

        if self.config_file is None or self._sighup is not None:
            return
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGHUP, self._on_sighup)
            self._sighup = previous if previous is not None else signal.SIG_DFL

    def _on_sighup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self._reload_logged)

    def _reload_logged(self) -> None:
        def report(result: tuple[bool, list[str]]) -> None:
            ok, lines = result
            if not ok:
                for line in lines:
                    log.error("reload (SIGHUP): {line}", line=line)

        self.reload().addCallback(report)

    def reload(self, grace: float | None = None) -> defer.Deferred[tuple[bool, list[str]]]:
        """Read the config file again and apply it (see L{portsuite.live}); (ok, lines)."""
        from portsuite import live

        return self._reloading.run(live.reload, self, live.GRACE if grace is None else grace)

    def adopt(self, config: SuiteConfig, fresh: list[str]) -> None:
        """A reload's new config; C{fresh}: the services about to be (re)built from it."""
        self.config = config
        for name in fresh:
            svc = config.service(name)
            stype = config.registry.resolve(svc.type)
            self.types[name] = stype
            self.stats[name] = ServiceStats(
                name=svc.name, type=svc.type, description=stype.description
            )

    def new_unit(self, svc: ServiceConfig) -> ConfiguredService:
        """A service built from the current config, not yet bound nor in the suite."""
        return ConfiguredService(self, svc, self.types[svc.name])

    def retire(self, unit: ConfiguredService, grace: float) -> None:
        """Take a service out of the suite; its open connections get C{grace} seconds."""
        unit.grace = grace
        self.removeService(unit)
        self.draining.add(unit)
        unit.drain(grace).addBoth(lambda _: self.draining.discard(unit))

    def changed(self) -> None:
        """Listeners came or went: the ready file follows."""
        if self.ready_file:
            try:
                self._write_ready()
            except OSError as e:
                log.warn("cannot write {path}: {e}", path=self.ready_file, e=e)

    def listen(self) -> list[Listener]:
        """
        Bind every listener now.

        @raise StartupError: one line naming the service, the port and the fix;
            every listener bound before the failure is closed again.
        """
        self.started_at = self.reactor.seconds()
        try:
            for unit in self:
                if not unit.disabled:
                    unit.bind()
        except StartupError:
            self._rollback()
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
        self._install_sighup()
        if self.ready_file:
            self._write_ready()
        return [b.listener for b in self._bound]

    def _record(
        self, unit: ConfiguredService, listener: Listener, port: Any, factory: Any
    ) -> _Bound:
        unit.stats.listeners.append(listener)
        bound = _Bound(unit.config.name, listener, port, factory)
        self._bound.append(bound)
        return bound

    def _forget(self, unit: ConfiguredService, bound: _Bound) -> None:
        if bound.listener in unit.stats.listeners:
            unit.stats.listeners.remove(bound.listener)
        if bound in self._bound:
            self._bound.remove(bound)

    def _rollback(self) -> None:
        """Close whatever was bound: a failed startup leaves nothing listening."""
        for unit in self:
            for child in unit:
                if getattr(child, "bound", None) is not None:
                    child.bound.port.stopListening()
                    child.bound = None
        self._bound.clear()
        for stats in self.stats.values():
            stats.listeners.clear()

    def _tcp_factory(self, svc: ServiceConfig, stype: ServiceType, ctx: ServiceContext) -> Any:
        assert stype.tcp_factory is not None
        protocol_class: type[ServiceProtocol] | None = None
        if svc.trace:
            from portsuite.trace import TraceProtocol

            protocol_class = TraceProtocol.for_context(ctx)
        factory: Any = ServiceFactory(
            _built(stype.tcp_factory, ctx),
            ctx.stats,
            self.reactor,
            max_connections=svc.max_connections,
            max_per_host=svc.max_per_host,
            idle_timeout=svc.idle_timeout,
            refusal=stype.refusal,
            protocol_class=protocol_class,
            gate=self.gates.get(svc.name),
        )
        if svc.tls is not None:
            from portsuite import tls

            factory = tls.wrap_factory(factory, svc.tls, self.reactor)
        return factory

    def udp_wrapper(self, protocol: Any, ctx: ServiceContext) -> DatagramWrapper:
        """The wrapper every UDP service gets: counters and the UDP guards."""
        from portsuite.udp import GuardedDatagramWrapper, UdpPolicy

        own: Mapping[str, Any] = self.types[ctx.config.name].udp_policy
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
        if self.mirror is not None:
            # a worker of a service with workers = N shows the whole suite, summed
            snap: dict[str, Any] = json.loads(self.mirror)
            return snap
        now = self.reactor.seconds()
        return {
            "started_at": self.started_at,
            "now": now,
            "config": str(self.config.path) if self.config.path else None,
            "services": [self._service_snapshot(s.name, now) for s in self.config.services],
            "plugin_errors": list(self.plugin_errors.values()),
            # the control socket (portsuite status/reload/…), once the suite runs
            "control": str(self.control.port) if self.control is not None else None,
        }

    def _service_snapshot(self, name: str, now: float) -> dict[str, Any]:
        out = self.stats[name].as_dict(now)
        unit = self.namedServices.get(name)
        out["state"] = unit.state if unit is not None else "stopped"
        faults = getattr(unit, "faults", None)
        out["faults"] = faults.as_dict() if faults is not None else {}
        return out

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
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        if self._sighup is not None:
            import signal

            previous, self._sighup = self._sighup, None
            try:
                signal.signal(signal.SIGHUP, previous)
            except (TypeError, ValueError):
                pass
        for unit in list(self.draining):
            unit.close_connections()
        stops = []
        if self.control is not None:
            stops.append(defer.maybeDeferred(self.control.stopListening))
            self.control = None
        d = MultiService.stopService(self)
        if stops:
            d = defer.gatherResults([d, *stops], consumeErrors=True)
        self._bound.clear()
        self.listening = False
        log.info("portsuite: all listeners closed")
        return d


def _built(build: Any, ctx: ServiceContext) -> Any:
    """
    What a type's C{tcp_factory}/C{udp_protocol} builds; a bug in it (any exception but
    L{StartupError}) is logged with its traceback and stops startup with one line.
    """
    try:
        return build(ctx)
    except StartupError:
        raise
    except Exception as e:
        log.failure(
            "{service}: the type {type!r} failed to build its server",
            service=ctx.config.name,
            type=ctx.config.type,
        )
        raise StartupError(
            _(
                "cannot start [services.{name}]: type {type} failed to "
                "build its server ({error}); the log has the traceback"
            ).format(
                name=ctx.config.name,
                type=repr(ctx.config.type),
                error=f"{e.__class__.__name__}: {e}",
            )
        ) from None
