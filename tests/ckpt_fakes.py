"""Checkpoint directories for unit tests of the checkpoint wing, without DeepSpeed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bertpt.ckpt import layout
from bertpt.ckpt.layout import tag_for

REPO = Path(__file__).resolve().parent.parent
RELEASE_0_1 = REPO / "tests" / "fixtures" / "release_0_1"


def fake_tag(ckpt: Path, step: int, files=("mp_rank_00_model_states.pt", "rng_rank_0.pt")) -> Path:
    """A published tag as checkpoint.save leaves it: files plus a manifest of their sizes; `latest` names it."""
    d = ckpt / tag_for(step)
    d.mkdir(parents=True)
    for k, name in enumerate(files):
        (d / name).write_bytes(b"x" * (100 + k))
    (d / "manifest.json").write_text(json.dumps({"tag": d.name, "files": {n: 100 + k for k, n in enumerate(files)}}))
    (ckpt / "latest").write_text(d.name)
    return d


def release_run(tmp_path: Path, damaged_newer: bool = False) -> Path:
    """A copy of release 0.1's run (data, checkpoints/step_000002, configs) under tmp_path/"release".
    `damaged_newer`: add step_000004, a copy of step_000002 with a truncated optimizer file, and point
    `latest` at it (a save whose files were damaged after publishing)."""
    out = tmp_path / "release"
    shutil.copytree(RELEASE_0_1, out)
    if damaged_newer:
        ckpt = out / "checkpoints"
        bad = ckpt / "step_000004"
        shutil.copytree(ckpt / "step_000002", bad)
        manifest = json.loads((bad / "manifest.json").read_text())
        (bad / "manifest.json").write_text(json.dumps({**manifest, "tag": bad.name}))
        victim = next(bad.glob("*optim_states.pt"))
        with open(victim, "r+b") as f:
            f.truncate(victim.stat().st_size // 2)
        (ckpt / "latest").write_text(bad.name)
    return out


def add_tag(ckpt, step: int, tokens_seen=None, train_seconds=None):
    """A copy of release 0.1's step_000002 as step `step`, its bertpt_state.json edited, its manifest rewritten."""
    tag = layout.tag_for(step)
    shutil.copytree(ckpt / "step_000002", ckpt / tag)
    state = json.loads((ckpt / tag / layout.STATE).read_text())
    state.update(step=step, consumed_samples=4 * step)
    if tokens_seen is not None:
        state.update(tokens_seen=tokens_seen, train_seconds=train_seconds)
    (ckpt / tag / layout.STATE).write_text(json.dumps(state))
    layout.write_manifest(ckpt / tag, tag)
