"""
The FTP control connection (RFC 959, RFC 2428 EPSV/EPRT, RFC 3659 MLSD/MLST/SIZE/
MDTM/REST, RFC 2389 FEAT/OPTS, RFC 2640 UTF-8, RFC 2577 security), on Twisted's
C{twisted.protocols.ftp.FTP}.

Twisted's protocol gives the login state machine (USER/PASS through a C{Portal}),
C{toSegments}, CWD/CDUP/TYPE/STRU/MODE/DELE/RMD and its reply table. This subclass
adds what a real client expects and what a shared lab server must hold to:

  - transfers that do not block the control connection while a data connection is
    awaited (PASV replies at once; the transfer command waits for the connection,
    up to C{data_timeout}, then 425), REST (resume) for RETR and STOR, APPE, MLSD,
    MLST, SIZE/MDTM on plain files only, FEAT, OPTS UTF8, ABOR, EPSV ALL;
  - no FTP bounce: PORT/EPRT only to the client's own address and a port >= 1024
    (else 504), passive connections accepted only from the client's address;
  - the passive port range, 425 when it is used up; a wrong password costs
    C{LOGIN_DELAY} seconds and C{MAX_FAILURES} within C{FAILURE_WINDOW} shut the
    client's address out (421) for the rest of the window;
  - uploads to a temporary name, renamed when complete; over C{max_upload} → 552 and
    nothing kept;
  - lines are UTF-8, at most C{MAX_LENGTH} bytes; anything that is not a command → 500;
    the reactor is the suite's (Twisted's own code reaches for the global one).
"""

from __future__ import annotations

import collections
import fnmatch
import ipaddress
import random
import time
from collections.abc import Iterator
from typing import Any

from twisted.cred import credentials
from twisted.cred import error as cred_error
from twisted.internet import defer, error
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols import ftp as tftp
from twisted.protocols.ftp import (
    FTP,
    FTPCmdError,
    IFTPShell,
    InvalidPath,
    toSegments,
)
from twisted.python.failure import Failure

from portsuite.api import FailedLogins
from portsuite_services.ftp.data import (
    DataChannel,
    FileSender,
    PassiveListener,
    SendfileSender,
    host_port,
    same_host,
    upload_buffer,
)
from portsuite_services.ftp.shell import Escape, list_line, mlsx_facts

log = Logger(namespace="portsuite.ftp")

LOGIN_DELAY = 1.0  # seconds a wrong password costs
MAX_FAILURES = 5  # wrong passwords per client address …
FAILURE_WINDOW = 300.0  # … within this many seconds, then refused for the rest of it
FAILURE_HOSTS = 10_000  # addresses remembered at most
SEND_CHUNK = 256 * 1024
# bytes per sendfile call: bigger calls (4 MiB) cost the server less per MB and the
# client more (see upload_buffer); at 256 KiB both spend what they do with pyftpdlib
SENDFILE_CHUNK = 256 * 1024
SENDFILE_MIN = 1024 * 1024  # smaller files: one read and one write cost fewer syscalls
BIG_UPLOAD = 1024 * 1024  # an upload past this many bytes gets a big kernel buffer
RECENT_CHANNELS = 8  # data connections kept per session for the dashboard
RECENT_SESSIONS = 10
PASSIVE_TRIES = 512  # ports of passive_ports tried per PASV/EPSV before 425
DETAIL_SESSIONS = 20  # sessions the dashboard is given …
DETAIL_CHANNELS = 4  # … each with its latest data connections
FEATURES = (
    "EPRT",
    "EPSV",
    "MDTM",
    "MLST type*;size*;modify*;perm*;",
    "PASV",
    "REST STREAM",
    "SIZE",
    "TVFS",
    "UTF8",
)
PUBLIC = {"FEAT", "QUIT", "NOOP", "SYST", "OPTS", "HELP", "AUTH", "PBSZ", "PROT"}
# commands whose reply lines go out in one send at the end of the command: a download
# or listing that completes at once (150 and 226), and the multi-line replies. Never
# one that closes the connection or starts TLS after its reply (QUIT, PASS, AUTH)
CORKED = {"RETR", "LIST", "NLST", "MLSD", "FEAT", "HELP", "STAT", "MLST"}


class Reply(Exception):
    """Answer the current command with this line (raised from deep inside)."""


def _path_reply(e: BaseException, name: str) -> str:
    if isinstance(e, FTPCmdError):
        return (
            e.response().decode("utf-8", "replace")
            if isinstance(e.response(), bytes)
            else str(e.response())
        )
    if isinstance(e, (Escape, InvalidPath)):
        return f"550 {name}: No such file or directory."
    if isinstance(e, OSError):
        return f"550 {name}: {e.strerror or 'cannot be used'}."
    raise e


def _quote(path: str) -> str:
    return path.replace('"', '""')


