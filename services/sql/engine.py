"""
The SQL side: one L{Session} per client, its own SQLite connection, MySQL's dialect
translated by sqlglot; what SQLite has no statement for (SHOW, DESCRIBE, USE, CREATE
DATABASE, @@variables, information_schema) answered here.

Every method of a session runs on a worker thread, never on the reactor's: SQLite
releases the GIL while it works, and a statement past C{max_execution_time} is
interrupted by the progress handler (MySQL's error 3024).

Storage: one SQLite file per database (C{NAME.db}) in the data folder, in WAL mode
with C{synchronous = FULL}, so a statement is acknowledged only once SQLite has
committed it to the disk. Each database keeps its tables' MySQL definitions (types,
AUTO_INCREMENT, keys) in a table of its own, C{_portsuite_tables}, hidden from SHOW.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeGuard, cast

import attrs
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from portsuite_services.sql import errors as E
from portsuite_services.sql import functions
from portsuite_services.sql import packets as P
from portsuite_services.sql.errors import MySQLError
from portsuite_services.sql.types import INT_RANGES, Column, column_for, column_from_value, params

logging.getLogger("sqlglot").setLevel(logging.ERROR)

DT = exp.DataType.Type
META = "_portsuite_tables"
VERSION = "8.0.36-portsuite"
NAME_RE = re.compile(r"^[A-Za-z0-9_$]{1,64}$")
SYSTEM_DBS = ("information_schema",)
MAX_ROWS = 1_000_000  # rows of one result set held in memory


@attrs.define
class Result:
    """What one statement gives the client: a result set, or an OK."""

    columns: list[Column] | None = None
    rows: list[tuple[Any, ...]] = attrs.field(factory=list)
    affected: int = 0
    last_id: int = 0
    info: str = ""
    warnings: int = 0


@attrs.define
class TableDef:
    name: str
    columns: list[tuple[str, exp.DataType, exp.ColumnDef]]
    keys: dict[str, str]  # column (lower) -> PRI / UNI / MUL
    auto: str | None
    ddl: str
    index_names: dict[str, str]  # "table.col,col" -> MySQL key name


class Catalog:
    """The databases of one sql service: files in a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.Lock()
        # the highest AUTO_INCREMENT value handed out, per (database, table): as in
        # InnoDB, a rolled-back insert does not give its id back
        self.high: dict[tuple[str, str], int] = {}
        # bumped by every CREATE/DROP of any session: cached translations are then stale
        self.ddl_count = 0

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.db"

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.db") if NAME_RE.match(p.stem))

    def exists(self, name: str) -> bool:
        if not NAME_RE.match(name):
            return False
        # case-insensitive names, as MySQL on macOS/Windows (lower_case_table_names)
        return any(n.lower() == name.lower() for n in self.names())

    def canonical(self, name: str) -> str:
        for n in self.names():
            if n.lower() == name.lower():
                return n
        return name

    def create(self, name: str) -> None:
        with self.lock:
            conn = sqlite3.connect(self.path(name))
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY COLLATE NOCASE, ddl TEXT NOT NULL)"
                )
                conn.commit()
            finally:
                conn.close()

    def drop(self, name: str) -> None:
        with self.lock:
            for suffix in ("", "-wal", "-shm", "-journal"):
                p = Path(str(self.path(name)) + suffix)
                p.unlink(missing_ok=True)


@attrs.define
class Settings:
    max_execution_time: float = 0.0
    max_rows: int = MAX_ROWS


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _split(sql: str) -> list[str]:
    """Statements of a multi-statement query, cut at top-level semicolons."""
    try:
        tokens = sqlglot.tokenize(sql, read="mysql")
    except (TokenError, SqlglotError):
        return [sql]
    out = []
    start = 0
    for tok in tokens:
        if tok.token_type.name == "SEMICOLON":
            out.append(sql[start : tok.start])
            start = tok.end + 1
    out.append(sql[start:])
    return [s for s in out if s.strip()] or [""]


def _projection_texts(sql: str) -> list[str]:
    """The source text of each select expression of the outermost SELECT (MySQL's names)."""
    try:
        tokens = sqlglot.tokenize(sql, read="mysql")
    except (TokenError, SqlglotError):
        return []
    depth = 0
    texts: list[str] = []
    begin = None
    for tok in tokens:
        name = tok.token_type.name
        if begin is None:
            if name == "SELECT" and depth == 0:
                begin = tok.end + 1
            elif name == "L_PAREN":
                depth += 1
            elif name == "R_PAREN":
                depth -= 1
            continue
        if name == "L_PAREN":
            depth += 1
        elif name == "R_PAREN":
            depth -= 1
        elif depth == 0 and name in ("COMMA",):
            texts.append(sql[begin : tok.start])
            begin = tok.end + 1
        elif depth == 0 and name in (
            "FROM",
            "WHERE",
            "GROUP_BY",
            "HAVING",
            "ORDER_BY",
            "LIMIT",
            "UNION",
            "INTO",
            "SEMICOLON",
            "FOR",
            "WINDOW",
        ):
            texts.append(sql[begin : tok.start])
            return [t.strip() for t in texts]
        elif (
            depth == 0 and name == "DISTINCT" and not texts and sql[begin : tok.start].strip() == ""
        ):
            begin = tok.end + 1
    if begin is not None:
        texts.append(sql[begin:])
    return [t.strip() for t in texts]


