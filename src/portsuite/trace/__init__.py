"""
Transcripts: with C{trace = true}, a service (any type, plugins included) shows every
exchange it has, so a class can I{see} a protocol.

Each connection (or, over UDP, each run of datagrams from one peer) is a session: the
service, the peer (ip:port), when it started, and its lines, each a direction
(C{c2s} client→server, C{s2c} server→client), a time offset in seconds from the
session's start, and the bytes as readable text (C{\\r \\n \\t} and C{\\xNN} escapes;
hex for the directions a type declares binary, C{ServiceType.trace_hex}, and for a
mostly binary chunk of the others).

A session goes three places:
  - the twisted log, one line per chunk;
  - C{ServiceStats.transcripts}, the last 5 sessions of the service, for the dashboard:
    C{{"service", "peer", "started", "lines": [{"dir", "t", "text"}], "cut"}};
  - a JSON-lines file per service in its suite's folder (C{$PORTSUITE_TRACE_DIR}, else
    C{/tmp/portsuite-trace-UID/CONFIGNAME-DIGEST/}), which C{portsuite trace SERVICE
    [-c CONFIG]} follows live from another terminal, even when the suite runs under
    twistd as another user.

Everything is bounded: a session keeps at most L{MAX_LINES} lines and L{MAX_TEXT}
characters of text (then a C{… cut …} marker, and only the byte counts go on), one
chunk shows at most L{MAX_CHUNK} characters, and the file is rotated (the previous one
kept as C{.1}) past L{MAX_FILE} bytes.

One job per module: L{render} (bytes as text), L{sink} (the folder and the file),
L{sessions} (what a connection records; the TCP and UDP hooks), L{follow} (the CLI
follower: C{add_arguments} and C{run} of C{portsuite trace}).
"""

from portsuite.trace.follow import (
    add_arguments,
    check_traced,
    find_trace_file,
    follow,
    format_record,
    run,
    trace_candidates,
)
from portsuite.trace.render import MAX_CHUNK, MAX_HEX, is_binary, render, render_hex
from portsuite.trace.sessions import (
    ARROWS,
    CUT,
    MAX_LINES,
    MAX_TEXT,
    UDP_PEERS,
    UDP_SESSION_GAP,
    DatagramTracer,
    ServiceTrace,
    Session,
    TraceProtocol,
)
from portsuite.trace.sink import MAX_FILE, TraceFile, suite_key, trace_dir, trace_file, user_dir

__all__ = [
    "ARROWS",
    "CUT",
    "MAX_CHUNK",
    "MAX_FILE",
    "MAX_HEX",
    "MAX_LINES",
    "MAX_TEXT",
    "UDP_PEERS",
    "UDP_SESSION_GAP",
    "DatagramTracer",
    "ServiceTrace",
    "Session",
    "TraceFile",
    "TraceProtocol",
    "add_arguments",
    "check_traced",
    "find_trace_file",
    "follow",
    "format_record",
    "is_binary",
    "render",
    "render_hex",
    "run",
    "suite_key",
    "trace_candidates",
    "trace_dir",
    "trace_file",
    "user_dir",
]
