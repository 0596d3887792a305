"""Headless Chromium driven over the Chrome DevTools Protocol (CDP), for tests of pages in a
real browser: start it, open one tab, send commands and collect the events they cause.

Chromium is started with ``--remote-debugging-port=0`` (it picks a free port) and writes the
port and the browser's WebSocket path to ``DevToolsActivePort`` in its profile folder; the
tab is a target attached in flat mode (commands carry its ``sessionId``).
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome")


def executable() -> str | None:
    """Debian's chromium (or another Chromium-based browser) on the PATH, or None."""
    return next((found for name in EXECUTABLES if (found := shutil.which(name))), None)


class Browser:
    """One headless browser and one tab. ``events``: every event of the tab since it opened."""

    def __init__(self, program: str, profile: Path, timeout: float = 30.0) -> None:
        import websocket  # websocket-client, the test extra's

        self.process = subprocess.Popen(
            [program, "--headless=new", "--no-sandbox", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.timeout, self.ids, self.events = timeout, itertools.count(1), []
        try:
            port, path = self._active_port(profile / "DevToolsActivePort")
            # No Origin header: Chromium refuses a WebSocket from an origin it was not told to allow.
            self.socket = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=timeout,
                                                      suppress_origin=True)
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    def _active_port(self, path: Path) -> tuple[str, str]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited with status {self.process.returncode} before it listened")
            lines = path.read_text().splitlines() if path.exists() else []
            if len(lines) >= 2:
                return lines[0], lines[1]
            time.sleep(0.05)
        raise TimeoutError(f"Chromium wrote no {path.name} in {self.timeout:.0f} s")

    def send(self, method: str, session: bool = True, **params: Any) -> dict[str, Any]:
        """A command's result (to the tab, once attached); events meanwhile go to ``events``."""
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params}
        if session and hasattr(self, "session"):
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            reply = self._receive()
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _receive(self) -> dict[str, Any]:
        reply = json.loads(self.socket.recv())
        if "method" in reply and reply.get("sessionId") == getattr(self, "session", None):
            self.events.append(reply)
        return reply

    def wait_for(self, method: str, after: int = 0) -> dict[str, Any]:
        """The first event ``method`` of the tab from ``events[after:]`` on, waiting for it."""
        deadline = time.monotonic() + self.timeout
        while True:
            found = next((e for e in self.events[after:] if e["method"] == method), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} in {self.timeout:.0f} s")
            self._receive()

    def open(self, url: str) -> None:
        """Navigate the tab to ``url`` and wait until it has loaded (images included)."""
        start = len(self.events)
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", start)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, **params: Any) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png", **params)["data"])

    def pdf(self) -> bytes:
        return base64.b64decode(self.send("Page.printToPDF", printBackground=True)["data"])

    def close(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            try:
                self.send("Browser.close", session=False)
            except Exception:  # it may go before it answers
                pass
            socket.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
