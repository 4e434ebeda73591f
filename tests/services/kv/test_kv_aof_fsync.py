"""
appendfsync everysec: the once-a-second fsync runs in a thread of the reactor's pool,
as Redis's bio thread does it, so the disk's time (seconds after a SET of 512 MB) holds
no service; a second one waits while one is under way; a failed one is tried again.
The reactor here has a thread pool whose work the test runs when it chooses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_kv_bigreply import _client, _cmd
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.aof import fsync_and_close


class _Pool:
    """A thread pool whose work waits until the test runs it."""

    def __init__(self) -> None:
        self.work: list[tuple[Callable[..., Any], Callable[..., Any], tuple[Any, ...]]] = []

    def callInThreadWithCallback(
        self, done: Callable[..., Any], f: Callable[..., Any], *a: Any
    ) -> None:
        self.work.append((done, f, a))

    def run_all(self) -> None:
        work, self.work = self.work, []
        for done, f, a in work:
            try:
                result = f(*a)
            except Exception:  # noqa: BLE001 - handed back, as a thread pool does
                done(False, Failure())
            else:
                done(True, result)


@implementer(IReactorThreads)
class _Reactor(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.pool = _Pool()

    def getThreadPool(self) -> _Pool:
        return self.pool

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)

    def callInThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        self.pool.callInThreadWithCallback(lambda ok, result: None, f, *a)

    def suggestThreadPoolSize(self, size: int) -> None:
        pass


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_everysec_fsync_runs_in_the_pool_one_at_a_time(tmp_path: Path) -> None:
    reactor = _Reactor()
    server = KVServer(Settings(data=tmp_path / "kv.aof", fsync="everysec"), reactor)
    server.startFactory()
    a, ta = _client(server)
    fds = _open_fds()
    a.dataReceived(_cmd("SET", "k", "v"))
    assert ta.value() == b"+OK\r\n"
    reactor.advance(1.0)  # the second's fsync: handed to the pool, not done in the loop
    assert len(reactor.pool.work) == 1 and reactor.pool.work[0][1] is fsync_and_close
    a.dataReceived(_cmd("SET", "k", "w"))
    reactor.advance(1.0)  # one under way: the next second's waits
    assert len(reactor.pool.work) == 1
    reactor.pool.run_all()
    assert _open_fds() == fds  # its descriptor (a duplicate) closed
    reactor.advance(1.0)  # the second SET's data, now
    assert len(reactor.pool.work) == 1
    reactor.pool.run_all()
    reactor.advance(1.0)  # nothing new written: nothing to do
    assert reactor.pool.work == []
    assert (tmp_path / "kv.aof").read_bytes().count(b"SET") == 2
    server.stopFactory()


def test_a_failed_fsync_is_tried_again(tmp_path: Path) -> None:
    reactor = _Reactor()
    server = KVServer(Settings(data=tmp_path / "kv.aof", fsync="everysec"), reactor)
    server.startFactory()
    a, _ = _client(server)
    a.dataReceived(_cmd("SET", "k", "v"))
    reactor.advance(1.0)
    [(_done, _f, (fd,))] = reactor.pool.work
    os.close(fd)  # (what the thread got is gone: its fsync fails, EBADF)
    reactor.pool.run_all()
    reactor.advance(1.0)  # the data is still to be synced: tried again
    assert len(reactor.pool.work) == 1
    reactor.pool.run_all()
    server.stopFactory()
