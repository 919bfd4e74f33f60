"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on fd 3, answers on fd 4, NUL-separated JSON), so the browser can run inside a
lab namespace with no debugging port to reach. Collects console errors and uncaught
exceptions while it runs."""

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

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1100", "--remote-debugging-pipe")  # fmt: skip


class BrowserError(RuntimeError):
    pass


def trust_keys_flag(*certs: Path) -> str:
    """Chromium accepts the server certificates with these public keys
    (--ignore-certificate-errors-spki-list: base64 SHA-256 of each SubjectPublicKeyInfo;
    honoured with --user-data-dir, which Browser always gives): HTTPS to servers with a
    private CA, without a certificate database to import the CA into, and without
    ignoring certificate errors from anything else."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pins = []
    for path in certs:
        key = x509.load_pem_x509_certificate(path.read_bytes()).public_key()
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(der)
        pins.append(base64.b64encode(digest.finalize()).decode())
    return f"--ignore-certificate-errors-spki-list={','.join(pins)}"


class Browser:
    def __init__(
        self, chromium: str, prefix: tuple[str, ...] = (), flags: tuple[str, ...] = ()
    ) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="floatgate-chromium-"))
        self.errors: list[str] = []
        self._answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next = 0
        self._session: str | None = None
        commands_r, self._commands = os.pipe()
        self._answers_fd, answers_w = os.pipe()
        assert min(commands_r, answers_w) > 4

        def to_fds() -> None:  # in the child, before exec: fd 3 reads, fd 4 writes
            os.dup2(commands_r, 3)
            os.dup2(answers_w, 4)

        self.log = self.profile / "chromium.log"
        self.proc = subprocess.Popen(
            [*prefix, chromium, *FLAGS, *flags, f"--user-data-dir={self.profile / 'data'}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
            preexec_fn=to_fds, close_fds=False,
        )  # fmt: skip
        os.close(commands_r)
        os.close(answers_w)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._answers_fd, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._dispatch(json.loads(raw))
        with self._cond:
            self._cond.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            with self._cond:
                self._answers[message["id"]] = message
                self._cond.notify_all()
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(f"exception: {details.get('text')} {details.get('exception')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} ({entry.get('url')})")

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0,
             session: bool = True) -> dict[str, Any]:  # fmt: skip
        with self._cond:
            self._next += 1
            ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session and self._session is not None:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise BrowserError(f"{method}: no answer; chromium log:\n{self._log()}")
                self._cond.wait(left)
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attach = {"targetId": target["targetId"], "flatten": True}
        attached = self.call("Target.attachToTarget", attach, session=False)
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def _log(self) -> str:
        try:
            return self.log.read_text()[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", session=False, timeout=5)
                self.proc.wait(10)
        except (BrowserError, OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            for fd in (self._commands, self._answers_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(self.profile, ignore_errors=True)
