"""`convscope serve RUN`: the REST API and the drawing page for a trained run."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .options import add_threads_option, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a run over HTTP: REST API, drawing page, /docs",
        description="Serve a trained run: POST /predict, /predict/batch, /feature-maps; GET /model, /health; "
        "the drawing page at / and the API docs at /docs. Works offline.",
    )
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body, in MiB (default 10); larger: 413")
    p.add_argument("--max-image-pixels", type=positive_int, default=4096 * 4096,
                   help="largest decoded image, width x height (default 16777216); larger: 413")
    p.add_argument("--max-batch", type=positive_int, default=64, help="most images per /predict/batch call (default 64)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_threads_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serving.app import create_app
        from ..serving.service import ServerSettings
    except ImportError as exc:
        raise UserError(f"convscope serve needs the serve extra ({exc.name} is missing): pip install 'convscope[serve]'.") from None
    if args.max_upload_mb <= 0:
        raise UserError(f"--max-upload-mb must be positive, got {args.max_upload_mb}.")
    settings = ServerSettings(
        max_body_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_image_pixels=args.max_image_pixels,
        max_batch=args.max_batch,
    )
    from ..training.threads import apply_threads

    plan = apply_threads(args.threads)  # once, before the first request; see training/threads.py
    app = create_app(args.run_dir, settings)  # a bad run directory fails here, before listening
    print(f"serving {args.run_dir} on http://{args.host}:{args.port}/  (API docs: /docs; threads: {plan.reason})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
