"""
The classic small services of the early Internet, each on TCP and (with C{udp = true})
UDP, exactly as their RFCs describe them:

  - discard (RFC 863, port 9): throws away everything it receives;
  - chargen (RFC 864, port 19): sends 72-character lines rotating through the 95
    printable ASCII characters; over TCP endlessly, with backpressure; over UDP one
    small datagram (at most 512 bytes) per datagram received;
  - qotd (RFC 865, port 17): one short quote (fewer than 512 characters) from a file;
  - daytime (RFC 867, port 13): the date and time as one ASCII line;
  - time (RFC 868, port 37): the time as a 32-bit unsigned big-endian number of
    seconds since 1900-01-01 00:00 UTC.

C{twisted.protocols.wire} has Daytime and Time, but its C{Daytime} crashes on Python 3
(it writes a C{str}) and its C{Time} counts from 1970: they are not reused. Every clock
reading goes through C{ctx.reactor.seconds()}, so tests drive them with a C{Clock}.

Over UDP every one of them is an amplifier or a loop hazard (chargen answers a byte
with hundreds); the guards of L{portsuite.udp} sit in front of all of them.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol, ServerFactory
from zope.interface import implementer

from portsuite.api import Option, ServiceContext, ServiceType, line_refusal
from portsuite.api.i18n import N_
from portsuite.api.i18n import gettext as _

if TYPE_CHECKING:
    from portsuite.api import ServiceConfig

# -- discard, RFC 863 ----------------------------------------------------------


class Discard(Protocol):
    """Discard (RFC 863) over TCP: every byte received is thrown away, nothing is sent."""

    def dataReceived(self, data: bytes) -> None:
        pass


class DiscardDatagram(DatagramProtocol):
    """Discard (RFC 863) over UDP: every datagram is thrown away, none is answered."""

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        pass


# -- chargen, RFC 864 ----------------------------------------------------------

PRINTABLE = bytes(range(32, 127))  # the 95 printable ASCII characters, space first
LINE_LENGTH = 72


def chargen_line(n: int) -> bytes:
    """Line C{n} of the RFC 864 pattern: 72 characters starting at C{n mod 95}, then CRLF."""
    start = n % len(PRINTABLE)
    doubled = PRINTABLE + PRINTABLE
    return doubled[start : start + LINE_LENGTH] + b"\r\n"


# one full turn of the pattern: 95 lines, 7030 bytes; it then repeats exactly
CYCLE = b"".join(chargen_line(n) for n in range(len(PRINTABLE)))
UDP_LINES = 6  # 6 x 74 = 444 bytes per datagram, under RFC 864's 512


@implementer(IPushProducer)
class Chargen(Protocol):
    """
    Character generator (RFC 864) over TCP: the pattern, endlessly, until the client
    closes.

    A streaming producer: the transport pauses it when its send buffer is full (the
    client reads slower than we write) and resumes it once drained, so a client that
    never reads costs a bounded buffer, not memory without end. While running it
    writes a few turns of the pattern per reactor turn, then yields, so other
    connections are served too.
    """

    transport: Any

    burst = 8  # turns of the pattern per reactor turn (8 x 7030 bytes)

    def __init__(self, reactor: Any):
        self.reactor = reactor
        self.paused = True
        self.stopped = False
        self._call: Any = None

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        pass  # RFC 864: "Data received may be thrown away"

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        if self.stopped:
            return
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self.stopped = True
        self.paused = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def connectionLost(self, reason: Any = None) -> None:
        self.stopProducing()

    def _schedule(self) -> None:
        if self._call is None and not self.paused and not self.stopped:
            self._call = self.reactor.callLater(0, self._produce)

    def _produce(self) -> None:
        self._call = None
        for _burst in range(self.burst):
            if self.paused or self.stopped:
                return
            self.transport.write(CYCLE)
        self._schedule()


class ChargenDatagram(DatagramProtocol):
    """
    Character generator (RFC 864) over UDP: each datagram received is answered by one
    datagram of whole pattern lines (444 bytes, at most 512), the pattern continuing
    from one answer to the next.
    """

    transport: Any

    def __init__(self) -> None:
        self.line = 0

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        reply = b"".join(chargen_line(self.line + i) for i in range(UDP_LINES))
        self.line = (self.line + UDP_LINES) % len(PRINTABLE)
        self.transport.write(reply, addr)


# -- qotd, RFC 865 -------------------------------------------------------------

QOTD_LIMIT = 512  # RFC 865: "the quote … should be less than 512 characters"
QUOTE_ORDERS = ("cycle", "daily", "random")


def default_quotes_path() -> Path:
    """The quotes file shipped with portsuite."""
    return Path(str(resources.files("portsuite_services").joinpath("quotes.txt")))


def parse_quotes(text: str) -> list[str]:
    """
    The quotes of a file: separated by lines holding only C{%} (the fortune format)
    when there are any, else by blank lines. Lines starting with C{#} before the
    first quote are comments.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    if any(line.strip() == "%" for line in lines):
        chunks: list[list[str]] = [[]]
        for line in lines:
            if line.strip() == "%":
                chunks.append([])
            else:
                chunks[-1].append(line)
    else:
        chunks = [[]]
        for line in lines:
            if line.strip():
                chunks[-1].append(line)
            elif chunks[-1]:
                chunks.append([])
    quotes = ["\n".join(c).strip("\n") for c in chunks]
    return [q for q in quotes if q.strip()]


def encode_quote(quote: str) -> bytes:
    """A quote as sent: UTF-8, CRLF line ends, ending with CRLF."""
    return ("\r\n".join(quote.split("\n")) + "\r\n").encode("utf-8")


def check_quotes(path: Path) -> list[str]:
    """The problems of a quotes file, each a "quotes: …; fix" text."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [
            _(
                "quotes: {path} does not exist; create it or remove the key for the shipped list"
            ).format(path=path)
        ]
    except UnicodeDecodeError:
        return [_("quotes: {path} is not UTF-8 text; save it as UTF-8").format(path=path)]
    except OSError as e:
        return [
            _("quotes: cannot read {path} ({error}); check the path and its permissions").format(
                path=path, error=e.strerror
            )
        ]
    quotes = parse_quotes(text)
    if not quotes:
        return [
            _(
                "quotes: {path} holds no quote; write quotes separated by lines with a single %"
            ).format(path=path)
        ]
    problems = []
    for i, q in enumerate(quotes, 1):
        size = len(encode_quote(q))
        if size >= QOTD_LIMIT:
            first = q.splitlines()[0][:40]
            problems.append(
                _(
                    "quotes: quote {number} of {path} ({first!r}…) is {size} bytes; RFC 865 "
                    "wants fewer than {limit}: shorten or split it"
                ).format(number=i, path=path, first=first, size=size, limit=QOTD_LIMIT)
            )
    return problems


def load_quotes(path: Path | None) -> list[bytes]:
    path = path or default_quotes_path()
    return [encode_quote(q) for q in parse_quotes(path.read_text(encoding="utf-8"))]


class QuoteBook:
    """Picks the quote to send: in turn (C{cycle}), one per UTC day (C{daily}) or at random."""

    def __init__(
        self,
        quotes: list[bytes],
        order: str = "cycle",
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ):
        if not quotes:
            raise ValueError("no quotes")
        self.quotes = quotes
        self.order = order
        self.clock = clock
        self.rng = rng or random.Random()
        self.next = 0

    def pick(self) -> bytes:
        if self.order == "daily":
            return self.quotes[int(self.clock() // 86400) % len(self.quotes)]
        if self.order == "random":
            return self.rng.choice(self.quotes)
        quote = self.quotes[self.next % len(self.quotes)]
        self.next = (self.next + 1) % len(self.quotes)
        return quote


class SendAndClose(Protocol):
    """Sends one message as soon as the client connects, then closes (RFC 865/867/868)."""

    transport: Any

    def __init__(self, message: Callable[[], bytes]):
        self.message = message

    def connectionMade(self) -> None:
        self.transport.write(self.message())
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        pass  # the RFCs: anything the client sends is ignored


class AnswerDatagram(DatagramProtocol):
    """Answers every datagram (its content ignored) with one message (RFC 865/867/868)."""

    transport: Any

    def __init__(self, message: Callable[[], bytes]):
        self.message = message

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.transport.write(self.message(), addr)


class _SendFactory(ServerFactory):
    def __init__(self, message: Callable[[], bytes]):
        self.message = message

    def buildProtocol(self, addr: Any) -> Protocol:
        p = SendAndClose(self.message)
        p.factory = self
        return p


# -- daytime, RFC 867 ----------------------------------------------------------

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip


def daytime_text(seconds: float) -> bytes:
    """
    The RFC 867 line for a Unix time, in UTC, in the RFC's suggested form
    (C{Weekday, Month Day, Year HH:MM:SS-Zone}), English whatever the locale::

        Tuesday, November 24, 2026 01:35:07-UTC\\r\\n
    """
    t = time.gmtime(int(seconds))
    return (
        f"{_DAYS[t.tm_wday]}, {_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}-UTC\r\n"
    ).encode("ascii")


# -- time, RFC 868 -------------------------------------------------------------

EPOCH_1900 = 2208988800  # seconds from 1900-01-01 to 1970-01-01 (70 years, 17 leap days)


def rfc868_time(seconds: float) -> bytes:
    """
    A Unix time as RFC 868 sends it: 4 bytes, unsigned, big-endian, seconds since
    1900-01-01 00:00 UTC, modulo 2**32 (it wraps in February 2036).
    """
    return struct.pack("!I", (int(seconds) + EPOCH_1900) % 2**32)


def rfc868_to_unix(data: bytes, now: float | None = None) -> int:
    """Read an RFC 868 answer back into a Unix time (the era nearest C{now})."""
    (value,) = struct.unpack("!I", data)
    unix = value - EPOCH_1900
    now = time.time() if now is None else now
    while unix < now - 2**31:
        unix += 2**32
    return unix


# -- the service types ---------------------------------------------------------


def _clock(ctx: ServiceContext) -> Callable[[], float]:
    return ctx.reactor.seconds  # type: ignore[no-any-return]


def _quote_book(ctx: ServiceContext) -> QuoteBook:
    return QuoteBook(
        load_quotes(ctx.options.get("quotes")),
        order=ctx.options.get("order") or "cycle",
        clock=_clock(ctx),
    )


def _check_qotd(svc: ServiceConfig) -> list[str]:
    path = svc.options.get("quotes")
    return check_quotes(path) if path is not None else []


def _no_notice(reason: str) -> bytes | None:
    """Time is 4 binary bytes: a text notice would be misread as a time; close silently."""
    return None


DISCARD = ServiceType(
    name="discard",
    description=N_("Discard: throws away everything it receives"),
    default_port=9,
    transports=frozenset({"tcp", "udp"}),
    tcp_factory=lambda ctx: ServerFactory.forProtocol(Discard),
    udp_protocol=lambda ctx: DiscardDatagram(),
    rfc="RFC 863",
    stateless=True,
)


def _chargen_factory(ctx: ServiceContext) -> Factory:
    f = ServerFactory()
    f.buildProtocol = lambda addr: Chargen(ctx.reactor)  # type: ignore[method-assign]
    return f


CHARGEN = ServiceType(
    name="chargen",
    description=N_("Character generator: 72-character lines of printable ASCII, endlessly"),
    default_port=19,
    transports=frozenset({"tcp", "udp"}),
    tcp_factory=_chargen_factory,
    udp_protocol=lambda ctx: ChargenDatagram(),
    rfc="RFC 864",
    stateless=True,
)

QOTD = ServiceType(
    name="qotd",
    description=N_("Quote of the day: one short quote, then the connection closes"),
    default_port=17,
    transports=frozenset({"tcp", "udp"}),
    options=(
        Option(
            "quotes",
            kind=Path,
            default=None,
            help=N_(
                "a text file of quotes separated by lines holding only %; "
                "default: the list shipped with portsuite"
            ),
        ),
        Option(
            "order",
            kind=str,
            default="cycle",
            choices=QUOTE_ORDERS,
            help=N_("cycle: each client the next quote; daily: one quote per UTC day; random"),
        ),
    ),
    tcp_factory=lambda ctx: _SendFactory(_quote_book(ctx).pick),
    udp_protocol=lambda ctx: AnswerDatagram(_quote_book(ctx).pick),
    check=_check_qotd,
    rfc="RFC 865",
    stateless=True,
)

DAYTIME = ServiceType(
    name="daytime",
    description=N_("Daytime: the date and time as one line of text"),
    default_port=13,
    transports=frozenset({"tcp", "udp"}),
    tcp_factory=lambda ctx: _SendFactory(lambda: daytime_text(ctx.reactor.seconds())),
    udp_protocol=lambda ctx: AnswerDatagram(lambda: daytime_text(ctx.reactor.seconds())),
    refusal=line_refusal,
    rfc="RFC 867",
    stateless=True,
)

TIME = ServiceType(
    name="time",
    description=N_("Time: seconds since 1900 as a 32-bit binary number (4 bytes)"),
    default_port=37,
    transports=frozenset({"tcp", "udp"}),
    tcp_factory=lambda ctx: _SendFactory(lambda: rfc868_time(ctx.reactor.seconds())),
    udp_protocol=lambda ctx: AnswerDatagram(lambda: rfc868_time(ctx.reactor.seconds())),
    refusal=_no_notice,
    rfc="RFC 868",
    stateless=True,
    trace_hex=frozenset({"s2c"}),  # a 4-byte number, even when it looks like UTF-8
)
