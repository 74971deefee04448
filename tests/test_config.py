"""Config: flags parse into the dataclass, the DeepSpeed JSON's "auto" values, bad flags are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import pytest

from bertpt.config import PretrainConfig, bf16_is_auto, load_ds_config, parse_args, resolve_auto
from bertpt.errors import BertptError

from .helpers import PRETRAIN, REPO, launch_env


def test_every_field_has_help_and_flags_parse():
    assert all(f.metadata.get("help") for f in fields(PretrainConfig))
    cfg, ds = parse_args(
        [
            "--deepspeed_config",
            "x.json",
            "--max_steps",
            "7",
            "--model",
            "bert-base",
            "--resume",
            "none",
            "--local_rank=0",
        ]
    )
    assert (cfg.max_steps, cfg.model, cfg.resume, ds) == (7, "bert-base", "none", "x.json")


def test_auto_values_come_from_the_run_length_and_the_optimizer():
    raw = json.loads((REPO / "ds_configs" / "zero2.json").read_text())
    cfg = resolve_auto(raw, max_steps=500)
    params = cfg["scheduler"]["params"]
    assert params["total_num_steps"] == 500 and params["warmup_num_steps"] == 50
    assert params["warmup_max_lr"] == raw["optimizer"]["params"]["lr"]
    assert raw["scheduler"]["params"]["total_num_steps"] == "auto"  # the input is not modified
    assert resolve_auto(raw, max_steps=1_000_000)["scheduler"]["params"]["warmup_num_steps"] == 10_000
    assert cfg["zero_optimization"] == raw["zero_optimization"]
    assert raw["bf16"] == {"enabled": "auto"} and isinstance(cfg["bf16"]["enabled"], bool)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_auto_resolves_to_whether_bf16_is_native(native):
    raw = {"bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": 2}
    assert bf16_is_auto(raw) and not bf16_is_auto({"bf16": {"enabled": True}}) and not bf16_is_auto({})
    assert resolve_auto(raw, 10, bf16_native=native) == {
        "bf16": {"enabled": native},
        "train_micro_batch_size_per_gpu": 2,
    }
    assert raw["bf16"]["enabled"] == "auto"  # the input is not modified
    for explicit in (True, False):  # an explicit value is the user's: never touched
        assert resolve_auto({"bf16": {"enabled": explicit}}, 10, bf16_native=native)["bf16"]["enabled"] is explicit
    with pytest.raises(BertptError, match='fp16.enabled is "auto"'):  # fp16 is never chosen for the user
        resolve_auto({"fp16": {"enabled": "auto"}}, 10, bf16_native=native)


def test_run_behaviour_flags_have_their_defaults_and_parse():
    cfg, _ = parse_args(["--deepspeed_config", "x.json"])
    assert (cfg.model, cfg.collective_timeout_minutes, cfg.log_level) == (None, 30, "warning")
    cfg, _ = parse_args(["--deepspeed_config", "x.json", "--collective_timeout_minutes", "90", "--log_level", "info"])
    assert (cfg.collective_timeout_minutes, cfg.log_level) == (90, "info")
    with pytest.raises(BertptError, match="--collective_timeout_minutes must be positive"):
        parse_args(["--deepspeed_config", "x.json", "--collective_timeout_minutes", "0"])


def test_auto_outside_the_scheduler_is_refused(tmp_path):
    bad = {"train_micro_batch_size_per_gpu": "auto"}
    with pytest.raises(BertptError, match='train_micro_batch_size_per_gpu is "auto"'):
        resolve_auto(bad, 10)
    p = tmp_path / "broken.json"
    p.write_text("{ nope")
    with pytest.raises(BertptError, match="not valid JSON"):
        load_ds_config(str(p), 10)
    with pytest.raises(BertptError, match="no such file"):
        load_ds_config(str(tmp_path / "missing.json"), 10)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "--deepspeed_config is required"),
        (["--deepspeed_config", "ds_configs/zero2.json", "--max_steps", "0"], "--max_steps must be at least 1"),
        (
            ["--deepspeed_config", "ds_configs/zero2.json", "--resume", "/nonexistent/ckpt"],
            "no such checkpoint directory",
        ),
        (
            ["--deepspeed_config", "ds_configs/zero2.json", "--data", "/nonexistent/data"],
            "--data /nonexistent/data: no such directory",
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(argv, expected):
    proc = subprocess.run(
        [sys.executable, PRETRAIN, *argv], cwd=REPO, env=launch_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("bertpt-pretrain: error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr


def test_help_explains_every_flag():
    proc = subprocess.run(
        [sys.executable, PRETRAIN, "--help"], cwd=REPO, env=launch_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0
    for f in fields(PretrainConfig):
        assert f"--{f.name}" in proc.stdout
    assert "--deepspeed_config" in proc.stdout
