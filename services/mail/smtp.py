"""
smtp: an ESMTP server (RFC 5321) on C{twisted.mail.smtp.ESMTP} that delivers mail for
its C{domains} into local mailboxes and nowhere else.

Extensions: SIZE (RFC 1870), 8BITMIME (RFC 6152), PIPELINING (RFC 2920), STARTTLS
(RFC 3207) where C{starttls} is configured, AUTH PLAIN and LOGIN (RFC 4954) for the
suite's C{[users]} accounts, offered over TLS or to loopback clients only.

It is never an open relay: a recipient outside C{domains} gets C{550 5.7.1 relaying
denied}, authenticated or not, and the server never opens a connection anywhere.

Line handling is our own (C{dataReceived}): a line over 1,000 octets gets C{500} and
is dropped; in DATA a bare LF ends a line, and only CRLF.CRLF ends the message (what
Postfix calls C{smtpd_forbid_bare_newline = normalize}), so C{LF.LF} cannot smuggle a
second message. Commands that wait for something (AUTH, the disk write after DATA)
hold back the client's pipelined commands until their reply is sent, so replies stay
in order.
"""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import formatdate
from typing import Any

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import smtp
from twisted.mail._cred import LOGINCredentials, PLAINCredentials
from twisted.mail.interfaces import IMessageDelivery
from zope.interface import implementer

from portsuite.api import is_loopback
from portsuite_services.mail.guard import LoginGuard
from portsuite_services.mail.lines import no_delay
from portsuite_services.mail.store import MailStore, valid_name

log = Logger(namespace="portsuite.smtp")

MAX_LINE = 1000  # octets, CRLF included (RFC 5321 4.5.3.1.4 and 4.5.3.1.6)
_PARAM = re.compile(rb"^([A-Za-z0-9][A-Za-z0-9-]*)(?:=(\S*))?$")
_MAIL = re.compile(rb"\s*FROM:\s*<([^<>\s]*)>(?:\s+(.*?))?\s*$", re.I)
_RCPT = re.compile(rb"\s*TO:\s*<([^<>\s]*)>(?:\s+(.*?))?\s*$", re.I)


class _UTF8Address:
    """An RFC 6531 address (UTF-8 local part and domain), as Twisted's Address is used."""

    def __init__(self, local: bytes, domain: bytes):
        self.local = local
        self.domain = domain

    @classmethod
    def parse(cls, path: bytes, allow_empty: bool = False) -> _UTF8Address | None:
        if path == b"" and allow_empty:
            return cls(b"", b"")
        local, at, domain = path.rpartition(b"@")
        try:
            path.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not at or not local or not domain or any(c < 33 for c in path):
            return None
        return cls(local, domain)

    def __bytes__(self) -> bytes:
        return self.local + b"@" + self.domain if self.local else b""

    def __str__(self) -> str:
        return bytes(self).decode("utf-8")


class _UTF8User:
    """What Twisted's User holds, for a UTF-8 recipient."""

    def __init__(self, dest: _UTF8Address, helo: Any, protocol: Any, orig: Any):
        self.dest = dest
        self.helo = helo
        self.protocol = protocol
        self.orig = orig

    def __str__(self) -> str:
        return str(self.dest)


class IllegalResponse(Exception):
    pass


@implementer(IMessageDelivery)
class Delivery:
    """Checks each recipient: a local domain, an account (or the catch-all)."""

    def __init__(self, factory: SMTPFactory, account: str | None = None):
        self.factory = factory
        self.account = account

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> bytes:
        name = helo[0] or b"unknown"
        return b"Received: from %s ([%s])\n\tby %s with ESMTP (portsuite)%s;\n\t%s" % (
            _printable(name),
            _printable(helo[1]),
            self.factory.hostname,
            b" (authenticated as " + self.account.encode() + b")" if self.account else b"",
            formatdate(localtime=False).encode(),
        )

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        return origin

    def validateTo(self, user: Any) -> Any:
        dest = user.dest
        domain = dest.domain.decode("utf-8", "replace").lower()
        if domain not in self.factory.domains:
            raise smtp.SMTPServerError(550, "5.7.1 relaying denied")
        local = dest.local.decode("utf-8", "replace")
        box = self.factory.mailbox_for(local)
        if box is None:
            raise smtp.SMTPServerError(550, "5.1.1 no such user here")
        return box


