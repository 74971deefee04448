"""Bad input to bertpt-pretrain: one clear line, exit code 2, nothing already written is damaged."""

from __future__ import annotations

import hashlib
import json

import pytest

from bertpt.data.corpus import Source
from bertpt.data.prepare import PrepareConfig, prepare

from tests.helpers import ds_config, one_error_line, python_cmd, run, train_args

pytestmark = pytest.mark.slow


def tree_digest(path):
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """An output dir holding a 2-step checkpoint."""
    tmp = tmp_path_factory.mktemp("trained")
    out = tmp / "run"
    run(python_cmd(*train_args(tiny_data, out, ds_config(tmp, "zero2", "fp32"), 2)))
    return out


def test_batch_sizes_that_do_not_fit_the_world_size(tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32", micro=4, accum=1, train_batch_size=64)
    proc = run(python_cmd(*train_args(tiny_data, tmp_path / "out", config, 2)), check=False)
    one_error_line(proc, "train_batch_size")
    assert "leave train_batch_size out" in proc.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_data_longer_than_the_model(tiny_data, tmp_path):
    model = tmp_path / "short.json"
    model.write_text(
        json.dumps(
            {
                "vocab_size": 1000,
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 32,
            }
        )
    )
    proc = run(
        python_cmd(
            *train_args(tiny_data, tmp_path / "out", ds_config(tmp_path, "zero2", "fp32"), 2), "--model", str(model)
        ),
        check=False,
    )
    one_error_line(proc, "holds sequences of 64 tokens but the model has only 32 positions")


def test_unknown_preset_and_unprepared_data(tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")
    proc = run(python_cmd(*train_args(tiny_data, tmp_path / "out", config, 2), "--model", "bert-gigantic"), check=False)
    one_error_line(proc, "--model bert-gigantic: not a preset")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "text.txt").write_text("Just some text.\n")
    proc = run(python_cmd(*train_args(tmp_path / "raw", tmp_path / "out", config, 2)), check=False)
    one_error_line(proc, "is not a prepared data directory")


def test_checkpoint_from_another_tokenizer_is_refused_untouched(trained, corpus_dir, tmp_path):
    other = tmp_path / "cased"
    prepare(
        PrepareConfig(output_dir=str(other), vocab_size=1000, max_seq_length=64, cased=True, num_workers=0),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    before = tree_digest(trained)
    proc = run(python_cmd(*train_args(other, trained, ds_config(tmp_path, "zero2", "fp32"), 4)), check=False)
    one_error_line(proc, "was trained with another tokenizer")
    assert tree_digest(trained) == before


def test_another_model_size_and_resume_none_are_refused_untouched(trained, tiny_data, tmp_path):
    before = tree_digest(trained)
    config = ds_config(tmp_path, "zero2", "fp32")
    proc = run(python_cmd(*train_args(tiny_data, trained, config, 4), "--model", "bert-mini"), check=False)
    one_error_line(proc, "has hidden_size 128 but this run's model has 256")
    proc = run(python_cmd(*train_args(tiny_data, trained, config, 4), "--resume", "none"), check=False)
    one_error_line(proc, "--resume none, but")
    proc = run(
        python_cmd(*train_args(tiny_data, tmp_path / "new", config, 4), "--resume", str(tmp_path / "nope")), check=False
    )
    one_error_line(proc, "no such checkpoint directory")
    assert tree_digest(trained) == before
