"""The batch worker process (`serving/worker_process.py`): same answers as in a thread, failures that stay
contained, a process killed mid-batch replaced, and the process gone when the server stops."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx2
import numpy as np
import pytest

import convscope as cs

pytest.importorskip("fastapi")

from convscope.errors import UserError
from convscope.serving import worker_process
from convscope.serving.app import create_app
from convscope.serving.batcher import WorkerStopped
from convscope.serving.errors import InvalidPixels
from convscope.serving.service import Job, ServerSettings, load_served, run_jobs
from server_process import server_process
from synthetic import png

# The same images through run_jobs here and in the process: same code, same thread count, but torch
# may pick other kernels in another process, so hold them to the batching tolerance of
# test_server_batching.py.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def digits(trained_run):
    return cs.load_test_set(trained_run)[0].images[:8]


def runner(run_dir: Path) -> worker_process.InProcess:
    return worker_process.InProcess(run_dir, ServerSettings(), "torch", threads=1)


def test_auto_takes_a_process_for_a_run_on_disk_with_two_cores_or_more():
    run = Path("runs/x")
    assert worker_process.choose("auto", run, 2) == "process"
    assert worker_process.choose("auto", run, 1) == "thread"
    assert worker_process.choose("auto", None, 8) == "thread"  # a model in memory
    assert worker_process.choose("thread", run, 8) == "thread"
    assert worker_process.choose("process", run, 1) == "process"  # as asked
    with pytest.raises(UserError, match="this model is in memory: save it"):
        worker_process.choose("process", None, 8)
    with pytest.raises(UserError, match="must be one of auto, process, thread, got 'fork'"):
        worker_process.choose("fork", run, 2)


@pytest.mark.slow
def test_the_process_answers_a_batch_as_run_jobs_does_here_and_a_bad_image_fails_alone(trained_run, digits):
    jobs = [Job(png(image), None, 3) for image in digits[:3]]
    jobs.insert(1, Job(b"\x89PNG\r\n\x1a\nnot really", None, 3))
    jobs.append(Job([[1.0, 2.0]], None, 3))  # JSON pixels of the wrong shape
    here = run_jobs(jobs, load_served(trained_run))

    async def there():
        process = runner(trained_run)
        try:
            await process.start()
            return await process.run(jobs)
        finally:
            await process.close()

    outcomes = asyncio.run(there())
    assert [type(o) for o in outcomes] == [type(o) for o in here] == [dict, UserError, dict, dict, InvalidPixels]
    assert [str(o) for o in outcomes if isinstance(o, Exception)] == [str(o) for o in here if isinstance(o, Exception)]
    assert outcomes[4].status == 422
    for got, expected in zip(outcomes, here):
        if isinstance(got, dict):
            assert (got["label"], got["inverted"], got["framing"]) == (
                expected["label"],
                expected["inverted"],
                expected["framing"],
            )
            np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_a_process_that_cannot_load_its_run_says_so(tmp_path):
    async def start():
        await runner(tmp_path / "gone").start()

    with pytest.raises(RuntimeError, match=r"the batch worker process could not load .*gone: .*"):
        asyncio.run(start())


@pytest.mark.slow
def test_a_process_killed_mid_batch_fails_that_batch_with_503_and_the_next_request_gets_a_new_one(trained_run, digits):
    app = create_app(trained_run, ServerSettings(batch_worker="process"))
    batcher = app.state.batcher

    async def test():
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test", timeout=120) as client:
            try:
                await batcher.start()
                first = batcher.runner.pid
                os.kill(first, signal.SIGSTOP)  # the batch is sent, and never answered
                request = asyncio.ensure_future(client.post("/predict", files={"image": ("d.png", png(digits[0]))}))
                for _ in range(60_000):
                    if batcher.running():
                        break
                    await asyncio.sleep(0.001)
                os.kill(first, signal.SIGKILL)
                died = await request
                again = await client.post("/predict", files={"image": ("d.png", png(digits[1]))})
                return first, died, again, batcher.runner.pid
            finally:
                await batcher.close()

    first, died, again, second = asyncio.run(test())
    assert died.status_code == 503 and died.headers["retry-after"] == "1"
    assert died.json()["error"] == (
        "the model's worker process stopped while running this request's batch; a new one is starting: retry the request."
    )
    assert again.status_code == 200 and second != first


def dead(pid: int) -> None:
    """Wait until `pid`, our child, has exited, without reaping it (WNOWAIT): its parent still can."""
    for _ in range(3000):
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} is still running")


@pytest.mark.slow
def test_a_process_killed_between_batches_is_replaced_before_the_next(trained_run, digits):
    async def test():
        process = runner(trained_run)
        try:
            await process.start()
            first = process.pid
            os.kill(first, signal.SIGKILL)
            dead(first)
            return first, await process.run([Job(png(digits[0]), None, 3)]), process.pid
        finally:
            await process.close()

    first, (outcome,), second = asyncio.run(test())
    assert isinstance(outcome, dict) and second != first


@pytest.mark.slow
def test_a_process_killed_mid_batch_raises_worker_stopped_with_its_exit_code(trained_run, digits):
    async def test():
        process = runner(trained_run)
        try:
            await process.start()
            os.kill(process.pid, signal.SIGSTOP)  # the batch goes out and is never answered
            pending = asyncio.ensure_future(process.run([Job(png(digits[0]), None, 3)]))
            await asyncio.sleep(0.2)
            os.kill(process.pid, signal.SIGKILL)
            await pending
        finally:
            await process.close()

    with pytest.raises(WorkerStopped, match=r"^the batch worker process stopped \(exit code -9\); a new one starts"):
        asyncio.run(test())


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from /proc")
@pytest.mark.parametrize("stop", ["terminate", "ctrl-c"])
def test_the_process_ends_with_the_server_and_ctrl_c_prints_no_traceback(trained_run, stop):
    with server_process(trained_run, "--batch-worker", "process") as (url, server):
        assert httpx2.get(url + "/model").json()["batch_worker"] == "process"
        (worker,) = children(server.pid)
        if stop == "ctrl-c":
            os.kill(worker, signal.SIGINT)  # a terminal's Ctrl-C reaches both
        server.send_signal(signal.SIGINT if stop == "ctrl-c" else signal.SIGTERM)
        server.wait(timeout=60)
        output = server.stdout.read()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists()
    # uvicorn ends a SIGTERM by raising the signal again once it has shut down: -15 is a clean stop
    assert server.returncode in (0, -signal.SIGTERM) and "Traceback" not in output, output
