"""
imap: an IMAP4rev1 server (RFC 3501, IDLE RFC 2177, STARTTLS) on
C{twisted.mail.imap4.IMAP4Server}, over the Maildirs smtp fills.

Each account has one mailbox, INBOX: its user's Maildir. LOGIN checks the suite's
C{[users]} through a C{twisted.cred} Portal (a wrong password: C{NO} after a delay,
and a per-host limit). Flags are the Maildir ones (\\Seen, \\Answered, \\Flagged,
\\Deleted, \\Draft), kept in the file names, so mutt or Dovecot see them too; a
message that smtp delivers shows up at once as C{* N EXISTS} (in IDLE as well).
"""

from __future__ import annotations

import email
import email.policy
import io
import re
from email.utils import formatdate
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import imap4
from twisted.mail.interfaces import (
    IAccountIMAP,
    IMailboxIMAP,
    IMailboxIMAPInfo,
    IMessageIMAP,
    IMessageIMAPFile,
    IMessageIMAPPart,
)
from zope.interface import implementer

from portsuite.api import is_loopback
from portsuite_services.mail.guard import LoginGuard
from portsuite_services.mail.lines import no_delay
from portsuite_services.mail.store import (
    FLAG_LETTERS,
    IMAP_TO_LETTER,
    Mailbox,
    MailStore,
    Message,
    crlf,
)

log = Logger(namespace="portsuite.imap")
MAX_WAITING = 100  # pipelined commands held while a FETCH is streamed
SYSTEM_FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _ascii(value: str) -> str:
    return _NON_ASCII.sub("?", value)


