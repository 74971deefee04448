"""Launcher-agnostic process-group setup: deepspeed, torchrun, mpirun and plain `python`.

- deepspeed / torchrun set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT: used as is.
- mpirun sets OMPI_COMM_WORLD_* (PMI_* / PMIX_* for other MPIs): DeepSpeed's MPI discovery (mpi4py)
  turns those into the variables above.
- plain `python bertpt/pretrain.py`: no launcher variables at all. DeepSpeed would then try MPI
  discovery and fail without MPI, so we declare a world of one on a free loopback port.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import os
import socket
import time

import torch.distributed as dist

from bertpt.errors import RankError

_MPI_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")


def launcher() -> str:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return "env"
    if any(v in os.environ for v in _MPI_VARS):
        return "mpi"
    return "single"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(rendezvous_seconds: float = 300, timeout_minutes: float = 30) -> tuple[int, int, int]:
    """Initialise torch.distributed through DeepSpeed; returns (rank, world size, local rank).

    `rendezvous_seconds` bounds how long a rank waits for rank 0's rendezvous (MASTER_ADDR:MASTER_PORT)
    to answer; torch alone would wait the whole collective timeout (`timeout_minutes`, --collective_timeout_minutes,
    which must stay long: checkpoint saves and conversions run while other ranks wait at a barrier).
    DeepSpeed's CPU shared-memory op, which training never calls, is not built (`skip_shm_comm_build`)."""
    import deepspeed

    kind = launcher()
    if kind == "single":
        os.environ.update(
            RANK="0",
            WORLD_SIZE="1",
            LOCAL_RANK="0",
            LOCAL_SIZE="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(free_port()),
        )
    elif kind == "mpi":
        mpi_discovery()
    if os.environ.get("LOCAL_RANK", "0") == "0":
        sweep_stale_shm_buffers()
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    if os.environ["RANK"] == "0":
        check_master_addr_is_local(addr)
    else:
        wait_for_rendezvous(addr, port, rendezvous_seconds)
    skip_shm_comm_build()
    try:
        deepspeed.init_distributed(
            auto_mpi_discovery=True, verbose=False, timeout=datetime.timedelta(minutes=timeout_minutes)
        )
    except RuntimeError as e:  # torch's DistNetworkError is a RuntimeError
        if "EADDRINUSE" in str(e) or "address already in use" in str(e).lower():
            raise RankError(
                f"MASTER_PORT {os.environ.get('MASTER_PORT')} is already in use on this node (another "
                "job?); pick another port: deepspeed/torchrun --master_port, or MASTER_PORT for "
                "slurm/pretrain.sh"
            ) from None
        raise
    rank, world, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1:
        line = hosts_line(local_rank)
        if rank == 0:
            print(f"bertpt: {line}", flush=True)
    return rank, world, local_rank


SHM_COMM_OP = "deepspeed_shm_comm"


