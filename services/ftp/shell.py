"""
The files an FTP user sees: a jail (C{root} for anonymous, C{homes/NAME} for an
account) that no path, C{..}, absolute path or symlink leaves.

L{JailShell} is an C{IFTPShell} (twisted.protocols.ftp) built on Twisted's
C{FTPShell}: segments come from C{toSegments} (which already refuses C{..} above the
root), then every path is resolved with C{realpath} and must still be inside the
jail's real path, so a symlink pointing out is refused like a missing file.
Uploads go to a temporary name in the same folder and are renamed when complete.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as statmod
import time
from collections.abc import Iterator
from typing import Any

from twisted.cred import checkers
from twisted.cred.portal import IRealm
from twisted.internet import defer
from twisted.protocols.ftp import (
    AnonUserDeniedError,
    FileNotFoundError,
    FTPShell,
    IFTPShell,
    IsADirectoryError,
    PermissionDeniedError,
    errnoToFailure,
)
from twisted.python.filepath import FilePath
from zope.interface import implementer

TEMP_PREFIX = ".portsuite-upload-"
MISSING = -1  # Jail.locate: nothing at that path, in an existing folder
NO_FOLDER = -2  # Jail.locate: nothing at that path, nor its folder
MAX_NAME = 255 - 32  # bytes of a file name an upload may create (room for the temp prefix)


class Escape(Exception):
    """A path that would leave the jail."""


class Jail:
    """A folder no path leaves; C{resolve} is the one gate."""

    def __init__(self, root: FilePath):
        self.root = root
        self.real = os.path.realpath(root.path)

    def inside(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real + os.sep)

    def resolve(self, segments: list[str]) -> FilePath:
        return FilePath(self.locate(segments)[0])

    def locate(self, segments: list[str]) -> tuple[str, int | None]:
        """
        The path of C{segments} inside the jail, and what the walk learnt of it on the
        way: its lstat mode, L{MISSING} (nothing there, in an existing folder),
        L{NO_FOLDER} (its folder is missing too), or None (past a symlink: ask again).
        """
        for seg in segments:
            if not seg or "\0" in seg or "/" in seg or seg in ("..", "."):
                raise Escape(seg)
        # from the jail's real path, one lstat per segment: a path with no symlink in
        # it stays inside (no segment is ".."); the first symlink, or anything odd, and
        # the whole path is resolved with realpath and must still be inside
        path = self.real
        mode: int | None = statmod.S_IFDIR
        last = len(segments) - 1
        for i, seg in enumerate(segments):
            path = os.path.join(path, seg)
            try:
                mode = os.lstat(path).st_mode
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR):
                    # nothing further exists, so nothing further can point out
                    if i == last:
                        return path, MISSING if e.errno == errno.ENOENT else NO_FOLDER
                    return os.path.join(path, *segments[i + 1 :]), NO_FOLDER
                break
            if statmod.S_ISLNK(mode):
                break
        else:
            return path, mode
        path = os.path.join(self.real, *segments)
        if not self.inside(os.path.realpath(path)):
            raise Escape("/".join(segments))
        return path, None


def _fail(segments: list[str], e: BaseException) -> defer.Deferred[Any]:
    name = "/".join(segments)
    if isinstance(e, Escape):
        # what lies outside does not exist, as far as the client can tell
        return defer.fail(FileNotFoundError(name))
    if isinstance(e, OSError) and e.errno is not None:
        if e.errno == errno.ENAMETOOLONG:
            return defer.fail(FileNotFoundError(name))
        return errnoToFailure(e.errno, name)
    return defer.fail(e)


def mode_string(st: os.stat_result) -> str:
    return statmod.filemode(st.st_mode)


def list_line(name: bytes, st: os.stat_result, now: float) -> bytes:
    """One C{ls -l} line, as every FTP client parses it (owner and group hidden)."""
    mtime = time.gmtime(st.st_mtime)
    if abs(now - st.st_mtime) < 180 * 86400:
        when = time.strftime("%b %d %H:%M", mtime)
    else:
        when = time.strftime("%b %d  %Y", mtime)
    size = st.st_size if not statmod.S_ISDIR(st.st_mode) else 4096
    head = f"{mode_string(st)} {st.st_nlink:>3} ftp      ftp      {size:>12} {when} "
    return head.encode("ascii") + name


def mlsx_facts(st: os.stat_result, kind: str | None, writable: bool) -> str:
    """RFC 3659 facts: C{type=file;size=12;modify=20261201040000;perm=r;}."""
    is_dir = statmod.S_ISDIR(st.st_mode)
    if kind is None:
        kind = "dir" if is_dir else "file"
    modify = time.strftime("%Y%m%d%H%M%S", time.gmtime(st.st_mtime))
    if is_dir:
        perm = "elcmfp" if writable else "el"
        return f"type={kind};modify={modify};perm={perm};"
    perm = "radfw" if writable else "r"
    return f"type={kind};size={st.st_size};modify={modify};perm={perm};"


# the path segments of a request; an alias, since JailShell.list shadows the builtin in
# the class body
Segments = list[str]


@implementer(IFTPShell)
class JailShell(FTPShell):
    """
    An C{IFTPShell} jailed in one folder; read-only unless C{writable}.

    Methods take segments (from C{toSegments}) and return Deferreds, as
    C{IFTPShell} says; the portsuite protocol also uses L{open_read},
    L{open_write}, L{entries} and L{stat_entry} for REST, APPE, MLSD and the
    upload limit.
    """

    user: str  # set by the Realm: "anonymous" or the account name

    def __init__(self, root: FilePath, writable: bool):
        FTPShell.__init__(self, root)
        self.jail = Jail(root)
        self.writable = writable

    # -- the gate ---------------------------------------------------------------

    def _path(self, path: Segments) -> FilePath:
        return self.jail.resolve(path)

    def _deny_write(self) -> defer.Deferred[Any] | None:
        if not self.writable:
            return defer.fail(AnonUserDeniedError())
        return None

    # -- IFTPShell ---------------------------------------------------------------

    def access(self, path: Segments) -> defer.Deferred[Any]:
        try:
            p = self._path(path)
            if not p.isdir():
                return defer.fail(FileNotFoundError("/".join(path)))
            os.listdir(p.path)
        except Exception as e:
            return _fail(path, e)
        return defer.succeed(None)

    def stat(self, path: Segments, keys: Any = ()) -> defer.Deferred[Any]:
        try:
            p = self._path(path)
            if not p.exists():
                return defer.fail(FileNotFoundError("/".join(path)))
            return defer.succeed(self._statNode(p, keys))
        except Exception as e:
            return _fail(path, e)

    def list(self, path: Segments, keys: Any = ()) -> defer.Deferred[Any]:
        try:
            out = []
            for name, p, _st in self.entries(path):
                out.append((name, self._statNode(p, keys) if keys else []))
            return defer.succeed(out)
        except Exception as e:
            return _fail(path, e)

    def makeDirectory(self, path: Segments) -> defer.Deferred[Any]:
        denied = self._deny_write()
        if denied is not None:
            return denied
        try:
            os.mkdir(self._path(path).path, 0o755)
        except Exception as e:
            return _fail(path, e)
        return defer.succeed(None)

    def removeDirectory(self, path: Segments) -> defer.Deferred[Any]:
        denied = self._deny_write()
        if denied is not None:
            return denied
        if not path:
            return defer.fail(PermissionDeniedError("/"))
        try:
            p = self._path(path)
            if os.path.islink(p.path) or not p.isdir():
                return defer.fail(FileNotFoundError("/".join(path)))
            os.rmdir(p.path)
        except Exception as e:
            return _fail(path, e)
        return defer.succeed(None)

    def removeFile(self, path: Segments) -> defer.Deferred[Any]:
        denied = self._deny_write()
        if denied is not None:
            return denied
        try:
            p = self._path(path)
            if p.isdir():
                return defer.fail(IsADirectoryError("/".join(path)))
            os.unlink(p.path)
        except Exception as e:
            return _fail(path, e)
        return defer.succeed(None)

    def rename(self, fromPath: Segments, toPath: Segments) -> defer.Deferred[Any]:
        denied = self._deny_write()
        if denied is not None:
            return denied
        if not fromPath or not toPath:
            return defer.fail(PermissionDeniedError("/"))
        try:
            src = self._path(fromPath)
            dst = self._path(toPath)
            if not os.path.lexists(src.path):
                return defer.fail(FileNotFoundError("/".join(fromPath)))
            os.rename(src.path, dst.path)
        except Exception as e:
            return _fail(fromPath, e)
        return defer.succeed(None)

    def openForReading(self, path: Segments) -> defer.Deferred[Any]:
        try:
            return defer.succeed(self.open_read(path, 0))
        except Exception as e:
            return _fail(path, e)

    def openForWriting(self, path: Segments) -> defer.Deferred[Any]:
        denied = self._deny_write()
        if denied is not None:
            return denied
        try:
            return defer.succeed(self.open_write(path))
        except Exception as e:
            return _fail(path, e)

    # -- what the portsuite protocol uses directly (raise instead of Deferreds) ----

    def visible(self, name: str) -> bool:
        return not name.startswith(TEMP_PREFIX)

    def entries(self, path: Segments) -> Iterator[tuple[str, FilePath, os.stat_result]]:
        """(name, FilePath, stat) of a folder's visible entries, or of one file."""
        p = self._path(path)
        if p.isdir():
            names = sorted(os.listdir(p.path))
            for name in names:
                if not self.visible(name):
                    continue
                child = p.child(name)
                try:
                    st = os.lstat(child.path)
                    if statmod.S_ISLNK(st.st_mode):
                        if not self.jail.inside(os.path.realpath(child.path)):
                            continue  # a symlink pointing out is not shown
                        st = os.stat(child.path)
                except OSError:
                    continue
                yield name, child, st
        elif p.isfile():
            yield p.basename(), p, os.stat(p.path)
        else:
            raise FileNotFoundError("/".join(path))

    def stat_entry(self, path: Segments) -> tuple[FilePath, os.stat_result]:
        p = self._path(path)
        return p, os.stat(p.path)

    def open_read(self, path: Segments, offset: int) -> ReadFile:
        """
        The file at C{path}, open for reading from C{offset}: a L{ReadFile} (the
        senders read big chunks or use sendfile) with its size at opening. One open
        and one fstat say what it is (no stat of the path first, no buffered reader's
        tty check and tell, no second fstat as C{io.FileIO} makes).
        """
        target = self.jail.locate(path)[0]  # the path, no FilePath (its abspath) made
        # O_NONBLOCK: a FIFO put in the folder must not hold the reactor until some
        # writer opens it (it is refused below); a regular file's reads ignore the flag
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if statmod.S_ISDIR(st.st_mode):
                raise IsADirectoryError("/".join(path))
            if not statmod.S_ISREG(st.st_mode):
                raise FileNotFoundError("/".join(path))
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return ReadFile(fd, st.st_size)  # closes fd from now on (closed by the sender)

    def open_write(self, path: Segments, offset: int | None = None, append: bool = False) -> Upload:
        if not self.writable:
            raise AnonUserDeniedError()
        if not path:
            raise IsADirectoryError("/")
        if len(os.fsencode(path[-1])) > MAX_NAME:
            raise OSError(errno.ENAMETOOLONG, f"File name too long (at most {MAX_NAME} bytes)")
        # what the jail's walk saw there says it, without a stat of the target and one
        # of its folder (past a symlink, ask the filesystem)
        target, mode = self.jail.locate(path)
        if mode is None:
            p = FilePath(target)
            if p.isdir():
                raise IsADirectoryError("/".join(path))
            if not p.parent().isdir():
                raise FileNotFoundError("/".join(path))
        elif mode == NO_FOLDER:
            raise FileNotFoundError("/".join(path))
        elif mode != MISSING and statmod.S_ISDIR(mode):
            raise IsADirectoryError("/".join(path))
        if append or offset:
            return Upload.in_place(target, offset, append)
        return Upload.fresh(target)


