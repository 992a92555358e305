"""`/metrics` in the Prometheus text format, with prometheus-client.

Each app has its own registry (no process-wide state), except under `convscope serve --workers N`:
there every worker writes its samples to the directory named by PROMETHEUS_MULTIPROC_DIR, which
`serve` sets before the workers start, and a scrape of any worker reads all of them
(prometheus-client's multiprocess mode), so one scrape sees the whole server.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .batcher import BatchReport

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServerMetrics:
    """The server's counters and histograms; `observe_request` is called by `MetricsMiddleware`."""

    def __init__(self, routes: set[str]):
        self.routes = routes
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode samples go to files whatever the registry; ours then only names them.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "convscope_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.errors = Counter(
            "convscope_request_errors",
            "HTTP requests answered with a 4xx or 5xx status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "convscope_request_duration_seconds",
            "time from the request's start to the end of the response",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "convscope_batch_size", "images per forward pass of the batcher", buckets=BATCH_BUCKETS, registry=r
        )
        self.batches = Counter(
            "convscope_batches",
            "batches run, by why they were sent: full, ready (nothing else "
            "queued or being read: sent at once) or delay (the window ran out)",
            ["trigger"],
            registry=r,
        )
        self.batch_waits = Counter(
            "convscope_batch_waits", "times the batcher waited for requests still being read", registry=r
        )
        self.batch_seconds = Histogram(
            "convscope_batch_run_seconds",
            "decode + forward time of one batch, as the batcher waited for it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "convscope_queue_depth", "images waiting for a batch", registry=r, multiprocess_mode="livesum"
        )  # summed over the live workers

    def route_of(self, path: str) -> str:
        """The route label: the path when it is one of the app's routes, else 'other' (bounded cardinality)."""
        return path if path in self.routes else "other"

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        route = self.route_of(path)
        self.requests.labels(route, method, str(status)).inc()
        if status >= 400:
            self.errors.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, report: BatchReport) -> None:
        self.batch_size.observe(report.size)
        self.batches.labels(report.trigger).inc()
        if report.waits:
            self.batch_waits.inc(report.waits)
        self.batch_seconds.observe(report.run_s)

    def observe_queue(self, depth: int) -> None:
        self.queue_depth.set(depth)

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class MetricsMiddleware:
    """Times every HTTP request and counts it by route and status (pure ASGI: no per-request task)."""

    def __init__(self, app, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client gets if the app dies before answering

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(scope["path"], scope["method"], status, time.perf_counter() - start)
