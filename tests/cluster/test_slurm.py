"""slurm/pretrain.sh and slurm/pretrain_two_phase.sh on a real 2-node SLURM cluster (tests/cluster/harness.py).

Every job here is the shipped script, submitted with sbatch from the checkout; only the run settings
(environment variables the script documents) and sbatch's command-line options are the test's.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from tests.cluster.conftest import job_env, job_log, sbatch
from tests.helpers import REPO, ds_config

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.xdist_group("cluster")]  # one worker: shared daemons
TRAIN_FLAGS = "--log_steps 1 --eval_steps 0 --eval_samples 32 --num_workers 0"


def train_rows(out) -> list[dict]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["split"] == "train"]


def test_sbatch_trains_across_two_nodes(cluster, tiny_data, tmp_path):
    out, log = tmp_path / "run", tmp_path / "job.out"
    env = job_env(
        cluster,
        CONFIG=ds_config(tmp_path, "zero2", "fp32"),
        DATA=tiny_data,
        OUTPUT=out,
        MODEL="bert-tiny",
        MAX_STEPS=24,
        EXTRA_ARGS=f"{TRAIN_FLAGS} --save_steps 12",
    )
    job = sbatch(cluster, env, "--wait", "-N", "2", f"--output={log}", "slurm/pretrain.sh")
    text = job_log(log)
    state = cluster.job_state(job)
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", (state, text[-3000:])
    assert state["NodeList"] == "node[1-2]"
    assert "bertpt: 2 ranks on 2 hosts: node1 [0], node2 [1]" in text, text[-3000:]
    assert f"master node1:{20000 + int(job) % 20000}" in text
    rows = train_rows(out)
    assert [r["step"] for r in rows] == list(range(1, 25))
    assert all(math.isfinite(r["loss"]) for r in rows) and rows[-1]["loss"] < rows[0]["loss"]
    ckpt = out / "checkpoints"
    assert (ckpt / "latest").read_text().strip() == "step_000024"
    assert sorted(p.name for p in ckpt.glob("step_*")) == ["step_000012", "step_000024"]
    position = json.loads((ckpt / "step_000024" / "bertpt_state.json").read_text())
    assert position["world_size"] == 2 and position["step"] == 24
    assert (out / "hf" / "model.safetensors").is_file()


def test_usr1_checkpoints_requeues_and_resumes_without_training_a_step_twice(cluster, tiny_data, tmp_path):
    """SIGUSR1 to the batch script (what --signal=B:USR1@T sends ahead of the time limit) mid-run: the
    job checkpoints, requeues itself, and the requeued job resumes from that checkpoint to the end."""
    steps = 300
    out, log = tmp_path / "run", tmp_path / "job.out"
    env = job_env(
        cluster,
        CONFIG=ds_config(tmp_path, "zero2", "fp32"),
        DATA=tiny_data,
        OUTPUT=out,
        MODEL="bert-tiny",
        MAX_STEPS=steps,
        EXTRA_ARGS=f"{TRAIN_FLAGS} --save_steps 0",
    )
    job = sbatch(cluster, env, "-N", "2", f"--output={log}", "slurm/pretrain.sh")
    deadline = time.monotonic() + 300
    while len(train_rows(out)) < 10:  # well into training, far from its end
        assert time.monotonic() < deadline and cluster.job_state(job)["JobState"] in ("PENDING", "RUNNING"), job_log(
            log
        )[-3000:]
        time.sleep(0.2)
    cluster.slurm("scancel", "--batch", "--signal=USR1", job)
    state = cluster.wait_job(job, timeout=600)
    text = job_log(log)
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", (state, text[-4000:])
    assert state["Restarts"] == "1", state
    assert f"bertpt: job {job} (restart 0)" in text and f"bertpt: job {job} (restart 1)" in text
    assert f"requeueing job {job}" in text

    # the step the signal stopped at: saved then, and the requeued run resumed right after it
    stopped = [
        int(line.split(" at step ")[1].split()[0].rstrip(","))
        for line in text.splitlines()
        if "bertpt: stopped by SIGUSR1 at step" in line
    ]
    assert len(stopped) == 1 and 10 <= stopped[0] < steps, text[-4000:]
    k = stopped[0]
    assert f"resumed at step {k} from" in text
    ckpt = out / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("step_*")) == [f"step_{k:06d}", f"step_{steps:06d}"]
    assert json.loads((ckpt / f"step_{k:06d}" / "bertpt_state.json").read_text())["step"] == k
    # every step trained exactly once, across both runs of the job
    assert [r["step"] for r in train_rows(out)] == list(range(1, steps + 1))
    final = json.loads((ckpt / f"step_{steps:06d}" / "bertpt_state.json").read_text())
    assert final["consumed_samples"] == steps * final["global_batch"]


@pytest.fixture(scope="module")
def tiny_data_long(tiny_data, corpus_dir, tmp_path_factory):
    """Phase 2 data: the same text and tokenizer as `tiny_data`, at twice its sequence length."""
    from bertpt.data.corpus import Source
    from bertpt.data.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("data") / "tiny-long"
    prepare(
        PrepareConfig(
            output_dir=str(out),
            tokenizer=str(tiny_data / "tokenizer"),
            max_seq_length=128,
            dupe_factor=1,
            val_fraction=0.1,
            chunk_mb=0.15,
            num_workers=0,
            sentence_splitter="lines",
        ),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    return out


def test_two_phase_flow_runs_phase_2_from_phase_1s_final_checkpoint(cluster, tiny_data, tiny_data_long, tmp_path):
    out = tmp_path / "two-phase"
    env = job_env(
        cluster,
        PHASE1_DATA=tiny_data,
        PHASE2_DATA=tiny_data_long,
        OUTPUT=out,
        MODEL="bert-tiny",
        CONFIG=ds_config(tmp_path, "zero2", "fp32"),
        PHASE1_STEPS=10,
        PHASE2_STEPS=4,
        SBATCH_ARGS=f"-N 2 --output={tmp_path}/%x-%j.out",
        EXTRA_ARGS=TRAIN_FLAGS,
    )
    proc = cluster.run("node1", ["bash", "slurm/pretrain_two_phase.sh"], env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ids = [line.split(": job ")[1].split()[0].rstrip(",") for line in proc.stdout.splitlines() if ": job " in line]
    assert len(ids) == 2, proc.stdout
    phase1, phase2 = ids
    assert cluster.job_state(phase2)["Dependency"].startswith(f"afterok:{phase1}")
    s2 = cluster.wait_job(phase2, timeout=600)
    s1 = cluster.job_state(phase1)
    logs = {p: job_log(tmp_path / f"bertpt-{p}-{j}.out") for p, j in (("phase1", phase1), ("phase2", phase2))}
    assert s1["JobState"] == "COMPLETED" and s2["JobState"] == "COMPLETED", (s1, s2, logs)
    assert s2["StartTime"] >= s1["EndTime"]  # ISO timestamps: phase 2 only ran after phase 1 had ended

    assert "instances of 64 tokens" in logs["phase1"] and "instances of 128 tokens" in logs["phase2"]
    final1 = out / "phase1" / "checkpoints" / "step_000010"
    assert (out / "phase1" / "checkpoints" / "latest").read_text().strip() == final1.name
    assert f"bertpt: initialised from {final1} (all weights" in logs["phase2"], logs["phase2"][-3000:]
    assert [r["step"] for r in train_rows(out / "phase2")] == [1, 2, 3, 4]
    assert (out / "phase2" / "checkpoints" / "latest").read_text().strip() == "step_000004"
    assert (out / "phase2" / "hf" / "model.safetensors").is_file()


def test_the_time_limit_signal_checkpoints_and_requeues(cluster, tiny_data, tmp_path):
    """The script's own `--signal=B:USR1@T` ahead of a real time limit (here 3 minutes, T = 90 s;
    slurmctld checks time limits every 30 s, so it comes 90-120 s before the end): the run stops
    with a checkpoint before the limit, the job requeues and the restart resumes from it."""
    out, log = tmp_path / "run", tmp_path / "job.out"
    env = job_env(
        cluster,
        CONFIG=ds_config(tmp_path, "zero2", "fp32"),
        DATA=tiny_data,
        OUTPUT=out,
        MODEL="bert-tiny",
        MAX_STEPS=1_000_000,
        EXTRA_ARGS=f"{TRAIN_FLAGS} --log_steps 50 --save_steps 0",
    )
    job = sbatch(cluster, env, "-N", "2", "--time=3", "--signal=B:USR1@90", f"--output={log}", "slurm/pretrain.sh")
    try:
        deadline = time.monotonic() + 300
        while "resumed at step" not in job_log(log):
            assert time.monotonic() < deadline, job_log(log)[-4000:]
            time.sleep(1)
        text = job_log(log)
        assert "SIGUSR1 (time limit or preemption near)" in text
        assert "DUE TO TIME LIMIT" not in text  # stopped by the signal, not killed at the limit
        k = int(text.split("bertpt: stopped by SIGUSR1 at step ")[1].split(",")[0])
        assert k > 0 and f"resumed at step {k} from" in text and "(restart 1)" in text
        assert (out / "checkpoints" / f"step_{k:06d}" / "bertpt_state.json").is_file()
    finally:
        cluster.slurm("scancel", job)
