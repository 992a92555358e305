"""How many threads torch uses while training: the plan from the CPU this process can get (`convscope.cpu`),
then adjusted while the fit runs.

`ThreadGovernor` looks every half second: if this process's threads spent more than a third of the time
waiting for a core (their run-queue wait in /proc/self/task/*/schedstat), it drops a thread; if a core
stayed idle, it adds one back, and where no core is idle but ours never waited (the others yield to us:
lower nice, another autogroup) it tries one more, keeping it only if it does not wait.

OpenMP's wait policy was measured too and is left at libgomp's default (torch's CPU wheel ships
libgomp): `OMP_WAIT_POLICY=passive` made the quiet run 4x slower, the run with one busy process
slower too, and with two it stayed slower than one thread; so nothing has to run before torch loads.
`threads=N` (`--threads N`) fixes the count and turns the governor off.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.hooks import RemovableHandle

from ..cpu import ThreadPlan, affinity_cpus, choose_threads, idle_cores, read_or_none

CHECK_SECONDS = 0.5  # the governor's window: a collapsed step takes up to ~0.6 s, a quiet one ~5 ms
CONTENDED = 1 / 3  # our threads' summed run-queue wait over wall time; 2 of ours + 1 busy loop on 2 cores: ~2/3
IDLE_ENOUGH = 0.75  # cores idle over a window before a thread is added back
UNCONTENDED = 0.05  # share of wall time our threads waited for a core below which one more is worth a try
PROBE_SECONDS = 2.0  # the first such try after this long; each failed one doubles it


def run_queue_wait() -> float | None:
    """Seconds this process's threads have waited for a core so far (schedstat), None if unavailable."""
    total = 0
    try:
        for task in os.scandir("/proc/self/task"):
            text = read_or_none(Path(task.path) / "schedstat")
            if text:
                total += int(text.split()[1])
    except OSError:
        return None
    return total / 1e9


# --- applying it -------------------------------------------------------------------------------


def apply_threads(requested: int | None = None) -> ThreadPlan:
    """Plan once and set torch's count for the rest of the process (`convscope predict`, `evaluate`, `serve`)."""
    plan = choose_threads(requested)
    torch.set_num_threads(plan.threads)
    return plan


@dataclass
class ThreadGovernor:
    """Sets the plan's count for a fit, adjusts it every `CHECK_SECONDS` of training, restores it after.

    It runs as a forward pre-hook on the model: the forward pass is the one call every training
    loop makes on the thread that owns OpenMP's settings, and the hook costs one clock read a step.
    Below the cap with no idle core, it still tries one more thread when ours never queued (other
    processes may yield to us: lower priority, another autogroup), and keeps it only if it did not
    queue; a failed try waits twice as long before the next.
    """

    plan: ThreadPlan
    threads: int = 0
    changes: list[dict] = field(default_factory=list)
    _previous: int = 0
    _handle: RemovableHandle | None = None
    _started: float = 0.0
    _last: tuple[float, float | None, str | None] | None = None
    _next_try: float = 0.0
    _backoff: float = PROBE_SECONDS

    @classmethod
    def start(cls, model: torch.nn.Module, threads: int | None = None, *, fixed: bool = False) -> ThreadGovernor:
        """`fixed`: keep the count already set (a DDP rank: its launcher divided the cores), recorded as asked."""
        governor = cls(choose_threads(threads if threads is not None or not fixed else torch.get_num_threads()))
        governor._previous, governor.threads = torch.get_num_threads(), governor.plan.threads
        torch.set_num_threads(governor.threads)
        governor._started = time.perf_counter()
        governor._next_try = governor._started + governor._backoff
        if governor.plan.adaptive:
            governor._last = governor._reading()
            governor._handle = model.register_forward_pre_hook(lambda module, args: governor.check())
        return governor

    def check(self) -> None:
        now = time.perf_counter()
        if self._last is None or now - self._last[0] < CHECK_SECONDS:
            return
        reading = self._reading()
        then, self._last = self._last, reading
        wanted = decide(
            self.threads,
            self.plan.cap,
            reading[0] - then[0],
            _delta(reading[1], then[1]),
            _idle_between(then[2], reading[2], reading[0] - then[0]),
            try_more=now >= self._next_try,
        )
        if wanted < self.threads and self.changes and self.changes[-1]["threads"] == self.threads:
            self._backoff *= 2  # the last step up did not pay: try again later and later
        if wanted > self.threads:
            self._next_try = now + self._backoff
        if wanted != self.threads:
            self.changes.append({"at_s": round(now - self._started, 2), "threads": wanted})
            self.threads = wanted
            torch.set_num_threads(wanted)

    def stop(self) -> dict:
        """Remove the hook, restore the previous count; the record for config.json."""
        if self._handle is not None:
            self._handle.remove()
        torch.set_num_threads(self._previous)
        return {**self.plan.to_dict(), "changes": self.changes[:50], "final": self.threads}

    @staticmethod
    def _reading() -> tuple[float, float | None, str | None]:
        return time.perf_counter(), run_queue_wait(), read_or_none(Path("/proc/stat"))


def decide(
    threads: int, cap: int, seconds: float, waited: float | None, idle: float | None, try_more: bool = False
) -> int:
    """The next count from one window (pure): one fewer when our threads queued for a core a third
    of the time; one more when a core stayed idle, or, if `try_more`, when ours never queued."""
    if seconds <= 0:
        return threads
    queued = waited / seconds if waited is not None else None
    if threads > 1 and queued is not None and queued > CONTENDED:
        return threads - 1
    if threads < cap and (
        (idle is not None and idle >= IDLE_ENOUGH) or (try_more and queued is not None and queued < UNCONTENDED)
    ):
        return threads + 1
    return threads


def _delta(now: float | None, then: float | None) -> float | None:
    return None if now is None or then is None else now - then


def _idle_between(before: str | None, after: str | None, seconds: float) -> float | None:
    if before is None or after is None:
        return None
    return idle_cores(before, after, affinity_cpus(), seconds, os.sysconf("SC_CLK_TCK"))
