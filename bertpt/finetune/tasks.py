# stand-in, replaced by the ftdata branch
"""Task definitions and data sources (a minimal stand-in for the interface in issue 13; the ftdata branch owns it)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from bertpt.errors import BertptError


@dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.labels is None else len(self.labels)


@dataclass
class Split:
    name: str
    texts: list[tuple[str, ...]]
    labels: list | None
    ids: list[str]


@dataclass
class TaskData:
    task: Task
    train: Split
    evaluation: list[Split]
    test: list[Split]
    source: str


GLUE_TASKS: dict[str, Task] = {
    "cola": Task("cola", ("sentence",), ("0", "1"), ("matthews_correlation",)),
    "sst2": Task("sst2", ("sentence",), ("0", "1"), ("accuracy",)),
    "mrpc": Task("mrpc", ("sentence1", "sentence2"), ("0", "1"), ("f1", "accuracy")),
    "stsb": Task("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearman")),
}
GLUE_AVERAGE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")

# directory, has header, text column indices, label column index
_LAYOUT = {"cola": ("CoLA", False, (3,), 1), "sst2": ("SST-2", True, (0,), 1), "mrpc": ("MRPC", True, (3, 4), 0),
           "stsb": ("STS-B", True, (7, 8), 9)}  # fmt: skip


def glue_task(name: str) -> Task:
    if name not in GLUE_TASKS:
        raise BertptError(f"unknown GLUE task {name!r} (known: {', '.join(GLUE_TASKS)})")
    return GLUE_TASKS[name]


def _read_tsv(path: Path, task: Task, header: bool, cols, label_col, name: str) -> Split:
    if not path.is_file():
        raise BertptError(f"{path}: no such file")
    rows = [line.rstrip("\n").split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    rows = rows[1:] if header else rows
    if not rows:
        raise BertptError(f"{path}: empty split")
    conv = float if task.is_regression else (lambda v: task.labels.index(v))
    return Split(name, [tuple(r[c] for c in cols) for r in rows], [conv(r[label_col]) for r in rows],
                 [str(i) for i in range(len(rows))])  # fmt: skip


def load_glue_dir(name: str, glue_dir, with_test: bool = True) -> TaskData:
    task = glue_task(name)
    sub, header, cols, label_col = _LAYOUT[name]
    d = Path(glue_dir) / sub
    train = _read_tsv(d / "train.tsv", task, header, cols, label_col, "train")
    dev = _read_tsv(d / "dev.tsv", task, header, cols, label_col, "validation")
    return TaskData(task, train, [dev], [], f"glue_dir {d}")


def load_hub(name: str, dataset: str = "nyu-mll/glue") -> TaskData:
    raise BertptError("the Hub loader is not in this stand-in")


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise BertptError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))


def load_files(train_file, validation_file, test_file=None, *, text_columns, label_column, regression=False):
    rows = {k: _read_rows(Path(f)) for k, f in (("train", train_file), ("validation", validation_file))}
    for k, r in rows.items():
        if not r:
            raise BertptError(f"{k} file is empty")
        missing = [c for c in (*text_columns, label_column) if c not in r[0]]
        if missing:
            raise BertptError(f"{k} file has no column {missing[0]}")
    labels = None if regression else tuple(sorted({str(r[label_column]) for r in rows["train"]}))
    task = Task(Path(train_file).stem, tuple(text_columns), labels,
                ("pearson", "spearman") if regression else ("accuracy",))  # fmt: skip
    splits = {}
    for k, r in rows.items():
        if regression:
            lab = [float(x[label_column]) for x in r]
        else:
            unknown = {str(x[label_column]) for x in r} - set(labels)
            if unknown:
                raise BertptError(f"{k} file has unknown label {sorted(unknown)[0]}")
            lab = [labels.index(str(x[label_column])) for x in r]
        splits[k] = Split(k, [tuple(str(x[c]) for c in text_columns) for x in r], lab, [str(i) for i in range(len(r))])
    return TaskData(task, splits["train"], [splits["validation"]], [], f"files {train_file}")
