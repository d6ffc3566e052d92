"""A minimal headless-Chromium driver over the DevTools protocol, standard library only.

Chromium's ``--remote-debugging-pipe`` speaks the DevTools protocol on file descriptors 3 (commands in)
and 4 (events and replies out), one NUL-terminated JSON message each: no websocket package, no npm,
no fixed port. The page's console errors, uncaught exceptions and failed loads are collected as events
(Runtime.consoleAPICalled, Runtime.exceptionThrown, Log.entryAdded) from the first navigation on.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _frames(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every frame of a Page.getFrameTree tree, depth first."""
    return [node["frame"], *(f for child in node.get("childFrames", []) for f in _frames(child))]


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: str, *, width: int = 1400, height: int = 900, timeout: float = 120.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads fd 3
        self._evt_r, evt_w = os.pipe()  # Chromium writes fd 4, we read

        def child_fds() -> None:
            os.dup2(cmd_r, 3)
            os.dup2(evt_w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=child_fds,
            pass_fds=(3, 4),
            close_fds=True,
        )  # 3, 4 made by child_fds
        os.close(cmd_r)
        os.close(evt_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.session = self._attach_page()

    # ------------------------------------------------------------------ transport
    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._evt_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cv:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cv.notify_all()

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = "page"
    ) -> dict:
        """Send one command and wait for its reply (an error reply raises RuntimeError)."""
        self._next_id += 1
        mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session == "page":
            session = getattr(self, "session", None)
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cv:
            while mid not in self._replies:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"chromium exited ({self.proc.returncode}) during {method}")
                if not self._cv.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no reply to {method} in {self.timeout:.0f}s")
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _attach_page(self) -> str:
        targets = self.send("Target.getTargets", session=None)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        return self.send(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, session=None
        )["sessionId"]

    # ------------------------------------------------------------------ page
    def open(self, url: str) -> None:
        """Enable the event domains, then navigate and wait for the load event."""
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        n = len(self.events)
        self.send("Page.navigate", {"url": url})
        self.wait_for_event("Page.loadEventFired", start=n)

    def wait_for_event(self, method: str, *, start: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        with self._cv:
            while True:
                for ev in self.events[start:]:
                    if ev.get("method") == method:
                        return ev
                if not self._cv.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no {method} in {self.timeout:.0f}s")

    def evaluate(self, expression: str, *, context_id: int | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context_id is not None:
            params["contextId"] = context_id
        res = self.send("Runtime.evaluate", params)
        if "exceptionDetails" in res:
            raise RuntimeError(
                f"{expression[:80]}: {res['exceptionDetails'].get('text')} "
                f"{res['exceptionDetails'].get('exception', {}).get('description', '')}"
            )
        return res["result"].get("value")

    def wait_until(self, expression: str, *, what: str, context_id: int | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy (a generous guard, not a timing assertion)."""
        deadline = time.monotonic() + self.timeout
        while True:
            value = self.evaluate(expression, context_id=context_id)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.timeout:.0f}s for {what}")
            time.sleep(0.1)

    def frame_context(self, url_prefix: str) -> int:
        """The execution context of the (i)frame whose URL starts with url_prefix (e.g. 'data:text/html')."""
        deadline = time.monotonic() + self.timeout
        while True:
            frames = _frames(self.send("Page.getFrameTree")["frameTree"])
            ids = {f["id"] for f in frames if f.get("url", "").startswith(url_prefix)}
            with self._cv:
                ctx = [
                    e["params"]["context"]
                    for e in self.events
                    if e.get("method") == "Runtime.executionContextCreated"
                    and e["params"]["context"].get("auxData", {}).get("frameId") in ids
                    and e["params"]["context"].get("auxData", {}).get("isDefault")
                ]
            if ctx:
                return ctx[-1]["id"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no frame with a URL starting {url_prefix!r}")
            time.sleep(0.1)

    def screenshot(self, path: str | os.PathLike) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries (failed loads, CSP, ...) so far."""
        out = []
        with self._cv:
            events = list(self.events)
        for ev in events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                out.append(f"console.{p['type']}: {args}")
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}")
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
        return out

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", session=None)
                except (RuntimeError, TimeoutError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
        finally:
            for fd in (self._cmd_w, self._evt_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