class Session:
    """One client's SQL session: its SQLite connection, database, transaction, variables."""

    def __init__(self, catalog: Catalog, settings: Settings, conn_id: int, user: str, host: str):
        self.catalog = catalog
        self.settings = settings
        self.conn_id = conn_id
        self.user = user
        self.host = host
        self.db: str | None = None
        self.conn = self._open(None)
        self.autocommit = True
        self.last_insert_id = 0
        self.warnings: list[tuple[str, int, str]] = []
        self.row_count = -1
        self.variables: dict[str, Any] = {}
        self.deadline = 0.0
        self._tables: dict[str, TableDef] = {}
        self._schema_version = -1
        self._touched: set[str] = set()
        # translated SELECTs by their text (prepared statements run the same text again)
        self._cache: dict[str, tuple[str | None, int, str, list[Column]]] = {}
        self._volatile = False

    # -- connection ------------------------------------------------------------------

    def _open(self, db: str | None) -> sqlite3.Connection:
        path = ":memory:" if db is None else str(self.catalog.path(db))
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA case_sensitive_like = OFF")
        conn.set_progress_handler(self._progress, 10000)
        if db is not None:
            conn.execute("PRAGMA journal_mode = WAL")
        functions.install(conn)
        return conn

    def _progress(self) -> int:
        return 1 if self.deadline and time.monotonic() > self.deadline else 0

    def close(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.rollback()
            self.conn.close()
        except sqlite3.Error:
            pass

    def use(self, name: str) -> None:
        if name.lower() == "information_schema":
            name = "information_schema"
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = self._open(None)
            self.db = name
            self._tables = {}
            return
        if not self.catalog.exists(name):
            raise E.unknown_database(name)
        name = self.catalog.canonical(name)
        if name == self.db:
            return
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")
        self.conn.close()
        self.conn = self._open(name)
        self.db = name
        self._tables = {}
        self._schema_version = -1

    @property
    def status(self) -> int:
        s = P.SERVER_STATUS_AUTOCOMMIT if self.autocommit else 0
        try:
            if self.conn.in_transaction:
                s |= P.SERVER_STATUS_IN_TRANS
        except sqlite3.ProgrammingError:
            pass
        return s

    # -- table definitions -----------------------------------------------------------

    def tables(self) -> dict[str, TableDef]:
        if self.db is None or self.db == "information_schema":
            return {}
        version = self.conn.execute("PRAGMA schema_version").fetchone()[0]
        if version != self._schema_version:
            self._tables = {}
            try:
                rows = self.conn.execute(f"SELECT name, ddl FROM {META}").fetchall()
            except sqlite3.OperationalError:
                rows = []
            for name, ddl in rows:
                try:
                    self._tables[name.lower()] = _table_def(name, ddl)
                except SqlglotError:
                    continue
            self._schema_version = version
        return self._tables

    def table(self, name: str) -> TableDef | None:
        return self.tables().get(name.lower())

    def schema(self) -> dict[str, dict[str, str]]:
        return {
            t.name: {c: d.sql("mysql") for c, d, _ in t.columns} for t in self.tables().values()
        }

    # -- statements ------------------------------------------------------------------

    def statement(self, sql: str, args: tuple[Any, ...] = ()) -> Result:
        self.deadline = (
            time.monotonic() + self.settings.max_execution_time
            if self.settings.max_execution_time
            else 0.0
        )
        ddl = sql.lstrip()[:8].upper().startswith(("CREATE", "DROP", "ALTER", "TRUNCATE", "RENAME"))
        if ddl:
            self.catalog.ddl_count += 1
        try:
            result = self._statement(sql.strip().rstrip(";").strip(), args)
        finally:
            self.deadline = 0.0
            if ddl:
                self.catalog.ddl_count += 1
        return result

    def _statement(self, sql: str, args: tuple[Any, ...]) -> Result:
        if not sql:
            raise MySQLError(1065, "42000", "Query was empty")
        cached = self._cache.get(sql)
        if cached is not None and cached[0] == self.db and cached[1] == self.catalog.ddl_count:
            columns = cached[3]
            if any(c.decimals == 0x1F and c.type == P.T_VAR_STRING for c in columns):
                columns = [attrs.evolve(c) for c in columns]  # typed from values: per result
            return self._run_select(cached[2], columns, args)
        upper = sql.upper()
        if upper in ("BEGIN", "START TRANSACTION", "BEGIN WORK"):
            self._begin()
            return Result()
        if upper in ("COMMIT", "COMMIT WORK"):
            if self.conn.in_transaction:
                self._run("COMMIT")
            return Result()
        first = sql.split(None, 1)[0].upper().rstrip("(")
        if first == "REPLACE":
            try:
                tree = sqlglot.parse_one("INSERT" + sql[7:], read="mysql")
            except SqlglotError:
                raise E.syntax(sql[7:]) from None
            if not isinstance(tree, exp.Insert):
                raise E.syntax(sql[7:])
            rewritten = cast(exp.Insert, self._rewrite(tree))  # _rewrite keeps the root node
            return self.insert(rewritten, args, "INSERT", replace=True)
        if first in ("SHOW",):
            return self.show(sql)
        if first in ("DESCRIBE", "DESC") or (first == "EXPLAIN" and len(sql.split()) == 2):
            return self.describe(sql.split()[1].strip("`"))
        try:
            tree = sqlglot.parse_one(sql, read="mysql")
        except (ParseError, TokenError) as e:
            near = _near(sql, e)
            raise E.syntax(near) from None
        except SqlglotError:
            raise E.syntax(sql) from None
        if isinstance(tree, exp.Use):
            name = tree.this.name if tree.this is not None else ""
            self.use(name)
            return Result()
        if isinstance(tree, exp.Set):
            return self.set(tree)
        if isinstance(tree, exp.Transaction):
            self._begin()
            return Result()
        if isinstance(tree, exp.Commit):
            if self.conn.in_transaction:
                self._run("COMMIT")
            return Result()
        if isinstance(tree, exp.Rollback):
            if tree.args.get("savepoint"):
                self._run(f"ROLLBACK TO {_q(tree.args['savepoint'].name)}")
            elif self.conn.in_transaction:
                self._run("ROLLBACK")
            self._keep_ids()
            return Result()
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() in (
            "DATABASE",
            "SCHEMA",
        ):
            return self.create_database(tree.this.name, bool(tree.args.get("exists")))
        if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() in (
            "DATABASE",
            "SCHEMA",
        ):
            target = tree.this if tree.this is not None else (tree.args.get("tables") or [None])[0]
            if target is None:
                raise E.syntax(sql)
            return self.drop_database(target.name, bool(tree.args.get("exists")))
        if isinstance(tree, exp.Command):
            return self.command(sql, tree)
        if isinstance(tree, exp.Describe):
            return self.describe(tree.this.name)
        # parse_one is typed as sqlglot's Expr base; what it returns is an Expression
        return self.dml(sql, tree, args)  # type: ignore[arg-type]

    def _need_db(self) -> str:
        if self.db is None:
            raise E.no_database()
        return self.db

    def _begin(self) -> None:
        if self.conn.in_transaction:
            self._run("COMMIT")  # MySQL: BEGIN commits an open transaction
        self._run("BEGIN")

    def _implicit_begin(self) -> None:
        if (
            not self.autocommit
            and not self.conn.in_transaction
            and self.db not in (None, "information_schema")
        ):
            self._run("BEGIN")

    def _run(
        self, sql: str, args: tuple[Any, ...] = (), verb: str = "", insert_columns: Any = None
    ) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.Error as e:
            if self.db is None and str(e).startswith("no such table"):
                raise E.no_database() from None
            keys = {}
            for t in self.tables().values():
                keys.update(t.index_names)
            raise E.from_sqlite(e, self.db or "", verb, insert_columns, keys) from None

    # -- SET, SHOW, DESCRIBE, databases ---------------------------------------------

    def set(self, tree: exp.Set) -> Result:
        for item in tree.expressions:
            kind = (item.args.get("kind") or "").upper()
            if kind in ("NAMES", "CHARACTER SET", "CHARSET"):
                continue
            eq = item.this
            if not isinstance(eq, exp.EQ):
                continue
            target, value = eq.this, eq.expression
            name = target.name.lower() if hasattr(target, "name") else str(target).lower()
            val = self._constant(value)
            if (
                isinstance(target, exp.Parameter)
                and not isinstance(target, exp.SessionParameter)
                and str(target).startswith("@")
                and not str(target).startswith("@@")
            ):
                self.variables["@" + name] = val
                continue
            if name == "autocommit":
                on = str(val).upper() in ("1", "ON", "TRUE")
                if on and self.conn.in_transaction:
                    self._run("COMMIT")
                self.autocommit = on
            elif name == "max_execution_time":
                try:
                    self.settings = attrs.evolve(
                        self.settings, max_execution_time=float(val) / 1000.0
                    )
                except (TypeError, ValueError):
                    raise MySQLError(
                        1232, "42000", "Incorrect argument type to variable 'max_execution_time'"
                    ) from None
            elif name == "foreign_key_checks":
                self._run(
                    f"PRAGMA foreign_keys = {'ON' if str(val) not in ('0', 'OFF') else 'OFF'}"
                )
            else:
                self.variables["@@" + name] = val
        return Result()

    def _constant(self, value: exp.Expression) -> Any:
        if isinstance(value, exp.Literal):
            return value.this if value.is_string else _number(value.this)
        if isinstance(value, exp.Boolean):
            return 1 if value.this else 0
        if isinstance(value, exp.Null):
            return None
        if isinstance(value, (exp.Column, exp.Var, exp.Identifier)):
            return value.name
        try:
            row = self.conn.execute("SELECT " + value.sql("sqlite")).fetchone()
            return row[0]
        except sqlite3.Error:
            return value.sql("mysql")

    def show(self, sql: str) -> Result:
        words = sql.split()
        upper = [w.upper() for w in words]
        if len(upper) >= 2 and upper[1] in ("KEYS", "FIELDS", "INDEXES"):
            upper[1] = {"KEYS": "INDEX", "FIELDS": "COLUMNS", "INDEXES": "INDEX"}[upper[1]]
            sql = " ".join(["SHOW", upper[1], *words[2:]])
        try:
            tree = sqlglot.parse_one(sql, read="mysql")
        except SqlglotError:
            raise E.syntax(sql[5:]) from None
        if not isinstance(tree, exp.Show):
            raise E.syntax(sql[5:])
        what = (tree.name or "").upper()
        like = tree.args.get("like")
        pattern = like.name if isinstance(like, exp.Literal) else None
        target = tree.args.get("target")
        target_name = target.name if isinstance(target, exp.Expression) else (target or "")
        dbarg = tree.args.get("db")
        db_name = dbarg.name if isinstance(dbarg, exp.Expression) else dbarg
        if what == "DATABASES":
            rows = [(n,) for n in ["information_schema", *self.catalog.names()]]
            return _rows_result(["Database"], _like(rows, pattern))
        if what == "TABLES":
            db = db_name or self._need_db()
            names = self._table_names(db)
            label = f"Tables_in_{db}" + (f" ({pattern})" if pattern else "")
            if tree.args.get("full"):
                return _rows_result(
                    [label, "Table_type"], _like([(n, "BASE TABLE") for n in names], pattern)
                )
            return _rows_result([label], _like([(n,) for n in names], pattern))
        if what == "COLUMNS":
            if db_name:
                self.use(db_name)
            return self.describe(target_name, full=bool(tree.args.get("full")), pattern=pattern)
        if what == "INDEX":
            return self.show_index(target_name)
        if what == "CREATE TABLE":
            self._need_db()
            t = self.table(target_name)
            if t is None:
                raise E.unknown_table(self.db or "", target_name)
            return _rows_result(["Table", "Create Table"], [(t.name, _show_create(t))])
        if what == "CREATE DATABASE":
            if not self.catalog.exists(target_name):
                raise E.unknown_database(target_name)
            name = self.catalog.canonical(target_name)
            return _rows_result(
                ["Database", "Create Database"],
                [(name, f"CREATE DATABASE `{name}` /*!40100 DEFAULT CHARACTER SET utf8mb4 */")],
            )
        if what == "VARIABLES":
            return _rows_result(
                ["Variable_name", "Value"], _like(sorted(self._variables().items()), pattern)
            )
        if what == "STATUS":
            return _rows_result(
                ["Variable_name", "Value"],
                _like([("Threads_connected", "1"), ("Uptime", "1")], pattern),
            )
        if what in ("WARNINGS", "ERRORS"):
            shown: list[tuple[Any, ...]] = [
                w for w in self.warnings if what == "WARNINGS" or w[0] == "Error"
            ]
            res = _rows_result(["Level", "Code", "Message"], shown)
            assert res.columns is not None  # _rows_result sets them
            res.columns[1] = column_for("Code", exp.DataType.build("INT UNSIGNED"))
            return res
        if what == "PROCESSLIST":
            row = (
                self.conn_id,
                self.user,
                self.host,
                self.db,
                "Query",
                0,
                "executing",
                "SHOW PROCESSLIST",
            )
            return _rows_result(
                ["Id", "User", "Host", "db", "Command", "Time", "State", "Info"], [row]
            )
        if what == "ENGINES":
            return _rows_result(
                ["Engine", "Support", "Comment", "Transactions", "XA", "Savepoints"],
                [("InnoDB", "DEFAULT", "SQLite underneath (portsuite)", "YES", "NO", "YES")],
            )
        if what in ("COLLATION",):
            return _rows_result(
                ["Collation", "Charset", "Id", "Default", "Compiled", "Sortlen"],
                [("utf8mb4_general_ci", "utf8mb4", "45", "Yes", "Yes", "1")],
            )
        if what in ("CHARACTER SET", "CHARSET"):
            return _rows_result(
                ["Charset", "Description", "Default collation", "Maxlen"],
                [("utf8mb4", "UTF-8 Unicode", "utf8mb4_general_ci", "4")],
            )
        if what == "GRANTS":
            return _rows_result(
                [f"Grants for {self.user}@%"],
                [(f"GRANT ALL PRIVILEGES ON *.* TO `{self.user}`@`%`",)],
            )
        raise E.syntax(sql[5:])

    def _table_names(self, db: str) -> list[str]:
        if db.lower() == "information_schema":
            return sorted(INFO_TABLES)
        if not self.catalog.exists(db):
            raise E.unknown_database(db)
        if db != self.db:
            conn = sqlite3.connect(self.catalog.path(self.catalog.canonical(db)))
            try:
                rows = conn.execute(f"SELECT name FROM {META}").fetchall()
            except sqlite3.Error:
                rows = []
            finally:
                conn.close()
            return sorted(r[0] for r in rows)
        return sorted(t.name for t in self.tables().values())

    def _variables(self) -> dict[str, str]:
        v = {
            "version": VERSION,
            "version_comment": "portsuite sql (MySQL protocol, SQLite engine)",
            "autocommit": "ON" if self.autocommit else "OFF",
            "character_set_client": "utf8mb4",
            "character_set_connection": "utf8mb4",
            "character_set_results": "utf8mb4",
            "character_set_server": "utf8mb4",
            "character_set_database": "utf8mb4",
            "collation_connection": "utf8mb4_general_ci",
            "collation_server": "utf8mb4_general_ci",
            "collation_database": "utf8mb4_general_ci",
            "sql_mode": "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION",
            "max_allowed_packet": "67108864",
            "max_execution_time": str(int(self.settings.max_execution_time * 1000)),
            "transaction_isolation": "SERIALIZABLE",
            "tx_isolation": "SERIALIZABLE",
            "time_zone": "SYSTEM",
            "system_time_zone": "UTC",
            "lower_case_table_names": "1",
            "auto_increment_increment": "1",
            "auto_increment_offset": "1",
            "wait_timeout": "28800",
            "interactive_timeout": "28800",
            "net_write_timeout": "60",
            "license": "GPL",
            "init_connect": "",
            "performance_schema": "OFF",
            "query_cache_size": "0",
            "query_cache_type": "OFF",
            "have_ssl": "YES",
            "default_authentication_plugin": "caching_sha2_password",
            "foreign_key_checks": "ON",
            "storage_engine": "InnoDB",
            "default_storage_engine": "InnoDB",
            "version_compile_os": "Linux",
            "session_track_schema": "OFF",
        }
        for k, val in self.variables.items():
            if k.startswith("@@"):
                v[k[2:]] = str(val)
        return v

    def describe(self, name: str, full: bool = False, pattern: str | None = None) -> Result:
        self._need_db()
        name = name.strip("`")
        if "." in name:
            db, name = name.split(".", 1)
            self.use(db.strip("`"))
            name = name.strip("`")
        t = self.table(name)
        if t is None:
            raise E.unknown_table(self.db or "", name)
        rows: list[tuple[Any, ...]] = []
        for col, dtype, cdef in t.columns:
            nullable = "NO" if _not_null(cdef) or t.keys.get(col.lower()) == "PRI" else "YES"
            default = _default(cdef)
            extra = "auto_increment" if t.auto and t.auto.lower() == col.lower() else ""
            type_text = _type_text(dtype)
            if full:
                collation = "utf8mb4_general_ci" if _is_text(dtype) else None
                rows.append(
                    (
                        col,
                        type_text,
                        collation,
                        nullable,
                        t.keys.get(col.lower(), ""),
                        default,
                        extra,
                        "select,insert,update,references",
                        "",
                    )
                )
            else:
                rows.append((col, type_text, nullable, t.keys.get(col.lower(), ""), default, extra))
        names = ["Field", "Type", "Null", "Key", "Default", "Extra"]
        if full:
            names = [
                "Field",
                "Type",
                "Collation",
                "Null",
                "Key",
                "Default",
                "Extra",
                "Privileges",
                "Comment",
            ]
        return _rows_result(names, _like(rows, pattern))

    def show_index(self, name: str) -> Result:
        self._need_db()
        t = self.table(name)
        if t is None:
            raise E.unknown_table(self.db or "", name)
        nullable = {c.lower() for c, _d, cdef in t.columns if not _not_null(cdef)}
        nullable -= {c for c, key in t.keys.items() if key == "PRI"}
        rows = []
        for key_name, cols, unique in _indexes(t):
            for seq, col in enumerate(cols, 1):
                # Cardinality: the distinct values of the key's first seq columns (InnoDB
                # estimates it; on a small table its estimate is this count)
                prefix = ", ".join(_q(c) for c in cols[:seq])
                (distinct,) = self.conn.execute(
                    f"SELECT COUNT(*) FROM (SELECT DISTINCT {prefix} FROM {_q(t.name)})"
                ).fetchone()
                rows.append(
                    (t.name, 0 if unique else 1, key_name, seq, col, "A", distinct, None, None)
                    + ("YES" if col.lower() in nullable else "", "BTREE", "", "", "NO")
                )
        types = ["VARCHAR(64)", "BIGINT", "VARCHAR(64)", "INT UNSIGNED", "VARCHAR(64)"]
        types += ["VARCHAR(1)", "BIGINT", "BIGINT", "VARCHAR(10)", "VARCHAR(3)", "VARCHAR(16)"]
        types += ["VARCHAR(16)", "VARCHAR(1024)", "VARCHAR(3)"]
        names = ["Table", "Non_unique", "Key_name", "Seq_in_index", "Column_name", "Collation"]
        names += ["Cardinality", "Sub_part", "Packed", "Null", "Index_type", "Comment"]
        names += ["Index_comment", "Ignored"]
        columns = [column_for(n, exp.DataType.build(d)) for n, d in zip(names, types, strict=True)]
        return Result(columns=columns, rows=rows)

    def create_database(self, name: str, if_not_exists: bool) -> Result:
        if not NAME_RE.match(name) or name.lower() in SYSTEM_DBS:
            if name.lower() in SYSTEM_DBS:
                raise MySQLError(1007, "HY000", f"Can't create database '{name}'; database exists")
            raise MySQLError(1102, "42000", f"Incorrect database name '{name}'")
        if self.catalog.exists(name):
            if if_not_exists:
                self.warnings = [("Note", 1007, f"Can't create database '{name}'; database exists")]
                return Result(warnings=1)
            raise MySQLError(1007, "HY000", f"Can't create database '{name}'; database exists")
        self.catalog.create(name)
        return Result(affected=1)

    def drop_database(self, name: str, if_exists: bool) -> Result:
        if name.lower() in SYSTEM_DBS:
            raise MySQLError(
                1044, "42000", f"Access denied for user '{self.user}'@'%' to database '{name}'"
            )
        if not self.catalog.exists(name):
            if if_exists:
                self.warnings = [
                    ("Note", 1008, f"Can't drop database '{name}'; database doesn't exist")
                ]
                return Result(warnings=1)
            raise MySQLError(1008, "HY000", f"Can't drop database '{name}'; database doesn't exist")
        name = self.catalog.canonical(name)
        count = len(self._table_names(name))
        if self.db == name:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.conn.close()
            self.conn = self._open(None)
            self.db = None
            self._tables = {}
        self.catalog.drop(name)
        return Result(affected=count)

    def command(self, sql: str, tree: exp.Command) -> Result:
        word = tree.name.upper()
        if word in ("BEGIN",):
            self._begin()
            return Result()
        if word in ("LOCK", "UNLOCK", "FLUSH", "ANALYZE", "OPTIMIZE", "GRANT", "REVOKE"):
            return Result()
        raise E.syntax(sql)

    # -- DDL and DML -------------------------------------------------------------------

    def dml(self, sql: str, tree: exp.Expression, args: tuple[Any, ...]) -> Result:
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "TABLE":
            self._need_db()
            return self.create_table(tree)
        if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "INDEX":
            self._need_db()
            self._implicit_commit()
            self._run(tree.sql("sqlite"))
            return Result()
        if isinstance(tree, exp.Drop) and (tree.args.get("kind") or "").upper() == "TABLE":
            return self.drop_table(tree)
        if isinstance(tree, (exp.Alter,)):
            self._need_db()
            return self.alter(tree)
        if isinstance(tree, exp.TruncateTable):
            self._need_db()
            n = 0
            for t in tree.expressions:
                table = self.table(t.name)
                if table is None:
                    raise E.unknown_table(self.db or "", t.name)
                self._run(f"DELETE FROM {_q(table.name)}")
                self._run(
                    "DELETE FROM sqlite_sequence WHERE name = ?", (table.name,)
                ) if self._has_sequence() else None
                n += 1
            return Result()
        if isinstance(tree, (exp.Insert, exp.Update, exp.Delete)) and any(
            (t.args.get("db") is not None and t.args["db"].name.lower() == "information_schema")
            or (t.args.get("db") is None and self.db == "information_schema")
            for t in tree.find_all(exp.Table)
        ):
            raise MySQLError(
                1044,
                "42000",
                f"Access denied for user '{self.user}'@'%' to database 'information_schema'",
            )
        self._volatile = False
        tree = self._rewrite(tree)
        verb = sql.split(None, 1)[0].upper()
        if isinstance(tree, (exp.Select, exp.Union)) or verb in (
            "SELECT",
            "WITH",
            "(",
            "VALUES",
            "TABLE",
        ):
            return self.select(sql, tree, args, cacheable=not self._volatile)
        if isinstance(tree, exp.Insert):
            return self.insert(tree, args, verb)
        if isinstance(tree, (exp.Update, exp.Delete)):
            self._need_db()
            self._implicit_begin()
            cur = self._run(tree.sql("sqlite"), args, verb)
            n = max(cur.rowcount, 0)
            self.row_count = n
            if isinstance(tree, exp.Update):
                return Result(affected=n, info=f"Rows matched: {n}  Changed: {n}  Warnings: 0")
            return Result(affected=n)
        raise E.unsupported(verb)

    def _burn_ids(
        self, tree: exp.Insert, table: str, e: MySQLError, args: tuple[Any, ...], cols: Any
    ) -> None:
        """
        A failed INSERT uses up ids as InnoDB's (consecutive lock mode) does: a
        statement of N rows reserves N ids at its first row written, so they are gone
        when a later row, or a key check of any row, fails.
        """
        rows = tree.expression.expressions if isinstance(tree.expression, exp.Values) else []
        n = max(len(rows), 1)
        if e.code not in (1062, 1452):
            if n == 1 or args:
                return
            first_bad = n
            for i, row in enumerate(rows):
                one = tree.copy()
                one.set("expression", exp.Values(expressions=[row.copy()]))
                try:
                    self.conn.execute("SAVEPOINT __probe")
                    try:
                        self.conn.execute(one.sql("sqlite"))
                    finally:
                        self.conn.execute("ROLLBACK TO __probe")
                        self.conn.execute("RELEASE __probe")
                except sqlite3.Error:
                    first_bad = i
                    break
            if first_bad == 0:
                return
        self._burn_id(table, n)

    def _burn_id(self, table: str, n: int = 1) -> None:
        """InnoDB hands out the id before a duplicate or foreign key check fails."""
        key = (self.db or "", table)
        try:
            seq = self.conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
            ).fetchone()
        except sqlite3.Error:
            return
        with self.catalog.lock:
            self.catalog.high[key] = max(self.catalog.high.get(key, 0), seq[0] if seq else 0) + n
        self._touched.add(table)
        self._keep_ids()

    def _keep_ids(self) -> None:
        """After a rollback: ids handed out stay used (sqlite_sequence moves back up)."""
        if self.conn.in_transaction or self.db is None:
            return
        touched, self._touched = self._touched, set()
        for table in touched:
            high = self.catalog.high.get((self.db, table), 0)
            if high:
                self._run(
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?",
                    (high, table, high),
                )
                self._run(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? "
                    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                    (table, high, table),
                )

    def _has_sequence(self) -> bool:
        return bool(
            self.conn.execute("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'").fetchone()
        )

    def _implicit_commit(self) -> None:
        if self.conn.in_transaction:
            self._run("COMMIT")  # DDL commits, as in MySQL

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A table's SQLite DDL and its MySQL definition in META: both, or neither."""
        self._run("BEGIN")
        try:
            yield
            self._run("COMMIT")
        except MySQLError:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def _rewrite(self, tree: exp.Expression) -> exp.Expression:
        """Session functions and @@variables become constants; information_schema a temp copy."""
        variables = None

        def fix(node: exp.Expression) -> exp.Expression:
            new = substitute(node)
            if new is not node:
                self._volatile = True
            return new

        def substitute(node: exp.Expression) -> exp.Expression:
            nonlocal variables
            if isinstance(node, exp.SessionParameter):
                if variables is None:
                    variables = self._variables()
                name = node.name.lower()
                if name not in variables:
                    raise MySQLError(1193, "HY000", f"Unknown system variable '{node.name}'")
                value = variables[name]
                if value.lstrip("-").isdigit():
                    return exp.Literal.number(value)
                if value in ("ON", "OFF") and name in ("autocommit", "foreign_key_checks"):
                    return exp.Literal.number(1 if value == "ON" else 0)
                return exp.Literal.string(value)
            if (
                isinstance(node, exp.Parameter)
                and str(node).startswith("@")
                and not str(node).startswith("@@")
            ):
                v = self.variables.get("@" + node.name.lower())
                return (
                    exp.Null()
                    if v is None
                    else (
                        exp.Literal.number(v)
                        if isinstance(v, (int, float))
                        else exp.Literal.string(str(v))
                    )
                )
            if isinstance(node, exp.CurrentVersion):
                return exp.Literal.string(VERSION)
            if isinstance(node, exp.CurrentSchema):
                return exp.Null() if self.db is None else exp.Literal.string(self.db)
            if isinstance(node, (exp.CurrentUser,)):
                return exp.Literal.string(f"{self.user}@%")
            if isinstance(node, exp.Anonymous):
                fname = node.name.upper()
                if fname == "LAST_INSERT_ID" and not node.expressions:
                    return exp.cast(exp.Literal.number(self.last_insert_id), "BIGINT")
                if fname in ("USER", "SESSION_USER", "SYSTEM_USER"):
                    return exp.Literal.string(f"{self.user}@{self.host}")
                if fname == "VERSION":
                    return exp.Literal.string(VERSION)
                if fname == "CONNECTION_ID":
                    return exp.cast(exp.Literal.number(self.conn_id), "BIGINT")
                if fname == "ROW_COUNT":
                    return exp.cast(exp.Literal.number(self.row_count), "BIGINT")
                if fname == "DATABASE":
                    return exp.Null() if self.db is None else exp.Literal.string(self.db)
            if isinstance(node, exp.Table) and node.args.get("db") is not None:
                dbname = node.args["db"].name
                if dbname.lower() == "information_schema":
                    self._info_schema(node.name)
                    node = node.copy()
                    node.set("db", None)
                    node.set("this", exp.to_identifier(f"__is_{node.name.lower()}", quoted=True))
                    if not node.alias:
                        node.set(
                            "alias",
                            exp.TableAlias(this=exp.to_identifier(tree_name := node.this.name[5:])),
                        )
                        del tree_name
                    return node
                if self.db is not None and dbname.lower() == self.db.lower():
                    node = node.copy()
                    node.set("db", None)
                    return node
                raise E.unsupported("queries across databases")
            if (
                isinstance(node, exp.Table)
                and self.db == "information_schema"
                and node.args.get("db") is None
                and node.name.upper() in INFO_TABLES
            ):
                self._info_schema(node.name)
                node = node.copy()
                node.set("this", exp.to_identifier(f"__is_{node.name.lower()}", quoted=True))
                return node
            return node

        return tree.transform(fix)

    def _info_schema(self, name: str) -> None:
        """A fresh temp copy of one information_schema table (SCHEMATA, TABLES, COLUMNS)."""
        upper = name.upper()
        if upper not in INFO_TABLES:
            raise E.unknown_table("information_schema", name)
        cols = INFO_TABLES[upper]
        tname = f"__is_{name.lower()}"
        conn = self.conn
        conn.execute(f"DROP TABLE IF EXISTS temp.{_q(tname)}")
        conn.execute(
            f"CREATE TEMP TABLE {_q(tname)} ({', '.join(_q(c) + ' COLLATE NOCASE' for c in cols)})"
        )
        rows: list[tuple[Any, ...]] = []
        dbs = self.catalog.names()
        if upper == "SCHEMATA":
            rows = [
                ("def", d, "utf8mb4", "utf8mb4_general_ci", None)
                for d in ["information_schema", *dbs]
            ]
        else:
            for d in dbs:
                for t in self._defs_of(d):
                    if upper == "TABLES":
                        rows.append(
                            (
                                "def",
                                d,
                                t.name,
                                "BASE TABLE",
                                "InnoDB",
                                None,
                                t.auto and 1,
                                "utf8mb4_general_ci",
                                "",
                            )
                        )
                    else:
                        for pos, (col, dtype, cdef) in enumerate(t.columns, 1):
                            rows.append(
                                (
                                    "def",
                                    d,
                                    t.name,
                                    col,
                                    pos,
                                    _default(cdef),
                                    "NO"
                                    if _not_null(cdef) or t.keys.get(col.lower()) == "PRI"
                                    else "YES",
                                    dtype.sql("mysql").split("(")[0].lower(),
                                    _type_text(dtype),
                                    t.keys.get(col.lower(), ""),
                                    "auto_increment"
                                    if t.auto and t.auto.lower() == col.lower()
                                    else "",
                                    next(iter(params(dtype)), None) if _is_text(dtype) else None,
                                )
                            )
        if rows:
            conn.executemany(
                f"INSERT INTO temp.{_q(tname)} VALUES ({', '.join('?' * len(cols))})", rows
            )

    def _defs_of(self, db: str) -> list[TableDef]:
        if db == self.db:
            return list(self.tables().values())
        conn = sqlite3.connect(self.catalog.path(db))
        try:
            rows = conn.execute(f"SELECT name, ddl FROM {META}").fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            conn.close()
        out = []
        for n, ddl in rows:
            try:
                out.append(_table_def(n, ddl))
            except SqlglotError:
                continue
        return out

    def _version(self) -> int:
        if self.db is None or self.db == "information_schema":
            return -1
        return int(self.conn.execute("PRAGMA schema_version").fetchone()[0])

    def select(
        self, sql: str, tree: exp.Expression, args: tuple[Any, ...], cacheable: bool = False
    ) -> Result:
        columns = self.columns_of(sql, tree)
        try:
            text = _first_spelling(tree, self.tables()).sql("sqlite")
        except SqlglotError as e:
            raise E.unsupported(str(e)[:60]) from None
        if cacheable and self.db != "information_schema":
            if len(self._cache) >= 256:
                self._cache.clear()
            self._cache[sql] = (
                self.db,
                self.catalog.ddl_count,
                text,
                [attrs.evolve(c) for c in columns],
            )
        return self._run_select(text, columns, args)

    def _run_select(self, text: str, columns: list[Column], args: tuple[Any, ...]) -> Result:
        if self.db is not None and self.db != "information_schema":
            self._implicit_begin()
        cur = self._run(text, args, "SELECT")
        names = [d[0] for d in cur.description or ()]
        rows = cur.fetchmany(self.settings.max_rows + 1)
        if len(rows) > self.settings.max_rows:
            raise MySQLError(
                1104,
                "42000",
                f"The SELECT would examine more than MAX_JOIN_SIZE rows; more than {self.settings.max_rows} rows",
            )
        if len(columns) != len(names):
            columns = [column_for(n, None) for n in names]
        _fill_unknown(columns, rows)
        self.row_count = -1
        return Result(columns=columns, rows=rows)

    def columns_of(self, sql: str, tree: exp.Expression) -> list[Column]:
        """The result set's column definitions: names as MySQL shows them, types inferred."""
        texts = _projection_texts(sql)
        tables = self.tables()
        # dict[str, object] in sqlglot's stubs (invariant): ours holds dict[str, str]s
        schema: dict[str, Any] = self.schema()
        selects = tree.selects if isinstance(tree, (exp.Select, exp.Union)) else []
        out: list[Column] = []
        try:
            typed = annotate_types(
                qualify(
                    tree.copy(),
                    schema=schema,
                    dialect="mysql",
                    validate_qualify_columns=False,
                    quote_identifiers=False,
                    expand_stars=True,
                ),
                schema=schema,
                dialect="mysql",
            )
            # sqlglot types the result as a plain Expression; several node types (not only
            # Query) have .selects, and one without it raises, caught below
            typed_selects = typed.selects  # type: ignore[attr-defined]
        except Exception:
            typed_selects = []
        if typed_selects and len(typed_selects) != len(selects):
            # SELECT * expanded: names come from the schema
            texts = []
            selects = typed_selects
        for i, sel in enumerate(selects):
            typed_sel = typed_selects[i] if i < len(typed_selects) else None
            if isinstance(sel, exp.Alias) or (typed_sel is not None and not texts):
                name = sel.alias_or_name
            elif isinstance(sel, exp.Column) and not isinstance(sel.this, exp.Star):
                name = sel.name
            elif (
                isinstance(sel, exp.Literal)
                and sel.is_string
                and i < len(texts)
                and texts[i][:1] in ("'", '"')
            ):
                name = sel.this
            elif i < len(texts) and texts[i]:
                name = texts[i]
            else:
                name = sel.alias_or_name or sel.sql("mysql")
            inner = sel.this if isinstance(sel, exp.Alias) else sel
            dtype = (
                _mysql_type(
                    typed_sel.this if isinstance(typed_sel, exp.Alias) else typed_sel, schema
                )
                if typed_sel is not None
                else None
            )
            where: dict[str, Any] = {}
            if isinstance(inner, exp.Column):
                tname = inner.table
                tdef = tables.get(tname.lower()) if tname else _owner(tables, inner.name)
                if typed_sel is not None:
                    tcol = typed_sel.this if isinstance(typed_sel, exp.Alias) else typed_sel
                    if isinstance(tcol, exp.Column) and tcol.table:
                        tdef = tables.get(tcol.table.lower()) or tdef
                        tname = tcol.table
                if tdef is not None:
                    where = {
                        "table": tname or tdef.name,
                        "org_table": tdef.name,
                        "org_name": inner.name,
                        "db": self.db or "",
                    }
            col = column_for(name, dtype, **where)
            if where:
                tdef = tables.get(where["org_table"].lower())
                if tdef is not None:
                    for cname, _dt, cdef in tdef.columns:
                        if cname.lower() == inner.name.lower():
                            if _not_null(cdef) or tdef.keys.get(cname.lower()) == "PRI":
                                col.flags |= P.NOT_NULL_FLAG
                            key = tdef.keys.get(cname.lower())
                            col.flags |= {
                                "PRI": P.PRI_KEY_FLAG,
                                "UNI": P.UNIQUE_KEY_FLAG,
                                "MUL": P.MULTIPLE_KEY_FLAG,
                            }.get(key or "", 0)
                            if tdef.auto and tdef.auto.lower() == cname.lower():
                                col.flags |= P.AUTO_INCREMENT_FLAG
            out.append(col)
        return out

    def insert(
        self, tree: exp.Insert, args: tuple[Any, ...], verb: str, replace: bool = False
    ) -> Result:
        self._need_db()
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        tdef = self.table(target.name) if isinstance(target, exp.Table) else None
        cols = (
            tuple(c.name.lower() for c in tree.this.expressions)
            if isinstance(tree.this, exp.Schema)
            else None
        )
        if tdef is not None and cols is None:
            cols = tuple(c.lower() for c, _, _ in tdef.columns)
        self._implicit_begin()
        ignore = bool(tree.args.get("ignore"))
        conflict = tree.args.get("conflict")
        try:
            if conflict is not None and conflict.args.get("duplicate"):
                plain = tree.copy()
                plain.set("conflict", None)
                sets = []
                for eq in conflict.expressions:
                    eq = eq.transform(
                        lambda n: (
                            exp.column(
                                n.expressions[0].name if n.expressions else n.this.name,
                                table="excluded",
                            )
                            if isinstance(n, exp.Anonymous) and n.name.upper() == "VALUES"
                            else n
                        )
                    )
                    sets.append(eq.sql("sqlite"))
                text = plain.sql("sqlite") + " ON CONFLICT DO UPDATE SET " + ", ".join(sets)
            else:
                text = tree.sql("sqlite")
            if replace:
                text = "REPLACE" + text[len("INSERT") :]
        except SqlglotError as e:
            raise E.unsupported(str(e)[:60]) from None
        before = self.conn.total_changes
        try:
            cur = self._run(text, args, "INSERT", cols)
        except MySQLError as e:
            if (
                tdef is not None
                and tdef.auto
                and cols is not None
                and tdef.auto.lower() not in cols
            ):
                self._burn_ids(tree, tdef.name, e, args, cols)
            raise
        n = max(cur.rowcount, 0) if cur.rowcount >= 0 else self.conn.total_changes - before
        last = 0
        if tdef is not None and tdef.auto and n:
            auto = tdef.auto.lower()
            given = (
                cols is not None
                and auto in cols
                and not _all_null_auto(tree, cols.index(auto) if cols else -1)
            )
            if not given:
                last = (cur.lastrowid or 0) - n + 1
                self.last_insert_id = last
            key = (self.db or "", tdef.name)
            with self.catalog.lock:
                self.catalog.high[key] = max(self.catalog.high.get(key, 0), cur.lastrowid or 0)
            if self.conn.in_transaction:
                self._touched.add(tdef.name)
        self.row_count = n
        rows_given = (
            len(tree.expression.expressions) if isinstance(tree.expression, exp.Values) else n
        )
        info = (
            f"Records: {rows_given}  Duplicates: 0  Warnings: 0"
            if rows_given > 1 or isinstance(tree.expression, exp.Select)
            else ""
        )
        del ignore
        return Result(affected=n, last_id=last, info=info)

    def create_table(self, tree: exp.Create) -> Result:
        schema = tree.this
        if not isinstance(schema, exp.Schema):
            if tree.expression is not None:
                raise E.unsupported("CREATE TABLE ... SELECT")
            raise E.syntax(tree.sql("mysql"))
        table = schema.this
        name = table.name
        if (
            table.args.get("db") is not None
            and self.db
            and table.args["db"].name.lower() != self.db.lower()
        ):
            raise E.unsupported("CREATE TABLE in another database")
        if (
            self.table(name) is not None
            or self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE lower(name)=lower(?)", (name,)
            ).fetchone()
        ):
            if tree.args.get("exists"):
                self.warnings = [("Note", 1050, f"Table '{name}' already exists")]
                return Result(warnings=1)
            raise MySQLError(1050, "42S01", f"Table '{name}' already exists")
        ddl_sqlite, indexes, mysql_ddl = _translate_create(tree, self)
        self._implicit_commit()
        with self._atomic():
            self._run(ddl_sqlite, verb="CREATE")
            for stmt in indexes:
                self._run(stmt, verb="CREATE")
            self._run(
                f"CREATE TABLE IF NOT EXISTS {META} (name TEXT PRIMARY KEY COLLATE NOCASE, ddl TEXT NOT NULL)"
            )
            self._run(f"INSERT OR REPLACE INTO {META} VALUES (?, ?)", (name, mysql_ddl))
        return Result()

    def alter(self, tree: exp.Alter) -> Result:
        """ALTER TABLE: ADD / DROP / RENAME COLUMN and RENAME TO, as SQLite can do them."""
        table = tree.this
        tdef = self.table(table.name)
        if tdef is None:
            raise E.unknown_table(self.db or "", table.name)
        mysql = sqlglot.parse_one(tdef.ddl, read="mysql")
        schema = mysql.this
        steps: list[str] = []
        new_name = tdef.name
        for action in tree.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef):
                if any(c.lower() == action.name.lower() for c, _, _ in tdef.columns):
                    raise MySQLError(1060, "42S21", f"Duplicate column name '{action.name}'")
                one = exp.Create(
                    this=exp.Schema(
                        this=exp.to_table("__portsuite_probe"), expressions=[action.copy()]
                    ),
                    kind="TABLE",
                )
                ddl, _indexes_unused, _ = _translate_create(one, self)
                body = ddl[ddl.index("(") + 1 : ddl.rindex(")")]
                steps.append(
                    f"ALTER TABLE {_q(tdef.name)} ADD COLUMN "
                    + " ".join(p.strip() for p in body.split(",\n"))
                )
                last = max(
                    (i for i, e in enumerate(schema.expressions) if isinstance(e, exp.ColumnDef)),
                    default=-1,
                )
                schema.expressions.insert(last + 1, action.copy())
            elif (
                isinstance(action, exp.Drop) and (action.args.get("kind") or "").upper() == "COLUMN"
            ):
                target = (
                    action.this
                    if action.this is not None
                    else (action.args.get("tables") or [None])[0]
                )
                name = target.name if target is not None else ""
                if not any(c.lower() == name.lower() for c, _, _ in tdef.columns):
                    raise MySQLError(
                        1091, "42000", f"Can't DROP COLUMN `{name}`; check that it exists"
                    )
                steps.append(f"ALTER TABLE {_q(tdef.name)} DROP COLUMN {_q(name)}")
                schema.set(
                    "expressions",
                    [
                        e
                        for e in schema.expressions
                        if not (isinstance(e, exp.ColumnDef) and e.name.lower() == name.lower())
                    ],
                )
            elif isinstance(action, exp.RenameColumn):
                old, new = action.this.name, action.args["to"].name
                steps.append(f"ALTER TABLE {_q(tdef.name)} RENAME COLUMN {_q(old)} TO {_q(new)}")
                for e in schema.find_all(exp.ColumnDef, exp.Identifier):
                    if isinstance(e, exp.ColumnDef) and e.name.lower() == old.lower():
                        e.set("this", exp.to_identifier(new))
            elif isinstance(action, exp.AlterRename):
                new_name = action.this.name
                if self.table(new_name) is not None:
                    raise MySQLError(1050, "42S01", f"Table '{new_name}' already exists")
                steps.append(f"ALTER TABLE {_q(tdef.name)} RENAME TO {_q(new_name)}")
                schema.set("this", exp.to_table(new_name))
            else:
                raise E.unsupported(f"ALTER TABLE {action.sql('mysql')[:40]}")
        self._implicit_commit()
        with self._atomic():
            for step in steps:
                self._run(step, verb="ALTER")
            self._run(f"DELETE FROM {META} WHERE name = ?", (tdef.name,))
            self._run(
                f"INSERT INTO {META} VALUES (?, ?)", (new_name, mysql.sql("mysql", pretty=True))
            )
        return Result()

    def drop_table(self, tree: exp.Drop) -> Result:
        self._need_db()
        self._implicit_commit()
        missing = []
        tables = [
            t for t in (tree.args.get("tables") or tree.expressions or [tree.this]) if t is not None
        ]
        for t in tables:
            if self.table(t.name) is None:
                missing.append(t.name)
        if missing and not tree.args.get("exists"):
            raise MySQLError(
                1051, "42S02", "Unknown table " + ",".join(f"'{self.db}.{m}'" for m in missing)
            )
        for t in tables:
            tdef = self.table(t.name)
            if tdef is None:
                continue
            with self._atomic():
                self._run(f"DROP TABLE {_q(tdef.name)}", verb="DROP")
                self._run(f"DELETE FROM {META} WHERE name = ?", (tdef.name,))
        if missing:
            self.warnings = [("Note", 1051, f"Unknown table '{self.db}.{m}'") for m in missing]
            return Result(warnings=len(missing))
        return Result()

    # -- prepared statements -----------------------------------------------------------

    def prepare(self, sql: str) -> tuple[int, list[Column]]:
        """Placeholders and result columns of a statement (COM_STMT_PREPARE)."""
        sql = sql.strip().rstrip(";")
        try:
            tokens = sqlglot.tokenize(sql, read="mysql")
        except (TokenError, SqlglotError):
            raise E.syntax(sql) from None
        count = sum(1 for t in tokens if t.token_type.name == "PLACEHOLDER")
        if len(_split(sql)) > 1:
            raise E.syntax(_split(sql)[1])
        first = sql.split(None, 1)[0].upper() if sql.split() else ""
        columns: list[Column] = []
        if first in ("SELECT", "WITH"):
            try:
                tree = sqlglot.parse_one(sql, read="mysql")
            except SqlglotError:
                raise E.syntax(sql) from None
            tree = self._rewrite(tree)  # type: ignore[arg-type]  # as in _statement: an Expression
            columns = self.columns_of(sql, tree)
            try:
                cur = self._run(
                    f"SELECT * FROM ({tree.sql('sqlite')}) LIMIT 0", (None,) * count, "SELECT"
                )
                names = [d[0] for d in cur.description or ()]
                if len(names) != len(columns):
                    columns = [column_for(n, None) for n in names]
            except MySQLError as e:
                if e.code in (1146, 1054, 1046, 1052, 1305):
                    raise
        elif first in ("SHOW", "DESCRIBE", "DESC"):
            columns = []
        else:
            try:
                sqlglot.parse_one(sql, read="mysql")
            except SqlglotError:
                raise E.syntax(sql) from None
        return count, columns


