"""Divergence detection, the spike warning, the rollback bookkeeping's records, --keep_last and export
guards, in one process (the runs that diverge are in e2e/test_divergence.py)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import torch.distributed as dist

from bertpt import divergence
from bertpt.ckpt import layout
from bertpt.ckpt.checkpoint import prune
from bertpt.ckpt.export import export_hf
from bertpt.ckpt.policy import Decision, SavePolicy
from bertpt.config import PretrainConfig
from bertpt.divergence import (
    NONE,
    NONFINITE_LOSS,
    SCALE_AT_MIN,
    SKIPPED_RUN,
    Guard,
    SkipRun,
    SpikeTracker,
    parse_injection,
    scale_at_minimum,
)
from bertpt.errors import BertptError

from tests.ckpt_fakes import fake_tag, release_run


@pytest.fixture
def deepspeed_world_of_one(tmp_path, monkeypatch):
    """DeepSpeed's comm over a one-process gloo group (its loss scaler asks for the rank)."""
    import deepspeed

    for var, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(var, value)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    deepspeed.init_distributed(dist_backend="gloo")
    yield
    dist.destroy_process_group()


def test_injection_hook_parses_steps_ranks_and_repeats():
    assert parse_injection(None, 0) == {} and parse_injection("", 3) == {}
    assert parse_injection("5,9", 0) == {5: 1, 9: 1}
    assert parse_injection("5,5@1", 1) == {5: 2} and parse_injection("5,5@1", 0) == {}
    with pytest.raises(BertptError, match="BERTPT_TEST_INJECT_NONFINITE"):
        parse_injection("five", 0)


def test_a_non_finite_loss_is_flagged_for_its_step_only(monkeypatch):
    monkeypatch.setenv(divergence.INJECT_ENV, "2,2")  # step 2 twice: once now, once after a rollback
    guard = Guard("cpu", rank=0)
    loss = torch.tensor(3.5, requires_grad=True)
    assert guard.watch(loss, 1) is loss and guard.verdict(False, None, 0).item() == NONE
    hit = guard.watch(loss, 2)
    assert math.isnan(hit.item()) and hit.requires_grad  # the gradients become NaN too
    assert guard.verdict(False, None, 0).item() == NONFINITE_LOSS
    assert guard.verdict(False, None, 0).item() == NONE  # reset after each step
    assert math.isnan(guard.watch(loss, 2).item()) and not math.isnan(guard.watch(loss, 2).item())  # used up
    guard.verdict(False, None, 0)
    guard.watch(torch.tensor(float("inf")), 3)  # a real inf, one micro-step of several
    guard.watch(torch.tensor(1.0), 3)
    assert guard.verdict(False, None, 0).item() == NONFINITE_LOSS


def test_unset_hook_injects_nothing(monkeypatch):
    monkeypatch.delenv(divergence.INJECT_ENV, raising=False)
    guard = Guard("cpu", rank=0)
    assert not guard.inject
    loss = torch.tensor(2.0)
    assert all(guard.watch(loss, s) is loss for s in range(1, 50))


