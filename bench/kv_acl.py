#!/usr/bin/env python3
"""
ACL users with very many rules, and CLIENT LIST / CLIENT KILL over thousands of
clients, against the rest of the suite (issue 10: no input of any size from one kv
client delays another service by more than 50 ms).

A family of bench/kv_sweep.py's kind, run by its machinery: a fresh kv + echo suite
in twistd, a process sending one echo round trip every 5 ms, and per step the worst
and p99 echo round trip while it ran, kv's time for it and its reply. The steps:
SETUSER of RULES (100,000) key patterns, GETUSER / LIST of that user, GET by it (one,
then 20 pipelined), DRYRUN, SETUSER of RULES/2 `+get|x` rules and of RULES channel
patterns, PUBLISH / SUBSCRIBE by that user (one channel, then 2 x RULES whose last is
denied: checked in slices), a user with RULES/5 patterns C{*x<i>*} (indexed by their
literal run) and one with RULES C{*:<i>} (by literal suffix) and a GET by each, a GET of
a key of 1 MB by the first, an MGET of 2 x RULES keys, a user of RULES/2 patterns of
no literal byte (C{[xyz]*}, C{[^…]?*}) and GETs by it, SETUSER of 10 x RULES patterns
and a change of that user, then CLIENT LIST and CLIENT KILL of CLIENTS (3,000) idle
connections.

    flock /tmp/bench.lock .venv/bin/python bench/kv_acl.py
    RULES=20000 CLIENTS=1000 ...     # smaller
    PORTSUITE_BEFORE_BIN=/tmp/before/.venv/bin ...   # that build first, same run

About a minute a build on the dev VM.
"""

from __future__ import annotations

import os
import random
import socket
import time

import kv_sweep
from benchlib import before_bin
from kv_sweep import Argv, Client, Step, one, run_family

RULES = int(os.environ.get("RULES", "100000"))
CLIENTS = int(os.environ.get("CLIENTS", "3000"))
_idle: list[socket.socket] = []  # CLIENT LIST / KILL's victims (closed with the suite)


def as_user(user: bytes, *cmds: Argv) -> list[Argv]:
    """C{cmds} run as C{user} (password pw), then back to the default user (nopass)."""
    return [[b"AUTH", user, b"pw"], *cmds, [b"AUTH", b"default", b"x"]]


def setuser(name: bytes, *fixed: bytes, rule: bytes, n: int) -> Step:
    what = rule.replace(b"%d", b"N").decode()
    return (
        f"ACL SETUSER {name.decode()} {n:,} {what}",
        lambda: one(b"ACL", b"SETUSER", name, *fixed, *[rule % i for i in range(n)]),
    )