INFO_TABLES = {
    "SCHEMATA": [
        "CATALOG_NAME",
        "SCHEMA_NAME",
        "DEFAULT_CHARACTER_SET_NAME",
        "DEFAULT_COLLATION_NAME",
        "SQL_PATH",
    ],
    "TABLES": [
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "TABLE_TYPE",
        "ENGINE",
        "TABLE_ROWS",
        "AUTO_INCREMENT",
        "TABLE_COLLATION",
        "TABLE_COMMENT",
    ],
    "COLUMNS": [
        "TABLE_CATALOG",
        "TABLE_SCHEMA",
        "TABLE_NAME",
        "COLUMN_NAME",
        "ORDINAL_POSITION",
        "COLUMN_DEFAULT",
        "IS_NULLABLE",
        "DATA_TYPE",
        "COLUMN_TYPE",
        "COLUMN_KEY",
        "EXTRA",
        "CHARACTER_MAXIMUM_LENGTH",
    ],
}


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _near(sql: str, e: Exception) -> str:
    errs = getattr(e, "errors", None) or []
    if errs:
        col = errs[0].get("col") or 0
        line = errs[0].get("line") or 1
        lines = sql.splitlines() or [sql]
        if 0 < line <= len(lines):
            offset = sum(len(x) + 1 for x in lines[: line - 1]) + max(col - 1, 0)
            hl = errs[0].get("highlight") or ""
            start = max(offset - len(hl) + 1, 0) if hl else offset
            return sql[start:]
    return sql


