"""
RESP, the REdis Serialization Protocol (RESP2 and RESP3), as a Redis server reads
and writes it.

L{RequestParser} reads what clients send: multibulk requests (C{*2\\r\\n$3\\r\\nGET...})
and inline commands typed in telnet or nc, with Redis's quoting rules
(C{sdssplitargs}) and Redis's exact C{Protocol error: ...} texts and limits. Declared
lengths are never preallocated: a bulk is taken only once all its bytes have arrived.

L{encode2} and L{encode3} turn a command's reply value into RESP2 or RESP3 bytes.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from io import BytesIO
from itertools import accumulate, chain
from typing import Any

try:
    from hiredis import ProtocolError as _HiredisError
    from hiredis import Reader as _HiredisReader
except ImportError:  # pragma: no cover - the pure-Python parser does everything
    _HiredisReader = None  # type: ignore[assignment,misc]

_chain = chain.from_iterable
# hiredis's reader allocates an aggregate of the declared count before its elements
# arrive (*400000000 is 3 GB, *4294967295 a MemoryError): a batch with an array
# header of five characters or more after the '*', or any RESP3 aggregate (% ~ > |,
# which no client sends), goes to the exact reader below, which checks the count
# against Redis's limits and allocates only for what arrives. (A false match inside
# a bulk's bytes only costs the fast path. A leading literal keeps the regex fast.)
_BIG_COUNT = re.compile(rb"\*[^\r\n]{5}")
# the lines hiredis would read as something else than a request's bulk strings: simple
# strings and verbatims (read as bytes too) and RESP3 aggregates; one scan, not six
_NOT_BULK = re.compile(rb"\n[+=%~>|]")
# A batch longer than this is a pipeline, as a rule: hiredis plus the two scans above
# costs less than _split there (16 SET: about 7 us against 10 us); one request is
# split faster.
FAST_MIN = 256
INLINE_MAX = 64 * 1024
# A batch up to this size made of small multibulk requests only (*1 to *64, every
# bulk's $length the canonical one) is read by _split: one bytes.split and a few
# C-level comparisons, about a third of what hiredis plus its guards cost for one
# GET (redis-benchmark -P 1), and less for a pipeline of 16.
SPLIT_MAX = 64 * 1024
_NARGS = {b"*%d" % n: 2 * n for n in range(1, 65)}  # header -> its number of lines
_ONE = {2 * n + 2: b"*%d" % n for n in range(1, 65)}  # lines of one request -> its header
BULK_HEADS = [b"$%d" % n for n in range(1024)]  # length (under 1 KiB) -> its bulk header
_HEADS = BULK_HEADS
_head = _HEADS.__getitem__
BIG_ARG = 1024 * 1024  # a bulk this long or longer is read by _feed_big
DEFAULT_MAX_BULK = 512 * 1024 * 1024
INT_MAX = 2**31 - 1
LLONG_MAX = 2**63 - 1
LLONG_MIN = -(2**63)
# a client's bytes in a text kv sends back (an ACL pattern or user name, a word in an
# error), UTF-8 or not, as Redis gives them: decoded with this error handler, they come
# back whole from encode("utf-8", RAW) (text without such bytes encodes as with strict)
RAW = "surrogateescape"


RUN_MIN = 32  # arguments left in a multibulk past which L{_bulk_run} reads them


def _bulk_run(data: bytes, pos: int, end: int, left: int) -> tuple[list[bytes], int]:
    """
    The complete, well-formed C{$len\\r\\nbytes\\r\\n} arguments at C{data[pos:end]}, at
    most C{left} of them, and where they end: split on CRLF and checked a column at a
    time (the reader's loop took 3-6 us an argument: a command of a million arguments
    spent 25-50 ms a 64 KiB read in it). Exact: a bulk that holds a CRLF, a length
    that does not match or is not written as Redis writes it, anything else stops the
    run at that argument, which the reader's loop then reads (or refuses) as before.
    """
    parts = data[pos:end].split(b"\r\n", 2 * left)
    k = min(left, (len(parts) - 1) // 2)  # (an argument is whole once its CRLF came)
    heads = parts[0 : 2 * k : 2]
    values = parts[1 : 2 * k : 2]
    try:
        want = list(map(_head, map(len, values)))
    except IndexError:  # a bulk of 1 KiB or more
        want = [b"$%d" % len(v) for v in values]
    if heads != want:
        i = 0
        while heads[i] == want[i]:
            i += 1
        del values[i:], want[i:]
    return values, pos + sum(map(len, want)) + sum(map(len, values)) + 4 * len(values)


class ProtocolError(Exception):
    """Malformed request: the client gets C{-ERR Protocol error: <text>} and is closed."""


def string2ll(s: bytes) -> int | None:
    """Redis's strict C{string2ll}: no sign but '-', no leading zeros or spaces."""
    n = len(s)
    if n == 0 or n > 20:
        return None
    if s == b"0":
        return 0
    start = 1 if s[0] == 45 else 0  # '-'
    if start == n or not (49 <= s[start] <= 57):
        return None
    if not s[start:].isdigit():
        return None
    v = int(s)
    if v > LLONG_MAX or v < LLONG_MIN:
        return None
    return v


