"""The DeepSpeed engine for bertpt's model, built one way for training (pretrain.py) and the benchmark (bertpt.bench).

    check_ds_config(ds_config, ds_path)   # before anything expensive: the JSON, judged by DeepSpeed itself
    engine = build_engine(model, ds_config)
    precision_name(engine)                # "bf16", "fp16 (dynamic loss scaling)" or "fp32"

DeepSpeed is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import torch

from bertpt.errors import BertptError, one_line
from bertpt.optim import lamb_fallback


def check_ds_config(ds_config: dict, ds_path: str) -> None:
    """Let DeepSpeed's own parser and accelerator judge the JSON now, and say what is wrong in one line.

    `ds_config` is the loaded JSON (bertpt.config.load_ds_config), `ds_path` its file, named in the messages.
    Raises BertptError for a precision this accelerator lacks (DeepSpeed's accelerator.is_fp16_supported /
    is_bf16_supported), for an "activation_checkpointing" section (DeepSpeed's own API, which bertpt's model
    does not call), and for anything deepspeed.runtime.config.DeepSpeedConfig rejects (e.g. batch sizes that
    do not multiply out).
    """
    from deepspeed.accelerator import get_accelerator
    from deepspeed.runtime.config import DeepSpeedConfig

    acc = get_accelerator()
    for precision, supported in (("fp16", acc.is_fp16_supported), ("bf16", lambda: native_bf16(acc))):
        if (ds_config.get(precision) or {}).get("enabled") and not supported():
            raise BertptError(
                f"--deepspeed_config {ds_path} enables {precision}, which this accelerator "
                f"({acc.device_name()}) does not support natively; use a preset with another precision "
                "(ds_configs/zero2.json is bf16, zero2_fp16.json fp16, zero2_fp32.json fp32) or remove the "
                "section for fp32"
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


def native_bf16(acc) -> bool:
    """Whether the DeepSpeed accelerator `acc` computes in bf16 natively.

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


def build_engine(model: torch.nn.Module, ds_config: dict):
    """deepspeed.initialize on `model` with BERT's parameter groups and the JSON's optimizer.

    `ds_config`: the DeepSpeed config as a dict (checked with check_ds_config first). The optimizer is the
    JSON's; where it asks for LAMB and DeepSpeed's FusedLamb kernel cannot load, bertpt.optim.Lamb (same
    arithmetic) via bertpt.optim.lamb_fallback. ZeRO-3 partitions the model's parameters here, so count them
    before. Returns the DeepSpeedEngine (the rest of deepspeed.initialize's tuple is not needed: the engine
    steps its optimizer and scheduler itself).
    """
    import deepspeed

    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=param_groups(model), config=ds_config, optimizer=lamb_fallback(ds_config)
    )
    return engine


def precision_name(engine) -> str:
    """The engine's training precision for messages: "fp16 (dynamic loss scaling)", "bf16" or "fp32".

    Its first word is the key of bertpt.flops.peak_tflops' table.
    """
    return "fp16 (dynamic loss scaling)" if engine.fp16_enabled() else "bf16" if engine.bfloat16_enabled() else "fp32"
