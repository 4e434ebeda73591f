"""
The mailboxes that smtp writes and pop3, imap and the dashboard read: one Maildir per
user (C{ROOT/USER/{tmp,new,cur}}, the format of qmail, Postfix, Dovecot and mutt), or
memory only when a service has no C{mailboxes} folder.

A delivery is atomic: the message is written to C{tmp/}, flushed to disk (fsync),
then renamed into C{new/}; a reader never sees half a message, and a kill -9 leaves
at most a file in C{tmp/}, which is never listed. The disk work runs in the
reactor's thread pool, so one large message never stalls the other clients.

Messages are kept with LF line ends on disk (as every Maildir does); the readers
(pop3, imap) send them with CRLF and count their sizes that way.

IMAP needs stable numbers (UIDs): they are given in arrival order when a mailbox is
first scanned and kept for the life of the process; UIDVALIDITY is the time the store
was opened, so a client resynchronises after a restart, as RFC 3501 allows.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# Maildir info flags (the part after ":2,"), and their IMAP names
FLAG_LETTERS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
IMAP_TO_LETTER = {v.lower(): k for k, v in FLAG_LETTERS.items()}
_counter = itertools.count(1)
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"


def valid_name(name: str) -> bool:
    """A mailbox name that is safe as a folder name (no '/', no leading dot)."""
    return bool(NAME.fullmatch(name))


def crlf(data: bytes) -> bytes:
    """A stored (LF) message as it goes on the wire (CRLF)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@attrs.define(eq=False)
class Message:
    """One message of a mailbox: its Maildir key, flags, size and arrival time."""

    key: str
    uid: int
    size: int  # octets on the wire (CRLF line ends)
    mtime: float
    flags: set[str] = attrs.field(factory=set)  # Maildir letters: S, R, F, D, T
    path: Path | None = None  # where it is now (Maildir only)
    data: bytes | None = None  # the message (memory store only)
    recent: bool = True


def _new_key() -> str:
    now = time.time()
    return f"{int(now)}.M{int(now * 1e6) % 1000000}P{os.getpid()}Q{next(_counter)}.{_HOST}"


class Mailbox:
    """One user's messages, in arrival order (UIDs ascending)."""

    def __init__(self, store: MailStore, name: str):
        self.store = store
        self.name = name
        self.messages: list[Message] = []
        self.by_key: dict[str, Message] = {}
        self.next_uid = 1
        self.listeners: list[Callable[[Mailbox], None]] = []

    @property
    def folder(self) -> Path | None:
        return None if self.store.root is None else self.store.root / self.name

    def _add(self, key: str, size: int, mtime: float, flags: set[str], **kw: Any) -> Message:
        msg = Message(key, self.next_uid, size, mtime, flags, **kw)
        self.next_uid += 1
        self.messages.append(msg)
        self.by_key[key] = msg
        return msg

    def scan(self) -> None:
        """Pick up what changed on disk (another program, a deleted file)."""
        folder = self.folder
        if folder is None:
            return
        found: list[tuple[float, str, Path, set[str]]] = []
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(folder / sub))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                key, _, info = entry.name.partition(":")
                flags = set(info[2:]) & set(FLAG_LETTERS) if info.startswith("2,") else set()
                try:
                    st = entry.stat()
                except OSError:
                    continue
                found.append((st.st_mtime, key, Path(entry.path), flags))
        seen = set()
        for mtime, key, path, flags in sorted(found):
            seen.add(key)
            msg = self.by_key.get(key)
            if msg is None:
                size = _wire_size(path)
                if size is None:
                    continue
                self._add(key, size, mtime, flags, path=path, recent=path.parent.name == "new")
            else:
                msg.path = path
                msg.flags = flags
        if len(seen) != len(self.messages):
            self.messages = [m for m in self.messages if m.key in seen]
            self.by_key = {m.key: m for m in self.messages}

    def read(self, msg: Message) -> bytes:
        """The message as stored (LF line ends); b"" if it vanished meanwhile."""
        if msg.data is not None:
            return msg.data
        if msg.path is None:
            return b""
        try:
            return msg.path.read_bytes()
        except OSError:
            return b""

    def set_flags(self, msg: Message, flags: Iterable[str]) -> None:
        """Store Maildir flags (renames new/KEY to cur/KEY:2,FLAGS on disk)."""
        letters = set(flags) & set(FLAG_LETTERS)
        msg.recent = False
        if msg.path is not None:
            target = msg.path.parent.parent / "cur" / f"{msg.key}:2,{''.join(sorted(letters))}"
            if target != msg.path:
                try:
                    os.rename(msg.path, target)
                    msg.path = target
                except OSError:
                    return
        msg.flags = letters

    def delete(self, msgs: Iterable[Message]) -> int:
        gone = 0
        for msg in list(msgs):
            if msg.path is not None:
                try:
                    os.unlink(msg.path)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
            if self.by_key.pop(msg.key, None) is not None:
                gone += 1
        self.messages = [m for m in self.messages if m.key in self.by_key]
        if gone:
            self.store.changed(self)
        return gone

    def clear(self) -> int:
        self.scan()
        return self.delete(self.messages)