# sdssplitargs at C speed. The quoted parts of a line are found by one split: on the
# quotes themselves when each quote closes at the next one (no \ before a quote), as
# nearly always; else by _SEGMENT, a match a quoted part. The arguments are then cut
# on a separator none can hold (NUL: the line ends at its first NUL; \0\2 when \x00
# can make one), and the escapes of "double quotes" are read by Python's
# unicode_escape codec once the ones Redis reads otherwise are rewritten. The loop it
# replaced went a byte at a time: 11-30 ms of CPU for 64 KiB of quoted arguments.
# _SEGMENT: the opening quote, what is inside ("double quotes": any byte but " and \,
# or \ and any byte; 'single quotes': any byte but ' and \, or \' (a \ before
# anything else is itself)), the same quote; or a quote that does not close, which
# takes the rest of the line (no group: split_args refuses the line) so that no other
# quote is tried: a line of unclosed quotes costs one pass, not one a quote.
_SEGMENT = re.compile(
    rb"""(?:(["'])((?<=")[^"\\]*(?:\\[\s\S][^"\\]*)*"""
    rb"""|(?<=')[^'\\]*(?:\\(?:'|(?!'))[^'\\]*)*)\1|["'][\s\S]*)"""
)
# in the text outside quotes (joined on "): a closing quote followed by anything but
# a space (isspace: \v and \f too) or the end is Redis's "unbalanced quotes"
_GLUED = re.compile(rb'"[^ \t\n\r\v\f]').search
# where an argument ends, outside quotes, when the line holds \v or \f: Redis skips
# all six isspace bytes between arguments but ends an unquoted one at space, \t, \n,
# \r only (a\vb is one argument). (A blank first: the search skips to blanks in C.)
_BREAK = re.compile(rb'[ \t\n\r\v\f](?:(?<=[ \t\n\r])|(?<="[\v\f]))[ \t\n\r\v\f]*')
# a \ that Redis drops (\q is q; \f \v \0 \u \N, \<LF>, \x without two hex digits
# too), where unicode_escape would read or keep it; only \xHH \n \r \t \b \a are left
_DROPPED = re.compile(rb"\\(?=[^xnrtba]|x(?![0-9a-fA-F]{2}))")
_NOT_QUOTES = bytes(c for c in range(256) if c not in b"\"'")
_AS_DOUBLE = bytes.maketrans(b"'", b'"')


def _unescape_double(inside: list[bytes], sep: bytes) -> list[bytes]:
    """The contents of "double quotes", their escapes read as Redis reads them."""
    # \\ first, paired left to right as Redis reads them: then every \ starts an escape
    text = _DROPPED.sub(b"", sep.join(inside).replace(b"\\\\", b"\\x5c"))
    if len(sep) > 1:  # a NUL read from \x00 is written \0\1 (sep is \0\2)
        text = text.replace(b"\\x00", b"\\x00\\x01")
    return text.decode("unicode_escape").encode("latin-1").split(sep)


