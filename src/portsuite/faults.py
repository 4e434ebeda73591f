"""
Faults on demand, for any service (plugins too): what Toxiproxy's toxics do, applied
in the shared connection wrapper.

    [services.web.faults]           # or at runtime: portsuite fault web latency=200ms
    latency = "200ms"               # delay every chunk, each way (toxiproxy: latency)
    jitter = "50ms"                 #   ± this much, order kept
    bandwidth = "10KiB/s"           # drip the bytes at this rate, each way (bandwidth)
    slow_close = "1s"               # hold the close this long (slow_close)
    timeout = "2s"                  # let nothing through, close after that (timeout; 0 = never)
    reset_peer = "1s"               # TCP RST after that time (reset_peer; 0 = at once)
    reset_after = "4KiB"            # TCP RST after that many bytes, either way
    limit_data = "2KiB"             # close (FIN) after that many bytes, either way (limit_data)
    close_after = "2s"              # close (FIN) after that time
    drop = 0.1                      # UDP: drop this share of datagrams

Durations are strings with a unit (C{"200ms"}, C{"1.5s"}) or a number of milliseconds
as Toxiproxy takes them; sizes C{"4KiB"}, C{"1MB"} or a number of bytes; bandwidth a
size per second (C{"10KiB/s"}). A connection gets the faults in force when it opens
(changing or clearing them at runtime applies to the next connections); C{drop},
the one fault of UDP services, applies to the next datagram.

Everything held is bounded: a connection whose delayed incoming bytes pass
L{MAX_HELD} stops reading until they drain (TCP pushes back on the client), and one
whose delayed outgoing bytes pass it pauses the producer the service registered.
"""

from __future__ import annotations

import random
import re
import socket
import struct
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from portsuite.lang import _

DURATIONS = ("latency", "jitter", "slow_close", "timeout", "reset_peer", "close_after")
SIZES = ("reset_after", "limit_data")
KINDS = (*DURATIONS, "bandwidth", *SIZES, "drop")
UDP_KINDS = ("drop",)
MAX_DURATION = 3600.0  # seconds
MAX_HELD = 256 * 1024  # bytes held per connection and direction before pushing back
SLICE = 0.05  # seconds of bandwidth sent at once

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0}
_SIZES = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}


class FaultError(ValueError):
    """A fault setting that cannot be used: one line that says why and what to write."""


