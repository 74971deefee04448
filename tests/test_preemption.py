"""Preemption flag and save timer, in one process (the multi-rank agreement is in e2e/test_preemption.py)."""

from __future__ import annotations

import os
import signal
import time

from bertpt.preemption import Stopper


def test_signals_set_the_stop_flag_and_the_timer_asks_for_saves():
    stopper = Stopper(save_minutes=0.001, device="cpu")  # 60 ms
    try:
        assert stopper.poll() == (False, False)
        time.sleep(0.08)
        assert stopper.poll() == (False, True)
        stopper.saved()
        assert stopper.poll() == (False, False)
        os.kill(os.getpid(), signal.SIGUSR1)  # the process survives: only a flag is set
        assert stopper.poll() == (True, False) and stopper.signal == "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopper.signal == "SIGTERM"
        assert Stopper(save_minutes=0, device="cpu").poll() == (False, False)  # no timer
    finally:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
