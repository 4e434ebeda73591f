"""
kv's module docstrings stay within the project's line length (pyproject.toml): ruff
ignores E501 and `ruff format` does not rewrap docstrings, so nothing else checks them.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_module_docstrings_within_the_line_length() -> None:
    width = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["line-length"]
    files = sorted((ROOT / "services" / "kv").rglob("*.py"))
    assert files
    long = []
    for path in files:
        text = path.read_text()
        body = ast.parse(text).body
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
            continue
        first, last = body[0].lineno, body[0].end_lineno or body[0].lineno
        for n, line in enumerate(text.splitlines()[first - 1 : last], first):
            if len(line) > width:
                long.append(f"{path.relative_to(ROOT)}:{n}: {len(line)} > {width}")
    assert long == []
