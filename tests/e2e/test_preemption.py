"""Interruptions must be invisible in the result: SIGKILL at random moments, SIGTERM/SIGUSR1
preemption, a damaged newest checkpoint. 2 ranks, deepspeed launcher, ZeRO-2, fp32, dropout on."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertpt.ckpt.layout import verify
from bertpt.preemption import EXIT_PREEMPTED

from tests.helpers import (
    REPO,
    deepspeed_cmd,
    ds_config,
    launch_env,
    python_cmd,
    run,
    train_args,
)

pytestmark = pytest.mark.slow
STEPS = 12


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "hf" / "model.safetensors")


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """The uninterrupted run every interrupted one must end equal to."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "run"
    run(deepspeed_cmd(2, *train_args(tiny_data, out, ds_config(tmp, "zero2", "fp32"), STEPS, "--save_steps", "2")))
    return out


def rank_pids(launcher: subprocess.Popen) -> list[int]:
    import psutil

    return [
        p.pid
        for p in psutil.Process(launcher.pid).children(recursive=True)
        if any("pretrain.py" in part for part in p.cmdline()) and "deepspeed.launcher" not in " ".join(p.cmdline())
    ]


def trained_steps(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return max((r["step"] for r in rows if r["split"] == "train"), default=0)


def test_sigkill_at_random_moments_then_resume_ends_bitwise_equal(reference, tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")
    out = tmp_path / "killed"
    cmd = deepspeed_cmd(2, *train_args(tiny_data, out, config, STEPS, "--save_steps", "2"))
    rng = random.Random(2026)
    kills = []
    for _trial in range(3):
        # a random moment of this attempt's training: after a random step, plus a random delay (a
        # step takes ~0.1 s, a save more), so kills land inside steps, saves and publishes alike
        target = rng.randint(min(trained_steps(out) + 1, STEPS - 3), STEPS - 3)
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=launch_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.time() + 300
        while trained_steps(out) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        latest = (
            (out / "checkpoints" / "latest").read_text().strip() if (out / "checkpoints" / "latest").exists() else None
        )
        kills.append((trained_steps(out), latest))
        assert latest is None or verify(out / "checkpoints" / latest) is None  # `latest` is always complete
    assert all(steps < STEPS for steps, _ in kills), kills  # every kill interrupted training
    proc = run(cmd)  # --resume auto is the default
    assert "resumed at step" in proc.stdout + proc.stderr
    print("kill points (steps trained so far, latest checkpoint):", kills)
    assert_bitwise_equal(weights(out), weights(reference))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_saves_the_step_reached_and_exits_75(sig, reference, tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")
    out = tmp_path / "preempted"
    cmd = deepspeed_cmd(2, *train_args(tiny_data, out, config, STEPS, "--save_steps", "100"))
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=launch_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while trained_steps(out) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    pids = rank_pids(proc)
    assert len(pids) == 2
    for pid in pids:  # as SLURM signals every task; the second signal lands during the save
        os.kill(pid, sig)
    time.sleep(0.3)
    os.kill(pids[0], sig)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_PREEMPTED, log[-3000:]
    reached = trained_steps(out)
    assert 3 <= reached < STEPS
    ckpt = out / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == f"step_{reached:06d}"  # saved exactly the step reached
    assert verify(ckpt / f"step_{reached:06d}") is None
    assert json.loads((ckpt / f"step_{reached:06d}" / "bertpt_state.json").read_text())["step"] == reached
    assert f"stopped by {signal.Signals(sig).name} at step {reached}" in log
    # the requeued job continues from there, trains no step twice, and ends where the uninterrupted run does
    proc = run(cmd)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, STEPS + 1))
    assert_bitwise_equal(weights(out), weights(reference))


def test_truncated_newest_checkpoint_falls_back_with_a_warning(reference, tiny_data, tmp_path):
    config = ds_config(tmp_path, "zero2", "fp32")
    out = tmp_path / "damaged"
    run(deepspeed_cmd(2, *train_args(tiny_data, out, config, STEPS, "--save_steps", "2", "--steps_this_run", "6")))
    bad = out / "checkpoints" / "step_000006"
    victim = sorted(bad.glob("*optim_states.pt"))[0]
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    proc = run(deepspeed_cmd(2, *train_args(tiny_data, out, config, STEPS, "--save_steps", "2")))
    log = proc.stdout + proc.stderr
    assert f"skipped checkpoint {bad} is incomplete or damaged ({victim.name} has" in log
    assert "resumed at step 4" in log
    assert_bitwise_equal(weights(out), weights(reference))


def test_keep_last_and_save_minutes(tiny_data, tmp_path):
    out = tmp_path / "run"
    run(
        python_cmd(
            *train_args(
                tiny_data, out, ds_config(tmp_path, "zero2", "fp32"), 6, "--save_steps", "1", "--keep_last", "2"
            )
        )
    )
    ckpt = out / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("step_*")) == ["step_000005", "step_000006"]
    assert (ckpt / "latest").read_text().strip() == "step_000006"
    # --save_minutes: a save whenever that much time passed, between --save_steps saves
    out = tmp_path / "timed"
    proc = run(
        python_cmd(
            *train_args(
                tiny_data,
                out,
                ds_config(tmp_path, "zero2", "fp32"),
                6,
                "--save_steps",
                "0",
                "--save_minutes",
                "0.00001",
            )
        )
    )
    saved = [line for line in (proc.stdout + proc.stderr).splitlines() if "saved checkpoint" in line]
    assert len(saved) == 6, saved  # every step is past the (tiny) interval
