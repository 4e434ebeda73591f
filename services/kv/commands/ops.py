"""
Server operations: SLOWLOG, MEMORY, LATENCY, ROLE, REPLICAOF, FUNCTION/SCRIPT and the
scripting commands (kv runs no Lua), COMMAND GETKEYS/LIST FILTERBY, WAIT, LOLWUT,
DEBUG, SHUTDOWN.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Iterator
from itertools import islice
from operator import itemgetter
from typing import Any

from portsuite_services.kv import bigwork, glob, keyspecs
from portsuite_services.kv.acl import REDIS_CATEGORIES, category_names
from portsuite_services.kv.commands import (
    COMMANDS,
    SYNTAX,
    CommandError,
    command,
    container,
    help_command,
)
from portsuite_services.kv.commands.connection import REDIS_VERSION
from portsuite_services.kv.lazyfree import effort
from portsuite_services.kv.resp import OK, Double, Map, Simple, Verbatim, string2ll
from portsuite_services.kv.sharded import kind
from portsuite_services.kv.stream import Stream
from portsuite_services.kv.zset import ZSet

S = "server"


# -- SLOWLOG -------------------------------------------------------------------------

container("slowlog", S, "A container for slow log commands")


@command("get", -2, "admin loading stale", S, "Get the slow log's entries", parent="slowlog")
def slowlog_get(c: Any, argv: list[bytes]) -> Any:
    count = 10
    if len(argv) > 3:
        raise CommandError("ERR wrong number of arguments for 'slowlog|get' command")
    if len(argv) == 3:
        v = string2ll(argv[2])
        if v is None or v < -1:
            raise CommandError("ERR count should be greater than or equal to -1")
        count = len(c.server.slowlog) if v == -1 else v
    return c.server.slowlog[:count]


@command("len", 2, "admin loading stale", S, "Get the slow log's length", parent="slowlog")
def slowlog_len(c: Any, argv: list[bytes]) -> Any:
    return len(c.server.slowlog)


@command(
    "reset", 2, "admin loading stale", S, "Clear all entries from the slow log", parent="slowlog"
)
def slowlog_reset(c: Any, argv: list[bytes]) -> Any:
    c.server.slowlog.clear()
    return OK


help_command(
    "slowlog",
    S,
    (
        "GET [<count>]",
        "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
        "    Entries are made of:",
        "    id, timestamp, time in microseconds, arguments array, client IP and port,",
        "    client name",
        "LEN",
        "    Return the length of the slowlog.",
        "RESET",
        "    Reset the slowlog.",
    ),
)


# -- MEMORY ----------------------------------------------------------------------------


def rss() -> int:
    """The process's resident memory (the whole suite: kv shares its process)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _size(v: Any) -> int:
    """Bytes an element takes, roughly as Redis counts it (sds header + data)."""
    if isinstance(v, (bytes, bytearray)):
        return len(v) + 9
    if isinstance(v, (int, float)):
        return 8
    if isinstance(v, (tuple, list)):  # (a zset's pair, a stream entry's fields)
        return sum(_size(x) for x in v) + 8
    return sys.getsizeof(v)


def usage(key: bytes, value: Any, samples: int) -> int:
    """MEMORY USAGE: the key, its value and, for containers, sampled elements × count."""
    return bigwork.run_through(usage_steps(key, value, samples))


SIZED = 1024  # elements a step of L{usage_steps} sizes (about a millisecond)


def usage_steps(key: bytes, value: Any, samples: int) -> bigwork.Steps[int]:
    """L{usage} in steps (bigwork): SAMPLES 0 sizes every element of a million."""
    base = len(key) + 9 + 16 + 24  # key sds, robj, dict entry
    if isinstance(value, (bytes, bytearray)):
        return base + len(value) + 9
    try:
        n = len(value)
    except TypeError:
        return base + sys.getsizeof(value)
    if n == 0:
        return base + 16
    it: Iterator[Any]
    if kind(value) is dict:  # (a big hash, sharded, too)
        it = iter(value.items())
    elif isinstance(value, ZSet):  # (not iterable: its members and scores)
        it = iter(value.dict.items())
    elif isinstance(value, Stream):  # its entries' fields and values
        it = iter(value.entries.values())
    else:
        it = iter(value)
    limit = n if samples == 0 else min(samples, n)
    total = seen = 0
    for _ in range(0, limit, SIZED):
        piece = list(islice(it, min(SIZED, limit - seen)))
        total += sum(_size(x) + 16 for x in piece)
        seen += len(piece)
        if len(piece) < SIZED:
            break
        yield
    per = total / max(seen, 1)
    return int(base + 16 + per * n)


