"""Saving checkpoints that never lose work: DeepSpeed's sharded save, published atomically, plus
what DeepSpeed does not keep (RNG states, the run position). The directory layout is layout.py's;
loading is resume.py's; when to save is policy.py's.

Saving: every rank writes into `<tag>.tmp`, a barrier, then rank 0 checks that every rank's files are
there, writes the manifest, renames the directory to `<tag>` and only then rewrites `latest`. A kill at
any moment leaves either the previous published checkpoint as `latest` or the new one, complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from bertpt.ckpt import layout
from bertpt.data.format import MLM_NSP
from bertpt.errors import BertptError


def rng_state() -> dict:
    """This rank's Python, NumPy, torch CPU and accelerator (None on CPU) RNG states."""
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "accelerator": acc.get_rng_state() if acc.device_name() != "cpu" else None,
    }


def set_rng_state(state: dict) -> None:
    """Restore what rng_state returned."""
    from deepspeed.accelerator import get_accelerator

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("accelerator") is not None:
        get_accelerator().set_rng_state(state["accelerator"])


def write_static_files(
    ckpt_dir: Path, model_config, tokenizer_dir: Path, tokenizer_hash: str, objective: str = MLM_NSP
) -> None:
    """Rank 0, at the start of a run (after any resume was checked against them): what an export
    needs besides the weights (`objective`, the data's: format.OBJECTIVES, decides the exported class),
    and what the next resume checks."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / layout.MODEL_CONFIG).write_text(model_config.to_json_string())
    (ckpt_dir / layout.BERTPT_JSON).write_text(
        json.dumps({"tokenizer_hash": tokenizer_hash, "objective": objective}, indent=2)
    )
    shutil.rmtree(ckpt_dir / layout.TOKENIZER_DIR, ignore_errors=True)
    shutil.copytree(tokenizer_dir, ckpt_dir / layout.TOKENIZER_DIR)


def save(engine, ckpt_dir: Path, position: layout.RunPosition, client_state: dict, summary: dict | None = None) -> str:
    """Save on every rank, publish on rank 0 once all is written and checked; returns the tag.
    `position` becomes bertpt_state.json, `summary` bertpt_summary.json. Raises BertptError on every
    rank when rank 0 could not publish (the previous checkpoint stays `latest`)."""
    tag, rank, world = layout.tag_for(position.step), dist.get_rank(), dist.get_world_size()
    tmp_tag = f"{tag}.tmp"
    if rank == 0:
        shutil.rmtree(ckpt_dir / tmp_tag, ignore_errors=True)  # what an interrupted save left
    dist.barrier()
    engine.save_checkpoint(str(ckpt_dir), tag=tmp_tag, client_state=client_state, save_latest=False)
    torch.save(rng_state(), layout.rng_file(ckpt_dir / tmp_tag, rank))
    dist.barrier()  # every rank's files are written
    error = None
    if rank == 0:
        extra = {layout.STATE: position.to_json(), layout.SUMMARY: json.dumps(summary or {}, indent=2)}
        try:
            _publish(engine, ckpt_dir, tag, world, extra)
        except OSError as e:
            error = f"saving checkpoint {ckpt_dir / tag} failed ({e.strerror or e})"
    flag = torch.tensor([error is not None], dtype=torch.int32)
    dist.broadcast(flag, 0)  # every rank learns whether the save stands
    if flag.item():
        raise BertptError(error or f"saving checkpoint {ckpt_dir / tag} failed on rank 0")
    return tag


def _publish(engine, ckpt_dir: Path, tag: str, world: int, extra_files: dict[str, str]) -> None:
    tmp = ckpt_dir / f"{tag}.tmp"
    rng_files = list(tmp.glob("rng_rank_*.pt"))
    optim_files = list(tmp.glob("*optim_states.pt"))
    if (
        len(rng_files) != world
        or not list(tmp.glob("*model_states.pt"))
        or (engine.zero_optimization_stage() > 0 and len(optim_files) != world)
    ):
        raise OSError(f"not every rank's files are in {tmp}")
    for name, text in extra_files.items():
        (tmp / name).write_text(text)
    layout.write_manifest(tmp, tag)
    _fsync_dir(tmp)
    final = ckpt_dir / tag
    if final.exists():  # the same step saved again (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    layout.write_latest(ckpt_dir, tag)


def prune(ckpt_dir: Path, keep_last: int) -> list[str]:
    """Rank 0: delete all but the `keep_last` newest published tags (0: keep all), never the newest one
    that verifies (layout.newest_verified), whatever the newer ones are; returns the deleted tags."""
    if keep_last <= 0:
        return []
    good = layout.newest_verified(ckpt_dir)
    gone = [tag for tag in layout.published_tags(ckpt_dir)[keep_last:] if tag != good]
    for tag in gone:
        shutil.rmtree(ckpt_dir / tag, ignore_errors=True)
    return gone


def _fsync_dir(path: Path) -> None:
    """Data of every file in `path` on disk before the rename publishes it."""
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
