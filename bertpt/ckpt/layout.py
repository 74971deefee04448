"""The checkpoint directory contract: every file name, what each holds, and the one reader of each.

Layout of <output_dir>/checkpoints/:
    latest                   the newest *published* tag; written (atomically) only after every rank
                             finished writing and the files were checked; read only by `read_latest`
    step_000500/             DeepSpeed's model/optimizer/scheduler shards (and the client state, see
                             `client_state`), plus
        rng_rank_{r}.pt      each rank's Python, NumPy, torch CPU and accelerator RNG states
        bertpt_state.json    the run position (`RunPosition`): step, consumed samples, world size,
                             batch sizes and ZeRO stage of the run that saved it, and the sample ranges
                             skipped by divergence rollbacks; the only record of them
        bertpt_summary.json  the last train/eval metrics (for the export's model card)
        manifest.json        every file of the tag with its size; written last, before publishing
    step_000500.tmp/         a save in progress (or one that was interrupted: never loaded)
    step_000500_universal/   the tag converted to DeepSpeed's universal format (a resume on another
                             world size, see universal.py); never a candidate itself
    model_config.json        the BertConfig (for export without the training code)
    bertpt.json              the tokenizer fingerprint (checked on resume and --init_from) and the
                             objective the run trains (format.OBJECTIVES; absent before it was recorded:
                             mlm_nsp), which decides the export's class and refuses a resume on other data
    tokenizer/               the data's tokenizer (shipped with the export)

"The last checkpoint" is one answer for resume, --init_from and export: `newest_good`, the newest
published tag whose files match its manifest. A tag that does not (truncated, missing files) is
reported once and the previous one used, whatever `latest` says.

Checkpoints of release 0.1 follow this layout; their client state also carried the step and the
consumed samples, which are ignored now (bertpt_state.json holds the same numbers).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bertpt.data.format import MLM_NSP
from bertpt.errors import BertptError, is_rank0
from bertpt.files import write_atomic

LATEST = "latest"
MANIFEST = "manifest.json"
MODEL_CONFIG = "model_config.json"
BERTPT_JSON = "bertpt.json"
TOKENIZER_DIR = "tokenizer"
STATE = "bertpt_state.json"
SUMMARY = "bertpt_summary.json"
UNIVERSAL_SUFFIX = "_universal"
CHECKPOINTS = "checkpoints"  # <output_dir>/checkpoints
CLIENT_KEY = "bertpt"  # bertpt's entry in DeepSpeed's client state

TAG = re.compile(r"step_(\d+)")

# What must agree between a checkpoint (or --init_from source) and this run's model; all but
# vocab_size are set by --model, vocab_size by the data's tokenizer.
SHAPE_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


def tag_for(step: int) -> str:
    """The tag of optimizer step `step`: step_000500."""
    return f"step_{step:06d}"


def rng_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rng_rank_{rank}.pt"


def published_tags(ckpt_dir: Path) -> list[str]:
    """Published tags (step_N directories; not .tmp, not _universal), newest first."""
    tags = [p.name for p in Path(ckpt_dir).glob("step_*") if p.is_dir() and TAG.fullmatch(p.name)]
    return sorted(tags, key=lambda t: int(TAG.fullmatch(t).group(1)), reverse=True)


def read_latest(ckpt_dir: Path) -> str | None:
    """The tag `latest` names, or None without one. Only a hint: `newest_good` decides."""
    path = Path(ckpt_dir) / LATEST
    return (path.read_text().strip() or None) if path.is_file() else None


def write_latest(ckpt_dir: Path, tag: str) -> None:
    """Publish `tag` (rank 0, after its directory is complete and renamed). Raises OSError."""
    write_atomic(Path(ckpt_dir) / LATEST, tag, fsync=True)


def write_manifest(tag_dir: Path, tag: str) -> None:
    """Record every file of `tag_dir` with its size (the last file written before publishing)."""
    files = {
        str(p.relative_to(tag_dir)): p.stat().st_size
        for p in sorted(tag_dir.rglob("*"))
        if p.is_file() and p != tag_dir / MANIFEST
    }
    write_atomic(tag_dir / MANIFEST, json.dumps({"tag": tag, "files": files}, indent=1), fsync=True)


def verify(tag_dir: Path) -> str | None:
    """None if every file of the tag is there with the size the manifest recorded; else what is wrong."""
    manifest = Path(tag_dir) / MANIFEST
    if not manifest.is_file():
        return f"no {MANIFEST} (not saved by bertpt, or the save did not finish)"
    try:
        sizes = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as e:
        return f"{MANIFEST} is damaged ({e})"
    for name, size in sizes.items():
        path = tag_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    return None


# ---------------------------------------------------------------------------------------------
# The newest good checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """One published, verified checkpoint: `dir` is the checkpoints directory, `tag` its step_* name."""

    dir: Path
    tag: str

    @property
    def path(self) -> Path:
        return self.dir / self.tag


def is_tag_dir(path: Path) -> bool:
    """`path` is one step_* tag of a checkpoints directory (saved by bertpt, or inside one)."""
    path = Path(path)
    return (
        path.is_dir()
        and bool(TAG.fullmatch(path.name))
        and ((path / MANIFEST).exists() or (path.parent / MODEL_CONFIG).is_file())
    )


def checkpoints_dir(path: Path) -> Path | None:
    """The checkpoints directory `path` names: `path` itself or `path`/checkpoints (a run's output
    directory), whichever holds step_* tags or a model_config.json; None if neither does."""
    for d in (Path(path), Path(path) / CHECKPOINTS):
        if d.is_dir() and (published_tags(d) or (d / MODEL_CONFIG).is_file()):
            return d
    return None


def newest_good(path: Path, what: str, purpose: str, remedy: str = "") -> Checkpoint | None:
    """The checkpoint to use at `path` (a run's output directory, a checkpoints directory or one
    step_* tag): the tag itself if it verifies, else the newest published tag that verifies. None
    when `path` holds no published tag. Rank 0 warns once (stderr) when newer tags were skipped or
    `latest` names another tag.

    `what` prefixes errors (e.g. "--resume DIR"), `purpose` ends the warning ("resuming from"),
    `remedy` ends the no-usable-checkpoint error. Raises BertptError: the tag given is incomplete or
    damaged, or no published tag verifies."""
    path = Path(path)
    if is_tag_dir(path):
        problem = verify(path)
        if problem:
            raise BertptError(f"{what}: the checkpoint is incomplete or damaged ({problem})")
        return Checkpoint(path.parent, path.name)
    ckpt_dir = checkpoints_dir(path)
    tags = published_tags(ckpt_dir) if ckpt_dir else []
    if not tags:
        return None
    bad = []
    for tag in tags:
        problem = verify(ckpt_dir / tag)
        if problem is None:
            latest = read_latest(ckpt_dir)
            if bad:
                _warn(f"skipped {'; '.join(bad)}; {purpose} {ckpt_dir / tag}")
            elif latest not in (None, tag):
                _warn(f"{ckpt_dir}/{LATEST} names {latest}, but {tag} is the newest complete checkpoint; {purpose} it")
            return Checkpoint(ckpt_dir, tag)
        bad.append(f"checkpoint {ckpt_dir / tag} is incomplete or damaged ({problem})")
    raise BertptError(
        f"{what}: no usable checkpoint in {ckpt_dir}: {'; '.join(bad)}" + (f"; {remedy}" if remedy else "")
    )


def newest_verified(ckpt_dir: Path) -> str | None:
    """The newest published tag of `ckpt_dir` whose files match its manifest (None: none), silently:
    what --keep_last must never delete, whatever state newer tags are in."""
    return next((tag for tag in published_tags(ckpt_dir) if verify(Path(ckpt_dir) / tag) is None), None)


def _warn(text: str) -> None:
    if is_rank0():
        print(f"bertpt: warning: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The run position


@dataclass(frozen=True)
class RunPosition:
    """Where a run stands after optimizer step `step`, as saved in <tag>/bertpt_state.json (its only
    record). `consumed_samples` is the data position (dataset.StreamSampler: the stream is a pure
    function of it); the rest is the shape of the run that saved it (what a world-size change needs).
    Fields added later must have defaults, so older files still load."""

    step: int
    consumed_samples: int
    world_size: int
    micro_batch: int
    grad_accum: int
    global_batch: int
    zero_stage: int
    # [first, end) sample positions skipped by --on_divergence rollback (divergence.py), oldest first;
    # consumed_samples is past them. Absent in checkpoints older than rollbacks: none skipped.
    skipped_samples: tuple[tuple[int, int], ...] = ()
    # Sequence positions trained on: consumed_samples x the data's max_seq_length, padding included, the way
    # the BERT paper counts (Devlin et al. 2019, A.2: "256 sequences * 512 tokens = 128,000 tokens/batch").
    # Absent (None) in checkpoints older than score curves.
    tokens_seen: int | None = None
    # Wall-clock seconds of training up to this save, summed over the run's resumes (the training loop's
    # time: evaluations and saves included, start-up and waiting in a queue not). None in older checkpoints.
    train_seconds: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "skipped_samples", tuple(tuple(r) for r in self.skipped_samples))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> RunPosition:
        """Known fields only (a newer bertpt may have written more); raises KeyError for a missing required one."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def read_position(ckpt: Checkpoint) -> RunPosition:
    """The RunPosition of a published tag. Raises BertptError when bertpt_state.json is missing or damaged."""
    path = ckpt.path / STATE
    try:
        return RunPosition.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BertptError(
            f"checkpoint {ckpt.path} has no readable {STATE} ({type(e).__name__}: {e}); it was not "
            "saved by bertpt 0.1 or later and cannot be resumed"
        ) from None


