"""
Babel's extractor for our Python files (C{babel.cfg}): Babel's own, plus the C{_("…")}
calls inside f-strings, which Python 3.11's tokenizer hides from it (the pages of the
dashboard and the lab guide are f-strings).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

_CALL = re.compile(r"""\b(?:N_|_)\((?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')\)""")


def extract(fileobj: Any, keywords: Any, comment_tags: Any, options: Any) -> Iterator[Any]:
    from babel.messages.extract import extract_python

    source = fileobj.read()
    seen = set()
    fileobj.seek(0)
    for item in extract_python(fileobj, keywords, comment_tags, options):
        seen.add(item[2])
        yield item
    text = source.decode("utf-8") if isinstance(source, bytes) else source
    for m in _CALL.finditer(text):
        quote = '"' if m.group(1) is not None else "'"
        msgid = ast.literal_eval(
            quote + (m.group(1) if m.group(1) is not None else m.group(2)) + quote
        )
        if msgid not in seen:
            seen.add(msgid)
            yield (text.count("\n", 0, m.start()) + 1, "_", msgid, [])
