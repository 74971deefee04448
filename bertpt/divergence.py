"""A run that diverges: detection, the loss-spike warning, and the rollback bookkeeping (one owner).

Detection, after every optimizer step, on every rank together. This rank's verdict is a small code,
the most severe of:
    NONFINITE_LOSS  the loss of any micro-step was NaN or inf,
    SCALE_AT_MIN    fp16: an overflow drove DeepSpeed's dynamic loss scale down to its min_loss_scale
                    (its next overflow would end the run in DeepSpeed's "Current loss scale already at
                    minimum" exception: no usable precision is left),
    SKIPPED_RUN     more than --max_skipped_steps consecutive steps skipped for overflowing gradients
                    (DeepSpeed's engine.skipped_steps; training is standing still).
The code rides on the one all-reduce (MAX) per step that the save policy already does
(ckpt/policy.py, SavePolicy.agree), so every rank learns the most severe code of any rank before any
save of that step, without a second collective. The loss check is an on-device `isfinite`: no host
sync of its own, no random numbers drawn (bitwise-exact resume is untouched).

What follows (pretrain.py): nothing of that step is evaluated, saved, published or exported.
--on_divergence stop (the default) ends the run with one line naming the step and the last good
checkpoint, exports that checkpoint to <output_dir>/hf (or nothing when there is none) and exits with
EXIT_DIVERGED. --on_divergence rollback reloads the last good checkpoint into the live engine (through
ckpt/resume.py, as a resume would), moves the data position past the samples consumed since it (they
led to the blow-up), records that range in every later checkpoint's RunPosition.skipped_samples, and
continues; at most --max_rollbacks times per run's history (the recorded ranges count), then it stops
as above. This is what large-model trainers (OPT, PaLM, BLOOM logbooks) did by hand: restart from the
last checkpoint before the spike, skipping the data batches that preceded it.

A finite loss spike (the logged train loss over --loss_spike_factor times the mean of the last
SPIKE_WINDOW logged values) is only a warning: one line and the `divergence/loss_spike` scalar.

TEST-ONLY hook: the environment variable BERTPT_TEST_INJECT_NONFINITE="5" (or "5,9", or "5,5" for
step 5 twice, e.g. again after a rollback; "5,9@1" on rank 1 only) makes the training loss NaN at those
optimizer steps, so that the gradients and the detector see a real divergence. It is read here only,
once per run (Guard's constructor); unset, it costs one empty-set lookup per micro-step. Never set it
for real training.
"""

from __future__ import annotations

import math
import os
from collections import Counter, deque
from dataclasses import dataclass

import torch

from bertpt.ckpt import layout, resume
from bertpt.errors import BertptError

EXIT_DIVERGED = 3  # not 0 (finished), 1 (a crash), 2 (a user error) nor 75 (preempted: requeue); do not requeue
INJECT_ENV = "BERTPT_TEST_INJECT_NONFINITE"

# Reason codes, in order of severity (the all-reduce keeps the maximum over ranks)
NONE, SKIPPED_RUN, SCALE_AT_MIN, NONFINITE_LOSS = 0, 1, 2, 3
SPIKE_WINDOW = 10  # logged train losses the spike is measured against (at least SPIKE_MIN_HISTORY of them)
SPIKE_MIN_HISTORY = 3


def describe(code: int, max_skipped_steps: int = 0) -> str:
    """The reason a divergence code stands for, in words."""
    return {
        NONFINITE_LOSS: "the training loss is not finite (NaN or inf)",
        SCALE_AT_MIN: "fp16's dynamic loss scale fell to its min_loss_scale and the gradients still overflow",
        SKIPPED_RUN: f"more than {max_skipped_steps} consecutive steps were skipped for overflowing gradients",
    }.get(code, "no divergence")


def parse_injection(value: str | None, rank: int) -> Counter:
    """BERTPT_TEST_INJECT_NONFINITE's steps for `rank`, with multiplicity: "5,9" -> {5: 1, 9: 1}; "5,5@1"
    -> {5: 2} on rank 1, {} elsewhere; None or "" -> {}. Raises BertptError on anything else."""
    if not value:
        return Counter()
    steps, _, only = value.partition("@")
    try:
        wanted = [int(s) for s in steps.split(",")]
        if only and int(only) != rank:
            return Counter()
    except ValueError:
        raise BertptError(f'{INJECT_ENV}="{value}": expected steps like "5,9" or "5,9@1" (rank 1 only)') from None
    return Counter(wanted)


