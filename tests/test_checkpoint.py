"""Checkpoint helpers: where a resume comes from, RNG states round-trip, static files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from bertpt.checkpoint import find_resume, rng_state, set_rng_state, tag_for, write_static_files
from bertpt.errors import BertptError
from bertpt.model import bert_config


def test_find_resume(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert find_resume("auto", ckpt) is None  # nothing yet: start fresh
    assert find_resume("none", ckpt) is None
    (ckpt / "step_000010").mkdir(parents=True)
    (ckpt / "step_000010" / "mp_rank_00_model_states.pt").write_bytes(b"")
    (ckpt / "latest").write_text("step_000010")
    assert find_resume("auto", ckpt) == (ckpt, None)
    assert find_resume(str(ckpt), tmp_path / "elsewhere") == (ckpt, None)
    assert find_resume(str(ckpt / "step_000010"), tmp_path / "elsewhere") == (ckpt, "step_000010")
    with pytest.raises(BertptError, match="--resume none, but"):
        find_resume("none", ckpt)
    with pytest.raises(BertptError, match="not a DeepSpeed checkpoint"):
        find_resume(str(tmp_path), ckpt)
    assert tag_for(7) == "step_000007"


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
