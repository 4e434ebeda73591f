"""
MySQL functions that SQLite lacks and sqlglot leaves as they are, as SQLite
user functions (NOW(), MD5(), LPAD(), the REGEXP operator…).
"""

from __future__ import annotations

import datetime
import hashlib
import re
import sqlite3
import uuid
from typing import Any


def _dt(v: Any) -> datetime.datetime | None:
    if v is None:
        return None
    s = str(v).replace("T", " ")
    try:
        if len(s) <= 10:
            return datetime.datetime.strptime(s, "%Y-%m-%d")
        return datetime.datetime.fromisoformat(s)
    except ValueError:
        return None


def _dt_format(v: Any, fmt: str) -> str | None:
    d = _dt(v)
    return None if d is None else d.strftime(fmt)


def _part(attr: str) -> Any:
    def f(v: Any) -> Any:
        d = _dt(v)
        return None if d is None else getattr(d, attr)

    return f


def _now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _unix(v: Any = None) -> Any:
    if v is None:
        return int(datetime.datetime.now().timestamp())
    d = _dt(v)
    return None if d is None else int(d.timestamp())


def _hash(name: str) -> Any:
    def f(v: Any) -> Any:
        if v is None:
            return None
        data = v if isinstance(v, bytes) else str(v).encode()
        return hashlib.new(name, data).hexdigest()

    return f


def _sha2(v: Any, bits: Any) -> Any:
    if v is None:
        return None
    name = {224: "sha224", 256: "sha256", 0: "sha256", 384: "sha384", 512: "sha512"}.get(
        int(bits or 0)
    )
    return None if name is None else _hash(name)(v)


def _nulls(f: Any) -> Any:
    def g(*args: Any) -> Any:
        if any(a is None for a in args):
            return None
        return f(*args)

    return g


def _lpad(s: Any, n: Any, pad: Any) -> Any:
    s, n, pad = str(s), int(n), str(pad)
    if len(s) >= n:
        return s[:n]
    if not pad:
        return None
    fill = (pad * n)[: n - len(s)]
    return fill + s


def _rpad(s: Any, n: Any, pad: Any) -> Any:
    s, n, pad = str(s), int(n), str(pad)
    if len(s) >= n:
        return s[:n]
    if not pad:
        return None
    return s + (pad * n)[: n - len(s)]


def _concat_ws(sep: Any, *args: Any) -> Any:
    if sep is None:
        return None
    return str(sep).join(str(a) for a in args if a is not None)


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _regexp(pattern: Any, value: Any) -> Any:
    if pattern is None or value is None:
        return None
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        if len(_REGEX_CACHE) > 256:
            _REGEX_CACHE.clear()
        rx = _REGEX_CACHE[pattern] = re.compile(str(pattern), re.I)
    return 1 if rx.search(str(value)) else 0


class _FirstBy:
    """C{FIRST_BY(value, order)}: the value of the row with the smallest C{order}."""

    def __init__(self) -> None:
        self.value: Any = None
        self.order: Any = None

    def step(self, *args: Any) -> None:  # (value, order): typeshed knows 1-argument steps
        value, order = args
        if self.order is None or (order is not None and order < self.order):
            self.value, self.order = value, order

    def finalize(self) -> Any:
        return self.value


def install(conn: sqlite3.Connection) -> None:
    """Define the MySQL functions on one SQLite connection."""
    conn.create_aggregate("FIRST_BY", 2, _FirstBy)
    fn = conn.create_function
    fn("NOW", 0, _now)
    fn("SYSDATE", 0, _now)
    fn("CURRENT_TIMESTAMP", 0, _now)
    fn("LOCALTIME", 0, _now)
    fn("UNIX_TIMESTAMP", 0, _unix)
    fn("UNIX_TIMESTAMP", 1, _unix)
    for name, attr in (
        ("YEAR", "year"),
        ("MONTH", "month"),
        ("DAY", "day"),
        ("DAYOFMONTH", "day"),
        ("HOUR", "hour"),
        ("MINUTE", "minute"),
        ("SECOND", "second"),
    ):
        fn(name, 1, _part(attr), deterministic=True)
    fn("MD5", 1, _hash("md5"), deterministic=True)
    fn("SHA1", 1, _hash("sha1"), deterministic=True)
    fn("SHA", 1, _hash("sha1"), deterministic=True)
    fn("SHA2", 2, _sha2, deterministic=True)
    fn("LEFT", 2, _nulls(lambda s, n: str(s)[: max(int(n), 0)]), deterministic=True)
    fn("RIGHT", 2, _nulls(lambda s, n: str(s)[-int(n) :] if int(n) > 0 else ""), deterministic=True)
    fn("LPAD", 3, _nulls(_lpad), deterministic=True)
    fn("RPAD", 3, _nulls(_rpad), deterministic=True)
    fn("REPEAT", 2, _nulls(lambda s, n: str(s) * min(max(int(n), 0), 1 << 20)), deterministic=True)
    fn("REVERSE", 1, _nulls(lambda s: str(s)[::-1]), deterministic=True)
    fn("CONCAT_WS", -1, _concat_ws, deterministic=True)
    fn("CONCAT", -1, _nulls(lambda *a: "".join(str(x) for x in a)), deterministic=True)
    fn("UUID", 0, lambda: str(uuid.uuid1()))
    fn("REGEXP", 2, _regexp, deterministic=True)
    fn(
        "MONTHNAME",
        1,
        lambda v: _dt_format(v, "%B"),
        deterministic=True,
    )
    fn(
        "DAYNAME",
        1,
        lambda v: _dt_format(v, "%A"),
        deterministic=True,
    )
