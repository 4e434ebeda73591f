"""
The lab shell: the small interpreter behind ssh and telnet.

It never runs a program of the machine and never touches a file outside C{files}:
every command is a Python method here (L{Commands}). A line is split into words like a
shell does (quotes group), but nothing else of a shell exists: C{;}, C{|}, C{&&},
C{$(…)}, C{>} and backquotes are plain characters, so there is no way out.

Who is logged in (over ssh and telnet, with each client's ip:port) is kept per suite
in L{Sessions}: C{who} lists them, C{say}/C{wall} writes to the others.
"""

from __future__ import annotations

import posixpath
import shlex
import socket
import time
import weakref
from collections.abc import Callable
from typing import Any

from twisted.conch import recvline
from twisted.conch.insults import insults

from portsuite_services.ssh.files import Jail, JailError

MAX_LINE = 1024  # characters a command line may hold
MAX_TYPEAHEAD = 4096  # keys held while a password is checked
MAX_CAT = 256 * 1024  # bytes cat shows of a file
HISTORY = 200


class Session:
    """One logged-in user: who, from where, over what, and how to reach their screen."""

    def __init__(self, user: str, via: str, peer: str, since: float, notify: Callable[[str], None]):
        self.user = user
        self.via = via
        self.peer = peer
        self.since = since
        self.notify = notify


class Sessions:
    """Everyone logged in to the lab shell of one suite (ssh and telnet together)."""

    def __init__(self) -> None:
        self.active: list[Session] = []

    def add(self, s: Session) -> None:
        self.active.append(s)

    def remove(self, s: Session) -> None:
        if s in self.active:
            self.active.remove(s)


_BY_SUITE: weakref.WeakKeyDictionary[Any, Sessions] = weakref.WeakKeyDictionary()


def sessions_of(ctx: Any) -> Sessions:
    """The sessions shared by every ssh and telnet service of the suite."""
    key = ctx.suite if ctx.suite is not None else ctx.stats
    found = _BY_SUITE.get(key)
    if found is None:
        found = _BY_SUITE[key] = Sessions()
    return found


HELP = """\
Commands of the lab shell (it runs no program of the machine):
  help              this list
  echo TEXT         writes TEXT back
  whoami            your user name
  hostname          the name of this machine
  date              the date and time here
  uptime            how long the suite has been running, how many users
  who               everyone logged in now (ssh and telnet), with their ip:port
  say TEXT          a message to everyone else logged in (also: wall)
  ls [FOLDER]       the files you may see;  cd FOLDER;  pwd
  cat FILE          show a file
  history           the commands you typed
  true, false       do nothing, successfully or not (exit status 0 or 1)
  clear             clear the screen
  exit              leave (also: logout, Ctrl-D)
"""


