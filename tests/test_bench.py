"""bertpt.bench.throughput without training: flags, the DeepSpeed JSON it derives, its inputs (the runs: tests/e2e)."""

from __future__ import annotations

import pytest
import torch

from bertpt.bench.throughput import bench_ds_config, make_batches, parse_args
from bertpt.errors import BertptError


def test_json_overrides_are_batch_and_precision_only():
    from deepspeed.accelerator import get_accelerator

    from bertpt.engine import native_bf16

    bc = parse_args(["--deepspeed_config", "ds_configs/zero2.json"])
    cfg, precision, path = bench_ds_config(bc)
    # the preset says bf16 "auto": bf16 where this machine computes it natively, fp32 elsewhere
    assert precision == ("bf16" if native_bf16(get_accelerator()) else "fp32") and path.endswith(
        "ds_configs/zero2.json"
    )
    assert cfg["train_micro_batch_size_per_gpu"] == bc.micro_batch == 32 and cfg["gradient_accumulation_steps"] == 1
    assert cfg["optimizer"]["params"]["fused"] and cfg["zero_optimization"]["stage"] == 2
    assert cfg["scheduler"]["params"]["total_num_steps"] > 0  # "auto" resolved
    cfg, precision, _ = bench_ds_config(parse_args(["--precision", "fp32", "--micro_batch", "8"]))
    assert (
        precision == "fp32" and "bf16" not in cfg and "fp16" not in cfg and cfg["train_micro_batch_size_per_gpu"] == 8
    )
    cfg, precision, _ = bench_ds_config(parse_args(["--precision", "fp16"]))
    assert precision == "fp16" and cfg["fp16"] == {"enabled": True, "loss_scale": 0} and "bf16" not in cfg
    _, precision, _ = bench_ds_config(parse_args(["--deepspeed_config", "ds_configs/zero2_fp16.json"]))
    assert precision == "fp16"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--steps", "0"], "--steps must be at least 1"),
        (["--baseline", "fp8"], "--baseline fp8"),
        (["--chunk", "0"], "--chunk must be at least 1"),
    ],
)
def test_bad_flags(argv, message):
    with pytest.raises(BertptError, match=message):
        parse_args(argv)


def test_synthetic_batches_look_like_prepared_data():
    bc = parse_args(["--data", "synthetic", "--seq_len", "128", "--vocab_size", "1000", "--micro_batch", "32"])
    batches, vocab, pad, _ = make_batches(bc, 4, rank=0, world=1)
    assert (vocab, pad) == (1000, 0) and len(batches) == 4
    b = batches[0]
    assert b["input_ids"].shape == (32, 128)
    lengths = b["attention_mask"].sum(1)
    assert 0.3 < (lengths == 128).float().mean() < 0.9 and lengths.min() >= 16  # mostly full, some short
    masked = (b["labels"] != -100).sum(1)
    assert masked.max() <= 20 and torch.equal(masked[lengths == 128], torch.full_like(masked[lengths == 128], 19))
    assert (b["input_ids"][:, 0] == 2).all()  # [CLS]
    again, *_ = make_batches(bc, 1, rank=0, world=1)
    assert torch.equal(again[0]["input_ids"], b["input_ids"])  # seeded
    other, *_ = make_batches(bc, 1, rank=1, world=2)
    assert not torch.equal(other[0]["input_ids"], b["input_ids"])  # each rank its own batches


def test_prepared_data_batches_and_length_check(tiny_data):
    bc = parse_args(["--data", str(tiny_data), "--micro_batch", "4"])
    batches, vocab, _, described = make_batches(bc, 3, rank=0, world=1)
    assert vocab == 1000 and str(tiny_data) in described
    assert batches[0]["input_ids"].shape[0] == 4 and batches[0]["input_ids"].shape[1] <= 64
    with pytest.raises(BertptError, match="holds 64-token sequences"):
        make_batches(parse_args(["--data", str(tiny_data), "--seq_len", "128", "--micro_batch", "4"]), 1, 0, 1)