container("memory", S, "A container for memory diagnostics commands")


@command("usage", -3, "readonly", S, "Estimate the memory usage of a key", parent="memory")
def memory_usage(c: Any, argv: list[bytes]) -> Any:
    samples = 5
    if len(argv) > 3:
        if len(argv) != 5 or argv[3].lower() != b"samples":
            raise CommandError(SYNTAX)
        v = string2ll(argv[4])
        if v is None or v < 0:
            raise CommandError(
                "ERR value is out of range, must be positive"
                if v is not None
                else "ERR value is not an integer or out of range"
            )
        samples = v
    value = c.store.get(argv[2])
    if value is None:
        return None
    n = effort(value)  # (elements sized: each costs about as much as 4 copied)
    work = 4 * (min(n, samples) if samples else n)
    return bigwork.compute(c, argv, work, lambda: usage_steps(argv[2], value, samples))


@command("stats", 2, "", S, "Show memory usage details", parent="memory")
def memory_stats(c: Any, argv: list[bytes]) -> Any:
    total = rss()
    keys = len(c.store)
    clients = sum(cl.queued for cl in c.server.clients.values())
    return Map(
        [
            (b"peak.allocated", total),
            (b"total.allocated", total),
            (b"startup.allocated", 0),
            (b"replication.backlog", 0),
            (b"clients.slaves", 0),
            (b"clients.normal", clients),
            (b"cluster.links", 0),
            (b"aof.buffer", sum(map(len, c.server.aof.buf)) if c.server.aof is not None else 0),
            (b"lua.caches", 0),
            (b"functions.caches", 0),
            (b"overhead.total", clients),
            (b"keys.count", keys),
            (b"keys.bytes-per-key", total // keys if keys else 0),
            (b"dataset.bytes", total),
            (b"dataset.percentage", Double(100.0)),
            (b"peak.percentage", Double(100.0)),
            (b"allocator.allocated", total),
            (b"allocator.active", total),
            (b"allocator.resident", total),
            (b"allocator-fragmentation.ratio", Double(1.0)),
            (b"allocator-fragmentation.bytes", 0),
            (b"allocator-rss.ratio", Double(1.0)),
            (b"allocator-rss.bytes", 0),
            (b"rss-overhead.ratio", Double(1.0)),
            (b"rss-overhead.bytes", 0),
            (b"fragmentation", Double(1.0)),
            (b"fragmentation.bytes", 0),
        ]
        + (
            [
                (
                    b"db.0",
                    Map(
                        [
                            (b"overhead.hashtable.main", keys * 24),
                            (b"overhead.hashtable.expires", len(c.store.expires) * 24),
                        ]
                    ),
                )
            ]
            if keys
            else []
        )
    )


@command("doctor", 2, "", S, "Output a memory problems report", parent="memory")
def memory_doctor(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(
        "Hi Sam, I can't find any memory issue in your instance. I can only account for "
        "what occurs on this base.\n"
        if len(c.store)
        else "Hi Sam, this instance is empty or is using very little memory, my issues "
        "detector can't be used in these conditions. Please, leave for your mission on Earth "
        "and fill it with some data. The new Sam and I will be back to our programming as "
        "soon as I finished rebooting.\n"
    )


@command("malloc-stats", 2, "", S, "Show allocator internal stats", parent="memory")
def memory_malloc_stats(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(
        f"Stats not supported for the current allocator (kv runs in Python {sys.version.split()[0]}; "
        f"process resident memory: {rss()} bytes)\n"
    )


@command("purge", 2, "", S, "Ask the allocator to release memory", parent="memory")
def memory_purge(c: Any, argv: list[bytes]) -> Any:
    return OK


help_command(
    "memory",
    S,
    (
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
    ),
)


# -- LATENCY (no latency monitor: a quiet Redis's answers) ------------------------------

container("latency", S, "A container for latency diagnostics commands")


@command(
    "latest",
    2,
    "admin loading stale",
    S,
    "Return the latest latency samples for all events",
    parent="latency",
)
def latency_latest(c: Any, argv: list[bytes]) -> Any:
    return []


@command(
    "history",
    3,
    "admin loading stale",
    S,
    "Return timestamp-latency samples for the event",
    parent="latency",
)
def latency_history(c: Any, argv: list[bytes]) -> Any:
    return []


@command(
    "reset",
    -2,
    "admin loading stale",
    S,
    "Reset latency data for one or more events",
    parent="latency",
)
def latency_reset(c: Any, argv: list[bytes]) -> Any:
    return 0


@command(
    "graph", 3, "admin loading stale", S, "Return a latency graph for the event", parent="latency"
)
def latency_graph(c: Any, argv: list[bytes]) -> Any:
    raise CommandError(f"ERR No samples available for event '{argv[2].decode('utf-8', 'replace')}'")


@command(
    "doctor",
    2,
    "admin loading stale",
    S,
    "Return a human readable latency analysis report",
    parent="latency",
)
def latency_doctor(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(
        "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis "
        'instance. You may use "CONFIG SET latency-monitor-threshold <milliseconds>." in '
        "order to enable it. If we weren't in a deep space mission I'd suggest to take a look "
        "at https://redis.io/topics/latency-monitor.\n"
    )


@command(
    "histogram",
    -2,
    "admin loading stale",
    S,
    "Return the cumulative distribution of latencies of a subset of commands or all",
    parent="latency",
)
def latency_histogram(c: Any, argv: list[bytes]) -> Any:
    return Map([])  # kv does not time each command (it would slow every one down)


help_command(
    "latency",
    S,
    (
        "DOCTOR",
        "    Return a human readable latency analysis report.",
        "GRAPH <event>",
        "    Return an ASCII latency graph for the <event> class.",
        "HISTORY <event>",
        "    Return time-latency samples for the <event> class.",
        "LATEST",
        "    Return the latest latency samples for all events.",
        "RESET [<event> ...]",
        "    Reset latency data of one or more <event> classes.",
        "    (default: reset all data for all event classes)",
        "HISTOGRAM [COMMAND ...]",
        "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
        "    If no commands are specified then all histograms are replied.",
    ),
)


# -- replication: a master with no replicas -----------------------------------------


@command(
    "role",
    1,
    "noscript loading stale fast",
    S,
    "Return the role of the instance in the context of replication",
    keys=(0, 0, 0),
)
def role(c: Any, argv: list[bytes]) -> Any:
    return [b"master", 0, []]


def _replicaof(c: Any, argv: list[bytes]) -> Any:
    if argv[1].lower() == b"no" and argv[2].lower() == b"one":
        return OK
    raise CommandError(
        "ERR kv cannot be a replica (it has no replication): REPLICAOF NO ONE is the only form it accepts"
    )


@command(
    "replicaof",
    3,
    "admin noscript stale",
    S,
    "Make the server a replica of another instance, or promote it as master",
    keys=(0, 0, 0),
)
def replicaof(c: Any, argv: list[bytes]) -> Any:
    return _replicaof(c, argv)


@command(
    "slaveof",
    3,
    "admin noscript stale",
    S,
    "Make the server a replica of another instance, or promote it as master",
    keys=(0, 0, 0),
)
def slaveof(c: Any, argv: list[bytes]) -> Any:
    return _replicaof(c, argv)


@command(
    "wait",
    3,
    "noscript",
    S,
    "Wait for the synchronous replication of all the write commands sent in the context of the current connection",
    keys=(0, 0, 0),
)
def wait(c: Any, argv: list[bytes]) -> Any:
    for a in argv[1:]:
        if string2ll(a) is None:
            raise CommandError("ERR value is not an integer or out of range")
    if string2ll(argv[2]) < 0:  # type: ignore[operator]
        raise CommandError("ERR timeout is negative")
    return 0  # no replicas: none acknowledged, at once


@command(
    "waitaof",
    4,
    "noscript",
    S,
    "Wait for all write commands sent by the client to be fsynced to the AOF",
    keys=(0, 0, 0),
)
def waitaof(c: Any, argv: list[bytes]) -> Any:
    nums = [string2ll(a) for a in argv[1:]]
    if any(n is None for n in nums):
        raise CommandError("ERR value is not an integer or out of range")
    if nums[2] < 0:  # type: ignore[operator]
        raise CommandError("ERR timeout is negative")
    aof = c.server.aof
    if nums[0] and aof is None:  # type: ignore[index]
        raise CommandError(
            "ERR WAITAOF cannot be used when numlocal is set but appendonly is disabled."
        )
    if aof is not None:
        try:
            aof.flush()
            aof.sync()
        except OSError:
            return [0, 0]
    return [1 if aof is not None else 0, 0]


# -- scripting: kv runs no Lua ------------------------------------------------------

NO_LUA = (
    "ERR kv does not run Lua scripts (EVAL, SCRIPT LOAD, FUNCTION LOAD): it has no "
    "scripting engine; use MULTI/EXEC or client-side logic"
)


def _numkeys(argv: list[bytes]) -> None:
    n = string2ll(argv[2])
    if n is None:
        raise CommandError("ERR value is not an integer or out of range")
    if n < 0:
        raise CommandError("ERR Number of keys can't be negative")
    if n > len(argv) - 3:
        raise CommandError("ERR Number of keys can't be greater than number of args")


@command(
    "eval", -3, "noscript stale", "scripting", "Execute a Lua script server side", keys=(0, 0, 0)
)
def eval_(c: Any, argv: list[bytes]) -> Any:
    _numkeys(argv)
    raise CommandError(NO_LUA)


@command(
    "eval_ro",
    -3,
    "noscript stale readonly",
    "scripting",
    "Execute a read-only Lua script server side",
    keys=(0, 0, 0),
)
def eval_ro(c: Any, argv: list[bytes]) -> Any:
    return eval_(c, argv)


@command(
    "evalsha", -3, "noscript stale", "scripting", "Execute a Lua script server side", keys=(0, 0, 0)
)
def evalsha(c: Any, argv: list[bytes]) -> Any:
    _numkeys(argv)
    raise CommandError("NOSCRIPT No matching script. Please use EVAL.")  # there are none


@command(
    "evalsha_ro",
    -3,
    "noscript stale readonly",
    "scripting",
    "Execute a read-only Lua script server side",
    keys=(0, 0, 0),
)
def evalsha_ro(c: Any, argv: list[bytes]) -> Any:
    return evalsha(c, argv)


@command("fcall", -3, "noscript stale", "scripting", "Invoke a function", keys=(0, 0, 0))
def fcall(c: Any, argv: list[bytes]) -> Any:
    raise CommandError("ERR Function not found")  # there are none


@command(
    "fcall_ro",
    -3,
    "noscript stale readonly",
    "scripting",
    "Invoke a read-only function",
    keys=(0, 0, 0),
)
def fcall_ro(c: Any, argv: list[bytes]) -> Any:
    return fcall(c, argv)


container("script", "scripting", "A container for Lua scripts management commands")


help_command(
    "script",
    "scripting",
    (
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
    ),
)


@command(
    "exists",
    -3,
    "noscript",
    "scripting",
    "Check existence of scripts in the script cache",
    parent="script",
)
def script_exists(c: Any, argv: list[bytes]) -> Any:
    return [0] * (len(argv) - 2)


@command(
    "flush",
    -2,
    "noscript",
    "scripting",
    "Remove all the scripts from the script cache",
    parent="script",
)
def script_flush(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
        raise CommandError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    return OK


@command(
    "load",
    3,
    "noscript stale",
    "scripting",
    "Load the specified Lua script into the script cache",
    parent="script",
)
def script_load(c: Any, argv: list[bytes]) -> Any:
    raise CommandError(NO_LUA)


@command(
    "kill", 2, "noscript", "scripting", "Kill the script currently in execution", parent="script"
)
def script_kill(c: Any, argv: list[bytes]) -> Any:
    raise CommandError("NOTBUSY No scripts in execution right now.")


def _flush_mode(argv: list[bytes]) -> None:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
        raise CommandError(SYNTAX)


container("function", "scripting", "A container for function commands")


help_command(
    "function",
    "scripting",
    (
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
    ),
)


@command("flush", -2, "write noscript", "scripting", "Deleting all functions", parent="function")
def function_flush(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].lower() not in (b"sync", b"async")):
        raise CommandError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    return OK


@command(
    "list",
    -2,
    "noscript",
    "scripting",
    "List information about all the functions",
    parent="function",
)
def function_list(c: Any, argv: list[bytes]) -> Any:
    i = 2
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"withcode":
            i += 1
        elif opt == b"libraryname" and i + 1 < len(argv):
            i += 2
        else:
            raise CommandError(f"ERR Unknown argument {argv[i].decode('utf-8', 'replace')}")
    return []


# Redis 7.0's FUNCTION DUMP of no functions: the RDB version and checksum only
EMPTY_DUMP = b"\n\x00]\x9b\\@\x0f\x7f\xa2\xda"


@command(
    "dump",
    2,
    "noscript",
    "scripting",
    "Dump all functions into a serialized binary payload",
    parent="function",
)
def function_dump(c: Any, argv: list[bytes]) -> Any:
    return EMPTY_DUMP


@command(
    "restore",
    -3,
    "write denyoom noscript",
    "scripting",
    "Restore all the functions on the given payload",
    parent="function",
)
def function_restore(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 4 or (
        len(argv) == 4 and argv[3].lower() not in (b"append", b"replace", b"flush")
    ):
        raise CommandError(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
        )
    if argv[2] == EMPTY_DUMP:
        return OK
    if not argv[2].startswith(b"\xf5"):
        raise CommandError("ERR DUMP payload version or checksum are wrong")
    raise CommandError(NO_LUA)


@command(
    "load",
    -3,
    "write denyoom noscript",
    "scripting",
    "Create a function with the given arguments (name, code, description)",
    parent="function",
)
def function_load(c: Any, argv: list[bytes]) -> Any:
    raise CommandError(NO_LUA)


@command("delete", 3, "write noscript", "scripting", "Delete a function by name", parent="function")
def function_delete(c: Any, argv: list[bytes]) -> Any:
    raise CommandError("ERR Library not found")


@command(
    "kill",
    2,
    "noscript",
    "scripting",
    "Kill the function currently in execution.",
    parent="function",
)
def function_kill(c: Any, argv: list[bytes]) -> Any:
    raise CommandError("NOTBUSY No scripts in execution right now.")


@command(
    "stats",
    2,
    "noscript",
    "scripting",
    "Return information about the function currently running (name, description, duration)",
    parent="function",
)
def function_stats(c: Any, argv: list[bytes]) -> Any:
    return Map(
        [
            (b"running_script", None),
            (b"engines", Map([(b"LUA", Map([(b"libraries_count", 0), (b"functions_count", 0)]))])),
        ]
    )


# -- COMMAND GETKEYS / GETKEYSANDFLAGS / LIST FILTERBY ---------------------------------


def _getkeys(argv: list[bytes]) -> Collection[tuple[bytes, list[str]]]:
    """Redis's C{commandGetKeys}: the same keys the ACL checks (L{keyspecs.acl_keys})."""
    args = argv[2:]
    cmd = COMMANDS.get(args[0].lower())
    name = args[0].lower().decode("utf-8", "replace")
    if cmd is not None and cmd.subcommands and len(args) > 1:
        sub = cmd.subcommands.get(args[1].lower())
        if sub is not None:
            cmd, name = sub, sub.fullname
    if cmd is None and name not in keyspecs.KEY_SPECS:
        raise CommandError("ERR Invalid command specified")
    if not keyspecs.has_keys(name, cmd):
        raise CommandError("ERR The command has no key arguments")
    if cmd is not None and ((cmd.arity > 0 and len(args) != cmd.arity) or len(args) < -cmd.arity):
        raise CommandError("ERR Invalid number of arguments specified for command")
    if name in keyspecs.KEY_SPECS:
        keys = keyspecs.command_keys(name, args)
    else:  # a command Redis 7.0 does not have: kv's first/last/step
        keys = list(keyspecs.acl_keys(cmd, args))
    if not keys and name not in keyspecs.NO_MANDATORY_KEYS:
        raise CommandError("ERR Invalid arguments specified for command")
    return keys


@command("getkeys", -4, "", S, "Extract keys given a full Redis command", parent="command")
def command_getkeys(c: Any, argv: list[bytes]) -> Any:
    return bigwork.compute(c, argv, len(argv), lambda: _keys_reply(argv, False))


@command(
    "getkeysandflags",
    -4,
    "",
    S,
    "Extract keys and access flags given a full Redis command",
    parent="command",
)
def command_getkeysandflags(c: Any, argv: list[bytes]) -> Any:
    return bigwork.compute(c, argv, len(argv), lambda: _keys_reply(argv, True))


def _keys_reply(argv: list[bytes], with_flags: bool) -> bigwork.Steps[list[Any]]:
    """COMMAND GETKEYS' reply (with their flags: GETKEYSANDFLAGS'), a piece at a time."""
    keys = _getkeys(argv)
    yield
    if not with_flags:
        return (yield from bigwork.mapped(itemgetter(0), keys))
    shown: dict[tuple[str, ...], list[Simple]] = {}  # (one list for the keys of one spec)

    def shape(key_flags: tuple[bytes, list[str]]) -> list[Any]:
        k, flags = key_flags
        made = shown.get(tuple(flags))
        if made is None:
            made = shown[tuple(flags)] = [Simple(f) for f in flags]
        return [k, made]

    return (yield from bigwork.mapped(shape, keys))


@command("list", -2, "", S, "Get an array of Redis command names", parent="command")
def command_list(c: Any, argv: list[bytes]) -> Any:
    names = list(COMMANDS)
    if len(argv) == 2:
        return names
    if len(argv) != 5 or argv[2].lower() != b"filterby":
        raise CommandError(SYNTAX)
    kind, arg = argv[3].lower(), argv[4]
    if kind == b"module":
        return []
    if kind == b"aclcat":
        cat = arg.lower().decode("utf-8", "replace")
        inside = category_names(cat)
        return [n for n in names if n.decode() in inside]
    if kind == b"pattern":
        return [n for n in names if glob.match(arg.lower(), n)]
    raise CommandError(SYNTAX)


# -- the rest ------------------------------------------------------------------------


@command(
    "lolwut",
    -1,
    "readonly fast",
    S,
    "Display some computer art and the Redis version",
    keys=(0, 0, 0),
)
def lolwut(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(
        "kv, the key-value store of portsuite, speaks Redis's protocol.\n"
        f"Redis ver. {REDIS_VERSION}\n"
    )


@command(
    "debug",
    -2,
    "admin noscript loading stale",
    S,
    "A container for debugging commands",
    keys=(0, 0, 0),
)
def debug(c: Any, argv: list[bytes]) -> Any:
    # what Redis 7 answers with its default enable-debug-command no
    raise CommandError(
        'ERR DEBUG command not allowed. If the enable-debug-command option is set to "local", '
        "you can run it from a local connection, otherwise you need to set this option in the "
        "configuration file, and then restart the server."
    )


@command(
    "shutdown",
    -1,
    "admin noscript loading stale",
    S,
    "Synchronously save the dataset to disk and then shut down the server",
    keys=(0, 0, 0),
)
def shutdown(c: Any, argv: list[bytes]) -> Any:
    raise CommandError(
        "ERR SHUTDOWN is refused: kv runs inside portsuite with the other services, and a "
        "client may not stop them all; stop the suite itself (Ctrl-C, or SIGTERM to twistd)"
    )


__all__ = ["REDIS_CATEGORIES"]
