"""Downstream tasks and their data: the GLUE tasks and a user's own files, as `TaskData`.

Three sources, one result (`TaskData`: a `Task`, its train split, the labelled splits the metrics are
computed on, and unlabelled test splits to write submission files for):

- `load_glue_dir`: a local GLUE directory in the layout and file formats of GLUE's official download
  script (`glue_data/CoLA/train.tsv`, `MNLI/dev_matched.tsv`, ...). The files are read the way
  Google's `run_classifier.py` (`DataProcessor._read_tsv`, `quotechar=None`) and transformers' GLUE
  processors (`src/transformers/data/processors/glue.py`) read them: each line split on tabs, with no
  quote processing. Default CSV quoting would treat a `"` inside a sentence as the start of a quoted
  field and merge MRPC/SST-2 rows up to the next `"`; here every line is one example, so a file's
  example count is its line count (minus the header line where the format has one). The columns
  used per task are those of both loaders (e.g. MNLI sentence pairs at columns 8 and 9, gold label
  last; STS-B at columns 7 and 8, score last; CoLA's train/dev files have no header).
- `load_hub`: the Hugging Face Hub dataset `nyu-mll/glue` through `datasets.load_dataset(name, task)`
  (online), or a local `DatasetDict.save_to_disk` copy of it (offline). Column names and ClassLabel
  names as in that dataset's card: e.g. cola `sentence, label, idx`, mnli `premise, hypothesis,
  label, idx` with splits `validation_matched`/`validation_mismatched`; test splits carry label -1.
- `load_files`: a user's task as CSV, TSV or JSONL files with one or two text columns and a label
  column, classification (any label set) or regression.

Label ids of the GLUE tasks follow the Hub dataset's ClassLabel order (cola: unacceptable,
acceptable; mnli: entailment, neutral, contradiction; ...), whichever source the data came from, so a
classifier fine-tuned on either means the same thing. The TSVs' own label strings ("0"/"1", or
"entailment"/...) are mapped onto that order.

Every problem with the data (a missing file or column, an unknown label, an empty split, a malformed
line) raises `BertptError` with one line naming the file and line.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from bertpt.errors import BertptError, one_line

HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class Task:
    """What a task is, independent of where its data comes from.

    name: "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", or a user task's train-file stem.
    text_columns: 1 name (single sentence) or 2 (a sentence pair, encoded with token type ids 0/1).
    labels: class names in label-id order; None for a regression task (one float per example).
    metrics: the names of its metrics (see `bertpt.finetune.metrics.compute`).
    user_defined: a user's task (`load_files`), never a GLUE task even if it is named like one (it is left out
        of the GLUE average and written with its own submission file names).
    """

    name: str
    text_columns: tuple[str, ...]
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    user_defined: bool = False

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """The classifier's output size: the number of classes, 1 for regression."""
        return 1 if self.labels is None else len(self.labels)


@dataclass
class Split:
    """One split's examples.

    name: "train", "validation", "validation_matched", "validation_mismatched", "test", "test_matched", ...
    texts: per example (sentence,) or (sentence_a, sentence_b).
    labels: label ids (classification) or floats (regression); None for an unlabelled split (a test split).
    ids: per example, its id in a submission file: the file's index column where it has one, else the row number.
    """

    name: str
    texts: list[tuple[str, ...]]
    labels: list[int] | list[float] | None
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TaskData:
    """A task with its data. evaluation: the labelled splits the metrics are computed on (mnli: matched
    and mismatched); test: unlabelled splits for submission files (may be empty); source: where the
    data came from, for results.json (e.g. "glue_dir /data/glue/CoLA")."""

    task: Task
    train: Split
    evaluation: list[Split]
    test: list[Split]
    source: str


# The GLUE tasks. Text column and label names: the Hub dataset nyu-mll/glue (its card's "Data Fields").
GLUE_TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation",)),
        Task("sst2", ("sentence",), ("negative", "positive"), ("accuracy",)),
        Task("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("f1", "accuracy")),
        Task("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearman")),
        Task("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("f1", "accuracy")),
        Task(
            "mnli",
            ("premise", "hypothesis"),
            ("entailment", "neutral", "contradiction"),
            ("accuracy_matched", "accuracy_mismatched"),
        ),
        Task("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",)),
        Task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",)),
        Task("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",)),
    )
}
# The GLUE benchmark's average leaves WNLI out (as BERT and most papers report it: its dev set is adversarial).
GLUE_AVERAGE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte")


