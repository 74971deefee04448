"""Downstream metrics, the GLUE score, and GLUE submission files.

Metric code is scikit-learn's (`sklearn.metrics.matthews_corrcoef`, `accuracy_score`, `f1_score`) and
SciPy's (`scipy.stats.pearsonr`, `spearmanr`), the implementations transformers' `glue_compute_metrics`
and the `evaluate` library's GLUE metric call; we call them directly because `evaluate` fetches its
metric scripts from the Hub at run time and fails offline. Values are plain floats (fractions, not
percent): accuracy and F1 in [0, 1], correlations in [-1, 1].

GLUE's rules: a task's score is the mean of its metrics (MRPC: F1 and accuracy; STS-B: Pearson and
Spearman; MNLI: matched and mismatched accuracy), and the GLUE average is the mean of the task scores
over the eight tasks other than WNLI (Wang et al., 2019, and the leaderboard's "Score" column without
WNLI, as the BERT paper reports it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bertpt.files import write_atomic
from bertpt.finetune.tasks import GLUE_AVERAGE_TASKS, GLUE_TASKS, Split, Task

# GLUE's submission file names (the leaderboard's zip holds one per test set).
_SUBMISSION_FILES = {
    ("cola", "test"): "CoLA",
    ("sst2", "test"): "SST-2",
    ("mrpc", "test"): "MRPC",
    ("stsb", "test"): "STS-B",
    ("qqp", "test"): "QQP",
    ("mnli", "test_matched"): "MNLI-m",
    ("mnli", "test_mismatched"): "MNLI-mm",
    ("qnli", "test"): "QNLI",
    ("rte", "test"): "RTE",
    ("wnli", "test"): "WNLI",
}
# Tasks whose submissions name the class ("entailment"); the others give the label id (0/1) or the score.
_TEXT_LABEL_TASKS = ("mnli", "qnli", "rte")
# Metrics that belong to one evaluation split of a task with several (MNLI's matched and mismatched sets).
_SPLIT_SUFFIXES = ("_matched", "_mismatched")


def _correlation(fn, predictions: np.ndarray, labels: np.ndarray) -> float:
    """Pearson/Spearman r; 0.0 where it is undefined. SciPy returns NaN (with a ConstantInputWarning) when
    either side is constant, e.g. a regression head that predicts one value for everything early in
    training; we report 0.0 (no correlation) instead, as sklearn's matthews_corrcoef does for a constant
    prediction, so one degenerate seed does not turn a median or an average into NaN."""
    if np.all(predictions == predictions[0]) or np.all(labels == labels[0]):
        return 0.0
    r = float(fn(predictions, labels)[0])
    return 0.0 if math.isnan(r) else r


def _metric(name: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    if name == "matthews_correlation":
        return float(matthews_corrcoef(labels, predictions))  # 0.0 when either side is constant
    if name.startswith("accuracy"):
        return float(accuracy_score(labels, predictions))
    if name == "f1":  # of the positive class, label id 1 (MRPC "equivalent", QQP "duplicate")
        return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0.0))
    if name == "f1_macro":
        return float(f1_score(labels, predictions, average="macro", zero_division=0.0))
    if name == "pearson":
        return _correlation(pearsonr, predictions, labels)
    if name == "spearman":
        return _correlation(spearmanr, predictions, labels)
    raise ValueError(f"unknown metric {name!r}")


def _as_predictions(task: Task, predictions) -> np.ndarray:
    """(N,) label ids or floats; (N, C) logits become their argmax, (N, 1) regression outputs a vector."""
    p = np.asarray(predictions)
    if p.ndim == 2 and task.is_regression and p.shape[1] == 1:
        p = p[:, 0]
    elif p.ndim == 2 and not task.is_regression:
        p = p.argmax(axis=-1)
    if p.ndim != 1:
        raise ValueError(f"predictions of shape {p.shape}: expected (N,) or (N, num_labels)")
    return p.astype(np.float64) if task.is_regression else p.astype(np.int64)


def compute(task: Task, split_name: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The metrics of one evaluation split, keyed by the names in `task.metrics`.

    predictions: (N,) label ids (classification; (N, num_labels) logits are reduced by argmax) or (N,)
    floats (regression; (N, 1) accepted); labels: (N,). A metric with a split suffix belongs to that split
    only: mnli "validation_matched" -> {"accuracy_matched": x}, "validation_mismatched" ->
    {"accuracy_mismatched": x}. Degenerate inputs give numbers, not NaN: MCC of a constant prediction is
    0.0 (sklearn), F1 with no positive prediction 0.0, a correlation with a constant side 0.0.
    Raises ValueError for mismatched or empty inputs, or a split none of the task's metrics belongs to."""
    p = _as_predictions(task, predictions)
    y = np.asarray(labels, dtype=np.float64 if task.is_regression else np.int64)
    if y.shape != p.shape or p.size == 0:
        raise ValueError(f"predictions {p.shape} and labels {y.shape}: expected the same (N,), N > 0")
    names = [m for m in task.metrics if not m.endswith(_SPLIT_SUFFIXES)]
    names += [m for m in task.metrics if m.endswith(_SPLIT_SUFFIXES) and split_name.endswith(m[m.rindex("_") :])]
    if not names:
        raise ValueError(f"no metric of {task.name} ({', '.join(task.metrics)}) belongs to split {split_name!r}")
    return {name: _metric(name, p, y) for name in names}


