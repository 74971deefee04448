"""Resume (bertpt/ckpt/resume.py): find -> plan in process, and release 0.1's checkpoint resumed by
the current code (slow: a real run)."""

from __future__ import annotations

import json
import re
import sys

import pytest
from transformers import BertForPreTraining as HFBertForPreTraining

from bertpt.ckpt import resume
from bertpt.ckpt.layout import Checkpoint, RunPosition
from bertpt.data.dataset import load_meta
from bertpt.errors import BertptError
from bertpt.model import bert_config

from tests.ckpt_fakes import fake_tag, release_run
from tests.helpers import python_cmd, read_metrics, run


def test_find(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert resume.find("auto", ckpt) is None  # nothing yet: start fresh
    assert resume.find("none", ckpt) is None
    fake_tag(ckpt, 10)
    (ckpt / "step_000020.tmp").mkdir()  # an interrupted save is never a candidate
    assert resume.find("auto", ckpt) == Checkpoint(ckpt, "step_000010")
    assert resume.find(str(ckpt), tmp_path / "elsewhere") == Checkpoint(ckpt, "step_000010")
    assert resume.find(str(tmp_path), tmp_path / "elsewhere") == Checkpoint(ckpt, "step_000010")  # the output dir
    assert resume.find(str(ckpt / "step_000010"), tmp_path / "elsewhere") == Checkpoint(ckpt, "step_000010")
    with pytest.raises(BertptError, match="--resume none, but"):
        resume.find("none", ckpt)
    (tmp_path / "other").mkdir()
    with pytest.raises(BertptError, match="not a bertpt checkpoint directory"):
        resume.find(str(tmp_path / "other"), ckpt)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    ckpt = tmp_path / "checkpoints"
    fake_tag(ckpt, 10)
    newest = fake_tag(ckpt, 20)
    with open(newest / "rng_rank_0.pt", "r+b") as f:
        f.truncate(50)
    assert resume.find("auto", ckpt) == Checkpoint(ckpt, "step_000010")
    err = capsys.readouterr().err
    assert f"skipped checkpoint {newest} is incomplete or damaged (rng_rank_0.pt has 50 bytes, 101 were written)" in err
    assert f"resuming from {ckpt / 'step_000010'}" in err
    (ckpt / "step_000010" / "mp_rank_00_model_states.pt").unlink()
    with pytest.raises(
        BertptError,
        match="no usable checkpoint in .*mp_rank_00_model_states.pt is missing.*"
        "pass --resume none with another --output_dir",
    ):
        resume.find("auto", ckpt)
    with pytest.raises(BertptError, match="incomplete or damaged"):
        resume.find(str(newest), ckpt)


def test_latest_missing_or_stale_still_finds_the_newest_complete(tmp_path, capsys):
    ckpt = tmp_path / "checkpoints"
    fake_tag(ckpt, 10)
    fake_tag(ckpt, 20)
    (ckpt / "latest").write_text("step_000010")  # killed between the rename and the `latest` update
    assert resume.find("auto", ckpt) == Checkpoint(ckpt, "step_000020")
    assert "latest names step_000010, but step_000020 is the newest complete" in capsys.readouterr().err
    (ckpt / "latest").unlink()
    assert resume.find("auto", ckpt) == Checkpoint(ckpt, "step_000020")


@pytest.fixture
def release(tmp_path):
    """release 0.1's run (1 rank, ZeRO-2, micro 4, global batch 4, step 2) and this run's model config."""
    out = release_run(tmp_path)
    meta = load_meta(out / "data")
    config = bert_config(str(out / "model.json"), meta.vocab_size, meta.special_ids.pad).to_dict()
    return out, resume.find("auto", out / "checkpoints"), config, meta.tokenizer_hash


def test_plan_on_the_same_world_size_loads_the_tag_as_it_is(release):
    out, found, config, tokenizer = release
    ds = json.loads((out / "ds_config.json").read_text())
    plan = resume.plan(found, ds, 0, 1, config, tokenizer)
    assert plan == resume.Plan(ds, found, "step_000002", RunPosition(2, 8, 1, 4, 1, 4, 2), restore_rng=True)
    assert resume.plan(None, ds, 0, 1, config, tokenizer) == resume.Plan(ds)


def test_plan_on_another_world_size_keeps_the_global_batch(release, capsys):
    """ZeRO 0 (no conversion needed): 1 rank x micro 4 saved; 2 ranks with micro 2 keep the global batch 4."""
    _, found, config, tokenizer = release
    state = found.path / "bertpt_state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "zero_stage": 0}))  # as if saved with ZeRO 0
    ds = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1}
    plan = resume.plan(found, ds, 0, 2, config, tokenizer)
    assert plan.load_tag == "step_000002" and not plan.restore_rng
    assert (plan.ds_config["train_micro_batch_size_per_gpu"], plan.ds_config["gradient_accumulation_steps"]) == (2, 1)
    assert (
        "world size 1 -> 2: micro batch 4 -> 2, gradient accumulation 1 -> 1 keeps the global batch 4"
        in capsys.readouterr().out
    )
    with pytest.raises(BertptError, match="global batch of 4, which 3 ranks x micro batch 2 = 6 does not divide"):
        resume.plan(found, ds, 0, 3, config, tokenizer)
    with pytest.raises(BertptError, match="was trained with ZeRO stage 0 but the DeepSpeed JSON asks for stage 2"):
        resume.plan(found, {**ds, "zero_optimization": {"stage": 2}}, 0, 2, config, tokenizer)