class FTPSession(FTP):
    """One FTP control connection (the server-PI of RFC 959)."""

    delimiter = b"\n"  # and a trailing \r is dropped: some clients send bare \n
    MAX_LENGTH = 4096
    factory: FTPServer
    # the TCP/TLS transport: Twisted types it as an optional ITransport, a zope interface
    # whose methods mypy reads without self; set from connectionMade on
    transport: Any
    shell: Any = None
    user: str | None = None
    channel: DataChannel | None = None  # set up by PASV/EPSV/PORT/EPRT, not used yet
    _listener: PassiveListener | None = None  # a passive port kept between transfers
    busy: DataChannel | None = None  # carrying a transfer right now
    _rest = 0
    _fromName: str | None = None
    _cork: list[bytes] | None = None  # lines held until the command ends (CORKED)

    # -- connection ---------------------------------------------------------------

    def callLater(self, period: float, func: Any) -> Any:  # TimeoutMixin, our reactor
        return self.factory.reactor.callLater(period, func)

    def connectionMade(self) -> None:
        self.state = self.UNAUTH
        self.workingDirectory: list[str] = []
        self.peer_host = self.transport.getPeer().host
        self.local_host = self.transport.getHost().host
        self.since = self.factory.reactor.seconds()
        self.channels: collections.deque[DataChannel] = collections.deque(maxlen=RECENT_CHANNELS)
        self.service_name = self.factory.name
        self.factory.sessions[id(self)] = self
        self.tls = self.factory.implicit_tls
        self._note = getattr(self.transport, "annotate", None)
        _nodelay(self.transport)  # replies are small and each waits for the next command
        self.setTimeout(self.factory.idle_timeout)
        self.sendLine("220 portsuite FTP server ready.")

    def connectionLost(self, reason: Any = None) -> None:
        self.disconnected = True
        self.setTimeout(None)
        for ch in (self.channel, self.busy):
            if ch is not None:
                ch.close()
        self.channel = self.busy = None
        if self._listener is not None:
            self._listener.stopListening()
            self._listener = None
        self.factory.session_ended(self)
        self.shell = None

    def timeoutConnection(self) -> None:
        if self.busy is not None:
            # a transfer is not idleness (its own stall timer watches it): the idle
            # timer runs on, rather than being stopped and made again for every file
            self.resetTimeout()
            return
        self.sendLine(f"421 Idle for {self.factory.idle_timeout:g}s; closing control connection.")
        self.transport.loseConnection()

    def sendLine(self, line: Any) -> None:
        if self.disconnected or self.transport is None:
            return
        if isinstance(line, str):
            line = line.encode("utf-8", "surrogateescape")
        if self._cork is not None:
            self._cork.append(line + b"\r\n")
            return
        self.transport.write(line + b"\r\n")

    def reply(self, key: str, *args: Any) -> None:
        template = tftp.RESPONSE[key]
        assert isinstance(template, str)  # all are, but FEAT's lines (ftp_FEAT sends its own)
        self.sendLine(template % args)

    # the transcript's hook (trace = true), looked up once: the wrapper a connection has
    # does not change, and a miss costs a trip through ProtocolWrapper.__getattr__
    _note: Any = None

    @property
    def traced(self) -> bool:
        return self._note is not None

    def annotate(self, text: str) -> None:
        """A line in this connection's transcript (trace = true), if traced."""
        if self._note is not None:
            self._note(text)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(f"500 Command line too long (at most {self.MAX_LENGTH} bytes).")
        self.transport.loseConnection()

    # -- commands -----------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self.disconnected:
            return
        self.resetTimeout()
        line = line.rstrip(b"\r").lstrip(b"\xff\xf4\xf2")  # telnet IP/DM before ABOR
        text = line.decode("utf-8", "surrogateescape")
        cmd, sep, arg = text.partition(" ")
        cmd = cmd.upper()
        if not (cmd.isascii() and cmd.isalpha() and getattr(self, "ftp_" + cmd, None)):
            shown = cmd[:20].encode("ascii", "backslashreplace").decode("ascii")
            self.sendLine(f"500 Unknown command {shown!r}.")
            return

        args = (arg,) if sep else ()
        if cmd in CORKED and self._note is None:
            # its lines leave in one send when the command ends: a small file's 150
            # and 226 together (one wake-up of the client, not two); a transcript
            # (traced) keeps each line in its place among the notes
            self._cork = []
            try:
                self._run(cmd, args)
            finally:
                out, self._cork = self._cork, None
                if out and not self.disconnected and self.transport is not None:
                    self.transport.write(b"".join(out))
        else:
            self._run(cmd, args)

    def _run(self, cmd: str, args: tuple[str, ...]) -> None:
        try:
            result = self.processCommand(cmd, *args)
        except Exception:
            result = Failure()
        if not isinstance(result, defer.Deferred):
            # answered at once (most commands): no Deferred to build
            try:
                if isinstance(result, Failure):
                    self._failed(result, cmd)
                else:
                    self._answer(result)
            except Exception:
                log.failure("{service}: reply", service=self.service_name)
            return
        d = result
        d.addCallbacks(self._answer, self._failed, errbackArgs=(cmd,))
        d.addErrback(lambda f: log.failure("{service}: reply", f, service=self.service_name))
        if d.called:
            return  # answered already: the next line may follow at once
        # the answer comes later (a login, a transfer): read no further command until
        # then, so replies keep their order and a client cannot queue up work
        self.pauseProducing()
        # resumed on a later turn of the reactor, never from inside lineReceived
        d.addBoth(lambda _: self.factory.reactor.callLater(0, self._resume))

    def _resume(self) -> None:
        if not self.disconnected:
            self.resumeProducing()

    def _answer(self, result: Any) -> None:
        if isinstance(result, tuple):
            self.reply(*result)
        elif isinstance(result, str) and result[:3].isdigit():
            self.sendLine(result)
        elif result is not None:
            self.reply(result)

    def _failed(self, err: Any, cmd: str) -> None:
        if err.check(FTPCmdError):
            self.sendLine(err.value.response())
        elif err.check(Reply):
            self.sendLine(str(err.value))
        elif err.check(TypeError) and "positional argument" in str(err.value):
            self.sendLine(f"501 {cmd} needs an argument.")
        else:
            log.failure(
                "{service}: {cmd} failed for {peer}",
                err,
                service=self.service_name,
                cmd=cmd,
                peer=self.peer_host,
            )
            self.sendLine("451 Local error; the command was not done.")

    def processCommand(self, cmd: str, *params: str) -> Any:
        method = getattr(self, "ftp_" + cmd)
        if cmd in PUBLIC:
            return method(*params)
        if self.state == self.UNAUTH:
            if cmd == "USER":
                return method(*params)
            if cmd == "PASS":
                return "503 Login with USER first."
            return "530 Please login with USER and PASS."
        if self.state == self.INAUTH:
            if cmd in ("USER", "PASS"):
                return method(*params)
            return "530 Please login with USER and PASS."
        if self.state == self.RENAMING and cmd != "RNTO":
            self.state = self.AUTHED
            self._fromName = None
        if cmd != "REST" and cmd not in (
            "RETR",
            "STOR",
            "APPE",
            "TYPE",
            "PASV",
            "EPSV",
            "PORT",
            "EPRT",
            "NOOP",
        ):
            self._rest = 0
        return method(*params)

    # -- login ----------------------------------------------------------------------

    def ftp_USER(self, username: str) -> Any:
        if not username:
            return "501 USER needs a user name."
        self.user = None
        self.shell = None
        self._user = username
        self.state = self.INAUTH
        if self.factory.anonymous and username.lower() in ("anonymous", "ftp"):
            return "331 Anonymous login ok; send your e-mail address as password."
        return f"331 Password required for {username[:64]}."

    def ftp_PASS(self, password: str = "") -> Any:
        factory = self.factory
        host = self.peer_host
        wait = factory.refused_for(host)
        if wait:
            self.sendLine(f"421 Too many failed logins from {host}; try again in {int(wait) + 1}s.")
            self.transport.loseConnection()
            return None
        user = self._user
        anonymous = factory.anonymous and user.lower() in ("anonymous", "ftp")
        if anonymous:
            creds: Any = credentials.Anonymous()
        else:
            # str, not bytes as Twisted types it: the suite's Accounts checker reads str
            creds = credentials.UsernamePassword(user, password)  # type: ignore[arg-type]

        def ok(result: Any) -> str:
            iface, shell, logout = result
            self.shell = shell
            self.user = "anonymous" if anonymous else user
            self.workingDirectory = []
            self.state = self.AUTHED
            log.info(
                "{service}: {peer} logged in as {user}",
                service=self.service_name,
                peer=host,
                user=self.user,
            )
            if anonymous:
                return "230 Anonymous login ok; read-only access to the public files."
            if shell.writable:
                return f"230 User {user} logged in; your home folder is /."
            return f"230 User {user} logged in; read-only access."

        def bad(failure: Any) -> Any:
            failure.trap(cred_error.UnauthorizedLogin, cred_error.UnhandledCredentials)
            self.state = self.UNAUTH
            refused = factory.login_failed(host)
            log.warn(
                "{service}: {peer} failed to log in as {user}",
                service=self.service_name,
                peer=host,
                user=user[:64],
            )
            d: defer.Deferred[str | None] = defer.Deferred()

            def answer() -> None:
                if refused:
                    self.sendLine("530 Login incorrect.")
                    self.sendLine(f"421 Too many failed logins from {host}; closing.")
                    if self.transport is not None:
                        self.transport.loseConnection()
                    d.callback(None)
                else:
                    d.callback("530 Login incorrect.")

            factory.reactor.callLater(factory.login_delay, answer)
            return d

        del self._user
        d = factory.portal.login(creds, None, IFTPShell)
        d.addCallbacks(ok, bad)
        return d

    # -- information -----------------------------------------------------------------

    def ftp_FEAT(self) -> None:
        self.sendLine("211-Features:")
        features = list(FEATURES)
        if self.factory.implicit_tls:
            features += ["PBSZ", "PROT"]
        elif self.factory.tls_options is not None:
            features += ["AUTH TLS", "PBSZ", "PROT"]
        for f in sorted(features):
            self.sendLine(" " + f)
        self.sendLine("211 End")

    # -- FTPS (RFC 4217): AUTH TLS, PBSZ, PROT ------------------------------------------

    tls = False  # the control connection is encrypted
    protect = False  # PROT P: data connections are encrypted too

    def ftp_AUTH(self, mechanism: str) -> Any:
        if mechanism.upper() not in ("TLS", "TLS-C", "SSL"):
            return f"504 AUTH {mechanism[:20]} not supported; use AUTH TLS."
        if self.factory.tls_options is None:
            return "502 AUTH TLS not available: this service has no starttls certificate."
        if self.tls:
            return "503 Already using TLS."
        self.sendLine("234 AUTH TLS ok; starting TLS.")
        self.transport.startTLS(self.factory.tls_options)
        self.tls = True
        # a new session starts, encrypted: log in again (RFC 4217 §4)
        self.state = self.UNAUTH
        self.shell = None
        self.user = None
        self.annotate("TLS starts here: from now on the bytes on the wire are encrypted")
        return None

    def ftp_PBSZ(self, size: str) -> str:
        if not self.tls:
            return "503 PBSZ needs AUTH TLS first."
        return "200 PBSZ=0"

    def ftp_PROT(self, level: str) -> str:
        if not self.tls:
            return "503 PROT needs AUTH TLS first."
        level = level.upper()
        if level == "P":
            self.protect = True
            return "200 Protection level set to P (data connections encrypted)."
        if level == "C":
            self.protect = False
            return "200 Protection level set to C (data connections in clear)."
        return f"536 PROT {level[:5]} not supported; use P or C."

    def ftp_OPTS(self, option: str = "") -> str:
        name, _, value = option.partition(" ")
        name = name.upper()
        if name == "UTF8" and value.upper() in ("ON", ""):
            return "200 Always in UTF8 mode."
        if name == "UTF8":
            return "504 UTF8 cannot be turned off; names are always UTF-8."
        if name == "MLST":
            return "200 MLST OPTS type;size;modify;perm;"
        return f"501 Option {name[:20]!r} not understood."

    def ftp_SYST(self) -> str:
        return "215 UNIX Type: L8"

    def ftp_HELP(self, arg: str = "") -> None:
        names = sorted(n[4:] for n in dir(self) if n.startswith("ftp_"))
        self.sendLine("214-The following commands are recognized:")
        for i in range(0, len(names), 10):
            self.sendLine(" " + " ".join(names[i : i + 10]))
        self.sendLine("214 Help OK.")

    def ftp_NOOP(self) -> str:
        return "200 NOOP ok."

    def ftp_STAT(self, path: str = "") -> Any:
        if path:
            return "504 STAT with a path: use LIST or MLST."
        self.sendLine("211-portsuite FTP server status:")
        self.sendLine(f"     Connected to {self.peer_host}")
        self.sendLine(f"     Logged in as {self.user}")
        self.sendLine(f"     TYPE: {'BINARY' if self.binary else 'ASCII'}")
        self.sendLine("211 End of status.")
        return None

    def ftp_ALLO(self, arg: str = "") -> str:
        return "202 ALLO is not needed here."

    def ftp_QUIT(self) -> None:
        self.sendLine("221 Goodbye.")
        self.transport.loseConnection()
        self.disconnected = True

    # -- paths ------------------------------------------------------------------------

    def _segments(self, path: str) -> list[str]:
        if "\0" in path:
            raise Reply("501 A path cannot contain NUL.")
        try:
            return toSegments(self.workingDirectory, path)
        except InvalidPath:
            raise Reply(f"550 {path[:200]}: No such file or directory.") from None

    def _show(self, segments: list[str]) -> str:
        return "/" + "/".join(segments)

    def ftp_PWD(self) -> str:
        return f'257 "{_quote(self._show(self.workingDirectory))}" is the current directory.'

    def ftp_CWD(self, path: str) -> Any:
        segs = self._segments(path)
        d = self.shell.access(segs)
        d.addCallback(lambda _: setattr(self, "workingDirectory", segs))
        d.addCallback(lambda _: "250 Directory successfully changed.")
        d.addErrback(lambda f: f"550 {path[:200]}: Failed to change directory.")
        return d

    def ftp_XPWD(self) -> str:
        return self.ftp_PWD()

    def ftp_XCUP(self) -> Any:
        return self.ftp_CDUP()

    def ftp_SIZE(self, path: str) -> str:
        segs = self._segments(path)
        try:
            p, st = self.shell.stat_entry(segs)
        except Exception as e:
            return _path_reply(e, path)
        if not p.isfile():
            return f"550 {path[:200]}: not a plain file."
        return f"213 {st.st_size}"

    def ftp_MDTM(self, path: str) -> str:
        segs = self._segments(path)
        try:
            p, st = self.shell.stat_entry(segs)
        except Exception as e:
            return _path_reply(e, path)
        if not p.isfile():
            return f"550 {path[:200]}: not a plain file."
        return "213 " + time.strftime("%Y%m%d%H%M%S", time.gmtime(st.st_mtime))

    def ftp_MLST(self, path: str = "") -> Any:
        segs = self._segments(path)
        try:
            p, st = self.shell.stat_entry(segs)
        except Exception as e:
            return _path_reply(e, path)
        facts = mlsx_facts(st, None, self.shell.writable)
        self.sendLine(f"250-Listing {path or self._show(segs)}")
        self.sendLine(f" {facts} {self._show(segs)}")
        self.sendLine("250 End.")
        return None

    def ftp_MKD(self, path: str) -> Any:
        segs = self._segments(path)
        d = self.shell.makeDirectory(segs)
        d.addCallback(lambda _: f'257 "{_quote(self._show(segs))}" created.')
        return d

    def ftp_XMKD(self, path: str) -> Any:
        return self.ftp_MKD(path)

    def ftp_RMD(self, path: str) -> Any:
        segs = self._segments(path)
        d = self.shell.removeDirectory(segs)
        d.addCallback(lambda _: "250 Remove directory operation successful.")
        return d

    def ftp_XRMD(self, path: str) -> Any:
        return self.ftp_RMD(path)

    def ftp_DELE(self, path: str) -> Any:
        segs = self._segments(path)
        d = self.shell.removeFile(segs)
        d.addCallback(lambda _: "250 Delete operation successful.")
        return d

    def ftp_RNFR(self, path: str) -> Any:
        segs = self._segments(path)
        if not self.shell.writable:
            return "550 Permission denied: read-only access."
        try:
            self.shell.stat_entry(segs)
        except Exception as e:
            return _path_reply(e, path)
        self._fromName = path
        self.state = self.RENAMING
        return "350 Ready for RNTO."

    def ftp_RNTO(self, path: str) -> Any:
        if self.state != self.RENAMING or self._fromName is None:
            return "503 RNFR required first."
        fromName, self._fromName = self._fromName, None
        self.state = self.AUTHED
        src = self._segments(fromName)
        dst = self._segments(path)
        d = self.shell.rename(src, dst)
        d.addCallback(lambda _: "250 Rename successful.")
        return d

    def ftp_REST(self, offset: str) -> str:
        if not offset.isdigit() or len(offset) > 18:
            return "501 REST needs a byte offset (a whole number)."
        self._rest = int(offset)
        return f"350 Restart position accepted ({self._rest})."

    # -- data connections ----------------------------------------------------------------

    def _new_channel(
        self, mode: str, client_host: str, client_port: int | None = None
    ) -> DataChannel:
        if self.channel is not None:
            self.channel.close()
        ch = DataChannel(
            self,
            mode,
            self.factory.reactor,
            client_host,
            self.factory.data_timeout,
            client_port,
        )
        if self.protect:
            ch.tls_options = self.factory.tls_options
        self.channel = ch
        self.channels.append(ch)
        return ch

    def _listen(self, mode: str) -> DataChannel | str:
        ch = self._new_channel(mode, self.peer_host)
        try:
            ch.listen(self.factory.passive_ports(), self.local_host, self._listener)
            if self.factory.passive_range is None and ch.listening is not None:
                # any free port: the session keeps this one for its next transfers
                # (what a new port per transfer costs: a socket, its bind, listen and
                # close, and a bind(0) grows slow once thousands of closed data
                # connections wait out TIME_WAIT); a passive_ports range is shared by
                # every session, so there each port is let go after its transfer
                ch.listening.kept = True
                self._listener = ch.listening
        except error.CannotListenError:
            ch.problem = "no passive port free"
            ch.close()
            self.channel = None
            lo, hi = self.factory.passive_range or (0, 0)
            log.warn(
                "{service}: {peer}: every passive port ({lo}-{hi}) is in use",
                service=self.service_name,
                peer=self.peer_host,
                lo=lo,
                hi=hi,
            )
            return f"425 No passive port free ({lo}-{hi} all in use); try again later."
        return ch

    _pasv: str | None = None

    def _pasv_address(self) -> str:
        """
        The control connection's IPv4 address (PASV's reply names it), worked out once
        per session; or the 502 reply when there is none.
        """
        if self._pasv is None:
            try:
                addr = ipaddress.ip_address(self.local_host)
            except ValueError:
                self._pasv = "502 PASV needs an IPv4 control connection; use EPSV."
                return self._pasv
            if isinstance(addr, ipaddress.IPv6Address):
                if addr.ipv4_mapped is None:
                    self._pasv = "502 PASV is IPv4 only; use EPSV on IPv6."
                    return self._pasv
                addr = addr.ipv4_mapped
            self._pasv = str(addr)
        return self._pasv

    def ftp_PASV(self) -> str:
        if self._epsvAll:
            return "503 PASV not allowed after EPSV ALL."
        addr = self._pasv_address()
        if addr.startswith("502"):
            return addr
        ch = self._listen("passive")
        if isinstance(ch, str):
            return ch
        port = ch.server_port or 0
        p1, p2 = divmod(port, 256)
        numbers = f"{addr.replace('.', ',')},{p1},{p2}"
        self.sendLine(f"227 Entering Passive Mode ({numbers}).")
        if self.traced:  # the note's text is built only for a transcript
            self.annotate(
                f"227: data port = {p1}×256 + {p2} = {port}; the client opens a second TCP "
                f"connection to {addr}:{port} for the next transfer"
            )
        return None  # type: ignore[return-value]

    def ftp_EPSV(self, protocol: str = "") -> str:
        if protocol.upper() == "ALL":
            self._epsvAll = True
            return "200 EPSV ALL ok: only EPSV from now on."
        v6 = ":" in self.local_host and not self.local_host.startswith("::ffff:")
        if protocol:
            if protocol not in ("1", "2"):
                return "522 Network protocol not supported, use (1,2)"
            if (protocol == "2") != v6:
                return f"522 Network protocol not supported, use ({'2' if v6 else '1'})"
        ch = self._listen("passive")
        if isinstance(ch, str):
            return ch
        self.sendLine(f"229 Entering Extended Passive Mode (|||{ch.server_port}|).")
        if self.traced:  # the note's text is built only for a transcript
            self.annotate(
                f"229: data port = {ch.server_port}; the client opens a second TCP connection "
                f"to the same server address on that port"
            )
        return None  # type: ignore[return-value]

    def _active(self, host: str, port: int, how: str) -> str:
        if not same_host(host, self.peer_host):
            log.warn(
                "{service}: {peer}: {how} to {host}:{port} refused (FTP bounce)",
                service=self.service_name,
                peer=self.peer_host,
                how=how,
                host=host,
                port=port,
            )
            return (
                f"504 {how} to {host} refused: only your own address ({self.peer_host}) "
                f"is allowed (no FTP bounce, RFC 2577)."
            )
        if port < 1024:
            return f"504 {how} to port {port} refused: use a port of 1024 or more (RFC 2577)."
        self._new_channel("active", self.peer_host, port)
        return ""

    def ftp_PORT(self, address: str) -> str:
        if self._epsvAll:
            return "503 PORT not allowed after EPSV ALL."
        parts = address.strip().split(",")
        if len(parts) != 6 or not all(p.strip().isdigit() and int(p) < 256 for p in parts):
            return "501 PORT needs h1,h2,h3,h4,p1,p2 (six numbers 0-255)."
        n = [int(p) for p in parts]
        host = ".".join(map(str, n[:4]))
        port = n[4] * 256 + n[5]
        problem = self._active(host, port, "PORT")
        if problem:
            return problem
        if self.traced:  # the note's text is built only for a transcript
            self.annotate(
                f"PORT: data port = {n[4]}×256 + {n[5]} = {port}; the server will connect to "
                f"the client at {host}:{port} for the next transfer"
            )
        return "200 PORT command successful. Consider using PASV."

    def ftp_EPRT(self, extended: str) -> str:
        if self._epsvAll:
            return "503 EPRT not allowed after EPSV ALL."
        try:
            proto_text, host, port = tftp.decodeExtendedAddress(extended)
            proto = int(proto_text)
            ip = ipaddress.ip_address(host)
        except (ValueError, TypeError):
            return "501 EPRT needs |1|h.h.h.h|port| or |2|v6::addr|port|."
        v6 = ":" in self.peer_host and not self.peer_host.startswith("::ffff:")
        if proto not in (1, 2) or (proto == 2) != isinstance(ip, ipaddress.IPv6Address):
            return "522 Network protocol not supported, use (1,2)"
        if (proto == 2) != v6:
            return f"522 Network protocol not supported, use ({'2' if v6 else '1'})"
        if not 0 < port < 65536:
            return "501 EPRT port must be 1-65535."
        problem = self._active(str(ip), port, "EPRT")
        if problem:
            return problem
        if self.traced:  # the note's text is built only for a transcript
            self.annotate(f"EPRT: the server will connect to the client at {host} port {port}")
        return "200 EPRT command successful. Consider using EPSV."

    def _transfer(self, command: str, start: Any, on_nodata: Any = None) -> Any:
        """
        Run a transfer on the channel set up by PASV/EPSV/PORT/EPRT: wait for the data
        connection, then C{start(conn, channel)} which sends the 150 line and returns a
        Deferred of the final reply.
        """
        ch, self.channel = self.channel, None
        if ch is None or ch.state in ("failed", "closed"):
            if on_nodata is not None:
                on_nodata()
            return "425 Use PORT, PASV, EPRT or EPSV first."
        ch.command = command
        self.busy = ch
        if ch.mode == "active":
            ch.connect(self.local_host)
        elif ch.conn is None and ch.listening is not None:
            # the client connects before it sends the command (ftplib, curl): its
            # connection is likely waiting already, though the poll that said so is
            # not handled yet; taken now, the transfer starts at once (no Deferred
            # of the connection, no pause of this connection)
            ch.listening.doRead()

        def go(conn: Any) -> Any:
            if self.traced:
                info = ch.as_dict()
                self.annotate(
                    f"data connection {info['client']} ⇄ {info['server']} "
                    f"opened ({ch.mode}) for {command}"
                )
            ch.stall_timer(self.factory.idle_timeout)
            return start(conn, ch)

        def nodata(failure: Any) -> str:
            if on_nodata is not None:
                on_nodata()
            ch.close()
            return f"425 Can't open data connection: {ch.problem or 'failed'}."

        def done(result: Any) -> Any:
            self.busy = None
            if isinstance(result, Failure):
                ch.close()
                if on_nodata is not None:
                    on_nodata()
            if ch.state == "closed" and self.traced:
                self.annotate(
                    f"data connection port {ch.server_port} closed after {ch.bytes} bytes"
                )
            if not self.disconnected:
                self.resetTimeout()  # idle from the end of the transfer on
            return result

        if ch.conn is not None and ch.state == "open":
            # the client connected before sending the command (as ftplib and curl do):
            # start now, without a Deferred of the connection to chain through
            try:
                d = go(ch.conn)
            except Exception:
                d = defer.fail()
            if not isinstance(d, defer.Deferred):
                d = defer.succeed(d)
            return d.addBoth(done)
        d = ch.ready()
        d.addCallbacks(go, nodata)
        d.addBoth(done)
        return d

    def _listing_path(self, arg: str) -> str:
        # ls-style flags some clients send: LIST -la, LIST -a /pub
        words = arg.split(" ")
        while words and words[0].startswith("-"):
            words.pop(0)
        return " ".join(words)

    def _send_bytes(self, data: bytes, opening: str) -> Any:
        def start(conn: Any, ch: DataChannel) -> Any:
            self.sendLine(opening)
            ch.bytes += len(data)
            conn.transport.write(data)
            conn.transport.loseConnection()
            return ch.finished.addCallback(
                lambda clean: (
                    "226 Directory send OK."
                    if clean
                    else "426 Connection closed; transfer aborted."
                )
            )

        return start

    def ftp_LIST(self, path: str = "") -> Any:
        arg = self._listing_path(path)
        segs = self._segments(arg)
        try:
            entries = list(self.shell.entries(segs))
        except Exception as e:
            self._drop_channel()
            return _path_reply(e, arg)
        now = time.time()
        lines = [list_line(_fs(name), st, now) + b"\r\n" for name, _p, st in entries]
        return self._transfer(
            f"LIST {arg}".strip(),
            self._send_bytes(b"".join(lines), "150 Here comes the directory listing."),
        )

    def ftp_NLST(self, path: str = "") -> Any:
        arg = self._listing_path(path)
        glob = None
        segs = self._segments(arg)
        if segs and any(c in segs[-1] for c in "*?["):
            glob = segs.pop()
        try:
            entries = list(self.shell.entries(segs))
        except Exception as e:
            self._drop_channel()
            return _path_reply(e, arg)
        names = [n for n, _p, _st in entries if glob is None or fnmatch.fnmatch(n, glob)]
        data = b"".join(_fs(n) + b"\r\n" for n in names)
        return self._transfer(
            f"NLST {arg}".strip(), self._send_bytes(data, "150 Here comes the directory listing.")
        )

    def ftp_MLSD(self, path: str = "") -> Any:
        segs = self._segments(path)
        try:
            p, st = self.shell.stat_entry(segs)
            if not p.isdir():
                self._drop_channel()
                return f"501 {path[:200]}: not a directory (MLSD lists folders; use MLST)."
            entries = list(self.shell.entries(segs))
        except Exception as e:
            self._drop_channel()
            return _path_reply(e, path)
        w = self.shell.writable
        lines = [f"{mlsx_facts(st, 'cdir', w)} .\r\n".encode()]
        lines += [
            mlsx_facts(est, None, w).encode() + b" " + _fs(n) + b"\r\n" for n, _p, est in entries
        ]
        return self._transfer(
            f"MLSD {path}".strip(),
            self._send_bytes(b"".join(lines), "150 Here comes the directory listing."),
        )

    def _drop_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def ftp_RETR(self, path: str) -> Any:
        segs = self._segments(path)
        offset, self._rest = self._rest, 0
        try:
            f = self.shell.open_read(segs, offset)
        except Exception as e:
            self._drop_channel()
            return _path_reply(e, path)
        size = f.size
        if offset > size:
            f.close()
            self._drop_channel()
            return f"554 REST {offset} is past the end of {path[:200]} ({size} bytes)."
        binary = self.binary
        name = self._show(segs)

        def start(conn: Any, ch: DataChannel) -> Any:
            mode = "BINARY" if binary else "ASCII"
            left = f", from byte {offset}" if offset else ""
            self.sendLine(
                f"150 Opening {mode} mode data connection for {name} ({size} bytes{left})."
            )
            reactor = self.factory.reactor
            if size - offset <= SEND_CHUNK:
                # a small file: one read (of what it held when opened, as the 150 line
                # said), one write, closed once the bytes have left
                try:
                    data = f.read(size - offset) if size > offset else b""
                finally:
                    f.close()
                if not binary:
                    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                ch.bytes += len(data)
                conn.transport.write(data)
                conn.transport.loseConnection()
                return ch.finished.addCallback(
                    lambda clean: (
                        "226 Transfer complete."
                        if clean
                        else "426 Connection closed; transfer aborted."
                    )
                )
            if binary and size - offset > SENDFILE_MIN and SendfileSender.usable(conn, reactor):
                sender: Any = SendfileSender(f, conn, reactor, SENDFILE_CHUNK)
            else:
                sender = FileSender(f, conn, SEND_CHUNK, ascii=not binary)
            sender.start()

            def finished(clean: bool) -> str:
                sender.stopProducing()
                if sender.ok and clean:
                    return "226 Transfer complete."
                return "426 Connection closed; transfer aborted."

            return ch.finished.addCallback(finished)

        return self._transfer(f"RETR {name}", start, on_nodata=f.close)

    def ftp_STOR(self, path: str) -> Any:
        offset, self._rest = self._rest, 0
        return self._store(path, offset or None, append=False)

    def ftp_APPE(self, path: str) -> Any:
        self._rest = 0
        return self._store(path, None, append=True)

    def _store(self, path: str, offset: int | None, append: bool) -> Any:
        segs = self._segments(path)
        limit = self.factory.max_upload
        try:
            up = self.shell.open_write(segs, offset, append)
        except Exception as e:
            self._drop_channel()
            return _path_reply(e, path)
        if limit and up.start > limit:
            up.abort()
            self._drop_channel()
            return f"552 {path[:200]} is already over max_upload ({limit} bytes)."
        binary = self.binary
        name = self._show(segs)
        verb = "APPE" if append else "STOR"

        def start(conn: Any, ch: DataChannel) -> Any:
            self.sendLine("150 Ok to send data.")
            state: dict[str, Any] = {"over": False, "error": None}
            # the size to come is unknown: a big buffer once the upload proves big
            # (a small file's one read does not pay for the syscall)
            grow_at = up.size + BIG_UPLOAD
            held_cr = False  # TYPE A: a read ended in \r, whose \n may start the next

            def sink(data: bytes) -> None:
                nonlocal grow_at, held_cr
                if state["over"] or state["error"]:
                    return
                if not binary:
                    if held_cr:
                        data = b"\r" + data
                    held_cr = data.endswith(b"\r")
                    if held_cr:
                        data = data[:-1]
                    data = data.replace(b"\r\n", b"\n")
                store(data)

            def store(data: bytes) -> None:
                nonlocal grow_at
                if limit and up.size + len(data) > limit:
                    state["over"] = True
                    up.abort()
                    conn.transport.abortConnection()
                    return
                if up.size >= grow_at:
                    grow_at = 2**63
                    upload_buffer(conn)
                try:
                    up.write(data)
                except OSError as e:
                    state["error"] = e
                    up.abort()
                    conn.transport.abortConnection()

            ch.receive_into(sink)

            def finished(clean: bool) -> str:
                if state["over"]:
                    log.info(
                        "{service}: {peer}: upload of {name} over max_upload, dropped",
                        service=self.service_name,
                        peer=self.peer_host,
                        name=name,
                    )
                    return (
                        f"552 Exceeded storage allocation: {name} is over max_upload "
                        f"({limit} bytes); nothing kept."
                    )
                if state["error"] is not None:
                    return f"451 Cannot write {name}: {state['error'].strerror}; nothing kept."
                if clean and held_cr:
                    store(b"\r")  # a \r at the very end, with no \n after it
                    if state["over"] or state["error"] is not None:
                        return finished(False)
                if clean:
                    try:
                        up.commit()
                    except OSError as e:
                        up.abort()
                        return f"451 Cannot save {name}: {e.strerror}."
                    return "226 Transfer complete."
                up.abort()
                return "426 Connection closed; transfer aborted; nothing kept."

            return ch.finished.addCallback(finished)

        return self._transfer(f"{verb} {name}", start, on_nodata=up.abort)

    def ftp_ABOR(self) -> str:
        if self.channel is not None:
            self._drop_channel()
        return "225 No transfer to abort."


