"""
The folder the lab shell and SFTP show (C{files = "../ftp"}): a jail.

Every path a client gives is resolved inside the root: C{..}, absolute paths and
symlinks can never reach outside it (a symlink whose target is outside is refused, as
if it did not exist); only regular files and folders are ever opened, so a FIFO or a
device in the folder cannot block the reactor.
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path


class JailError(Exception):
    """A path the client may not use; the text is what the client is told."""


class Jail:
    def __init__(self, root: Path | None, writable: bool = False):
        self.root = root.resolve() if root is not None else None
        self.writable = writable

    def virtual(self, cwd: str, path: str) -> str:
        """The absolute path, as the client sees it (C{/} is the root), of C{path}."""
        if "\0" in path:
            raise JailError(f"{path!r}: invalid name")
        joined = posixpath.join(cwd, path) if not path.startswith("/") else path
        normal = posixpath.normpath("/" + joined.lstrip("/"))
        return "/" if normal in ("/", "//") else normal

    def real(self, virtual: str, must_exist: bool = True) -> Path:
        """The file behind a virtual path, or L{JailError} if it is outside or absent."""
        if self.root is None:
            raise JailError("no files here (the service has no files folder)")
        candidate = self.root / virtual.lstrip("/")
        try:
            resolved = candidate.resolve(strict=must_exist)
        except (FileNotFoundError, NotADirectoryError):
            raise JailError(f"{virtual}: no such file or folder") from None
        except (OSError, RuntimeError):
            raise JailError(f"{virtual}: cannot be opened") from None
        if resolved != self.root and self.root not in resolved.parents:
            # outside the jail (a symlink pointing out): as if it were not there
            raise JailError(f"{virtual}: no such file or folder")
        return resolved

    def kind(self, path: Path) -> str:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        if stat.S_ISREG(st.st_mode):
            return "file"
        return "other"

    def listing(self, virtual: str) -> list[tuple[str, os.stat_result]]:
        folder = self.real(virtual)
        if self.kind(folder) != "dir":
            raise JailError(f"{virtual}: not a folder")
        out = []
        for entry in sorted(os.listdir(folder)):
            try:
                target = self.real(posixpath.join(virtual, entry))
                out.append((entry, target.stat()))
            except (JailError, OSError):
                continue  # a symlink out of the jail, or gone: not shown
        return out

    def read(self, virtual: str, limit: int) -> bytes:
        """A regular file's first C{limit} bytes (never blocks on a FIFO)."""
        path = self.real(virtual)
        if self.kind(path) != "file":
            raise JailError(f"{virtual}: not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise JailError(f"{virtual}: not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read(limit)
        finally:
            os.close(fd)

    def writable_target(self, virtual: str) -> Path:
        """Where a new file (or folder) may be made: its folder is in the jail."""
        if not self.writable:
            raise JailError("read-only: this service's files are not writable")
        parent = self.real(posixpath.dirname(virtual) or "/")
        name = posixpath.basename(virtual)
        if not name or name in (".", ".."):
            raise JailError(f"{virtual}: invalid name")
        target = parent / name
        if target.is_symlink():
            raise JailError(f"{virtual}: is a link")
        return target
