"""Headless Chromium driven over the DevTools protocol: open a page, evaluate JavaScript in it.

``--dump-dom`` shows what a page says; only a live page shows where things are laid out. The
browser runs with a fresh profile, listens for DevTools on a loopback port it picks itself
(written to ``DevToolsActivePort`` in the profile), and is stopped by its own pid.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import ClientConnection, connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Chromium:
    """``with Chromium(binary, profile) as browser: browser.open(url); browser.evaluate(js)``."""

    def __init__(self, binary: str, profile: Path, window: tuple[int, int] = (1200, 900)) -> None:
        self.binary, self.profile, self.window = binary, profile, window
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: ClientConnection | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                f"--window-size={self.window[0]},{self.window[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        give_up = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert self._process.poll() is None, "chromium exited at start"
            assert time.monotonic() < give_up, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        target = requests.put(f"http://127.0.0.1:{port}/json/new?about:blank", timeout=30).json()
        self._socket = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events on the way are skipped)."""
        assert self._socket is not None
        request_id = next(self._ids)
        self._socket.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") == request_id:
                assert "error" not in message, message
                return message["result"]

    def open(self, url: str) -> None:
        """Navigate the tab to ``url``."""
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60) -> None:
        """Poll until ``expression`` is true in the page; fails when it never becomes true."""
        give_up = time.monotonic() + timeout_s
        while not self.evaluate(expression):
            assert time.monotonic() < give_up, f"never true in the page: {expression}"
            time.sleep(0.05)