def scale_at_minimum(scaler) -> bool:
    """True when DeepSpeed's dynamic fp16 loss scaler has just overflowed at (or down to) its minimum.

    `scaler`: a ZeRO optimizer's `loss_scaler` (deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler:
    cur_scale, min_scale, dynamic) or FP16_Optimizer's `loss_scale_config` (LossScaleConfig:
    cur_scale, min_loss_scale, dynamic_loss_scale); both count iterations in cur_iter and record the
    last overflow's iteration in last_overflow_iter. A static scale (or none, bf16/fp32) is never at
    its minimum."""
    if scaler is None or not (getattr(scaler, "dynamic", False) or getattr(scaler, "dynamic_loss_scale", False)):
        return False
    floor = getattr(scaler, "min_scale", None)
    floor = getattr(scaler, "min_loss_scale", None) if floor is None else floor
    overflowed_last = scaler.last_overflow_iter is not None and scaler.last_overflow_iter == scaler.cur_iter - 1
    return floor is not None and overflowed_last and scaler.cur_scale <= floor


class SkipRun:
    """Consecutive skipped optimizer steps, from DeepSpeed's running total `engine.skipped_steps`."""

    def __init__(self, total: int = 0):
        self.total, self.run = total, 0

    def update(self, total: int) -> int:
        """After a step: `total` is engine.skipped_steps now. Returns the length of the current run."""
        self.run = self.run + 1 if total > self.total else 0
        self.total = total
        return self.run