@pytest.mark.slow
def test_release_0_1_checkpoint_resumes_and_exports(tmp_path):
    """release 0.1's step_000002, resumed by this code for steps 3-4 (its README's command), gives the
    losses of its uninterrupted run; bertpt-export of the result loads in transformers."""
    out = release_run(tmp_path)  # the run's output directory: checkpoints/ holds step_000002
    proc = run(
        python_cmd(
            "--deepspeed_config",
            str(out / "ds_config.json"),
            "--data",
            str(out / "data"),
            "--output_dir",
            str(out),
            "--model",
            str(out / "model.json"),
            "--max_steps",
            "4",
            "--save_steps",
            "2",
            "--log_steps",
            "1",
            "--eval_steps",
            "0",
            "--eval_samples",
            "8",
            "--num_workers",
            "0",
        )
    )
    assert "resumed at step 2" in proc.stdout + proc.stderr
    reference = {
        json.loads(line)["step"]: json.loads(line)
        for line in (out / "metrics_uninterrupted.jsonl").read_text().splitlines()
    }
    got = read_metrics(out)
    assert sorted(got) == [3, 4]
    assert [got[s]["loss"] for s in (3, 4)] == pytest.approx([reference[s]["loss"] for s in (3, 4)], rel=1e-6, abs=0)
    state = json.loads((out / "checkpoints" / "step_000004" / "bertpt_state.json").read_text())
    assert (state["step"], state["consumed_samples"]) == (4, 16)
    # the score curves' axes, recorded from now on (release 0.1's step_000002 has neither: counted from 0)
    seq_len = json.loads((out / "data" / "meta.json").read_text())["max_seq_length"]
    assert state["tokens_seen"] == 16 * seq_len
    assert 0 < state["train_seconds"] < 600

    hf_dir = out / "hf_export"
    run([sys.executable, "-m", "bertpt.export", str(out / "checkpoints"), str(hf_dir)])
    assert "tag `step_000004`" in (hf_dir / "README.md").read_text()
    model = HFBertForPreTraining.from_pretrained(str(hf_dir))
    assert model.config.hidden_size == 32 and model.config.vocab_size == 120


def test_setup_resumes_through_find_plan_load_only():
    """pretrain.setup's resume is resume.find -> resume.plan -> resume.load, in that order, and nothing
    else of the resume machinery (no universal.*, no engine.load_checkpoint of its own)."""
    import inspect

    from bertpt import pretrain

    source = inspect.getsource(pretrain.setup)
    calls = [source.index(f"resume.{name}(") for name in ("find", "plan", "load")]
    assert calls == sorted(calls) and all(source.count(f"resume.{n}(") == 1 for n in ("find", "plan", "load"))
    whole = inspect.getsource(pretrain)
    assert "universal" not in whole and "load_checkpoint" not in whole and "newest_good" not in whole


@pytest.mark.parametrize(
    "batch",
    [
        {"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2},
        {"train_micro_batch_size_per_gpu": 4},
        {"train_batch_size": 8},
        {"train_batch_size": 8, "train_micro_batch_size_per_gpu": 2},
        {"train_batch_size": 12, "gradient_accumulation_steps": 3},
        {"train_batch_size": 6, "train_micro_batch_size_per_gpu": 3, "gradient_accumulation_steps": 2},
    ],
)
def test_batch_sizes_are_deepspeeds_before_the_engine_exists(batch):
    """universal.batch_sizes against DeepSpeed's own resolution (DeepSpeedConfig, one process: world size 1),
    and the same rules on 2 ranks."""
    from deepspeed.runtime.config import DeepSpeedConfig

    from bertpt.ckpt import universal

    ds = DeepSpeedConfig(dict(batch))
    expected = (ds.train_micro_batch_size_per_gpu, ds.gradient_accumulation_steps, ds.train_batch_size)
    assert universal.batch_sizes(batch, 1) == expected
    micro, accum, total = universal.batch_sizes(batch, 2)
    assert micro * accum * 2 == total or "gradient_accumulation_steps" in batch and "train_batch_size" in batch
    if "train_batch_size" in batch:
        assert total == batch["train_batch_size"]


def test_plan_on_the_same_world_size_refuses_another_global_batch_or_zero_stage(release):
    """Saved: 1 rank, micro 4 x accumulation 1 = global batch 4, ZeRO 2. Another split of 4 resumes; any other
    global batch (given directly or through DeepSpeed's derivation) or ZeRO stage is refused."""
    _, found, config, tokenizer = release
    same = {"train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 2, "zero_optimization": {"stage": 2}}
    assert resume.plan(found, same, 0, 1, config, tokenizer).load_tag == "step_000002"
    for batch, given in (
        ({"train_micro_batch_size_per_gpu": 2}, "gives 2 (2 x 1 x 1 rank)"),
        ({"train_batch_size": 8, "train_micro_batch_size_per_gpu": 4}, "gives 8 (4 x 2 x 1 rank)"),
        ({"train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 3}, "gives 12 (4 x 3 x 1 rank)"),
    ):
        with pytest.raises(
            BertptError, match=r"global batch of 4 \(micro batch 4 x gradient accumulation 1 .*" + re.escape(given)
        ):
            resume.plan(found, {**batch, "zero_optimization": {"stage": 2}}, 0, 1, config, tokenizer)
    for stage in (0, 1, 3):
        with pytest.raises(BertptError, match=f"ZeRO stage 2 but the DeepSpeed JSON asks for stage {stage}"):
            resume.plan(found, {**same, "zero_optimization": {"stage": stage}}, 0, 1, config, tokenizer)
