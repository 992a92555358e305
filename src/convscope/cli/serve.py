"""`convscope serve RUN`: the REST API and the drawing page for a trained run."""

from __future__ import annotations

import argparse

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
        from ..serving.server import Listen, serve
        from ..serving.service import ServerSettings
    except ImportError as exc:
        raise UserError(
            _("convscope serve needs the serve extra ({name} is missing): pip install 'convscope[serve]'.").format(
                name=exc.name
            )
        ) from None
    settings = ServerSettings(
        max_body_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_image_pixels=args.max_image_pixels,
        max_batch=args.max_batch,
        max_batch_size=args.max_batch_size,
        max_batch_delay_ms=args.max_batch_delay_ms,
        engine=args.engine,
        batch_worker=args.batch_worker,
    )
    serve(args.run_dir, settings, Listen(args.host, args.port, args.workers, args.log_level), args.threads)
    return 0
