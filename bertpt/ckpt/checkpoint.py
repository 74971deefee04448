"""Checkpoints that never lose work: DeepSpeed's sharded save/load, published atomically, verified
on load, plus what DeepSpeed does not keep.

Layout of <output_dir>/checkpoints/:
    latest                   the newest *published* tag; written (atomically) only after every rank
                             finished writing and the files were checked
    step_000500/             DeepSpeed's model/optimizer/scheduler shards, plus
        rng_rank_{r}.pt      each rank's Python, NumPy, torch CPU and accelerator RNG states
        bertpt_state.json    step, consumed samples, world size and batch sizes of the run that saved it
        manifest.json        every file of the tag with its size; written last, before publishing
    step_000500.tmp/         a save in progress (or one that was interrupted: never loaded)
    model_config.json        the BertConfig (for export without the training code)
    bertpt.json              the tokenizer fingerprint (checked on resume)
    tokenizer/               the data's tokenizer (shipped with the export)

Saving: every rank writes into `<tag>.tmp`, a barrier, then rank 0 checks that every rank's files are
there, writes the manifest, renames the directory to `<tag>` and only then rewrites `latest`. A kill at
any moment leaves either the previous published checkpoint as `latest` or the new one, complete.
Loading: the newest published tag whose files match its manifest; one that does not (truncated,
missing files) is reported and the previous one used.

The client state stored with the engine holds the step, the consumed samples (the data position:
see dataset.py, the stream is a pure function of it), the bertpt config and the DeepSpeed JSON.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from bertpt.errors import BertptError, is_rank0
from bertpt.files import write_atomic

TAG = re.compile(r"step_(\d+)")


def tag_for(step: int) -> str:
    return f"step_{step:06d}"


def published_tags(ckpt_dir: Path) -> list[str]:
    """Published tags, newest first."""
    tags = [p.name for p in ckpt_dir.glob("step_*") if p.is_dir() and TAG.fullmatch(p.name)]
    return sorted(tags, key=lambda t: int(TAG.fullmatch(t).group(1)), reverse=True)


def verify(tag_dir: Path) -> str | None:
    """None if every file of the tag is there with the size the manifest recorded; else what is wrong."""
    manifest = tag_dir / "manifest.json"
    if not manifest.is_file():
        return "no manifest.json (not saved by bertpt, or the save did not finish)"
    try:
        sizes = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as e:
        return f"manifest.json is damaged ({e})"
    for name, size in sizes.items():
        path = tag_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    return None


def find_resume(resume: str, ckpt_dir: Path) -> tuple[Path, str] | None:
    """Where to resume from: (checkpoint dir, verified tag), or None to start fresh. Every rank
    computes the same answer from the same files."""
    if resume == "none":
        if published_tags(ckpt_dir):
            raise BertptError(f"--resume none, but {ckpt_dir} already holds checkpoints that a fresh run would "
                              "overwrite; use --resume auto to continue, or another --output_dir")
        return None
    if resume == "auto":
        return _newest_good(ckpt_dir) if published_tags(ckpt_dir) else None
    path = Path(resume)
    if path.is_dir() and TAG.fullmatch(path.name) and (path / "manifest.json").exists():  # one tag
        problem = verify(path)
        if problem:
            raise BertptError(f"--resume {resume}: the checkpoint is incomplete or damaged ({problem})")
        return path.parent, path.name
    if published_tags(path):
        return _newest_good(path)
    raise BertptError(f"--resume {resume}: not a bertpt checkpoint directory (no step_* checkpoint inside)")


def _newest_good(ckpt_dir: Path) -> tuple[Path, str]:
    """The newest published tag that verifies; warns about each newer one that does not."""
    latest = (ckpt_dir / "latest").read_text().strip() if (ckpt_dir / "latest").is_file() else None
    bad = []
    for tag in published_tags(ckpt_dir):
        problem = verify(ckpt_dir / tag)
        if problem is None:
            if bad and is_rank0():
                print(f"bertpt: warning: skipped {'; '.join(bad)}; resuming from {ckpt_dir / tag}",
                      file=sys.stderr, flush=True)
            elif latest not in (None, tag) and is_rank0():
                print(f"bertpt: warning: {ckpt_dir}/latest names {latest}, but {tag} is the newest complete "
                      "checkpoint; resuming from it", file=sys.stderr, flush=True)
            return ckpt_dir, tag
        bad.append(f"checkpoint {ckpt_dir / tag} is incomplete or damaged ({problem})")
    raise BertptError(f"no usable checkpoint in {ckpt_dir}: {'; '.join(bad)}; pass --resume none with another "
                      "--output_dir to start over")


def rng_state() -> dict:
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "accelerator": acc.get_rng_state() if acc.device_name() != "cpu" else None}


def set_rng_state(state: dict) -> None:
    from deepspeed.accelerator import get_accelerator

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("accelerator") is not None:
        get_accelerator().set_rng_state(state["accelerator"])


def write_static_files(ckpt_dir: Path, model_config, tokenizer_dir: Path, tokenizer_hash: str) -> None:
    """Rank 0, at the start of a run (after any resume was checked against them): what an export
    needs besides the weights, and what the next resume checks."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    (ckpt_dir / "model_config.json").write_text(model_config.to_json_string())
    (ckpt_dir / "bertpt.json").write_text(json.dumps({"tokenizer_hash": tokenizer_hash}, indent=2))
    shutil.rmtree(ckpt_dir / "tokenizer", ignore_errors=True)
    shutil.copytree(tokenizer_dir, ckpt_dir / "tokenizer")


