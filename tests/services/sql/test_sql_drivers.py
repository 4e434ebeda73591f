"""Prepared statements and ORMs: mysql-connector-python, SQLAlchemy, PHP's PDO."""

from __future__ import annotations

import datetime
import subprocess
from decimal import Decimal

import mysql.connector
import pytest
import sqlalchemy as sa

from portsuite.testing import need


def test_connector_prepared_statements(sql_port: int) -> None:
    conn = mysql.connector.connect(
        host="127.0.0.1", port=sql_port, user="dev", password="", use_pure=True, ssl_disabled=True
    )
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS conn_shop")
        cur.execute("USE conn_shop")
        cur.execute(
            "CREATE TABLE item (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30) NOT NULL, "
            "price DECIMAL(7,2), qty SMALLINT, seen DATETIME, ratio DOUBLE)"
        )
        conn.commit()
        ps = conn.cursor(prepared=True)  # COM_STMT_PREPARE / EXECUTE, binary protocol
        when = datetime.datetime(2024, 5, 1, 12, 30, 15)
        ps.execute(
            "INSERT INTO item (name, price, qty, seen, ratio) VALUES (?, ?, ?, ?, ?)",
            ("crayon", Decimal("1.25"), 12, when, 0.5),
        )
        ps.execute(
            "INSERT INTO item (name, price, qty, seen, ratio) VALUES (?, ?, ?, ?, ?)",
            ("gomme", None, -3, None, 2.25),
        )
        conn.commit()
        assert ps.lastrowid == 2
        ps.execute(
            "SELECT id, name, price, qty, seen, ratio FROM item WHERE qty > ? ORDER BY id", (-10,)
        )
        rows = ps.fetchall()
        assert rows == [
            (1, "crayon", Decimal("1.25"), 12, when, 0.5),
            (2, "gomme", None, -3, None, 2.25),
        ]
        ps.execute("SELECT COUNT(*) FROM item WHERE name = ?", ("CRAYON",))
        assert ps.fetchall() == [(1,)]
        with pytest.raises(mysql.connector.errors.ProgrammingError) as e:
            ps.execute("SELECT * FROM missing WHERE id = ?", (1,))
        assert e.value.errno == 1146
        ps.close()
    finally:
        conn.close()


def test_sqlalchemy_orm(sql_port: int) -> None:
    engine = sa.create_engine(
        f"mysql+pymysql://orm:pw@127.0.0.1:{sql_port}/", connect_args={"ssl_disabled": True}
    )
    with engine.begin() as c:
        c.execute(sa.text("CREATE DATABASE IF NOT EXISTS orm_db"))
    engine = sa.create_engine(
        f"mysql+pymysql://orm:pw@127.0.0.1:{sql_port}/orm_db", connect_args={"ssl_disabled": True}
    )
    meta = sa.MetaData()
    student = sa.Table(
        "student",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(50), nullable=False, unique=True),
        sa.Column("grade", sa.Numeric(4, 1)),
    )
    meta.create_all(engine)  # reflection: SHOW / information_schema queries
    with engine.begin() as c:
        c.execute(
            student.insert(),
            [{"name": "Ines", "grade": Decimal("15.5")}, {"name": "Karim", "grade": Decimal("12")}],
        )
    with engine.connect() as c:
        rows = c.execute(
            sa.select(student.c.name, student.c.grade).order_by(student.c.grade.desc())
        ).all()
        assert [tuple(r) for r in rows] == [("Ines", Decimal("15.5")), ("Karim", Decimal("12.0"))]
    inspector = sa.inspect(engine)
    assert inspector.get_table_names() == ["student"]
    assert [c["name"] for c in inspector.get_columns("student")] == ["id", "name", "grade"]
    meta.drop_all(engine)
    assert sa.inspect(engine).get_table_names() == []


PDO_SCRIPT = r"""<?php
$pdo = new PDO("mysql:host=127.0.0.1;port=" . $argv[1], "eleve", "secret",
    [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION, PDO::ATTR_EMULATE_PREPARES => false]);
$pdo->exec("CREATE DATABASE IF NOT EXISTS pdo_school");
$pdo->exec("USE pdo_school");
$pdo->exec("CREATE TABLE IF NOT EXISTS eleve (id INT AUTO_INCREMENT PRIMARY KEY, nom VARCHAR(40) NOT NULL, note DECIMAL(4,2))");
$ins = $pdo->prepare("INSERT INTO eleve (nom, note) VALUES (:nom, :note)");
$ins->execute([":nom" => "Lea", ":note" => "14.50"]);
$ins->execute([":nom" => "Tom", ":note" => "9.75"]);
echo "last=", $pdo->lastInsertId(), "\n";
$sel = $pdo->prepare("SELECT id, nom, note FROM eleve WHERE note > ? ORDER BY id");
$sel->execute([5]);
foreach ($sel->fetchAll(PDO::FETCH_ASSOC) as $row) {
    echo $row["id"], "|", $row["nom"], "|", $row["note"], "\n";
}
try {
    $pdo->query("SELECT * FROM absent");
} catch (PDOException $e) {
    echo "error=", $e->errorInfo[1], " state=", $e->errorInfo[0], "\n";
}
"""


def test_php_pdo(sql_port: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    php = need("php")
    probe = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30)
    if "pdo_mysql" not in probe.stdout:
        need("php-mysql (pdo_mysql)")
    script = tmp_path / "pdo.php"
    script.write_text(PDO_SCRIPT)
    out = subprocess.run(
        [php, str(script), str(sql_port)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "last=2",
        "1|Lea|14.50",
        "2|Tom|9.75",
        "error=1146 state=42S02",
    ]
