"""
Server commands whose work grows with what one client sends: CONFIG GET of many
names or patterns, CLIENT SETNAME, HELLO SETNAME and CLIENT SETINFO of a huge name.
They run in slices (bigwork.py), the rest of the suite served between them, and
answer what the work done whole answers.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_kv_bigreply import _client, _cmd, _replies
from test_kv_bigwork import _turn
from twisted.internet.task import Clock

from portsuite_services.kv import KVServer, Settings
from portsuite_services.kv.bigstr import STEP
from portsuite_services.kv.bigwork import BIG, MAX_STEPS, PIECE

HUGE = STEP * (MAX_STEPS + 2)  # a name checked in more steps than a turn takes


def _answer(clock: Clock, client: Any, t: Any, n: int = 1) -> tuple[int, list[Any]]:
    """
    The reactor's turns during which C{client} was at work in slices (bigwork's
    job: 0 when its command ran in the callback that read it), then its C{n} whole
    replies.
    """
    turns = 0
    while type(client.blocked).__name__ == "Working":
        assert turns < 100_000, "never done"
        _turn(clock)
        turns += 1
    while len(got := _replies(t.value())) < n:
        _turn(clock)
    return turns, got


def _pairs(reply: list[bytes]) -> list[tuple[bytes, bytes]]:
    return list(zip(reply[::2], reply[1::2], strict=True))


def test_config_get_of_many_patterns_runs_in_slices_and_answers_as_one_at_a_time() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    patterns = [b"*x%d*" % i for i in range(300)]
    patterns += [b"max*", b"MAXCLIENTS", b"timeout", b"*memory*", b"nosuch", b"maxclients"]
    a.dataReceived(_cmd("CONFIG", "GET", *patterns))
    turns, [got] = _answer(clock, a, ta)
    assert turns > 1

    one, t1 = _client(server)
    expected: list[tuple[bytes, bytes]] = []
    for p in patterns:  # each name once, where its first pattern names it
        t1.clear()
        one.dataReceived(_cmd("CONFIG", "GET", p))
        [alone] = _replies(t1.value())
        expected += [kv for kv in _pairs(alone) if kv[0] not in dict(expected)]
    assert _pairs(got) == expected
    names = [k for k, _ in expected]
    assert b"maxclients" in names and b"timeout" in names and b"maxmemory" in names


def test_config_get_of_names_is_looked_up_not_matched() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    names = [b"nosuch%d" % i for i in range(100_000)] + [b"TimeOut", b"maxclients", b"timeout"]
    a.dataReceived(_cmd("CONFIG", "GET", *names))
    _, [got] = _answer(clock, a, ta)
    assert [k for k, _ in _pairs(got)] == [b"timeout", b"maxclients"]


def test_a_huge_client_name_is_checked_in_slices() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    other, to = _client(server)
    name = b"n" * (HUGE + 5)
    a.dataReceived(_cmd("CLIENT", "SETNAME", name))
    other.dataReceived(_cmd("CLIENT", "GETNAME"))  # waits for the job (kv is busy)
    turns, replies = _answer(clock, a, ta)
    assert turns > 1
    assert replies == [b"OK"]
    assert _answer(clock, other, to)[1] == [None]
    ta.clear()
    a.dataReceived(_cmd("CLIENT", "GETNAME"))
    assert _answer(clock, a, ta)[1] == [name]


def test_a_huge_client_name_with_a_space_at_its_end_is_refused() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    a.dataReceived(_cmd("CLIENT", "SETNAME", "ok"))
    ta.clear()
    a.dataReceived(_cmd("CLIENT", "SETNAME", b"n" * HUGE + b" "))
    turns, [err] = _answer(clock, a, ta)
    assert turns > 1
    assert str(err).startswith("ERR Client names cannot contain spaces")
    ta.clear()
    a.dataReceived(
        _cmd("CLIENT", "GETNAME") + _cmd("CLIENT", "SETINFO", "LIB-VER", b"v" * HUGE + b"\n")
    )
    _, [name, info_err] = _answer(clock, a, ta, 2)
    assert name == b"ok"
    assert str(info_err).startswith("ERR lib-ver cannot contain spaces")


def test_hello_checks_its_huge_names_before_a_later_syntax_error() -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    a.dataReceived(_cmd("HELLO", "3", "SETNAME", b"n" * HUGE + b"\x7f", "FOO"))
    turns, [err] = _answer(clock, a, ta)
    assert turns > 1
    assert str(err).startswith("ERR Client names cannot contain spaces")
    ta.clear()
    a.dataReceived(_cmd("HELLO", "3", "SETNAME", b"n" * HUGE, "FOO"))
    _, [err] = _answer(clock, a, ta)
    assert str(err).startswith("ERR Syntax error in HELLO option 'FOO'")
    ta.clear()
    a.dataReceived(_cmd("HELLO", "2", "SETNAME", b"m" * HUGE) + _cmd("CLIENT", "GETNAME"))
    _, [hello, name] = _answer(clock, a, ta, 2)
    assert hello[hello.index(b"proto") + 1] == 2
    assert name == b"m" * HUGE


MANY = BIG + MAX_STEPS * PIECE + 7  # arguments: more than a turn of pieces


@pytest.mark.parametrize(
    "head, args",
    [
        (("COMMAND", "GETKEYS", "DEL"), [b"k%d" % i for i in range(MANY)]),
        (("COMMAND", "GETKEYSANDFLAGS", "MSET"), [b"k%d" % (i // 2) for i in range(2 * MANY)]),
        (("COMMAND", "INFO"), [b"x%d" % i if i % 5 else b"GeT" for i in range(MANY)]),
        (("COMMAND", "DOCS"), [b"x%d" % i if i % 7 else b"sEt" for i in range(MANY)]),
    ],
    ids=["GETKEYS", "GETKEYSANDFLAGS", "INFO", "DOCS"],
)
def test_command_of_many_arguments_runs_in_slices_and_answers_as_its_parts(
    head: tuple[str, ...], args: list[bytes]
) -> None:
    clock = Clock()
    server = KVServer(Settings(), clock)
    a, ta = _client(server)
    a.dataReceived(_cmd(*head, *args))
    turns, [got] = _answer(clock, a, ta)
    assert turns > 1
    parts, tp = _client(server)
    expected: list[Any] = []
    step = 1000  # (an even count: MSET's pairs stay whole)
    for at in range(0, len(args), step):
        tp.clear()
        parts.dataReceived(_cmd(*head, *args[at : at + step]))
        expected += _replies(tp.value())[0]
    assert got == expected
    assert len(got) == {"GETKEYS": MANY, "GETKEYSANDFLAGS": MANY, "INFO": MANY}.get(
        head[1], len(got)
    )


@pytest.mark.parametrize("sub", ["GETKEYS", "GETKEYSANDFLAGS"])
def test_command_getkeys_of_many_keys_makes_no_list_of_them_in_one_step(sub: str) -> None:
    """
    COMMAND GETKEYS of a DEL of 300,000 keys made every (key, flags) pair in the job's
    first step (0.3-0.7 s before the sliced reply began): no step of its job now holds
    more than a piece's worth of new memory beyond the reply being built.
    """
    import tracemalloc

    from portsuite_services.kv.commands.ops import _keys_reply

    argv = [b"COMMAND", sub.encode(), b"DEL", *(b"k%d" % i for i in range(MANY))]
    job = _keys_reply(argv, sub == "GETKEYSANDFLAGS")
    tracemalloc.start()
    try:
        next(job)  # the first step: the command checked, its keys found
        _, first_step_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # (the command copied: 8 bytes a key; the pairs as a list: over 64 bytes each)
    assert first_step_peak < MANY * 24
    reply: list[Any] = []
    try:
        while True:
            next(job)
    except StopIteration as done:
        reply = done.value
    assert [r[0] if sub == "GETKEYSANDFLAGS" else r for r in reply] == argv[3:]
