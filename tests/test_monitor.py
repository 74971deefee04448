"""The DeepSpeed JSON's monitor sections: "auto" paths, the engine's JSON, the W&B run id of an output
directory, and the reporter's scalars through DeepSpeed's real MonitorMaster (TensorBoard, CSV, W&B offline),
each step once across a resume."""

from __future__ import annotations

import json
import os

import pytest
import torch.distributed as dist

from bertpt.config import resolve_auto
from bertpt.errors import BertptError
from bertpt.metrics import Reporter, logged_steps
from bertpt.monitor import (
    RUN_ID_FILE,
    SECTIONS,
    enabled_sections,
    open_monitor,
    wandb_environment,
    wandb_run_id,
    without_monitors,
)

from tests.helpers import REPO, csv_scalars, tensorboard_scalars, wandb_offline_runs

WANDB_VARS = ("WANDB_RUN_ID", "WANDB_RESUME", "WANDB_DIR", "WANDB_MODE", "WANDB_SILENT")


@pytest.fixture
def clean_wandb_env(monkeypatch, tmp_path):
    """No wandb variable from outside; whatever the code under test sets is undone afterwards."""
    for var in WANDB_VARS:
        monkeypatch.setenv(var, "x")  # recorded as absent-before, so teardown removes what the test set
        monkeypatch.delenv(var)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    import wandb

    wandb.teardown()  # wandb keeps its first settings (WANDB_DIR among them) for the life of the process


def test_presets_write_tensorboard_under_the_output_dir(tmp_path):
    for preset in sorted((REPO / "ds_configs").glob("*.json")):
        cfg = resolve_auto(json.loads(preset.read_text()), 100, bf16_native=False, output_dir=tmp_path / "run")
        assert enabled_sections(cfg) == ["tensorboard"], preset.name
        assert cfg["tensorboard"] == {
            "enabled": True,
            "output_path": str(tmp_path / "run" / "tb"),
            "job_name": "pretrain",
        }


def test_auto_monitor_paths(tmp_path):
    raw = {
        "tensorboard": {"enabled": True, "output_path": "auto"},
        "csv_monitor": {"enabled": True, "output_path": "auto", "job_name": "j"},
        "wandb": {"enabled": False},
    }
    cfg = resolve_auto(raw, 10, bf16_native=False, output_dir="out")
    assert cfg["tensorboard"]["output_path"] == os.path.join("out", "tb")
    assert cfg["csv_monitor"]["output_path"] == os.path.join("out", "csv")
    assert raw["tensorboard"]["output_path"] == "auto"  # the caller's dict is untouched
    # no run directory (benchmarks, which write no monitor): left as written, no error
    assert resolve_auto(raw, 10, bf16_native=False)["csv_monitor"]["output_path"] == "auto"
    with pytest.raises(BertptError, match=r'wandb.project is "auto"'):
        resolve_auto({"wandb": {"enabled": True, "project": "auto"}}, 10, bf16_native=False, output_dir="out")


def test_the_engine_gets_no_monitor_section():
    cfg = {"train_micro_batch_size_per_gpu": 4, **{s: {"enabled": True} for s in SECTIONS}, "wandb": {"enabled": 1}}
    assert without_monitors(cfg) == {"train_micro_batch_size_per_gpu": 4}
    assert enabled_sections(cfg) == ["tensorboard", "csv_monitor", "comet"]  # "enabled": 1 is not true


def test_one_wandb_run_id_per_output_dir(tmp_path, clean_wandb_env, monkeypatch):
    first = wandb_run_id(tmp_path / "run")
    assert len(first) == 8 and first.isalnum() and first == first.lower()
    assert (tmp_path / "run" / RUN_ID_FILE).read_text() == first + "\n"
    assert wandb_run_id(tmp_path / "run") == first  # a requeued job: the same run
    assert wandb_run_id(tmp_path / "other") != first
    env = wandb_environment(tmp_path / "run", first)
    assert env == {"WANDB_DIR": str(tmp_path / "run"), "WANDB_RUN_ID": first, "WANDB_RESUME": "allow"}
    monkeypatch.setenv("WANDB_RUN_ID", "mine")  # what the user set wins
    assert wandb_environment(tmp_path / "run", first) == {"WANDB_DIR": str(tmp_path / "run"), "WANDB_RESUME": "allow"}