def _unescape_single(inside: list[bytes], sep: bytes) -> list[bytes]:
    """The contents of 'single quotes': \\' is ', any other \\ itself."""
    return sep.join(inside).replace(b"\\'", b"'").split(sep)


def split_args(line: bytes) -> list[bytes] | None:
    """
    Redis's C{sdssplitargs}: split an inline command line into arguments, honouring
    "double quotes" (with \\n \\r \\t \\b \\a \\xHH escapes) and 'single quotes'.

    @return: the arguments, or None for unbalanced quotes.
    """
    nul = line.find(b"\0")
    if nul >= 0:  # C string semantics: the line ends at the first NUL
        line = line[:nul]
    quotes = line.translate(None, _NOT_QUOTES)
    vf = b"\v" in line or b"\f" in line
    if not quotes and not vf:
        return line.split()
    line = line.lstrip()
    if not line:
        return []
    if quotes[0::2] == quotes[1::2] and b'\\"' not in line and b"\\'" not in line:
        pieces = line.translate(_AS_DOUBLE).split(b'"')
        outside, kinds, inside = pieces[0::2], quotes[0::2], pieces[1::2]
    else:
        pieces = _SEGMENT.split(line)
        if len(pieces) > 1 and pieces[-3] is None:  # a quote that does not close
            return None
        outside, kinds, inside = pieces[0::3], b"".join(pieces[1::3]), pieces[2::3]
    text = b'"'.join(outside)  # (no quote in it but these)
    if _GLUED(text) is not None:
        return None
    sep = b"\0\2" if b"\\x00" in line else b"\0"
    if vf:
        text = _BREAK.sub(sep, text)
        if text.endswith(sep):
            text = text[: -len(sep)]
    else:
        text = sep.join(text.split())
    # the line again: what is outside quotes, then each quoted part's reading as
    # "double quotes" and as 'single quotes' (b"" for the other kind)
    out = [b""] * (3 * len(inside) + 1)
    out[0::3] = text.split(b'"')
    if not inside or b"\\" not in line:
        out[1::3] = inside
    elif b"'" not in kinds:
        out[1::3] = _unescape_double(inside, sep)
    elif b'"' not in kinds:
        out[2::3] = _unescape_single(inside, sep)
    else:
        pairs = list(zip(inside, kinds, strict=True))
        out[1::3] = _unescape_double([s if k == 34 else b"" for s, k in pairs], sep)
        out[2::3] = _unescape_single([s if k == 39 else b"" for s, k in pairs], sep)
    args = b"".join(out).split(sep)
    if len(sep) > 1:
        args = [a.replace(b"\0\1", b"\0") if b"\0" in a else a for a in args]
    return args


def split_alike(data: bytes, stride: int) -> list[bytes] | None:
    """
    The lines (C{data} split on CRLF) of a batch of whole requests of the same shape
    as the first one, whose first three lines (the count, the name's head and the
    name) the caller has checked: every request has C{stride} lines (the count, then
    a head and a bulk per argument), the same first three, and every bulk's head is
    the canonical one of its length. None for anything else (the parser then reads
    the batch). Exact for the reason L{RequestParser._split} is: a bulk holding a
    CRLF leaves a piece whose head does not match.
    """
    parts = data.split(b"\r\n")
    last = len(parts) - 1
    if parts[last] or last % stride:
        return None
    n = last // stride
    try:
        if n == 1:  # one request (redis-benchmark -P 1, most clients): no loop for two bulks
            if parts[3] != _HEADS[len(parts[4])]:
                return None
            if stride > 5 and parts[5] != _HEADS[len(parts[6])]:
                return None
            for k in range(7, stride, 2):
                if parts[k] != _HEADS[len(parts[k + 1])]:
                    return None
            return parts
        for k in range(3):
            if parts[k:last:stride].count(parts[k]) != n:
                return None
        for k in range(3, stride, 2):
            if parts[k:last:stride] != list(map(_head, map(len, parts[k + 1 : last : stride]))):
                return None
    except IndexError:  # a bulk of 1 KiB or more
        for k in range(3, stride, 2):
            if parts[k:last:stride] != [b"$%d" % len(a) for a in parts[k + 1 : last : stride]]:
                return None
    return parts


