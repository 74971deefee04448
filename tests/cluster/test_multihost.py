"""Launches across the two namespace hosts of the test cluster: the deepspeed launcher with a hostfile
(pdsh over ssh), mpirun with the same hostfile (ssh), srun --mpi=pmix inside a SLURM job; and the
rendezvous failing with one clear line within its timeout instead of hanging.

Every launch trains the same fp32 run (same seed, global batch, world size 2), so their losses must
agree with each other and with slurm/pretrain.sh's srun-per-task launch.
"""

from __future__ import annotations

import json
import shlex
import sys
import time

import pytest

from tests.cluster.conftest import job_env, job_log, sbatch
from tests.helpers import (
    PRETRAIN,
    REPO,
    ds_config,
    free_port,
    losses,
    read_metrics,
    train_args,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.xdist_group("cluster")]  # one worker: shared daemons
STEPS = 6
HOSTFILE = str(REPO / "hostfiles" / "2x1cpu")


def assert_trained_on_both_hosts(output: str, out) -> None:
    assert "bertpt: 2 ranks on 2 hosts: node1 [0], node2 [1]" in output, output[-3000:]
    assert sorted(read_metrics(out)) == list(range(1, STEPS + 1))
    position = json.loads((out / "checkpoints" / f"step_{STEPS:06d}" / "bertpt_state.json").read_text())
    assert position["world_size"] == 2


@pytest.fixture(scope="module")
def srun_reference(cluster, tiny_data, tmp_path_factory):
    """slurm/pretrain.sh on both nodes (srun per task): the losses every other launch must match."""
    tmp = tmp_path_factory.mktemp("srun")
    out, log = tmp / "run", tmp / "job.out"
    env = job_env(
        cluster,
        CONFIG=ds_config(tmp, "zero2", "fp32"),
        DATA=tiny_data,
        OUTPUT=out,
        MODEL="bert-tiny",
        MAX_STEPS=STEPS,
        EXTRA_ARGS="--log_steps 1 --eval_steps 0 --eval_samples 32 --num_workers 0",
    )
    job = sbatch(cluster, env, "--wait", "-N", "2", f"--output={log}", "slurm/pretrain.sh")
    assert cluster.job_state(job)["JobState"] == "COMPLETED", job_log(log)[-3000:]
    assert_trained_on_both_hosts(job_log(log), out)
    return losses(out)


