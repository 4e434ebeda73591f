"""
The annotated sample session of each service type, for its lab page.

Each step is C{(direction, text, note, pattern)}: C{text} as the suite's transcripts
render bytes (C{\\r\\n} escaped, binary as C{hex: …}), C{note} the annotation (through
the catalogs), C{pattern} a regular expression that recognises the same step in a
live transcript, so that a traced service's page annotates its own last
conversation with the same notes (L{annotate}).

Every sample here was recorded from a real client against this suite
(L{RECORDED_WITH} names the command), then shortened where a line was long (C{…}).
"""

from __future__ import annotations

import re
from typing import Any


def N_(message: str) -> str:
    return message


Step = tuple[str, str, str, str]

# the first line of the page: the command that recorded the sample ({host} {port})
RECORDED_WITH = {
    "echo": "nc {host} {port}",
    "discard": "nc {host} {port}",
    "daytime": "nc {host} {port}",
    "qotd": "nc {host} {port}",
    "chargen": "nc {host} {port}",
    "time": "nc {host} {port} | xxd",
    "http": "curl http://{host}:{port}/",
    "kv": "redis-cli -h {host} -p {port} ping",
    "sql": "mysql -h {host} -P {port} -u alice -p -e 'SELECT 1+1 AS two'",
    "dns": "dig @{host} -p {port} www.lab.test",
    "smtp": "swaks --server {host}:{port} --from bob@lab.test --to alice@lab.test",
    "pop3": "curl pop3://alice:wonderland@{host}:{port}/1",
    "imap": "curl imap://alice:wonderland@{host}:{port}/INBOX",
    "ftp": "curl ftp://{host}:{port}/",
    "ssh": "ssh -p {port} alice@{host} whoami",
    "telnet": "telnet {host} {port}",
    "chat": "nc {host} {port}   (×2)",
    "upper": "nc {host} {port}",
}

