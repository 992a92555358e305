"""`RunView`: everything the report and `inspect` show about a run, read back from its directory.

The test predictions are recomputed with the saved model through `TrainedModel.predict_proba`,
the one prediction path, so what the report shows is what `predict` and the server would say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.dataset import Dataset
from ..evaluation.evaluate import EvaluationResult, evaluate
from ..models.summary import ModelSummary, summary
from ..runs import CONFIG, METRICS, load_run, load_test_set, read_record
from ..training.trained_model import TrainedModel


@dataclass
class RunView:
    path: Path
    trained: TrainedModel
    evaluation: EvaluationResult
    config: dict[str, Any]
    metrics: dict[str, Any]
    summary: ModelSummary
    samples: Dataset  # images for the per-class grid
    samples_split: str  # which split `samples` is, for the caption

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_name(self) -> str:
        return self.summary.name


def load_view(run_dir: str | Path, samples: Dataset | None = None, samples_split: str = "training split") -> RunView:
    """Read a run; `samples` (the training split, when the caller still has it) feeds the per-class grid,
    which otherwise shows the test split the run directory keeps."""
    path = Path(run_dir)
    trained = load_run(path)
    test, _ = load_test_set(path)
    evaluation = evaluate(trained, test)
    config = read_record(path / CONFIG)
    metrics = read_record(path / METRICS)
    if samples is None:
        samples, samples_split = test, "test split"
    return RunView(path, trained, evaluation, config, metrics, summary(trained.model), samples, samples_split)
