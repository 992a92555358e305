"""convscope against the classic Keras notebook, measured in the same run on the same machine.

    python -m benchmarks.run                  # the full run (about 16 minutes on 2 cores)
    python -m benchmarks.run --smoke          # one short repetition on a few images, for CI
    python -m benchmarks.run --render DIR/results.json   # the tables again, from saved results
    python -m benchmarks.run --data runs/bench/letters.npz   # on the held-back letters (python -m benchmarks.letters)

Keras 3 runs on every backend installed (TensorFlow, PyTorch, JAX; `--backends` to choose), each side labelled
"keras (tensorflow)" and so on; every ratio is against the fastest Keras backend of the run, named in the tables,
and each backend's own numbers stay listed. Time to accuracy and memory run Keras on the backend fastest at
batch 32 in the throughput part (on every backend when that part did not run).

Both sides train the same architecture on the same split (written once to an npz both read),
with the same batch size, epochs and early stopping, each in a fresh process (TensorFlow and
torch in one process fight over threads). Runs alternate between the sides, repetitions give
medians, and every speed is reported as a ratio against the peer measured in the same run.
Nothing here asserts a threshold: the numbers go to results.json and results.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parent.parent / "shared" / "data" / "mnist-10k"
TARGET_ACCURACY = 0.985  # MNIST's; `--target-accuracy 0.95` for a letters set
# convscope sets glibc's malloc thresholds itself (src/convscope/training/allocator.py); this extra Keras side
# gets the same setting through glibc's environment variables, to show what the setting alone is worth.
KERAS_KEPT = ", malloc kept"  # appended to the Keras label: "keras (tensorflow), malloc kept"
# Keras 3's backends, each named as the framework module it imports; KERAS_BACKEND picks one per process.
BACKENDS = ("tensorflow", "torch", "jax")


def keras_label(backend: str) -> str:
    return f"keras ({backend})"


def installed_backends() -> list[str]:
    """The Keras backends whose framework is installed (found, not imported: each imports in its own process)."""
    if importlib.util.find_spec("keras") is None:
        return []
    return [name for name in BACKENDS if importlib.util.find_spec(name) is not None]


@dataclass(frozen=True)
class Plan:
    repeats: int = 3
    # throughput runs: a fixed number of epochs per batch size (patience high enough not to stop); batch 128
    # runs longer so that BatchNorm's moving statistics (momentum 0.99) settle and the accuracies can be compared
    epochs: tuple[tuple[int, int], ...] = ((32, 5), (128, 12))
    limit: int | None = None  # use only the first N images (smoke)
    converge_epochs: int = 20  # the Keras cnn run to its best accuracy: the course's 20 epochs, patience 3
    latency_repeats: int = 200
    keras_latency_repeats: int = 30  # Keras' predict() costs tens of ms a call; 30 give a stable median
    memory_epochs: tuple[int, ...] = (2, 6)
    threads: int | None = None  # torch threads on the convscope side; None: torch's own choice


FULL = Plan()
SMOKE = Plan(
    repeats=1,
    epochs=((128, 1),),
    limit=1200,
    converge_epochs=1,
    latency_repeats=5,
    keras_latency_repeats=3,
    memory_epochs=(),
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="convscope against the classic Keras notebook.")
    p.add_argument("--smoke", action="store_true", help="one short repetition on a few images (CI); no thresholds")
    p.add_argument("--repeats", type=int, help="repetitions of every measurement (default 3)")
    p.add_argument("--epochs", type=int, help="epochs of every throughput run (default 5 at batch 32, 12 at 128)")
    p.add_argument("--threads", type=int, help="torch threads on the convscope side (default: torch's choice)")
    p.add_argument("--batch-sizes", help="comma-separated batch sizes of the throughput runs (default 32,128)")
    p.add_argument("--data", help="dataset (default ../shared/data/mnist-10k, else the embedded mnist-5k)")
    p.add_argument("--out", default="benchmarks/results", help="folder for results.json and results.md")
    p.add_argument("--only", default="throughput,time,memory", help="comma-separated parts to run")
    p.add_argument("--render", help="print the tables of a saved results.json and stop")
    p.add_argument("--backends", help="comma-separated Keras backends (default: every installed one)")
    p.add_argument(
        "--target-accuracy", type=float, default=TARGET_ACCURACY, help="the time-to-accuracy target (default 0.985)"
    )
    args = p.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    backends = args.backends.split(",") if args.backends else installed_backends()
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        p.error(f"Keras backends: {', '.join(unknown) or 'none installed'}; choose among {', '.join(BACKENDS)}.")

    plan = SMOKE if args.smoke else FULL
    overrides = {k: v for k, v in (("repeats", args.repeats), ("threads", args.threads)) if v}
    if args.epochs:
        overrides["epochs"] = tuple((batch, args.epochs) for batch, _ in plan.epochs)
    if args.batch_sizes:
        wanted = [int(b) for b in args.batch_sizes.split(",")]
        epochs = dict(overrides.get("epochs", plan.epochs))
        overrides["epochs"] = tuple((b, epochs.get(b, args.epochs or 5)) for b in wanted)
    plan = Plan(**{**asdict(plan), **overrides})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = args.data or (str(SHARED_MNIST) if (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file() else "mnist-5k")
    split = write_split(data, out / "split.npz", plan.limit)
    results = {
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "data": data,
        "plan": asdict(plan),
        "peak": run_json([str(HERE / "peak.py")]),
        "keras_backends": backends,
        "target_accuracy": args.target_accuracy,
        "runs": [],
    }
    parts = set(args.only.split(","))
    if "throughput" in parts:
        throughput(plan, split, results["runs"], backends)
    # the slower parts compare against the fastest backend only (all of them without a throughput part to tell)
    fastest = fastest_keras(results["runs"], 32) or fastest_keras(results["runs"])
    chosen = [fastest.removeprefix("keras (").removesuffix(")")] if fastest else backends
    if "time" in parts:
        time_to_accuracy(plan, split, results["runs"], chosen)
    if "memory" in parts and plan.memory_epochs:
        memory(plan, split, results["runs"], chosen)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = render(results)
    (out / "results.md").write_text(table)
    print(table)
    return 0


# --- what runs ---------------------------------------------------------------------------------


def keras(split: Path, plan: Plan, batch: int, epochs: int, patience: int, *extra: str) -> list[str]:
    """The peer's command line; the backend comes with the environment (`backend_env`)."""
    return [
        str(HERE / "keras_peer.py"),
        "--split",
        str(split),
        "--batch-size",
        str(batch),
        "--epochs",
        str(epochs),
        "--patience",
        str(patience),
        "--latency-repeats",
        str(plan.keras_latency_repeats),
        *extra,
    ]


