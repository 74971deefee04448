"""Preemption signals: a flag, nothing more.

SIGTERM (what SLURM, Kubernetes and `scancel` send) and SIGUSR1 (what `sbatch --signal=USR1@T` sends
ahead of the time limit) only set a flag; after each optimizer step the save policy
(ckpt/policy.py) spreads a flag seen by any rank to all of them, so every rank saves the same step and
exits, whichever rank got the signal. A second signal during the save just sets the flag again: the
save is never interrupted (SIGKILL still is, and a checkpoint is only published once complete). The
exit status of a preempted run is EXIT_PREEMPTED, so a job script can tell "requeue me" from success
(0) and failure.
"""

from __future__ import annotations

import signal

EXIT_PREEMPTED = 75  # EX_TEMPFAIL (sysexits.h): "temporary failure, try again"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class SignalFlag:
    """Installs the handlers; `signal` is the name of the last preemption signal received (None: none)."""

    def __init__(self):
        self.signal: str | None = None
        for sig in SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.signal = signal.Signals(signum).name

    @property
    def raised(self) -> bool:
        return self.signal is not None

    def exiting(self) -> None:
        """From here on a further signal cannot interrupt anything worth keeping: ignore it, rather
        than die of it during interpreter shutdown (which would turn our exit status into -15)."""
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def ignore_in_workers(worker_id: int) -> None:
    """DataLoader worker_init_fn: workers ignore the preemption signals, so a signal sent to the whole
    process group does not kill the batch pipeline under the save; they exit with the trainer."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
