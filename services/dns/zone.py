"""
The lab's zone: records from the config table or a BIND zone file, the suite's own
services published as SRV records, and reverse (PTR) zones for the addresses used.

Everything is checked before the suite starts: a bad record is one line naming the
file (and line, for a zone file), the record and the fix (L{build_zone} returns the
problems; L{portsuite_services.dns.DNS}'s C{check} shows them).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from twisted.names import authority, dns

from portsuite.api.i18n import gettext as _

DEFAULT_TTL = 300
SUPPORTED = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "PTR")

# the IANA service names (RFC 6335) of the suite's types, for their SRV records
SRV_NAMES = {
    "http": "http",
    "kv": "redis",
    "sql": "mysql",
    "smtp": "smtp",
    "pop3": "pop3",
    "imap": "imap",
    "ftp": "ftp",
    "ssh": "ssh",
    "telnet": "telnet",
    "dns": "domain",
    "echo": "echo",
    "discard": "discard",
    "chargen": "chargen",
    "qotd": "qotd",
    "daytime": "daytime",
    "time": "time",
}
# the same types over TLS (RFC 8314 for mail)
SRV_NAMES_TLS = {"http": "https", "smtp": "submissions", "pop3": "pop3s", "imap": "imaps"}

_LABEL = re.compile(rb"^(?!-)[A-Za-z0-9_*-]{1,63}(?<!-)$")


class ZoneError(Exception):
    """One problem of a record, as the line the user reads."""


def name_bytes(name: str, origin: bytes) -> bytes:
    """A record's owner or target: relative to the zone unless it ends with a dot."""
    raw = name.strip().encode("idna") if name.strip() not in ("", "@") else b"@"
    if raw == b"@":
        return origin
    if raw.endswith(b"."):
        full = raw[:-1]
    else:
        full = raw + b"." + origin
    labels = full.split(b".")
    if len(full) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ZoneError(
            _("{name!r} is not a valid DNS name (letters, digits, '-', dots)").format(name=name)
        )
    return full.lower()


def in_zone(name: bytes, origin: bytes) -> bool:
    name = name.lower().rstrip(b".")
    return name == origin or name.endswith(b"." + origin)


def _record(rtype: str, value: str, origin: bytes, ttl: int) -> Any:
    """One record of C{rtype} from its text, as in a zone file (names relative)."""
    parts = value.split()
    if rtype == "A":
        try:
            ipaddress.IPv4Address(value.strip())
        except ValueError:
            raise ZoneError(
                _("A {value!r} is not an IPv4 address, e.g. 127.0.0.1").format(value=value)
            ) from None
        return dns.Record_A(value.strip(), ttl=ttl)
    if rtype == "AAAA":
        try:
            ipaddress.IPv6Address(value.strip())
        except ValueError:
            raise ZoneError(
                _("AAAA {value!r} is not an IPv6 address, e.g. ::1").format(value=value)
            ) from None
        return dns.Record_AAAA(value.strip(), ttl=ttl)
    if rtype in ("CNAME", "NS", "PTR"):
        if len(parts) != 1:
            raise ZoneError(_("{rtype} takes one name, e.g. www.lab.test.").format(rtype=rtype))
        cls = {"CNAME": dns.Record_CNAME, "NS": dns.Record_NS, "PTR": dns.Record_PTR}[rtype]
        return cls(name_bytes(parts[0], origin), ttl=ttl)
    if rtype == "MX":
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) > 65535:
            raise ZoneError(
                _('MX {value!r}: write "PREFERENCE HOST", e.g. "10 mail.lab.test."').format(
                    value=value
                )
            )
        return dns.Record_MX(int(parts[0]), name_bytes(parts[1], origin), ttl=ttl)
    if rtype == "SRV":
        if len(parts) != 4 or not all(p.isdigit() and int(p) <= 65535 for p in parts[:3]):
            raise ZoneError(
                _(
                    'SRV {value!r}: write "PRIORITY WEIGHT PORT TARGET", e.g. "0 0 8080 lab.test."'
                ).format(value=value)
            )
        prio, weight, port = (int(p) for p in parts[:3])
        return dns.Record_SRV(prio, weight, port, name_bytes(parts[3], origin), ttl=ttl)
    if rtype == "TXT":
        data = value.encode("utf-8")
        # a TXT record is strings of at most 255 bytes each (RFC 1035 3.3.14)
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return dns.Record_TXT(*chunks, ttl=ttl)
    raise ZoneError(
        _("record type {rtype!r} is not served here; use one of {types}").format(
            rtype=rtype, types=", ".join(SUPPORTED)
        )
    )


