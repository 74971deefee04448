"""Configuration: what bertpt owns, parsed from CLI flags, and the DeepSpeed JSON it does not.

Two sources that never overlap:
1. The DeepSpeed JSON (`--deepspeed_config`) owns optimizer, LR schedule, precision, ZeRO,
   clipping and batch sizes. We pass it to `deepspeed.initialize` and read values back from the
   engine. The only thing we do to it is fill in the values marked "auto" (see `resolve_auto`).
2. `PretrainConfig` owns everything else. Its field help strings are the `--help` text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertpt import cli
from bertpt.cli import arg as _arg
from bertpt.errors import BertptError
from bertpt.monitor import AUTO_PATHS

DEFAULT_MODEL = "bert-mini"
LOG_LEVELS = ("warning", "info", "debug")


@dataclass
class PretrainConfig:
    """Everything about a pretraining run that the DeepSpeed JSON does not own."""

    data: str | None = _arg(
        None,
        "Prepared data directory (the --output_dir of bertpt-prepare). Default: the built-in demo "
        "corpus, the English documentation text shipped with Python itself, prepared automatically "
        "on first use into ~/.cache/bertpt.",
    )
    output_dir: str = _arg(
        "runs/bertpt",
        "Run directory: checkpoints/ (DeepSpeed sharded checkpoints), metrics.jsonl, hf/ (the final Hugging Face "
        'export) and the dashboards whose DeepSpeed JSON output_path is "auto" (tb/: TensorBoard, csv/: CSV '
        "monitor; wandb/: W&B's local files) are written here.",
    )
    model: str | None = _arg(
        None,
        "Model size: a preset (bert-tiny, bert-mini, bert-small, bert-medium, bert-base, bert-large) "
        "or the path of a transformers BertConfig JSON. The vocabulary size always comes from the "
        f"data's tokenizer. Default: {DEFAULT_MODEL} for a fresh run; with --init_from, the source's own "
        "configuration (its config.json).",
    )
    max_steps: int = _arg(500, "Total optimizer steps. A resumed run continues up to this number.")
    steps_this_run: int = _arg(
        0,
        "Stop after this many steps of this run, with a checkpoint, even if --max_steps is not reached "
        "(for time-limited jobs that resume; the LR schedule still spans --max_steps). 0: run to --max_steps.",
    )
    save_steps: int = _arg(
        1000, "Save a checkpoint every N optimizer steps (0: only at the end). One is always saved at the end."
    )
    save_minutes: float = _arg(
        0,
        "Also save a checkpoint when this many minutes passed since the last save, whichever of "
        "--save_steps and --save_minutes comes first (0: off).",
    )
    keep_last: int = _arg(0, "Keep only the newest K checkpoints, deleting older ones after each save (0: keep all).")
    eval_steps: int = _arg(
        100,
        "Evaluate MLM/NSP loss and accuracy on the held-out split every N steps (0: never; the "
        "end of training always evaluates).",
    )
    eval_samples: int = _arg(1024, "Held-out instances used per evaluation (fewer if the validation split is smaller).")
    log_steps: int = _arg(
        10, "Log training metrics to the console and the dashboards (TensorBoard, W&B, ...) every N steps."
    )
    seed: int = _arg(42, "Seed for model initialisation, data order, masking and dropout.")
    resume: str = _arg(
        "auto",
        "auto: continue from <output_dir>/checkpoints if it holds one, else start fresh. none: "
        "start fresh (refuses if <output_dir> already holds checkpoints, so nothing is "
        "overwritten). PATH: continue from that checkpoint directory (or one tag inside it).",
    )
    init_from: str | None = _arg(
        None,
        "Start this run from existing weights, with a fresh optimizer, LR schedule and step 0: a Hugging "
        "Face BERT directory (continued pretraining; heads it lacks are freshly initialised) or a bertpt "
        "checkpoint (a run's checkpoints directory or one tag inside it: phase 2 from phase 1). Shapes "
        "must match --model and the data's tokenizer. Ignored when there is a checkpoint to resume.",
    )
    rendezvous_timeout: float = _arg(
        300,
        "Seconds a rank waits for rank 0's rendezvous (MASTER_ADDR:MASTER_PORT) to answer before it stops "
        "with an error naming the address, instead of hanging.",
    )
    collective_timeout_minutes: float = _arg(
        30,
        "Minutes a collective (all-reduce, barrier) may wait for the other ranks before torch.distributed "
        "stops the run with an error. Long enough for checkpoint saves and conversions that ranks wait for "
        "at a barrier; raise it on large clusters or for long universal-checkpoint conversions.",
    )
    log_level: str = _arg(
        "warning",
        "DeepSpeed's own log level (its logger, deepspeed.utils.logging.logger): warning (default) shows only "
        "what may need action, info and debug bring back its start-up and configuration lines. bertpt's "
        'own lines always show. A "log_level" in the DeepSpeed JSON takes over once the engine starts.',
        choices=list(LOG_LEVELS),
    )
    num_workers: int = _arg(
        1, "DataLoader worker processes per rank that collate and mask batches (0: in the training process)."
    )
    activation_checkpointing: bool = _arg(
        False,
        "Recompute each encoder layer's activations in the backward pass instead of keeping them "
        "(torch.utils.checkpoint): about a third more compute for a fraction of the activation memory, "
        "for large models and long sequences. The same losses and gradients (dropout masks are replayed). "
        "bertpt's model does not use DeepSpeed's checkpointing API, so a DeepSpeed JSON "
        '"activation_checkpointing" section is refused in favour of this flag.',
    )
    masked_lm_prob: float | None = _arg(
        None,
        "Fraction of each instance's tokens that are masked and predicted (BERT: 0.15; MosaicBERT found 0.3 "
        "better). Default: the value the data was prepared with. Without --max_predictions_per_seq the cap "
        "becomes ceil(masked_lm_prob x max_seq_length), so a full-length instance is never clipped. Dynamic "
        "masking only: statically masked data refuses it.",
    )
    max_predictions_per_seq: int | None = _arg(
        None,
        "Most masked positions per instance. Default: the data's, or ceil(masked_lm_prob x max_seq_length) "
        "when --masked_lm_prob is given. Dynamic masking only.",
    )
    whole_word_mask: bool | None = _arg(
        None,
        "Mask whole words (true/false): a ## WordPiece is masked with the word it continues. Default: as the "
        "data was prepared. Dynamic masking only.",
    )
    on_divergence: str = _arg(
        "stop",
        "What a divergence does (a non-finite loss on any rank; with fp16 also the loss scale at its "
        "min_loss_scale, or more than --max_skipped_steps skipped steps in a row); nothing of the diverged "
        "step is ever saved. stop: end with one line naming the step and the last good checkpoint, export "
        "that one to <output_dir>/hf, exit with status 3. rollback: reload the last good checkpoint, skip the "
        "samples consumed since it (recorded in the checkpoint) and continue, at most --max_rollbacks times.",
        choices=["stop", "rollback"],
    )
    max_rollbacks: int = _arg(
        3, "With --on_divergence rollback: the most rollbacks in a run's history, then it stops as with stop."
    )
    max_skipped_steps: int = _arg(
        20,
        "A divergence when more than this many consecutive optimizer steps were skipped for overflowing "
        "gradients (DeepSpeed's skipped steps; 0: never). 20 is above the 17 overflows in a row DeepSpeed's "
        "default fp16 scaler (2^16 down to 1, hysteresis 2) can need at its start.",
    )
    loss_spike_factor: float = _arg(
        2.0,
        "Warn (one line, TensorBoard divergence/loss_spike) when a logged train loss exceeds this factor times "
        "the mean of the last 10 logged ones (0: off). 2: a logged loss is a mean over --log_steps steps, "
        "whose noise is far below a doubling, while the spikes that precede a divergence double it or more.",
    )
    peak_tflops: float = _arg(
        0,
        "Peak TFLOPS of one device at the training precision, for the MFU shown in the log and "
        "TensorBoard. 0: from bertpt's table of known accelerators (H100, H200, A100, V100, A10, L4, "
        "MI250, MI300; see bertpt/flops.py); on CPUs and unknown devices MFU is then not shown.",
    )

    def validate(self) -> None:
        cli.refuse_nan(self)
        for name in ("max_steps", "log_steps"):
            if getattr(self, name) < 1:
                raise BertptError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        for name in (
            "steps_this_run",
            "save_steps",
            "save_minutes",
            "keep_last",
            "eval_steps",
            "eval_samples",
            "num_workers",
            "max_rollbacks",
            "max_skipped_steps",
            "loss_spike_factor",
        ):
            if getattr(self, name) < 0:
                raise BertptError(f"--{name} must be 0 or more (got {getattr(self, name)})")
        if self.masked_lm_prob is not None and not 0.0 < self.masked_lm_prob < 1.0:
            raise BertptError(f"--masked_lm_prob must be in (0, 1) (got {self.masked_lm_prob})")
        if self.max_predictions_per_seq is not None and self.max_predictions_per_seq < 1:
            raise BertptError(f"--max_predictions_per_seq must be at least 1 (got {self.max_predictions_per_seq})")
        if self.on_divergence not in ("stop", "rollback"):
            raise BertptError(f"--on_divergence must be stop or rollback (got {self.on_divergence})")
        if 0 < self.loss_spike_factor <= 1:
            raise BertptError(f"--loss_spike_factor must be above 1, or 0 for off (got {self.loss_spike_factor})")
        if self.peak_tflops < 0:
            raise BertptError(f"--peak_tflops must be 0 (auto) or positive (got {self.peak_tflops})")
        if not 0 < self.collective_timeout_minutes < math.inf:  # a timedelta: inf does not fit
            raise BertptError(
                f"--collective_timeout_minutes must be positive and finite (got {self.collective_timeout_minutes})"
            )
        if self.rendezvous_timeout <= 0:
            raise BertptError(f"--rendezvous_timeout must be positive (got {self.rendezvous_timeout})")
        if self.resume not in ("auto", "none") and not Path(self.resume).exists():
            raise BertptError(
                f"--resume {self.resume}: no such checkpoint directory; pass a directory that holds bertpt "
                "checkpoints (a run's output or checkpoints directory, or one step_* tag), 'auto' or 'none'"
            )
        if self.init_from is not None and not Path(self.init_from).is_dir():
            raise BertptError(
                f"--init_from {self.init_from}: no such directory; pass a Hugging Face BERT directory "
                "(config.json + model.safetensors) or a bertpt checkpoints directory"
            )
        if self.data is not None and not Path(self.data).is_dir():
            raise BertptError(
                f"--data {self.data}: no such directory; prepare one with "
                f"`bertpt-prepare YOUR_TEXT --output_dir {self.data}`"
            )


def parse_args(argv: list[str] | None = None) -> tuple[PretrainConfig, str]:
    """Parse CLI flags into (PretrainConfig, DeepSpeed JSON path). Raises BertptError: an unknown flag
    (naming the closest valid one), no --deepspeed_config, a config that fails PretrainConfig.validate."""
    import deepspeed
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        PretrainConfig,
        **cli.parser_options("bertpt-pretrain"),
        description=(
            "Pretrain BERT (masked-language modelling + next-sentence prediction) with DeepSpeed. "
            "Optimizer, LR schedule, precision, ZeRO stage, clipping and batch sizes come from the "
            "DeepSpeed JSON alone (see ds_configs/)."
        ),
    )
    parser = deepspeed.add_config_arguments(parser)
    # The deepspeed launcher passes --local_rank; we read LOCAL_RANK from the environment instead.
    parser.add_argument("--local_rank", type=int, default=None, help="Set by the deepspeed launcher; ignored.")
    cfg, ns = cli.parse(parser, argv)
    ds_path = ns.deepspeed_config or ns.deepscale_config
    if not ds_path:
        raise BertptError(
            "--deepspeed_config is required, e.g. --deepspeed_config ds_configs/zero2.json "
            "(the presets in ds_configs/ are described in the README)"
        )
    cfg.validate()
    return cfg, ds_path


# ---------------------------------------------------------------------------------------------
# The DeepSpeed JSON


def read_ds_json(path: str) -> dict:
    """The DeepSpeed JSON at `path` as written ("auto" values unresolved). Raises BertptError: missing file,
    invalid JSON, not an object."""
    p = Path(path)
    if not p.is_file():
        raise BertptError(f"--deepspeed_config {path}: no such file (presets are in ds_configs/)")
    try:
        cfg = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BertptError(f"--deepspeed_config {path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise BertptError(f"--deepspeed_config {path}: expected a JSON object at the top level")
    return cfg


def load_ds_config(
    path: str, max_steps: int, bf16_native: bool | None = None, output_dir: str | Path | None = None
) -> dict:
    """Read a DeepSpeed JSON and fill in its "auto" values (`resolve_auto`); everything else is left untouched."""
    return resolve_auto(read_ds_json(path), max_steps, bf16_native, output_dir)


def bf16_is_auto(cfg: dict) -> bool:
    """Whether the (unresolved) DeepSpeed JSON says "bf16": {"enabled": "auto"}."""
    return (cfg.get("bf16") or {}).get("enabled") == "auto"


def auto_warmup_steps(max_steps: int) -> int:
    """BERT warmed up for 10k of 1M steps; short runs warm up for 10% of their length."""
    return max(1, min(10_000, max_steps // 10))


# The monitor sections' "auto" output paths are subdirectories of the run's --output_dir (bertpt.monitor.AUTO_PATHS).
# DeepSpeed appends the section's job_name (deepspeed/monitor/tensorboard.py, csv_monitor.py), so TensorBoard
# writes to <output_dir>/tb/<job_name>, which `tensorboard --logdir <output_dir>/tb` shows as the run <job_name>.


def resolve_auto(
    cfg: dict, max_steps: int, bf16_native: bool | None = None, output_dir: str | Path | None = None
) -> dict:
    """Fill the values that depend on the run or the machine, where the JSON says "auto".

    The same convention as Hugging Face's DeepSpeed integration (transformers' HfTrainerDeepSpeedConfig,
    which fills "auto" from the Trainer's arguments), limited to values that cannot be known when the
    JSON is written:
      scheduler.params.total_num_steps = --max_steps
      scheduler.params.warmup_num_steps = min(10000, max_steps // 10)
      scheduler.params.warmup_max_lr = optimizer.params.lr
      bf16.enabled = whether this accelerator computes bf16 natively (`bf16_native`; None: ask
        bertpt.engine.native_bf16 of DeepSpeed's accelerator): a GPU with bf16, a CPU with AVX-512-bf16 or
        AMX. Elsewhere bf16 is emulated (~50x slower than fp32 on an AVX2-only CPU), so "auto" means fp32.
      tensorboard.output_path = <output_dir>/tb, csv_monitor.output_path = <output_dir>/csv (DeepSpeed's
        monitor sections; `output_dir` None, for callers that write no monitor: left "auto")
    Any other "auto" is an error, so a value never silently changes meaning. Returns a new dict.
    """
    cfg = json.loads(json.dumps(cfg))  # deep copy; the caller's dict stays as read
    params = (cfg.get("scheduler") or {}).get("params") or {}
    fill = {
        "total_num_steps": max_steps,
        "warmup_num_steps": auto_warmup_steps(max_steps),
        "warmup_max_lr": ((cfg.get("optimizer") or {}).get("params") or {}).get("lr"),
    }
    for key, value in list(params.items()):
        if value == "auto":
            if fill.get(key) is None:
                raise BertptError(
                    f'DeepSpeed JSON: scheduler.params.{key} is "auto" but bertpt cannot derive it; write a number'
                )
            params[key] = fill[key]
    if bf16_is_auto(cfg):
        if bf16_native is None:
            from deepspeed.accelerator import get_accelerator

            from bertpt.engine import native_bf16

            bf16_native = native_bf16(get_accelerator())
        cfg["bf16"]["enabled"] = bool(bf16_native)
    monitor_auto = set()
    for section, subdir in AUTO_PATHS.items():
        if isinstance(cfg.get(section), dict) and cfg[section].get("output_path") == "auto":
            if output_dir is None:
                monitor_auto.add(f"{section}.output_path")
            else:
                cfg[section]["output_path"] = str(Path(output_dir) / subdir)

    def reject_auto(node: Any, where: str) -> None:
        if node == "auto" and where not in monitor_auto:
            raise BertptError(
                f'DeepSpeed JSON: {where} is "auto"; only bf16.enabled, scheduler.params.total_num_steps, '
                'warmup_num_steps and warmup_max_lr, tensorboard.output_path and csv_monitor.output_path may be "auto"'
            )
        if isinstance(node, dict):
            for k, v in node.items():
                reject_auto(v, f"{where}.{k}" if where else k)

    reject_auto(cfg, "")
    return cfg
