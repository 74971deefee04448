"""Failing tests from break14 (a new user's trial of issue 14's monitoring): reproduce, do not fix."""

from __future__ import annotations

import pytest

from bertpt.config import resolve_auto
from bertpt.errors import BertptError
from bertpt.metrics import Reporter
from bertpt.monitor import open_monitor


def test_an_unwritable_tensorboard_path_is_one_error(tmp_path, monitor_world_of_one):
    """`"tensorboard": {"output_path": "<a path under a regular file>"}` ends bertpt-pretrain with a 23-line
    [rank0] traceback (NotADirectoryError from deepspeed/monitor/tensorboard.py); a user expects one line."""
    (tmp_path / "afile").write_text("")
    with pytest.raises(BertptError, match="afile"):
        open_monitor({"tensorboard": {"enabled": True, "output_path": str(tmp_path / "afile" / "tb")}}, tmp_path)


def test_csv_files_hold_one_header_across_a_resume(tmp_path, monitor_world_of_one):
    """Each job (resume) appends another `step,loss` header row to every CSV file, mid-file
    (DeepSpeed's CSVMonitor writes one when a process first opens a file); pandas.read_csv then reads the
    step column as strings. Docs (monitoring.md) promise `step,loss` rows."""
    cfg = resolve_auto(
        {"csv_monitor": {"enabled": True, "output_path": "auto", "job_name": "pretrain"}},
        10,
        bf16_native=False,
        output_dir=tmp_path,
    )
    for steps in (range(1, 4), range(4, 7)):
        rep = Reporter(0, tmp_path, start_step=steps[0] - 1, max_steps=10, monitor=open_monitor(cfg, tmp_path))
        for step in steps:
            rep.train(step, {"loss": 1.0 / step, "mlm_loss": 1.0, "nsp_loss": 0.5, "mlm_acc": 0.1, "nsp_acc": 0.5,
                             "tokens": 8.0, "tokens_sq": 64.0, "sequences": 1.0, "predictions": 1.0},
                      lr=1e-3, grad_norm=None, loss_scale=None)
        rep.close()
    lines = (tmp_path / "csv" / "pretrain" / "train_loss.csv").read_text().splitlines()
    assert [line for line in lines if line.startswith("step")] == ["step,loss"], lines


def test_wandb_without_an_api_key_is_one_error(tmp_path, monitor_world_of_one, monkeypatch):
    """"wandb" enabled, not logged in, WANDB_MODE not offline: bertpt-pretrain ends with a 37-line [rank0] traceback
    (wandb.errors.errors.UsageError: No API key configured); a user expects one line saying `wandb login` or
    WANDB_MODE=offline."""
    import wandb

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    try:
        with pytest.raises(BertptError, match="wandb"):
            open_monitor({"wandb": {"enabled": True, "project": "p"}}, tmp_path / "run")
    finally:
        wandb.teardown()
