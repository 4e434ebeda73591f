"""
SLOWLOG and commands that run in slices (bigwork.py, multiwork.py): Redis runs a
SORT of a million elements or a long EXEC whole and logs its whole time; kv runs it
a slice per turn of the reactor, and logs it once it ends, with the time of all its
slices, not only the first turn's (which, below the default 10 ms threshold, hid
every big command from SLOWLOG).
"""

from __future__ import annotations

from typing import Any

from test_kv_bigreply import _client, _cmd, _drive, _replies
from test_kv_multiwork import _server, _transaction

from portsuite_services.kv.bigwork import BIG, Working

THRESHOLD = 1000  # µs: far below what the work below takes on any machine


def _slowlog(server: Any) -> list[Any]:
    admin, t = _client(server)
    admin.dataReceived(_cmd("SLOWLOG", "GET", "-1"))
    return _replies(t.value())[0]  # type: ignore[no-any-return]


def _job_run(server: Any, clock: Any, request: bytes) -> tuple[list[Any], float]:
    """The client's request run to its end; its SLOWLOG entries (not the admin's) and
    the seconds its slices ran, as the job counted them."""
    c, t = _client(server)
    c.dataReceived(_cmd("CONFIG", "SET", "slowlog-log-slower-than", str(THRESHOLD)))
    c.dataReceived(_cmd("SLOWLOG", "RESET"))
    c.dataReceived(request)
    job = server.busy
    assert isinstance(job, Working)  # it went on in slices
    _drive(clock, lambda: server.busy is None)
    assert t.value().count(b"\r\n") > 2
    entries = [e for e in _slowlog(server) if e[3][0] not in (b"SLOWLOG", b"CONFIG")]
    return entries, job.spent


def test_a_sliced_command_is_logged_once_with_all_its_time() -> None:
    clock, server = _server()
    admin, _ = _client(server)
    admin.dataReceived(
        _cmd("RPUSH", "l", *[b"%d" % ((i * 7919) % (4 * BIG)) for i in range(4 * BIG)])
    )
    entries, spent = _job_run(server, clock, _cmd("SORT", "l"))
    assert [e[3] for e in entries] == [[b"SORT", b"l"]]
    micros = entries[0][2]
    assert micros >= THRESHOLD
    assert micros >= int(spent * 1_000_000)  # every slice counted, not the first turn's


def test_a_transaction_going_on_across_turns_is_logged_as_exec() -> None:
    clock, server = _server()
    sets = [("SET", f"k{i}", str(i)) for i in range(20_000)]
    entries, spent = _job_run(server, clock, _transaction(*sets))
    exec_entries = [e for e in entries if e[3] == [b"EXEC"]]
    assert len(exec_entries) == 1
    assert exec_entries[0][2] >= max(THRESHOLD, int(spent * 1_000_000))


def test_below_the_threshold_a_sliced_command_is_not_logged() -> None:
    clock, server = _server()
    admin, _ = _client(server)
    admin.dataReceived(_cmd("RPUSH", "l", *[b"%d" % i for i in range(2 * BIG)]))
    c, _ = _client(server)
    c.dataReceived(_cmd("CONFIG", "SET", "slowlog-log-slower-than", "-1"))  # (off)
    c.dataReceived(_cmd("SORT", "l"))
    _drive(clock, lambda: server.busy is None)
    assert [e for e in _slowlog(server) if e[3][0] == b"SORT"] == []
