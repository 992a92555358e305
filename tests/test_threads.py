"""Thread choice (cpu.py, training/threads.py): affinity, cgroup quotas, idle cores, the override, the config record.

Nothing here times anything: the inputs are fake masks, quota files and /proc/stat texts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convscope as cs
from convscope import cpu
from convscope.errors import UserError
from convscope.training import threads as th
from synthetic import tiny_dataset, write_tiny_npz

SRC = Path(__file__).resolve().parents[1] / "src"


# --- the plan from its inputs ------------------------------------------------------------------


def test_affinity_alone_sets_the_count():
    plan = cpu.plan_threads(affinity=2)
    assert (plan.threads, plan.cap, plan.adaptive) == (2, 2, True)
    assert plan.reason == "affinity 2 -> 2 threads"


def test_a_fractional_quota_rounds_down_and_says_so():
    plan = cpu.plan_threads(affinity=2, quota=1.5)
    assert (plan.threads, plan.cap) == (1, 1)
    assert plan.reason == "affinity 2, quota 1.5 -> 1 thread"
    assert not plan.adaptive  # one core: nothing to adjust


def test_a_quota_above_the_affinity_does_not_raise_the_cap():
    assert cpu.plan_threads(affinity=2, quota=8.0).cap == 2
    assert cpu.plan_threads(affinity=8, quota=3.0).threads == 3
    assert cpu.plan_threads(affinity=4, quota=0.5).threads == 1  # never zero threads


@pytest.mark.parametrize("idle, expected", [(1.95, 2), (1.1, 1), (0.0, 1), (3.9, 2)])
def test_the_start_is_the_idle_cores_within_the_cap(idle, expected):
    plan = cpu.plan_threads(affinity=2, idle=idle)
    assert plan.threads == expected
    assert plan.reason.endswith(f"idle {idle:.1f} -> {expected} thread{'s' if expected > 1 else ''}")


def test_the_override_wins_and_turns_adjusting_off():
    plan = cpu.plan_threads(affinity=2, quota=1.0, idle=0.0, requested=3)
    assert (plan.threads, plan.requested, plan.adaptive) == (3, 3, False)
    assert plan.reason == "threads=3 asked for"
    with pytest.raises(UserError, match="threads must be at least 1, got 0"):
        cpu.plan_threads(affinity=2, requested=0)


def test_choose_threads_reads_this_machines_affinity():
    plan = cpu.choose_threads(sample_seconds=0)
    assert plan.affinity == len(os.sched_getaffinity(0))
    assert 1 <= plan.threads <= plan.cap <= plan.affinity
    assert plan.idle is None


# --- cgroup quota files ------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_read_from_the_process_group(tmp_path):
    _write(tmp_path / "user.slice" / "job" / "cpu.max", "150000 100000\n")
    assert cpu.cgroup_quota("0::/user.slice/job\n", tmp_path) == 1.5


def test_cgroup_v2_max_means_no_limit(tmp_path):
    _write(tmp_path / "job" / "cpu.max", "max 100000\n")
    _write(tmp_path / "cpu.max", "max 100000\n")
    assert cpu.cgroup_quota("0::/job\n", tmp_path) is None
    assert (
        cpu.plan_threads(affinity=2, quota=cpu.cgroup_quota("0::/job\n", tmp_path)).reason == "affinity 2 -> 2 threads"
    )


def test_cgroup_v2_a_tighter_parent_limits_the_child(tmp_path):
    _write(tmp_path / "outer" / "cpu.max", "100000 100000\n")
    _write(tmp_path / "outer" / "inner" / "cpu.max", "max 100000\n")
    assert cpu.cgroup_quota("0::/outer/inner\n", tmp_path) == 1.0


def test_cgroup_v1_cfs_quota_and_period(tmp_path):
    group = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    _write(group / "cpu.cfs_quota_us", "50000\n")
    _write(group / "cpu.cfs_period_us", "100000\n")
    text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
    assert cpu.cgroup_quota(text, tmp_path) == 0.5
    _write(group / "cpu.cfs_quota_us", "-1\n")
    assert cpu.cgroup_quota(text, tmp_path) is None


def test_missing_or_unreadable_quota_files_limit_nothing(tmp_path):
    assert cpu.cgroup_quota("0::/nowhere\n", tmp_path) is None
    assert cpu.cgroup_quota("", tmp_path) is None
    _write(tmp_path / "cpu.max", "garbage\n")
    assert cpu.cgroup_quota("0::/\n", tmp_path) is None


def test_quota_parsers():
    assert cpu.parse_cpu_max("200000 100000") == 2.0
    assert cpu.parse_cpu_max("max 100000") is None
    assert cpu.parse_cfs("-1", "100000") is None
    assert cpu.parse_cfs("250000", "100000") == 2.5


# --- idle cores and the adjustments while training ---------------------------------------------

STAT_BEFORE = "cpu  10 0 10 200 0 0 0 0 0 0\ncpu0 5 0 5 100 0 0 0 0 0 0\ncpu1 5 0 5 100 0 0 0 0 0 0\nintr 1 2\n"
# one second later at 100 ticks/s: cpu0 fully idle (100 idle ticks), cpu1 busy but for 10 (iowait counts as idle)
STAT_AFTER = "cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 5 0 5 200 0 0 0 0 0 0\ncpu1 90 0 10 105 5 0 0 0 0 0\nintr 1 2\n"


def test_idle_cores_counts_only_the_cores_of_the_mask():
    assert cpu.idle_cores(STAT_BEFORE, STAT_AFTER, {0, 1}, 1.0, 100) == pytest.approx(1.1)
    assert cpu.idle_cores(STAT_BEFORE, STAT_AFTER, {1}, 1.0, 100) == pytest.approx(0.1)
    assert cpu.idle_cores(STAT_BEFORE, STAT_AFTER, {0}, 0.5, 100) == pytest.approx(2.0)


def test_the_start_counts_this_processs_own_use_as_free():
    """After a fit, our own OpenMP threads spin for a moment: the sample must not take them for another
    process (it planned 1 thread on an idle machine)."""
    cpus = {0, 1}
    # 0.1 s window: one core idle, the other busy with our own spinning thread
    assert cpu.cores_left_to_us(1.0, own_cpu_seconds=0.1, seconds=0.1, cpus=cpus) == 2.0
    assert cpu.plan_threads(2, None, cpu.cores_left_to_us(1.0, 0.1, 0.1, cpus)).threads == 2
    # another process holds a core and ours sleep: one thread
    assert cpu.plan_threads(2, None, cpu.cores_left_to_us(1.0, 0.0, 0.1, cpus)).threads == 1
    # never more than the mask, however our threads' time adds up
    assert cpu.cores_left_to_us(2.0, own_cpu_seconds=0.3, seconds=0.1, cpus=cpus) == 2.0


def test_decide_drops_a_thread_when_ours_queue_for_a_core():
    assert th.decide(2, 2, seconds=0.5, waited=0.3, idle=0.0) == 1  # 60% of the time waiting
    assert th.decide(2, 2, seconds=0.5, waited=0.05, idle=0.0) == 2
    assert th.decide(1, 2, seconds=0.5, waited=0.5, idle=0.0) == 1  # never below one


def test_decide_adds_a_thread_back_when_a_core_stays_idle():
    assert th.decide(1, 2, seconds=0.5, waited=0.0, idle=0.9) == 2
    assert th.decide(1, 2, seconds=0.5, waited=0.0, idle=0.3) == 1
    assert th.decide(2, 2, seconds=0.5, waited=0.0, idle=1.5) == 2  # the cap holds


def test_decide_tries_one_more_only_when_due_and_ours_never_waited():
    assert th.decide(1, 2, seconds=0.5, waited=0.0, idle=0.0, try_more=True) == 2
    assert th.decide(1, 2, seconds=0.5, waited=0.0, idle=0.0, try_more=False) == 1
    assert th.decide(1, 2, seconds=0.5, waited=0.2, idle=0.0, try_more=True) == 1
    assert th.decide(1, 2, seconds=0.5, waited=None, idle=None, try_more=True) == 1  # no schedstat: no guess


# --- applied: fit, train, the CLI --------------------------------------------------------------


def test_fit_uses_the_override_records_it_and_restores_torchs_count():
    before = torch.get_num_threads()
    seen = []
    data = tiny_dataset(96)
    model = cs.build("cnn", data.input_shape, data.num_classes)

    class Threads(cs.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(torch.get_num_threads())

    trained = cs.fit(model, data, epochs=1, verbose=False, threads=1, callbacks=[Threads()])
    record = trained.config["threads"]
    assert seen == [1]
    assert (record["threads"], record["final"], record["requested"], record["changes"]) == (1, 1, 1, [])
    assert record["reason"] == "threads=1 asked for"
    assert torch.get_num_threads() == before
    assert not model._forward_pre_hooks  # the governor's hook is gone


def test_fit_chooses_by_itself_within_the_cap():
    data = tiny_dataset(96)
    trained = cs.fit(cs.build("cnn", data.input_shape, data.num_classes), data, epochs=1, verbose=False)
    record = trained.config["threads"]
    assert record["requested"] is None and record["idle"] is not None
    assert 1 <= record["final"] <= record["cap"] <= len(os.sched_getaffinity(0))
    assert record["reason"].startswith(f"affinity {len(os.sched_getaffinity(0))}")


def test_config_json_records_the_plan(tmp_path):
    npz = write_tiny_npz(tmp_path, n=120)
    result = cs.train(str(npz), "cnn", epochs=1, out=tmp_path / "run", verbose=False, report=False, threads=1)
    config = json.loads((result.path / "config.json").read_text())
    assert config["fit"]["threads"]["threads"] == 1
    assert config["fit"]["threads"]["reason"] == "threads=1 asked for"


@pytest.mark.slow
def test_cli_threads_flag_reaches_config_json(tmp_path):
    npz = write_tiny_npz(tmp_path, n=120)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "convscope",
            "train",
            "--data",
            str(npz),
            "--epochs",
            "1",
            "--threads",
            "1",
            "--no-report",
            "--quiet",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["fit"]["threads"]["requested"] == 1
    bad = subprocess.run(
        [sys.executable, "-m", "convscope", "predict", str(tmp_path / "run"), str(npz), "--threads", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and "--threads: must be a positive integer from 1 to 1,000,000, got '0'" in bad.stderr


def test_apply_threads_sets_torchs_count():
    before = torch.get_num_threads()
    try:
        plan = th.apply_threads(1)
        assert torch.get_num_threads() == 1 and plan.reason == "threads=1 asked for"
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_a_process_pinned_to_one_core_plans_one_thread_without_sampling():
    code = (
        "import json, os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from convscope.training.threads import choose_threads; print(json.dumps(choose_threads().to_dict()))"
    )
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    plan = json.loads(done.stdout)
    assert (plan["threads"], plan["cap"], plan["affinity"], plan["idle"], plan["adaptive"]) == (1, 1, 1, None, False)
    assert plan["reason"] == "affinity 1 -> 1 thread"
