"""
Redis 7 ACL users for kv: passwords and command/key/channel rules, as Redis's
C{ACL SETUSER} reads them (C{on off >pass <pass #hash !hash nopass resetpass
+cmd -cmd +@cat -@cat +cmd|sub allcommands nocommands ~pat %R~pat %W~pat allkeys
resetkeys &pat allchannels resetchannels reset}).

The C{default} user is what every connection starts as. While it may run
everything (the usual case), the dispatch path checks nothing: only a client
logged in as a restricted user has its commands checked (L{User.denies}).

A user may hold any number of key and channel patterns (a client can send a
SETUSER of a million): they are compiled once and indexed (L{Patterns}), so a
check looks at the patterns that could match the key, not all of them; SETUSER
applies its rules a piece at a time (L{User.apply_steps}, in slices when big:
security.py), and the user's descriptions (ACL GETUSER, ACL LIST) are built then.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, TypeVar

from portsuite.api.i18n import gettext as _
from portsuite_services.kv import glob, keyspecs
from portsuite_services.kv.bigwork import run_through
from portsuite_services.kv.resp import RAW


def _load_categories() -> tuple[list[str], dict[str, list[str]]]:
    """redis-server 7.0's ACL CAT answers: the categories, and each command's."""
    try:
        data = json.loads(
            Path(__file__).with_name("commands").joinpath("acl_categories.json").read_text()
        )
    except (OSError, ValueError):  # pragma: no cover - shipped with the package
        return [], {}
    return data["categories"], data["commands"]


CATEGORIES, REDIS_CATEGORIES = _load_categories()

T = TypeVar("T")
Steps = Generator[None, None, T]
RULES_PIECE = 512  # SETUSER rules applied a step (about a millisecond)
RULE_BYTES = 8  # and a rule counts as one more for every so many of its bytes (its pattern's)
TEXT_PIECE = 4096  # patterns described a step
CHECK_PIECE = 2048  # keys or channels of one command checked a step (about a millisecond)


# -- tables of a million rules ----------------------------------------------------

TABLE_AT = 4096  # entries past which a table is cut into FAN dicts by hash
FAN = 257  # (a prime: a part's keys keep varied low hash bits, as in sharded.py)


class Table:
    """
    A dict of a user's rules that neither grows nor is copied by a million at once:
    a plain dict while small; past L{TABLE_AT} entries, L{FAN} dicts by hash, so a
    resize copies a part (a dict of a million rules took 50-90 ms to grow, a SETUSER
    step). A copy (SETUSER works on one) shares the parts until it writes one (copy
    on write, a part at a time). C{ordered}: iterated in insertion order (ACL
    GETUSER's), kept in a list beside; else the parts' order.
    """

    __slots__ = ("small", "parts", "mine", "order", "size")

    def __init__(self, ordered: bool = False) -> None:
        self.small: dict[Any, Any] | None = {}
        self.parts: list[dict[Any, Any]] = []
        self.mine: set[int] | None = None  # parts written since copied (None: all)
        self.order: list[Any] | None = [] if ordered else None
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __contains__(self, key: object) -> bool:
        small = self.small
        if small is not None:
            return key in small
        return key in self.parts[hash(key) % FAN]

    def get(self, key: Any, default: Any = None) -> Any:
        small = self.small
        if small is not None:
            return small.get(key, default)
        return self.parts[hash(key) % FAN].get(key, default)

    def __setitem__(self, key: Any, value: Any) -> None:
        small = self.small
        if small is not None:
            if self.mine is not None:  # (a copy's first write: its own dict)
                small = self.small = dict(small)
                self.mine = None
            new = key not in small
            small[key] = value
            if new and len(small) > TABLE_AT:
                self._fan()
        else:
            i = hash(key) % FAN
            part = self.parts[i]
            if self.mine is not None and i not in self.mine:
                part = self.parts[i] = dict(part)
                self.mine.add(i)
            new = key not in part
            part[key] = value
        if new:
            self.size += 1
            if self.order is not None:
                self.order.append(key)

    def _fan(self) -> None:
        parts: list[dict[Any, Any]] = [{} for _ in range(FAN)]
        assert self.small is not None
        for k, v in self.small.items():
            parts[hash(k) % FAN][k] = v
        self.parts, self.small = parts, None

    def __iter__(self) -> Iterator[Any]:
        if self.order is not None:
            return iter(self.order)
        if self.small is not None:
            return iter(self.small)
        return chain.from_iterable(self.parts)

    def items(self) -> Iterator[tuple[Any, Any]]:
        if self.order is not None:
            return ((k, self.get(k)) for k in self.order)
        if self.small is not None:
            return iter(self.small.items())
        return chain.from_iterable(p.items() for p in self.parts)

    def copy(self) -> Table:
        t = Table()
        t.small = self.small
        t.parts = list(self.parts)
        t.mine = set()
        t.order = None if self.order is None else list(self.order)
        t.size = self.size
        return t

    def containers(self) -> list[Any]:
        """What holds its entries (freed by lazyfree a piece at a time)."""
        out: list[Any] = [] if self.order is None else [self.order]
        return out + ([self.small] if self.small is not None else self.parts)


# -- patterns, compiled and indexed -------------------------------------------------

READ, WRITE = 1, 2  # what a key pattern allows (%R~, %W~; ~ is both)
# by what a check needs (0, READ, WRITE, both): the patterns that serve it, as bits 1 << mask
_SERVES = (0b1110, 0b1010, 0b1100, 0b1000)


def _cuts() -> list[int]:
    out, n = [], 1
    while n < 1 << 32:
        out += [n, n + n // 2] if n >= 2 else [n]
        n *= 2
    return out


CUTS = _cuts()  # 1 2 3 4 6 8 12 16 24…: where a literal prefix is cut to be indexed
CUT_MAX = 4096  # (a literal prefix or suffix of megabytes: indexed by its first 3,072 bytes)
_SPECIAL = re.compile(rb"[*?[\\]")
# Redis refuses a key or channel pattern holding an isspace byte or a NUL (ACLStringHasSpaces)
_BLANK = re.compile(rb"[ \t\n\v\f\r\0]").search


RUN = 4  # bytes of a literal run inside a pattern (C{*abc*}) by which it is indexed, at most
LONG = 4096  # a name this long costs a unit of check work per LONG bytes matched
FIRST = 16  # a pattern of no literal byte starting with a class this small: indexed by it
LOOSE = CHECK_PIECE  # patterns with no literal byte (not mere lengths) past which a check is sliced
PIECE = glob.TOKENS_PIECE  # tokens of one pattern looked at a step as it is added


def _literal(tok: object) -> bool:
    return type(tok) is int and tok >= 0


def _loose_form(toks: tuple[object, ...]) -> Steps[tuple[object, ...]]:
    """C{toks} with each run of C{*} and C{?} written C{?…?*} (C{*?*}, C{?*}, C{**?}: one form)."""
    out: list[object] = []
    anys, star = 0, False
    for i, t in enumerate((*toks, None), 1):
        if not i % PIECE:
            yield
        if t == glob.ANY:
            anys += 1
        elif t == glob.STAR:
            star = True
        else:
            out += [glob.ANY] * anys + ([glob.STAR] if star else [])
            anys, star = 0, False
            if t is not None:
                out.append(t)
    return tuple(out)


class Patterns:
    """
    Glob patterns (Redis's C{stringmatchlen}, glob.py), each with what it allows,
    compiled once and indexed, so that a check tries only the patterns that may match:
    a literal pattern is found in a dict; the others by their literal prefix, cut to the
    longest of L{CUTS} it has (a key's prefixes of those few lengths are looked up);
    C{prefix*} then matches at once, anything else is matched token by token. A
    pattern starting with a wildcard is indexed the same way by its literal suffix
    (C{*:x}: a key's suffixes are looked up), else by the first L{RUN} bytes of its
    longest literal run (C{*x12*}: every such piece of the key is looked up, so a
    check costs the key's length, not the number of patterns). Patterns with no
    literal byte at all are grouped: those of C{*} and C{?} only say a length
    (C{*?*}: at least one byte, C{??}: two), one number or a dict lookup; the others
    (C{[ab]*}, C{[a-c]?}) are written in one form (C{*?[a]} as C{?*[a]}); those
    starting with a class of up to L{FIRST} bytes are indexed by each of them (a
    key's first byte is looked up), the rest deduplicated and tried one by one, a
    check of many of them in slices (L{match_steps}).
    Shared by the copies of a user until one adds a pattern (copy on write).
    """

    __slots__ = (
        "exact",
        "prefixed",
        "lengths",
        "suffixed",
        "suffix_lengths",
        "inner",
        "inner_lengths",
        "at_least",
        "sized",
        "loose",
        "first",
        "firsts",
        "mine",
        "count",
    )

    def __init__(self) -> None:
        self.exact = Table()  # literal -> bits of the masks it comes with
        # a cut prefix -> (bit, matcher): None (matches), the prefix to start with, or tokens
        self.prefixed = Table()
        self.lengths: list[int] = []  # the cut lengths in use, ascending
        # a cut literal suffix -> (bit, None (C{*suffix}: matches) or tokens), the same
        self.suffixed = Table()
        self.suffix_lengths: list[int] = []
        # the start of a literal run inside (C{*abc*}) -> (bit, tokens); its lengths (<= RUN)
        self.inner = Table()
        self.inner_lengths: list[int] = []
        # no literal byte: of C{*} and C{?} only, bit -> the least length / length -> bits;
        # the others, in their L{_loose_form} -> bits
        self.at_least: dict[int, int] = {}
        self.sized: dict[int, int] = {}
        self.loose = Table()  # (a million of them: no dict grown or copied at once)
        # those starting with a small class (C{[ab]*}): each of its bytes -> (bit, form)
        self.first = Table()
        self.firsts = 0  # patterns in it
        self.mine: Table | None = None  # buckets this copy owns, (which, key) (None: all)
        self.count = 0

    def copy(self) -> Patterns:
        p = Patterns()
        p.exact = self.exact.copy()
        p.prefixed = self.prefixed.copy()  # (its lists copied when added to)
        p.lengths = list(self.lengths)
        p.suffixed = self.suffixed.copy()
        p.suffix_lengths = list(self.suffix_lengths)
        p.inner = self.inner.copy()
        p.inner_lengths = list(self.inner_lengths)
        p.at_least = dict(self.at_least)
        p.sized = dict(self.sized)
        p.loose = self.loose.copy()
        p.first = self.first.copy()
        p.firsts = self.firsts
        p.mine = Table()
        p.count = self.count
        return p

    def add(self, pattern: bytes, mask: int) -> None:
        if not self._add_plain(pattern, mask):
            deque(self._add_tokens(pattern, 1 << mask), 0)

    def add_steps(self, pattern: bytes, mask: int) -> Steps[None]:
        """L{add}, yielding every L{glob.TOKENS_PIECE} bytes or tokens (a pattern of megabytes)."""
        if not self._add_plain(pattern, mask):
            yield from self._add_tokens(pattern, 1 << mask)

    def _add_plain(self, pattern: bytes, mask: int) -> bool:
        """A name or C{prefix*} (no tokens to make: most patterns of a long list): False if not."""
        bit = 1 << mask
        self.count += 1
        special = _SPECIAL.search(pattern)
        if special is None:  # a key's name
            self.exact[pattern] = self.exact.get(pattern, 0) | bit
            return True
        n = special.start()
        if pattern.count(b"*", n) != len(pattern) - n:
            return False
        if not n:  # C{*}: any name but the empty one (L{match_steps})
            self.at_least[bit] = 0
            return True
        cut = CUTS[bisect_right(CUTS, min(n, CUT_MAX)) - 1]
        matcher = None if cut == n else pattern[:n]
        self._put(0, self.prefixed, self.lengths, pattern[:cut], (bit, matcher))
        return True

    def _add_tokens(self, pattern: bytes, bit: int) -> Steps[None]:
        """The other patterns, by their tokens: a literal prefix, suffix or run, or none."""
        toks = yield from glob.tokens_steps(pattern)  # (not the small shared cache)
        n = 0
        for t in toks:
            if not _literal(t):  # (STAR, ANY, a class)
                break
            n += 1
            if not n % PIECE:
                yield
        if n == len(toks):  # escapes only: the name they make
            lit = bytes(toks)  # type: ignore[arg-type]  # (all ints, as just seen)
            self.exact[lit] = self.exact.get(lit, 0) | bit
            return
        if n == 0 and (yield from self._add_inside(toks, bit)):
            return
        if n == 0:  # no literal byte at all
            yield from self._add_loose(toks, bit)
            return
        cut = CUTS[bisect_right(CUTS, min(n, CUT_MAX)) - 1]
        prefix = bytes(toks[:cut])  # type: ignore[arg-type]
        matcher = None if len(toks) == cut + 1 and toks[cut] == glob.STAR else toks
        self._put(0, self.prefixed, self.lengths, prefix, (bit, matcher))

    def _add_inside(self, toks: tuple[object, ...], bit: int) -> Steps[bool]:
        """A pattern starting with a wildcard, by its literal suffix or run: False if it has none."""
        end = len(toks)
        j = end
        while j and _literal(toks[j - 1]):
            j -= 1
            if not j % PIECE:
                yield
        best, at, start = 0, 0, -1
        for i in range(j):  # the longest literal run before the suffix (the first such)
            if _literal(toks[i]):
                if start < 0:
                    start = i
                if i + 1 - start > best:
                    best, at = i + 1 - start, start
            else:
                start = -1
            if not (i + 1) % PIECE:
                yield
        tail = end - j
        if tail and tail >= min(best, RUN):
            cut = CUTS[bisect_right(CUTS, min(tail, CUT_MAX)) - 1]
            matcher = None if toks[:j] == (glob.STAR,) and cut == tail else toks
            suffix = bytes(toks[end - cut :])  # type: ignore[arg-type]
            self._put(1, self.suffixed, self.suffix_lengths, suffix, (bit, matcher))
            return True
        if best:
            k = min(best, RUN)
            run = bytes(toks[at : at + k])  # type: ignore[arg-type]
            self._put(2, self.inner, self.inner_lengths, run, (bit, toks))
            return True
        return False

    def _add_loose(self, toks: tuple[object, ...], bit: int) -> Steps[None]:
        form = yield from _loose_form(toks)
        last = form[-1]
        if last in (glob.ANY, glob.STAR) and form.count(glob.ANY) + (last == glob.STAR) == len(
            form
        ):
            if form[-1] == glob.STAR:  # at least so many bytes
                least = len(form) - 1
                self.at_least[bit] = min(least, self.at_least.get(bit, least))
            else:  # exactly so many
                self.sized[len(form)] = self.sized.get(len(form), 0) | bit
        elif type(form[0]) is tuple and not form[0][1] and len(form[0][0]) <= FIRST:
            self.firsts += 1
            for b in form[0][0]:
                self._put(3, self.first, [], bytes((b,)), (bit, form))
        else:
            self.loose[form] = self.loose.get(form, 0) | bit

    @property
    def patterned(self) -> bool:
        """Does it hold a pattern that is not a mere name or length?"""
        return bool(self.prefixed or self.suffixed or self.inner or self.loose or self.first)

    @property
    def heavy(self) -> bool:
        """Are there so many patterns to try one by one that a check goes in slices?"""
        return len(self.loose) + self.firsts > LOOSE

    def _put(
        self,
        which: int,
        index: Table,
        lengths: list[int],
        key: bytes,
        entry: tuple[int, Any],
    ) -> None:
        """C{entry} into C{index}'s bucket C{key} (copied first if this copy does not own it)."""
        bucket = index.get(key)
        if bucket is None:
            bucket = index[key] = []
            if len(key) not in lengths:
                lengths.append(len(key))
                lengths.sort()
        elif self.mine is not None and (which, key) not in self.mine:
            bucket = index[key] = list(bucket)
        if self.mine is not None:
            self.mine[(which, key)] = True
        bucket.append(entry)

    def match(self, s: bytes, need: int) -> bool:
        """Does a pattern allowing at least C{need} (READ|WRITE bits) match C{s}?"""
        return run_through(self.match_steps(s, need))

    def match_steps(self, s: bytes, need: int) -> Steps[bool]:
        """L{match}, yielding every L{CHECK_PIECE} units of work (a pattern, LONG bytes)."""
        serves = _SERVES[need]
        if self.exact.get(s, 0) & serves:
            return True
        size = len(s)
        if not size:  # (stringmatchlen: an empty name matches the empty pattern only)
            return False
        for bit, least in self.at_least.items():
            if bit & serves and size >= least:
                return True
        if self.sized.get(size, 0) & serves:
            return True
        tried = self._tried
        for index, lengths, tail in (
            (self.prefixed, self.lengths, False),
            (self.suffixed, self.suffix_lengths, True),
        ):
            for cut in lengths:
                if cut > size:
                    break
                bucket = index.get(s[size - cut :] if tail else s[:cut])
                if bucket is not None and (yield from tried(bucket, s, serves)):
                    return True
        if self.inner and (yield from self._inside(s, serves)):
            return True
        bucket = self.first.get(s[:1])
        if bucket is not None and (yield from tried(bucket, s, serves)):
            return True
        return (yield from tried(((b, f) for f, b in self.loose.items()), s, serves))

    @staticmethod
    def _tried(entries: Iterable[tuple[int, Any]], s: bytes, serves: int) -> Steps[bool]:
        """
        Does one of C{entries} (bit, matcher: None, a literal prefix or tokens) that
        allows C{serves} match C{s}? Yields every L{CHECK_PIECE} units of work.
        """
        unit = 1 + len(s) // LONG
        work = 0
        match = glob.matches
        for bit, m in entries:
            if bit & serves and (
                m is None or (s.startswith(m) if type(m) is bytes else match(m, s))
            ):
                return True
            work += unit
            if work >= CHECK_PIECE:
                work = 0
                yield
        return False

    def _inside(self, s: bytes, serves: int) -> Steps[bool]:
        """The patterns indexed by a literal run that C{s} holds, in slices."""
        inner = self.inner
        tried = self._tried
        size = len(s)
        unit = 1 + size // LONG
        work = 0
        if len(inner) * 64 < size:  # a long name, few runs: each run looked for (in C)
            for run in list(inner):
                if run in s and (yield from tried(inner.get(run), s, serves)):
                    return True
                work += unit
                if work >= CHECK_PIECE:
                    work = 0
                    yield
            return False
        for k in self.inner_lengths:
            if k > size:
                break
            seen: set[bytes] = set()
            for i in range(size - k + 1):
                run = s[i : i + k]
                bucket = inner.get(run)
                if bucket is not None and run not in seen:
                    seen.add(run)
                    if (yield from tried(bucket, s, serves)):
                        return True
                    work += unit * len(bucket)
                work += 1
                if work >= CHECK_PIECE:
                    work = 0
                    yield
        return False


def _need(flags: list[str]) -> int:
    """Redis's C{ACLSelectorCheckKey}: the permissions a key's flags need."""
    need = READ if "access" in flags else 0
    if "insert" in flags or "delete" in flags or "update" in flags:
        need |= WRITE
    return need


class ACLError(Exception):
    """A bad rule; C{str(e)} is Redis's reason (after C{Error in ACL SETUSER modifier})."""


def command_categories(cmd: Any) -> list[str]:
    """The ACL categories of a kv command (Redis's own, else from its flags)."""
    cats = REDIS_CATEGORIES.get(cmd.fullname)
    if cats is not None:
        return cats
    flags = cmd.flags
    out = []
    if "write" in flags:
        out.append("write")
    if "readonly" in flags:
        out.append("read")
    if "admin" in flags:
        out += ["admin", "dangerous"]
    out.append("fast" if "fast" in flags else "slow")
    group = {"pubsub": "pubsub", "connection": "connection", "transactions": "transaction"}.get(
        cmd.group
    )
    if group:
        out.append(group)
    return out


def all_commands() -> list[Any]:
    """Every command and subcommand of kv's table (COMMAND's universe)."""
    from portsuite_services.kv.commands import COMMANDS

    out = []
    for cmd in COMMANDS.values():
        out.append(cmd)
        out.extend(cmd.subcommands.values())
    return out


_BY_CATEGORY: dict[str, frozenset[str]] = {}
_ALL: list[frozenset[str]] = []


def category_names(cat: str) -> frozenset[str]:
    """The full names of kv's commands in an ACL category (computed once)."""
    if not _BY_CATEGORY:
        found: dict[str, set[str]] = {c: set() for c in CATEGORIES}
        for cmd in all_commands():
            for c in command_categories(cmd):
                found.setdefault(c, set()).add(cmd.fullname)
        _BY_CATEGORY.update((k, frozenset(v)) for k, v in found.items())
    return _BY_CATEGORY.get(cat, frozenset())


def every_name() -> frozenset[str]:
    if not _ALL:
        _ALL.append(frozenset(c.fullname for c in all_commands()))
    return _ALL[0]


def sha256_hex(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _valid_hash(h: str) -> bool:
    return len(h) == 64 and all(ch in "0123456789abcdef" for ch in h)


class User:
    """One ACL user. C{allowed} holds the full names (C{get}, C{config|get}) it may run."""

    def __init__(self, name: str):
        self.name = name
        self.enabled = False
        self.nopass = False
        self.sanitize = False
        self.passwords: list[str] = []  # sha256 hex, in the order given
        self.allowed: set[str] = set()
        self.first_args: dict[str, set[bytes]] = {}  # +get|x: the command with that argument
        self.all_commands = False
        self.cmd_rules: dict[str, str] = {}  # the description after the base: body -> rule
        # pattern -> READ|WRITE, in the order first given (%R~a then %W~a: ~a, as Redis)
        self.keys = Table(ordered=True)
        self.all_keys = False
        self.channels = Table(ordered=True)
        self.all_channels = False
        self.unrestricted = False
        self.key_patterns = Patterns()  # self.keys, indexed (what checks use)
        self.channel_patterns = Patterns()
        self.own_patterns = True  # False: a copy's, shared with the user it was copied from
        self.texts: tuple[str, str, str] | None = None  # commands, keys, channels
        self.line: str | None = None  # ACL LIST's (made when first asked: 16 MB for a big user)
        # patterns longer than glob.TOKENS_PIECE, added by apply_steps in slices
        self.big: list[tuple[Patterns, bytes, int]] = []

    def copy(self) -> User:
        """A copy to change (SETUSER applies all its rules or none)."""
        u = User(self.name)
        u.__dict__.update(self.__dict__)
        u.passwords = list(self.passwords)
        u.allowed = set(self.allowed)
        u.first_args = {k: set(v) for k, v in self.first_args.items()}
        u.cmd_rules = dict(self.cmd_rules)
        u.keys = self.keys.copy()
        u.channels = self.channels.copy()
        u.own_patterns = False
        u.big = []
        return u

    def _own(self) -> None:
        """Before a pattern is added: this user's own indexes, no longer its original's."""
        if not self.own_patterns:
            self.key_patterns = self.key_patterns.copy()
            self.channel_patterns = self.channel_patterns.copy()
            self.own_patterns = True

    def parts(self) -> list[Any]:
        """Its big containers (a deleted user's, freed in slices by lazyfree)."""
        out: list[Any] = [self.allowed, self.cmd_rules, self.first_args]
        for p in (self.key_patterns, self.channel_patterns):
            for t in (p.exact, p.prefixed, p.suffixed, p.inner, p.loose, p.first):
                out += t.containers()
        out += self.keys.containers() + self.channels.containers()
        return out

    @property
    def open(self) -> bool:
        """Is a new connection logged in as this user without AUTH (default, nopass)?"""
        return self.enabled and self.nopass

    # -- rules --------------------------------------------------------------------

    def apply(self, rules: list[bytes]) -> None:
        """Apply SETUSER rules in order; raises L{ACLError} (with the rule) at the first bad one."""
        deque(self.apply_steps(rules), 0)

    def apply_steps(self, rules: list[bytes], start: int = 0) -> Generator[None, None, None]:
        """
        L{apply} (of C{rules[start:]}: SETUSER's argv, not copied), yielding every
        L{RULES_PIECE} rules, then the descriptions, built.
        """
        self.texts = self.line = None
        apply = self._apply
        work = 0
        for raw in islice(rules, start, None):
            try:
                apply(raw)
            except ACLError as e:  # (the rule as a C string: up to a NUL; its bytes as given)
                text = raw.split(b"\0", 1)[0].decode("utf-8", RAW)
                raise ACLError(f"Error in ACL SETUSER modifier '{text}': {e}") from None
            while self.big:  # (a pattern of megabytes: 1-3 s of tokens in one step)
                patterns, pat, mask = self.big.pop()
                yield from patterns.add_steps(pat, mask)
            work += 1 + len(raw) // RULE_BYTES
            if work >= RULES_PIECE:
                work = 0
                yield
        yield
        self.unrestricted = (
            len(self.allowed) >= len(every_name())
            and self.all_keys
            and self.all_channels
            and self.enabled
        )
        keys = yield from _joined(self.keys, partial(_key_text, self.keys))
        channels = yield from _joined(self.channels, _channel_text)
        commands = yield from _joined(
            self.cmd_rules.values(), str, "+@all" if self.all_commands else "-@all"
        )
        self.texts = (commands, keys, channels)

    def _apply(self, raw: bytes) -> None:
        first = raw[:1]
        if first == b"~":  # (the usual rules of a long list first, before any decoding)
            self._key_rule(raw)
            return
        if first == b"&":
            self._channel_rule(raw[1:])
            return
        if first == b"%":
            self._key_rule(raw)
            return
        r = raw.decode("utf-8", "replace")
        low = r.lower()
        if low == "on":
            self.enabled = True
        elif low == "off":
            self.enabled = False
        elif low == "nopass":
            self.nopass = True
            self.passwords = []
        elif low == "resetpass":
            self.nopass = False
            self.passwords = []
        elif low in ("skip-sanitize-payload", "sanitize-payload"):
            self.sanitize = low == "sanitize-payload"
        elif low == "allkeys":
            self._all_keys()
        elif low == "resetkeys":
            self._reset_keys()
        elif low == "allchannels":
            self._all_channels()
        elif low == "resetchannels":
            self._reset_channels()
        elif low in ("allcommands", "+@all"):
            self._base(True)
        elif low in ("nocommands", "-@all"):
            self._base(False)
        elif low == "reset":
            self.passwords = []
            self.nopass = False
            self.enabled = False
            self.sanitize = True
            self._reset_keys()
            self._reset_channels()
            self._base(False)
        elif r.startswith(">"):
            h = sha256_hex(raw[1:])
            if h not in self.passwords:
                self.passwords.append(h)
            self.nopass = False
        elif r.startswith("<"):
            h = sha256_hex(raw[1:])
            if h not in self.passwords:
                raise ACLError("The password you are trying to remove from the user does not exist")
            self.passwords.remove(h)
        elif r.startswith("#") or r.startswith("!"):
            h = r[1:]
            if not _valid_hash(h):
                raise ACLError(
                    "The password hash must be exactly 64 characters and contain only "
                    "lowercase hexadecimal characters"
                )
            if r[0] == "#":
                if h not in self.passwords:
                    self.passwords.append(h)
                self.nopass = False
            else:
                if h not in self.passwords:
                    raise ACLError(
                        "The password you are trying to remove from the user does not exist"
                    )
                self.passwords.remove(h)
        elif r.startswith("+") or r.startswith("-"):
            self._command_rule(r[0] == "+", low[1:])
        elif r.startswith("("):
            raise ACLError("selectors are not supported by kv")
        else:
            raise ACLError("Syntax error")

    def _reset_keys(self) -> None:
        self.all_keys = False
        self.keys = Table(ordered=True)
        self.key_patterns = Patterns()

    def _all_keys(self) -> None:
        self._reset_keys()
        self.all_keys = True
        self.keys[b"*"] = READ | WRITE
        self.key_patterns.add(b"*", READ | WRITE)

    def _reset_channels(self) -> None:
        self.all_channels = False
        self.channels = Table(ordered=True)
        self.channel_patterns = Patterns()

    def _all_channels(self) -> None:
        self._reset_channels()
        self.all_channels = True
        self.channels[b"*"] = None
        self.channel_patterns.add(b"*", READ)

    def _channel_rule(self, pat: bytes) -> None:
        if pat == b"*":
            self._all_channels()
        elif self.all_channels:  # (Redis 7.0: an error, and the SETUSER changes nothing)
            raise ACLError(
                "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid "
                "and does not have any effect. Try 'resetchannels' to start with an empty list "
                "of channels"
            )
        elif pat not in self.channels:
            if _BLANK(pat) is not None:
                raise ACLError("Syntax error")
            self.channels[pat] = None
            self._own()
            self._add(self.channel_patterns, pat, READ)

    def _key_rule(self, raw: bytes) -> None:
        if raw == b"~*":
            self._all_keys()
            return
        if self.all_keys:  # (Redis 7.0: whatever the rest of the rule, %RW~* and %X~x too)
            raise ACLError(
                "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and "
                "does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
            )
        if raw.startswith(b"~"):
            read = write = True
            pat = raw[1:]
        else:
            tilde = raw.find(b"~")
            flags = raw[1:tilde].upper() if tilde > 0 else b""
            if tilde < 0 or not flags or any(f not in b"RW" for f in flags):
                raise ACLError("Syntax error")
            read, write = b"R" in flags, b"W" in flags
            pat = raw[tilde + 1 :]
        if _BLANK(pat) is not None:
            raise ACLError("Syntax error")
        had = self.keys.get(pat, 0)
        mask = had | (READ if read else 0) | (WRITE if write else 0)
        if mask != had:  # (a pattern given again adds its rights to the first, as Redis)
            self.keys[pat] = mask
            self._own()
            self._add(self.key_patterns, pat, mask)

    def _add(self, patterns: Patterns, pat: bytes, mask: int) -> None:
        if len(pat) > glob.TOKENS_PIECE:
            self.big.append((patterns, pat, mask))
        else:
            patterns.add(pat, mask)

    def _base(self, allow: bool) -> None:
        self.all_commands = allow
        self.cmd_rules = {}
        self.first_args = {}
        self.allowed = set(every_name()) if allow else set()

    def _command_rule(self, allow: bool, what: str) -> None:
        from portsuite_services.kv.commands import COMMANDS

        sign = "+" if allow else "-"
        if what.startswith("@"):
            cat = what[1:]
            if cat not in CATEGORIES:
                raise ACLError("Unknown command or category name in ACL")
            names = category_names(cat)
        else:
            parts = what.split("|")
            top = COMMANDS.get(parts[0].encode())
            if top is None and len(parts) <= 2 and what in REDIS_CATEGORIES:
                # a Redis command kv does not have (CLUSTER…): allowed or not, it cannot run
                self._describe(sign + what)
                return
            if top is None or len(parts) > 2:
                if top is not None and len(parts) > 2:
                    raise ACLError("Allowing first-arg of a subcommand is not supported")
                raise ACLError("Unknown command or category name in ACL")
            if len(parts) == 1:
                names = frozenset({top.fullname} | {s.fullname for s in top.subcommands.values()})
            elif top.subcommands:
                sub = top.subcommands.get(parts[1].encode())
                if sub is None:
                    raise ACLError("Unknown command or category name in ACL")
                names = frozenset({sub.fullname})
            else:  # +select|0: that command with that first argument only
                if not allow:
                    raise ACLError("Syntax error")
                self.first_args.setdefault(top.fullname, set()).add(parts[1].encode())
                self._describe(sign + what)
                return
        if allow:
            self.allowed |= names
        else:
            self.allowed -= names
            for n in names:
                self.first_args.pop(n, None)
        self._describe(sign + what)

    def _describe(self, rule: str) -> None:
        # a later rule on the same thing replaces an earlier one (ACL LIST stays short)
        body = rule[1:]
        self.cmd_rules.pop(body, None)
        self.cmd_rules[body] = rule

    # -- checks ----------------------------------------------------------------------

    def check_password(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.nopass:
            return True
        h = sha256_hex(password)
        ok = False
        for p in self.passwords:
            ok |= hmac.compare_digest(h, p)
        return ok

    def denies(self, cmd: Any, argv: list[bytes]) -> tuple[str, str] | None:
        """
        None when this user may run C{argv}, else C{(reason, object)}: reason is
        C{command}, C{key} or C{channel}, as in ACL LOG.
        """
        return run_through(self.denies_steps(cmd, argv))

    def denies_steps(self, cmd: Any, argv: list[bytes]) -> Steps[tuple[str, str] | None]:
        """L{denies}, yielding every L{CHECK_PIECE} keys or channels checked (a SUBSCRIBE of a million)."""
        if cmd.noauth:  # AUTH, HELLO, QUIT, RESET: always allowed, as in Redis
            return None
        name = cmd.fullname
        if name not in self.allowed:
            firsts = self.first_args.get(name)
            if firsts is None or len(argv) < 2 or argv[1].lower() not in firsts:
                return ("command", name)
        if not self.all_keys:
            n = 0
            for key, flags in keyspecs.acl_keys(cmd, argv):
                if not (yield from self.key_patterns.match_steps(key, _need(flags))):
                    return ("key", key.decode("utf-8", RAW))
                n += 1
                if n == CHECK_PIECE:
                    n = 0
                    yield
        if not self.all_channels:
            top = cmd.name if cmd.parent is None else ""
            if top in ("publish", "spublish"):
                chans, pattern = argv[1:2], False
            elif top in ("subscribe", "ssubscribe"):
                chans, pattern = argv[1:], False
            elif top == "psubscribe":
                chans, pattern = argv[1:], True
            else:
                chans, pattern = [], False
            for lo in range(0, len(chans), CHECK_PIECE):
                if lo:
                    yield
                for ch in chans[lo : lo + CHECK_PIECE]:
                    if pattern:  # PSUBSCRIBE: a pattern the user has, as it is
                        if ch not in self.channels:
                            return ("channel", ch.decode("utf-8", RAW))
                    elif not (yield from self.channel_patterns.match_steps(ch, 0)):
                        return ("channel", ch.decode("utf-8", RAW))
        return None

    def slow_check(self, argv: list[bytes]) -> bool:
        """
        Might checking C{argv} hold kv for long though it has few arguments: patterns by
        the thousand tried one by one (L{Patterns.heavy}), or a long name matched?
        """
        k, c = self.key_patterns, self.channel_patterns
        if (not self.all_keys and k.heavy) or (not self.all_channels and c.heavy):
            return True
        return max(map(len, argv)) > LONG * 4 and (k.patterned or c.patterned)

    def full_key_access(self, read: bool = True, write: bool = False) -> bool:
        """Redis's C{ACLSelectorHasUnrestrictedKeyAccess}: a C{*} pattern with those rights."""
        if self.all_keys:
            return True
        has = self.keys.get(b"*", 0)
        need = (READ if read else 0) | (WRITE if write else 0)
        return bool(has) and has & need == need

    # -- descriptions (built once a SETUSER is applied: L{apply_steps}) ----------------

    def _described(self) -> tuple[str, str, str]:
        if self.texts is None:
            deque(self.apply_steps([]), 0)
        assert self.texts is not None
        return self.texts

    def commands_text(self) -> str:
        return self._described()[0]

    def keys_text(self) -> str:
        return self._described()[1]

    def channels_text(self) -> str:
        return self._described()[2]

    def flags(self) -> list[str]:
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.sanitize:
            out.append("sanitize-payload")
        return out

    def describe(self) -> str:
        """The ACL LIST line (aclfile syntax)."""
        if self.line is None:
            self.line = self._line(*self._described())
        return self.line

    def _line(self, commands: str, keys: str, channels: str) -> str:
        parts = ["user", self.name, *self.flags()]
        parts += ["#" + p for p in self.passwords]
        if self.keys:
            parts.append(keys)
        if self.all_channels:
            parts.append(channels)
        else:  # (as Redis 7.0 writes it: resetchannels, then the patterns)
            parts.append(f"resetchannels {channels}" if self.channels else "resetchannels")
        parts.append(commands)
        return " ".join(parts)


def revoked_subscribers(clients: Collection[Any], old: User, new: User) -> Steps[list[Any]]:
    """
    Redis 7.0's C{ACLKillPubsubClientsIfNeeded}: the clients logged in as C{old} with a
    subscription C{new} (its next version) no longer allows, which SETUSER disconnects.
    None when C{new} has every channel, or keeps each of C{old}'s channel patterns;
    else a channel must match one of C{new}'s patterns, a PSUBSCRIBE pattern be one
    of them as it is. In slices (a subscriber of 200,000 channels).
    """
    if new.all_channels:
        return []
    mine = [c for c in clients if c.user is old and (c.channels or c.patterns or c.shards)]
    if not mine:
        return []
    kept, n = True, 0
    for pat in old.channels:
        if pat not in new.channels:
            kept = False
            break
        n += 1
        if n % CHECK_PIECE == 0:
            yield
    if kept:
        return []
    out = []
    allowed = new.channel_patterns.match_steps
    for c in mine:
        n = 0
        revoked = any(p not in new.channels for p in c.patterns)
        for ch in (*c.channels, *c.shards) if not revoked else ():
            if not (yield from allowed(ch, 0)):
                revoked = True
                break
            n += 1
            if n % CHECK_PIECE == 0:
                yield
        if revoked:
            out.append(c)
    return out


def _key_text(keys: Table, pat: bytes) -> str:
    mask = keys.get(pat)
    text = pat.decode("utf-8", RAW)
    return f"~{text}" if mask == READ | WRITE else f"%{'R' if mask == READ else 'W'}~{text}"


def _channel_text(pat: bytes) -> str:
    return "&" + pat.decode("utf-8", RAW)


def _joined(items: Collection[T], text: Callable[[T], str], first: str = "") -> Steps[str]:
    """C{" ".join(map(text, items))}, a piece of L{TEXT_PIECE} items at a time."""
    parts = [first] if first else []
    it = iter(items)
    for _start in range(0, len(items), TEXT_PIECE):
        parts.append(" ".join(map(text, islice(it, TEXT_PIECE))))
        yield
    return " ".join(parts)


def default_user(password: str | None) -> User:
    """The C{default} user as the service options make it."""
    u = User("default")
    u.apply([b"on", b"allkeys", b"allchannels", b"allcommands"])
    u.apply([b">" + password.encode()] if password else [b"nopass"])
    return u


def parse_line(line: str) -> tuple[str, list[bytes]]:
    """One C{acl} option line (C{user NAME rule...}); raises L{ACLError} with a readable reason."""
    words = line.split()
    if not words or words[0] != "user" or len(words) < 2:
        raise ACLError(
            _("must start with 'user NAME' (aclfile syntax: user alice on >secret ~* +@all)")
        )
    name = words[1]
    if any(ord(ch) < 33 for ch in name):
        raise ACLError(_("Usernames can't contain spaces or null characters"))
    return name, [w.encode() for w in words[2:]]


def build_users(password: str | None, lines: list[str]) -> dict[str, User]:
    """The users of a kv service: the default user, then the C{acl} lines."""
    users = {"default": default_user(password)}
    for line in lines:
        name, rules = parse_line(line)
        user = users.get(name)
        if user is None:
            user = users[name] = User(name)
        user.apply(rules)
    return users


def check_lines(password: str | None, lines: Any) -> list[str]:
    """C{portsuite check}: one line per bad C{acl} entry."""
    if lines is None:
        return []
    if not isinstance(lines, (list, tuple)) or not all(isinstance(x, str) for x in lines):
        return [
            _('acl: must be a list of strings, e.g. acl = ["user alice on >secret ~app:* +@all"]')
        ]
    errors = []
    seen: dict[str, User] = {"default": default_user(password)}
    for i, line in enumerate(lines):
        try:
            name, rules = parse_line(line)
            if name == "default" and password and any(r[:1] in (b">", b"#") for r in rules):
                raise ACLError(
                    _("the default user's password is the 'password' option; set it in one place")
                )
            seen.setdefault(name, User(name)).apply(rules)
        except ACLError as e:
            errors.append(f"acl[{i}] ({line[:60]!r}): {e}")
    return errors


class ACLLog:
    """ACL LOG: the latest denials and failed logins (Redis's acllog-max-len, 128)."""

    MAX = 128

    def __init__(self, clock: Any = time.time):
        self.entries: list[dict[str, Any]] = []  # newest first
        self.clock = clock

    def add(self, reason: str, context: str, obj: str, username: str, client_info: str) -> None:
        now = self.clock()
        for e in self.entries[:10]:  # as Redis, only the 10 latest are looked at for a match
            if (
                e["reason"] == reason
                and e["context"] == context
                and e["object"] == obj
                and e["username"] == username
                and now - e["updated"] < 60
            ):
                e["count"] += 1
                e["updated"] = now
                e["client-info"] = client_info
                self.entries.remove(e)
                self.entries.insert(0, e)
                return
        self.entries.insert(
            0,
            {
                "count": 1,
                "reason": reason,
                "context": context,
                "object": obj[:128],
                "username": username[:128],
                "created": now,
                "updated": now,
                "client-info": client_info,
            },
        )
        del self.entries[self.MAX :]
