"""The time-to-quality benchmark's own parts (benchmarks/time_to_quality.py, benchmarks/hf_pretrain.py): the one
evaluator's masks and held-out arrays, the budget arithmetic, the records and the table. The benchmark itself
(which trains four models) is not part of pytest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bertpt.data.dataset import PretrainingData
from bertpt.data.format import load_meta
from bertpt.errors import BertptError

from benchmarks import hf_pretrain
from benchmarks import time_to_quality as ttq

SPECIAL = {0, 1, 2, 3, 4}  # pad unk cls sep mask
MASK = 4


def test_draw_masks_follows_berts_rule_and_is_fixed_by_the_seed():
    rng = np.random.default_rng(0)
    tokens = []
    for _ in range(800):
        n = int(rng.integers(10, 129))
        t = rng.integers(5, 1000, n)
        t[0], t[n // 2], t[-1] = 2, 3, 3
        tokens.append(t)
    x, y = ttq.draw_masks(tokens, SPECIAL, MASK, 1000, seed=7, max_predictions=20)
    x2, y2 = ttq.draw_masks(tokens, SPECIAL, MASK, 1000, seed=7, max_predictions=20)
    assert all((a == b).all() for a, b in zip(x + y, x2 + y2))  # drawn once: the same masks on every call
    x3, _ = ttq.draw_masks(tokens, SPECIAL, MASK, 1000, seed=8, max_predictions=20)
    assert any((a != b).any() for a, b in zip(x, x3))
    masked = replaced = kept = 0
    for t, xi, yi in zip(tokens, x, y):
        chosen = np.flatnonzero(yi != -100)
        assert len(chosen) == min(20, max(1, round(len(t) * 0.15)))
        assert not np.isin(t[chosen], list(SPECIAL)).any()  # [CLS]/[SEP] never predicted
        assert (yi[chosen] == t[chosen]).all()
        rest = np.setdiff1d(np.arange(len(t)), chosen)
        assert (xi[rest] == t[rest]).all()  # only chosen positions change
        masked += int((xi[chosen] == MASK).sum())
        kept += int((xi[chosen] == t[chosen]).sum())
        replaced += int(((xi[chosen] != MASK) & (xi[chosen] != t[chosen])).sum())
    total = masked + kept + replaced
    assert total > 8000
    assert 0.78 < masked / total < 0.82
    assert 0.08 < kept / total < 0.12  # (a random id equal to the original counts as kept: 1 in 1000)
    assert 0.08 < replaced / total < 0.12


def test_accuracy_counts_labelled_positions_only():
    logits = np.zeros((2, 3, 5))
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 3] = logits[1, 0, 4] = logits[1, 1, 0] = 1
    labels = np.array([[1, 0, -100], [4, -100, 2]])
    assert ttq.accuracy(logits, labels) == (2, 4)
    assert ttq.accuracy(np.array([[0.2, 0.8], [0.9, 0.1]]), np.array([1, 1])) == (1, 2)


def test_heldout_arrays_hold_the_instances_and_are_reused(tiny_data, tmp_path):
    cfg = ttq.Config(out=tmp_path, glue_dir=None, eval_instances=50, seed=3)
    path = ttq.heldout(tiny_data, tmp_path / "eval" / "h.npz", cfg)
    a = dict(np.load(path))
    meta = load_meta(tiny_data)
    val = PretrainingData(meta, next(s for s in meta.splits if s != "train"))
    n = min(50, len(val))
    assert a["input_ids"].shape == (n, meta.max_seq_length)
    for i in range(n):
        s = val[(i, i)]
        k = len(s.tokens)
        assert a["attention_mask"][i].sum() == k
        assert (a["token_type_ids"][i, : s.a_len] == 0).all() and (a["token_type_ids"][i, s.a_len : k] == 1).all()
        assert (a["token_type_ids"][i, k:] == 0).all() and (a["input_ids"][i, k:] == meta.special_ids.pad).all()
        chosen = a["labels"][i] != -100
        assert 1 <= chosen.sum() <= meta.masking.max_predictions_per_seq
        assert (a["labels"][i][chosen] == s.tokens[chosen[:k]]).all()
        assert a["next_sentence_label"][i] == s.is_random_next
    mtime = path.stat().st_mtime_ns
    assert ttq.heldout(tiny_data, path, cfg) == path and path.stat().st_mtime_ns == mtime  # masks drawn once


def test_steps_for_budget():
    assert ttq.steps_for_budget(600, 1.5) == 900
    assert ttq.steps_for_budget(600, 0.0101) == 6
    assert ttq.steps_for_budget(20, 0.018) == 1  # a row slower than the budget still takes one step
    with pytest.raises(BertptError, match="steps/s"):
        ttq.steps_for_budget(600, 0.0)


def test_bertpt_record_reads_the_training_loop_from_metrics_jsonl(tmp_path):
    lines = [
        {"split": "masking", "step": 0},
        {"split": "train", "step": 10, "tokens": 30000.0, "tokens_per_s": 3000.0, "sequences": 320.0},
        {"split": "train", "step": 20, "tokens": 31000.0, "tokens_per_s": 3100.0, "sequences": 320.0},
        {"split": "train", "step": 25, "tokens": 15000.0, "tokens_per_s": 3000.0, "sequences": 160.0},
        {"split": "eval", "step": 25, "mlm_acc": 0.1},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = ttq.bertpt_record(tmp_path)
    assert r["steps"] == 25 and r["tokens"] == 76000 and r["sequences"] == 800
    assert r["train_seconds"] == pytest.approx(25.0)
    assert r["steps_per_s"] == pytest.approx(1.0)  # the last interval: 5 steps in 5 s


def test_plan_and_finetune_examples():
    cfg = ttq.Config(out=Path("x"), glue_dir=Path("g"), seeds=3, sst2_max_train_samples=2000, epochs=3)
    assert ttq.finetune_examples(cfg) == {"cola": 8551 * 9, "mrpc": 2576 * 9, "stsb": 4249 * 9, "sst2": 2000 * 9}
    quick = ttq.parse_args(["--quick", "--glue_dir", "g"])
    assert (quick.seeds, quick.max_train_samples, quick.minutes) == (1, 100, 20 / 60)
    assert ttq.finetune_examples(quick) == dict.fromkeys(ttq.TASKS, 100 * 3)
    est = ttq.plan(cfg, 10.0)
    assert (
        est["pretrain"] == 4 * (cfg.minutes * 60 + ttq.ROW_OVERHEAD_S) and est["prepare"] == 10 * ttq.PREPARE_S_PER_MB
    )
    assert est["finetune"] == pytest.approx(
        4
        * sum(
            n / ttq.FINETUNE_EXAMPLES_PER_S[t] + 3 * ttq.FINETUNE_RUN_OVERHEAD_S
            for t, n in ttq.finetune_examples(cfg).items()
        )
    )
    cfg.glue_dir = None
    assert ttq.plan(cfg, 10.0)["finetune"] == 0.0
    with pytest.raises(BertptError, match="--rows nope"):
        ttq.parse_args(["--rows", "bertpt,nope"])


def test_table_and_average():
    assert ttq.average({"cola": 0.2, "mrpc": 0.8}) == pytest.approx(0.5)
    assert ttq.average({"cola": 0.2, "mrpc": None}) is None
    rows = [
        {"row": "bertpt", "precision": "fp32", "steps": 1234, "tokens": 4_500_000, "train_seconds": 600.0,
         "mlm_nsp": 0.25, "mlm_mlm": 0.3, "nsp": 0.7, "scores": {"cola": 0.1, "mrpc": 0.8}, "average": 0.45},
        {"row": "reference (x)", "scores": {"cola": 0.5, "mrpc": None}, "average": None},
    ]  # fmt: skip
    lines = ttq.table(rows, ("cola", "mrpc"))
    assert lines[1] == ["bertpt", "fp32", "1,234", "4.50M", "10.00", "25.0", "30.0", "70.0", "10.0", "80.0", "45.0"]
    assert lines[2] == ["reference (x)", "-", "-", "-", "-", "-", "-", "-", "50.0", "-", "-"]
    md = ttq.render(lines, markdown=True).splitlines()
    assert md[0].startswith("| row | precision |") and md[1] == "|" + "---|" * 11 and len(md) == 4
    text = ttq.render(lines).splitlines()
    assert len({len(x) for x in text}) == 1  # aligned columns


def test_baseline_optimizer_and_schedule_follow_the_json():
    from bertpt.config import load_ds_config

    ds = load_ds_config(str(ttq.REPO / "ds_configs" / "zero0.json"), max_steps=100)
    model = torch.nn.Sequential()
    model.add_module("dense", torch.nn.Linear(4, 4))
    model.add_module("LayerNorm", torch.nn.LayerNorm(4))
    opt, sched, clip = hf_pretrain.optimizer_and_schedule(model, ds)
    p = ds["optimizer"]["params"]
    assert clip == ds["gradient_clipping"] == 1.0
    decay, no_decay = opt.param_groups
    assert [x.shape for x in decay["params"]] == [(4, 4)] and decay["weight_decay"] == p["weight_decay"]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0  # biases and LayerNorm weights
    assert opt.defaults["betas"] == tuple(p["betas"]) and opt.defaults["eps"] == p["eps"]
    warmup = ds["scheduler"]["params"]["warmup_num_steps"]
    assert warmup == 10
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[warmup] == pytest.approx(p["lr"]) and lrs[55] == pytest.approx(p["lr"] * 0.5)
    assert opt.param_groups[0]["lr"] == 0.0  # decayed to zero at total_num_steps, as DeepSpeed's WarmupDecayLR


def test_baseline_example_is_a_segment_pair_the_collator_pads(tiny_data):
    import transformers

    meta = load_meta(tiny_data)
    data = PretrainingData(meta, "train")
    tok = transformers.AutoTokenizer.from_pretrained(str(meta.tokenizer_path()))
    samples = [data[(i, i)] for i in range(8)]
    batch = transformers.DataCollatorForLanguageModeling(tok, mlm_probability=0.15)(
        [hf_pretrain.example(s) for s in samples]
    )
    longest = max(len(s.tokens) for s in samples)
    assert batch["input_ids"].shape == (8, longest)  # padded to the batch's longest instance
    assert batch["next_sentence_label"].tolist() == [s.is_random_next for s in samples]
    for i, s in enumerate(samples):
        k = len(s.tokens)
        assert batch["token_type_ids"][i, s.a_len : k].eq(1).all() and batch["token_type_ids"][i, : s.a_len].eq(0).all()
        assert batch["attention_mask"][i].sum() == k
