"""
twisted.web's HTTP/2 connection (RFC 9113), sending more than one frame per pass of
the reactor: the one place the http service uses Twisted's private API, with a
public fallback and a test (C{tests/services/http/test_http_h2.py}) that fails loudly
when a Twisted upgrade changes what it reads.

Twisted's C{H2Connection._sendPrioritisedData} writes one DATA frame (16 KiB at
most), or one end of stream, then schedules itself again with C{callLater(0)}: every
frame costs a whole pass of the event loop, a TLS record and a C{send}. Under h2load
(10 connections, 10 streams each) that made portsuite 0.05x nginx. L{H2Connection}
here runs the same loop, by the same rules (priority order, flow-control windows,
paused while the transport is full, waits when every stream is blocked), but keeps
going within a pass until L{PASS_BYTES} are written, gathering the frames into one
transport write per L{WRITE_BYTES}. It also slices a big queued body through a
memoryview, where Twisted copied the rest of the body once per frame.

It also skips h2's validation of the response headers it sends (built by
twisted.web's C{Headers}, values sanitized); requests are validated as before.

L{connection_class} is this class where Twisted's internals are the ones it knows
(L{PRIVATE_FIELDS}), else twisted.web's own C{H2Connection}: correct, only slower.
"""

from __future__ import annotations

from typing import Any

from twisted.web import http

# what the fast loop reads or calls on twisted.web._http2.H2Connection
PRIVATE_FIELDS = (
    "_sendPrioritisedData",
    "_stillProducing",
    "priority",
    "_sendingDeferred",
    "_consumerBlocked",
    "_outboundStreamQueues",
    "_requestDone",
    "conn",
    "_reactor",
    "streams",
    "remainingOutboundWindow",
)
# written per pass of the reactor at most (then other connections get their turn)
PASS_BYTES = 256 * 1024
# frames are gathered into one transport write up to this size
WRITE_BYTES = 64 * 1024

_Base: Any = getattr(http, "H2Connection", None) if getattr(http, "H2_ENABLED", False) else None


def _internals() -> tuple[Any, Any, Any] | None:
    """Twisted's sentinel, Deferred and the priority module, if they are as expected."""
    try:
        import priority
        from twisted.internet.defer import Deferred
        from twisted.web import _http2
    except ImportError:
        return None
    sentinel = getattr(_http2, "_END_STREAM_SENTINEL", None)
    if sentinel is None or not hasattr(priority, "DeadlockError"):
        return None
    return sentinel, Deferred, priority


def supported() -> bool:
    """Does twisted.web's H2Connection still have what the fast loop uses?"""
    if _Base is None or _internals() is None:
        return False
    try:
        probe = _Base(_NoReactor())
    except Exception:
        return False
    return all(hasattr(probe, f) for f in PRIVATE_FIELDS)


class _NoReactor:
    """Just enough of a reactor to build an H2Connection and look at it."""

    def seconds(self) -> float:
        return 0.0

    def callLater(self, *args: Any, **kw: Any) -> Any:
        return None


if _Base is not None:

    class H2Connection(_Base):  # type: ignore[misc, valid-type]
        """twisted.web's HTTP/2 connection, many frames per reactor pass."""

        _sendingDeferred: Any
        _consumerBlocked: Any

        def __init__(self, reactor: Any = None):
            _Base.__init__(self, reactor)
            # the response headers are built here and by twisted.web's Headers
            # (values sanitized): h2's checks of what we send cost a tenth of a
            # request; what clients send is still checked (validate_inbound_headers)
            self.conn.config.validate_outbound_headers = False

        def _sendPrioritisedData(self, *args: Any) -> None:
            if not self._stillProducing:
                return
            sentinel, deferred, priority = _INTERNALS
            conn = self.conn
            queues = self._outboundStreamQueues
            out: list[bytes] = []
            gathered = 0
            written = 0
            while True:
                try:
                    stream = next(self.priority)
                except priority.DeadlockError:
                    # every stream is blocked or done: wait for one to have data
                    self._write(out)
                    if self._sendingDeferred is None:
                        waiting: Any = deferred()
                        waiting.addCallback(self._sendPrioritisedData)
                        self._sendingDeferred = waiting
                    return
                if self._consumerBlocked is not None:
                    # the transport is full: wait behind it
                    self._write(out)
                    self._consumerBlocked.addCallback(self._sendPrioritisedData)
                    return
                queue = queues[stream]
                data = queue.popleft()
                if data is sentinel:
                    conn.end_stream(stream)
                    chunk = conn.data_to_send()
                    out.append(chunk)
                    gathered += len(chunk)
                    self._requestDone(stream)
                else:
                    limit = min(
                        conn.max_outbound_frame_size, conn.local_flow_control_window(stream)
                    )
                    if len(data) > limit:
                        if type(data) is not memoryview:
                            data = memoryview(data)
                        queue.appendleft(data[limit:])
                        data = data[:limit]
                    if data:
                        conn.send_data(stream, bytes(data) if type(data) is memoryview else data)
                        chunk = conn.data_to_send()
                        out.append(chunk)
                        gathered += len(chunk)
                    if not queue:
                        self.priority.block(stream)
                    if self.remainingOutboundWindow(stream) <= 0:
                        self.streams[stream].flowControlBlocked()
                if gathered >= WRITE_BYTES:
                    written += gathered
                    gathered = 0
                    self._write(out)
                    if written >= PASS_BYTES or not self._stillProducing:
                        break
            self._write(out)
            if self._stillProducing:
                self._reactor.callLater(0, self._sendPrioritisedData)

        def _write(self, out: list[bytes]) -> None:
            if out:
                data = b"".join(out)
                out.clear()
                self.resetTimeout()
                self.transport.write(data)

    _INTERNALS: Any = _internals()


def connection_class() -> Any:
    """The HTTP/2 connection class to use: the fast one where supported, else Twisted's."""
    if _Base is None:
        return None
    return H2Connection if supported() else _Base