def save(engine, ckpt_dir: Path, step: int, client_state: dict, keep_last: int = 0,
         extra_files: dict[str, str] | None = None) -> str:
    """Save on every rank, publish on rank 0 once all is written and checked; returns the tag."""
    tag, rank, world = tag_for(step), dist.get_rank(), dist.get_world_size()
    tmp_tag = f"{tag}.tmp"
    if rank == 0:
        shutil.rmtree(ckpt_dir / tmp_tag, ignore_errors=True)  # what an interrupted save left
    dist.barrier()
    engine.save_checkpoint(str(ckpt_dir), tag=tmp_tag, client_state=client_state, save_latest=False)
    torch.save(rng_state(), ckpt_dir / tmp_tag / f"rng_rank_{rank}.pt")
    dist.barrier()  # every rank's files are written
    error = None
    if rank == 0:
        try:
            _publish(engine, ckpt_dir, tag, world, extra_files or {})
            _prune(ckpt_dir, keep_last)
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
    if len(rng_files) != world or not list(tmp.glob("*model_states.pt")) or \
            (engine.zero_optimization_stage() > 0 and len(optim_files) != world):
        raise OSError(f"not every rank's files are in {tmp}")
    for name, text in extra_files.items():
        (tmp / name).write_text(text)
    files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    write_atomic(tmp / "manifest.json", json.dumps({"tag": tag, "files": files}, indent=1), fsync=True)
    _fsync_dir(tmp)
    final = ckpt_dir / tag
    if final.exists():  # the same step saved again (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    write_atomic(ckpt_dir / "latest", tag, fsync=True)


def _prune(ckpt_dir: Path, keep_last: int) -> None:
    if keep_last > 0:
        for tag in published_tags(ckpt_dir)[keep_last:]:
            shutil.rmtree(ckpt_dir / tag, ignore_errors=True)



def _fsync_dir(path: Path) -> None:
    """Data of every file in `path` on disk before the rename publishes it."""
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def load(engine, ckpt_dir: Path, tag: str, expect: dict, restore_rng: bool = True) -> dict:
    """Load engine state; check the checkpoint fits this run; restore this rank's RNG state."""
    _check_compatible(ckpt_dir, tag, expect)
    load_path, client_state = engine.load_checkpoint(str(ckpt_dir), tag=tag)
    if load_path is None:
        raise BertptError(f"DeepSpeed could not load the checkpoint {ckpt_dir / tag}")
    rng_file = ckpt_dir / tag / f"rng_rank_{dist.get_rank()}.pt"
    if restore_rng and rng_file.exists():
        set_rng_state(torch.load(rng_file, weights_only=False))
    return client_state


def _check_compatible(ckpt_dir: Path, tag: str, expect: dict) -> None:
    """Refuse, with one line, a checkpoint of another model size or another vocabulary."""
    config_file = ckpt_dir / "model_config.json"
    if config_file.exists():
        saved = json.loads(config_file.read_text())
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if saved.get(key) != expect["model_config"].get(key):
                raise BertptError(f"checkpoint {ckpt_dir / tag} has {key}={saved.get(key)} but this run's model has "
                                  f"{expect['model_config'].get(key)}; resume with the same --model and data, "
                                  "or use another --output_dir")
    saved_hash = json.loads((ckpt_dir / "bertpt.json").read_text()).get("tokenizer_hash") \
        if (ckpt_dir / "bertpt.json").exists() else None
    if saved_hash and saved_hash != expect["tokenizer_hash"]:
        raise BertptError(f"checkpoint {ckpt_dir} was trained with another tokenizer ({saved_hash}) than the data's "
                          f"({expect['tokenizer_hash']}); resume with the data it was trained on")


def saved_state(ckpt_dir: Path, tag: str) -> dict:
    """bertpt_state.json of a tag: step, consumed samples, world size, batch sizes, ZeRO stage."""
    return json.loads((ckpt_dir / tag / "bertpt_state.json").read_text())


def client_state(step: int, consumed: int, cfg, ds_config: dict, tokenizer_hash: str) -> dict:
    return {"bertpt": {"step": step, "consumed_samples": consumed, "config": asdict(cfg),
                       "ds_config": ds_config, "tokenizer_hash": tokenizer_hash}}
