"""
Live control of a running suite: reload the config, disable/enable a service, faults,
status, through one control channel only the suite's owner can use.

The channel is a unix socket, mode 0600, in a run folder of mode 0700 that belongs to
the user running the suite (L{run_dir}: C{$PORTSUITE_RUN_DIR}, else
C{$XDG_RUNTIME_DIR/portsuite}, else C{/tmp/portsuite-UID}), named after the config
file (L{socket_path}); a peer whose uid is neither the suite's nor root is refused
(C{SO_PEERCRED}). Never a network socket. One JSON request per line
(C{{"command": "reload"}}), one JSON answer per line (C{{"ok": true, "lines": [...]}}).

C{portsuite reload} and SIGHUP do the same: read the config again, and

  - start the services it adds, restart the ones it changes (the old one stops
    listening, its open connections get L{GRACE} seconds to finish, then are closed);
  - stop the ones it removes the same way;
  - leave the others, and their clients, alone (a change to a service's C{faults}
    alone applies to its next connections, without a restart);
  - change nothing if the config has any problem: every problem is reported, one
    line each, as at startup.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.policies import TimeoutMixin

from portsuite import faults as faultsmod
from portsuite import loader
from portsuite.api import ConfigError, StartupError
from portsuite.lang import N_, _

log = Logger(namespace="portsuite")

GRACE = 10.0  # seconds a removed/restarted service's open connections get to finish
MAX_REQUEST = 64 * 1024
STATES = (N_("listening"), N_("disabled"), N_("stopped"))  # a unit's state, in status


# -- where the control socket lives ----------------------------------------------------


def run_dir() -> Path:
    """The user's run folder for control sockets (created 0700 by L{ensure_run_dir})."""
    env = os.environ.get("PORTSUITE_RUN_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / "portsuite"
    return Path(tempfile.gettempdir()) / f"portsuite-{os.getuid()}"


def socket_path(config_path: str | Path) -> Path:
    """The control socket of the suite started with this config file."""
    resolved = Path(config_path).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return run_dir() / f"{resolved.stem}-{digest}.sock"


def ensure_run_dir(folder: Path) -> None:
    """Create the run folder 0700, or check that an existing one is ours and private."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(
            _("{folder} is not a folder of this user; remove it or set PORTSUITE_RUN_DIR").format(
                folder=folder
            )
        )
    if st.st_mode & 0o077:
        os.chmod(folder, 0o700)


# -- the commands ------------------------------------------------------------------------


def _unknown(suite: Any, name: str) -> str:
    known = ", ".join(u.name for u in suite) or _("none")
    return _("unknown service {name!r}; services: {known}").format(name=name, known=known)


def _unit(suite: Any, name: str) -> Any:
    try:
        return suite.getServiceNamed(name)
    except KeyError:
        return None


def _where(unit: Any) -> str:
    shown = []
    for li in unit.stats.listeners:
        shown.append(
            f"{li.transport} {li.host}:{li.port}" if li.port is not None else li.description
        )
    return ", ".join(shown) or "-"


def status_lines(suite: Any) -> list[str]:
    rows = [[_("SERVICE"), _("TYPE"), _("STATE"), _("LISTENING"), _("OPEN"), _("FAULTS")]]
    for unit in suite:
        f = unit.faults.as_dict() if unit.faults is not None else {}
        rows.append(
            [
                unit.name,
                unit.config.type,
                _(unit.state)
                + (
                    _(" ({n} workers)").format(n=unit.stats.workers)
                    if unit.pool is not None
                    else ""
                ),
                _where(unit),
                str(unit.stats.open),
                " ".join(f"{k}={v}" for k, v in f.items()) or "-",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for error in getattr(suite, "plugin_errors", {}).values():
        lines.append(_("plugin error: {error}").format(error=error))
    return lines


@defer.inlineCallbacks
def disable(suite: Any, name: str) -> Any:
    unit = _unit(suite, name)
    if unit is None:
        return False, [_unknown(suite, name)]
    if unit.disabled:
        return True, [_("{name}: already disabled").format(name=name)]
    unit.disabled = True
    yield unit.unbind()
    suite.changed()
    log.info("{service}: disabled (no longer listening)", service=name)
    return True, [
        _("{name}: disabled; no longer listening ({open} open connection(s) go on)").format(
            name=name, open=unit.stats.open
        )
    ]


def enable(suite: Any, name: str) -> tuple[bool, list[str]]:
    unit = _unit(suite, name)
    if unit is None:
        return False, [_unknown(suite, name)]
    if not unit.disabled:
        return True, [
            _("{name}: already enabled ({where_unit})").format(name=name, where_unit=_where(unit))
        ]
    try:
        unit.bind()
    except StartupError as e:
        for child in unit:
            child.unbind()
        return False, [_("{error}; {name} stays disabled").format(error=e, name=name)]
    unit.disabled = False
    suite.changed()
    log.info("{service}: enabled on {where}", service=name, where=_where(unit))
    return True, [
        _("{name}: enabled, listening on {where_unit}").format(name=name, where_unit=_where(unit))
    ]


def fault(suite: Any, name: str, words: list[str]) -> tuple[bool, list[str]]:
    unit = _unit(suite, name)
    if unit is None:
        return False, [_unknown(suite, name)]
    if not words:
        return False, [_("say which faults, e.g. latency=200ms, or clear")]
    if words == ["clear"]:
        unit.set_faults(None)
        log.info("{service}: faults cleared", service=name)
        return True, [_("{name}: faults cleared (for the next connections)").format(name=name)]
    try:
        new = faultsmod.parse_words(words, unit.faults or faultsmod.Faults())
    except faultsmod.FaultError as e:
        return False, [_("{name}: {e}; nothing was changed").format(name=name, e=e)]
    transports = {li.transport for li in unit.stats.listeners} or set(unit.stype.transports)
    transports = {"udp" if t == "udp" else "tcp" for t in transports}
    problems = faultsmod.transport_problems(new, transports)
    if problems:
        return False, [
            _("{name}: {problems_0}; nothing was changed").format(name=name, problems_0=problems[0])
        ]
    unit.set_faults(new)
    shown = " ".join(f"{k}={v}" for k, v in new.as_dict().items()) or _("none")
    log.info("{service}: faults {faults}", service=name, faults=shown)
    return True, [
        _("{name}: faults {shown} (for the next connections)").format(name=name, shown=shown)
    ]


def _differs(unit: Any, svc: Any, old_cfg: Any, new_cfg: Any) -> bool:
    if unit.config != svc:
        return True
    return bool(old_cfg.accounts.narrow(svc.users) != new_cfg.accounts.narrow(svc.users))


@defer.inlineCallbacks
def reload(suite: Any, grace: float = GRACE) -> Any:
    """Read the config file again and apply the difference; (ok, lines)."""
    path = suite.config_file
    if path is None:
        return False, [_("this suite was not started from a config file; nothing to reload")]
    try:
        new = loader.load(path)
    except ConfigError as e:
        return False, [
            *e.errors,
            _("{n} problem(s) in {path}; nothing was changed").format(n=len(e.errors), path=path),
        ]
    old = suite.config
    units = {u.name: u for u in suite}
    names = [s.name for s in new.services]
    added = [s for s in new.services if s.name not in units]
    changed = [s for s in new.services if s.name in units and _differs(units[s.name], s, old, new)]
    removed = [units[n] for n in units if n not in names]
    kept = [units[s.name] for s in new.services if s.name in units and s not in changed]

    # the added services bind first: if one cannot, nothing was changed
    saved = (suite.config, dict(suite.types), dict(suite.stats))
    suite.adopt(new, [s.name for s in added + changed])
    fresh = []
    try:
        for svc in added:
            unit = suite.new_unit(svc)
            fresh.append(unit)
            unit.bind()
    except Exception as e:
        for unit in fresh:
            yield unit.unbind()
        suite.config, suite.types, suite.stats = saved
        return False, [_line(e), _("nothing was changed")]

    lines = []
    for unit in fresh:
        unit.setServiceParent(suite)
        lines.append(
            _("{name}: added, listening on {where_unit}").format(
                name=unit.name, where_unit=_where(unit)
            )
        )
    for svc in changed:
        before = units[svc.name]
        yield before.unbind()
        suite.retire(before, grace)
        unit = suite.new_unit(svc)
        unit.disabled = before.disabled
        try:
            if not unit.disabled:
                unit.bind()
        except Exception as e:
            yield unit.unbind()
            lines.append(_("{error}; {name} is stopped").format(error=_line(e), name=svc.name))
            continue
        unit.setServiceParent(suite)
        n = before.stats.open
        lines.append(
            _("{name}: restarted, listening on {where_unit}").format(
                name=svc.name, where_unit=_where(unit)
            )
            + (
                _(" ({n} open connection(s) of the old one get {grace:g}s to finish)").format(
                    n=n, grace=grace
                )
                if n
                else ""
            )
        )
    for unit in removed:
        n = unit.stats.open
        yield unit.unbind()
        suite.retire(unit, grace)
        lines.append(
            _("{name}: removed").format(name=unit.name)
            + (
                _(" ({n} open connection(s) get {grace:g}s to finish)").format(n=n, grace=grace)
                if n
                else ""
            )
        )
    for unit in kept:
        want = new.faults.get(unit.name)
        if want != old.faults.get(unit.name):
            unit.set_faults(want)
            lines.append(
                _("{name}: faults now {faults}").format(
                    name=unit.name, faults=want.as_dict() if want else _("none")
                )
            )
    if kept:
        lines.append(_("unchanged: {names}").format(names=", ".join(u.name for u in kept)))
    suite.changed()
    for line in lines:
        log.info("reload: {line}", line=line)
    return True, lines


def _line(e: BaseException) -> str:
    if isinstance(e, StartupError):
        return str(e)
    return f"{type(e).__name__}: {e}"


# -- the control socket ------------------------------------------------------------------


class ControlProtocol(LineOnlyReceiver, TimeoutMixin):
    """One JSON request per line, one JSON answer per line; only the owner may talk."""

    MAX_LENGTH = MAX_REQUEST
    delimiter = b"\n"
    factory: ControlFactory
    transport: Any

    def connectionMade(self) -> None:
        self.setTimeout(30)
        uid = _peer_uid(self.transport)
        if uid is not None and uid not in (os.getuid(), 0):
            self._answer(False, [_("refused: only the suite's owner may control it")])
            self.transport.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        self._answer(
            False, [_("request longer than {MAX_REQUEST} bytes").format(MAX_REQUEST=MAX_REQUEST)]
        )
        self.transport.loseConnection()

    def timeoutConnection(self) -> None:
        self.transport.loseConnection()

    def lineReceived(self, line: bytes) -> None:
        self.resetTimeout()
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ValueError
        except ValueError:
            self._answer(False, [_('bad request; send one JSON object: {"command": "status"}')])
            return
        d = defer.maybeDeferred(self.factory.handle, request)

        def failed(f: Any) -> tuple[bool, list[str]]:
            log.failure("control: {command} failed", f, command=request.get("command"))
            return False, [
                _("{command} failed: {error}").format(
                    command=request.get("command"), error=f.getErrorMessage()
                )
            ]

        d.addErrback(failed)
        d.addCallback(lambda r: self._answer(*r))

    def _answer(self, ok: bool, lines: list[str], **extra: Any) -> None:
        if self.transport is None or not self.connected:
            return
        self.sendLine(json.dumps({"ok": ok, "lines": lines, **extra}).encode())

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)


def _peer_uid(transport: Any) -> int | None:
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is None:
        return None
    try:
        raw = transport.getHandle().getsockopt(
            socket.SOL_SOCKET, so_peercred, struct.calcsize("3i")
        )
    except (AttributeError, OSError):
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class ControlFactory(Factory):
    protocol: Any = ControlProtocol
    noisy = False

    def __init__(self, suite: Any):
        self.suite = suite

    def handle(self, request: dict[str, Any]) -> Any:
        suite = self.suite
        command = request["command"]
        name = request.get("service")
        if command == "status":
            return True, status_lines(suite)
        if command == "reload":
            grace = request.get("grace", GRACE)
            if (
                isinstance(grace, bool)
                or not isinstance(grace, (int, float))
                or not 0 <= grace <= 3600
            ):
                return False, [_("reload: grace must be 0 to 3600 seconds; nothing was changed")]
            return suite.reload(float(grace))
        if command in ("disable", "enable", "fault"):
            if not isinstance(name, str):
                return False, [_("{command}: say which service").format(command=command)]
            if command == "disable":
                return disable(suite, name)
            if command == "enable":
                return enable(suite, name)
            words = request.get("args") or []
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                return False, [_("fault: args must be a list of KIND=VALUE words")]
            return fault(suite, name, words)
        return False, [
            _("unknown command {command!r}; use status, reload, disable, enable, fault").format(
                command=command
            )
        ]


def listen(suite: Any, path: Path) -> Any:
    """Open the control socket (None, and a warning logged, if it cannot be)."""
    try:
        ensure_run_dir(path.parent)
        if path.exists() or path.is_symlink():
            if _answers(path):
                log.warn(
                    "control: another suite already answers on {path}; "
                    "portsuite reload/disable/enable/fault will reach that one",
                    path=path,
                )
                return None
            path.unlink()
        port = suite.reactor.listenUNIX(str(path), ControlFactory(suite), mode=0o600)
    except OSError as e:
        log.warn("control: cannot open {path}: {e}; live control is off", path=path, e=e)
        return None
    except Exception as e:  # CannotListenError
        log.warn("control: cannot open {path}: {e}; live control is off", path=path, e=e)
        return None
    log.info("control: portsuite reload/status/disable/enable/fault talk to {path}", path=path)
    return port


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


# -- the client side (portsuite reload/status/…) ---------------------------------------


def request(path: Path, payload: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Send one request to a suite's control socket. @raise OSError: no suite there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answer: dict[str, Any] = json.loads(
        data or json.dumps({"ok": False, "lines": [_("no answer")]})
    )
    return answer


def main(args: Any, payload: dict[str, Any]) -> int:
    """What C{portsuite reload/status/disable/enable/fault} share: ask, print, exit status."""
    path = Path(args.socket) if args.socket else socket_path(args.config)
    try:
        answer = request(path, payload)
    except FileNotFoundError:
        print(
            _(
                "portsuite: no suite is running with {config} (no control socket {path}); start one with: twistd -n portsuite -c {config}"
            ).format(config=args.config, path=path),
            file=sys.stderr,
        )
        return 1
    except (OSError, ValueError) as e:
        print(
            _("portsuite: cannot talk to the suite on {path}: {e}").format(path=path, e=e),
            file=sys.stderr,
        )
        return 1
    out = sys.stdout if answer.get("ok") else sys.stderr
    for line in answer.get("lines", []):
        print(line, file=out)
    return 0 if answer.get("ok") else 1


def add_target_arguments(p: Any) -> None:
    p.add_argument(
        "-c",
        "--config",
        default="config.toml",
        help=_("the config the suite was started with (finds its control socket)"),
    )
    p.add_argument("--socket", default=None, help=_("the control socket itself"))
