"""
Geo commands on top of sorted sets (Redis 7's geo.c, geohash.c, geohash_helper.c):
a member's score is its 52-bit interleaved geohash, distances are Redis's
haversine on a sphere of 6372797.560856 m, and a search scans the 9 geohash boxes
Redis scans, in its order, so replies (order included) match redis-server's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from math import asin, cos, sin, sqrt
from typing import Any

from portsuite_services.kv import bigwork
from portsuite_services.kv.commands import (
    NO_REPLY,
    SYNTAX,
    CommandError,
    command,
    to_int,
    wrongtype,
)
from portsuite_services.kv.commands.zsets import (
    ARGS_ZSET,
    NOT_FLOAT,
    _store_range,
    _zadd_aside,
    get_zset,
    store_aside,
    zadd,
)
from portsuite_services.kv.resp import NULL_ARRAY, Preencoded
from portsuite_services.kv.sharded import new_like
from portsuite_services.kv.zset import ZSet, sorted_list_steps, strict_float

G = "geo"
LONG_MIN, LONG_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26
D_R = math.pi / 180.0
EARTH_RADIUS = 6372797.560856
MERCATOR_MAX = 20037726.37
UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
ALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"

# -- geohash (geohash.c) ------------------------------------------------------------

_B = (
    0x5555555555555555,
    0x3333333333333333,
    0x0F0F0F0F0F0F0F0F,
    0x00FF00FF00FF00FF,
    0x0000FFFF0000FFFF,
    0x00000000FFFFFFFF,
)
_M64 = (1 << 64) - 1


def interleave(xlo: int, ylo: int) -> int:
    """x's bits in the even positions, y's in the odd ones."""
    x, y = xlo & 0xFFFFFFFF, ylo & 0xFFFFFFFF
    for s, b in ((16, _B[4]), (8, _B[3]), (4, _B[2]), (2, _B[1]), (1, _B[0])):
        x = (x | (x << s)) & b
        y = (y | (y << s)) & b
    return x | (y << 1)


def deinterleave(v: int) -> tuple[int, int]:
    """(even bits, odd bits)."""
    x, y = v, v >> 1
    for s, b in ((0, _B[0]), (1, _B[1]), (2, _B[2]), (4, _B[3]), (8, _B[4]), (16, _B[5])):
        x = (x | (x >> s)) & b
        y = (y | (y >> s)) & b
    return x, y


def encode(
    lon: float,
    lat: float,
    step: int,
    lon_range: tuple[float, float] = (LONG_MIN, LONG_MAX),
    lat_range: tuple[float, float] = (LAT_MIN, LAT_MAX),
) -> int:
    lat_off = (lat - lat_range[0]) / (lat_range[1] - lat_range[0])
    lon_off = (lon - lon_range[0]) / (lon_range[1] - lon_range[0])
    return interleave(int(lat_off * (1 << step)), int(lon_off * (1 << step)))


def decode_area(bits: int, step: int) -> tuple[float, float, float, float]:
    """(lon_min, lon_max, lat_min, lat_max) of a box."""
    ilat, ilon = deinterleave(bits)
    ilat &= 0xFFFFFFFF
    ilon &= 0xFFFFFFFF
    lat_scale = LAT_MAX - LAT_MIN
    lon_scale = LONG_MAX - LONG_MIN
    div = float(1 << step)
    return (
        LONG_MIN + (ilon * 1.0 / div) * lon_scale,
        LONG_MIN + ((ilon + 1) * 1.0 / div) * lon_scale,
        LAT_MIN + (ilat * 1.0 / div) * lat_scale,
        LAT_MIN + ((ilat + 1) * 1.0 / div) * lat_scale,
    )


def _spread(b: int) -> tuple[int, int]:
    ev = od = 0
    for k in range(4):
        ev |= ((b >> (2 * k)) & 1) << k
        od |= ((b >> (2 * k + 1)) & 1) << k
    return ev, od


_BYTE = [_spread(b) for b in range(256)]  # a byte's (even bits, odd bits)
_LAT_SCALE = LAT_MAX - LAT_MIN
_LON_SCALE = LONG_MAX - LONG_MIN
_DIV26 = float(1 << STEP_MAX)


def decode_score(score: float) -> tuple[float, float]:
    """The (longitude, latitude) at the centre of a score's box, as Redis decodes it."""
    bits = int(score) & _M64
    ilat = ilon = 0
    shift = 0
    while bits:  # (a byte at a time: what deinterleave does, a few times faster)
        ev, od = _BYTE[bits & 0xFF]
        ilat |= ev << shift
        ilon |= od << shift
        bits >>= 8
        shift += 4
    ilat &= 0xFFFFFFFF
    ilon &= 0xFFFFFFFF
    lon_min = LONG_MIN + (ilon * 1.0 / _DIV26) * _LON_SCALE
    lon_max = LONG_MIN + ((ilon + 1) * 1.0 / _DIV26) * _LON_SCALE
    lat_min = LAT_MIN + (ilat * 1.0 / _DIV26) * _LAT_SCALE
    lat_max = LAT_MIN + ((ilat + 1) * 1.0 / _DIV26) * _LAT_SCALE
    lon = (lon_min + lon_max) / 2
    lat = (lat_min + lat_max) / 2
    return min(max(lon, LONG_MIN), LONG_MAX), min(max(lat, LAT_MIN), LAT_MAX)