def _classes(n: int) -> list[bytes]:
    """C{n} distinct key patterns of no literal byte: C{~[xyz]*}, and n/10 C{~[^\\x01…]?*}."""
    alpha = [bytes([b]) for b in range(0x21, 0x7F) if b not in b"]\\-^*?["]
    rnd = random.Random(3)
    out: set[bytes] = set()
    while len(out) < n:
        out.add(b"~[" + b"".join(rnd.sample(alpha, 3)) + b"]*")
    neg = {b"~[^\x01" + b"".join(rnd.sample(alpha, 60)) + b"]?*" for _ in range(n // 10)}
    return sorted(out) + sorted(neg)


def load_clients(c: Client) -> None:
    for _ in range(CLIENTS):
        _idle.append(socket.create_connection(("127.0.0.1", c.sock.getpeername()[1])))
    time.sleep(0.5)


ACL: list[Step] = [
    setuser(b"u", b"on", b">pw", b"+@all", rule=b"~k%d", n=RULES),
    ("ACL GETUSER u", one(b"ACL", b"GETUSER", b"u")),
    ("ACL LIST", one(b"ACL", b"LIST")),
    ("GET as u (no pattern matches)", as_user(b"u", [b"GET", b"zzz"])),
    ("20 GET pipelined as u", as_user(b"u", *[[b"GET", b"zzz"]] * 20)),
    ("ACL DRYRUN u GET nokey", one(b"ACL", b"DRYRUN", b"u", b"GET", b"nokey")),
    setuser(b"v", rule=b"+get|x%d", n=RULES // 2),
    ("ACL GETUSER v", one(b"ACL", b"GETUSER", b"v")),
    setuser(b"w", b"on", b">pw", b"+@all", b"~*", rule=b"&c%d*", n=RULES),
    ("PUBLISH as w", as_user(b"w", [b"PUBLISH", b"zz", b"x"])),
    ("SUBSCRIBE as w (denied)", as_user(b"w", [b"SUBSCRIBE", b"zz"])),
    (
        f"SUBSCRIBE {2 * RULES:,} as w (last denied)",
        as_user(b"w", [b"SUBSCRIBE", *[b"c%d" % i for i in range(2 * RULES)], b"zz"]),
    ),
    setuser(b"x", b"on", b">pw", b"+@all", rule=b"~*x%d*", n=RULES // 5),
    ("GET as x (by literal run)", as_user(b"x", [b"GET", b"zzz"])),
    setuser(b"y", b"on", b">pw", b"+@all", rule=b"~*:%d", n=RULES),
    ("GET as y (by literal suffix)", as_user(b"y", [b"GET", b"k:77"])),
    ("GET of a 1 MB key as x", as_user(b"x", [b"GET", b"a" * 1_000_000])),
    (
        f"MGET {2 * RULES:,} as u (from k{RULES:,} denied)",
        lambda: as_user(b"u", [b"MGET", *[b"k%d" % i for i in range(2 * RULES)]]),
    ),
    (
        f"ACL SETUSER z {RULES // 2:,} [abc]* (no literal)",
        lambda: one(b"ACL", b"SETUSER", b"z", b"on", b">pw", b"+@all", *_classes(RULES // 2)),
    ),
    ("GET as z (tried by first byte)", as_user(b"z", [b"GET", b"zzz"])),
    ("GET as z (denied: every [^..]?* tried)", as_user(b"z", [b"GET", b"\x01"])),
    setuser(b"m", b"on", b">pw", b"+@all", rule=b"~k%d", n=10 * RULES),
    ("ACL SETUSER m ~z (a copy of it)", one(b"ACL", b"SETUSER", b"m", b"~z")),
    ("ACL DELUSER u v w x y z m", one(b"ACL", b"DELUSER", *[bytes([c]) for c in b"uvwxyzm"])),
    (f"CLIENT LIST ({CLIENTS:,} clients)", one(b"CLIENT", b"LIST")),
    (
        f"CLIENT KILL TYPE normal ({CLIENTS:,})",
        [*one(b"CLIENT", b"KILL", b"TYPE", b"normal"), [b"sleep", b"1.5"]],
    ),
]


def main() -> None:
    kv_sweep.FAMILY_STEPS["acl"] = (load_clients, ACL)
    bindir = before_bin()
    before = {}
    if bindir is not None:
        before = run_family("acl", str(bindir / "twistd"))[0]
        for s in _idle:
            s.close()
        _idle.clear()
    now = run_family("acl", None)[0]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nRULES = {RULES:,}, CLIENTS = {CLIENTS:,}; load average {load}")
    head = f"{'step':44} {'worst ms':>9} {'p99 ms':>7} {'kv s':>7}"
    if before:
        head += f" {'before':>8} {'b p99':>6} {'b kv s':>7}"
    print(head + "  reply")
    over = []
    for step, (worst, p99, took, reply) in now.items():
        line = f"{step[:44]:44} {worst:9.1f} {p99:7.1f} {took:7.2f}"
        b = before.get(step)
        if b is not None:
            line += f" {b[0]:8.1f} {b[1]:6.1f} {b[2]:7.2f}"
        print(f"{line}  {reply}")
        if worst > 50 and step != "(baseline)":
            over.append(f"{step}={worst:.0f}")
    print(f"\nover 50 ms now: {len(over)}: " + ", ".join(over))


if __name__ == "__main__":
    main()
