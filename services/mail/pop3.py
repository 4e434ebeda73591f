"""
pop3: a POP3 server (RFC 1939, CAPA RFC 2449, STLS RFC 2595) on
C{twisted.mail.pop3.POP3}, over the Maildirs smtp fills.

USER/PASS check the suite's C{[users]} through a C{twisted.cred} Portal; a wrong
password is answered after a delay and a host with too many failures is refused. The
maildrop is the user's messages at login time (numbers do not move during a session);
DELE takes effect at QUIT, as the RFC says; a second session of the same user gets
C{-ERR [IN-USE]} while the first holds the maildrop.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import pop3
from twisted.mail.interfaces import IMailboxPOP3
from zope.interface import implementer

from portsuite_services.mail.guard import LoginGuard
from portsuite_services.mail.lines import BoundedLines, no_delay
from portsuite_services.mail.store import Mailbox, MailStore

log = Logger(namespace="portsuite.pop3")
MAX_WAITING = 100  # pipelined commands held while a reply is streamed
UIDL_OK = re.compile(r"[\x21-\x7e]{1,70}")


@implementer(IMailboxPOP3)
class POP3Mailbox:
    """One user's maildrop for one session: the messages present at login."""

    def __init__(self, box: Mailbox):
        box.scan()
        self.box = box
        self.msgs = list(box.messages)
        self.deleted: set[int] = set()

    def _index(self, i: int) -> int:
        if not 0 <= i < len(self.msgs):
            raise ValueError("no such message")
        return i

    def listMessages(self, i: int | None = None) -> Any:
        if i is None:
            return [0 if n in self.deleted else m.size for n, m in enumerate(self.msgs)]
        i = self._index(i)
        return 0 if i in self.deleted else self.msgs[i].size

    def getMessage(self, i: int) -> io.BytesIO:
        msg = self.msgs[self._index(i)]
        return io.BytesIO(self.box.read(msg).replace(b"\r\n", b"\n"))

    def getUidl(self, i: int) -> bytes:
        key = self.msgs[self._index(i)].key
        if not UIDL_OK.fullmatch(key):
            key = hashlib.sha1(key.encode("utf-8", "replace")).hexdigest()
        return key.encode("ascii")

    def deleteMessage(self, i: int) -> None:
        self.deleted.add(self._index(i))

    def undeleteMessages(self) -> None:
        self.deleted.clear()

    def sync(self) -> None:
        if self.deleted:
            self.box.delete([self.msgs[i] for i in sorted(self.deleted)])
            self.deleted.clear()


@implementer(IRealm)
class MaildropRealm:
    def __init__(self, factory: POP3Factory):
        self.factory = factory

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IMailboxPOP3 not in interfaces:
            raise NotImplementedError("only POP3 mailboxes")
        name = avatarId.decode() if isinstance(avatarId, bytes) else str(avatarId)
        return IMailboxPOP3, POP3Mailbox(self.factory.store.mailbox(name)), lambda: None


