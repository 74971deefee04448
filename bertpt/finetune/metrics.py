# stand-in, replaced by the ftdata branch
"""Metrics, task score, GLUE average, submission files (a minimal stand-in; the ftdata branch owns it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bertpt.finetune.tasks import GLUE_AVERAGE_TASKS, Split, Task


def compute(task: Task, split_name: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    fns = {
        "matthews_correlation": lambda: matthews_corrcoef(labels, predictions),
        "accuracy": lambda: accuracy_score(labels, predictions),
        "f1": lambda: f1_score(labels, predictions),
        "pearson": lambda: pearsonr(predictions, labels)[0],
        "spearman": lambda: spearmanr(predictions, labels)[0],
    }
    return {m: float(fns[m]()) for m in task.metrics}


def task_score(metrics: dict[str, float]) -> float:
    return float(np.mean(list(metrics.values())))


def glue_average(scores: dict[str, float]) -> float | None:
    present = [scores[t] for t in GLUE_AVERAGE_TASKS if t in scores]
    return float(np.mean(present)) if present else None


def write_submission(task: Task, split: Split, predictions: np.ndarray, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{task.name}_{split.name}.tsv"
    path.write_text("index\tprediction\n" + "".join(f"{i}\t{p}\n" for i, p in zip(split.ids, predictions)))
    return path