def _wire_size(path: Path) -> int | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return len(crlf(data))


class MailStore:
    """
    Every mailbox of one C{mailboxes} folder (or of memory). smtp, pop3, imap and the
    dashboard of one suite share the same object: see L{store_for}.
    """

    def __init__(self, root: Path | None, reactor: Any):
        self.root = root
        self.reactor = reactor
        self.boxes: dict[str, Mailbox] = {}
        self.uidvalidity = int(time.time())
        self.version = 0  # bumped on every change; the dashboard polls it
        self.listeners: list[Callable[[Mailbox], None]] = []

    def mailbox(self, name: str) -> Mailbox:
        box = self.boxes.get(name)
        if box is None:
            box = self.boxes[name] = Mailbox(self, name)
        box.scan()
        return box

    def names(self) -> list[str]:
        names = set(self.boxes)
        if self.root is not None:
            try:
                for entry in os.scandir(self.root):
                    if entry.is_dir() and valid_name(entry.name):
                        names.add(entry.name)
            except OSError:
                pass
        return sorted(names)

    def changed(self, box: Mailbox) -> None:
        self.version += 1
        for listener in list(box.listeners) + list(self.listeners):
            try:
                listener(box)
            except Exception:  # a listener's bug must not undo a delivery
                from twisted.logger import Logger

                Logger(namespace="portsuite.mail").failure("mail listener failed")

    # -- delivery --------------------------------------------------------------

    def deliver(self, names: list[str], data: bytes) -> Any:
        """
        Store one message (LF line ends) in each named mailbox. Returns a Deferred
        that fires with the key once every copy is on disk (fsync'd and renamed into
        new/), or fails with the OSError.
        """
        from twisted.internet import defer

        key = _new_key()
        names = list(dict.fromkeys(names))
        if self.root is None:
            for name in names:
                self._arrived(name, key, data, None)
            return defer.succeed(key)
        from twisted.internet.threads import deferToThreadPool

        root = self.root
        d = deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), _write, root, names, key, data
        )

        def stored(paths: list[Path]) -> str:
            for name, path in zip(names, paths, strict=True):
                self._arrived(name, key, data, path)
            return key

        return d.addCallback(stored)

    def _arrived(self, name: str, key: str, data: bytes, path: Path | None) -> None:
        box = self.boxes.get(name)
        if box is None:
            box = self.boxes[name] = Mailbox(self, name)
            box.scan()  # picks the new file up too
        if key not in box.by_key:
            box._add(
                key,
                len(crlf(data)),
                time.time(),
                set(),
                path=path,
                data=data if path is None else None,
            )
        self.changed(box)


def _write(root: Path, names: list[str], key: str, data: bytes) -> list[Path]:
    """In a worker thread: tmp/KEY written and fsync'd, then renamed to new/KEY."""
    paths = []
    for name in names:
        box = root / name
        for sub in ("tmp", "new", "cur"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        tmp = box / "tmp" / key
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        new = box / "new" / key
        os.rename(tmp, new)
        paths.append(new)
    if paths:
        # the renames themselves reach the disk
        for path in paths:
            try:
                dfd = os.open(path.parent, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    return paths


_STORES: weakref.WeakValueDictionary[Any, MailStore] = weakref.WeakValueDictionary()


def store_for(root: Path | None, suite: Any, reactor: Any) -> MailStore:
    """
    The one store of a C{mailboxes} folder (every service naming the same folder
    shares it, so imap sees smtp's deliveries at once), or the suite's memory store
    when there is no folder.
    """
    key: Any = ("memory", id(suite)) if root is None else ("dir", str(Path(root).resolve()))
    store = _STORES.get(key)
    if store is None:
        store = MailStore(None if root is None else Path(root), reactor)
        _STORES[key] = store
    return store
