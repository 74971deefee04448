"""Which launcher started us, read from the environment it sets (the launches themselves are in e2e/)."""

from __future__ import annotations

import pytest

from bertpt.distributed import launcher

LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "single"),
        ({"RANK": "1", "WORLD_SIZE": "2"}, "env"),  # deepspeed, torchrun, srun script
        ({"OMPI_COMM_WORLD_SIZE": "2"}, "mpi"),  # Open MPI's mpirun
        ({"PMIX_RANK": "0"}, "mpi"),  # srun --mpi=pmix
        ({"RANK": "0"}, "single"),  # a stray RANK alone is not a launch
    ],
)
def test_launcher_detection(monkeypatch, env, expected):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launcher() == expected


def test_sweep_removes_only_stale_unmapped_shm_buffers(tmp_path):
    import mmap
    import os
    import time

    from bertpt.distributed import sweep_stale_shm_buffers

    uid = os.getuid()
    paths = {
        name: tmp_path / f"deepspeed_allreduce_buffer_{uid}_127.0.0.1_{name}_0" for name in ("dead", "mapped", "young")
    }
    paths["other-user"] = tmp_path / f"deepspeed_allreduce_buffer_{uid + 1}_127.0.0.1_1_0"
    for p in paths.values():
        p.write_bytes(b"\0" * 4096)
    old = time.time() - 3600
    for name in ("dead", "mapped", "other-user"):
        os.utime(paths[name], (old, old))
    with open(paths["mapped"], "r+b") as f, mmap.mmap(f.fileno(), 4096):  # a live run maps its segment
        removed = sweep_stale_shm_buffers(str(tmp_path))
    assert removed == [str(paths["dead"])]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for n, p in paths.items() if n != "dead")


def test_rank_0_accepts_its_own_addresses_and_refuses_another_hosts():
    import socket

    from bertpt.distributed import check_master_addr_is_local
    from bertpt.errors import RankError

    for addr in ("127.0.0.1", "localhost", socket.gethostname()):
        check_master_addr_is_local(addr)
    with pytest.raises(RankError, match=r"MASTER_ADDR 192\.0\.2\.254 is not an address of this host"):
        check_master_addr_is_local("192.0.2.254")  # TEST-NET-1: never a local address here


def test_hosts_line_in_a_world_of_one(monkeypatch):
    import socket

    import torch.distributed as dist

    from bertpt.distributed import hosts_line

    from tests.helpers import free_port

    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        assert hosts_line(0) == f"1 ranks on 1 host: {socket.gethostname()} [0]"
    finally:
        dist.destroy_process_group()


def test_deepspeed_will_not_build_its_shm_op_which_training_never_calls():
    """deepspeed.comm's TorchBackend builds `deepspeed_shm_comm` on start (about a minute, once per machine)
    unless deepspeed.ops.__compatible_ops__ marks it incompatible; it serves only inference_all_reduce."""
    import importlib
    import inspect

    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    from bertpt.distributed import SHM_COMM_OP, skip_shm_comm_build

    if get_accelerator().create_op_builder("ShareMemCommBuilder") is None:
        assert skip_shm_comm_build() is False
        return
    ds_torch = importlib.import_module("deepspeed.comm.torch")  # `import deepspeed.comm.torch as` finds torch
    skip_shm_comm_build()
    assert deepspeed.ops.__compatible_ops__[SHM_COMM_OP] is False
    assert ds_torch.build_shm_op() is None  # DeepSpeed's own builder call now returns without compiling
    # what the claim rests on: in training's collectives the op is never used, only in inference_all_reduce
    uses = [
        name
        for name, fn in inspect.getmembers(ds_torch.TorchBackend, inspect.isfunction)
        if "inference_all_reduce_" in inspect.getsource(fn) or "shm_comm_op." in inspect.getsource(fn)
    ]
    assert uses == ["__init__", "inference_all_reduce"]
