"""
MySQL's error codes, SQLSTATEs and message texts, and the mapping of SQLite's errors
onto them, so client libraries raise what they raise against MySQL or MariaDB
(PyMySQL's IntegrityError for 1062, ProgrammingError for 1146…).
"""

from __future__ import annotations

import re
import sqlite3


class MySQLError(Exception):
    """An error the client gets as an ERR packet."""

    def __init__(self, code: int, state: str, message: str):
        super().__init__(message)
        self.code = code
        self.state = state
        self.message = message


def syntax(near: str = "") -> MySQLError:
    near = near.strip()[:80]
    return MySQLError(
        1064,
        "42000",
        "You have an error in your SQL syntax; check the manual that corresponds to your "
        f"MySQL server version for the right syntax to use near '{near}' at line 1",
    )


def no_database() -> MySQLError:
    return MySQLError(1046, "3D000", "No database selected")


def unknown_database(name: str) -> MySQLError:
    return MySQLError(1049, "42000", f"Unknown database '{name}'")


def unknown_table(db: str, table: str) -> MySQLError:
    return MySQLError(1146, "42S02", f"Table '{db}.{table}' doesn't exist")


def access_denied(user: str, host: str, using_password: bool) -> MySQLError:
    using = "YES" if using_password else "NO"
    return MySQLError(
        1045, "28000", f"Access denied for user '{user}'@'{host}' (using password: {using})"
    )


def unsupported(what: str) -> MySQLError:
    return MySQLError(1235, "42000", f"This version of MySQL doesn't yet support '{what}'")


def interrupted() -> MySQLError:
    return MySQLError(
        3024,
        "HY000",
        "Query execution was interrupted, maximum statement execution time exceeded",
    )


_NO_TABLE = re.compile(r"no such table: (?:\w+\.)?(.+)")
_NO_COLUMN = re.compile(r"no such column: (.+)")
_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_NOT_NULL = re.compile(r"NOT NULL constraint failed: [^.]+\.(.+)")
_CHECK = re.compile(r"CHECK constraint failed: (.+)")
_EXISTS = re.compile(r"table (?:\"?\w+\"?\.)?\"?(\w+)\"? already exists")
_FUNCTION = re.compile(r"no such function: (.+)")
_AMBIGUOUS = re.compile(r"ambiguous column name: (.+)")
_NEAR = re.compile(r'near "(.*)": syntax error', re.S)


def from_sqlite(
    e: sqlite3.Error,
    db: str,
    verb: str = "",
    insert_columns: tuple[str, ...] | None = None,
    keys: dict[str, str] | None = None,
) -> MySQLError:
    """
    The MySQL error for a SQLite error. C{verb} is the statement's first word (a foreign
    key failure on DELETE is 1451, on INSERT 1452); C{insert_columns} the INSERT's column
    list (a NOT NULL column left out is 1364, not 1048); C{keys} maps SQLite's
    "table.col" of a UNIQUE failure to MySQL's key name.
    """
    text = str(e)
    if isinstance(e, sqlite3.OperationalError) and text == "interrupted":
        return interrupted()
    m = _NO_TABLE.match(text)
    if m:
        table = m.group(1)
        if verb == "DROP":
            return MySQLError(1051, "42S02", f"Unknown table '{db}.{table}'")
        return unknown_table(db, table)
    m = _NO_COLUMN.match(text)
    if m:
        where = "field list" if verb in ("SELECT", "INSERT", "") else "where clause"
        return MySQLError(1054, "42S22", f"Unknown column '{m.group(1)}' in '{where}'")
    m = _UNIQUE.match(text)
    if m:
        key = (keys or {}).get(m.group(1), m.group(1).split(".")[-1])
        return MySQLError(1062, "23000", f"Duplicate entry for key '{key}'")
    m = _NOT_NULL.match(text)
    if m:
        col = m.group(1)
        if insert_columns is not None and col.lower() not in insert_columns:
            return MySQLError(1364, "HY000", f"Field '{col}' doesn't have a default value")
        return MySQLError(1048, "23000", f"Column '{col}' cannot be null")
    m = _CHECK.match(text)
    if m:
        name = m.group(1)
        kind, _, col = name.partition("__")[2].partition("_")
        if name.startswith("__type_"):
            return MySQLError(
                1366, "22007", f"Incorrect {col and 'value'} value for column '{col}' at row 1"
            )
        if name.startswith("__len_"):
            return MySQLError(1406, "22001", f"Data too long for column '{col}' at row 1")
        if name.startswith("__range_"):
            return MySQLError(1264, "22003", f"Out of range value for column '{col}' at row 1")
        if name.startswith("__enum_"):
            return MySQLError(1265, "01000", f"Data truncated for column '{col}' at row 1")
        return MySQLError(4025, "23000", f"CONSTRAINT `{name}` failed for `{db}`")
    if text.startswith("FOREIGN KEY constraint failed"):
        if verb == "DELETE" or verb == "DROP":
            return MySQLError(
                1451,
                "23000",
                "Cannot delete or update a parent row: a foreign key constraint fails",
            )
        return MySQLError(
            1452, "23000", "Cannot add or update a child row: a foreign key constraint fails"
        )
    m = _EXISTS.match(text)
    if m:
        return MySQLError(1050, "42S01", f"Table '{m.group(1)}' already exists")
    m = _FUNCTION.match(text)
    if m:
        return MySQLError(1305, "42000", f"FUNCTION {db}.{m.group(1)} does not exist")
    m = _AMBIGUOUS.match(text)
    if m:
        return MySQLError(1052, "23000", f"Column '{m.group(1)}' in field list is ambiguous")
    m = _NEAR.match(text)
    if m:
        return syntax(m.group(1))
    if "syntax error" in text or "incomplete input" in text:
        return syntax()
    if "database is locked" in text or "database table is locked" in text:
        return MySQLError(1205, "HY000", "Lock wait timeout exceeded; try restarting transaction")
    if "cannot start a transaction within a transaction" in text:
        return MySQLError(
            1400, "25000", "You are not allowed to execute this command in a transaction"
        )
    if "no transaction is active" in text:
        return MySQLError(1305, "42000", "SAVEPOINT does not exist")
    if "too many terms" in text or "too many columns" in text:
        return MySQLError(1117, "HY000", "Too many columns")
    return MySQLError(1105, "HY000", text)
