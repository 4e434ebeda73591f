"""
bench/mail.py: portsuite's smtp against aiosmtpd's Sink, in one run; then pop3 RETR and
imap FETCH throughput over what smtp stored.

  accept    8 concurrent SMTP clients (asyncio, one connection each, no pipelining:
            MAIL, RCPT, DATA, body, each waiting for its reply) send 10 KB messages for
            --seconds; messages accepted (250 after the final dot) per second.
            portsuite writes each one to a Maildir (tmp/, fsync, rename into new/)
            before its 250; aiosmtpd's Sink throws it away.
  retr      one POP3 client (USER/PASS, then RETR 1..N) for --seconds: messages/s, MB/s
  fetch     one IMAP client (SELECT, FETCH n:m BODY.PEEK[] in batches of 50): messages/s

Both servers run as subprocesses pinned to cpu 0, this client to cpu 1 (when there are
two cpus). Rounds are interleaved; medians are printed. Every loop is bounded in time
and count; traffic stays on 127.0.0.1.

    .venv/bin/python bench/mail.py [--rounds 3] [--seconds 5] [--clients 8] [--size 10240]
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import json
import os
import poplib
import shutil
import statistics
import subprocess as sp
import sys
import tempfile
import time
from pathlib import Path

from benchlib import free_port, pin, terminate, wait_listening

BIN = Path(sys.executable).parent
MAX_MESSAGES = 200_000  # per run of the accept phase, whatever the speed


def message(size: int, n: int) -> bytes:
    head = (
        f"From: bench@dev.test\r\nTo: alice@lab.test\r\nSubject: bench {n}\r\n"
        f"Message-ID: <{n}.{time.time()}@dev.test>\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed")
        if line[3:4] != b"-":
            return line


async def _client(port: int, payload: bytes, stop: float, counts: list[int], i: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _reply(reader)
        writer.write(b"EHLO bench.test\r\n")
        await _reply(reader)
        while time.monotonic() < stop and sum(counts) < MAX_MESSAGES:
            for cmd in (b"MAIL FROM:<bench@dev.test>\r\n", b"RCPT TO:<alice@lab.test>\r\n"):
                writer.write(cmd)
                r = await _reply(reader)
                assert r.startswith(b"250"), r
            writer.write(b"DATA\r\n")
            r = await _reply(reader)
            assert r.startswith(b"354"), r
            writer.write(payload + b".\r\n")
            r = await _reply(reader)
            assert r.startswith(b"250"), r
            counts[i] += 1
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


def accept_rate(port: int, clients: int, size: int, seconds: float) -> float:
    payload = message(size, 0)

    async def run() -> float:
        counts = [0] * clients
        t0 = time.monotonic()
        stop = t0 + seconds
        await asyncio.gather(*(_client(port, payload, stop, counts, i) for i in range(clients)))
        return sum(counts) / (time.monotonic() - t0)

    return asyncio.run(run())


def retr_rate(port: int, seconds: float) -> tuple[float, float]:
    p = poplib.POP3("127.0.0.1", port, timeout=60)
    p.user("alice")
    p.pass_("wonderland")
    count, _ = p.stat()
    n = octets = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and n < count:
        _resp, lines, got = p.retr(n + 1)
        octets += got
        n += 1
    elapsed = time.monotonic() - t0
    p.quit()
    return n / elapsed, octets / elapsed / 1e6


def fetch_rate(port: int, seconds: float) -> tuple[float, float]:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    m.login("alice", "wonderland")
    _typ, data = m.select("INBOX", readonly=True)
    count = int(data[0])
    n = octets = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and n < count:
        last = min(count, n + 50)
        _typ, data = m.fetch(f"{n + 1}:{last}", "(BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                octets += len(item[1])
        n = last
    elapsed = time.monotonic() - t0
    m.logout()
    return n / elapsed, octets / elapsed / 1e6


def start_portsuite(folder: Path) -> tuple[sp.Popen[bytes], dict[str, int]]:
    ports = {"smtp": free_port(), "pop3": free_port(), "imap": free_port()}
    mail = folder / "mail"
    config = folder / "mail.toml"
    config.write_text(
        '[users]\nalice = "wonderland"\n'
        f'[services.smtp]\ntype = "smtp"\nport = {ports["smtp"]}\ndomains = ["lab.test"]\n'
        f'mailboxes = "{mail}"\nmax_recipients = 100\n'
        f'[services.pop3]\ntype = "pop3"\nport = {ports["pop3"]}\nmailboxes = "{mail}"\n'
        f'[services.imap]\ntype = "imap"\nport = {ports["imap"]}\nmailboxes = "{mail}"\n'
    )
    proc = sp.Popen(
        [
            *pin(0),
            str(BIN / "twistd"),
            "-n",
            "--pidfile=",
            "-l",
            str(folder / "twistd.log"),
            "portsuite",
            "-c",
            str(config),
        ],
        stdout=sp.DEVNULL,
        stderr=sp.DEVNULL,
    )
    for port in ports.values():
        wait_listening(port, proc, "portsuite")
    return proc, ports


def start_aiosmtpd() -> tuple[sp.Popen[bytes], int]:
    port = free_port()
    proc = sp.Popen(
        [
            *pin(0),
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
        stdout=sp.DEVNULL,
        stderr=sp.DEVNULL,
    )
    wait_listening(port, proc, "aiosmtpd")
    return proc, port


def stop(proc: sp.Popen[bytes]) -> None:
    terminate(proc, timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--size", type=int, default=10240)
    ap.add_argument("--json", action="store_true", help="print the medians as JSON too")
    args = ap.parse_args()
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        raise SystemExit("aiosmtpd is not installed: .venv/bin/pip install aiosmtpd") from None
    client_pin = pin(1)
    if client_pin:
        os.sched_setaffinity(0, {int(client_pin[-1])})

    ours: list[float] = []
    peer: list[float] = []
    retr: list[tuple[float, float]] = []
    fetch: list[tuple[float, float]] = []
    stored_per_round: list[int] = []
    for rnd in range(args.rounds):
        folder = Path(tempfile.mkdtemp(prefix="bench-mail-"))
        try:
            proc, ports = start_portsuite(folder)
            try:
                ours.append(accept_rate(ports["smtp"], args.clients, args.size, args.seconds))
                new = folder / "mail" / "alice" / "new"
                stored_per_round.append(len(list(new.iterdir())))
                retr.append(retr_rate(ports["pop3"], args.seconds))
                fetch.append(fetch_rate(ports["imap"], args.seconds))
            finally:
                stop(proc)
            sink, port = start_aiosmtpd()
            try:
                peer.append(accept_rate(port, args.clients, args.size, args.seconds))
            finally:
                stop(sink)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(
            f"round {rnd + 1}: portsuite {ours[-1]:.0f} msg/s (stored {stored_per_round[-1]}), "
            f"aiosmtpd Sink {peer[-1]:.0f} msg/s, pop3 RETR {retr[-1][0]:.0f} msg/s, "
            f"imap FETCH {fetch[-1][0]:.0f} msg/s",
            flush=True,
        )

    med = statistics.median
    ratio = med(ours) / med(peer)
    print()
    print(f"{'':34}{'portsuite':>12}{'aiosmtpd Sink':>16}{'ratio':>8}")
    print(
        f"{f'SMTP accepted, {args.size // 1024} KB, {args.clients} clients':34}"
        f"{med(ours):>8.0f} m/s{med(peer):>12.0f} m/s{ratio:>7.2f}x"
    )
    print(
        f"{'POP3 RETR, 1 client':34}{med(r[0] for r in retr):>8.0f} m/s"
        f"   ({med(r[1] for r in retr):.1f} MB/s)"
    )
    print(
        f"{'IMAP FETCH BODY.PEEK[], 1 client':34}{med(f[0] for f in fetch):>8.0f} m/s"
        f"   ({med(f[1] for f in fetch):.1f} MB/s)"
    )
    print()
    print(
        f"SUMMARY mail: smtp accept {ratio:.2f}x of aiosmtpd Sink "
        f"({med(ours):.0f} vs {med(peer):.0f} msg/s, each of ours fsync'd to a Maildir); "
        f"pop3 RETR {med(r[0] for r in retr):.0f} msg/s; imap FETCH {med(f[0] for f in fetch):.0f} msg/s"
    )
    if args.json:
        print(json.dumps({"smtp": med(ours), "aiosmtpd": med(peer), "ratio": ratio}))


if __name__ == "__main__":
    main()