class Commands:
    """The commands, shared by the interactive shell and C{ssh host COMMAND}."""

    def __init__(
        self,
        user: str,
        via: str,
        jail: Jail,
        sessions: Sessions,
        clock: Callable[[], float],
        started: float | None,
        me: Session | None = None,
    ):
        self.user = user
        self.via = via
        self.jail = jail
        self.cwd = "/"
        self.sessions = sessions
        self.clock = clock
        self.started = started
        self.me = me
        self.history: list[str] = []

    def run(self, line: str) -> tuple[str, int, str | None]:
        """(output, exit status, special) for one line; special: "exit" or "clear"."""
        line = line.strip()
        if not line:
            return "", 0, None
        self.history.append(line)
        del self.history[:-HISTORY]
        try:
            words = shlex.split(line, posix=True)
        except ValueError as e:
            return f"lab shell: {e} (quotes must be closed)\n", 2, None
        if not words:
            return "", 0, None
        name, args = words[0], words[1:]
        method = getattr(self, f"cmd_{name}", None) if name.isidentifier() else None
        if method is None:
            shown = name if name.isprintable() else repr(name)
            return f"{shown[:60]}: command not found (help lists the commands)\n", 127, None
        try:
            return method(args)  # type: ignore[no-any-return]
        except JailError as e:
            return f"{name}: {e}\n", 1, None

    # -- the commands ------------------------------------------------------------

    def cmd_help(self, args: list[str]) -> tuple[str, int, None]:
        return HELP, 0, None

    def cmd_echo(self, args: list[str]) -> tuple[str, int, None]:
        return " ".join(args) + "\n", 0, None

    def cmd_whoami(self, args: list[str]) -> tuple[str, int, None]:
        return self.user + "\n", 0, None

    def cmd_hostname(self, args: list[str]) -> tuple[str, int, None]:
        return socket.gethostname() + "\n", 0, None

    def cmd_date(self, args: list[str]) -> tuple[str, int, None]:
        return (
            time.strftime("%a %d %b %Y %H:%M:%S %Z", time.localtime(self.clock())) + "\n",
            0,
            None,
        )

    def cmd_uptime(self, args: list[str]) -> tuple[str, int, None]:
        up = int(self.clock() - self.started) if self.started is not None else 0
        h, rest = divmod(up, 3600)
        users = len({s.user for s in self.sessions.active})
        return f"up {h}:{rest // 60:02d}:{rest % 60:02d}, {users} user(s) logged in\n", 0, None

    def cmd_who(self, args: list[str]) -> tuple[str, int, None]:
        now = self.clock()
        rows = [f"{'USER':<12} {'VIA':<7} {'FROM (ip:port)':<24} SINCE"]
        for s in self.sessions.active:
            mine = " (you)" if s is self.me else ""
            rows.append(f"{s.user:<12} {s.via:<7} {s.peer:<24} {int(now - s.since)}s ago{mine}")
        return "\n".join(rows) + "\n", 0, None

    def cmd_say(self, args: list[str]) -> tuple[str, int, None]:
        text = " ".join(args)[:200]
        if not text:
            return "say: what? (say TEXT)\n", 2, None
        clean = "".join(c if c.isprintable() else "?" for c in text)
        others = [s for s in self.sessions.active if s is not self.me]
        for s in others:
            s.notify(f"[{self.user} via {self.via}] {clean}")
        return f"said to {len(others)} other(s)\n", 0, None

    cmd_wall = cmd_say

    def cmd_pwd(self, args: list[str]) -> tuple[str, int, None]:
        return self.cwd + "\n", 0, None

    def cmd_cd(self, args: list[str]) -> tuple[str, int, None]:
        target = self.jail.virtual(self.cwd, args[0] if args else "/")
        if self.jail.kind(self.jail.real(target)) != "dir":
            return f"cd: {target}: not a folder\n", 1, None
        self.cwd = target
        return "", 0, None

    def cmd_ls(self, args: list[str]) -> tuple[str, int, None]:
        target = self.jail.virtual(self.cwd, args[0] if args else ".")
        path = self.jail.real(target)
        if self.jail.kind(path) != "dir":
            return posixpath.basename(target) + "\n", 0, None
        lines = []
        for name, st in self.jail.listing(target):
            kind = "/" if st.st_mode & 0o040000 else ""
            lines.append(f"{st.st_size:>10}  {name}{kind}")
        return ("\n".join(lines) + "\n") if lines else "", 0, None

    def cmd_cat(self, args: list[str]) -> tuple[str, int, None]:
        if not args:
            return "cat: which file? (cat FILE)\n", 2, None
        out = []
        for arg in args[:10]:
            data = self.jail.read(self.jail.virtual(self.cwd, arg), MAX_CAT + 1)
            text = data[:MAX_CAT].decode("utf-8", "replace")
            text = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)
            if len(data) > MAX_CAT:
                text += f"\n[… cut at {MAX_CAT // 1024} KiB]"
            out.append(text if text.endswith("\n") else text + "\n")
        return "".join(out), 0, None

    def cmd_history(self, args: list[str]) -> tuple[str, int, None]:
        return "".join(f"{i:>4}  {h}\n" for i, h in enumerate(self.history, 1)), 0, None

    def cmd_true(self, args: list[str]) -> tuple[str, int, None]:
        return "", 0, None

    def cmd_false(self, args: list[str]) -> tuple[str, int, None]:
        return "", 1, None

    def cmd_clear(self, args: list[str]) -> tuple[str, int, str]:
        return "", 0, "clear"

    def cmd_exit(self, args: list[str]) -> tuple[str, int, str]:
        return "", 0, "exit"

    cmd_logout = cmd_exit


