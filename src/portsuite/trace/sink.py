"""
Where transcripts are written: one JSON-lines file per service, in a folder per suite.

The folder of a suite is C{$PORTSUITE_TRACE_DIR} when it is set (that folder itself),
else C{/tmp/portsuite-trace-UID/KEY/}, UID the user writing (e.g. nobody after
C{twistd --uid}) and KEY named after the suite's config file (its name and a digest of
its real path, L{suite_key}), so that two suites never mix their transcripts and
C{portsuite trace SERVICE -c CONFIG} finds the right one from any folder. A suite
built from a dict (tests) has no file: its key is its process id.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.logger import Logger

log = Logger(namespace="portsuite.trace")

MAX_FILE = 1_000_000  # bytes of a service's JSON-lines file before it is rotated
PREFIX = "portsuite-trace-"


def safe_name(name: str) -> str:
    """A service or file name as a file name: letters, digits and C{-_.}, the rest C{_}."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def user_dir() -> Path:
    """C{/tmp/portsuite-trace-UID}: every suite folder of the user running this process."""
    return Path(tempfile.gettempdir()) / f"{PREFIX}{os.geteuid()}"


def suite_key(config_path: str | Path | None) -> str:
    """
    The folder name of a suite's transcripts: C{STEM-DIGEST} of its config file's
    real path (the same from whatever folder the suite or the follower was started),
    or C{pid-N} for a suite with no config file.
    """
    if config_path is None:
        return f"pid-{os.getpid()}"
    real = os.path.realpath(config_path)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:10]
    return f"{safe_name(Path(real).stem)}-{digest}"


def trace_dir(config_path: str | Path | None = None) -> Path:
    """The transcripts folder of a suite: C{$PORTSUITE_TRACE_DIR}, else L{user_dir}/L{suite_key}."""
    env = os.environ.get("PORTSUITE_TRACE_DIR")
    if env:
        return Path(env)
    return user_dir() / suite_key(config_path)


def _private(folder: Path) -> bool:
    """Whether C{folder} is one we create in the shared /tmp (so must check it is ours)."""
    return folder.parent == user_dir() or folder == user_dir()


def _own_folder(folder: Path, check_owner: bool) -> None:
    if not folder.exists():
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = folder.lstat()
    if os.path.islink(folder) or not os.path.isdir(folder):
        raise OSError(f"{folder} is not a folder")
    if check_owner and st.st_uid != os.geteuid():
        raise OSError(f"{folder} belongs to another user")


class TraceFile:
    """
    Appends JSON lines to C{DIR/SERVICE.jsonl}; past C{max_bytes} the file becomes
    C{SERVICE.jsonl.1} (replacing the older one) and a new file starts with a
    C{rotated} record. Opened and closed per record: no handle outlives a write.
    A folder that cannot be written disables the file (once, with one log line).

    @ivar directory: the suite's folder; None for L{trace_dir}() at each write.
    """

    def __init__(self, service: str, directory: Path | None = None, max_bytes: int = MAX_FILE):
        self.service = service
        self.directory = directory
        self.max_bytes = max_bytes
        self.broken = False

    @property
    def path(self) -> Path:
        return (self.directory or trace_dir()) / f"{safe_name(self.service)}.jsonl"

    def _prepare(self, folder: Path) -> None:
        if _private(folder):
            # in the shared /tmp: the user folder and the suite folder must be ours,
            # not a link or a folder planted by another user
            _own_folder(user_dir(), check_owner=True)
            _own_folder(folder, check_owner=True)
        else:
            _own_folder(folder, check_owner=False)

    def append(self, record: dict[str, Any]) -> None:
        if self.broken:
            return
        path = self.path
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self._prepare(path.parent)
            fd = os.open(
                path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644
            )
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > self.max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    marker = {"event": "rotated", "service": self.service, "time": time.time()}
                    os.write(fd, (json.dumps(marker) + "\n").encode())
                finally:
                    os.close(fd)
        except OSError as e:
            self.broken = True
            log.warn(
                "{service}: cannot write transcripts to {path} ({error}); "
                "set PORTSUITE_TRACE_DIR to a writable folder for `portsuite trace`",
                service=self.service,
                path=str(path),
                error=str(e),
            )


_files: dict[tuple[str, str], TraceFile] = {}


def trace_file(service: str, directory: Path | None = None) -> TraceFile:
    """The file of a service in C{directory} (default L{trace_dir}()), one object per pair."""
    folder = directory if directory is not None else trace_dir()
    key = (str(folder), service)
    f = _files.get(key)
    if f is None:
        if len(_files) > 256:
            _files.clear()
        f = _files[key] = TraceFile(service, folder)
    return f
