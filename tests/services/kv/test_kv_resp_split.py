"""
The split reader (RequestParser._split, the fast path for batches of small multibulk
requests) against the exact reader, on batches a client could send: whatever the
split reader accepts, the exact reader reads the same way; what it refuses still gets
read (or refused) by the readers behind it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from portsuite_services.kv.resp import ProtocolError, RequestParser


def _request(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _exact(data: bytes) -> tuple[list[list[bytes]], str | None, bool]:
    """
    In chunks of at most 10 bytes: shorter than any whole request (11 bytes at least),
    so only the exact reader reads.
    """
    p = RequestParser()
    p._fast = None
    rng = random.Random(len(data))
    return _read_in(p, data, lambda: rng.randint(1, 10))


def _read_in(
    p: RequestParser, data: bytes, size: Callable[[], int]
) -> tuple[list[list[bytes]], str | None, bool]:
    """C{data} read by C{p} in reads of C{size()} bytes: (requests, error, all read)."""
    cmds: list[list[bytes]] = []
    i = 0
    while i < len(data):
        step = size()
        chunk, i = data[i : i + step], i + step
        try:
            cmds += p.feed(chunk)
        except ProtocolError as e:
            return cmds + p.ready, str(e), False
    return cmds, None, not p.buf and p.argv is None


def _whole(data: bytes) -> tuple[list[list[bytes]], str | None]:
    p = RequestParser()
    try:
        return p.feed(data), None
    except ProtocolError as e:
        return p.ready, str(e)


ODD_ARGS = [
    b"",
    b"GET",
    b"a\r\nb",  # a CRLF inside a bulk shifts every piece after it
    b"\r\n",
    b"$3",
    b"*2",
    b"\r\n$3\r\nGET\r\n",
    b"x" * 1023,
    b"x" * 1024,  # past the table of bulk headers
    b"y" * 2000,
]
PLAIN_ARGS = [b"GET", b"SET", b"key:000012345", b"value", b"", b"x" * 100]


def _random_batch(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.randint(1, 20)):
        n = rng.randint(1, 12)
        out += _request(
            [rng.choice(ODD_ARGS if rng.random() < 0.02 else PLAIN_ARGS) for _ in range(n)]
        )
    return out


def test_split_reads_a_pipeline_as_the_exact_reader_does() -> None:
    rng = random.Random(1905)
    taken = 0
    for _ in range(400):
        data = _random_batch(rng)
        split = RequestParser._split(data)
        exact, error, whole = _exact(data)
        assert error is None and whole
        if split is not None:
            taken += 1
            assert split == exact
        assert _whole(data) == (exact, None)
    assert taken > 100  # (the fast path was taken, and checked)


@pytest.mark.parametrize(
    "data",
    [
        _request([b"GET", b"k"])[:-1],  # cut inside the last CRLF
        _request([b"GET", b"k"])[:-3],  # cut inside the last bulk
        _request([b"GET", b"k"]) + b"*2\r\n$3\r\nGET\r\n",  # the next request half there
        b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n",  # a non-canonical length
        b"*2\r\n$3\r\nGET\r\n$2\r\nk\r\n",  # a length that does not match
        b"*2\r\n$3\r\nGET\r\n$0\r\nk\r\n",
        b"*02\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*+2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",
        b"*2\r\n$3\r\nGET\r\n:1\r\n",
        b"*2\r\n$3\r\nGET\r\n+k\r\n",
        b"*1\r\n*1\r\n$1\r\nk\r\n",
        b"GET k\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n",  # CRLF inside a value
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\r\nb\r\n",  # ... and a lying length
        b"*65\r\n" + b"$1\r\nx\r\n" * 65,
        b"",
        b"\r\n",
    ],
)
def test_what_split_refuses_is_read_as_before(data: bytes) -> None:
    split = RequestParser._split(data)
    exact, error, whole = _exact(data)
    if split is not None:
        assert (split, None, True) == (exact, error, whole)
    got, got_error = _whole(data)
    assert got == exact
    assert got_error == error


def test_split_is_not_used_before_auth() -> None:
    """A client that has not authenticated keeps Redis's smaller limits."""
    p = RequestParser(locked=True)
    with pytest.raises(ProtocolError, match="unauthenticated multibulk length"):
        p.feed(_request([b"x"] * 11))


def _read(data: bytes, sizes: list[int]) -> tuple[list[list[bytes]], str | None]:
    p = RequestParser()
    cmds: list[list[bytes]] = []
    i = k = 0
    while i < len(data):
        chunk, i = data[i : i + sizes[k % len(sizes)]], i + sizes[k % len(sizes)]
        k += 1
        try:
            cmds += p.feed(chunk)
        except ProtocolError as e:
            return cmds + p.ready, str(e)
    return cmds, None


def test_the_arguments_of_a_long_request_are_read_as_the_loop_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    A request of many arguments spread over reads (a million arguments: 64 KiB a read)
    is read a run of arguments at a time (resp._bulk_run); whatever the requests and
    the reads, it gives what the reader's own loop gives, argument by argument.
    """
    import portsuite_services.kv.resp as resp

    rng = random.Random(2026)
    runs = 0
    for trial in range(300):
        args = [
            rng.choice(ODD_ARGS if rng.random() < 0.03 else PLAIN_ARGS)
            for _ in range(rng.randint(30, 3000))
        ]
        data = _request(args) + _request([b"PING"])
        if trial % 3 == 1:  # a lying length, a non-canonical one or garbage somewhere
            at = rng.randrange(len(data))
            data = data[:at] + rng.choice([b"$07", b"x", b"\r\n", b"*", b"$1\r\n"]) + data[at:]
        sizes = [rng.choice([1, 7, 100, 4096, 65536, 10**6]) for _ in range(5)]
        got = _read(data, sizes)
        with monkeypatch.context() as m:
            m.setattr(resp, "RUN_MIN", 10**9)  # the loop alone
            assert _read(data, sizes) == got
        if trial % 3 != 1:
            assert got == ([args, [b"PING"]], None)
            runs += 1
    assert runs > 150


ODD_PIECES = [
    b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n",  # non-canonical: not hiredis's to take
    b"GET k\r\n",  # inline
    b'SET k "a\\x41"\r\n',
    b"*1\r\n*1\r\n$1\r\nk\r\n",  # nested: a protocol error
    b"*2\r\n$3\r\nGET\r\n:1\r\n",
    b"*0\r\n",
    b"*-1\r\n",
]


def _in_reads(data: bytes, rng: random.Random) -> tuple[list[list[bytes]], str | None, bool]:
    """C{data} read by one parser in reads of random sizes, as a long pipeline comes."""
    return _read_in(
        RequestParser(), data, lambda: rng.choice([rng.randint(1, 300), rng.randint(300, 70000)])
    )


def test_a_long_pipeline_in_reads_of_any_size_is_read_as_the_exact_reader_does() -> None:
    # a read ending inside a request (nearly every read of a long pipeline) had all of
    # it read by the exact reader (40 µs a command): its whole requests go to hiredis
    # now when they are exactly their canonical bytes, the request begun to the exact
    # reader, and a read that ends such a request hands what follows it to hiredis
    rng = random.Random(2026)
    for _ in range(60):
        parts = [_random_batch(rng) for _ in range(rng.randint(20, 200))]
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts)), rng.choice(ODD_PIECES))
        data = b"".join(parts)
        want = _exact(data)
        for _ in range(3):
            assert _in_reads(data, rng) == want
