"""Resuming on another number of data-parallel ranks, through DeepSpeed's universal checkpoint format.

A ZeRO-1/2/3 checkpoint holds the optimizer state (fp32 master weights, Adam moments) as one flat
partition per rank, so a checkpoint saved on N ranks loads only on N ranks. DeepSpeed's answer is the
*universal* format: `deepspeed.checkpoint.ds_to_universal` merges the partitions into one folder per
parameter (`zero/<name>/fp32.pt, exp_avg.pt, exp_avg_sq.pt, step.pt` plus `zero/optimizer_state.pt`),
and an engine whose JSON says `"checkpoint": {"load_universal": true}` re-partitions that for its own
world size while loading. What bertpt adds, when the world size of the resumed run differs from the
one recorded in the checkpoint's `bertpt_state.json` (resume.plan decides; the helpers are here):

1. The global batch is kept: gradient accumulation becomes G / (micro x M) on M ranks (micro from the
   DeepSpeed JSON given now). The data stream is world-size independent (optimizer step s consumes
   global positions [s*G, (s+1)*G), see dataset.StreamSampler), so every step sees the samples of the
   uninterrupted run and nothing is repeated or skipped. A G that micro x M does not divide is refused
   with one line. Only the in-memory DeepSpeed config changes; the user's file is never written.
2. ZeRO 1-3: rank 0 converts the tag into the sibling directory `<tag>_universal` with DeepSpeed's own
   converter (no GPU needed), written under a temporary name and renamed when complete, so a kill
   mid-conversion leaves nothing that looks finished; a finished conversion of the same checkpoint (same
   manifest) is reused. The other ranks wait at a barrier. The engine is then built with
   `load_universal` and loads `<tag>_universal`; after a ZeRO-3 load, two slips of DeepSpeed's loader
   are undone (see repair_zero3_load), so that the run continues exactly as after a plain load.
   ZeRO 0: the optimizer is not partitioned; the one model_states file holds the whole optimizer state
   and DeepSpeed loads it on any world size, so the tag is loaded as it is (and the universal loader
   could not be used: with ZeRO 0 it skips the module weights altogether).
3. Per-rank RNG states are not restored (rank r of N has no counterpart on M ranks). Masking and data
   order do not depend on them; dropout does, so with dropout on the continuation is statistically, not
   bitwise, the same as the uninterrupted run.

DeepSpeed details this relies on (deepspeed 0.19.8): the converter asserts the checkpoint carries
`universal_checkpoint_info`, which the engine only saves for AutoTP/AutoEP models, so it is called
with `inject_missing_state` (deepspeed/checkpoint/ds_to_universal.py, `_check_for_required_state` and
`_inject_missing_state`); it writes a `latest_universal` file next to its output folder, which lands in
the temporary parent directory here and is removed with it; and its worker pools are disabled (1
worker: no fork of a process that holds a process group). The conversion must finish within the
process group's timeout (30 minutes, distributed.init), which other ranks wait at a barrier. A
world-size change together with a ZeRO-stage change is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import time
from pathlib import Path

from bertpt import distributed
from bertpt.ckpt import layout
from bertpt.errors import BertptError, one_line

SOURCE_MANIFEST = "source_manifest.json"  # the converted tag's manifest: proves which checkpoint this is


def ranks(n: int) -> str:
    """'1 rank', '2 ranks'."""
    return f"{n} rank" if n == 1 else f"{n} ranks"


def zero_stage(ds_config: dict) -> int:
    return int((ds_config.get("zero_optimization") or {}).get("stage", 0))


def batch_sizes(ds_config: dict, world: int) -> tuple[int, int, int]:
    """(micro batch per rank, gradient accumulation steps, global batch) that DeepSpeed will use with
    `ds_config` on `world` ranks, computed before any engine exists. DeepSpeed's own rules
    (deepspeed/runtime/config.py, DeepSpeedConfig._set_batch_related_parameters): of train_batch_size,
    train_micro_batch_size_per_gpu and gradient_accumulation_steps, the missing ones follow from those
    given (integer division), accumulation defaulting to 1 when only one is given; the global batch is
    micro x accumulation x world. A JSON whose values do not multiply out is DeepSpeed's to refuse
    (engine.check_ds_config); here the JSON's train_batch_size is returned as given then."""
    train = ds_config.get("train_batch_size")
    micro = ds_config.get("train_micro_batch_size_per_gpu")
    accum = ds_config.get("gradient_accumulation_steps")
    if train is not None and micro is not None and accum is None:
        accum = int(train) // int(micro) // world
    elif train is not None and micro is None:
        accum = 1 if accum is None else accum
        micro = int(train) // world // int(accum)
    elif micro is not None:
        accum = 1 if accum is None else accum
    else:
        raise BertptError("the DeepSpeed JSON sets neither train_batch_size nor train_micro_batch_size_per_gpu")
    micro, accum = int(micro), int(accum)
    return micro, accum, int(train) if train is not None else micro * accum * world


