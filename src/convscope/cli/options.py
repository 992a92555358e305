"""Argument types shared by several sub-commands: bad values fail in argparse with exit code 2."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def shape(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like 28,28,1, got {text!r}") from None
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"must be three positive integers H,W,C, got {text!r}")
    return parts


def add_data_options(p: argparse.ArgumentParser, default: str | None = "mnist-5k") -> None:
    p.add_argument("--data", default=default, help="a file, folder or built-in name (mnist-5k, digits)")
    p.add_argument("--class-names", help="ABCDEFGHIJ (one character per class) or comma,separated,names")
    p.add_argument("--layout", choices=["NHWC", "NCHW", "NHW", "HWN", "HWCN"], help="override layout detection")
    p.add_argument("--image-size", type=positive_int, help="resize image-folder images to this size")
    p.add_argument("--channels", type=int, choices=[1, 3], help="1 = grayscale, 3 = RGB (image folders)")


def data_kwargs(args: argparse.Namespace) -> dict:
    return {
        "class_names": args.class_names, "layout": args.layout,
        "image_size": args.image_size, "channels": args.channels,
    }


def add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int,
                   help="torch threads (default: the cores other processes leave idle; see the README)")
