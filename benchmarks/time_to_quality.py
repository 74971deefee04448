"""Time-to-quality: which pretraining gives the better BERT for the same wall-clock budget (issue 13).

    python -m benchmarks.time_to_quality --minutes 4 --glue_dir ../shared/data/glue --out runs/ttq [--reference DIR]
    python -m benchmarks.time_to_quality --quick --glue_dir ../shared/data/glue --out runs/ttq-quick   # 10-20 minutes

The command prints its plan before it starts. Fine-tuning dominates: with the defaults (4 rows x 4 minutes, 3 seeds,
CoLA/MRPC/STS-B in full, SST-2 capped at 1,000) about 3 hours on this project's 2-core CPU, so the run in
docs/performance.md capped every task at 1,000 training examples (`--max_train_samples 1000`: about 20 minutes of
fine-tuning per row with `--finetune_threads 1`).

On one corpus (the Python documentation, benchmarks/corpora.py, 10.0 MB; or --corpus FILE) and one WordPiece
tokenizer (trained once by the first bertpt-prepare, reused by the second with --tokenizer), the same model
(bertpt's --model preset, bert-mini by default) is pretrained on 128-token sequences by every row for the SAME
wall-clock budget, one row after the other (never side by side: each row gets the whole machine and the same
--threads), then scored by one evaluator and fine-tuned with one recipe:

  bertpt        bertpt-pretrain, MLM + NSP (Google's instances), the --deepspeed_config preset
  bertpt-mlm    bertpt-pretrain, MLM only (bertpt-prepare --objective mlm: contiguous text, one segment, no NSP)
  hf-fp32       the plain transformers loop a user writes (benchmarks/hf_pretrain.py): BertForPreTraining with its
                dense MLM head, the same prepared NSP instances, DataCollatorForLanguageModeling, torch AdamW with
                the preset's hyper-parameters, transformers' linear warmup/decay; fp32
  hf-bf16       the same under torch.autocast(bfloat16)
  reference     --reference DIR (any local Hugging Face BERT checkpoint, e.g. of a similar size): fine-tuned only

The budget with an LR schedule: the schedule needs its length in steps up front, so every row first runs
--calibration_steps steps (a separate, discarded run) to measure its steps per second after its warm-up steps,
then trains max_steps = budget x that rate, the schedule set for that length. The table reports what each row
really did: steps, real (non-padding) tokens and its training-loop minutes (first step to last; process start,
data loading into the model, evaluation, saving and export not counted, for any row).

The evaluator is the same for every row and is none of theirs: the held-out instances of the prepared data
(documents no row trained on), masked once with a fixed seed (BERT's rule: 15% of the non-special tokens, at
most max_predictions_per_seq, 80% [MASK] / 10% random / 10% kept) and stored under OUT/eval, scored through
transformers on each row's Hugging Face directory (BertForPreTraining, or BertForMaskedLM for an MLM-only export):
MLM accuracy on the MLM + NSP held-out instances (A/B pairs, half with a random B), on the MLM-only ones
(contiguous text), and NSP accuracy where the model has an NSP head ("-" otherwise).

Fine-tuning is bertpt-finetune (`python -m bertpt.finetune`), the same recipe and seeds for every row: CoLA, MRPC
and STS-B in full, SST-2 capped at --sst2_max_train_samples; the average is the mean of the tasks' scores.
Everything lands in OUT: corpus/, data/, rows/ROW/, eval/, finetune/ROW/, results.json and results.md. A rerun with
the same OUT reuses the prepared data and every row that finished (delete OUT/rows/ROW to redo one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bertpt.errors import BertptError, exit_on_error
from bertpt.files import write_atomic

REPO = Path(__file__).resolve().parent.parent
ROWS = ("bertpt", "bertpt-mlm", "hf-fp32", "hf-bf16")
TASKS = ("cola", "mrpc", "stsb", "sst2")
# GLUE train sizes of the shipped data (../shared/data/glue/README.md), for the plan only
GLUE_TRAIN = {"cola": 8551, "mrpc": 2576, "stsb": 4249, "sst2": 60614}
# Planning estimates for a quiet 2-core AVX2 CPU and bert-mini (printed as estimates, never used as results)
PREPARE_S_PER_MB = 20.0  # both bertpt-prepare runs together, per MB of corpus
ROW_OVERHEAD_S = 60.0  # per row: two process starts, calibration warm-up, final evaluation, export
# fine-tuning: training examples per second, batch 32 padded to its longest (CoLA and SST-2 are short sentences,
# STS-B and MRPC pairs of about 30 and 50 tokens); other tasks: MRPC's. Measured in the issue-13 run (1 thread, the
# other core busy): CoLA 25,653 examples (3 epochs) in 270 s; with 1,000 examples x 3 epochs a seed took CoLA 33 s,
# STS-B 55 s, MRPC 130 s, SST-2 90 s (most of it scoring SST-2's 6,735 dev examples)
FINETUNE_EXAMPLES_PER_S = {"cola": 95.0, "sst2": 95.0, "stsb": 55.0, "mrpc": 25.0}
FINETUNE_RUN_OVERHEAD_S = 10.0  # per task and seed: model load, evaluation of the dev split


@dataclass
class Config:
    out: Path
    glue_dir: Path | None
    minutes: float = 4.0
    seeds: int = 3
    sst2_max_train_samples: int = 1000
    max_train_samples: int | None = None  # every task (quick runs)
    max_eval_samples: int | None = None  # every task's evaluation split (quick runs)
    tasks: tuple[str, ...] = TASKS
    rows: tuple[str, ...] = ROWS
    reference: Path | None = None
    corpus: Path | None = None
    model: str = "bert-mini"
    deepspeed_config: str = "ds_configs/zero0.json"
    threads: int = 2
    finetune_threads: int | None = None  # evaluation and fine-tuning; None: threads
    calibration_steps: int = 20
    vocab_size: int = 30522
    eval_instances: int = 2048
    learning_rate: float | None = None
    epochs: float | None = None
    seed: int = 42
    quick: bool = False
    corpus_bytes: int | None = None  # only the first documents up to this many bytes (quick runs)


# ------------------------------------------------------------------------------------ Planning


def finetune_examples(cfg: Config) -> dict[str, int]:
    """Training examples one model sees per task over all seeds (epochs x capped train size x seeds)."""
    out = {}
    for t in cfg.tasks:
        n = GLUE_TRAIN.get(t, 5000)
        if t == "sst2":
            n = min(n, cfg.sst2_max_train_samples)
        if cfg.max_train_samples:
            n = min(n, cfg.max_train_samples)
        out[t] = int(n * (cfg.epochs or 3) * cfg.seeds)
    return out


def plan(cfg: Config, corpus_mb: float) -> dict[str, float]:
    """Estimated seconds of each phase (PREPARE_S_PER_MB & co. above: a quiet 2-core CPU, bert-mini)."""
    n_rows = len(cfg.rows)
    models = n_rows + (1 if cfg.reference else 0)
    per_model = sum(
        n / FINETUNE_EXAMPLES_PER_S.get(t, FINETUNE_EXAMPLES_PER_S["mrpc"]) + cfg.seeds * FINETUNE_RUN_OVERHEAD_S
        for t, n in finetune_examples(cfg).items()
    )
    return {
        "prepare": corpus_mb * PREPARE_S_PER_MB,
        "pretrain": n_rows * (cfg.minutes * 60 + ROW_OVERHEAD_S),
        "evaluate": n_rows * 20.0,
        "finetune": models * per_model if cfg.glue_dir else 0.0,
    }


def steps_for_budget(budget_s: float, steps_per_s: float) -> int:
    """The step count that takes `budget_s` at the calibrated rate (at least 1)."""
    if not steps_per_s > 0:
        raise BertptError(f"calibration measured {steps_per_s} steps/s; rerun on a machine that is not overloaded")
    return max(1, math.floor(budget_s * steps_per_s))


# ------------------------------------------------------------------------------------ Subprocesses


def env(cfg: Config, threads: int | None = None) -> dict[str, str]:
    """Every row's processes: the same thread count (`threads`, default --threads); this checkout first on the path;
    DeepSpeed's accelerator as the caller set it (DS_ACCELERATOR=cpu here)."""
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = str(threads or cfg.threads)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p])
    return e


