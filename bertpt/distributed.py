"""Launcher-agnostic process-group setup: deepspeed, torchrun, mpirun and plain `python`.

- deepspeed / torchrun set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT: used as is.
- mpirun sets OMPI_COMM_WORLD_* (PMI_* / PMIX_* for other MPIs): DeepSpeed's MPI discovery (mpi4py)
  turns those into the variables above.
- plain `python bertpt/pretrain.py`: no launcher variables at all. DeepSpeed would then try MPI
  discovery and fail without MPI, so we declare a world of one on a free loopback port.
"""

from __future__ import annotations

import datetime
import os
import socket

import torch.distributed as dist

_MPI_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


def launcher() -> str:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return "env"
    if any(v in os.environ for v in _MPI_VARS):
        return "mpi"
    return "single"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(timeout_minutes: int = 30) -> tuple[int, int, int]:
    """Initialise torch.distributed through DeepSpeed; returns (rank, world size, local rank)."""
    import deepspeed

    if launcher() == "single":
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    deepspeed.init_distributed(auto_mpi_discovery=True, verbose=False,
                               timeout=datetime.timedelta(minutes=timeout_minutes))
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def barrier() -> None:
    dist.barrier()


def shutdown() -> None:
    """A final barrier, then tear down: without it gloo ranks sometimes abort at exit."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
