"""One fine-tune: a pretrained encoder + a fresh classification/regression head, trained on one task with one
seed and learning rate by transformers' Trainer, then predicting the task's evaluation and test splits.

The recipe is the BERT paper's (Devlin et al. 2019, section 4 and A.3; Google's run_classifier.py): AdamW
(weight decay 0.01, not on biases and LayerNorm weights: Trainer's default grouping), a linear warmup over
the first 10% of the steps then linear decay to 0, `max_seq_length` 128, batch 32, 3 epochs, dropout as in
the model's configuration. The head is `BertForSequenceClassification`'s: dropout + one linear layer on the
pooled [CLS] output, freshly initialised under the seed; STS-B (and any regression task) has one output and
a mean-squared-error loss (problem_type "regression").

Sentence pairs are encoded as [CLS] a [SEP] b [SEP] with token type ids 0/1, truncated longest-first to
`max_seq_length` (the tokenizer's "longest_first", as run_glue and run_classifier do); batches are padded to
their own longest example (DataCollatorWithPadding), so short-sentence tasks cost little.

On CPU the same source, data, recipe and seed give the same metrics and predictions bit for bit (the
model, the head, the data order and dropout all draw from generators seeded by `seed`).
"""

from __future__ import annotations

import contextlib
import copy
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import transformers

from bertpt import progress
from bertpt.errors import BertptError
from bertpt.finetune import metrics
from bertpt.finetune.source import Source, quiet_transformers
from bertpt.finetune.tasks import Split, TaskData
from bertpt.monitor import FINETUNE_DEFAULT, write_job

LOG_STEPS = 10  # training loss and learning rate to the dashboards every 10 optimizer steps


@dataclass
class Recipe:
    """The fine-tuning hyper-parameters (one learning rate; a sweep is several Recipes)."""

    learning_rate: float
    epochs: float = 3.0
    batch_size: int = 32
    max_seq_length: int = 128  # tokens, [CLS]/[SEP] included; capped at the model's max_position_embeddings
    warmup_ratio: float = 0.1  # of the total optimizer steps
    weight_decay: float = 0.01
    max_train_samples: int | None = None  # the first N training examples (run_glue's --max_train_samples)
    max_eval_samples: int | None = None  # the first N examples of each evaluation split


class Encoded(torch.utils.data.Dataset):
    """A split as tokenizer features (input_ids, token_type_ids, attention_mask, labels), one dict per example."""

    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return self.features[i]