def test_no_enabled_section_no_monitor(tmp_path):
    assert open_monitor({"tensorboard": {"enabled": False}}, tmp_path) is None
    assert not (tmp_path / "tb").exists()


def test_logged_steps_reads_the_last_step_of_each_tag(tmp_path):
    rows = [
        {"split": "masking", "step": 0, "masked_lm_prob": 0.15},
        {"split": "train", "step": 1, "loss": 3.0, "tokens": 9.0},
        {"split": "train", "step": 2, "loss": 2.0, "grad_norm": 1.0},
        {"split": "eval", "step": 2, "loss": 2.5},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"split": "train", "st')  # killed mid-line
    assert logged_steps(path) == {
        "masking/masked_lm_prob": 0,
        "train/loss": 2,
        "train/grad_norm": 2,
        "eval/loss": 2,
    }
    assert logged_steps(tmp_path / "missing.jsonl") == {}


def train_metrics(step: int, generation: int) -> dict[str, float]:
    return {
        "loss": 10.0 / step + generation,
        "mlm_loss": 1.0 / step,
        "mlm_acc": 0.01 * step,
        "tokens": 100.0,
        "sequences": 2.0,
    }


def test_reporter_writes_every_backend_each_step_once_across_a_resume(tmp_path, clean_wandb_env, monitor_world_of_one):
    """A run logs steps 1..5 and stops; its resume from step 2 logs 3..7 (with other values, so that the test
    sees which write won). Every backend then holds steps 1..7 once, the first write of 3..5, equal across
    TensorBoard (float32), the CSV files (one header row each) and W&B; both W&B processes wrote to the one run id
    of the directory."""
    import wandb

    ds = {
        "tensorboard": {"enabled": True, "output_path": "auto", "job_name": "pretrain"},
        "csv_monitor": {"enabled": True, "output_path": "auto", "job_name": "pretrain"},
        "wandb": {"enabled": True, "project": "bertpt-test"},
    }
    cfg = resolve_auto(ds, 10, bf16_native=False, output_dir=tmp_path)
    for generation, steps in enumerate((range(1, 6), range(3, 8))):
        rep = Reporter(0, tmp_path, start_step=steps[0] - 1, max_steps=10, monitor=open_monitor(cfg, tmp_path))
        if generation == 0:
            rep.settings("masking", {"masked_lm_prob": 0.15}, 0)
        for step in steps:
            rep.train(step, train_metrics(step, generation), lr=1e-3 * step, grad_norm=None, loss_scale=None)
        rep.eval(steps[-1], {"loss": 5.0 + generation, "mlm_loss": 4.0, "mlm_acc": 0.5})
        rep.close()
        wandb.finish()  # what wandb's exit hook does when a training process ends

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4, 5, 3, 4, 5, 6, 7]  # all rows kept
    expected = {
        "train/loss": [(s, 10.0 / s + (s > 5)) for s in range(1, 8)],
        "train/lr": [(s, 1e-3 * s) for s in range(1, 8)],
        "eval/loss": [(5, 5.0), (7, 6.0)],
        "masking/masked_lm_prob": [(0, 0.15)],
    }
    tb = tensorboard_scalars(tmp_path / "tb" / "pretrain")
    csv = csv_scalars(tmp_path / "csv" / "pretrain")  # asserts one header row per file, the resume's included
    lines = (tmp_path / "csv" / "pretrain" / "train_loss.csv").read_text().splitlines()
    assert lines[0] == "step,loss" and len(lines) == 1 + 7  # pandas.read_csv gets an integer step column
    runs = wandb_offline_runs(tmp_path / "wandb")
    run_id = (tmp_path / RUN_ID_FILE).read_text().strip()
    assert [r for r, _, _ in runs] == [run_id, run_id]  # two processes, one W&B run
    history: dict[str, list] = {}
    for _, _, h in runs:
        for key, points in h.items():
            history.setdefault(key, []).extend(points)
    assert set(tb) == set(history) and {t.replace("/", "_") for t in tb} == set(csv)
    assert {"train/tokens_per_s", "train/seq_per_s", "train/mlm_acc"} <= set(tb) and "train/tokens" not in tb
    for tag, points in tb.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), tag  # each step once, in order
        assert csv[tag.replace("/", "_")] == history[tag], tag
        assert points == [(s, pytest.approx(v, rel=1e-6)) for s, v in history[tag]], tag  # float32 in TensorBoard
    for tag, points in expected.items():
        assert history[tag] == [(s, pytest.approx(v)) for s, v in points], tag


