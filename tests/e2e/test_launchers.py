"""End to end on the real launchers (deepspeed, torchrun, mpirun, plain python), 2 CPU processes.

fp32 runs of the same seed and global batch must give the same losses whatever the ZeRO stage or
launcher; every preset must train; a run stopped and resumed must continue bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertpt.engine import native_bf16

from tests.helpers import (
    PRETRAIN,
    deepspeed_cmd,
    ds_config,
    free_port,
    losses,
    python_cmd,
    read_metrics,
    run,
    train_args,
)

pytestmark = pytest.mark.slow
STEPS = 6


@pytest.fixture(scope="module")
def zero2_fp32(tiny_data, tmp_path_factory):
    """The reference: deepspeed launcher, 2 ranks, ZeRO-2, fp32."""
    tmp = tmp_path_factory.mktemp("ref")
    out = tmp / "run"
    run(deepspeed_cmd(2, *train_args(tiny_data, out, ds_config(tmp, "zero2", "fp32"), STEPS)))
    return out


@pytest.mark.parametrize("preset", ["zero0", "zero1", "zero3"])
def test_zero_stages_give_the_same_fp32_losses(preset, zero2_fp32, tiny_data, tmp_path):
    out = tmp_path / "run"
    run(deepspeed_cmd(2, *train_args(tiny_data, out, ds_config(tmp_path, preset, "fp32"), STEPS)))
    ref, got = losses(zero2_fp32), losses(out)
    assert len(got) == STEPS and len(set(ref)) > 1
    assert got == pytest.approx(ref, rel=1e-6, abs=0), (preset, got, ref)


def test_torchrun_and_mpirun_train_the_same(zero2_fp32, tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")
    port = free_port()
    torchrun = [
        "torchrun",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        PRETRAIN,
        *train_args(tiny_data, tmp_path / "torchrun", config, STEPS),
    ]
    mpirun = [
        "mpirun",
        "-np",
        "2",
        "--oversubscribe",
        "-x",
        "DS_ACCELERATOR",
        "-x",
        "OMP_NUM_THREADS",
        *python_cmd(*train_args(tiny_data, tmp_path / "mpirun", config, STEPS)),
    ]
    for cmd, name in ((torchrun, "torchrun"), (mpirun, "mpirun")):
        proc = run(cmd)
        assert "world size 2" in proc.stdout + proc.stderr, name
        assert losses(tmp_path / name) == pytest.approx(losses(zero2_fp32), rel=1e-6, abs=0), name
    # DeepSpeed's CPU allreduce leaves a shared-memory segment per rank unless bertpt removes it
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))


def test_plain_python_is_a_world_of_one(tiny_data, tmp_path):
    out = tmp_path / "run"
    proc = run(python_cmd(*train_args(tiny_data, out, ds_config(tmp_path, "zero2", "fp32"), 3)))
    assert "world size 1" in proc.stdout + proc.stderr
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_000003"
    assert (out / "hf" / "model.safetensors").is_file()
    assert sorted(read_metrics(out)) == [1, 2, 3]


@pytest.mark.parametrize(
    "preset, micro, accum",
    [
        ("zero0", 4, 1),
        ("zero1", 4, 1),
        ("zero2", 4, 1),
        ("zero3", 4, 1),
        ("zero2_fp16", 4, 1),
        ("zero0_lamb", 4, 2),
        ("zero3_offload", 4, 1),
    ],
)
def test_every_preset_trains_on_cpu(preset, micro, accum, tiny_data, tmp_path):
    """The presets' optimizer, precision and ZeRO sections as shipped; only the batch is test-sized.
    The bf16 presets say "auto": bf16 where native, fp32 elsewhere (an AVX2-only CPU), as the banner says.
    fp16 needs a CPU with native fp16 (AVX512-FP16, e.g. Sapphire Rapids); elsewhere DeepSpeed
    refuses it, and bertpt must say so in one line instead of a traceback."""
    from deepspeed.accelerator import get_accelerator

    out = tmp_path / "run"
    cmd = deepspeed_cmd(2, *train_args(tiny_data, out, ds_config(tmp_path, preset, micro=micro, accum=accum), 12))
    if preset == "zero2_fp16" and not get_accelerator().is_fp16_supported():
        proc = run(cmd, check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("bertpt-pretrain: error:")]
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert len(errors) == 1
        assert "enables fp16, which this accelerator (cpu) does not support" in errors[0]
        pytest.skip("this CPU has no native fp16; checked the one-line refusal instead")
    proc = run(cmd)
    log = proc.stdout + proc.stderr
    metrics = read_metrics(out)
    assert sorted(metrics) == list(range(1, 13))
    assert all(math.isfinite(m["loss"]) for m in metrics.values())
    first, last = [metrics[s]["loss"] for s in (1, 2, 3)], [metrics[s]["loss"] for s in (10, 11, 12)]
    assert sum(last) < sum(first), (preset, first, last)
    preset_json = json.loads((out.parent / f"{preset}-preset-{micro}x{accum}.json").read_text())
    if "fp16" in preset_json:
        assert "fp16 (dynamic loss scaling)" in log
        scales = [m["loss_scale"] for m in metrics.values()]
        assert max(scales) <= 2**16 and min(scales) >= 1
    elif "bf16" in preset_json:  # "auto": bf16 where native, fp32 elsewhere, and the banner says which
        native = native_bf16(get_accelerator())
        assert preset_json["bf16"]["enabled"] == "auto"
        assert (', bf16 (bf16 "auto" -> true' if native else ', fp32 (bf16 "auto" -> false') in log
    if preset == "zero0_lamb":
        assert log.count("FusedLamb cannot load on this accelerator") == 1
    assert (out / "checkpoints" / "step_000012").is_dir()


def test_resume_continues_bit_for_bit(tiny_data, tmp_path):
    """fp32, ZeRO-2, 2 ranks, dropout on: 4 steps + resume to 8 == 8 steps uninterrupted."""
    config = ds_config(tmp_path, "zero2", "fp32")
    whole, split = tmp_path / "whole", tmp_path / "split"
    run(deepspeed_cmd(2, *train_args(tiny_data, whole, config, 8, "--eval_steps", "3")))
    run(deepspeed_cmd(2, *train_args(tiny_data, split, config, 8, "--eval_steps", "3", "--steps_this_run", "4")))
    assert (split / "checkpoints" / "latest").read_text().strip() == "step_000004"
    proc = run(deepspeed_cmd(2, *train_args(tiny_data, split, config, 8, "--eval_steps", "3")))
    assert "resumed at step 4" in proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 9))  # no step trained twice
    a, b = read_metrics(whole), read_metrics(split)
    assert [a[s]["loss"] for s in range(5, 9)] == [b[s]["loss"] for s in range(5, 9)]  # bitwise
    wa, wb = load_file(whole / "hf" / "model.safetensors"), load_file(split / "hf" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # a finished run resumed again trains nothing and says so
    proc = run(deepspeed_cmd(2, *train_args(tiny_data, split, config, 8)))
    assert "already at step 8" in proc.stdout + proc.stderr


@pytest.mark.parametrize("preset", ["zero2", "zero3"])
def test_export_gives_the_engines_logits(preset, tiny_data, tmp_path):
    """Train, export through DeepSpeed's ZeRO-to-fp32 consolidation, reload with transformers, and
    compare MLM and NSP logits with the engine's on a fixed batch (every rank checks)."""
    out = tmp_path / "run"
    script = str(__import__("pathlib").Path(__file__).parent / "export_check.py")
    proc = run(
        [
            "deepspeed",
            "--num_gpus",
            "2",
            "--master_port",
            str(free_port()),
            script,
            *train_args(tiny_data, out, ds_config(tmp_path, preset, "fp32"), 4),
        ]
    )
    log = proc.stdout + proc.stderr
    assert log.count("logits match") == 2, log[-3000:]


def test_static_and_whole_word_masked_data_train(tiny_data, corpus_dir, tmp_path):
    from bertpt.data.corpus import Source
    from bertpt.data.prepare import PrepareConfig, prepare

    for static in (True, False):
        data = tmp_path / f"data-static-{static}"
        prepare(
            PrepareConfig(
                output_dir=str(data),
                tokenizer=str(tiny_data / "tokenizer"),
                max_seq_length=64,
                whole_word_mask=True,
                static_masking=static,
                num_workers=0,
            ),
            source=Source(inputs=[str(corpus_dir)]),
            progress=False,
        )
        out = tmp_path / f"run-static-{static}"
        run(python_cmd(*train_args(data, out, ds_config(tmp_path, "zero2", "fp32"), 3)))
        got = losses(out)
        assert len(got) == 3 and all(math.isfinite(x) for x in got)