# ---------------------------------------------------------------------------------------------
# Static files and client state


def read_model_config(ckpt_dir: Path) -> dict | None:
    """model_config.json of a checkpoints directory (the BertConfig as a dict), None without one."""
    path = Path(ckpt_dir) / MODEL_CONFIG
    return json.loads(path.read_text()) if path.is_file() else None


def read_tokenizer_hash(ckpt_dir: Path) -> str | None:
    """The tokenizer fingerprint a checkpoints directory was trained with (bertpt.json), None if unknown."""
    path = Path(ckpt_dir) / BERTPT_JSON
    return json.loads(path.read_text()).get("tokenizer_hash") if path.is_file() else None


def read_objective(ckpt_dir: Path) -> str:
    """The pretraining objective a checkpoints directory was trained for (bertpt.json): format.MLM_NSP or
    format.MLM_ONLY; MLM_NSP for checkpoints written before it was recorded."""
    path = Path(ckpt_dir) / BERTPT_JSON
    return (json.loads(path.read_text()).get("objective") if path.is_file() else None) or MLM_NSP


def client_state(config: dict, ds_config: dict, tokenizer_hash: str, **extra) -> dict:
    """What bertpt stores in DeepSpeed's client state: {"bertpt": {config, ds_config, tokenizer_hash,
    **extra}}, a plain dict (later entries are extra keys). The run position is not here: it is
    bertpt_state.json's (RunPosition)."""
    return {CLIENT_KEY: {"config": config, "ds_config": ds_config, "tokenizer_hash": tokenizer_hash, **extra}}