def run(cmd: list[str], cfg: Config, log: Path, threads: int | None = None) -> float:
    """Run `cmd` with its output appended to `log`; its wall seconds. BertptError (naming the log) on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env(cfg, threads), cwd=REPO)
    if rc:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise BertptError(f"{cmd[2] if cmd[1] == '-m' else cmd[0]} failed (exit {rc}): {tail[0]} (log: {log})")
    return time.perf_counter() - started


def py(module: str, *args) -> list[str]:
    return [sys.executable, "-m", module, *[str(a) for a in args]]


# ------------------------------------------------------------------------------------ Corpus and data


def corpus_file(cfg: Config) -> Path:
    """The corpus as JSONL: --corpus, else the Python documentation (written once); quick runs: its first documents."""
    from benchmarks.corpora import python_docs

    if cfg.corpus:
        src = cfg.corpus
    else:
        src = cfg.out / "corpus" / "python-docs.jsonl"
        if not src.exists():
            src.parent.mkdir(parents=True, exist_ok=True)
            python_docs(src)
    if not cfg.corpus_bytes:
        return src
    sliced = cfg.out / "corpus" / f"slice-{cfg.corpus_bytes}.jsonl"
    if not sliced.exists():
        lines, size = [], 0
        with open(src, encoding="utf-8") as f:
            for line in f:
                lines.append(line)
                size += len(line.encode())
                if size >= cfg.corpus_bytes:
                    break
        sliced.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(sliced, "".join(lines))
    return sliced


def prepare(cfg: Config, corpus: Path) -> dict[str, Path]:
    """bertpt-prepare twice with one tokenizer: MLM + NSP instances (training the tokenizer), then MLM-only."""
    data = {"nsp": cfg.out / "data" / "nsp", "mlm": cfg.out / "data" / "mlm"}
    common = ["--sentence_splitter", "lines", "--max_seq_length", 128, "--num_workers", cfg.threads, "--seed", cfg.seed]
    if not (data["nsp"] / "meta.json").exists():
        print(f"preparing {data['nsp']} (MLM + NSP, training the tokenizer)", flush=True)
        args = ["--output_dir", data["nsp"], "--vocab_size", cfg.vocab_size, "--overwrite", *common]
        run(py("bertpt.prepare", corpus, *args), cfg, cfg.out / "logs" / "prepare.log")
    if "bertpt-mlm" in cfg.rows and not (data["mlm"] / "meta.json").exists():
        print(f"preparing {data['mlm']} (MLM only, the same tokenizer)", flush=True)
        args = ["--output_dir", data["mlm"], "--tokenizer", data["nsp"] / "tokenizer", "--objective", "mlm"]
        run(py("bertpt.prepare", corpus, *args, "--overwrite", *common), cfg, cfg.out / "logs" / "prepare.log")
    return data


# ------------------------------------------------------------------------------------ Pretraining rows


def bertpt_record(run_dir: Path) -> dict:
    """Steps, real tokens and training-loop seconds of a bertpt run, from its metrics.jsonl train lines (each
    line covers the steps since the last: tokens and tokens_per_s give its seconds, evaluation and checkpoint
    time left out by bertpt's Reporter); also the last interval's steps per second."""
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [m for m in lines if m.get("split") == "train"]
    if not train:
        raise BertptError(f"{run_dir}/metrics.jsonl has no train lines")
    seconds = sum(m["tokens"] / m["tokens_per_s"] for m in train)
    last = train[-1]
    steps_in_last = last["step"] - (train[-2]["step"] if len(train) > 1 else 0)
    return {
        "steps": int(last["step"]),
        "sequences": int(sum(m["sequences"] for m in train)),
        "tokens": int(sum(m["tokens"] for m in train)),
        "train_seconds": round(seconds, 3),
        "steps_per_s": steps_in_last / (last["tokens"] / last["tokens_per_s"]),
    }


def row_command(cfg: Config, row: str, data: dict[str, Path], out: Path, steps: int, calibrate: bool) -> list[str]:
    """The command that trains `row` for `steps` steps into `out`."""
    if row.startswith("bertpt"):
        log_steps = max(1, steps // 2) if calibrate else 10
        return py(
            "bertpt.pretrain",
            "--deepspeed_config", cfg.deepspeed_config,
            "--data", data["mlm" if row == "bertpt-mlm" else "nsp"],
            "--output_dir", out,
            "--model", cfg.model,
            "--max_steps", steps,
            "--log_steps", log_steps,
            "--eval_steps", steps,  # one held-out evaluation, at the end (outside the timed loop)
            "--eval_samples", 256,
            "--save_steps", steps,
            "--resume", "none",
            "--seed", cfg.seed,
        )  # fmt: skip
    precision = "bf16" if row == "hf-bf16" else "fp32"
    cmd = py(
        "benchmarks.hf_pretrain",
        "--data", data["nsp"],
        "--deepspeed_config", cfg.deepspeed_config,
        "--model", cfg.model,
        "--max_steps", steps,
        "--output_dir", out,
        "--precision", precision,
        "--threads", cfg.threads,
        "--seed", cfg.seed,
    )  # fmt: skip
    # a calibration run stops after --calibration_steps or a third of the budget (at most a minute), whichever
    # comes first: bf16 autocast on a CPU without native bf16 takes about a minute per step
    limit = max(10.0, min(60.0, cfg.minutes * 20))
    return cmd + (["--no_save", "--max_seconds", f"{limit:g}"] if calibrate else [])


def pretrain_row(cfg: Config, row: str, data: dict[str, Path]) -> dict:
    """Calibrate, then train `row` for --minutes; its record (also OUT/rows/ROW/record.json, reused when present)."""
    out = cfg.out / "rows" / row
    done = out / "record.json"
    if done.exists():
        print(f"{row}: reusing {out}", flush=True)
        return json.loads(done.read_text())
    log = cfg.out / "logs" / f"{row}.log"
    calib = cfg.out / "rows" / f"{row}.calibration"
    shutil.rmtree(calib, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    run(row_command(cfg, row, data, calib, cfg.calibration_steps, calibrate=True), cfg, log)
    rate = (bertpt_record(calib) if row.startswith("bertpt") else json.loads((calib / "train.json").read_text()))[
        "steps_per_s"
    ]
    shutil.rmtree(calib)
    steps = steps_for_budget(cfg.minutes * 60, rate)
    print(f"{row}: calibrated {rate:.3f} steps/s -> {steps} steps for {cfg.minutes:.3g} min", flush=True)
    wall = run(row_command(cfg, row, data, out, steps, calibrate=False), cfg, log)
    record = bertpt_record(out) if row.startswith("bertpt") else json.loads((out / "train.json").read_text())
    record.update(row=row, calibrated_steps_per_s=rate, planned_steps=steps, process_seconds=round(wall, 1))
    record["hf_dir"] = str(out / "hf")
    write_atomic(done, json.dumps(record, indent=2))
    print(
        f"{row}: {record['steps']} steps, {record['tokens']:,} tokens, {record['train_seconds'] / 60:.2f} min "
        f"training loop ({wall / 60:.2f} min process)",
        flush=True,
    )
    return record


# ------------------------------------------------------------------------------------ The evaluator


def draw_masks(
    tokens: list[np.ndarray],
    special: set[int],
    mask_id: int,
    vocab_size: int,
    seed: int,
    max_predictions: int,
    masked_lm_prob: float = 0.15,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """BERT's masking, drawn once: per instance, round(len x masked_lm_prob) (at least 1, at most
    `max_predictions`) of its non-special positions, of which 80% become [MASK], 10% a random id, 10% stay
    (Google's create_pretraining_data.py). Returns per instance the masked ids and the labels (int64, the
    instance's length: the original id at a masked position, -100 elsewhere, transformers' ignore index).
    Deterministic in `seed`."""  # fmt: skip
    rng = np.random.default_rng(seed)
    inputs, labels = [], []
    for t in tokens:
        t = np.asarray(t, dtype=np.int64)
        candidates = np.flatnonzero(~np.isin(t, list(special)))
        n = min(max_predictions, max(1, round(len(t) * masked_lm_prob)), len(candidates))
        chosen = rng.permutation(candidates)[:n]
        x, y = t.copy(), np.full(len(t), -100, dtype=np.int64)
        y[chosen] = t[chosen]
        for p in chosen:
            r = rng.random()
            if r < 0.8:
                x[p] = mask_id
            elif r >= 0.9:
                x[p] = rng.integers(0, vocab_size)
        inputs.append(x)
        labels.append(y)
    return inputs, labels


def heldout(data_dir: Path, out: Path, cfg: Config) -> Path:
    """The held-out instances of `data_dir`, masked once (`draw_masks`), as OUT/eval/<name>.npz (reused when
    present): input_ids, token_type_ids, attention_mask, labels (N, L), next_sentence_label (N,; -100 for
    MLM-only data)."""
    if out.exists():
        return out
    from bertpt.data.dataset import PretrainingData
    from bertpt.data.format import load_meta

    meta = load_meta(data_dir)
    split = next(s for s in meta.splits if s != "train")
    data = PretrainingData(meta, split)
    n = min(len(data), cfg.eval_instances)
    if n == 0:
        raise BertptError(f"{data_dir} has no held-out instances; use a larger corpus")
    samples = [data[(i, i)] for i in range(n)]
    ids = meta.special_ids
    x, y = draw_masks(
        [s.tokens for s in samples], {ids.pad, ids.cls, ids.sep, ids.mask, ids.unk}, ids.mask, meta.vocab_size,
        cfg.seed, meta.masking.max_predictions_per_seq,
    )  # fmt: skip
    L = meta.max_seq_length
    arrays = {k: np.zeros((n, L), dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    arrays["labels"] = np.full((n, L), -100, dtype=np.int64)
    for i, s in enumerate(samples):
        k = len(s.tokens)
        arrays["input_ids"][i, :k], arrays["labels"][i, :k], arrays["attention_mask"][i, :k] = x[i], y[i], 1
        arrays["token_type_ids"][i, s.a_len : k] = 1
    nsp = [-100 if s.is_random_next is None else s.is_random_next for s in samples]  # None: MLM-only data
    arrays["next_sentence_label"] = np.array(nsp, dtype=np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".tmp"), "wb") as f:
        np.savez(f, **arrays)
    os.replace(out.with_suffix(".tmp"), out)
    return out


def accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(correct, counted) of argmax(logits, -1) against `labels`, positions labelled -100 not counted.
    logits (..., C), labels (...)."""
    keep = labels != -100
    return int((logits.argmax(-1)[keep] == labels[keep]).sum()), int(keep.sum())