def test_a_monitor_whose_package_is_missing_is_one_error(tmp_path, monitor_world_of_one):
    with pytest.raises(BertptError, match="comet"):
        open_monitor({"comet": {"enabled": True}}, tmp_path)


def test_an_unwritable_tensorboard_path_is_one_error_before_the_wandb_run_id(tmp_path, monitor_world_of_one):
    """DeepSpeed's TensorBoardMonitor would raise NotADirectoryError (a traceback) after the W&B run id was written."""
    (tmp_path / "afile").write_text("")
    ds = {"tensorboard": {"enabled": True, "output_path": str(tmp_path / "afile" / "tb")}, "wandb": {"enabled": True}}
    with pytest.raises(BertptError, match=r"tensorboard\.output_path .*afile/tb/.*: not writable"):
        open_monitor(ds, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_wandb_without_an_api_key_is_one_error(tmp_path, clean_wandb_env, monitor_world_of_one, monkeypatch):
    """Not logged in, WANDB_MODE not offline: wandb.init's UsageError becomes one line saying what to do."""
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    with pytest.raises(BertptError, match=r"No API key.*run `wandb login`.*WANDB_MODE=offline"):
        open_monitor({"wandb": {"enabled": True, "project": "p"}}, tmp_path / "run")


def test_fine_tunes_are_jobs_of_their_own_on_every_backend(tmp_path, clean_wandb_env):
    """bertpt-finetune's path (no process group, no engine): each job (fine-tune) gets its own TensorBoard and
    CSV directory and its own W&B run named after it, with the same history everywhere."""
    from bertpt.monitor import check_sections, job_dirs, write_job

    sections = {
        "tensorboard": {"enabled": True, "output_path": "auto", "job_name": "ignored"},
        "csv_monitor": {"enabled": True, "output_path": str(tmp_path / "elsewhere")},
        "wandb": {"enabled": True, "project": "bertpt-test"},
    }
    check_sections(sections, tmp_path)
    jobs = {"cola/lr0.001_seed1": 0.5, "cola/lr0.001_seed2": 0.25}
    for job, score in jobs.items():
        events = [("train/loss", 1.0 / step, step) for step in (10, 20)] + [("eval/matthews_correlation", score, 20)]
        write_job(sections, tmp_path, job, events)
    assert not dist.is_initialized() and "WANDB_NAME" not in os.environ  # the world of one and the name are gone
    assert job_dirs(sections, tmp_path, "cola/lr0.001_seed1") == [
        tmp_path / "tb" / "cola" / "lr0.001_seed1",
        tmp_path / "elsewhere" / "cola" / "lr0.001_seed1",
    ]
    runs = wandb_offline_runs(tmp_path / "wandb")
    assert len(runs) == 2 and runs[0][0] != runs[1][0]  # one W&B run per fine-tune, named after it
    assert [name for _, name, _ in runs] == list(jobs)
    for (job, score), (_, _, history) in zip(jobs.items(), runs):
        tb = tensorboard_scalars(tmp_path / "tb" / job)
        csv = csv_scalars(tmp_path / "elsewhere" / job)
        expected = {"train/loss": [(10, 0.1), (20, 0.05)], "eval/matthews_correlation": [(20, score)]}
        assert history == expected and {k.replace("/", "_"): v for k, v in expected.items()} == csv
        assert tb == {k: [(s, pytest.approx(v)) for s, v in points] for k, points in expected.items()}


def test_bad_job_sections_are_one_error(tmp_path):
    from bertpt.monitor import check_sections

    with pytest.raises(BertptError, match="monitor section is invalid"):
        check_sections({"tensorboard": {"enabled": True, "bogus": 1}}, tmp_path)
    with pytest.raises(BertptError, match='wandb.project is "auto"'):
        check_sections({"wandb": {"enabled": True, "project": "auto"}}, tmp_path)
    with pytest.raises(BertptError, match="comet_ml is not installed"):
        check_sections({"comet": {"enabled": True}}, tmp_path)
