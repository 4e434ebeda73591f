"""
Headless Chromium driven through the DevTools protocol over a pipe (C{--remote-debugging-pipe}:
JSON messages ended by NUL on fds 3 and 4), with the standard library only: real key
presses (Tab), the page's computed styles, its console.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from portsuite.testing import chromium_command


class Browser:
    def __init__(self, profile: Path, size: tuple[int, int] = (1366, 768)):
        command = chromium_command(  # first: skips before any pipe is open
            profile, "--remote-debugging-pipe", f"--window-size={size[0]},{size[1]}", "about:blank"
        )
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # the child: fd 3 reads our commands, fd 4 writes its answers
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            command,
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=size[0],
            height=size[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read(60)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(max(deadline - time.monotonic(), 0.01))
            if event.get("method") == method:
                return event
            self.events.append(event)

    def goto(self, url: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => setTimeout(r, 300))")  # the page's first poll

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def press(self, key: str = "Tab", code: int = 9, shift: bool = False) -> None:
        modifiers = 8 if shift else 0
        for kind in ("rawKeyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                session=True,
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=code,
                modifiers=modifiers,
            )

    def console_errors(self) -> list[str]:
        """Errors the pages logged or threw (console.error, exceptions, failed loads)."""
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append(json.dumps(p.get("exceptionDetails", {}))[:300])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
                errors.append(json.dumps(p.get("args", []))[:300])
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        return errors

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


# In the page: every control a Tab walk must reach, each as a key that survives a redraw.
CONTROL_KEY = """var key = el => [el.closest('[data-service]')?.dataset.service || '', el.tagName,
  el.getAttribute('href') || '', (el.textContent || '').trim().slice(0, 40)].join('|');"""
CONTROLS = (
    CONTROL_KEY
    + """(() => {
  const sel = 'a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])';
  const all = [...document.querySelectorAll(sel)].filter(el => {
    const r = el.getBoundingClientRect(), s = getComputedStyle(el);
    return !el.disabled && s.visibility !== 'hidden' && s.display !== 'none' && (r.width > 0 || r.height > 0);
  });
  return all.map(key);
})()"""
)

# In the page: what has the focus, and whether a person can see it.
FOCUSED = (
    CONTROL_KEY
    + """(() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const r = el.getBoundingClientRect();
  return {key: key(el), tag: el.tagName, text: (el.textContent || '').trim().slice(0, 40),
          focusVisible: el.matches(':focus-visible'),
          outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2 ? s.outlineColor : null,
          shadow: s.boxShadow !== 'none' ? s.boxShadow : null,
          onScreen: r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth};
})()"""
)

# In the page: every element with its own text, its colour on its actual background
# (the first opaque ancestor's), and WCAG's minimum for its size.
CONTRAST = """(() => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const v = rgb(c).slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const bg = el => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor; const a = rgb(c);
                     if (a.length === 3 || a[3] > 0.5) return c; } return 'rgb(255, 255, 255)'; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    if (!own || s.visibility === 'hidden' || s.display === 'none' || r.width === 0) continue;
    if (el.closest('svg')) continue;
    const fg = s.color, back = bg(el);
    const a = lum(fg), b = lum(back);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    out.push({tag: el.tagName, cls: el.className && el.className.baseVal === undefined ? el.className : '',
              text: el.textContent.trim().slice(0, 30), fg, back, ratio: Math.round(ratio * 100) / 100,
              minimum: large ? 3 : 4.5});
  }
  return out;
})()"""
