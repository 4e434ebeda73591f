"""Server commands: COMMAND (with Redis's own docs), INFO, CONFIG, DBSIZE, FLUSHALL, SAVE ..."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from portsuite_services.kv import bigwork, glob, lazyfree
from portsuite_services.kv.commands import (
    COMMANDS,
    NO_REPLY,
    SYNTAX,
    Command,
    CommandError,
    command,
    container,
    help_command,
    wrong_arity,
)
from portsuite_services.kv.commands.connection import REDIS_VERSION
from portsuite_services.kv.resp import (
    OK,
    Map,
    Preencoded,
    Simple,
    Verbatim,
)

S = "server"


# -- COMMAND ---------------------------------------------------------------------


def _load_redis_replies() -> dict[str, dict[str, str]]:
    """redis-server 7.0's own COMMAND INFO/DOCS replies (see C{_capture.py})."""
    path = Path(__file__).with_name("redis_commands.json")
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


_REDIS = _load_redis_replies()
_CONTAINERS = ("client", "config", "command")  # ours have fewer subcommands than Redis's


def _captured(cmd: Command, kind: str) -> Preencoded | None:
    entry = _REDIS.get(cmd.name) if cmd.parent is None and cmd.name not in _CONTAINERS else None
    if not entry or f"{kind}2" not in entry or f"{kind}3" not in entry:
        return None
    return Preencoded(entry[f"{kind}2"].encode("latin-1"), entry[f"{kind}3"].encode("latin-1"))


def _command_info(cmd: Command) -> Any:
    captured = _captured(cmd, "info")
    if captured is not None:
        return captured
    return [
        cmd.fullname.encode(),
        cmd.arity,
        [Simple(f) for f in sorted(cmd.flags) if f not in ("pubsub", "noauth")]
        + ([Simple("no_auth")] if "noauth" in cmd.flags else []),
        cmd.first_key,
        cmd.last_key,
        cmd.key_step,
        [Simple(f"@{cmd.group}")],
        [],
        [],
        [_command_info(s) for s in cmd.subcommands.values()],
    ]


def _command_docs(cmd: Command) -> Any:
    captured = _captured(cmd, "docs")
    if captured is not None:
        return captured
    doc: list[tuple[bytes, Any]] = [
        (b"summary", cmd.summary.encode()),
        (b"since", b"1.0.0"),
        (b"group", cmd.group.encode()),
    ]
    if cmd.subcommands:
        doc.append(
            (
                b"subcommands",
                Map((s.fullname.encode(), _command_docs(s)) for s in cmd.subcommands.values()),
            )
        )
    return Map(doc)


container(
    "command",
    S,
    "Get array of Redis command details",
    alone=lambda c, argv: [_command_info(cmd) for cmd in COMMANDS.values()],
)


help_command(
    "command",
    S,
    (
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
        "GETKEYSANDFLAGS <full-command>",
        "    Return the keys and the access flags from a full Redis command.",
    ),
)


@command("count", 2, "", S, "Get total number of Redis commands", parent="command")
def command_count(c: Any, argv: list[bytes]) -> Any:
    return len(COMMANDS)


@command("info", -2, "", S, "Get array of specific Redis command details", parent="command")
def command_info(c: Any, argv: list[bytes]) -> Any:
    names = argv[2:] or list(COMMANDS)
    return bigwork.compute(c, argv, len(names), lambda: bigwork.mapped(_info_of, names))


def _info_of(name: bytes) -> Any:
    cmd = COMMANDS.get(name.lower())
    return None if cmd is None else _command_info(cmd)


@command("docs", -2, "", S, "Get array of specific Redis command documentation", parent="command")
def command_docs(c: Any, argv: list[bytes]) -> Any:
    names = argv[2:] or list(COMMANDS)
    docs = bigwork.compute(c, argv, len(names), lambda: bigwork.mapped(_docs_of, names, True))
    return docs if docs is NO_REPLY else Map(docs)


def _docs_of(name: bytes) -> tuple[bytes, Any] | None:
    name = name.lower()
    cmd = COMMANDS.get(name)
    return None if cmd is None else (name, _command_docs(cmd))


@command("list", -2, "", S, "Get an array of Redis command names", parent="command")
def command_list(c: Any, argv: list[bytes]) -> Any:
    return list(COMMANDS)


