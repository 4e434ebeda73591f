"""
C{portsuite trace SERVICE}: follow a traced service's transcripts from a terminal,
like C{tail -F} of its JSON-lines file, even when the suite runs under twistd as
another user. C{-c CONFIG} picks that suite's folder (and first checks that the
service exists and has C{trace = true}); without it, the newest file of that service
in any suite's folder is followed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from portsuite.lang import _, configured_language, set_language
from portsuite.trace.sessions import ARROWS
from portsuite.trace.sink import PREFIX, safe_name, suite_key, trace_dir, user_dir


def _newest(paths: list[Path]) -> Path | None:
    dated = []
    for p in paths:
        try:
            dated.append((p.stat().st_mtime, p))
        except OSError:
            continue
    return max(dated)[1] if dated else None


def trace_candidates(service: str, config: str | Path | None = None) -> list[Path]:
    """
    The files of C{service} in every user's suite folders under /tmp (the suite may run
    as another user, e.g. nobody after C{twistd --uid}); only that config's folders
    with C{config}.
    """
    name = f"{safe_name(service)}.jsonl"
    key = suite_key(config) if config is not None else "*"
    return sorted(Path(tempfile.gettempdir()).glob(f"{PREFIX}*/{key}/{name}"))


def find_trace_file(
    service: str, directory: Path | None = None, config: str | Path | None = None
) -> Path | None:
    """
    The JSON-lines file of a service: in C{directory}, else C{$PORTSUITE_TRACE_DIR},
    else the newest of the suite folders (of C{config} only, when given, else this
    user's folder of that config); None when no suite has traced it yet.
    """
    name = f"{safe_name(service)}.jsonl"
    if directory is not None:
        return directory / name
    if os.environ.get("PORTSUITE_TRACE_DIR"):
        return trace_dir() / name
    newest = _newest(trace_candidates(service, config))
    if newest is not None:
        return newest
    if config is not None:
        return user_dir() / suite_key(config) / name
    return None


def format_record(rec: dict[str, Any]) -> str | None:
    """One JSON-lines record as the terminal shows it."""
    event = rec.get("event")
    peer = rec.get("peer", "?")
    clock = time.strftime("%H:%M:%S", time.localtime(rec.get("time", 0)))
    if event == "open":
        return f"{clock} ── " + _("{service}: {peer} connected ({transport})").format(
            service=rec.get("service"), peer=peer, transport=rec.get("transport", "tcp")
        )
    if event in ("data", "cut"):
        arrow = ARROWS.get(rec.get("dir", ""), "?")
        offset = f"+{rec.get('t', 0):.3f}s"
        return f"  {offset:<10} {peer} {arrow} {rec.get('text', '')}"
    if event == "close":
        omitted = rec.get("omitted") or {}
        extra = ""
        if any(omitted.values()):
            extra = _("; not shown: {c2s} B client→server, {s2c} B server→client").format(
                c2s=omitted.get("c2s", 0), s2c=omitted.get("s2c", 0)
            )
        closed = _("{service}: {peer} closed after {t:.3f}s").format(
            service=rec.get("service"), peer=peer, t=rec.get("t", 0)
        )
        return f"{clock} ── {closed}{extra}"
    if event == "drop":
        return f"{clock} !! {rec.get('service')}: dropped {rec.get('text', '')}"
    return None  # "rotated", and whatever a later version adds


def follow(
    service: str,
    directory: Path | None = None,
    out: TextIO | None = None,
    from_start: bool = False,
    once: bool = False,
    poll: float = 0.2,
    stop_after: float | None = None,
    config: str | Path | None = None,
) -> int:
    """
    Print the transcripts of C{service} as they are written (C{tail -F} of its
    JSON-lines file, following rotations). C{once}: print what is there and return.
    C{out}: where to print (C{sys.stdout} by default, looked up at each call).
    """
    out = out if out is not None else sys.stdout
    path = find_trace_file(service, directory, config)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    handle: Any = None
    inode = None
    buffer = b""

    def reopen(at_end: bool) -> Any:
        nonlocal inode, path
        if path is None:  # no suite has traced this service yet: look again
            path = find_trace_file(service, directory, config)
            if path is None:
                return None
        try:
            f = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return None
        inode = os.fstat(f.fileno()).st_ino
        if at_end:
            f.seek(0, os.SEEK_END)
        return f

    # like tail -f: what is already there is skipped (unless from_start); a file that
    # appears or replaces this one later is read from its start
    handle = reopen(at_end=not from_start)
    try:
        where = (
            path or Path(tempfile.gettempdir()) / f"{PREFIX}*" / "*" / f"{safe_name(service)}.jsonl"
        )
        print(
            _(
                "following {service} transcripts in {where} (Ctrl-C to stop); "
                "the service needs trace = true in its config"
            ).format(service=service, where=where),
            file=out,
            flush=True,
        )
        if directory is None and config is None and not os.environ.get("PORTSUITE_TRACE_DIR"):
            others = [p for p in trace_candidates(service) if p != path]
            if others:
                shown = ", ".join(str(p.parent) for p in others[:3])
                more = f" and {len(others) - 3} more" if len(others) > 3 else ""
                print(
                    f"{service} is traced by {len(others) + 1} suites; this is the newest. "
                    f"Choose one with -c CONFIG (others: {shown}{more})",
                    file=out,
                    flush=True,
                )
        while True:
            if handle is None:
                handle = reopen(at_end=False)
            if handle is not None:
                chunk = handle.read()
                if chunk:
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for raw in complete:
                        try:
                            rec = json.loads(raw)
                        except ValueError:
                            continue
                        text = format_record(rec)
                        if text is not None:
                            print(text, file=out, flush=True)
                elif path is not None:
                    try:
                        st = os.stat(path)
                        if st.st_ino != inode or st.st_size < handle.tell():
                            handle.close()  # rotated: start on the new file
                            handle, buffer = None, b""
                            continue
                    except FileNotFoundError:
                        pass
            if once or (deadline is not None and time.monotonic() >= deadline):
                return 0
            time.sleep(poll)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # portsuite trace echo | head
        if out is sys.stdout:
            # nothing more can be printed; keep the interpreter's exit quiet too
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if handle is not None:
            handle.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of C{portsuite trace}."""
    parser.add_argument("service", help="the service name ([services.NAME]) to follow")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="folder of the transcripts (default: $PORTSUITE_TRACE_DIR, else the suite's "
        "folder in /tmp/portsuite-trace-UID/: the one of -c CONFIG, or the newest)",
    )
    parser.add_argument(
        "--from-start", action="store_true", help="print the transcripts already written first"
    )
    parser.add_argument("--once", action="store_true", help="print what is there and exit")
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        help="the suite's config: follow that suite, after checking that SERVICE exists "
        "and has trace = true",
    )


def check_traced(config_path: str, service: str) -> str | None:
    """Why C{service} of that config cannot be followed, or None."""
    from portsuite import loader
    from portsuite.api import ConfigError

    try:
        cfg = loader.load(config_path)
    except ConfigError as e:
        return "\n".join(e.errors)
    names = [svc.name for svc in cfg.services]
    if service not in names:
        return _("{path} has no service {service!r}; its services: {names}").format(
            path=config_path, service=service, names=", ".join(names)
        )
    if not cfg.service(service).trace:
        return _(
            "[services.{service}] in {path} is not traced; add trace = true "
            "to it and restart the suite"
        ).format(service=service, path=config_path)
    return None


def run(args: argparse.Namespace) -> int:
    """C{portsuite trace SERVICE}: follow a traced service live."""
    if args.config:
        set_language(configured_language(args.config))
        problem = check_traced(args.config, args.service)
        if problem:
            print(problem, file=sys.stderr)
            return 2
    return follow(
        args.service,
        args.dir,
        from_start=args.from_start or args.once,
        once=args.once,
        config=args.config,
    )