def score(hf_dir: Path, sets: dict[str, Path], threads: int, batch: int = 64) -> dict[str, float | None]:
    """Held-out accuracies of the Hugging Face model in `hf_dir` through transformers: "mlm_<set>" for every
    held-out set, "nsp" on the "nsp" set when the model has an NSP head (None otherwise)."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar per model
    torch.set_num_threads(threads)
    config = transformers.AutoConfig.from_pretrained(hf_dir)
    has_nsp = "BertForPreTraining" in (config.architectures or [])
    cls = transformers.BertForPreTraining if has_nsp else transformers.BertForMaskedLM
    model = cls.from_pretrained(hf_dir).eval()
    result: dict[str, float | None] = {"nsp": None}
    for name, path in sets.items():
        a = np.load(path)
        mlm, nsp = [0, 0], [0, 0]
        for i in range(0, len(a["input_ids"]), batch):
            sl = slice(i, i + batch)
            width = int(a["attention_mask"][sl].sum(1).max())  # padded to the batch's longest
            inputs = {k: torch.from_numpy(a[k][sl, :width]) for k in ("input_ids", "token_type_ids", "attention_mask")}
            with torch.no_grad():
                out = model(**inputs)
            logits = out.prediction_logits if has_nsp else out.logits
            c, n = accuracy(logits.float().numpy(), a["labels"][sl, :width])
            mlm[0], mlm[1] = mlm[0] + c, mlm[1] + n
            if has_nsp and name == "nsp":
                c, n = accuracy(out.seq_relationship_logits.float().numpy(), a["next_sentence_label"][sl])
                nsp[0], nsp[1] = nsp[0] + c, nsp[1] + n
        result[f"mlm_{name}"] = mlm[0] / max(1, mlm[1])
        if has_nsp and name == "nsp":
            result["nsp"] = nsp[0] / max(1, nsp[1])
    return result


def same_vocab(hf_dir: Path, data_dir: Path) -> bool:
    """Whether the model's vocab.txt is the prepared data's (the held-out ids mean the same tokens)."""
    mine, theirs = Path(hf_dir) / "vocab.txt", data_dir / "tokenizer" / "vocab.txt"
    return mine.is_file() and theirs.is_file() and mine.read_bytes() == theirs.read_bytes()


# ------------------------------------------------------------------------------------ Fine-tuning


def finetune(cfg: Config, name: str, model_dir: Path) -> dict:
    """bertpt-finetune on every task, the same recipe and seeds for every model (SST-2 capped): its merged
    results.json "tasks" (reused when present)."""
    out = cfg.out / "finetune" / name
    groups = []  # (tasks, cap): the capped SST-2 runs apart from the tasks fine-tuned in full
    full = [t for t in cfg.tasks if t != "sst2"]
    if full:
        groups.append((full, cfg.max_train_samples))
    if "sst2" in cfg.tasks:
        groups.append((["sst2"], min(cfg.sst2_max_train_samples, cfg.max_train_samples or math.inf)))
    tasks: dict = {}
    for group, cap in groups:
        d = out / "-".join(group)
        if not (d / "results.json").exists():
            cmd = py("bertpt.finetune", model_dir, "--tasks", ",".join(group), "--glue_dir", cfg.glue_dir)
            cmd += ["--output_dir", str(d), "--seeds", str(cfg.seeds)]
            if cap:
                cmd += ["--max_train_samples", str(int(cap))]
            if cfg.max_eval_samples:
                cmd += ["--max_eval_samples", str(cfg.max_eval_samples)]
            if cfg.learning_rate:
                cmd += ["--learning_rate", str(cfg.learning_rate)]
            if cfg.epochs:
                cmd += ["--epochs", str(cfg.epochs)]
            print(f"{name}: fine-tuning {','.join(group)} ({cfg.seeds} seed(s){f', {int(cap)} train' if cap else ''})")
            run(cmd, cfg, cfg.out / "logs" / f"finetune-{name}.log", cfg.finetune_threads)
        tasks.update(json.loads((d / "results.json").read_text())["tasks"])
    return tasks


def average(scores: dict[str, float | None]) -> float | None:
    """The mean of the tasks' scores (GLUE's rule; None when a task has none)."""
    values = list(scores.values())
    return statistics.fmean(values) if values and None not in values else None


# ------------------------------------------------------------------------------------ The table


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def table(rows: list[dict], tasks: tuple[str, ...]) -> list[list[str]]:
    """Header and one line per row: row, steps, tokens, minutes, held-out accuracies, task scores, average."""
    head = ["row", "precision", "steps", "tokens", "train min", "MLM acc", "MLM acc (contig)", "NSP acc"]
    lines = [head + list(tasks) + ["avg"]]
    for r in rows:
        lines.append(
            [
                r["row"],
                r.get("precision") or "-",
                f"{r['steps']:,}" if r.get("steps") is not None else "-",
                f"{r['tokens'] / 1e6:.2f}M" if r.get("tokens") is not None else "-",
                f"{r['train_seconds'] / 60:.2f}" if r.get("train_seconds") is not None else "-",
                pct(r.get("mlm_nsp")),
                pct(r.get("mlm_mlm")),
                pct(r.get("nsp")),
                *[pct(r.get("scores", {}).get(t)) for t in tasks],
                pct(r.get("average")),
            ]
        )
    return lines


def render(lines: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
        return "\n".join(out + ["| " + " | ".join(x) + " |" for x in lines[1:]])
    w = [max(len(x[i]) for x in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(x)) for x in lines)


# ------------------------------------------------------------------------------------ The benchmark


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} cores available"


def benchmark(cfg: Config) -> dict:
    started = time.time()
    cfg.out.mkdir(parents=True, exist_ok=True)
    if cfg.glue_dir and not Path(cfg.glue_dir).is_dir():
        raise BertptError(f"--glue_dir {cfg.glue_dir}: no such directory")
    if cfg.reference and not (Path(cfg.reference) / "config.json").is_file():
        raise BertptError(f"--reference {cfg.reference}: not a Hugging Face model directory (no config.json)")
    corpus = corpus_file(cfg)
    mb = corpus.stat().st_size / 1e6
    est = plan(cfg, mb)
    load = os.getloadavg()[0]
    print(
        f"time-to-quality: {cfg.model}, {len(cfg.rows)} rows x {cfg.minutes:.3g} min pretraining, one after the other "
        f"with {cfg.threads} thread(s) each, on {machine()} (load average {load:.1f} at start"
        f"{'' if load < 0.5 else ': NOT quiet, rates and budgets suffer'}); corpus {corpus} ({mb:.1f} MB)\n"
        f"planned: prepare {est['prepare'] / 60:.0f} + pretrain {est['pretrain'] / 60:.0f} + evaluate "
        f"{est['evaluate'] / 60:.0f} + fine-tune {est['finetune'] / 60:.0f} = about {sum(est.values()) / 60:.0f} "
        f"minutes (estimates for a quiet 2-core CPU; fine-tuning: {','.join(cfg.tasks)}, {cfg.seeds} seed(s), "
        f"SST-2 capped at {cfg.sst2_max_train_samples})",
        flush=True,
    )
    data = prepare(cfg, corpus)
    sets = {"nsp": heldout(data["nsp"], cfg.out / "eval" / "heldout-nsp.npz", cfg)}
    if "bertpt-mlm" in cfg.rows:
        sets["mlm"] = heldout(data["mlm"], cfg.out / "eval" / "heldout-mlm.npz", cfg)
    rows = []
    for row in cfg.rows:  # one after the other: all pretraining before any evaluation or fine-tuning
        record = pretrain_row(cfg, row, data)
        if row.startswith("bertpt"):
            record["precision"] = record.get("precision") or precision_of(cfg.out / "logs" / f"{row}.log")
        rows.append(record)
    if cfg.reference:
        ref = {"row": f"reference ({Path(cfg.reference).name})", "hf_dir": str(cfg.reference)}
        rows.append(ref)
    for r in rows:
        if r["row"] in ROWS or same_vocab(Path(r["hf_dir"]), data["nsp"]):
            r.update(score(Path(r["hf_dir"]), sets, cfg.finetune_threads or cfg.threads))
        if cfg.glue_dir:
            name = r["row"] if r["row"] in ROWS else "reference"
            tasks = finetune(cfg, name, Path(r["hf_dir"]))
            r["finetune"] = tasks
            r["scores"] = {t: (tasks.get(t) or {}).get("score") for t in cfg.tasks}
            r["average"] = average(r["scores"])
    lines = table(rows, cfg.tasks if cfg.glue_dir else ())
    result = {
        "rows": rows,
        "machine": machine(),
        "load_average_at_start": load,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "corpus": {"path": str(corpus), "mb": round(mb, 2)},
        "fairness": (
            "rows ran one after the other with the same threads; each row's max_steps = budget x its own "
            "calibrated steps/s; train min is each row's training loop (first step to last), the same definition "
            "for every row; one evaluator (fixed held-out instances and masks) through transformers"
        ),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_atomic(cfg.out / "results.json", json.dumps(result, indent=2, default=float))
    ft = cfg.finetune_threads
    ft_threads = f" ({ft} for evaluation and fine-tuning)" if ft and ft != cfg.threads else ""
    md = (
        f"Time-to-quality, {cfg.model}, {cfg.minutes:.3g} min pretraining per row, one row after the other on "
        f"{machine()}, {cfg.threads} thread(s){ft_threads}; corpus {corpus.name} ({mb:.1f} MB).\n\n"
        f"{render(lines, True)}\n"
    )
    write_atomic(cfg.out / "results.md", md)
    print("\n" + render(lines))
    print(f"\n{cfg.out / 'results.json'}, {cfg.out / 'results.md'} ({result['wall_seconds'] / 60:.1f} min in all)")
    return result


def precision_of(log: Path) -> str:
    """bertpt-pretrain's first line names the precision it chose ("... ZeRO stage 0, fp32 (bf16 "auto" ...")."""
    text = log.read_text(errors="replace") if log.exists() else ""
    for p in ("bf16", "fp16", "fp32"):
        if f", {p}" in text:
            return p
    return "-"


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.time_to_quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("runs/ttq"), help="output directory (default: runs/ttq)")
    p.add_argument("--glue_dir", type=Path, help="GLUE data in the official layout; without it no fine-tuning")
    p.add_argument("--minutes", type=float, default=4.0, help="pretraining minutes per row (default: 4)")
    p.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per task (default: 3)")
    p.add_argument("--sst2_max_train_samples", type=int, default=1000, help="SST-2's training cap (default: 1000)")
    p.add_argument("--max_train_samples", type=int, help="cap every task's training examples (quick runs)")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"GLUE tasks (default: {','.join(TASKS)})")
    p.add_argument("--rows", default=",".join(ROWS), help=f"which rows (default: {','.join(ROWS)})")
    p.add_argument("--reference", type=Path, help="a local Hugging Face BERT directory to fine-tune as a reference")
    p.add_argument("--corpus", type=Path, help="a JSONL corpus (default: the Python documentation, 10.0 MB)")
    p.add_argument("--model", default="bert-mini", help="bertpt model preset for every row (default: bert-mini)")
    p.add_argument("--deepspeed_config", default="ds_configs/zero0.json", help="bertpt's preset; its hyper-parameters")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads per row (all cores)")
    p.add_argument(
        "--finetune_threads",
        type=int,
        help="threads of the evaluation and fine-tuning (default: --threads); pretraining rows always use --threads",
    )
    p.add_argument("--calibration_steps", type=int, default=20, help="steps of each row's calibration run")
    p.add_argument("--vocab_size", type=int, default=30522, help="the WordPiece vocabulary to train (default: BERT's)")
    p.add_argument("--eval_instances", type=int, default=2048, help="held-out instances scored (default: 2048)")
    p.add_argument("--learning_rate", type=float, help="fine-tuning learning rate (default: bertpt-finetune's)")
    p.add_argument("--epochs", type=float, help="fine-tuning epochs (default: bertpt-finetune's)")
    p.add_argument("--seed", type=int, default=42, help="pretraining seed, held-out masks")
    p.add_argument(
        "--quick",
        action="store_true",
        help="check it end to end in minutes: 250 KB of corpus, 20 s per row, 1 seed, 100 train and 200 evaluation "
        "examples per task",
    )
    a = p.parse_args(argv)
    rows = tuple(x for x in a.rows.split(",") if x)
    unknown = [x for x in rows if x not in ROWS]
    if unknown:
        raise BertptError(f"--rows {','.join(unknown)}: unknown; the rows are {','.join(ROWS)}")
    cfg = Config(
        out=a.out, glue_dir=a.glue_dir, minutes=a.minutes, seeds=a.seeds,
        sst2_max_train_samples=a.sst2_max_train_samples, max_train_samples=a.max_train_samples,
        tasks=tuple(t for t in a.tasks.split(",") if t), rows=rows,
        reference=a.reference, corpus=a.corpus, model=a.model, deepspeed_config=a.deepspeed_config, threads=a.threads,
        finetune_threads=a.finetune_threads,
        calibration_steps=a.calibration_steps, vocab_size=a.vocab_size, eval_instances=a.eval_instances,
        learning_rate=a.learning_rate, epochs=a.epochs, seed=a.seed, quick=a.quick,
    )  # fmt: skip
    if a.quick:
        cfg.minutes, cfg.seeds, cfg.max_train_samples, cfg.corpus_bytes = 20 / 60, 1, 100, 250_000
        cfg.calibration_steps, cfg.vocab_size, cfg.eval_instances = 6, 8000, 256
        cfg.sst2_max_train_samples, cfg.max_eval_samples = 100, 200
    return cfg


def main(argv: list[str] | None = None) -> None:
    with exit_on_error("benchmarks.time_to_quality"):
        benchmark(parse_args(argv))


if __name__ == "__main__":
    main()