def records_from_table(
    table: Mapping[str, Any], origin: bytes, ttl: int, label: str
) -> tuple[dict[bytes, list[Any]], list[str]]:
    """C{[services.dns.records]}: C{"www" = "127.0.0.1"} or C{"mail" = { MX = "…", A = "…" }}."""
    out: dict[bytes, list[Any]] = {}
    errors = []
    for owner, value in table.items():
        where = f"{label} records.{owner}"
        try:
            name = name_bytes(owner, origin)
        except ZoneError as e:
            errors.append(f"{where}: {e}")
            continue
        if not in_zone(name, origin):
            errors.append(
                _("{where}: outside the zone {zone}; name it relative").format(
                    where=where, zone=origin.decode()
                )
            )
            continue
        if isinstance(value, str):
            value = {"AAAA" if ":" in value else "A": value}
        if not isinstance(value, dict):
            errors.append(
                _('{where}: write an address, or a table {{ A = "…", MX = "…" }}').format(
                    where=where
                )
            )
            continue
        for rtype, texts in value.items():
            kind = rtype.upper()
            for text in texts if isinstance(texts, list) else [texts]:
                if not isinstance(text, (str, int)):
                    errors.append(
                        _("{where}.{rtype}: must be a string (or a list of strings)").format(
                            where=where, rtype=rtype
                        )
                    )
                    continue
                try:
                    out.setdefault(name, []).append(_record(kind, str(text), origin, ttl))
                except ZoneError as e:
                    errors.append(f"{where}.{rtype}: {e}")
        if len(out.get(name, [])) > 1 and any(r.TYPE == dns.CNAME for r in out[name]):
            errors.append(
                _("{where}: a CNAME cannot stand beside other records (RFC 1034)").format(
                    where=where
                )
            )
    return out, errors


def _tokens(line: str) -> list[str]:
    """A zone-file line's words; a quoted string is one word (its quotes kept)."""
    return re.findall(r'"(?:[^"\\]|\\.)*"|[^\s"]+', line)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Comments stripped, ( … ) continuations joined, with the first line's number."""
    joined: list[tuple[int, str]] = []
    open_paren = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r';(?=(?:[^"]*"[^"]*")*[^"]*$).*', "", raw)  # ; outside quotes
        if open_paren:
            start, so_far = joined[-1]
            joined[-1] = (start, so_far + " " + line.replace(")", " "))
            open_paren = ")" not in line
            continue
        if "(" in line:
            open_paren = ")" not in line
            line = line.replace("(", " ").replace(")", " ")
        joined.append((number, line))
    return joined


class _Parser(authority.BindAuthority):
    """Twisted's BindAuthority, fed one line at a time so errors know their line."""

    # Twisted's FileAuthority sets both to None in its class body
    records: dict[bytes, list[Any]]  # type: ignore[assignment]
    soa: tuple[bytes, Any] | None  # type: ignore[assignment]

    def __init__(self) -> None:  # no file: loadFile is not used
        self.records = {}
        self.soa = None

    def class_IN(self, ttl: int, type: str, domain: bytes, rdata: list[bytes]) -> None:
        texts = [r.decode("utf-8", "replace") for r in rdata]
        record: Any
        if type == "TXT":
            value = " ".join(t[1:-1] if t.startswith('"') and t.endswith('"') else t for t in texts)
            record = dns.Record_TXT(*[s.encode() for s in [value]], ttl=ttl)
        elif type == "SOA":
            times = (int(dns.str2time(x)) for x in rdata[2:])
            record = dns.Record_SOA(*rdata[:2], *times, ttl=ttl)  # type: ignore[misc]
            self.soa = (domain.lower(), record)
        else:
            record = _record(type, " ".join(texts), self.origin.rstrip(b"."), ttl)
        self.records.setdefault(domain.lower(), []).append(record)


