"""Start `python -m convscope serve` as a real process on a free loopback port (for the server tests)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(run_dir: Path, *args: str, timeout: float = 90.0):
    """Yield the base URL of a server for `run_dir`; stop it (by its own pid) afterwards."""
    with server_process(run_dir, *args, timeout=timeout) as (url, _):
        yield url


@contextlib.contextmanager
def server_process(run_dir: Path, *args: str, timeout: float = 90.0):
    """Yield the base URL and the Popen of a server for `run_dir` (its output in `stdout`); stop it afterwards."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    command = [
        sys.executable,
        "-m",
        "convscope",
        "serve",
        str(run_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
        *args,
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx2.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer /health within {timeout:.0f} s")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
