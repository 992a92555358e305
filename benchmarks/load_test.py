"""Load test of `convscope serve` on loopback: closed-loop keep-alive clients, /predict against /health.

    python benchmarks/load_test.py RUN [--concurrency 32] [--requests 6000] [--repeats 3]
        [--server-args "--max-batch-size 32 --engine torch"] [--src /path/to/other/src]

Starts the server as a subprocess on a free 127.0.0.1 port, then per repeat runs these phases
against the same server, in this order:

  health     GET /health, N clients          the HTTP floor: no body, no image, no model
  predict    POST /predict, N clients        one real PNG digit per request (multipart field `image`)
  predict-1  POST /predict, one client       the latency of a lone request on an idle server
  local      predict_proba on one image      in this process, no HTTP: the model's share of a request

Clients are closed-loop (each sends its next request when the previous answer is in) on their own
keep-alive connection, written with raw asyncio streams: requests are prebuilt bytes and a response
is one header read plus one body read, so the client costs a small fraction of what the server
does per request (its CPU time per request is printed beside the server's rate to show it).
The batch-size distribution of the predict phase comes from the server's /metrics. Speeds are
medians over the repeats, and ratios are taken against /health in the same repeat, since absolute
numbers on a shared machine are noisy. Any non-200 answer or transport error counts as an error;
the script exits 1 if there was one. Each phase stops after --max-seconds, whatever the count.
`--src` serves another checkout's sources (say, landed main's) with the same client, for a same-run
comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

import convscope as cs  # noqa: E402

BOUNDARY = "convscopeloadtestboundary"


@dataclass
class Phase:
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_s: float = 0.0
    batch_sizes: dict[str, float] = field(default_factory=dict)  # histogram bucket upper bound -> batches
    batches: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- the client ----------------------------------------------------------------------------------


def get_request(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def multipart_request(path: str, host: str, png: bytes) -> bytes:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def drive(
    name: str, host: str, port: int, requests: list[bytes], total: int, concurrency: int, max_seconds: float
) -> Phase:
    """`concurrency` closed-loop clients, one keep-alive connection each, `total` requests in all."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def client(offset: int) -> None:
        nonlocal issued, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            i = offset
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                start = time.perf_counter()
                try:
                    writer.write(requests[i % len(requests)])
                    status, _ = await read_response(reader)
                    ok = status == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                latencies.append(time.perf_counter() - start)
                errors += not ok
                i += concurrency
        finally:
            writer.close()

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(concurrency)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ms = np.array(latencies) * 1000
    return Phase(
        name,
        concurrency,
        len(latencies),
        errors,
        seconds,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        cpu,
    )


async def scrape(host: str, port: int) -> dict[str, float]:
    """The server's batch-size histogram buckets (cumulative counts by upper bound), from /metrics."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(get_request("/metrics", host))
        status, body = await read_response(reader)
    finally:
        writer.close()
    if status != 200:
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    return {
        s.labels["le"]: s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "convscope_batch_size_bucket"
    }


def distribution(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Batches per bucket ("<= 4": batches of 3 or 4 images) between two scrapes."""
    previous, out = 0.0, {}
    for le in sorted(after, key=lambda k: float(k)):
        cumulative = after[le] - before.get(le, 0.0)
        if cumulative - previous:
            out[le] = cumulative - previous
        previous = cumulative
    return out


async def one_repeat(host: str, port: int, health: list[bytes], predict: list[bytes], args) -> list[Phase]:
    phases = [await drive("health", host, port, health, args.requests, args.concurrency, args.max_seconds)]
    before = await scrape(host, port)
    phase = await drive("predict", host, port, predict, args.requests, args.concurrency, args.max_seconds)
    after = await scrape(host, port)
    phase.batch_sizes = distribution(before, after)
    phase.batches = sum(phase.batch_sizes.values())
    phases.append(phase)
    phases.append(await drive("predict-1", host, port, predict, args.single_requests, 1, args.max_seconds))
    return phases


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
    return Phase(
        "local",
        1,
        len(latencies),
        0,
        time.perf_counter() - start,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
    )


# --- the server ----------------------------------------------------------------------------------


