"""Saving helpers: RNG states round-trip, static files, --keep_last pruning. (Finding a checkpoint to
resume is tested in test_resume.py, the layout in test_ckpt_layout.py.)"""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from bertpt.ckpt.checkpoint import prune, rng_state, set_rng_state, write_static_files
from bertpt.ckpt.layout import published_tags
from bertpt.model import bert_config

from tests.ckpt_fakes import fake_tag


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
    assert json.loads((tmp_path / "ckpt" / "bertpt.json").read_text()) == {
        "tokenizer_hash": "abc123",
        "objective": "mlm_nsp",
    }
    assert (tmp_path / "ckpt" / "tokenizer" / "tokenizer.json").is_file()
    write_static_files(tmp_path / "mlm", config, tiny_data / "tokenizer", "abc123", "mlm")
    assert json.loads((tmp_path / "mlm" / "bertpt.json").read_text())["objective"] == "mlm"


def test_prune_keeps_the_newest_published_tags(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for step in (2, 4, 10, 6):
        fake_tag(ckpt, step)
    (ckpt / "step_000012.tmp").mkdir()  # not a published tag: neither counted nor deleted here
    assert prune(ckpt, 0) == [] and len(published_tags(ckpt)) == 4  # 0: keep all
    assert prune(ckpt, 2) == ["step_000004", "step_000002"]
    assert sorted(p.name for p in ckpt.iterdir() if p.is_dir()) == ["step_000006", "step_000010", "step_000012.tmp"]
