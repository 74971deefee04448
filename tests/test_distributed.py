"""Which launcher started us, read from the environment it sets (the launches themselves are in e2e/)."""

from __future__ import annotations

import pytest

from bertpt.distributed import launcher

LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


@pytest.mark.parametrize("env, expected", [
    ({}, "single"),
    ({"RANK": "1", "WORLD_SIZE": "2"}, "env"),                    # deepspeed, torchrun, srun script
    ({"OMPI_COMM_WORLD_SIZE": "2"}, "mpi"),                        # Open MPI's mpirun
    ({"PMIX_RANK": "0"}, "mpi"),                                   # srun --mpi=pmix
    ({"RANK": "0"}, "single"),                                     # a stray RANK alone is not a launch
])
def test_launcher_detection(monkeypatch, env, expected):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launcher() == expected