SAMPLES: dict[str, list[Step]] = {
    "echo": [
        ("c2s", "hello\\n", N_("the client sends a line"), "."),
        ("s2c", "hello\\n", N_("the server sends the same bytes back"), "."),
    ],
    "discard": [
        (
            "c2s",
            "hello\\n",
            N_("the client sends; nothing ever comes back: the server reads and throws it away"),
            ".",
        ),
    ],
    "daytime": [
        (
            "s2c",
            "Tuesday, December 1, 2026 07:21:43-UTC\\r\\n",
            N_("the server speaks first: the date as text, then it closes"),
            ".",
        )
    ],
    "qotd": [
        (
            "s2c",
            "Be conservative in what you do, be liberal in what you accept from others.\\r\\n"
            "    -- Jon Postel, RFC 761 (1980)\\r\\n",
            N_("a quote, then the server closes"),
            ".",
        )
    ],
    "chargen": [
        (
            "s2c",
            " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefg\\r\\n"
            "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefgh\\r\\n…",
            N_("lines of characters, each shifted by one, without end until the client closes"),
            ".",
        )
    ],
    "time": [
        ("s2c", "hex: ee b8 f4 07", N_("4 bytes: seconds since 1900, binary"), "."),
    ],
    "http": [
        (
            "c2s",
            "GET / HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\nUser-Agent: curl/7.88.1\\r\\n"
            "Accept: */*\\r\\n\\r\\n",
            N_("the request: method, path, version, headers, an empty line"),
            r"^[A-Z]+ \S+ HTTP/",
        ),
        (
            "s2c",
            "HTTP/1.1 200 OK\\r\\nServer: portsuite\\r\\nContent-Type: text/html; "
            "charset=utf-8\\r\\nContent-Length: 5093\\r\\n…",
            N_("the response: a status code, headers, then the body"),
            r"^HTTP/\d",
        ),
    ],
    "kv": [
        (
            "c2s",
            "*1\\r\\n$4\\r\\nping\\r\\n",
            N_("the request, in RESP: an array of one bulk string"),
            r"^\*",
        ),
        ("s2c", "+PONG\\r\\n", N_("the reply: a simple string"), r"^\+"),
        ("s2c", "-ERR …", N_("an error reply starts with -"), r"^-"),
        ("s2c", "$5\\r\\nalice\\r\\n", N_("a bulk string: its length, then the bytes"), r"^\$"),
    ],
    "sql": [
        (
            "s2c",
            "hex: 54 00 00 00 0a 38 2e 30 2e 33 36 2d 70 6f 72 74 73 75 69 74 65 00 …",
            N_(
                "the server speaks first: its greeting (protocol 10, version 8.0.36-portsuite),"
                " binary"
            ),
            r"^hex: .. .. .. 00 0a",
        ),
        (
            "c2s",
            "hex: dd 00 00 01 85 a2 bf 00 … 61 6c 69 63 65 00 20 d9 c6 …",
            N_("the client logs in: the user name (61 6c 69 63 65 = alice), a password hash"),
            r"^hex: .. .. .. 01 ",
        ),
        (
            "s2c",
            "hex: 07 00 00 03 00 00 00 02 00 00 00",
            N_("OK packet: logged in"),
            r"^hex: .. 00 00 .. 00 ",
        ),
        (
            "c2s",
            "\\x12\\x00\\x00\\x00\\x03SELECT 1+1 AS two",
            N_("a query (command 03): the SQL is readable text"),
            r"\\x00\\x03",
        ),
        (
            "s2c",
            "hex: 01 00 00 01 01 19 00 00 02 03 64 65 66 … 74 77 6f … 01 32 …",
            N_("the result set: the columns (two), then the rows (2)"),
            r"^hex: 01 00 00 01 ",
        ),
        ("c2s", "hex: 01 00 00 00 01", N_("command 01: quit"), r"^hex: 01 00 00 00 01$"),
    ],
    "dns": [
        (
            "c2s",
            "hex: df 8f 01 20 00 01 00 00 00 00 00 01 03 77 77 77 03 6c 61 62 04 74 65 73 74 …",
            N_("a query: binary, an id (df 8f), then the name asked (www.lab.test)"),
            r"^hex: .. .. [01]",
        ),
        (
            "s2c",
            "hex: df 8f 85 00 00 01 00 01 … 00 04 7f 00 00 01 …",
            N_("the answer: the same id, the records (7f 00 00 01 = 127.0.0.1)"),
            r"^hex: .. .. [89a-f]",
        ),
    ],
    "smtp": [
        (
            "s2c",
            "220 lab.test ESMTP portsuite\\r\\n",
            N_("the server greets first (code 220)"),
            r"^220",
        ),
        ("c2s", "EHLO vm\\r\\n", N_("the client says who it is"), r"^(EHLO|HELO)"),
        (
            "s2c",
            "250-lab.test Hello 127.0.0.1, nice to meet you\\r\\n",
            N_("250: accepted; 250- means more lines follow (the extensions)"),
            r"^250-",
        ),
        ("c2s", "MAIL FROM:<bob@lab.test>\\r\\n", N_("the envelope: who sends"), r"^MAIL FROM"),
        ("s2c", "250 2.1.0 sender OK\\r\\n", N_("250: accepted"), r"^250 "),
        ("c2s", "RCPT TO:<alice@lab.test>\\r\\n", N_("the envelope: who receives"), r"^RCPT TO"),
        ("s2c", "250 2.1.5 recipient OK\\r\\n", N_("250: accepted"), r"^250 "),
        ("c2s", "DATA\\r\\n", N_("the message follows"), r"^DATA"),
        (
            "s2c",
            "354 end data with <CR><LF>.<CR><LF>\\r\\n",
            N_("354: go on, end with a line holding a single dot"),
            r"^354",
        ),
        (
            "c2s",
            "To: alice@lab.test\\r\\nFrom: bob@lab.test\\r\\nSubject: hello\\r\\n…\\r\\n.\\r\\n",
            N_("the message: headers, an empty line, the body, a dot"),
            r"^[A-Z][\w-]*: ",
        ),
        ("c2s", "QUIT\\r\\n", N_("the client ends the session"), r"^QUIT"),
        ("s2c", "221 2.0.0 bye\\r\\n", N_("221: the server closes"), r"^221"),
        ("s2c", "550 5.1.1 …", N_("5xx: refused, for good"), r"^5\d\d"),
    ],
    "pop3": [
        (
            "s2c",
            "+OK portsuite POP3 server ready\\r\\n",
            N_("the server greets first"),
            r"^\+OK .*ready",
        ),
        ("c2s", "USER alice\\r\\n", N_("the client gives its user name"), r"^USER "),
        ("s2c", "+OK send PASS\\r\\n", N_("+OK: accepted, -ERR: refused"), r"^\+OK send"),
        ("c2s", "PASS wonderland\\r\\n", N_("the password, in clear"), r"^PASS "),
        (
            "s2c",
            "+OK alice's maildrop has 1 message (346 octets)\\r\\n",
            N_("logged in: the mailbox's size"),
            r"maildrop",
        ),
        ("c2s", "RETR 1\\r\\n", N_("fetch message 1"), r"^RETR "),
        (
            "s2c",
            "+OK 346\\r\\n",
            N_("the message follows, ended by a line with a dot"),
            r"^\+OK \d+",
        ),
        ("c2s", "QUIT\\r\\n", N_("the client ends the session"), r"^QUIT"),
        ("s2c", "-ERR …", N_("+OK: accepted, -ERR: refused"), r"^-ERR"),
    ],
    "imap": [
        (
            "s2c",
            "* OK [CAPABILITY IMAP4rev1 IDLE NAMESPACE] portsuite IMAP4rev1 ready\\r\\n",
            N_("the server greets first; * marks an untagged line"),
            r"^\* OK .*ready",
        ),
        (
            "c2s",
            "A001 CAPABILITY\\r\\n",
            N_("each command starts with a tag the client chooses (A001)"),
            r"^A\d+ CAPABILITY",
        ),
        (
            "c2s",
            "A002 LOGIN alice wonderland\\r\\n",
            N_("the login, password in clear"),
            r"^A\d+ LOGIN",
        ),
        (
            "s2c",
            "A002 OK LOGIN completed\\r\\n",
            N_("the answer carries the same tag: OK, NO or BAD"),
            r"^A\d+ (OK|NO|BAD)",
        ),
        ("c2s", "A003 SELECT INBOX\\r\\n", N_("open a mailbox"), r"^A\d+ SELECT"),
        ("s2c", "* 1 EXISTS\\r\\n", N_("untagged data: one message in it"), r"^\* \d+ EXISTS"),
        (
            "c2s",
            "A004 UID FETCH 1 BODY[]\\r\\n",
            N_("fetch a message; it stays on the server"),
            r"FETCH",
        ),
        ("c2s", "A005 LOGOUT\\r\\n", N_("the client ends the session"), r"LOGOUT"),
        ("s2c", "* BYE Nice talking to you\\r\\n", N_("the server says goodbye"), r"^\* BYE"),
    ],
    "ftp": [
        (
            "s2c",
            "220 portsuite FTP server ready.\\r\\n",
            N_("the server greets first (220)"),
            r"^220",
        ),
        ("c2s", "USER anonymous\\r\\n", N_("the user name (here anonymous)"), r"^USER "),
        (
            "s2c",
            "331 Anonymous login ok; send your e-mail address as password.\\r\\n",
            N_("331: now the password"),
            r"^331",
        ),
        ("c2s", "PASS ftp@example.com\\r\\n", N_("the password, in clear"), r"^PASS "),
        ("s2c", "230 Anonymous login ok; …\\r\\n", N_("230: logged in"), r"^230"),
        (
            "c2s",
            "EPSV\\r\\n",
            N_("the client asks for a data port (passive mode)"),
            r"^(EPSV|PASV)",
        ),
        (
            "s2c",
            "229 Entering Extended Passive Mode (|||50003|).\\r\\n",
            N_("the server's answer: the port of the data connection (here 50003)"),
            r"^22[79]",
        ),
        (
            "c2s",
            "LIST\\r\\n",
            N_("list the folder: it comes on the data connection"),
            r"^(LIST|NLST|MLSD)",
        ),
        (
            "s2c",
            "150 Here comes the directory listing.\\r\\n",
            N_("150: the second connection is open, the data flows there"),
            r"^150",
        ),
        (
            "s2c",
            "226 Directory send OK.\\r\\n",
            N_("226: the data connection is closed, all sent"),
            r"^226",
        ),
        ("c2s", "RETR hello.txt\\r\\n", N_("fetch a file: on the data connection too"), r"^RETR "),
        ("c2s", "QUIT\\r\\n", N_("the client ends the session"), r"^QUIT"),
        ("s2c", "221 Goodbye.\\r\\n", N_("221: the server closes"), r"^221"),
    ],
    "ssh": [
        (
            "s2c",
            "SSH-2.0-Twisted_26.10.0\\r\\n",
            N_("the server's version line: the only line in clear text"),
            r"^SSH-2\.0-",
        ),
        (
            "c2s",
            "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\\r\\n…",
            N_("the client's version line"),
            r"^SSH-2\.0-",
        ),
        (
            "s2c",
            "\\x00\\x00\\x01\\x8c\\x06\\x14…curve25519-sha256,…ssh-ed25519…aes256-ctr…",
            N_("the algorithms each side knows (KEXINIT): readable names, no secret"),
            r"curve25519|sha2",
        ),
        (
            "c2s",
            "hex: 4f 07 78 7b 6e 0f 28 57 05 97 46 54 40 f4 aa 86 …",
            N_(
                "binary: the key exchange, then everything encrypted, the password and the commands too"
            ),
            r"^hex: ",
        ),
        (
            "s2c",
            "hex: d8 7f 48 a6 90 e1 d7 a1 e8 37 be 08 25 74 01 a1 …",
            N_(
                "binary: the key exchange, then everything encrypted, the password and the commands too"
            ),
            r"^hex: ",
        ),
    ],
    "telnet": [
        (
            "s2c",
            "hex: ff fd 22",
            N_("telnet options (IAC DO …): the two sides agree on the terminal"),
            r"^hex: ff",
        ),
        (
            "s2c",
            "portsuite telnet (telnet, RFC 854): everything you type, your password too,\\r\\n…",
            N_("the banner, in clear"),
            r"IN CLEAR|RFC 854",
        ),
        ("s2c", "login: ", N_("the server asks for the user name"), r"login: "),
        (
            "c2s",
            "hex: ff fb 18 ff fb 1f …",
            N_("the client answers (IAC WILL …): its terminal type, its window size"),
            r"^hex: ff",
        ),
        (
            "c2s",
            "a l i c e",
            N_("each keystroke is sent as soon as it is typed (the server echoes it back)"),
            r"^.",
        ),
        ("s2c", "Password: ", N_("now the password"), r"Password: "),
        (
            "c2s",
            "w o n d e r l a n d",
            N_("the password's keystrokes: not echoed, but they cross the network in clear"),
            r"Password: =>^.",
        ),
        (
            "s2c",
            "Welcome, alice. Type help for the commands.\\r\\n",
            N_("logged in"),
            r"^Welcome",
        ),
    ],
    "chat": [
        (
            "s2c",
            "Welcome to the chat! You are 127.0.0.1:40966; 1 other(s) here.\\n",
            N_("the server tells each client its own address and port"),
            r"^Welcome",
        ),
        ("c2s", "bonjour\\n", N_("one client writes a line"), "."),
        (
            "s2c",
            "<127.0.0.1:40952> bonjour\\n",
            N_("the server sends it to every other client, with the sender's port"),
            r"^<",
        ),
        ("s2c", "* 127.0.0.1:40952 left\\n", N_("a client left"), r"^\* "),
    ],
    "upper": [
        ("c2s", "hello\\n", N_("the client sends a line"), "."),
        ("s2c", "HELLO\\n", N_("the plugin answers it in capitals"), "."),
    ],
}