@implementer(IRealm)
class DeliveryRealm:
    def __init__(self, factory: SMTPFactory):
        self.factory = factory

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IMessageDelivery in interfaces:
            name = avatarId.decode() if isinstance(avatarId, bytes) else str(avatarId)
            return IMessageDelivery, Delivery(self.factory, name), lambda: None
        raise NotImplementedError("only IMessageDelivery")


def _printable(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8", "replace")
    return bytes(b if 33 <= b < 127 else 63 for b in value[:200])


class MailSMTP(smtp.ESMTP):
    """One SMTP session (RFC 5321)."""

    factory: SMTPFactory
    transport: Any
    timeout = 300  # RFC 5321 4.5.3.2.7: the server waits 5 minutes for a command

    def __init__(self, factory: SMTPFactory):
        chal = {b"PLAIN": PLAINCredentials, b"LOGIN": LOGINCredentials}
        smtp.ESMTP.__init__(self, chal, factory.tls_context)
        self.factory = factory
        self.host = factory.hostname
        self.portal = factory.portal  # type: ignore[assignment]
        self.delivery = Delivery(factory)  # type: ignore[assignment]
        self.noisy = False
        self._buf = b""
        self._skipping = False
        self._busy = False
        self._prev_crlf = True
        self._data: list[bytes] | None = None
        self._data_size = 0
        self._data_error: tuple[int, bytes] | None = None
        self._recipients: list[str] = []
        self._auth_failed_close = False

    # -- the session -----------------------------------------------------------

    def connectionMade(self) -> None:
        self.callLater = self.factory.reactor.callLater  # type: ignore[method-assign]  # TimeoutMixin: our reactor
        no_delay(self.transport)
        # a client that sends but never reads: when our replies fill the transport's
        # buffer, stop reading its commands until it reads them
        self.transport.registerProducer(_WriteWatch(self), True)
        smtp.ESMTP.connectionMade(self)

    def greeting(self) -> bytes:
        return self.host + b" ESMTP portsuite"

    def _peer_host(self) -> str:
        return str(getattr(self.transport.getPeer(), "host", ""))

    def _secure(self) -> bool:
        return self.startedTLS or ISSLTransport(self.transport, None) is not None

    def _auth_allowed(self) -> bool:
        return self._secure() or is_loopback(self.transport.getPeer())

    def extensions(self) -> dict[bytes, Any]:
        ext: dict[bytes, Any] = {b"SIZE": [b"%d" % self.factory.max_message_size]}
        ext[b"8BITMIME"] = None
        ext[b"PIPELINING"] = None
        ext[b"ENHANCEDSTATUSCODES"] = None
        ext[b"SMTPUTF8"] = None
        if self.canStartTLS and not self._secure():
            ext[b"STARTTLS"] = None
        if self._auth_allowed() and not self.authenticated:
            ext[b"AUTH"] = list(self.challengers)
        return ext

    def lookupMethod(self, command: Any) -> Any:
        if isinstance(command, bytes):
            if not command.isalpha() or len(command) > 16:
                return None
            command = command.decode("ascii")
        return smtp.ESMTP.lookupMethod(self, command)

    def do_UNKNOWN(self, rest: bytes) -> None:
        self.sendCode(500, b"5.5.2 command not recognized")

    def sendSyntaxError(self) -> None:
        self.sendCode(500, b"5.5.2 syntax error")

    def do_HELO(self, rest: bytes) -> None:
        if not rest.strip():
            self.sendCode(501, b"5.5.4 HELO needs your host name: HELO client.example")
            return
        self._recipients = []
        smtp.ESMTP.do_HELO(self, rest)

    def do_EHLO(self, rest: bytes) -> None:
        if not rest.strip():
            self.sendCode(501, b"5.5.4 EHLO needs your host name: EHLO client.example")
            return
        self._recipients = []
        smtp.ESMTP.do_EHLO(self, rest)

    def do_VRFY(self, rest: bytes) -> None:
        # RFC 5321 3.5.3: 252 when the server will not say whether a user exists
        self.sendCode(252, b"2.5.2 cannot VRFY user, but will accept the message and try")

    def do_EXPN(self, rest: bytes) -> None:
        self.sendCode(502, b"5.5.1 EXPN not available")

    def do_NOOP(self, rest: bytes) -> None:
        self.sendCode(250, b"2.0.0 OK")

    def do_RSET(self, rest: bytes) -> None:
        self._from = None
        self._to = []
        self.sendCode(250, b"2.0.0 OK")

    def do_QUIT(self, rest: bytes) -> None:
        self.sendCode(221, b"2.0.0 bye")
        self.transport.loseConnection()

    def do_MAIL(self, rest: bytes) -> None:
        if self._from:
            self.sendCode(503, b"5.5.1 nested MAIL command")
            return
        self._utf8 = False
        bracketed = _MAIL.match(rest)
        m = self.mail_re.match(rest)
        opts = bracketed.group(2) if bracketed else (m.group("opts") if m else None)
        for param in (opts or b"").split():
            p = _PARAM.match(param)
            if p is None:
                self.sendCode(501, b"5.5.4 bad MAIL parameter")
                return
            key, value = p.group(1).upper(), p.group(2)
            if key == b"SIZE":
                if value is None or not value.isdigit() or len(value) > 20:
                    self.sendCode(501, b"5.5.4 SIZE=octets")
                    return
                if int(value) > self.factory.max_message_size:
                    self.sendCode(552, b"5.3.4 message too big for this server")
                    return
            elif key == b"BODY":
                if (value or b"").upper() not in (b"7BIT", b"8BITMIME"):
                    self.sendCode(501, b"5.5.4 BODY=7BIT or BODY=8BITMIME")
                    return
            elif key == b"SMTPUTF8" and value is None:
                self._utf8 = True
            elif key == b"AUTH":
                pass  # RFC 4954 5: accepted, not trusted
            else:
                self.sendCode(555, b"5.5.4 MAIL parameter not recognized")
                return
        if bracketed and not bracketed.group(1).isascii():
            # RFC 6531: a UTF-8 address, which Twisted's (ASCII) parser cannot read
            if not self._utf8:
                self.sendCode(553, b"5.6.7 a non-ASCII address needs the SMTPUTF8 parameter")
                return
            origin = _UTF8Address.parse(bracketed.group(1), allow_empty=True)
            if origin is None:
                self.sendCode(501, b"5.1.7 bad sender address")
                return
            d = defer.maybeDeferred(self.validateFrom, self._helo, origin)
            d.addCallbacks(self._cbFromValidate, self._ebFromValidate)
            return
        smtp.ESMTP.do_MAIL(self, rest)

    def _cbFromValidate(self, fromEmail: Any, code: int = 250, msg: bytes = b"") -> None:
        self._recipients = []
        smtp.ESMTP._cbFromValidate(self, fromEmail, code, b"2.1.0 sender OK")

    def do_RCPT(self, rest: bytes) -> None:
        if self._from and len(self._to) >= self.factory.max_recipients:
            self.sendCode(452, b"4.5.3 too many recipients")
            return
        m = self.rcpt_re.match(rest)
        if m and m.group("opts"):
            self.sendCode(555, b"5.5.4 RCPT parameters not recognized")
            return
        bracketed = _RCPT.match(rest)
        utf8_from = isinstance(self._from, _UTF8Address)
        if self._from and bracketed and (utf8_from or not bracketed.group(1).isascii()):
            if bracketed.group(2):
                self.sendCode(555, b"5.5.4 RCPT parameters not recognized")
                return
            if not self._utf8:
                self.sendCode(553, b"5.6.7 a non-ASCII address needs SMTPUTF8 in MAIL FROM")
                return
            dest = _UTF8Address.parse(bracketed.group(1))
            if dest is None:
                self.sendCode(501, b"5.1.3 bad recipient address")
                return
            user = _UTF8User(dest, self._helo, self, self._from)
            d = defer.maybeDeferred(self.validateTo, user)
            d.addCallbacks(self._cbToValidate, self._ebToValidate, callbackArgs=(user,))
            return
        smtp.ESMTP.do_RCPT(self, rest)

    def _cbToValidate(self, to: Any, user: Any = None, code: int = 250, msg: bytes = b"") -> None:
        smtp.ESMTP._cbToValidate(self, to, user, code, b"2.1.5 recipient OK")

    def _ebToValidate(self, failure: Any) -> None:
        if failure.check(smtp.SMTPBadRcpt, smtp.SMTPServerError):
            self.sendCode(failure.value.code, str(failure.value.resp).encode())
        else:
            log.failure("{service}: recipient check failed", failure, service=self.factory.name)
            self.sendCode(451, b"4.3.0 local error")

    # -- DATA, our own: one buffer for every recipient, bounded ----------------

    def do_DATA(self, rest: bytes) -> None:
        if self._from is None or not self._to:
            self.sendCode(503, b"5.5.1 need MAIL and RCPT first")
            return
        helo, origin, recipients = self._helo, self._from, self._to
        self._from = None
        self._to = []
        self._recipients = [box for _user, box in recipients]
        header = self.delivery.receivedHeader(helo, origin, [u for u, _ in recipients])  # type: ignore[attr-defined]
        self._data = [b"Return-Path: <" + str(origin).encode("utf-8", "replace") + b">", header]
        self._data_size = sum(len(x) + 1 for x in self._data)
        self._data_error = None
        self._prev_crlf = True
        self.mode = smtp.DATA
        self.sendCode(354, b"end data with <CR><LF>.<CR><LF>")

    def _data_line(self, line: bytes, crlf: bool) -> None:
        if line == b"." and crlf and self._prev_crlf:
            self._end_of_data()
            return
        self._prev_crlf = crlf
        if line[:1] == b"." and line != b".":
            line = line[1:]  # dot-stuffing (RFC 5321 4.5.2); a bare-LF "." stays "."
        if self._data_error is not None or self._data is None:
            return
        self._data_size += len(line) + 1
        if self._data_size > self.factory.max_message_size:
            self._data_error = (552, b"5.3.4 message too big for this server")
            self._data = None
            return
        self._data.append(line)

    def _data_too_long(self) -> None:
        self._data_error = (500, b"5.5.2 line too long (over 1000 octets); message not stored")
        self._data = None
        self._prev_crlf = False

    def _end_of_data(self) -> None:
        self.mode = smtp.COMMAND
        data, error, boxes = self._data, self._data_error, self._recipients
        self._data = None
        self._recipients = []
        if error is not None or data is None:
            code, text = error or (451, b"4.3.0 local error")
            self.sendCode(code, text)
            return
        data.append(b"")
        body = b"\n".join(data)
        self._hold()
        d = self.factory.store.deliver(boxes, body)

        def stored(key: str) -> None:
            self.factory.delivered += 1
            self.sendCode(250, b"2.0.0 OK: queued as " + key.encode())

        def failed(f: Any) -> None:
            log.failure("{service}: cannot store a message", f, service=self.factory.name)
            self.sendCode(451, b"4.3.0 cannot store the message now; try again later")

        d.addCallbacks(stored, failed)
        d.addBoth(lambda _: self._release())

    # -- AUTH ------------------------------------------------------------------

    def ext_AUTH(self, rest: bytes) -> None:
        if not self._auth_allowed():
            self.sendCode(538, b"5.7.11 encryption required: STARTTLS first")
            return
        if self.authenticated:
            self.sendCode(503, b"5.5.1 already authenticated")
            return
        if self._from:
            self.sendCode(503, b"5.5.1 AUTH not allowed during a mail transaction")
            return
        host = self._peer_host()
        if self.factory.guard.blocked(host):
            self.sendCode(421, b"4.7.0 too many failed logins from your address; try later")
            self.transport.loseConnection()
            return
        parts = rest.split(None, 1)
        if not parts:
            self.sendCode(501, b"5.5.4 AUTH PLAIN or AUTH LOGIN")
            return
        factory = self.challengers.get(parts[0].upper())
        if factory is None:
            self.sendCode(504, b"5.5.4 unrecognized authentication type")
            return
        self.challenger = factory()
        self.mode = smtp.AUTH
        if len(parts) > 1:
            self.challenger.getChallenge()
            self.state_AUTH(parts[1])
        else:
            self.state_AUTH(None)

    def state_AUTH(self, response: bytes | None) -> None:
        chal = self.challenger
        if response is None:
            self.sendCode(334, base64.b64encode(chal.getChallenge()))
            return
        if response.strip() == b"*":
            self.mode = smtp.COMMAND
            self.challenger = None
            self.sendCode(501, b"5.0.0 authentication aborted")
            return
        try:
            decoded = base64.b64decode(response, validate=True) if response != b"=" else b""
            chal.setResponse(decoded)
        except (binascii.Error, ValueError, Exception):
            self.mode = smtp.COMMAND
            self.challenger = None
            self.sendCode(501, b"5.5.2 cannot decode the response")
            return
        if chal.moreChallenges():
            self.sendCode(334, base64.b64encode(chal.getChallenge()))
            return
        self.mode = smtp.COMMAND
        self.challenger = None
        self._hold()
        d = self.portal.login(chal, None, IMessageDelivery)  # type: ignore[attr-defined]
        d.addCallbacks(self._logged_in, self._login_failed)
        d.addErrback(self._login_error)

    def _logged_in(self, result: Any) -> None:
        _iface, avatar, logout = result
        self.delivery = avatar
        self._onLogout = logout
        self.authenticated = True
        self.sendCode(235, b"2.7.0 authentication successful")
        self._release()

    def _login_failed(self, failure: Any) -> None:
        failure.trap(UnauthorizedLogin)

        def answer() -> None:
            if self._lost:
                return
            self.sendCode(535, b"5.7.8 authentication credentials invalid")
            if blocked:
                self.sendCode(421, b"4.7.0 too many failed logins; closing")
                self.transport.loseConnection()
            self._release()

        blocked = self.factory.guard.failed(self._peer_host(), answer)

    def _login_error(self, failure: Any) -> None:
        log.failure("{service}: AUTH failed", failure, service=self.factory.name)
        self.sendCode(454, b"4.7.0 temporary authentication failure")
        self._release()

    # -- STARTTLS --------------------------------------------------------------

    def ext_STARTTLS(self, rest: bytes) -> None:
        if self._secure():
            self.sendCode(503, b"5.5.1 TLS already active")
        elif not self.canStartTLS:
            self.sendCode(454, b"4.7.0 TLS not available")
        else:
            self.sendCode(220, b"2.0.0 ready to start TLS")
            self.transport.startTLS(self.ctx)
            self.startedTLS = True
            # RFC 3207 4.2: forget everything said in plain text
            self._helo = (None, self._helo[1] if self._helo else b"")
            self._from = None
            self._to = []
            self._buf = b""
            self._skipping = False
            self._discard_rest = True

    # -- lines: our own splitting, bounded, in order ----------------------------

    _discard_rest = False
    _utf8 = False
    _paused = False
    _lost = False

    def _hold(self) -> None:
        self._busy = True

    def _release(self) -> None:
        self._busy = False
        if self._lost or self._write_full:
            return
        if self._paused:
            self._paused = False
            self._reading()
        if self._buf:
            self.dataReceived(b"")

    _write_full = False

    def _reading(self) -> None:
        """Stop reading the client while its buffered input waits (see dataReceived)."""
        if self._paused and not self._not_reading:
            self._not_reading = True
            self.transport.pauseProducing()
        elif not self._paused and self._not_reading and not self._lost:
            self._not_reading = False
            self.transport.resumeProducing()

    _not_reading = False

    def _writable(self, full: bool) -> None:
        """
        The transport's write buffer is full (a client that sends but does not read, or
        a TLS handshake in progress): hold its commands; go on once it drains.
        """
        self._write_full = full
        if not full and not self._busy and not self._lost:
            if self._paused:
                self._paused = False
                self._reading()
            if self._buf:
                self.dataReceived(b"")

    def dataReceived(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        start = 0
        limit = MAX_LINE - 2
        while not self._busy and not self._write_full:
            if self.transport.disconnecting:
                buf, start = b"", 0
                break
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            raw = buf[start:nl]
            start = nl + 1
            ends_crlf = raw[-1:] == b"\r"
            line = raw[:-1] if ends_crlf else raw
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > limit:
                self._line_too_long()
                continue
            self._line(line, ends_crlf)
            if self._discard_rest:
                # STARTTLS: bytes sent with the command were plain text; drop them
                self._discard_rest = False
                buf, start = b"", 0
                break
        rest = buf[start:] if start else buf
        if self._busy or self._write_full:
            self._buf = rest
            if len(rest) > 64 * 1024 and not self._paused:
                self._paused = True
                self._reading()
            return
        if len(rest) > limit:
            if not self._skipping:
                self._line_too_long()
                self._skipping = True
            rest = b""
        self._buf = rest

    def _line_too_long(self) -> None:
        self.resetTimeout()
        if self.mode == smtp.DATA:
            self._data_too_long()
        else:
            if self.mode == smtp.AUTH:
                self.mode = smtp.COMMAND
                self.challenger = None
            self.sendCode(500, b"5.5.2 line too long (over 1000 octets)")

    def _line(self, line: bytes, ends_crlf: bool) -> None:
        self.resetTimeout()
        if self.mode == smtp.DATA:
            self._data_line(line, ends_crlf)
        else:
            getattr(self, "state_" + self.mode)(line)

    def lineReceived(self, line: bytes) -> None:  # not used: dataReceived splits lines
        self._line(line, True)

    def timeoutConnection(self) -> None:
        self.sendCode(421, b"4.4.2 " + self.host + b" idle too long; closing")
        self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:  # type: ignore[override]
        self._lost = True
        self._data = None
        self._buf = b""
        smtp.ESMTP.connectionLost(self, reason)


@implementer(IPushProducer)
class _WriteWatch:
    """Told by the transport when its write buffer is full (pause) and drained (resume)."""

    def __init__(self, proto: MailSMTP):
        self.proto = proto

    def pauseProducing(self) -> None:
        self.proto._writable(True)

    def resumeProducing(self) -> None:
        self.proto._writable(False)

    def stopProducing(self) -> None:
        pass


class SMTPFactory(ServerFactory):
    """Shared by every session of one smtp service."""

    protocol = MailSMTP  # type: ignore[assignment]

    def __init__(
        self,
        *,
        name: str,
        store: MailStore,
        domains: list[str],
        accounts: Any,
        reactor: Any,
        catch_all: str | None = None,
        max_message_size: int = 10 * 1024 * 1024,
        max_recipients: int = 100,
        tls_context: Any = None,
        guard: LoginGuard | None = None,
    ):
        self.name = name
        self.store = store
        self.domains = {d.lower() for d in domains}
        self.accounts = accounts
        self.reactor = reactor
        self.catch_all = catch_all
        self.max_message_size = max_message_size
        self.max_recipients = max_recipients
        self.tls_context = tls_context
        self.guard = guard or LoginGuard(reactor)
        self.hostname = (sorted(self.domains)[0] if self.domains else "localhost").encode()
        self.delivered = 0
        portal = Portal(DeliveryRealm(self))  # type: ignore[arg-type]
        if accounts is not None:
            portal.registerChecker(accounts.checker())
        self.portal = portal

    def mailbox_for(self, local: str) -> str | None:
        """The mailbox of a recipient's local part: its account, else the catch-all."""
        names = self.accounts.names() if self.accounts is not None else []
        for name in names:
            if name.lower() == local.lower():
                return str(name)
        if self.catch_all and valid_name(self.catch_all):
            return self.catch_all
        return None

    def buildProtocol(self, addr: Any) -> MailSMTP:  # type: ignore[override]
        return MailSMTP(self)
