"""
Redis's configuration parameters that kv has no use for (encodings, eviction, lazy
freeing, replication…): CONFIG GET answers Redis 7.0's defaults, CONFIG SET checks
a value as Redis does and keeps it, so clients and tools that tune them work.
kv's own settings (timeout, maxclients, requirepass…) are in L{server.KVServer}.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from portsuite_services.kv.resp import string2ll


def _defaults() -> dict[str, str]:
    try:
        return json.loads(Path(__file__).with_name("redis_config.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):  # pragma: no cover - shipped with the package
        return {}


DEFAULTS = _defaults()

IMMUTABLE = frozenset(
    (
        "daemonize",
        "databases",
        "io-threads",
        "io-threads-do-reads",
        "supervised",
        "syslog-enabled",
        "syslog-ident",
        "syslog-facility",
        "always-show-logo",
        "set-proc-title",
        "aclfile",
        "cluster-enabled",
        "cluster-config-file",
        "cluster-port",
        "appendfilename",
        "appenddirname",
        "tcp-backlog",
        "unixsocketperm",
        "disable-thp",
        "enable-protected-configs",
        "enable-debug-command",
        "enable-module-command",
        "oom-score-adj-values",
        "bind",
        "bind-source-addr",
        "dbfilename",
        "appendonly",
        "tls-port",
        "tls-cluster",
        "tls-replication",
        "replicaof",
        "slaveof",
        "server_cpulist",
        "bio_cpulist",
        "aof_rewrite_cpulist",
        "bgsave_cpulist",
        "ignore-warnings",
        "proc-title-template",
    )
)
ENUMS = {
    "maxmemory-policy": (
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "noeviction",
    ),
    "loglevel": ("debug", "verbose", "notice", "warning"),
    "repl-diskless-load": ("disabled", "on-empty-db", "swapdb"),
    "sanitize-dump-payload": ("no", "yes", "clients"),
    "acl-pubsub-default": ("allchannels", "resetchannels"),
    "cluster-preferred-endpoint-type": ("ip", "hostname", "unknown-endpoint"),
    "propagation-error-behavior": ("ignore", "panic", "panic-on-replicas"),
    "shutdown-on-sigint": ("default", "save", "nosave", "now", "force"),
    "shutdown-on-sigterm": ("default", "save", "nosave", "now", "force"),
    "oom-score-adj": ("no", "yes", "relative", "absolute"),
}
MEMORY = frozenset(
    (
        "maxmemory",
        "client-query-buffer-limit",
        "repl-backlog-size",
        "auto-aof-rewrite-min-size",
        "active-defrag-ignore-bytes",
        "hash-max-listpack-value",
        "hash-max-ziplist-value",
        "zset-max-listpack-value",
        "zset-max-ziplist-value",
        "stream-node-max-bytes",
        "proto-max-bulk-len",
        "maxmemory-clients",
    )
)
_UNITS = {"": 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 1024**2, "g": 10**9, "gb": 1024**3}
_MEM = re.compile(r"^(-?\d+)([a-z]*)$")
LLONG_MAX = 2**63 - 1


def memory_value(text: str) -> int | None:
    """Redis's C{memtoull}: a number with an optional unit (100mb, 1gb, 5k)."""
    m = _MEM.match(text.lower())
    if m is None or m.group(2) not in _UNITS:
        return None
    v = int(m.group(1)) * _UNITS[m.group(2)]
    return v if 0 <= v <= LLONG_MAX else None


_OLD_NAMES = {  # Redis 7.0's aliases: the ziplist names of the listpack parameters
    "hash-max-ziplist-entries": "hash-max-listpack-entries",
    "hash-max-ziplist-value": "hash-max-listpack-value",
    "zset-max-ziplist-entries": "zset-max-listpack-entries",
    "zset-max-ziplist-value": "zset-max-listpack-value",
    "list-max-ziplist-size": "list-max-listpack-size",
}
ALIASES = _OLD_NAMES | {new: old for old, new in _OLD_NAMES.items()}


def zset_limits(params: dict[str, str]) -> tuple[int, int]:
    """zset-max-listpack-entries and zset-max-listpack-value, as CONFIG SET left them."""
    return (
        int(params.get("zset-max-listpack-entries", "128")),
        int(params.get("zset-max-listpack-value", "64")),
    )


def hash_limits(params: dict[str, str]) -> tuple[int, int]:
    """hash-max-listpack-entries and hash-max-listpack-value, as CONFIG SET left them."""
    return (
        int(params.get("hash-max-listpack-entries", "512")),
        int(params.get("hash-max-listpack-value", "64")),
    )


def _fail(name: str, why: str) -> str:
    return f"ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"


def check(name: str, value: bytes) -> tuple[str | None, str]:
    """
    Redis's validation of C{CONFIG SET name value}: C{(error, stored value)};
    error None when the value is accepted.
    """
    text = value.decode("utf-8", "replace")
    if name in IMMUTABLE:
        return _fail(name, "can't set immutable config"), text
    default = DEFAULTS[name]
    if name in ENUMS:
        low = text.lower()
        if low not in ENUMS[name]:
            return _fail(
                name, f"argument(s) must be one of the following: {', '.join(ENUMS[name])}"
            ), text
        return None, low
    if name == "maxmemory-clients" and text.endswith("%"):
        pct = string2ll(text[:-1].encode())
        if pct is None or not 0 <= pct <= 100:
            return _fail(name, "argument must be a memory or percent value"), text
        return None, text
    if name in MEMORY:
        v = memory_value(text)
        if v is None:
            return _fail(name, "argument must be a memory value"), text
        return None, str(v)
    if default in ("yes", "no"):
        low = text.lower()
        if low not in ("yes", "no"):
            return _fail(name, "argument must be 'yes' or 'no'"), text
        return None, low
    if re.fullmatch(r"-?\d+", default):
        v = string2ll(text.encode())
        if v is None:
            return _fail(name, "argument couldn't be parsed into an integer"), text
        if v < 0 and not default.startswith("-") and name not in _SIGNED:
            return _fail(name, "argument must be between 0 and 9223372036854775807 inclusive"), text
        if name == "hz":
            v = min(max(v, 1), 500)  # Redis clamps it
        return None, str(v)
    if name == "save":
        words = text.split()
        if len(words) % 2 or any(string2ll(w.encode()) is None for w in words):
            return _fail(name, "Invalid save parameters"), text
        return None, " ".join(words)
    if name == "client-output-buffer-limit":
        words = text.split()
        if not words or len(words) % 4:
            return _fail(name, "Wrong number of arguments in buffer limit configuration."), text
        for i in range(0, len(words), 4):
            if words[i].lower() not in ("normal", "slave", "replica", "pubsub"):
                return _fail(
                    name, "Invalid client class specified in buffer limit configuration."
                ), text
            if (
                any(memory_value(w) is None for w in words[i + 1 : i + 3])
                or string2ll(words[i + 3].encode()) is None
            ):
                return _fail(
                    name,
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
                ), text
        return None, text
    if name == "notify-keyspace-events":
        if any(ch not in "Ag$lshzxeKEtmdn" for ch in text):
            return _fail(name, "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."), text
        return None, text
    return None, text


_SIGNED = frozenset(
    (
        "slowlog-log-slower-than",
        "list-max-listpack-size",
        "list-max-ziplist-size",
        "lua-time-limit",
        "busy-reply-threshold",
        "watchdog-period",
        "cluster-node-timeout",
    )
)
