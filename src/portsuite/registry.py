"""
Service types: what kinds of server the suite can start, and where each came from.

A L{ServiceType} knows its transports, its default port, its options and how to build
its Twisted factory. Every type reaches the suite through one L{Registry}, whatever its
origin:

  - built-in types and installed packages: entry points in the group
    C{portsuite.services} (portsuite's own built-ins are declared there too);
  - drop-in modules in a C{plugin_dirs} folder that define a C{ServiceType} at module
    level;
  - C{type = "module:Class"}: any C{Protocol}, C{ServerFactory} or
    C{DatagramProtocol} subclass importable from a plugin dir or the import path.

Plugin-dir modules are imported under a package of their own (L{PluginPackage}:
C{portsuite_plugins.FOLDER_DIGEST.MODULE}), never from C{sys.path}: a plugin file
named C{http.py} or C{time.py} neither shadows the standard library nor is shadowed by
it, and two folders may hold modules of the same name. A plugin module imports its
neighbours relatively (C{from . import helpers}). C{module:Class} looks in the plugin
dirs first (in their order), then on the import path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol, ServerFactory

from portsuite.api import TRANSPORTS, ServiceType
from portsuite.lang import _

ENTRY_POINT_GROUP = "portsuite.services"
# the distributions whose types are portsuite's own (services/pyproject.toml)
BUILTIN_DISTRIBUTIONS = ("portsuite", "portsuite-services")


def type_from_class(spec: str, cls: type) -> ServiceType:
    """
    The ad-hoc type behind C{type = "module:Class"}: no registration needed.
    """
    how: dict[str, Any]
    if isinstance(cls, type) and issubclass(cls, DatagramProtocol):
        how = {"transports": frozenset({"udp"}), "udp_protocol": lambda ctx: cls()}
    elif isinstance(cls, type) and issubclass(cls, Factory):
        how = {"tcp_factory": lambda ctx: cls()}
    elif isinstance(cls, type) and issubclass(cls, Protocol):
        how = {"tcp_factory": lambda ctx: ServerFactory.forProtocol(cls)}
    else:
        raise TypeError(
            _("{spec} is not a Protocol, ServerFactory or DatagramProtocol subclass").format(
                spec=spec
            )
        )
    doc = (cls.__doc__ or "").strip().splitlines()
    module = cls.__module__.rpartition(".")[2] if cls.__module__.startswith(PLUGINS) else None
    description = doc[0] if doc else f"{cls.__qualname__} from {module or cls.__module__}"
    return ServiceType(
        name=spec, description=description, default_port=None, source=f"class {spec}", **how
    )


PLUGINS = "portsuite_plugins"  # the package every plugin dir's package lives in


class PluginPackage:
    """
    The package a plugin dir's modules are imported under:
    C{portsuite_plugins.NAME_DIGEST}, its C{__path__} the folder alone, so the
    standard import machinery finds C{NAME_DIGEST.http} in it and nowhere else.
    """

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        digest = hashlib.sha256(str(self.folder).encode("utf-8", "surrogateescape"))
        stem = "".join(c if c.isalnum() else "_" for c in self.folder.name) or "plugins"
        self.name = f"{PLUGINS}.{stem}_{digest.hexdigest()[:10]}"
        _package(PLUGINS, [])
        _package(self.name, [str(self.folder)])

    def has(self, module_name: str) -> bool:
        """Whether the folder holds the (first part of the) dotted C{module_name}."""
        first = module_name.split(".", 1)[0]
        return (self.folder / f"{first}.py").is_file() or (
            self.folder / first / "__init__.py"
        ).is_file()

    def import_module(self, module_name: str) -> ModuleType:
        return importlib.import_module(f"{self.name}.{module_name}")


def _package(name: str, path: list[str]) -> ModuleType:
    """A package with no code of its own (like a namespace package), made once."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = path
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        parent, _dot, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    return module