class SpikeTracker:
    """A finite loss spike: a logged loss over `factor` times the mean of the last SPIKE_WINDOW logged
    (finite) ones. factor 0: off."""

    def __init__(self, factor: float):
        self.factor, self.history = factor, deque(maxlen=SPIKE_WINDOW)

    def observe(self, loss: float) -> float | None:
        """Record a logged train loss; returns its ratio to the recent mean when that is a spike, else None."""
        ratio = None
        if self.factor and math.isfinite(loss) and len(self.history) >= SPIKE_MIN_HISTORY:
            mean = sum(self.history) / len(self.history)
            if mean > 0 and loss > self.factor * mean:
                ratio = loss / mean
        if math.isfinite(loss):
            self.history.append(loss)
        return ratio

    def mean(self) -> float:
        return sum(self.history) / max(len(self.history), 1)

    def clear(self) -> None:
        self.history.clear()


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: the checkpoint reloaded, and the samples [first, end) skipped."""

    checkpoint: layout.Checkpoint
    step: int  # the step the run continues after (the checkpoint's)
    first: int
    end: int
    count: int  # rollbacks in this run's history, this one included


class Guard:
    """This rank's divergence detector and the rollback bookkeeping of the run.

    `good` is the last good checkpoint (the one resumed from, then each one saved: a save happens only
    after a step found no divergence), `good_consumed` the data position the weights at `good` continue
    from in this process, `skipped` the sample ranges skipped so far (RunPosition.skipped_samples)."""

    def __init__(
        self,
        device,
        rank: int,
        on_divergence: str = "stop",
        max_rollbacks: int = 3,
        max_skipped_steps: int = 20,
        spike_factor: float = 0.0,
        good: layout.Checkpoint | None = None,
        consumed: int = 0,
        skipped: tuple = (),
        skipped_steps: int = 0,
    ):
        self.device, self.rank = device, rank
        self.on_divergence, self.max_rollbacks, self.max_skipped_steps = on_divergence, max_rollbacks, max_skipped_steps
        self.good, self.good_consumed, self.skipped = good, consumed, tuple(tuple(r) for r in skipped)
        self.inject = parse_injection(os.environ.get(INJECT_ENV), rank)  # the one read of the test hook
        self.spikes = SpikeTracker(spike_factor)
        self.skip_run = SkipRun(skipped_steps)
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=device)

    # -- every micro-step and every step

    def watch(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Note whether this micro-step's loss is finite (on the device, no sync); returns the loss to
        back-propagate: `loss` itself, or NaN where the test hook asks for it."""
        if self.inject and self.inject[step] > 0:
            self.inject[step] -= 1
            loss = loss * float("nan")
        self._nonfinite |= ~torch.isfinite(loss.detach())
        return loss

    def step_code(self, engine) -> torch.Tensor:
        """This rank's verdict on the step `engine` just took, for the save policy's all-reduce: see verdict."""
        optimizer = engine.optimizer
        scaler = getattr(optimizer, "loss_scaler", None) or getattr(optimizer, "loss_scale_config", None)
        return self.verdict(engine.fp16_enabled(), scaler, engine.skipped_steps)

    def verdict(self, fp16: bool, scaler, skipped_steps: int) -> torch.Tensor:
        """This rank's divergence code for the step just taken (an int32 0-d tensor on the device: NONE,
        SKIPPED_RUN, SCALE_AT_MIN or NONFINITE_LOSS, the most severe), and resets the per-step state.
        `fp16`: the engine trains in fp16; `scaler`: its optimizer's loss scaler (see scale_at_minimum);
        `skipped_steps`: DeepSpeed's running count of skipped steps (engine.skipped_steps)."""
        code = self._nonfinite.to(torch.int32) * NONFINITE_LOSS
        self._nonfinite.zero_()
        run = self.skip_run.update(skipped_steps)
        host = NONE
        if fp16 and scale_at_minimum(scaler):
            host = SCALE_AT_MIN
        elif self.max_skipped_steps and run > self.max_skipped_steps:
            host = SKIPPED_RUN
        return torch.clamp(code, min=host) if host else code

    # -- bookkeeping

    def saved(self, ckpt: layout.Checkpoint, consumed: int) -> None:
        """A checkpoint of a step without divergence was published: it is the last good one."""
        self.good, self.good_consumed = ckpt, consumed

    def can_roll_back(self) -> bool:
        return self.on_divergence == "rollback" and self.good is not None and len(self.skipped) < self.max_rollbacks

    def roll_back(
        self, engine, consumed: int, ds_config: dict, rank: int, world: int, model_config: dict, tokenizer_hash: str
    ) -> Rollback:
        """Reload the last good checkpoint into the live `engine` and skip the samples consumed since it.

        The load is ckpt/resume.py's plan + load, the one path a resume takes (`ds_config` as read, this
        run's `rank`, `world`, `model_config` dict and `tokenizer_hash`): the weights, optimizer, LR
        schedule, loss scale and this rank's RNG states become the checkpoint's. `consumed` is the data
        position reached at the divergence: samples [good_consumed, consumed) are skipped, and the run
        continues from the checkpoint's step at position `consumed`. Collective (every rank calls it).
        Raises BertptError as resume.load does."""
        plan = resume.plan(self.good, ds_config, rank, world, model_config, tokenizer_hash)
        position, _ = resume.load(engine, plan)
        first, end = self.good_consumed, consumed
        self.skipped = (*self.skipped, (first, end))
        self.good_consumed = consumed
        self.skip_run = SkipRun(engine.skipped_steps)
        self._nonfinite.zero_()
        self.spikes.clear()  # the losses that led up to the blow-up are no baseline
        return Rollback(self.good, position.step, first, end, len(self.skipped))

    def stop_line(self, code: int, step: int, exported: str | None) -> str:
        """The one line a run that stops on a divergence ends with (`exported`: where the last good
        checkpoint was exported, None when there is none)."""
        why = describe(code, self.max_skipped_steps)
        if self.on_divergence == "rollback" and self.good is not None:
            why += f", after {len(self.skipped)} rollbacks (--max_rollbacks {self.max_rollbacks})"
        if self.good is None:
            where = "no checkpoint was saved before it, nothing exported"
        else:
            where = f"last good checkpoint {self.good.path}" + (f" (exported to {exported})" if exported else "")
        if step == 1:  # before any update: the initial weights or the data, not the learning rate
            advice = "check the model's configuration (initializer_range) and the data"
        elif self.on_divergence == "rollback":
            advice = "lower the learning rate, or raise --max_rollbacks"
        else:
            advice = "lower the learning rate, or see --on_divergence rollback"
        return (
            f"bertpt: diverged at step {step}: {why}; nothing of it was saved; {where}; exiting with status "
            f"{EXIT_DIVERGED} ({advice})"
        )
