#!/usr/bin/env python3
"""
Whole-collection kv commands against the rest of the suite: how long one kv client's
SMEMBERS / HGETALL / LRANGE 0 -1 / ZRANGE 0 -1 WITHSCORES / SUNION / SINTER / SDIFF
(and their STOREs, SINTERCARD) / ZUNION / ZINTER / ZDIFF (and their STOREs, ZINTERCARD) / KEYS * / SORT / DEL / UNLINK / FLUSHALL of a value with N
members, or a SET, RENAME, expiry, DEL in MULTI or FLUSHDB that drops one, holds the event loop every service
shares (issue 10's target: no kv input delays another service by more than 50 ms).

A suite of kv + echo runs in twistd (pinned to cpu 0); a process of its own sends one
echo round trip every 5 ms all along; a client loads N-member values (a set, a second
set, a hash, a sorted set, a list, and N small string keys for KEYS) and runs each
command, reading the whole reply. Prints, per command: its time as the client sees it
and the worst echo round trip while it ran; redis-server's time for the same command
is printed beside it as the reference.

    flock /tmp/bench.lock .venv/bin/python bench/kv_big.py     # N=1000000 to change

With C{PORTSUITE_BEFORE_BIN} (see bench/README.md), that build's worst round trips too,
in the same run ("before ms"). C{ONLY="SUNION in MULTI,200k SET in MULTI"}: a subset.

    flock /tmp/bench.lock .venv/bin/python bench/kv_big.py --strings   # SIZE_MB=512 to change

C{--strings}: the string commands on one huge value instead (SIZE_MB, 100 MB by default,
up to proto-max-bulk-len's 512): SET, GET, GETRANGE, APPEND, SETRANGE, SETBIT, BITCOUNT,
BITPOS, BITOP, BITFIELD, GETSET, COPY/RENAME/MOVE, MSET, LCS, DEL, the append-only file's
record of a SET and its rewrite; per command the worst and 99th percentile echo round
trip and the server's RSS growth. The server holds at most about two values at once
(the client one more): 512 MB values need some 2 GB free."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hiredis
from benchlib import before_bin, pin
from kv import TWISTD, _cmd, start, start_kv_and_echo, start_pinger, stop

N = int(os.environ.get("N", "1000000"))
ONLY = os.environ.get("ONLY", "")  # a comma-separated subset of the command names
BIGSTR = int(os.environ.get("BIGSTR", "200"))  # MB: the string DUMPed and RESTOREd
BOMB = int(os.environ.get("BOMB", "256"))  # MB: what the LZF bomb expands to

# each step: a name and its commands (sent as one pipeline, timed together); a
# b"sleep" argv waits that long (in s) within the step, for an expiry to happen
STEPS: list[tuple[str, list[list[bytes]]]] = [
    ("SMEMBERS", [[b"SMEMBERS", b"s"]]),
    ("HGETALL", [[b"HGETALL", b"h"]]),
    ("HKEYS", [[b"HKEYS", b"h"]]),
    ("HVALS", [[b"HVALS", b"h"]]),
    ("LRANGE 0 -1", [[b"LRANGE", b"l", b"0", b"-1"]]),
    ("ZRANGE 0 -1 WITHSCORES", [[b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES"]]),
    ("SUNION", [[b"SUNION", b"s", b"s2"]]),
    ("SINTER", [[b"SINTER", b"s", b"s2"]]),
    ("SDIFF", [[b"SDIFF", b"s", b"s2"]]),
    ("SINTERCARD", [[b"SINTERCARD", b"2", b"s", b"s2"]]),
    ("SUNIONSTORE", [[b"SUNIONSTORE", b"u", b"s", b"s2"]]),
    ("SINTERSTORE", [[b"SINTERSTORE", b"i", b"s", b"s2"]]),
    ("SDIFFSTORE", [[b"SDIFFSTORE", b"d", b"s", b"s2"]]),
    ("ZUNIONSTORE", [[b"ZUNIONSTORE", b"zu", b"2", b"z", b"s2", b"WEIGHTS", b"1", b"2"]]),
    ("ZINTERSTORE", [[b"ZINTERSTORE", b"zi", b"2", b"z", b"s2", b"AGGREGATE", b"MAX"]]),
    ("ZDIFFSTORE", [[b"ZDIFFSTORE", b"zd", b"2", b"z", b"s2"]]),
    ("ZUNION", [[b"ZUNION", b"2", b"z", b"s2", b"WITHSCORES"]]),
    ("ZINTER", [[b"ZINTER", b"2", b"z", b"s2"]]),
    ("ZDIFF", [[b"ZDIFF", b"2", b"z", b"s2"]]),
    ("ZINTERCARD", [[b"ZINTERCARD", b"2", b"z", b"s2"]]),
    ("SSCAN COUNT 10 (x100)", [[b"SSCAN", b"s", b"0", b"COUNT", b"10"]]),
    ("KEYS *", [[b"KEYS", b"*"]]),
    ("SORT list", [[b"SORT", b"l"]]),
    ("SORT list STORE", [[b"SORT", b"l", b"STORE", b"sl"]]),
    ("DUMP of a set", [[b"DUMP", b"o1"]]),
    ("RESTORE of it", [[b"RESTORE", b"o5", b"0", b"$last"]]),
    ("DUMP of a zset", [[b"DUMP", b"z"]]),
    ("RESTORE of the zset", [[b"RESTORE", b"z5", b"0", b"$last"]]),
    # big strings in DUMP/RESTORE (BIGSTR and BOMB MB; $bomb, $lzftext: payloads built here)
    ("DUMP of a big string", [[b"DUMP", b"bigstr"]]),
    ("RESTORE of it (plain)", [[b"RESTORE", b"bigstr2", b"0", b"$last"]]),
    ("RESTORE of an LZF bomb", [[b"RESTORE", b"bomb", b"0", b"$bomb"]]),
    ("RESTORE of LZF text (32 MB)", [[b"RESTORE", b"lzftext", b"0", b"$lzftext"]]),
    ("RESTORE of a hash of 2 LZF bombs", [[b"RESTORE", b"bombs", b"0", b"$bombhash"]]),
    ("SET over a set", [[b"SET", b"o1", b"x"]]),
    ("RENAME over a set", [[b"RENAME", b"k1", b"o2"]]),
    ("expiry of a set", [[b"PEXPIRE", b"o3", b"20"], [b"sleep", b"0.4"]]),
    ("DEL in MULTI", [[b"MULTI"], [b"DEL", b"o4"], [b"EXEC"]]),
    (
        "FLUSHDB (one big set)",
        [[b"MOVE", b"s2", b"1"], [b"SELECT", b"1"], [b"FLUSHDB"], [b"SELECT", b"0"]],
    ),
    # MULTI/EXEC (sent as one pipeline): big commands inside, many small or medium ones
    ("SUNION in MULTI", [[b"MULTI"], [b"SUNION", b"s", b"s2"], [b"EXEC"]]),
    ("SUNIONSTORE in MULTI", [[b"MULTI"], [b"SUNIONSTORE", b"u", b"s", b"s2"], [b"EXEC"]]),
    ("SMEMBERS in MULTI", [[b"MULTI"], [b"SMEMBERS", b"s"], [b"EXEC"]]),
    ("200k SET pipelined", [*([b"SET", b"p%d" % i, b"v"] for i in range(200_000))]),
    (
        "200k SET in MULTI",
        [[b"MULTI"], *([b"SET", b"t%d" % i, b"v"] for i in range(200_000)), [b"EXEC"]],
    ),
    (
        "200k SADD in MULTI",
        [[b"MULTI"], *([b"SADD", b"ts", b"%d" % i] for i in range(200_000)), [b"EXEC"]],
    ),
    (
        "1000 LRANGE 0 2999 in MULTI",
        [[b"MULTI"], *([b"LRANGE", b"l", b"0", b"2999"] for _ in range(1000)), [b"EXEC"]],
    ),
    # (issue 10: those not computed in slices before; N is filled in by _argv)
    ("SRANDMEMBER N", [[b"SRANDMEMBER", b"s", b"$N"]]),
    ("SRANDMEMBER -N", [[b"SRANDMEMBER", b"s", b"-$N"]]),
    ("HRANDFIELD N WITHVALUES", [[b"HRANDFIELD", b"h", b"$N", b"WITHVALUES"]]),
    ("HRANDFIELD -N", [[b"HRANDFIELD", b"h", b"-$N"]]),
    ("ZRANDMEMBER N WITHSCORES", [[b"ZRANDMEMBER", b"z", b"$N", b"WITHSCORES"]]),
    ("ZRANDMEMBER -N", [[b"ZRANDMEMBER", b"z", b"-$N"]]),
    ("MEMORY USAGE SAMPLES 0", [[b"MEMORY", b"USAGE", b"h", b"SAMPLES", b"0"]]),
    ("SPOP N/2", [[b"SPOP", b"p", b"$N/2"]]),
    ("SMOVE", [[b"SMOVE", b"p", b"s", b"m1"]]),
    ("SADD N args", [[b"SADD", b"new", b"$args"]]),
    ("HSET N args", [[b"HSET", b"newh", b"$pairs"]]),
    ("ZADD N args", [[b"ZADD", b"newz", b"$pairs"]]),
    ("RPUSH N args", [[b"RPUSH", b"newl", b"$args"]]),
    ("LPOS of a missing one", [[b"LPOS", b"l", b"nothing"]]),
    ("LINSERT at the end", [[b"LINSERT", b"l", b"BEFORE", b"nothing", b"x"]]),
    ("LREM", [[b"LREM", b"newl", b"0", b"a1"]]),
    (
        "GETRANGE of 64 MB",
        [[b"SETRANGE", b"str", b"67108863", b"x"], [b"GETRANGE", b"str", b"0", b"-1"]],
    ),
    ("APPEND to 64 MB", [[b"APPEND", b"str", b"y"]]),
    ("SORT BY GET", [[b"SORT", b"newl", b"BY", b"w_*", b"GET", b"#", b"GET", b"w_*", b"ALPHA"]]),
    ("COPY hash", [[b"COPY", b"h", b"hc"]]),
    ("COPY set", [[b"COPY", b"s", b"sc"]]),
    ("COPY zset", [[b"COPY", b"z", b"zc"]]),
    ("COPY list", [[b"COPY", b"l", b"lc"]]),
    ("COPY stream", [[b"COPY", b"x", b"xc"]]),
    ("RENAME over a hash", [[b"RENAME", b"k2", b"hc"]]),
    ("ZREMRANGEBYRANK", [[b"ZREMRANGEBYRANK", b"zc", b"0", b"-1"]]),
    ("ZREMRANGEBYSCORE", [[b"ZREMRANGEBYSCORE", b"z", b"-inf", b"+inf"]]),
    ("XTRIM MAXLEN 0", [[b"XTRIM", b"xc", b"MAXLEN", b"0"]]),
    ("DEL stream", [[b"DEL", b"x"]]),
    ("DEL set", [[b"DEL", b"s"]]),
    ("UNLINK hash", [[b"UNLINK", b"h"]]),
    ("DEL zset", [[b"DEL", b"z"]]),
    ("FLUSHALL ASYNC", [[b"FLUSHALL", b"ASYNC"]]),
]


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

    def call(self, *argv: bytes) -> Any:
        self.sock.sendall(_cmd(*argv))
        return self.read()

    def read(self) -> Any:
        reader = hiredis.Reader()
        while True:
            got = reader.gets()
            if got is not False:
                return got
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            reader.feed(data)

    def pipeline(self, cmds: list[list[bytes]]) -> None:
        """Send C{cmds} at once, read every reply."""
        self.sock.sendall(b"".join(_cmd(*c) for c in cmds))
        reader = hiredis.Reader()
        left = len(cmds)
        while left:
            got = reader.gets()
            if got is False:
                reader.feed(self.sock.recv(1 << 20))
                continue
            left -= 1


def _payload(body: bytes) -> bytes:
    """A RESTORE payload: C{body}, RDB version 10, its CRC64 (Redis's, as rdb.py's)."""
    import crcmod

    crc64 = crcmod.mkCrcFun(0x1AD93D23594C935A9, initCrc=0, rev=True, xorOut=0)
    body += struct.pack("<H", 10)
    return body + struct.pack("<Q", crc64(body))


def _lzf_string(packed: bytes, ulen: int) -> bytes:
    return b"\xc3\x80" + struct.pack(">I", len(packed)) + b"\x80" + struct.pack(">I", ulen) + packed


def _bomb(ulen: int) -> bytes:
    """An RDB LZF string of C{ulen} bytes of 'a': 264 of them a token of 3 bytes."""
    refs, rest = divmod(ulen - 1, 264)
    packed = b"\x00a" + b"\xe0\xff\x00" * refs + b"\x00a" * rest
    return _lzf_string(packed, ulen)


def _lzf_text(ulen: int) -> bytes:
    """An RDB LZF string as text compresses (2:1): 8-byte literal runs, 16-byte references."""
    unit = b"\x07" + b"lorem ip" + b"\xe0\x07\x07"  # 8 literal bytes, then 16 from 8 back
    return _lzf_string(unit * (ulen // 24), ulen // 24 * 24)


PAYLOADS: dict[bytes, Any] = {
    b"$bomb": lambda: _payload(b"\x00" + _bomb(BOMB << 20)),
    b"$lzftext": lambda: _payload(b"\x00" + _lzf_text(32 << 20)),
    b"$bombhash": lambda: _payload(
        b"\x04\x02\x01f" + _bomb(BOMB << 19) + b"\x01g" + _bomb(BOMB << 19)
    ),
}


def load(port: int) -> None:
    c = Client(port)
    c.call(b"SET", b"bigstr", os.urandom(1 << 20) * BIGSTR)
    step = 1000
    for lo in range(0, N, step * 50):
        batch = []
        for i in range(lo, min(N, lo + step * 50), step):
            r = range(i, min(N, i + step))
            batch.append([b"SADD", b"s", *(b"m%d" % j for j in r)])
            batch.append([b"SADD", b"s2", *(b"m%d" % (j * 2) for j in r)])
            batch.append([b"HSET", b"h", *(x for j in r for x in (b"f%d" % j, b"v%d" % j))])
            batch.append([b"ZADD", b"z", *(x for j in r for x in (b"%d" % j, b"m%d" % j))])
            batch.append([b"RPUSH", b"l", *(b"%d" % ((j * 7919) % N) for j in r)])
            batch.append([b"MSET", *(x for j in r for x in (b"k%d" % j, b"v"))])
            for o in (b"o1", b"o2", b"o3", b"o4", b"p"):  # sets with members of their own, to drop
                batch.append([b"SADD", o, *(o + b"%d" % j for j in r)])
            if i // step % 4 == 0:  # a stream of N/4 entries
                batch.extend([b"XADD", b"x", b"*", b"f", b"%d" % j] for j in r)
        c.pipeline(batch)
    c.sock.close()


def _argv(argv: list[bytes]) -> list[bytes]:
    """$N, -$N, $N/2: the count; $args: N members; $pairs: N (score or field, member)."""
    out: list[bytes] = []
    for x in argv:
        if x == b"$args":
            out += (b"a%d" % j for j in range(N))
        elif x == b"$pairs":
            out += (y for j in range(N) for y in (b"%d" % j, b"a%d" % j))
        elif len(x) > 64:  # (a payload: as it is)
            out.append(x)
        elif x in PAYLOADS:
            out.append(PAYLOADS[x]())
        else:
            out.append(x.replace(b"$N/2", b"%d" % (N // 2)).replace(b"$N", b"%d" % N))
    return out


def _peak_rss(pid: int | None, reset: bool = False) -> float:
    """The process's peak RSS (MB) since the last reset (Linux clear_refs 5), or -1."""
    if pid is None:
        return -1.0
    try:
        if reset:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return -1.0
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def run(port: int, echo: int | None, pid: int | None = None) -> dict[str, tuple[float, float]]:
    """{command: (seconds, worst echo round trip in ms or -1)}; RSS peaks (MB) in RSS."""
    load(port)
    out = {}
    RSS.clear()
    pinger = start_pinger(echo) if echo is not None else None
    c = Client(port)
    spans = []
    last = b""
    t0 = time.monotonic()
    for name, cmds in STEPS:
        if ONLY and name not in ONLY.split(","):
            continue
        time.sleep(0.2)
        payloads = [[_argv([x])[0] if x in PAYLOADS else x for x in argv] for argv in cmds]
        cmds = payloads  # (built before the clock starts)
        before_rss = _peak_rss(pid, reset=True)
        a = time.monotonic()
        t = time.perf_counter()
        if cmds[0] == [b"MULTI"] or len(cmds) > 100:
            c.pipeline(cmds)  # (one send: MULTI, what it queues, EXEC)
        elif "x100" in name:  # 100 calls of one scan, following its cursor
            argv = cmds[0]
            cursor = b"0"
            for _ in range(100):
                cursor = c.call(*argv[:2], cursor, *argv[3:])[0]
        else:
            for argv in cmds:
                if argv[0] == b"sleep":
                    time.sleep(float(argv[1]))
                else:  # (b"$last": the previous step's reply, DUMP's payload)
                    last = c.call(*_argv([last if x == b"$last" else x for x in argv]))
        out[name] = (time.perf_counter() - t, -1.0)
        spans.append((name, a - t0, time.monotonic() - t0))
        RSS[name] = (before_rss, _peak_rss(pid))
    time.sleep(0.3)
    c.sock.close()
    if pinger is not None:
        quiet, round_trips = _round_trips(pinger(), spans)
        for name, during in round_trips.items():
            out[name] = (out[name][0], max(during, default=0) * 1000)
        out["(baseline)"] = (0.0, max(quiet, default=0) * 1000)
    return out


