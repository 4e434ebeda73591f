"""
Plugins reloaded on save (C{[suite] reload_plugins = true}, or C{twistd portsuite --dev}).

A module saved in a C{plugin_dirs} folder is executed again, as a new module object
under the name it was imported as, within a second (C{twisted.internet.inotify} where
the platform has it, else a poll of the files' times every L{POLL} seconds). Every
service whose type comes from that module (C{type = "module:Class"}, or a named
C{ServiceType} defined there) then builds its I{next} connections with the new code:
its listeners stay bound, the connections already open keep the objects of the old
code. A UDP service gets a new protocol object.

A file that does not compile or import keeps the previous version running; the error
(file, line, message) goes to the log and to the snapshot's C{plugin_errors} until the
file is fixed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import attrs
from twisted.logger import Logger

from portsuite.api import ServiceType
from portsuite.registry import type_from_class

log = Logger(namespace="portsuite")

POLL = 0.5  # seconds between two looks at the files, without inotify
SETTLE = 0.1  # seconds to wait after an event (editors write in several steps)


class Watcher:
    """Follows the plugin dirs of a suite; L{changed} reloads one file."""

    def __init__(self, suite: Any, use_inotify: bool = True):
        self.suite = suite
        self.use_inotify = use_inotify
        self.reactor = suite.reactor
        self.folders = [Path(d) for d in suite.config.plugin_dirs]
        self.pending: dict[Path, Any] = {}
        self.notifier: Any = None
        self.poller: Any = None
        self.seen: dict[Path, tuple[int, int]] = {}
        self.how = ""

    def start(self) -> None:
        try:
            if not self.use_inotify:
                raise ImportError("polling asked for")
            from twisted.internet import inotify
            from twisted.python.filepath import FilePath

            notifier = inotify.INotify(reactor=self.reactor)
            notifier.startReading()
            mask = inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_CREATE
            for folder in self.folders:
                notifier.watch(FilePath(str(folder)), mask=mask, callbacks=[self._notified])
            self.notifier = notifier
            self.how = "inotify"
        except Exception:
            from twisted.internet.task import LoopingCall

            self.seen = self._times()
            self.poller = LoopingCall(self._poll)
            self.poller.clock = self.reactor
            self.poller.start(POLL, now=False)
            self.how = f"polling every {POLL}s"
        log.info(
            "plugins: reloading modules of {folders} on save ({how})",
            folders=", ".join(map(str, self.folders)) or "no plugin dir",
            how=self.how,
        )

    def stop(self) -> None:
        for call in self.pending.values():
            if call.active():
                call.cancel()
        self.pending.clear()
        if self.notifier is not None:
            self.notifier.loseConnection()
            self.notifier = None
        if self.poller is not None and self.poller.running:
            self.poller.stop()
        self.poller = None

    def _notified(self, ignored: Any, filepath: Any, mask: int) -> None:
        raw = filepath.path
        self._soon(Path(os.fsdecode(raw)))

    def _soon(self, path: Path) -> None:
        if path.suffix != ".py" or path.name.startswith((".", "_")):
            return
        call = self.pending.get(path)
        if call is not None and call.active():
            call.reset(SETTLE)
            return
        self.pending[path] = self.reactor.callLater(SETTLE, self._due, path)

    def _due(self, path: Path) -> None:
        self.pending.pop(path, None)
        if path.exists():
            reload_file(self.suite, path)

    def _times(self) -> dict[Path, tuple[int, int]]:
        out = {}
        for folder in self.folders:
            for path in folder.glob("*.py"):
                try:
                    st = path.stat()
                except OSError:
                    continue
                out[path] = (st.st_mtime_ns, st.st_size)
        return out

    def _poll(self) -> None:
        now = self._times()
        for path, stamp in now.items():
            if self.seen.get(path) != stamp:
                self._soon(path)
        self.seen = now


def watch(suite: Any) -> Watcher:
    watcher = Watcher(suite)
    watcher.start()
    return watcher


def _error_line(path: Path, e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        return f"{e.filename or path}:{e.lineno}: {type(e).__name__}: {e.msg}"
    line = "?"
    for frame in traceback.extract_tb(e.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = str(frame.lineno)
    return f"{path}:{line}: {type(e).__name__}: {e}"


def _module_names(path: Path) -> list[str]:
    """The names this file was imported as."""
    names = []
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if origin and Path(origin).resolve() == path:
            names.append(name)
    return names


def reload_file(suite: Any, path: Path) -> bool:
    """Run a saved plugin file again and move its services to the new code; False on error."""
    path = path.resolve()
    names = _module_names(path)
    if not names:
        # not imported yet (a new file): only say whether it compiles
        try:
            compile(path.read_bytes(), str(path), "exec")
        except (SyntaxError, ValueError, OSError) as e:
            return _failed(suite, path, e)
        suite.plugin_errors.pop(str(path), None)
        return True
    modules = {}
    for name in names:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        old = sys.modules.get(name)
        sys.modules[name] = module  # some code (dataclasses…) looks itself up while running
        try:
            spec.loader.exec_module(module)
        except BaseException as e:
            if old is not None:
                sys.modules[name] = old
            if not isinstance(e, Exception):
                raise
            return _failed(suite, path, e)
        modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
    if suite.plugin_errors.pop(str(path), None):
        log.info("plugins: {path} is fixed", path=path)
    moved = []
    for unit in list(suite):
        stype = _new_type(unit, path, modules)
        if stype is None:
            continue
        try:
            swap(suite, unit, stype)
        except Exception as e:
            # the new code cannot build its server: the old one goes on
            return _failed(suite, path, e)
        moved.append(unit.name)
    log.info(
        "plugins: {path} reloaded; {services}",
        path=path,
        services=(
            f"new connections of {', '.join(moved)} use the new code"
            if moved
            else "no service uses it"
        ),
    )
    return True


def _failed(suite: Any, path: Path, e: BaseException) -> bool:
    line = _error_line(path, e)
    suite.plugin_errors[str(path)] = line
    log.error("plugins: {line} (the previous version keeps running)", line=line)
    return False


def _new_type(unit: Any, path: Path, modules: dict[str, Any]) -> ServiceType | None:
    """The unit's type, built again from the reloaded module, if it comes from it."""
    spec = unit.config.type
    old: ServiceType = unit.stype
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        for name, module in modules.items():
            if name == module_name or name.endswith("." + module_name):
                obj: Any = module
                for part in attr.split("."):
                    obj = getattr(obj, part, None)
                if obj is None:
                    log.error("plugins: {path} has no {attr} any more", path=path, attr=attr)
                    return None
                try:
                    return type_from_class(spec, obj)
                except TypeError as e:
                    log.error("plugins: {e}", e=e)
                    return None
        return None
    if old.source != f"plugin dir ({path})":
        return None
    for module in modules.values():
        for value in vars(module).values():
            if isinstance(value, ServiceType) and value.name == old.name:
                return attrs.evolve(value, source=old.source)
    return None


def swap(suite: Any, unit: Any, stype: ServiceType) -> None:
    """The unit's next connections (its next datagrams) go to the new type's code."""
    factory = unit._service_factory()
    inner = None
    if factory is not None and stype.tcp_factory is not None:
        inner = stype.tcp_factory(unit.context)  # may raise: then nothing has changed yet
    unit.stype = stype
    suite.types[unit.name] = stype
    registry = getattr(suite.config, "registry", None)
    loaded = getattr(registry, "loaded", None)
    if isinstance(loaded, dict) and stype.name in loaded:
        loaded[stype.name] = stype
    if inner is not None:
        inner.noisy = False
        inner.doStart()
        factory.wrappedFactory = inner
    for child in unit:
        bound = getattr(child, "bound", None)
        wrapper: Any = getattr(bound, "factory", None)
        if bound is None or not hasattr(wrapper, "wrapped") or stype.udp_protocol is None:
            continue
        old = wrapper.wrapped
        new = stype.udp_protocol(unit.context)
        new.noisy = False
        try:
            old.doStop()
        except Exception:
            log.failure("plugins: {service}: the old protocol failed to stop", service=unit.name)
        wrapper.wrapped = new
        new.makeConnection(wrapper)