def convscope(split: Path, plan: Plan, model: str, *extra: str) -> list[str]:
    threads = ("--threads", str(plan.threads)) if plan.threads else ()
    return [
        str(HERE / "convscope_side.py"),
        "--split",
        str(split),
        "--model",
        model,
        "--latency-repeats",
        str(plan.latency_repeats),
        *threads,
        *extra,
    ]


def throughput(plan: Plan, split: Path, runs: list, backends: list[str]) -> None:
    """The cnn preset over a whole fit, Keras on each backend vs convscope fp32 vs bf16 (where the CPU computes
    bf16 natively), alternating the order."""
    for rep in range(plan.repeats):
        for batch, epochs in plan.epochs:
            same = ("--batch-size", str(batch), "--epochs", str(epochs), "--patience", str(epochs))
            peer = keras(split, plan, batch, epochs, epochs)
            sides = [(keras_label(b), peer, backend_env(b)) for b in backends]
            sides.append(("convscope fp32", convscope(split, plan, "cnn", *same, "--precision", "fp32"), None))
            if native_bf16():
                sides.append(("convscope bf16", convscope(split, plan, "cnn", *same, "--precision", "bf16"), None))
            if not plan.limit:  # the smoke run keeps to the sides that matter
                kept = backends[0]
                sides.append((keras_label(kept) + KERAS_KEPT, peer, {**backend_env(kept), **kept_memory_env()}))
            for label, cmd, env in sides[rep % len(sides) :] + sides[: rep % len(sides)]:
                runs.append(measure("throughput", label, batch, cmd, env))


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), as `--precision auto` asks; on one that
    does not (AVX2), bf16 is emulated, slower than fp32, and no user of convscope would train in it."""
    import torch

    from convscope.training.fit import resolve_precision

    return resolve_precision("auto", torch.device("cpu")) == "bf16"


def backend_env(backend: str) -> dict[str, str]:
    return {"KERAS_BACKEND": backend}


def kept_memory_env() -> dict[str, str]:
    """glibc's environment variables for the thresholds convscope sets with mallopt."""
    from convscope.training.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD

    return {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def time_to_accuracy(plan: Plan, split: Path, runs: list, backends: list[str]) -> None:
    """Keras' cnn as the course trains it (test accuracy tracked off the clock) vs the fast preset."""
    peer = keras(split, plan, 32, plan.converge_epochs, 3, "--track-test")
    for rep in range(plan.repeats):
        sides = [(f"keras cnn ({b})", peer, backend_env(b)) for b in backends] + [
            ("convscope fast", convscope(split, plan, "fast", *(("--epochs", "1") if plan.limit else ())), None)
        ]
        for label, cmd, env in sides if rep % 2 == 0 else sides[::-1]:
            runs.append(measure("time", label, None, cmd, env))


def memory(plan: Plan, split: Path, runs: list, backends: list[str]) -> None:
    """Peak RSS after few and after more epochs: it must not grow with the number of epochs."""
    for epochs in plan.memory_epochs:
        same = ("--batch-size", "128", "--epochs", str(epochs), "--patience", str(epochs))
        for b in backends:
            runs.append(
                measure("memory", keras_label(b), epochs, keras(split, plan, 128, epochs, epochs), backend_env(b))
            )
        runs.append(
            measure("memory", "convscope fp32", epochs, convscope(split, plan, "cnn", *same, "--precision", "fp32"))
        )


def measure(kind: str, label: str, key, cmd: list[str], env: dict[str, str] | None = None) -> dict:
    load = os.getloadavg()[0]
    print(
        f"[{time.strftime('%H:%M:%S')}] {kind:<10} {label:<24} {key if key is not None else '':<4} load {load:.1f}",
        file=sys.stderr,
        flush=True,
    )
    return {"kind": kind, "label": label, "key": key, "load_before": load, **run_json(cmd, env)}


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, *cmd], capture_output=True, text=True, env={**os.environ, **env} if env else None
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed ({' '.join(cmd)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_split(data: str, path: Path, limit: int | None) -> Path:
    """The train/test split both sides use, as raw uint8 images: the notebook reshapes and scales them itself."""
    import numpy as np

    import convscope as cs

    dataset = cs.load(data)
    if limit:
        dataset = dataset.subset(np.arange(min(limit, len(dataset))))
    train, test = dataset.split(test_size=0.2, seed=0)
    np.savez(path, x_train=train.images[..., 0], y_train=train.labels, x_test=test.images[..., 0], y_test=test.labels)
    return path


def machine() -> dict:
    import torch

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


# --- the tables ---------------------------------------------------------------------------------


def med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def render(results: dict) -> str:
    runs = results["runs"]
    m, peak = results["machine"], results["peak"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}"
        f"{', GPU ' + m['cuda'] if m.get('cuda') else ', no GPU'}; {m['date']}.",
        f"Data: {results['data']}; command: `{results['command']}`; "
        f"{results['plan']['repeats']} repetition(s), medians; load average before each run: median "
        f"{med(r['load_before'] for r in runs):.1f}, max {max((r['load_before'] for r in runs), default=0):.1f}.",
        "",
    ]
    target = results.get("target_accuracy", TARGET_ACCURACY)
    lines += _throughput_table(runs, peak) + _inference_table(runs) + _time_table(runs, target) + _memory_table(runs)
    return "\n".join(lines) + "\n"


def _pick(runs, kind, label, key=None):
    return [r for r in runs if r["kind"] == kind and r["label"] == label and (key is None or r["key"] == key)]


def _is_keras(label: str) -> bool:
    """A Keras side as the peer runs it: "keras (torch)", or "keras" in results saved before the backends."""
    return label.startswith("keras") and not label.endswith(KERAS_KEPT) and not label.startswith("keras cnn")


def _labels(runs, kinds, test) -> list[str]:
    """The labels passing `test`, in the order they first ran."""
    return list(dict.fromkeys(r["label"] for r in runs if r["kind"] in kinds and test(r["label"])))


def fastest_keras(runs, key=None) -> str | None:
    """The Keras side with the highest median training throughput (at batch `key` if given), None without one."""
    rates = {
        label: med(r["images_per_second"] for r in _pick(runs, "throughput", label, key))
        for label in _labels(runs, ("throughput",), _is_keras)
    }
    rates = {label: rate for label, rate in rates.items() if rate == rate}  # a batch without this side: NaN
    return max(rates, key=lambda label: rates[label]) if rates else None


def _throughput_table(runs, peak) -> list[str]:
    keys = sorted({r["key"] for r in runs if r["kind"] == "throughput"})
    if not keys:
        return []
    out = [
        "Training throughput, `cnn` preset, whole fit (training + validation images per second):",
        "",
        "| batch | side | images/s | vs fastest Keras | fit s | test accuracy | Δ vs fastest Keras (points) | GFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fastest = {}
    for key in keys:
        fastest[key] = base_label = fastest_keras(runs, key)
        base = _pick(runs, "throughput", base_label, key)
        base_rate, base_acc = med(r["images_per_second"] for r in base), med(r["test_accuracy"] for r in base)
        keras_sides = sorted(
            _labels(runs, ("throughput",), _is_keras),
            key=lambda label: -med(r["images_per_second"] for r in _pick(runs, "throughput", label, key)),
        )
        kept_sides = _labels(runs, ("throughput",), lambda label: label.endswith(KERAS_KEPT))
        for label in [*keras_sides, *kept_sides, "convscope fp32", "convscope bf16"]:
            rs = _pick(runs, "throughput", label, key)
            if not rs:
                continue
            rate, acc = med(r["images_per_second"] for r in rs), med(r["test_accuracy"] for r in rs)
            achieved, share = "", ""
            if label.startswith("convscope"):
                # per image: forward + backward (about 3x the forward FLOPs) for training images, forward for validation
                r0 = rs[0]
                frac = r0["train_images"] / (r0["images_seen"] / r0["epochs_run"])
                flops = med(r["images_per_second"] * r["flops_per_image"] * (3 * frac + (1 - frac)) for r in rs)
                roof = peak["bf16_flops"] if "bf16" in label else peak["fp32_flops"]
                achieved, share = f"{flops / 1e9:.0f}", f"{flops / roof:.0%}"
            out.append(
                f"| {key} ({rs[0]['epochs_run']} epoch{'s' if rs[0]['epochs_run'] > 1 else ''}) | {label} | {rate:,.0f} | {rate / base_rate:.2f}x | {med(r['fit_seconds'] for r in rs):.1f} "
                f"| {acc:.4f} | {100 * (acc - base_acc):+.2f} | {achieved} | {share} |"
            )
    out += [
        "",
        "Fastest Keras backend (the ratios' base): " + "; ".join(f"batch {k}: {fastest[k]}" for k in keys) + ".",
        f"Peak measured on this machine (best 3x3 convolution, 64 channels, batch 32): fp32 "
        f"{peak['fp32_flops'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16_flops'] / 1e9:.0f} GFLOP/s.",
        "",
    ]
    if not any(r["kind"] == "throughput" and r["label"] == "convscope bf16" for r in runs):
        why = "this CPU has no native bf16 (AVX-512 BF16 or AMX), and `--precision auto` trains in fp32 here"
        out.insert(-1, f"convscope bf16: not run, {why}.")
    return out


def _inference_table(runs) -> list[str]:
    rs = [r for r in runs if r["kind"] == "throughput"]
    if not rs:
        return []
    keras_rows = []  # (label, batch, images/s, latency ms)
    for label in _labels(rs, ("throughput",), _is_keras):
        side = [r for r in rs if r["label"] == label]
        for batch in ("32", "1024"):
            rate = med(r["predict_images_per_second"][batch] for r in side)
            keras_rows.append((label, batch, rate, med(r["latency_p50_ms"] for r in side) if batch == "32" else None))
    best_label, best_batch, best, _ = max(keras_rows, key=lambda row: row[2])
    out = [
        "Inference on the test split (images per second) and single-image latency:",
        "",
        "| side | batch prediction img/s | vs Keras' best | single image p50 ms |",
        "|---|---|---|---|",
    ]
    for label, batch, rate, latency in keras_rows:
        which = "the notebook's" if batch == "32" else "a large batch"
        out.append(
            f"| {_keras_name(label)} `predict` (batch {batch}, {which}) | {rate:,.0f} | {rate / best:.2f}x | "
            f"{'' if latency is None else f'{latency:.1f}'} |"
        )
    for label in _labels(rs, ("throughput",), lambda label: label.endswith(KERAS_KEPT)):
        kept = [r for r in rs if r["label"] == label]
        rate = max(med(r["predict_images_per_second"][b] for r in kept) for b in ("32", "1024"))
        out.append(
            f"| {_keras_name(label.removesuffix(KERAS_KEPT))} `predict`, malloc kept (its best batch) | {rate:,.0f} | "
            f"{rate / best:.2f}x | {med(r['latency_p50_ms'] for r in kept):.1f} |"
        )
    for label in ("convscope fp32", "convscope bf16"):
        side = [r for r in rs if r["label"] == label]
        if side:
            rate = med(r["predict_images_per_second"]["1024"] for r in side)
            out.append(
                f"| convscope `predict_proba` (trained with {label.split()[1]}) | {rate:,.0f} | {rate / best:.2f}x | "
                f"{med(r['latency_p50_ms'] for r in side):.2f} |"
            )
    return out + ["", f"Keras' best: {_keras_name(best_label)} at batch {best_batch}.", ""]


def _keras_name(label: str) -> str:
    """ "keras (jax)" -> "Keras on jax"; the older plain "keras" stays "Keras"."""
    backend = label.removeprefix("keras").strip().removeprefix("(").removesuffix(")")
    return f"Keras on {backend}" if backend else "Keras"


def _time_table(runs, target: float) -> list[str]:
    f = _pick(runs, "time", "convscope fast")
    peers = {
        label: _pick(runs, "time", label) for label in _labels(runs, ("time",), lambda s: s.startswith("keras cnn"))
    }
    if not peers or not f:
        return []
    rows, to_best_by = [], {}
    for label, k in peers.items():
        best_acc, to_best, to_target = [], [], []
        for r in k:
            accs, ends = r["epoch_test_accuracy"], r["epoch_end_seconds"]
            top = max(accs)
            best_acc.append(top)
            to_best.append(ends[accs.index(top)])
            to_target.append(next((t for a, t in zip(accs, ends) if a >= target), None))
        reached = [t for t in to_target if t is not None]
        to_best_by[label] = med(to_best)
        name = _keras_name(label.replace("keras cnn", "keras"))
        rows.append(
            f"| {name} `cnn`, batch 32, to its best epoch | {med(to_best):.1f} | {med(best_acc):.4f} | "
            f"reached {target:.1%} in {len(reached)} of {len(k)} runs"
            f"{f' (median {med(reached):.1f} s)' if reached else ''} |"
        )
    fastest = min(to_best_by, key=lambda label: to_best_by[label])
    fast_s, fast_acc = med(r["fit_seconds"] for r in f), med(r["test_accuracy"] for r in f)
    return [
        "Time to accuracy (training seconds; test accuracy for Keras measured after every epoch, off the clock):",
        "",
        "| run | training s | test accuracy | note |",
        "|---|---|---|---|",
        *rows,
        f"| convscope `fast`, its recipe, whole fit | {fast_s:.1f} | {fast_acc:.4f} | "
        f"{sum(r['test_accuracy'] >= target for r in f)} of {len(f)} runs at {target:.1%}; "
        f"{to_best_by[fastest] / fast_s:.1f}x faster than {_keras_name(fastest.replace('keras cnn', 'keras'))} "
        "(the fastest Keras here) to its best |",
        "",
    ]


def _memory_table(runs) -> list[str]:
    rows = [r for r in runs if r["kind"] in ("throughput", "memory")]
    if not rows:
        return []
    epochs = sorted({r["key"] for r in rows if r["kind"] == "memory"})
    out = [
        "Peak resident memory (MB, whole process):",
        "",
        "| side | throughput runs (median) |" + "".join(f" after {e} epochs |" for e in epochs),
        "|---|---|" + "---|" * len(epochs),
    ]
    for label in [*_labels(rows, ("throughput", "memory"), _is_keras), "convscope fp32", "convscope bf16"]:
        t = [r["peak_rss_mb"] for r in rows if r["kind"] == "throughput" and r["label"] == label]
        picked = [_pick(runs, "memory", label, e) for e in epochs]
        mem = [f"{med(r['peak_rss_mb'] for r in rs):.0f}" if rs else "" for rs in picked]  # "": not measured
        if t or any(mem):
            out.append(f"| {label} | {med(t):.0f} |" + "".join(f" {v} |" for v in mem))
    return out + [""]


if __name__ == "__main__":
    sys.exit(main())
