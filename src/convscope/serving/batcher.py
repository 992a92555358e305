"""Adaptive batching: many concurrent requests, one forward pass, no waiting when nobody is coming.

Route handlers read their request bodies on the event loop and `submit` one job per image. One
collector task forms batches from the queue and hands each to a single worker thread, which runs
`run_batch(jobs)` (decode and preprocess every image, then one forward pass for the good ones) and
gives one outcome per job: a result, or the exception that job alone fails with.

When to stop collecting, the part that makes it adaptive:
- the batch is full (`max_batch_size`): go;
- the queue is empty and no request is still being read (`reading() == 0`): nothing is on its way,
  so go at once; a lone request on an idle server is never delayed by the window;
- otherwise wait for the requests being read, at most `max_delay_s` after the first wait.

The next batch is collected only once the worker is free, so under load the queue fills while the
model runs and batches grow with the load by themselves (the way Triton's dynamic batcher and
TorchServe's `max_batch_delay` work, with the window used only when it can pay off).

Where a batch runs is its `Runner`'s business: `InThread` (one worker thread in this process) or
`worker_process.InProcess` (a process of its own, where decoding and the model no longer take turns
with the event loop for the GIL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("convscope.serving")

# Why a batch left the queue: the batch-size histogram tells how big, this tells why.
FULL, READY, DELAY = "full", "ready", "delay"


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int = 32
    max_delay_s: float = 0.002

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_delay_s < 0:
            raise ValueError(f"max_delay_s must be 0 or more, got {self.max_delay_s}")


@dataclass(frozen=True)
class BatchReport:
    """What the batcher did with one batch: for metrics and for the tests."""

    size: int
    trigger: str  # FULL, READY (nothing else queued or being read) or DELAY (the window ran out)
    waits: int  # how often the collector suspended to wait for more; 0: sent as soon as it was seen
    waited_s: float  # time spent in those waits
    run_s: float  # decode + forward in the worker, with the trip there and back
    queued: int  # jobs left in the queue when this batch was sent


class WorkerStopped(RuntimeError):
    """The runner's worker died during a batch (a process killed, say); the runner replaces it for the next."""


class Runner(Protocol):
    """Runs one batch at a time: `run(jobs)` gives one outcome per job, a result or that job's exception."""

    async def start(self) -> None: ...

    async def run(self, jobs: list[Any]) -> list[Any]: ...

    async def close(self) -> None: ...


class InThread:
    """`run_batch(jobs)` in one worker thread of this process."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]]):
        self.run_batch = run_batch
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._pool = self._pool or ThreadPoolExecutor(max_workers=1, thread_name_prefix="convscope-batch")

    async def run(self, jobs: list[Any]) -> list[Any]:
        await self.start()
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run_batch, jobs)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


@dataclass
class _Pending:
    job: Any
    future: asyncio.Future


class Batcher:
    """Queue + collector task + the runner of its batches. Start it on the server's event loop."""

    def __init__(
        self,
        runner: Runner,
        policy: BatchPolicy = BatchPolicy(),
        on_batch: Callable[[BatchReport], None] | None = None,
        on_queue: Callable[[int], None] | None = None,
    ):
        self.runner, self.policy = runner, policy
        self.on_batch = on_batch or (lambda report: None)
        self.on_queue = on_queue or (lambda depth: None)
        self._queue: deque[_Pending] = deque()
        self._reading = 0
        self._running = 0  # jobs in the batch the worker is running
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    # --- the request side ----------------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Wrap the reading of a request body: the collector waits for requests it knows are coming."""
        self._reading += 1
        try:
            yield
        finally:
            self._reading -= 1
            self._poke()

    async def submit(self, job: Any) -> Any:
        """The job's result, or its own exception, once a batch containing it has run."""
        self._ensure_started()
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(job, future))
        self.on_queue(len(self._queue))
        self._poke()
        return await future

    async def submit_all(self, jobs: list[Any]) -> list[Any]:
        """Several jobs (one /predict/batch call); outcomes in order, exceptions returned, not raised."""
        return await asyncio.gather(*(self.submit(job) for job in jobs), return_exceptions=True)

    def queue_depth(self) -> int:
        return len(self._queue)

    def being_read(self) -> int:
        return self._reading

    def running(self) -> int:
        return self._running

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the runner now (a worker process loads its model) rather than on the first request."""
        await self.runner.start()
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._changed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._serve(), name="convscope-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending in self._queue:
            if not pending.future.done():
                pending.future.cancel()
        self._queue.clear()
        await self.runner.close()

    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # --- the collector -------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            batch, trigger, waits, waited = await self._collect()
            if not batch:
                continue
            started = time.perf_counter()
            self._running = len(batch)
            try:
                outcomes = await self.runner.run([p.job for p in batch])
            except asyncio.CancelledError:
                raise
            except WorkerStopped as exc:
                log.error("a batch of %d failed: %s", len(batch), exc)
                outcomes = [exc] * len(batch)
            except Exception as exc:
                log.exception("a batch of %d failed", len(batch))
                outcomes = [exc] * len(batch)
            finally:
                self._running = 0
            run_s = time.perf_counter() - started
            for pending, outcome in zip(batch, outcomes):
                if pending.future.done():  # its client went away and the handler was cancelled
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)
            self.on_queue(len(self._queue))
            self.on_batch(BatchReport(len(batch), trigger, waits, waited, run_s, len(self._queue)))

    async def _collect(self) -> tuple[list[_Pending], str, int, float]:
        assert self._changed is not None
        while not self._queue:
            self._changed.clear()
            await self._changed.wait()
        batch: list[_Pending] = []
        waits, waited, deadline = 0, 0.0, None
        trigger = READY
        while True:
            while self._queue and len(batch) < self.policy.max_batch_size:
                pending = self._queue.popleft()
                if not pending.future.done():  # cancelled while queued: its client is gone
                    batch.append(pending)
            if len(batch) >= self.policy.max_batch_size:
                trigger = FULL
                break
            if self._reading == 0:
                break  # nothing queued and nothing on its way: waiting could only add latency
            now = time.perf_counter()
            deadline = deadline if deadline is not None else now + self.policy.max_delay_s
            if now >= deadline:
                trigger = DELAY
                break
            waits += 1
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):  # TimeoutError itself from Python 3.11
                await asyncio.wait_for(self._changed.wait(), deadline - now)
            waited += time.perf_counter() - now
        return batch, trigger, waits, waited
