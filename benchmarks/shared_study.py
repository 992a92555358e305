"""Sweep workers sharing one PostgreSQL study, and the cost of an elastic torchrun restart.

    python -m benchmarks.shared_study --out runs/bench/shared-study            # 3 rounds, about 6 minutes
    python -m benchmarks.shared_study --rounds 1 --trials 6 --out /tmp/x       # one quick round
    python -m benchmarks.shared_study --parts elastic --rounds 3 --out /tmp/x  # the restart only

Sweep: each round starts a fresh database on a throwaway PostgreSQL server (tests/postgres.py, the
one the tests use) for each worker count, and runs --trials trials in all, shared equally among 1, 2
or 3 `convscope sweep` processes started at once (the small test CNN on 400 synthetic 8 x 8 images, 2
epochs per trial, no pruning, so every trial does the same work). Trials per hour = trials / wall time,
from the first start to the last exit: process start-up (importing torch) is part of a worker's cost.
Worker counts run in a rotated order each round; medians over rounds, ratios to 1 worker.

Elastic restart: `torchrun --nproc-per-node 2 --max-restarts 2` trains 6 epochs (2,400 images), once
undisturbed and once with rank 1 SIGKILLed right after epoch 2 is saved; the cost is the difference
in wall time (the group restarts, every rank starts Python again, loads the data, and resumes).
Nothing asserts a threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the throwaway server and the synthetic data of the tests

from convscope.training.distributed import _free_port  # noqa: E402
from postgres import create_database, postgres_server  # noqa: E402
from synthetic import SMALL_SPEC, tiny_dataset  # noqa: E402


def sweep_command(root: Path, out: Path, url: str, trials: int) -> list[str]:
    return [
        sys.executable, "-m", "convscope", "sweep", "--data", str(root / "tiny.npz"), "--model",
        str(root / "small.yaml"), "--epochs", "2", "--patience", "9", "--no-prune", "--filters", "2,8",
        "--batch-sizes", "16", "--trials", str(trials), "--out", str(out), "--storage", url,
        "--study-name", "bench",
    ]  # fmt: skip


def time_workers(root: Path, url: str, workers: int, trials: int) -> float:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            sweep_command(root, root / f"out-{url.rsplit('/', 1)[1]}-{i}", url, trials // workers),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(workers)
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(err.decode()[-2000:])
    return time.perf_counter() - started


def torchrun_command(root: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--max-restarts", "2",
        "--master-port", str(_free_port()), "-m", "convscope", "train", "--data", str(root / "longer.npz"),
        "--model", str(root / "small.yaml"), "--epochs", "6", "--patience", "9", "--batch-size", "16",
        "--threads", "1", "--no-report", "--quiet", "--out", str(out),
    ]  # fmt: skip


def _rank_pid(launcher: int, rank: int) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            status, environ = (entry / "status").read_text(), (entry / "environ").read_bytes().split(b"\0")
        except (OSError, NotADirectoryError):
            continue
        if f"PPid:\t{launcher}\n" in status and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def time_elastic(root: Path, out: Path, kill: bool) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(torchrun_command(root, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill:
        saved = out.parent / f".{out.name}.resume" / "rank1-epoch0002.safetensors"
        while not saved.is_file() and process.poll() is None:
            time.sleep(0.02)
        pid = None
        while pid is None and process.poll() is None:
            pid = _rank_pid(process.pid, 1)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(err.decode()[-2000:])
    return time.perf_counter() - started


def storage_round_trip(url: str, trials: int = 40) -> float:
    """Median seconds the storage adds to one trial: ask (draw 4 values), report 2 epochs, tell; no training."""
    import optuna

    from convscope.sweep import TrialSeededSampler, engine_url

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=engine_url(url), study_name="round-trip", sampler=TrialSeededSampler(0))
    seconds = []
    for _ in range(trials):
        started = time.perf_counter()
        trial = study.ask()
        trial.suggest_int("filters", 2, 8, log=True)
        trial.suggest_categorical("kernel_size", [3, 5])
        trial.suggest_float("rate", 0.0, 0.5)
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        for step in (1, 2):
            trial.report(1.0 / step, step)
        study.tell(trial, 0.5)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6, help="trials per measurement, shared among the workers")
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--parts", default="sweep,elastic", help="sweep, elastic or both")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="shared-study-"))
    data = tiny_dataset(400)
    np.savez(root / "tiny.npz", x=data.images, y=data.labels)
    longer = tiny_dataset(2400)
    np.savez(root / "longer.npz", x=longer.images, y=longer.labels)
    (root / "small.yaml").write_text(yaml.safe_dump(SMALL_SPEC))

    parts = args.parts.split(",")
    seconds: dict[int, list[float]] = {n: [] for n in counts}
    overhead: dict[str, float] = {}
    elastic: dict[str, list[float]] = {"undisturbed": [], "rank 1 killed": []}
    if "sweep" in parts:
        run_sweeps(args, root, counts, seconds, overhead)
    if "elastic" in parts:
        for r in range(args.rounds):
            for kill in (r % 2 == 1, r % 2 == 0):
                name = "rank 1 killed" if kill else "undisturbed"
                elastic[name].append(time_elastic(root, root / f"elastic-{r}-{int(kill)}", kill))
                print(f"round {r + 1}: elastic, {name}: {elastic[name][-1]:.1f} s", flush=True)
    report(args, counts, seconds, overhead, elastic)


def run_sweeps(args, root: Path, counts: list[int], seconds: dict, overhead: dict) -> None:
    with postgres_server() as server:
        overhead["PostgreSQL"] = storage_round_trip(create_database(server, "roundtrip"))
        overhead["SQLite file"] = storage_round_trip(f"sqlite:///{root / 'roundtrip.db'}")
        print(f"storage per trial: {overhead}", flush=True)
        for r in range(args.rounds):
            for n in counts[r % len(counts) :] + counts[: r % len(counts)]:
                url = create_database(server, f"r{r}w{n}")
                seconds[n].append(time_workers(root, url, n, args.trials))
                print(f"round {r + 1}: {n} worker(s), {args.trials} trials in {seconds[n][-1]:.1f} s", flush=True)


def report(args, counts: list[int], seconds: dict, overhead: dict, elastic: dict) -> None:
    lines: list[str] = []
    if any(seconds.values()):
        per_hour = {n: args.trials / statistics.median(s) * 3600 for n, s in seconds.items()}
        lines += [
            f"Sweep workers on one PostgreSQL study: {args.trials} trials per measurement, median of {args.rounds} "
            f"rounds, {os.cpu_count()} cores (shared with other sessions' work)",
            "",
            "| workers | median wall time | trials/hour | ratio to 1 worker |",
            "|---|---|---|---|",
        ]
        for n in counts:
            ratio = per_hour[n] / per_hour[counts[0]]
            lines.append(f"| {n} | {statistics.median(seconds[n]):.1f} s | {per_hour[n]:.0f} | {ratio:.2f} |")
        lines += [
            "",
            "| storage, per trial (ask, 4 draws, 2 reports, tell; no training) | median |",
            "|---|---|",
            *(f"| {name} | {value * 1000:.1f} ms |" for name, value in overhead.items()),
            "",
        ]
    if elastic["undisturbed"] and elastic["rank 1 killed"]:
        still, killed = statistics.median(elastic["undisturbed"]), statistics.median(elastic["rank 1 killed"])
        lines += [
            "| elastic torchrun, 2 ranks, 6 epochs | median wall time |",
            "|---|---|",
            f"| undisturbed | {still:.1f} s |",
            f"| rank 1 SIGKILLed after epoch 2, group restarted, resumed | {killed:.1f} s |",
            f"| cost of the restart | {killed - still:+.1f} s ({killed / still:.2f}x) |",
        ]
    text = "\n".join(lines) + "\n"
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(
        json.dumps({"sweep_seconds": seconds, "elastic_seconds": elastic, "storage_seconds": overhead}, indent=2)
    )
    print("\n" + text)


if __name__ == "__main__":
    main()
