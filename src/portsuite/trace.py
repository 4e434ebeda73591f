"""
Transcripts: with C{trace = true}, a service (any type, plugins included) shows every
exchange it has, so a class can I{see} a protocol.

Each connection (or, over UDP, each run of datagrams from one peer) is a session: the
service, the peer (ip:port), when it started, and its lines, each a direction
(C{c2s} client→server, C{s2c} server→client), a time offset in seconds from the
session's start, and the bytes as readable text (C{\\r \\n \\t} and C{\\xNN} escapes,
a mostly binary chunk as hex).

A session goes three places:
  - the twisted log, one line per chunk;
  - C{ServiceStats.transcripts}, the last 5 sessions of the service, for the dashboard:
    C{{"service", "peer", "started", "lines": [{"dir", "t", "text"}], "cut"}};
  - a JSON-lines file per service in L{trace_dir} (C{$PORTSUITE_TRACE_DIR}, else
    C{/tmp/portsuite-trace-UID}), which C{portsuite trace SERVICE} follows live from
    another terminal, even when the suite runs under twistd as another user.

Everything is bounded: a session keeps at most L{MAX_LINES} lines and L{MAX_TEXT}
characters of text (then a C{… cut …} marker, and only the byte counts go on), one
chunk shows at most L{MAX_CHUNK} characters, and the file is rotated (the previous one
kept as C{.1}) past L{MAX_FILE} bytes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from twisted.logger import Logger

from portsuite.api import format_peer
from portsuite.api.stats import ServiceStats
from portsuite.wrappers import ServiceProtocol

log = Logger(namespace="portsuite.trace")

MAX_LINES = 200  # lines kept per session
MAX_TEXT = 16_000  # characters of text kept per session
MAX_CHUNK = 1_000  # characters shown of one chunk
MAX_HEX = 64  # bytes shown as hex of one binary chunk
MAX_FILE = 1_000_000  # bytes of a service's JSON-lines file before it is rotated
UDP_SESSION_GAP = 10.0  # seconds of silence after which a UDP peer starts a new session
UDP_PEERS = 64  # UDP peers followed at once per service
CUT = "… cut …"
ARROWS = {"c2s": "C→S", "s2c": "S→C"}

_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\"}


# -- bytes as text -------------------------------------------------------------


def _is_binary(data: bytes) -> bool:
    """Mostly not text: over a quarter of the bytes are control bytes or invalid UTF-8."""
    text = data.decode("utf-8", "surrogateescape")
    odd = sum(
        1
        for ch in text
        if (ch < " " and ch not in "\r\n\t") or ch == "\x7f" or "\udc80" <= ch <= "\udcff"
    )
    return odd * 4 > len(text)


def render(data: bytes, limit: int = MAX_CHUNK) -> str:
    """
    Bytes as a student reads them: text with C{\\r \\n \\t \\\\} and C{\\xNN}
    escapes, or C{hex: 83 aa 7e 80} when the chunk is mostly binary; at most
    C{limit} characters, then how many bytes were left out.
    """
    if not data:
        return "(empty)"
    if _is_binary(data):
        shown = data[:MAX_HEX]
        text = "hex: " + shown.hex(" ")
        if len(data) > len(shown):
            text += f" … (+{len(data) - len(shown)} bytes)"
        return text
    out: list[str] = []
    size = 0
    consumed = 0
    for ch in data.decode("utf-8", "surrogateescape"):
        if ch in _ESCAPES:
            piece = _ESCAPES[ch]
        elif "\udc80" <= ch <= "\udcff":
            piece = f"\\x{ord(ch) - 0xDC00:02x}"
        elif unicodedata.category(ch)[0] == "C":
            code = ord(ch)
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
        else:
            piece = ch
        if size + len(piece) > limit:
            left = len(data) - consumed
            out.append(f" … (+{left} bytes)")
            break
        out.append(piece)
        size += len(piece)
        consumed += 1 if "\udc80" <= ch <= "\udcff" else len(ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


# -- the JSON-lines file ---------------------------------------------------------


def trace_dir() -> Path:
    """Where the JSON-lines transcripts go: C{$PORTSUITE_TRACE_DIR}, else a per-user /tmp folder."""
    env = os.environ.get("PORTSUITE_TRACE_DIR")
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / f"portsuite-trace-{os.geteuid()}"


def _safe_name(service: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in service) or "_"


class TraceFile:
    """
    Appends JSON lines to C{DIR/SERVICE.jsonl}; past C{max_bytes} the file becomes
    C{SERVICE.jsonl.1} (replacing the older one) and a new file starts with a
    C{rotated} record. Opened and closed per record: no handle outlives a write.
    A folder that cannot be written disables the file (once, with one log line).
    """

    def __init__(self, service: str, directory: Path | None = None, max_bytes: int = MAX_FILE):
        self.service = service
        self.directory = directory
        self.max_bytes = max_bytes
        self.broken = False

    @property
    def path(self) -> Path:
        return (self.directory or trace_dir()) / f"{_safe_name(self.service)}.jsonl"

    def _prepare(self, folder: Path) -> None:
        if not folder.exists():
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        st = folder.lstat()
        if not os.path.isdir(folder) or os.path.islink(folder):
            raise OSError(f"{folder} is not a folder")
        if self.directory is None and "PORTSUITE_TRACE_DIR" not in os.environ:
            if st.st_uid != os.geteuid():
                raise OSError(f"{folder} belongs to another user")

    def append(self, record: dict[str, Any]) -> None:
        if self.broken:
            return
        path = self.path
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self._prepare(path.parent)
            fd = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > self.max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    marker = {"event": "rotated", "service": self.service, "time": time.time()}
                    os.write(fd, (json.dumps(marker) + "\n").encode())
                finally:
                    os.close(fd)
        except OSError as e:
            self.broken = True
            log.warn(
                "{service}: cannot write transcripts to {path} ({error}); "
                "set PORTSUITE_TRACE_DIR to a writable folder for `portsuite trace`",
                service=self.service,
                path=str(path),
                error=str(e),
            )


_files: dict[tuple[str, str], TraceFile] = {}


def trace_file(service: str) -> TraceFile:
    """The file of a service in the current L{trace_dir} (one object per folder and service)."""
    key = (str(trace_dir()), service)
    f = _files.get(key)
    if f is None:
        if len(_files) > 256:
            _files.clear()
        f = _files[key] = TraceFile(service, Path(key[0]))
    return f


# -- sessions ------------------------------------------------------------------

_session_ids = itertools.count(1)


class Session:
    """
    One traced connection: kept in C{stats.transcripts} (the dashboard's format),
    logged, and written to the service's JSON-lines file; bounded.
    """

    def __init__(
        self,
        stats: ServiceStats,
        peer: str,
        reactor: Any,
        transport: str = "tcp",
        sink: TraceFile | None = None,
    ):
        self.stats = stats
        self.peer = peer
        self.reactor = reactor
        self.transport = transport
        self.sink = sink if sink is not None else trace_file(stats.name)
        self.id = f"{os.getpid()}-{next(_session_ids)}"
        self.started = reactor.seconds()
        self.last = self.started
        self.text_size = 0
        self.omitted = {"c2s": 0, "s2c": 0}
        self.record: dict[str, Any] = {
            "service": stats.name,
            "peer": peer,
            "started": self.started,
            "lines": [],
            "cut": False,
        }
        stats.transcripts.append(self.record)
        self._emit("open")
        log.info(
            "{service}: trace {peer} {transport} session started",
            service=stats.name,
            peer=peer,
            transport=transport,
        )

    def _emit(self, event: str, **fields: Any) -> None:
        record = {
            "event": event,
            "service": self.stats.name,
            "session": self.id,
            "peer": self.peer,
            "transport": self.transport,
            "time": time.time(),
            **fields,
        }
        self.sink.append(record)

    @property
    def cut(self) -> bool:
        return bool(self.record["cut"])

    def add(self, direction: str, data: bytes) -> None:
        """Record one chunk: C{direction} is C{"c2s"} or C{"s2c"}."""
        now = self.reactor.seconds()
        self.last = now
        t = round(now - self.started, 3)
        if self.cut:
            self.omitted[direction] += len(data)
            return
        lines = self.record["lines"]
        if len(lines) >= MAX_LINES or self.text_size >= MAX_TEXT:
            self.record["cut"] = True
            self.omitted[direction] += len(data)
            lines.append({"dir": direction, "t": t, "text": CUT})
            self._emit("cut", dir=direction, t=t, text=CUT)
            log.info(
                "{service}: trace {peer} cut after {n} lines; only byte counts from now on",
                service=self.stats.name,
                peer=self.peer,
                n=len(lines) - 1,
            )
            return
        text = render(data, min(MAX_CHUNK, max(16, MAX_TEXT - self.text_size)))
        self.text_size += len(text)
        lines.append({"dir": direction, "t": t, "text": text})
        self._emit("data", dir=direction, t=t, bytes=len(data), text=text)
        log.info(
            "{service}: {peer} {arrow} +{t:.3f}s {text}",
            service=self.stats.name,
            peer=self.peer,
            arrow=ARROWS[direction],
            t=t,
            text=text,
        )

    def close(self) -> None:
        duration = round(self.reactor.seconds() - self.started, 3)
        self._emit("close", t=duration, omitted=dict(self.omitted))
        if self.cut:
            log.info(
                "{service}: trace {peer} ended after {t:.3f}s; cut: {c2s} B client→server "
                "and {s2c} B server→client not shown",
                service=self.stats.name,
                peer=self.peer,
                t=duration,
                c2s=self.omitted["c2s"],
                s2c=self.omitted["s2c"],
            )


class TraceProtocol(ServiceProtocol):
    """
    L{ServiceProtocol} that also records the connection's transcript (the class the
    suite uses for a TCP service with C{trace = true}); sits inside TLS, so it sees
    plaintext.
    """

    session: Session | None = None

    def makeConnection(self, transport: Any) -> None:
        # before the service's connectionMade, which may already write (qotd, time …)
        self.session = Session(self.stats, self.client.peer, self.factory.reactor)
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if self.session is not None:
            self.session.add("c2s", data)
        super().dataReceived(data)

    def write(self, data: bytes) -> None:
        if self.session is not None and data:
            self.session.add("s2c", data)
        super().write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        data = list(data)
        if self.session is not None:
            joined = b"".join(data)
            if joined:
                self.session.add("s2c", joined)
        super().writeSequence(data)

    def connectionLost(self, reason: Any = None) -> None:
        try:
            super().connectionLost(reason)
        finally:
            if self.session is not None:
                self.session.close()
                self.session = None


class DatagramTracer:
    """
    Transcripts of a UDP service: one session per peer, until it is quiet for
    L{UDP_SESSION_GAP} seconds; at most L{UDP_PEERS} peers followed at once.
    """

    def __init__(self, stats: ServiceStats, reactor: Any):
        self.stats = stats
        self.reactor = reactor
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def _session(self, addr: Any) -> Session:
        peer = format_peer(addr)
        now = self.reactor.seconds()
        s = self.sessions.get(peer)
        if s is not None and now - s.last > UDP_SESSION_GAP:
            s.close()
            del self.sessions[peer]
            s = None
        if s is None:
            s = Session(self.stats, peer, self.reactor, transport="udp")
            self.sessions[peer] = s
            while len(self.sessions) > UDP_PEERS:
                _, old = self.sessions.popitem(last=False)
                old.close()
        else:
            self.sessions.move_to_end(peer)
        return s

    def received(self, addr: Any, data: bytes) -> None:
        self._session(addr).add("c2s", data)

    def sent(self, addr: Any, data: bytes) -> None:
        self._session(addr).add("s2c", data)

    def dropped(self, addr: Any, data: bytes, reason: str) -> None:
        trace_file(self.stats.name).append(
            {
                "event": "drop",
                "service": self.stats.name,
                "peer": format_peer(addr),
                "transport": "udp",
                "time": time.time(),
                "bytes": len(data),
                "text": reason,
            }
        )


# -- following a service from a terminal -------------------------------------------


def find_trace_file(service: str, directory: Path | None = None) -> Path:
    """
    The JSON-lines file of a service: in C{directory}, else C{$PORTSUITE_TRACE_DIR},
    else the most recent of C{/tmp/portsuite-trace-*/} (the suite may run as another
    user, e.g. nobody after twistd --uid).
    """
    name = f"{_safe_name(service)}.jsonl"
    if directory is not None:
        return directory / name
    if os.environ.get("PORTSUITE_TRACE_DIR"):
        return trace_dir() / name
    candidates = [p for p in Path(tempfile.gettempdir()).glob(f"portsuite-trace-*/{name}")]
    if candidates:
        return max(candidates, key=lambda p: p.stat().st_mtime)
    return trace_dir() / name


def format_record(rec: dict[str, Any]) -> str | None:
    """One JSON-lines record as the terminal shows it."""
    event = rec.get("event")
    peer = rec.get("peer", "?")
    clock = time.strftime("%H:%M:%S", time.localtime(rec.get("time", 0)))
    if event == "open":
        return f"{clock} ── {rec.get('service')}: {peer} connected ({rec.get('transport', 'tcp')})"
    if event in ("data", "cut"):
        arrow = ARROWS.get(rec.get("dir", ""), "?")
        offset = f"+{rec.get('t', 0):.3f}s"
        return f"  {offset:<10} {peer} {arrow} {rec.get('text', '')}"
    if event == "close":
        omitted = rec.get("omitted") or {}
        extra = ""
        if any(omitted.values()):
            extra = (
                f"; not shown: {omitted.get('c2s', 0)} B client→server, "
                f"{omitted.get('s2c', 0)} B server→client"
            )
        return f"{clock} ── {rec.get('service')}: {peer} closed after {rec.get('t', 0):.3f}s{extra}"
    if event == "drop":
        return f"{clock} !! {rec.get('service')}: dropped {rec.get('text', '')}"
    if event == "rotated":
        return None
    return None


def follow(
    service: str,
    directory: Path | None = None,
    out: TextIO = sys.stdout,
    from_start: bool = False,
    once: bool = False,
    poll: float = 0.2,
    stop_after: float | None = None,
) -> int:
    """
    Print the transcripts of C{service} as they are written (C{tail -F} of its
    JSON-lines file, following rotations). C{once}: print what is there and return.
    """
    path = find_trace_file(service, directory)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    handle: Any = None
    inode = None
    buffer = b""

    def reopen(at_end: bool) -> Any:
        nonlocal inode
        try:
            f = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return None
        inode = os.fstat(f.fileno()).st_ino
        if at_end:
            f.seek(0, os.SEEK_END)
        return f

    # like tail -f: what is already there is skipped (unless from_start); a file that
    # appears or replaces this one later is read from its start
    handle = reopen(at_end=not from_start)
    print(
        f"following {service} transcripts in {path} (Ctrl-C to stop); "
        f"the service needs trace = true in its config",
        file=out,
        flush=True,
    )
    try:
        while True:
            if handle is None:
                handle = reopen(at_end=False)
            if handle is not None:
                chunk = handle.read()
                if chunk:
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for raw in complete:
                        try:
                            rec = json.loads(raw)
                        except ValueError:
                            continue
                        text = format_record(rec)
                        if text is not None:
                            print(text, file=out, flush=True)
                else:
                    try:
                        st = os.stat(path)
                        if st.st_ino != inode or st.st_size < handle.tell():
                            handle.close()  # rotated: start on the new file
                            handle, buffer = None, b""
                            continue
                    except FileNotFoundError:
                        pass
            if once or (deadline is not None and time.monotonic() >= deadline):
                return 0
            time.sleep(poll)
    except KeyboardInterrupt:
        return 0
    finally:
        if handle is not None:
            handle.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of C{portsuite trace}."""
    parser.add_argument("service", help="the service name ([services.NAME]) to follow")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder of the transcripts (default: $PORTSUITE_TRACE_DIR, else the newest "
        "/tmp/portsuite-trace-*)",
    )
    parser.add_argument(
        "--from-start", action="store_true", help="print the transcripts already written first"
    )
    parser.add_argument("--once", action="store_true", help="print what is there and exit")
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        help="the suite's config: check that SERVICE exists and has trace = true",
    )


def check_traced(config_path: str, service: str) -> str | None:
    """Why C{service} of that config cannot be followed, or None."""
    from portsuite import loader
    from portsuite.api import ConfigError

    try:
        cfg = loader.load(config_path)
    except ConfigError as e:
        return "\n".join(e.errors)
    names = [svc.name for svc in cfg.services]
    if service not in names:
        return f"{config_path} has no service {service!r}; its services: {', '.join(names)}"
    if not cfg.service(service).trace:
        return (
            f"[services.{service}] in {config_path} is not traced; add trace = true "
            f"to it and restart the suite"
        )
    return None


def run(args: argparse.Namespace) -> int:
    """C{portsuite trace SERVICE}: follow a traced service live."""
    if args.config:
        problem = check_traced(args.config, args.service)
        if problem:
            print(problem, file=sys.stderr)
            return 2
    return follow(args.service, args.dir, from_start=args.from_start or args.once, once=args.once)
