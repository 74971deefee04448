"""The DeepSpeed engine for bertpt's model, built one way for training (pretrain.py) and the benchmark (bertpt.bench).

    check_ds_config(ds_config, ds_path)   # before anything expensive: the JSON, judged by DeepSpeed itself
    native_bf16(get_accelerator())        # what "bf16": {"enabled": "auto"} resolves to (bertpt.config.resolve_auto)
    engine = build_engine(model, ds_config)
    precision_name(engine)                # "bf16", "fp16 (dynamic loss scaling)" or "fp32"

DeepSpeed is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from bertpt.errors import BertptError, is_rank0, one_line
from bertpt.monitor import without_monitors
from bertpt.optim import lamb_fallback


def check_ds_config(ds_config: dict, ds_path: str) -> None:
    """Let DeepSpeed's own parser and accelerator judge the JSON now, and say what is wrong in one line.

    `ds_config` is the loaded JSON (bertpt.config.load_ds_config), `ds_path` its file, named in the messages.
    Raises BertptError for fp16 where this accelerator lacks it (DeepSpeed's accelerator.is_fp16_supported),
    for an "activation_checkpointing" section (DeepSpeed's own API, which bertpt's model does not call), and
    for anything deepspeed.runtime.config.DeepSpeedConfig rejects (e.g. batch sizes that do not multiply out).
    An explicit bf16 on a CPU without native bf16 is allowed (it trains, slowly): rank 0 prints one warning
    line naming the fast alternative, "enabled": "auto" (which resolves to fp32 there).
    """
    from deepspeed.accelerator import get_accelerator
    from deepspeed.runtime.config import DeepSpeedConfig

    acc = get_accelerator()
    if (ds_config.get("fp16") or {}).get("enabled") and not acc.is_fp16_supported():
        raise BertptError(
            f"--deepspeed_config {ds_path} enables fp16, which this accelerator ({acc.device_name()}) does not "
            'support natively; use a preset with another precision (ds_configs/zero2.json: bf16 "auto", bf16 '
            "where it is native and fp32 elsewhere) or remove the section for fp32"
        )
    if (ds_config.get("bf16") or {}).get("enabled") is True and not native_bf16(acc) and is_rank0():
        print(
            f"bertpt: warning: --deepspeed_config {ds_path} enables bf16, which this {acc.device_name()} emulates "
            f"({BF16_EMULATED}); expect a step about 50x slower than fp32. For the fast choice write "
            '"bf16": {"enabled": "auto"} (fp32 here, bf16 where native), as ds_configs/zero2.json does',
            flush=True,
        )
    if "activation_checkpointing" in ds_config:
        raise BertptError(
            f'--deepspeed_config {ds_path} has an "activation_checkpointing" section, which configures '
            "DeepSpeed's own checkpointing API; bertpt's model does not call it, so the section would "
            "do nothing. Remove it and pass --activation_checkpointing instead"
        )
    try:
        DeepSpeedConfig(ds_config)
    except Exception as e:  # noqa: BLE001 -- assertion, pydantic and value errors alike
        msg = one_line(e)
        hint = (
            (
                "; leave train_batch_size out and set train_micro_batch_size_per_gpu and gradient_accumulation_steps, "
                "so the global batch follows the world size"
            )
            if "batch" in msg.lower()
            else ""
        )
        raise BertptError(f"--deepspeed_config {ds_path}: {msg}{hint}") from None


BF16_EMULATED = "no AVX-512-bf16 or AMX: oneDNN's reference path"


def native_bf16(acc) -> bool:
    """Whether the DeepSpeed accelerator `acc` computes in bf16 natively: what "bf16": {"enabled": "auto"} means.

    DeepSpeed's CPU accelerator answers True for every CPU (deepspeed 0.19.8, cpu_accelerator.py
    `is_bf16_supported`), while for fp16 it asks oneDNN (`torch.ops.mkldnn._is_mkldnn_fp16_supported`).
    bertpt asks oneDNN for bf16 the same way: a CPU without AVX-512 or AMX (AVX2 only) runs bf16
    matrix products in a reference path, measured here about 50x slower than fp32 (docs/performance.md),
    which is not a precision anyone would choose. Other accelerators: DeepSpeed's answer."""
    if acc.device_name() != "cpu":
        return bool(acc.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN: DeepSpeed's answer
        return bool(acc.is_bf16_supported())


def bf16_auto_reason(acc, native: bool) -> str:
    """Why "bf16": {"enabled": "auto"} became what it did on `acc`, for the run's banner, e.g.
    'bf16 "auto" -> false: this cpu has no native bf16 (no AVX-512-bf16 or AMX: ...), fp32 is ~50x faster'."""
    device = acc.device_name()
    if native:
        return f'bf16 "auto" -> true: {device} computes bf16 natively'
    if device == "cpu":
        return f'bf16 "auto" -> false: this cpu has no native bf16 ({BF16_EMULATED}), fp32 is ~50x faster'
    return f'bf16 "auto" -> false: {device} does not support bf16'


def param_groups(model: torch.nn.Module) -> list[dict]:
    """BERT's rule: no weight decay on biases and LayerNorm weights; the decay value itself is the JSON's.

    Source: Google's BERT optimization.py, AdamWeightDecayOptimizer(exclude_from_weight_decay=["LayerNorm",
    "layer_norm", "bias"]). Returns two torch.optim parameter groups: [decayed, not decayed (weight_decay 0.0)].
    A shared (tied) parameter appears once.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # shared (tied) parameters appear once
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_deepspeed_log_level(level: str) -> None:
    """DeepSpeed's logger (deepspeed.utils.logging.logger) and its handlers at `level` ("warning", "info",
    "debug"), with DeepSpeed's own deepspeed.utils.logging.set_log_level_from_string. A "log_level" in the
    DeepSpeed JSON takes over when deepspeed.initialize reads it."""
    from deepspeed.utils.logging import set_log_level_from_string

    set_log_level_from_string(level)


class SchedulerStartWarning(logging.Filter):
    """Drops "Attempting to get learning rate from scheduler before it has started": deepspeed 0.19.8's
    WarmupLR/WarmupDecayLR constructors (runtime/lr_schedules.py) call their own get_lr() before step 0 to
    set the initial learning rate, and warn about themselves. bertpt reads the learning rate only after
    optimizer steps, so the line never says anything about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "before it has started" not in record.getMessage()


