"""
Big strings leave off the reactor thread (lazyfree.Strings): the last reference to a
512 MB value going away on the reactor thread is one C{munmap} of its pages, which
held every service of the suite 40-104 ms. Now the value is watched until nothing
else holds it, then a thread of the reactor's pool hands its pages back and drops it.

On a Clock whose thread pool runs its jobs only when the test says, with the
process's resident memory read from /proc: whatever drops a big string (DEL, SET
over it, an expiry, FLUSHALL, GETDEL, a client closing mid-bulk, APPEND's new copy),
the reactor's own callbacks give none of its pages back, the pool's job does; a value
something can still read (a reply being sent) is never handed over; and the CPython
details it stands on (the address ctypes gives for a bytes, the reference count of a
value only a list holds) are checked where they would break.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest
from test_kv_bigstr import _cmd, _Reader
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, lazyfree
from portsuite_services.kv.lazyfree import ALONE, BIG_STRING, CHECK_EVERY, Strings, drop_pages

MIB = 1 << 20
SIZE = 64 * MIB  # mmapped by malloc whatever its threshold (at most 32 MiB): munmap'd when freed
GONE = SIZE // 2  # resident memory given back when the value's pages go

linux = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm") or lazyfree._madvise is None,
    reason="needs /proc and madvise",
)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Pool(Clock):
    """A Clock with a thread pool whose jobs wait until L{run_jobs}."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callInThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.jobs.append((f, args))

    def run_jobs(self) -> int:
        n = len(self.jobs)
        while self.jobs:
            f, args = self.jobs.pop(0)
            f(*args)
        return n


class _Transport(_Reader):
    """A client's socket: read at once while C{reading}, else it fills and pauses kv."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if self.reading:
            self.reader.feed(data)
            return
        self.held.append(data)
        if sum(map(len, self.held)) > 65536 and not self.producer.paused:
            self.producer.pauseProducing()

    def read_all(self) -> None:
        self.reading = True
        while self.held:
            self.reader.feed(self.held.pop(0))
        if self.producer.paused:
            self.producer.resumeProducing()


class _Kv:
    def __init__(self) -> None:
        self.clock = _Pool()
        self.server = KVServer(Settings(), self.clock)

    def client(self) -> tuple[Any, _Transport]:
        proto = self.server.buildProtocol(None)
        t = _Transport()
        proto.makeConnection(t)
        return proto, t

    def turns(self, seconds: float = 0.0) -> None:
        """The reactor's callbacks due now (then C{seconds} later): never the pool's jobs."""
        for _ in range(100000):
            if not any(c.getTime() <= self.clock.seconds() for c in self.clock.calls):
                break
            self.clock.advance(0)
        if seconds:
            self.clock.advance(seconds)
            self.turns()

    def send(self, proto: Any, data: bytes) -> None:
        view = memoryview(data)
        for i in range(0, len(data), 65536):
            proto.dataReceived(bytes(view[i : i + 65536]))
            self.turns()

    def call(self, *argv: str | bytes) -> Any:
        proto, t = self.client()
        self.send(proto, _cmd(*argv))
        self.turns()
        reply = t.reader.gets()
        proto.connectionLost(None)
        return reply

    def stored(self, key: bytes, value_of: Callable[[], bytes]) -> None:
        """A big value stored from a client's bulk, as a real client sends it."""
        proto, t = self.client()
        self.send(proto, _cmd("SET", key, value_of()))
        assert t.reader.gets() == b"OK"
        proto.connectionLost(None)


def _big() -> bytes:
    return b"\x5a" * SIZE


def _freed_off_the_loop(kv: _Kv, drop: Callable[[], None]) -> None:
    """C{drop} lets go of the big value: the reactor's callbacks keep its pages, the pool's job not."""
    gc.collect()
    before = _rss()
    drop()
    kv.turns(CHECK_EVERY)
    kv.turns(CHECK_EVERY)
    mid = _rss()
    assert before - mid < GONE, "the reactor thread freed the value's pages"
    assert kv.clock.run_jobs() >= 1
    assert mid - _rss() >= GONE, "the pool's job did not give the pages back"


DROPS: dict[str, Callable[[_Kv], None]] = {
    "DEL": lambda kv: kv.call("DEL", "k"),
    "UNLINK": lambda kv: kv.call("UNLINK", "k"),
    "SET over it": lambda kv: kv.call("SET", "k", "small"),
    "FLUSHALL": lambda kv: kv.call("FLUSHALL"),
    "FLUSHDB": lambda kv: kv.call("FLUSHDB"),
    "GETDEL (its reply read)": lambda kv: kv.call("GETDEL", "k"),
    "an expiry": lambda kv: (kv.call("PEXPIRE", "k", "1"), kv.turns(0.01), kv.call("GET", "k")),
    "APPEND (the old value)": lambda kv: kv.call("APPEND", "k", "tail"),
}


