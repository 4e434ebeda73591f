"""
The HTML pages of the http type: one style for errors, redirects and folder listings
(readable when projected in class, and in a terminal's curl output).
"""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 20px/1.5 system-ui, sans-serif; margin: 3em auto; max-width: 46em;
       padding: 0 1em; color: #1d2330; background: #f6f7fb; }}
h1 {{ font-size: 2em; margin-bottom: .2em; }} code {{ background: #e8ebf3; padding: 0 .3em; }}
a {{ color: #1457b8; }} table {{ border-collapse: collapse; width: 100%; }}
td {{ padding: .25em .6em; border-bottom: 1px solid #dde1ea; }} td.n {{ text-align: right; }}
footer {{ margin-top: 2em; color: #5a6478; font-size: .85em; }}
</style></head>
<body><h1>{title}</h1>
{body}
<footer>portsuite &middot; <a href="/">home</a>{dash}</footer>
</body></html>
"""


def page(title: str, body: str, dashboard: bool) -> bytes:
    dash = ' &middot; <a href="/_portsuite/">dashboard</a>' if dashboard else ""
    # names that are not UTF-8 on disk show a "?" where their odd bytes are
    return _PAGE.format(title=html.escape(title), body=body, dash=dash).encode("utf-8", "replace")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
