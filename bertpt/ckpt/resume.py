"""Resuming a run: find -> plan -> load, the one path every resume takes.

    found = resume.find(cfg.resume, ckpt_dir)       # which checkpoint (layout.newest_good), or None: fresh
    plan = resume.plan(found, ds_config, rank, world, model_config, tokenizer_hash)
    engine = deepspeed.initialize(..., config=plan.ds_config)
    position, state = resume.load(engine, plan)     # engine state, RNG; the RunPosition and client state

`plan` checks that the checkpoint fits this run (layout.check_compatible: model shape, tokenizer) before
anything is built, and decides the DeepSpeed config and the tag the engine loads. On the world size
the checkpoint was saved with that is the published tag itself and the config as given; on another
world size the global batch is kept (gradient accumulation adjusted) and a ZeRO 1-3 checkpoint is
loaded through DeepSpeed's universal format (universal.py explains why and how). A plain resume
restores every rank's RNG states, so it continues bitwise like the uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from bertpt.ckpt import layout, universal
from bertpt.ckpt.checkpoint import set_rng_state
from bertpt.errors import BertptError

RESUME_HINT = "pass --resume none with another --output_dir to start over"


@dataclass(frozen=True)
class Plan:
    """What setup builds the engine with, and what `load` loads into it."""

    ds_config: dict
    checkpoint: layout.Checkpoint | None = None  # the published tag resumed; None: a fresh run
    load_tag: str | None = None  # what the engine loads: the tag, or its universal conversion
    position: layout.RunPosition | None = None
    restore_rng: bool = True  # not on another world size: rank r of N has no counterpart on M ranks


def find(resume: str, ckpt_dir: Path) -> layout.Checkpoint | None:
    """Where to resume from (--resume auto|none|PATH), or None to start fresh. Every rank computes the
    same answer from the same files. Raises BertptError: --resume none over existing checkpoints, a PATH
    that holds no checkpoint, or no checkpoint there verifies."""
    if resume == "none":
        if layout.published_tags(ckpt_dir):
            raise BertptError(
                f"--resume none, but {ckpt_dir} already holds checkpoints that a fresh run would "
                "overwrite; use --resume auto to continue, or another --output_dir"
            )
        return None
    if resume == "auto":
        return layout.newest_good(ckpt_dir, "--resume auto", "resuming from", RESUME_HINT)
    found = layout.newest_good(Path(resume), f"--resume {resume}", "resuming from", RESUME_HINT)
    if found is None:
        raise BertptError(f"--resume {resume}: not a bertpt checkpoint directory (no step_* checkpoint inside)")
    return found


def plan(
    found: layout.Checkpoint | None,
    ds_config: dict,
    rank: int,
    world: int,
    model_config: dict,
    tokenizer_hash: str,
    objective: str | None = None,
) -> Plan:
    """How to build the engine and what to load. Collective when the world size changed (every rank
    must call it): rank 0 converts to the universal format then, and reports the batch adjustment.

    Every check comes first, before anything is written (docs/checkpoints.md, "What resuming promises").
    Raises BertptError: another model shape or tokenizer (layout.check_compatible); data of another objective
    (`objective`, the data's; None: not compared) than the checkpoint was trained for; another ZeRO stage than
    the checkpoint's; on the same world size, a global batch (DeepSpeed's, from `ds_config`:
    universal.batch_sizes) other than the checkpoint's; on another world size, a global batch the new world
    size cannot keep or a position that is not a whole number of global batches; a failed conversion."""
    if found is None:
        return Plan(ds_config)
    layout.check_compatible(
        f"checkpoint {found.path}",
        layout.read_model_config(found.dir),
        layout.read_tokenizer_hash(found.dir),
        model_config,
        tokenizer_hash,
        fix_shape="resume with the same --model and data, or use another --output_dir",
        fix_tokenizer="resume with the data it was trained on",
        tokenizer_dir=found.dir / layout.TOKENIZER_DIR,
    )
    trained_for = layout.read_objective(found.dir)
    if objective is not None and objective != trained_for:
        # The weights would fit, but the loss, the logged metrics and the export's class would change mid-run.
        raise BertptError(
            f"checkpoint {found.path} was trained for objective {trained_for} but the data is prepared for "
            f"{objective}; a resume cannot change the objective: resume with its data, or {RESUME_HINT} "
            f"(--init_from {found.dir} keeps its weights)"
        )
    saved = layout.read_position(found)
    where = f"checkpoint {found.path} ({universal.ranks(saved.world_size)})"
    stage = universal.zero_stage(ds_config)
    if stage != saved.zero_stage:
        # The optimizer state is laid out per stage (ZeRO 0: in the model file; 1-2: flat partitions of
        # the fp32 masters; 3: partitioned parameters too): DeepSpeed loads a checkpoint only into its own stage.
        raise BertptError(
            f"{where} was trained with ZeRO stage {saved.zero_stage} but the DeepSpeed JSON asks for "
            f"stage {stage}; a resume cannot change the ZeRO stage: resume with a stage-{saved.zero_stage} "
            f"JSON, or {RESUME_HINT} (--init_from {found.dir} keeps its weights)"
        )
    micro, accum, global_batch = universal.batch_sizes(ds_config, world)
    if saved.world_size == world:
        if global_batch != saved.global_batch:
            # The data position and the LR schedule count optimizer steps of one global batch: another one
            # would silently change what every later step trains on and what the schedule means.
            raise BertptError(
                f"{where} was trained with a global batch of {saved.global_batch} (micro batch "
                f"{saved.micro_batch} x gradient accumulation {saved.grad_accum} x {universal.ranks(world)}) but "
                f"the DeepSpeed JSON gives {global_batch} ({micro} x {accum} x {universal.ranks(world)}); resume "
                f"with a global batch of {saved.global_batch}, or {RESUME_HINT} (--init_from {found.dir} keeps "
                "its weights)"
            )
        return Plan(ds_config, found, found.tag, saved)

    accum = universal.kept_accumulation(saved.global_batch, micro, world, where)
    if saved.consumed_samples % saved.global_batch:
        raise BertptError(
            f"{where} consumed {saved.consumed_samples} samples, not a whole number of its global "
            f"batches of {saved.global_batch}; it cannot be resumed"
        )
    # ZeRO 0 keeps the whole optimizer state in one file that loads on any world size (and the universal
    # loader would skip the module weights): only ZeRO 1-3 go through the conversion.
    load_tag = (
        universal.convert_on_rank0(found, rank, f"ZeRO-{stage}, {universal.ranks(saved.world_size)}")
        if stage > 0
        else found.tag
    )
    if rank == 0:
        print(
            f"bertpt: world size {saved.world_size} -> {world}: "
            + (f"micro batch {saved.micro_batch} -> {micro}, " if saved.micro_batch != micro else "")
            + f"gradient accumulation {saved.grad_accum} -> {accum} keeps the global batch {saved.global_batch}"
            + (
                f" (instead of the DeepSpeed JSON's {ds_config['gradient_accumulation_steps']})"
                if ds_config.get("gradient_accumulation_steps", accum) not in (accum, saved.grad_accum)
                else ""
            )
            + "; per-rank RNG states (dropout) start afresh",
            flush=True,
        )
    return Plan(
        universal.adjusted_config(ds_config, micro, accum, saved.global_batch, stage > 0),
        found,
        load_tag,
        saved,
        restore_rng=False,
    )


def load(engine, plan: Plan) -> tuple[layout.RunPosition, dict]:
    """Load the planned tag into `engine` (built with plan.ds_config) and restore this rank's RNG
    states; returns the run position (bertpt_state.json) and bertpt's client state entry (config,
    ds_config, tokenizer_hash and any later entries; the step and consumed samples that release 0.1
    also stored there are dropped: the position is bertpt_state.json's). Raises BertptError when
    DeepSpeed cannot load it or the engine's global batch does not divide the consumed samples."""
    ckpt = plan.checkpoint
    load_path, client_state = engine.load_checkpoint(str(ckpt.dir), tag=plan.load_tag)
    if load_path is None:
        raise BertptError(f"DeepSpeed could not load the checkpoint {ckpt.dir / plan.load_tag}")
    if plan.load_tag != ckpt.tag and engine.zero_optimization_stage() == 3:
        universal.repair_zero3_load(engine.optimizer.optimizer, ckpt.dir / plan.load_tag)
    rng = layout.rng_file(ckpt.path, dist.get_rank())
    if plan.restore_rng and rng.exists():
        set_rng_state(torch.load(rng, weights_only=False))
    consumed = plan.position.consumed_samples
    if consumed % engine.train_batch_size():
        raise BertptError(
            f"the checkpoint consumed {consumed} samples, not a whole number of global batches of "
            f"{engine.train_batch_size()}: the global batch changed since it was saved; resume "
            "with the same batch sizes and world size"
        )
    state = (client_state or {}).get(layout.CLIENT_KEY) or {}
    return plan.position, {k: v for k, v in state.items() if k not in ("step", "consumed_samples")}
