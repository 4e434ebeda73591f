"""
SPOP, SRANDMEMBER, HRANDFIELD and RANDOMKEY draw from the collection without copying
it (randompick.py): what they answer is still what Redis answers, drawn from all of it.
"""

from __future__ import annotations

from test_kv_bigreply import _client, _cmd, _replies
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings, randompick


def test_every_element_can_come_and_samples_are_distinct() -> None:
    s = set(range(500))
    assert {randompick.one(s) for _ in range(20000)} == s
    for k in (1, 10, 62, 63, 300, 500):  # (sparse and dense draws)
        got = randompick.sample(s, k)
        assert len(got) == k == len(set(got)) and set(got) <= s
    seen = set()
    for _ in range(400):
        got = randompick.choices(s, 40)
        assert len(got) == 40 and set(got) <= s
        seen.update(got)
    assert seen == s


def test_spop_drains_a_big_set_and_the_aof_records_what_it_took() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    members = {b"m%d" % i for i in range(5000)}
    a.dataReceived(_cmd("SADD", "s", *members))
    ta.clear()
    popped = []
    for _ in range(100):
        a.dataReceived(_cmd("SPOP", "s", "37"))
        popped += _replies(ta.value())[-1]
        ta.clear()
    a.dataReceived(_cmd("SPOP", "s") + _cmd("SCARD", "s") + _cmd("SRANDMEMBER", "s", "-3"))
    one, left, drawn = _replies(ta.value())
    assert len(popped) == 3700 == len(set(popped)) and set(popped) <= members
    assert one in members and one not in popped and left == 5000 - 3701
    assert len(drawn) == 3 and set(drawn) <= members - set(popped) - {one}
    a.dataReceived(_cmd("RANDOMKEY") + _cmd("HSET", "h", "f", "v") + _cmd("HRANDFIELD", "h"))
    assert _replies(ta.value())[-3] == b"s" and _replies(ta.value())[-1] == b"f"
