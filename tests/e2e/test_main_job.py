"""The README's main command, verbatim but for fewer steps and a temporary output directory:
`deepspeed bertpt/pretrain.py --deepspeed_config ds_configs/zero2.json` on the built-in corpus."""

from __future__ import annotations

import pytest
from deepspeed.accelerator import get_accelerator
from transformers import AutoModelForPreTraining, AutoTokenizer

from bertpt.engine import native_bf16

from tests.helpers import read_metrics, run

pytestmark = pytest.mark.slow


def test_main_job_prepares_trains_resumes_and_exports(tmp_path):
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # prepare the built-in corpus from scratch
    out = tmp_path / "run"
    preset = "ds_configs/zero2.json"  # bf16 "auto": bf16 where native, fp32 elsewhere (an AVX2-only CPU)
    precision = ', bf16 (bf16 "auto" -> true' if native_bf16(get_accelerator()) else ', fp32 (bf16 "auto" -> false'
    base = ["deepspeed", "bertpt/pretrain.py", "--deepspeed_config", preset, "--output_dir", str(out)]
    proc = run([*base, "--max_steps", "16", "--log_steps", "4", "--eval_steps", "8"], env=cache)
    log = proc.stdout + proc.stderr
    assert "preparing the built-in demo corpus" in log
    meta = (tmp_path / "cache" / "bertpt").glob("builtin-*/meta.json")
    assert len(list(meta)) == 1
    assert "bert-mini" in log and "ZeRO stage 2" in log and precision in log
    assert "Attempting to get learning rate" not in log and "[INFO] [engine.py" not in log  # DeepSpeed at WARNING
    assert "pretrain:" not in proc.stderr  # not a terminal: plain progress lines, no tqdm bar
    assert "step 8/16 (50.0%) | loss" in proc.stderr and "ETA" in proc.stderr
    assert "finished at step 16 of 16" in log
    for line in ("train  mlm loss", "eval   mlm loss", "tokens/s", "checkpoint", "tensorboard", "hf export"):
        assert line in log, line
    metrics = read_metrics(out)
    assert sorted(metrics) == [4, 8, 12, 16]
    assert metrics[16]["mlm_loss"] < metrics[4]["mlm_loss"]
    assert sorted(read_metrics(out, "eval")) == [8, 16]
    assert any((out / "tb").iterdir())

    model = AutoModelForPreTraining.from_pretrained(str(out / "hf"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "hf"))
    assert model.config.vocab_size == len(tokenizer) == 8192

    # the same command continues from the checkpoint it left
    proc = run([*base, "--max_steps", "20", "--log_steps", "4", "--eval_steps", "8"], env=cache)
    log = proc.stdout + proc.stderr
    assert "resumed at step 16" in log and "finished at step 20 of 20 (4 steps this run" in log
    assert "preparing the built-in demo corpus" not in log
    assert sorted(read_metrics(out)) == [4, 8, 12, 16, 20]