def _duration(kind: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise FaultError(
            _('{kind}: {raw!r} is not a duration; write e.g. {kind} = "200ms"').format(
                kind=kind, raw=raw
            )
        )
    if isinstance(raw, (int, float)):
        seconds = raw / 1000.0
    elif isinstance(raw, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*", raw)
        if not m:
            raise FaultError(
                _(
                    '{kind}: {raw!r} is not a duration; write e.g. "200ms", "1.5s" (a bare number is milliseconds)'
                ).format(kind=kind, raw=raw)
            )
        seconds = float(m.group(1)) * (_UNITS[m.group(2)] if m.group(2) else 0.001)
    else:
        raise FaultError(
            _('{kind}: {raw!r} is not a duration; write e.g. "200ms"').format(kind=kind, raw=raw)
        )
    if not 0 <= seconds <= MAX_DURATION:
        raise FaultError(
            _("{kind}: {raw!r} is out of range; use 0 to 1 hour").format(kind=kind, raw=raw)
        )
    return seconds


def _size(kind: str, raw: Any, per_second: bool = False) -> int:
    example = '"10KiB/s"' if per_second else '"4KiB"'
    if isinstance(raw, bool):
        raise FaultError(
            _("{kind}: {raw!r} is not a size; write e.g. {kind} = {example}").format(
                kind=kind, raw=raw, example=example
            )
        )
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str):
        pattern = r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*" + (r"(?:/\s*s)?\s*" if per_second else "")
        m = re.fullmatch(pattern, raw, re.IGNORECASE)
        unit = (m.group(2) or "").lower() if m else ""
        if not m or unit not in _SIZES:
            raise FaultError(
                _("{kind}: {raw!r} is not a size; write e.g. {example}").format(
                    kind=kind, raw=raw, example=example
                )
            )
        value = int(float(m.group(1)) * _SIZES[unit])
    else:
        raise FaultError(
            _("{kind}: {raw!r} is not a size; write e.g. {example}").format(
                kind=kind, raw=raw, example=example
            )
        )
    if value < 1 or value > 1024**3:
        raise FaultError(
            _("{kind}: {raw!r} is out of range; use 1 byte to 1GiB").format(kind=kind, raw=raw)
        )
    return value


@attrs.frozen
class Faults:
    """The faults of one service (all off by default)."""

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: int | None = None  # bytes per second
    slow_close: float = 0.0
    timeout: float | None = None
    reset_peer: float | None = None
    reset_after: int | None = None
    limit_data: int | None = None
    close_after: float | None = None
    drop: float = 0.0

    @property
    def active(self) -> bool:
        return self != Faults()

    @property
    def tcp_active(self) -> bool:
        return attrs.evolve(self, drop=0.0) != Faults()

    def as_dict(self) -> dict[str, Any]:
        """The faults set, as the config would write them (the snapshot's C{faults})."""
        out: dict[str, Any] = {}
        for kind, value in attrs.asdict(self).items():
            if value == getattr(Faults(), kind):
                continue
            if kind in DURATIONS:
                out[kind] = f"{round(value * 1000, 3):g}ms"
            elif kind == "bandwidth":
                out[kind] = f"{value}B/s"
            elif kind in SIZES:
                out[kind] = f"{value}B"
            else:
                out[kind] = value
        return out


def parse(table: Mapping[str, Any], base: Faults | None = None) -> Faults:
    """
    Faults from a config table or the C{key=value} words of C{portsuite fault}, on top
    of C{base}. C{kind = "off"} (or C{"none"}) removes one. @raise FaultError: the first
    bad entry, in one line.
    """
    values = attrs.asdict(base or Faults())
    for kind, raw in table.items():
        if kind not in KINDS:
            import difflib

            close = difflib.get_close_matches(kind, KINDS, n=1)
            hint = (
                _("did you mean {close_0!r}?").format(close_0=close[0])
                if close
                else f"known: {', '.join(KINDS)}"
            )
            raise FaultError(_("{kind}: unknown fault; {hint}").format(kind=kind, hint=hint))
        if isinstance(raw, str) and raw.strip().lower() in ("off", "none"):
            values[kind] = getattr(Faults(), kind)
        elif kind in DURATIONS:
            values[kind] = _duration(kind, raw)
        elif kind == "bandwidth":
            values[kind] = _size(kind, raw, per_second=True)
        elif kind in SIZES:
            values[kind] = _size(kind, raw)
        else:  # drop
            try:
                share = float(raw)
            except (TypeError, ValueError):
                share = -1.0
            if isinstance(raw, bool) or not 0 <= share <= 1:
                raise FaultError(
                    _("drop: {raw!r} is out of range; use a share from 0 to 1 (0.1 = 10%)").format(
                        raw=raw
                    )
                )
            values[kind] = share
    return Faults(**values)


def check(table: Any, transports: set[str] | frozenset[str]) -> tuple[Faults | None, list[str]]:
    """A service's C{faults} table: the faults and the problems (one line each, no prefix)."""
    if not isinstance(table, dict):
        return None, [_('faults: must be a table, e.g. faults = { latency = "200ms" }')]
    errors: list[str] = []
    faults = Faults()
    for kind, raw in table.items():
        try:
            faults = parse({kind: raw}, faults)
        except FaultError as e:
            errors.append(f"faults.{e}")
    errors.extend(f"faults.{line}" for line in transport_problems(faults, transports))
    return (None if errors else faults), errors


def transport_problems(faults: Faults, transports: set[str] | frozenset[str]) -> list[str]:
    """Faults a service cannot have: C{drop} without UDP, stream faults without TCP."""
    out = []
    if faults.drop and "udp" not in transports:
        out.append(_("drop: applies to UDP datagrams and this service has no UDP; remove it"))
    if "tcp" not in transports:
        for kind in KINDS:
            if kind not in UDP_KINDS and getattr(faults, kind) != getattr(Faults(), kind):
                out.append(
                    _("{kind}: applies to TCP connections and this service is UDP only").format(
                        kind=kind
                    )
                )
    return out


def parse_words(words: list[str], base: Faults) -> Faults:
    """The C{portsuite fault NAME latency=200ms jitter=50ms} words. @raise FaultError."""
    table: dict[str, Any] = {}
    for word in words:
        kind, eq, value = word.partition("=")
        if not eq or not kind:
            raise FaultError(
                _("{word}: write KIND=VALUE, e.g. latency=200ms, or clear").format(word=word)
            )
        table[kind.strip()] = value.strip()
    return parse(table, base)


# -- on a TCP connection ---------------------------------------------------------


class _Direction:
    """One way of a connection: chunks held until their time comes, in order."""

    def __init__(self, session: Session, emit: Callable[[bytes], None]):
        self.session = session
        self.emit = emit
        self.queue: deque[tuple[float, bytes]] = deque()
        self.held = 0
        self.ready_at = 0.0  # when the bandwidth lets the next byte go
        self.last_due = 0.0  # keeps chunks in order under jitter
        self.call: Any = None

    def push(self, data: bytes) -> None:
        s = self.session
        f = s.faults
        now = s.reactor.seconds()
        delay = f.latency
        if f.jitter:
            delay = max(0.0, delay + s.random.uniform(-f.jitter, f.jitter))
        due = max(now + delay, self.last_due)
        self.last_due = due
        if not self.queue and due <= now and f.bandwidth is None:
            self.emit(data)
            return
        self.queue.append((due, data))
        self.held += len(data)
        self._schedule()

    def _schedule(self) -> None:
        if self.call is not None or not self.queue:
            return
        s = self.session
        now = s.reactor.seconds()
        when = max(self.queue[0][0], self.ready_at)
        self.call = s.reactor.callLater(max(0.0, when - now), self._flush)

    def _flush(self) -> None:
        self.call = None
        s = self.session
        rate = s.faults.bandwidth
        now = s.reactor.seconds()
        while self.queue and not s.closed:
            due, data = self.queue[0]
            if due > now or self.ready_at > now:
                break
            if rate is not None:
                step = max(1, int(rate * SLICE))
                chunk, rest = data[:step], data[step:]
                self.ready_at = max(self.ready_at, now) + len(chunk) / rate
                if rest:
                    self.queue[0] = (due, rest)
                else:
                    self.queue.popleft()
            else:
                chunk = data
                self.queue.popleft()
            self.held -= len(chunk)
            self.emit(chunk)
        s.drained(self)
        self._schedule()

    def cancel(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        self.queue.clear()
        self.held = 0


class Session:
    """
    The faults of one connection, between L{portsuite.wrappers.ServiceProtocol} and
    its transport: the wrapper hands every chunk each way to L{incoming}/L{outgoing}
    and its close to L{close}.
    """

    def __init__(
        self, wrapper: Any, faults: Faults, reactor: Any, rng: random.Random | None = None
    ):
        self.wrapper = wrapper
        self.faults = faults
        self.reactor = reactor
        self.random = rng or random.Random()
        self.transport = wrapper.transport
        # the wrapper's own paths to the protocol and the socket, before attach() reroutes them
        self.inner_deliver = wrapper._deliver
        self.inner_send = wrapper._send
        self.counted = 0  # bytes through, both ways (reset_after, limit_data)
        self.closed = False
        self.closing = False
        self.reading_paused = False
        self.producer_paused = False
        self.eof: Callable[[], None] | None = None
        self.timers: list[Any] = []
        self.inbound = _Direction(self, self._deliver)
        self.outbound = _Direction(self, self.inner_send)
        f = faults
        if f.timeout is not None:
            self.blackhole = True
            if f.timeout > 0:
                self._later(f.timeout, self.abort)
        else:
            self.blackhole = False
        if f.reset_peer is not None:
            self._later(f.reset_peer, self.reset)
        if f.close_after is not None:
            self._later(f.close_after, self.close)

    def _deliver(self, data: bytes) -> None:
        try:
            self.inner_deliver(data)
        except Exception:
            from twisted.python.failure import Failure

            self.wrapper._crashed(Failure(), "dataReceived")

    def _later(self, seconds: float, f: Callable[[], None]) -> None:
        self.timers.append(self.reactor.callLater(seconds, f))

    def _budget(self, data: bytes) -> tuple[bytes, Callable[[], None] | None]:
        """The part of C{data} within reset_after/limit_data, and what to do after it."""
        f = self.faults
        limits = [(n, self.reset) for n in (f.reset_after,) if n is not None]
        limits += [(n, self.close) for n in (f.limit_data,) if n is not None]
        if not limits:
            return data, None
        limit, then = min(limits, key=lambda x: x[0])
        left = limit - self.counted
        if len(data) < left:
            self.counted += len(data)
            return data, None
        self.counted = limit
        return data[: max(0, left)], then

    def _through(self, way: _Direction, data: bytes) -> None:
        if self.closed or self.closing or self.blackhole:
            return
        data, then = self._budget(data)
        if data:
            way.push(data)
        if then is not None:
            then()

    def incoming(self, data: bytes) -> None:
        self._through(self.inbound, data)
        if self.inbound.held > MAX_HELD and not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pauseProducing()

    def outgoing(self, data: bytes) -> None:
        self._through(self.outbound, data)
        producer = getattr(self.transport, "producer", None)
        if self.outbound.held > MAX_HELD and producer is not None and not self.producer_paused:
            self.producer_paused = True
            producer.pauseProducing()

    def hold_eof(self, then: Callable[[], None]) -> bool:
        """The client half-closed: tell the protocol after the bytes still held (True)."""
        if self.blackhole:
            return True  # timeout: nothing gets through, the end of input neither
        if self.inbound.queue and not self.closed:
            self.eof = then
            return True
        return False

    def drained(self, way: _Direction) -> None:
        if way is self.inbound and self.eof is not None and not way.queue:
            then, self.eof = self.eof, None
            then()
        if way is self.inbound and self.reading_paused and way.held < MAX_HELD // 2:
            self.reading_paused = False
            if not self.closed:
                self.transport.resumeProducing()
        if way is self.outbound:
            if self.producer_paused and way.held < MAX_HELD // 2:
                self.producer_paused = False
                producer = getattr(self.transport, "producer", None)
                if producer is not None:
                    producer.resumeProducing()
            if self.closing and not way.queue:
                self._close_now()

    def close(self) -> None:
        """The service (or close_after/limit_data) closes: after the held bytes, and slow_close."""
        if self.closing or self.closed:
            return
        self.closing = True
        if not self.outbound.queue:
            self._close_now()

    def _close_now(self) -> None:
        delay = self.faults.slow_close
        if delay and not self.closed:
            self._later(delay, self.transport.loseConnection)
        elif not self.closed:
            self.transport.loseConnection()

    def abort(self) -> None:
        if not self.closed:
            self.stop()
            self.transport.abortConnection()

    def reset(self) -> None:
        """A TCP RST: SO_LINGER 0, then close (the client reads ECONNRESET)."""
        if self.closed:
            return
        try:
            handle = self.transport.getHandle()
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (AttributeError, OSError):
            pass
        self.abort()

    def stop(self) -> None:
        """The connection is gone (or going): cancel every timer, drop what is held."""
        self.closed = True
        for t in self.timers:
            if t.active():
                t.cancel()
        self.timers.clear()
        self.inbound.cancel()
        self.outbound.cancel()


def attach(wrapper: Any, faults: Faults | None, reactor: Any) -> Session | None:
    """
    The fault session of a new connection, or None when its service has no TCP faults:
    the wrapper's C{_deliver}/C{_send} (each chunk in, each chunk out) then go through it.
    """
    if faults is None or not faults.tcp_active:
        return None
    session = Session(wrapper, faults, reactor)
    wrapper._deliver = session.incoming
    wrapper._send = session.outgoing
    return session


# -- on UDP ------------------------------------------------------------------------


_rng = random.Random()


def datagram_passes(faults: Faults | None) -> bool:
    """Whether a datagram survives C{drop} (the wrapper counts it as dropped otherwise)."""
    return faults is None or not faults.drop or _rng.random() >= faults.drop