def test_deepspeed_launcher_with_a_hostfile_trains_across_both_hosts(cluster, tiny_data, srun_reference, tmp_path):
    out = tmp_path / "run"
    env_file = tmp_path / "deepspeed_env"  # what the remote processes need beyond NCCL*/PYTHON* (README)
    env_file.write_text("DS_ACCELERATOR=cpu\nOMP_NUM_THREADS=1\n")
    cmd = [
        "deepspeed",
        "--hostfile",
        HOSTFILE,
        "--master_port",
        str(free_port()),
        PRETRAIN,
        *train_args(tiny_data, out, ds_config(tmp_path, "zero2", "fp32"), STEPS),
    ]
    proc = cluster.run("node1", cmd, env=job_env(cluster, DS_ENV_FILE=str(env_file)), cwd=REPO, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "node2: " in output  # pdsh prefixes each remote line with its host
    assert_trained_on_both_hosts(output, out)
    assert losses(out) == pytest.approx(srun_reference, rel=1e-6, abs=0)


def test_mpirun_with_the_same_hostfile_trains_across_both_hosts(cluster, tiny_data, srun_reference, tmp_path):
    out = tmp_path / "run"
    cmd = [
        "mpirun",
        "-np",
        "2",
        "-hostfile",
        HOSTFILE,
        "-x",
        "DS_ACCELERATOR",
        "-x",
        "OMP_NUM_THREADS",
        "-x",
        "PYTHONPATH",
        "-x",
        "MASTER_PORT",
        sys.executable,
        PRETRAIN,
        *train_args(tiny_data, out, ds_config(tmp_path, "zero2", "fp32"), STEPS),
    ]
    port = free_port()
    proc = cluster.run("node1", cmd, env=job_env(cluster, MASTER_PORT=str(port)), cwd=REPO, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert_trained_on_both_hosts(output, out)
    assert losses(out) == pytest.approx(srun_reference, rel=1e-6, abs=0)


def test_srun_mpi_pmix_in_a_job_trains_across_both_hosts(cluster, tiny_data, srun_reference, tmp_path):
    """srun --mpi=pmix, no RANK/MASTER_* exported: DeepSpeed's mpi4py discovery finds the world."""
    out, log = tmp_path / "run", tmp_path / "job.out"
    args = train_args(tiny_data, out, ds_config(tmp_path, "zero2", "fp32"), STEPS)
    wrap = f"srun --mpi=pmix {shlex.quote(sys.executable)} bertpt/pretrain.py {shlex.join(args)}"
    job = sbatch(
        cluster,
        job_env(cluster, MASTER_PORT=str(free_port())),
        "--wait",
        "-N",
        "2",
        "--ntasks-per-node=1",
        f"--output={log}",
        f"--wrap={wrap}",
    )
    text = job_log(log)
    assert cluster.job_state(job)["JobState"] == "COMPLETED", text[-4000:]
    assert_trained_on_both_hosts(text, out)
    assert losses(out) == pytest.approx(srun_reference, rel=1e-6, abs=0)


def test_a_rank_whose_rendezvous_never_answers_stops_within_the_timeout(cluster, tiny_data, tmp_path):
    """Rank 1 on node2 while rank 0 never starts on node1 (a dead node, the wrong node): one line
    naming the address and port, within --rendezvous_timeout, not torch's 30-minute wait."""
    port = free_port()
    args = train_args(
        tiny_data, tmp_path / "run", ds_config(tmp_path, "zero2", "fp32"), STEPS, "--rendezvous_timeout", "5"
    )
    env = job_env(cluster, RANK="1", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="node1", MASTER_PORT=str(port))
    start = time.monotonic()
    proc = cluster.run("node2", [sys.executable, PRETRAIN, *args], env=env, cwd=REPO, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        f"bertpt-pretrain: error: rank 1 cannot reach the rendezvous at node1:{port} "
        f"(MASTER_ADDR:MASTER_PORT) within 5 s (Connection refused); check that rank 0 is running, "
        "that node1 resolves and is reachable from this node (firewall; GLOO_SOCKET_IFNAME / "
        "NCCL_SOCKET_IFNAME for the right interface), or raise --rendezvous_timeout"
    ], proc.stderr[-3000:]
    assert elapsed < 5 + 30  # the timeout plus start-up (imports) on a busy 2-core machine


def test_a_master_addr_that_is_not_rank_0s_host_fails_at_once_on_every_node(cluster, tiny_data, tmp_path):
    """sbatch with MASTER_ADDR set to an address no host has: rank 0 says so at once and the job ends."""
    out, log = tmp_path / "run", tmp_path / "job.out"
    nowhere = f"{cluster.net}.99"
    env = job_env(
        cluster,
        CONFIG=ds_config(tmp_path, "zero2", "fp32"),
        DATA=tiny_data,
        OUTPUT=out,
        MODEL="bert-tiny",
        MAX_STEPS=STEPS,
        MASTER_ADDR=nowhere,
        EXTRA_ARGS="--rendezvous_timeout 600 --num_workers 0",
    )
    start = time.monotonic()
    job = sbatch(cluster, env, "--wait", "-N", "2", f"--output={log}", "slurm/pretrain.sh")
    elapsed = time.monotonic() - start
    text = job_log(log)
    assert cluster.job_state(job)["JobState"] == "FAILED", text[-3000:]
    assert (
        f"bertpt-pretrain: error: rank 0 runs on node1 but MASTER_ADDR {nowhere} is not an address of this host "
        "(Cannot assign requested address)"
    ) in text, text[-3000:]
    assert elapsed < 120  # not the 600 s rendezvous timeout of rank 1, nor torch's 30 minutes
