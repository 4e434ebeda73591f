"""
The kv server: L{KVProtocol} (one client connection) and L{KVServer} (the factory,
which holds the keyspace, the append-only file and the pub/sub channels).

A batch of pipelined commands (one C{dataReceived}) is parsed, run, appended to
the AOF (fsynced first with C{fsync = always}) and answered with one write.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from portsuite.services.kv.aof import AOF, read_records
from portsuite.services.kv.commands import COMMANDS, COMMANDS_ANY_CASE, NO_REPLY, CommandError
from portsuite.services.kv.resp import (
    OK,
    ProtocolError,
    Push,
    RequestParser,
    encode2,
    encode3,
)
from portsuite.services.kv.store import Store

log = Logger(namespace="portsuite.kv")

SUBSCRIBED_OK = frozenset(
    (b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe", b"ping", b"quit", b"reset")
)
DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no "
    b"password is set for the default user. In this mode connections are only accepted from "
    b"the loopback interface. If you want to connect from external computers, set a password "
    b'(password = "..." in [services.kv] of the portsuite config), or set '
    b"protected_mode = false there if this network is trusted.\r\n"
)
MAX_CLIENTS = b"-ERR max number of clients reached\r\n"
NOT_QUEUED = frozenset((b"exec", b"discard", b"multi", b"watch", b"quit", b"reset"))


@attrs.define
class Settings:
    """The options of a kv service (CONFIG GET/SET reads and changes some)."""

    data: Path | None = None
    fsync: str = "everysec"
    password: str | None = None
    maxclients: int = 10000
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_output_buffer_limit: int = 32 * 1024 * 1024
    timeout: int = 0
    protected_mode: bool = True
    aof_rewrite_min_size: int = 64 * 1024 * 1024


def is_loopback(addr: Any) -> bool:
    host = getattr(addr, "host", None)
    if host is None:
        return True  # unix socket, or an in-memory transport
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class _Refuse(Protocol):
    transport: Any

    def __init__(self, message: bytes):
        self.message = message

    def connectionMade(self) -> None:
        self.transport.write(self.message)
        self.transport.loseConnection()


@implementer(IPushProducer)
class KVProtocol(Protocol):
    """One client of the Redis-compatible store (RESP2/RESP3, inline commands)."""

    transport: Any

    def __init__(self, server: KVServer):
        self.server = server
        self.store = server.store
        s = server.settings
        self.authenticated = not s.password
        self.parser = RequestParser(s.proto_max_bulk_len, locked=not self.authenticated)
        self.resp = 2
        self.enc = encode2
        self.id = server.next_id()
        self.name: bytes | None = None
        self.lib: dict[bytes, bytes] = {}
        self.channels: set[bytes] = set()
        self.patterns: set[bytes] = set()
        self.close_after_reply = False
        self.closed = False
        self.also: list[list[bytes]] | None = None
        self._out: list[bytes] | None = None
        self.paused = False
        self.queue: list[bytes] = []
        self.queued = 0
        self.created = self.last = server.clock()
        self.last_cmd: Any = None
        self.multi: list[tuple[Any, list[bytes]]] | None = None  # commands queued by MULTI
        self.multi_failed = False
        self.plain = self.authenticated
        self.watching: set[bytes] = set()
        self.watch_dirty = False
        self._raw: Any = None
        self._counted: Any = None
        self.peer = "?"

    # -- connection ----------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer = _format(peer)
        s = self.server.settings
        if s.protected_mode and not s.password and not is_loopback(peer):
            log.warn("kv: refused {peer}: protected mode (no password set)", peer=self.peer)
            self.closed = True
            self.transport.write(DENIED)
            self.transport.loseConnection()
            return
        self.server.clients[self.id] = self
        self.server.total_connections += 1
        self.transport.registerProducer(self, True)
        self._raw, self._counted = _direct_transport(self.transport)
        nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if nodelay is not None:
            try:
                nodelay(True)  # replies go out now, not when the last one is acknowledged
            except OSError:
                pass

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.unwatch()
        server = self.server
        server.clients.pop(self.id, None)
        for ch in self.channels:
            subs = server.channels.get(ch)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del server.channels[ch]
        for pat in self.patterns:
            subs = server.patterns.get(pat)
            if subs is not None:
                subs.discard(self)
                if not subs:
                    del server.patterns[pat]
        self.channels = set()
        self.patterns = set()
        self.queue = []

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns)

    def refresh(self) -> None:
        """After AUTH, MULTI, SUBSCRIBE…: can the next command skip the state checks?"""
        self.plain = (
            self.authenticated and self.multi is None and not (self.channels or self.patterns)
        )

    def set_authenticated(self) -> None:
        self.authenticated = True
        self.parser.locked = False
        self.refresh()

    def set_resp(self, version: int) -> None:
        self.resp = version
        self.enc = encode3 if version == 3 else encode2

    def exec_multi(self) -> bytes:
        """EXEC: run the queued commands, one after the other, replies in one array."""
        queued, self.multi = self.multi or [], None
        failed, self.multi_failed = self.multi_failed, False
        dirty = self.watch_dirty
        self.unwatch()
        if failed:
            return b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        if dirty:  # a watched key changed: nothing is run
            return b"*-1\r\n" if self.resp == 2 else b"_\r\n"
        out: list[bytes] = [b"*%d\r\n" % len(queued)]
        for _cmd, argv in queued:
            self.execute(argv, out)  # not queued again: self.multi is None now
        return b"".join(out)

    def watch(self, keys: list[bytes]) -> None:
        for key in keys:
            self.store.get(key)  # an expired key goes now, not later as a "change"
            if key not in self.watching:
                self.watching.add(key)
                self.server.watched.setdefault(key, set()).add(self)

    def unwatch(self) -> None:
        watched = self.server.watched
        for key in self.watching:
            clients = watched.get(key)
            if clients is not None:
                clients.discard(self)
                if not clients:
                    del watched[key]
        self.watching = set()
        self.watch_dirty = False

    def reset(self) -> None:
        self.unwatch()
        self.multi = None
        self.multi_failed = False
        self.set_resp(2)
        self.name = None
        self.connectionLost()
        self.closed = False
        self.server.clients[self.id] = self
        self.authenticated = not self.server.settings.password
        self.parser.locked = not self.authenticated
        self.refresh()

    # -- flow control: a client that does not read cannot grow our memory ----------

    def pauseProducing(self) -> None:
        # the transport's buffer is full: stop reading this client's requests
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        queue, self.queue, self.queued = self.queue, [], 0
        if queue:
            self.transport.write(b"".join(queue))
        if not self.paused and not self.closed:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass

    def send(self, data: bytes) -> None:
        if self.paused:
            self.queue.append(data)
            self.queued += len(data)
            limit = self.server.settings.client_output_buffer_limit
            if limit and self.queued > limit:
                log.warn(
                    "kv: closing {peer}: output buffer over {limit} bytes "
                    "(the client sends commands but does not read the replies)",
                    peer=self.peer,
                    limit=limit,
                )
                self.closed = True
                self.queue = []
                self.transport.abortConnection()
        else:
            raw = self._raw
            if (
                raw is not None
                and not raw._tempDataLen
                and raw.offset == len(raw.dataBuffer)
                and not raw.disconnecting
            ):
                # Nothing queued: send now instead of on the next reactor turn (saves
                # a round of the event loop and two epoll_ctl calls per reply).
                n = raw.writeSomeData(data)
                if type(n) is int:
                    counted = self._counted
                    if counted is not None:  # what the wrapper's write() would do
                        counted.client.bytes_out += n
                        if counted._idle is not None:
                            counted._touch()
                    if n == len(data):
                        return
                    data = data[n:]
            self.transport.write(data)

    def push(self, reply: Any) -> None:
        """An out-of-band reply (pub/sub): now, or with the current batch."""
        if type(reply) is list:
            reply = Push(reply)
        if self.closed:
            return
        out: list[bytes] = []
        self.enc(reply, out)
        if self._out is not None:
            self._out.extend(out)
        else:
            self.send(b"".join(out))

    # -- requests --------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self.closed or self.close_after_reply:
            return
        server = self.server
        self.last = server.clock()
        error = None
        try:
            cmds = self.parser.feed(data)
        except ProtocolError as e:
            cmds = self.parser.ready
            error = str(e)
        out: list[bytes] = []
        self._out = out
        execute = self.execute
        server.total_commands += len(cmds)
        for argv in cmds:
            execute(argv, out)
            if self.close_after_reply or self.closed:
                break
        self._out = None
        if self.closed:
            return
        if error is not None and not self.close_after_reply:
            out.append(b"-ERR Protocol error: %s\r\n" % error.encode("latin-1"))
            self.close_after_reply = True
            log.info(
                "kv: protocol error from {peer}: {error}; closing", peer=self.peer, error=error
            )
        aof = server.aof
        if aof is not None and aof.buf and aof.ok:
            try:
                aof.flush()
            except OSError:
                # not on disk: acknowledge nothing of this batch
                log.error(
                    "kv: cannot write {path}: {error}; writes are refused (MISCONF) until it works",
                    path=str(aof.path),
                    error=aof.error,
                )
                self.closed = True
                self.transport.abortConnection()
                return
        if out:
            self.send(b"".join(out))
        if self.close_after_reply:
            self.transport.loseConnection()

    def execute(self, argv: list[bytes], out: list[bytes]) -> None:
        """Run one command; its reply (if any) is appended to C{out}."""
        name = argv[0]
        cmd = COMMANDS_ANY_CASE.get(name)  # GET and get without lower()
        if cmd is None:
            name = name.lower()
            cmd = COMMANDS.get(name)
        else:
            name = cmd.lname
        server = self.server
        if cmd is None:
            if name == b"post" or name == b"host:":
                log.warn(
                    "kv: possible SECURITY ATTACK from {peer}: an HTTP request ({name}) was "
                    "sent to the kv port (cross-protocol scripting); connection closed",
                    peer=self.peer,
                    name=argv[0].decode("latin-1"),
                )
                self.closed = True
                self.transport.loseConnection()
                return
            out.append(_unknown(argv))
            if self.multi is not None:
                self.multi_failed = True
            return
        if cmd.subcommands and (len(argv) > 1 or cmd.arity != -1):
            if len(argv) == 1:
                out.append(b"-ERR wrong number of arguments for '%s' command\r\n" % name)
                if self.multi is not None:
                    self.multi_failed = True
                return
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is None:
                out.append(
                    b"-ERR unknown subcommand '%s'. Try %s HELP.\r\n"
                    % (_clip(argv[1], 128), _clean(argv[0].upper()))
                )
                if self.multi is not None:
                    self.multi_failed = True
                return
            cmd = sub
        arity = cmd.arity
        n = len(argv)
        if (arity > 0 and n != arity) or n < -arity:
            out.append(
                b"-ERR wrong number of arguments for '%s' command\r\n" % cmd.fullname.encode()
            )
            if self.multi is not None:
                self.multi_failed = True
            return
        if not self.plain:  # not authenticated, subscribed (RESP2) or in MULTI
            if not self.authenticated and not cmd.noauth:
                out.append(b"-NOAUTH Authentication required.\r\n")
                return
            if self.resp == 2 and (self.channels or self.patterns) and name not in SUBSCRIBED_OK:
                out.append(
                    b"-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING "
                    b"/ QUIT / RESET are allowed in this context\r\n" % cmd.fullname.encode()
                )
                return
            if self.multi is not None and name not in NOT_QUEUED:
                self.multi.append((cmd, argv))
                out.append(b"+QUEUED\r\n")
                return
        self.last_cmd = cmd
        store = self.store
        write = cmd.write
        if write:
            if server.aof is not None and not server.aof.ok:
                out.append(
                    b"-MISCONF Errors writing to the AOF file: %s\r\n" % server.aof.error.encode()
                )
                return
            self.also = None
            dirty = store.dirty
        try:
            r = cmd.handler(self, argv)
        except CommandError as e:
            out.append(b"-%s\r\n" % str(e).encode())
            if cmd.stateful:
                self.refresh()
            return
        if cmd.stateful:
            self.refresh()
        if write and store.dirty != dirty:
            if server.watched:
                server.touch(cmd, argv)
            aof = server.aof
            if aof is not None:
                if self.also is None:
                    aof.feed(argv)
                else:
                    for a in self.also:
                        aof.feed(a)
        if r is NO_REPLY:
            return
        if type(r) is bytes:
            out.append(b"$%d\r\n%s\r\n" % (len(r), r))
        elif r is OK:
            out.append(b"+OK\r\n")
        else:
            self.enc(r, out)

    def info_line(self) -> str:
        now = self.server.clock()
        flags = "P" if self.subscribed else "N"
        name = (self.name or b"").decode("latin-1")
        lib = self.lib
        return (
            f"id={self.id} addr={self.peer} laddr={self.server.laddr} name={name} "
            f"age={int(now - self.created)} idle={int(now - self.last)} flags={flags} db=0 "
            f"sub={len(self.channels)} psub={len(self.patterns)} multi=-1 "
            f"obl=0 oll={len(self.queue)} omem={self.queued} "
            f"cmd={self.last_cmd.fullname if self.last_cmd else 'NULL'} user=default "
            f"lib-name={lib.get(b'lib-name', b'').decode('latin-1')} "
            f"lib-ver={lib.get(b'lib-ver', b'').decode('latin-1')} resp={self.resp}"
        )


def _direct_transport(transport: Any) -> tuple[Any, Any]:
    """
    The plain TCP connection under the suite's counting wrapper, if that is all
    there is (no TLS, no trace): replies can then be written to it directly when
    its buffer is empty, with the wrapper's byte counters kept up to date.
    """
    from twisted.internet.tcp import Connection

    from portsuite.wrappers import ServiceProtocol

    counted = None
    if type(transport) is ServiceProtocol:
        if not all(hasattr(transport, a) for a in ("client", "_idle", "_touch")):
            return None, None  # the wrapper changed: let its write() do its job
        counted = transport
        transport = transport.transport
    if isinstance(transport, Connection) and hasattr(transport, "_tempDataLen"):
        return transport, counted
    return None, None


def _clip(b: bytes, n: int) -> bytes:
    nul = b.find(b"\0")
    if nul >= 0:
        b = b[:nul]
    return _clean(b[:n])


def _clean(b: bytes) -> bytes:
    return b.replace(b"\r", b" ").replace(b"\n", b" ")


def _unknown(argv: list[bytes]) -> bytes:
    """Redis's text: the name and the first arguments, 128 bytes at most."""
    args = b""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'%s' " % _clip(a, 128 - len(args))
    return b"-ERR unknown command '%s', with args beginning with: %s\r\n" % (
        _clip(argv[0], 128),
        _clean(args),
    )