def start_server(run: Path, src: Path, server_args: list[str]) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [
        sys.executable,
        "-m",
        "convscope",
        "serve",
        str(run),
        "--port",
        str(port),
        "--log-level",
        "warning",
        *server_args,
    ]
    process = subprocess.Popen(command, env=env)
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(get_request("/health", "127.0.0.1"))
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return process, port
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not answer /health in 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run directory (convscope train --out ...)")
    parser.add_argument("--requests", type=int, default=6000, help="requests per phase with --concurrency clients")
    parser.add_argument("--single-requests", type=int, default=1000, help="requests of the one-client phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time limit per phase")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server-args", default="", help="extra `convscope serve` options, one string")
    parser.add_argument(
        "--src", type=Path, default=SRC, help="the convscope sources the server runs (default: this checkout's)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the server under `timeout`
    # One thread for the in-process peer, like the server's forward on 2 cores (convscope serve --threads):
    # two spinning OpenMP threads in a client that shares the cores with the server measure only the fight.
    import torch

    torch.set_num_threads(1)

    trained = cs.load_run(args.run)
    data, _ = cs.load_test_set(args.run)
    images = data.images[:200]
    host = "127.0.0.1"
    pngs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    health = [get_request("/health", host)]
    predict = [multipart_request("/predict", host, p) for p in pngs]

    process, port = start_server(args.run, args.src, shlex.split(args.server_args))
    repeats: list[list[Phase]] = []
    try:
        for r in range(args.repeats):
            phases = asyncio.run(one_repeat(host, port, health, predict, args))
            phases.append(local_peer(trained, images, args.single_requests, args.max_seconds))
            repeats.append(phases)
            line = "  ".join(
                f"{p.name} {p.rps:,.0f}/s p50 {p.p50_ms:.2f} p99 {p.p99_ms:.1f} ms err {p.errors}" for p in phases
            )
            print(f"repeat {r + 1}: {line}  batches {repeats[-1][1].batch_sizes}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)

    summary = {}
    for i, name in enumerate(p.name for p in repeats[0]):
        runs = [phases[i] for phases in repeats]
        health_rps = [phases[0].rps for phases in repeats]
        summary[name] = {
            "concurrency": runs[0].concurrency,
            "requests": sum(p.requests for p in runs),
            "errors": sum(p.errors for p in runs),
            "rps_median": statistics.median(p.rps for p in runs),
            "p50_ms_median": statistics.median(p.p50_ms for p in runs),
            "p99_ms_median": statistics.median(p.p99_ms for p in runs),
            "rps_vs_health_median": statistics.median(p.rps / h for p, h in zip(runs, health_rps)),
            "rps_vs_health_each": [round(p.rps / h, 3) for p, h in zip(runs, health_rps)],
            "client_cpu_us_per_request": statistics.median(1e6 * p.client_cpu_s / max(p.requests, 1) for p in runs),
        }
    sizes: dict[str, float] = {}
    for phases in repeats:
        for le, n in phases[1].batch_sizes.items():
            sizes[le] = sizes.get(le, 0) + n
    total = sum(sizes.values()) or 1
    print(
        f"\n{args.concurrency} concurrent keep-alive clients, {args.requests} requests per phase, medians of {args.repeats} "
        f"repeats; server: convscope serve {args.server_args or '(defaults)'} from {args.src}"
    )
    print(
        f"{'phase':9} {'clients':>7} {'requests':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'vs health':>9} {'client us/req':>13}"
    )
    for name, s in summary.items():
        print(
            f"{name:9} {s['concurrency']:7d} {s['requests']:9d} {s['errors']:6d} {s['rps_median']:8.0f} {s['p50_ms_median']:7.2f} "
            f"{s['p99_ms_median']:7.1f} {s['rps_vs_health_median']:9.2f} {s['client_cpu_us_per_request']:13.0f}"
        )
    if sizes:
        print(
            "predict batch sizes (batches, all repeats): "
            + ", ".join(
                f"<={float(le):g}: {n:.0f} ({n / total:.0%})"
                for le, n in sorted(sizes.items(), key=lambda kv: float(kv[0]))
            )
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "settings": {k: str(v) for k, v in vars(args).items()},
                    "summary": summary,
                    "batch_sizes": sizes,
                    "repeats": [[asdict(p) for p in ph] for ph in repeats],
                },
                indent=2,
            )
        )
    return 1 if any(s["errors"] for s in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
