"""
SFTP (draft-ietf-secsh-filexfer-02, what OpenSSH's sftp and scp speak) over the
ssh service's C{files} folder, through the same jail as the lab shell: read-only
unless C{writable = true}; no links made or followed out; no attribute changes.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from twisted.conch.ls import lsLine
from twisted.conch.ssh import filetransfer
from twisted.conch.ssh.filetransfer import (
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    SFTPError,
)
from zope.interface import implementer

from portsuite_services.ssh.files import JailError

MAX_CHUNK = 256 * 1024  # bytes one read returns at most
MAX_FILE = 100 * 1024 * 1024  # bytes a written file may reach


def _attrs(st: os.stat_result) -> dict[str, int]:
    return {
        "size": st.st_size,
        "uid": st.st_uid,
        "gid": st.st_gid,
        "permissions": st.st_mode,
        "atime": int(st.st_atime),
        "mtime": int(st.st_mtime),
    }


def _jailed(f: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except JailError as e:
            code = FX_PERMISSION_DENIED if "read-only" in str(e) else FX_NO_SUCH_FILE
            raise SFTPError(code, str(e)) from None
        except FileNotFoundError:
            raise SFTPError(FX_NO_SUCH_FILE, "no such file") from None
        except PermissionError:
            raise SFTPError(FX_PERMISSION_DENIED, "permission denied") from None
        except OSError as e:
            raise SFTPError(FX_FAILURE, e.strerror or "failed") from None

    return wrapper


@implementer(filetransfer.ISFTPFile)
class JailedFile:
    def __init__(self, fd: int, writable: bool):
        self.fd = fd
        self.writable = writable

    def readChunk(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, min(length, MAX_CHUNK), offset)
        if not data:
            raise EOFError()
        return data

    def writeChunk(self, offset: int, data: bytes) -> None:
        if not self.writable:
            raise SFTPError(FX_PERMISSION_DENIED, "read-only")
        if offset + len(data) > MAX_FILE:
            raise SFTPError(FX_FAILURE, f"files here are at most {MAX_FILE // 2**20} MiB")
        os.pwrite(self.fd, data, offset)

    def close(self) -> None:
        os.close(self.fd)

    def getAttrs(self) -> dict[str, int]:
        return _attrs(os.fstat(self.fd))

    def setAttrs(self, attrs: Any) -> None:
        raise SFTPError(FX_OP_UNSUPPORTED, "attributes cannot be changed here")


class _Listing:
    def __init__(self, entries: list[tuple[str, os.stat_result]]):
        self.entries = iter(entries)

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> tuple[bytes, bytes, dict[str, int]]:
        name, st = next(self.entries)
        return name.encode("utf-8", "surrogateescape"), lsLine(name, st).encode(), _attrs(st)

    def close(self) -> None:
        pass


@implementer(filetransfer.ISFTPServer)
class JailedSFTP:
    """ISFTPServer for a L{portsuite_services.ssh.server.LabUser}: its shell's jail."""

    def __init__(self, avatar: Any):
        self.jail = avatar.shell.jail

    def _path(self, path: bytes) -> str:
        return self.jail.virtual("/", path.decode("utf-8", "surrogateescape"))

    def gotVersion(self, otherVersion: int, extData: Any) -> dict[bytes, bytes]:
        return {}

    @_jailed
    def openFile(self, filename: bytes, flags: int, attrs: Any) -> JailedFile:
        virtual = self._path(filename)
        wants_write = bool(flags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC))
        if wants_write:
            target = self.jail.writable_target(virtual)
            mode = os.O_RDWR if flags & FXF_READ else os.O_WRONLY
            if flags & FXF_CREAT:
                mode |= os.O_CREAT
            if flags & FXF_TRUNC:
                mode |= os.O_TRUNC
            if flags & FXF_EXCL:
                mode |= os.O_EXCL
            if flags & FXF_APPEND:
                mode |= os.O_APPEND
            fd = os.open(target, mode | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        else:
            fd = os.open(self.jail.real(virtual), os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SFTPError(FX_FAILURE, "not a regular file")
        return JailedFile(fd, wants_write)

    @_jailed
    def removeFile(self, filename: bytes) -> None:
        target = self.jail.writable_target(self._path(filename))
        os.remove(target)

    @_jailed
    def renameFile(self, oldpath: bytes, newpath: bytes) -> None:
        old = self.jail.writable_target(self._path(oldpath))
        new = self.jail.writable_target(self._path(newpath))
        os.rename(old, new)

    @_jailed
    def makeDirectory(self, path: bytes, attrs: Any) -> None:
        os.mkdir(self.jail.writable_target(self._path(path)), 0o755)

    @_jailed
    def removeDirectory(self, path: bytes) -> None:
        os.rmdir(self.jail.writable_target(self._path(path)))

    @_jailed
    def openDirectory(self, path: bytes) -> _Listing:
        return _Listing(self.jail.listing(self._path(path)))

    @_jailed
    def getAttrs(self, path: bytes, followLinks: bool) -> dict[str, int]:
        return _attrs(self.jail.real(self._path(path)).stat())

    def setAttrs(self, path: bytes, attrs: Any) -> None:
        raise SFTPError(FX_OP_UNSUPPORTED, "attributes cannot be changed here")

    def readLink(self, path: bytes) -> bytes:
        raise SFTPError(FX_OP_UNSUPPORTED, "links are not shown here")

    def makeLink(self, linkPath: bytes, targetPath: bytes) -> None:
        raise SFTPError(FX_PERMISSION_DENIED, "links cannot be made here")

    @_jailed
    def realPath(self, path: bytes) -> bytes:
        return self._path(path or b".").encode("utf-8", "surrogateescape")

    def extendedRequest(self, extendedName: bytes, extendedData: bytes) -> bytes:
        raise NotImplementedError
