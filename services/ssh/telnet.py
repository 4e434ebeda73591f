"""
telnet (RFC 854) with twisted.conch.telnet: a login prompt, then the same lab shell as
ssh — in clear, on purpose: a traced telnet service shows every keystroke, the
password included.

Options negotiated: ECHO (RFC 857: the server echoes, so the password is not shown; a
client that refuses it echoes for itself, and the server then echoes nothing),
SUPPRESS-GO-AHEAD (RFC 858), NAWS (RFC 1073: the window size), TERMINAL-TYPE (RFC 1091).
"""

from __future__ import annotations

from typing import Any

from twisted.conch import telnet
from twisted.conch.insults import insults
from twisted.internet.protocol import ServerFactory

from portsuite.api import format_peer
from portsuite_services.ssh.shell import LabShell

TTYPE = b"\x18"  # RFC 1091
TTYPE_IS, TTYPE_SEND = b"\x00", b"\x01"


def _quiet(failure: Any) -> None:
    return None  # refused or unanswered: the session goes on without that option


class LabTelnetBootstrap(telnet.TelnetBootstrapProtocol):
    """Twisted's bootstrap (NAWS, SGA, ECHO, LINEMODE) plus the terminal type."""

    terminal_type = ""
    transport: Any  # the TelnetTransport (typed as an optional ITransport)
    protocol: Any

    def connectionMade(self) -> None:
        # Twisted's, with quiet errbacks: a client that leaves before answering every
        # option (a port scan, nc -z) is no error worth a traceback in the log
        t = self.transport
        t.negotiationMap[telnet.NAWS] = self.telnet_NAWS
        t.negotiationMap[telnet.LINEMODE] = self.telnet_LINEMODE
        t.negotiationMap[TTYPE] = self.telnet_TTYPE
        for opt in (telnet.LINEMODE, telnet.NAWS, telnet.SGA, TTYPE):
            t.do(opt).addErrback(_quiet)
        t.will(telnet.ECHO).addErrback(self.echo_refused)
        self.protocol = self.protocolFactory(*self.protocolArgs, **self.protocolKwArgs)
        self.protocol.factory = getattr(self, "factory", None)
        self.protocol.makeConnection(self)

    def echo_refused(self, failure: Any) -> None:
        if failure.check(telnet.OptionRefused):
            self.shell_echoes(False)

    def enableLocal(self, opt: bytes) -> bool:
        if opt == telnet.ECHO:
            self.shell_echoes(True)  # the client accepted our ECHO, or asked for it
        return bool(telnet.TelnetBootstrapProtocol.enableLocal(self, opt))

    def disableLocal(self, opt: bytes) -> None:
        if opt == telnet.ECHO:
            self.shell_echoes(False)
        telnet.TelnetBootstrapProtocol.disableLocal(self, opt)

    def shell_echoes(self, echo: bool) -> None:
        """RFC 857: we echo what the client types only while ECHO is on; else it does."""
        shell = getattr(getattr(self, "protocol", None), "terminalProtocol", None)
        if shell is not None:
            shell.echo = echo

    def write(self, data: bytes) -> None:
        # the terminal (insults) above already ends lines with CRLF; Twisted's mixin
        # would turn each "\n" into "\r\n" once more (a client saw "\r\r\r\r\n")
        self.transport.write(data)

    def enableRemote(self, opt: bytes) -> bool:
        if opt == TTYPE:
            self.transport.requestNegotiation(TTYPE, TTYPE_SEND)
            return True
        return bool(telnet.TelnetBootstrapProtocol.enableRemote(self, opt))

    def telnet_TTYPE(self, data: list[bytes]) -> None:
        raw = b"".join(data)
        if raw[:1] == TTYPE_IS:
            self.terminal_type = raw[1:41].decode("ascii", "replace")


class LabTelnetTransport(telnet.TelnetTransport):
    """Twisted's, writing the lines as they come: only IAC is doubled (RFC 854)."""

    transport: Any

    def write(self, data: bytes) -> None:
        self.transport.write(data.replace(telnet.IAC, telnet.IAC + telnet.IAC))

    def connectionLost(self, reason: Any = None) -> None:
        telnet.TelnetTransport.connectionLost(self, reason)
        # Twisted's maps of this transport's (and the bootstrap's) bound methods are
        # reference cycles: broken, a closed session is freed at once
        self.commandMap = {}
        self.negotiationMap = {}


class LabTelnetFactory(ServerFactory):
    """Each connection: telnet transport → bootstrap → terminal → lab shell (login first)."""

    def __init__(self, shell: Any):
        self.shell = shell

    def buildProtocol(self, addr: Any) -> Any:
        peer = format_peer(addr)
        proto = LabTelnetTransport(
            LabTelnetBootstrap, insults.ServerProtocol, LabShell, self.shell, None, peer, "telnet"
        )
        proto.factory = self
        return proto
