"""A language-server client that knows nothing of cnnspec: JSON-RPC 2.0 over a subprocess's stdio with
Content-Length framing, as every editor speaks it. The tests drive ``cnnspec lsp`` through it."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CNNSPEC = [sys.executable, "-m", "cnnspec"]


class Client:
    def __init__(self, command=None, cwd=ROOT, env=None):
        self.proc = subprocess.Popen(command or CNNSPEC + ["lsp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=cwd, env=env or {**os.environ, "PYTHONUNBUFFERED": "1"})
        self.messages: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.stderr_lines: list[bytes] = []
        threading.Thread(target=lambda: self.stderr_lines.extend(self.proc.stderr), daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(out.read(length)))

    def send_raw(self, body: bytes) -> None:
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_raw(json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8"))

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def _next(self, deadline: float):
        try:
            message = self.messages.get(timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Empty:
            raise TimeoutError("no message from the server in time") from None
        if message is None:
            raise EOFError("the server closed its output")
        return message

    def request(self, method: str, params: dict | None = None, timeout: float = 20.0):
        self.next_id += 1
        rid = self.next_id
        self.send({"id": rid, "method": method, "params": params if params is not None else {}})
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(deadline)
            if message.get("id") == rid and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result")
            self._keep(message)

    def _keep(self, message: dict) -> None:
        if "method" in message and "id" in message:  # a request from the server: answer it empty
            self.send({"id": message["id"], "result": None})
        self.notifications.append(message)

    def wait_for(self, method: str, match=lambda params: True, timeout: float = 20.0) -> dict:
        """The first notification ``method`` (already received or coming) whose params match; consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, n in enumerate(self.notifications):
                if n.get("method") == method and match(n.get("params")):
                    return self.notifications.pop(i)["params"]
            self._keep(self._next(deadline))

    def diagnostics(self, uri: str, version: int | None = None, timeout: float = 20.0) -> list[dict]:
        return self.wait_for("textDocument/publishDiagnostics",
                             lambda p: p["uri"] == uri and (version is None or p.get("version") == version),
                             timeout)["diagnostics"]

    def initialize(self, capabilities: dict | None = None) -> dict:
        result = self.request("initialize", {"processId": os.getpid(), "rootUri": ROOT.as_uri(),
                                             "capabilities": capabilities or {}})
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": version,
                                                              "text": text}})

    def change(self, uri: str, text: str, version: int) -> None:
        self.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [{"text": text}]})

    def at(self, method: str, uri: str, line: int, character: int, **extra):
        return self.request(method, {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                                     **extra})

    def hints(self, uri: str, lines: int = 100_000):
        return self.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": lines, "character": 0}}})

    def close(self, timeout: float = 10.0) -> int:
        """shutdown, exit; the exit code."""
        try:
            self.request("shutdown", timeout=timeout)
            self.notify("exit", {})
        except (EOFError, BrokenPipeError, OSError):
            pass
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.close()