def encode(tokenizer, split: Split, max_seq_length: int, limit: int | None = None, regression: bool = False) -> Encoded:
    """Tokenize the first `limit` (all: None) examples of `split`: one text or a pair (token type ids 0/1),
    truncated to `max_seq_length` tokens; with the split's labels as `labels` (float for regression)."""
    n = len(split.texts) if limit is None else min(limit, len(split.texts))
    columns = list(zip(*split.texts[:n])) if n else [[]]
    enc = tokenizer(
        list(columns[0]),
        list(columns[1]) if len(columns) > 1 else None,
        truncation=True,
        max_length=max_seq_length,
        return_token_type_ids=True,
    )
    features = [{k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask")} for i in range(n)]
    if split.labels is not None:
        for f, label in zip(features, split.labels[:n]):
            f["labels"] = float(label) if regression else int(label)
    return Encoded(features)


def build_model(source: Source, data: TaskData, seed: int):
    """BertForSequenceClassification with the source's encoder weights and a head initialised under `seed`.
    Raises BertptError if the weights do not fit the configuration."""
    from transformers import BertForSequenceClassification, set_seed

    task = data.task
    config = copy.deepcopy(source.config)
    config.num_labels = task.num_labels
    config.problem_type = "regression" if task.is_regression else "single_label_classification"
    if task.labels is not None:
        config.id2label = dict(enumerate(task.labels))
        config.label2id = {name: i for i, name in enumerate(task.labels)}
    set_seed(seed)
    model = BertForSequenceClassification(config)
    if source.state_dict is not None:
        try:
            missing, unexpected = model.bert.load_state_dict(source.state_dict, strict=False)
        except RuntimeError as e:
            raise BertptError(f"{source.description}: its weights do not fit its configuration ({e})") from None
        if unexpected or any(not k.startswith("pooler.") for k in missing):
            raise BertptError(
                f"{source.description}: its weights do not fit BertModel (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]})"
            )
    return model


def job_name(task_name: str, learning_rate: float, seed: int) -> str:
    """One fine-tune's name on the dashboards: "<task>/lr<lr>_seed<seed>" (its directory under tb/ and csv/)."""
    return f"{task_name}/lr{learning_rate:g}_seed{seed}"


def tb_dir(out_dir: str | Path, task_name: str, learning_rate: float, seed: int) -> Path:
    """The TensorBoard directory of one fine-tune with the default dashboards: out_dir/tb/<task>/lr<lr>_seed<seed>."""
    return Path(out_dir) / "tb" / job_name(task_name, learning_rate, seed)


def fine_tune(
    source: Source,
    data: TaskData,
    recipe: Recipe,
    seed: int,
    out_dir: Path | None = None,
    monitors: dict | None = None,
) -> dict:
    """Fine-tune `source` on `data` with `recipe` and `seed`; predict every evaluation and test split.

    `out_dir`: the run's output directory; the scalars (train/loss, train/learning_rate, ... every LOG_STEPS
    steps, eval/<metric> at the last step) go, once the fine-tune is done, through DeepSpeed's monitor to the
    dashboards of `monitors` (DeepSpeed JSON monitor sections, bertpt.monitor.write_job; None: TensorBoard in
    out_dir/tb/<task>/lr<lr>_seed<seed>). Nothing else is written (no checkpoints). Returns
    {"metrics": {metric: value} over all evaluation splits, "predictions": {split name: (N,) label ids or
    floats}, "seconds": wall time, "train_examples": N, "steps": optimizer steps, "train_loss": mean loss}.
    Raises BertptError: an empty training split, weights that do not fit."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    start = time.perf_counter()
    task = data.task
    length = min(recipe.max_seq_length, source.config.max_position_embeddings)
    train = encode(source.tokenizer, data.train, length, recipe.max_train_samples, task.is_regression)
    if len(train) == 0:
        raise BertptError(f"task {task.name}: the training split is empty")
    evaluation = [
        (s, encode(source.tokenizer, s, length, recipe.max_eval_samples, task.is_regression)) for s in data.evaluation
    ]
    test = [(s, encode(source.tokenizer, s, length)) for s in data.test]

    model = build_model(source, data, seed)
    with tempfile.TemporaryDirectory(prefix="bertpt-finetune-") as tmp:
        args = TrainingArguments(
            output_dir=tmp,  # Trainer wants one; with save_strategy "no" it stays empty
            per_device_train_batch_size=recipe.batch_size,
            per_device_eval_batch_size=recipe.batch_size,
            learning_rate=recipe.learning_rate,
            num_train_epochs=recipe.epochs,
            warmup_steps=recipe.warmup_ratio,  # a float in [0, 1): a fraction of the total steps
            weight_decay=recipe.weight_decay,
            lr_scheduler_type="linear",
            seed=seed,
            data_seed=seed,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="steps",
            logging_steps=LOG_STEPS,
            report_to="none",  # the dashboards through DeepSpeed's monitor (_Scalars, bertpt.monitor.write_job)
            disable_tqdm=True,  # our bar instead (progress.bar: plain lines in a log file)
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),  # pinning is for copies to a GPU
        )
        progress_bar = _ProgressCallback(f"{task.name} seed {seed} lr {recipe.learning_rate:g}")
        scalars = _Scalars()
        callbacks = [progress_bar, scalars]
        with quiet_transformers():
            trainer = Trainer(
                model=model,
                args=args,
                train_dataset=train,
                data_collator=DataCollatorWithPadding(source.tokenizer),
                processing_class=source.tokenizer,
                callbacks=callbacks,
            )
        trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout
        with _transformers_errors_only():
            trained = trainer.train()
            predictions, values = {}, {}
            for split, encoded in evaluation + test:
                predictions[split.name] = _predict(trainer, encoded, task.is_regression)
                if split.labels is not None:
                    labels = np.asarray(split.labels[: len(encoded)])
                    values.update(metrics.compute(task, split.name, predictions[split.name], labels))
        if out_dir:
            events = scalars.events + [(f"eval/{k}", float(v), trainer.state.global_step) for k, v in values.items()]
            write_job(
                FINETUNE_DEFAULT if monitors is None else monitors,
                out_dir,
                job_name(task.name, recipe.learning_rate, seed),
                events,
            )
    return {
        "metrics": values,
        "predictions": predictions,
        "seconds": time.perf_counter() - start,
        "train_examples": len(train),
        "steps": trainer.state.global_step,
        "train_loss": float(trained.training_loss),  # the mean over all steps (Trainer's TrainOutput)
    }


def _predict(trainer, encoded: Encoded, regression: bool) -> np.ndarray:
    """(N,) label ids (argmax of the logits) or, for regression, the (N,) predicted values."""
    if len(encoded) == 0:
        return np.zeros(0, dtype=np.float64 if regression else np.int64)
    logits = trainer.predict(encoded).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return logits[:, 0].astype(np.float64) if regression else logits.argmax(axis=-1).astype(np.int64)


@contextlib.contextmanager
def _transformers_errors_only():
    """transformers' own log lines (its Trainer's notes about the device, unused columns) at error level only."""
    log = transformers.utils.logging
    verbosity = log.get_verbosity()
    log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(verbosity)


class _Scalars(transformers.TrainerCallback):
    """Trainer's logs as (tag, value, step) scalars, named as transformers' TensorBoardCallback names them
    (train/loss, train/learning_rate, train/grad_norm, train/epoch), kept until the fine-tune is done."""

    def __init__(self):
        self.events: list[tuple[str, float, int]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        for k, v in (logs or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                tag = f"eval/{k[5:]}" if k.startswith("eval_") else f"train/{k}"
                self.events.append((tag, float(v), state.global_step))


class _ProgressCallback(transformers.TrainerCallback):
    """A progress bar over the optimizer steps (bertpt.progress.bar: tqdm on a terminal, a plain line every
    30 s in a log file) with the latest training loss."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = progress.bar(total=state.max_steps, desc=self.desc, unit="step", stream=sys.stderr)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