def _nodelay(transport: Any) -> None:
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, OSError):
        pass  # not TCP (a unix socket, a test transport)


def _fs(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


class FTPServer(ServerFactory):
    """The factory of one ftp service: settings, sessions, the login-failure table."""

    # Twisted's stubs want a protocol whose .factory is any Factory; FTPSession's is an
    # FTPServer
    protocol = FTPSession  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        name: str,
        reactor: Any,
        portal: Any,
        *,
        anonymous: bool,
        passive_range: tuple[int, int] | None,
        max_upload: int | None,
        data_timeout: float,
        idle_timeout: float,
        login_delay: float = LOGIN_DELAY,
        tls_options: Any = None,
        implicit_tls: bool = False,
    ):
        self.name = name
        self.reactor = reactor
        self.portal = portal
        self.anonymous = anonymous
        self.passive_range = passive_range
        self.max_upload = max_upload
        self.data_timeout = data_timeout
        self.idle_timeout = idle_timeout
        self.login_delay = login_delay
        self.tls_options = tls_options  # for AUTH TLS and PROT P; None: no FTPS
        self.implicit_tls = implicit_tls  # the control port itself is TLS (tls = {…})
        self.sessions: dict[int, FTPSession] = {}
        self.ended: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_SESSIONS)
        self.failures = FailedLogins(
            reactor, limit=MAX_FAILURES, window=FAILURE_WINDOW, max_hosts=FAILURE_HOSTS
        )
        self._rand = random.Random()

    def buildProtocol(self, addr: Any) -> FTPSession:  # type: ignore[override]  # as above
        p = FTPSession()
        p.factory = self
        return p

    def passive_ports(self) -> Iterator[int]:
        """
        The passive range from a random start (so sessions spread over it), at most
        C{PASSIVE_TRIES} of it (a wide range that is nearly full must not hold the
        reactor for tens of thousands of binds), or [0].
        """
        if self.passive_range is None:
            yield 0
            return
        lo, hi = self.passive_range
        n = hi - lo + 1
        k = self._rand.randrange(n)
        for i in range(min(n, PASSIVE_TRIES)):
            yield lo + (k + i) % n

    # -- wrong passwords -------------------------------------------------------------

    def refused_for(self, host: str) -> float:
        """Seconds this address is still shut out for (0 if it is not)."""
        return self.failures.retry_after(host)

    def login_failed(self, host: str) -> bool:
        """Count a wrong password; True when the address is now shut out."""
        return self.failures.failed(host)

    # -- the dashboard -------------------------------------------------------------------

    def session_ended(self, s: FTPSession) -> None:
        if self.sessions.pop(id(s), None) is not None:
            self.ended.append(self._session_dict(s, open_=False))

    def _session_dict(self, s: FTPSession, open_: bool = True) -> dict[str, Any]:
        now = self.reactor.seconds()
        host = s.peer_host
        peer = s.transport.getPeer() if (open_ and s.transport is not None) else None
        return {
            "client": f"[{host}]:{peer.port}"
            if peer and ":" in host
            else (f"{host}:{peer.port}" if peer else host),
            "user": s.user,
            "cwd": "/" + "/".join(s.workingDirectory),
            "open": open_,
            "seconds": round(now - s.since, 3),
            "data_connections": [ch.as_dict() for ch in s.channels],
        }

    def detail(self) -> list[dict[str, Any]]:
        """
        The dashboard's rows (ServiceStats.set_detail): each open session's control
        connection and its latest data connections, live.
        """
        rows = []
        for s in list(self.sessions.values())[:DETAIL_SESSIONS]:
            if s.transport is None:
                continue
            server = s.transport.getHost()
            who = s.user or "not logged in"
            rows.append(
                {
                    "kind": "control",
                    "client": host_port(s.peer_host, s.transport.getPeer().port),
                    "server": host_port(server.host, server.port),
                    "text": f"{who} · /{'/'.join(s.workingDirectory)}",
                    "state": "open",
                    "links": [ch.as_dict() for ch in list(s.channels)[-DETAIL_CHANNELS:]],
                }
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.name,
            "passive_ports": list(self.passive_range) if self.passive_range else None,
            "sessions": [self._session_dict(s) for s in list(self.sessions.values())],
            "recent": list(self.ended),
        }
