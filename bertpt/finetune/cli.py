"""bertpt-finetune: fine-tune a pretrained BERT on GLUE tasks or your own, and report the standard metrics.

    bertpt-finetune MODEL --glue_dir glue_data --output_dir O [--tasks cola,sst2,mrpc,stsb]
    bertpt-finetune MODEL --tasks rte,mrpc --output_dir O                   # GLUE from the Hub (nyu-mll/glue)
    bertpt-finetune MODEL --train_file t.csv --validation_file v.csv --text_columns q,a --label_column y --output_dir O

Every (task, learning rate, seed) is one fine-tune (train.fine_tune); each task reports the median and the
spread over its seeds, the best learning rate of a sweep, and the GLUE average. Everything is loaded and
checked before the first fine-tune; results.json and the submission files are written once, at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bertpt import __version__, cli, monitor
from bertpt.cli import arg as _arg
from bertpt.config import read_ds_json
from bertpt.errors import BertptError, exit_on_error, require_writable_dir
from bertpt.finetune import metrics, tasks
from bertpt.finetune.results import RESULTS, LearningRateRun, Results, TaskResult

PROG = "bertpt-finetune"
DEFAULT_GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb")
SMALL_TASK = 20_000  # tasks with fewer training examples get 3 seeds by default (the GLUE literature's practice)
SMALL_TASK_SEEDS = 3
# [CLS] a [SEP] b [SEP] leaves max_seq_length - 3 tokens to a sentence pair; below this, truncation cannot fit a
# pair (the tokenizer then silently ignores max_length) and a single sentence keeps a word or two
MIN_SEQ_LENGTH = 8
BOOL = "true|false"  # the metavar of a switch (given alone it means true), not "[REGRESSION]"
MAX_SEED = 2**32 - 1  # numpy's seeds (transformers.set_seed seeds numpy too)


@dataclass
class FinetuneConfig:
    """Everything about a bertpt-finetune run."""

    model: str | None = _arg(
        None,
        "The model (also the positional MODEL): a bertpt run's output directory, its checkpoints/ directory or "
        "one step_* tag (default: the newest good checkpoint), or a Hugging Face BERT directory (an export, a "
        "local bert-base-uncased, a save_pretrained directory with its tokenizer or vocab.txt).",
    )
    tasks: str | None = _arg(
        None,
        "GLUE tasks, comma-separated: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli. Default with "
        f"--glue_dir: those of {','.join(DEFAULT_GLUE_TASKS)} whose folders it holds (else every GLUE task "
        "folder it holds).",
    )
    glue_dir: str | None = _arg(
        None,
        "A local GLUE directory as GLUE's download script writes it (CoLA/train.tsv, SST-2/dev.tsv, ...). "
        "Without it, --tasks come from --hub_dataset.",
    )
    hub_dataset: str = _arg(
        "nyu-mll/glue",
        "The Hugging Face Hub dataset (or a local save_to_disk copy of it) for --tasks without --glue_dir.",
    )
    train_file: str | None = _arg(None, "Your own task: its training file (.csv, .tsv or .jsonl).")
    validation_file: str | None = _arg(None, "Your own task: its labelled evaluation file.")
    test_file: str | None = _arg(None, "Your own task: an unlabelled test file to write predictions for.")
    text_columns: str | None = _arg(None, "Your own task: one text column, or two comma-separated (a sentence pair).")
    label_column: str = _arg("label", "Your own task: the label column.")
    regression: bool = _arg(
        False, "Your own task: the labels are numbers to predict (a regression head).", metavar=BOOL
    )
    output_dir: str | None = _arg(
        None, "Required. Where results.json, tb/ (TensorBoard) and submission/ (test predictions) are written."
    )
    deepspeed_config: str | None = _arg(
        None,
        'A DeepSpeed JSON whose monitor sections ("tensorboard", "wandb", "csv_monitor", "comet") say where the '
        "fine-tunes' scalars go, as in pretraining (the rest of the file is ignored); each fine-tune is one job "
        '(<output_path>/<task>/lr<lr>_seed<seed>; one W&B run), and an "auto" output_path is under --output_dir. '
        "Default: TensorBoard in --output_dir/tb.",
    )
    seeds: int = _arg(
        0,
        f"Fine-tunes per task and learning rate, with seeds --seed, --seed+1, ... 0: {SMALL_TASK_SEEDS} for tasks "
        f"with fewer than {SMALL_TASK:,} training examples, 1 for larger ones.",
    )
    seed: int = _arg(42, "The first seed (of the classifier head's initialisation, data order and dropout).")
    learning_rate: str = _arg(
        "auto",
        "Peak learning rate, or a comma-separated list to sweep (each task reports the one with the best median "
        "score; results.json keeps all). auto: 1e-4 for models with hidden size < 768 (the small BERTs, Turc et "
        "al. 2019), 2e-5 otherwise (the BERT paper's grid is 5e-5, 3e-5, 2e-5).",
    )
    epochs: float = _arg(3.0, "Training epochs.")
    batch_size: int = _arg(32, "Training batch size (per device).")
    max_seq_length: int = _arg(
        128, "Tokens per example, [CLS]/[SEP] included (longer ones are truncated; at most the model's positions)."
    )
    max_train_samples: int | None = _arg(None, "Train on the first N training examples only (quick runs).")
    max_eval_samples: int | None = _arg(None, "Evaluate on the first N examples of each evaluation split only.")
    tag: str | None = _arg(None, "A bertpt checkpoint tag (step_*) of MODEL to fine-tune instead of the newest one.")
    random_init: bool = _arg(
        False,
        "Fine-tune MODEL's architecture and tokenizer from random weights (the baseline without pretraining).",
        metavar=BOOL,
    )
    all_checkpoints: bool = _arg(
        False,
        "Fine-tune every checkpoint of the bertpt run MODEL and write score curves (CSV + PNG).",
        metavar=BOOL,
    )

    def validate(self) -> None:
        """Raises BertptError naming the first flag that is wrong. Reads no file (but lists --glue_dir)."""
        cli.refuse_nan(self)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise BertptError(f"--{f.name} must be a finite number (got {value})")
        if not self.model:
            raise BertptError(
                "give the MODEL to fine-tune (a bertpt run or checkpoint, or a Hugging Face BERT directory)"
            )
        if not self.output_dir:
            raise BertptError("--output_dir is required")
        if not self.tasks and not self.glue_dir and not self.train_file:
            raise BertptError(
                "give --tasks (GLUE), --glue_dir (a local GLUE directory) or --train_file (your own task)"
            )
        if self.train_file and not (self.validation_file and self.text_columns):
            raise BertptError("--train_file needs --validation_file and --text_columns")
        for flag in ("epochs",):
            if not getattr(self, flag) > 0:
                raise BertptError(f"--{flag} must be > 0 (got {getattr(self, flag)})")
        for flag in ("batch_size", "max_seq_length", "max_train_samples", "max_eval_samples"):
            value = getattr(self, flag)
            if value is not None and value < 1:
                raise BertptError(f"--{flag} must be >= 1 (got {value})")
        if self.max_seq_length < MIN_SEQ_LENGTH:
            raise BertptError(
                f"--max_seq_length must be >= {MIN_SEQ_LENGTH} (got {self.max_seq_length}): [CLS] a [SEP] b [SEP] "
                "needs 3 special tokens and room for both sentences"
            )
        if self.seeds < 0:
            raise BertptError(f"--seeds must be >= 0 (got {self.seeds})")
        last = MAX_SEED - max(self.seeds, SMALL_TASK_SEEDS) + 1
        if not 0 <= self.seed <= last:
            raise BertptError(
                f"--seed must be in [0, {last}] (got {self.seed}): the seeds --seed, --seed+1, ... must fit "
                f"numpy's [0, 2**32 - 1]"
            )
        if self.tag and self.all_checkpoints:
            raise BertptError("--tag and --all_checkpoints exclude each other")
        if self.random_init and self.all_checkpoints:
            raise BertptError(
                "--random_init and --all_checkpoints exclude each other (every checkpoint would be the same "
                "random baseline); run --random_init once without --all_checkpoints"
            )
        self.learning_rates(None)
        self.check_task_names()

    def check_task_names(self) -> list[str]:
        """The GLUE task names of the run, checked: known tasks, each once, and no user task (--train_file,
        named after its stem) with the name of one of them. Raises BertptError."""
        if self.tasks is not None and not self.task_names():
            raise BertptError(f"--tasks '{self.tasks}' names no task; give e.g. --tasks cola,mrpc (or leave it out)")
        names = [tasks.glue_task(n).name for n in self.task_names()]  # an unknown name fails here
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise BertptError(f"--tasks names {', '.join(repeated)} more than once; give each task once")
        if self.train_file:
            stem = Path(self.train_file).stem
            if stem.lower() in names:
                raise BertptError(
                    f"your task is named '{stem}' after --train_file {self.train_file}, like the GLUE task "
                    f"{stem.lower()} of --tasks; rename the train file (its stem names the task), e.g. "
                    f"my_{Path(self.train_file).name}"
                )
        return names

    def learning_rates(self, config) -> list[float]:
        """--learning_rate as numbers; "auto" asks default_learning_rate(config). Raises BertptError."""
        if self.learning_rate.strip() == "auto":
            return [default_learning_rate(config)] if config is not None else []
        try:
            rates = [float(v) for v in self.learning_rate.split(",")]
        except ValueError:
            raise BertptError(
                f"--learning_rate {self.learning_rate}: not auto or numbers separated by commas"
            ) from None
        if not rates or any(not (math.isfinite(r) and r > 0) for r in rates):
            raise BertptError(f"--learning_rate {self.learning_rate}: every value must be a number > 0")
        return rates

    def task_names(self) -> list[str]:
        """--tasks as given (lower case); without it, with --glue_dir: `default_glue_tasks`."""
        if self.tasks is not None:
            return [t.strip().lower() for t in self.tasks.split(",") if t.strip()]
        return default_glue_tasks(self.glue_dir) if self.glue_dir else []


def default_glue_tasks(glue_dir: str | Path) -> list[str]:
    """The tasks of a --glue_dir without --tasks: those of DEFAULT_GLUE_TASKS whose folders (GLUE's download
    layout: CoLA/, SST-2/, ...) it holds, else every GLUE task folder it holds, else DEFAULT_GLUE_TASKS (so
    that loading says which folder is missing)."""
    root = Path(glue_dir).expanduser()
    present = [t for t in tasks.GLUE_TASKS if (root / tasks.glue_dir_name(t)).is_dir()]
    return [t for t in DEFAULT_GLUE_TASKS if t in present] or present or list(DEFAULT_GLUE_TASKS)


def default_learning_rate(config) -> float:
    """The peak learning rate for fine-tuning a model of this BertConfig: 1e-4 below BERT-base's width (Turc et
    al. 2019, "Well-Read Students Learn Better", fine-tuned the small BERTs with lr in {1e-4, 5e-5, 3e-5, 3e-4};
    higher rates suit small models), else 2e-5 (the BERT paper's grid is {5e-5, 3e-5, 2e-5}). Measured here for
    bert-mini (docs/performance.md): 3e-5 learned nothing in 3 epochs on 1,000 examples (CoLA MCC 0.0, STS-B
    Pearson/Spearman -0.05), 1e-4 gave 0.035 / 0.28, 3e-4 0.062 / 0.25."""
    return 1e-4 if config.hidden_size < 768 else 2e-5


def load_tasks(cfg: FinetuneConfig) -> list[tasks.TaskData]:
    """Every task's data, loaded (and so checked) before any fine-tune. Raises BertptError."""
    names = cfg.check_task_names()  # an unknown or repeated name fails before any file is read
    loaded = []
    for name in names:
        if cfg.glue_dir:
            loaded.append(tasks.load_glue_dir(name, cfg.glue_dir))
        else:
            loaded.append(tasks.load_hub(name, cfg.hub_dataset))
    if cfg.train_file:
        columns = tuple(c.strip() for c in cfg.text_columns.split(","))
        loaded.append(
            tasks.load_files(
                cfg.train_file,
                cfg.validation_file,
                cfg.test_file,
                text_columns=columns,
                label_column=cfg.label_column,
                regression=cfg.regression,
            )
        )
    return loaded


def seeds_for(cfg: FinetuneConfig, train_examples: int) -> list[int]:
    """The seeds of a task with `train_examples` training examples (after --max_train_samples)."""
    n = cfg.seeds or (SMALL_TASK_SEEDS if train_examples < SMALL_TASK else 1)
    return [cfg.seed + k for k in range(n)]


def check_output_dir(output_dir: str | Path) -> Path:
    """Create --output_dir if needed and prove it writable (and its results.json, if there, a file), before any
    model or data is loaded. Raises BertptError (one line)."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise BertptError(f"--output_dir {output_dir}: a file, not a directory; give a directory")
    require_writable_dir(out, "--output_dir")
    if (out / RESULTS).is_dir():
        raise BertptError(f"--output_dir {output_dir}: {out / RESULTS} is a directory; remove it or use another one")
    return out


def remove_old_results(out: Path) -> None:
    """Remove the results.json of an earlier run in `out` (saying so), so that a failed or interrupted rerun
    cannot leave it looking like this run's results."""
    old = out / RESULTS
    if old.is_file():
        old.unlink()
        _say(f"removed {old} of an earlier run (this run writes a new one when it completes)")


def finetune(cfg: FinetuneConfig, source=None) -> dict:
    """The whole command: load MODEL (unless `source`, a source.Source, is given) and every task, fine-tune
    each task with every learning rate and seed, write OUT/results.json and OUT/submission/ at the end.
    Returns the results.json dict. Raises BertptError (nothing written but TensorBoard logs)."""
    return asdict(run(cfg, source))


def run(cfg: FinetuneConfig, source=None) -> Results:
    """`finetune`, returning the Results."""
    from bertpt.finetune.source import load_source
    from bertpt.finetune.train import Recipe, fine_tune, job_name

    start = time.perf_counter()
    cfg.validate()
    out = check_output_dir(cfg.output_dir)
    if source is None:
        source = load_source(cfg.model, cfg.tag, cfg.random_init)
    data = load_tasks(cfg)
    monitors = monitor.FINETUNE_DEFAULT
    if cfg.deepspeed_config is not None:
        monitors = monitor.monitor_sections(read_ds_json(cfg.deepspeed_config))
    monitor.check_sections(monitors, out)
    rates = cfg.learning_rates(source.config)
    remove_old_results(out)  # everything is checked; from here on this run owns OUT
    if cfg.max_seq_length > source.config.max_position_embeddings:
        _warn(
            f"--max_seq_length {cfg.max_seq_length} is more than the model's {source.config.max_position_embeddings} "
            f"positions; examples are truncated to {source.config.max_position_embeddings} tokens"
        )
    _say(
        f"fine-tuning {source.description}: the encoder's weights "
        + ("are freshly initialised (--random_init)" if source.state_dict is None else "come from it")
        + ("" if source.state_dict is None or "pooler.dense.weight" in source.state_dict else " (no pooler: fresh)")
        + "; each fine-tune puts a freshly initialised classifier head on it"
    )
    recipes = [
        Recipe(
            learning_rate=lr,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            max_seq_length=cfg.max_seq_length,
            max_train_samples=cfg.max_train_samples,
            max_eval_samples=cfg.max_eval_samples,
        )
        for lr in rates
    ]
    task_results, submissions = {}, {}
    for task_data in data:
        task = task_data.task
        task_start = time.perf_counter()
        n_train = (
            len(task_data.train.texts)
            if cfg.max_train_samples is None
            else min(cfg.max_train_samples, len(task_data.train.texts))
        )
        seeds = seeds_for(cfg, n_train)
        runs, best_predictions = [], {}
        for recipe in recipes:
            per_seed, seconds, predictions = [], [], []
            for seed in seeds:
                what = f"{task.name} lr {recipe.learning_rate:g} seed {seed}"
                # an earlier run's events in the same directory would show as a second curve in TensorBoard
                for d in monitor.job_dirs(monitors, out, job_name(task.name, recipe.learning_rate, seed)):
                    shutil.rmtree(d, ignore_errors=True)
                _say(
                    f"{what}: fine-tuning on {n_train:,} examples, {cfg.epochs:g} epoch{'' if cfg.epochs == 1 else 's'}"
                )
                r = fine_tune(source, task_data, recipe, seed, out, monitors)
                per_seed.append(r["metrics"])
                seconds.append(r["seconds"])
                predictions.append(r["predictions"])
                said = ", ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items())
                _say(f"{what}: score {metrics.task_score(r['metrics']):.4f} ({said}) in {r['seconds']:.1f} s")
            run = LearningRateRun.of(recipe.learning_rate, per_seed, seconds)
            runs.append(run)
            # the test predictions of the best seed of the best learning rate (on the evaluation splits)
            if run is max(runs, key=lambda x: x.score):
                best_predictions = predictions[max(range(len(seeds)), key=lambda i: run.scores[i])]
        task_results[task.name] = TaskResult.of(
            runs, seeds, n_train, task_data.source, time.perf_counter() - task_start
        )
        submissions[task.name] = (task_data, best_predictions)

    # the end: submission files, then results.json (written last: its presence means the run completed)
    for name, (task_data, predictions) in submissions.items():
        task_results[name].submission = [
            str(metrics.write_submission(task_data.task, split, predictions[split.name], out / "submission"))
            for split in task_data.test
        ]
    results = Results(
        tasks=task_results,
        # user tasks never enter the GLUE average, whatever they are called
        average=metrics.glue_average(
            {name: t.score for name, t in task_results.items() if not submissions[name][0].task.user_defined}
        ),
        model=source.description,
        recipe={
            **asdict(recipes[0]),
            "learning_rate": rates if len(rates) > 1 else rates[0],
            "seeds": cfg.seeds or "auto",
            "seed": cfg.seed,
        },
        wall_seconds=time.perf_counter() - start,
        bertpt_version=__version__,
        model_step=source.step,
        tokens_seen=source.tokens_seen,
        train_seconds=source.train_seconds,
    )
    out.mkdir(parents=True, exist_ok=True)
    results.write(out)
    return results


def format_table(results: Results) -> str:
    """The console table: per task each metric's median over seeds and its min-max spread, the task's score,
    seeds and learning rate; then the GLUE average. Values in percent, as GLUE tables show them; a spread
    reads "min..max" ("-44.40..-40.10")."""
    rows = [("task", "metric", "median", "min..max", "score", "seeds", "lr")]
    for name, t in results.tasks.items():
        for i, (metric, m) in enumerate(t.metrics.items()):
            first = i == 0
            rows.append(
                (
                    name if first else "",
                    metric,
                    f"{100 * m.median:.2f}",
                    f"{100 * m.min:.2f}..{100 * m.max:.2f}",  # one cell, and not "-44.40--40.10"
                    f"{100 * t.score:.2f}" if first else "",
                    str(len(t.seeds)) if first else "",
                    f"{t.learning_rate:g}" if first else "",
                )
            )
    if results.average is not None:
        rows.append(("GLUE average", "", "", "", f"{100 * results.average:.2f}", "", ""))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))) for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _say(text: str) -> None:
    print(f"{PROG}: {text}", flush=True)


