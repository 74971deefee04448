"""benchmarks/gpu_check.py: its CPU mode (every row a CPU can run, tiny sizes) passes and its files say so; a planted
mismatch and a hung row make it fail, the hung row cut at its budget while the others run; the optimizer comparison
that the CUDA-only rows run tells agreeing optimizers from disagreeing ones."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from bertpt.optim import Lamb

from benchmarks.gpu_check import OPT_UPDATE_REL, optimizer_agreement, rows
from tests.helpers import REPO, run

SCRIPT = str(REPO / "benchmarks" / "gpu_check.py")
CORRECTNESS_ON_CPU = {"model_fp32", "model_bf16", "unpad", "save_resume"}
CUDA_ONLY = {"fused_adam", "fused_lamb"}


def results(out) -> dict[str, dict]:
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {r["row"]: r for r in lines}  # the latest of each row


def table_row(text: str, name: str) -> str:
    (line,) = [x for x in text.splitlines() if x.split()[:1] == [name]]
    return line


@pytest.mark.slow
def test_cpu_quick_passes_then_a_planted_mismatch_and_a_hung_row_fail(tmp_path):
    out = tmp_path / "check"
    cmd = [sys.executable, SCRIPT, "--device", "cpu", "--quick", "--out_dir", str(out)]
    proc = run(cmd, timeout=600)
    names = [r.name for r in rows(ctx_quick=True)]
    got = results(out)
    assert list(got) == names  # every row, one line each, in plan order
    assert all(r["imported_not_on_gpu_image"] == [] for r in got.values())  # no datasets, no blingfire
    for name in CORRECTNESS_ON_CPU:
        assert got[name]["status"] == "PASS", got[name]
    for name in CUDA_ONLY:
        assert got[name]["status"] == "n/a" and got[name]["summary"] == "n/a on CPU"
    fp16 = torch.ops.mkldnn._is_mkldnn_fp16_supported()  # DeepSpeed's CPU accelerator asks oneDNN
    assert got["fp16_overflow"]["status"] == ("PASS" if fp16 else "n/a")
    m = got["model_fp32"]["measured"]
    assert m["mlm_logits_rel_rms"] < 1e-5 and m["loss_rel"] < 1e-5 and 6 < m["loss_transformers"] < 8  # ~ln(1000)
    assert got["unpad"]["measured"]["length_groups"] >= 2 and got["unpad"]["measured"]["written_out_grad_rel"] < 1e-4
    resume = got["save_resume"]["measured"]
    assert resume["losses_continuous"] == resume["losses_resumed"] and resume["tensors_differing"] == 0
    assert resume["zero_stage"] == 2 and len(resume["losses_resumed"]) == 2
    speed = got["speed_tiny_64_fp32"]
    assert speed["status"] == "done" and speed["measured"]["seq_len"] == 64
    for side in ("bertpt", "transformers"):
        assert speed["measured"][side]["tokens_per_s"] > 0 and speed["measured"][side]["tflops"] > 0
    env = got["env"]["measured"]
    assert env["torch"] == torch.__version__ and env["accelerator"] == "cpu"
    table = (out / "table.txt").read_text()
    assert table in proc.stdout and "all rows ran and passed (exit 0)" in table
    assert "n/a on CPU" in table_row(table, "fused_lamb") and "PASS" in table_row(table, "save_resume")
    assert "===== save_resume" in (out / "log.txt").read_text()

    # --only reruns two rows: one with a planted mismatch, one planted to hang (its budget cut to 2 s); each in a
    # fresh interpreter this time (--spawn), the other way to start a row
    cmd += ["--only", "unpad,model_fp32", "--plant", "unpad:hang", "--plant", "model_fp32", "--spawn"]
    proc = run(cmd, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = results(out)
    assert got["model_fp32"]["status"] == "FAIL" and got["model_fp32"]["measured"]["mlm_logits_rel_rms"] > 1e-3
    assert got["unpad"]["status"] == "TIMEOUT" and got["unpad"]["seconds"] < 30
    table = (out / "table.txt").read_text()
    assert "FAIL" in table_row(table, "model_fp32") and "TIMEOUT" in table_row(table, "unpad")
    assert "PASS (earlier)" in table_row(table, "save_resume")  # the rows not rerun keep their results
    assert "a correctness row failed (exit 1)" in table


def test_usage_errors_are_one_line():
    proc = run([sys.executable, SCRIPT, "--device", "cpu", "--only", "model_fp32,nosuch"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "gpu_check: error: --only nosuch: no such row; rows: " + ", ".join(
        r.name for r in rows(ctx_quick=False)
    )


def test_an_unwritable_out_dir_is_one_usage_error(tmp_path):
    """Exit 2 (usage), not 1: the docs reserve 1 for a correctness failure."""
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "gc"
    proc = run([sys.executable, SCRIPT, "--device", "cpu", "--only", "env", "--out_dir", str(out)], check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"gpu_check: error: --out_dir {out}: not writable (Not a directory)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here")
def test_the_default_cuda_device_without_one_is_one_usage_error(tmp_path):
    """Not 16 ERROR rows and exit 1 after half a minute: one line before any row, and no --out_dir left behind."""
    proc = run([sys.executable, SCRIPT, "--only", "env", "--out_dir", str(tmp_path / "gc")], check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "gpu_check: error: no CUDA GPU (torch.cuda.is_available() is False); use --device cpu"
    assert not (tmp_path / "gc").exists()


def test_optimizer_comparison_tells_agreement_from_a_planted_difference():
    """What fused_adam and fused_lamb run on CUDA, here with optimizers a CPU has."""
    adam = dict(lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    same = optimizer_agreement(
        lambda ps: torch.optim.AdamW(ps, foreach=False, **adam),
        lambda ps: torch.optim.AdamW(ps, foreach=True, **adam),
        torch.device("cpu"),
    )
    assert same["update_rel"] < OPT_UPDATE_REL and same["update_size"] > 1e-3  # 5 steps of ~lr each
    lamb = dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
    off = optimizer_agreement(
        lambda ps: Lamb(ps, **lamb), lambda ps: Lamb(ps, **dict(lamb, lr=lamb["lr"] * 1.01)), torch.device("cpu")
    )
    assert off["update_rel"] == pytest.approx(0.01 / 1.01, rel=2e-2)  # ~ the lr's 1% (trust ratios move a bit)
    differ = optimizer_agreement(lambda ps: Lamb(ps, **lamb), lambda ps: torch.optim.AdamW(ps, **adam), "cpu")
    assert differ["update_rel"] > 0.5  # LAMB is not AdamW
