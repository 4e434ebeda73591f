"""
Work over huge strings (up to C{proto-max-bulk-len}, 512 MB) in slices, so one
APPEND, SETRANGE, SETBIT, BITOP, BITFIELD, BITCOUNT or BITPOS on a 512 MB value
never holds the event loop every service of the suite shares.

A string stays one immutable C{bytes} (what every command, DUMP, the AOF and
OBJECT ENCODING expect). A command that would copy or scan a big one whole does it
as L{bigwork} work instead: a generator that copies or counts C{STEP} bytes a step
(a C-level copy of 2 MiB is about a millisecond, its fresh pages faulted in
included), run at once when the string is small, else across turns of the
reactor, atomically (the other kv clients wait, as for any sliced command). A
new value is written into a C{BytesIO} a piece at a time, whose C{getvalue()} is
the value without a final copy (as the request reader does for a big bulk).

What this cannot bound: a 512 MB string's one C{write} to the append-only file.
(Freeing one, a C{munmap} of all its pages, is done in a thread: lazyfree.Strings.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from io import BytesIO
from typing import Any

from portsuite_services.kv import bigwork

STEP = 2 << 20  # bytes copied or scanned a step (about a millisecond, fresh pages included)
COUNT_STEP = 1 << 20  # bytes whose bits are counted a step (int.from_bytes: ~2.5 ms a MiB)
SLICED = 8 << 20  # work over fewer bytes runs at once, as before
_ZEROS = memoryview(bytes(STEP))


def compute(c: Any, argv: list[bytes], size: int, make: Callable[[], bigwork.Steps[Any]]) -> Any:
    """L{bigwork.compute} for work over C{size} bytes: sliced from L{SLICED} bytes on."""
    return bigwork.compute(c, argv, size * bigwork.BIG // SLICED, make)


def build(parts: Sequence[Any]) -> bigwork.Steps[bytes]:
    """
    The concatenation of C{parts} (bytes-like, or an int: that many zero bytes), a
    C{STEP} at a time.
    """
    out = BytesIO()
    write = out.write
    small = 0  # small parts written since the last step (BITFIELD's: a million of them)
    for part in parts:
        if type(part) is int:
            left = part
            while left > 0:
                write(_ZEROS[:left] if left < STEP else _ZEROS)
                left -= STEP
                yield
            continue
        view = memoryview(part)
        if len(view) < bigwork.PIECE:
            write(view)
            small += 1
            if small == bigwork.PIECE:
                small = 0
                yield
            continue
        for i in range(0, len(view), STEP):
            write(view[i : i + STEP])
            yield
    return out.getvalue()


def joined(c: Any, argv: list[bytes], parts: Sequence[Any]) -> Any:
    """The concatenation of C{parts} (see L{build}), or C{NO_REPLY} while it is built."""
    size = sum(p if type(p) is int else len(p) for p in parts)
    if size < SLICED:
        return b"".join(bytes(p) if type(p) is int else p for p in parts)
    return compute(c, argv, size, lambda: build(parts))


def patched(c: Any, argv: list[bytes], old: bytes, at: int, new: bytes) -> Any:
    """
    C{old} with C{new} written at byte C{at} (zero-filled up to it, as Redis's
    SETRANGE/SETBIT grow a string), or C{NO_REPLY} while it is built.
    """
    view = memoryview(old)
    if at > len(old):
        parts: list[Any] = [old, at - len(old), new]
    else:
        parts = [view[:at], new, view[at + len(new) :]]
    return joined(c, argv, [p for p in parts if p])


def bit_count(view: memoryview) -> bigwork.Steps[int]:
    """The set bits of C{view}, a C{COUNT_STEP} at a time."""
    n = 0
    for i in range(0, len(view), COUNT_STEP):
        n += int.from_bytes(view[i : i + COUNT_STEP], "big").bit_count()
        yield
    return n


def skip_run(view: memoryview, skip: int) -> bigwork.Steps[int]:
    """How many bytes C{view} starts with that are C{skip} (0 or 0xFF), a C{STEP} at a time."""
    run = _RUNS[skip]
    for i in range(0, len(view), STEP):
        piece = bytes(view[i : i + STEP])
        if piece != run[: len(piece)]:
            return i + _run_length(piece, run)
        yield
    return len(view)


_RUNS = {0: bytes(STEP), 0xFF: b"\xff" * STEP}


def _run_length(piece: bytes, run: bytes) -> int:
    """
    How many bytes C{piece} starts with that C{run} (a C{STEP} of one byte) also
    starts with: halves compared with C{memcmp} (C{bytes.lstrip} tests a byte at a
    time, 6-20 ms for 2 MiB).
    """
    lo, hi = 0, len(piece)  # piece[:lo] is all the byte; piece[hi - 1] is not, or hi is the end
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if piece[lo:mid] == run[: mid - lo]:
            lo = mid
        else:
            hi = mid
    tail = piece[lo:hi]
    return lo + len(tail) - len(tail.lstrip(run[:1]))


def bitop(op: bytes, values: list[bytes], size: int) -> bigwork.Steps[bytes]:
    """
    BITOP's result (shorter values padded with zero bytes), a piece at a time: a step
    reads about C{COUNT_STEP} bytes, and at most C{bigwork.PIECE} sources (a million
    keys: each one's window is folded in as it is read, never all held at once).
    """
    out = BytesIO()
    step = max(COUNT_STEP // len(values), 1 << 16)  # (each source's piece is read a step)
    piece = bigwork.PIECE
    for i in range(0, size, step):
        width = min(step, size - i)
        n = 0
        read = 0
        for k, v in enumerate(values):
            chunk = memoryview(v)[i : i + width]
            x = int.from_bytes(chunk, "big") << (8 * (width - len(chunk))) if len(chunk) else 0
            if not k:
                n = x
            elif op == b"and":
                n &= x
            elif op == b"or":
                n |= x
            else:
                n ^= x
            read += len(chunk)
            if k % piece == piece - 1 or read > COUNT_STEP:
                read = 0
                yield
        if op == b"not":
            n ^= (1 << (8 * width)) - 1
        out.write(n.to_bytes(width, "big"))
        yield
    return out.getvalue()