def _like(rows: list[tuple[Any, ...]], pattern: str | None) -> list[tuple[Any, ...]]:
    if pattern is None:
        return rows
    rx = re.compile(
        "^"
        + "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
        + "$",
        re.I | re.S,
    )
    return [r for r in rows if rx.match(str(r[0]))]


def _rows_result(names: list[str], rows: list[tuple[Any, ...]]) -> Result:
    columns = []
    for i, n in enumerate(names):
        width = max([len(str(r[i])) for r in rows if i < len(r) and r[i] is not None] + [1])
        col = column_for(n, exp.DataType.build(f"VARCHAR({max(width, 64)})"))
        columns.append(col)
        if (
            rows
            and all(isinstance(r[i], int) for r in rows if r[i] is not None)
            and any(r[i] is not None for r in rows)
        ):
            columns[i] = column_for(n, exp.DataType.build("BIGINT"))
    return Result(columns=columns, rows=[tuple(r) for r in rows])


def _fill_unknown(columns: list[Column], rows: list[tuple[Any, ...]]) -> None:
    for i, col in enumerate(columns):
        if col.type == P.T_VAR_STRING and col.length == 1024 and col.decimals == 0x1F:
            value = next((r[i] for r in rows if r[i] is not None), None)
            if value is None:
                col.decimals = 0
                if not rows or all(r[i] is None for r in rows):
                    col.type, col.length, col.charset = P.T_NULL, 0, P.CHARSET_BINARY
                continue
            column_from_value(col, value)


