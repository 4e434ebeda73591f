"""HyperLogLog commands: PFADD PFCOUNT PFMERGE (the value is a Redis-compatible string)."""

from __future__ import annotations

from typing import Any

from portsuite_services.kv import bigwork, hll, notify
from portsuite_services.kv.commands import NO_REPLY, CommandError, command, wrongtype
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


class _Target:
    """The HLL string being changed: sparse while it can be, dense once promoted."""

    def __init__(self, v: bytes):
        self.sparse: hll.Sparse | None = None
        self.dense: bytearray | None = None
        try:
            if v[4] == hll.DENSE:
                self.dense = bytearray(v)
            else:
                self.sparse = hll.sparse_of(v)
        except hll.Invalid as e:
            raise CommandError(str(e)) from None

    def promote(self) -> bytearray:
        assert self.sparse is not None
        self.dense = hll.sparse_to_dense(self.sparse)
        self.sparse = None
        return self.dense

    def set(self, index: int, count: int) -> bool:
        if self.sparse is not None:
            r = self.sparse.set(index, count)
            if r >= 0:
                return r == 1
            self.promote()
        assert self.dense is not None
        return hll.set_dense_register(self.dense, index, count)

    def value(self, changed: bool) -> bytes:
        if self.sparse is not None:
            if changed:
                self.sparse.header[15] |= 0x80
            out = self.sparse.to_bytes()
            hll.remember(out, self.sparse)
            return out
        assert self.dense is not None
        if changed:
            hll.set_cache(self.dense, None)
        return bytes(self.dense)


@command("pfadd", -2, "write denyoom fast", H, "Adds the specified elements to a HyperLogLog")
def pfadd(c: Any, argv: list[bytes]) -> Any:
    v = _hll(c, argv[1])
    created = v is None
    # (a million elements: hashed in slices, each costs a microsecond or two)
    made = bigwork.compute(c, argv, 4 * len(argv), lambda: _added(v, argv))
    if made is NO_REPLY:
        return made
    t, changed = made
    if changed or created:
        c.store.set_raw(argv[1], t.value(True), keepttl=True)
        return 1
    if v is not None and t.sparse is not None:
        hll.remember(v, t.sparse)  # unchanged: still the stored value, parsed
    return 0


def _added(v: bytes | None, argv: list[bytes]) -> bigwork.Steps[tuple[_Target, bool]]:
    """PFADD's new value (and whether a register changed): C{argv[2:]} added to C{v}."""
    t = _Target(hll.empty_sparse() if v is None else v)
    changed = False
    pat = hll.pat_len
    for lo in range(2, len(argv), bigwork.PIECE):
        for ele in argv[lo : lo + bigwork.PIECE]:
            index, n = pat(ele)
            if t.set(index, n):
                changed = True
        yield
    return t, changed


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
            notify.missed(c, argv[1])
            return 0
        card = hll.cached(v)
        if card is not None:
            return card
        card = hll.count(_regs(v))
        b = bytearray(v)
        hll.set_cache(b, card)
        c.store.set_raw(argv[1], bytes(b), keepttl=True)
        return card
    got = _merged(c, argv, argv[1:])
    return got if got is NO_REPLY else hll.count(got[0])


KEY_WORK = 1024  # a key merged costs about as much as this many elements (bigwork)
KEYS_A_STEP = 8  # keys merged a step (a third of a millisecond each)


def _merged(c: Any, argv: list[bytes], keys: list[bytes]) -> Any:
    """
    The registers of C{keys} merged, and whether one was dense: at once for a few
    keys, else in slices (bigwork: a thousand keys took two seconds, 0.3 now), C{NO_REPLY} then.
    """
    return bigwork.compute(c, argv, len(keys) * KEY_WORK, lambda: _merge_steps(c, keys))


def _merge_steps(c: Any, keys: list[bytes]) -> bigwork.Steps[tuple[bytearray, bool]]:
    """Each key checked and merged in turn, as Redis does (the first error is the reply)."""
    merged = bytearray(hll.REGISTERS)
    dense = False
    for i, key in enumerate(keys):
        v = _hll(c, key)
        if v is None:
            notify.missed(c, key)  # (as Redis looks it up: before a WRONGTYPE after it too)
        else:
            if v[4] == hll.DENSE:
                dense = True
            _max_into(merged, _regs(v))
        if i % KEYS_A_STEP == KEYS_A_STEP - 1:
            yield
    return merged, dense


_HIGH = int.from_bytes(b"\x80" * hll.REGISTERS, "little")
_ALL = int.from_bytes(b"\xff" * hll.REGISTERS, "little")


def _max_into(into: bytearray, regs: bytearray) -> None:
    """
    C{into[i] = max(into[i], regs[i])} for every register, on two big ints a byte a
    lane (registers are under 64: C{(a | 0x80) - b} never borrows from the next lane,
    and its high bit says C{a >= b}): 0.3 ms where C{map(max, ...)} took 2-7.
    """
    if any(regs):
        a = int.from_bytes(into, "little")
        b = int.from_bytes(regs, "little")
        a_ge = (((a | _HIGH) - b) & _HIGH) >> 7
        mask = a_ge * 0xFF
        into[:] = ((a & mask) | (b & (_ALL ^ mask))).to_bytes(hll.REGISTERS, "little")


@command(
    "pfmerge",
    -2,
    "write denyoom",
    H,
    "Merge N different HyperLogLogs into a single one",
    keys=(1, -1, 1),
)
def pfmerge(c: Any, argv: list[bytes]) -> Any:
    got = _merged(c, argv, argv[1:])
    if got is NO_REPLY:
        return got
    merged, use_dense = got
    v = _hll(c, argv[1])
    t = _Target(hll.empty_sparse() if v is None else v)
    if use_dense and t.sparse is not None:
        t.promote()
    for j, r in enumerate(merged):
        if r:
            t.set(j, r)
    c.store.set_raw(argv[1], t.value(True), keepttl=True)
    c.touched = [argv[1]]
    return OK
