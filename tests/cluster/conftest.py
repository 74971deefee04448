"""The two-host test cluster (tests/cluster/harness.py), stood up once per test session (under pytest-xdist, by
the one worker that runs the cluster's tests: their xdist_group "cluster").

Skipped where the machine cannot host it (not root, packages missing) unless BERTPT_CLUSTER_TESTS=require,
which CI sets: there a missing package is a failure, not a silent skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, Unavailable
from tests.helpers import REPO, launch_env


@pytest.fixture(scope="session")
def cluster():
    try:
        c = Cluster()
    except Unavailable as e:
        if os.environ.get("BERTPT_CLUSTER_TESTS") == "require":
            pytest.fail(f"BERTPT_CLUSTER_TESTS=require but {e}")
        pytest.skip(str(e))
    with c:
        yield c


def job_env(cluster: Cluster, **settings) -> dict[str, str]:
    """Environment for a submission or launch: the test launch environment (CPU accelerator, this
    checkout on PYTHONPATH), the cluster's SLURM config and ssh, plus slurm/pretrain.sh settings."""
    return {**launch_env(), **cluster.env(), "PYTHON": sys.executable, **{k: str(v) for k, v in settings.items()}}


def sbatch(cluster: Cluster, env: dict, *args: str, timeout: float = 900) -> str:
    """Submit from the repository on node1 (as a user would, from the checkout); the job id. With
    --wait, sbatch exits with the job's status: the caller checks the job's state instead."""
    proc = cluster.run("node1", ["sbatch", "--parsable", *args], env=env, cwd=REPO, timeout=timeout)
    job = proc.stdout.strip().split(";")[0]
    if not job.isdigit() or (proc.returncode != 0 and "--wait" not in args):
        raise AssertionError(f"sbatch {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return job


def job_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
