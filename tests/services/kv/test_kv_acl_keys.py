"""
ACL key and channel rules hold for every command, whatever the position of its keys
(after a numkeys, after a keyword, in a subcommand, SORT's STORE/BY/GET), side by
side with redis-server: same replies, same ACL LOG entries, and the same keys for
COMMAND GETKEYS (one key finder answers both).
"""

from __future__ import annotations

import shlex

import hiredis
import pytest
from kv_raw import Raw

# what the admin creates first (the same on both servers)
SETUP = [
    "SADD aset x y",
    "SADD bset y z",
    "SADD zzset z",
    "ZADD az 1 m 2 n",
    "ZADD zz 1 m",
    "RPUSH alist 3 1 2",
    "RPUSH zlist 9",
    "SET aw_1 5",
    "HSET ah f v",
    "HSET zh f v",
    "XADD astream 1-1 f v",
    "XADD zstream 1-1 f v",
    "XGROUP CREATE astream g 0",
    "XGROUP CREATE zstream g 0",
    "GEOADD ageo 13.36 38.11 palermo",
    "SET astr hello",
    "SET zstr secret",
]

# u1 may touch a* only, publish/subscribe to ch* only; u2 reads r*, writes w*, both b*
USERS = [
    "ACL SETUSER u1 reset on >pw ~a* &ch* +@all",
    "ACL SETUSER u2 reset on >pw %R~r* %W~w* ~b* +@all",
    "ACL SETUSER u3 reset on >pw %R~* %W~a* +@all",
]

CASES = {
    "u1": [
        # simple positions (these worked before)
        "GET astr",
        "GET zstr",
        "MGET astr zstr",
        # numkeys
        "ZUNIONSTORE adest 2 az zz",
        "ZUNIONSTORE zdest 1 az",
        "ZUNIONSTORE adest 1 az",
        "ZINTERSTORE adest 2 az zz",
        "ZDIFFSTORE adest 2 az zz",
        "ZUNION 2 az zz",
        "ZINTER 2 az zz",
        "ZDIFF 2 az zz",
        "ZINTERCARD 2 az zz",
        "ZUNION 1 az",
        "ZUNION 0 az",
        "ZUNION 2x az zz",
        "SINTERCARD 2 aset zzset",
        "SINTERCARD 1 aset",
        "LMPOP 2 alist zlist LEFT",
        "LMPOP 1 zlist LEFT",
        "BLMPOP 0.01 2 alist zlist LEFT",
        "ZMPOP 2 az zz MIN",
        "BZMPOP 0.01 2 az zz MIN",
        "EVAL 'return 1' 2 akey zkey",
        "EVAL 'return 1' 1 zkey",
        "FCALL f 1 zkey",
        # keywords
        "XREAD STREAMS astream zstream 0 0",
        "XREAD COUNT 1 STREAMS astream 0",
        "XREAD STREAMS astream STREAMS zstream 0 0 0",
        "XREADGROUP GROUP g c STREAMS astream zstream > >",
        "XREADGROUP GROUP g c STREAMS zstream >",
        "GEORADIUS ageo 15 37 200 km STORE zdest",
        "GEORADIUS ageo 15 37 200 km STOREDIST zdest",
        "GEORADIUS ageo 15 37 200 km STORE adest",
        "GEORADIUSBYMEMBER ageo palermo 200 km STORE zdest",
        "GEOSEARCHSTORE zdest ageo FROMMEMBER palermo BYRADIUS 10 km",
        "GEOSEARCHSTORE adest ageo FROMMEMBER palermo BYRADIUS 10 km",
        # SORT: STORE is a key; BY/GET patterns need access to every key
        "SORT alist STORE zdest",
        "SORT alist STORE adest",
        "SORT alist STORE adest STORE zdest",
        "SORT zlist",
        "SORT alist BY nosort",
        "SORT alist BY aw_*",
        "SORT alist GET #",
        "SORT alist GET aw_*",
        "SORT_RO alist BY aw_*",
        "SORT_RO zlist",
        # subcommands
        "OBJECT ENCODING zstr",
        "OBJECT ENCODING astr",
        "OBJECT FREQ zstr",
        "OBJECT IDLETIME zstr",
        "OBJECT REFCOUNT zstr",
        "MEMORY USAGE zstr",
        "XINFO STREAM zstream",
        "XINFO GROUPS zstream",
        "XINFO CONSUMERS zstream g",
        "XGROUP CREATE zstream g2 0",
        "XGROUP SETID zstream g 0",
        "XGROUP DESTROY zstream g",
        "XGROUP CREATECONSUMER zstream g c",
        "XGROUP DELCONSUMER zstream g c",
        # two keys, one outside
        "COPY astr zcopy",
        "RENAME astr zstr",
        "SMOVE aset zzset x",
        "LMOVE alist zlist LEFT LEFT",
        "BLMOVE alist zlist LEFT LEFT 0.01",
        "RPOPLPUSH alist zlist",
        "SINTERSTORE adest aset zzset",
        "SUNION aset zzset",
        "SDIFF aset zzset",
        "PFMERGE adest zh",
        "BITOP AND adest astr zstr",
        "LCS astr zstr",
        "DEL astr zstr",
        "UNLINK zstr",
        "EXISTS zstr",
        "TOUCH astr zstr",
        "WATCH zstr",
        "DUMP zstr",
        "SET zstr v GET",
        "BITFIELD zstr GET u8 0",
        "BITFIELD_RO zstr GET u8 0",
        # channels
        "PUBLISH ch1 m",
        "PUBLISH other m",
        "SPUBLISH other m",
        "SPUBLISH ch1 m",
        "SSUBSCRIBE other",
        "PSUBSCRIBE c*",
        "SUBSCRIBE ch1 other",
        "PSUBSCRIBE ch*",
    ],
    "u2": [
        "GET rkey",
        "GET wkey",
        "SET wkey v",
        "SET rkey v",
        "SET wkey v GET",
        "GET bkey",
        "SET bkey v",
        "APPEND wkey x",
        "EXISTS wkey",
        "EXISTS zkey",
        "COPY rsrc wdst",
        "COPY wsrc wdst",
        "ZUNIONSTORE wdst 2 rk1 rk2",
        "ZUNIONSTORE rdst 2 rk1 rk2",
        "ZUNIONSTORE wdst 2 rk1 wk2",
        "LMPOP 1 rlist LEFT",
        "LMPOP 1 blist LEFT",
        "XREAD STREAMS rs ws 0 0",
        "GEORADIUS rgeo 15 37 200 km STORE wdst",
        "GEORADIUS rgeo 15 37 200 km STORE rdst",
        "GEORADIUS rgeo 15 37 200 km",
        "SORT rlist STORE wdst",
        "SORT rlist STORE rdst",
        "SORT wlist",
        "OBJECT ENCODING zkey",
        "OBJECT FREQ wkey",
        "MEMORY USAGE rkey",
        "DEL rkey",
        "DEL wkey",
        "RENAME wa wb",
        "RENAME ra wb",
        "BITFIELD wkey SET u8 0 1",
        "BITFIELD rkey GET u8 0",
        "BITFIELD wkey GET u8 0",
        "PFCOUNT rkey",
        "PFMERGE wdst rkey",
    ],
    "u3": [
        "SORT alist BY aw_*",
        "SORT alist GET # GET aw_*",
        "SORT alist STORE zdest",
        "SORT alist STORE adest",
        "ZUNIONSTORE zdest 2 az zz",
        "ZUNION 2 az zz",
    ],
}


