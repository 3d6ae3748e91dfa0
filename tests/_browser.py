"""A real headless Chromium driven over the DevTools protocol (websockets, no browser download).

Chromium comes from the Debian package (`.ci/run` installs it). Console errors, uncaught
exceptions and failed loads are collected so a test can assert the page had none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests._services import unavailable

__all__ = ["Browser"]

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--remote-debugging-port=0", "--window-size=1400,1800",
]  # fmt: skip


class Browser:
    """One Chromium process and one page; `errors` lists what the page logged as errors."""

    def __init__(self) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            unavailable("chromium (apt-get install chromium)")
        self._profile = Path(tempfile.mkdtemp(prefix="companion-chromium-"))
        self._process = subprocess.Popen(
            [str(binary), *_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)  # real-time: waiting on a real browser to start
        port, path = port_file.read_text().splitlines()[:2]
        self._stack = contextlib.ExitStack()
        self._ids = itertools.count(1)
        self.errors: list[str] = []
        try:
            url = f"ws://127.0.0.1:{port}{path}"
            self._ws: ClientConnection = self._stack.enter_context(connect(url, max_size=None))
            target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
            self._session = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.command(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _send(self, method: str, params: dict[str, Any] | None = None, **extra: Any) -> Any:
        message_id = next(self._ids)
        self._ws.send(
            json.dumps({"id": message_id, "method": method, "params": params or {}, **extra})
        )
        while True:
            message = json.loads(self._ws.recv(timeout=30))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._collect(message)

    def _collect(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] in {"error", "assert"}:
            self.errors.append(" ".join(str(arg.get("value")) for arg in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['text']} ({entry.get('url', '')})")

    def command(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send a command to the page and return its result (events are collected meanwhile)."""
        return self._send(method, params, sessionId=self._session)

    def goto(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self.command("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']['text']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 20.0) -> Any:
        """Poll until `expression` is truthy in the page; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {expression}")
            time.sleep(0.1)  # real-time: the page polls a real server on its own timer

    def screenshot(self, path: Path) -> Path:
        """Save a full-page PNG to `path`."""
        data = self.command(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def close(self) -> None:
        """Stop the browser and remove its profile."""
        stack = getattr(self, "_stack", None)
        if stack is not None:
            stack.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
