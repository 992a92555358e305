"""How many threads torch uses: as many as the CPU this process can actually get, checked while training.

Measured on 2 cores (BENCHMARKS.md, "Under load"): the `cnn` at batch 32 launches ~580 small
operators a step, each an OpenMP parallel region over every thread. On idle cores two threads
train ~1.6x faster than one; with one or two other busy processes on the same cores the two
threads wait at every region's barrier for the descheduled one, and the run becomes 3x to 90x
slower while one thread hardly notices the load. So the count is a choice:

* the ceiling (`cap`) is what the process may use: the affinity mask (`os.sched_getaffinity`)
  and the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded down,
  so that no thread is planned for CPU time the quota does not grant (not measured: this machine has no quota);
* the start is the number of cores left idle by everyone else, sampled for 50 ms from /proc/stat,
  plus what this process itself used meanwhile (idle time is what a new thread can have at once,
  whatever the other processes' nice values or autogroups, which decide how much a busy core would yield);
* while training, `ThreadGovernor` looks every half second: if this process's threads spent
  more than a third of the time waiting for a core (their run-queue wait in /proc/self/task/*/schedstat),
  it drops a thread; if a core stayed idle, it adds one back, and where no core is idle but ours never
  waited (the others yield to us: lower nice, another autogroup) it tries one more, keeping it only
  if it does not wait.

OpenMP's wait policy was measured too and is left at libgomp's default (torch's CPU wheel ships
libgomp): `OMP_WAIT_POLICY=passive` made the quiet run 4x slower, the run with one busy process
slower too, and with two it stayed slower than one thread; so nothing has to run before torch loads.
`threads=N` (`--threads N`) fixes the count and turns the governor off.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.hooks import RemovableHandle

from ..errors import UserError
from ..i18n import _

SAMPLE_SECONDS = 0.05  # long enough for 5 scheduler ticks per core at USER_HZ 100, short against any fit
CHECK_SECONDS = 0.5  # the governor's window: a collapsed step takes up to ~0.6 s, a quiet one ~5 ms
CONTENDED = 1 / 3  # our threads' summed run-queue wait over wall time; 2 of ours + 1 busy loop on 2 cores: ~2/3
IDLE_ENOUGH = 0.75  # cores idle over a window before a thread is added back
UNCONTENDED = 0.05  # share of wall time our threads waited for a core below which one more is worth a try
PROBE_SECONDS = 2.0  # the first such try after this long; each failed one doubles it
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class ThreadPlan:
    """The intra-op thread count chosen for this process and what it was chosen from."""

    threads: int
    cap: int  # the most the process may use: affinity and quota
    affinity: int
    quota: float | None  # CPUs per period from the cgroup, None: no limit
    idle: float | None  # cores idle when sampled, None: not sampled (an override, or no /proc/stat)
    requested: int | None
    reason: str

    @property
    def adaptive(self) -> bool:
        """The governor may change the count: not when it was asked for, nor with one core."""
        return self.requested is None and self.cap > 1

    def to_dict(self) -> dict:
        return {**asdict(self), "adaptive": self.adaptive}


def plan_threads(
    affinity: int, quota: float | None = None, idle: float | None = None, requested: int | None = None
) -> ThreadPlan:
    """The plan from its inputs (pure): `requested` wins; else the cap, lowered to the idle cores."""
    if requested is not None and requested < 1:
        raise UserError(_("threads must be at least 1, got {requested}.").format(requested=requested))
    cap = max(1, min(affinity, math.floor(quota) if quota is not None else affinity))
    why = [f"affinity {affinity}"] + ([f"quota {quota:g}"] if quota is not None else [])
    if requested is not None:
        return ThreadPlan(requested, cap, affinity, quota, idle, requested, f"threads={requested} asked for")
    threads = cap
    if idle is not None:
        why.append(f"idle {idle:.1f}")
        threads = max(1, min(cap, round(idle)))
    return ThreadPlan(
        threads, cap, affinity, quota, idle, None, f"{', '.join(why)} -> {threads} thread{'s' if threads > 1 else ''}"
    )


def choose_threads(requested: int | None = None, *, sample_seconds: float = SAMPLE_SECONDS) -> ThreadPlan:
    """Read this machine (affinity, cgroup quota, idle cores over `sample_seconds`) and plan."""
    if requested is not None:
        return plan_threads(affinity_size(), None, None, requested)
    cpus = affinity_cpus()
    quota = cgroup_quota(_read(Path("/proc/self/cgroup")) or "", CGROUP_ROOT)
    if plan_threads(len(cpus), quota).cap == 1 or sample_seconds <= 0:  # one core: nothing to sample for
        return plan_threads(len(cpus), quota)
    return plan_threads(len(cpus), quota, sample_idle(cpus, sample_seconds))


# --- what the process may use ------------------------------------------------------------------


def affinity_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows: no affinity masks
        return set(range(os.cpu_count() or 1))


def affinity_size() -> int:
    return len(affinity_cpus())


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max`: "QUOTA PERIOD" in microseconds, or "max PERIOD" for no limit."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    quota, period = int(parts[0]), int(parts[1])
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` (-1: no limit) over `cpu.cfs_period_us`."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(proc_cgroup: str, root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota over this process's cgroup and its ancestors (v2 and v1), None if none.

    `proc_cgroup` is the text of /proc/self/cgroup: "0::/path" for v2, "N:cpu,cpuacct:/path" for v1.
    """
    limits: list[float | None] = []
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        if hid == "0" and controllers == "":
            for folder in _self_and_parents(root, path):
                limits.append(_parsed(parse_cpu_max, folder / "cpu.max"))
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                if mount.is_dir():
                    for folder in _self_and_parents(mount, path):
                        limits.append(_parsed(parse_cfs, folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"))
                    break
    found = [q for q in limits if q is not None]
    return min(found) if found else None


def _self_and_parents(mount: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip("/").split("/") if p]
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _parsed(parse, *paths: Path) -> float | None:
    texts = [_read(p) for p in paths]
    if any(t is None for t in texts):
        return None
    try:
        return parse(*texts)
    except ValueError:  # a file we do not understand limits nothing
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


# --- what the others leave ----------------------------------------------------------------------


def idle_ticks(proc_stat: str, cpus: set[int]) -> int:
    """Idle + iowait ticks of the given cores, from the text of /proc/stat."""
    total = 0
    for line in proc_stat.splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            total += int(values[3]) + int(values[4])
    return total


def idle_cores(before: str, after: str, cpus: set[int], seconds: float, ticks_per_second: int) -> float:
    """Cores left idle between two readings of /proc/stat, `seconds` apart."""
    return (idle_ticks(after, cpus) - idle_ticks(before, cpus)) / (ticks_per_second * seconds) if seconds > 0 else 0.0


def cores_left_to_us(idle: float, own_cpu_seconds: float, seconds: float, cpus: set[int]) -> float:
    """Cores no other process used over a window: the idle ones plus what this process itself used.

    Ours count as free: right after a fit, OpenMP's threads spin at their barrier for a moment, and a
    plan that took them for another process chose 1 thread on an idle machine (prediction at 12,600
    images/s against 20,500 at 2 threads, BENCHMARKS.md "Under load")."""
    own = own_cpu_seconds / seconds if seconds > 0 else 0.0
    return min(float(len(cpus)), idle + own)


def sample_idle(cpus: set[int], seconds: float) -> float | None:
    """Cores among `cpus` that other processes left idle over `seconds` of sleep; None where /proc/stat is
    missing (macOS)."""
    before, t0, own0 = _read(Path("/proc/stat")), time.perf_counter(), time.process_time()
    if before is None:
        return None
    time.sleep(seconds)
    after, t1, own1 = _read(Path("/proc/stat")), time.perf_counter(), time.process_time()
    idle = idle_cores(before, after or before, cpus, t1 - t0, os.sysconf("SC_CLK_TCK"))
    return cores_left_to_us(idle, own1 - own0, t1 - t0, cpus)


def run_queue_wait() -> float | None:
    """Seconds this process's threads have waited for a core so far (schedstat), None if unavailable."""
    total = 0
    try:
        for task in os.scandir("/proc/self/task"):
            text = _read(Path(task.path) / "schedstat")
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
        return time.perf_counter(), run_queue_wait(), _read(Path("/proc/stat"))


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
