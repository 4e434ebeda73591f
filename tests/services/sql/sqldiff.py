"""Helpers of the differential sql tests: run the same statements on MariaDB and on portsuite."""

from __future__ import annotations

import uuid
from typing import Any

import pymysql


def connect(port: int, db: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        password="",
        database=db,
        autocommit=True,
        ssl_disabled=True,
    )


def fresh_database(port: int) -> tuple[pymysql.connections.Connection, str]:
    name = "d" + uuid.uuid4().hex[:10]
    conn = connect(port)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
        cur.execute(f"USE {name}")
    return conn, name


def outcome(conn: pymysql.connections.Connection, sql: str) -> dict[str, Any]:
    """What a client sees of one statement: rows and column types, or affected rows, or the error."""
    with conn.cursor() as cur:
        try:
            n = cur.execute(sql)
        except pymysql.err.MySQLError as e:
            return {"error": e.args[0]}
        if cur.description is None:
            return {
                "affected": n,
                "insert_id": cur.lastrowid if sql.lstrip().upper().startswith("INSERT") else None,
            }
        return {
            "columns": [
                ("Tables_in_" if d[0].startswith("Tables_in_") else d[0], d[1])
                for d in cur.description
            ],
            "rows": [tuple(r) for r in cur.fetchall()],
        }