class LabShell(recvline.HistoricRecvLine):
    """
    The interactive shell on a terminal (ssh pty or telnet): line editing, history,
    Ctrl-C, Ctrl-D; for telnet, a login prompt first. The password is never echoed:
    neither its keys nor what comes while it is checked (type-ahead, such as the
    password again when an empty line went first), which is held, then run by the
    shell when the login succeeds and dropped when it fails. CR LF is one Enter (a
    telnet client fed by a pipe turns the pipe's CR LF into CR NUL CR LF).
    """

    ps = (b"$ ", b"$ ")

    def __init__(self, service: Any, user: str | None, peer: str, via: str):
        self.service = service  # a ShellService: accounts, jail, sessions, clock, banner
        self.user = user
        self.peer = peer
        self.via = via
        self.commands: Commands | None = None
        self.session: Session | None = None
        self.login_state = "user" if user is None else None
        self.login_name = ""
        self.failures = 0
        self.closing = False
        self.grace: Any = None
        self.after_cr = False  # the last key was CR: an LF now ends no second line
        self.echo = True  # False: a telnet client that echoes itself (it refused ours)
        self.typeahead: list[tuple[Any, Any]] = []  # keys that came while "checking"

    # -- connection ---------------------------------------------------------------

    def connectionMade(self) -> None:
        recvline.HistoricRecvLine.connectionMade(self)
        self.keyHandlers[b"\x03"] = self.handle_CTRL_C
        self.keyHandlers[b"\x04"] = self.handle_CTRL_D
        self.keyHandlers[b"\x0c"] = self.handle_CTRL_L
        self.keyHandlers[b"\x7f"] = self.handle_BACKSPACE
        self.keyHandlers[b"\x08"] = self.handle_BACKSPACE
        if self.login_state is not None and self.service.login_grace:
            clock = self.service.clock_source
            self.grace = clock.callLater(self.service.login_grace, self.grace_over)

    def grace_over(self) -> None:
        self.grace = None
        if self.login_state is not None:
            self.terminal.nextLine()
            self.write_text(f"Login timed out after {self.service.login_grace:g} seconds.\n")
            self.bye()

    def cancel_grace(self) -> None:
        if self.grace is not None and self.grace.active():
            self.grace.cancel()
        self.grace = None

    def initializeScreen(self) -> None:
        self.terminal.reset()
        self.write_text(self.service.banner(self.via))
        if self.login_state == "user":
            self.terminal.write(b"login: ")
        else:
            self.start_session()
        self.setInsertMode()

    def drawInputLine(self) -> None:
        if self.login_state == "password":
            self.terminal.write(b"Password: ")
        elif self.login_state == "user":
            self.terminal.write(b"login: " + b"".join(self.lineBuffer))
        else:
            self.terminal.write(self.prompt() + b"".join(self.lineBuffer))

    def prompt(self) -> bytes:
        cwd = self.commands.cwd if self.commands else "/"
        return f"{self.user}@lab:{cwd}$ ".encode()

    def start_session(self) -> None:
        assert self.user is not None
        svc = self.service
        self.session = Session(self.user, self.via, self.peer, svc.clock(), self.notify)
        self.commands = Commands(
            self.user, self.via, svc.jail, svc.sessions, svc.clock, svc.started(), self.session
        )
        svc.sessions.add(self.session)
        self.write_text(f"Welcome, {self.user}. Type help for the commands.\n")
        self.terminal.write(self.prompt())

    def connectionLost(self, reason: Any = None) -> None:
        self.cancel_grace()
        self.closing = True
        if self.session is not None:
            self.service.sessions.remove(self.session)
            self.session = None
        # Twisted's key map holds this shell's bound methods: a reference cycle that kept
        # the whole session (terminal, telnet layers, about 55 objects) for the
        # collector's next full pass; broken, a closed session is freed at once
        self.keyHandlers = {}

    # -- keys -----------------------------------------------------------------------

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        if self.closing:
            return
        after_cr, self.after_cr = self.after_cr, keyID == b"\r"
        if keyID == b"\n" and after_cr:
            return  # CR LF: one Enter
        if self.login_state == "checking":
            if len(self.typeahead) < MAX_TYPEAHEAD:
                self.typeahead.append((keyID, modifier))
            return
        if not self.echo:
            self.line_key(keyID)
            return
        handler = self.keyHandlers.get(keyID)
        if handler is not None:
            handler()
        elif isinstance(keyID, bytes) and (keyID in self._printableChars or keyID >= b"\x80"):
            if keyID in b"\r\n\t\x0b\x0c":
                return
            if len(self.lineBuffer) >= MAX_LINE:
                self.terminal.write(b"\x07")  # the bell: the line is full
                return
            self.characterReceived(keyID, False)
        # other control characters and unknown keys: ignored, silently

    def line_key(self, keyID: Any) -> None:
        """
        A key from a telnet client that echoes for itself (it refused our ECHO, RFC 857):
        the line is kept, nothing of it is drawn, as a real telnetd does then.
        """
        if keyID in (b"\r", b"\n"):
            line = b"".join(self.lineBuffer)
            self.lineBuffer = []
            if line and self.login_state is None:
                self.historyLines.append(line)
                self.historyPosition = len(self.historyLines)
            self.lineReceived(line)
        elif keyID in (b"\x7f", b"\x08"):
            self.lineBuffer[-1:] = []
        elif keyID in (b"\x03", b"\x04"):
            self.keyHandlers[keyID]()
        elif isinstance(keyID, bytes) and (keyID in self._printableChars or keyID >= b"\x80"):
            if keyID not in b"\t\x0b\x0c" and len(self.lineBuffer) < MAX_LINE:
                self.lineBuffer.append(keyID)
        self.lineBufferIndex = len(self.lineBuffer)

    def characterReceived(self, ch: bytes, moreCharactersComing: bool) -> None:
        if self.login_state == "password":
            self.lineBuffer.append(ch)  # never echoed
            self.lineBufferIndex = len(self.lineBuffer)
            return
        recvline.HistoricRecvLine.characterReceived(self, ch, moreCharactersComing)

    def handle_BACKSPACE(self) -> None:
        if self.login_state == "password":
            if self.lineBuffer:
                self.lineBuffer.pop()
                self.lineBufferIndex = len(self.lineBuffer)
            return
        recvline.HistoricRecvLine.handle_BACKSPACE(self)

    def handle_CTRL_C(self) -> None:
        self.terminal.write(b"^C")
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.terminal.nextLine()
        self.drawInputLine()

    def handle_CTRL_D(self) -> None:
        if not self.lineBuffer:
            self.terminal.nextLine()
            self.bye()

    def handle_CTRL_L(self) -> None:
        self.terminal.eraseDisplay()
        self.terminal.cursorHome()
        self.drawInputLine()

    # -- lines ----------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if self.login_state is not None:
            self.login_line(text)
            return
        assert self.commands is not None
        output, _status, special = self.commands.run(text)
        if output:
            self.write_text(output)
        if special == "exit":
            self.bye()
            return
        if special == "clear":
            self.terminal.eraseDisplay()
            self.terminal.cursorHome()
        self.terminal.write(self.prompt())

    def login_line(self, text: str) -> None:
        if self.login_state == "user":
            self.login_name = text.strip()[:32]
            self.login_state = "password"
            self.terminal.write(b"Password: ")
            return
        self.login_state = "checking"
        d = self.service.check_password(self.login_name, text, self.peer)
        d.addCallbacks(self.logged_in, self.login_failed)

    def logged_in(self, user: str) -> None:
        if self.closing:
            return
        self.user = user
        self.login_state = None
        self.cancel_grace()
        self.historyLines = []  # the password must not be in the history
        self.historyPosition = 0
        self.start_session()
        keys, self.typeahead = self.typeahead, []
        for key, modifier in keys:  # what was typed after the password: commands
            self.keystrokeReceived(key, modifier)

    def login_failed(self, failure: Any) -> None:
        if self.closing:
            return
        self.failures += 1
        self.typeahead = []  # perhaps the password again: never shown, never a login name
        self.historyLines = []
        self.historyPosition = 0
        self.terminal.nextLine()
        if self.failures >= self.service.max_tries or failure.check(TooManyFailures):
            self.write_text("Login incorrect. Too many failures: goodbye.\n")
            self.bye()
            return
        self.write_text("Login incorrect\n")
        self.login_state = "user"
        self.terminal.write(b"login: ")

    # -- output -----------------------------------------------------------------------

    def write_text(self, text: str) -> None:
        # the terminal (insults) turns each "\n" into "\r\n" itself
        self.terminal.write(text.replace("\r\n", "\n").encode("utf-8"))

    def notify(self, message: str) -> None:
        """A message from another user: on its own line, then the prompt redrawn."""
        if self.closing:
            return
        self.terminal.write(b"\r")
        self.terminal.eraseLine()
        self.write_text(message + "\n")
        self.drawInputLine()

    def bye(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.write_text("logout\n")
        self.terminal.loseConnection()


class TooManyFailures(Exception):
    """This client's address failed to log in too often lately."""


def terminal_protocol(
    service: Any, user: str | None, peer: str, via: str
) -> insults.ServerProtocol:
    """The terminal (insults) around a lab shell, for a pty or a telnet connection."""
    return insults.ServerProtocol(LabShell, service, user, peer, via)