def kept_accumulation(global_batch: int, micro: int, world: int, where: str) -> int:
    """Gradient accumulation that keeps `global_batch` with `micro` per rank on `world` ranks.
    Raises BertptError when micro x world does not divide the global batch."""
    if global_batch % (micro * world):
        fits = [m for m in range(1, global_batch // world + 1) if global_batch % (m * world) == 0]
        todo = (
            f"set train_micro_batch_size_per_gpu to one of {', '.join(map(str, fits))} in the DeepSpeed JSON"
            if fits
            else f"use a number of ranks that divides {global_batch}"
        )
        raise BertptError(
            f"{where} was trained with a global batch of {global_batch}, which {ranks(world)} x micro "
            f"batch {micro} = {micro * world} does not divide, so it cannot be kept on {ranks(world)}; "
            f"{todo} (or resume on the original world size)"
        )
    return global_batch // (micro * world)


def adjusted_config(ds_config: dict, micro: int, accum: int, global_batch: int, universal: bool) -> dict:
    """A copy of the DeepSpeed config with the batch sizes for the new world size."""
    cfg = json.loads(json.dumps(ds_config))
    cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"] = micro, accum
    if "train_batch_size" in cfg:
        cfg["train_batch_size"] = global_batch
    if universal:
        cfg["checkpoint"] = {**(cfg.get("checkpoint") or {}), "load_universal": True}
    return cfg


def universal_tag(tag: str) -> str:
    return f"{tag}{layout.UNIVERSAL_SUFFIX}"


def is_converted(ckpt_dir: Path, tag: str) -> bool:
    """A finished conversion of exactly this checkpoint (a re-saved tag of the same name is not)."""
    done = ckpt_dir / universal_tag(tag) / SOURCE_MANIFEST
    source = ckpt_dir / tag / layout.MANIFEST
    return done.is_file() and source.is_file() and done.read_bytes() == source.read_bytes()


def convert_on_rank0(ckpt: layout.Checkpoint, rank: int, where: str) -> str:
    """Collective (every rank calls it): rank 0 converts `ckpt` (or reuses a finished conversion) and
    says so, the others wait at a barrier. Returns the universal tag. Raises BertptError on every rank
    when the conversion failed."""
    error = None
    if rank == 0:
        try:
            utag, seconds = convert(ckpt.dir, ckpt.tag)
        except BertptError as e:
            error = e
        else:
            print(
                f"bertpt: {'converted' if seconds else 'reusing the conversion of'} {ckpt.path} ({where}) to "
                f"DeepSpeed's universal checkpoint format in {ckpt.dir / utag}"
                + (f" ({seconds:.1f} s)" if seconds else ""),
                flush=True,
            )
    distributed.barrier()  # every rank waits for rank 0's conversion
    if error is not None:
        raise error
    if not is_converted(ckpt.dir, ckpt.tag):
        raise BertptError(
            f"rank 0 could not convert checkpoint {ckpt.path} ({where}) to DeepSpeed's universal format (see its error)"
        )
    return universal_tag(ckpt.tag)


def convert(ckpt_dir: Path, tag: str) -> tuple[str, float]:
    """Convert `tag` to the universal format in `<tag>_universal` (one process: rank 0). Returns the
    universal tag and the seconds spent (0 when a finished conversion was reused). Raises BertptError."""
    from deepspeed.checkpoint import ds_to_universal

    utag = universal_tag(tag)
    if is_converted(ckpt_dir, tag):
        return utag, 0.0
    t0 = time.time()
    work = ckpt_dir / f".{utag}.tmp"  # the converter also writes `latest_universal` into this parent
    try:
        shutil.rmtree(work, ignore_errors=True)
        out = work / utag
        args = argparse.Namespace(
            input_folder=str(ckpt_dir / tag),
            output_folder=str(out),
            num_extract_workers=1,
            num_merge_workers=1,
            keep_temp_folder=False,
            strict=True,
            inject_missing_state=True,
        )
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            ds_to_universal.main(args)
        (out / "convert.log").write_text(log.getvalue())
        shutil.copyfile(ckpt_dir / tag / layout.MANIFEST, out / SOURCE_MANIFEST)  # which checkpoint this is
        final = ckpt_dir / utag
        if final.exists():  # the conversion of an older checkpoint of the same name
            shutil.rmtree(final)
        out.rename(final)  # complete: only now does <tag>_universal exist
        shutil.rmtree(work, ignore_errors=True)
        _prune_orphans(ckpt_dir)
    except Exception as e:  # noqa: BLE001 -- the converter fails with assertions, value and OS errors alike
        shutil.rmtree(work, ignore_errors=True)
        msg = one_line(e)
        hint = (
            (
                "the conversion is written next to the checkpoint: copy the checkpoint directory somewhere writable "
                "and --resume from there"
            )
            if isinstance(e, OSError)
            else "resume on the world size it was saved with"
        )
        raise BertptError(
            f"converting checkpoint {ckpt_dir / tag} to DeepSpeed's universal format (needed to resume "
            f"on another number of ranks) failed: {type(e).__name__}: {msg}; {hint}"
        ) from None
    return utag, time.time() - t0


def _prune_orphans(ckpt_dir: Path) -> None:
    """Conversions whose checkpoint was pruned (--keep_last) since, and temporaries of killed conversions."""
    suffix = layout.UNIVERSAL_SUFFIX
    for p in ckpt_dir.glob(f"*{suffix}"):
        if p.is_dir() and not (ckpt_dir / p.name[: -len(suffix)]).is_dir():
            shutil.rmtree(p, ignore_errors=True)
    for p in ckpt_dir.glob(f".*{suffix}.tmp"):
        if not (ckpt_dir / p.name[1 : -len(f"{suffix}.tmp")]).is_dir():
            shutil.rmtree(p, ignore_errors=True)


def repair_zero3_load(optimizer, universal_dir: Path) -> None:
    """Undo two slips of DeepSpeed 0.19.8's ZeRO-3 universal loader (runtime/zero/stage3.py,
    `load_hp_checkpoint_state_from_checkpoint_dir_stage3`), so that the run continues as a plain load would:

    - it copies param group 0's options onto every group ("the hyperparameters of each parameter should
      be the same"), which gives the no-decay group (biases, LayerNorm) weight decay 0.01. ZeRO 1/2
      restore each group's own (runtime/base_optimizer.py, `load_hp_checkpoint_state_from_checkpoint_dir`);
      the converter saved all groups in zero/optimizer_state.pt.
    - it stores one and the same `step` tensor in every group's state; Adam increments it in place once
      per group, so with two groups the step count (and Adam's bias correction) would run twice as fast.

    Raises BertptError when the saved parameter groups do not match this run's.
    """
    import torch

    saved = torch.load(
        universal_dir / "zero" / "optimizer_state.pt", map_location="cpu", weights_only=False, mmap=True
    )["param_groups"]
    if len(saved) != len(optimizer.param_groups):
        raise BertptError(
            f"{universal_dir} holds {len(saved)} optimizer parameter groups but this run has "
            f"{len(optimizer.param_groups)}; resume with the same model and optimizer settings"
        )
    for group, options in zip(optimizer.param_groups, saved):
        group.update({k: v for k, v in options.items() if k != "params"})
    for state in optimizer.state.values():
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].clone()
