"""Load test of `convscope serve` on loopback: concurrent clients, bounded in count and time.

    python benchmarks/load_test.py RUN [--requests 3000] [--concurrency 32] [--max-seconds 120] [--repeats 3]

Starts the server as a subprocess on a free 127.0.0.1 port, then per repeat runs, with the same
client, the same concurrency and in the same order:

  health   GET /health                     the HTTP floor: uvicorn + FastAPI, no image, no model
  predict  POST /predict, one real PNG     upload parsing + decode + the model, per request
  batch    POST /predict/batch, 32 PNGs    a tenth as many requests; reported per image too
  local    predict_proba on one image      in-process, no HTTP: the model's share of a request

Speeds are reported as medians over the repeats and as ratios to `health` measured in the
same repeat, since absolute numbers on a shared 2-core machine are noisy. Any non-200 answer
or transport error counts as an error; the script exits 1 if there was one. It stops itself
after --max-seconds per phase whatever the count, and only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

import convscope as cs  # noqa: E402


@dataclass
class Phase:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    images_per_request: int = 1

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _drive(name: str, send, total: int, concurrency: int, max_seconds: float, per_request: int = 1) -> Phase:
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def client() -> None:
        nonlocal issued, errors
        while issued < total and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            try:
                ok = await send()
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return Phase(name, len(latencies), errors, seconds, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), per_request)


async def one_repeat(url: str, pngs: list[bytes], args) -> list[Phase]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as http:
        counter = iter(range(10**9))

        async def health() -> bool:
            return (await http.get("/health")).status_code == 200

        async def predict() -> bool:
            data = pngs[next(counter) % len(pngs)]
            return (await http.post("/predict", files={"image": ("d.png", data, "image/png")})).status_code == 200

        async def batch() -> bool:
            first = next(counter) % len(pngs)
            files = [("images", (f"{i}.png", pngs[(first + i) % len(pngs)], "image/png")) for i in range(32)]
            response = await http.post("/predict/batch", files=files)
            return response.status_code == 200 and len(response.json()["predictions"]) == 32

        return [
            await _drive("health", health, args.requests, args.concurrency, args.max_seconds),
            await _drive("predict", predict, args.requests, args.concurrency, args.max_seconds),
            await _drive("batch", batch, max(1, args.requests // 10), args.concurrency, args.max_seconds, 32),
        ]


def local_peer(trained, images: np.ndarray, count: int, max_seconds: float) -> Phase:
    """predict_proba on one image at a time in this process: what the model alone costs."""
    latencies = []
    deadline = time.perf_counter() + max_seconds
    start = time.perf_counter()
    for i in range(count):
        if time.perf_counter() > deadline:
            break
        t = time.perf_counter()
        trained.predict_proba(images[i % len(images)][None])
        latencies.append(time.perf_counter() - t)
    ms = np.array(latencies) * 1000
    return Phase("local", len(latencies), 0, time.perf_counter() - start, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)))


def start_server(run: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "convscope", "serve", str(run), "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not answer /health in 60 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run directory (convscope train --out ...)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per phase (batch: a tenth)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time limit per phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    trained = cs.load_run(args.run)
    data, _ = cs.load_test_set(args.run)
    images = data.images[:200]
    pngs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())

    process, url = start_server(args.run)
    repeats: list[list[Phase]] = []
    try:
        for r in range(args.repeats):
            phases = asyncio.run(one_repeat(url, pngs, args))
            phases.append(local_peer(trained, images, args.requests, args.max_seconds))
            repeats.append(phases)
            line = "  ".join(f"{p.name} {p.rps:,.0f}/s p50 {p.p50_ms:.1f} ms p99 {p.p99_ms:.1f} ms err {p.errors}" for p in phases)
            print(f"repeat {r + 1}: {line}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=10)

    names = [p.name for p in repeats[0]]
    summary = {}
    for i, name in enumerate(names):
        runs = [phases[i] for phases in repeats]
        health = [phases[0].rps for phases in repeats]
        summary[name] = {
            "requests": sum(p.requests for p in runs),
            "errors": sum(p.errors for p in runs),
            "rps_median": statistics.median(p.rps for p in runs),
            "images_per_s_median": statistics.median(p.rps * p.images_per_request for p in runs),
            "p50_ms_median": statistics.median(p.p50_ms for p in runs),
            "p99_ms_median": statistics.median(p.p99_ms for p in runs),
            "rps_vs_health_median": statistics.median(p.rps / h for p, h in zip(runs, health)),
        }
    print(f"\n{args.concurrency} concurrent clients, {args.requests} requests per phase, medians of {args.repeats} repeats")
    print(f"{'phase':8} {'requests':>9} {'errors':>6} {'req/s':>8} {'images/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'vs health':>9}")
    for name, s in summary.items():
        print(f"{name:8} {s['requests']:9d} {s['errors']:6d} {s['rps_median']:8.0f} {s['images_per_s_median']:9.0f} "
              f"{s['p50_ms_median']:7.1f} {s['p99_ms_median']:7.1f} {s['rps_vs_health_median']:9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"run": str(args.run), "json": str(args.json)},
                                         "summary": summary, "repeats": [[asdict(p) for p in ph] for ph in repeats]}, indent=2))
    return 1 if any(s["errors"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