@linux
@pytest.mark.parametrize("how", list(DROPS))
def test_a_dropped_big_string_goes_back_in_a_thread(how: str) -> None:
    kv = _Kv()
    kv.stored(b"k", _big)
    if how == "APPEND (the old value)":
        kv.turns(CHECK_EVERY)
        _freed_off_the_loop(kv, lambda: DROPS[how](kv))
        new = kv.server.dbs[0].data[b"k"]
        assert len(new) == SIZE + 4 and kv.server.lazyfree.strings.watched == [new]
        return
    _freed_off_the_loop(kv, lambda: DROPS[how](kv))
    assert kv.server.dbs[0].data.get(b"k") == (b"small" if how == "SET over it" else None)
    assert kv.server.lazyfree.strings.watched == []


@linux
def test_a_client_closing_mid_bulk_lets_it_go_in_a_thread() -> None:
    kv = _Kv()
    proto, t = kv.client()
    data = _cmd("SET", "k", _big())
    kv.send(proto, data[: len(data) - MIB])  # all but its last MiB
    del data
    _freed_off_the_loop(kv, lambda: proto.connectionLost(None))
    assert kv.server.lazyfree.strings.watched == []


@linux
def test_a_value_a_reply_still_sends_is_kept_whole() -> None:
    """DEL while a slow client's GET is half sent: its pages go only once it read them all."""
    kv = _Kv()
    box = [os.urandom(SIZE)]
    digest = hashlib.sha256(box[0]).digest()
    kv.stored(b"k", box.pop)  # (the test keeps no reference to it)
    reader, t = kv.client()
    t.reading = False
    kv.send(reader, _cmd("GET", "k"))
    kv.turns()
    assert reader.paused and reader.queue  # most of the reply is still to send
    assert kv.call("DEL", "k") == 1
    kv.turns(CHECK_EVERY)
    kv.turns(CHECK_EVERY)
    assert kv.clock.jobs == [] and len(kv.server.lazyfree.strings.watched) == 1
    t.read_all()
    kv.turns()
    for _ in range(10000):
        if not t.held and not reader.queue:
            break
        t.read_all()
        kv.turns()
    got = t.reader.gets()
    assert hashlib.sha256(got).digest() == digest  # every byte as it was
    del got
    _freed_off_the_loop(kv, lambda: None)
    assert kv.server.lazyfree.strings.watched == []


def test_a_small_or_shared_value_is_not_handed_over() -> None:
    clock = _Pool()
    strings = Strings(clock)
    small = b"s" * (BIG_STRING - 1)
    strings.watch(small)
    strings.watch("not bytes" * BIG_STRING)
    strings.watch(bytearray(BIG_STRING))
    assert strings.watched == []
    held = b"h" * BIG_STRING
    view = memoryview(b"v" * BIG_STRING)
    in_dict = {1: b"d" * BIG_STRING}
    for v in (held, view.obj, in_dict[1]):
        strings.watch(v)
    clock.advance(CHECK_EVERY)
    assert clock.jobs == [] and len(strings.watched) == 3
    del held, view, in_dict, v
    clock.advance(CHECK_EVERY)
    assert len(clock.jobs) == 1 and strings.watched == [] and strings.released == 3
    assert clock.calls == []  # nothing left to look at: no more turns


def test_a_value_watched_twice_still_goes() -> None:
    clock = _Pool()
    strings = Strings(clock)
    value = b"t" * BIG_STRING
    strings.watch(value)
    strings.watch(value)
    del value
    clock.advance(CHECK_EVERY)
    assert len(clock.jobs) == 1 and strings.watched == [] and clock.calls == []


def test_a_reactor_without_threads_frees_as_before() -> None:
    clock = Clock()
    strings = Strings(clock)
    strings.watch(b"x" * BIG_STRING)
    assert strings.watched == [] and clock.calls == []


# -- the CPython details it stands on -------------------------------------------------


def test_alone_is_the_count_of_a_value_only_a_list_holds() -> None:
    """L{ALONE}: measured; a value held anywhere else must count more (else it is read after)."""
    box: list[Any] = [bytes(100)]  # (not a constant: its code object would hold it)
    assert lazyfree._refs(box, 0) == ALONE
    other = [box[0]]
    assert lazyfree._refs(box, 0) > ALONE
    del other
    view = memoryview(box[0])
    assert lazyfree._refs(box, 0) > ALONE
    view.release()
    del view
    assert lazyfree._refs(box, 0) == ALONE
    local = box[0]
    assert lazyfree._refs(box, 0) > ALONE
    del local
    assert lazyfree._refs(box, 0) == ALONE


def test_ctypes_gives_the_data_of_a_bytes() -> None:
    """The address L{drop_pages} starts from is the value's first byte (CPython's layout)."""
    value = b"xyz" * 1000
    addr = lazyfree.address(value)
    assert addr == id(value) + sys.getsizeof(b"") - 1  # (the header, then ob_sval)
    assert addr is not None and ctypes.string_at(addr, 6) == b"xyzxyz"


@linux
def test_drop_pages_touches_only_whole_pages_inside_the_value() -> None:
    value = b"\x01" * (4 * MIB + 123)
    n = drop_pages(value)
    assert n >= 4 * MIB - 2 * lazyfree.PAGE and n % lazyfree.PAGE == 0
    assert value.count(0) == n  # those pages read as zeros now…
    assert value.strip(b"\x01") == bytes(n)  # …in one run, strictly inside the value
    assert value[0] == value[-1] == 1 and len(value) == 4 * MIB + 123
    assert drop_pages(b"\x01" * 100) == 0  # (no whole page inside)