def _round_trips(
    samples: list[tuple[float, float]], spans: list[tuple[str, float, float]]
) -> tuple[list[float], dict[str, list[float]]]:
    """The pinger's round trips before the first step, and during each step's span (its
    clock started about 0.5 s before the steps')."""
    base = samples[0][0]
    quiet = [r for w, r in samples if w - base < 0.5]
    return quiet, {
        name: [r for w, r in samples if a - 0.01 <= w - base - 0.5 <= b + 0.05]
        for name, a, b in spans
    }


RSS: dict[str, tuple[float, float]] = {}  # the last run's (RSS at its start, peak), MB


SIZE = int(os.environ.get("SIZE_MB", "100")) << 20

# each step: a name and its commands; b"$S" is a value of SIZE bytes (sent as it is
# read, never built whole), b"$S/4" a quarter of it, b"$1M" a MiB, b"$n" a number
# made of SIZE (the formula after it, in bytes or bits); "(aof)" steps run on a kv
# with an append-only file
STR_STEPS: list[tuple[str, list[list[bytes]]]] = [
    ("SET", [[b"SET", b"s", b"$S"]]),
    ("GET", [[b"GET", b"s"]]),
    ("STRLEN", [[b"STRLEN", b"s"]]),
    ("GETRANGE 0 -1", [[b"GETRANGE", b"s", b"0", b"-1"]]),
    ("SUBSTR 1 -2", [[b"SUBSTR", b"s", b"1", b"-2"]]),
    ("APPEND", [[b"APPEND", b"s", b"tail"]]),
    ("SETRANGE in the middle", [[b"SETRANGE", b"s", b"$n:S/2", b"middle"]]),
    ("BITCOUNT", [[b"BITCOUNT", b"s"]]),
    ("BITCOUNT BIT range", [[b"BITCOUNT", b"s", b"3", b"-3", b"BIT"]]),
    ("INCR (an error)", [[b"INCR", b"s"]]),
    ("COPY", [[b"COPY", b"s", b"s2"]]),
    ("RENAME", [[b"RENAME", b"s2", b"s3"]]),
    ("MOVE", [[b"MOVE", b"s3", b"1"]]),
    ("GETSET (drops it)", [[b"GETSET", b"s", b"small"]]),
    ("DEL (in db 1)", [[b"SELECT", b"1"], [b"DEL", b"s3"], [b"SELECT", b"0"]]),
    ("SETRANGE far (zero-fill)", [[b"SETRANGE", b"z", b"$n:S-1", b"x"]]),
    ("BITPOS 1 (at the end)", [[b"BITPOS", b"z", b"1"]]),
    ("GETDEL", [[b"GETDEL", b"z"]]),
    ("SETBIT at the last bit", [[b"SETBIT", b"b", b"$n:8S-1", b"1"]]),
    ("BITFIELD SET at the end", [[b"BITFIELD", b"b", b"SET", b"u8", b"$n:8S-16", b"255"]]),
    ("BITOP NOT", [[b"BITOP", b"NOT", b"n", b"b"]]),
    ("BITOP AND", [[b"DEL", b"n"], [b"BITOP", b"AND", b"n", b"b", b"b"]]),
    ("DEL two", [[b"DEL", b"n", b"b"]]),
    (
        "MSET of 4 quarters",
        [[b"MSET", b"m1", b"$S/4", b"m2", b"$S/4", b"m3", b"$S/4", b"m4", b"$S/4"]],
    ),
    ("MGET of them", [[b"MGET", b"m1", b"m2", b"m3", b"m4"]]),
    (
        "LCS of 1 MiB with 100 bytes",
        [[b"SET", b"l1", b"$1M"], [b"SET", b"l2", b"$100"], [b"LCS", b"l1", b"l2"]],
    ),
    ("FLUSHALL", [[b"FLUSHALL"]]),
    ("SET (aof)", [[b"SET", b"s", b"$S"]]),
    ("BGREWRITEAOF (aof)", [[b"BGREWRITEAOF"], [b"wait-rewrite"]]),
    ("DEL (aof)", [[b"DEL", b"s"]]),
]