def _format(addr: Any) -> str:
    host = getattr(addr, "host", None)
    if host is None:
        return "local"
    port = getattr(addr, "port", 0)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KVServer(ServerFactory):
    """
    The kv service: the keyspace, its append-only file and its clients.

    Built once per service by L{portsuite.services.kv.build}; loads the data file
    when built (so a corrupt file stops startup), flushes and fsyncs it when stopped.
    """

    noisy = False

    def __init__(self, settings: Settings, reactor: Any, name: str = "kv", port: int | None = None):
        self.settings = settings
        self.reactor = reactor
        self.name = name
        self.port = port
        self.laddr = f"127.0.0.1:{port}"
        self.clock = reactor.seconds
        self.store = Store(reactor.seconds)
        self.store.on_expired = self._expired
        self.clients: dict[int, KVProtocol] = {}
        self.watched: dict[bytes, set[KVProtocol]] = {}  # WATCHed keys and who watches
        self.channels: dict[bytes, set[KVProtocol]] = {}
        self.patterns: dict[bytes, set[KVProtocol]] = {}
        self._ids = 0
        self.total_connections = 0
        self.total_commands = 0
        self.rejected = 0
        self.started = time.time()
        self.last_save = time.time()
        self.aof: AOF | None = None
        self._loops: list[LoopingCall] = []
        self._ticks = 0
        if settings.data is not None:
            self.load(settings.data)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def touch(self, cmd: Any, argv: list[bytes]) -> None:
        """A write changed the keys of C{argv}: transactions WATCHing them will fail."""
        watched = self.watched
        if cmd.name in ("flushall", "flushdb"):
            return  # done before the flush, for the keys that existed
        else:
            last = cmd.last_key if cmd.last_key >= 0 else len(argv) + cmd.last_key
            keys = argv[cmd.first_key : last + 1 : cmd.key_step or 1] if cmd.first_key else []
        for key in keys:
            for client in watched.get(key, ()):
                client.watch_dirty = True

    def _expired(self, key: bytes) -> None:
        for client in self.watched.get(key, ()):
            client.watch_dirty = True
        if self.aof is not None:
            self.aof.feed([b"DEL", key])

    # -- persistence -------------------------------------------------------------------

    def load(self, path: Path) -> None:
        """
        Replay the data file. A truncated last record is dropped (with a warning);
        anything else wrong raises L{portsuite.services.kv.aof.AOFError}.
        """
        from portsuite.services.kv.aof import AOFError

        aof = AOF(path, self.settings.fsync)
        if path.exists():
            cmds, good, size, truncated = read_records(path)
            if truncated:
                log.warn(
                    "kv: {path}: {why} (a crash while writing?); dropping the last "
                    "{n} bytes and loading the {count} complete records before them",
                    path=str(path),
                    why=truncated,
                    n=size - good,
                    count=len(cmds),
                )
                aof.truncate(good)
            loader = KVProtocol(self)
            loader.set_authenticated()
            self.store.loading = True
            try:
                for i, argv in enumerate(cmds):
                    out: list[bytes] = []
                    loader.execute(argv, out)
                    if out and out[0].startswith(b"-"):
                        raise AOFError(
                            f"data file {path}: record {i + 1} "
                            f"({argv[0].decode('latin-1')}) fails: "
                            f"{out[0][1:].decode('latin-1').strip()}; nothing was started: repair "
                            f"or move the file away"
                        )
            finally:
                self.store.loading = False
            self.total_commands = 0
            self._ids = 0
            log.info("kv: loaded {n} keys from {path}", n=len(self.store), path=str(path))
        aof.open()
        self.aof = aof

    def rewrite_aof(self) -> None:
        if self.aof is None:
            return
        self.aof.rewrite(self.store)
        self.last_save = time.time()
        log.info(
            "kv: compacted {path} to {size} bytes", path=str(self.aof.path), size=self.aof.size
        )

    # -- factory ---------------------------------------------------------------------

    def buildProtocol(self, addr: Any) -> Protocol:
        if len(self.clients) >= self.settings.maxclients:
            self.rejected += 1
            p: Protocol = _Refuse(MAX_CLIENTS)
        else:
            p = KVProtocol(self)
        p.factory = self
        return p

    def startFactory(self) -> None:
        self._every(0.1, self._cron)
        if self.aof is not None and self.settings.fsync == "everysec":
            self._every(1.0, self._sync)

    def _every(self, interval: float, f: Any) -> None:
        loop = LoopingCall(f)
        loop.clock = self.reactor
        loop.start(interval, now=False)
        self._loops.append(loop)

    def _sync(self) -> None:
        try:
            self.aof.sync()  # type: ignore[union-attr]
        except OSError as e:
            log.error("kv: fsync of the data file failed: {error}", error=e)

    def _cron(self) -> None:
        """Every 100 ms: active expiry, idle clients, AOF growth."""
        if self.store.expire_cycle() and self.aof is not None and self.aof.ok:
            try:
                self.aof.flush()
            except OSError:
                pass
        self._ticks += 1
        timeout = self.settings.timeout
        if timeout and self._ticks % 10 == 0:  # idle clients: once a second is enough
            now = self.clock()
            for client in list(self.clients.values()):
                if not client.subscribed and now - client.last > timeout:
                    log.info(
                        "kv: closing {peer}: idle for {t}s (timeout)", peer=client.peer, t=timeout
                    )
                    client.closed = True
                    client.transport.loseConnection()
        aof = self.aof
        if aof is None:
            return
        if not aof.ok:
            try:
                aof.flush()  # retry: writes are accepted again once this works
                log.info("kv: {path} is writable again", path=str(aof.path))
            except OSError:
                return
        if aof.needs_rewrite(self.settings.aof_rewrite_min_size):
            self.rewrite_aof()

    def stopFactory(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        if self.aof is not None:
            self.aof.close()
            log.info("kv: {path} flushed and fsynced", path=str(self.aof.path))

    # -- CONFIG GET/SET ------------------------------------------------------------------

    def config_params(self) -> dict[str, str]:
        s = self.settings
        limit = s.client_output_buffer_limit
        return {
            "maxclients": str(s.maxclients),
            "timeout": str(s.timeout),
            "requirepass": s.password or "",
            "proto-max-bulk-len": str(s.proto_max_bulk_len),
            "client-output-buffer-limit": f"normal {limit} {limit} 0 slave 0 0 0 pubsub {limit} {limit} 0",
            "appendonly": "yes" if self.aof is not None else "no",
            "appendfsync": s.fsync,
            "appendfilename": s.data.name if s.data else "",
            "dir": str(s.data.parent) if s.data else "",
            "save": "",
            "databases": "1",
            "protected-mode": "yes" if s.protected_mode else "no",
            "port": str(self.port or 0),
            "maxmemory": "0",
            "maxmemory-policy": "noeviction",
        }

    _INT_SETTINGS = {
        "maxclients": "maxclients",
        "timeout": "timeout",
        "proto-max-bulk-len": "proto_max_bulk_len",
    }

    def config_set(self, name: str, value: bytes, check_only: bool = False) -> str | None:
        text = value.decode("utf-8", "replace")
        if name in self._INT_SETTINGS:
            try:
                v = int(text)
                if v < 0:
                    raise ValueError
            except ValueError:
                return (
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - argument "
                    f"couldn't be parsed into an integer"
                )
            if not check_only:
                setattr(self.settings, self._INT_SETTINGS[name], v)
            return None
        if name == "requirepass":
            if not check_only:
                self.settings.password = text or None
            return None
        if name == "appendfsync":
            if text not in ("always", "everysec", "no"):
                return f"ERR CONFIG SET failed (possibly related to argument '{name}') - argument(s) must be one of the following: always, everysec, no"
            if not check_only:
                self.settings.fsync = text
                if self.aof is not None:
                    self.aof.fsync = text
            return None
        if name == "protected-mode":
            if text not in ("yes", "no"):
                return f"ERR CONFIG SET failed (possibly related to argument '{name}') - argument must be 'yes' or 'no'"
            if not check_only:
                self.settings.protected_mode = text == "yes"
            return None
        return f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
