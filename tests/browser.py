"""A minimal Chrome DevTools Protocol client for tests: the system Chromium, headless, driven
over ``--remote-debugging-pipe`` (JSON messages ending in NUL on file descriptors 3 and 4), so
there is no port, no network and no driver package to install."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",  # no connections: the machine's network is closed
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)
# Chromium reads commands on fd 3 and writes replies on fd 4: move the pipe ends there (via
# fds >= 10 first, so neither clobbers the other) and exec the browser.
LAUNCH = (
    "import fcntl, os, sys\n"
    "r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
    "os.dup2(r, 3)\nos.dup2(w, 4)\nos.execv(sys.argv[3], sys.argv[3:])\n"
)


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, BINARIES)), None)


class Browser:
    """One headless Chromium; ``events`` collects every protocol event received so far."""

    def __init__(self, binary: str, timeout: float = 60):
        self.timeout, self.events, self.buffer, self.last_id = timeout, [], b"", 0
        self.profile = tempfile.TemporaryDirectory(prefix="chromium-")
        commands_in, self.commands = os.pipe()
        self.replies, replies_out = os.pipe()
        self.log = open(os.path.join(self.profile.name, "stderr.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCH,
                str(commands_in),
                str(replies_out),
                binary,
                *FLAGS,
                f"--user-data-dir={self.profile.name}",
                "about:blank",
            ],
            pass_fds=(commands_in, replies_out),
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,  # its own process group: closed as a whole
        )
        os.close(commands_in)
        os.close(replies_out)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> dict:
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.events.append(self._receive())

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.replies], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError(f"no reply from chromium in {self.timeout} s{self._tail()}")
            chunk = os.read(self.replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed the pipe{self._tail()}")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def _tail(self) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as fh:
            return "; its log ends: " + fh.read()[-800:].decode(errors="replace")

    def open(self, url: str, width: int = 1280, height: int = 900) -> str:
        """Load ``url`` in a new tab of ``width`` x ``height``; return the tab's session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = session["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, session: str, expression: str):
        """The value of a JavaScript expression (awaited when it is a promise)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str) -> bytes:
        return base64.b64decode(
            self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        )

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):  # it may just exit
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.commands)
        os.close(self.replies)
        self.log.close()
        self.profile.cleanup()