def _size(arg: bytes) -> int:
    """$n:S/2, $n:8S-1 …: the number, from SIZE."""
    expr = arg[3:].decode().replace("8S", f"{8 * SIZE}").replace("S", f"{SIZE}")
    return int(eval(expr, {}))  # (our own table's formulas)


def _send_big(sock: socket.socket, argv: list[bytes]) -> None:
    """One command whose $S/$S/4/$1M/$100 arguments are sent a MiB at a time, never built whole."""
    piece = b"y" * (1 << 20)
    sock.sendall(b"*%d\r\n" % len(argv))
    for a in argv:
        n = {b"$S": SIZE, b"$S/4": SIZE // 4, b"$1M": 1 << 20, b"$100": 100}.get(a)
        if n is None:
            if a.startswith(b"$n:"):
                a = b"%d" % _size(a)
            sock.sendall(b"$%d\r\n%s\r\n" % (len(a), a))
            continue
        sock.sendall(b"$%d\r\n" % n)
        if n < 1 << 20:  # a short one, the alphabet: LCS has something to find
            sock.sendall(bytes(range(97, 97 + 26)) * (n // 26) + b"y" * (n % 26) + b"\r\n")
            continue
        for _ in range(n >> 20):
            sock.sendall(piece)
        sock.sendall(piece[: n & ((1 << 20) - 1)] + b"\r\n")


class _Skipper:
    """Reads RESP2 replies off a socket keeping none of their bulks (a 512 MB GET is counted)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(1 << 22)
        if not data:
            raise ConnectionError("closed")
        self.buf += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self) -> int:
        """Skip one reply; its size in bytes, about."""
        line = self._line()
        kind, n = line[:1], int(line[1:]) if line[1:2].isdigit() or line[1:2] == b"-" else 0
        if kind == b"$" and n >= 0:
            left = n + 2
            while left > len(self.buf):
                left -= len(self.buf)
                self.buf = b""
                self._more()
            self.buf = self.buf[left:]
            return n
        if kind == b"*":
            return sum(self.reply() for _ in range(max(n, 0)))
        return len(line)


def run_strings(
    port: int, echo: int | None, pid: int | None, aof: bool
) -> dict[str, tuple[float, float, float, int]]:
    """{command: (seconds, worst echo rtt ms, p99 ms, peak RSS growth MiB)}; aof: the (aof) steps only."""
    import statistics
    import threading

    out = {}
    pinger = start_pinger(echo) if echo is not None else None
    c = Client(port)
    spans = []
    t0 = time.monotonic()
    for name, cmds in STR_STEPS:
        if (ONLY and name not in ONLY.split(",")) or ("(aof)" in name) != aof:
            continue
        time.sleep(0.3)
        rss0 = _rss_of(pid)
        peak = [rss0]
        done = threading.Event()

        def watch(done: threading.Event = done, peak: list[int] = peak) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _rss_of(pid))
                time.sleep(0.01)

        w = threading.Thread(target=watch)
        w.start()
        a = time.monotonic()
        t = time.perf_counter()
        try:
            skipper = _Skipper(c.sock)
            for argv in cmds:
                if argv == [b"wait-rewrite"]:  # (the reply comes when the child starts)
                    while b"aof_rewrite_in_progress:1" in c.call(b"INFO", b"persistence"):
                        time.sleep(0.01)
                    continue
                _send_big(c.sock, argv)
                skipper.reply()
            took = time.perf_counter() - t
        except OSError:  # (the build before disconnected MGET of big values)
            took = -1.0
            c.sock.close()
            c = Client(port)
        done.set()
        w.join()
        out[name] = (took, -1.0, -1.0, (peak[0] - rss0) >> 20)
        spans.append((name, a - t0, time.monotonic() - t0))
    time.sleep(0.3)
    c.sock.close()
    if pinger is not None:
        samples = pinger()
        quiet, round_trips = _round_trips(samples, spans)
        # (what a step leaves behind may land after its span: a value freed later)
        whole = "(whole run, aof)" if aof else "(whole run)"
        round_trips.update(_round_trips(samples, [(whole, 0.0, time.monotonic() - t0)])[1])
        out[whole] = (0.0, 0.0, 0.0, 0)
        for name, during in round_trips.items():
            p99 = (
                statistics.quantiles(during, n=100, method="inclusive")[98]
                if len(during) > 2
                else max(during, default=0)
            )
            k = out[name]
            out[name] = (k[0], max(during, default=0) * 1000, p99 * 1000, k[3])
        out["(baseline)"] = (0.0, max(quiet, default=0) * 1000, 0.0, 0)
    return out


def _rss_of(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def strings() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kv-bigstr-"))
    builds: list[tuple[str, str]] = []
    bindir = before_bin()
    if bindir is not None:
        builds.append(("before", str(bindir / "twistd")))
    builds.append(("kv", TWISTD))
    results: dict[str, dict[str, tuple[float, float, float, int]]] = {}
    for label, twistd in builds:
        res: dict[str, tuple[float, float, float, int]] = {}
        for aof in (False, True):
            extra = f'data = "{tmp / (label + ".aof")}"\nfsync = "no"\n' if aof else ""
            proc, kv, echo = start_kv_and_echo(tmp, pin(0), twistd, extra)
            try:
                res.update(run_strings(kv, echo, proc.pid, aof))
            finally:
                stop(proc)
        results[label] = res
    ref: dict[str, tuple[float, float, float, int]] = {}
    if shutil.which("redis-server"):
        rproc, rport = start("redis", False, tmp)
        try:
            ref = run_strings(rport, None, rproc.pid, False)
        finally:
            stop(rproc)
    shutil.rmtree(tmp, ignore_errors=True)
    ours = results["kv"]
    before = results.get("before", {})
    print(f"\nvalues of {SIZE >> 20} MiB; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'command':30} {'kv s':>6} {'redis s':>8} {'worst echo ms':>14} {'p99':>6} "
        f"{'rss +MiB':>9}" + (f" {'before worst':>13} {'p99':>6} {'rss':>5}" if before else "")
    )
    for name in ["(baseline)", "(whole run)", "(whole run, aof)"] + [n for n, _ in STR_STEPS]:
        if name not in ours:
            continue
        k = ours[name]
        r = ref.get(name, (0.0,))[0]
        kv_s = f"{k[0]:6.2f}" if k[0] >= 0 else " reset"
        line = f"{name:30} {kv_s} {r:8.2f} {k[1]:14.1f} {k[2]:6.1f} {k[3]:9d}"
        if name in before:
            b = before[name]
            line += f" {b[1]:13.1f} {b[2]:6.1f} {b[3]:5d}" + (" reset" if b[0] < 0 else "")
        print(line)
    print(
        "SUMMARY worst echo rtt ms: "
        + " ".join(f"{n.replace(' ', '_')}={ours[n][1]:.0f}" for n, _ in STR_STEPS if n in ours)
    )


def main() -> None:
    if "--strings" in sys.argv:
        return strings()
    tmp = Path(tempfile.mkdtemp(prefix="kv-big-"))
    before: dict[str, tuple[float, float]] = {}
    bindir = before_bin()
    if bindir is not None:  # PORTSUITE_BEFORE_BIN: that build first, in the same run
        proc, kv, echo = start_kv_and_echo(tmp, pin(0), str(bindir / "twistd"))
        try:
            before = run(kv, echo, proc.pid)
        finally:
            stop(proc)
    before_rss = dict(RSS)
    proc, kv, echo = start_kv_and_echo(tmp, pin(0))
    try:
        ours = run(kv, echo, proc.pid)
    finally:
        stop(proc)
    ours_rss = dict(RSS)
    ref: dict[str, tuple[float, float]] = {}
    ref_rss: dict[str, tuple[float, float]] = {}
    if shutil.which("redis-server"):
        rproc, rport = start("redis", False, tmp)
        try:
            ref = run(rport, None, rproc.pid)
        finally:
            stop(rproc)
        ref_rss = dict(RSS)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nN = {N:,} members; load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'command':30} {'kv s':>7} {'redis s':>8} {'kv/redis':>9} "
        f"{'worst echo rtt ms':>18} {'target':>7}" + (f" {'before ms':>10}" if before else "")
    )

    def was(name: str) -> str:
        return f" {before[name][1]:10.1f}" if name in before else ""

    base = ours["(baseline)"][1]
    print(f"{'(baseline)':30} {'':>7} {'':>8} {'':>9} {base:18.1f} {'':>7}{was('(baseline)')}")
    for name, _ in STEPS:
        if name not in ours:
            continue
        k, worst = ours[name]
        r = ref.get(name, (0.0, 0.0))[0]
        ratio = f"{k / r:9.1f}" if r else f"{'':>9}"
        print(f"{name:30} {k:7.2f} {r:8.2f} {ratio} {worst:18.1f} {'50':>7}{was(name)}")
    print(
        "\nRSS peak while it ran, MB (before it / peak): kv, redis-server"
        + (", before" if before else "")
    )
    for name, _ in STEPS:
        if name in ours_rss and ours_rss[name][1] - ours_rss[name][0] > 50:  # (the big ones)
            row = [ours_rss[name], ref_rss.get(name, (-1, -1))]
            row += [before_rss[name]] if name in before_rss else []
            print(f"{name:30} " + "  ".join(f"{a:7.0f} / {b:7.0f}" for a, b in row))
    print(
        "SUMMARY worst echo rtt ms: "
        + " ".join(f"{n.replace(' ', '_')}={ours[n][1]:.0f}" for n, _ in STEPS if n in ours)
    )


if __name__ == "__main__":
    main()