class RequestParser:
    """
    Incremental request reader with Redis's semantics (C{processInputBuffer}).

    C{feed(data)} returns the complete commands (lists of byte strings) found so far;
    it raises L{ProtocolError} after the commands that preceded the bad input, which
    are kept in C{ready} for the caller to run first.
    """

    __slots__ = (
        "buf",
        "need",
        "argv",
        "left",
        "max_bulk",
        "ready",
        "locked",
        "_fast",
        "tail",
        "big",
        "big_left",
        "on_big",
    )

    def __init__(self, max_bulk: int = DEFAULT_MAX_BULK, locked: bool = False):
        self.buf = bytearray()  # unconsumed bytes
        self.need = 0  # do not parse again before buf holds this many bytes
        # a big bulk being read (Redis's PROTO_MBULK_BIG_ARG): its bytes go straight
        # into a BytesIO as they arrive, whose getvalue() is the value without a copy
        # (copying 100 MB at once would stall every client for a good part of a second)
        self.big: BytesIO | None = None
        self.big_left = 0  # bytes of it still to come, its CRLF included
        # called with each big bulk read whole (kv: lazyfree.Strings.watch)
        self.on_big: Callable[[bytes], None] | None = None
        self.argv: list[bytes] | None = None  # the multibulk being read
        self.left = 0  # arguments still to read in it
        self.max_bulk = max_bulk
        self.locked = locked  # not authenticated yet: small requests only
        self.ready: list[list[bytes]] = []
        self._fast = _HiredisReader() if _HiredisReader is not None else None
        self.tail = 0  # bytes of a batch hiredis read left to the exact reader (a request begun)

    def _feed_fast(self, data: bytes) -> list[list[bytes]] | None:
        """
        hiredis's C reader, for a batch of well-formed, complete multibulk requests
        (what clients send nearly always); None when this batch needs the exact
        reader below (partial requests, inline commands, anything unusual). Only
        whole batches are accepted, so the two readers never disagree.
        """
        reader = self._fast
        try:
            reader.feed(data)  # type: ignore[union-attr]
            gets = reader.gets  # type: ignore[union-attr]
            cmds: list[list[bytes]] = []
            append = cmds.append
            argv = gets()
            while argv is not False:
                if type(argv) is list:
                    if argv:  # (*0 is skipped, as Redis does)
                        append(argv)
                elif argv is not None:  # (*-1 is skipped too)
                    raise ValueError
                argv = gets()
            # every argument a bulk string? join() refuses ints, nested arrays, nulls…
            b"".join(_chain(cmds))
            # Did the batch end between two requests? A reader at the top level reads
            # this probe as an empty request; one inside a request makes it part of it.
            reader.feed(b"*0\r\n")  # type: ignore[union-attr]
            try:
                probe = gets()
                ended = type(probe) is list and not probe and not reader.has_data()  # type: ignore[union-attr]
            except _HiredisError:  # (the probe glued to a header cut short: "*4*0")
                ended = False
            if not ended:
                # the batch ends inside a request (a long pipeline's reads nearly always
                # do): its whole requests, if they are exactly their canonical bytes, and
                # the rest left to the exact reader (which read all of every such batch:
                # 40 µs a command in-process, 20-40 ms a read of 64 KiB)
                self._fast = _HiredisReader()
                whole = b"".join(map(command_bytes, cmds))
                if not cmds or not data.startswith(whole):
                    return None
                self.tail = len(data) - len(whole)
            return cmds
        except (_HiredisError, ValueError, TypeError):
            self._fast = _HiredisReader()
            return None

    @staticmethod
    def _split(data: bytes) -> list[list[bytes]] | None:
        """
        The requests of a batch of whole, small multibulk requests, split on CRLF; None
        for anything else (the readers below then take the batch). Exact: a bulk that
        holds a CRLF leaves a shorter piece after its header, which then does not
        match, so every piece checked is where the exact reader would find it.
        """
        parts = data.split(b"\r\n")
        if parts[-1]:  # not ending with a CRLF: a request is cut
            return None
        last = len(parts) - 1
        nargs = _NARGS.get
        n = nargs(parts[0])
        if n is None:
            return None
        if n == last - 1:  # one request (redis-benchmark -P 1, most clients)
            argv = parts[2:last:2]
            heads = parts[1:last:2]
            try:
                ok = heads == list(map(_head, map(len, argv)))
            except IndexError:  # a bulk of 1 KiB or more
                ok = heads == [b"$%d" % len(a) for a in argv]
            return [argv] if ok else None
        stride = n + 1  # the lines of one request
        if last % stride == 0 and parts[0:last:stride] == [parts[0]] * (last // stride):
            # a pipeline of requests of one size (16 GET, 16 SET…): column by column
            cols = [parts[k:last:stride] for k in range(2, stride, 2)]
            for k, col in zip(range(1, stride, 2), cols, strict=True):
                heads = parts[k:last:stride]
                try:
                    ok = heads == list(map(_head, map(len, col)))
                except IndexError:
                    ok = heads == [b"$%d" % len(a) for a in col]
                if not ok:
                    return None
            return list(map(list, zip(*cols, strict=True)))
        cmds: list[list[bytes]] = []
        heads = []
        i = 0
        while True:
            i += 1
            end = i + n
            cmds.append(parts[i + 1 : end : 2])
            heads += parts[i:end:2]
            i = end
            if i >= last:
                break
            n = nargs(parts[i])
            if n is None:
                return None
        if i != last:
            return None
        try:
            ok = heads == list(map(_head, map(len, _chain(cmds))))
        except IndexError:
            ok = heads == [b"$%d" % len(a) for a in _chain(cmds)]
        return cmds if ok else None

    def _feed_big(self, data: bytes) -> bytes:
        """Take the big bulk's bytes from C{data}; what follows it is returned."""
        big = self.big
        assert big is not None
        take = min(len(data), self.big_left)
        value_left = self.big_left - 2  # (the CRLF is skipped, unchecked, as Redis does)
        if value_left > 0:
            big.write(memoryview(data)[: min(take, value_left)])
        self.big_left -= take
        if self.big_left:
            return b""
        self.big = None
        value = big.getvalue()
        self.argv.append(value)  # type: ignore[union-attr]
        if self.on_big is not None:
            self.on_big(value)
        self.left -= 1
        return data[take:]

    def _feed_after_big(self, data: bytes) -> list[list[bytes]]:
        """C{feed} while a big bulk is being read."""
        done: list[list[bytes]] = []
        data = self._feed_big(data)
        if self.big is not None:
            self.ready = done
            return done
        if not self.left:
            done.append(self.argv)  # type: ignore[arg-type]
            self.argv = None
        if not data:
            self.ready = done
            return done
        try:
            cmds = self.feed(data)
        except ProtocolError:
            self.ready[:0] = done
            raise
        cmds[:0] = done
        self.ready = cmds
        return cmds

    def _then(self, cmds: list[list[bytes]], data: bytes) -> list[list[bytes]]:
        """C{cmds}, read already, then those of C{data} (with them, if it is refused)."""
        try:
            more = self.feed(data)
        except ProtocolError:
            self.ready[:0] = cmds
            raise
        cmds += more
        self.ready = cmds
        return cmds

    def feed(self, data: bytes) -> list[list[bytes]]:
        if self.big is not None:
            return self._feed_after_big(data)
        buf = self.buf
        size = len(data)
        if not buf and self.argv is None and not self.locked and size < self.max_bulk:
            if size <= FAST_MIN:
                # one whole small request (redis-benchmark -P 1, most clients): _split's
                # first case, without its call and its other cases
                parts = data.split(b"\r\n")
                if _ONE.get(len(parts)) == parts[0] and not parts[-1]:
                    one = parts[2:-1:2]
                    try:
                        if parts[1:-1:2] == list(map(_head, map(len, one))):
                            self.ready = [one]
                            return self.ready
                    except IndexError:  # a bulk of 1 KiB or more: _split below
                        pass
            if size <= FAST_MIN or self._fast is None:
                if size <= SPLIT_MAX:
                    cmds = self._split(data)
                    if cmds is not None:
                        self.ready = cmds
                        return cmds
            if (
                self._fast is not None
                and data[:1] == b"*"
                and _NOT_BULK.search(data) is None
                and _BIG_COUNT.search(data) is None
            ):
                self.tail = 0
                fast = self._feed_fast(data)
                if fast is not None:
                    if self.tail:  # (a request begun: the exact reader keeps it)
                        return self._then(fast, data[len(data) - self.tail :])
                    self.ready = fast
                    return fast
        # (a request the last read left unfinished comes first)
        resumed = bool(buf) or self.argv is not None
        if buf:
            buf += data
            if len(buf) < self.need:
                return []
            data = bytes(buf)
            buf.clear()
        self.ready = cmds = []
        need = 0
        pos = 0
        end = len(data)
        argv = self.argv
        left = self.left
        while pos < end:
            if argv is None:
                if data[pos] != 42:  # not '*': inline
                    nl = data.find(b"\n", pos)
                    if nl < 0:
                        if end - pos > INLINE_MAX:
                            raise ProtocolError("too big inline request")
                        break
                    stop = nl - 1 if nl > pos and data[nl - 1] == 13 else nl
                    if stop - pos > INLINE_MAX:
                        raise ProtocolError("too big inline request")
                    args = split_args(data[pos:stop])
                    if args is None:
                        raise ProtocolError("unbalanced quotes in request")
                    pos = nl + 1
                    if args:
                        cmds.append(args)
                    continue
                cr = data.find(b"\r", pos)
                if cr < 0:
                    if end - pos > INLINE_MAX:
                        raise ProtocolError("too big mbulk count string")
                    break
                if cr > end - 2:
                    break
                n = string2ll(data[pos + 1 : cr])
                if n is None or n > INT_MAX:
                    raise ProtocolError("invalid multibulk length")
                if n > 10 and self.locked:
                    raise ProtocolError("unauthenticated multibulk length")
                pos = cr + 2
                if n <= 0:
                    continue
                argv = []
                left = n
            # the arguments of a multibulk: $len\r\nbytes\r\n each
            if left > RUN_MIN:  # (many: the complete ones at C speed, the rest below)
                run, pos = _bulk_run(data, pos, end, left)
                argv += run
                left -= len(run)
            while left:
                cr = data.find(b"\r", pos)
                if cr < 0:
                    if end - pos > INLINE_MAX:
                        raise ProtocolError("too big bulk count string")
                    break
                if cr > end - 2:
                    break
                if data[pos] != 36:  # '$'
                    got = chr(data[pos]) if data[pos] not in (10, 13) else " "
                    raise ProtocolError(f"expected '$', got '{got}'")
                n = string2ll(data[pos + 1 : cr])
                if n is None or n < 0 or n > self.max_bulk:
                    raise ProtocolError("invalid bulk length")
                if n > 16384 and self.locked:
                    raise ProtocolError("unauthenticated bulk length")
                start = cr + 2
                stop = start + n
                if stop + 2 > end and n >= BIG_ARG:
                    # a big bulk: no copy of what arrived so far, none at the end
                    self.big = big = BytesIO()
                    big.write(memoryview(data)[start:stop])
                    self.big_left = stop + 2 - end
                    pos = end
                    break
                if stop + 2 > end:
                    # wait for the whole bulk; keep from its header on
                    need = stop + 2 - pos
                    break
                argv.append(data[start:stop])
                pos = stop + 2
                left -= 1
            if left:
                break
            cmds.append(argv)
            argv = None
            if resumed and end - pos > FAST_MIN:
                # the request the last read left unfinished is whole: the rest is read as
                # a fresh read is (by hiredis's reader when well formed), not by this loop
                # (a pipeline's reads nearly always end inside a request: every read of
                # 100,000 pipelined commands went here, 40 µs a command in-process)
                self.argv = None
                self.left = 0
                self.need = 0
                return self._then(cmds, data[pos:])
        if pos < end:
            self.need = need or end - pos + 1
            buf += data[pos:] if pos else data
        else:
            self.need = 0
        self.argv = argv
        self.left = left
        return cmds


# -- replies ----------------------------------------------------------------------


class Simple(str):
    """A simple string reply (C{+OK})."""


class ErrorReply(str):
    """An error reply value (C{-ERR ...}), e.g. inside an array."""


class Map(list):  # type: ignore[type-arg]
    """A map reply: a list of (key, value) pairs. RESP2: a flat array."""


class SetReply(list):  # type: ignore[type-arg]
    """A set reply. RESP2: an array."""


class Push(list):  # type: ignore[type-arg]
    """An out-of-band push (pub/sub message). RESP2: an array."""


class Double(float):
    """A double reply. RESP2: a bulk string."""


class Verbatim(str):
    """A verbatim text (INFO). RESP2: a bulk string."""


class Preencoded:
    """A reply already in RESP2 and RESP3 bytes (Redis's own COMMAND DOCS)."""

    __slots__ = ("r2", "r3")

    def __init__(self, r2: bytes, r3: bytes):
        self.r2 = r2
        self.r3 = r3


SLICE = 256 * 1024  # a bigger reply is handed to the transport in slices, as it drains


class Chain:
    """
    Replies holding big strings, as one reply that is not joined: its parts stay
    where they are (a 512 MB value, a view of one) and a slice of it is copied out
    only when sent (C{item[a:b]}, a few hundred KiB). Queued for a client, it counts as
    one reply against C{client_output_buffer_limit}, as the same bytes joined would.
    """

    __slots__ = ("parts", "ends")

    parts: list[Any]
    ends: list[int]

    def __init__(self, parts: list[Any]):
        flat: list[Any] = []
        for p in parts:
            if type(p) is Chain:
                flat += p.parts
            else:
                flat.append(p)
        self.parts = flat
        self.ends = list(accumulate(map(len, flat)))

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def __getitem__(self, s: slice) -> bytes:
        start, stop, _ = s.indices(len(self))
        parts, ends = self.parts, self.ends
        i = bisect_right(ends, start)
        out = []
        while start < stop:
            first = ends[i] - len(parts[i])
            out.append(memoryview(parts[i])[start - first : min(stop, ends[i]) - first])
            start = min(stop, ends[i])
            i += 1
        return b"".join(out)


def runs(parts: list[Any]) -> list[Any]:
    """C{parts} with each run of small ones joined, the big ones (strings, views, Chains) apart."""
    out: list[Any] = []
    run: list[Any] = []
    for p in parts:
        if len(p) < BIG_ARG and type(p) is not Chain:
            run.append(p)
            continue
        if run:
            out.append(b"".join(run))
            run = []
        out.append(p)
    if run:
        out.append(b"".join(run))
    return out


def joined(parts: list[Any]) -> Any:
    """
    C{b"".join(parts)}; or, when that would copy a big string, a L{Chain} of the big
    ones as they are and the runs of small ones between them joined (L{runs}).
    """
    if sum(map(len, parts)) < BIG_ARG:
        return b"".join(parts)
    out = runs(parts)
    if len(out) == 1 and type(out[0]) is bytes:
        return out[0]
    return Chain(out)


class _NullArray:
    """The null array: C{*-1} in RESP2, C{_} in RESP3."""


NULL_ARRAY = _NullArray()
OK = Simple("OK")


def _double(v: float) -> bytes:
    """A double as Redis 7.0's addReplyDouble prints it (C{%.17g}, C{inf}, C{-inf})."""
    return b"%.17g" % v


def encode2(r: Any, out: list[bytes]) -> None:
    """Append the RESP2 bytes of reply C{r} to C{out}."""
    if r is OK:
        out.append(b"+OK\r\n")
        return
    t = type(r)
    if t is bytes:
        if len(r) < BIG_ARG:
            out.append(b"$%d\r\n%s\r\n" % (len(r), r))
        else:  # no copy of a big value (MGET of a 100 MB one): sent as it is
            out += (b"$%d\r\n" % len(r), r, b"\r\n")
    elif t is int:
        out.append(b":%d\r\n" % r)
    elif r is None:
        out.append(b"$-1\r\n")
    elif t is Simple:
        out.append(b"+%s\r\n" % r.encode())
    elif t is list or t is Map or t is SetReply or t is Push or t is tuple:
        if t is Map:
            out.append(b"*%d\r\n" % (2 * len(r)))
            for k, v in r:
                encode2(k, out)
                encode2(v, out)
            return
        out.append(b"*%d\r\n" % len(r))
        for x in r:
            encode2(x, out)
    elif t is ErrorReply:
        out.append(b"-%s\r\n" % r.encode())
    elif t is Double:
        b = _double(r)
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif t is str:
        b = r.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif t is Verbatim:  # (CLIENT LIST/INFO: a user name's bytes, as they were given)
        b = r.encode("utf-8", RAW)
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif r is NULL_ARRAY:
        out.append(b"*-1\r\n")
    elif t is bool:
        out.append(b":1\r\n" if r else b":0\r\n")
    elif t is Preencoded:
        out.append(r.r2)
    elif t is memoryview:  # a big range of a stored string (GETRANGE), not copied
        out += (b"$%d\r\n" % len(r), r, b"\r\n")
    else:
        raise TypeError(f"cannot encode {r!r}")


def encode3(r: Any, out: list[bytes]) -> None:
    """Append the RESP3 bytes of reply C{r} to C{out}."""
    if r is OK:
        out.append(b"+OK\r\n")
        return
    t = type(r)
    if t is bytes:
        if len(r) < BIG_ARG:
            out.append(b"$%d\r\n%s\r\n" % (len(r), r))
        else:  # no copy of a big value (MGET of a 100 MB one): sent as it is
            out += (b"$%d\r\n" % len(r), r, b"\r\n")
    elif t is int:
        out.append(b":%d\r\n" % r)
    elif r is None or r is NULL_ARRAY:
        out.append(b"_\r\n")
    elif t is Simple:
        out.append(b"+%s\r\n" % r.encode())
    elif t is list or t is tuple or t is SetReply or t is Push:
        prefix = b"*" if t is list or t is tuple else (b"~" if t is SetReply else b">")
        out.append(b"%s%d\r\n" % (prefix, len(r)))
        for x in r:
            encode3(x, out)
    elif t is Map:
        out.append(b"%%%d\r\n" % len(r))
        for k, v in r:
            encode3(k, out)
            encode3(v, out)
    elif t is ErrorReply:
        out.append(b"-%s\r\n" % r.encode())
    elif t is Double:
        out.append(b",%s\r\n" % _double(r))
    elif t is Verbatim:
        b = r.encode("utf-8", RAW)
        out.append(b"=%d\r\ntxt:%s\r\n" % (len(b) + 4, b))
    elif t is str:
        b = r.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif t is bool:
        out.append(b"#t\r\n" if r else b"#f\r\n")
    elif t is Preencoded:
        out.append(r.r3)
    elif t is memoryview:  # a big range of a stored string (GETRANGE), not copied
        out += (b"$%d\r\n" % len(r), r, b"\r\n")
    else:
        raise TypeError(f"cannot encode {r!r}")


def encode_bulks(values: list[Any], nil: bytes) -> bytes:
    """The replies of C{values} (bulk strings, None: C{nil}), one after the other."""
    lines: list[Any] = [None] * (2 * len(values))
    try:  # $3 xxx $3 xxx ... joined by CRLF, in C
        lines[0::2] = map(_head, map(len, values))
    except (IndexError, TypeError):  # a value of 1 KiB or more, or None
        return b"".join([nil if v is None else b"$%d\r\n%s\r\n" % (len(v), v) for v in values])
    lines[1::2] = values
    lines.append(b"")
    return b"\r\n".join(lines)


def command_parts(argv: list[bytes]) -> list[bytes]:
    """L{command_bytes} in pieces, the arguments as they are (no copy of a big one)."""
    parts = [b"*%d\r\n" % len(argv)]
    for a in argv:
        parts += (b"$%d\r\n" % len(a), a, b"\r\n")
    return parts


def command_bytes(argv: list[bytes]) -> bytes:
    """A command as a RESP multibulk (what the append-only file stores)."""
    parts = [b"*%d\r\n" % len(argv)]
    for a in argv:
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
