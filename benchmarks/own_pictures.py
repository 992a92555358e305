"""Accuracy on people's own typed letters and digits, through `convscope predict` (the input contract's measure).

    python -m benchmarks.own_pictures --out runs/own-pictures [--before-src /tmp/convscope-main/src]

Renders A-J and 0-9 in every TrueType font installed (fc-list), as a user's picture would look: black on
white, 200 x 200, the character at a random size (25-75% of the height) and place. None of it is in the
repository. Then:

- letters: a `cnn` trained on notMNIST-like renderings (white glyphs stretched to fill a black 28 x 28 frame,
  each font in 30 variants: rotated, sheared, bolder) of half the fonts predicts the pictures of the other half, and the other
  way round (two folds), so every font is predicted by a model that never saw it;
- digits: the default `cnn` on the embedded mnist-5k (`convscope train`'s defaults) predicts every font's digits.

Each set goes through `python -m convscope predict RUN FILE... --json`, with this checkout's sources and,
given `--before-src`, with another checkout's (the code before the input contract). The table goes to stdout
and to OUT/results.md. It measures accuracy only, so it needs no benchmark lock.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import convscope as cs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import glyphs  # (the tests' font renderer: one definition of what the pictures look like)

SRC = Path(__file__).resolve().parents[1] / "src"
# A font gives one glyph per letter; these give each font 30 variants that survive notMNIST's stretching:
ANGLES = (-10, -5, 0, 5, 10)  # degrees of rotation
SHEARS = (-0.2, 0.0, 0.2)  # horizontal shear, as italics lean
STROKES = (None, 3)  # as drawn, and one pixel bolder (a 3 x 3 maximum filter at 96 px)


def notmnist_like_set(fonts: list[Path]) -> cs.Dataset:
    from PIL import ImageFilter

    images, labels = [], []
    for font in fonts:
        for label, char in enumerate(glyphs.LETTERS):
            ink = Image.fromarray(glyphs.glyph(font, char))
            for stroke in STROKES:
                bold = ink if stroke is None else ink.filter(ImageFilter.MaxFilter(stroke))
                for shear in SHEARS:
                    leaning = bold.transform(
                        (bold.width + int(abs(shear) * bold.height), bold.height),
                        Image.Transform.AFFINE,
                        (1, shear, -max(shear, 0) * bold.height, 0, 1, 0),
                        Image.Resampling.BICUBIC,
                    )
                    for angle in ANGLES:
                        turned = leaning.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)
                        images.append(
                            np.asarray(turned.crop(turned.getbbox()).resize((28, 28), Image.Resampling.LANCZOS))
                        )
                        labels.append(label)
    return cs.Dataset(np.stack(images)[..., None], np.array(labels, np.int64), tuple(glyphs.LETTERS), "notMNIST-like")


def train_letters(fonts: list[Path], out: Path) -> Path:
    data = notmnist_like_set(fonts)
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"letters-{len(list(folder.iterdir()))}.npz"
    np.savez(path, x=data.images[..., 0], y=data.labels)
    result = cs.train(str(path), "cnn", class_names=glyphs.LETTERS, out=out / path.stem, verbose=False, report=False)
    return result.path


def as_before(run: Path) -> Path:
    """A copy of `run` that the code before can read: it predates the spec's `kind` (Sequential/Functional),
    which only the summary shows; the weights and the scaling are the same files."""
    copy = run.with_name(run.name + "-as-before")
    if not copy.exists():
        shutil.copytree(run, copy)
        arch = json.loads((copy / "architecture.json").read_text())
        for spec in (arch, arch.get("spec", {})):
            if isinstance(spec, dict) and "layers" in spec:
                spec.pop("kind", None)
        (copy / "architecture.json").write_text(json.dumps(arch))
    return copy


def predict(src: Path, run: Path, files: list[Path]) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-m", "convscope", "predict", str(run), *map(str, files), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"convscope predict failed ({src}):\n{done.stderr}")
    return [row["label"] for row in json.loads(done.stdout)]


def accuracy(labels: list[str], truth: list[int], names: str) -> float:
    return float(np.mean([label == names[t] for label, t in zip(labels, truth)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/own-pictures"))
    p.add_argument("--before-src", type=Path, help="another checkout's src/ (the code before), predicted alongside")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=["letters", "digits"], help="measure one of the two sets")
    args = p.parse_args()
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out.")
    fonts = glyphs.truetype_fonts()
    folds = [fonts[0::2], fonts[1::2]]
    print(f"{len(fonts)} TrueType fonts; letters in two folds of {len(folds[0])} and {len(folds[1])}", flush=True)

    sources = {"after": SRC, **({"before": args.before_src} if args.before_src else {})}
    correct: dict[tuple[str, str], list[bool]] = {}
    folds_to_run = [] if args.only == "digits" else [(folds[0], folds[1]), (folds[1], folds[0])]
    for k, (train_fonts, test_fonts) in enumerate(folds_to_run):
        run = train_letters(train_fonts, args.out)
        pictures = glyphs.write_pictures(
            args.out / "pictures" / f"letters-{k}", test_fonts, glyphs.LETTERS, args.seed + k
        )
        files, truth = [f for f, _ in pictures], [t for _, t in pictures]
        for name, src in sources.items():
            labels = predict(src, run if name == "after" else as_before(run), files)
            correct.setdefault(("letters", name), []).extend(lab == glyphs.LETTERS[t] for lab, t in zip(labels, truth))
        print(f"letters fold {k}: trained {run}", flush=True)

    if args.only != "letters":
        digits_run = cs.train("mnist-5k", "cnn", out=args.out / "mnist-5k-cnn", verbose=False, report=False).path
        pictures = glyphs.write_pictures(args.out / "pictures" / "digits", fonts, glyphs.DIGITS, args.seed + 2)
        files, truth = [f for f, _ in pictures], [t for _, t in pictures]
        for name, src in sources.items():
            labels = predict(src, digits_run if name == "after" else as_before(digits_run), files)
            correct[("digits", name)] = [lab == glyphs.DIGITS[t] for lab, t in zip(labels, truth)]

    lines = [
        "| model | pictures | " + " | ".join(f"accuracy {name}" for name in sources) + " |",
        "|---|---|" + "---|" * len(sources),
    ]
    for kind, model in (
        ("letters", "`cnn` on notMNIST-like letters of the other half of the fonts"),
        ("digits", "default `cnn` on mnist-5k"),
    ):
        if (kind, "after") not in correct:
            continue
        n = len(correct[(kind, "after")])
        lines.append(f"| {model} | {n} | " + " | ".join(f"{np.mean(correct[(kind, s)]):.3f}" for s in sources) + " |")
    table = "\n".join(lines)
    print(table)
    (args.out / "results.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
