"""Repository rules the brief sets: small modules, console scripts that exist, presets that parse."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent


def test_no_module_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (REPO / "bertpt").glob("*.py")}
    assert len(sizes) >= 10
    assert max(sizes.values()) <= 400, sizes


def test_console_scripts_point_at_functions():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"bertpt-prepare", "bertpt-pretrain", "bertpt-export"} <= set(scripts)
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(import_module(module), func))


def test_presets_are_valid_deepspeed_json():
    names = {p.stem for p in (REPO / "ds_configs").glob("*.json")}
    assert {"zero0", "zero1", "zero2", "zero3", "zero2_fp16", "zero0_lamb", "zero3_offload"} <= names
    for name in names:
        cfg = json.loads((REPO / "ds_configs" / f"{name}.json").read_text())
        assert "train_batch_size" not in cfg, f"{name}: the global batch must follow the world size"
        assert cfg["optimizer"]["type"] in ("AdamW", "Lamb")
        assert cfg["zero_optimization"]["stage"] in (0, 1, 2, 3)


def test_hostfiles_parse_with_deepspeeds_parser():
    from deepspeed.launcher.runner import _parse_hostfile

    def parse(name):
        return dict(_parse_hostfile((REPO / "hostfiles" / name).read_text().splitlines()))

    assert parse("2x8gpu") == {"node1": 8, "node2": 8}
    assert parse("2x1cpu") == {"node1": 1, "node2": 1}  # what tests/cluster launches with


def test_deepspeed_env_example_is_what_deepspeed_reads():
    """DeepSpeed reads every line of a .deepspeed_env as NAME=value (no comments, no blank lines)."""
    lines = (REPO / "hostfiles" / "deepspeed_env.example").read_text().splitlines()
    assert lines and all(line.split("=", 1)[0].isidentifier() and "=" in line for line in lines)
