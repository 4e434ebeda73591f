#!/usr/bin/env python3
"""
sql vs MariaDB, same run: sysbench oltp_point_select and oltp_read_only.

Both servers get the same table (sysbench's sbtest1, TABLE_SIZE rows), prepared by
sysbench itself through each server, on loopback. MariaDB is Debian's mariadbd on a
scratch data folder; portsuite's sql runs under twistd with a data folder (WAL). The
servers are pinned to CPU 0 and sysbench to CPU 1 when the machine has two CPUs.
Prints queries per second and the ratio sql / MariaDB (target for point selects: 0.3).

    .venv/bin/python bench/sql.py     # TABLE_SIZE=10000 TIME=10 THREADS=4 to change
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import cpu_seconds, free_port, pin, terminate, wait_listening

TABLE_SIZE = int(os.environ.get("TABLE_SIZE", "10000"))
TIME = int(os.environ.get("TIME", "10"))
THREADS = int(os.environ.get("THREADS", "4"))
TWISTD = str(Path(sys.executable).parent / "twistd")


def sysbench(test: str, port: int, command: str) -> str:
    args = [
        "sysbench",
        test,
        "--db-driver=mysql",
        "--mysql-host=127.0.0.1",
        f"--mysql-port={port}",
        "--mysql-user=root",
        "--mysql-password=",
        "--mysql-db=sbtest",
        "--mysql-ssl=off",
        f"--table-size={TABLE_SIZE}",
        "--tables=1",
        f"--threads={THREADS}",
        f"--time={TIME}",
        "--report-interval=0",
        command,
    ]
    out = subprocess.run([*pin(1), *args], capture_output=True, text=True, timeout=TIME + 600)
    if out.returncode != 0:
        sys.exit(
            f"sysbench {test} {command} on {port} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        )
    return out.stdout


def qps(output: str) -> float:
    m = re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", output)
    return float(m.group(1)) if m else 0.0


def create_db(port: int) -> None:
    subprocess.run(
        [
            "mariadb",
            "-h",
            "127.0.0.1",
            "-P",
            str(port),
            "-u",
            "root",
            "--skip-ssl",
            "-e",
            "CREATE DATABASE IF NOT EXISTS sbtest",
        ],
        check=True,
        timeout=60,
    )


def main() -> None:
    for tool in ("sysbench", "mariadbd", "mariadb-install-db", "mariadb"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install sysbench mariadb-server mariadb-client")
    work = Path(tempfile.mkdtemp(prefix="portsuite-bench-sql-"))
    procs = []
    try:
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={work / 'maria'}",
                "--skip-test-db",
                *user,
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        mport = free_port()
        maria = subprocess.Popen(
            [
                *pin(0),
                "mariadbd",
                "--no-defaults",
                f"--datadir={work / 'maria'}",
                f"--port={mport}",
                "--bind-address=127.0.0.1",
                f"--socket={work / 'maria.sock'}",
                "--skip-grant-tables",
                f"--log-error={work / 'maria.err'}",
                *user,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(maria)
        sport = free_port()
        config = work / "sql.toml"
        config.write_text(
            f'[services.sql]\ntype = "sql"\nport = {sport}\ndata = "{work / "sqldata"}"\n'
        )
        ours = subprocess.Popen(
            [*pin(0), TWISTD, "-n", "--pidfile=", "portsuite", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(ours)
        wait_listening(mport, maria, "mariadbd", timeout=60)
        wait_listening(sport, ours, "portsuite sql", timeout=60)
        results: dict[str, dict[str, float]] = {}
        for name, port, proc in (("mariadb", mport, maria), ("sql", sport, ours)):
            create_db(port)
            sysbench("oltp_read_only", port, "prepare")
            for test in ("oltp_point_select", "oltp_read_only"):
                before = cpu_seconds(proc.pid)
                out = sysbench(test, port, "run")
                cpu = cpu_seconds(proc.pid) - before
                q = qps(out)
                results.setdefault(test, {})[name] = q
                results[test][name + "_cpu_us"] = cpu / max(q * TIME, 1) * 1e6
        print(f"sysbench, {TABLE_SIZE} rows, {THREADS} threads, {TIME} s each, loopback")
        print(
            f"{'test':<20} {'MariaDB q/s':>12} {'sql q/s':>10} {'ratio':>7} {'server CPU us/query (MariaDB / sql)':>38}"
        )
        for test, r in results.items():
            ratio = r["sql"] / r["mariadb"] if r["mariadb"] else 0.0
            print(
                f"{test:<20} {r['mariadb']:>12.0f} {r['sql']:>10.0f} {ratio:>6.2f}x "
                f"{r['mariadb_cpu_us']:>18.0f} / {r['sql_cpu_us']:.0f}"
            )
    finally:
        terminate(*procs, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
