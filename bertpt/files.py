"""Writing files so that a reader never sees half of one: write a temporary sibling, then rename.

`os.replace` is atomic on POSIX file systems (local, and NFS/Lustre for a rename within one
directory), so a kill at any moment leaves the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _tmp_name(path: Path) -> Path:
    # host and pid: several processes (prepare workers, nodes on a shared file system) may write siblings
    return path.with_name(f"{path.name}.tmp-{os.uname().nodename}-{os.getpid()}")


def write_atomic(path: str | Path, data: str | bytes, fsync: bool = False) -> None:
    """Write `data` (str as UTF-8) to `path` atomically. `fsync`: also force it to disk before the
    rename (for files that publish something, e.g. a checkpoint's `latest`). Raises OSError."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, `path` a directory, an interrupt: leave no temporary sibling behind
        tmp.unlink(missing_ok=True)
        raise


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """`np.save` to `path` atomically (the name is used as given: no `.npy` is appended). Raises OSError."""
    path = Path(path)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)