def test_fp16_loss_scale_driven_to_its_minimum_by_deepspeeds_scaler_is_a_divergence(deepspeed_world_of_one):
    """DeepSpeed's real DynamicLossScaler (what ZeRO 1-3 use): 2^4 down to min_scale 1 with hysteresis 2."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler

    scaler = DynamicLossScaler(
        init_scale=2**4, scale_window=1000, min_scale=1, delayed_shift=2, consecutive_hysteresis=False
    )
    guard = Guard("cpu", rank=0, max_skipped_steps=0)  # the skip-run rule off: this is the scale rule alone
    scales, codes = [], []
    for step in range(5):  # one overflow per step
        scaler.update_scale(True)
        scales.append(scaler.cur_scale)
        codes.append(guard.verdict(True, scaler, step + 1).item())
    assert scales == [16, 8, 4, 2, 1]  # hysteresis 2: the first overflow only spends it
    assert codes == [NONE] * 4 + [SCALE_AT_MIN]  # the overflow that reached the minimum
    # one step later DeepSpeed itself would give up with an exception (a traceback, not a line)
    with pytest.raises(Exception, match="already at minimum"):
        scaler.update_scale(True)


def test_a_scale_at_its_minimum_without_an_overflow_is_not_a_divergence(deepspeed_world_of_one):
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler

    scaler = DynamicLossScaler(
        init_scale=2, scale_window=1000, min_scale=1, delayed_shift=1, consecutive_hysteresis=False
    )
    scaler.update_scale(True)
    assert scaler.cur_scale == 1 and scale_at_minimum(scaler)
    scaler.update_scale(False)  # a good step at the minimum: training goes on there
    assert not scale_at_minimum(scaler)
    assert not scale_at_minimum(LossScaler(scale=1)) and not scale_at_minimum(None)  # static, or bf16/fp32
    guard = Guard("cpu", rank=0)
    assert guard.verdict(False, scaler, 0).item() == NONE  # not fp16: the scaler is not consulted


def test_a_run_of_skipped_steps_past_the_limit_is_a_divergence():
    run = SkipRun(5)
    assert [run.update(t) for t in (6, 7, 7, 8, 9, 10)] == [1, 2, 0, 1, 2, 3]
    guard = Guard("cpu", rank=0, max_skipped_steps=3)
    codes = [guard.verdict(False, None, total).item() for total in (1, 2, 3, 4, 4, 5)]
    assert codes == [NONE, NONE, NONE, SKIPPED_RUN, NONE, NONE]


def test_the_policy_carries_the_code_and_never_saves_a_diverged_step():
    policy = SavePolicy(save_steps=2, save_minutes=0, keep_last=0)
    assert policy.after_step(2, last=False, signalled=False, diverged=torch.tensor(0)) == Decision(True, False, 0)
    code = torch.tensor(NONFINITE_LOSS, dtype=torch.int32)
    assert policy.after_step(4, last=True, signalled=True, diverged=code) == Decision(False, True, NONFINITE_LOSS)
    assert policy.after_step(5, last=False, signalled=False) == Decision(False, False, 0)


def test_loss_spike_over_the_recent_mean():
    spikes = SpikeTracker(2.0)
    assert [spikes.observe(x) for x in (8.0, 7.0, 6.0)] == [None] * 3  # falling: no history to compare yet
    assert spikes.observe(13.0) is None  # 13 < 2 x 7
    assert spikes.observe(float("nan")) is None  # a divergence, not a spike; not in the history
    mean = spikes.mean()
    assert spikes.observe(2.5 * mean) == pytest.approx(2.5)
    assert SpikeTracker(0).observe(1e9) is None  # off


def test_run_position_records_skipped_ranges_and_old_files_still_load(tmp_path):
    old = layout.read_position(layout.Checkpoint(release_run(tmp_path) / "checkpoints", "step_000002"))
    assert old.skipped_samples == () and old.consumed_samples == 8
    pos = layout.RunPosition(10, 96, 2, 4, 1, 8, 2, skipped_samples=[[32, 40], (56, 64)])
    back = layout.RunPosition.from_dict(json.loads(pos.to_json()))
    assert back == pos and back.skipped_samples == ((32, 40), (56, 64))
    assert json.loads(pos.to_json())["skipped_samples"] == [[32, 40], [56, 64]]


def test_keep_last_never_deletes_the_newest_good_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for step in (2, 4, 6, 8):
        fake_tag(ckpt, step)
    (ckpt / "step_000006" / "rng_rank_0.pt").unlink()  # newer tags that do not verify
    (ckpt / "step_000008" / "manifest.json").unlink()
    assert layout.newest_verified(ckpt) == "step_000004"
    assert prune(ckpt, 1) == ["step_000006", "step_000002"]
    assert layout.published_tags(ckpt) == ["step_000008", "step_000004"]
    assert prune(ckpt, 1) == [] and layout.newest_good(ckpt, "t", "using").tag == "step_000004"
    # and the plain case is unchanged: the newest K are kept
    fresh = tmp_path / "fresh"
    for step in (2, 4, 6):
        fake_tag(fresh, step)
    assert prune(fresh, 2) == ["step_000002"]


def test_export_refuses_a_checkpoint_with_non_finite_weights(tmp_path):
    ckpt = release_run(tmp_path) / "checkpoints"
    bad = ckpt / "step_000004"
    shutil.copytree(ckpt / "step_000002", bad)
    optim = bad / "zero_pp_rank_0_mp_rank_00_optim_states.pt"  # ZeRO-2: the fp32 master weights are here
    state = torch.load(optim, weights_only=False)
    with torch.no_grad():
        state["optimizer_state_dict"]["single_partition_of_fp32_groups"][0][100] = float("nan")
    torch.save(state, optim)
    with pytest.raises(BertptError, match=r"step_000004 has non-finite weights .*step_000002") as e:
        export_hf(ckpt, tmp_path / "hf-bad", tag="step_000004")
    assert "\n" not in str(e.value) and not (tmp_path / "hf-bad").exists()
    export_hf(ckpt, tmp_path / "hf-good", tag="step_000002")  # its finite predecessor still exports
    assert (tmp_path / "hf-good" / "model.safetensors").is_file()


def test_stop_line_names_the_step_and_the_last_good_checkpoint(tmp_path):
    guard = Guard("cpu", rank=0)
    line = guard.stop_line(NONFINITE_LOSS, 7, None)
    assert "diverged at step 7" in line and "no checkpoint was saved before it" in line
    assert f"status {divergence.EXIT_DIVERGED}" in line and "\n" not in line
    guard.saved(layout.Checkpoint(tmp_path, "step_000006"), 48)
    line = guard.stop_line(SCALE_AT_MIN, 7, "out/hf")
    assert f"last good checkpoint {tmp_path / 'step_000006'} (exported to out/hf)" in line and "min_loss_scale" in line


def test_divergence_flags_are_validated():
    for flags, what in (
        (dict(on_divergence="retry"), "--on_divergence"),
        (dict(max_rollbacks=-1), "--max_rollbacks"),
        (dict(max_skipped_steps=-2), "--max_skipped_steps"),
        (dict(loss_spike_factor=0.5), "--loss_spike_factor"),
    ):
        with pytest.raises(BertptError, match=what):
            PretrainConfig(**flags).validate()
    PretrainConfig(on_divergence="rollback", max_rollbacks=0, loss_spike_factor=0).validate()


def test_the_stop_line_gives_advice_that_fits_the_case(tmp_path):
    from bertpt.divergence import NONFINITE_LOSS

    good = layout.Checkpoint(tmp_path, "step_000002")
    stop = Guard("cpu", rank=0, good=good).stop_line(NONFINITE_LOSS, 4, "run/hf")
    assert stop.startswith("bertpt: diverged at step 4: the training loss is not finite")
    assert f"last good checkpoint {good.path} (exported to run/hf)" in stop
    assert stop.endswith("(lower the learning rate, or see --on_divergence rollback)")
    # already rolling back: not "see --on_divergence rollback" again
    rolling = Guard("cpu", rank=0, on_divergence="rollback", max_rollbacks=2, good=good).stop_line(
        NONFINITE_LOSS, 4, None
    )
    assert rolling.endswith("(lower the learning rate, or raise --max_rollbacks)")
    # step 1 ran on the initial weights: no learning rate has acted yet
    first = Guard("cpu", rank=0).stop_line(NONFINITE_LOSS, 1, None)
    assert "no checkpoint was saved before it, nothing exported" in first
    assert first.endswith("(check the model's configuration (initializer_range) and the data)")