def _move_x(bits: int, step: int, d: int) -> int:
    x = bits & 0xAAAAAAAAAAAAAAAA
    y = bits & 0x5555555555555555
    zz = 0x5555555555555555 >> (64 - step * 2)
    if d > 0:
        x = x + (zz + 1)
    else:
        x = ((x | zz) - (zz + 1)) & _M64
    x &= 0xAAAAAAAAAAAAAAAA >> (64 - step * 2)
    return x | y


def _move_y(bits: int, step: int, d: int) -> int:
    x = bits & 0xAAAAAAAAAAAAAAAA
    y = bits & 0x5555555555555555
    zz = 0xAAAAAAAAAAAAAAAA >> (64 - step * 2)
    if d > 0:
        y = y + (zz + 1)
    else:
        y = ((y | zz) - (zz + 1)) & _M64
    y &= 0x5555555555555555 >> (64 - step * 2)
    return x | y


def _c(f: Any, x: float) -> float:
    """C's libm: NaN for a domain error (cos(inf), asin(2)), never ValueError."""
    try:
        return f(x)
    except (ValueError, OverflowError):
        return math.nan


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Redis's haversine (geohashGetDistance)."""
    lat1r, lon1r = lat1 * D_R, lon1 * D_R
    lat2r, lon2r = lat2 * D_R, lon2 * D_R
    try:
        u = sin((lat2r - lat1r) / 2)
        v = sin((lon2r - lon1r) / 2)
        return 2.0 * EARTH_RADIUS * asin(sqrt(u * u + cos(lat1r) * cos(lat2r) * v * v))
    except ValueError:  # (coordinates are checked: not reached with stored points)
        u = _c(math.sin, (lat2r - lat1r) / 2)
        v = _c(math.sin, (lon2r - lon1r) / 2)
        a = u * u + _c(math.cos, lat1r) * _c(math.cos, lat2r) * v * v
        return 2.0 * EARTH_RADIUS * _c(math.asin, _c(math.sqrt, a))


def _steps(range_m: float, lat: float) -> int:
    if range_m == 0:
        return 26
    step = 1
    while range_m < MERCATOR_MAX:
        range_m *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), 26)


