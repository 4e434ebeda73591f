"""
The ftp service with real clients: curl, lftp, Python's ftplib (passive and active),
the classic ftp client driven by pexpect, and IPv6 with EPSV/EPRT.
"""

from __future__ import annotations

import ftplib
import io
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from ftphelp import PASSWORD, Raw, login

from portsuite.testing import call_in_reactor, need


def curl(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    exe = need("curl")
    proc = subprocess.run(
        [exe, "-sS", "--max-time", "60", *args], capture_output=True, timeout=90, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


# -- curl ---------------------------------------------------------------------------


def test_curl_lists_gets_and_puts(ftp_suite: Any, tmp_path: Path) -> None:
    s = ftp_suite()
    base = f"ftp://127.0.0.1:{s.ftp_port}"
    listing = curl(f"{base}/").stdout.decode()
    assert "README.txt" in listing and "pub" in listing
    assert "secret" not in listing and "dir-out" not in listing  # symlinks out are hidden
    assert curl(f"{base}/README.txt").stdout == b"Bonjour ! Hello!\n"
    # the same over PASV (no EPSV) and active mode (PORT)
    assert curl("--disable-epsv", f"{base}/pub/data.bin").stdout == bytes(range(256)) * 400
    assert curl("--ftp-port", "127.0.0.1", f"{base}/README.txt").stdout.startswith(b"Bonjour")
    # an account puts a file into its home, then lists and gets it back
    up = tmp_path / "up.txt"
    up.write_bytes(b"uploaded by curl\n")
    auth = f"ftp://alice:{PASSWORD}@127.0.0.1:{s.ftp_port}"
    curl("-T", str(up), f"{auth}/")
    assert (s.tree / "homes" / "alice" / "up.txt").read_bytes() == b"uploaded by curl\n"
    assert "up.txt" in curl(f"{auth}/").stdout.decode()
    assert curl(f"{auth}/up.txt").stdout == b"uploaded by curl\n"
    # a file name in UTF-8
    assert curl(f"{base}/pub/%C3%A9t%C3%A9.txt").stdout == b"accents\n"


def test_curl_resumes_a_download_and_an_upload(ftp_suite: Any, tmp_path: Path) -> None:
    s = ftp_suite()
    whole = bytes(range(256)) * 400
    part = tmp_path / "data.bin"
    part.write_bytes(whole[:30000])
    curl("-C", "-", "-o", str(part), f"ftp://127.0.0.1:{s.ftp_port}/pub/data.bin")  # REST 30000
    assert part.read_bytes() == whole
    # upload resume: curl asks SIZE, then APPEnds the rest
    home = s.tree / "homes" / "alice"
    home.mkdir()
    (home / "big.bin").write_bytes(whole[:40000])
    src = tmp_path / "big.bin"
    src.write_bytes(whole)
    curl("-C", "-", "-T", str(src), f"ftp://alice:{PASSWORD}@127.0.0.1:{s.ftp_port}/big.bin")
    assert (home / "big.bin").read_bytes() == whole


# -- lftp ---------------------------------------------------------------------------


def lftp(port: int, script: str, user: str = "anonymous,guest@", host: str = "127.0.0.1") -> str:
    exe = need("lftp")
    settings = (
        "set net:max-retries 1; set net:timeout 20; set ftp:ssl-allow no; set cmd:fail-exit yes; "
    )
    proc = subprocess.run(
        [exe, "-u", user, "-p", str(port), "-e", settings + script + "; bye", host],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("utf-8", "replace")


def test_lftp_browses_downloads_uploads_and_renames(ftp_suite: Any, tmp_path: Path) -> None:
    s = ftp_suite()
    out = lftp(s.ftp_port, "cls -1; cd pub; cls -1")
    assert "README.txt" in out and "data.bin" in out and "été.txt" in out
    dest = tmp_path / "got.bin"
    lftp(s.ftp_port, f"get pub/data.bin -o {dest}")
    assert dest.read_bytes() == bytes(range(256)) * 400
    src = tmp_path / "mine.txt"
    src.write_text("from lftp\n")
    lftp(
        s.ftp_port,
        f"put {src} -o mine.txt; mkdir docs; mv mine.txt docs/moved.txt; cls -1 docs",
        user=f"alice,{PASSWORD}",
    )
    assert (s.tree / "homes" / "alice" / "docs" / "moved.txt").read_text() == "from lftp\n"
    # lftp's mlsd-based listing works too, and anonymous cannot write
    out = lftp(s.ftp_port, "set ftp:use-mlsd yes; cls -l pub")
    assert "data.bin" in out
    exe = need("lftp")
    proc = subprocess.run(
        [
            exe,
            "-u",
            "anonymous,x",
            "-p",
            str(s.ftp_port),
            "-e",
            f"set net:max-retries 1; set ftp:ssl-allow no; put {src} -o nope.txt; bye",
            "127.0.0.1",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode != 0 and not (s.tree / "root" / "nope.txt").exists()


# -- ftplib ---------------------------------------------------------------------------


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
def test_ftplib_session(ftp_suite: Any, passive: bool) -> None:
    s = ftp_suite()
    f = login(s, "alice", PASSWORD, passive=passive)
    assert f.pwd() == "/"
    f.storbinary("STOR notes.txt", io.BytesIO(b"one\ntwo\n"))
    assert f.size("notes.txt") == 8
    assert len(f.sendcmd("MDTM notes.txt").split()[1]) == 14
    assert f.nlst() == ["notes.txt"]
    f.mkd("box")
    f.cwd("box")
    assert f.pwd() == "/box"
    f.cwd("..")
    f.rename("notes.txt", "box/n.txt")
    facts = dict(f.mlsd("box"))
    assert facts["n.txt"]["type"] == "file" and facts["n.txt"]["size"] == "8"
    got = io.BytesIO()
    f.retrbinary("RETR box/n.txt", got.write, rest=4)  # REST 4
    assert got.getvalue() == b"two\n"
    lines: list[str] = []
    f.retrlines("RETR box/n.txt", lines.append)  # TYPE A
    assert lines == ["one", "two"]
    f.storbinary("APPE box/n.txt", io.BytesIO(b"three\n"))
    assert (s.tree / "homes" / "alice" / "box" / "n.txt").read_bytes() == b"one\ntwo\nthree\n"
    f.delete("box/n.txt")
    f.rmd("box")
    assert f.nlst() == []
    assert f.sendcmd("MLST /").startswith("250")
    f.quit()


def test_big_listing_and_text_download(ftp_suite: Any) -> None:
    # more than a socket takes at once: a listing of 3,000 names, and a 3 MB text file
    # in TYPE A (read and converted chunk by chunk), each whole and in order
    s = ftp_suite()
    home = s.tree / "homes" / "alice"
    (home / "many").mkdir(parents=True)
    names = [f"file-{i:05d}-{'x' * 40}.txt" for i in range(3000)]
    for name in names:
        (home / "many" / name).touch()
    text = [f"line {i} {'y' * 60}" for i in range(45_000)]
    (home / "text.txt").write_text("\n".join(text) + "\n")
    f = login(s, "alice", PASSWORD)
    assert f.nlst("many") == names
    listing: list[str] = []
    f.retrlines("LIST many", listing.append)
    assert [line.rsplit(" ", 1)[1] for line in listing] == names
    lines: list[str] = []
    f.retrlines("RETR text.txt", lines.append)  # TYPE A: \r\n on the wire
    assert lines == text
    # a file with \r\n line ends already, one of them across the server's 256 KiB reads:
    # each sent as one \r\n, none doubled
    crlf = b"a" * (256 * 1024 - 1) + b"\r\nnext\r\nlast\r"
    (home / "crlf.txt").write_bytes(crlf)
    f.sendcmd("TYPE A")
    got = bytearray()
    with f.transfercmd("RETR crlf.txt") as data:
        while chunk := data.recv(65536):
            got += chunk
    f.voidresp()
    assert bytes(got) == crlf
    f.quit()


def test_feat_opts_and_help(ftp_suite: Any) -> None:
    s = ftp_suite()
    r = Raw(s.ftp_port)
    assert r.greeting.startswith("220")
    feat = r.cmd("FEAT")
    for f in ("EPSV", "EPRT", "MLST", "REST STREAM", "SIZE", "MDTM", "UTF8"):
        assert f in feat
    assert r.cmd("OPTS UTF8 ON").startswith("200")
    assert r.cmd("SYST").startswith("215")
    r.login()
    assert r.cmd("TYPE I").startswith("200")
    assert r.cmd("TYPE X").startswith("504")
    assert r.cmd("SIZE pub").startswith("550")
    assert r.cmd("SIZE pub/data.bin") == "213 102400\r\n"
    assert r.cmd("QUIT").startswith("221")


# -- the classic ftp client, by pexpect ------------------------------------------------


def test_classic_ftp_client(ftp_suite: Any, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    exe = need("ftp")
    s = ftp_suite()
    child = pexpect.spawn(
        exe,
        ["-n", "-p", "127.0.0.1", str(s.ftp_port)],
        cwd=str(tmp_path),
        timeout=30,
        encoding="utf-8",
    )
    try:
        child.expect("220")
        child.expect("ftp> ")
        child.sendline(f"user alice {PASSWORD}")
        child.expect("230")
        child.expect("ftp> ")
        (tmp_path / "local.txt").write_text("typed in the classic client\n")
        child.sendline("put local.txt")
        child.expect("226")
        child.expect("ftp> ")
        child.sendline("ls")
        child.expect("local.txt")
        child.expect("ftp> ")
        child.sendline("get local.txt back.txt")
        child.expect("226")
        child.expect("ftp> ")
        child.sendline("bye")
        child.expect("221")
    finally:
        child.close(force=True)
    assert (tmp_path / "back.txt").read_text() == "typed in the classic client\n"
    assert (s.tree / "homes" / "alice" / "local.txt").exists()


# -- IPv6: EPSV and EPRT ------------------------------------------------------------------


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("passive", [True, False], ids=["EPSV", "EPRT"])
def test_ipv6(ftp_suite: Any, passive: bool) -> None:
    s = ftp_suite(host="::1")
    f = login(s, host="::1", passive=passive)  # ftplib uses EPSV/EPRT on IPv6
    got = io.BytesIO()
    f.retrbinary("RETR README.txt", got.write)
    assert got.getvalue() == b"Bonjour ! Hello!\n"
    assert "README.txt" in f.nlst()
    with pytest.raises(ftplib.error_perm, match="^502"):
        f.sendcmd("PASV")  # PASV is IPv4 only
    f.quit()
    assert b"Bonjour" in curl("-g", f"ftp://[::1]:{s.ftp_port}/README.txt").stdout


# -- seeing the two connections ---------------------------------------------------------


def test_transcript_decodes_the_passive_port(ftp_suite: Any) -> None:
    s = ftp_suite(trace=True)
    r = Raw(s.ftp_port)
    r.login()
    reply = r.cmd("PASV")
    numbers = reply[reply.index("(") + 1 : reply.index(")")].split(",")
    port = int(numbers[4]) * 256 + int(numbers[5])
    r.cmd("QUIT")
    r.close()

    def lines() -> list[dict[str, Any]]:
        return [line for t in s.suite.stats["ftp"].transcripts for line in t["lines"]]

    got = call_in_reactor(lines)
    texts = [line["text"] for line in got]
    assert any(t.startswith("227 Entering Passive Mode (127,0,0,1,") for t in texts)
    notes = [line["text"] for line in got if line["dir"] == "note"]
    assert any(f"{numbers[4]}×256 + {numbers[5]} = {port}" in n for n in notes), notes


def test_dashboard_shows_data_connections(ftp_suite: Any) -> None:
    s = ftp_suite(services={"web": {"type": "http", "port": 0, "root": "root"}})
    f = login(s)
    f.retrbinary("RETR README.txt", io.BytesIO().write)
    reply = f.sendcmd("EPSV")
    waiting = int(reply.split("|||")[1].split("|")[0])
    url = f"http://127.0.0.1:{s.port('web')}/_portsuite/api/ftp"
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    sessions = body["services"][0]["sessions"]
    assert len(sessions) == 1 and sessions[0]["user"] == "anonymous"
    data = sessions[0]["data_connections"]
    done = [d for d in data if d["command"] == "RETR /README.txt"]
    assert done and done[0]["state"] == "closed" and done[0]["bytes"] == 17
    assert done[0]["client_port"] and done[0]["server_port"]
    assert any(d["state"] == "waiting" and d["server_port"] == waiting for d in data)
    f.quit()


def test_text_upload_whose_line_ends_are_split_between_reads(ftp_suite: Any) -> None:
    # TYPE A: each \r\n becomes \n, also when the \r comes in one read and the \n in
    # the next (a pause between the two sends; a bare \r at the very end is kept)
    s = ftp_suite()
    r = Raw(s.ftp_port)
    r.login("alice", PASSWORD)
    assert r.cmd("TYPE A").startswith("200")
    reply = r.cmd("PASV")
    numbers = reply[reply.index("(") + 1 : reply.index(")")].split(",")
    data = socket.create_connection(
        ("127.0.0.1", int(numbers[4]) * 256 + int(numbers[5])), timeout=20
    )
    assert r.cmd("STOR text.txt").startswith("150")
    for part in (b"one\r", b"\ntwo\r", b"\n\r", b"\nthree\r"):
        data.sendall(part)
        time.sleep(0.2)  # most likely a read of its own
    data.close()
    assert r.reply().startswith("226")
    assert (s.tree / "homes" / "alice" / "text.txt").read_bytes() == b"one\ntwo\n\nthree\r"
    r.close()
