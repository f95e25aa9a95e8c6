"""Open an HTML page in headless Chromium and report what went wrong in it.

:func:`render` loads a file through the DevTools protocol on a pipe (no extra package, no
port) and returns the DOM after the page's scripts ran, with every JavaScript console
error, uncaught exception, failed resource and request leaving the machine. The console
lines Chromium prints with ``--enable-logging=stderr`` do not say their level
(``INFO:CONSOLE:2] "x", source: file:///page.html (2)`` for console.log and
console.error alike), so the protocol's events are used instead.

As a script: ``python tests/render_report.py RUN_DIR/report.html`` prints OK and the
number of plots drawn, or the errors, and exits 1 on any error or undrawn plot.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Chromium without a sandbox (it runs as root here), a GPU, or any network of its own.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
NAMES = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
_FIGURE = re.compile(r'<div\b[^>]*\bclass="[^"]*\bplotly-graph-div\b[^"]*"[^>]*>')


def find_chromium() -> str | None:
    """The browser to use: $CASCADE_CHROMIUM, else chromium, chromium-browser or
    google-chrome on PATH; None if there is none."""
    chosen = os.environ.get("CASCADE_CHROMIUM")
    if chosen:
        return shutil.which(chosen)
    return next((path for name in NAMES if (path := shutil.which(name))), None)


def render(html_path: str | Path, *, timeout_s: float = 60.0,
           settle_ms: int = 500) -> tuple[str, list[str]]:
    """Load ``html_path`` in headless Chromium; return (DOM after load + ``settle_ms``,
    console errors, uncaught exceptions, failed loads and non-local requests).

    Raises FileNotFoundError when no Chromium is found, RuntimeError when it does not
    answer within ``timeout_s``."""
    dom, _, errors = _open(html_path, timeout_s=timeout_s, settle_ms=settle_ms)
    return dom, errors


def measure(html_path: str | Path, expression: str, *, width: int = 1280,
            timeout_s: float = 60.0) -> tuple[object, list[str]]:
    """The value of the JavaScript ``expression`` once ``html_path`` is drawn in a window
    ``width`` CSS pixels wide, and the page's errors (as :func:`render`)."""
    _, value, errors = _open(html_path, timeout_s=timeout_s, settle_ms=200, width=width,
                             expression=expression)
    return value, errors


def _open(html_path: str | Path, *, timeout_s: float, settle_ms: int, width: int = 0,
          expression: str = "") -> tuple[str, object, list[str]]:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium: install it or set CASCADE_CHROMIUM")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="cascade-chromium-") as profile, \
            tempfile.TemporaryFile() as log:
        commands_r, commands_w = os.pipe()
        replies_r, replies_w = os.pipe()

        def to_fds_3_and_4():  # the protocol pipe: Chromium reads fd 3, writes fd 4
            high_r = _dup_high(commands_r)
            high_w = _dup_high(replies_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
            os.close(high_r)
            os.close(high_w)

        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=False,
            preexec_fn=to_fds_3_and_4)
        os.close(commands_r)
        os.close(replies_w)
        devtools = _DevTools(commands_w, replies_r, time.monotonic() + timeout_s)
        try:
            dom, value = devtools.load(url, settle_ms, width, expression)
            devtools.call("Browser.close")
        except RuntimeError as exc:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; chromium said:\n{tail}") from None
        finally:
            os.close(commands_w)
            os.close(replies_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return dom, value, devtools.errors()


def plot_counts(dom: str) -> tuple[int, int]:
    """(plotly figure divs in the DOM, those plotly drew: a ``main-svg`` inside)."""
    starts = [m.start() for m in _FIGURE.finditer(dom)]
    ends = starts[1:] + [len(dom)] if starts else []
    drawn = sum('class="main-svg"' in dom[a:b] for a, b in zip(starts, ends, strict=True))
    return len(starts), drawn


def _dup_high(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, 100)


class _DevTools:
    """The Chrome DevTools protocol over the pipe: NUL-terminated JSON messages."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0

    def load(self, url: str, settle_ms: int, width: int = 0,
             expression: str = "") -> tuple[str, object]:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.call(f"{domain}.enable", session=session)
        if width:
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": int(width), "height": 900, "deviceScaleFactor": 1,
                       "mobile": False}, session=session)
        self.call("Page.navigate", {"url": url}, session=session)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self._receive()
        # a page packed by replay/render/page.py draws its figures after it loads: wait until
        # <html data-plots> is no longer "loading" (or the deadline), then settle
        left_ms = int(max(0.0, self.deadline - time.monotonic() - 2.0) * 1000)
        wait = ("new Promise(r => { const t0 = Date.now(); (function poll() { "
                "if (document.documentElement.dataset.plots !== 'loading' || "
                f"Date.now() - t0 > {left_ms}) setTimeout(r, {int(settle_ms)}); "
                "else setTimeout(poll, 50); })(); })")
        self.call("Runtime.evaluate", {"expression": wait, "awaitPromise": True},
                  session=session)
        result = self.call("Runtime.evaluate",
                           {"expression": "document.documentElement.outerHTML",
                            "returnByValue": True}, session=session)
        value = None
        if expression:
            value = self.call("Runtime.evaluate", {"expression": expression,
                                                   "returnByValue": True},
                              session=session)["result"].get("value")
        return result["result"]["value"], value

    def call(self, method: str, params: dict | None = None, session: str | None = None):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise RuntimeError("chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "id" not in message:
            self.events.append(message)
        return message

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                args = params.get("args", [])
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                found.append(f"console.{params['type']}: {text}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                exc = details.get("exception", {})
                found.append(f"uncaught: {exc.get('description') or details.get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"log: {entry['text']} {entry.get('url', '')}".rstrip())
            elif method == "Network.requestWillBeSent":
                request_url = params["request"]["url"]
                if not request_url.startswith(LOCAL_SCHEMES):
                    found.append(f"request leaves the machine: {request_url}")
        return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/render_report.py RUN_DIR/report.html", file=sys.stderr)
        return 2
    dom, errors = render(argv[0])
    figures, drawn = plot_counts(dom)
    if drawn < figures:
        errors.append(f"{figures - drawn} of {figures} plots not drawn")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"OK: {drawn} plots drawn, no console errors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
