"""--init_from without --model: the model configuration comes from the source (runs: e2e/test_init_from.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import BertConfig

from bertpt.ckpt.warmstart import source_model_config
from bertpt.errors import BertptError

from tests.helpers import REPO

RELEASE = REPO / "tests" / "fixtures" / "release_0_1"


@pytest.mark.parametrize("form", ["run", "checkpoints", "tag"])
def test_a_bertpt_checkpoint_gives_its_model_config(form):
    source = {"run": RELEASE, "checkpoints": RELEASE / "checkpoints", "tag": RELEASE / "checkpoints" / "step_000002"}
    config, file = source_model_config(source[form], vocab_size=1000)
    saved = json.loads((RELEASE / "checkpoints" / "model_config.json").read_text())
    assert file == RELEASE / "checkpoints" / "model_config.json"
    assert isinstance(config, BertConfig)
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        assert getattr(config, key) == saved[key], key
    assert config.vocab_size == 1000  # the data's: a mismatch with the weights is initial_weights' one line


def test_a_hugging_face_directory_gives_its_config_json(tmp_path):
    BertConfig(hidden_size=96, num_hidden_layers=3, num_attention_heads=3, intermediate_size=200).save_pretrained(
        tmp_path / "hf"
    )
    config, file = source_model_config(tmp_path / "hf", vocab_size=321)
    assert file == tmp_path / "hf" / "config.json"
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size) == (
        96,
        3,
        200,
        321,
    )


def test_a_source_without_a_model_configuration_is_one_line(tmp_path):
    with pytest.raises(BertptError, match=r"--init_from .*empty: cannot read its model configuration .*pass --model"):
        source_model_config(tmp_path / "empty", 100)
    ckpts = tmp_path / "run" / "checkpoints"
    shutil.copytree(RELEASE / "checkpoints", ckpts)
    shutil.rmtree(ckpts / "step_000002")
    (ckpts / "latest").unlink()
    with pytest.raises(BertptError, match="holds no published checkpoint"):
        source_model_config(tmp_path / "run", 100)
