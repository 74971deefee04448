"""Masking chosen at training time (--masked_lm_prob & co.) on data prepared with the defaults:
stopped and resumed it continues bit for bit, the checkpoint records it, a resume with other knobs
says so in one line, and statically masked data refuses the knobs in one line."""

from __future__ import annotations

import pytest
import torch

from bertpt.data.prepare import PrepareConfig, prepare

from tests.helpers import ds_config, losses, one_error_line, python_cmd, read_metrics, run, train_args

pytestmark = pytest.mark.slow
STEPS = 6


def client_state(out, step: int) -> dict:
    path = out / "checkpoints" / f"step_{step:06d}" / "mp_rank_00_model_states.pt"
    return torch.load(path, map_location="cpu", weights_only=False)["bertpt"]


def test_masked_lm_prob_resumes_bit_for_bit_and_is_recorded(tiny_data, tmp_path):
    """tiny_data: length 64, prepared at 0.15 with cap 10; --masked_lm_prob 0.3 brings cap ceil(19.2) = 20."""
    config = ds_config(tmp_path, "zero2", "fp32")
    whole, split, plain = tmp_path / "whole", tmp_path / "split", tmp_path / "plain"
    knob = ("--masked_lm_prob", "0.3")
    proc = run(python_cmd(*train_args(tiny_data, whole, config, STEPS, *knob)))
    assert (
        "masking changed from the data's: masked_lm_prob 0.15 -> 0.3, max_predictions_per_seq 10 -> 20"
        in proc.stdout + proc.stderr
    )
    run(python_cmd(*train_args(tiny_data, split, config, STEPS, *knob, "--steps_this_run", "3")))
    proc = run(python_cmd(*train_args(tiny_data, split, config, STEPS, *knob)))
    assert "resumed at step 3" in proc.stdout + proc.stderr
    assert "differs from the checkpoint's" not in proc.stdout + proc.stderr
    assert losses(split) == losses(whole) and len(losses(whole)) == STEPS  # bitwise, every step
    expected = {"static": False, "whole_word_mask": False, "masked_lm_prob": 0.3, "max_predictions_per_seq": 20}
    assert client_state(split, 3)["masking"] == client_state(whole, STEPS)["masking"] == expected
    logged = read_metrics(whole, "masking")
    assert list(logged) == [0] and {k: logged[0][k] for k in expected} == {k: float(v) for k, v in expected.items()}
    # the knob changes what is learnt: the default masking gives other losses from step 1 on
    run(python_cmd(*train_args(tiny_data, plain, config, 2)))
    assert losses(plain)[0] != losses(whole)[0]
    assert client_state(plain, 2)["masking"]["masked_lm_prob"] == 0.15

    # resuming with other masking: one line on rank 0, and training goes on
    proc = run(python_cmd(*train_args(tiny_data, split, config, STEPS + 1, "--masked_lm_prob", "0.2")))
    notes = [line for line in (proc.stdout + proc.stderr).splitlines() if "differs from the checkpoint's" in line]
    assert notes == [
        "bertpt: the masking differs from the checkpoint's: masked_lm_prob 0.3 -> 0.2, "
        "max_predictions_per_seq 20 -> 13 (the data order stays the same)"
    ]
    assert client_state(split, STEPS + 1)["masking"]["masked_lm_prob"] == 0.2


def test_static_data_refuses_the_knobs(tiny_data, corpus_dir, tmp_path):
    static = tmp_path / "static"
    prepare(
        PrepareConfig(
            output_dir=str(static),
            tokenizer=str(tiny_data / "tokenizer"),
            max_seq_length=64,
            static_masking=True,
            num_workers=0,
            sentence_splitter="lines",
        ),
        documents=lambda: (corpus_dir / "part0.txt").read_text().split("\n\n"),
        progress=False,
    )
    config = ds_config(tmp_path, "zero2", "fp32")
    proc = run(python_cmd(*train_args(static, tmp_path / "run", config, 2, "--masked_lm_prob", "0.3")), check=False)
    one_error_line(proc, "--masked_lm_prob: this data was prepared with --static_masking")
    assert not (tmp_path / "run" / "checkpoints").exists()
