"""A real tiny training with the DeepSpeed JSON's "tensorboard" (the preset's, "auto" path), "csv_monitor" and
"wandb" (offline) sections, stopped at step 5 and resumed from its step-3 checkpoint: every scalar's history
is the same in TensorBoard, the CSV files and W&B, each step once, and both processes wrote one W&B run."""

from __future__ import annotations

import json

import pytest

from bertpt.monitor import RUN_ID_FILE

from tests.helpers import (
    csv_scalars,
    ds_config,
    python_cmd,
    read_metrics,
    run,
    tensorboard_scalars,
    train_args,
    wandb_offline_runs,
)

pytestmark = pytest.mark.slow
STEPS = 8


def test_every_backend_holds_each_scalar_once_across_a_resume(tiny_data, tmp_path):
    out = tmp_path / "run"
    config = ds_config(
        tmp_path,
        "zero2",
        "fp32",
        csv_monitor={"enabled": True, "output_path": "auto", "job_name": "pretrain"},
        wandb={"enabled": True, "project": "bertpt-e2e"},
    )
    # offline W&B; no run id, resume mode or directory from outside: bertpt's own choices are under test
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_RUN_ID": "", "WANDB_RESUME": "", "WANDB_DIR": ""}
    args = train_args(tiny_data, out, config, STEPS, "--save_steps", "3", "--eval_steps", "4")
    first = run(python_cmd(*args, "--steps_this_run", "5"), env=env)  # checkpoints at 3 and 5
    assert f"tensorboard --logdir {out / 'tb'}" in first.stdout
    first_rows = read_metrics(out)
    # as if killed after step 5 with step 3 its last checkpoint: steps 4 and 5 are trained and logged again
    run(python_cmd(*args, "--resume", str(out / "checkpoints" / "step_000003")), env=env)

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 4, 5, 6, 7, 8]  # every row kept
    tb = tensorboard_scalars(out / "tb" / "pretrain")
    csv = csv_scalars(out / "csv" / "pretrain")
    runs = wandb_offline_runs(out / "wandb")
    run_id = (out / RUN_ID_FILE).read_text().strip()
    assert [r for r, _, _ in runs] == [run_id, run_id]  # the resumed process continued the same W&B run
    history: dict[str, list] = {}
    for _, _, h in runs:
        for key, points in h.items():
            history.setdefault(key, []).extend(points)

    assert set(tb) == set(history) and {t.replace("/", "_") for t in tb} == set(csv)
    assert {"train/loss", "train/mlm_acc", "train/nsp_acc", "train/lr", "train/grad_norm", "eval/mlm_loss"} <= set(tb)
    assert not any(t.startswith("Train/Samples") for t in tb)  # the engine's own monitor stays off
    for tag, points in tb.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), (tag, steps)  # each step once, in order
        assert csv[tag.replace("/", "_")] == history[tag], tag
        assert points == [(s, pytest.approx(v, rel=1e-6)) for s, v in history[tag]], tag  # float32 in TensorBoard
    assert [s for s, _ in tb["train/loss"]] == list(range(1, STEPS + 1))
    assert [s for s, _ in tb["eval/mlm_loss"]] == [4, 5, 8]  # every 4 steps and at the end of each process
    # the dashboards' steps 4 and 5 are the first process's, which the bitwise-exact resume computed again
    final = read_metrics(out)
    for step in (4, 5):
        assert history["train/loss"][step - 1] == (step, first_rows[step]["loss"]) == (step, final[step]["loss"])
