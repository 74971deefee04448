"""Stopping cleanly: preemption signals and time-based saves, agreed by every rank at a step boundary.

SIGTERM (what SLURM, Kubernetes and `scancel` send) and SIGUSR1 (what `sbatch --signal=USR1@T` sends
ahead of the time limit) only set a flag; the training loop polls it after each optimizer step.
One tiny all-reduce (MAX) per step spreads a flag seen by any rank to all of them, so every rank
saves the same step and exits, whichever rank got the signal. A second signal during the save just
sets the flag again: the save is never interrupted (SIGKILL still is, and checkpoint.py keeps
`latest` pointing at a complete checkpoint then). The exit status of a preempted run is
EXIT_PREEMPTED, so a job script can tell "requeue me" from success (0) and failure.
"""

from __future__ import annotations

import signal
import time

import torch
import torch.distributed as dist

EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): "temporary failure, try again"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Stopper:
    """Signal flag + save timer. `poll()` returns (stop now, save now), the same on every rank."""

    def __init__(self, save_minutes: float, device):
        self.save_seconds = save_minutes * 60
        self.device = device
        self.signal: str | None = None
        self.last_save = time.monotonic()
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.signal = signal.Signals(signum).name

    def exiting(self) -> None:
        """From here on a further signal cannot interrupt anything worth keeping: ignore it, rather
        than die of it during interpreter shutdown (which would turn our exit status into -15)."""
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def saved(self) -> None:
        self.last_save = time.monotonic()

    def poll(self) -> tuple[bool, bool]:
        timed = bool(self.save_seconds) and time.monotonic() - self.last_save >= self.save_seconds
        flags = torch.tensor([self.signal is not None, timed], dtype=torch.int32, device=self.device)
        if dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop, timed = bool(flags[0].item()), bool(flags[1].item())
        if stop and self.signal is None:
            self.signal = "a signal to another rank"
        return stop, timed


def ignore_in_workers(worker_id: int) -> None:
    """DataLoader worker_init_fn: workers ignore the preemption signals, so a signal sent to the whole
    process group does not kill the batch pipeline under the save; they exit with the trainer."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
