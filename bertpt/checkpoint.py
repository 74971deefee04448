"""Checkpoints: DeepSpeed's sharded save/load plus what DeepSpeed does not keep.

Layout of <output_dir>/checkpoints/:
    latest                   the newest tag (written by DeepSpeed after every rank saved)
    step_000500/             DeepSpeed's model/optimizer/scheduler shards, plus
        rng_rank_{r}.pt      each rank's Python, NumPy, torch CPU and accelerator RNG states
    model_config.json        the BertConfig (for export without the training code)
    bertpt.json              the tokenizer fingerprint (checked on resume)
    tokenizer/               the data's tokenizer (shipped with the export)

The client state stored with the engine holds the step, the consumed samples (the data position:
see dataset.py, the stream is a pure function of it), the bertpt config and the DeepSpeed JSON.
`load` checks model size and tokenizer against this run before loading anything.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from bertpt.errors import BertptError


def tag_for(step: int) -> str:
    return f"step_{step:06d}"


def find_resume(resume: str, ckpt_dir: Path) -> tuple[Path, str | None] | None:
    """Where to resume from: (checkpoint dir, tag or None for `latest`), or None to start fresh."""
    if resume == "none":
        if (ckpt_dir / "latest").exists():
            raise BertptError(f"--resume none, but {ckpt_dir} already holds checkpoints that a fresh run would "
                              "overwrite; use --resume auto to continue, or another --output_dir")
        return None
    if resume == "auto":
        return (ckpt_dir, None) if (ckpt_dir / "latest").is_file() else None
    path = Path(resume)
    if (path / "latest").is_file():
        return path, None
    if path.is_dir() and any(path.glob("*model_states.pt")):  # a tag directory
        return path.parent, path.name
    raise BertptError(f"--resume {resume}: not a DeepSpeed checkpoint (no 'latest' file and no *model_states.pt)")


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


def save(engine, ckpt_dir: Path, step: int, client_state: dict) -> str:
    tag = tag_for(step)
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state=client_state)
    torch.save(rng_state(), ckpt_dir / tag / f"rng_rank_{dist.get_rank()}.pt")
    dist.barrier()  # every rank's RNG file is on disk before anyone moves on
    return tag


def load(engine, ckpt_dir: Path, tag: str | None, expect: dict) -> dict:
    """Load engine state; check the checkpoint fits this run; restore this rank's RNG state."""
    tag = tag or (ckpt_dir / "latest").read_text().strip()
    if not (ckpt_dir / tag).is_dir():
        raise BertptError(f"{ckpt_dir}/latest names {tag}, which does not exist; pass --resume PATH to another tag")
    _check_compatible(ckpt_dir, tag, expect)
    load_path, client_state = engine.load_checkpoint(str(ckpt_dir), tag=tag)
    if load_path is None:
        raise BertptError(f"DeepSpeed could not load the checkpoint {ckpt_dir / tag}")
    rng_file = ckpt_dir / tag / f"rng_rank_{dist.get_rank()}.pt"
    if rng_file.exists():
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


def client_state(step: int, consumed: int, cfg, ds_config: dict, tokenizer_hash: str) -> dict:
    return {"bertpt": {"step": step, "consumed_samples": consumed, "config": asdict(cfg),
                       "ds_config": ds_config, "tokenizer_hash": tokenizer_hash}}
