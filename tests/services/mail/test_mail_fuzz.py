"""Garbage in every state of smtp, pop3 and imap: a reply each time, never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailhelp import on_clock
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from portsuite.api import Account, Accounts
from portsuite_services.mail.imap import IMAPFactory
from portsuite_services.mail.pop3 import POP3Factory
from portsuite_services.mail.smtp import SMTPFactory
from portsuite_services.mail.store import MailStore

ACCOUNTS = Accounts({"alice": Account("alice", "wonderland")})


def _one_message() -> MailStore:
    """A store (in memory) where alice has one message."""
    store = MailStore(None, Clock())
    store.deliver(["alice"], b"Subject: x\n\nbody\n")
    return store


VERBS = [
    b"HELO",
    b"EHLO",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY",
    b"AUTH",
    b"AUTH PLAIN",
    b"AUTH LOGIN",
    b"STARTTLS",
    b"BDAT",
    b"",
    b"USER",
    b"PASS",
    b"STAT",
    b"LIST",
    b"RETR",
    b"DELE",
    b"TOP",
    b"UIDL",
    b"CAPA",
    b"STLS",
    b"a LOGIN",
    b"a SELECT",
    b"a FETCH",
    b"a STORE",
    b"a SEARCH",
    b"a UID",
    b"a APPEND",
    b"a IDLE",
    b"a EXAMINE",
    b"a STATUS",
    b"a LIST",
    b"DONE",
]
ARGS = st.one_of(
    st.binary(max_size=60),
    st.sampled_from(
        [
            b"<a@lab.test>",
            b"<alice@lab.test> SIZE=99999999999",
            b"<>",
            b"1",
            b"0",
            b"-1",
            b"*",
            b"1:*",
            b"INBOX",
            b"alice wonderland",
            b"{5}",
            b"(FLAGS)",
            b"(BODY[])",
            b"+FLAGS (\\Seen)",
            "<é@x>".encode(),
            b"AGFsaWNlAHdvbmRlcmxhbmQ=",
            b"=",
            b"\x00\xff",
        ]
    ),
)
LINES = st.lists(st.tuples(st.sampled_from(VERBS), ARGS), min_size=1, max_size=12)


def _feed(proto: Any, transport: StringTransport, lines: list[tuple[bytes, bytes]]) -> None:
    for verb, arg in lines:
        if transport.disconnecting:
            break
        proto.dataReceived(verb + b" " + arg.replace(b"\n", b" ") + b"\r\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_smtp_never_raises(lines: list[tuple[bytes, bytes]]) -> None:
    proto, transport = on_clock(SMTPFactory, "smtp", accounts=ACCOUNTS, domains=["lab.test"])
    _feed(proto, transport, lines)
    proto.factory.reactor.advance(5)  # delayed answers (wrong passwords) go out too
    assert transport.value().startswith(b"220 ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_pop3_never_raises(lines: list[tuple[bytes, bytes]]) -> None:
    proto, transport = on_clock(POP3Factory, "pop3", _one_message(), accounts=ACCOUNTS)
    _feed(proto, transport, [(b"USER", b"alice"), (b"PASS", b"wonderland"), *lines])
    proto.factory.reactor.advance(5)
    assert transport.value().startswith(b"+OK ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_imap_never_raises(lines: list[tuple[bytes, bytes]]) -> None:
    proto, transport = on_clock(IMAPFactory, "imap", _one_message(), accounts=ACCOUNTS)
    proto._scheduler = lambda it: _run_now(it)
    _feed(proto, transport, [(b"a LOGIN", b"alice wonderland"), (b"a SELECT", b"INBOX"), *lines])
    proto.factory.reactor.advance(5)
    assert transport.value().startswith(b"* OK ")


def _run_now(iterator: Any) -> Any:
    from twisted.internet import defer

    for _ in iterator:
        pass
    return defer.succeed(None)