def _headers(raw: bytes) -> list[tuple[str, str]]:
    """The header fields of a message (CRLF) as ASCII text; folded lines kept folded."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields: list[tuple[str, str]] = []
    for line in head.split(b"\r\n"):
        text = _ascii(line.decode("latin-1"))
        if text[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + "\n" + text)
        elif ":" in text:
            name, _, value = text.partition(":")
            fields.append((name.strip(), value.strip()))
    return fields


def _select_headers(fields: list[tuple[str, str]], negate: bool, names: Any) -> dict[str, str]:
    want = {
        (n.decode("ascii", "replace") if isinstance(n, bytes) else str(n)).lower() for n in names
    }
    out: dict[str, str] = {}
    for name, value in fields:
        if (name.lower() in want) != negate:
            key = name.lower()
            # a repeated field (Received): one entry, its lines kept in order
            out[key] = f"{out[key]}\n{name}: {value}" if key in out else value
    return out


def _set_last(messages: Any, value: int) -> None:
    """What "*" means in a message set (set once per command; FETCH may ask twice)."""
    try:
        messages.last = value
    except ValueError:
        pass


@implementer(IMessageIMAPPart)
class Part:
    """A MIME part of a message (for BODY[1], BODYSTRUCTURE)."""

    def __init__(self, part: Any):
        self.part = part
        raw = crlf(part.as_bytes(policy=email.policy.compat32))
        self.raw = raw
        head, sep, body = raw.partition(b"\r\n\r\n")
        self.body = body if sep else b""

    def getHeaders(self, negate: bool, *names: Any) -> dict[str, str]:
        return _select_headers(_headers(self.raw), negate, names)

    def getBodyFile(self) -> io.BytesIO:
        return io.BytesIO(self.body)

    def getSize(self) -> int:
        return len(self.body)

    def isMultipart(self) -> bool:
        return bool(self.part.is_multipart())

    def getSubPart(self, part: int) -> Part:
        payload = self.part.get_payload()
        if not isinstance(payload, list) or not 0 <= part < len(payload):
            raise IndexError(part)
        return Part(payload[part])


@implementer(IMessageIMAP, IMessageIMAPFile)
class IMAPMessage:
    """One message of INBOX, read from the Maildir when a FETCH asks for it."""

    def __init__(self, box: Mailbox, msg: Message):
        self.box = box
        self.msg = msg
        self._raw: bytes | None = None
        self._parsed: Any = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = crlf(self.box.read(self.msg))
        return self._raw

    def _email(self) -> Any:
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.raw, policy=email.policy.compat32)
        return self._parsed

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.raw)

    def getUID(self) -> int:
        return self.msg.uid

    def getFlags(self) -> list[str]:
        flags = [FLAG_LETTERS[x] for x in sorted(self.msg.flags) if x in FLAG_LETTERS]
        if self.msg.recent:
            flags.append("\\Recent")
        return flags

    def getInternalDate(self) -> str:
        return formatdate(self.msg.mtime, localtime=False)

    def getHeaders(self, negate: bool, *names: Any) -> dict[str, str]:
        return _select_headers(_headers(self.raw), negate, names)

    def getBodyFile(self) -> io.BytesIO:
        head, sep, body = self.raw.partition(b"\r\n\r\n")
        return io.BytesIO(body if sep else b"")

    def getSize(self) -> int:
        return len(self.raw)

    def isMultipart(self) -> bool:
        return bool(self._email().is_multipart())

    def getSubPart(self, part: int) -> Part:
        payload = self._email().get_payload()
        if not isinstance(payload, list) or not 0 <= part < len(payload):
            raise IndexError(part)
        return Part(payload[part])


@implementer(IMailboxIMAP, IMailboxIMAPInfo)
class Inbox:
    """INBOX of one session: the user's Maildir, numbered as this session saw it."""

    def __init__(self, box: Mailbox, store: MailStore, rw: bool = True):
        self.box = box
        self.mailstore = store
        self.rw = rw
        box.scan()
        self.msgs: list[Message] = list(box.messages)
        self.listeners: list[Any] = []
        self._watch = self._arrived  # on the Maildir while a session listens (SELECT)

    # -- info ---------------------------------------------------------------------

    def getFlags(self) -> list[str]:
        return list(SYSTEM_FLAGS)

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return self.mailstore.uidvalidity

    def getUIDNext(self) -> int:
        return self.box.next_uid

    def getUID(self, message: int) -> int:
        return self.msgs[message - 1].uid

    def getMessageCount(self) -> int:
        return len(self.msgs)

    def getRecentCount(self) -> int:
        return sum(1 for m in self.msgs if m.recent)

    def getUnseenCount(self) -> int:
        return sum(1 for m in self.msgs if "S" not in m.flags)

    def isWriteable(self) -> bool:
        return self.rw

    def destroy(self) -> None:
        raise imap4.MailboxException("INBOX cannot be deleted")

    def requestStatus(self, names: Any) -> dict[str, int]:
        values = {
            "MESSAGES": self.getMessageCount,
            "RECENT": self.getRecentCount,
            "UIDNEXT": self.getUIDNext,
            "UIDVALIDITY": self.getUIDValidity,
            "UNSEEN": self.getUnseenCount,
        }
        return {n: values[n]() for n in names if n in values}

    # -- listeners: new mail -------------------------------------------------------

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)
        if self._watch not in self.box.listeners:
            self.box.listeners.append(self._watch)

    def removeListener(self, listener: Any) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            self.close()

    def close(self) -> None:
        if self._watch in self.box.listeners:
            self.box.listeners.remove(self._watch)

    def _arrived(self, box: Mailbox) -> None:
        known = {m.key for m in self.msgs}
        fresh = [m for m in box.messages if m.key not in known]
        if not fresh:
            return
        self.msgs.extend(fresh)
        for listener in list(self.listeners):
            listener.newMessages(len(self.msgs), self.getRecentCount())

    # -- messages -----------------------------------------------------------------

    def _numbers(self, messages: Any, uid: bool) -> list[int]:
        """0-based indexes of C{messages} (sequence numbers or UIDs)."""
        if not self.msgs:
            return []
        if uid:
            _set_last(messages, self.msgs[-1].uid)
            wanted = set()
            for u in messages:
                wanted.add(u)
            # "UID n:*" always includes the last message (RFC 3501 6.4.8)
            return [i for i, m in enumerate(self.msgs) if m.uid in wanted]
        _set_last(messages, len(self.msgs))
        out = []
        for n in messages:
            if 1 <= n <= len(self.msgs):
                out.append(n - 1)
            if len(out) > len(self.msgs):
                break
        return sorted(set(out))

    def fetch(self, messages: Any, uid: bool) -> list[tuple[int, IMAPMessage]]:
        return [(i + 1, IMAPMessage(self.box, self.msgs[i])) for i in self._numbers(messages, uid)]

    def store(self, messages: Any, flags: list[str], mode: int, uid: bool) -> dict[int, list[str]]:
        if not self.rw:
            raise imap4.ReadOnlyMailbox()
        letters = {IMAP_TO_LETTER[f.lower()] for f in flags if f.lower() in IMAP_TO_LETTER}
        result = {}
        for i in self._numbers(messages, uid):
            msg = self.msgs[i]
            if mode == 1:
                new = msg.flags | letters
            elif mode == -1:
                new = msg.flags - letters
            else:
                new = set(letters)
            self.box.set_flags(msg, new)
            result[i + 1] = IMAPMessage(self.box, msg).getFlags()
        self.mailstore.version += 1
        return result

    def mark_seen(self, messages: Any, uid: bool) -> None:
        for i in self._numbers(messages, uid):
            msg = self.msgs[i]
            if "S" not in msg.flags:
                self.box.set_flags(msg, msg.flags | {"S"})

    def expunge(self) -> list[int]:
        if not self.rw:
            raise imap4.ReadOnlyMailbox()
        gone = [i for i, m in enumerate(self.msgs) if "T" in m.flags]
        self.box.delete([self.msgs[i] for i in gone])
        for i in reversed(gone):
            del self.msgs[i]
        # each number is valid when it is sent: highest first
        return [i + 1 for i in reversed(gone)]

    def addMessage(self, message: Any, flags: Any = (), date: Any = None) -> Any:
        data = message.read()
        data = data.replace(b"\r\n", b"\n")
        letters = {IMAP_TO_LETTER[f.lower()] for f in flags if f.lower() in IMAP_TO_LETTER}
        d = self.mailstore.deliver([self.box.name], data)

        def added(key: str) -> None:
            msg = self.box.by_key.get(key)
            if msg is not None and letters:
                self.box.set_flags(msg, letters)

        return d.addCallback(added)


