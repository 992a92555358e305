"""`convscope compare`: several runs side by side, e.g. the course's MLP against its CNN on the same data.

A table (model, parameters, epochs, training time, test accuracy and loss) as terminal text
and as a self-contained HTML page, and the validation curves of all runs on shared axes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..checks import pad, printable, text_width
from ..errors import UserError
from ..i18n import _
from ..models.summary import summary
from ..presentation import figures, jinja
from ..presentation.history import epochs_best
from ..runs import CONFIG, METRICS, load_run, read_record
from ..training.history import History


def header() -> tuple[str, ...]:
    return (_("run"), _("model"), _("params"), _("epochs"), _("train time"), _("test accuracy"), _("test loss"))


@dataclass(frozen=True)
class RunRow:
    name: str
    path: Path
    model: str
    params: int
    epochs: int
    best_epoch: int | None
    train_seconds: float | None
    test_accuracy: float | None
    test_loss: float | None
    data_source: str
    history: History

    @property
    def objective(self) -> float | None:
        """A sweep's objective for this run: its lowest validation loss (what `sweep` minimises)."""
        values = self.history.column("val_loss")
        return min(values) if values else None

    def cells(self) -> tuple[str, ...]:
        return (
            self.name,
            self.model,
            f"{self.params:,}",
            epochs_best(self.epochs, self.best_epoch),
            "–" if self.train_seconds is None else f"{self.train_seconds:.1f} s",
            "–" if self.test_accuracy is None else f"{self.test_accuracy:.4f}",
            "–" if self.test_loss is None else f"{self.test_loss:.4f}",
        )


def run_row(run_dir: str | Path) -> RunRow:
    path = Path(run_dir)
    trained = load_run(path)
    metrics = read_record(path / METRICS)
    config = read_record(path / CONFIG)
    s = summary(trained.model)
    history = trained.history
    return RunRow(
        path.name,
        path,
        s.name,
        s.total_params,
        history.epochs_run,
        history.best_epoch,
        metrics.get("train_seconds"),
        metrics.get("test_accuracy"),
        metrics.get("test_loss"),
        str(config.get("data", {}).get("source") or _("unrecorded data")),
        history,
    )


def compare_runs(run_dirs: Sequence[str | Path], by_objective: bool = False) -> list[RunRow]:
    """The runs' rows in the order given, or, for a sweep's trials (`by_objective`), best objective first."""
    if not run_dirs:
        raise UserError(_("compare needs at least one run directory."))
    rows = [run_row(d) for d in run_dirs]
    if by_objective:
        rows.sort(key=lambda r: (r.objective is None, r.objective if r.objective is not None else 0.0))
    return rows


def notes(rows: Sequence[RunRow], by_objective: bool = False) -> list[str]:
    """What a reader should know before trusting the comparison."""
    out = []
    ranked = [r for r in rows if r.objective is not None]
    if by_objective and ranked:
        lead = min(ranked, key=lambda r: r.objective or 0.0)
        out.append(
            _(
                "ranked by the sweep's objective, the lowest validation loss (val_loss): best {name} ({value:.4f})"
            ).format(name=lead.name, value=lead.objective)
        )
        scored = [r for r in rows if r.test_accuracy is not None]
        top = max(scored, key=lambda r: r.test_accuracy or 0.0, default=None)
        if top is not None and top.name != lead.name:
            out.append(
                _(
                    "note: {name} has the highest test accuracy ({accuracy:.4f}), but a sweep chooses by validation "
                    "loss, so that the test set stays unseen until the chosen model is measured."
                ).format(name=top.name, accuracy=top.test_accuracy)
            )
        return out
    sources = {r.data_source for r in rows}
    if len(sources) > 1:
        out.append(
            _(
                "note: the runs were trained on different data ({sources}); "
                "their test numbers are not directly comparable."
            ).format(sources=", ".join(sorted(sources)))
        )
    scored = [r for r in rows if r.test_accuracy is not None]
    if len(scored) > 1:
        best = max(scored, key=lambda r: r.test_accuracy or 0.0)  # all scored: `or` only narrows the type
        out.append(
            _("best test accuracy: {name} ({model}, {accuracy:.4f})").format(
                name=best.name, model=best.model, accuracy=best.test_accuracy
            )
        )
    return out


def comparison_text(rows: Sequence[RunRow], by_objective: bool = False) -> str:
    titles = header()
    cells = [titles, *(tuple(printable(c) for c in r.cells()) for r in rows)]  # run and model names from files
    widths = [max(text_width(row[i]) for row in cells) for i in range(len(titles))]
    left = {0, 1}

    def line(row: Sequence[str]) -> str:
        return "  ".join(pad(c, w, "<" if i in left else ">") for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join(
        [line(titles), rule, *(line(r) for r in cells[1:]), *(printable(n) for n in notes(rows, by_objective))]
    )


def comparison_html(rows: Sequence[RunRow]) -> str:
    curves = jinja.picture(
        figures.comparison_figure([(r.name, r.history) for r in rows]),
        _("validation curves of the runs"),
        _("Solid: validation; dashed: training."),
        png=figures.to_png,
    )
    titles = header()
    return jinja.page(
        "compare.html",
        header=titles,
        rows=[r.cells() for r in rows],
        numeric=range(2, len(titles)),
        notes=notes(rows),
        curves=curves,
        runs=[(r.name, str(r.path)) for r in rows],
    )


def write_comparison(rows: Sequence[RunRow], out_dir: str | Path) -> tuple[Path, Path]:
    """`compare.png` (the curves) and `compare.html` (table and curves) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "compare.png"
    figures.to_png(figures.comparison_figure([(r.name, r.history) for r in rows]), png)
    page = out / "compare.html"
    tmp = out / f".compare.html.{os.getpid()}.tmp"
    tmp.write_text(comparison_html(rows), encoding="utf-8")
    os.replace(tmp, page)
    return png, page