def _log(raw: Raw) -> list[object]:
    """ACL LOG without its clock and connection fields."""
    r = hiredis.Reader()
    r.feed(raw.call("ACL", "LOG", "128"))
    entries = r.gets()
    out = []
    for e in entries:
        d = dict(zip(e[::2], e[1::2], strict=True))
        out.append([d[k] for k in (b"count", b"reason", b"context", b"object", b"username")])
    return out


def _session(port: int, user: str, resp3: bool) -> list[bytes | list[object]]:
    admin = Raw(port)
    out: list[bytes | list[object]] = []
    try:
        admin.call("FLUSHALL")
        admin.call("ACL", "LOG", "RESET")
        for line in SETUP + USERS:
            assert not admin.call(*shlex.split(line)).startswith(b"-"), line
        client = Raw(port, resp3)
        try:
            assert client.call("AUTH", user, "pw") == b"+OK\r\n"
            for line in CASES[user]:
                got = client.call(*shlex.split(line))
                out.append(got.replace(b"\r\n", b" ") + b"  <- " + line.encode())
        finally:
            client.close()
        out.append(_log(admin))
    finally:
        for u in ("u1", "u2", "u3"):
            admin.call("ACL", "DELUSER", u)
        admin.close()
    return out


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
@pytest.mark.parametrize("user", sorted(CASES))
def test_key_rules_as_redis(user: str, resp3: bool, redis_port: int, kv_port: int) -> None:
    want = _session(redis_port, user, resp3)
    got = _session(kv_port, user, resp3)
    for w, g in zip(want, got, strict=True):
        assert g == w


def test_keys_outside_the_pattern_stay_untouched(kv_port: int) -> None:
    """What the denials protect: nothing outside a* was read into or written by u1."""
    _session(kv_port, "u1", False)
    admin = Raw(kv_port)
    try:
        for key in ("zdest", "zcopy", "zkey"):
            assert admin.call("EXISTS", key) == b":0\r\n", key
        assert admin.call("GET", "zstr") == b"$6\r\nsecret\r\n"
        assert admin.call("LLEN", "zlist") == b":1\r\n"
        assert admin.call("ZCARD", "zz") == b":1\r\n"
    finally:
        admin.close()


