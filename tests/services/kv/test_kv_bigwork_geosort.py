"""
SORT of many options (GET # 600,000 times parsed in one step: 0.3 s) and the geo
searches over big sorted sets run in slices (bigwork.py): each takes several turns
with bounded work in each, the other kv clients wait, the reactor serves the rest of
the suite between them, and the reply, the stored value and the AOF record are those
of the command run whole (in MULTI/EXEC), and redis-server's.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd
from test_kv_bigwork import _turn
from test_kv_bigwork_writes import _server, check_in_slices
from test_kv_sweep import _side_by_side
from twisted.internet.task import Clock

from portsuite_services.kv.bigwork import MAX_STEPS, PIECE

G = MAX_STEPS * PIECE + 1000  # GET options: more than a turn's steps of them

SORT_SETUP = [
    ("RPUSH", "l", *[b"%d" % ((i * 7) % 11) for i in range(11)]),
    ("SADD", "s", *[b"e%d" % i for i in range(5)]),
    ("MSET", *[x for i in range(11) for x in (b"w_%d" % i, b"%d" % (i * 7 % 5))]),
    ("HSET", "h_5", "f", "five"),
    ("SET", "str", "x"),
]

MANY_GETS = [
    ("SORT", "l", *["GET", "#"] * G),
    ("SORT_RO", "l", "DESC", "LIMIT", "3", "20", *["GET", "#", "GET", "w_*"] * (G // 2)),
    ("SORT", "l", "BY", "w_*", *["GET", "h_*->f"] * G, "GET", "#", "STORE", "dst"),
    ("SORT", "s", "ALPHA", *["GET", "#"] * G, "STORE", "dst"),
    ("SORT", "l", "BY", "nosort", *["GET", "#"] * G),
    ("SORT", "l", *["GET", "#"] * G, "NOSUCHOPTION"),  # a syntax error at the end
    ("SORT_RO", "l", *["GET", "#"] * G, "STORE", "dst"),  # (no STORE for SORT_RO)
    ("SORT", "str", *["GET", "#"] * G),  # WRONGTYPE, told after the options
    ("SORT", "nothing", *["GET", "#"] * G, "STORE", "dst"),
]


def _id(argv: tuple[Any, ...]) -> str:
    return " ".join([str(a) for a in argv[:3]] + [str(len(argv))])


def busy_turns(argv: tuple[Any, ...], setup: list[tuple[Any, ...]]) -> int:
    """The turns C{argv} keeps kv busy on a server loaded with C{setup}."""
    clock = Clock()
    clock.advance(1000)
    server = _server(clock, setup)
    a, ta = _client(server)
    a.dataReceived(_cmd(*argv))
    turns = 0
    while server.busy is not None:
        _turn(clock)
        turns += 1
    return turns


@pytest.mark.parametrize("argv", MANY_GETS, ids=_id)
def test_sort_of_many_options_runs_in_slices(argv: tuple[Any, ...]) -> None:
    # a turn reads at most MAX_STEPS * PIECE options (two arguments each)
    assert busy_turns(argv, SORT_SETUP) >= len(argv) // (2 * MAX_STEPS * PIECE)
    check_in_slices(argv, SORT_SETUP, "dst" if "STORE" in argv else None)


def test_sort_of_many_options_as_redis(redis_port: int, kv_port: int) -> None:
    after = [("LRANGE", "dst", "0", "-1"), ("EXISTS", "dst")]
    runs = [a for a in MANY_GETS if a[1] != "s"]  # (a set's order: SORT ALPHA stores it)
    _side_by_side((redis_port, kv_port), SORT_SETUP, [*runs, MANY_GETS[3]], after)
