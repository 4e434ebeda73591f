"""
Connection, server and pub/sub commands: PING HELLO AUTH CLIENT COMMAND INFO CONFIG
SUBSCRIBE PUBLISH ...
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from portsuite.services.kv import glob
from portsuite.services.kv.commands import (
    COMMANDS,
    NO_REPLY,
    SYNTAX,
    Command,
    CommandError,
    command,
    container,
    to_int,
    wrong_arity,
)
from portsuite.services.kv.resp import (
    OK,
    Map,
    Preencoded,
    Push,
    Simple,
    Verbatim,
    string2ll,
)

REDIS_VERSION = "7.0.15"
C = "connection"
S = "server"
P = "pubsub"

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


@command("ping", -1, "fast pubsub", C, "Ping the server", keys=(0, 0, 0))
def ping(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 2:
        raise wrong_arity("ping")
    if c.subscribed and c.resp == 2:
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return argv[1] if len(argv) == 2 else Simple("PONG")


@command("echo", 2, "fast", C, "Echo the given string", keys=(0, 0, 0))
def echo(c: Any, argv: list[bytes]) -> Any:
    return argv[1]


@command("quit", -1, "noauth pubsub fast", C, "Close the connection", keys=(0, 0, 0))
def quit_(c: Any, argv: list[bytes]) -> Any:
    c.close_after_reply = True
    return OK


def check_password(c: Any, user: bytes, password: bytes) -> bool:
    secret = c.server.settings.password
    if user != b"default":
        return False
    if not secret:
        return True
    return hmac.compare_digest(password, secret.encode())


@command("auth", -2, "noauth fast", C, "Authenticate to the server", keys=(0, 0, 0))
def auth(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    if len(argv) == 2:
        if not c.server.settings.password:
            raise CommandError(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        user, password = b"default", argv[1]
    else:
        user, password = argv[1], argv[2]
    if not check_password(c, user, password):
        raise CommandError(WRONGPASS)
    c.set_authenticated()
    return OK


def _valid_name(name: bytes) -> None:
    if any(b < 33 or b > 126 for b in name):
        raise CommandError(
            "ERR Client names cannot contain spaces, newlines or special characters."
        )


@command("hello", -1, "noauth fast", C, "Handshake with Redis", keys=(0, 0, 0))
def hello(c: Any, argv: list[bytes]) -> Any:
    ver = 0
    j = 1
    if len(argv) >= 2:
        v = string2ll(argv[1])
        if v is None:
            raise CommandError("ERR Protocol version is not an integer or out of range")
        if v < 2 or v > 3:
            raise CommandError("NOPROTO unsupported protocol version")
        ver = v
        j = 2
    user = password = name = None
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"auth" and more >= 2:
            user, password = argv[j + 1], argv[j + 2]
            j += 3
        elif opt == b"setname" and more >= 1:
            name = argv[j + 1]
            _valid_name(name)
            j += 2
        else:
            raise CommandError(
                f"ERR Syntax error in HELLO option '{argv[j].decode('utf-8', 'replace')}'"
            )
    if user is not None and password is not None:
        if not check_password(c, user, password):
            raise CommandError(WRONGPASS)
        c.set_authenticated()
    if not c.authenticated:
        raise CommandError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
            "the RESP protocol version at the same time"
        )
    if name is not None:
        c.name = name
    if ver:
        c.set_resp(ver)
    return Map(
        [
            (b"server", b"redis"),
            (b"version", REDIS_VERSION.encode()),
            (b"proto", c.resp),
            (b"id", c.id),
            (b"mode", b"standalone"),
            (b"role", b"master"),
            (b"modules", []),
        ]
    )


@command("select", 2, "fast", C, "Change the selected database (only db 0 exists)", keys=(0, 0, 0))
def select(c: Any, argv: list[bytes]) -> Any:
    db = string2ll(argv[1])
    if db is None or db > 2**31 - 1 or db < -(2**31):
        raise CommandError("ERR value is not an integer or out of range")
    if db != 0:
        raise CommandError("ERR DB index is out of range")
    return OK


@command("reset", 1, "noauth pubsub fast", C, "Reset the connection", keys=(0, 0, 0))
def reset(c: Any, argv: list[bytes]) -> Any:
    c.reset()
    return Simple("RESET")


# -- transactions ------------------------------------------------------------------

T = "transactions"


@command("multi", 1, "fast", T, "Mark the start of a transaction block", keys=(0, 0, 0))
def multi(c: Any, argv: list[bytes]) -> Any:
    if c.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    c.multi = []
    c.multi_failed = False
    return OK


@command("exec", 1, "", T, "Execute all commands issued after MULTI", keys=(0, 0, 0))
def exec_(c: Any, argv: list[bytes]) -> Any:
    if c.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    raw = c.exec_multi()
    return Preencoded(raw, raw)


@command("discard", 1, "fast", T, "Discard all commands issued after MULTI", keys=(0, 0, 0))
def discard(c: Any, argv: list[bytes]) -> Any:
    if c.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    c.multi = None
    c.multi_failed = False
    c.unwatch()
    return OK


@command(
    "watch",
    -2,
    "fast",
    T,
    "Watch keys to determine execution of the MULTI/EXEC block",
    keys=(1, -1, 1),
)
def watch(c: Any, argv: list[bytes]) -> Any:
    if c.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    c.watch(argv[1:])
    return OK


@command("unwatch", 1, "fast", T, "Forget about all watched keys", keys=(0, 0, 0))
def unwatch(c: Any, argv: list[bytes]) -> Any:
    c.unwatch()
    return OK


# -- CLIENT ----------------------------------------------------------------------

container("client", C, "A container for client connection commands")


@command("id", 2, "fast", C, "Returns the client ID for the current connection", parent="client")
def client_id(c: Any, argv: list[bytes]) -> Any:
    return c.id


@command("setname", 3, "fast", C, "Set the current connection name", parent="client")
def client_setname(c: Any, argv: list[bytes]) -> Any:
    _valid_name(argv[2])
    c.name = argv[2] or None
    return OK


@command("getname", 2, "fast", C, "Get the current connection name", parent="client")
def client_getname(c: Any, argv: list[bytes]) -> Any:
    return c.name


@command("setinfo", 4, "fast", C, "Set client or connection specific info", parent="client")
def client_setinfo(c: Any, argv: list[bytes]) -> Any:
    attr = argv[2].lower()
    if attr not in (b"lib-name", b"lib-ver"):
        raise CommandError(f"ERR Unrecognized option '{argv[2].decode('utf-8', 'replace')}'")
    if any(b < 33 or b > 126 for b in argv[3]):
        raise CommandError(
            f"ERR {attr.decode()} cannot contain spaces, newlines or special characters."
        )
    c.lib[attr] = argv[3]
    return OK


@command("list", -2, "admin", C, "Get the list of client connections", parent="client")
def client_list(c: Any, argv: list[bytes]) -> Any:
    return Verbatim("".join(cl.info_line() + "\n" for cl in c.server.clients.values()))


@command(
    "info", 2, "", C, "Returns information about the current client connection", parent="client"
)
def client_info(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(c.info_line() + "\n")


@command("help", 2, "", C, "Show helpful text about the different subcommands", parent="client")
def client_help(c: Any, argv: list[bytes]) -> Any:
    return [
        Simple(s)
        for s in (
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ID",
            "    Return the ID of the current connection.",
            "GETNAME",
            "    Return the name of the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Set client library name or version.",
            "LIST",
            "    Return information about client connections.",
            "INFO",
            "    Return information about the current client connection.",
            "HELP",
            "    Print this help.",
        )
    ]


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


@command("count", 2, "", S, "Get total number of Redis commands", parent="command")
def command_count(c: Any, argv: list[bytes]) -> Any:
    return len(COMMANDS)


@command("info", -2, "", S, "Get array of specific Redis command details", parent="command")
def command_info(c: Any, argv: list[bytes]) -> Any:
    names = argv[2:] or list(COMMANDS)
    return [_command_info(COMMANDS[n.lower()]) if n.lower() in COMMANDS else None for n in names]


@command("docs", -2, "", S, "Get array of specific Redis command documentation", parent="command")
def command_docs(c: Any, argv: list[bytes]) -> Any:
    names = [n.lower() for n in argv[2:]] or list(COMMANDS)
    return Map((n, _command_docs(COMMANDS[n])) for n in names if n in COMMANDS)


@command("list", -2, "", S, "Get an array of Redis command names", parent="command")
def command_list(c: Any, argv: list[bytes]) -> Any:
    return list(COMMANDS)


# -- INFO, CONFIG, keyspace-wide commands ------------------------------------------


def info_text(c: Any, sections: list[bytes]) -> str:
    server = c.server
    store = c.store
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
            ("blocked_clients", 0),
            ("pubsub_clients", sum(1 for cl in server.clients.values() if cl.subscribed)),
        ],
    )
    section("Memory", [("used_memory", 0), ("maxmemory", 0), ("maxmemory_policy", "noeviction")])
    aof = server.aof
    section(
        "Persistence",
        [
            ("loading", 0),
            ("rdb_changes_since_last_save", store.dirty),
            ("aof_enabled", int(aof is not None)),
            ("aof_rewrite_in_progress", 0),
            ("aof_last_bgrewrite_status", "ok"),
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
            ("expired_keys", store.expired_keys),
            ("pubsub_channels", len(server.channels)),
            ("pubsub_patterns", len(server.patterns)),
        ],
    )
    section("Replication", [("role", "master"), ("connected_slaves", 0)])
    keyspace = []
    if len(store):
        keyspace.append(("db0", f"keys={len(store)},expires={len(store.expires)},avg_ttl=0"))
    section("Keyspace", keyspace)
    return "\r\n".join(out)


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
    for key, watchers in c.server.watched.items():
        if c.store.get(key) is not None:
            for client in watchers:
                client.watch_dirty = True
    c.store.flush()
    c.also = [[b"FLUSHALL"]]
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
    "admin",
    S,
    "Synchronously save the dataset to disk (compacts the append-only file)",
    keys=(0, 0, 0),
)
def save(c: Any, argv: list[bytes]) -> Any:
    if c.server.aof is None:
        raise CommandError('ERR no data file configured: kv runs memory-only (set data = "kv.aof")')
    c.server.rewrite_aof()
    return OK


@command("bgsave", -1, "admin", S, "Asynchronously save the dataset to disk", keys=(0, 0, 0))
def bgsave(c: Any, argv: list[bytes]) -> Any:
    save(c, argv[:1])
    return Simple("Background saving started")


@command(
    "bgrewriteaof", 1, "admin", S, "Asynchronously rewrite the append-only file", keys=(0, 0, 0)
)
def bgrewriteaof(c: Any, argv: list[bytes]) -> Any:
    save(c, argv)
    return Simple("Background append only file rewriting started")


container("config", S, "A container for server configuration commands")


@command("get", -3, "admin", S, "Get the values of configuration parameters", parent="config")
def config_get(c: Any, argv: list[bytes]) -> Any:
    params = c.server.config_params()
    out = []
    seen = set()
    for pattern in argv[2:]:
        pattern = pattern.lower()
        for name, value in params.items():
            if name not in seen and glob.match(pattern, name.encode()):
                seen.add(name)
                out.append((name.encode(), value.encode()))
    return Map(out)


@command("set", -4, "admin", S, "Set configuration parameters to the given values", parent="config")
def config_set(c: Any, argv: list[bytes]) -> Any:
    if len(argv) % 2:
        raise wrong_arity("config|set")
    pairs = [
        (argv[i].lower().decode("utf-8", "replace"), argv[i + 1]) for i in range(2, len(argv), 2)
    ]
    for name, value in pairs:
        error = c.server.config_set(name, value, check_only=True)
        if error:
            raise CommandError(error)
    for name, value in pairs:
        c.server.config_set(name, value)
    return OK


@command("resetstat", 2, "admin", S, "Reset the stats returned by INFO", parent="config")
def config_resetstat(c: Any, argv: list[bytes]) -> Any:
    c.server.total_commands = 0
    c.server.rejected = 0
    c.store.expired_keys = 0
    return OK


@command("rewrite", 2, "admin", S, "Rewrite the configuration file", parent="config")
def config_rewrite(c: Any, argv: list[bytes]) -> Any:
    raise CommandError("ERR The server is running without a config file")


# -- pub/sub ---------------------------------------------------------------------


def _sub(c: Any, argv: list[bytes], pattern: bool) -> Any:
    kind = b"psubscribe" if pattern else b"subscribe"
    mine = c.patterns if pattern else c.channels
    where = c.server.patterns if pattern else c.server.channels
    for ch in argv[1:]:
        if ch not in mine:
            mine.add(ch)
            where.setdefault(ch, set()).add(c)
        c.push([kind, ch, len(c.channels) + len(c.patterns)])
    return NO_REPLY


def _unsub(c: Any, argv: list[bytes], pattern: bool) -> Any:
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    mine = c.patterns if pattern else c.channels
    where = c.server.patterns if pattern else c.server.channels
    targets = argv[1:] or sorted(mine)
    if not targets:
        c.push([kind, None, len(c.channels) + len(c.patterns)])
    for ch in targets:
        if ch in mine:
            mine.discard(ch)
            subs = where.get(ch)
            if subs is not None:
                subs.discard(c)
                if not subs:
                    del where[ch]
        c.push([kind, ch, len(c.channels) + len(c.patterns)])
    return NO_REPLY


@command(
    "subscribe",
    -2,
    "pubsub",
    P,
    "Listen for messages published to the given channels",
    keys=(0, 0, 0),
)
def subscribe(c: Any, argv: list[bytes]) -> Any:
    return _sub(c, argv, False)


@command(
    "psubscribe",
    -2,
    "pubsub",
    P,
    "Listen for messages published to channels matching the given patterns",
    keys=(0, 0, 0),
)
def psubscribe(c: Any, argv: list[bytes]) -> Any:
    return _sub(c, argv, True)


@command(
    "unsubscribe",
    -1,
    "pubsub",
    P,
    "Stop listening for messages posted to the given channels",
    keys=(0, 0, 0),
)
def unsubscribe(c: Any, argv: list[bytes]) -> Any:
    return _unsub(c, argv, False)


@command(
    "punsubscribe",
    -1,
    "pubsub",
    P,
    "Stop listening for messages posted to channels matching the given patterns",
    keys=(0, 0, 0),
)
def punsubscribe(c: Any, argv: list[bytes]) -> Any:
    return _unsub(c, argv, True)


@command("publish", 3, "pubsub fast", P, "Post a message to a channel", keys=(0, 0, 0))
def publish(c: Any, argv: list[bytes]) -> Any:
    ch, msg = argv[1], argv[2]
    n = 0
    for sub in list(c.server.channels.get(ch, ())):
        sub.push(Push([b"message", ch, msg]))
        n += 1
    for pat, subs in list(c.server.patterns.items()):
        if glob.match(pat, ch):
            for sub in list(subs):
                sub.push(Push([b"pmessage", pat, ch, msg]))
                n += 1
    return n


@command("pubsub", -2, "", P, "Inspect the state of the Pub/Sub subsystem", keys=(0, 0, 0))
def pubsub(c: Any, argv: list[bytes]) -> Any:
    sub = argv[1].lower()
    if sub == b"channels" and len(argv) <= 3:
        pat = argv[2] if len(argv) == 3 else None
        return [ch for ch in c.server.channels if pat is None or glob.match(pat, ch)]
    if sub == b"numsub":
        return [x for ch in argv[2:] for x in (ch, len(c.server.channels.get(ch, ())))]
    if sub == b"numpat" and len(argv) == 2:
        return len(c.server.patterns)
    raise CommandError(
        f"ERR unknown subcommand '{argv[1].decode('utf-8', 'replace')}'. Try PUBSUB HELP."
    )


__all__ = ["to_int"]