GETKEYS = [
    "COMMAND GETKEYS SORT k STORE d",
    "COMMAND GETKEYS SORT k STORE d1 STORE d2",
    "COMMAND GETKEYS SORT k GET store STORE d",
    "COMMAND GETKEYS SORT k LIMIT 0 1 STORE d",
    "COMMAND GETKEYSANDFLAGS SORT k STORE d",
    "COMMAND GETKEYSANDFLAGS SORT_RO k BY x",
    "COMMAND GETKEYS GEORADIUS k 0 0 1 km STORE d",
    "COMMAND GETKEYS GEORADIUS k 0 0 1 km STORE",
    "COMMAND GETKEYS XREADGROUP GROUP g c STREAMS a b > >",
    "COMMAND GETKEYS XREAD STREAMS a",
    "COMMAND GETKEYS ZUNIONSTORE d 2x a b",
    "COMMAND GETKEYSANDFLAGS ZUNIONSTORE d 2x a b",
    "COMMAND GETKEYS ZUNIONSTORE d 0 a",
    "COMMAND GETKEYS ZUNIONSTORE d 3 a b",
    "COMMAND GETKEYS ZUNIONSTORE d 99999999999999999999 a",
    "COMMAND GETKEYS ZUNIONSTORE d -1 a",
    "COMMAND GETKEYS ZUNIONSTORE d 2147483648 a",
    "COMMAND GETKEYS XREAD STREAMS",
    "COMMAND GETKEYS XREAD COUNT",
    "COMMAND GETKEYS LMPOP 2 a b LEFT",
    "COMMAND GETKEYS BZMPOP 0 2 a b MIN",
    "COMMAND GETKEYS SINTERCARD 2 a b LIMIT 1",
    "COMMAND GETKEYS EVAL s 0",
    "COMMAND GETKEYS EVAL s x",
    "COMMAND GETKEYSANDFLAGS SET k get",
    "COMMAND GETKEYSANDFLAGS SET k v GET",
    "COMMAND GETKEYSANDFLAGS BITFIELD k GET u8 0",
    "COMMAND GETKEYSANDFLAGS BITFIELD k GET u8 0 SET u8 0 1",
    "COMMAND GETKEYS MIGRATE h 1 k 0 1",
    "COMMAND GETKEYS MIGRATE h 1 '' 0 1 COPY AUTH p KEYS a b",
    "COMMAND GETKEYS OBJECT ENCODING k",
    "COMMAND GETKEYS MEMORY USAGE k",
    "COMMAND GETKEYS CLIENT ID",
    "COMMAND GETKEYS SPUBLISH ch m",
    "COMMAND GETKEYS PUBLISH ch m",
]


@pytest.mark.parametrize("line", GETKEYS)
def test_getkeys_as_redis(line: str, redis_port: int, kv_port: int) -> None:
    ref, ours = Raw(redis_port), Raw(kv_port)
    try:
        args = shlex.split(line)
        assert ours.call(*args) == ref.call(*args)
    finally:
        ref.close()
        ours.close()


def _exec_after_rules_change(port: int) -> list[object]:
    admin, user = Raw(port), Raw(port)
    try:
        admin.call("FLUSHALL")
        admin.call("ACL", "LOG", "RESET")
        admin.call("ACL", "SETUSER", "u4", "reset", "on", ">pw", "~a*", "~b*", "+@all")
        out: list[object] = [user.call("AUTH", "u4", "pw"), user.call("MULTI")]
        out += [user.call("SET", "a1", "v"), user.call("SET", "b1", "v")]
        admin.call("ACL", "SETUSER", "u4", "resetkeys", "~a*")
        out += [user.call("EXEC"), _log(admin)]
        return out
    finally:
        admin.call("ACL", "DELUSER", "u4")
        admin.close()
        user.close()


def test_exec_rechecks_rules_as_redis(redis_port: int, kv_port: int) -> None:
    assert _exec_after_rules_change(kv_port) == _exec_after_rules_change(redis_port)


def test_repeated_store_keyword_checks_every_target(kv_port: int) -> None:
    """
    GEORADIUS … STORE a STORE b writes b; Redis 7.0's spec checks only a (and
    writes b for a user limited to a*). kv checks every key its handler may write.
    """
    admin, user = Raw(kv_port), Raw(kv_port)
    try:
        # (the server is shared: an earlier test may have left adest or ageo behind)
        admin.call("DEL", "ageo", "adest", "zdest")
        admin.call("ACL", "SETUSER", "u5", "reset", "on", ">pw", "~a*", "+@all")
        admin.call("GEOADD", "ageo", "13.36", "38.11", "palermo")
        assert user.call("AUTH", "u5", "pw") == b"+OK\r\n"
        reply = user.call(
            "GEORADIUS", "ageo", "15", "37", "200", "km", "STORE", "adest", "STORE", "zdest"
        )
        assert reply.startswith(b"-NOPERM")
        assert admin.call("EXISTS", "adest", "zdest") == b":0\r\n"
        assert user.call("GEORADIUS", "ageo", "15", "37", "200", "km", "STORE", "adest") == (
            b":1\r\n"
        )
    finally:
        admin.call("ACL", "DELUSER", "u5")
        admin.call("DEL", "ageo", "adest", "zdest")
        admin.close()
        user.close()