class ReadFile:
    """
    An open file being sent: its descriptor, read from the current offset, and its
    size when it was opened. The little of a file object the senders use.
    """

    __slots__ = ("fd", "size")

    def __init__(self, fd: int, size: int):
        self.fd = fd
        self.size = size

    def fileno(self) -> int:
        return self.fd

    def read(self, n: int) -> bytes:
        return os.read(self.fd, n)

    def tell(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class Upload:
    """
    One file being received. A new file is written under a temporary name in the
    same folder (hidden from listings) and renamed over the target when complete,
    so an interrupted upload never leaves a file that looks complete. REST + STOR
    and APPE continue the existing file in place (resuming is what they are for);
    on failure it is cut back to its size before the transfer.
    """

    def __init__(self, target: str, fd: int, temp: str | None, start: int):
        self.target = target
        self.fd = fd
        self.temp = temp
        self.start = start
        self.size = start  # the file's size once this transfer's bytes are in
        self.closed = False

    @classmethod
    def fresh(cls, target: str) -> Upload:
        folder, name = os.path.split(target)
        temp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}-{name}"[:255])
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        return cls(target, fd, temp, 0)

    @classmethod
    def in_place(cls, target: str, offset: int | None, append: bool) -> Upload:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            size = os.fstat(fd).st_size
            if append:
                start = size
            else:
                start = min(offset or 0, size)
                os.ftruncate(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return cls(target, fd, None, start)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def commit(self) -> None:
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)
        if self.temp is not None:
            os.replace(self.temp, self.target)

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.temp is None:
                os.ftruncate(self.fd, self.start)
        finally:
            os.close(self.fd)
            if self.temp is not None:
                try:
                    os.unlink(self.temp)
                except OSError:
                    pass


@implementer(IRealm)
class Realm:
    """
    Anonymous gets a read-only view of C{root}; an account gets C{homes/NAME},
    read-write (created on first login). Without C{homes}, accounts get C{root}
    read-only too.
    """

    def __init__(self, root: FilePath, homes: FilePath | None):
        self.root = root
        self.homes = homes

    def home(self, name: str) -> FilePath:
        assert self.homes is not None
        home = self.homes.child(name)
        if not home.isdir():
            os.makedirs(home.path, 0o755, exist_ok=True)
        return home

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IFTPShell not in interfaces:
            raise NotImplementedError("only IFTPShell")
        if avatarId is checkers.ANONYMOUS or self.homes is None:
            shell = JailShell(self.root, writable=False)
            shell.user = "anonymous" if avatarId is checkers.ANONYMOUS else avatarId
        else:
            shell = JailShell(self.home(avatarId), writable=True)
            shell.user = avatarId
        return IFTPShell, shell, lambda: None
