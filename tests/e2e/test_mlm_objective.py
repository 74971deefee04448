"""The MLM-only objective end to end: bertpt-prepare --objective mlm, training through the deepspeed
launcher (2 ranks, ZeRO-2: the pooler and NSP head get no gradient), an export that transformers loads
as BertForMaskedLM with the engine's logits, no NSP figure anywhere, and the objective in the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bertpt.ckpt import layout, resume
from bertpt.ckpt.warmstart import initial_weights
from bertpt.data.format import load_meta
from bertpt.data.prepare import main as prepare_main
from bertpt.errors import BertptError
from bertpt.model import BertForPreTraining, bert_config

from tests.helpers import ds_config, free_port, read_metrics, run, train_args

pytestmark = pytest.mark.slow
CHECK = str(Path(__file__).parent / "mlm_export_check.py")


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory, corpus_dir, tiny_data):
    tmp = tmp_path_factory.mktemp("mlm")
    data, out = tmp / "data", tmp / "run"
    prepare_main(
        [
            str(corpus_dir),
            "--output_dir",
            str(data),
            "--objective",
            "mlm",
            "--tokenizer",
            str(tiny_data / "tokenizer"),
            "--max_seq_length",
            "64",
            "--val_fraction",
            "0.1",
            "--num_workers",
            "0",
            "--sentence_splitter",
            "lines",
        ]
    )
    config = ds_config(tmp, "zero2", "fp32")
    cmd = ["deepspeed", "--num_gpus", "2", "--master_port", str(free_port()), CHECK]
    proc = run([*cmd, *train_args(data, out, config, 4, "--eval_steps", "2", "--save_steps", "2")])
    return data, out, proc.stdout + proc.stderr


def test_mlm_run_logs_no_nsp_and_exports_a_masked_lm(mlm_run):
    from transformers import AutoModelForMaskedLM, BertForMaskedLM

    data, out, log = mlm_run
    assert log.count("logits match") == 2, log[-3000:]
    assert "MLM only: no NSP loss" in log, log[-3000:]
    lines = [line for line in log.splitlines() if "mlm" in line]  # progress, eval and summary lines
    assert len(lines) >= 8 and not [line for line in lines if "nsp" in line], log[-3000:]
    train, evals = read_metrics(out), read_metrics(out, "eval")
    assert sorted(train) == [1, 2, 3, 4] and sorted(evals) == [2, 4]
    rows = [*train.values(), *evals.values()]
    assert not [k for r in rows for k in r if "nsp" in k]
    assert all(r["loss"] == pytest.approx(r["mlm_loss"]) and 0 <= r["mlm_acc"] <= 1 for r in rows)
    summary = json.loads((out / "checkpoints" / "step_000004" / layout.SUMMARY).read_text())
    assert "train_mlm_acc" in summary and not [k for k in summary if "nsp" in k]
    assert layout.read_objective(out / "checkpoints") == "mlm"

    hf_config = json.loads((out / "hf" / "config.json").read_text())
    assert hf_config["architectures"] == ["BertForMaskedLM"]
    from safetensors import safe_open

    with safe_open(str(out / "hf" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert not [n for n in names if "pooler" in n or "seq_relationship" in n] and "cls.predictions.bias" in names
    model, info = AutoModelForMaskedLM.from_pretrained(str(out / "hf"), output_loading_info=True)
    assert type(model) is BertForMaskedLM and not any(info.values()), info
    card = (out / "hf" / "README.md").read_text()
    assert "Masked-language modelling only" in card and "AutoModelForMaskedLM" in card


def test_resume_across_objectives_is_refused_and_init_from_crosses_them(mlm_run, tiny_data):
    """The MLM run's checkpoint with NSP data: resume refused in one line; --init_from its export or its
    checkpoint into an NSP model loads the encoder and MLM head (the export: pooler and NSP head fresh)."""
    _, out, _ = mlm_run
    meta = load_meta(tiny_data)  # NSP data of the same tokenizer
    found = resume.find("auto", out / "checkpoints")
    config = bert_config("bert-tiny", meta.vocab_size, meta.special_ids.pad)
    ds = json.loads(Path(ds_config(out, "zero2", "fp32")).read_text())
    with pytest.raises(BertptError, match="was trained for objective mlm but the data is prepared for mlm_nsp"):
        resume.plan(found, ds, 0, 2, config.to_dict(), meta.tokenizer_hash, meta.objective)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    fresh_pooler = model.bert.pooler.dense.weight.detach().clone()
    line = initial_weights(str(out / "hf"), model, meta.tokenizer_hash)
    assert "Hugging Face BertForMaskedLM" in line and "fresh: bert.pooler, cls.seq_relationship" in line, line
    assert torch.equal(model.bert.pooler.dense.weight, fresh_pooler)
    line = initial_weights(str(out), BertForPreTraining(config), meta.tokenizer_hash)
    assert "all weights" in line, line