@implementer(IAccountIMAP)
class Account:
    """One user: one mailbox, INBOX."""

    def __init__(self, name: str, store: MailStore):
        self.name = name
        self.store = store

    def _inbox(self, rw: bool = True) -> Inbox:
        return Inbox(self.store.mailbox(self.name), self.store, rw)

    def listMailboxes(self, ref: Any, wildcard: Any) -> list[tuple[str, Any]]:
        ref = ref.decode() if isinstance(ref, bytes) else ref
        wildcard = wildcard.decode() if isinstance(wildcard, bytes) else wildcard
        pattern = imap4.wildcardToRegexp(ref + wildcard, "/")
        if pattern.match("INBOX"):
            return [("INBOX", _ListedInbox())]
        return []

    def select(self, name: Any, rw: bool = True) -> Inbox | None:
        name = name.decode() if isinstance(name, bytes) else name
        if name.upper() != "INBOX":
            return None
        return self._inbox(rw)

    def create(self, pathspec: Any) -> bool:
        raise imap4.MailboxException("only INBOX here: portsuite keeps one Maildir per user")

    def delete(self, name: Any) -> bool:
        raise imap4.MailboxException("INBOX cannot be deleted")

    def rename(self, oldname: Any, newname: Any) -> bool:
        raise imap4.MailboxException("INBOX cannot be renamed here")

    def isSubscribed(self, name: Any) -> bool:
        name = name.decode() if isinstance(name, bytes) else name
        return bool(name.upper() == "INBOX")

    def subscribe(self, name: Any) -> bool:
        return True

    def unsubscribe(self, name: Any) -> bool:
        raise imap4.MailboxException("INBOX stays subscribed")

    def addMailbox(self, name: Any, mbox: Any = None) -> bool:
        raise imap4.MailboxException("only INBOX here")


class _ListedInbox:
    """What LIST needs of INBOX: its flags and delimiter (no Maildir scan)."""

    def getFlags(self) -> list[str]:
        return []

    def getHierarchicalDelimiter(self) -> str:
        return "/"


@implementer(IRealm)
class AccountRealm:
    def __init__(self, factory: IMAPFactory):
        self.factory = factory

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IAccountIMAP not in interfaces:
            raise NotImplementedError("only IMAP accounts")
        name = avatarId.decode() if isinstance(avatarId, bytes) else str(avatarId)
        return IAccountIMAP, Account(name, self.factory.store), lambda: None