def build_engine(model: torch.nn.Module, ds_config: dict):
    """deepspeed.initialize on `model` with BERT's parameter groups and the JSON's optimizer.

    `ds_config`: the DeepSpeed config as a dict (checked with check_ds_config first). The optimizer is the
    JSON's; where it asks for LAMB and DeepSpeed's FusedLamb kernel cannot load, bertpt.optim.Lamb (same
    arithmetic) via bertpt.optim.lamb_fallback. ZeRO-3 partitions the model's parameters here, so count them
    before. The engine gets the JSON without its monitor sections: bertpt writes them (bertpt.monitor says
    why), so engine.monitor stays disabled. Returns the DeepSpeedEngine (the rest of deepspeed.initialize's
    tuple is not needed: the engine steps its optimizer and scheduler itself).
    """
    import deepspeed
    from deepspeed.utils.logging import logger

    note = jit_build_note(ds_config)
    if note and is_rank0():
        print(f"bertpt: {note}", flush=True)
    quiet = SchedulerStartWarning()
    logger.addFilter(quiet)
    try:
        engine, *_ = deepspeed.initialize(
            model=model,
            model_parameters=param_groups(model),
            config=without_monitors(ds_config),
            optimizer=lamb_fallback(ds_config),
        )
    finally:
        logger.removeFilter(quiet)
    return engine


def jit_build_note(ds_config: dict, build_root: str | None = None) -> str | None:
    """What to say before deepspeed.initialize compiles an op, else None. With the optimizer offloaded to
    the CPU (zero_optimization.offload_optimizer.device "cpu" or "nvme") DeepSpeed uses DeepSpeedCPUAdam,
    whose C++ op (cpu_adam) is JIT-compiled into torch's extensions directory (`build_root`, default
    TORCH_EXTENSIONS_DIR or torch.utils.cpp_extension.get_default_build_root()) on its first use on a
    machine: about a minute of silence on a 2-core CPU."""
    offload = ((ds_config.get("zero_optimization") or {}).get("offload_optimizer") or {}).get("device")
    if offload not in ("cpu", "nvme"):
        return None
    if build_root is None:
        from torch.utils.cpp_extension import get_default_build_root

        build_root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    if any(Path(build_root).glob("*/cpu_adam/cpu_adam*.so")) or any(Path(build_root).glob("cpu_adam/cpu_adam*.so")):
        return None
    return (
        f"DeepSpeed is compiling its CPU Adam op for the offloaded optimizer into {build_root} "
        "(once per machine, about a minute on 2 cores)"
    )


def precision_name(engine) -> str:
    """The engine's training precision for messages: "fp16 (dynamic loss scaling)", "bf16" or "fp32".

    Its first word is the key of bertpt.flops.peak_tflops' table.
    """
    return "fp16 (dynamic loss scaling)" if engine.fp16_enabled() else "bf16" if engine.bfloat16_enabled() else "fp32"
