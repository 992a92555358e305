"""The batcher on its own: how batches form, why they are sent, failures and cancellations.

A fake `run_batch`, run by `InThread`, that blocks on a threading.Event holds the worker busy, so the tests decide
exactly what is queued when; nothing here depends on how long anything takes.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from convscope.serving.batcher import DELAY, FULL, READY, Batcher, BatchPolicy, BatchReport, InThread


class Worker:
    """run_batch for the tests: doubles numbers, fails on 'bad', can be held at the gate."""

    def __init__(self, hold: bool = False):
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.entered = threading.Event()
        self.batches: list[list] = []

    def __call__(self, jobs: list) -> list:
        self.batches.append(list(jobs))
        self.entered.set()
        self.gate.wait(timeout=60)
        return [ValueError(f"job {job} is bad") if job == "bad" else job * 2 for job in jobs]


async def until(condition) -> None:
    """Yield to the loop (and to the worker thread) until `condition()` holds; fail after many tries."""
    for _ in range(20_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_idle_request_is_sent_at_once_without_waiting_for_the_window():
    async def main():
        reports: list[BatchReport] = []
        # Had the batcher waited for the window, its report would say so: trigger 'delay', waits >= 1.
        batcher = Batcher(InThread(Worker()), BatchPolicy(max_batch_size=32, max_delay_s=0.05), on_batch=reports.append)
        assert await batcher.submit(21) == 42
        await until(lambda: reports)
        await batcher.close()
        return reports

    (report,) = run(main())
    assert (report.size, report.trigger, report.waits, report.waited_s) == (1, READY, 0, 0.0)


def test_requests_queued_behind_a_running_batch_form_full_batches_then_the_rest():
    async def main():
        worker, reports = Worker(hold=True), []
        batcher = Batcher(InThread(worker), BatchPolicy(max_batch_size=4, max_delay_s=10), on_batch=reports.append)
        first = asyncio.ensure_future(batcher.submit(0))
        await until(worker.entered.is_set)  # the worker holds a batch of one
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 10)]
        await until(lambda: batcher.queue_depth() == 9)
        worker.gate.set()
        results = await asyncio.gather(first, *rest)
        await until(lambda: len(reports) == 4)
        await batcher.close()
        return results, reports, worker.batches

    results, reports, batches = run(main())
    assert results == [2 * i for i in range(10)]
    assert batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert [(r.size, r.trigger, r.waits) for r in reports] == [(1, READY, 0), (4, FULL, 0), (4, FULL, 0), (1, READY, 0)]


def test_the_batcher_waits_for_requests_being_read_and_stops_when_they_arrive():
    async def main():
        reports = []
        batcher = Batcher(InThread(Worker()), BatchPolicy(max_batch_size=8, max_delay_s=10), on_batch=reports.append)
        body_arrived = asyncio.Event()

        async def slow_request(value):  # what a route handler does: read the body, then submit
            with batcher.reading():
                await body_arrived.wait()
            return await batcher.submit(value)

        second = asyncio.ensure_future(slow_request(2))
        await until(lambda: batcher.being_read() == 1)
        first = asyncio.ensure_future(batcher.submit(1))
        await until(lambda: batcher.queue_depth() == 0)  # collected, and waiting for the one being read
        for _ in range(10):
            await asyncio.sleep(0)
        assert not first.done()
        body_arrived.set()
        assert await asyncio.gather(first, second) == [2, 4]
        await until(lambda: reports)
        await batcher.close()
        return reports

    (report,) = run(main())
    assert report.size == 2 and report.trigger == READY and report.waits >= 1


def test_the_window_bounds_the_wait_for_a_request_that_never_arrives():
    async def main():
        reports = []
        batcher = Batcher(InThread(Worker()), BatchPolicy(max_batch_size=8, max_delay_s=0.001), on_batch=reports.append)
        with batcher.reading():  # a client that never finishes sending
            assert await batcher.submit(5) == 10
        await until(lambda: reports)
        await batcher.close()
        return reports

    (report,) = run(main())
    assert report.size == 1 and report.trigger == DELAY and report.waits >= 1


def test_a_bad_job_fails_alone_and_its_batch_mates_succeed():
    async def main():
        worker = Worker(hold=True)
        batcher = Batcher(InThread(worker), BatchPolicy(max_batch_size=8))
        first = asyncio.ensure_future(batcher.submit(1))
        await until(worker.entered.is_set)
        jobs = [asyncio.ensure_future(batcher.submit(job)) for job in (2, "bad", 3)]
        await until(lambda: batcher.queue_depth() == 3)
        worker.gate.set()
        outcomes = await asyncio.gather(first, *jobs, return_exceptions=True)
        await batcher.close()
        return outcomes, worker.batches

    outcomes, batches = run(main())
    assert batches[1] == [2, "bad", 3]  # one forward pass for the three
    assert outcomes[:2] == [2, 4] and outcomes[3] == 6
    assert isinstance(outcomes[2], ValueError) and "bad" in str(outcomes[2])


def test_clients_that_go_away_mid_batch_or_in_the_queue_break_nothing():
    async def main():
        worker = Worker(hold=True)
        batcher = Batcher(InThread(worker), BatchPolicy(max_batch_size=8))
        running = [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        await until(worker.entered.is_set)
        queued = [asyncio.ensure_future(batcher.submit(i)) for i in (3, 4)]
        await until(lambda: batcher.queue_depth() == 2)
        running[0].cancel()  # disconnected while its batch runs
        queued[0].cancel()  # disconnected while queued
        worker.gate.set()
        kept = await asyncio.gather(running[1], queued[1])
        after = await batcher.submit(5)  # the batcher still serves
        await batcher.close()
        return kept, after, worker.batches, running[0].cancelled(), queued[0].cancelled()

    kept, after, batches, cancelled_running, cancelled_queued = run(main())
    assert kept == [4, 8] and after == 10
    assert cancelled_running and cancelled_queued
    assert [3] not in batches and all(3 not in batch for batch in batches)  # a cancelled queued job is never run


def test_a_crashing_run_batch_fails_its_batch_and_the_next_one_runs():
    calls = []

    def flaky(jobs):
        calls.append(jobs)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [job + 1 for job in jobs]

    async def main():
        batcher = Batcher(InThread(flaky), BatchPolicy())
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit(1)
        value = await batcher.submit(2)
        await batcher.close()
        return value

    assert run(main()) == 3


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchPolicy(max_batch_size=0)
    with pytest.raises(ValueError, match="max_delay_s"):
        BatchPolicy(max_delay_s=-1)
