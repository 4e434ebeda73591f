"""
INCRBYFLOAT's arithmetic, done as Redis does it: in C C{long double} (strtold, add,
C{"%.17Lf"} with trailing zeros removed), through ctypes and the C library, so the
digits match Redis's byte for byte. Falls back to L{decimal} where ctypes has no
C{long double} arithmetic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from decimal import Decimal, InvalidOperation, localcontext

MAX_CHARS = 5 * 1024


class _LD(ctypes.c_longdouble):
    """A subclass, so ctypes hands back the C value instead of a Python float."""


try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)  # strtold sets ERANGE
    _libm = ctypes.CDLL(ctypes.util.find_library("m"))
    _libc.strtold.restype = _LD
    _libc.strtold.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    _libm.fmal.restype = _LD
    _libm.fmal.argtypes = [_LD, _LD, _LD]
    _libc.snprintf.restype = ctypes.c_int
    _fpclassify = _libm.__fpclassifyl  # glibc: FP_INFINITE 1, FP_ZERO 2
    _fpclassify.restype = ctypes.c_int
    _fpclassify.argtypes = [_LD]
    _HAVE_C = True
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _HAVE_C = False


def _parse_c(s: bytes) -> _LD | None:
    if not s or len(s) >= MAX_CHARS or s[0] in b" \t\n\v\f\r" or b"\0" in s:
        return None
    end = ctypes.c_char_p()
    buf = ctypes.create_string_buffer(s)
    ctypes.set_errno(0)
    v = _libc.strtold(buf, ctypes.byref(end))
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buf)  # type: ignore[operator]
    if consumed != len(s) or math.isnan(v.value):
        return None
    # Redis's string2ld: ERANGE is an error for an overflow or an underflow to zero
    # (a denormal result is kept)
    if ctypes.get_errno() == 34 and _fpclassify(v) in (1, 2):
        return None
    return v


def _format_c(v: _LD) -> bytes:
    buf = ctypes.create_string_buffer(MAX_CHARS + 64)
    n = _libc.snprintf(buf, len(buf), b"%.17Lf", v)
    out = buf.raw[:n]
    if b"." in out:
        out = out.rstrip(b"0").rstrip(b".")
    return b"0" if out == b"-0" else out


def incr_float(current: bytes, incr: bytes) -> bytes | str:
    """
    C{current + incr} as Redis's INCRBYFLOAT prints it, or an error text naming
    which side is wrong ("value" or "result").
    """
    if _HAVE_C:
        a = _parse_c(current)
        b = _parse_c(incr)
        if a is None or b is None:
            return "value"
        r = _libm.fmal(a, _LD(1.0), b)
        out = _format_c(r)
        if out[-3:] in (b"inf", b"nan"):
            return "result"
        return out
    try:  # pragma: no cover - fallback
        with localcontext() as ctx:
            ctx.prec = 19
            da, db = Decimal(current.decode()), Decimal(incr.decode())
            if not (da.is_finite() and db.is_finite()):
                return "value" if da.is_nan() or db.is_nan() else "result"
            r = da + db
            out = f"{r:.17f}".encode()
            out = out.rstrip(b"0").rstrip(b".")
            return b"0" if out == b"-0" else out
    except (InvalidOperation, UnicodeDecodeError, ValueError):  # pragma: no cover
        return "value"


def valid_float(s: bytes) -> bool:
    """Whether Redis's C{string2ld} accepts C{s}."""
    if _HAVE_C:
        return _parse_c(s) is not None
    try:  # pragma: no cover
        return Decimal(s.decode()).is_finite()
    except (InvalidOperation, UnicodeDecodeError):  # pragma: no cover
        return False


def parse(s: bytes) -> float | None:
    """C{s} as Redis's C{string2ld} reads it (then as a float), or None."""
    if _HAVE_C:
        v = _parse_c(s)
        return None if v is None else float(v.value)
    try:  # pragma: no cover
        d = Decimal(s.decode())
        return None if d.is_nan() else float(d)
    except (InvalidOperation, UnicodeDecodeError):  # pragma: no cover
        return None