def _owner(tables: dict[str, TableDef], column: str) -> TableDef | None:
    found = [
        t for t in tables.values() if any(c.lower() == column.lower() for c, _, _ in t.columns)
    ]
    return found[0] if len(found) == 1 else None


def _scale(dtype: exp.DataType | None) -> int:
    if dtype is None:
        return 0
    if dtype.this in (DT.DECIMAL, DT.UDECIMAL):
        p = params(dtype)
        return p[1] if len(p) > 1 else 0
    return 0


def _is_int(dtype: exp.DataType | None) -> TypeGuard[exp.DataType]:
    return dtype is not None and dtype.this in INT_RANGES


def _mysql_type(node: exp.Expression | None, schema: Any) -> exp.DataType | None:
    """MySQL's result type of an expression, where it differs from sqlglot's guess."""
    if node is None:
        return None
    t = node.type
    if isinstance(node, exp.Count):
        return exp.DataType.build("BIGINT")
    if isinstance(node, exp.Avg):
        arg = node.this.type if node.this is not None else None
        if _is_int(arg) or (arg is not None and arg.this in (DT.DECIMAL, DT.UDECIMAL)):
            s = _scale(arg) + 4
            return exp.DataType.build(f"DECIMAL({14 + s},{s})")
        return exp.DataType.build("DOUBLE")
    if isinstance(node, exp.Sum):
        arg = node.this.type if node.this is not None else None
        if _is_int(arg) or (arg is not None and arg.this in (DT.DECIMAL, DT.UDECIMAL)):
            return exp.DataType.build(f"DECIMAL(32,{_scale(arg)})")
        return exp.DataType.build("DOUBLE")
    if isinstance(node, exp.Div):
        lt, rt = node.this.type, node.expression.type
        if (_is_int(lt) or _scale(lt) or (lt and lt.this == DT.DECIMAL)) and (
            _is_int(rt) or (rt and rt.this == DT.DECIMAL)
        ):
            s = _scale(lt) + 4
            return exp.DataType.build(f"DECIMAL(20,{s})")
    if isinstance(node, exp.Literal) and not node.is_string:
        text = node.this
        if "." in text and "e" not in text.lower():
            digits = text.replace("-", "").replace(".", "")
            s = len(text.split(".")[1])
            return exp.DataType.build(f"DECIMAL({max(len(digits), 1)},{s})")
        if text.lstrip("-").isdigit():
            return exp.DataType.build("BIGINT" if abs(int(text)) > 2**31 - 1 else "INT")
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul)):
        lt, rt = _mysql_type(node.this, schema), _mysql_type(node.expression, schema)
        if _is_int(lt) and _is_int(rt):
            ld, rd = _digits(node.this, lt), _digits(node.expression, rt)
            digits = ld + rd if isinstance(node, exp.Mul) else max(ld, rd) + 1
            return exp.DataType.build("INT" if digits < 11 else "BIGINT")
        if (
            lt is not None
            and rt is not None
            and lt.this in (DT.DECIMAL,) | INT_RANGES.keys()
            and rt.this in (DT.DECIMAL,) | INT_RANGES.keys()
        ):
            s = (
                _scale(lt) + _scale(rt)
                if isinstance(node, exp.Mul)
                else max(_scale(lt), _scale(rt))
            )
            return exp.DataType.build(f"DECIMAL(20,{s})")
    if isinstance(node, (exp.Coalesce, exp.If, exp.Case)):
        args = [node.this, *node.expressions] if isinstance(node, exp.Coalesce) else []
        if isinstance(node, exp.If):
            args = [node.args.get("true"), node.args.get("false")]
        kinds = {
            (_mysql_type(a, schema) or exp.DataType.build("TEXT")).this
            for a in args
            if a is not None and not isinstance(a, exp.Null)
        }
        if len(kinds) == 1:
            return _mysql_type(
                next(a for a in args if a is not None and not isinstance(a, exp.Null)), schema
            )
        if kinds and kinds <= set(INT_RANGES):
            return exp.DataType.build("BIGINT")
        return None
    if isinstance(node, (exp.Max, exp.Min)) and node.this is not None:
        return _mysql_type(node.this, schema) or node.this.type
    if isinstance(node, exp.Paren):
        return _mysql_type(node.this, schema)
    if isinstance(
        node,
        (
            exp.EQ,
            exp.NEQ,
            exp.GT,
            exp.GTE,
            exp.LT,
            exp.LTE,
            exp.Like,
            exp.In,
            exp.Is,
            exp.And,
            exp.Or,
            exp.Not,
        ),
    ):
        return exp.DataType.build("INT")
    if t is None or t.this in (DT.UNKNOWN,):
        return None
    if t.this == DT.TEXT and not isinstance(node, exp.Column):
        return None  # string expressions: typed from their values (VARCHAR)
    return t


