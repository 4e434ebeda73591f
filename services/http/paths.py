"""
Path safety of the http type: which URL paths may touch the file system at all.

  - the URL path is percent-decoded once, segment by segment; a segment that decodes
    to C{..}, C{.}, or that holds a slash, a backslash or a NUL is refused (400);
  - no dotfile or dot-folder is served (404), nor C{.rpy}/C{.epy} scripts (403);
  - the real path (symlinks resolved) must stay inside C{root} (L{inside}).
"""

from __future__ import annotations

import os
from urllib.parse import unquote_to_bytes

INDEX_FILES = ("index.html", "index.htm")
SCRIPT_SUFFIXES = (".rpy", ".epy")


class Refused(Exception):
    """A path we do not serve: C{code} and a reason for the page and the log."""

    def __init__(self, code: int, reason: str, location: bytes | None = None):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.location = location


def segments(raw: bytes) -> list[str]:
    """The decoded segments of a URL path. @raise Refused: for a path never served."""
    if raw[:7].lower() == b"http://" or raw[:8].lower() == b"https://":
        # absolute-form (RFC 9112, 3.2.2), as sent to proxies: keep the path
        parts = raw.split(b"/", 3)
        raw = b"/" + (parts[3] if len(parts) > 3 else b"")
    if not raw.startswith(b"/"):
        raise Refused(400, "the request target must start with /")
    out = []
    for part in raw[1:].split(b"/"):
        if not part:
            continue
        seg = unquote_to_bytes(part)
        if b"\x00" in seg or b"/" in seg or b"\\" in seg or seg in (b".", b".."):
            raise Refused(400, "the path tries to leave the served folder")
        if seg.startswith(b"."):
            raise Refused(404, "dotfiles are not served")
        out.append(os.fsdecode(seg))
    return out


def inside(root: str, real: str) -> bool:
    """Is the real path C{real} C{root} itself or below it, through no dot-folder?"""
    if real == root:
        return True
    if not real.startswith(root.rstrip(os.sep) + os.sep):
        return False
    rel = real[len(root) :].split(os.sep)
    return not any(p.startswith(".") for p in rel)
