"""Checkpoint helpers: where a resume comes from, RNG states round-trip, static files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from bertpt.ckpt.checkpoint import (
    find_resume,
    rng_state,
    set_rng_state,
    tag_for,
    verify,
    write_static_files,
)
from bertpt.errors import BertptError
from bertpt.model import bert_config


def fake_tag(ckpt, step, files=("mp_rank_00_model_states.pt", "rng_rank_0.pt")):
    """A published tag as checkpoint.save leaves it: files plus a manifest of their sizes."""
    d = ckpt / tag_for(step)
    d.mkdir(parents=True)
    for k, name in enumerate(files):
        (d / name).write_bytes(b"x" * (100 + k))
    (d / "manifest.json").write_text(json.dumps({"tag": d.name, "files": {n: 100 + k for k, n in enumerate(files)}}))
    (ckpt / "latest").write_text(d.name)
    return d


def test_find_resume(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert find_resume("auto", ckpt) is None  # nothing yet: start fresh
    assert find_resume("none", ckpt) is None
    fake_tag(ckpt, 10)
    (ckpt / "step_000020.tmp").mkdir()  # an interrupted save is never a candidate
    assert find_resume("auto", ckpt) == (ckpt, "step_000010")
    assert find_resume(str(ckpt), tmp_path / "elsewhere") == (ckpt, "step_000010")
    assert find_resume(str(ckpt / "step_000010"), tmp_path / "elsewhere") == (ckpt, "step_000010")
    with pytest.raises(BertptError, match="--resume none, but"):
        find_resume("none", ckpt)
    with pytest.raises(BertptError, match="not a bertpt checkpoint directory"):
        find_resume(str(tmp_path), ckpt)
    assert tag_for(7) == "step_000007"


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    ckpt = tmp_path / "checkpoints"
    fake_tag(ckpt, 10)
    newest = fake_tag(ckpt, 20)
    with open(newest / "rng_rank_0.pt", "r+b") as f:
        f.truncate(50)
    assert verify(newest) == "rng_rank_0.pt has 50 bytes, 101 were written"
    assert find_resume("auto", ckpt) == (ckpt, "step_000010")
    err = capsys.readouterr().err
    assert f"skipped checkpoint {newest} is incomplete or damaged (rng_rank_0.pt has 50 bytes, 101 were written)" in err
    assert f"resuming from {ckpt / 'step_000010'}" in err
    (ckpt / "step_000010" / "mp_rank_00_model_states.pt").unlink()
    with pytest.raises(BertptError, match="no usable checkpoint in .*mp_rank_00_model_states.pt is missing"):
        find_resume("auto", ckpt)
    with pytest.raises(BertptError, match="incomplete or damaged"):
        find_resume(str(newest), ckpt)


def test_latest_missing_or_stale_still_finds_the_newest_complete(tmp_path, capsys):
    ckpt = tmp_path / "checkpoints"
    fake_tag(ckpt, 10)
    fake_tag(ckpt, 20)
    (ckpt / "latest").write_text("step_000010")  # killed between the rename and the `latest` update
    assert find_resume("auto", ckpt) == (ckpt, "step_000020")
    assert "latest names step_000010, but step_000020 is the newest complete" in capsys.readouterr().err
    (ckpt / "latest").unlink()
    assert find_resume("auto", ckpt) == (ckpt, "step_000020")


def test_rng_states_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_static_files_let_an_export_stand_alone(tmp_path, tiny_data):
    config = bert_config("bert-tiny", 1000)
    write_static_files(tmp_path / "ckpt", config, tiny_data / "tokenizer", "abc123")
    assert json.loads((tmp_path / "ckpt" / "model_config.json").read_text())["hidden_size"] == 128
    assert json.loads((tmp_path / "ckpt" / "bertpt.json").read_text()) == {"tokenizer_hash": "abc123"}
    assert (tmp_path / "ckpt" / "tokenizer" / "tokenizer.json").is_file()
