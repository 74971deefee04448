"""bertpt.engine: the DeepSpeed JSON judged before anything expensive, parameter groups."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from deepspeed.accelerator import get_accelerator

from bertpt.config import resolve_auto
from bertpt.engine import (
    SchedulerStartWarning,
    bf16_auto_reason,
    check_ds_config,
    native_bf16,
    param_groups,
    set_deepspeed_log_level,
)
from bertpt.errors import BertptError
from bertpt.model import BertForPreTraining, bert_config

from tests.helpers import REPO


def preset(name: str) -> dict:
    return json.loads((REPO / "ds_configs" / f"{name}.json").read_text())


def test_native_bf16_is_onednns_answer_on_cpu():
    acc = get_accelerator()
    assert native_bf16(acc) == (acc.device_name() != "cpu" or torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.parametrize("name", ["zero0", "zero1", "zero2", "zero3", "zero0_lamb", "zero3_offload"])
def test_the_bf16_presets_say_auto_and_resolve_to_the_hardware(name):
    """bf16 "auto" (transformers' HfTrainerDeepSpeedConfig convention): bf16 where native, fp32 elsewhere,
    and DeepSpeed's own parser accepts the result on this machine."""
    raw = preset(name)
    assert raw["bf16"] == {"enabled": "auto"}
    native = native_bf16(get_accelerator())
    resolved = resolve_auto(raw, max_steps=100)
    assert resolved["bf16"] == {"enabled": native}
    assert resolve_auto(raw, 100, bf16_native=True)["bf16"]["enabled"] is True
    assert resolve_auto(raw, 100, bf16_native=False)["bf16"]["enabled"] is False
    check_ds_config(resolved, f"ds_configs/{name}.json")


def test_the_banner_says_why_auto_chose_its_precision():
    acc = get_accelerator()
    assert bf16_auto_reason(acc, True) == f'bf16 "auto" -> true: {acc.device_name()} computes bf16 natively'
    if acc.device_name() == "cpu":
        assert bf16_auto_reason(acc, False) == (
            'bf16 "auto" -> false: this cpu has no native bf16 (no AVX-512-bf16 or AMX: oneDNN\'s reference '
            "path), fp32 is ~50x faster"
        )


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_explicit_bf16_is_one_warning_where_it_is_emulated_not_a_refusal(name, capsys):
    cfg = {**preset(name), "bf16": {"enabled": True}}
    cfg = resolve_auto(cfg, 100)
    check_ds_config(cfg, "my.json")  # never raises: bf16 trains everywhere, slowly where emulated
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    if native_bf16(get_accelerator()):
        assert lines == []
    else:
        assert len(lines) == 1 and lines[0].startswith("bertpt: warning: --deepspeed_config my.json enables bf16")
        assert "about 50x slower than fp32" in lines[0] and '"bf16": {"enabled": "auto"}' in lines[0]
    check_ds_config({**cfg, "bf16": {"enabled": False}}, "my.json")
    assert capsys.readouterr().out == ""


def test_fp16_where_the_accelerator_lacks_it_is_still_refused():
    cfg = {**preset("zero2_fp16")}
    if get_accelerator().is_fp16_supported():
        check_ds_config(cfg, "ds_configs/zero2_fp16.json")
    else:
        with pytest.raises(BertptError, match=r"enables fp16, which this accelerator \(cpu\) does not support"):
            check_ds_config(cfg, "ds_configs/zero2_fp16.json")


def test_the_scheduler_start_warning_is_dropped_and_nothing_else():
    """The warning comes from DeepSpeed's own WarmupDecayLR constructor (it calls get_lr before step 0),
    not from bertpt; build_engine's filter drops that line and lets other warnings through."""
    from deepspeed.runtime.lr_schedules import WarmupDecayLR
    from deepspeed.utils.logging import logger

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    keep, quiet = Keep(logging.WARNING), SchedulerStartWarning()
    logger.addHandler(keep)
    try:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
        WarmupDecayLR(optimizer, total_num_steps=10, warmup_num_steps=2)
        assert seen == ["Attempting to get learning rate from scheduler before it has started"]
        logger.addFilter(quiet)
        WarmupDecayLR(optimizer, total_num_steps=10, warmup_num_steps=2)
        logger.warning("OVERFLOW! Skipping step")
        assert seen[1:] == ["OVERFLOW! Skipping step"]
    finally:
        logger.removeFilter(quiet)
        logger.removeHandler(keep)


def test_deepspeed_log_level_follows_the_flag():
    from deepspeed.utils.logging import logger

    before = logger.level
    try:
        for level, value in (("warning", logging.WARNING), ("info", logging.INFO), ("debug", logging.DEBUG)):
            set_deepspeed_log_level(level)
            assert logger.level == value and all(h.level == value for h in logger.handlers)
    finally:
        logger.setLevel(before)


def test_the_fp32_preset_is_the_default_preset_without_bf16():
    fp32, bf16 = preset("zero2_fp32"), preset("zero2")
    assert "bf16" not in fp32 and "fp16" not in fp32
    assert fp32 == {k: v for k, v in bf16.items() if k != "bf16"}


def test_batch_sizes_that_do_not_multiply_out_are_one_line():
    cfg = {**preset("zero2_fp32"), "train_batch_size": 64}
    with pytest.raises(BertptError, match="leave train_batch_size out"):
        check_ds_config(cfg, "x.json")


def test_no_weight_decay_on_biases_and_layernorm():
    model = BertForPreTraining(bert_config("bert-tiny", 100))
    decay, no_decay = param_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert no_decay["weight_decay"] == 0.0 and "weight_decay" not in decay
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert not any(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_the_cpu_adam_build_is_announced_only_when_it_will_happen(tmp_path):
    from bertpt.engine import jit_build_note

    offload = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}
    assert jit_build_note({"zero_optimization": {"stage": 2}}, str(tmp_path)) is None  # no offload: no op
    note = jit_build_note(offload, str(tmp_path))
    assert note.startswith("DeepSpeed is compiling its CPU Adam op") and str(tmp_path) in note
    built = tmp_path / "py311_cpu" / "cpu_adam"
    built.mkdir(parents=True)
    (built / "cpu_adam.so").write_bytes(b"")  # what a finished build leaves
    assert jit_build_note(offload, str(tmp_path)) is None
