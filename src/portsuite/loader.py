"""
From a config file to a validated L{SuiteConfig}: read, parse against the registry,
then the checks that look at the file system (a type's own C{check}, TLS files).

Every problem is collected, none raised early: L{load} raises one L{ConfigError}
that holds one line per problem, each naming the file, the service, the key and the
fix, e.g.::

    config.toml: [services.web] port: 70000 is out of range; use 0-65535 (0 = any free port)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portsuite import config as configmod
from portsuite.api import ConfigError
from portsuite.config import SuiteConfig, Unchecked
from portsuite.registry import Registry


def load(path: str | Path, registry: Registry | None = None) -> SuiteConfig:
    """Read and validate a config file. @raise ConfigError: every problem at once."""
    path = Path(path)
    data = configmod.read(path)
    return from_dict(
        data, base_dir=path.resolve().parent, label=str(path), path=path, registry=registry
    )


def from_dict(
    data: Mapping[str, Any],
    base_dir: str | Path = ".",
    label: str = "<config>",
    path: Path | None = None,
    registry: Registry | None = None,
) -> SuiteConfig:
    """Validate a config already parsed (a dict shaped like the TOML file)."""

    def make_registry(plugin_dirs: tuple[Path, ...]) -> Registry:
        return registry if registry is not None else Registry.discover(plugin_dirs)

    cfg, errors, unchecked = configmod.parse(
        data, make_registry, base_dir=base_dir, label=label, path=path
    )
    errors.extend(file_checks(cfg, label, unchecked))
    if errors:
        raise ConfigError(errors)
    return cfg


def file_checks(cfg: SuiteConfig, label: str, skip: Unchecked | None = None) -> list[str]:
    """What a service's type and its TLS files say about it, one line each."""
    skip = skip or Unchecked(options={}, faulty=set())
    errors: list[str] = []
    for svc in cfg.services:
        where = f"{label}: [services.{svc.name}]"
        stype = cfg.registry.resolve(svc.type)
        if stype.check is not None:
            unread = skip.options.get(svc.name, set())
            errors.extend(
                f"{where} {text}"
                for text in stype.check(svc)
                if text.split(":", 1)[0].split(".", 1)[0] not in unread
            )
        if svc.tls is not None and svc.name not in skip.faulty:
            # only here: pyOpenSSL and cryptography cost a config without TLS ~6 MiB
            from portsuite import tlscheck

            errors.extend(f"{where} tls: {text}" for text in tlscheck.check(svc.tls))
    return errors
