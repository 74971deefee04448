"""User-facing errors: one clear line and a non-zero exit, never a traceback.

Anything the user can fix (a bad flag, a missing file, a data dir that does not fit the model)
raises `BertptError`. Entry points wrap their body in `exit_on_error`, which prints the message as
one line and exits with status 2. Every rank validates the same inputs, so rank 0 prints and the
others wait a moment first: the launcher (srun --kill-on-bad-exit, deepspeed, torchrun, mpirun) ends
them once rank 0 has exited, so the line appears once; an error only one rank hits (a path missing
on one node) is still printed, by that rank, with its rank and host.
Unexpected exceptions still show their traceback: those are bugs and need it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

EXIT_USER_ERROR = 2
OTHER_RANKS_DELAY_S = 5.0


def process_rank() -> int:
    """This process's global rank from any launcher's variables (errors can come before MPI discovery)."""
    for var in ("RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def is_rank0() -> bool:
    """True in the process of global rank 0 (or when no launcher set a rank)."""
    return process_rank() == 0


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's message as one line (whitespace runs collapsed), cut to `limit` characters;
    its type name when it has no message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if limit is None else text[:limit]


class BertptError(Exception):
    """Something the user can fix; the message says what is wrong and what to do."""

    every_rank = False  # True: a failure of this rank alone (e.g. it cannot reach rank 0), printed by it


class RankError(BertptError):
    """A user-fixable failure that other ranks do not share, so every rank that hits it says so."""

    every_rank = True


@contextlib.contextmanager
def exit_on_error(prog: str):
    try:
        yield
    except BertptError as e:
        rank = process_rank()
        if rank != 0 and not e.every_rank:
            time.sleep(OTHER_RANKS_DELAY_S)  # rank 0 normally says the same; the launcher kills us meanwhile
            prog = f"{prog} (rank {rank} on {socket.gethostname()})"
        print(f"{prog}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)


def require_writable_dir(path: Path, flag: str) -> None:
    """Create `path` if needed and prove it writable now, before hours of work go into it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BertptError(f"{flag} {path}: not writable ({e.strerror})") from None