def glue_task(name: str) -> Task:
    """The GLUE task called `name` (case-insensitive; GLUE's directory spellings "SST-2", "STS-B" work too).
    Raises BertptError naming the known tasks and the closest match for an unknown name."""
    key = name.strip().lower().replace("-", "")
    if key in GLUE_TASKS:
        return GLUE_TASKS[key]
    close = difflib.get_close_matches(key, list(GLUE_TASKS), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise BertptError(f"unknown task '{name}': the GLUE tasks are {', '.join(GLUE_TASKS)}{hint}")


# ---------------------------------------------------------------------------------------------------------------
# (a) GLUE's official download-script files


@dataclass(frozen=True)
class _Layout:
    """Where things are in one kind of GLUE TSV file (columns 0-based; -1 is the last column)."""

    header: tuple[tuple[int, str], ...] | None  # (column, name) the header line must show; None: no header line
    columns: int | None  # column count of a headerless file (with a header: the header's count)
    text: tuple[int, ...]
    label: int | None  # None: an unlabelled (test) file
    index: int | None  # the id column; None: the row number


@dataclass(frozen=True)
class _GlueFiles:
    directory: str  # the task's directory in glue_data/
    evaluation: tuple[tuple[str, str], ...]  # (split name, file name)
    test: tuple[tuple[str, str], ...]
    labelled: _Layout
    unlabelled: _Layout
    tsv_labels: tuple[str, ...] | None  # the files' label strings in the Task's label-id order; None: a float score


_PAIR_TEST = ((0, "index"), (1, "sentence1"), (2, "sentence2"))
_MRPC_PAIR = ((1, "#1 ID"), (2, "#2 ID"), (3, "#1 String"), (4, "#2 String"))
_DEV = (("validation", "dev.tsv"),)
_TEST = (("test", "test.tsv"),)
_BINARY = ("0", "1")

# Formats as GLUE's download script writes them, and as Google's run_classifier.py and transformers' GLUE
# processors read them (columns and headers checked against both).
_GLUE_FILES: dict[str, _GlueFiles] = {
    "cola": _GlueFiles(
        "CoLA",
        _DEV,
        _TEST,
        _Layout(None, 4, (3,), 1, None),  # source, label, original label (or empty), sentence
        _Layout(((0, "index"), (1, "sentence")), None, (1,), None, 0),
        _BINARY,
    ),
    "sst2": _GlueFiles(
        "SST-2",
        _DEV,
        _TEST,
        _Layout(((0, "sentence"), (1, "label")), None, (0,), 1, None),
        _Layout(((0, "index"), (1, "sentence")), None, (1,), None, 0),
        _BINARY,
    ),
    "mrpc": _GlueFiles(
        "MRPC",
        _DEV,
        _TEST,
        _Layout(((0, "Quality"), *_MRPC_PAIR), None, (3, 4), 0, None),
        _Layout(((0, "index"), *_MRPC_PAIR), None, (3, 4), None, 0),
        _BINARY,
    ),
    "stsb": _GlueFiles(
        "STS-B",
        _DEV,
        _TEST,
        _Layout(((0, "index"), (7, "sentence1"), (8, "sentence2"), (-1, "score")), None, (7, 8), -1, 0),
        _Layout(((0, "index"), (7, "sentence1"), (8, "sentence2")), None, (7, 8), None, 0),
        None,
    ),
    "qqp": _GlueFiles(
        "QQP",
        _DEV,
        _TEST,
        _Layout(((0, "id"), (3, "question1"), (4, "question2"), (5, "is_duplicate")), None, (3, 4), 5, 0),
        _Layout(((0, "id"), (1, "question1"), (2, "question2")), None, (1, 2), None, 0),
        _BINARY,
    ),
    "mnli": _GlueFiles(
        "MNLI",
        (("validation_matched", "dev_matched.tsv"), ("validation_mismatched", "dev_mismatched.tsv")),
        (("test_matched", "test_matched.tsv"), ("test_mismatched", "test_mismatched.tsv")),
        _Layout(((0, "index"), (8, "sentence1"), (9, "sentence2"), (-1, "gold_label")), None, (8, 9), -1, 0),
        _Layout(((0, "index"), (8, "sentence1"), (9, "sentence2")), None, (8, 9), None, 0),
        ("entailment", "neutral", "contradiction"),
    ),
    "qnli": _GlueFiles(
        "QNLI",
        _DEV,
        _TEST,
        _Layout(((0, "index"), (1, "question"), (2, "sentence"), (3, "label")), None, (1, 2), 3, 0),
        _Layout(((0, "index"), (1, "question"), (2, "sentence")), None, (1, 2), None, 0),
        ("entailment", "not_entailment"),
    ),
    "rte": _GlueFiles(
        "RTE",
        _DEV,
        _TEST,
        _Layout((*_PAIR_TEST, (3, "label")), None, (1, 2), 3, 0),
        _Layout(_PAIR_TEST, None, (1, 2), None, 0),
        ("entailment", "not_entailment"),
    ),
    "wnli": _GlueFiles(
        "WNLI",
        _DEV,
        _TEST,
        _Layout((*_PAIR_TEST, (3, "label")), None, (1, 2), 3, 0),
        _Layout(_PAIR_TEST, None, (1, 2), None, 0),
        _BINARY,  # 1 = entailment: the Hub's order (not_entailment, entailment)
    ),
}


def glue_dir_name(name: str) -> str:
    """The directory of GLUE task `name` in GLUE's download layout, e.g. "sst2" -> "SST-2"."""
    return _GLUE_FILES[glue_task(name).name].directory


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise BertptError(f"{path}: no such file")
    try:
        # utf-8-sig: a leading byte-order mark (Excel's "CSV UTF-8" writes one) is not part of the first column name
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise BertptError(f"{path}: not UTF-8 text ({one_line(e)})") from None
    except OSError as e:
        raise BertptError(f"{path}: cannot read it ({one_line(e)})") from None


def _tsv_lines(path: Path) -> list[list[str]]:
    """The file's lines split on tabs, no quote processing (a `"` is an ordinary character); "\\r\\n" ends
    a line like "\\n". One list per line of the file, so len(result) == the file's line count."""
    text = _read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it does not start another
    return [line.removesuffix("\r").split("\t") for line in lines]


def _read_glue_file(files: _GlueFiles, path: Path, split: str, layout: _Layout) -> Split:
    rows = _tsv_lines(path)
    first_line = 1
    columns = layout.columns
    if layout.header is not None:
        if not rows:
            raise BertptError(f"{path}: empty file; expected GLUE's {files.directory} format with a header line")
        header, rows, first_line = rows[0], rows[1:], 2
        columns = len(header)
        for col, expected in layout.header:
            if not -len(header) <= col < len(header) or header[col] != expected:
                raise BertptError(
                    f"{path}: header '{' '.join(header)}' is not GLUE's {files.directory} format "
                    f"(expected '{expected}' as column {col if col >= 0 else len(header) + col}); "
                    f"is this the right file?"
                )
    if not rows:
        raise BertptError(f"{path}: no examples (the {split} split is empty)")
    texts, labels, ids = [], [], []
    for k, row in enumerate(rows):
        where = f"{path} line {first_line + k}"
        if len(row) != columns:
            raise BertptError(
                f"{where}: {len(row)} tab-separated columns, GLUE's {files.directory} format has {columns}"
            )
        texts.append(tuple(row[c] for c in layout.text))
        ids.append(row[layout.index] if layout.index is not None else str(k))
        if layout.label is None:
            continue
        value = row[layout.label]
        if files.tsv_labels is None:
            labels.append(_float_label(value, where))
        elif value in files.tsv_labels:
            labels.append(files.tsv_labels.index(value))
        else:
            raise BertptError(f"{where}: label '{value}' is not one of {', '.join(files.tsv_labels)}")
    return Split(split, texts, labels if layout.label is not None else None, ids)


def _float_label(value, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if x != x or x in (float("inf"), float("-inf")):
        raise BertptError(f"{where}: label '{value}' is not a number (a regression task needs numeric labels)")
    return x


def load_glue_dir(name: str, glue_dir: str | Path, with_test: bool = True) -> TaskData:
    """GLUE task `name` from `glue_dir` in the layout GLUE's download script writes: `glue_dir/CoLA/train.tsv`,
    `dev.tsv` (MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`), and, read when present and `with_test`,
    `test.tsv` (MNLI: `test_matched.tsv`, `test_mismatched.tsv`). Every line of a file is one example
    (no quote processing, see the module docstring). Split names follow the Hub's: "validation",
    "validation_matched", "test", ... Raises BertptError (one line) for an unknown task, a missing train or
    dev file, a wrong header, a line with the wrong column count, an unknown label, an empty file."""
    task = glue_task(name)
    files = _GLUE_FILES[task.name]
    root = Path(glue_dir).expanduser()
    if not root.is_dir():
        raise BertptError(f"--glue_dir {glue_dir}: no such directory")
    task_dir = root / files.directory
    if not task_dir.is_dir():
        raise BertptError(
            f"{task_dir}: no such directory; --glue_dir must hold GLUE's download layout "
            f"({files.directory}/train.tsv, ...)"
        )
    train = _read_glue_file(files, task_dir / "train.tsv", "train", files.labelled)
    evaluation = [_read_glue_file(files, task_dir / f, s, files.labelled) for s, f in files.evaluation]
    test = []
    if with_test:
        test = [
            _read_glue_file(files, task_dir / f, s, files.unlabelled) for s, f in files.test if (task_dir / f).is_file()
        ]
    return TaskData(task, train, evaluation, test, f"glue_dir {task_dir}")


# ---------------------------------------------------------------------------------------------------------------
# (b) the Hub dataset nyu-mll/glue, or a local save_to_disk copy


def _hub_split_names(task: Task) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(evaluation splits, test splits) as the Hub dataset names them."""
    if task.name == "mnli":
        return ("validation_matched", "validation_mismatched"), ("test_matched", "test_mismatched")
    return ("validation",), ("test",)


def _local_dataset_dir(task: Task, path: Path) -> Path:
    """The save_to_disk directory of `task` under `path` (see `load_hub`)."""
    if (path / "dataset_dict.json").is_file():
        return path
    if (path / task.name / "dataset_dict.json").is_file():
        return path / task.name
    raise BertptError(
        f"{path}: not a saved DatasetDict: expected {path}/dataset_dict.json (one task, from "
        f"DatasetDict.save_to_disk) or {path}/{task.name}/dataset_dict.json (a directory with one per task)"
    )


def _hub_split(task: Task, split_name: str, dataset, where: str, labelled: bool) -> Split:
    missing = [c for c in (*task.text_columns, "label") if c not in dataset.column_names]
    if missing:
        raise BertptError(
            f"{where} split '{split_name}' has columns {', '.join(dataset.column_names)}; "
            f"{task.name} needs {', '.join((*task.text_columns, 'label'))} (is this {task.name}'s data?)"
        )
    if len(dataset) == 0:
        raise BertptError(f"{where} split '{split_name}' is empty")
    label_feature = dataset.features["label"]
    names = getattr(label_feature, "names", None)
    if task.is_regression and names is not None:
        raise BertptError(f"{where}: the labels are classes ({', '.join(names)}); {task.name} has float scores")
    if task.labels is not None and names is not None and tuple(names) != task.labels:
        raise BertptError(
            f"{where}: {task.name}'s label names are {', '.join(names)}; nyu-mll/glue's are {', '.join(task.labels)}"
        )
    columns = dataset.to_dict()  # GLUE's splits are small enough (MNLI train: 393k pairs) to hold as lists
    texts = list(zip(*(columns[c] for c in task.text_columns)))
    if any(t is None for example in texts for t in example):
        raise BertptError(f"{where} split '{split_name}': a text is missing (None)")
    ids = [str(i) for i in columns["idx"]] if "idx" in columns else [str(i) for i in range(len(texts))]
    labels = None
    if labelled:
        raw = columns["label"]
        if task.is_regression:
            labels = [_float_label(v, f"{where} split '{split_name}' row {k}") for k, v in enumerate(raw)]
        else:
            labels = [int(v) for v in raw]
            bad = next((k for k, v in enumerate(labels) if not 0 <= v < task.num_labels), None)
            if bad is not None:
                raise BertptError(
                    f"{where} split '{split_name}' row {bad}: label {labels[bad]} is not a class id "
                    f"0..{task.num_labels - 1}" + (" (test labels are -1: unlabelled)" if labels[bad] == -1 else "")
                )
    return Split(split_name, texts, labels, ids)


def load_hub(name: str, dataset: str = HUB_DATASET) -> TaskData:
    """GLUE task `name` from the Hugging Face `datasets` schema of `nyu-mll/glue`.

    `dataset` is a Hub dataset name, loaded with `datasets.load_dataset(dataset, name)` (needs the network
    or the `datasets` cache), or a local directory written by `DatasetDict.save_to_disk` (read with
    `datasets.load_from_disk`, no network; an absolute path or one starting with "." or "~" is always
    taken as local), either
      - one task's DatasetDict (`dataset/dataset_dict.json`): used as the data of the task asked for, so
        give one such directory per task; or
      - a directory of them, one per task, named like the Hub configurations (`dataset/cola/`,
        `dataset/mrpc/`, ...), which serves any list of tasks.
    Splits: train, validation (mnli: validation_matched and validation_mismatched), and the test splits
    when the dictionary has them (unlabelled: the Hub's test labels are -1). Columns: the task's text
    columns, `label` (ClassLabel with the Hub's names, float32 for stsb), `idx` (the submission index;
    the row number when absent). Raises BertptError for an unknown task, a dataset that cannot be loaded,
    a missing split or column, label names other than the Hub's, an empty split."""
    task = glue_task(name)
    evaluation_names, test_names = _hub_split_names(task)
    import datasets  # heavy: imported only by the source that needs it

    path = Path(dataset).expanduser()
    if not path.exists() and (path.is_absolute() or str(dataset).startswith((".", "~"))):
        raise BertptError(f"{dataset}: no such directory (a local save_to_disk copy of {HUB_DATASET} was expected)")
    if path.exists():
        local = _local_dataset_dir(task, path)
        where = str(local)
        try:
            dd = datasets.load_from_disk(str(local))
        except Exception as e:  # datasets raises several types for a broken directory
            raise BertptError(f"{local}: cannot load it with datasets.load_from_disk ({one_line(e, 300)})") from None
        source = f"hub_dataset {local}"
    else:
        where = f"{dataset} ({task.name})"
        try:
            dd = datasets.load_dataset(dataset, task.name)
        except Exception as e:  # offline, unknown name, ...: one line, and what to do instead
            raise BertptError(
                f"cannot load {dataset} '{task.name}' from the Hugging Face Hub ({one_line(e, 300)}); "
                f"offline, use --glue_dir with GLUE's files or a local save_to_disk directory"
            ) from None
        source = f"hub {dataset}"
    if not isinstance(dd, datasets.DatasetDict):
        raise BertptError(f"{where}: a single Dataset, not a DatasetDict with train and validation splits")
    for split in ("train", *evaluation_names):
        if split not in dd:
            raise BertptError(f"{where}: no '{split}' split (it has {', '.join(dd)}); {task.name} needs it")
    return TaskData(
        task,
        _hub_split(task, "train", dd["train"], where, labelled=True),
        [_hub_split(task, s, dd[s], where, labelled=True) for s in evaluation_names],
        [_hub_split(task, s, dd[s], where, labelled=False) for s in test_names if s in dd],
        source,
    )


# ---------------------------------------------------------------------------------------------------------------
# (c) a user's own task: CSV, TSV, JSONL

_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def _read_records(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(the columns the file has, [(line number, record)]) of a CSV/TSV/JSONL file, by its suffix.
    CSV: the csv module with its normal quoting (user CSVs quote fields with commas). TSV: a header line,
    then each line split on tabs without quote processing, like GLUE's files. JSONL (.jsonl, .json): one
    JSON object per line (a .json file holding one JSON array of objects works too)."""
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise BertptError(f"{path}: unknown file type '{path.suffix}'; use .csv, .tsv or .jsonl (or .json)")
    text = _read_text(path)
    if suffix == ".csv":
        try:
            reader = csv.reader(io.StringIO(text, newline=""))  # newline="": quoted fields may hold line breaks
            rows = [(reader.line_num, row) for row in reader]
        except csv.Error as e:
            raise BertptError(f"{path}: not valid CSV ({one_line(e)})") from None
        return _table_records(path, rows)
    if suffix == ".tsv":
        return _table_records(path, [(k + 1, row) for k, row in enumerate(_tsv_lines(path))])
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            objects = json.loads(text)
        except json.JSONDecodeError as e:
            raise BertptError(f"{path}: not valid JSON ({one_line(e)})") from None
        numbered = list(enumerate(objects, 1))
    else:
        numbered = []
        for k, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    numbered.append((k, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise BertptError(f"{path} line {k}: not valid JSON ({one_line(e)})") from None
    columns: list[str] = []
    for k, obj in numbered:
        if not isinstance(obj, dict):
            raise BertptError(f"{path} line {k}: a JSON {type(obj).__name__}, expected an object {{column: value}}")
        columns.extend(c for c in obj if c not in columns)
    return columns, numbered


def _table_records(path: Path, rows: list[tuple[int, list[str]]]) -> tuple[list[str], list[tuple[int, dict]]]:
    rows = [(n, row) for n, row in rows if row != [] and row != [""]]  # blank lines are not examples
    if not rows:
        raise BertptError(f"{path}: empty file; expected a header line naming the columns")
    (_, header), rows = rows[0], rows[1:]
    records = []
    for n, row in rows:
        if len(row) != len(header):
            raise BertptError(f"{path} line {n}: {len(row)} columns, the header has {len(header)}")
        records.append((n, dict(zip(header, row))))
    return header, records


def _user_split(
    path: Path, split: str, text_columns: tuple[str, ...], label_column: str | None
) -> tuple[Split, list[str]]:
    """A Split, and its labels still raw as [(line number, value)] (empty when `label_column` is None)."""
    columns, records = _read_records(path)
    needed = [*text_columns, *([label_column] if label_column is not None else [])]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise BertptError(
            f"{path}: no column {', '.join(repr(c) for c in missing)}; its columns are {', '.join(columns) or '(none)'}"
        )
    if not records:
        raise BertptError(f"{path}: no examples (the {split} split is empty)")
    texts, raw_labels = [], []
    for n, record in records:
        values = []
        for c in needed:
            v = record.get(c)
            if v is None:
                raise BertptError(f"{path} line {n}: no value for column '{c}'")
            values.append(v)
        if any(not isinstance(v, str) for v in values[: len(text_columns)]):
            raise BertptError(f"{path} line {n}: a text column's value is not a string")
        texts.append(tuple(values[: len(text_columns)]))
        if label_column is not None:
            raw_labels.append((n, values[-1]))
    return Split(split, texts, None, [str(k) for k in range(len(texts))]), raw_labels


def _label_key(value) -> str:
    """A label value as the string it is known by (JSON 1 and CSV "1" are the same class)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_class_label(value, where: str) -> None:
    """Refuse a classification label that is no class: an empty cell or NaN. Raises BertptError."""
    key = _label_key(value).strip()
    if key == "":
        raise BertptError(f"{where}: the label is empty; every example needs a label")
    if key.lower() == "nan" or (isinstance(value, float) and math.isnan(value)):
        raise BertptError(f"{where}: the label is NaN; every example needs a label")


# More distinct all-numeric training labels than this look like scores to predict, not classes.
MAX_NUMERIC_CLASSES = 20


def _check_not_scores(labels: tuple[str, ...], path: Path) -> None:
    """Many distinct labels that are all numbers are most likely scores (a regression task) given without
    --regression: an error when some are fractional (3.25 is no class id), a warning when all are integers
    (they may be class ids). Raises BertptError."""
    if len(labels) <= MAX_NUMERIC_CLASSES:
        return
    try:
        numbers = [float(v) for v in labels]
    except ValueError:
        return
    said = f"{path}: {len(labels)} distinct numeric labels ({labels[0]} ... {labels[-1]})"
    if not all(x.is_integer() for x in numbers):
        raise BertptError(f"{said} taken as classes; for numbers to predict use --regression")
    print(
        f"bertpt: warning: {said}: fine-tuned as {len(labels)} classes; if they are scores, use --regression",
        file=sys.stderr,
        flush=True,
    )


def _class_order(values: set[str]) -> list[str]:
    """Sorted label names; integer-looking labels in numeric order ("2" before "10")."""
    try:
        return sorted(values, key=int)
    except ValueError:
        return sorted(values)


def load_files(
    train_file: str | Path,
    validation_file: str | Path,
    test_file: str | Path | None = None,
    *,
    text_columns: tuple[str, ...],
    label_column: str,
    regression: bool = False,
) -> TaskData:
    """A user's task from CSV (.csv), TSV (.tsv) or JSONL (.jsonl, .json) files, chosen by suffix, each
    with a header (CSV/TSV) naming its columns. `text_columns`: one name (single sentences) or two (pairs).
    Classification: the labels are the train file's distinct `label_column` values as strings, sorted
    (integer-looking ones numerically), ids in that order; a validation label not among them is an error.
    `regression`: the labels are floats. The test file, when given, needs no label column (its labels
    are not read). The task is named after the train file's stem; its metrics are accuracy and macro F1
    (classification) or Pearson and Spearman (regression). Ids are row numbers (0-based). A leading UTF-8
    byte-order mark is ignored. Raises BertptError (one line) for a missing file, an unknown suffix, a missing
    column (naming the columns the file has), an empty split, an empty or NaN classification label, more than
    MAX_NUMERIC_CLASSES distinct fractional numeric labels without `regression`, an unseen validation label,
    a non-numeric regression label; warns (one line) for that many integer ones."""
    text_columns = tuple(text_columns)
    if len(text_columns) not in (1, 2):
        raise BertptError(f"--text_columns names {len(text_columns)} columns; give one or two (a sentence pair)")
    paths = [Path(p).expanduser() for p in (train_file, validation_file)]
    for p in paths + ([Path(test_file).expanduser()] if test_file is not None else []):
        if not p.is_file():
            raise BertptError(f"{p}: no such file")
    train, train_raw = _user_split(paths[0], "train", text_columns, label_column)
    validation, validation_raw = _user_split(paths[1], "validation", text_columns, label_column)
    if regression:
        labels = None
        for split, raw, path in ((train, train_raw, paths[0]), (validation, validation_raw, paths[1])):
            split.labels = [_float_label(v, f"{path} line {n}") for n, v in raw]
        metrics = ("pearson", "spearman")
    else:
        for raw, path in ((train_raw, paths[0]), (validation_raw, paths[1])):
            for n, v in raw:
                _check_class_label(v, f"{path} line {n}")
        labels = tuple(_class_order({_label_key(v) for _, v in train_raw}))
        _check_not_scores(labels, paths[0])
        index = {name: k for k, name in enumerate(labels)}
        train.labels = [index[_label_key(v)] for _, v in train_raw]
        for n, v in validation_raw:
            if _label_key(v) not in index:
                raise BertptError(
                    f"{paths[1]} line {n}: label '{_label_key(v)}' does not occur in the train file "
                    f"(its labels: {', '.join(labels)})"
                )
        validation.labels = [index[_label_key(v)] for _, v in validation_raw]
        metrics = ("accuracy", "f1_macro")
    test = []
    if test_file is not None:
        test = [_user_split(Path(test_file).expanduser(), "test", text_columns, None)[0]]
    task = Task(paths[0].stem, text_columns, labels, metrics, user_defined=True)
    return TaskData(task, train, [validation], test, f"files {paths[0]}")
