"""HyperLogLog commands: PFADD PFCOUNT PFMERGE (the value is a Redis-compatible string)."""

from __future__ import annotations

from typing import Any

from portsuite_services.kv import hll
from portsuite_services.kv.commands import CommandError, command, wrongtype
from portsuite_services.kv.resp import OK

H = "hyperloglog"


def _hll(c: Any, key: bytes) -> bytes | None:
    v = c.store.get(key)
    if v is None:
        return None
    if type(v) is not bytes:
        raise wrongtype()
    try:
        hll.check(v)
    except hll.Invalid as e:
        raise CommandError(str(e)) from None
    return v


def _regs(v: bytes) -> bytearray:
    try:
        return hll.registers(v)
    except hll.Invalid as e:
        raise CommandError(str(e)) from None


@command("pfadd", -2, "write denyoom fast", H, "Adds the specified elements to a HyperLogLog")
def pfadd(c: Any, argv: list[bytes]) -> Any:
    v = _hll(c, argv[1])
    created = v is None
    if v is None:
        b = hll.empty_dense()
    elif v[4] == hll.DENSE:
        b = bytearray(v)
    else:
        b = bytearray(hll.dense(_regs(v)))
    changed = False
    setreg = hll.set_dense_register
    pat = hll.pat_len
    for ele in argv[2:]:
        index, n = pat(ele)
        if setreg(b, index, n):
            changed = True
    if changed or created:
        if changed:
            hll.set_cache(b, None)
        c.store.set(argv[1], bytes(b), keepttl=True)
        return 1
    return 0


@command(
    "pfcount",
    -2,
    "readonly may-replicate",
    H,
    "Return the approximated cardinality",
    keys=(1, -1, 1),
)
def pfcount(c: Any, argv: list[bytes]) -> Any:
    if len(argv) == 2:
        v = _hll(c, argv[1])
        if v is None:
            return 0
        card = hll.cached(v)
        if card is not None:
            return card
        card = hll.count(_regs(v))
        b = bytearray(v)
        hll.set_cache(b, card)
        c.store.set(argv[1], bytes(b), keepttl=True)
        return card
    merged = bytearray(hll.REGISTERS)
    for key in argv[1:]:
        v = _hll(c, key)
        if v is None:
            continue
        _max_into(merged, _regs(v))
    return hll.count(merged)


def _max_into(into: bytearray, regs: bytearray) -> None:
    if any(regs):
        into[:] = bytes(map(max, into, regs))


@command(
    "pfmerge",
    -2,
    "write denyoom",
    H,
    "Merge N different HyperLogLogs into a single one",
    keys=(1, -1, 1),
)
def pfmerge(c: Any, argv: list[bytes]) -> Any:
    merged = bytearray(hll.REGISTERS)
    values = [_hll(c, key) for key in argv[1:]]
    for v in values:
        if v is not None:
            _max_into(merged, _regs(v))
    c.store.set(argv[1], hll.dense(merged), keepttl=True)
    return OK
