"""results.json of bertpt-finetune: the on-disk format's one typed owner (build, write, read).

    {"tasks": {NAME: {"metrics": {METRIC: {"median": x, "values": [per seed], "min": x, "max": x}},
                      "score": x, "scores": [per seed], "seeds": [..], "learning_rate": x,
                      "wall_seconds": x, "seed_seconds": [per seed], "train_examples": n, "source": "...",
                      "submission": [files], "sweep": [{"learning_rate": x, "metrics": {..}, "score": x,
                                                       "scores": [..], "seed_seconds": [..]}, ...]}},
     "average": x | null, "model": "...", "model_step": n | null, "tokens_seen": n | null,
     "train_seconds": x | null, "recipe": {...}, "wall_seconds": x, "bertpt_version": "..."}

A task's "score" is the median over seeds of the per-seed task score (the mean of that seed's metrics,
GLUE's rule); with a learning-rate sweep the task's figures are those of the learning rate with the best
score, and "sweep" keeps every learning rate's. "average" is the GLUE average of the tasks' scores
(metrics.glue_average: the GLUE tasks present, WNLI and user tasks left out), null without any.
Metric values are fractions (0.85, not 85). Fields added later must have defaults, so older files load.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bertpt.errors import BertptError
from bertpt.files import write_atomic

RESULTS = "results.json"


@dataclass
class MetricSummary:
    """One metric over seeds: the per-seed values (in seed order), their median, min and max."""

    median: float
    values: list[float]
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> MetricSummary:
        return cls(float(statistics.median(values)), [float(v) for v in values], float(min(values)), float(max(values)))


@dataclass
class LearningRateRun:
    """Every seed of one task at one learning rate."""

    learning_rate: float
    metrics: dict[str, MetricSummary]
    score: float  # median over seeds of the per-seed task score
    scores: list[float]  # per seed: the mean of its metrics
    seed_seconds: list[float]  # per seed: wall time of the fine-tune (training and prediction)

    @classmethod
    def of(cls, learning_rate: float, per_seed: list[dict[str, float]], seconds: list[float]) -> LearningRateRun:
        """From each seed's metrics ({name: value}, the same names for every seed). Raises ValueError: no seed."""
        from bertpt.finetune.metrics import task_score

        if not per_seed:
            raise ValueError("no seed")
        scores = [float(task_score(m)) for m in per_seed]
        names = list(per_seed[0])
        return cls(
            learning_rate=float(learning_rate),
            metrics={n: MetricSummary.of([m[n] for m in per_seed]) for n in names},
            score=float(statistics.median(scores)),
            scores=scores,
            seed_seconds=[float(s) for s in seconds],
        )


@dataclass
class TaskResult:
    metrics: dict[str, MetricSummary]
    score: float
    scores: list[float]
    seeds: list[int]
    learning_rate: float
    wall_seconds: float  # all of this task's fine-tunes (every learning rate and seed)
    seed_seconds: list[float]
    train_examples: int
    source: str  # where the data came from
    submission: list[str] = field(default_factory=list)  # test-set prediction files written (GLUE's format)
    sweep: list[LearningRateRun] = field(default_factory=list)

    @classmethod
    def of(
        cls, runs: list[LearningRateRun], seeds: list[int], train_examples: int, source: str, wall_seconds: float
    ) -> TaskResult:
        """The best learning rate's figures (highest score; the first of equals), every run kept in `sweep`."""
        best = max(runs, key=lambda r: r.score)
        return cls(
            metrics=best.metrics,
            score=best.score,
            scores=best.scores,
            seeds=list(seeds),
            learning_rate=best.learning_rate,
            wall_seconds=float(wall_seconds),
            seed_seconds=best.seed_seconds,
            train_examples=int(train_examples),
            source=source,
            sweep=list(runs),
        )


@dataclass
class Results:
    tasks: dict[str, TaskResult]
    average: float | None
    model: str
    recipe: dict
    wall_seconds: float
    bertpt_version: str
    model_step: int | None = None  # the pretraining step of a bertpt checkpoint
    tokens_seen: int | None = None
    train_seconds: float | None = None  # pretraining wall time up to that checkpoint

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Results:
        """Raises ValueError/KeyError/TypeError on a file that is not results.json (see `read`)."""
        d = json.loads(text)
        tasks = {name: _task_from_dict(t) for name, t in d["tasks"].items()}
        return cls(**{**_known(cls, d), "tasks": tasks})

    def write(self, out_dir: str | Path) -> Path:
        """Write out_dir/results.json atomically (a reader sees the old file or the new one). Raises OSError."""
        path = Path(out_dir) / RESULTS
        write_atomic(path, self.to_json() + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path) -> Results:
        """Read a results.json (or the directory holding one). Raises BertptError: missing or not results.json."""
        path = Path(path)
        path = path / RESULTS if path.is_dir() else path
        try:
            return cls.from_json(path.read_text())
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BertptError(
                f"{path}: not a readable bertpt-finetune results.json ({type(e).__name__}: {e})"
            ) from None


def _known(cls, d: dict) -> dict:
    """The entries of `d` that are fields of `cls` (a newer bertpt may have written more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _metrics_from_dict(d: dict) -> dict[str, MetricSummary]:
    return {name: MetricSummary(**_known(MetricSummary, m)) for name, m in d.items()}


def _task_from_dict(d: dict) -> TaskResult:
    sweep = [
        LearningRateRun(**{**_known(LearningRateRun, r), "metrics": _metrics_from_dict(r["metrics"])})
        for r in d.get("sweep", [])
    ]
    return TaskResult(**{**_known(TaskResult, d), "metrics": _metrics_from_dict(d["metrics"]), "sweep": sweep})
