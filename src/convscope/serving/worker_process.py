"""The batcher's worker in a process of its own, so that HTTP and the model use different cores.

In one process the event loop (reading requests, writing responses) and the batch worker
(decoding images, the forward pass) take turns holding the GIL, so the server uses about one core
however many it has: /predict reached 0.36 of /health's rate on 2 cores. With the worker in a
process of its own each has a core and they overlap (BENCHMARKS.md, "Serving at the model's speed").

The event loop talks to the process over a socket pair, a length-prefixed pickle each way: the
jobs of one batch out, their outcomes back. Nothing else is in between: a ProcessPoolExecutor adds
a feeder and a manager thread on the server's side, and with one a lone request took 4.6 ms
against 3.8 ms without (load_test.py, one client, p50). The process is a fresh interpreter,
`python -m convscope.serving.worker_process FD`: a fork would copy the server's event loop, its
threads and torch's thread pool in states the child cannot use, and multiprocessing's spawn re-runs
the main script of the program, so a script that calls `create_app` unguarded would start a second
server. The process loads the run from its directory itself, with the engine the server chose, and
ends when the server closes its end of the pair, or when the server dies, which closes it too.

`auto` picks the process where it pays: the run is on disk and the server has 2 cores or more to
itself (with `convscope serve --workers N`, its share of them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..i18n import _
from .batcher import WorkerStopped
from .service import Job, ServerSettings, load_served, run_jobs

CHOICES = ("auto", "process", "thread")
_LENGTH = struct.Struct("!Q")

log = logging.getLogger("convscope.serving")


def choose(asked: str, run_dir: Path | None, cores: int) -> str:
    """'process' or 'thread' for `asked` (one of CHOICES), the run's directory (None: in memory) and the cores."""
    if asked not in CHOICES:
        raise UserError(
            _("the batch worker must be one of {choices}, got {asked!r}.").format(
                choices=", ".join(CHOICES), asked=asked
            )
        )
    if asked == "process" and run_dir is None:
        raise UserError(
            _(
                "a batch worker process loads the run from its directory, and this model is in memory: save it (convscope.save_run) and serve the directory, or use a batch worker thread."
            )
        )
    if asked == "auto":
        return "process" if run_dir is not None and cores >= 2 else "thread"
    return asked


class InProcess:
    """A `batcher.Runner` whose batches run in a process of its own, holding its own copy of the model.

    Pickles cross only between the server and this child of its own, never from a client or a file."""

    def __init__(self, run_dir: Path, settings: ServerSettings, engine: str, threads: int):
        # `engine` is the one the server chose: the process does not measure `auto` a second time
        self.run_dir, self.settings, self.threads = Path(run_dir), replace(settings, engine=engine), threads
        self._process: subprocess.Popen | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the process and wait until it has loaded the model; nothing to do while one is running."""
        if self._process is not None and self._process.poll() is None:
            return
        await self.close()
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=_importing_this_convscope(),
            )
        self._reader, self._writer = await asyncio.open_connection(sock=ours)
        self._writer.write(_framed(pickle.dumps((str(self.run_dir), self.settings, self.threads))))
        try:
            status, detail = pickle.loads(await self._receive())
        except (asyncio.IncompleteReadError, ConnectionError):
            status, detail = "failed", f"it exited with code {await self._exit_code()}"
        if status != "ready":
            await self.close()
            raise RuntimeError(f"the batch worker process could not load {self.run_dir}: {detail}")

    async def run(self, jobs: list[Job]) -> list[Any]:
        await self.start()  # again, if the last one died between batches
        assert self._writer is not None
        try:
            self._writer.write(_framed(pickle.dumps(jobs, protocol=pickle.HIGHEST_PROTOCOL)))
            await self._writer.drain()
            outcomes = pickle.loads(await self._receive())
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await self._exit_code()
            await self.close()
            raise WorkerStopped(
                f"the batch worker process stopped (exit code {code}); a new one starts with the next batch"
            ) from None
        if isinstance(outcomes, BaseException):  # a bug in run_jobs: the batch fails, as in a thread
            raise outcomes
        return outcomes

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # the process reads the end of its input and exits
            self._reader = self._writer = None
        if self._process is not None:
            process, self._process = self._process, None
            try:
                await asyncio.to_thread(process.wait, 10)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)

    async def _receive(self) -> bytes:
        assert self._reader is not None
        (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
        return await self._reader.readexactly(length)

    async def _exit_code(self) -> int | None:
        if self._process is None:
            return None
        try:
            return await asyncio.to_thread(self._process.wait, 5)
        except subprocess.TimeoutExpired:
            return None


def _importing_this_convscope() -> dict[str, str]:
    """The environment, with this convscope first on the path: the process imports the server's own code."""
    import convscope

    root = str(Path(convscope.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


# --- in the worker process ---------------------------------------------------------------------


def main(fd: int) -> None:
    """The worker process: what to load comes first, then each batch of jobs is answered until EOF."""
    # Ctrl-C reaches the whole process group; the server decides when this process ends (by closing
    # the connection), and a KeyboardInterrupt here would only print a traceback beside its own exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with socket.socket(fileno=fd) as connection, contextlib.suppress(ConnectionError):
        # ConnectionError: the server stopped while this batch ran; nobody is left to answer
        message = _recv(connection)
        if message is not None:
            serve_batches(connection, *pickle.loads(message))


def serve_batches(connection: socket.socket, run_dir: str, settings: ServerSettings, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        served = load_served(run_dir, settings)
    except Exception as exc:  # noqa: BLE001  (whatever it is, the server reports it and stops)
        _send(connection, pickle.dumps(("failed", f"{type(exc).__name__}: {exc}")))
        return
    gc.collect()
    gc.freeze()  # as the server does (app.gc_frozen): no full collection walks torch and the model mid-batch
    _send(connection, pickle.dumps(("ready", None)))
    while (message := _recv(connection)) is not None:
        try:
            answer = pickle.dumps(run_jobs(pickle.loads(message), served), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            log.exception("a batch failed in the batch worker process")
            answer = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))  # its own type may not unpickle
        _send(connection, answer)


def _framed(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _send(connection: socket.socket, data: bytes) -> None:
    connection.sendall(_framed(data))


def _recv(connection: socket.socket) -> bytes | None:
    """One message, or None at the end of the input (the server closed its end, or died)."""
    head = _recv_exactly(connection, _LENGTH.size)
    if head is None:
        return None
    return _recv_exactly(connection, _LENGTH.unpack(head)[0])


def _recv_exactly(connection: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view, received = memoryview(buffer), 0
    while received < size:
        count = connection.recv_into(view[received:])
        if count == 0:
            return None
        received += count
    return bytes(buffer)


if __name__ == "__main__":
    main(int(sys.argv[1]))