def _warn(text: str) -> None:
    print(f"bertpt: warning: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        FinetuneConfig,
        **cli.parser_options(PROG),
        description=(
            "Fine-tune a pretrained BERT (a bertpt run or checkpoint, or a Hugging Face BERT directory) on GLUE "
            "tasks or your own, with several seeds, and report the standard metrics: a table, results.json, "
            "TensorBoard logs and GLUE submission files."
        ),
    )
    parser.add_argument(
        "model_path",
        metavar="MODEL",
        nargs="?",
        default=argparse.SUPPRESS,
        help="The model to fine-tune (see --model).",
    )
    with exit_on_error(PROG):
        cfg, *rest = cli.parse(parser, argv)  # no Namespace of other flags when MODEL (default: SUPPRESS) is absent
        model_path = getattr(rest[0], "model_path", None) if rest else None
        if model_path and cfg.model and model_path != cfg.model:
            raise BertptError(f"two models given: MODEL {model_path} and --model {cfg.model}; give one")
        cfg.model = cfg.model or model_path
        if cfg.all_checkpoints:
            cfg.validate()
            check_output_dir(cfg.output_dir)
            if importlib.util.find_spec("bertpt.finetune.curves") is None:
                raise BertptError("--all_checkpoints is not available in this version of bertpt")
            importlib.import_module("bertpt.finetune.curves").score_curves(cfg)
            return
        results = run(cfg)
        print(format_table(results))
        print(f"wrote {Path(cfg.output_dir) / 'results.json'} ({results.wall_seconds:.0f} s)")


if __name__ == "__main__":
    main()
