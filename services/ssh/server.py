"""
SSH (RFC 4251-4254) on twisted.conch: password and public-key logins for the suite's
accounts, the lab shell on a pty or through exec, SFTP jailed to C{files}.

Refused: port forwarding (direct-tcpip channels, tcpip-forward), agent forwarding,
X11. Not offered: ssh-dss and ssh-rsa (SHA-1) signatures, SHA-1 key exchanges, CBC
ciphers, SHA-1 and MD5 MACs. A client that has not logged in after C{login_grace}
seconds (OpenSSH's LoginGraceTime, 120) is dropped; three wrong passwords close the
connection, each told after a delay, and an address with too many recent failures is
refused for a while.
"""

from __future__ import annotations

from typing import Any

from twisted.conch import avatar, error
from twisted.conch.checkers import InMemorySSHKeyDB, SSHPublicKeyChecker
from twisted.conch.interfaces import IConchUser, ISession
from twisted.conch.ssh import (
    common,
    connection,
    factory,
    filetransfer,
    keys,
    session,
    transport,
    userauth,
)
from twisted.cred import portal
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.logger import Logger
from twisted.python import components
from twisted.python.failure import Failure
from zope.interface import implementer

from portsuite.api import format_peer
from portsuite_services.ssh.common import ShellService
from portsuite_services.ssh.quiet import quiet_logger
from portsuite_services.ssh.sftp import JailedSFTP
from portsuite_services.ssh.shell import Commands, terminal_protocol

log = Logger(namespace="portsuite.ssh")

KEX = [k for k in transport.SSHServerTransport.supportedKeyExchanges if b"sha1" not in k]
CIPHERS = [c for c in transport.SSHServerTransport.supportedCiphers if b"cbc" not in c]
MACS = [m for m in transport.SSHServerTransport.supportedMACs if m.startswith(b"hmac-sha2")]
HOST_KEY_ALGORITHMS = [b"ssh-ed25519", b"rsa-sha2-512", b"rsa-sha2-256"]
WEAK_SIGNATURES = (b"ssh-dss", b"ssh-rsa")  # SHA-1 signatures


class LabTransport(transport.SSHServerTransport):
    """The server transport, with modern algorithms only and a login grace timer."""

    supportedKeyExchanges = KEX
    supportedCiphers = CIPHERS
    supportedMACs = MACS
    supportedPublicKeys = HOST_KEY_ALGORITHMS
    supportedCompressions = [b"none"]
    _log = quiet_logger()
    _grace: Any = None
    password_failures = 0
    factory: Any  # the LabSSHFactory (conch types it as an optional SSHFactory)
    transport: Any  # the TCP transport (typed as an optional ITransport)

    def connectionMade(self) -> None:
        transport.SSHServerTransport.connectionMade(self)
        grace = self.factory.login_grace
        if grace:
            self._grace = self.factory.reactor.callLater(grace, self._graceExpired)

    def _graceExpired(self) -> None:
        self._grace = None
        log.info(
            "{service}: {peer} did not log in within {grace}s, closing",
            service=self.factory.service_name,
            peer=self.peer(),
            grace=self.factory.login_grace,
        )
        self.sendDisconnect(transport.DISCONNECT_PROTOCOL_ERROR, b"login grace time over")

    def setService(self, service: Any) -> None:
        transport.SSHServerTransport.setService(self, service)
        if service.name == b"ssh-connection":  # authenticated
            self.cancel_grace()

    def cancel_grace(self) -> None:
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        self._grace = None

    def connectionLost(self, reason: Any = None) -> None:
        self.cancel_grace()
        transport.SSHServerTransport.connectionLost(self, reason)

    def peer(self) -> str:
        try:
            return format_peer(self.transport.getPeer())
        except Exception:
            return "?"