_DIGITS = {
    DT.TINYINT: 4,
    DT.UTINYINT: 3,
    DT.SMALLINT: 6,
    DT.USMALLINT: 5,
    DT.MEDIUMINT: 9,
    DT.UMEDIUMINT: 8,
    DT.INT: 11,
    DT.UINT: 10,
    DT.BIGINT: 20,
    DT.UBIGINT: 20,
    DT.BOOLEAN: 1,
}


def _digits(node: exp.Expression, dtype: exp.DataType) -> int:
    if isinstance(node, exp.Literal) and not node.is_string:
        return len(node.this)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul)) and dtype.this == DT.INT:
        return 10
    return _DIGITS.get(dtype.this, 20)


def _all_null_auto(tree: exp.Insert, index: int) -> bool:
    values = tree.expression
    if index < 0 or not isinstance(values, exp.Values):
        return False
    for row in values.expressions:
        items = row.expressions if isinstance(row, exp.Tuple) else [row]
        if (
            index < len(items)
            and not isinstance(items[index], exp.Null)
            and not (isinstance(items[index], exp.Literal) and items[index].this == "0")
        ):
            return False
    return True


# -- CREATE TABLE: MySQL's definition, SQLite's table ---------------------------------


def _not_null(cdef: exp.ColumnDef) -> bool:
    return any(
        isinstance(c.kind, exp.NotNullColumnConstraint) and not c.kind.args.get("allow_null")
        for c in cdef.constraints
    )


def _default(cdef: exp.ColumnDef) -> Any:
    for c in cdef.constraints:
        if isinstance(c.kind, exp.DefaultColumnConstraint):
            v = c.kind.this
            if isinstance(v, exp.Null):
                return None
            if isinstance(v, exp.Literal):
                return v.this
            return v.sql("mysql")
    return None


