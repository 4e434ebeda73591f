"""
MySQL's column types as the protocol shows them: from a declared type (sqlglot's
C{DataType}) to the column-definition fields (type code, length, decimals, flags,
character set), and a value's text form (DECIMAL with its scale, DATETIME…).
"""

from __future__ import annotations

import datetime
import struct
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import attrs
from sqlglot import exp

from portsuite_services.sql import packets as P

DT = exp.DataType.Type

_INTS = {
    DT.TINYINT: (P.T_TINY, 4, False),
    DT.UTINYINT: (P.T_TINY, 3, True),
    DT.SMALLINT: (P.T_SHORT, 6, False),
    DT.USMALLINT: (P.T_SHORT, 5, True),
    DT.MEDIUMINT: (P.T_INT24, 9, False),
    DT.UMEDIUMINT: (P.T_INT24, 8, True),
    DT.INT: (P.T_LONG, 11, False),
    DT.UINT: (P.T_LONG, 10, True),
    DT.BIGINT: (P.T_LONGLONG, 20, False),
    DT.UBIGINT: (P.T_LONGLONG, 20, True),
    DT.BOOLEAN: (P.T_TINY, 1, False),
}
INT_RANGES = {
    DT.TINYINT: (-128, 127),
    DT.UTINYINT: (0, 255),
    DT.SMALLINT: (-32768, 32767),
    DT.USMALLINT: (0, 65535),
    DT.MEDIUMINT: (-8388608, 8388607),
    DT.UMEDIUMINT: (0, 16777215),
    DT.INT: (-2147483648, 2147483647),
    DT.UINT: (0, 4294967295),
    DT.BIGINT: (-(2**63), 2**63 - 1),
    DT.UBIGINT: (0, 2**64 - 1),
    DT.BOOLEAN: (-128, 127),
}
_STRINGS = {DT.VARCHAR, DT.NVARCHAR, DT.CHAR, DT.NCHAR}
_TEXTS = {DT.TEXT, DT.TINYTEXT, DT.MEDIUMTEXT, DT.LONGTEXT}
_BLOBS = {DT.BLOB, DT.TINYBLOB, DT.MEDIUMBLOB, DT.LONGBLOB, DT.VARBINARY, DT.BINARY}


@attrs.define
class Column:
    """One column definition of a result set."""

    name: str
    type: int = P.T_VAR_STRING
    length: int = 1024
    decimals: int = 0x1F
    flags: int = 0
    charset: int = P.CHARSET_UTF8MB4
    table: str = ""
    org_table: str = ""
    org_name: str = ""
    db: str = ""
    cached: bytes | None = attrs.field(default=None, eq=False, repr=False)

    def packet(self) -> bytes:
        """The column definition packet (computed once: cached result sets reuse it)."""
        if self.cached is None:
            self.cached = self._packet()
        return self.cached

    def _packet(self) -> bytes:
        s = P.lenenc_str
        return (
            s(b"def")
            + s(self.db.encode())
            + s(self.table.encode())
            + s(self.org_table.encode())
            + s(self.name.encode("utf-8", "replace"))
            + s(self.org_name.encode("utf-8", "replace"))
            + b"\x0c"
            + struct.pack("<HIBHB", self.charset, self.length, self.type, self.flags, self.decimals)
            + b"\0\0"
        )


def params(dtype: exp.DataType) -> list[int]:
    out = []
    for p in dtype.expressions:
        node = p.this if isinstance(p, exp.DataTypeParam) else p
        if isinstance(node, exp.Literal) and not node.is_string:
            try:
                out.append(int(node.this))
            except ValueError:
                pass
    return out