class LabUserAuth(userauth.SSHUserAuthServer):
    """Password failures: 3 per connection, each told after a delay, counted per host."""

    _log = quiet_logger()
    attemptsBeforeDisconnect = 6  # OpenSSH's MaxAuthTries (keys offered count too)
    passwordDelay = 2
    loginTimeout = 120
    transport: Any  # the LabTransport (conch types it as an optional SSHTransportBase)

    def auth_password(self, packet: bytes) -> Any:
        password = common.getNS(packet[1:])[0]
        host = self.transport.peer().rsplit(":", 1)[0].strip("[]")
        shell: ShellService = self.transport.factory.shell
        if shell.failures.blocked(host):
            log.info("ssh: {host} has failed too often lately; refused", host=host)
            return self._later(Failure(UnauthorizedLogin("too many failures from this address")))
        d = self.portal.login(UsernamePassword(self.user, password), None, IConchUser)
        d.addErrback(self._password_failed, host, shell)
        return d

    def _password_failed(self, failure: Failure, host: str, shell: ShellService) -> Any:
        failure.trap(UnauthorizedLogin)
        shell.failures.failed(host)
        # counted on the connection: a client may start the userauth service again
        self.transport.password_failures += 1
        if self.transport.password_failures >= shell.max_tries:
            self.transport.sendDisconnect(
                transport.DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, b"too many wrong passwords"
            )
            return Failure(error.IgnoreAuthentication())
        return self._later(failure)

    def _later(self, failure: Failure) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.clock.callLater(self.passwordDelay, d.errback, failure)  # type: ignore[arg-type]
        return d

    def auth_publickey(self, packet: bytes) -> Any:
        algorithm = common.getNS(packet[1:])[0]
        if algorithm in WEAK_SIGNATURES:
            return defer.fail(UnauthorizedLogin(f"{algorithm!r} signatures (SHA-1) are refused"))
        return userauth.SSHUserAuthServer.auth_publickey(self, packet)


class LabSSHSession(session.SSHSession):
    """A session channel that ends when the client of a subsystem (SFTP) says EOF."""

    _log = quiet_logger()
    subsystem = False

    def request_subsystem(self, data: bytes) -> int:
        ok = session.SSHSession.request_subsystem(self, data)
        self.subsystem = bool(ok)
        return ok

    def eofReceived(self) -> None:
        # an env request may have made an ISession for this channel: the subsystem
        # still has to close the channel on EOF, or scp waits for ever
        if self.subsystem and self.conn is not None:
            self.conn.sendRequest(self, b"exit-status", b"\x00\x00\x00\x00")
            self.conn.sendClose(self)
            return
        session.SSHSession.eofReceived(self)


class LabConnection(connection.SSHConnection):
    _log = quiet_logger()


class LabFileTransferServer(filetransfer.FileTransferServer):
    _log = quiet_logger()


class LabUser(avatar.ConchUser):
    """A logged-in account: a session channel (shell, exec, sftp), nothing else."""

    _log = quiet_logger()

    def __init__(self, name: str, shell: ShellService):
        avatar.ConchUser.__init__(self)
        self.name = name
        self.shell = shell
        self.channelLookup[b"session"] = LabSSHSession
        self.subsystemLookup[b"sftp"] = LabFileTransferServer

    @property
    def peer(self) -> str:
        """The client's ip:port (the connection service sets C{conn} once logged in)."""
        conn = getattr(self, "conn", None)
        return conn.transport.peer() if conn is not None else "?"