class Shape:
    """A search: centre, and a radius or a box (in the unit), with the unit's metres."""

    def __init__(self) -> None:
        self.lon = self.lat = 0.0
        self.radius: float | None = None
        self.width = self.height = 0.0
        self.conversion = 1.0

    def contains(self, lon: float, lat: float) -> float | None:
        """The distance (m) if the point is inside, else None."""
        if self.radius is not None:
            d = distance(self.lon, self.lat, lon, lat)
            return None if d > self.radius * self.conversion else d
        w, h = self.width * self.conversion, self.height * self.conversion
        lon_d = distance(lon, lat, self.lon, lat)
        lat_d = distance(lon, lat, lon, self.lat)
        if lon_d > w / 2 or lat_d > h / 2:
            return None
        return distance(self.lon, self.lat, lon, lat)

    def boxes(self) -> list[tuple[int, int]]:
        """The (bits, step) boxes to scan, centre first (geohashCalculateAreasByShapeWGS84)."""
        lon, lat = self.lon, self.lat
        if self.radius is not None:
            height = width = self.conversion * self.radius
            radius_m = self.radius
        else:
            height = self.conversion * self.height / 2
            width = self.conversion * self.width / 2
            hw, hh = self.width / 2, self.height / 2
            radius_m = _c(math.sqrt, hw * hw + hh * hh)  # (inf, not OverflowError)
        radius_m *= self.conversion
        lat_delta = (height / EARTH_RADIUS) / D_R
        top = (width / EARTH_RADIUS / _c(math.cos, (lat + lat_delta) * D_R)) / D_R
        bottom = (width / EARTH_RADIUS / _c(math.cos, (lat - lat_delta) * D_R)) / D_R
        south = lat < 0
        min_lon = lon - bottom if south else lon - top
        max_lon = lon + bottom if south else lon + top
        min_lat, max_lat = lat - lat_delta, lat + lat_delta
        steps = _steps(radius_m, lat)

        def around(steps: int) -> tuple[int, list[int]]:
            h = encode(lon, lat, steps)
            n = [
                _move_y(h, steps, 1),  # north
                _move_y(h, steps, -1),  # south
                _move_x(h, steps, 1),  # east
                _move_x(h, steps, -1),  # west
                _move_y(_move_x(h, steps, 1), steps, 1),  # north east
                _move_y(_move_x(h, steps, -1), steps, 1),  # north west
                _move_y(_move_x(h, steps, 1), steps, -1),  # south east
                _move_y(_move_x(h, steps, -1), steps, -1),  # south west
            ]
            return h, n

        h, n = around(steps)
        north, south_a, east, west = (decode_area(b, steps) for b in n[:4])
        decrease = (
            north[3] < max_lat or south_a[2] > min_lat or east[1] < max_lon or west[0] > min_lon
        )
        if steps > 1 and decrease:
            steps -= 1
            h, n = around(steps)
        area = decode_area(h, steps)
        keep = [True] * 8
        if steps >= 2:
            if area[2] < min_lat:
                keep[1] = keep[7] = keep[6] = False  # south, south west, south east
            if area[3] > max_lat:
                keep[0] = keep[4] = keep[5] = False  # north, north east, north west
            if area[0] < min_lon:
                keep[3] = keep[7] = keep[5] = False  # west, south west, north west
            if area[1] > max_lon:
                keep[2] = keep[6] = keep[4] = False  # east, south east, north east
        out = [(h, steps)]
        for k, b in zip(keep, n, strict=True):
            out.append((b, steps) if k else (0, 0))
        return out


Found = tuple[float, float, float, float, bytes]  # (dist_m, score, lon, lat, member)
GEO_PIECE = 1024  # members a step of GEOADD, GEOPOS, GEOHASH converts (a few ms)
SCAN_PIECE = 512  # members a step of a search decodes and measures (11 ms for 1,024)
ITEMS = 256  # reply items a step makes WITHCOORD WITHDIST WITHHASH (20 ms for 1,024)


def spans(z: ZSet, shape: Shape) -> list[tuple[int, int]]:
    """The ranks [start, stop) of the members in each box a search scans, in its order."""
    boxes = shape.boxes()
    out = []
    last = 0
    for i, (bits, step) in enumerate(boxes):
        if bits == 0 and step == 0:
            continue
        if last and (bits, step) == boxes[last]:
            continue
        shift = 52 - step * 2
        lo, hi = bits << shift, (bits + 1) << shift
        out.append(z.score_span(float(lo), False, float(hi), True))
        last = i
    return out


def search(z: ZSet, shape: Shape, limit: int) -> list[Found]:
    """(dist_m, score, lon, lat, member) of the members inside, in Redis's scan order."""
    return bigwork.run_through(search_steps(z, shape, spans(z, shape), limit))


