"""What the first-hour tests share: the demo started in a subprocess from an empty folder as a newcomer starts it,
its demo.env sourced as a second terminal would, and commands run as the user pastes them."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

CLI = [sys.executable, "-m", "voucher_engine.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VE_") and k not in ("DATABASE_URL", "VE")}


class Demo:
    def __init__(self, cwd: Path, port: int):
        self.cwd, self.port = cwd, port
        self.out = cwd / f"demo-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [*CLI, "demo", "--port", str(port)],
            cwd=cwd,
            env=_clean_env(),
            stdout=self.out.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.out.read_text()
            time.sleep(0.3)
        else:
            raise AssertionError(self.out.read_text())

    def printed(self) -> str:
        return self.out.read_text()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _sourced(env_file: Path) -> dict[str, str]:
    env = _clean_env()
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    args = shlex.split(command)
    assert args[0] == "voucher-engine"
    return subprocess.run([*CLI, *args[1:]], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