def _first_spelling(tree: exp.Expression, tables: dict[str, TableDef]) -> exp.Expression:
    """
    C{SELECT s … GROUP BY s} on a text column: a group holds every spelling equal under
    the case-insensitive collation ('Lyon', 'LYON'), and MariaDB shows the one of the
    group's first row in the table's order, where SQLite shows whichever row it read
    last (with MIN/MAX beside it). For a query on one table, the projected group
    columns become C{FIRST_BY(s, rowid)}: the group's first row, as MariaDB.
    """
    if not any(_text_group_keys(s, tables) for s in tree.find_all(exp.Select)):
        return tree
    tree = tree.copy()  # the parsed tree may be cached: rewrite a copy
    for select in list(tree.find_all(exp.Select)):
        found = _text_group_keys(select, tables)
        if not found:
            continue
        ref, keys = found
        for sel in list(select.expressions):
            inner = sel.this if isinstance(sel, exp.Alias) else sel
            if isinstance(inner, exp.Column) and inner.name.lower() in keys:
                first = exp.Anonymous(
                    this="FIRST_BY", expressions=[inner.copy(), exp.column("rowid", table=ref)]
                )
                # NOCASE still: ORDER BY and HAVING on the name compare as the column does
                collated = exp.Collate(this=first, expression=exp.var("NOCASE"))
                sel.replace(exp.alias_(collated, sel.alias_or_name))
    return tree


def _text_group_keys(
    select: exp.Select, tables: dict[str, TableDef]
) -> tuple[str, set[str]] | None:
    """(the table's name in the query, the text columns grouped by) of a one-table GROUP BY."""
    group, source = select.args.get("group"), select.args.get("from_")
    if group is None or source is None or select.args.get("joins"):
        return None
    table = source.this
    if not isinstance(table, exp.Table) or table.args.get("db") is not None:
        return None
    tdef = tables.get(table.name.lower())
    if tdef is None:
        return None
    texts = {c.lower() for c, dtype, _ in tdef.columns if _is_text(dtype)}
    keys = {
        g.name.lower()
        for g in group.expressions
        if isinstance(g, exp.Column) and g.name.lower() in texts
    }
    return (table.alias_or_name, keys) if keys else None


def _is_text(dtype: exp.DataType) -> bool:
    return dtype.this in (
        DT.VARCHAR,
        DT.NVARCHAR,
        DT.CHAR,
        DT.NCHAR,
        DT.TEXT,
        DT.TINYTEXT,
        DT.MEDIUMTEXT,
        DT.LONGTEXT,
        DT.ENUM,
    )


def _type_text(dtype: exp.DataType) -> str:
    text = dtype.sql("mysql").lower().replace(", ", ",")
    text = text.replace("unsigned", " unsigned").replace("  ", " ")
    if dtype.this == DT.INT:
        return "int(11)"
    if dtype.this == DT.UINT:
        return "int(10) unsigned"
    if dtype.this == DT.BIGINT:
        return "bigint(20)"
    if dtype.this == DT.TINYINT and not params(dtype):
        return "tinyint(4)"
    if dtype.this == DT.SMALLINT and not params(dtype):
        return "smallint(6)"
    if dtype.this == DT.DECIMAL and not params(dtype):
        return "decimal(10,0)"
    return text


def _sqlite_type(dtype: exp.DataType) -> str:
    t = dtype.this
    if t in INT_RANGES:
        return "INTEGER"
    if t in (DT.DECIMAL, DT.UDECIMAL):
        return "NUMERIC"
    if t in (DT.FLOAT, DT.DOUBLE):
        return "REAL"
    if t in (DT.BLOB, DT.TINYBLOB, DT.MEDIUMBLOB, DT.LONGBLOB, DT.VARBINARY, DT.BINARY):
        return "BLOB"
    return "TEXT"


def _checks(col: str, dtype: exp.DataType) -> list[str]:
    """STRICT_TRANS_TABLES as CHECK constraints whose names tell the error."""
    q = _q(col)
    t = dtype.this
    out = []
    if t in INT_RANGES:
        lo, hi = INT_RANGES[t]
        out.append(f"CONSTRAINT {_q('__type_' + col)} CHECK (typeof({q}) IN ('integer', 'null'))")
        out.append(f"CONSTRAINT {_q('__range_' + col)} CHECK ({q} BETWEEN {lo} AND {hi})")
    elif t in (DT.DECIMAL, DT.UDECIMAL, DT.FLOAT, DT.DOUBLE):
        out.append(
            f"CONSTRAINT {_q('__type_' + col)} CHECK (typeof({q}) IN ('integer', 'real', 'null'))"
        )
        p = params(dtype)
        if t in (DT.DECIMAL, DT.UDECIMAL) and p:
            precision, scale = (p + [0])[:2]
            limit = 10 ** (precision - scale)
            out.append(f"CONSTRAINT {_q('__range_' + col)} CHECK (abs({q}) < {limit})")
    elif t in (DT.VARCHAR, DT.NVARCHAR, DT.CHAR, DT.NCHAR):
        n = (params(dtype) or [1])[0]
        # trailing spaces past the length are cut, not refused (as MySQL's strict mode)
        out.append(f"CONSTRAINT {_q('__len_' + col)} CHECK (length(rtrim({q}, ' ')) <= {n})")
    elif t == DT.DATE:
        out.append(f"CONSTRAINT {_q('__type_' + col)} CHECK ({q} IS NULL OR date({q}) = {q})")
    elif t in (DT.DATETIME, DT.TIMESTAMP):
        out.append(
            f"CONSTRAINT {_q('__type_' + col)} CHECK ({q} IS NULL OR datetime({q}) IS NOT NULL)"
        )
    elif t == DT.ENUM:
        values = ", ".join(e.sql("sqlite") for e in dtype.expressions)
        out.append(f"CONSTRAINT {_q('__enum_' + col)} CHECK ({q} IN ({values}))")
    return out


def _key_names(schema: exp.Schema) -> dict[int, str]:
    """
    MySQL's name for each key of a CREATE TABLE (by C{id} of its node; a column's UNIQUE
    by its constraint's), in the order they are written: a named key keeps its name,
    twice is error 1061; an unnamed one takes its first column's name, then C{_2},
    C{_3}… past the names already taken (KEY (a), KEY (a) → a, a_2).
    """
    taken: set[str] = {"primary"}
    names: dict[int, str] = {}

    def take(node: exp.Expression, given: str | None, cols: list[str]) -> None:
        if given:
            if given.lower() in taken:
                raise MySQLError(1061, "42000", f"Duplicate key name '{given}'")
            chosen = given
        else:
            chosen, n = cols[0], 2
            while chosen.lower() in taken:
                chosen, n = f"{cols[0]}_{n}", n + 1
        taken.add(chosen.lower())
        names[id(node)] = chosen

    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            for c in item.constraints:
                if isinstance(c.kind, exp.UniqueColumnConstraint):
                    take(c, None, [item.name])
        elif isinstance(item, exp.UniqueColumnConstraint):
            sch = item.this
            cols = [e.name for e in sch.expressions] if isinstance(sch, exp.Schema) else []
            given = sch.this.name if isinstance(sch, exp.Schema) and sch.this is not None else None
            if cols:
                take(item, given, cols)
        elif isinstance(item, exp.IndexColumnConstraint):
            cols = [e.name for e in item.expressions]
            if cols:
                take(item, item.this.name if item.this is not None else None, cols)
    return names


def _indexes(t: TableDef) -> list[tuple[str, list[str], bool]]:
    tree = sqlglot.parse_one(t.ddl, read="mysql")
    out: list[tuple[str, list[str], bool]] = []
    schema = tree.this
    names = _key_names(schema)
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            for c in item.constraints:
                if isinstance(c.kind, exp.PrimaryKeyColumnConstraint):
                    out.append(("PRIMARY", [item.name], True))
                elif isinstance(c.kind, exp.UniqueColumnConstraint):
                    out.append((names[id(c)], [item.name], True))
        elif isinstance(item, exp.PrimaryKey):
            out.append(("PRIMARY", [e.name for e in item.expressions], True))
        elif isinstance(item, exp.UniqueColumnConstraint):
            s = item.this
            cols = [e.name for e in s.expressions] if isinstance(s, exp.Schema) else []
            out.append((names.get(id(item), ""), cols, True))
        elif isinstance(item, exp.IndexColumnConstraint):
            cols = [e.name for e in item.expressions]
            out.append((names[id(item)], cols, False))
        elif isinstance(item, exp.Constraint) or isinstance(item, exp.ForeignKey):
            fks = (
                [item]
                if isinstance(item, exp.ForeignKey)
                else [e for e in item.expressions if isinstance(e, exp.ForeignKey)]
            )
            for fk in fks:
                cols = [e.name for e in fk.expressions]
                name = item.this.name if isinstance(item, exp.Constraint) else cols[0]
                if not any(o[1][: len(cols)] == cols for o in out):
                    out.append((name, cols, False))
    out.sort(key=lambda o: (o[0] != "PRIMARY", not o[2]))
    return out


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _show_create(t: TableDef) -> str:
    """SHOW CREATE TABLE in MySQL's own layout (ORMs parse it line by line)."""
    lines = []
    for col, dtype, cdef in t.columns:
        bits = [_bq(col), _type_text(dtype)]
        not_null = _not_null(cdef) or t.keys.get(col.lower()) == "PRI"
        if not_null:
            bits.append("NOT NULL")
        if t.auto and t.auto.lower() == col.lower():
            bits.append("AUTO_INCREMENT")
        else:
            has_default = any(
                isinstance(c.kind, exp.DefaultColumnConstraint) for c in cdef.constraints
            )
            default = _default(cdef)
            if has_default and default is not None:
                text = str(default)
                bits.append(
                    "DEFAULT "
                    + (
                        text
                        if text.upper().startswith("CURRENT_TIMESTAMP")
                        else "'" + text.replace("'", "''") + "'"
                    )
                )
            elif not not_null:
                bits.append("DEFAULT NULL")
        lines.append("  " + " ".join(bits))
    for key_name, cols, unique in _indexes(t):
        cols_text = ",".join(_bq(c) for c in cols)
        if key_name == "PRIMARY":
            lines.append(f"  PRIMARY KEY ({cols_text})")
        elif unique:
            lines.append(f"  UNIQUE KEY {_bq(key_name)} ({cols_text})")
        else:
            lines.append(f"  KEY {_bq(key_name)} ({cols_text})")
    tree = sqlglot.parse_one(t.ddl, read="mysql")
    n = 0
    for item in tree.this.expressions:
        fks = []
        cname = None
        if isinstance(item, exp.ForeignKey):
            fks = [item]
        elif isinstance(item, exp.Constraint):
            fks = [e for e in item.expressions if isinstance(e, exp.ForeignKey)]
            cname = item.this.name
        for fk in fks:
            n += 1
            ref = fk.args.get("reference")
            if ref is None:
                continue
            rtable = ref.this.this.name if isinstance(ref.this, exp.Schema) else ref.this.name
            rcols = (
                [e.name for e in ref.this.expressions] if isinstance(ref.this, exp.Schema) else []
            )
            opts = " ".join(str(o) for o in ref.args.get("options") or [])
            lines.append(
                f"  CONSTRAINT {_bq(cname or f'{t.name}_ibfk_{n}')} FOREIGN KEY ({','.join(_bq(e.name) for e in fk.expressions)}) "
                f"REFERENCES {_bq(rtable)} ({','.join(_bq(c) for c in rcols)})"
                + (f" {opts}" if opts else "")
            )
    return (
        f"CREATE TABLE {_bq(t.name)} (\n"
        + ",\n".join(lines)
        + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
    )


