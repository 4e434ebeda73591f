"""Real clients against the sql service: the mariadb/mysql command line and PyMySQL."""

from __future__ import annotations

import subprocess

import pymysql
import pytest

from portsuite.testing import need


def _cli(
    port: int, sql: str, *args: str, db: str | None = None
) -> subprocess.CompletedProcess[str]:
    exe = need("mariadb")
    cmd = [exe, "-h", "127.0.0.1", "-P", str(port), "-u", "student", "--batch", *args]
    if db:
        cmd.append(db)
    return subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60)


def test_cli_course_session(sql_port: int) -> None:
    """What a student types: create a database, a table, insert, select, see the table."""
    out = _cli(
        sql_port,
        """
        CREATE DATABASE cli_shop;
        USE cli_shop;
        CREATE TABLE product (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(8,2));
        INSERT INTO product (name, price) VALUES ('pen', 1.5), ('book', 12);
        SELECT id, name, price FROM product ORDER BY id;
        SELECT LAST_INSERT_ID();
        SHOW TABLES;
        DESCRIBE product;
        """,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["id\tname\tprice", "1\tpen\t1.50", "2\tbook\t12.00"]
    assert "LAST_INSERT_ID()" in lines and lines[lines.index("LAST_INSERT_ID()") + 1] == "1"
    assert "Tables_in_cli_shop" in lines and "product" in lines
    assert "id\tint(11)\tNO\tPRI\tNULL\tauto_increment" in lines
    assert "price\tdecimal(8,2)\tYES\t\tNULL\t" in lines


def test_cli_error_is_mysql_error(sql_port: int) -> None:
    out = _cli(sql_port, "SELECT * FROM nowhere;\n", db=None)
    assert out.returncode == 1
    assert "ERROR 1046 (3D000)" in out.stderr
    out = _cli(sql_port, "SELEC 1;\n")
    assert "ERROR 1064 (42000)" in out.stderr and "right syntax to use near '" in out.stderr


def test_cli_version_and_status(sql_port: int) -> None:
    out = _cli(sql_port, "status\nSELECT @@version_comment;\n")
    assert out.returncode == 0, out.stderr
    assert "portsuite" in out.stdout


def test_pymysql_roundtrip(sql_port: int) -> None:
    conn = pymysql.connect(
        host="127.0.0.1", port=sql_port, user="dev", password="x", autocommit=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS py_lib")
            cur.execute("USE py_lib")
            cur.execute(
                "CREATE TABLE book (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(100) NOT NULL UNIQUE, year INT)"
            )
            n = cur.execute(
                "INSERT INTO book (title, year) VALUES (%s, %s), (%s, %s)",
                ("Candide", 1759, "Germinal", 1885),
            )
            assert n == 2
            assert cur.lastrowid == 1
            cur.execute("SELECT title, year FROM book WHERE title = %s", ("candide",))
            assert cur.fetchall() == (("Candide", 1759),)  # case-insensitive, as utf8mb4_general_ci
            with pytest.raises(pymysql.err.IntegrityError) as e:
                cur.execute("INSERT INTO book (title) VALUES ('Germinal')")
            assert e.value.args[0] == 1062
            with pytest.raises(pymysql.err.ProgrammingError) as e:
                cur.execute("SELECT * FROM nope")
            assert e.value.args[0] == 1146
            assert cur.execute("UPDATE book SET year = year + 1") == 2
            assert cur.execute("DELETE FROM book WHERE year > 1800") == 1
    finally:
        conn.close()


def test_pymysql_transactions(sql_port: int) -> None:
    a = pymysql.connect(host="127.0.0.1", port=sql_port, user="a")
    b = pymysql.connect(host="127.0.0.1", port=sql_port, user="b", autocommit=True)
    try:
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute("CREATE DATABASE IF NOT EXISTS py_tx")
            ca.execute("USE py_tx")
            ca.execute("CREATE TABLE acct (id INT PRIMARY KEY, balance INT NOT NULL)")
            ca.execute("INSERT INTO acct VALUES (1, 100)")
            a.commit()
            ca.execute("UPDATE acct SET balance = 50 WHERE id = 1")
            a.rollback()
            cb.execute("USE py_tx")
            cb.execute("SELECT balance FROM acct")
            assert cb.fetchone() == (100,)
            ca.execute("UPDATE acct SET balance = 70 WHERE id = 1")
            a.commit()
            cb.execute("SELECT balance FROM acct")
            assert cb.fetchone() == (70,)
    finally:
        a.close()
        b.close()


def test_multi_statements_only_when_asked(sql_port: int) -> None:
    plain = pymysql.connect(host="127.0.0.1", port=sql_port, user="x")
    try:
        with plain.cursor() as cur, pytest.raises(pymysql.err.ProgrammingError) as e:
            cur.execute("SELECT 1; SELECT 2")
        assert e.value.args[0] == 1064
    finally:
        plain.close()
    multi = pymysql.connect(
        host="127.0.0.1",
        port=sql_port,
        user="x",
        client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )
    try:
        with multi.cursor() as cur:
            cur.execute("SELECT 1; SELECT 'two'")
            assert cur.fetchall() == ((1,),)
            assert cur.nextset()
            assert cur.fetchall() == (("two",),)
    finally:
        multi.close()


def test_ping_init_db_and_bad_database(sql_port: int) -> None:
    conn = pymysql.connect(host="127.0.0.1", port=sql_port, user="x", autocommit=True)
    try:
        conn.ping()
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS py_init")
        conn.select_db("py_init")  # COM_INIT_DB
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone() == ("py_init",)
        with pytest.raises(pymysql.err.OperationalError) as e:
            conn.select_db("nope")
        assert e.value.args[0] == 1049
    finally:
        conn.close()
    with pytest.raises(pymysql.err.OperationalError) as e:
        pymysql.connect(host="127.0.0.1", port=sql_port, user="x", database="missing")
    assert e.value.args[0] == 1049


def test_show_describe_and_information_schema(sql_port: int) -> None:
    """What GUI tools and ORMs read: SHOW, DESCRIBE, information_schema, COM_FIELD_LIST."""
    conn = pymysql.connect(
        host="127.0.0.1", port=sql_port, user="x", autocommit=True, ssl_disabled=True
    )
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS meta_db")
            cur.execute("USE meta_db")
            cur.execute(
                "CREATE TABLE cls (id INT AUTO_INCREMENT PRIMARY KEY, code CHAR(4) NOT NULL UNIQUE, "
                "label VARCHAR(40) DEFAULT 'none')"
            )
            cur.execute(
                "CREATE TABLE pupil (id INT AUTO_INCREMENT PRIMARY KEY, cls_id INT, FOREIGN KEY (cls_id) REFERENCES cls(id))"
            )
            cur.execute("SHOW DATABASES LIKE 'meta%'")
            assert cur.fetchall() == (("meta_db",),)
            cur.execute("SHOW FULL TABLES")
            assert cur.fetchall() == (("cls", "BASE TABLE"), ("pupil", "BASE TABLE"))
            cur.execute("SHOW COLUMNS FROM cls")
            assert [r[:5] for r in cur.fetchall()] == [
                ("id", "int(11)", "NO", "PRI", None),
                ("code", "char(4)", "NO", "UNI", None),
                ("label", "varchar(40)", "YES", "", "none"),
            ]
            cur.execute("SHOW INDEX FROM cls")
            assert [(r[2], r[4], r[1]) for r in cur.fetchall()] == [
                ("PRIMARY", "id", 0),
                ("code", "code", 0),
            ]
            cur.execute("SHOW CREATE TABLE pupil")
            create = cur.fetchone()[1]
            assert "`cls_id` int(11) DEFAULT NULL" in create
            assert "FOREIGN KEY (`cls_id`) REFERENCES `cls` (`id`)" in create
            cur.execute(
                "SELECT table_name, column_name, data_type, column_key FROM information_schema.columns "
                "WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position"
            )
            assert cur.fetchall() == (
                ("cls", "id", "int", "PRI"),
                ("cls", "code", "char", "UNI"),
                ("cls", "label", "varchar", ""),
                ("pupil", "id", "int", "PRI"),
                ("pupil", "cls_id", "int", "MUL"),
            )
            cur.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'meta_db'"
            )
            assert cur.fetchall() == (("meta_db",),)
            cur.execute("SELECT @@autocommit, @@version LIKE '8.0%'")
            assert cur.fetchone() == (1, 1)
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute("INSERT INTO information_schema.tables VALUES (1)")
            assert e.value.args[0] == 1044
    finally:
        conn.close()
    out = _cli(sql_port, "SHOW TABLES;\n", "--auto-rehash", db="meta_db")  # COM_FIELD_LIST
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Tables_in_meta_db", "cls", "pupil"]
