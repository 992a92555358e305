"""`convscope serve RUN`: the REST API and the drawing page for a trained run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

from ..errors import UserError
from ..i18n import N_, _
from .options import add_threads_option, float_range, int_range, port


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help=_("serve a run over HTTP: REST API, drawing page, /docs, /metrics"),
        description=_(
            "Serve a trained run: POST /predict, /predict/batch, /feature-maps; GET /model, /health, /metrics; the drawing page at / and the API docs at /docs. Works offline."
        ),
    )
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--host", default="127.0.0.1", help=_("address to listen on (default 127.0.0.1: this machine only)"))
    p.add_argument("--port", type=port, default=8000)
    p.add_argument(
        "--max-upload-mb",
        type=float_range(0.0, 1024 * 1024, low_open=True),
        default=10.0,
        help=_("largest request body, in MiB (default 10); larger: 413"),
    )
    p.add_argument(
        "--max-image-pixels",
        type=int_range(1, 2**31, N_("a pixel count")),
        default=4096 * 4096,
        help=_("largest decoded image, width x height (default 16777216); larger: 413"),
    )
    p.add_argument(
        "--max-batch",
        type=int_range(1, 100_000, N_("a number of images")),
        default=64,
        help=_("most images per /predict/batch call (default 64)"),
    )
    p.add_argument(
        "--max-batch-size",
        type=int_range(1, 100_000, N_("a number of images")),
        default=32,
        help=_("most images per forward pass; concurrent requests are batched up to this (default 32)"),
    )
    p.add_argument(
        "--max-batch-delay-ms",
        type=float_range(0.0, 60_000.0),
        default=2.0,
        help=_("longest a batch waits for requests still being read (default 2); an idle server never waits"),
    )
    p.add_argument(
        "--engine",
        default="torch",
        choices=["torch", "onnxruntime", "openvino", "auto"],
        help=_(
            "what runs the forward pass (default torch, the run's own predict_proba); auto: the fastest installed engine that matches torch, measured at startup"
        ),
    )
    p.add_argument(
        "--batch-worker",
        default="auto",
        choices=["auto", "process", "thread"],
        help=_(
            "where images are decoded and batches run: process (its own process, so HTTP and the model use different cores), thread (in the server's process); auto (default): process with 2 or more cores per server process"
        ),
    )
    p.add_argument(
        "--workers",
        type=int_range(1, 256, N_("a number of processes")),
        default=1,
        help=_(
            "server processes sharing the port, each with the model, its own batcher and 1/N of the cores' "
            "threads (default 1); a connection stays with one worker, so batches form per worker"
        ),
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_threads_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serving import worker_process
        from ..serving.app import CONFIG_ENV, create_app
        from ..serving.limits import json_error_protocol
        from ..serving.service import ServerSettings
    except ImportError as exc:
        raise UserError(
            _("convscope serve needs the serve extra ({name} is missing): pip install 'convscope[serve]'.").format(
                name=exc.name
            )
        ) from None
    if args.max_upload_mb <= 0:
        raise UserError(
            _("--max-upload-mb must be positive, got {max_upload_mb}.").format(max_upload_mb=args.max_upload_mb)
        )
    if args.max_batch_delay_ms < 0:
        raise UserError(
            _("--max-batch-delay-ms must be 0 or more, got {max_batch_delay_ms}.").format(
                max_batch_delay_ms=args.max_batch_delay_ms
            )
        )
    from ..cpu import affinity_size, choose_threads

    cores = affinity_size()
    settings = ServerSettings(
        max_body_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_image_pixels=args.max_image_pixels,
        max_batch=args.max_batch,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        engine=args.engine,
        # auto decides here, where the number of server processes sharing the cores is known
        batch_worker=worker_process.choose(args.batch_worker, Path(args.run_dir), cores // args.workers),
    )
    where = f"http://{args.host}:{args.port}/"
    # Asked for: as asked. Otherwise the idle cores (training/threads.py), capped at each worker's share of
    # the cores minus one, which leaves a core to the event loop (BENCHMARKS.md, "Serving at the model's speed").
    plan = choose_threads(args.threads)
    threads = plan.threads if args.threads else min(plan.threads, forward_threads(cores, args.workers))
    if args.workers == 1:
        import torch

        torch.set_num_threads(threads)
        app = create_app(args.run_dir, settings)  # a bad run directory fails here, before listening
        engine = app.state.served.engine
        timings = "".join(
            f", {e.name} {1e6 * e.timings[args.max_batch_size]:.0f}" for e in app.state.served.engines_measured
        )
        measured = (
            " " + _("(us per image at batch {size}{timings})").format(size=args.max_batch_size, timings=timings)
            if timings
            else ""
        )
        print(
            _(
                "serving {run} on {where} with engine {engine}{measured}, batch worker {worker}  "
                "(API docs: /docs, metrics: /metrics; threads: {threads}, {reason})"
            ).format(
                run=args.run_dir,
                where=where,
                engine=engine.name,
                measured=measured,
                worker=settings.batch_worker,
                threads=threads,
                reason=plan.reason,
            ),
            flush=True,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, http=json_error_protocol())
        return 0
    from ..runs import load_run

    load_run(args.run_dir)  # a bad run directory fails here, before the workers start
    # Workers are fresh processes: they get the settings through the environment, and share
    # one directory for their metrics so that a scrape of any of them sees them all.
    with tempfile.TemporaryDirectory(prefix="convscope-metrics-") as metrics_dir:
        os.environ[CONFIG_ENV] = json.dumps(
            {"run": str(args.run_dir), "settings": dataclasses.asdict(settings), "threads": threads}
        )
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        print(
            _(
                "serving {run_dir} on {where} with {workers} workers, batch worker {batch_worker}  (API docs: /docs, metrics: /metrics)"
            ).format(run_dir=args.run_dir, where=where, workers=args.workers, batch_worker=settings.batch_worker),
            flush=True,
        )
        config = uvicorn.Config(
            "convscope.serving.app:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            http=json_error_protocol(),
        )
        serve_workers(config)
    return 0


def serve_workers(config) -> None:
    """uvicorn.run's multi-worker path, with TCP_NODELAY on the shared listening socket.

    uvicorn binds that socket without naming the protocol (proto 0), so asyncio does not set TCP_NODELAY on
    the connections it accepts; a keep-alive client then waits for a delayed ACK (about 40 ms) between a
    response's header and body writes. We measured 48 ms per lone request with 2 workers (BENCHMARKS.md,
    "Serving"). Linux hands the listener's TCP_NODELAY down to every accepted connection.
    """
    import inspect
    import socket

    from uvicorn import Server
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # uvicorn before 0.30 takes the worker function; later ones build their own
    takes_target = "target" in inspect.signature(Multiprocess.__init__).parameters
    Multiprocess(config, sockets=[sock], **({"target": Server(config=config).run} if takes_target else {})).run()


def forward_threads(cores: int, workers: int) -> int:
    """Each worker's share of the cores minus one for its event loop, which parses HTTP while the model runs.

    On 2 cores that is 1 thread: under load a second OpenMP thread only contends with the event loop and the
    clients (BENCHMARKS.md, "Serving").
    """
    return max(1, cores // workers - 1)
