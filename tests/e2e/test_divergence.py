"""Runs that diverge: an absurd learning rate (field report 16), a NaN injected on one rank of two
between saves, rollbacks that skip the data and continue, a resume after a rollback. bert-tiny, fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertpt.ckpt.export import consolidated_state_dict
from bertpt.ckpt.layout import published_tags
from bertpt.divergence import EXIT_DIVERGED, INJECT_ENV

from tests.helpers import deepspeed_cmd, ds_config, python_cmd, read_metrics, run, train_args

pytestmark = pytest.mark.slow


def stop_lines(proc) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "bertpt: diverged at step" in line]


def finite_export(out: Path) -> bool:
    weights = load_file(out / "hf" / "model.safetensors")
    return all(bool(torch.isfinite(w).all()) for w in weights.values())


def state(out: Path, tag: str) -> dict:
    return json.loads((out / "checkpoints" / tag / "bertpt_state.json").read_text())


def test_an_absurd_learning_rate_stops_at_the_first_nan_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    """Field report 16's kind: lr 1e8 (AdamW, ZeRO-2), --save_steps 2 --keep_last 2, 12 steps."""
    lr = {"type": "AdamW", "params": {"torch_adam": True, "lr": 1e8, "betas": [0.9, 0.98], "eps": 1e-6}}
    config = ds_config(tmp_path, "zero2", "fp32", optimizer=lr)
    out = tmp_path / "run"
    args = train_args(tiny_data, out, config, 12, "--save_steps", "2", "--keep_last", "2")
    proc = run(python_cmd(*args), check=False)
    assert proc.returncode == EXIT_DIVERGED, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "bertpt: finished" not in proc.stdout
    losses = {s: m["loss"] for s, m in read_metrics(out).items()}
    bad = min(s for s, x in losses.items() if not x == x or abs(x) == float("inf"))  # the first non-finite
    assert bad < 12 and max(losses) == bad  # no step trained after it
    [line] = stop_lines(proc)
    good = f"step_{(bad - 1) // 2 * 2:06d}"
    assert f"diverged at step {bad}:" in line and f"last good checkpoint {out / 'checkpoints' / good}" in line
    tags = published_tags(out / "checkpoints")
    assert tags[0] == good and len(tags) <= 2  # --keep_last kept the newest good one, nothing newer exists
    for tag in tags:  # every published tag has finite weights (export would refuse otherwise)
        consolidated_state_dict(out / "checkpoints", tag)
    assert finite_export(out) and f"`{good}`" in (out / "hf" / "README.md").read_text()


def test_a_nan_on_one_rank_between_two_saves_is_never_published(tiny_data, tmp_path):
    """Another way to diverge: rank 1 alone gets a NaN loss at step 5 (ZeRO-0: no overflow check, the
    NaN gradients reach the weights), saves every 2 steps, logs every 10: step 6 must not be saved."""
    config = ds_config(tmp_path, "zero0", "fp32")
    out = tmp_path / "run"
    args = train_args(tiny_data, out, config, 8, "--save_steps", "2", "--log_steps", "10")
    proc = run(deepspeed_cmd(2, *args), check=False, env={INJECT_ENV: "5@1"})
    assert proc.returncode == EXIT_DIVERGED, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert published_tags(out / "checkpoints") == ["step_000004", "step_000002"]
    [line] = stop_lines(proc)
    assert "diverged at step 5: the training loss is not finite" in line
    assert f"last good checkpoint {out / 'checkpoints' / 'step_000004'} (exported to {out / 'hf'})" in line
    assert finite_export(out)


def test_rollback_skips_the_samples_records_them_and_a_resume_continues_there(tiny_data, tmp_path):
    """One injected divergence at step 5, --on_divergence rollback: back to step 4, samples 16..19 (the
    4 of step 5, global batch 4) skipped and recorded, exit 0 with finite weights. The same run stopped
    right after the rollback and resumed ends bitwise equal."""
    config = ds_config(tmp_path, "zero2", "fp32")
    flags = ("--save_steps", "2", "--on_divergence", "rollback")
    out = tmp_path / "full"
    proc = run(python_cmd(*train_args(tiny_data, out, config, 8, *flags)), env={INJECT_ENV: "5"})
    log = proc.stdout + proc.stderr
    assert log.count("rollback 1 of 3") == 1 and "skipping samples 16..19 (4 samples)" in log
    assert f"reloaded {out / 'checkpoints' / 'step_000004'}, skipping" in log and "bertpt: finished at step 8" in log
    for tag, consumed in (("step_000006", 28), ("step_000008", 36)):
        assert state(out, tag)["skipped_samples"] == [[16, 20]] and state(out, tag)["consumed_samples"] == consumed
    assert "skipped_samples" not in state(out, "step_000004") or state(out, "step_000004")["skipped_samples"] == []
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["rollbacks"] for e in events if e["split"] == "divergence" and "rollbacks" in e] == [1]
    assert finite_export(out)

    part = tmp_path / "resumed"
    run(python_cmd(*train_args(tiny_data, part, config, 8, *flags, "--steps_this_run", "6")), env={INJECT_ENV: "5"})
    assert state(part, "step_000006")["skipped_samples"] == [[16, 20]]
    proc = run(python_cmd(*train_args(tiny_data, part, config, 8, *flags)))
    assert "resumed at step 6" in proc.stdout + proc.stderr
    resumed, uninterrupted = state(part, "step_000008"), state(out, "step_000008")
    # the same position; training seconds are wall time, summed over the resume (more than before it)
    assert resumed.pop("train_seconds") > state(part, "step_000006")["train_seconds"] > 0
    uninterrupted.pop("train_seconds")
    assert resumed == uninterrupted
    a, b = load_file(out / "hf" / "model.safetensors"), load_file(part / "hf" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_repeated_divergence_stops_after_max_rollbacks(tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")
    out = tmp_path / "run"
    args = train_args(
        tiny_data, out, config, 8, "--save_steps", "2", "--on_divergence", "rollback", "--max_rollbacks", "2"
    )
    proc = run(python_cmd(*args), check=False, env={INJECT_ENV: "5,5,5"})
    assert proc.returncode == EXIT_DIVERGED, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "rollback 1 of 2" in log and "rollback 2 of 2" in log and "rollback 3" not in log
    [line] = stop_lines(proc)
    assert "diverged at step 5" in line and "after 2 rollbacks (--max_rollbacks 2)" in line
    assert f"last good checkpoint {out / 'checkpoints' / 'step_000004'}" in line
    assert published_tags(out / "checkpoints") == ["step_000004", "step_000002"] and finite_export(out)