@implementer(ISession)
class LabSession(components.Adapter):
    """One session channel of a L{LabUser}: the lab shell, one command, or SFTP."""

    width, height = 80, 24
    term: Any = None

    def getPty(self, term: bytes, windowSize: Any, modes: Any) -> None:
        self.height, self.width = windowSize[:2]

    def openShell(self, proto: Any) -> None:
        user: LabUser = self.original
        term: Any = terminal_protocol(user.shell, user.name, user.peer, "ssh")
        proto.makeConnection(_Glue(write=term.dataReceived, loseConnection=lambda: _close(proto)))
        term.makeConnection(_Glue(write=proto.write, loseConnection=lambda: _close(proto)))
        term.terminalProtocol.terminalSize(self.width, self.height)
        self.term = term

    def execCommand(self, proto: Any, command: bytes) -> None:
        user: LabUser = self.original
        shell = user.shell
        cmds = Commands(user.name, "ssh", shell.jail, shell.sessions, shell.clock, shell.started())
        output, status, _ = cmds.run(command.decode("utf-8", "replace")[:4096])

        def finish() -> None:
            proto.write(output.encode("utf-8"))
            reason = ProcessDone(0) if status == 0 else ProcessTerminated(exitCode=status)
            proto.processEnded(Failure(reason))

        shell.clock_source.callLater(0, finish)

    def windowChanged(self, newWindowSize: Any) -> None:
        self.height, self.width = newWindowSize[:2]
        term = getattr(self, "term", None)
        if term is not None and term.terminalProtocol is not None:
            term.terminalProtocol.terminalSize(self.width, self.height)

    def eofReceived(self) -> None:
        pass

    def closed(self) -> None:
        term = getattr(self, "term", None)
        if term is not None:
            term.connectionLost(Failure(ProcessDone(0)))


def _close(proto: Any) -> None:
    try:
        proto.processEnded(Failure(ProcessDone(0)))
    except Exception:
        pass


class _Glue:
    """A minimal transport: what the terminal and the channel write to each other."""

    def __init__(self, write: Any, loseConnection: Any):
        self.write = write
        self.loseConnection = loseConnection

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))


components.registerAdapter(LabSession, LabUser, ISession)
components.registerAdapter(JailedSFTP, LabUser, filetransfer.ISFTPServer)


@implementer(portal.IRealm)
class LabRealm:
    def __init__(self, shell: ShellService):
        self.shell = shell

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IConchUser not in interfaces:
            raise NotImplementedError("only ssh users here")
        name = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else str(avatarId)
        user = LabUser(name, self.shell)
        return IConchUser, user, lambda: None


class LabSSHFactory(factory.SSHFactory):
    protocol = LabTransport
    _log = quiet_logger()
    services = {
        b"ssh-userauth": LabUserAuth,
        b"ssh-connection": LabConnection,
    }

    def __init__(
        self, host_keys: dict[str, keys.Key], shell: ShellService, reactor: Any, login_grace: float
    ):
        self.host_keys = host_keys
        self.shell = shell
        self.reactor = reactor
        self.login_grace = login_grace
        self.service_name = shell.ctx.config.name
        realm = LabRealm(shell)
        self.portal = portal.Portal(realm)  # type: ignore[arg-type]  # zope: an IRealm
        if shell.accounts is not None:
            self.portal.registerChecker(shell.accounts.checker())
            db = {}
            for name in shell.accounts.names():
                account = shell.accounts.get(name)
                parsed = []
                for line in account.keys:
                    try:
                        parsed.append(keys.Key.fromString(line.encode()))
                    except Exception:
                        continue  # the config check reported it
                if parsed:
                    db[name.encode()] = parsed
            checker: Any = SSHPublicKeyChecker(InMemorySSHKeyDB(db))  # type: ignore[arg-type]
            self.portal.registerChecker(checker)  # zope's interfaces, unseen by mypy

    def getPublicKeys(self) -> dict[bytes, keys.Key]:
        return {k.sshType(): k.public() for k in self.host_keys.values()}

    def getPrivateKeys(self) -> dict[bytes, keys.Key]:
        return {k.sshType(): k for k in self.host_keys.values()}

    def buildProtocol(self, addr: Any) -> Any:
        t = factory.SSHFactory.buildProtocol(self, addr)
        # the factory offers every signature its keys can make: keep the SHA-2 ones
        t.supportedPublicKeys = [a for a in t.supportedPublicKeys if a in HOST_KEY_ALGORITHMS]
        t.supportedKeyExchanges = [k for k in t.supportedKeyExchanges if k in KEX]
        return t

    def getPrimes(self) -> None:
        return None  # no diffie-hellman-group-exchange: curve25519 / ECDH / ML-KEM only
