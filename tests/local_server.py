"""A real server subprocess on 127.0.0.1 for the tests (`infuse serve`, llama.cpp's server):
started as a user starts it, its output in a log file, waited for until it answers, stopped by
its pid. The serve tests and the quickstart-through-a-server tests share it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """This environment with the checkout first on PYTHONPATH (the subprocess runs this infuse)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`command --port N` on a free port; `ready_path` (if any) answers 200 before this returns.

    The output goes to the file `log` (a pipe that nobody reads would fill and block the server).
    A server that exits or is not ready within `timeout_s` is stopped and raises RuntimeError
    with the end of its log.
    """

    def __init__(self, command: list[str], log: Path, *, ready_path: str | None = None,
                 headers: dict[str, str] | None = None, timeout_s: float = 120):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/v1"
        self.log = log
        self.handle = open(log, "wb")
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], stdout=self.handle, stderr=subprocess.STDOUT,
            env=subprocess_env(), cwd=str(log.parent),
        )
        if ready_path:
            self.wait(ready_path, timeout_s, headers=headers)

    def wait(self, path: str, timeout_s: float, *, headers: dict[str, str] | None = None) -> None:
        """Until GET `path` answers 200 (RuntimeError, the server stopped, if it never does)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self._log_tail()}")
            try:
                if httpx.get(self.url + path, headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not {path} in {timeout_s}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()