@attrs.define
class Registry:
    """
    Every service type the suite can see, by name; errors met while looking are kept
    in C{problems} (shown by C{portsuite plugins}) rather than raised.
    """

    loaded: dict[str, ServiceType] = attrs.field(factory=dict)
    # entry points found but not imported yet: a suite imports only the types it uses
    pending: dict[str, Any] = attrs.field(factory=dict)
    problems: list[str] = attrs.field(factory=list)
    plugin_dirs: tuple[Path, ...] = ()
    packages: list[PluginPackage] = attrs.field(factory=list)

    @property
    def types(self) -> dict[str, ServiceType]:
        """Every type, each entry point imported (for listings such as C{portsuite plugins})."""
        for name in list(self.pending):
            self._load(name)
        return self.loaded

    def names(self) -> list[str]:
        """Every type name, without importing anything."""
        return sorted(set(self.loaded) | set(self.pending))

    def add(self, stype: ServiceType, source: str) -> None:
        if stype.name in self.loaded or stype.name in self.pending:
            other = self.loaded.get(stype.name)
            where = other.source if other else _("an entry point")
            self.problems.append(
                _("type {name!r} from {source} ignored: already defined by {where}").format(
                    name=stype.name, source=source, where=where
                )
            )
            return
        if not stype.transports <= TRANSPORTS:
            self.problems.append(
                _(
                    "type {name!r} from {source} ignored: transports must be among {sorted_TRANSPORT}"
                ).format(name=stype.name, source=source, sorted_TRANSPORT=sorted(TRANSPORTS))
            )
            return
        self.loaded[stype.name] = attrs.evolve(stype, source=source)

    @classmethod
    def discover(cls, plugin_dirs: tuple[Path, ...] = ()) -> Registry:
        """Look at entry points, then at every module of each plugin dir."""
        reg = cls(plugin_dirs=tuple(plugin_dirs))
        reg._find_entry_points()
        for folder in plugin_dirs:
            reg._load_plugin_dir(folder)
        return reg

    def _find_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in self.pending:
                self.problems.append(
                    _("entry point {name} = {value} ignored: the name is taken").format(
                        name=ep.name, value=ep.value
                    )
                )
                continue
            self.pending[ep.name] = ep

    def _load(self, name: str) -> ServiceType | None:
        """Import one pending entry point; None (and a problem noted) if it fails."""
        ep = self.pending.pop(name)
        dist = ep.dist.name if ep.dist is not None else "?"
        source = (
            "built-in"
            if dist in BUILTIN_DISTRIBUTIONS
            else _("entry point ({dist})").format(dist=dist)
        )
        try:
            stype = ep.load()
        except Exception as e:
            self.problems.append(
                _("entry point {name} = {value} ({dist}) failed to load: {e!r}").format(
                    name=ep.name, value=ep.value, dist=dist, e=e
                )
            )
            return None
        if not isinstance(stype, ServiceType) or stype.name != ep.name:
            self.problems.append(
                _(
                    "entry point {name} = {value} ({dist}) is not a ServiceType named {name!r}"
                ).format(name=ep.name, value=ep.value, dist=dist)
            )
            return None
        self.add(stype, source)
        return self.loaded.get(stype.name)

    def _load_plugin_dir(self, folder: Path) -> None:
        if not folder.is_dir():
            self.problems.append(_("plugin dir {folder} does not exist").format(folder=folder))
            return
        package = PluginPackage(folder)
        self.packages.append(package)
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                module = package.import_module(path.stem)
            except Exception as e:
                self.problems.append(
                    _("plugin {path} failed to import: {e!r}").format(path=path, e=e)
                )
                continue
            for value in vars(module).values():
                if isinstance(value, ServiceType):
                    self.add(value, _("plugin dir ({path})").format(path=path))

    def resolve(self, name: str) -> ServiceType:
        """
        The type called C{name}: a registered name, or C{module:Class}.

        @raise LookupError: with a text that says what to do.
        """
        if name in self.loaded:
            return self.loaded[name]
        if name in self.pending:
            stype = self._load(name)
            if stype is None:
                raise LookupError(
                    _("type {name!r} cannot be loaded: {self_problems_1}").format(
                        name=name, self_problems_1=self.problems[-1]
                    )
                )
            return stype
        if ":" in name:
            module_name, _colon, attr = name.partition(":")
            try:
                module = self._import(module_name)
            except ImportError as e:
                where = ", ".join(str(d) for d in self.plugin_dirs) or "no plugin_dirs set"
                raise LookupError(
                    _(
                        "cannot import module {module_name!r} ({e}); put {module_name}.py in a plugin dir ({where}) or install it"
                    ).format(module_name=module_name, e=e, where=where)
                ) from None
            cls: Any = module
            for part in attr.split("."):
                cls = getattr(cls, part, None)
                if cls is None:
                    raise LookupError(
                        _(
                            "module {module_name!r} has no {attr!r}; check the class name after the colon"
                        ).format(module_name=module_name, attr=attr)
                    )
            try:
                return type_from_class(name, cls)  # type: ignore[arg-type]
            except TypeError as e:
                raise LookupError(str(e)) from None
        known = ", ".join(self.names()) or _("none")
        raise LookupError(f'unknown type {name!r}; known types: {known} (or use "module:Class")')

    def _import(self, module_name: str) -> ModuleType:
        """C{module_name} from the first plugin dir that has it, else from the import path."""
        for package in self.packages:
            if package.has(module_name):
                return package.import_module(module_name)
        return importlib.import_module(module_name)
