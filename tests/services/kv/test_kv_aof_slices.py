"""
The AOF's records of a big write go to the file a slice a turn (a SET of 512 MB was one
write(2) of 1-2 s, every service held): the replies of the clients served meanwhile
wait until their records are written, the records keep their order, and the file
replays to the data set.
"""

from __future__ import annotations

from pathlib import Path

from kvdb_help import PollingClock
from test_kv_bigreply import _client, _cmd
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.server import WRITE_STEP


def test_a_big_record_is_written_a_slice_a_turn_the_replies_after(tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    reactor = PollingClock()
    server = KVServer(Settings(data=aof, fsync="no"), reactor)
    server.startFactory()
    big = b"v" * (3 * WRITE_STEP + 5)
    a, ta = _client(server)
    b, tb = _client(server)
    a.dataReceived(_cmd("SET", "big", big))
    sizes = []
    turns = 0
    while ta.value() == b"":
        reactor.end_poll()
        turns += 1
        sizes.append(aof.stat().st_size)
        if turns == 1:  # another client's write meanwhile: after it, in the file and in time
            b.dataReceived(_cmd("SET", "small", "1"))
            assert tb.value() == b""
        assert turns < 100
    assert turns > 3
    assert all(
        later - earlier <= WRITE_STEP for earlier, later in zip(sizes, sizes[1:], strict=False)
    )
    assert ta.value() == b"+OK\r\n" and tb.value() == b"+OK\r\n"
    data = aof.read_bytes()
    assert data.index(b"small") > data.index(big)
    server.stopFactory()
    again = KVServer(Settings(data=aof), Clock())
    c, tc = _client(again)
    c.dataReceived(_cmd("STRLEN", "big") + _cmd("GET", "small"))
    assert tc.value() == b":%d\r\n$1\r\n1\r\n" % len(big)