class MailPOP3(BoundedLines, pop3.POP3):
    """One POP3 session (RFC 1939)."""

    factory: POP3Factory  # type: ignore[assignment]
    transport: Any
    mbox: Any
    _userIs: Any
    timeOut = 600  # RFC 1939 3: an autologout timer of at least 10 minutes
    AUTH_CMDS = [b"CAPA", b"USER", b"PASS", b"APOP", b"AUTH", b"QUIT", b"STLS", b"NOOP"]
    magic = b"portsuite POP3 server ready"
    _user_name: str | None = None
    _lost = False
    _first_line = True
    _held = False

    def connectionMade(self) -> None:
        self.callLater = self.factory.reactor.callLater  # type: ignore[method-assign]  # TimeoutMixin: our reactor
        self.portal = self.factory.portal  # type: ignore[assignment]
        self.startedTLS = False
        no_delay(self.transport)
        pop3.POP3.connectionMade(self)

    def connectionLost(self, reason: Any) -> None:  # type: ignore[override]
        self._lost = True
        self._release_lock()
        pop3.POP3.connectionLost(self, reason)

    def _release_lock(self) -> None:
        if self._user_name is not None:
            self.factory.in_use.discard(self._user_name)
            self._user_name = None

    def _peer_host(self) -> str:
        return str(getattr(self.transport.getPeer(), "host", ""))

    def _secure(self) -> bool:
        return self.startedTLS or ISSLTransport(self.transport, None) is not None

    # -- lines -------------------------------------------------------------------

    def oneLine(self, line: bytes) -> None:
        self.lineReceived(line)

    def lineTooLong(self) -> None:
        self.resetTimeout()
        self.failResponse(b"line too long (over 1000 octets)")

    def state_COMMAND(self, line: bytes) -> None:
        parts = line.split(b" ")
        if not parts or not parts[0]:
            self.failResponse(b"empty command")
            return
        if self.blocked is not None:
            self.processCommand(*parts)  # held until the reply in progress is sent
            return
        cmd = parts[0]
        if not cmd.isalpha() or len(cmd) > 8:
            self.failResponse(b"unknown command")
            return
        self.processCommand(*parts)

    def processCommand(self, command: bytes, *args: bytes) -> Any:
        if self.blocked is not None:
            self.blocked.append((command, args))
            if len(self.blocked) > MAX_WAITING and not self._held:
                # pipelined commands wait for a reply in progress: stop reading more
                self._held = True
                self.transport.pauseProducing()
            return None
        try:
            return self._dispatch(command.upper(), *args)
        except pop3.POP3Error as e:
            self.failResponse(
                b"".join(a if isinstance(a, bytes) else str(a).encode() for a in e.args)
            )
        except (TypeError, ValueError):
            self.failResponse(b"wrong arguments for " + command.upper())
        return None

    def _dispatch(self, command: bytes, *args: bytes) -> Any:
        if not self.mbox and command not in self.AUTH_CMDS:
            raise pop3.POP3Error(b"log in first: USER then PASS")
        if self.mbox and command in (b"USER", b"PASS", b"APOP", b"AUTH", b"STLS"):
            raise pop3.POP3Error(b"already logged in")
        f = getattr(self, "do_" + command.decode("ascii"), None)
        if f is None:
            raise pop3.POP3Error(b"unknown command " + command)
        return f(*args)

    def _unblock(self, _: Any) -> None:
        pop3.POP3._unblock(self, _)
        if self._held and self.blocked is None and not self._lost:
            self._held = False
            self.transport.resumeProducing()

    # -- capabilities, TLS --------------------------------------------------------

    def listCapabilities(self) -> list[bytes]:
        caps = [b"TOP", b"USER", b"UIDL", b"PIPELINING", b"RESP-CODES", b"AUTH-RESP-CODE"]
        if self.factory.tls_context is not None and not self._secure() and not self.mbox:
            caps.append(b"STLS")
        caps.append(b"IMPLEMENTATION portsuite")
        return caps

    def do_STLS(self) -> None:
        if self._secure():
            self.failResponse(b"TLS already active")
        elif self.factory.tls_context is None or not hasattr(self.transport, "startTLS"):
            self.failResponse(b"STLS not available here")
        else:
            self.successResponse(b"begin TLS negotiation")
            self.transport.startTLS(self.factory.tls_context)
            self.startedTLS = True
            self._userIs = None
            self.dropBuffered()

    def do_APOP(self, *args: bytes) -> None:
        self.failResponse(b"APOP is not offered; use USER and PASS")

    def do_AUTH(self, args: bytes | None = None) -> None:
        self.failResponse(b"SASL AUTH is not offered; use USER and PASS")

    # -- login ---------------------------------------------------------------------

    def do_USER(self, user: bytes, *rest: bytes) -> None:
        if rest:
            self.failResponse(b"USER takes one name")
            return
        self._userIs = user
        self.successResponse(b"send PASS")

    def do_PASS(self, password: bytes = b"", *words: bytes) -> None:
        if self._userIs is None:
            self.failResponse(b"USER first")
            return
        user = self._userIs
        self._userIs = None
        host = self._peer_host()
        if self.factory.guard.blocked(host):
            self.failResponse(b"[AUTH] too many failed logins from your address; try later")
            self.transport.loseConnection()
            return
        password = b" ".join((password, *words))
        self.blocked = []  # type: ignore[assignment]  # hold pipelined commands until answered
        d = self.portal.login(UsernamePassword(user, password), None, IMailboxPOP3)  # type: ignore[attr-defined]
        d.addCallbacks(self._logged_in, self._login_failed, callbackArgs=(user,))
        d.addErrback(self._login_error)

    def _logged_in(self, result: Any, user: bytes) -> None:
        _iface, mbox, logout = result
        name = mbox.box.name
        if name in self.factory.in_use:
            self.failResponse(b"[IN-USE] maildrop already locked by another session")
        else:
            self.factory.in_use.add(name)
            self._user_name = name
            self.mbox = mbox
            self._onLogout = logout
            count = len(mbox.msgs)
            self.successResponse(
                b"%s's maildrop has %d message%s (%d octets)"
                % (
                    name.encode(),
                    count,
                    b"" if count == 1 else b"s",
                    sum(m.size for m in mbox.msgs),
                )
            )
        self._unblock(None)

    def _login_failed(self, failure: Any) -> None:
        failure.trap(UnauthorizedLogin)

        def answer() -> None:
            if self._lost:
                return
            self.failResponse(b"[AUTH] wrong user name or password")
            if blocked:
                self.transport.loseConnection()
                return
            self._unblock(None)

        blocked = self.factory.guard.failed(self._peer_host(), answer)

    def _login_error(self, failure: Any) -> None:
        log.failure("{service}: login failed", failure, service=self.factory.name)
        self.failResponse(b"[SYS/TEMP] temporary failure; try again")
        self._unblock(None)

    # -- messages (RFC 1939 5: messages marked as deleted are not counted or listed) --

    def _number(self, i: bytes) -> int:
        n = int(i) - 1
        if n < 0 or n >= len(self.mbox.msgs) or n in self.mbox.deleted:
            raise pop3.POP3Error(b"no such message")
        return n

    def do_STAT(self) -> None:
        sizes = [s for s in self.mbox.listMessages() if s]
        self.successResponse(b"%d %d" % (len(sizes), sum(sizes)))

    def do_LIST(self, i: bytes | None = None) -> None:
        if i is not None:
            n = self._number(i)
            self.successResponse(b"%d %d" % (n + 1, self.mbox.listMessages(n)))
            return
        sizes = self.mbox.listMessages()
        live = [(n, s) for n, s in enumerate(sizes) if s]
        lines = [b"+OK %d messages (%d octets)\r\n" % (len(live), sum(s for _, s in live))]
        lines += [b"%d %d\r\n" % (n + 1, s) for n, s in live]
        lines.append(b".\r\n")
        self.transport.writeSequence(lines)

    def do_UIDL(self, i: bytes | None = None) -> None:
        if i is not None:
            n = self._number(i)
            self.successResponse(b"%d %s" % (n + 1, self.mbox.getUidl(n)))
            return
        sizes = self.mbox.listMessages()
        lines = [b"+OK\r\n"]
        lines += [b"%d %s\r\n" % (n + 1, self.mbox.getUidl(n)) for n, s in enumerate(sizes) if s]
        lines.append(b".\r\n")
        self.transport.writeSequence(lines)

    def do_DELE(self, i: bytes) -> None:
        self.mbox.deleteMessage(self._number(i))
        self.successResponse(b"message marked for deletion")

    def do_RETR(self, i: bytes) -> Any:
        self._first_line = True
        return pop3.POP3.do_RETR(self, i)

    def do_TOP(self, i: bytes, size: bytes) -> Any:
        self._first_line = True
        return pop3.POP3.do_TOP(self, i, size)

    def transformChunk(self, chunk: bytes) -> bytes:
        # byte-stuffing that also holds across chunk boundaries (RFC 1939 3)
        out = chunk.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
        if chunk[:1] == b"." and self._first_line:
            out = b"." + out
        self._first_line = chunk[-1:] == b"\n"
        return out

    def do_QUIT(self) -> None:
        if self.mbox:
            self.mbox.sync()
        self.successResponse(b"bye")
        self._release_lock()
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        # RFC 1939 3: the autologout timer expired; no UPDATE state (nothing deleted)
        self.failResponse(b"autologout: idle too long")
        self.transport.loseConnection()


class POP3Factory(ServerFactory):
    protocol = MailPOP3  # type: ignore[assignment]  # twisted.mail's POP3 has no .factory
    noisy = False

    def __init__(
        self,
        *,
        name: str,
        store: MailStore,
        accounts: Any,
        reactor: Any,
        tls_context: Any = None,
        guard: LoginGuard | None = None,
    ):
        self.name = name
        self.store = store
        self.reactor = reactor
        self.tls_context = tls_context
        self.guard = guard or LoginGuard(reactor)
        self.in_use: set[str] = set()
        portal = Portal(MaildropRealm(self))  # type: ignore[arg-type]
        if accounts is not None:
            portal.registerChecker(accounts.checker())
        self.portal = portal

    def buildProtocol(self, addr: Any) -> Any:  # a MailPOP3
        p = MailPOP3()
        p.factory = self
        return p
