"""convscope and the Keras peer on a CPU that other processes keep busy, as a shared machine is.

    python -m benchmarks.under_load                       # 0, 1 and 2 busy processes, 3 repetitions
    python -m benchmarks.under_load --busy 0,2 --repeats 1 --parts train
    python -m benchmarks.under_load --render DIR/results.json

The background load is plain Python busy loops, started by this script before each measured run
and killed after it (each also ends by itself after --busy-seconds). Every run is a fresh process
(`keras_peer.py`, `convscope_side.py`, as in `benchmarks.run`), the course `cnn` at batch 32 for
2 epochs, `--precision auto`, on the split `benchmarks.run` writes (mnist-10k: 6,400 training +
1,600 validation images). Sides: Keras, convscope with its own thread choice, and convscope held
at 2 threads (torch's default, what convscope did before) to show what the choice is worth.
The server's /predict is measured by `load_test.py` under the same background load. A run that
exceeds --timeout is recorded at the timeout. Nothing asserts a threshold; the targets are in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.run import HERE, SHARED_MNIST, machine, write_split

BUSY_LOOP = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end: pass\n"
SIDES = {
    "keras": lambda split, a: [
        str(HERE / "keras_peer.py"),
        "--split",
        str(split),
        "--epochs",
        str(a.epochs),
        "--batch-size",
        "32",
        "--patience",
        str(a.epochs),
        "--latency-repeats",
        "20",
    ],
    "convscope": lambda split, a: _convscope(split, a),
    "convscope 2 threads": lambda split, a: _convscope(split, a, "--threads", "2"),
}


def _convscope(split: Path, a, *extra: str) -> list[str]:
    return [
        str(HERE / "convscope_side.py"),
        "--split",
        str(split),
        "--model",
        "cnn",
        "--epochs",
        str(a.epochs),
        "--batch-size",
        "32",
        "--patience",
        str(a.epochs),
        "--precision",
        "auto",
        "--latency-repeats",
        "50",
        *extra,
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", default="0,1,2", help="numbers of busy background processes (default 0,1,2)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of: {', '.join(SIDES)}")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is stopped and recorded as this")
    p.add_argument("--busy-seconds", type=float, default=300.0, help="a busy loop ends by itself after this")
    p.add_argument("--parts", default="train,serve", help="train (fit + prediction, both sides), serve (/predict)")
    p.add_argument("--data", help="dataset (default ../shared/data/mnist-10k, else the embedded mnist-5k)")
    p.add_argument("--out", default="runs/bench-load")
    p.add_argument("--render", help="print the tables of a saved results.json and stop")
    a = p.parse_args(argv)
    if a.render:
        print(render(json.loads(Path(a.render).read_text())))
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = a.data or (str(SHARED_MNIST) if (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file() else "mnist-5k")
    split = write_split(data, out / "split.npz", None)
    levels = [int(b) for b in a.busy.split(",")]
    sides = a.sides.split(",")
    results = {
        "command": " ".join(["python", "-m", "benchmarks.under_load", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "data": data,
        "epochs": a.epochs,
        "timeout": a.timeout,
        "runs": [],
        "serve": [],
    }
    parts = set(a.parts.split(","))
    for rep in range(a.repeats if "train" in parts else 0):
        for busy in levels:
            order = sides[rep % len(sides) :] + sides[: rep % len(sides)]  # rotate, so no side always goes first
            for side in order:
                results["runs"].append(measure(side, SIDES[side](split, a), busy, a))
    if "serve" in parts:
        run_dir = serve_run(split, out)
        for busy in levels:
            results["serve"].append(serve(run_dir, busy, out, a))
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = render(results)
    (out / "results.md").write_text(table)
    print(table)
    return 0


@contextmanager
def busy_processes(count: int, seconds: float):
    """`count` Python busy loops for the duration of the block; killed on the way out, whatever happens."""
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(seconds)]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)  # let them reach the scheduler before the measured run starts
        yield
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()


def measure(side: str, cmd: list[str], busy: int, a) -> dict:
    load = os.getloadavg()[0]
    print(f"[{time.strftime('%H:%M:%S')}] {side:<22} busy {busy}  load {load:.1f}", file=sys.stderr, flush=True)
    with busy_processes(busy, a.busy_seconds):
        started = time.perf_counter()
        # same session as the busy loops: where the kernel groups sessions for fair shares (autogroup), a
        # new session would get half the cores whatever the loops do, which is not the load we mean
        process = subprocess.Popen([sys.executable, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = process.communicate(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return {"side": side, "busy": busy, "load_before": load, "timed_out": True, "fit_seconds": a.timeout}
        wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"benchmark step failed ({' '.join(cmd)}):\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "side": side, "busy": busy, "load_before": load, "timed_out": False, "process_seconds": wall}


def serve_run(split: Path, out: Path) -> Path:
    """A trained cnn run directory for the server (not timed)."""
    import convscope as cs

    run_dir = out / "serve-run"
    if not (run_dir / "config.json").is_file():
        cs.train(str(split), "cnn", epochs=2, out=run_dir, verbose=False, report=False)
    return run_dir


def serve(run_dir: Path, busy: int, out: Path, a) -> dict:
    """`load_test.py` (its own server, its own client) while `busy` loops run; its summary is kept."""
    report = out / f"serve-busy{busy}.json"
    print(f"[{time.strftime('%H:%M:%S')}] serve /predict        busy {busy}", file=sys.stderr, flush=True)
    with busy_processes(busy, a.busy_seconds):
        done = subprocess.run(
            [
                sys.executable,
                str(HERE / "load_test.py"),
                str(run_dir),
                "--requests",
                "600",
                "--concurrency",
                "8",
                "--repeats",
                str(a.repeats),
                "--max-seconds",
                "30",
                "--json",
                str(report),
            ],
            capture_output=True,
            text=True,
            timeout=a.timeout * 6,
        )
    if not report.is_file():
        raise SystemExit(f"load_test.py failed:\n{done.stderr[-3000:]}")
    return {"busy": busy, "exit": done.returncode, **json.loads(report.read_text())["summary"]}


# --- the tables ---------------------------------------------------------------------------------


def med(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def render(results: dict) -> str:
    runs, m = results["runs"], results["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; {m['date']}. Data: {results['data']}, "
        f"{results['epochs']} epochs at batch 32. Command: `{results['command']}`."
    ]
    if runs:
        lines.append(
            f"Load average before each run: median {med(r['load_before'] for r in runs):.1f}, "
            f"max {max(r['load_before'] for r in runs):.1f}."
        )
    return "\n".join(lines + [""] + _train_tables(runs) + _serve_table(results.get("serve", []))) + "\n"


def _train_tables(runs: list[dict]) -> list[str]:
    if not runs:
        return []
    sides = [s for s in SIDES if any(r["side"] == s for r in runs)]
    levels = sorted({r["busy"] for r in runs})

    def pick(side, busy):
        return [r for r in runs if r["side"] == side and r["busy"] == busy]

    quiet = {s: med(r["fit_seconds"] for r in pick(s, 0)) for s in sides}
    lines = [
        "Training (fit seconds, median, every run in brackets, `+`: stopped at the timeout; vs its own quiet median; "
        "Keras' time over ours under the same load):",
        "",
        "| busy processes | " + " | ".join(sides) + " | convscope vs Keras | 2 threads vs Keras |",
        "|---|" + "---|" * (len(sides) + 2),
    ]
    for busy in levels:
        cells, fits = [], {}
        for s in sides:
            rs = pick(s, busy)
            fits[s] = med(r["fit_seconds"] for r in rs)
            each = ", ".join(f"{r['fit_seconds']:.1f}{'+' if r['timed_out'] else ''}" for r in rs)
            own = f", {fits[s] / quiet[s]:.1f}x quiet" if busy and s in quiet else ""
            cells.append(f"{fits[s]:.1f} ({each}){own}{_threads(rs) if s == 'convscope' else ''}")
        ratios = [
            f"**{fits['keras'] / fits[s]:.2f}x**" if s in fits and "keras" in fits else ""
            for s in ("convscope", "convscope 2 threads")
        ]
        lines.append(f"| {busy} | " + " | ".join(cells + ratios) + " |")
    lines += [
        "",
        "Prediction on the 2,000 test images (images/s, median; convscope planned once, as `convscope predict` "
        "does; Keras at its better batch, 32 or 1024) and single-image latency p50 (ms):",
        "",
        "| busy processes | " + " | ".join(f"{s} img/s | {s} p50 ms" for s in sides) + " |",
        "|---|" + "---|---|" * len(sides),
    ]
    for busy in levels:
        cells = []
        for s in sides:
            rs = [r for r in pick(s, busy) if not r["timed_out"]]
            rate = med(max(r["predict_images_per_second"].values()) for r in rs)
            cells.append(f"{rate:,.0f} | {med(r['latency_p50_ms'] for r in rs):.2f}")
        lines.append(f"| {busy} | " + " | ".join(cells) + " |")
    return lines + [""]


def _serve_table(serve: list[dict]) -> list[str]:
    if not serve:
        return []
    lines = [
        "The server's POST /predict (`load_test.py`, 8 concurrent clients, medians of its repeats):",
        "",
        "| busy processes | /predict req/s | p50 ms | p99 ms | errors | /health req/s |",
        "|---|---|---|---|---|---|",
    ]
    for s in serve:
        pr, h = s["predict"], s["health"]
        lines.append(
            f"| {s['busy']} | {pr['rps_median']:,.0f} | {pr['p50_ms_median']:.1f} | {pr['p99_ms_median']:.1f} "
            f"| {pr['errors']} | {h['rps_median']:,.0f} |"
        )
    return lines + [""]


def _threads(rs) -> str:
    """What convscope chose in these runs: start -> end threads."""
    picks = sorted(
        {
            f"{r['threads']['threads']}->{r['threads']['final']}"
            if r["threads"]["changes"]
            else str(r["threads"]["threads"])
            for r in rs
            if not r["timed_out"]
        }
    )
    return f"; threads {'/'.join(picks)}" if picks else ""


if __name__ == "__main__":
    sys.exit(main())
