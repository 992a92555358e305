"""Running the server: one process, or `--workers N` uvicorn processes sharing one port, and the threads
each takes for its forward passes.

`serve` is what `convscope serve` does once its flags are read; it announces where it listens on stdout
and returns when the server stops.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from ..cpu import affinity_size, choose_threads
from ..i18n import _
from ..runs import load_run
from . import worker_process
from .app import create_app
from .http_protocol import JsonErrorH11Protocol
from .service import ServerSettings

CONFIG_ENV = "CONVSCOPE_SERVE_CONFIG"


@dataclass(frozen=True)
class Listen:
    """Where the server listens, with how many processes, and how much uvicorn logs."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"


def serve(run_dir: str | Path, settings: ServerSettings, listen: Listen, threads: int | None = None) -> None:
    """Serve `run_dir` until the server is stopped; `threads`: torch threads per process (None: chosen here)."""
    cores = affinity_size()
    # auto is decided here, where the number of server processes sharing the cores is known
    where = worker_process.choose(settings.batch_worker, Path(run_dir), cores // listen.workers)
    settings = dataclasses.replace(settings, batch_worker=where)
    # Asked for: as asked. Otherwise the idle cores (cpu.py), capped at each worker's share of the cores
    # minus one, which leaves a core to the event loop (BENCHMARKS.md, "Serving at the model's speed").
    plan = choose_threads(threads)
    count = plan.threads if threads else min(plan.threads, forward_threads(cores, listen.workers))
    if listen.workers == 1:
        serve_one(run_dir, settings, listen, count, plan.reason)
    else:
        serve_many(run_dir, settings, listen, count)


def serve_one(run_dir: str | Path, settings: ServerSettings, listen: Listen, threads: int, reason: str) -> None:
    """One server process: the app is built first, so a bad run directory fails before anything listens."""
    import torch

    torch.set_num_threads(threads)
    app = create_app(run_dir, settings)
    served = app.state.served
    timings = "".join(f", {e.name} {1e6 * e.timings[settings.max_batch_size]:.0f}" for e in served.engines_measured)
    measured = (
        " " + _("(us per image at batch {size}{timings})").format(size=settings.max_batch_size, timings=timings)
        if timings
        else ""
    )
    print(
        _(
            "serving {run} on {where} with engine {engine}{measured}, batch worker {worker}  "
            "(API docs: /docs, metrics: /metrics; threads: {threads}, {reason})"
        ).format(
            run=run_dir,
            where=listen.url,
            engine=served.engine.name,
            measured=measured,
            worker=settings.batch_worker,
            threads=threads,
            reason=reason,
        ),
        flush=True,
    )
    uvicorn.run(app, host=listen.host, port=listen.port, log_level=listen.log_level, http=JsonErrorH11Protocol)


def serve_many(run_dir: str | Path, settings: ServerSettings, listen: Listen, threads: int) -> None:
    """`listen.workers` processes, each with the model, its own batcher and `threads` threads.

    Workers are fresh processes: they get the settings through the environment (`app_from_environment`),
    and share one directory for their metrics so that a scrape of any of them sees them all.
    """
    load_run(run_dir)  # a bad run directory fails here, before the workers start
    with tempfile.TemporaryDirectory(prefix="convscope-metrics-") as metrics_dir:
        os.environ[CONFIG_ENV] = json.dumps(
            {"run": str(run_dir), "settings": dataclasses.asdict(settings), "threads": threads}
        )
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        print(
            _(
                "serving {run_dir} on {where} with {workers} workers, batch worker {batch_worker}  (API docs: /docs, metrics: /metrics)"
            ).format(run_dir=run_dir, where=listen.url, workers=listen.workers, batch_worker=settings.batch_worker),
            flush=True,
        )
        config = uvicorn.Config(
            "convscope.serving.server:app_from_environment",
            factory=True,
            host=listen.host,
            port=listen.port,
            workers=listen.workers,
            log_level=listen.log_level,
            http=JsonErrorH11Protocol,
        )
        run_workers(config)


def app_from_environment() -> FastAPI:
    """The app of one `serve_many` worker, from the settings the parent left in the environment.

    Each worker takes its share of the cores for its forward passes (`threads`, chosen by `serve`),
    so N batchers do not oversubscribe them.
    """
    import torch

    config = json.loads(os.environ[CONFIG_ENV])
    torch.set_num_threads(config["threads"])
    return create_app(config["run"], ServerSettings(**config["settings"]))


def run_workers(config: uvicorn.Config) -> None:
    """uvicorn.run's multi-worker path, with TCP_NODELAY on the shared listening socket.

    uvicorn binds that socket without naming the protocol (proto 0), so asyncio does not set TCP_NODELAY on
    the connections it accepts; a keep-alive client then waits for a delayed ACK (about 40 ms) between a
    response's header and body writes. We measured 48 ms per lone request with 2 workers (BENCHMARKS.md,
    "Serving"). Linux hands the listener's TCP_NODELAY down to every accepted connection.
    """
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # uvicorn before 0.30 takes the worker function; later ones build their own
    takes_target = "target" in inspect.signature(Multiprocess.__init__).parameters
    target = {"target": uvicorn.Server(config=config).run} if takes_target else {}
    Multiprocess(config, sockets=[sock], **target).run()


def forward_threads(cores: int, workers: int) -> int:
    """Each worker's share of the cores minus one for its event loop, which parses HTTP while the model runs.

    On 2 cores that is 1 thread: under load a second OpenMP thread only contends with the event loop and the
    clients (BENCHMARKS.md, "Serving").
    """
    return max(1, cores // workers - 1)