def column_for(name: str, dtype: exp.DataType | None, **where: Any) -> Column:
    """The column definition of a declared or inferred type (None: unknown yet)."""
    col = Column(name=name, **where)
    if dtype is None:
        return col
    t = dtype.this
    if t in _INTS:
        col.type, col.length, unsigned = _INTS[t]
        col.decimals = 0
        col.flags |= P.NUM_FLAG | (P.UNSIGNED_FLAG if unsigned else 0)
        col.charset = P.CHARSET_BINARY
        if t == DT.BOOLEAN:
            col.length = 1
    elif t in (DT.DECIMAL, DT.UDECIMAL, DT.BIGDECIMAL):
        p = params(dtype) or [10, 0]
        precision, scale = (p + [0])[:2]
        col.type = P.T_NEWDECIMAL
        col.decimals = scale
        col.length = precision + (1 if scale else 0) + 1
        col.flags |= P.NUM_FLAG
        col.charset = P.CHARSET_BINARY
    elif t in (DT.FLOAT,):
        col.type, col.length, col.decimals = P.T_FLOAT, 12, 31
        col.flags |= P.NUM_FLAG
        col.charset = P.CHARSET_BINARY
    elif t in (DT.DOUBLE,):
        col.type, col.length, col.decimals = P.T_DOUBLE, 22, 31
        col.flags |= P.NUM_FLAG
        col.charset = P.CHARSET_BINARY
    elif t in _STRINGS:
        p = params(dtype) or [255]
        col.type = P.T_STRING if t in (DT.CHAR, DT.NCHAR) else P.T_VAR_STRING
        col.length = p[0] * 4
        col.decimals = 0
    elif t in _TEXTS:
        col.type = P.T_BLOB
        col.length = {DT.TINYTEXT: 255, DT.TEXT: 65535, DT.MEDIUMTEXT: 16777215}.get(t, 0xFFFFFFFF)
        col.length = min(col.length * 4, 0xFFFFFFFF)
        col.flags |= P.BLOB_FLAG
        col.decimals = 0
    elif t in _BLOBS:
        col.type = P.T_BLOB if t not in (DT.VARBINARY, DT.BINARY) else P.T_VAR_STRING
        col.length = (params(dtype) or [65535])[0]
        col.flags |= P.BLOB_FLAG | P.BINARY_FLAG
        col.charset = P.CHARSET_BINARY
        col.decimals = 0
    elif t == DT.DATE:
        col.type, col.length, col.decimals, col.charset = P.T_DATE, 10, 0, P.CHARSET_BINARY
        col.flags |= P.BINARY_FLAG
    elif t in (DT.DATETIME, DT.TIMESTAMP, DT.TIMESTAMPTZ, DT.TIMESTAMPLTZ):
        col.type = P.T_TIMESTAMP if t != DT.DATETIME else P.T_DATETIME
        col.length, col.decimals, col.charset = 19, 0, P.CHARSET_BINARY
        col.flags |= P.BINARY_FLAG
    elif t == DT.TIME:
        col.type, col.length, col.decimals, col.charset = P.T_TIME, 10, 0, P.CHARSET_BINARY
        col.flags |= P.BINARY_FLAG
    elif t == DT.YEAR:
        col.type, col.length, col.decimals, col.charset = P.T_YEAR, 4, 0, P.CHARSET_BINARY
        col.flags |= P.NUM_FLAG | 64  # ZEROFILL
    elif t == DT.ENUM:
        col.type, col.length, col.decimals = (
            P.T_STRING,
            4 * max((len(str(e.this)) for e in dtype.expressions), default=1),
            0,
        )
        col.flags |= 256  # ENUM_FLAG
    elif t == DT.JSON:
        col.type, col.length, col.decimals = P.T_BLOB, 0xFFFFFFFF, 0
        col.flags |= P.BLOB_FLAG
    elif t == DT.NULL:
        col.type, col.length, col.decimals, col.charset = P.T_NULL, 0, 0, P.CHARSET_BINARY
    return col


def column_from_value(col: Column, value: Any) -> None:
    """Fill in an unknown column's type from its first non-NULL value."""
    if isinstance(value, bool) or isinstance(value, int):
        col.type, col.length, col.decimals = P.T_LONGLONG, 21, 0
        col.flags |= P.NUM_FLAG
        col.charset = P.CHARSET_BINARY
    elif isinstance(value, float):
        col.type, col.length, col.decimals = P.T_DOUBLE, 23, 31
        col.flags |= P.NUM_FLAG
        col.charset = P.CHARSET_BINARY
    elif isinstance(value, (bytes, bytearray, memoryview)):
        col.type, col.length, col.decimals = P.T_BLOB, 65535, 0
        col.flags |= P.BLOB_FLAG | P.BINARY_FLAG
        col.charset = P.CHARSET_BINARY
    else:
        col.type, col.decimals = P.T_VAR_STRING, 0
        col.length = max(col.length, 4 * len(str(value)))


