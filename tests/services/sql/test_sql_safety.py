"""
The reactor is never blocked, statements are interrupted at max_execution_time, what was
acknowledged survives kill -9, and a hostile client gets an error and a close, never a
traceback or unbounded memory.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pymysql
import pytest

from portsuite.testing import start_suite


def _connect(port: int, **kw: object) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="t",
        autocommit=True,
        ssl_disabled=True,
        connect_timeout=20,
        **kw,
    )


def _echo_rtt(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        start = time.perf_counter()
        s.sendall(b"ping\n")
        got = b""
        while len(got) < 5:
            got += s.recv(16)
        return time.perf_counter() - start


def test_cross_join_interrupted_while_other_services_answer(portsuite) -> None:  # type: ignore[no-untyped-def]
    s = portsuite(
        {
            "services": {
                "db": {"type": "sql", "port": 0, "max_execution_time": 2},
                "echo": {"type": "echo", "port": 0},
            }
        }
    )
    conn = _connect(s.port("db"))
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE big")
        cur.execute("USE big")
        cur.execute("CREATE TABLE n (i INT PRIMARY KEY)")
        cur.executemany("INSERT INTO n VALUES (%s)", [(i,) for i in range(1000)])
    outcome: dict[str, object] = {}

    def heavy() -> None:
        started = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM n a, n b, n c WHERE a.i + b.i + c.i = -1")
        except pymysql.err.MySQLError as e:
            outcome["error"] = e.args[0]
        outcome["took"] = time.monotonic() - started

    t = threading.Thread(target=heavy)
    t.start()
    time.sleep(0.3)
    rtts = []
    while t.is_alive() and len(rtts) < 200:
        rtts.append(_echo_rtt(s.port("echo")))
        time.sleep(0.01)
    t.join(60)
    assert outcome.get("error") == 3024  # max_execution_time
    assert 1.5 < float(outcome["took"]) < 30  # type: ignore[arg-type]
    assert rtts, "the statement ended before any echo"
    worst = max(rtts)
    print(f"echo round trips during the cross join: {len(rtts)}, worst {worst * 1000:.1f} ms")
    assert worst < 0.25
    with conn.cursor() as cur:  # the connection is usable afterwards
        cur.execute("SELECT COUNT(*) FROM n")
        assert cur.fetchone() == (1000,)
    conn.close()


def test_session_max_execution_time(sql_port: int) -> None:
    conn = _connect(sql_port)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION max_execution_time = 300")
            with pytest.raises(pymysql.err.OperationalError) as e:
                cur.execute(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
                    "SELECT COUNT(*) FROM c"
                )
            assert e.value.args[0] == 3024
    finally:
        conn.close()


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    config = {"services": {"db": {"type": "sql", "port": 0, "data": str(tmp_path / "sql")}}}
    s = start_suite(config, subprocess=True, base_dir=tmp_path)
    try:
        conn = _connect(s.port("db"))
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE durable")
            cur.execute("USE durable")
            cur.execute("CREATE TABLE ev (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))")
            for i in range(50):
                cur.execute("INSERT INTO ev (what) VALUES (%s)", (f"e{i}",))
            cur.execute("BEGIN")
            cur.execute("INSERT INTO ev (what) VALUES ('uncommitted')")
        os.kill(s.pid, signal.SIGKILL)
        conn.close()
    finally:
        s.kill()
    s = start_suite(config, subprocess=True, base_dir=tmp_path)
    try:
        conn = _connect(s.port("db"), database="durable")
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), MAX(id) FROM ev")
            assert cur.fetchone() == (50, 50)
            cur.execute("SELECT COUNT(*) FROM ev WHERE what = 'uncommitted'")
            assert cur.fetchone() == (0,)
        conn.close()
    finally:
        s.stop()


def _greeting(sock: socket.socket) -> bytes:
    head = sock.recv(4)
    n = int.from_bytes(head[:3], "little")
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return data


def _read_packet(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return b""
        head += chunk
    n = int.from_bytes(head[:3], "little")
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_garbage_and_oversized_packets(portsuite) -> None:  # type: ignore[no-untyped-def]
    s = portsuite({"services": {"db": {"type": "sql", "port": 0, "max_allowed_packet": 4096}}})
    port = s.port("db")
    # garbage instead of a handshake response: an error or a close, nothing else
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert _greeting(sock)[0] == 10
        sock.sendall(b"\x05\x00\x00\x01hello")
        reply = _read_packet(sock)
        assert reply == b"" or reply[0] == 0xFF
    # a declared length past max_allowed_packet: error 1153, closed, nothing buffered
    conn = _connect(port)
    sock = conn._sock
    sock.sendall(struct.pack("<I", 0xFFFFFF)[:3] + b"\x00" + b"\x03SELECT ")
    reply = _read_packet(sock)
    assert reply[0] == 0xFF and struct.unpack("<H", reply[1:3])[0] == 1153
    assert _read_packet(sock) == b""
    # an unknown command, an empty query and a truncated prepared-statement execute
    conn = _connect(port)
    sock = conn._sock
    for payload, code in ((b"\x99", 1047), (b"\x03", 1065), (b"\x17\x01", 1835)):
        sock.sendall(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
        reply = _read_packet(sock)
        assert reply[0] == 0xFF and struct.unpack("<H", reply[1:3])[0] == code, (payload, reply)
    # the service still serves everyone else
    ok = _connect(port)
    with ok.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    ok.close()


def test_client_gone_mid_statement_frees_its_worker(portsuite) -> None:  # type: ignore[no-untyped-def]
    """A client that hangs up during a long statement: the statement stops, the worker is free."""
    s = portsuite({"services": {"db": {"type": "sql", "port": 0, "threads": 1}}})
    conn = _connect(s.port("db"))
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE gone")
    sock = conn._sock
    query = (
        b"\x03WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
        b"SELECT COUNT(*) FROM c"
    )
    sock.sendall(struct.pack("<I", len(query))[:3] + b"\x00" + query)
    time.sleep(0.5)
    sock.shutdown(socket.SHUT_RDWR)  # PyMySQL's file object would keep the socket open
    sock.close()
    # with one worker thread, this answers only once the abandoned statement has stopped
    started = time.monotonic()
    other = _connect(s.port("db"))
    with other.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    other.close()
    assert time.monotonic() - started < 30


def test_prepared_statements_are_bounded(sql_port: int) -> None:
    conn = _connect(sql_port)
    sock = conn._sock
    try:
        codes = set()
        for _ in range(1030):
            payload = b"\x16SELECT 1"
            sock.sendall(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)
            first = _read_packet(sock)
            if first[0] == 0xFF:
                codes.add(struct.unpack("<H", first[1:3])[0])
                break
            # column definition and EOF follow an OK for a SELECT with one column
            _read_packet(sock)
            _read_packet(sock)
        assert codes == {1461}
    finally:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def test_a_create_table_that_fails_half_way_leaves_nothing(sql_port: int) -> None:
    """
    The table's SQLite DDL runs, then its second index with the same name fails: the
    table is not left behind (neither in SHOW TABLES nor under its name), as in MySQL.
    """
    from sqldiff import fresh_database

    conn, _ = fresh_database(sql_port)
    with conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError):
            cur.execute("CREATE TABLE half (a INT, KEY k (a), KEY k (a))")
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()
        cur.execute("CREATE TABLE half (a INT, KEY k (a))")  # the name is free
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == (("half",),)
    conn.close()
