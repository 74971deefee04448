"""Resuming on another number of ranks (bertpt/ckpt/universal.py): 2 -> 1 and 1 -> 2, ZeRO-2 and ZeRO-3 through
DeepSpeed's universal checkpoint format, ZeRO-0 by a plain load; the global batch is kept and no sample is
repeated or skipped. Bad input: a global batch the new world size cannot keep, a ZeRO-stage change.

The model is bert-tiny's shape with dropout off (per-rank dropout streams cannot carry over to another world
size) and an odd intermediate size, so that ZeRO-3 gives the two ranks different numbers of elements of
some parameters (509 = 255 + 254 + 1 padding) and ZeRO-1/2 partition boundaries fall inside parameters.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import (
    deepspeed_cmd,
    ds_config,
    one_error_line,
    python_cmd,
    read_metrics,
    run,
    train_args,
)

pytestmark = pytest.mark.slow
STEPS = 12
MICRO = 4
GLOBAL = 2 * MICRO  # 2 ranks x micro 4 x accumulation 1 = 1 rank x micro 4 x accumulation 2

# fp32, same global batch and samples: what differs between world sizes is only the order of floating-point
# reductions (the all-reduce of gradients across ranks vs accumulation over micro-batches, and the sums behind
# the logged loss). With two terms those agree to 0-1 ulp (observed: bitwise-equal losses, at most 6e-8
# relative, on this CPU). 1e-5 leaves room for other kernels and thread counts, while any real fault shows
# up far above it: DeepSpeed's ZeRO-3 universal loader without bertpt's repair (weight decay 0.01 on the
# no-decay group, Adam's step counted twice) gave 2e-6 one step after the resume and 1.6e-4 the step after.
REL_TOL = 1e-5


@pytest.fixture(scope="module")
def model_json(tiny_data, tmp_path_factory):
    meta = json.loads((tiny_data / "meta.json").read_text())
    path = tmp_path_factory.mktemp("model") / "bert-tiny-no-dropout.json"
    path.write_text(
        json.dumps(
            {
                "vocab_size": meta["vocab_size"],
                "hidden_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 509,
                "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0,
                "pad_token_id": meta["special_ids"]["pad"],
            }
        )
    )
    return str(path)


def args(data, out, config, model, steps, *extra):
    return [*train_args(data, out, config, steps, *extra), "--model", model]


def losses(out):
    return {step: m["loss"] for step, m in read_metrics(out).items()}  # by step: runs that resume mid-way


def log(proc):
    return proc.stdout + proc.stderr


def saved_state(out, step):
    return json.loads((out / "checkpoints" / f"step_{step:06d}" / "bertpt_state.json").read_text())


@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_world_size_change_continues_the_uninterrupted_run(preset, tiny_data, model_json, tmp_path):
    """Steps 1-4 on 2 ranks, 5-8 on 1 rank (2 -> 1), 9-12 on 2 ranks again (a checkpoint saved on 1 rank,
    1 -> 2): the losses of steps 5-12 are those of 12 uninterrupted steps on 2 ranks. The same DeepSpeed JSON
    (micro 4, accumulation 1) is passed every time; bertpt adjusts the accumulation."""
    config = ds_config(tmp_path, preset, "fp32", micro=MICRO, accum=1)
    whole, split = tmp_path / "whole", tmp_path / "split"
    run(deepspeed_cmd(2, *args(tiny_data, whole, config, model_json, STEPS)))

    run(deepspeed_cmd(2, *args(tiny_data, split, config, model_json, STEPS, "--steps_this_run", "4")))
    to_one = log(run(python_cmd(*args(tiny_data, split, config, model_json, STEPS, "--steps_this_run", "4"))))
    assert "bertpt: world size 2 -> 1: gradient accumulation 1 -> 2 keeps the global batch 8" in to_one
    assert "world size 1, global batch 8 = 4 x 2 accumulation x 1 ranks" in to_one
    assert "to DeepSpeed's universal checkpoint format" in to_one and "resumed at step 4" in to_one
    one = saved_state(split, 8)
    assert (one["world_size"], one["micro_batch"], one["grad_accum"], one["global_batch"], one["zero_stage"]) == (
        1,
        MICRO,
        2,
        GLOBAL,
        int(preset[-1]),
    )
    to_two = log(run(deepspeed_cmd(2, *args(tiny_data, split, config, model_json, STEPS))))
    assert "bertpt: world size 1 -> 2: gradient accumulation 2 -> 1 keeps the global batch 8" in to_two
    assert "resumed at step 8" in to_two

    ref, got = losses(whole), losses(split)
    assert sorted(got) == list(range(1, STEPS + 1)) and len(set(ref.values())) > 1
    rows = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, STEPS + 1))  # no step twice
    assert [got[s] for s in range(5, STEPS + 1)] == pytest.approx(
        [ref[s] for s in range(5, STEPS + 1)], rel=REL_TOL, abs=0
    )
    # the data position is exact: every step consumed one global batch, on any world size
    assert saved_state(split, 4)["consumed_samples"] == 4 * GLOBAL
    assert saved_state(split, 8)["consumed_samples"] == 8 * GLOBAL
    final = saved_state(split, STEPS)
    assert final["consumed_samples"] == STEPS * GLOBAL and final["world_size"] == 2 and final["grad_accum"] == 1
    ckpt = split / "checkpoints"
    assert (ckpt / "step_000004_universal" / "zero").is_dir() and (ckpt / "step_000008_universal" / "zero").is_dir()
    assert not list(ckpt.glob(".*.tmp")) and not (ckpt / "latest_universal").exists()
    assert (ckpt / "latest").read_text().strip() == "step_000012"


@pytest.fixture(scope="module")
def saved_zero0_micro3(tiny_data, model_json, tmp_path_factory):
    """4 of 8 steps with ZeRO-0, 2 ranks x micro 3 (global batch 6), and 8 uninterrupted steps."""
    tmp = tmp_path_factory.mktemp("zero0")
    config = ds_config(tmp, "zero0", "fp32", micro=3, accum=1)
    run(deepspeed_cmd(2, *args(tiny_data, tmp / "whole", config, model_json, 8)))
    run(deepspeed_cmd(2, *args(tiny_data, tmp / "split", config, model_json, 8, "--steps_this_run", "4")))
    return tmp, config


def test_zero0_resumes_on_another_world_size_without_conversion(saved_zero0_micro3, tiny_data, model_json, tmp_path):
    """ZeRO-0 keeps the whole optimizer state in one file that loads on any world size: no conversion."""
    tmp, config = saved_zero0_micro3
    split = tmp_path / "split"
    shutil.copytree(tmp / "split", split)
    proc = run(python_cmd(*args(tiny_data, split, config, model_json, 8)))
    assert "bertpt: world size 2 -> 1: gradient accumulation 1 -> 2 keeps the global batch 6" in log(proc)
    assert "universal" not in log(proc) and not list((split / "checkpoints").glob("*universal*"))
    ref, got = losses(tmp / "whole"), losses(split)
    assert [got[s] for s in range(5, 9)] == pytest.approx([ref[s] for s in range(5, 9)], rel=REL_TOL, abs=0)
    assert saved_state(split, 8)["consumed_samples"] == 8 * 6


def test_a_global_batch_the_new_world_size_cannot_keep(saved_zero0_micro3, tiny_data, model_json, tmp_path):
    """Global batch 6 saved on 2 ranks; on 1 rank with micro batch 4, 6 samples per step cannot be made."""
    tmp, _ = saved_zero0_micro3
    split = tmp / "split"
    before = sorted(p.name for p in (split / "checkpoints").iterdir())
    micro4 = ds_config(tmp_path, "zero0", "fp32", micro=4, accum=1)
    proc = run(python_cmd(*args(tiny_data, split, micro4, model_json, 8)), check=False)
    one_error_line(
        proc,
        "global batch of 6",
        "1 rank x micro batch 4 = 4 does not divide",
        "set train_micro_batch_size_per_gpu to one of 1, 2, 3, 6",
    )
    # and a world-size change together with a ZeRO-stage change is refused, not attempted
    zero2 = ds_config(tmp_path, "zero2", "fp32", micro=3, accum=1)
    proc = run(python_cmd(*args(tiny_data, split, zero2, model_json, 8)), check=False)
    one_error_line(proc, "was trained with ZeRO stage 0 but the DeepSpeed JSON asks for stage 2")
    assert sorted(p.name for p in (split / "checkpoints").iterdir()) == before  # nothing written
