"""
The ftp service as an attacker sees it: the jail, anonymous writes, FTP bounce,
stolen passive connections, the passive range, timeouts, logins, uploads, garbage.
"""

from __future__ import annotations

import ftplib
import io
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ftphelp import PASSWORD, Raw, login

from portsuite.testing import free_port, start_suite


def _pasv_port(reply: str) -> int:
    numbers = reply[reply.index("(") + 1 : reply.index(")")].split(",")
    return int(numbers[4]) * 256 + int(numbers[5])


def _refused_soon(port: int) -> bool:
    """The port stops accepting (Twisted closes a listening port on its next turn)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.1)
    return False


# -- the jail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",  # ..
        "../../../../../../etc/passwd",
        "pub/../../outside/secret.txt",
        "/etc/passwd",  # absolute: the jail's /etc, which does not exist
        "link-out.txt",  # a symlink to a file outside
        "dir-out/secret.txt",  # through a symlinked folder outside
    ],
)
def test_no_path_leaves_the_jail(ftp_suite: Any, path: str) -> None:
    s = ftp_suite()
    f = login(s)
    with pytest.raises(ftplib.error_perm, match="^550"):
        f.retrbinary(f"RETR {path}", io.BytesIO().write)
    with pytest.raises(ftplib.error_perm, match="^550"):
        f.size(path)
    # the session is still fine, and a symlink inside the jail works
    got = io.BytesIO()
    f.retrbinary("RETR link-in.txt", got.write)
    assert got.getvalue().startswith(b"Bonjour")
    f.quit()


def test_cwd_stays_in_the_jail(ftp_suite: Any) -> None:
    s = ftp_suite()
    f = login(s)
    for where in ("..", "../..", "dir-out", "/../..", "pub/../../outside"):
        with pytest.raises(ftplib.error_perm, match="^550"):
            f.cwd(where)
        assert f.pwd() == "/"
    f.cwd("/pub")
    f.cwd("..")
    assert f.pwd() == "/"
    with pytest.raises(ftplib.error_perm, match="^550"):
        f.nlst("dir-out")  # listing through it: nothing
    f.quit()


def test_account_is_jailed_in_its_home(ftp_suite: Any) -> None:
    s = ftp_suite()
    bob = s.tree / "homes" / "bob"
    bob.mkdir()
    (bob / "private.txt").write_text("bob's\n")
    f = login(s, "alice", PASSWORD)
    for path in ("../bob/private.txt", "/../bob/private.txt"):
        with pytest.raises(ftplib.error_perm, match="^550"):
            f.retrbinary(f"RETR {path}", io.BytesIO().write)
    for path in ("../bob/x.txt", "/../../escaped.txt"):
        with pytest.raises(ftplib.error_perm, match="^550"):
            f.storbinary(f"STOR {path}", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match="^550"):
        f.rename("/", "../moved")
    assert sorted(p.name for p in s.tree.iterdir()) == ["homes", "outside", "root"]
    assert sorted(p.name for p in bob.iterdir()) == ["private.txt"]
    f.quit()


def test_anonymous_never_writes(ftp_suite: Any) -> None:
    s = ftp_suite()
    before = sorted(p.name for p in (s.tree / "root").rglob("*"))
    f = login(s)
    attempts = [
        lambda: f.storbinary("STOR new.txt", io.BytesIO(b"x")),
        lambda: f.storbinary("APPE README.txt", io.BytesIO(b"x")),
        lambda: f.mkd("dir"),
        lambda: f.rmd("pub"),
        lambda: f.delete("README.txt"),
        lambda: f.rename("README.txt", "r.txt"),
    ]
    for attempt in attempts:
        with pytest.raises(ftplib.error_perm, match="^550"):
            attempt()
    assert sorted(p.name for p in (s.tree / "root").rglob("*")) == before
    assert (s.tree / "root" / "README.txt").read_text() == "Bonjour ! Hello!\n"
    f.quit()


def test_anonymous_can_be_turned_off(ftp_suite: Any) -> None:
    s = ftp_suite(anonymous=False)
    r = Raw(s.ftp_port)
    assert r.login().startswith("530")
    r.close()


# -- no FTP bounce ------------------------------------------------------------------------


def test_port_and_eprt_to_another_address_are_refused(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    r.login()
    assert r.cmd("PORT 10,0,0,1,31,144").startswith("504")  # a third party
    assert r.cmd("PORT 127,0,0,2,31,144").startswith("504")  # another loopback address
    assert r.cmd("EPRT |1|10.0.0.1|8080|").startswith("504")
    assert r.cmd("EPRT |2|::1|8080|").startswith("522")  # IPv6 from an IPv4 client
    assert r.cmd("PORT 127,0,0,1,0,25").startswith("504")  # a well-known port (SMTP)
    assert r.cmd("PORT 1,2,3").startswith("501")
    assert r.cmd("PORT 999,0,0,1,1,1").startswith("501")
    assert r.cmd("EPRT garbage").startswith("501")
    # nothing was set up: a transfer now has no data channel
    assert r.cmd("RETR README.txt").startswith("425")
    r.close()


def _thief_refused(port: int) -> bool:
    """A connection to the passive port from another address is closed without a byte."""
    thief = socket.socket()
    thief.settimeout(20)
    thief.bind(("127.0.0.2", 0))
    thief.connect(("127.0.0.1", port))
    closed = thief.recv(100) == b""
    thief.close()
    return closed


def _retr_on(r: Raw, port: int, name: str) -> bytes:
    """RETR over a connection to the passive port: the bytes, after 150 and 226."""
    data = socket.create_connection(("127.0.0.1", port), timeout=20)
    assert r.cmd(f"RETR {name}").startswith("150")
    got = b""
    while chunk := data.recv(65536):
        got += chunk
    data.close()
    assert r.reply().startswith("226")
    return got


def test_passive_connection_from_another_address_is_refused(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    r.login()
    port = _pasv_port(r.cmd("PASV"))
    assert _thief_refused(port)  # a thief on another address connects first
    # the real client still gets its file
    assert _retr_on(r, port, "README.txt") == b"Bonjour ! Hello!\n"
    r.close()


def test_a_kept_passive_port_takes_no_connection_between_transfers(ftp_suite: Any) -> None:
    # no passive_ports: a session keeps its passive port from one transfer to the next
    s = ftp_suite()
    r = Raw(s.ftp_port)
    r.login()
    port = _pasv_port(r.cmd("PASV"))
    assert _retr_on(r, port, "README.txt") == b"Bonjour ! Hello!\n"
    # between transfers nothing waits for a connection: even one from the client's
    # own address is closed without a byte
    stray = socket.create_connection(("127.0.0.1", port), timeout=20)
    assert stray.recv(100) == b""
    stray.close()
    assert _pasv_port(r.cmd("PASV")) == port
    assert _thief_refused(port)  # still refused from another address
    assert _retr_on(r, port, "pub/été.txt") == b"accents\n"
    # EPSV keeps it too; left unused, then ABOR: the port is let go
    epsv = r.cmd("EPSV")
    assert epsv.startswith("229") and f"(|||{port}|)" in epsv
    assert r.cmd("ABOR").startswith("225")
    assert _refused_soon(port)
    assert r.cmd("QUIT").startswith("221")
    r.close()


# -- the passive range and timeouts ---------------------------------------------------------


def test_passive_range_exhausted_gets_425(ftp_suite: Any) -> None:
    port = free_port()
    s = ftp_suite(passive_ports=[port, port])
    a, b = Raw(s.ftp_port), Raw(s.ftp_port)
    a.login()
    b.login()
    assert _pasv_port(a.cmd("PASV")) == port
    start = time.monotonic()
    reply = b.cmd("PASV")
    assert reply.startswith("425") and f"{port}-{port}" in reply
    assert b.cmd("EPSV").startswith("425")
    assert time.monotonic() - start < 20  # an answer, not a hang
    a.cmd("ABOR")  # frees the port
    # b's transfer done, the port is free again: a range is shared by every session,
    # so none keeps a port of it between transfers
    assert _retr_on(b, _pasv_port(b.cmd("PASV")), "README.txt") == b"Bonjour ! Hello!\n"
    assert _pasv_port(a.cmd("PASV")) == port
    a.close()
    b.close()


def test_data_connection_that_never_comes_times_out(ftp_suite: Any) -> None:
    s = ftp_suite(data_timeout=1.0)
    r = Raw(s.ftp_port)
    r.login()
    port = _pasv_port(r.cmd("PASV"))
    reply = r.cmd("RETR README.txt")  # and never connect
    assert reply.startswith("425") and "within 1s" in reply
    assert _refused_soon(port)  # no longer listening
    assert r.cmd("NOOP").startswith("200")  # the session goes on
    # a passive port opened and then left alone (no transfer command, no connection):
    # closed after data_timeout all the same
    idle = _pasv_port(r.cmd("PASV"))
    time.sleep(2)
    assert r.cmd("RETR README.txt").startswith("425")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", idle), timeout=5).close()
    # active mode towards a port nobody listens on: 425 too
    dead = free_port()
    assert r.cmd(f"PORT 127,0,0,1,{dead // 256},{dead % 256}").startswith("200")
    assert r.cmd("LIST").startswith("425")
    r.close()


def test_idle_control_connection_is_closed(ftp_suite: Any) -> None:
    s = ftp_suite(idle_timeout=1)
    r = Raw(s.ftp_port)
    r.login()
    r.sock.settimeout(30)
    rest = r.file.read()  # until the server closes
    assert rest == b"" or rest.startswith(b"421")


# -- logins ----------------------------------------------------------------------------------


def test_commands_before_login_get_530(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    for cmd in (
        "LIST",
        "RETR README.txt",
        "CWD pub",
        "PASV",
        "PORT 127,0,0,1,200,1",
        "STOR x",
        "MKD x",
        "PWD",
        "SIZE README.txt",
    ):
        assert r.cmd(cmd).startswith("530"), cmd
    assert r.cmd("PASS x").startswith("503")
    assert r.cmd("USER alice").startswith("331")
    assert r.cmd("LIST").startswith("530")
    r.close()


def test_wrong_password_is_slow_and_limited_per_host(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    r.cmd("USER alice")
    start = time.monotonic()
    assert r.cmd("PASS nope").startswith("530")
    assert time.monotonic() - start >= 0.9  # a wrong guess costs a second
    r.close()
    # four more wrong guesses at once (each costs a second, in parallel)
    replies: list[str] = []

    def guess() -> None:
        c = Raw(s.ftp_port)
        c.cmd("USER alice")
        replies.append(c.cmd("PASS wrong"))
        c.close()

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(replies) == 4 and all(x.startswith("530") for x in replies)
    # now this address is shut out, even with the right password
    c = Raw(s.ftp_port)
    c.cmd("USER alice")
    assert c.cmd(f"PASS {PASSWORD}").startswith("421")
    assert c.reply() == ""  # and closed
    c.close()


# -- uploads -------------------------------------------------------------------------------


def _store_raw(r: Raw, cmd: str, payload: bytes) -> str:
    """Upload over a passive data connection by hand; the final reply."""
    port = _pasv_port(r.cmd("PASV"))
    data = socket.create_connection(("127.0.0.1", port), timeout=20)
    first = r.cmd(cmd)
    if not first.startswith("150"):
        data.close()
        return first
    try:
        data.sendall(payload)
    except OSError:
        pass  # the server cut the data connection: the reply says why
    data.close()
    return r.reply()


def test_upload_over_max_upload_gets_552_and_leaves_nothing(ftp_suite: Any) -> None:
    s = ftp_suite(max_upload=100_000)
    r = Raw(s.ftp_port)
    r.login("alice", PASSWORD)
    assert _store_raw(r, "STOR ok.bin", b"x" * 100_000).startswith("226")
    assert _store_raw(r, "STOR big.bin", b"x" * 3_000_000).startswith("552")
    assert _store_raw(r, "APPE ok.bin", b"y" * 10).startswith("552")
    home = s.tree / "homes" / "alice"
    assert sorted(p.name for p in home.iterdir()) == ["ok.bin"]  # no big.bin, no temp file
    assert (home / "ok.bin").read_bytes() == b"x" * 100_000  # APPE: cut back to its size
    # a resumed STOR (REST) that goes over: cut back to the resume point, to resume again
    assert r.cmd("REST 99990").startswith("350")
    assert _store_raw(r, "STOR ok.bin", b"z" * 20).startswith("552")
    assert (home / "ok.bin").read_bytes() == b"x" * 99_990
    r.close()


def test_interrupted_upload_leaves_no_file(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    r.login("alice", PASSWORD)
    port = _pasv_port(r.cmd("PASV"))
    data = socket.create_connection(("127.0.0.1", port), timeout=20)
    assert r.cmd("STOR half.bin").startswith("150")
    data.sendall(b"z" * 200_000)
    # the client dies: RST instead of FIN
    data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    data.close()
    assert r.reply().startswith("426")
    home = s.tree / "homes" / "alice"
    assert list(home.iterdir()) == []  # neither half.bin nor its temporary file
    # and while an upload runs, its temporary file is not listed
    port = _pasv_port(r.cmd("PASV"))
    data = socket.create_connection(("127.0.0.1", port), timeout=20)
    assert r.cmd("STOR whole.bin").startswith("150")
    data.sendall(b"w" * 1000)
    other = login(s, "alice", PASSWORD)
    assert other.nlst() == []
    data.close()
    assert r.reply().startswith("226")
    assert other.nlst() == ["whole.bin"]
    other.quit()
    r.close()


# -- garbage -------------------------------------------------------------------------------


def test_garbage_gets_500_and_long_lines_are_cut(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    assert r.cmd(b"\x00\x01\x02\xfe binary").startswith("500")
    assert r.cmd(b"GET / HTTP/1.1").startswith("500")
    assert r.cmd(b"\xc3\xa9t\xc3\xa9").startswith("500")
    assert r.cmd("XYZZY").startswith("500")
    r.login()
    assert r.cmd("REST abc").startswith("501")
    assert r.cmd(b"RETR a\x00b").startswith("501")
    assert r.cmd("RNTO x").startswith("503")
    assert r.cmd("REST 99999").startswith("350")
    r.cmd("PASV")
    assert r.cmd("RETR README.txt").startswith("554")  # past the end
    assert r.cmd("NOOP").startswith("200")
    r.sock.sendall(b"NOOP " + b"A" * 10_000 + b"\r\n")
    assert r.reply().startswith("500")
    assert r.reply() == ""  # closed
    r.close()
    # the service still serves everyone else
    f = login(s)
    assert "README.txt" in f.nlst()
    f.quit()


def test_bare_newlines_and_pipelined_commands(ftp_suite: Any) -> None:
    s = ftp_suite()
    sock = socket.create_connection(("127.0.0.1", s.ftp_port), timeout=20)
    sock.sendall(b"USER anonymous\nPASS x\r\nPWD\nSYST\r\nQUIT\r\n")
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    codes = [line[:3] for line in got.decode().splitlines()]
    assert codes == ["220", "331", "230", "257", "215", "221"]
    sock.close()


def test_upload_names_are_checked(ftp_suite: Any, tmp_path: Path) -> None:
    s = ftp_suite()
    f = login(s, "alice", PASSWORD)
    for bad in ("", "/"):
        with pytest.raises(ftplib.error_perm):
            f.storbinary(f"STOR {bad}".strip(), io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match="^550"):
        f.storbinary("STOR " + "n" * 300, io.BytesIO(b"x"))  # name too long
    assert list((s.tree / "homes" / "alice").iterdir()) == []
    f.quit()


def test_upload_where_no_file_can_be(ftp_suite: Any) -> None:
    # the jail's walk answers these without another stat: each must still be a 550 with
    # nothing written, and a folder reached through a symlink inside the jail still works
    s = ftp_suite()
    home = s.tree / "homes" / "alice"
    home.mkdir(parents=True)
    (home / "folder").mkdir()
    (home / "notes.txt").write_text("notes\n")
    (home / "link").symlink_to(home / "folder")
    f = login(s, "alice", PASSWORD)
    for bad in ("folder", "missing/x.txt", "missing/deeper/x.txt", "notes.txt/x.txt", "link"):
        with pytest.raises(ftplib.error_perm, match="^550"):
            f.storbinary(f"STOR {bad}", io.BytesIO(b"x"))
    assert f.storbinary("STOR link/in.txt", io.BytesIO(b"through")).startswith("226")
    assert (home / "folder" / "in.txt").read_bytes() == b"through"
    assert sorted(p.name for p in home.iterdir()) == ["folder", "link", "notes.txt"]
    assert sorted(p.name for p in (home / "folder").iterdir()) == ["in.txt"]
    assert (home / "notes.txt").read_text() == "notes\n"
    f.quit()


def test_download_of_a_fifo_or_folder_is_refused_at_once(ftp_suite: Any) -> None:
    # opening a FIFO for reading waits for a writer: the server would stop for everyone
    s = ftp_suite()
    home = s.tree / "homes" / "alice"
    home.mkdir(parents=True)
    os.mkfifo(home / "pipe")
    (home / "folder").mkdir()
    f = login(s, "alice", PASSWORD)
    for name in ("pipe", "folder"):
        with pytest.raises(ftplib.error_perm, match="^550"):
            f.retrbinary(f"RETR {name}", io.BytesIO().write)
    assert f.voidcmd("NOOP").startswith("200")
    f.quit()


def test_client_that_drops_a_download_gets_426_and_the_session_goes_on(ftp_suite: Any) -> None:
    s = ftp_suite()
    (s.tree / "root" / "big.bin").write_bytes(b"b" * 20_000_000)
    r = Raw(s.ftp_port)
    r.login()
    for _ in range(2):
        port = _pasv_port(r.cmd("PASV"))
        data = socket.create_connection(("127.0.0.1", port), timeout=20)
        data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert r.cmd("RETR big.bin").startswith("150")
        assert data.recv(1000)
        data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        data.close()  # RST in the middle of the file
        assert r.reply().startswith("426")
    assert r.cmd("NOOP").startswith("200")
    f = login(s)
    assert f.size("big.bin") == 20_000_000
    got = bytearray()
    f.retrbinary("RETR big.bin", got.extend, rest=19_999_000)
    assert bytes(got) == b"b" * 1000
    f.quit()
    r.close()


def test_session_that_ends_during_a_download_stops_it_cleanly(tmp_path: Path) -> None:
    # the control connection is closed (idle_timeout counts its silence during a
    # transfer too) while sendfile waits on a data connection the client no longer
    # reads: the data connection is reset, nothing is logged as an error, and the
    # server goes on (and stops) as usual
    root = tmp_path / "root"
    root.mkdir()
    (root / "big.bin").write_bytes(b"b" * 20_000_000)
    (root / "small.txt").write_bytes(b"small\n")
    svc = {"type": "ftp", "port": 0, "root": str(root), "idle_timeout": 1}
    s = start_suite({"services": {"ftp": svc}}, subprocess=True, base_dir=tmp_path)
    try:
        port = s.port("ftp")
        for _ in range(2):
            r = Raw(port)
            r.login()
            data = socket.create_connection(("127.0.0.1", _pasv_port(r.cmd("PASV"))), timeout=20)
            assert r.cmd("RETR big.bin").startswith("150")
            assert data.recv(1000)  # the transfer runs, and this client reads no more
            r.sock.settimeout(30)
            assert r.file.read() == b""  # the server closes the silent session
            r.close()
            data.settimeout(20)
            with pytest.raises(ConnectionResetError):
                while data.recv(1 << 20):
                    pass
            data.close()
        f = ftplib.FTP(timeout=30)
        f.connect("127.0.0.1", port)
        f.login()
        got = io.BytesIO()
        f.retrbinary("RETR small.txt", got.write)
        assert got.getvalue() == b"small\n"
        f.quit()
    finally:
        s.stop()
    log = s.log()
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]
