"""--init_from: start a fresh run from existing weights, with a fresh optimizer, LR schedule and step 0.

Two sources:
- a Hugging Face BERT directory (config.json + model.safetensors / pytorch_model.bin, sharded or
  not): continued pretraining. `transformers` reads it (its own key mapping: a `BertModel`
  checkpoint's keys lack the `bert.` prefix, old ones say gamma/beta), and we copy what it loaded;
  the heads it lacks (a `BertModel` has no `cls.*`, a `BertForMaskedLM` no pooler or NSP head) keep
  this run's fresh initialisation, and the run says which.
- a bertpt checkpoint (`<output_dir>`, its `checkpoints/` directory, or one `step_*` tag inside; of a
  directory, the newest good tag, as resume and export take it: layout.newest_good): phase 2. The
  weights are consolidated exactly as bertpt-export does (DeepSpeed's ZeRO-to-fp32 code,
  `export.consolidated_state_dict`); the optimizer, schedule and data position are not taken.

Every rank loads the same weights before `deepspeed.initialize` (which also broadcasts rank 0's
parameters), so the model is identical everywhere. The shapes must match this run's model (`--model`
and the data's vocabulary) and the source's tokenizer the data's; otherwise one line says what differs.
A checkpoint to resume in --output_dir wins over --init_from: a requeued phase-2 job continues.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import torch
from torch import nn

from bertpt.ckpt import layout
from bertpt.errors import BertptError, is_rank0, one_line

HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def init_from(
    path: str, model: nn.Module, tokenizer_hash: str | None, resuming: layout.Checkpoint | None, rank: int
) -> None:
    """setup()'s call: load `path` into `model` unless the run resumes `resuming`; rank 0 prints one line."""
    if resuming is not None:
        note = (
            f"bertpt: resuming {resuming.path}, so --init_from {path} is ignored "
            "(it only seeds a run with no checkpoint yet; for a new phase use a fresh --output_dir)"
        )
    else:
        note = initial_weights(path, model, tokenizer_hash)
    if rank == 0:
        print(note, flush=True)


def initial_weights(path: str | Path, model: nn.Module, tokenizer_hash: str | None = None) -> str:
    """Load the weights at `path` into our BertForPreTraining; returns a line saying what was loaded
    and what is freshly initialised. `tokenizer_hash`: the data's, to refuse another tokenizer."""
    source = Path(path)
    if not source.exists():
        raise BertptError(f"--init_from {path}: no such directory")
    found = layout.newest_good(source, f"--init_from {path}", "initialising from")
    if found is not None:
        return _from_bertpt(path, found, model, tokenizer_hash)
    ckpt_dir = layout.checkpoints_dir(source)
    if ckpt_dir is not None:
        raise BertptError(f"--init_from {path}: {ckpt_dir} holds no published checkpoint (step_*)")
    if source.is_dir() and (source / "config.json").is_file():
        return _from_hf(path, source, model, tokenizer_hash)
    raise BertptError(
        f"--init_from {path}: neither a Hugging Face BERT directory (config.json and "
        "model.safetensors) nor a bertpt checkpoint (a run's checkpoints/ directory or a step_* "
        "tag inside it)"
    )


def source_model_config(path: str | Path, vocab_size: int):
    """The model configuration of the --init_from source `path`, for a run that does not give --model: a
    transformers BertConfig from a bertpt checkpoint's model_config.json (of the tag initial_weights would
    load) or a Hugging Face directory's config.json, with `vocab_size` (the data's) so that a source with
    another vocabulary is refused by initial_weights' check, in one line naming both sizes. Returns
    (BertConfig, the file it came from). Raises BertptError where `path` is neither kind of source or its
    configuration cannot be read."""
    from transformers import BertConfig

    source = Path(path)
    with contextlib.redirect_stderr(io.StringIO()):  # initial_weights says it once, when it loads the weights
        found = layout.newest_good(source, f"--init_from {path}", "initialising from")
    if found is not None:
        file = found.dir / layout.MODEL_CONFIG
    elif layout.checkpoints_dir(source) is not None:
        raise BertptError(f"--init_from {path}: {layout.checkpoints_dir(source)} holds no published checkpoint")
    else:
        file = source / "config.json"
    try:
        config = json.loads(file.read_text())
        return BertConfig.from_dict({**config, "vocab_size": vocab_size}), file
    except (OSError, ValueError, TypeError) as e:
        raise BertptError(
            f"--init_from {path}: cannot read its model configuration {file} ({one_line(e)}); pass --model"
        ) from None


# ---------------------------------------------------------------------------------------------
# bertpt checkpoints


def _from_bertpt(path: str, found: layout.Checkpoint, model: nn.Module, tokenizer_hash: str | None) -> str:
    from bertpt.ckpt.export import consolidated_state_dict

    _check(
        path,
        layout.read_model_config(found.dir),
        layout.read_tokenizer_hash(found.dir),
        model,
        tokenizer_hash,
        f"--model {found.dir / layout.MODEL_CONFIG} (or the preset phase 1 used)",
        found.dir / layout.TOKENIZER_DIR,
    )
    with _quiet():  # zero_to_fp32 prints its progress on every rank
        state_dict, how = consolidated_state_dict(found.dir, found.tag)
    _, fresh = _load(path, model, state_dict)
    if fresh:
        raise BertptError(f"--init_from {path}: the checkpoint {found.path} lacks {', '.join(fresh)}")
    return (
        f"bertpt: initialised from {found.path} (all weights, via {how}); the optimizer, LR schedule "
        "and data position start fresh at step 0"
    )