class MailIMAP(imap4.IMAP4Server):
    """One IMAP session (RFC 3501)."""

    factory: IMAPFactory
    transport: Any
    mbox: Any
    timeOut = 1800  # RFC 3501 5.4: an autologout timer of at least 30 minutes
    POSTAUTH_TIMEOUT = 1800
    IDENT = b"portsuite IMAP4rev1 ready"
    MAX_LENGTH = 8192  # RFC 7162 4: at least 8192 octets per command line
    _lost = False

    def __init__(self, factory: IMAPFactory):
        imap4.IMAP4Server.__init__(self, {}, factory.tls_context)
        self.factory = factory
        self.portal = factory.portal  # type: ignore[assignment]

    def connectionMade(self) -> None:
        self.callLater = self.factory.reactor.callLater  # type: ignore[method-assign]  # TimeoutMixin: our reactor
        no_delay(self.transport)
        imap4.IMAP4Server.connectionMade(self)

    def connectionLost(self, reason: Any) -> None:  # type: ignore[override]
        self._lost = True
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        imap4.IMAP4Server.connectionLost(self, reason)

    def _peer_host(self) -> str:
        return str(getattr(self.transport.getPeer(), "host", ""))

    def _secure(self) -> bool:
        return self.startedTLS or ISSLTransport(self.transport, None) is not None

    def capabilities(self) -> dict[bytes, Any]:
        cap: dict[bytes, Any] = {}
        if self.ctx is not None and self.canStartTLS and not self._secure():
            cap[b"STARTTLS"] = None
            if not is_loopback(self.transport.getPeer()):
                cap[b"LOGINDISABLED"] = None
        cap[b"IDLE"] = None
        cap[b"NAMESPACE"] = None
        return cap

    _held = False

    def lineReceived(self, line: bytes) -> None:
        if self.blocked is not None and len(self.blocked) > MAX_WAITING and not self._held:
            # pipelined commands wait for a FETCH in progress: stop reading more
            self._held = True
            self.transport.pauseProducing()
        imap4.IMAP4Server.lineReceived(self, line)

    def _unblock(self) -> None:
        imap4.IMAP4Server._unblock(self)
        if self._held and self.blocked is None and not self._lost:
            self._held = False
            self.transport.resumeProducing()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b"* BYE line too long (over 8192 octets)")
        self.transport.loseConnection()

    def do_STARTTLS(self, tag: bytes) -> None:
        if self._secure():
            self.sendBadResponse(tag, b"TLS already active")
        elif self.ctx is None or not self.canStartTLS:
            self.sendBadResponse(tag, b"STARTTLS not available here")
        else:
            self.sendPositiveResponse(tag, b"begin TLS negotiation now")
            self.transport.startTLS(self.ctx)
            self.startedTLS = True
            self.clearLineBuffer()  # plain-text bytes sent with the command are dropped

    unauth_STARTTLS = (do_STARTTLS,)  # type: ignore[assignment]

    # -- LOGIN: a delay on failure, a per-host limit ----------------------------------

    def do_LOGIN(self, tag: bytes, user: bytes, passwd: bytes) -> None:
        if b"LOGINDISABLED" in self.capabilities():
            self.sendNegativeResponse(tag, b"[PRIVACYREQUIRED] LOGIN is disabled: STARTTLS first")
            return
        host = self._peer_host()
        if self.factory.guard.blocked(host):
            self.sendNegativeResponse(tag, b"[UNAVAILABLE] too many failed logins; try later")
            self.sendLine(b"* BYE closing")
            self.transport.loseConnection()
            return
        self.blocked = []  # type: ignore[assignment]
        d = self.portal.login(UsernamePassword(user, passwd), None, IAccountIMAP)  # type: ignore[attr-defined]
        d.addCallbacks(self._logged_in, self._login_failed, callbackArgs=(tag,), errbackArgs=(tag,))
        d.addErrback(self._login_error, tag)

    unauth_LOGIN = (do_LOGIN, imap4.IMAP4Server.arg_astring, imap4.IMAP4Server.arg_finalastring)  # type: ignore[assignment]

    def _logged_in(self, result: Any, tag: bytes) -> None:
        _iface, avatar, logout = result
        self.account = avatar
        self._onLogout = logout
        self.sendPositiveResponse(tag, b"LOGIN completed")
        self.state = "auth"
        self.setTimeout(self.POSTAUTH_TIMEOUT)
        self._unblock()

    def _login_failed(self, failure: Any, tag: bytes) -> None:
        failure.trap(UnauthorizedLogin)

        def answer() -> None:
            if self._lost:
                return
            self.sendNegativeResponse(tag, b"[AUTHENTICATIONFAILED] wrong user name or password")
            if blocked:
                self.sendLine(b"* BYE too many failed logins")
                self.transport.loseConnection()
                return
            self._unblock()

        blocked = self.factory.guard.failed(self._peer_host(), answer)

    def _login_error(self, failure: Any, tag: bytes) -> None:
        log.failure("{service}: login failed", failure, service=self.factory.name)
        self.sendNegativeResponse(tag, b"[UNAVAILABLE] temporary failure")
        self._unblock()

    # -- FETCH BODY[] sets \\Seen (RFC 3501 6.4.5) ------------------------------------

    def do_FETCH(self, tag: bytes, messages: Any, query: Any, uid: int = 0) -> None:
        if self.mbox is not None and self.mbox.isWriteable():
            if any(_sets_seen(p) for p in query):
                self.mbox.mark_seen(messages, bool(uid))
        imap4.IMAP4Server.do_FETCH(self, tag, messages, query, uid)

    select_FETCH = (do_FETCH, imap4.IMAP4Server.arg_seqset, imap4.IMAP4Server.arg_fetchatt)  # type: ignore[assignment]

    # -- SEARCH on header fields (Twisted compares its bytes query with str values) --

    def _search_field(self, name: Any, query: list[Any], msg: Any) -> bool:
        want = query.pop(0)
        if isinstance(want, bytes):
            want = want.decode("utf-8", "replace")
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        value = msg.getHeaders(False, name.lower()).get(name.lower(), "")
        return _ascii(str(want)).lower() in str(value).lower()

    def search_SUBJECT(self, query: list[Any], id: int, msg: Any) -> bool:
        return self._search_field("subject", query, msg)

    def search_FROM(self, query: list[Any], id: int, msg: Any) -> bool:
        return self._search_field("from", query, msg)

    def search_TO(self, query: list[Any], id: int, msg: Any) -> bool:
        return self._search_field("to", query, msg)

    def search_CC(self, query: list[Any], id: int, msg: Any) -> bool:
        return self._search_field("cc", query, msg)

    def search_BCC(self, query: list[Any], id: int, msg: Any) -> bool:
        return self._search_field("bcc", query, msg)

    def search_HEADER(self, query: list[Any], id: int, msg: Any) -> bool:
        return self._search_field(query.pop(0), query, msg)

    # -- APPEND: bounded --------------------------------------------------------------

    def _fileLiteral(self, size: int) -> Any:
        if size > self.factory.max_message_size:
            raise imap4.IllegalClientResponse(
                f"message too big (over {self.factory.max_message_size} octets)"
            )
        return imap4.IMAP4Server._fileLiteral(self, size)

    def timeoutConnection(self) -> None:
        self.sendLine(b"* BYE autologout; idle for too long")
        self.transport.loseConnection()
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        self.state = "timeout"


def _sets_seen(part: Any) -> bool:
    """BODY[…] and RFC822(.TEXT) set \\Seen; BODY.PEEK[…], BODY, BODYSTRUCTURE do not."""
    if part.type == "body":
        has_section = part.header or part.text or part.mime or part.empty or part.part
        return bool(has_section) and not part.peek
    return bool(part.type in ("rfc822", "rfc822text"))


class IMAPFactory(ServerFactory):
    protocol = MailIMAP  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        *,
        name: str,
        store: MailStore,
        accounts: Any,
        reactor: Any,
        tls_context: Any = None,
        max_message_size: int = 10 * 1024 * 1024,
        guard: LoginGuard | None = None,
    ):
        self.name = name
        self.store = store
        self.reactor = reactor
        self.tls_context = tls_context
        self.max_message_size = max_message_size
        self.guard = guard or LoginGuard(reactor)
        portal = Portal(AccountRealm(self))  # type: ignore[arg-type]
        if accounts is not None:
            portal.registerChecker(accounts.checker())
        self.portal = portal

    def buildProtocol(self, addr: Any) -> MailIMAP:  # type: ignore[override]
        return MailIMAP(self)


__all__ = ["IMAPFactory", "MailIMAP"]