def format_double(v: float) -> str:
    if v != v or v in (float("inf"), float("-inf")):
        return "NULL"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    text = repr(v)
    if "e" in text:
        mant, _, ex = text.partition("e")
        sign = "-" if ex.startswith("-") else ""
        text = f"{mant}e{sign}{ex.lstrip('+-')}"
    return text


def decimal_text(value: Any, scale: int) -> str:
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        return str(value)
    q = Decimal(1).scaleb(-scale)
    return str(d.quantize(q, rounding=ROUND_HALF_UP))


def text_value(col: Column, value: Any) -> bytes:
    """A value as the text protocol sends it, in the column's type's format."""
    t = col.type
    if t == P.T_NEWDECIMAL:
        return decimal_text(value, col.decimals).encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, float):
        if t in (P.T_LONG, P.T_LONGLONG, P.T_SHORT, P.T_TINY, P.T_INT24) and value == int(value):
            return str(int(value)).encode()
        if t == P.T_FLOAT:
            return format_double(float(f"{value:.6g}")).encode()
        return format_double(value).encode()
    if t == P.T_DATETIME or t == P.T_TIMESTAMP:
        s = str(value)
        if len(s) == 10:
            s += " 00:00:00"
        return s.replace("T", " ").encode()
    if t in (P.T_DOUBLE, P.T_FLOAT) and isinstance(value, int):
        return str(value).encode()
    return str(value).encode("utf-8", "surrogateescape")


def _datetime_binary(value: Any, with_time: bool) -> bytes:
    s = str(value).replace("T", " ")
    try:
        if len(s) <= 10:
            d = datetime.datetime.strptime(s, "%Y-%m-%d")
        else:
            d = datetime.datetime.fromisoformat(s)
    except ValueError:
        return b"\0"
    if not with_time:
        return struct.pack("<BHBB", 4, d.year, d.month, d.day)
    if d.microsecond:
        return struct.pack(
            "<BHBBBBBI", 11, d.year, d.month, d.day, d.hour, d.minute, d.second, d.microsecond
        )
    return struct.pack("<BHBBBBB", 7, d.year, d.month, d.day, d.hour, d.minute, d.second)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def binary_row(columns: list[Column], row: tuple[Any, ...]) -> bytes:
    """One row of the binary protocol (COM_STMT_EXECUTE's result set)."""
    n = len(columns)
    bitmap = bytearray((n + 7 + 2) // 8)
    out = []
    for i, (col, value) in enumerate(zip(columns, row, strict=False)):
        if value is None:
            bitmap[(i + 2) // 8] |= 1 << ((i + 2) % 8)
            continue
        t = col.type
        unsigned = bool(col.flags & P.UNSIGNED_FLAG)
        if t == P.T_LONGLONG:
            out.append(
                struct.pack(
                    "<Q" if unsigned else "<q",
                    _as_int(value) & (2**64 - 1)
                    if unsigned
                    else max(min(_as_int(value), 2**63 - 1), -(2**63)),
                )
            )
        elif t in (P.T_LONG, P.T_INT24):
            v = _as_int(value)
            out.append(
                struct.pack("<I", v & 0xFFFFFFFF)
                if unsigned
                else struct.pack("<i", max(min(v, 2**31 - 1), -(2**31)))
            )
        elif t in (P.T_SHORT, P.T_YEAR):
            out.append(
                struct.pack("<H", _as_int(value) & 0xFFFF)
                if unsigned
                else struct.pack("<h", max(min(_as_int(value), 32767), -32768))
            )
        elif t == P.T_TINY:
            out.append(
                struct.pack("<B", _as_int(value) & 0xFF)
                if unsigned
                else struct.pack("<b", max(min(_as_int(value), 127), -128))
            )
        elif t == P.T_DOUBLE:
            out.append(struct.pack("<d", _as_float(value)))
        elif t == P.T_FLOAT:
            out.append(struct.pack("<f", _as_float(value)))
        elif t == P.T_DATE:
            out.append(_datetime_binary(value, False))
        elif t in (P.T_DATETIME, P.T_TIMESTAMP):
            out.append(_datetime_binary(value, True))
        else:
            out.append(P.lenenc_str(text_value(col, value)))
    return b"\0" + bytes(bitmap) + b"".join(out)
