"""What CPU this process can actually get: its cores, its quota, the cores others leave idle, and the
thread count planned from them. Training (`training/threads.py`, which also adjusts the count while a fit
runs) and serving (one share of the cores per server process) read the same facts here.

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
  whatever the other processes' nice values or autogroups, which decide how much a busy core would yield).

Nothing here imports torch: the plan is numbers, and whoever runs threads sets them.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError
from .i18n import _

SAMPLE_SECONDS = 0.05  # long enough for 5 scheduler ticks per core at USER_HZ 100, short against any fit
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
    quota = cgroup_quota(read_or_none(Path("/proc/self/cgroup")) or "", CGROUP_ROOT)
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
    texts = [read_or_none(p) for p in paths]
    if any(t is None for t in texts):
        return None
    try:
        return parse(*texts)
    except ValueError:  # a file we do not understand limits nothing
        return None


def read_or_none(path: Path) -> str | None:
    """The text of a /proc or /sys file, None where the system has no such file or will not let us read it."""
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
    before, t0, own0 = read_or_none(Path("/proc/stat")), time.perf_counter(), time.process_time()
    if before is None:
        return None
    time.sleep(seconds)
    after, t1, own1 = read_or_none(Path("/proc/stat")), time.perf_counter(), time.process_time()
    idle = idle_cores(before, after or before, cpus, t1 - t0, os.sysconf("SC_CLK_TCK"))
    return cores_left_to_us(idle, own1 - own0, t1 - t0, cpus)
