"""
Cache validators and byte ranges (RFC 9110, 13 and 14): the comparisons behind
If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since and Range.
"""

from __future__ import annotations

from twisted.web import http


def parse_range(value: bytes, size: int) -> tuple[int, int] | None | bool:
    """
    One byte range of C{Range: bytes=…} (RFC 9110, 14.2).

    @return: (first, last) for one satisfiable range; False when the single range
        cannot be satisfied (416); None to ignore the header and send the whole file
        (bad syntax, another unit, or several ranges: several or overlapping ranges
        are not worth the multipart answer and its amplification risks).
    """
    unit, sep, spec = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition(b"-")
    if not dash:
        return None
    if not first_s:
        if not last_s.isdigit():
            return None
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            return False
        return (max(0, size - suffix), size - 1)
    if not first_s.isdigit() or (last_s and not last_s.isdigit()):
        return None
    first = int(first_s)
    last = int(last_s) if last_s else None
    if last is not None and last < first:
        return None
    if first >= size:
        # "bytes=N-" at or past the end too: curl -C - on a complete file stops here
        return False
    return (first, size - 1 if last is None else min(last, size - 1))


def etag_matches(header: bytes, etag: bytes, strong: bool = False) -> bool:
    """
    If-None-Match uses the weak comparison (RFC 9110, 13.1.2), If-Match the strong
    one (13.1.1): a weak tag never matches.
    """
    for tag in header.split(b","):
        tag = tag.strip()
        if tag == b"*":
            return True
        if strong:
            if tag == etag:
                return True
        elif tag.removeprefix(b"W/") == etag:
            return True
    return False


def http_date(value: bytes) -> int | None:
    try:
        return int(http.stringToDatetime(value.split(b";", 1)[0]))
    except (ValueError, IndexError, OverflowError):
        return None