def records_from_file(path: Path, origin: bytes) -> tuple[dict[bytes, list[Any]], Any, list[str]]:
    """A BIND zone file: its records, its SOA (or None), and one line per problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return (
            {},
            None,
            [_("zone_file: cannot read {path} ({error}); fix the path").format(path=path, error=e)],
        )
    parser = _Parser()
    parser.origin = origin + b"."
    ttl = DEFAULT_TTL
    errors = []
    for number, line in _logical_lines(text):
        words = [w.encode("utf-8") for w in _tokens(line)]
        if not words:
            continue
        where = f"zone_file: {path}:{number}"
        try:
            if words[0] == b"$TTL":
                ttl = int(dns.str2time(words[1]))
            elif words[0] == b"$ORIGIN":
                parser.origin = words[1] if words[1].endswith(b".") else words[1] + b"."
            elif words[0].startswith(b"$"):
                raise ZoneError(
                    _("{directive} is not supported; use $ORIGIN and $TTL").format(
                        directive=words[0].decode()
                    )
                )
            else:
                before = sum(map(len, parser.records.values()))
                parser.parseRecordLine(parser.origin, ttl, words)
                if sum(map(len, parser.records.values())) == before:
                    raise ZoneError(_("no record on this line"))
        except ZoneError as e:
            errors.append(f"{where}: {e}")
        except NotImplementedError as e:
            errors.append(
                _("{where}: {error}; use one of {types} in class IN").format(
                    where=where, error=e, types=", ".join(SUPPORTED)
                )
            )
        except (IndexError, ValueError, TypeError) as e:
            errors.append(
                _(
                    "{where}: cannot read {line!r} ({error}); write NAME [TTL] [IN] TYPE DATA"
                ).format(where=where, line=line.strip()[:60], error=e or _("too few fields"))
            )
    for name in parser.records:
        if not in_zone(name, origin):
            errors.append(
                _("zone_file: {path}: {name} is outside the zone {zone}").format(
                    path=path, name=name.decode(), zone=origin.decode()
                )
            )
    return parser.records, parser.soa, errors


def made_up_soa(origin: bytes, serial: int | None = None) -> Any:
    """An SOA for a zone written without one (RFC 1035 3.3.13; RFC 2308 minimum)."""
    return dns.Record_SOA(
        mname=b"ns1." + origin,
        rname=b"hostmaster." + origin,
        serial=serial if serial is not None else int(time.time()) % 2**32,
        refresh=3600,
        retry=600,
        expire=86400,
        minimum=DEFAULT_TTL,
        ttl=DEFAULT_TTL,
    )


def reverse_zone(address: str) -> tuple[bytes, bytes]:
    """(the reverse zone of an address's /24 or /64, its PTR owner name)."""
    ip = ipaddress.ip_address(address)
    owner = ip.reverse_pointer.encode()
    labels = owner.split(b".")
    zone = b".".join(labels[1:]) if ip.version == 4 else b".".join(labels[16:])
    return zone, owner


def authority_additional(zone: Any, answer: Any, authority_: Any, ttl: int) -> Any:
    for record in list(answer) + list(authority_):
        payload = record.payload
        if record.type in (dns.CNAME, dns.MX, dns.NS):
            target = payload.name.name
        elif record.type == dns.SRV:
            target = payload.target.name
        else:
            continue
        for rec in zone.records.get(target.lower(), ()):
            if rec.TYPE in (dns.A, dns.AAAA):
                yield dns.RRHeader(target, rec.TYPE, dns.IN, rec.ttl or ttl, rec, auth=True)


class LabAuthority(authority.FileAuthority):
    """
    An authority (twisted.names) for one zone, its records given rather than read
    from a file, plus the records that C{dynamic} adds at query time (the SRV
    records of the suite's services, whose ports may be known only once bound).
    """

    # Twisted's FileAuthority sets both to None in its class body
    records: dict[bytes, list[Any]]  # type: ignore[assignment]
    soa: tuple[bytes, Any] | None  # type: ignore[assignment]

    def __init__(
        self,
        origin: bytes,
        records: Mapping[bytes, list[Any]],
        soa: Any = None,
        dynamic: Callable[[], Mapping[bytes, list[Any]]] | None = None,
        signature: Callable[[], Any] | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self._origin = origin
        self._static = {k: list(v) for k, v in records.items()}
        self._soa_record = soa or made_up_soa(origin)
        self._dynamic = dynamic
        self._signature = signature or (lambda: None)
        self._dynamic_seen: Any = object()
        self._clock = clock
        self._checked_at: float | None = None
        authority.FileAuthority.__init__(self, None)

    def _additionalRecords(self, answer: Any, authority: Any, ttl: int) -> Any:
        """RFC 1034 4.3.2 step 6, and RFC 2782: the addresses of SRV targets too."""
        yield from authority_additional(self, answer, authority, ttl)

    def loadFile(self, filename: Any) -> None:
        self.soa = (self._origin, self._soa_record)
        self.records = dict(self._static)
        self.records.setdefault(self._origin, [])
        if not any(r.TYPE == dns.SOA for r in self.records[self._origin]):
            self.records[self._origin] = [self._soa_record, *self.records[self._origin]]

    @property
    def origin(self) -> bytes:
        return self._origin

    def refresh(self) -> None:
        """Merge in the dynamic records when their source changed (ports bound, …)."""
        if self._dynamic is None:
            return
        if self._clock is not None:  # look at the suite at most once a second
            now = self._clock()
            if self._checked_at is not None and 0 <= now - self._checked_at < 1.0:
                return
            self._checked_at = now
        key = self._signature()  # cheap: what the dynamic records are made from
        if key == self._dynamic_seen:
            return
        self._dynamic_seen = key
        extra = self._dynamic()
        self.loadFile(None)
        for name, recs in extra.items():
            self.records.setdefault(name, [])
            self.records[name] = self.records[name] + list(recs)

    def all_records(self) -> list[tuple[bytes, Any]]:
        self.refresh()
        return [(name, r) for name, recs in sorted(self.records.items()) for r in recs]
