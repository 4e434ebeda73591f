"""
The same statements against a real MariaDB and against portsuite's sql service: result
sets, column names and types, affected rows, insert ids and error codes must match.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqldiff import fresh_database, outcome

# a small library, as in the course: keys, inserts, joins, GROUP BY/HAVING, ORDER/LIMIT,
# updates, deletes, transactions, errors
CORPUS = [
    "CREATE TABLE author (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(60) NOT NULL UNIQUE, born DATE)",
    """CREATE TABLE book (
        id INT AUTO_INCREMENT PRIMARY KEY,
        title VARCHAR(120) NOT NULL,
        author_id INT NOT NULL,
        price DECIMAL(6,2) NOT NULL DEFAULT 0,
        stock SMALLINT NOT NULL DEFAULT 0,
        added DATETIME,
        FOREIGN KEY (author_id) REFERENCES author(id)
    )""",
    "CREATE TABLE loan (id INT AUTO_INCREMENT PRIMARY KEY, book_id INT NOT NULL, reader VARCHAR(40) NOT NULL, "
    "returned TINYINT NOT NULL DEFAULT 0, FOREIGN KEY (book_id) REFERENCES book(id))",
    "INSERT INTO author (name, born) VALUES ('Victor Hugo', '1802-02-26'), ('Emile Zola', '1840-04-02'), "
    "('George Sand', '1804-07-01')",
    "SELECT LAST_INSERT_ID()",
    "INSERT INTO book (title, author_id, price, stock, added) VALUES "
    "('Les Miserables', 1, 12.50, 3, '2024-01-05 10:00:00'), ('Notre-Dame de Paris', 1, 9.90, 1, '2024-02-01 09:30:00'), "
    "('Germinal', 2, 8.00, 0, '2024-02-11 14:00:00'), ('La Bete humaine', 2, 7.25, 4, NULL), ('Indiana', 3, 6.00, 2, '2024-03-01')",
    "INSERT INTO loan (book_id, reader) VALUES (1, 'ines'), (1, 'karim'), (3, 'ines'), (5, 'lea')",
    "SELECT * FROM author ORDER BY id",
    "SELECT id, title, price FROM book ORDER BY price DESC",
    "SELECT title FROM book WHERE title = 'germinal'",
    "SELECT title FROM book WHERE title LIKE 'l%' ORDER BY title",
    "SELECT a.name, b.title FROM author a JOIN book b ON b.author_id = a.id ORDER BY a.name, b.title",
    "SELECT a.name, COUNT(*) AS books, SUM(b.price) AS total, AVG(b.price) AS mean FROM author a "
    "JOIN book b ON b.author_id = a.id GROUP BY a.name ORDER BY a.name",
    "SELECT author_id, COUNT(*) FROM book GROUP BY author_id HAVING COUNT(*) > 1 ORDER BY author_id",
    "SELECT title FROM book ORDER BY title LIMIT 2",
    "SELECT title FROM book ORDER BY title LIMIT 2 OFFSET 2",
    "SELECT title FROM book ORDER BY title LIMIT 1, 2",
    "SELECT b.title, COUNT(l.id) AS loans FROM book b LEFT JOIN loan l ON l.book_id = b.id GROUP BY b.id, b.title ORDER BY loans DESC, b.title",
    "SELECT DISTINCT reader FROM loan ORDER BY reader",
    "SELECT MAX(price), MIN(price), SUM(stock) FROM book",
    "SELECT COUNT(*) FROM book WHERE added IS NULL",
    "SELECT title, added FROM book WHERE added >= '2024-02-01' ORDER BY added",
    "SELECT name, born FROM author WHERE born < '1830-01-01' ORDER BY born",
    "SELECT price * stock AS value FROM book ORDER BY id",
    "SELECT stock + 1, stock - 1 FROM book ORDER BY id",
    "SELECT UPPER(title), LOWER(title), LENGTH(title) FROM book ORDER BY id LIMIT 2",
    "SELECT CONCAT(title, ' (', stock, ')') FROM book ORDER BY id",
    "SELECT title FROM book WHERE author_id IN (SELECT id FROM author WHERE name LIKE '%Zola') ORDER BY title",
    "SELECT COALESCE(added, 'never') FROM book ORDER BY id",
    "SELECT CONCAT(name, ' ', born) FROM author ORDER BY id",
    "SELECT 1 + 1, 'hello', NULL",
    "UPDATE book SET stock = stock + 1 WHERE author_id = 2",
    "UPDATE book SET price = 10 WHERE id = 999",
    "SELECT title, stock FROM book ORDER BY id",
    "DELETE FROM loan WHERE reader = 'lea'",
    "DELETE FROM loan WHERE reader = 'nobody'",
    "SELECT COUNT(*) FROM loan",
    # errors
    "INSERT INTO author (name) VALUES ('Victor Hugo')",
    "INSERT INTO book (title, author_id) VALUES ('Orphan', 42)",
    "DELETE FROM author WHERE id = 1",
    "INSERT INTO book (title) VALUES ('No author')",
    "INSERT INTO book (title, author_id) VALUES (NULL, 1)",
    "INSERT INTO book (title, author_id, stock) VALUES ('Huge', 1, 'many')",
    "INSERT INTO book (title, author_id, stock) VALUES ('Huge', 1, 70000)",
    "INSERT INTO author (name) VALUES ('" + "x" * 70 + "')",
    "SELECT * FROM nope",
    "SELECT nope FROM book",
    "SELEC 1",
    "CREATE TABLE author (id INT)",
    "DROP TABLE nope",
    "SELECT id FROM book JOIN loan ON loan.book_id = book.id",
    # transactions
    "START TRANSACTION",
    "INSERT INTO author (name) VALUES ('Colette')",
    "ROLLBACK",
    "SELECT COUNT(*) FROM author",
    "BEGIN",
    "INSERT INTO author (name) VALUES ('Balzac')",
    "COMMIT",
    "SELECT name FROM author ORDER BY id",
    "INSERT INTO author (name) VALUES ('Stendhal')",
    "SELECT LAST_INSERT_ID()",
    # a group of spellings equal but for case shows its first row's (MIN/MAX beside it)
    "INSERT INTO loan (book_id, reader) VALUES (2, 'INES'), (4, 'Karim'), (5, 'KARIM')",
    "SELECT reader, COUNT(*), MIN(book_id), MAX(id) FROM loan GROUP BY reader ORDER BY reader",
    "SELECT l.reader AS who, MAX(l.book_id) FROM loan l GROUP BY l.reader HAVING who = 'KARIM'",
    "SELECT reader, COUNT(*) FROM loan GROUP BY reader ORDER BY reader DESC",
    "DROP TABLE loan",
    "SHOW TABLES",
]


@pytest.fixture(scope="module")
def both(mariadb_port: int, sql_port: int):  # type: ignore[no-untyped-def]
    ref, _ = fresh_database(mariadb_port)
    ours, _ = fresh_database(sql_port)
    yield ref, ours
    ref.close()
    ours.close()


def same_outcomes(ref: Any, ours: Any, statements: Iterable[str]) -> None:
    """Each statement in turn on both servers: every outcome that differs, in one failure."""
    mismatches = []
    for sql in statements:
        expected, got = outcome(ref, sql), outcome(ours, sql)
        if expected != got:
            mismatches.append(f"{sql}\n  mariadb:   {expected}\n  portsuite: {got}")
    assert not mismatches, "\n".join(mismatches)


def same_program(mariadb_port: int, sql_port: int, program: list[str]) -> None:
    """
    A generated program in a fresh database on each server (dropped after): it stops at
    the first statement whose outcome differs, for Hypothesis to shrink.
    """
    ref, ref_db = fresh_database(mariadb_port)
    ours, our_db = fresh_database(sql_port)
    try:
        for sql in program:
            assert outcome(ours, sql) == outcome(ref, sql), sql
    finally:
        for conn, name in ((ref, ref_db), (ours, our_db)):
            outcome(conn, f"DROP DATABASE {name}")
            conn.close()


def test_corpus_matches_mariadb(both) -> None:  # type: ignore[no-untyped-def]
    same_outcomes(*both, CORPUS)


ident = st.sampled_from(["a", "b", "c"])
values = st.one_of(
    st.none(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**40), 2**40),
    st.text(alphabet="abcXYZ é'", max_size=12),
)


def _literal(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


statements = st.one_of(
    st.builds(
        lambda vs: (
            "INSERT INTO t (a, b, c) VALUES "
            + ", ".join(f"({_literal(x)}, {_literal(y)}, {_literal(z)})" for x, y, z in vs)
        ),
        st.lists(st.tuples(values, values, values), min_size=1, max_size=4),
    ),
    st.builds(
        lambda c, v: f"SELECT id, a, b, c FROM t WHERE {c} = {_literal(v)} ORDER BY id",
        ident,
        values,
    ),
    st.builds(lambda c: f"SELECT {c}, COUNT(*) FROM t GROUP BY {c} ORDER BY {c}", ident),
    st.builds(
        lambda c, n: f"SELECT id, {c} FROM t ORDER BY {c}, id LIMIT {n}", ident, st.integers(0, 5)
    ),
    st.builds(lambda c, v: f"DELETE FROM t WHERE {c} = {_literal(v)}", ident, values),
    st.builds(
        lambda v, w: f"UPDATE t SET a = {_literal(v)} WHERE b = {_literal(w)}", values, values
    ),
    st.just("SELECT COUNT(*), SUM(a), MIN(b), MAX(c) FROM t"),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(statements, min_size=1, max_size=8))
def test_generated_sequences_match(mariadb_port: int, sql_port: int, program: list[str]) -> None:
    schema = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, a INT, b BIGINT, c VARCHAR(10))"
    same_program(mariadb_port, sql_port, [schema, *program])


SCHEMA_CHANGES = [
    # key names: an unnamed key takes its first column's name, then _2, _3; a name twice: 1061
    "CREATE TABLE k1 (a INT, b INT, KEY (a), KEY (a), UNIQUE (b), KEY (b), KEY (a, b))",
    "SHOW CREATE TABLE k1",
    "SHOW INDEX FROM k1",
    "CREATE TABLE k2 (a INT, b INT, KEY k (a), KEY k (b))",
    "CREATE TABLE k3 (a INT, b INT, UNIQUE KEY k (a), KEY K (b))",
    "CREATE TABLE k4 (a INT PRIMARY KEY, b INT, KEY (b), KEY b (a))",
    "SHOW CREATE TABLE k4",
    "CREATE TABLE k5 (id INT AUTO_INCREMENT PRIMARY KEY, a INT NOT NULL, b INT, UNIQUE KEY u (a, b))",
    "SHOW INDEX FROM k5",
    "SHOW TABLES",
    "CREATE TABLE member (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(30) NOT NULL)",
    "INSERT INTO member (name) VALUES ('ines'), ('karim')",
    "ALTER TABLE member ADD COLUMN city VARCHAR(20) NOT NULL DEFAULT 'Lyon'",
    "ALTER TABLE member ADD email VARCHAR(50)",
    "SELECT * FROM member ORDER BY id",
    "INSERT INTO member (name, city, email) VALUES ('lea', 'Nantes', 'lea@example.org')",
    "INSERT INTO member (name, city) VALUES ('tom', 'a city name far too long')",
    "ALTER TABLE member RENAME COLUMN email TO mail",
    "SELECT name, mail FROM member ORDER BY id",
    "ALTER TABLE member DROP COLUMN mail",
    "ALTER TABLE member DROP COLUMN nope",
    "ALTER TABLE member ADD COLUMN city INT",
    "ALTER TABLE member RENAME TO club_member",
    "SELECT * FROM member",
    "SELECT id, name, city FROM club_member ORDER BY id",
    "SHOW TABLES",
]


def test_schema_changes_match_mariadb(both) -> None:  # type: ignore[no-untyped-def]
    same_outcomes(*both, SCHEMA_CHANGES)


prices = st.one_of(
    st.none(),
    st.decimals(min_value=-9999, max_value=9999, places=2, allow_nan=False, allow_infinity=False),
)
days = st.one_of(
    st.none(), st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2030, 12, 31))
)
names = st.text(alphabet="abAB", min_size=0, max_size=9)


def _typed_literal(v: object) -> str:
    if v is None:
        return "NULL"
    return f"'{v}'"


typed_statements = st.one_of(
    st.builds(
        lambda rows: (
            "INSERT INTO t2 (p, d, s) VALUES "
            + ", ".join(
                f"({_typed_literal(p)}, {_typed_literal(d)}, {_literal(s)})" for p, d, s in rows
            )
        ),
        st.lists(st.tuples(prices, days, names), min_size=1, max_size=3),
    ),
    st.just("SELECT id, p, d, s FROM t2 ORDER BY id"),
    st.just("SELECT s, COUNT(*), SUM(p), AVG(p), MIN(d), MAX(p) FROM t2 GROUP BY s ORDER BY s"),
    st.builds(lambda v: f"SELECT id FROM t2 WHERE p > {v} ORDER BY p, id", st.integers(-100, 100)),
    st.builds(lambda v: f"SELECT id, s FROM t2 WHERE s = {_literal(v)} ORDER BY id", names),
    st.builds(
        lambda d: f"SELECT id FROM t2 WHERE d < '{d}' ORDER BY d, id",
        days.filter(lambda x: x is not None),
    ),
    st.just("SELECT p * 2, p + 1 FROM t2 ORDER BY id"),
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(typed_statements, min_size=1, max_size=6))
def test_generated_typed_sequences_match(
    mariadb_port: int, sql_port: int, program: list[str]
) -> None:
    """DECIMAL, DATE and VARCHAR: formatting, case-insensitive comparison, aggregates."""
    schema = "CREATE TABLE t2 (id INT AUTO_INCREMENT PRIMARY KEY, p DECIMAL(6,2), d DATE, s VARCHAR(8) NOT NULL)"
    same_program(mariadb_port, sql_port, [schema, *program])


def test_rename_then_create_again_matches_mariadb(both) -> None:  # type: ignore[no-untyped-def]
    ref, ours = both
    for sql in (
        "CREATE TABLE note (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(5), at DATETIME)",
        "ALTER TABLE note RENAME TO old_note",
        "CREATE TABLE note (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(5), at DATETIME)",
        "INSERT INTO note (body, at) VALUES ('abc   ', '2025-06-01'), ('xyz', '2025-06-02 08:00:00')",
        "UPDATE note SET body = 'hello     ', at = '2025-07-01' WHERE id = 1",
        "SELECT id, body, CONCAT(body, '|'), at, CONCAT(at, '') FROM note ORDER BY id",
        "SHOW TABLES",
    ):
        assert outcome(ours, sql) == outcome(ref, sql), sql
