"""When to save and what to keep: the one save policy.

A checkpoint is saved after optimizer step s when
  - s is a multiple of --save_steps,
  - --save_minutes have passed since the last save (or the start of the run),
  - s is the last step of this run (--max_steps or --steps_this_run), or
  - a preemption signal (SIGTERM, SIGUSR1; preemption.py sets the flag) reached any rank: save and stop.
After a save rank 0 deletes all but the --keep_last newest checkpoints.

Every rank must decide the same, or they would wait for each other in different collectives. The
step count and the last step are the same everywhere; the signal and the clock are not (a signal may
reach one rank, clocks drift), nor is a divergence (a NaN may appear on one rank). So each step one
small all-reduce (MAX) of [signal seen, timer due, divergence code] spreads what any rank saw to all of
them: one collective per step, whichever rank got the signal. The divergence code is
bertpt/divergence.py's (its owner); the policy only carries it, and a step that diverged is never saved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from bertpt.ckpt.checkpoint import prune


@dataclass(frozen=True)
class Decision:
    """What every rank does after a step: `save` a checkpoint; `stop` (preempted: save, then exit);
    `diverged`: the most severe divergence code of any rank (divergence.py; 0: none), never saved."""

    save: bool
    stop: bool
    diverged: int = 0


class SavePolicy:
    """--save_steps, --save_minutes, --keep_last and preemption, decided the same on every rank."""

    def __init__(self, save_steps: int, save_minutes: float, keep_last: int, device="cpu", clock=time.monotonic):
        self.save_steps, self.save_seconds, self.keep_last = save_steps, save_minutes * 60, keep_last
        self.device, self.clock = device, clock
        self.last_save = clock()

    def timer_due(self) -> bool:
        """This rank's clock says --save_minutes have passed since the last save (False when off)."""
        return bool(self.save_seconds) and self.clock() - self.last_save >= self.save_seconds

    def agree(self, signalled: bool, diverged: int | torch.Tensor = 0) -> tuple[bool, bool, int]:
        """(any rank signalled, any rank's timer due, the highest divergence code of any rank): one
        all-reduce, the same answer on every rank. `diverged` may be a 0-d tensor on the device (no
        host sync before the all-reduce)."""
        flags = torch.tensor([signalled, self.timer_due(), 0], dtype=torch.int32, device=self.device)
        flags[2] = diverged
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        signal, timed, code = flags.tolist()
        return bool(signal), bool(timed), code

    def after_step(self, step: int, last: bool, signalled: bool, diverged: int | torch.Tensor = 0) -> Decision:
        """The one question per optimizer step: save and/or stop after `step` (`last`: this run's last
        step; `signalled`: this rank saw a preemption signal; `diverged`: this rank's divergence code,
        divergence.Guard.step_code). Collective: every rank calls it every step. A step that diverged on
        any rank is not saved, whatever else is due."""
        stop, timed, code = self.agree(signalled, diverged)
        every = bool(self.save_steps) and step % self.save_steps == 0
        return Decision(save=not code and (every or last or stop or timed), stop=stop, diverged=code)

    def saved(self, ckpt_dir: Path, rank: int) -> list[str]:
        """After a save (every rank): restart the timer; rank 0 prunes to --keep_last. Returns the tags deleted."""
        self.last_save = self.clock()
        return prune(ckpt_dir, self.keep_last) if rank == 0 else []
