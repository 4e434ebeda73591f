"""
The TOML config, read into frozen, validated objects.

Every problem is collected, none raised at import: L{load} raises one L{ConfigError}
that holds one line per problem, each naming the file, the service, the key and the
fix, e.g.::

    config.toml: [services.web] port: 70000 is out of range; use 0-65535 (0 = any free port)
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from portsuite import endpoints
from portsuite.api import (
    DEFAULT_HOST,
    Accounts,
    ConfigError,
    Option,
    ServiceConfig,
    ServiceType,
    TLSConfig,
)
from portsuite.api.accounts import parse_users
from portsuite.api.i18n import normalize
from portsuite.lang import N_, _

# What the parser needs from the registry, without importing it: the plugin dirs in,
# something that resolves a type name (or raises LookupError with the fix) out.
TypeResolver = Any
MakeRegistry = Callable[[tuple[Path, ...]], TypeResolver]

SUITE_KEYS = ("host", "plugin_dirs", "reload_plugins", "lang")
COMMON_KEYS = (
    "type",
    "port",
    "host",
    "udp",
    "listen",
    "max_connections",
    "max_per_host",
    "idle_timeout",
    "trace",
    "tls",
    "users",
    "workers",
    "faults",
)
TLS_KEYS = ("cert", "key", "chain", "handshake_timeout")
LISTEN_PREFIXES = endpoints.KINDS


@attrs.frozen
class SuiteConfig:
    path: Path | None
    host: str
    plugin_dirs: tuple[Path, ...]
    services: tuple[ServiceConfig, ...]
    registry: TypeResolver = attrs.field(eq=False, repr=False)
    accounts: Accounts = attrs.field(factory=Accounts, repr=False)
    # [suite] reload_plugins: pick up edits to plugin-dir modules without a restart
    reload_plugins: bool = False
    # [services.NAME.faults], by service name (portsuite.faults.Faults); none: no entry
    faults: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    def service(self, name: str) -> ServiceConfig:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)


CONFIG_HINT = "config/config.toml"
MAX_WORKERS = 64

# past one machine, the real server each stateful type's clients reach unchanged
_REAL_SERVER = {
    "kv": N_("a real Redis/Valkey"),
    "sql": N_("a real MySQL/MariaDB"),
    "smtp": N_("a real mail server (Postfix, Dovecot)"),
    "pop3": N_("a real mail server (Postfix, Dovecot)"),
    "imap": N_("a real mail server (Postfix, Dovecot)"),
    "ssh": N_("a real OpenSSH server"),
    "telnet": N_("a real telnetd"),
    "dns": N_("a real DNS server (Unbound, BIND)"),
}


def _stateful_fix(stype: ServiceType) -> str:
    real = _(_REAL_SERVER.get(stype.name, N_("the real server of its protocol")))
    return _(
        "type {name!r} keeps state shared by all its clients, so it runs in one process; remove workers (past one machine, use {real}, which its clients reach unchanged)"
    ).format(name=stype.name, real=real)


@attrs.frozen
class Unchecked:
    """
    What the file checks must not judge again: C{options}, per service, the options
    that could not be read (a type's check still runs, but its lines about those keys
    are dropped: they would judge the default put in their place); C{faulty}, the
    services with any problem already (their TLS files are not worth opening yet).
    """

    options: dict[str, set[str]]
    faulty: set[str]


def read(path: str | Path) -> dict[str, Any]:
    """
    The TOML of a config file, as a dict. @raise ConfigError: one line (cannot read,
    not UTF-8, TOML syntax), naming the file and the fix.
    """
    path = Path(path)
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        fix = _("check the path given to -c")
        if not path.exists() and path.name == "config.toml" and Path(CONFIG_HINT).is_file():
            fix = _("there is none in this folder; use -c {CONFIG_HINT}").format(
                CONFIG_HINT=CONFIG_HINT
            )
        raise ConfigError(
            [
                _("{label}: cannot read the config ({strerror}); {fix}").format(
                    label=label, strerror=e.strerror, fix=fix
                )
            ]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            [
                _(
                    "{label}: line {line}: not valid UTF-8 (byte 0x{raw_e_start:02x}); save the file as UTF-8"
                ).format(label=label, line=line, raw_e_start=raw[e.start])
            ]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            [
                _("{label}: TOML syntax error: {e}; fix the syntax (see {CONFIG_HINT})").format(
                    label=label, e=e, CONFIG_HINT=CONFIG_HINT
                )
            ]
        ) from None


def parse(
    data: Mapping[str, Any],
    make_registry: MakeRegistry,
    base_dir: str | Path = ".",
    label: str = "<config>",
    path: Path | None = None,
) -> tuple[SuiteConfig, list[str], Unchecked]:
    """
    Validate a config already read (a dict shaped like the TOML file): every key of
    the suite and of each service, against the types that C{make_registry} finds.
    Returns the config, the problems found (one line each; the config is only usable
    when there are none) and which services the later checks should pass over. Checks that need the file system beyond the plugin
    dirs (a type's own C{check}, TLS files) are L{portsuite.loader}'s.
    """
    v = _Validator(Path(base_dir).resolve(), label)
    cfg = v.suite(data, path, make_registry)
    return cfg, v.errors, Unchecked(options=v.unchecked, faulty=v.faulty)


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    import difflib  # (only for a config with a mistake: not in every worker's memory)

    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return _("did you mean {key!r}?").format(key=close[0])
    return _("known keys: {keys}").format(keys=", ".join(known))


def _type_name(kind: type) -> str:
    return {
        str: _("a string"),
        int: _("an integer"),
        float: _("a number"),
        bool: _("true or false"),
        Path: _("a path (string)"),
        list: _("a list of strings (or of integers)"),
        dict: _("a table"),
    }.get(kind, kind.__name__)


class _Validator:
    def __init__(self, base_dir: Path, label: str):
        self.base_dir = base_dir
        self.label = label
        self.errors: list[str] = []
        self.error_keys: list[str] = []  # the key of each line of errors
        self.accounts = Accounts()
        self.unchecked: dict[str, set[str]] = {}  # per service, the options not readable
        self.faulty: set[str] = set()  # services with any problem
        self.faults: dict[str, Any] = {}  # service name -> portsuite.faults.Faults

    def err(self, where: str, key: str, text: str) -> None:
        prefix = f"{self.label}: {where}" + (f" {key}" if key else "")
        self.errors.append(f"{prefix}: {text}")
        self.error_keys.append(key)

    def _keys_since(self, count: int) -> set[str]:
        """The keys of the problems found since there were C{count}."""
        return set(self.error_keys[count:])

    def suite(
        self, data: Mapping[str, Any], path: Path | None, make_registry: MakeRegistry
    ) -> SuiteConfig:
        for key in data:
            if key not in ("suite", "services", "users"):
                fix = (
                    _("services go in [services.{key}]").format(key=key)
                    if isinstance(data[key], dict)
                    else _("the top level has only [suite], [users] and [services.NAME] tables")
                )
                self.err(f"[{key}]", "", _("unknown table; {fix}").format(fix=fix))
        suite = data.get("suite", {})
        if not isinstance(suite, dict):
            self.err("[suite]", "", _("must be a table; write it as [suite]"))
            suite = {}
        for key in suite:
            if key not in SUITE_KEYS:
                self.err(
                    "[suite]", key, _("unknown key; {hint}").format(hint=_suggest(key, SUITE_KEYS))
                )
        lang = suite.get("lang")
        if lang is not None and (not isinstance(lang, str) or normalize(lang) != lang.lower()):
            self.err(
                "[suite]",
                "lang",
                _('{value!r} is not a language here; use "en" or "fr"').format(value=lang),
            )
        host = self.host("[suite]", suite.get("host", DEFAULT_HOST))
        plugin_dirs: list[Path] = []
        raw_dirs = suite.get("plugin_dirs", [])
        if not isinstance(raw_dirs, list) or not all(isinstance(d, str) for d in raw_dirs):
            self.err("[suite]", "plugin_dirs", _('must be a list of folders, e.g. ["../plugins"]'))
        else:
            for d in raw_dirs:
                folder = self.resolve(d)
                if not folder.is_dir():
                    self.err(
                        "[suite]",
                        "plugin_dirs",
                        _("{folder} is not a folder; create it or fix the path").format(
                            folder=folder
                        ),
                    )
                else:
                    plugin_dirs.append(folder)
        reload_plugins = self.flag("[suite]", suite, "reload_plugins")
        registry = make_registry(tuple(plugin_dirs))
        self.accounts, user_errors = parse_users(data.get("users"), self.label)
        self.errors.extend(user_errors)
        self.error_keys.extend("users" for _ in user_errors)
        services = data.get("services", {})
        if not isinstance(services, dict):
            self.err("[services]", "", _("must be tables, e.g. [services.echo]"))
            services = {}
        if not services:
            self.err(
                "[services]", "", _('no service configured; add e.g. [services.echo] type = "echo"')
            )
        built = []
        for name, table in services.items():
            svc = self.service(name, table, host, registry)
            if svc is not None:
                built.append(svc)
        self.clashes(built)
        return SuiteConfig(
            path=path,
            host=host,
            plugin_dirs=tuple(plugin_dirs),
            services=tuple(built),
            registry=registry,
            accounts=self.accounts,
            reload_plugins=reload_plugins,
            faults=self.faults,
        )

    def resolve(self, value: str) -> Path:
        return (self.base_dir / Path(value).expanduser()).resolve()

    def host(self, where: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            self.err(where, "host", _('must be an address string, e.g. "127.0.0.1" or "0.0.0.0"'))
            return DEFAULT_HOST
        return value

    def service(
        self, name: str, table: Any, suite_host: str, registry: TypeResolver
    ) -> ServiceConfig | None:
        where = f"[services.{name}]"
        if not isinstance(table, dict):
            self.err(where, "", _('must be a table with at least type = "…"'))
            return None
        tname = table.get("type")
        if not isinstance(tname, str):
            self.err(
                where,
                "type",
                _('missing; add e.g. type = "echo" (portsuite plugins lists the types)'),
            )
            return None
        try:
            stype: ServiceType = registry.resolve(tname)
        except LookupError as e:
            self.err(where, "type", str(e))
            return None
        errors_before = len(self.errors)
        option_names = tuple(o.name for o in stype.options)
        for key in table:
            if key not in COMMON_KEYS and key not in option_names:
                self.err(
                    where,
                    key,
                    _("unknown key for type {type!r}; {hint}").format(
                        type=tname, hint=_suggest(key, COMMON_KEYS + option_names)
                    ),
                )
        host = self.host(where, table.get("host", suite_host))
        listen = self.listen(where, table.get("listen"))
        port = None
        if "port" in table:
            port = self.port(where, table["port"])
        elif not listen:
            if stype.default_port is None:
                self.err(where, "port", _("missing; set port = N (0 = any free port the OS picks)"))
            else:
                port = stype.default_port
        udp = self.flag(where, table, "udp", default=stype.udp_default)
        if udp and "udp" not in stype.transports:
            self.err(
                where,
                "udp",
                _("type {type!r} speaks only {transports}; remove udp").format(
                    type=tname, transports="/".join(sorted(stype.transports))
                ),
            )
        if stype.transports == {"udp"}:
            udp = True
        kinds = {endpoints.parse(d).kind for d in listen}
        if "udp" in kinds:
            if "udp" in stype.transports:
                udp = True  # listen = ["udp:…"] binds UDP, as written, without udp = true
            else:
                self.err(
                    where,
                    "listen",
                    _("type {tname!r} speaks only tcp; remove the udp: entries").format(
                        tname=tname
                    ),
                )
        if kinds - {"udp"} and "tcp" not in stype.transports:
            self.err(
                where,
                "listen",
                _("type {tname!r} speaks only udp; listen on it with udp:PORT").format(tname=tname),
            )
        tls = self.tls(where, table.get("tls"))
        if tls is not None and any(d.startswith("ssl:") for d in listen):
            self.err(
                where,
                "tls",
                _(
                    "the listen list has an ssl: endpoint too, which would wrap TLS twice; use tcp: endpoints with tls, or drop tls"
                ),
            )
        if tls is not None and "tcp" not in stype.transports:
            self.err(
                where,
                "tls",
                _("type {tname!r} has no TCP listener to put TLS on; remove tls").format(
                    tname=tname
                ),
            )
        options = {}
        before_options = len(self.errors)
        for opt in stype.options:
            value = self.option(where, opt, table)
            if value is not None or not opt.required:
                options[opt.name] = value
        svc = ServiceConfig(
            name=name,
            type=tname,
            host=host,
            port=port,
            udp=udp,
            tcp="tcp" in stype.transports,
            listen=listen,
            max_connections=self.limit(where, table, "max_connections", int),
            max_per_host=self.limit(where, table, "max_per_host", int),
            idle_timeout=self.limit(where, table, "idle_timeout", float),
            trace=self.flag(where, table, "trace"),
            tls=tls,
            options=options,
            base_dir=self.base_dir,
            users=self.users(where, table),
            workers=self.workers(where, table, stype, listen),
        )
        if "faults" in table:
            from portsuite import faults

            transports = {"tcp"} if svc.tcp else set()
            transports |= {"udp"} if svc.udp else set()
            found, problems = faults.check(table["faults"], transports)
            for line in problems:
                key, _sep, text = line.partition(": ")
                self.err(where, key, text)
            if found is not None and found.active:
                self.faults[name] = found
        if len(self.errors) != before_options:
            # these options are not as written: a type's check would judge their defaults
            self.unchecked[name] = {
                opt.name for opt in stype.options if opt.name in self._keys_since(before_options)
            }
        if len(self.errors) != errors_before:
            self.faulty.add(name)
        return svc

    def workers(
        self, where: str, table: Mapping[str, Any], stype: ServiceType, listen: tuple[str, ...]
    ) -> int:
        """C{workers = N}: N processes accept on the service's port (stateless types only)."""
        if "workers" not in table:
            return 1
        value = table["workers"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
            self.err(
                where,
                "workers",
                _(
                    "{value!r} must be an integer 1-{MAX_WORKERS} (processes accepting on the port); remove it for one"
                ).format(value=value, MAX_WORKERS=MAX_WORKERS),
            )
            return 1
        if value == 1:
            return 1
        if not stype.stateless:
            self.err(where, "workers", _stateful_fix(stype))
            return 1
        if "tcp" not in stype.transports:
            self.err(
                where,
                "workers",
                _("type {name!r} has no TCP listener; remove workers").format(name=stype.name),
            )
            return 1
        if any(endpoints.parse(d).kind not in ("tcp", "tcp6", "unix", "udp") for d in listen):
            self.err(
                where,
                "workers",
                _(
                    "work only with tcp: and unix: listeners (TLS: use tls = {…}); fix listen or remove workers"
                ),
            )
            return 1
        return value

    def users(self, where: str, table: Mapping[str, Any]) -> tuple[str, ...] | None:
        """C{users = ["alice", …]}: the accounts of [users] this service accepts."""
        if "users" not in table:
            return None
        value = table["users"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.err(where, "users", _('must be a list of names from [users], e.g. ["alice"]'))
            return None
        for name in value:
            if name not in self.accounts:
                known = ", ".join(self.accounts.names()) or _("none yet")
                self.err(
                    where,
                    "users",
                    _(
                        "{name!r} is not in [users] (known: {known}); add it there or remove it here"
                    ).format(name=name, known=known),
                )
        return tuple(value)

    def port(self, where: str, value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(
                where,
                "port",
                _("{value!r} is not a port number; use an integer 0-65535").format(value=value),
            )
            return None
        if not 0 <= value <= 65535:
            self.err(
                where,
                "port",
                _("{value} is out of range; use 0-65535 (0 = any free port)").format(value=value),
            )
            return None
        return value

    def flag(self, where: str, table: Mapping[str, Any], key: str, default: bool = False) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.err(
                where,
                key,
                _("{value!r} is not true or false; write {key} = true").format(
                    value=value, key=key
                ),
            )
            return False
        return value

    def limit(self, where: str, table: Mapping[str, Any], key: str, kind: type) -> Any:
        if key not in table:
            return None
        value = table[key]
        ok = isinstance(value, (int, float) if kind is float else int) and not isinstance(
            value, bool
        )
        if not ok or value <= 0:
            self.err(
                where,
                key,
                _("{value!r} must be a positive {kind}; remove it for no limit").format(
                    value=value, kind=_("number") if kind is float else _("integer")
                ),
            )
            return None
        return kind(value)

    def listen(self, where: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.err(
                where,
                "listen",
                _('must be a list of endpoint descriptions, e.g. ["tcp:7007", "unix:/tmp/x.sock"]'),
            )
            return ()
        out = []
        for desc in value:
            try:
                endpoints.parse(desc)
            except endpoints.DescriptionError as e:
                self.err(where, "listen", str(e))
                continue
            out.append(endpoints.resolve_paths(desc, self.resolve))
        return tuple(out)

    def tls(self, where: str, value: Any) -> TLSConfig | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.err(
                where,
                "tls",
                _('must be a table: tls = { cert = "server.crt", key = "server.key" }'),
            )
            return None
        for key in value:
            if key not in TLS_KEYS:
                self.err(
                    where,
                    f"tls.{key}",
                    _("unknown key; {hint}").format(hint=_suggest(key, TLS_KEYS)),
                )
        paths = {}
        timeout = value.get("handshake_timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            self.err(
                where,
                "tls.handshake_timeout",
                _("{timeout!r} must be a positive number of seconds").format(timeout=timeout),
            )
            timeout = 10.0
        for key in ("cert", "key", "chain"):
            v = value.get(key)
            if v is None:
                if key != "chain":
                    self.err(
                        where,
                        f"tls.{key}",
                        _("missing; portsuite cert makes a cert and key for localhost"),
                    )
                continue
            if not isinstance(v, str):
                self.err(where, f"tls.{key}", _("must be a file path string"))
                continue
            paths[key] = self.resolve(v)
        if "cert" not in paths or "key" not in paths:
            return None
        return TLSConfig(
            cert=paths["cert"],
            key=paths["key"],
            chain=paths.get("chain"),
            handshake_timeout=float(timeout),
        )

    def option(self, where: str, opt: Option, table: Mapping[str, Any]) -> Any:
        if opt.name not in table:
            if opt.required:
                self.err(
                    where,
                    opt.name,
                    _("missing; this type needs it ({opt_help_or__typ})").format(
                        opt_help_or__typ=_(opt.help) if opt.help else _type_name(opt.kind)
                    ),
                )
            return opt.default
        raw = table[opt.name]
        value: Any
        if opt.kind is bool:
            ok = isinstance(raw, bool)
            value = raw
        elif opt.kind is int:
            ok = isinstance(raw, int) and not isinstance(raw, bool)
            value = raw
        elif opt.kind is float:
            ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
            value = float(raw) if ok else raw
        elif opt.kind is Path:
            ok = isinstance(raw, str) and raw != ""
            value = self.resolve(raw) if ok else raw
        elif opt.kind is list:
            # a list of strings, or of integers (ftp's passive_ports = [30000, 30099])
            ok = isinstance(raw, list) and (
                all(isinstance(v, str) for v in raw)
                or all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
            )
            value = tuple(raw) if ok else raw
        elif opt.kind is dict:
            ok = isinstance(raw, dict)
            value = raw
        else:
            ok = isinstance(raw, str)
            value = raw
        if not ok:
            hint = f" ({_(opt.help)})" if opt.help else ""  # an N_() of the type's module
            self.err(
                where,
                opt.name,
                _("{value!r} is not {kind}{hint}").format(
                    value=raw, kind=_type_name(opt.kind), hint=hint
                ),
            )
            return opt.default
        if opt.choices is not None and value not in opt.choices:
            self.err(
                where,
                opt.name,
                _("{raw!r} is not allowed; use one of {join_map_repr_op}").format(
                    raw=raw, join_map_repr_op=", ".join(map(repr, opt.choices))
                ),
            )
            return opt.default
        if opt.check is not None:
            problem = opt.check(value)
            if problem:
                self.err(where, opt.name, problem)
                return opt.default
        return value

    def clashes(self, services: list[ServiceConfig]) -> None:
        """Two services on the same transport, port and (overlapping) host."""
        taken: list[tuple[str, str, int, str]] = []
        for svc in services:
            if not svc.port or svc.listen:
                continue
            transports = (["tcp"] if svc.tcp else []) + (["udp"] if svc.udp else [])
            for t in transports:
                for t2, host2, port2, name2 in taken:
                    if t == t2 and svc.port == port2 and _overlap(svc.host, host2):
                        self.err(
                            f"[services.{svc.name}]",
                            "port",
                            _(
                                "{transport} {host}:{port} is already taken by "
                                "[services.{other}]; choose another port (1 service = 1 port)"
                            ).format(transport=t, host=svc.host, port=svc.port, other=name2),
                        )
                        break
                else:
                    taken.append((t, svc.host, svc.port, svc.name))


def _overlap(a: str, b: str) -> bool:
    """Would binding the same port on hosts a and b clash?"""
    wildcard = ("0.0.0.0", "", "::")
    return a == b or a in wildcard or b in wildcard
