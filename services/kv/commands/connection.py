"""Connection commands: PING ECHO QUIT AUTH HELLO SELECT RESET, MULTI/EXEC/WATCH, CLIENT."""

from __future__ import annotations

from typing import Any

from portsuite_services.kv import bigstr, bigwork
from portsuite_services.kv.commands import (
    NO_REPLY,
    SYNTAX,
    CommandError,
    command,
    container,
    help_command,
    wrong_arity,
)
from portsuite_services.kv.resp import (
    OK,
    RAW,
    Map,
    Simple,
    Verbatim,
    string2ll,
)

REDIS_VERSION = "7.0.15"  # what clients read in HELLO and INFO
C = "connection"

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


def check_password(c: Any, user: bytes, password: bytes) -> Any:
    """The ACL user C{user}/C{password} opens, else None (and the failure goes to ACL LOG)."""
    name = user.decode("utf-8", RAW)  # (not UTF-8: another name, not U+FFFD's)
    found = c.server.users.get(name)
    if found is not None and found.check_password(password):
        return found
    c.server.acl_log.add("auth", "toplevel", "AUTH", name, c.info_line())
    return None


@command("auth", -2, "noauth fast", C, "Authenticate to the server", keys=(0, 0, 0))
def auth(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise CommandError(SYNTAX)
    if len(argv) == 2:
        if c.server.users["default"].nopass:
            raise CommandError(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        user, password = b"default", argv[1]
    else:
        user, password = argv[1], argv[2]
    found = check_password(c, user, password)
    if found is None:
        raise CommandError(WRONGPASS)
    c.set_authenticated(found)
    return OK


_NAME_BYTES = bytes(range(33, 127))  # what Redis allows in a name: '!' to '~'


def _first_special(names: list[bytes]) -> bigwork.Steps[int]:
    """
    The index of the first of C{names} holding a space, a newline or another byte
    Redis refuses in a name (-1: none), C{bigstr.STEP} bytes a step.
    """
    for i, name in enumerate(names):
        for at in range(0, len(name), bigstr.STEP):
            if name[at : at + bigstr.STEP].translate(None, _NAME_BYTES):
                return i
            yield
    return -1


def _special(c: Any, argv: list[bytes], names: list[bytes]) -> Any:
    """L{_first_special} (sliced past L{bigstr.SLICED} bytes: then C{NO_REPLY} first)."""
    size = sum(map(len, names))
    return bigstr.compute(c, argv, size, lambda: _first_special(names))


_BAD_NAME = "ERR Client names cannot contain spaces, newlines or special characters."


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
    names = []
    syntax = None
    while j < len(argv):
        more = len(argv) - 1 - j
        opt = argv[j].lower()
        if opt == b"auth" and more >= 2:
            user, password = argv[j + 1], argv[j + 2]
            j += 3
        elif opt == b"setname" and more >= 1:
            name = argv[j + 1]
            names.append(name)
            j += 2
        else:
            syntax = f"ERR Syntax error in HELLO option '{argv[j].decode('utf-8', 'replace')}'"
            break
    bad = _special(c, argv, names)  # (the names before a syntax error, as Redis checks them)
    if bad is NO_REPLY:
        return bad
    if bad >= 0:
        raise CommandError(_BAD_NAME)
    if syntax is not None:
        raise CommandError(syntax)
    if user is not None and password is not None:
        found = check_password(c, user, password)
        if found is None:
            raise CommandError(WRONGPASS)
        c.set_authenticated(found)
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


@command("select", 2, "fast", C, "Change the selected database", keys=(0, 0, 0))
def select(c: Any, argv: list[bytes]) -> Any:
    from portsuite_services.kv.commands.databases import db_index

    c.select(db_index(c, argv[1]).id)
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
    c.multi_mem = 0
    c.multi_writes = False
    return OK


@command("exec", 1, "", T, "Execute all commands issued after MULTI", keys=(0, 0, 0))
def exec_(c: Any, argv: list[bytes]) -> Any:
    if c.multi is None and c.precomputed is None:  # (precomputed: run again, multiwork.py)
        raise CommandError("ERR EXEC without MULTI")
    return c.exec_multi()


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
    if len(argv) > bigwork.ARGS:  # a million keys: watched a slice at a time
        if bigwork.each(c, argv, 1, lambda keys: c.watch(keys) or [], 4) is NO_REPLY:
            return NO_REPLY
        return OK
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
    bad = _special(c, argv, [argv[2]])
    if bad is NO_REPLY:
        return bad
    if bad >= 0:
        raise CommandError(_BAD_NAME)
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
    bad = _special(c, argv, [argv[3]])
    if bad is NO_REPLY:
        return bad
    if bad >= 0:
        raise CommandError(
            f"ERR {attr.decode()} cannot contain spaces, newlines or special characters."
        )
    c.lib[attr] = argv[3]
    return OK


@command("list", -2, "admin", C, "Get the list of client connections", parent="client")
def client_list(c: Any, argv: list[bytes]) -> Any:
    clients = list(c.server.clients.values())
    if len(argv) == 4 and argv[2].lower() == b"type":
        kind = argv[3].lower()
        if kind == b"pubsub":
            clients = [cl for cl in clients if cl.subscribed]
        elif kind == b"normal":
            clients = [cl for cl in clients if not cl.subscribed]
        elif kind in (b"master", b"slave", b"replica"):
            clients = []
        else:
            raise CommandError(f"ERR Unknown client type '{argv[3].decode('utf-8', 'replace')}'")
    elif len(argv) > 3 and argv[2].lower() == b"id":
        # a million IDs: looked up and described in slices too
        text = bigwork.compute(c, argv, len(argv) * CLIENT_COST, lambda: _by_id(c, argv))
        return text if text is NO_REPLY else Verbatim(text)
    elif len(argv) != 2:
        raise CommandError(SYNTAX)

    def lines() -> bigwork.Steps[str]:
        mine = c.info_line()  # (now: while the others' are made, it waits: flag b)
        return _info_lines(clients, c, mine)

    # thousands of clients (25 us a line): the lines are made in slices (bigwork.py)
    text = bigwork.compute(c, argv, len(clients) * CLIENT_COST, lines)
    return text if text is NO_REPLY else Verbatim(text)


CLIENTS_PIECE = 128  # clients described (CLIENT LIST) or killed (CLIENT KILL) a step
CLIENT_COST = bigwork.PIECE // CLIENTS_PIECE  # a client: worth that many elements


def _info_lines(clients: list[Any], c: Any, mine: str) -> bigwork.Steps[str]:
    """CLIENT LIST's text, a piece of clients a step (those that closed meanwhile left out)."""
    out = []
    for i in range(0, len(clients), CLIENTS_PIECE):
        out += [
            (mine if cl is c else cl.info_line()) + "\n"
            for cl in clients[i : i + CLIENTS_PIECE]
            if not cl.closed
        ]
        yield
    return "".join(out)


def _by_id(c: Any, argv: list[bytes]) -> bigwork.Steps[str]:
    """
    CLIENT LIST ID's text: a line per ID that names a client, in the order given (an
    ID given twice, twice), as Redis 7.0; C{-ERR Invalid client ID} for a non-number.
    """
    table = c.server.clients
    lines: dict[int, str] = {c.id: c.info_line() + "\n"}  # (each client's, made once)
    out: list[str] = []
    done = 0  # elements' worth of work since the last step (a line: CLIENT_COST)
    for i in range(3, len(argv)):
        if done >= bigwork.PIECE:
            done = 0
            yield
        done += 1
        cid = string2ll(argv[i])
        if cid is None:
            raise CommandError("ERR Invalid client ID")
        line = lines.get(cid)
        if line is None:
            cl = table.get(cid)
            if cl is None or cl.closed:
                continue
            line = lines[cid] = cl.info_line() + "\n"
            done += CLIENT_COST
        out.append(line)
    return "".join(out)


@command(
    "info", 2, "", C, "Returns information about the current client connection", parent="client"
)
def client_info(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(c.info_line() + "\n")


help_command(
    "client",
    C,
    (
        "CACHING (YES|NO)",
        "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
        "GETREDIR",
        "    Return the client ID we are redirecting to when tracking is enabled.",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:",
        "    * ADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made to specified local address",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type.",
        "    * USER <username>",
        "      Kill connections authenticated by <username>.",
        "    * SKIPME (YES|NO)",
        "      Skip killing current connection (default: yes).",
        "LIST [options ...]",
        "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of specified type.",
        "UNPAUSE",
        "    Stop the current client pause, resuming traffic.",
        "PAUSE <timeout> [WRITE|ALL]",
        "    Suspend all, or just write, clients for <timeout> milliseconds.",
        "REPLY (ON|OFF|SKIP)",
        "    Control the replies sent to the current connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        "    Unblock the specified blocked client.",
        "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
        "         [OPTIN] [OPTOUT] [NOLOOP]",
        "    Control server assisted client side caching.",
        "TRACKINGINFO",
        "    Report tracking status for the current connection.",
        "NO-EVICT (ON|OFF)",
        "    Protect current client connection from eviction.",
    ),
)