def search_steps(
    z: ZSet, shape: Shape, ranks: list[tuple[int, int]], limit: int
) -> bigwork.Steps[list[Found]]:
    """L{search}, C{SCAN_PIECE} members a step (bigwork: a million took seconds)."""
    found: list[Found] = []
    sl = z.sl
    contains = shape.contains
    for start, stop in ranks:
        if found and limit and len(found) >= limit:
            break
        for lo in range(start, stop, SCAN_PIECE):
            for score, member in sl.islice(lo, min(stop, lo + SCAN_PIECE)):
                lon, lat = decode_score(score)
                d = contains(lon, lat)
                if d is not None:
                    found.append((d, score, lon, lat, member))
                if found and limit and len(found) >= limit:
                    break
            else:
                yield
                continue
            break
    return found


# -- replies -----------------------------------------------------------------------


def human(v: float) -> Preencoded:
    """Redis's addReplyHumanLongDouble: C{%.17Lf} without trailing zeroes."""
    s = b"%.17f" % v
    if b"." in s:
        s = s.rstrip(b"0").rstrip(b".")
    if s == b"-0":
        s = b"0"
    return Preencoded(b"$%d\r\n%s\r\n" % (len(s), s), b",%s\r\n" % s)


def dist_reply(d: float) -> bytes:
    return b"%.4f" % d


def _lonlat(a: bytes, b: bytes) -> tuple[float, float]:
    lon, lat = strict_float(a), strict_float(b)
    if lon is None or lat is None:
        raise CommandError(NOT_FLOAT)
    if lon < LONG_MIN or lon > LONG_MAX or lat < LAT_MIN or lat > LAT_MAX:
        raise CommandError(f"ERR invalid longitude,latitude pair {lon:f},{lat:f}")
    return lon, lat


def _unit(b: bytes) -> float:
    u = UNITS.get(b.lower())
    if u is None:
        raise CommandError("ERR unsupported unit provided. please use M, KM, FT, MI")
    return u


def _distance_arg(b: bytes, unit: bytes) -> tuple[float, float]:
    d = strict_float(b)
    if d is None:
        raise CommandError("ERR need numeric radius")
    if d < 0:
        raise CommandError("ERR radius cannot be negative")
    return d, _unit(unit)


# -- commands ----------------------------------------------------------------------


@command("geoadd", -5, "write denyoom", G, "Add one or more geospatial items to a sorted set")
def geoadd(c: Any, argv: list[bytes]) -> Any:
    nx = xx = False
    i = 2
    while i < len(argv):
        o = argv[i].lower()
        if o == b"nx":
            nx = True
        elif o == b"xx":
            xx = True
        elif o != b"ch":
            break
        i += 1
    if (len(argv) - i) % 3 or (nx and xx):
        raise CommandError(SYNTAX)
    if len(argv) - i >= 3 * ARGS_ZSET:  # a million members: converted and added aside, in slices
        z = get_zset(c, argv[1])
        if z is None and xx:
            return 0
        flags = (nx, xx, False, False, False)
        cost = 2 * (len(argv) + len(z or ()))
        made = bigwork.sliced(c, argv, cost, lambda: _geoadd_aside(z, argv, i, flags))
        if made is NO_REPLY:
            return made
        if made is not None:
            return store_aside(c, argv, made, False, b"ch" in map(bytes.lower, argv[2:i]))
    zargv = [b"zadd", *argv[1:i]]
    zargv += _score_member(argv, i, len(argv))
    return zadd(c, zargv)


def _score_member(argv: list[bytes], start: int, stop: int) -> list[bytes]:
    """ZADD's arguments for GEOADD's triples C{argv[start:stop]} (checked, as Redis)."""
    out: list[bytes] = []
    for j in range(start, stop, 3):
        lon, lat = _lonlat(argv[j], argv[j + 1])
        out += (b"%d" % encode(lon, lat, STEP_MAX), argv[j + 2])
    return out


