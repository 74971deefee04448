"""bertpt.engine: the DeepSpeed JSON judged before anything expensive, parameter groups."""

from __future__ import annotations

import json

import pytest
import torch
from deepspeed.accelerator import get_accelerator

from bertpt.engine import check_ds_config, native_bf16, param_groups
from bertpt.errors import BertptError
from bertpt.model import BertForPreTraining, bert_config

from tests.helpers import REPO


def preset(name: str) -> dict:
    return json.loads((REPO / "ds_configs" / f"{name}.json").read_text())


def test_bf16_is_refused_exactly_where_onednn_has_no_native_bf16():
    acc = get_accelerator()
    assert native_bf16(acc) == (acc.device_name() != "cpu" or torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if native_bf16(acc):
        check_ds_config(preset("zero2"), "ds_configs/zero2.json")
    else:
        with pytest.raises(
            BertptError,
            match=r"enables bf16, which this accelerator \(cpu\) does not support natively.*"
            r"zero2_fp32\.json fp32",
        ):
            check_ds_config(preset("zero2"), "ds_configs/zero2.json")
    check_ds_config(preset("zero2_fp32"), "ds_configs/zero2_fp32.json")  # fp32 runs everywhere


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
