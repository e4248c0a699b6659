"""A headless Chromium driven over the Chrome DevTools Protocol, for the HTML report's tests.

The protocol runs over a pair of pipes (`--remote-debugging-pipe`: commands on the browser's file
descriptor 3, replies and events on 4, each message a JSON text ended by a NUL byte), so there is
no port, no websocket and no network: the report must show everything from its own file. Chromium
comes from the distribution's packages (`.ci/run` installs it); the `browser` fixture skips the
tests that need it where it is absent.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

__all__ = ["Browser", "Page", "browser"]

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)


class Page:
    """One tab, attached through a flat session; events are kept for the test to look at."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send a command to the page; returns its result (raises on a protocol error)."""
        return self.browser.send(method, timeout=timeout, session=self.session, **params)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The next event `method` of this page (events that came first are kept in `events`)."""
        seen = len(self.events)
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            self.browser.pump(deadline)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited when it is a promise)."""
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression!r} raised in the page: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def load(self, path: Path) -> None:
        """Open a file and wait for its load event."""
        self.send("Page.navigate", url=path.as_uri())
        self.wait_for("Page.loadEventFired", timeout=60)

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
                            "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_text(self, selector: str, text: str) -> None:
        """Focus the element and type `text` into it, as a keyboard would."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:
        """A PNG of the page as it shows now."""
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def errors(self) -> list[str]:
        """Every console error, uncaught exception and error logged by the browser for this page."""
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(str(params["entry"]))
        return found


class Browser:
    """A Chromium process with its DevTools pipes."""

    def __init__(self, executable: str, profile: Path) -> None:
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()
        # Chromium wants its pipes as fds 3 and 4. A small Python moves them there and execs it
        # (no preexec_fn: it forks a threaded process), from fds above 4 so that neither move
        # clobbers the other.
        theirs = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5) for fd in (commands_r, replies_w)]
        os.close(commands_r)
        os.close(replies_w)
        launch = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"
        self.process = subprocess.Popen(
            [sys.executable, "-c", launch, str(theirs[0]), str(theirs[1]), executable, "--headless", "--remote-debugging-pipe",
             "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", "--window-size=1280,900",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=theirs,
        )
        for fd in theirs:
            os.close(fd)
        self._next = 0
        self._buffer = b""
        self._replies_by_id: dict[int, dict[str, Any]] = {}
        self.pages: dict[str, Page] = {}

    def pump(self, deadline: float) -> None:
        """Read what the browser sent, until at least one message arrived or the deadline passed."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._replies], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited (status {self.process.poll()})")
            self._buffer += chunk
            if b"\0" in self._buffer:
                *messages, self._buffer = self._buffer.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies_by_id[message["id"]] = message
                    elif message.get("sessionId") in self.pages:
                        self.pages[message["sessionId"]].events.append(message)
                return

    def send(self, method: str, timeout: float = 30, session: Optional[str] = None, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its reply; returns its result."""
        self._next += 1
        number = self._next
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while number not in self._replies_by_id:
            self.pump(deadline)
        reply = self._replies_by_id.pop(number)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def new_page(self) -> Page:
        """A new tab with the page, runtime, log and network domains enabled."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = self.pages[session] = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        return page

    def close(self) -> None:
        """End the browser and reap it."""
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A headless Chromium for the module's tests; skips them where there is none."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it in CI)")
    driver = Browser(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.close()