def _geoadd_aside(
    z: ZSet | None, argv: list[bytes], i: int, flags: tuple[bool, ...]
) -> bigwork.Steps[Any]:
    """A big GEOADD: its triples made ZADD's arguments C{GEO_PIECE} a step, then ZADD's aside."""
    zargv = [b"zadd", argv[1]]
    n = len(argv)
    for lo in range(i, n, 3 * GEO_PIECE):
        zargv += _score_member(argv, lo, min(n, lo + 3 * GEO_PIECE))
        yield
    made = yield from _zadd_aside(z, zargv, 2, flags)
    yield zargv  # (a million score strings: freed lazily)
    return made


@command("geopos", -2, "readonly", G, "Returns longitude and latitude of members")
def geopos(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    d = z.dict if z is not None else {}
    return bigwork.compute(c, argv, 4 * len(argv), lambda: _each_member(d, argv, _position))


def _position(s: float) -> Any:
    lon, lat = decode_score(s)
    return [human(lon), human(lat)]


def _each_member(
    d: Mapping[bytes, float],
    argv: list[bytes],
    f: Callable[[float], Any],
    missing: Any = NULL_ARRAY,
) -> bigwork.Steps[list[Any]]:
    """C{f(score)} of each member C{argv[2:]} names, or C{missing}, C{GEO_PIECE} a step."""
    out: list[Any] = []
    get = d.get
    for lo in range(2, len(argv), GEO_PIECE):
        for m in argv[lo : lo + GEO_PIECE]:
            s = get(m)
            out.append(missing if s is None else f(s))
        yield
    return out


@command("geodist", -4, "readonly", G, "Returns the distance between two members")
def geodist(c: Any, argv: list[bytes]) -> Any:
    to_m = 1.0
    if len(argv) == 5:
        to_m = _unit(argv[4])
    elif len(argv) > 5:
        raise CommandError(SYNTAX)
    z = get_zset(c, argv[1])
    if z is None:
        return None
    s1, s2 = z.dict.get(argv[2]), z.dict.get(argv[3])
    if s1 is None or s2 is None:
        return None
    a, b = decode_score(s1), decode_score(s2)
    return dist_reply(distance(a[0], a[1], b[0], b[1]) / to_m)


@command("geohash", -2, "readonly", G, "Returns members as standard geohash strings")
def geohash(c: Any, argv: list[bytes]) -> Any:
    z = get_zset(c, argv[1])
    d = z.dict if z is not None else {}
    return bigwork.compute(c, argv, 4 * len(argv), lambda: _each_member(d, argv, _hash, None))


def _hash(s: float) -> bytes:
    lon, lat = decode_score(s)
    bits = encode(lon, lat, 26, (-180.0, 180.0), (-90.0, 90.0))
    chars = bytearray()
    for i in range(11):
        idx = 0 if i == 10 else (bits >> (52 - (i + 1) * 5)) & 0x1F
        chars.append(ALPHABET[idx])
    return bytes(chars)


COORDS, MEMBER, SEARCH, SEARCHSTORE, NOSTORE = 1, 2, 4, 8, 16


def georadius_generic(c: Any, argv: list[bytes], src_at: int, flags: int) -> Any:
    """Redis's C{georadiusGeneric}: GEORADIUS*, GEOSEARCH, GEOSEARCHSTORE."""
    name = argv[0].decode("latin-1")
    v = c.store.get(argv[src_at])
    if v is not None and type(v) is not ZSet:
        raise wrongtype()
    z: ZSet | None = v
    shape = Shape()
    store: bytes | None = None
    storedist = False
    if flags & COORDS:
        base = 6
        shape.lon, shape.lat = _lonlat(argv[2], argv[3])
        shape.radius, shape.conversion = _distance_arg(argv[4], argv[5])
    elif flags & MEMBER and z is None:
        base = 5
    elif flags & MEMBER:
        base = 5
        s = z.dict.get(argv[2]) if z is not None else None
        if s is None:
            raise CommandError("ERR could not decode requested zset member")
        shape.lon, shape.lat = decode_score(s)
        shape.radius, shape.conversion = _distance_arg(argv[3], argv[4])
    else:
        base = 2
        if flags & SEARCHSTORE:
            base = 3
            store = argv[1]
    withdist = withhash = withcoord = any_ = False
    frommember = fromloc = byradius = bybox = False
    sort = 0  # 1 ASC, 2 DESC
    count = 0
    n = len(argv)
    i = base
    while i < n:
        o = argv[i].lower()
        left = n - i - 1
        if o == b"withdist":
            withdist = True
        elif o == b"withhash":
            withhash = True
        elif o == b"withcoord":
            withcoord = True
        elif o == b"any":
            any_ = True
        elif o == b"asc":
            sort = 1
        elif o == b"desc":
            sort = 2
        elif o == b"count" and left >= 1:
            count = to_int(argv[i + 1])
            if count <= 0:
                raise CommandError("ERR COUNT must be > 0")
            i += 1
        elif o in (b"store", b"storedist") and left >= 1 and not flags & (NOSTORE | SEARCH):
            store = argv[i + 1]
            storedist = o == b"storedist"
            i += 1
        elif o == b"storedist" and flags & SEARCHSTORE:
            storedist = True
        elif o == b"frommember" and left >= 1 and flags & SEARCH and not fromloc:
            if z is not None:
                s = z.dict.get(argv[i + 1])
                if s is None:
                    raise CommandError("ERR could not decode requested zset member")
                shape.lon, shape.lat = decode_score(s)
            frommember = True
            i += 1
        elif o == b"fromlonlat" and left >= 2 and flags & SEARCH and not frommember:
            shape.lon, shape.lat = _lonlat(argv[i + 1], argv[i + 2])
            fromloc = True
            i += 2
        elif o == b"byradius" and left >= 2 and flags & SEARCH and not bybox:
            shape.radius, shape.conversion = _distance_arg(argv[i + 1], argv[i + 2])
            byradius = True
            i += 2
        elif o == b"bybox" and left >= 3 and flags & SEARCH and not byradius:
            w = strict_float(argv[i + 1])
            if w is None:
                raise CommandError("ERR need numeric width")
            h = strict_float(argv[i + 2])
            if h is None:
                raise CommandError("ERR need numeric height")
            if h < 0 or w < 0:
                raise CommandError("ERR height or width cannot be negative")
            shape.conversion = _unit(argv[i + 3])
            shape.width, shape.height = w, h
            shape.radius = None
            bybox = True
            i += 3
        else:
            raise CommandError(SYNTAX)
        i += 1
    if store is not None and (withdist or withhash or withcoord):
        what = "GEOSEARCHSTORE" if flags & SEARCHSTORE else "STORE option in GEORADIUS"
        raise CommandError(
            f"ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )
    if flags & SEARCH and not (frommember or fromloc):
        raise CommandError(
            f"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )
    if flags & SEARCH and not (byradius or bybox):
        raise CommandError(f"ERR exactly one of BYRADIUS and BYBOX can be specified for {name}")
    if any_ and not count:
        raise CommandError("ERR the ANY argument requires COUNT argument")
    if z is None:
        if store is not None:
            c.touched = [store]
            if c.store.drop(store):
                c.store.dirty += 1
            return 0
        return []
    if count and not sort and not any_:
        sort = 1
    ranks = spans(z, shape)
    cost = sum(stop - start for start, stop in ranks) * 4  # (a member costs about 4 copied)
    made = bigwork.compute(
        c,
        argv,
        cost,
        lambda: _found_steps(
            c, z, shape, ranks, count, any_, sort, store, storedist, (withdist, withhash, withcoord)
        ),
    )
    if made is NO_REPLY or store is None:
        return made
    return _store_range(c, store, made)


def _found_steps(
    c: Any,
    z: ZSet,
    shape: Shape,
    ranks: list[tuple[int, int]],
    count: int,
    any_: bool,
    sort: int,
    store: bytes | None,
    storedist: bool,
    withs: tuple[bool, bool, bool],
) -> bigwork.Steps[Any]:
    """
    The search, sorted, cut to C{count}, as the reply's list, or the sorted set to
    store (None: none found), a piece at a time (bigwork). The big lists it is done
    with are yielded, to be freed in slices (a million tuples and their floats
    dropped at once took 70 ms).
    """
    found = yield from search_steps(z, shape, ranks, count if any_ else 0)
    if not found:
        return None if store is not None else []
    piece = bigwork.PIECE
    if sort:  # (by distance only, the scan order kept between equals, as a stable sort)
        sign = -1.0 if sort == 2 else 1.0
        keys: list[tuple[float, int]] = []
        for lo in range(0, len(found), piece):
            keys += [(sign * found[i][0], i) for i in range(lo, min(len(found), lo + piece))]
            yield
        keyed = yield from bigwork.sort(keys)
        yield keys
        n = min(count, len(keyed)) if count else len(keyed)
        ordered: list[Found] = []
        for lo in range(0, n, piece):
            ordered += [found[i] for _, i in keyed[lo : min(n, lo + piece)]]
            yield
        yield keyed
        yield found
        found = ordered
    elif count and len(found) > count:
        yield found[count:]
        del found[count:]
    conv = shape.conversion
    if store is None:
        withdist, withhash, withcoord = withs
        if not (withdist or withhash or withcoord):
            names: list[bytes] = []
            for lo in range(0, len(found), piece):
                names += [f[4] for f in found[lo : lo + piece]]
                yield
            yield found
            return names
        out: list[Any] = []
        for lo in range(0, len(found), ITEMS):
            for d, score, lon, lat, member in found[lo : lo + ITEMS]:
                item: list[Any] = [member]
                if withdist:
                    item.append(dist_reply(d / conv))
                if withhash:
                    item.append(int(score))
                if withcoord:
                    item.append([human(lon), human(lat)])
                out.append(item)
            yield
        yield found
        return out
    if len(found) < bigwork.BIG:
        result = ZSet()
        for d, score, _, _, member in found:
            result.add(member, d / conv if storedist else score)
        return result
    pairs: list[tuple[float, bytes]] = []
    for lo in range(0, len(found), piece):
        if storedist:
            pairs += [(f[0] / conv, f[4]) for f in found[lo : lo + piece]]
        else:
            pairs += [(f[1], f[4]) for f in found[lo : lo + piece]]
        yield
    yield found
    result = ZSet()
    scores: Any = new_like(dict, len(pairs))  # (a big one: sharded, see sharded.py)
    for lo in range(0, len(pairs), piece):
        scores.update([(m, sc) for sc, m in pairs[lo : lo + piece]])
        yield
    result.dict = scores
    unsorted = pairs
    pairs = yield from bigwork.sort(pairs)
    yield unsorted
    result.sl = yield from sorted_list_steps(pairs)
    yield pairs
    return result


@command("georadius", -6, "write denyoom", G, "Query members within a radius of a point")
def georadius(c: Any, argv: list[bytes]) -> Any:
    return georadius_generic(c, argv, 1, COORDS)


@command("georadius_ro", -6, "readonly", G, "Query members within a radius (read-only)")
def georadius_ro(c: Any, argv: list[bytes]) -> Any:
    return georadius_generic(c, argv, 1, COORDS | NOSTORE)


@command("georadiusbymember", -5, "write denyoom", G, "Query members within a radius of a member")
def georadiusbymember(c: Any, argv: list[bytes]) -> Any:
    return georadius_generic(c, argv, 1, MEMBER)


@command("georadiusbymember_ro", -5, "readonly", G, "Query members near a member (read-only)")
def georadiusbymember_ro(c: Any, argv: list[bytes]) -> Any:
    return georadius_generic(c, argv, 1, MEMBER | NOSTORE)


@command("geosearch", -7, "readonly", G, "Query members inside an area of a box or a circle")
def geosearch(c: Any, argv: list[bytes]) -> Any:
    return georadius_generic(c, argv, 1, SEARCH)


@command(
    "geosearchstore",
    -8,
    "write denyoom",
    G,
    "Query members inside an area and store the result",
    keys=(1, 2, 1),
)
def geosearchstore(c: Any, argv: list[bytes]) -> Any:
    return georadius_generic(c, argv, 2, SEARCH | SEARCHSTORE)