def skip_shm_comm_build() -> bool:
    """Keep DeepSpeed from compiling its CPU shared-memory communication op in init_distributed; returns
    whether this accelerator would have built it.

    deepspeed 0.19.8's TorchBackend.__init__ (deepspeed/comm/torch.py) calls build_shm_op() on every
    start, which JIT-compiles `deepspeed_shm_comm` (csrc/cpu/comm/shm.cpp) on the CPU accelerator the
    first time on a machine: 62 s of silence on a 2-core CPU (measured, docs/performance.md). The op
    serves only `inference_all_reduce` (DeepSpeed inference's tensor-parallel layers, module_inject);
    training's all_reduce, reduce_scatter and all_gather go through torch.distributed, so losses and
    weights do not depend on it, at any world size. build_shm_op skips the op when
    `deepspeed.ops.__compatible_ops__` marks it incompatible, a dict DeepSpeed caches so that edits to
    it persist (deepspeed/ops/__init__.py); bertpt marks it so. Without the op, DeepSpeed also creates
    no shared-memory segments in /dev/shm (those of older runs are still swept)."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().create_op_builder("ShareMemCommBuilder") is None:
        return False
    compatible = deepspeed.ops.__compatible_ops__
    would_build = bool(compatible.get(SHM_COMM_OP, False))
    compatible[SHM_COMM_OP] = False
    return would_build


def hosts_line(local_rank: int) -> str:
    """Which rank runs where, e.g. "4 ranks on 2 hosts: node1 [0-1], node2 [2-3]": the first thing to
    check when a multi-node launch does not look as planned. A tensor all_gather (not an object
    collective, which would need the device set first on NCCL)."""
    import torch
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    acc.set_device(local_rank)
    name = socket.gethostname().encode()[:255]
    mine = torch.zeros(256, dtype=torch.int32, device=acc.current_device_name())
    mine[: len(name)] = torch.tensor(list(name), dtype=torch.int32)
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    hosts: dict[str, list[int]] = {}
    for r, t in enumerate(every):
        hosts.setdefault(bytes(v for v in t.tolist() if v).decode(errors="replace"), []).append(r)

    def ranks(rs: list[int]) -> str:
        return f"{rs[0]}-{rs[-1]}" if rs == list(range(rs[0], rs[-1] + 1)) and len(rs) > 1 else ",".join(map(str, rs))

    return f"{len(every)} ranks on {len(hosts)} host{'s' if len(hosts) > 1 else ''}: " + ", ".join(
        f"{h} [{ranks(rs)}]" for h, rs in hosts.items()
    )


def mpi_discovery() -> None:
    """RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR from MPI (mpirun, srun --mpi=pmix) with DeepSpeed's own
    discovery (mpi4py; the address is rank 0's first `hostname -I` address). Two things it would
    otherwise override are kept: MASTER_PORT (it always uses 29500, so two jobs on one node collide)
    and a MASTER_ADDR the user set (rank 0's first address may be the wrong network)."""
    from deepspeed.comm.comm import TORCH_DISTRIBUTED_DEFAULT_PORT
    from deepspeed.comm.comm import mpi_discovery as ds_mpi_discovery

    user_addr = os.environ.get("MASTER_ADDR")
    ds_mpi_discovery(
        distributed_port=int(os.environ.get("MASTER_PORT") or TORCH_DISTRIBUTED_DEFAULT_PORT), verbose=False
    )
    if user_addr:
        os.environ["MASTER_ADDR"] = user_addr


def check_master_addr_is_local(addr: str) -> None:
    """Rank 0 hosts the rendezvous, so MASTER_ADDR must be one of its own addresses; otherwise rank 0
    (and every other rank) would wait for the collective timeout. One line instead."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as s:
            s.bind((addr, 0))
    except socket.gaierror as e:
        raise RankError(
            f"rank 0: MASTER_ADDR {addr!r} does not resolve on {socket.gethostname()} ({e.strerror}); "
            "set it to this host's name or address"
        ) from None
    except OSError as e:
        raise RankError(
            f"rank 0 runs on {socket.gethostname()} but MASTER_ADDR {addr} is not an address of this "
            f"host ({e.strerror}); the rendezvous lives on rank 0's host: set MASTER_ADDR to it (the "
            "first node of the allocation / the first host of the hostfile)"
        ) from None


def wait_for_rendezvous(addr: str, port: str, seconds: float) -> None:
    """Wait until rank 0's rendezvous port accepts a TCP connection, or fail with one clear line."""
    deadline, last = time.monotonic() + seconds, "no attempt"
    while True:
        try:
            with socket.create_connection((addr, int(port)), timeout=min(5.0, seconds)):
                return
        except (OSError, ValueError) as e:
            last = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        if time.monotonic() >= deadline:
            raise RankError(
                f"rank {os.environ.get('RANK')} cannot reach the rendezvous at {addr}:{port} (MASTER_ADDR:MASTER_PORT) "
                f"within {seconds:g} s ({last}); check that rank 0 is running, that {addr} resolves and is reachable "
                "from this node (firewall; GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME for the right interface), "
                "or raise --rendezvous_timeout"
            )
        time.sleep(1.0)


def barrier() -> None:
    dist.barrier()


def shutdown() -> None:
    """A final barrier, then tear down: without it gloo ranks sometimes abort at exit."""
    if dist.is_initialized():
        dist.barrier()
        _unlink_shm_buffer(dist.get_rank())
        dist.destroy_process_group()


SHM_DIR = "/dev/shm"


def sweep_stale_shm_buffers(shm_dir: str = SHM_DIR, min_age_s: float = 60.0) -> list[str]:
    """Remove DeepSpeed allreduce segments left by runs that died before `shutdown` (crash, kill):
    those no live process maps and older than `min_age_s` (a starting run maps its own at once).
    Returns the removed paths."""
    mine = sorted(glob.glob(os.path.join(shm_dir, f"deepspeed_allreduce_buffer_{os.getuid()}_*")))
    if not mine:
        return []
    mapped = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        with contextlib.suppress(OSError):
            with open(maps) as f:
                mapped.update(line.split(maxsplit=5)[-1].strip() for line in f if "deepspeed_allreduce" in line)
    removed = []
    for path in mine:
        with contextlib.suppress(OSError):
            if path not in mapped and time.time() - os.stat(path).st_mtime > min_age_s:
                os.unlink(path)
                removed.append(path)
    return removed


def _unlink_shm_buffer(rank: int) -> None:
    """DeepSpeed's CPU shared-memory allreduce (deepspeed 0.19.8 ops/csrc/cpu/comm/shm.cpp, used when
    all ranks are on one machine) creates a POSIX shared-memory segment per rank, named after the
    master address and port, and never unlinks it: every run left its segments in /dev/shm (RAM),
    16 GB of them after a day of test runs here. Past the final barrier no rank opens it again
    (mapped pages stay valid until exit), so each rank removes its own."""
    name = (
        f"{SHM_DIR}/deepspeed_allreduce_buffer_{os.getuid()}_{os.environ.get('MASTER_ADDR')}_"
        f"{os.environ.get('MASTER_PORT')}_{rank}"
    )
    with contextlib.suppress(OSError):
        os.unlink(name)
