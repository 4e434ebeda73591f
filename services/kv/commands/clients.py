"""CLIENT KILL/REPLY/PAUSE/UNPAUSE/NO-EVICT/NO-TOUCH/TRACKINGINFO/GETREDIR/UNBLOCK, MONITOR."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portsuite_services.kv import bigwork
from portsuite_services.kv.commands import SYNTAX, CommandError, command
from portsuite_services.kv.commands.connection import CLIENT_COST, CLIENTS_PIECE
from portsuite_services.kv.resp import OK, RAW, Map, SetReply, string2ll

C = "connection"
_TYPES = (b"normal", b"master", b"slave", b"replica", b"pubsub")


def _attr_is(attr: str, value: Any) -> Callable[[Any], bool]:
    return lambda cl: bool(getattr(cl, attr) == value)


def _user_is(name: str) -> Callable[[Any], bool]:
    return lambda cl: bool(cl.user.name == name)


def _older(created_before: float) -> Callable[[Any], bool]:
    return lambda cl: bool(cl.created <= created_before)


def _kill(c: Any, victims: list[Any]) -> int:
    for v in victims:
        if v is c:
            c.close_after_reply = True  # its reply first, as Redis
        else:
            v.kill()
    return len(victims)


def _filters(c: Any, argv: list[bytes]) -> bigwork.Steps[tuple[list[Callable[[Any], bool]], bool]]:
    """
    CLIENT KILL's filters, a piece of options a step (a million arguments): each
    option names one filter, the last given counts (Redis 7.0: C{ID 1 ID 2} kills 2).
    """
    skipme = True
    tests: dict[bytes, Callable[[Any], bool]] = {}
    for lo in range(2, len(argv), bigwork.PIECE):
        for i in range(lo, min(lo + bigwork.PIECE, len(argv)), 2):
            opt, val = argv[i].lower(), argv[i + 1]
            if opt == b"skipme":
                if val.lower() not in (b"yes", b"no"):
                    raise CommandError(SYNTAX)
                skipme = val.lower() == b"yes"
            else:
                tests[opt] = _filter(c, opt, val)
        yield
    return list(tests.values()), skipme


def _filter(c: Any, opt: bytes, val: bytes) -> Callable[[Any], bool]:
    """The clients CLIENT KILL's option C{opt} C{val} matches; Redis's errors."""
    if opt == b"id":
        cid = string2ll(val)  # (not a number: Redis says the same)
        if cid is None or cid <= 0:
            raise CommandError("ERR client-id should be greater than 0")
        return _attr_is("id", cid)
    if opt == b"type":
        kind = val.lower()
        if kind not in _TYPES:
            raise CommandError(f"ERR Unknown client type '{val.decode('utf-8', 'replace')}'")
        if kind == b"pubsub":
            return lambda cl: bool(cl.subscribed)
        if kind == b"normal":
            return lambda cl: not cl.subscribed
        return lambda cl: False
    if opt == b"user":
        name = val.decode("utf-8", RAW)
        if name not in c.server.users:
            raise CommandError(f"ERR No such user '{name}'")
        return _user_is(name)
    if opt == b"addr":
        return _attr_is("peer", val.decode("latin-1"))
    if opt == b"laddr":
        return _attr_is("laddr", val.decode("latin-1"))
    if opt == b"maxage":
        age = string2ll(val)
        if age is None:
            raise CommandError(SYNTAX)
        return _older(c.server.clock() - age)
    raise CommandError(SYNTAX)


@command(
    "kill",
    -3,
    "admin noscript loading stale",
    C,
    "Kill the connection of a client",
    parent="client",
)
def client_kill(c: Any, argv: list[bytes]) -> Any:
    clients = list(c.server.clients.values())
    if len(argv) == 3:  # old form: CLIENT KILL ip:port
        addr = argv[2].decode("latin-1")
        victims = [cl for cl in clients if cl.peer == addr]
        if not victims:
            raise CommandError("ERR No such client")
        _kill(c, victims[:1])
        return OK
    if len(argv) % 2:
        raise CommandError(SYNTAX)

    def kills() -> bigwork.Steps[int]:
        """Kill the clients that match, a piece a step (thousands: bigwork.py's slices)."""
        tests, skipme = yield from _filters(c, argv)
        n = 0
        for i in range(0, len(clients), CLIENTS_PIECE):
            victims = [
                cl
                for cl in clients[i : i + CLIENTS_PIECE]
                if not cl.closed and all(t(cl) for t in tests) and not (skipme and cl is c)
            ]
            n += _kill(c, victims)
            yield
        return n

    return bigwork.compute(c, argv, len(argv) + len(clients) * CLIENT_COST, kills)


@command(
    "reply",
    3,
    "noscript loading stale",
    C,
    "Instruct the server whether to reply to commands",
    parent="client",
)
def client_reply(c: Any, argv: list[bytes]) -> Any:
    mode = argv[2].lower()
    if mode == b"on":
        c.set_reply_mode(None)
    elif mode == b"off":
        c.set_reply_mode("off")
    elif mode == b"skip":
        c.set_reply_mode("skip-this")
    else:
        raise CommandError(SYNTAX)
    return OK


@command(
    "pause",
    -3,
    "admin noscript loading stale",
    C,
    "Stop processing commands from clients for some time",
    parent="client",
)
def client_pause(c: Any, argv: list[bytes]) -> Any:
    ms = string2ll(argv[2])
    if ms is None:
        raise CommandError("ERR timeout is not an integer or out of range")
    if ms < 0:
        raise CommandError("ERR timeout is negative")
    everything = True
    if len(argv) == 4:
        mode = argv[3].lower()
        if mode == b"write":
            everything = False
        elif mode != b"all":
            raise CommandError("ERR CLIENT PAUSE mode must be WRITE or ALL")
    elif len(argv) > 4:
        raise CommandError(
            f"ERR unknown subcommand or wrong number of arguments for '{argv[1].decode('utf-8', 'replace')}'. "
            "Try CLIENT HELP."
        )
    c.server.pause(ms / 1000.0, everything)
    return OK


@command(
    "unpause",
    2,
    "admin noscript loading stale",
    C,
    "Resume processing of clients that were paused",
    parent="client",
)
def client_unpause(c: Any, argv: list[bytes]) -> Any:
    c.server.unpause()
    return OK


def _on_off(argv: list[bytes]) -> bool:
    v = argv[2].lower()
    if v not in (b"on", b"off"):
        raise CommandError(SYNTAX)
    return v == b"on"


@command(
    "no-evict",
    3,
    "admin noscript loading stale",
    C,
    "Set client eviction mode for the current connection",
    parent="client",
)
def client_no_evict(c: Any, argv: list[bytes]) -> Any:
    _on_off(argv)  # kv never evicts clients for memory: nothing to exempt
    return OK


@command(
    "no-touch",
    3,
    "noscript loading stale",
    C,
    "Controls whether commands sent by the client will alter the LRU/LFU of the keys they access",
    parent="client",
)
def client_no_touch(c: Any, argv: list[bytes]) -> Any:
    _on_off(argv)  # kv keeps no LRU/LFU clock: nothing to leave untouched
    return OK


@command(
    "trackinginfo",
    2,
    "noscript loading stale",
    C,
    "Return information about server assisted client side caching for the current connection",
    parent="client",
)
def client_trackinginfo(c: Any, argv: list[bytes]) -> Any:
    return Map([(b"flags", SetReply([b"off"])), (b"redirect", -1), (b"prefixes", [])])


@command(
    "getredir",
    2,
    "noscript loading stale",
    C,
    "Get tracking notifications redirection client ID if any",
    parent="client",
)
def client_getredir(c: Any, argv: list[bytes]) -> Any:
    return -1


@command(
    "tracking",
    -3,
    "noscript loading stale",
    C,
    "Enable or disable server assisted client side caching support",
    parent="client",
)
def client_tracking(c: Any, argv: list[bytes]) -> Any:
    mode = argv[2].lower()
    if mode == b"off":
        return OK  # tracking is never on
    if mode != b"on":
        raise CommandError(SYNTAX)
    raise CommandError(
        "ERR client-side caching (CLIENT TRACKING) is not supported by kv: it sends no "
        "invalidation messages, so a cache would serve stale values"
    )


@command(
    "caching",
    3,
    "noscript loading stale",
    C,
    "Instruct the server about tracking or not keys in the next request",
    parent="client",
)
def client_caching(c: Any, argv: list[bytes]) -> Any:
    raise CommandError(
        "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN "
        "or OPTOUT mode enabled"
    )


@command(
    "monitor",
    1,
    "admin noscript loading stale",
    "server",
    "Listen for all requests received by the server in real time",
    keys=(0, 0, 0),
)
def monitor(c: Any, argv: list[bytes]) -> Any:
    c.server.add_monitor(c)
    return OK
