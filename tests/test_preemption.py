"""Preemption flag and the save policy, in one process (the multi-rank agreement is in e2e/test_preemption.py)."""

from __future__ import annotations

import os
import signal
import time

from bertpt.ckpt.layout import published_tags
from bertpt.ckpt.policy import Decision, SavePolicy
from bertpt.preemption import SignalFlag

from tests.ckpt_fakes import fake_tag


def test_signals_only_set_the_flag():
    flag = SignalFlag()
    try:
        assert not flag.raised and flag.signal is None
        os.kill(os.getpid(), signal.SIGUSR1)  # the process survives: only a flag is set
        assert flag.raised and flag.signal == "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.signal == "SIGTERM"
        flag.exiting()
        os.kill(os.getpid(), signal.SIGTERM)  # ignored from now on
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)


def test_the_timer_asks_for_saves_and_restarts_after_one(tmp_path):
    policy = SavePolicy(save_steps=0, save_minutes=0.001, keep_last=0)  # 60 ms
    assert policy.after_step(1, last=False, signalled=False) == Decision(save=False, stop=False)
    time.sleep(0.08)
    assert policy.after_step(2, last=False, signalled=False) == Decision(save=True, stop=False)
    policy.saved(tmp_path, rank=0)
    assert policy.after_step(3, last=False, signalled=False) == Decision(save=False, stop=False)
    assert policy.after_step(4, last=False, signalled=True) == Decision(save=True, stop=True)  # preempted
    no_timer = SavePolicy(save_steps=0, save_minutes=0, keep_last=0)
    time.sleep(0.01)
    assert no_timer.after_step(1, last=False, signalled=False) == Decision(save=False, stop=False)


def test_save_steps_the_last_step_and_keep_last(tmp_path):
    policy = SavePolicy(save_steps=3, save_minutes=0, keep_last=2)
    saves = [s for s in range(1, 11) if policy.after_step(s, last=s == 10, signalled=False).save]
    assert saves == [3, 6, 9, 10]
    ckpt = tmp_path / "checkpoints"
    for step in saves:
        fake_tag(ckpt, step)
    assert policy.saved(ckpt, rank=1) == [] and len(published_tags(ckpt)) == 4  # rank 0 prunes
    assert policy.saved(ckpt, rank=0) == ["step_000006", "step_000003"]
    assert published_tags(ckpt) == ["step_000010", "step_000009"]
