"""Throughput features end to end: activation checkpointing, live TFLOPS/MFU, the benchmark command."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import REPO, ds_config, python_cmd, read_metrics, run, train_args

pytestmark = pytest.mark.slow


def test_activation_checkpointing_trains_identically_and_tflops_are_logged(tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")  # dropout on (the presets' 0.1), so replay matters
    plain, ckpt = tmp_path / "plain", tmp_path / "ckpt"
    run(python_cmd(*train_args(tiny_data, plain, config, 4)))
    proc = run(python_cmd(*train_args(tiny_data, ckpt, config, 4, "--activation_checkpointing", "--peak_tflops", "2")))
    log = proc.stdout + proc.stderr
    assert "activation checkpointing" in log and "MFU against 2 TFLOPS" in log and "TFLOPS per device, MFU" in log
    a, b = read_metrics(plain), read_metrics(ckpt)
    assert [a[s]["loss"] for s in sorted(a)] == [b[s]["loss"] for s in sorted(b)]
    assert a[4]["tflops"] > 0 and "mfu" not in a[4]  # CPU: no known peak, so no MFU unless given
    assert b[4]["mfu"] == pytest.approx(b[4]["tflops"] / 2)


def test_a_deepspeed_activation_checkpointing_section_is_refused(tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32", activation_checkpointing={"partition_activations": True})
    proc = run(python_cmd(*train_args(tiny_data, tmp_path / "out", config, 2)), check=False)
    assert proc.returncode == 2 and "pass --activation_checkpointing instead" in proc.stderr
    assert "Traceback" not in proc.stderr


def bench(*args: str, tmp_path) -> dict:
    out = tmp_path / "bench.json"
    proc = run(
        [
            sys.executable,
            "-m",
            "bertpt.bench",
            "--model",
            "bert-tiny",
            "--steps",
            "4",
            "--warmup",
            "1",
            "--micro_batch",
            "4",
            "--json_out",
            str(out),
            *args,
        ],
        cwd=tmp_path,
    )  # ds_configs/ found in the repo
    return {"stdout": proc.stdout, "report": json.loads(out.read_text())}


def test_bench_compares_bertpt_with_the_transformers_loop(tiny_data, tmp_path):
    r = bench("--data", str(tiny_data), "--precision", "fp32", "--baseline", "fp32", "bf16", tmp_path=tmp_path)
    rows = r["report"]["results"]
    assert [(x["side"].split()[0], x["precision"]) for x in rows] == [
        ("bertpt", "fp32"),
        ("transformers", "fp32"),
        ("transformers", "bf16 autocast"),
    ]
    for x in rows:
        assert x["tokens_per_s"] > 0 and x["tflops"] > 0 and x["peak_mib"] > x["state_mib"] > 0 and x["mfu"] is None
    assert rows[1]["bertpt_speedup"] > 0 and "median over batches" in r["stdout"]
    assert r["report"]["zero_stage"] == 2 and r["report"]["world_size"] == 1


def test_zero_sweep_runs_each_preset_on_one_and_two_processes(tmp_path):
    r = bench(
        "--zero_sweep",
        "--data",
        "synthetic",
        "--vocab_size",
        "1000",
        "--seq_len",
        "32",
        "--no_memory",
        "--precision",
        "fp32",
        "--sweep_configs",
        str(REPO / "ds_configs/zero0.json"),
        str(REPO / "ds_configs/zero3.json"),
        tmp_path=tmp_path,
    )
    rows = r["report"]
    assert [(x["zero_stage"], x["world_size"]) for x in rows] == [(0, 1), (3, 1), (0, 2), (3, 2)]
    assert all(x["tokens_per_s"] > 0 for x in rows) and "vs ZeRO-0" in r["stdout"]
