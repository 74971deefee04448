"""--init_from: continued pretraining from a Hugging Face BERT directory, phase 2 from a bertpt checkpoint.

The acceptance check: export → from_pretrained → logits equal to the engine's on a fixed batch, and
`--init_from` that export trains with the same losses as `--init_from` the checkpoint it was exported
from. Dropout is off (a BertConfig JSON) so that each run is a pure function of its initial weights;
with fp32 both runs start from bitwise-identical weights (the export and the checkpoint are
consolidated by the same DeepSpeed code) and run the same arithmetic, so the losses are compared
exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bertpt.ckpt.warmstart import initial_weights
from bertpt.data.format import load_meta
from bertpt.errors import BertptError
from bertpt.model import BertForPreTraining, bert_config

from tests.helpers import (
    deepspeed_cmd,
    ds_config,
    free_port,
    losses,
    python_cmd,
    read_metrics,
    run,
    train_args,
)

pytestmark = pytest.mark.slow
EXPORT_CHECK = str(Path(__file__).parent / "export_check.py")


def error_lines(proc):
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return [line for line in proc.stderr.splitlines() if line.startswith("bertpt-pretrain: error:")]


def tiny_config(tiny_data, **extra) -> dict:
    """bert-tiny's shape for the tiny data's vocabulary."""
    meta = load_meta(tiny_data)
    return {
        "vocab_size": meta.vocab_size,
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 512,
        "pad_token_id": meta.special_ids.pad,
        **extra,
    }


@pytest.fixture(scope="module")
def model_json(tiny_data, tmp_path_factory) -> str:
    """bert-tiny without dropout: a run is then a pure function of its initial weights and data."""
    path = tmp_path_factory.mktemp("model") / "bert-tiny-nodropout.json"
    path.write_text(json.dumps(tiny_config(tiny_data, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)))
    return str(path)


@pytest.fixture(scope="module")
def phase1(tiny_data, model_json, tmp_path_factory):
    """4 steps, 2 ranks, ZeRO-2, fp32, trained and exported by bertpt's own setup/fit/finish inside
    export_check.py, which then compares the export's logits with the engine's on every rank."""
    tmp = tmp_path_factory.mktemp("phase1")
    out, config = tmp / "run", Path(ds_config(tmp, "zero2", "fp32"))
    fast = json.loads(config.read_text())
    fast["optimizer"]["params"]["lr"] = 5e-3  # 10x the preset's: 4 steps then visibly lower the loss
    config.write_text(json.dumps(fast))
    proc = run(
        [
            "deepspeed",
            "--num_gpus",
            "2",
            "--master_port",
            str(free_port()),
            EXPORT_CHECK,
            *train_args(tiny_data, out, str(config), 4, "--model", model_json),
        ]
    )
    return out, proc.stdout + proc.stderr


def test_export_loads_in_transformers_and_gives_the_engines_logits(phase1):
    from transformers import AutoModelForPreTraining
    from transformers import BertForPreTraining as HFBertForPreTraining

    out, log = phase1
    assert log.count("logits match") == 2, log[-3000:]
    hf = AutoModelForPreTraining.from_pretrained(str(out / "hf"))  # no custom code
    assert type(hf) is HFBertForPreTraining


def test_every_source_form_loads_the_same_weights(phase1, tiny_data, model_json):
    """In process: the export, the run dir, its checkpoints dir and the tag give bitwise-equal weights;
    a source trained with another tokenizer is refused."""
    out, _ = phase1
    meta = load_meta(tiny_data)
    config = bert_config(model_json, meta.vocab_size, meta.special_ids.pad)
    weights, lines = [], []
    for source in (out / "hf", out, out / "checkpoints", out / "checkpoints" / "step_000004"):
        torch.manual_seed(0)
        model = BertForPreTraining(config)
        lines.append(initial_weights(str(source), model, meta.tokenizer_hash))
        weights.append(model.state_dict())
    assert all(w.keys() == weights[0].keys() and all(torch.equal(w[k], weights[0][k]) for k in w) for w in weights)
    assert "Hugging Face BertForPreTraining: all weights" in lines[0]
    assert all(f"initialised from {out / 'checkpoints' / 'step_000004'} (all weights" in line for line in lines[1:])
    for source in (out / "hf", out / "checkpoints"):
        with pytest.raises(BertptError, match="was trained with another tokenizer"):
            initial_weights(str(source), BertForPreTraining(config), "0123456789abcdef")


def test_init_from_the_export_trains_like_init_from_the_checkpoint(phase1, tiny_data, model_json, tmp_path):
    out, _ = phase1
    config = ds_config(tmp_path, "zero2", "fp32")
    runs = {}
    for name, source in (("hf", out / "hf"), ("ckpt", out / "checkpoints")):
        runs[name] = tmp_path / name
        proc = run(
            deepspeed_cmd(
                2, *train_args(tiny_data, runs[name], config, 3, "--model", model_json, "--init_from", str(source))
            )
        )
        log = proc.stdout + proc.stderr
        assert log.count("bertpt: initialised from") == 1, log[-3000:]  # rank 0 only
        # transformers' load report and zero_to_fp32's prints stay quiet, in --init_from and in the final export
        assert "LOAD REPORT" not in log and "Reconstructed fp32 state dict" not in log, log[-3000:]
        assert "resumed" not in log
        assert sorted(read_metrics(runs[name])) == [1, 2, 3]  # a fresh step count and schedule
    got_hf, got_ckpt = losses(runs["hf"]), losses(runs["ckpt"])
    assert got_hf == got_ckpt, (got_hf, got_ckpt)  # same fp32 weights, same arithmetic: bitwise
    # Step 1 sees the same batch as phase 1's step 1 (same seed, data position 0) and phase 1 had no
    # dropout either: there it met fresh weights, here the trained ones.
    fresh = losses(out)[0]
    assert got_hf[0] < fresh - 0.3, (got_hf[0], fresh)

    # A requeued job: the same command again resumes its own checkpoint; --init_from is ignored.
    proc = run(
        deepspeed_cmd(
            2,
            *train_args(
                tiny_data, runs["ckpt"], config, 3, "--model", model_json, "--init_from", str(out / "checkpoints")
            ),
        )
    )
    log = proc.stdout + proc.stderr
    assert log.count(f"--init_from {out / 'checkpoints'} is ignored") == 1, log[-3000:]
    assert "resumed at step 3" in log and "already at step 3" in log
    assert "initialised from" not in log


def test_init_from_a_bert_model_without_heads(tiny_data, tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(**tiny_config(tiny_data))).save_pretrained(str(tmp_path / "encoder"))
    out = tmp_path / "run"
    proc = run(
        python_cmd(
            *train_args(
                tiny_data, out, ds_config(tmp_path, "zero2", "fp32"), 2, "--init_from", str(tmp_path / "encoder")
            )
        )
    )
    log = proc.stdout + proc.stderr
    assert (
        f"initialised from {tmp_path / 'encoder'} (Hugging Face BertModel: bert.embeddings, bert.encoder, "
        "bert.pooler); fresh: cls.predictions, cls.seq_relationship"
    ) in log, log[-3000:]
    metrics = read_metrics(out)
    assert sorted(metrics) == [1, 2] and all(math.isfinite(m["loss"]) for m in metrics.values())


def test_bad_init_from_is_one_line(phase1, tiny_data, tmp_path):
    from transformers import BertConfig, BertModel

    config = ds_config(tmp_path, "zero2", "fp32")
    BertModel(BertConfig(**tiny_config(tiny_data, vocab_size=500))).save_pretrained(str(tmp_path / "other-vocab"))
    cases = [
        (
            ["--init_from", str(tmp_path / "other-vocab")],
            f"--init_from {tmp_path / 'other-vocab'} has vocab_size 500 but the data's tokenizer has "
            f"{load_meta(tiny_data).vocab_size} tokens",
        ),
        (["--init_from", str(tmp_path / "nope")], f"--init_from {tmp_path / 'nope'}: no such directory"),
        (
            ["--init_from", str(phase1[0] / "checkpoints"), "--model", "bert-mini"],
            "has hidden_size 128 but this run's model has 256",
        ),
    ]
    for k, (flags, expected) in enumerate(cases):
        proc = run(python_cmd(*train_args(tiny_data, tmp_path / f"out{k}", config, 2), *flags), check=False)
        errors = error_lines(proc)
        assert proc.returncode == 2 and len(errors) == 1 and expected in errors[0], (expected, proc.stderr[-3000:])
        assert not (tmp_path / f"out{k}" / "checkpoints").exists()


def test_init_from_without_model_takes_the_sources_configuration(phase1, tiny_data, tmp_path):
    """No --model: the shape (and the rest: here no dropout) comes from the source, and the banner says so;
    bert-mini, the fresh-run default, would not fit these weights (hidden 128, not 256)."""
    source = phase1[0] / "checkpoints"
    args = train_args(tiny_data, tmp_path / "run", ds_config(tmp_path, "zero2", "fp32"), 2, "--init_from", str(source))
    at = args.index("--model")
    del args[at : at + 2]
    proc = run(python_cmd(*args))
    log = proc.stdout + proc.stderr
    assert f"bertpt: the model configuration of --init_from ({source / 'model_config.json'})" in log, log[-3000:]
    assert f"initialised from {source / 'step_000004'} (all weights" in log
    theirs = json.loads((source / "model_config.json").read_text())
    ours = json.loads((tmp_path / "run" / "checkpoints" / "model_config.json").read_text())
    for key in ("hidden_size", "num_hidden_layers", "intermediate_size", "hidden_dropout_prob", "vocab_size"):
        assert ours[key] == theirs[key], key
    assert theirs["hidden_dropout_prob"] == 0.0  # not a preset's 0.1: the source's own configuration
    assert sorted(read_metrics(tmp_path / "run")) == [1, 2]