# -- INFO, CONFIG, keyspace-wide commands ------------------------------------------


def info_text(c: Any, sections: list[bytes]) -> str:
    server = c.server
    now = time.time()
    wanted = {s.lower() for s in sections} or {b"default"}
    everything = wanted & {b"all", b"everything"}
    out: list[str] = []

    def section(name: str, fields: list[tuple[str, Any]]) -> None:
        if everything or b"default" in wanted or name.lower().encode() in wanted:
            out.append(f"# {name}")
            out.extend(f"{k}:{v}" for k, v in fields)
            out.append("")

    uptime = int(now - server.started)
    section(
        "Server",
        [
            ("redis_version", REDIS_VERSION),
            ("redis_mode", "standalone"),
            ("portsuite_service", server.name),
            ("os", f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"),
            ("arch_bits", 64),
            ("multiplexing_api", "twisted"),
            ("python_version", sys.version.split()[0]),
            ("process_id", os.getpid()),
            ("tcp_port", server.port or 0),
            ("uptime_in_seconds", uptime),
            ("uptime_in_days", uptime // 86400),
            ("executable", sys.argv[0] if sys.argv else ""),
        ],
    )
    section(
        "Clients",
        [
            ("connected_clients", len(server.clients)),
            ("maxclients", server.settings.maxclients),
            ("blocked_clients", len(server.blocked_clients)),
            ("pubsub_clients", sum(1 for cl in server.clients.values() if cl.subscribed)),
        ],
    )
    from portsuite_services.kv.commands.ops import rss

    used = rss()  # the suite's process: kv shares it with the other services
    section(
        "Memory",
        [
            ("used_memory", used),
            ("used_memory_human", f"{used / 1048576:.2f}M"),
            ("used_memory_rss", used),
            ("used_memory_peak", used),
            ("maxmemory", server.tuning.get("maxmemory", "0")),
            ("maxmemory_policy", server.tuning.get("maxmemory-policy", "noeviction")),
            ("mem_allocator", "python"),
            ("lazyfree_pending_objects", server.lazyfree.pending),
            ("lazyfreed_objects", server.lazyfree.done),
        ],
    )
    aof = server.aof
    rw = server.rewriting  # a compaction in a child process: BGSAVE's "rdb", else "aof"
    child = rw.kind if rw is not None else None
    running = int(time.monotonic() - rw.started) if rw is not None and child == "aof" else -1
    section(
        "Persistence",
        [
            ("loading", 0),
            ("rdb_changes_since_last_save", sum(db.dirty for db in server.dbs)),
            ("rdb_bgsave_in_progress", int(child == "rdb")),
            ("rdb_last_save_time", int(server.last_save)),
            ("rdb_last_bgsave_status", server.save_status["rdb"]),
            ("aof_enabled", int(aof is not None)),
            ("aof_rewrite_in_progress", int(child == "aof")),
            ("aof_rewrite_scheduled", int(server.rewrite_scheduled)),
            ("aof_last_rewrite_time_sec", server.last_rewrite_secs),
            ("aof_current_rewrite_time_sec", running),
            ("aof_last_bgrewrite_status", server.save_status["aof"]),
            ("aof_rewrites_consecutive_failures", server.rewrite_failures),
            ("aof_last_write_status", "ok" if aof is None or aof.ok else "err"),
            ("aof_current_size", aof.size if aof else 0),
            ("aof_base_size", aof.base_size if aof else 0),
            ("aof_rewrites", aof.rewrites if aof else 0),
            ("aof_fsync", server.settings.fsync if aof else "none"),
        ],
    )
    section(
        "Stats",
        [
            ("total_connections_received", server.total_connections),
            ("total_commands_processed", server.total_commands),
            ("rejected_connections", server.rejected),
            ("expired_keys", sum(db.expired_keys for db in server.dbs)),
            ("pubsub_channels", len(server.channels)),
            ("pubsub_patterns", len(server.patterns)),
            ("latest_fork_usec", aof.fork_usec if aof else 0),
            ("total_forks", aof.forks if aof else 0),
        ],
    )
    section(
        "Replication",
        [
            ("role", "master"),
            ("connected_slaves", 0),
            ("master_failover_state", "no-failover"),
            ("master_repl_offset", 0),
        ],
    )
    cpu = os.times()
    section(
        "CPU",
        [
            ("used_cpu_sys", f"{cpu.system:.6f}"),
            ("used_cpu_user", f"{cpu.user:.6f}"),
            ("used_cpu_sys_children", f"{cpu.children_system:.6f}"),
            ("used_cpu_user_children", f"{cpu.children_user:.6f}"),
        ],
    )
    if everything or b"modules" in wanted:  # (not in the default set, as in Redis)
        out.extend(["# Modules", ""])
    if everything or b"errorstats" in wanted:
        out.append("# Errorstats")
        out.extend(f"errorstat_{k}:count={v}" for k, v in sorted(server.error_stats.items()))
        out.append("")
    section("Cluster", [("cluster_enabled", 0)])
    if everything or b"commandstats" in wanted:  # (kv does not count per command: the
        out.extend(["# Commandstats", ""])  # dispatch path stays free of counters)
    if everything or b"latencystats" in wanted:
        out.extend(["# Latencystats", ""])
    keyspace = [
        (f"db{db.id}", f"keys={len(db)},expires={len(db.expires)},avg_ttl={_avg_ttl(db)}")
        for db in server.dbs
        if len(db)
    ]
    section("Keyspace", keyspace)
    return "\r\n".join(out)


def _avg_ttl(db: Any) -> int:
    """The mean time to live of the db's keys with one, in ms (from a sample of 1000)."""
    if not db.expires:
        return 0
    now = db.now_ms()
    sample = [w - now for _, w in zip(range(1000), db.expires.values(), strict=False)]
    return max(0, sum(sample) // len(sample))


@command("info", -1, "", S, "Get information and statistics about the server", keys=(0, 0, 0))
def info(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(info_text(c, argv[1:]))


@command(
    "dbsize",
    1,
    "readonly fast",
    S,
    "Return the number of keys in the selected database",
    keys=(0, 0, 0),
)
def dbsize(c: Any, argv: list[bytes]) -> Any:
    return len(c.store)


def _flush(c: Any, argv: list[bytes], name: str) -> Any:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() not in (b"sync", b"async")):
        raise CommandError(SYNTAX)
    server = c.server
    for db in server.dbs if name == "flushall" else [c.store]:
        server.touch_all(db)
        if len(db) > lazyfree.THRESHOLD:  # SYNC or ASYNC: the old keys are freed in slices
            data, expires = db.take_all()
            server.lazyfree.free(data)
            server.lazyfree.free(expires)
        else:
            db.flush()
    c.store.dirty += 1
    return OK


@command("flushdb", -1, "write", S, "Remove all keys from the current database", keys=(0, 0, 0))
def flushdb(c: Any, argv: list[bytes]) -> Any:
    return _flush(c, argv, "flushdb")


@command("flushall", -1, "write", S, "Remove all keys from all databases", keys=(0, 0, 0))
def flushall(c: Any, argv: list[bytes]) -> Any:
    return _flush(c, argv, "flushall")


@command("time", 1, "fast", S, "Return the current server time", keys=(0, 0, 0))
def time_(c: Any, argv: list[bytes]) -> Any:
    now = c.store.clock()
    sec = int(now)
    return [b"%d" % sec, b"%d" % int((now - sec) * 1_000_000)]


@command(
    "lastsave",
    1,
    "fast",
    S,
    "Get the UNIX time stamp of the last successful save to disk",
    keys=(0, 0, 0),
)
def lastsave(c: Any, argv: list[bytes]) -> Any:
    return int(c.server.last_save)


@command(
    "save",
    1,
    "admin nomulti",
    S,
    "Synchronously save the dataset to disk (compacts the append-only file)",
    keys=(0, 0, 0),
)
def save(c: Any, argv: list[bytes]) -> Any:
    if c.server.aof is None:
        raise CommandError('ERR no data file configured: kv runs memory-only (set data = "kv.aof")')
    return c.server.save(c)  # (the client waits for the compaction's child process)


@command("bgsave", -1, "admin", S, "Asynchronously save the dataset to disk", keys=(0, 0, 0))
def bgsave(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() != b"schedule"):
        raise CommandError(SYNTAX)
    if c.server.aof is None:
        # Redis's reply, so scripts that snapshot go on; memory-only kv has no file to write
        c.server.note_memory_only_save()
        return Simple("Background saving started")
    return c.server.bgsave(c, len(argv) == 2)


@command(
    "bgrewriteaof", 1, "admin", S, "Asynchronously rewrite the append-only file", keys=(0, 0, 0)
)
def bgrewriteaof(c: Any, argv: list[bytes]) -> Any:
    if c.server.aof is None:
        raise CommandError('ERR no data file configured: kv runs memory-only (set data = "kv.aof")')
    return c.server.bgrewriteaof(c)


container("config", S, "A container for server configuration commands")


help_command(
    "config",
    S,
    (
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "REWRITE",
        "    Rewrite the configuration file.",
    ),
)


@command("get", -3, "admin", S, "Get the values of configuration parameters", parent="config")
def config_get(c: Any, argv: list[bytes]) -> Any:
    params = c.server.config_params()
    cost = (len(argv) - 2) * len(params)  # (a glob is tried on every parameter)
    found = bigwork.compute(c, argv, cost, lambda: _config_get(params, argv[2:]))
    return found if found is NO_REPLY else Map(found)


def _config_get(params: dict[str, str], patterns: list[bytes]) -> bigwork.Steps[list[Any]]:
    """(name, value) of the parameters the patterns name, each once, in their order."""
    out: list[Any] = []
    seen: set[str] = set()
    names = [(name, name.encode()) for name in params]
    work = 0
    for pattern in patterns:
        pattern = pattern.lower()
        if glob.is_literal(pattern):  # a name: looked up, not matched against them all
            name = pattern.decode("latin-1")
            if name in params and name not in seen:
                seen.add(name)
                out.append((pattern, params[name].encode()))
            work += 1
        else:
            for name, raw in names:
                if name not in seen and glob.match(pattern, raw):
                    seen.add(name)
                    out.append((raw, params[name].encode()))
            work = bigwork.PIECE  # (a match costs what a few dozen lookups do: a step each)
        if work >= bigwork.PIECE:
            work = 0
            yield
    return out


@command("set", -4, "admin", S, "Set configuration parameters to the given values", parent="config")
def config_set(c: Any, argv: list[bytes]) -> Any:
    if len(argv) % 2:
        raise wrong_arity("config|set")
    if len(argv) > bigwork.ARGS:  # (a million names: 0.47 s at once)
        pairs = bigwork.compute(c, argv, 4 * len(argv), lambda: _config_pairs(argv))
        if pairs is NO_REPLY:
            return pairs
        try:
            return _config_apply(c, pairs)
        finally:  # (half a million pairs and their names: 30-50 ms to drop at once)
            c.server.lazyfree.free(pairs)
    return _config_apply(c, bigwork.run_through(_config_pairs(argv)))


def _config_apply(c: Any, pairs: list[tuple[str, bytes]]) -> Any:
    """CONFIG SET's pairs applied, or the error of the first that cannot be."""
    for name, value in pairs:
        error = c.server.config_set(name, value, check_only=True)
        if error:
            raise CommandError(error)
    for name, value in pairs:
        c.server.config_set(name, value)
    return OK


def _config_pairs(argv: list[bytes]) -> bigwork.Steps[list[tuple[str, bytes]]]:
    """CONFIG SET's (name, value) pairs, none named twice, a piece a step."""
    pairs: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for lo in range(2, len(argv), bigwork.PIECE):
        for i in range(lo, min(len(argv), lo + bigwork.PIECE), 2):
            name = argv[i].lower().decode("utf-8", "replace")
            pairs.append((name, argv[i + 1]))
        yield
    for lo in range(0, len(pairs), bigwork.PIECE):
        for name, _ in pairs[lo : lo + bigwork.PIECE]:
            if name in seen:
                raise CommandError(
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate parameter"
                )
            seen.add(name)
        yield
    return pairs


@command("resetstat", 2, "admin", S, "Reset the stats returned by INFO", parent="config")
def config_resetstat(c: Any, argv: list[bytes]) -> Any:
    c.server.total_commands = 0
    c.server.rejected = 0
    for db in c.server.dbs:
        db.expired_keys = 0
    return OK


@command("rewrite", 2, "admin", S, "Rewrite the configuration file", parent="config")
def config_rewrite(c: Any, argv: list[bytes]) -> Any:
    raise CommandError("ERR The server is running without a config file")
