"""Start-up time of `convscope --help` and `--version`: this tree's sources against a peer tree's (the main
checkout, or any other source folder), each command run in a fresh interpreter, alternating between the two
trees so both see the same load.

    python -m benchmarks.startup --peer /path/to/other/src [--runs 15]

Prints the median and spread of each (tree, command) and the ratio peer / ours, plus the modules that the
slowest import pulls in (`python -X importtime`), so a regression shows where it came from.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OURS = Path(__file__).resolve().parents[1] / "src"
COMMANDS = (["--help"], ["--version"], ["train", "--help"])


def once(src: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "convscope", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"convscope {' '.join(args)} with {src} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def heaviest_imports(src: Path, args: list[str], top: int = 5) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports of one run."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "convscope", *args], env=env, capture_output=True, text=True
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", type=Path, required=True, help="the other tree's src/ folder")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    trees = {"peer": args.peer.resolve(), "ours": OURS}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for command in COMMANDS:
            for name, src in trees.items():
                times.setdefault((name, " ".join(command)), []).append(once(src, command))
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'command':<16} {'peer median':>12} {'ours median':>12} {'peer / ours':>12}")
    for command in COMMANDS:
        key = " ".join(command)
        peer, ours = statistics.median(times[("peer", key)]), statistics.median(times[("ours", key)])
        print(f"{key:<16} {peer:>11.3f}s {ours:>11.3f}s {peer / ours:>11.1f}x")
    for name, src in trees.items():
        print(f"\n{name}: heaviest imports of --help (cumulative)")
        for micros, module in heaviest_imports(src, ["--help"]):
            print(f"  {micros / 1e3:8.1f} ms  {module.strip()}")


if __name__ == "__main__":
    main()