def _table_def(name: str, ddl: str) -> TableDef:
    tree = sqlglot.parse_one(ddl, read="mysql")
    schema = tree.this
    columns = []
    auto = None
    keys: dict[str, str] = {}
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            dtype = item.args.get("kind") or exp.DataType.build("TEXT")
            columns.append((item.name, dtype, item))
            for c in item.constraints:
                if isinstance(c.kind, exp.AutoIncrementColumnConstraint):
                    auto = item.name
    t = TableDef(name=name, columns=columns, keys=keys, auto=auto, ddl=ddl, index_names={})
    for key_name, cols, unique in _indexes(t):
        first = cols[0].lower() if cols else ""
        kind = "PRI" if key_name == "PRIMARY" else ("UNI" if unique and len(cols) == 1 else "MUL")
        if first and first not in keys:
            keys[first] = kind
        if key_name == "PRIMARY":
            for col in cols:
                keys[col.lower()] = "PRI"
        t.index_names[",".join(f"{name}.{c}" for c in cols)] = key_name
    return t


def _translate_create(tree: exp.Create, session: Session) -> tuple[str, list[str], str]:
    """SQLite's CREATE TABLE (+ CREATE INDEX) and the MySQL definition kept for SHOW."""
    schema = tree.this
    name = schema.this.name
    key_names = _key_names(schema)  # 1061 for a name given twice, before anything is made
    parts: list[str] = []
    checks: list[str] = []
    indexes: list[str] = []
    pk_cols: list[str] = []
    auto = None
    for item in schema.expressions:
        if isinstance(item, exp.PrimaryKey):
            pk_cols = [e.name for e in item.expressions]
        if isinstance(item, exp.ColumnDef):
            for c in item.constraints:
                if isinstance(c.kind, exp.AutoIncrementColumnConstraint):
                    auto = item.name
                if isinstance(c.kind, exp.PrimaryKeyColumnConstraint):
                    pk_cols = [item.name]
    if auto is not None and [c.lower() for c in pk_cols] != [auto.lower()]:
        raise MySQLError(
            1075,
            "42000",
            "Incorrect table definition; there can be only one auto column and it must be defined as a key",
        )
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            col = item.name
            dtype = item.args.get("kind")
            if dtype is None:
                raise E.syntax(item.sql("mysql"))
            if dtype.this in (DT.SET, DT.JSON, DT.GEOMETRY) if hasattr(DT, "GEOMETRY") else False:
                pass
            bits = [_q(col)]
            if auto is not None and col.lower() == auto.lower():
                bits.append("INTEGER PRIMARY KEY AUTOINCREMENT")
            else:
                bits.append(_sqlite_type(dtype))
                if len(pk_cols) == 1 and pk_cols[0].lower() == col.lower():
                    bits.append("PRIMARY KEY")
            if _is_text(dtype):
                bits.append("COLLATE NOCASE")
            for c in item.constraints:
                k = c.kind
                if isinstance(k, exp.NotNullColumnConstraint) and not k.args.get("allow_null"):
                    bits.append("NOT NULL")
                elif isinstance(k, exp.UniqueColumnConstraint):
                    bits.append("UNIQUE")
                elif isinstance(k, exp.DefaultColumnConstraint):
                    v = k.this
                    if (
                        isinstance(v, (exp.CurrentTimestamp,))
                        or (
                            isinstance(v, exp.Anonymous)
                            and v.name.upper() in ("NOW", "CURRENT_TIMESTAMP")
                        )
                        or (isinstance(v, exp.Column) and v.name.upper() == "CURRENT_TIMESTAMP")
                    ):
                        bits.append("DEFAULT CURRENT_TIMESTAMP")
                    else:
                        bits.append(
                            "DEFAULT " + v.sql("sqlite")
                            if isinstance(v, (exp.Literal, exp.Null, exp.Neg, exp.Boolean))
                            else "DEFAULT (" + v.sql("sqlite") + ")"
                        )
                elif isinstance(k, exp.CheckColumnConstraint):
                    checks.append(f"CHECK ({k.this.sql('sqlite')})")
                elif isinstance(k, exp.Reference):
                    checks.append(
                        f"FOREIGN KEY ({_q(col)}) REFERENCES {k.sql('sqlite')[len('REFERENCES ') :]}"
                    )
            if len(pk_cols) == 1 and pk_cols[0].lower() == col.lower() and "NOT NULL" not in bits:
                bits.append("NOT NULL")
            parts.append(" ".join(bits))
            checks.extend(_checks(col, dtype))
            if dtype.this in (DT.VARCHAR, DT.NVARCHAR, DT.CHAR, DT.NCHAR):
                n = (params(dtype) or [1])[0]
                for event in ("INSERT", f"UPDATE OF {_q(col)}"):
                    trigger = _q(
                        f"__cut_{name}_{col}_{event.split()[0].lower()}_{uuid.uuid4().hex[:8]}"
                    )
                    indexes.append(
                        f"CREATE TRIGGER {trigger} AFTER {event} ON {_q(name)} "
                        f"WHEN length(NEW.{_q(col)}) > {n} BEGIN "
                        f"UPDATE {_q(name)} SET {_q(col)} = substr(NEW.{_q(col)}, 1, {n}) "
                        f"WHERE rowid = NEW.rowid; END"
                    )
            if dtype.this in (DT.DATETIME, DT.TIMESTAMP):
                # MySQL stores a bare date given to a DATETIME as midnight of that day
                for event in ("INSERT", f"UPDATE OF {_q(col)}"):
                    trigger = _q(
                        f"__midnight_{name}_{col}_{event.split()[0].lower()}_{uuid.uuid4().hex[:8]}"
                    )
                    indexes.append(
                        f"CREATE TRIGGER {trigger} AFTER {event} ON {_q(name)} "
                        f"WHEN length(NEW.{_q(col)}) = 10 BEGIN "
                        f"UPDATE {_q(name)} SET {_q(col)} = NEW.{_q(col)} || ' 00:00:00' "
                        f"WHERE rowid = NEW.rowid; END"
                    )
        elif isinstance(item, exp.PrimaryKey):
            if len(pk_cols) > 1:
                checks.append("PRIMARY KEY (" + ", ".join(_q(c) for c in pk_cols) + ")")
        elif isinstance(item, exp.UniqueColumnConstraint):
            s = item.this
            cols = [e.name for e in s.expressions] if isinstance(s, exp.Schema) else []
            if cols:
                checks.append("UNIQUE (" + ", ".join(_q(c) for c in cols) + ")")
        elif isinstance(item, exp.IndexColumnConstraint):
            cols = [e.name for e in item.expressions]
            iname = key_names[id(item)]
            indexes.append(
                f"CREATE INDEX {_q(name + '__' + iname)} ON {_q(name)} ("
                + ", ".join(_q(c) for c in cols)
                + ")"
            )
        elif isinstance(item, (exp.Constraint, exp.ForeignKey, exp.CheckColumnConstraint)):
            fks = (
                [item]
                if isinstance(item, exp.ForeignKey)
                else [e for e in item.expressions if isinstance(e, exp.ForeignKey)]
                if isinstance(item, exp.Constraint)
                else []
            )
            for fk in fks:
                cols = [e.name for e in fk.expressions]
                ref = fk.args.get("reference")
                if ref is None:
                    raise E.syntax(fk.sql("mysql"))
                rtable = ref.this.this.name if isinstance(ref.this, exp.Schema) else ref.this.name
                rcols = (
                    [e.name for e in ref.this.expressions]
                    if isinstance(ref.this, exp.Schema)
                    else []
                )
                rdef = session.table(rtable)
                if rdef is None and rtable.lower() != name.lower():
                    raise MySQLError(
                        1005,
                        "HY000",
                        f'Can\'t create table `{session.db}`.`{name}` (errno: 150 "Foreign key constraint is incorrectly formed")',
                    )
                opts = " ".join(str(o) for o in ref.args.get("options") or [])
                checks.append(
                    f"FOREIGN KEY ({', '.join(_q(c) for c in cols)}) REFERENCES {_q(rdef.name if rdef else rtable)} ({', '.join(_q(c) for c in rcols)}) {opts}".rstrip()
                )
                indexes.append(
                    f"CREATE INDEX {_q(name + '__fk_' + '_'.join(cols))} ON {_q(name)} ("
                    + ", ".join(_q(c) for c in cols)
                    + ")"
                )
            if isinstance(item, exp.CheckColumnConstraint):
                checks.append(f"CHECK ({item.this.sql('sqlite')})")
            elif isinstance(item, exp.Constraint):
                for e in item.expressions:
                    if isinstance(e, exp.CheckColumnConstraint):
                        checks.append(
                            f"CONSTRAINT {_q(item.this.name)} CHECK ({e.this.sql('sqlite')})"
                        )
    seen = {c.lower() for (c,) in [(p.split('"')[1],) for p in parts]}
    if len(seen) != len(parts):
        raise MySQLError(1060, "42S21", "Duplicate column name")
    ddl = f"CREATE TABLE {_q(name)} (\n  " + ",\n  ".join(parts + checks) + "\n)"
    mysql = tree.copy()
    mysql.set("exists", False)
    mysql.set("properties", None)
    mysql_text = mysql.sql("mysql", pretty=True) + " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    return ddl, indexes, mysql_text