# ---------------------------------------------------------------------------------------------
# Hugging Face directories


def _from_hf(path: str, source: Path, model: nn.Module, tokenizer_hash: str | None) -> str:
    import transformers

    try:
        config = json.loads((source / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise BertptError(f"--init_from {path}: cannot read config.json ({e})") from None
    if config.get("model_type") != "bert":
        raise BertptError(f"--init_from {path}: a {config.get('model_type')!r} model, not BERT (model_type 'bert')")
    if not any((source / f).is_file() for f in HF_WEIGHTS):
        raise BertptError(
            f"--init_from {path}: no weights (model.safetensors or pytorch_model.bin) next to config.json"
        )
    hf_hash = None
    if any((source / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        from bertpt.data.tokenizer import load_tokenizer
        from bertpt.data.tokenizer import tokenizer_hash as fingerprint

        with contextlib.suppress(BertptError):  # a tokenizer we cannot read is not compared
            hf_hash = fingerprint(load_tokenizer(source))
    _check(path, config, hf_hash, model, tokenizer_hash, f"--model {source / 'config.json'}", source)

    # transformers maps any BERT checkpoint onto BertForPreTraining and reports what it lacked
    # (missing_keys) and what it did not use (unexpected_keys, e.g. a classifier).
    log = transformers.utils.logging
    verbosity, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()  # its load report and progress bar would print on every rank
    log.disable_progress_bar()
    try:
        hf, info = transformers.BertForPreTraining.from_pretrained(
            str(source), output_loading_info=True, dtype=torch.float32, local_files_only=True
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise BertptError(f"--init_from {path}: transformers cannot load it ({one_line(e, 300)})") from None
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()
    missing = set(info["missing_keys"])
    state_dict = {k: v for k, v in hf.state_dict().items() if k not in missing}
    del hf
    loaded, fresh = _load(path, model, state_dict)
    ignored = sorted({k.rsplit(".", 1)[0] for k in info["unexpected_keys"]})
    kind = (config.get("architectures") or ["BERT"])[0]
    return (
        f"bertpt: initialised from {path} (Hugging Face {kind}: "
        + ("all weights" if not fresh else ", ".join(loaded))
        + ")"
        + (f"; fresh: {', '.join(fresh)}" if fresh else "")
        + (f"; not used: {', '.join(ignored)}" if ignored else "")
        + "; the optimizer and LR schedule start fresh at step 0"
    )


# ---------------------------------------------------------------------------------------------


def _check(
    path: str,
    theirs: dict | None,
    their_tokenizer: str | None,
    model: nn.Module,
    tokenizer_hash: str | None,
    model_flag: str,
    tokenizer_dir: Path,
) -> None:
    layout.check_compatible(
        f"--init_from {path}",
        theirs,
        their_tokenizer,
        model.config.to_dict(),
        tokenizer_hash,
        fix_shape=f"train the same shape: {model_flag}",
        fix_tokenizer=f"prepare the data with `bertpt-prepare ... --tokenizer {tokenizer_dir}`",
        tokenizer_dir=tokenizer_dir,
    )


def _load(path: str, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Copy `state_dict` into `model`; returns (loaded, fresh): the fewest module names, two levels
    deep at least (bert.encoder, cls.predictions), that cover the parameters it set and those it did
    not. Tied parameters count once, under their first name (cls.predictions.decoder.weight is
    bert.embeddings.word_embeddings.weight)."""
    params = list(dict(model.named_parameters()))  # named_parameters lists a shared parameter once
    unexpected = sorted(set(state_dict) - set(model.state_dict()))
    if unexpected:
        raise BertptError(f"--init_from {path}: weights this model does not have ({', '.join(unexpected[:3])})")
    try:
        model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shapes: only where config.json and the weights disagree
        raise BertptError(f"--init_from {path}: {one_line(e, 300)}") from None
    missing = {n for n in params if n not in state_dict}
    return _cover([n for n in params if n not in missing], params), _cover([n for n in params if n in missing], params)


def _cover(names: list[str], universe: list[str]) -> list[str]:
    chosen = set(names)
    out: list[str] = []
    for name in names:
        parts = name.split(".")
        for i in range(min(2, len(parts)), len(parts) + 1):  # the shortest prefix all of whose parameters are in
            prefix = ".".join(parts[:i])
            if all(n in chosen for n in universe if n == prefix or n.startswith(prefix + ".")):
                if prefix not in out:
                    out.append(prefix)
                break
    return out


@contextlib.contextmanager
def _quiet():
    """Swallow what a block prints; show it (rank 0) if the block fails unexpectedly."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            yield
    except BertptError:
        raise
    except BaseException:
        if is_rank0():
            print(out.getvalue(), end="", flush=True)
        raise