MAX_LIVE_LINES = 30
MAX_LIVE_TEXT = 160


def sample_type(tname: str) -> str:
    """The sample of a type name: C{upper:Upper} → C{upper}."""
    return tname.split(":", 1)[0].split(".")[-1].lower()


def steps(tname: str) -> list[Step]:
    return SAMPLES.get(sample_type(tname), [])


def note_for(tname: str, direction: str, text: str, previous: str = "") -> str | None:
    """
    The note of the first step of the type's sample that matches this transcript line
    (a pattern C{BEFORE=>PATTERN} also needs the previous line of the other side to
    match C{BEFORE}: the keystrokes after C{Password:}).
    """
    ordered = sorted(steps(tname), key=lambda step: "=>" not in step[3])
    for d, _text, note, pattern in ordered:
        before, arrow, pattern = pattern.rpartition("=>")
        if arrow and not re.search(before, previous):
            continue
        if d == direction and re.search(pattern, text):
            return note
    return None


def last_conversation(transcripts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest finished transcript of a traced service that has any line."""
    for t in reversed(transcripts):
        if t.get("closed") is not None and any(
            li.get("dir") in ("c2s", "s2c") for li in t.get("lines", [])
        ):
            return t
    return None


def _keystroke(text: str) -> bool:
    return len(text) == 1 or text in ("\\r\\n", "\\r\\x00", "hex: 0d 00", "hex: 0d 0a")


def annotate(tname: str, transcript: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """
    The first lines of a live transcript, each with its note (or None), text shortened.
    Typed keystrokes (telnet) read as words: a server's echo of a keystroke is left
    out, and the keystrokes of one line are joined, up to the Enter key (⏎); lines in a
    row of the same direction and the same note are one line.
    """
    out: list[tuple[str, str, str | None]] = []
    typing = False  # the last line of out is a run of keystrokes still being typed
    previous = {"c2s": "", "s2c": ""}
    lines = [li for li in transcript.get("lines", []) if li.get("dir") in ("c2s", "s2c")]
    for i, li in enumerate(lines):
        d, text = li["dir"], str(li.get("text", ""))
        if d == "s2c" and len(text) == 1 and i and lines[i - 1].get("text") == text:
            continue  # the echo of the keystroke just typed
        if d == "c2s" and _keystroke(text):
            if typing and out and out[-1][0] == "c2s":
                d0, typed, note0 = out[-1]
                enter = len(text) > 1
                out[-1] = (d0, typed + ("⏎" if enter else " " + text), note0)
                typing = not enter
                continue
            typing = len(text) == 1
        else:
            typing = False
        if len(text) > MAX_LIVE_TEXT:
            text = text[:MAX_LIVE_TEXT] + "…"
        note = note_for(tname, d, text, previous["s2c" if d == "c2s" else "c2s"])
        previous[d] = text
        if note and out and out[-1][0] == d and out[-1][2] == note and not typing:
            # the same step again (telnet's options, SMTP's 250- lines): one line, one note
            joined = out[-1][1] + " · " + text
            if len(joined) > 2 * MAX_LIVE_TEXT:
                joined = joined[: 2 * MAX_LIVE_TEXT] + "…"
            out[-1] = (d, joined, note)
            continue
        out.append((d, text, note))
        if len(out) >= MAX_LIVE_LINES:
            break
    return out