def task_score(metrics: dict[str, float]) -> float:
    """A task's score by GLUE's rule: the mean of its metrics (e.g. MRPC (F1 + accuracy) / 2).
    Raises ValueError for an empty dict."""
    if not metrics:
        raise ValueError("task_score of no metrics")
    return float(sum(metrics.values()) / len(metrics))


def glue_average(scores: dict[str, float]) -> float | None:
    """The GLUE average of task scores {task name: score}: the mean over the GLUE_AVERAGE_TASKS present
    (WNLI and user tasks are left out); None when none of them is present."""
    present = [scores[t] for t in GLUE_AVERAGE_TASKS if t in scores]
    return float(sum(present) / len(present)) if present else None


def _is_glue(task: Task) -> bool:
    return GLUE_TASKS.get(task.name) == task  # not a user task that happens to be called "cola"


def submission_name(task: Task, split: Split) -> str:
    """The file name `write_submission` writes for this task and split, e.g. "MNLI-m.tsv", "mytask_test.tsv"."""
    key = (task.name, split.name)
    if _is_glue(task) and key in _SUBMISSION_FILES:
        return f"{_SUBMISSION_FILES[key]}.tsv"
    return f"{task.name}_{split.name}.tsv"


def write_submission(task: Task, split: Split, predictions: np.ndarray, out_dir: Path) -> Path:
    """Write `split`'s predictions in GLUE's submission format and return the file's path.

    The file is `out_dir/<CoLA|SST-2|MRPC|STS-B|QQP|MNLI-m|MNLI-mm|QNLI|RTE|WNLI>.tsv` (a user task:
    `<name>_<split>.tsv`): a header line "index\\tprediction", then one line per example, "<id>\\t<prediction>",
    in the split's order. Predictions: the class name for MNLI, QNLI, RTE (and user classification tasks),
    the label id for the other GLUE classification tasks, the score with 3 decimals for regression (as
    transformers' run_glue writes STS-B). predictions: (N,) ids/floats or (N, C) logits. Written atomically.
    Raises ValueError when the number of predictions is not the split's size."""
    p = _as_predictions(task, predictions)
    if len(p) != len(split.ids):
        raise ValueError(f"{len(p)} predictions for the {len(split.ids)} examples of {task.name} {split.name}")
    if task.is_regression:
        values = [f"{float(x):.3f}" for x in p]
    elif task.name in _TEXT_LABEL_TASKS or not _is_glue(task):
        values = [task.labels[int(x)] for x in p]
    else:
        values = [str(int(x)) for x in p]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / submission_name(task, split)
    write_atomic(path, "index\tprediction\n" + "".join(f"{i}\t{v}\n" for i, v in zip(split.ids, values)))
    return path