# ---------------------------------------------------------------------------------------------
# Compatibility


def check_compatible(
    source: str,
    saved_config: dict | None,
    saved_tokenizer: str | None,
    model_config: dict,
    tokenizer_hash: str | None,
    *,
    fix_shape: str,
    fix_tokenizer: str,
    tokenizer_dir: Path,
) -> None:
    """Refuse, with one line, weights of another shape or another tokenizer than this run's.

    `source` names them in the message ("checkpoint DIR", "--init_from DIR"); `saved_config` is their
    BertConfig dict (keys it lacks are not compared), `saved_tokenizer` their tokenizer fingerprint
    (None: unknown, not compared); `model_config`/`tokenizer_hash` this run's. The tokenizer is
    compared first: another vocabulary is its consequence. `fix_shape`/`fix_tokenizer` end the
    messages; `tokenizer_dir` is the tokenizer the source was trained with. Raises BertptError."""
    if saved_tokenizer and tokenizer_hash and saved_tokenizer != tokenizer_hash:
        raise BertptError(
            f"{source} was trained with another tokenizer ({saved_tokenizer}) than the data's "
            f"({tokenizer_hash}); {fix_tokenizer}"
        )
    for key in SHAPE_KEYS:
        if saved_config and key in saved_config and saved_config[key] != model_config.get(key):
            if key == "vocab_size":
                raise BertptError(
                    f"{source} has vocab_size {saved_config[key]} but the data's tokenizer has "
                    f"{model_config.get(key)} tokens; prepare the data with the tokenizer it was "
                    f"trained with (bertpt-prepare --tokenizer {tokenizer_dir})"
                )
            raise BertptError(
                f"{source} has {key} {saved_config[key]} but this run's model has {model_config.get(key)}; {fix_shape}"
            )
