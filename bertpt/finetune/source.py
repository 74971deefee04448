"""The MODEL argument of bertpt-finetune: a pretrained BERT's configuration, encoder weights and tokenizer.

Two kinds of MODEL:
- a bertpt checkpoint: a run's output directory, its `checkpoints/` directory or one `step_*` tag inside
  (or the directory with `--tag`). Of a directory, the newest good tag (layout.newest_good: what resume
  and export take); the weights are consolidated by the same code as bertpt-export
  (export.consolidated_state_dict: DeepSpeed's ZeRO-to-fp32, refusing non-finite weights), the
  configuration is its model_config.json, the tokenizer its tokenizer/ directory, checked against the
  fingerprint the run recorded (bertpt.json), as --init_from checks it. An MLM-only run's pooler, which
  pretraining never trained, is dropped (as its export drops it).
- a Hugging Face BERT directory (config.json with model_type "bert" and weights): a bertpt export
  (BertForPreTraining, or BertForMaskedLM for the MLM-only objective), a local bert-base-uncased copy, or
  what BertForSequenceClassification / BertModel.save_pretrained wrote, with a tokenizer.json or only a
  vocab.txt (bertpt.data.tokenizer.load_tokenizer: the casing its tokenizer_config.json declares, else
  the one its entries imply). transformers reads the weights (its own key mapping of every BERT head).

Only the encoder (`BertModel`: embeddings, layers, pooler) is kept; fine-tuning puts a fresh classifier
on it. `random_init` keeps the architecture and tokenizer and drops the weights: the baseline that shows
what pretraining bought.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from bertpt.ckpt import layout
from bertpt.data.format import MLM_NSP
from bertpt.errors import BertptError, one_line

HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
ENCODER_PREFIX = "bert."  # BertForPreTraining / BertForMaskedLM / BertForSequenceClassification: the BertModel
POOLER_PREFIX = "pooler."  # BertModel's pooler (dense + tanh on [CLS]), trained only by NSP in pretraining


@dataclass
class Source:
    """A pretrained BERT to fine-tune. `state_dict`: the encoder's weights (BertModel's parameter names,
    fp32; without the pooler where the source has none), None for random initialisation."""

    description: str
    config: object  # transformers.BertConfig
    state_dict: dict[str, torch.Tensor] | None
    tokenizer: object  # transformers.PreTrainedTokenizerFast
    step: int | None = None
    tokens_seen: int | None = None
    train_seconds: float | None = None


def load_source(model: str | Path, tag: str | None = None, random_init: bool = False) -> Source:
    """The model at `model` (see the module docstring); `tag`: a step_* tag of a bertpt checkpoints
    directory. Raises BertptError (one line): no such path, not BERT, no weights or tokenizer, a
    tokenizer that does not fit the model, a damaged or diverged checkpoint, a tag that does not exist."""
    path = Path(model)
    if not path.exists():
        raise BertptError(f"MODEL {model}: no such file or directory")
    what = f"MODEL {model}"
    if tag is not None:
        ckpt_dir = layout.checkpoints_dir(path)
        if ckpt_dir is None or not (ckpt_dir / tag).is_dir():
            tags = ", ".join(layout.published_tags(ckpt_dir)) if ckpt_dir else ""
            raise BertptError(
                f"{what}: no checkpoint {tag} there"
                + (f" (its checkpoints: {tags})" if tags else " (--tag needs a bertpt run or checkpoints directory)")
            )
        return _from_bertpt(model, layout.newest_good(ckpt_dir / tag, what, "fine-tuning"), random_init)
    found = layout.newest_good(path, what, "fine-tuning")
    if found is not None:
        return _from_bertpt(model, found, random_init)
    if layout.checkpoints_dir(path) is not None:
        raise BertptError(f"{what}: {layout.checkpoints_dir(path)} holds no published checkpoint (step_*)")
    return _from_hf(model, path, random_init)


def checkpoint_sources(run_dir: str | Path) -> Iterator[Source]:
    """Every published checkpoint of a bertpt run (its output directory or checkpoints/), oldest first, each
    loaded as `load_source` loads a tag (weights consolidated one at a time, as they are consumed).
    A tag whose files do not match its manifest is refused (BertptError) when it is reached."""
    ckpt_dir = layout.checkpoints_dir(Path(run_dir))
    tags = layout.published_tags(ckpt_dir) if ckpt_dir else []
    if not tags:
        raise BertptError(f"{run_dir}: no bertpt checkpoint (step_*) inside; pass a run's output or checkpoints dir")
    for tag in reversed(tags):
        yield load_source(ckpt_dir, tag=tag)


def check_tokenizer_fits(tokenizer, config, where: str) -> None:
    """Refuse a tokenizer whose ids the model cannot embed: another vocabulary size than config.vocab_size,
    or a special token ([CLS] [SEP] [PAD] [UNK]) missing or out of range. Raises BertptError."""
    if len(tokenizer) != config.vocab_size:
        raise BertptError(
            f"{where}: its tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}; "
            "the tokenizer belongs to another model (use the tokenizer the model was trained with)"
        )
    for name in ("cls_token", "sep_token", "pad_token", "unk_token"):
        token_id = getattr(tokenizer, f"{name}_id", None)
        if token_id is None or not 0 <= token_id < config.vocab_size:
            raise BertptError(
                f"{where}: its tokenizer's {getattr(tokenizer, name, None) or name} has id {token_id}, not in the "
                f"model's vocabulary of {config.vocab_size}; use the tokenizer the model was trained with"
            )


# ---------------------------------------------------------------------------------------------
# bertpt checkpoints


def _from_bertpt(model: str | Path, found: layout.Checkpoint, random_init: bool) -> Source:
    from transformers import BertConfig

    from bertpt.ckpt.export import consolidated_state_dict
    from bertpt.data.tokenizer import load_tokenizer, tokenizer_hash

    what = f"MODEL {model}"
    config_file, tokenizer_dir = found.dir / layout.MODEL_CONFIG, found.dir / layout.TOKENIZER_DIR
    if not config_file.is_file():
        raise BertptError(f"{what}: {found.dir} has no {layout.MODEL_CONFIG}; was it written by bertpt-pretrain?")
    if not tokenizer_dir.is_dir():
        raise BertptError(f"{what}: {found.dir} has no {layout.TOKENIZER_DIR}/ directory; was it written by bertpt?")
    config = BertConfig.from_json_file(str(config_file))
    tokenizer = load_tokenizer(tokenizer_dir)
    recorded, actual = layout.read_tokenizer_hash(found.dir), tokenizer_hash(tokenizer)
    if recorded and recorded != actual:
        raise BertptError(
            f"{what}: the checkpoint was trained with tokenizer {recorded} ({found.dir / layout.BERTPT_JSON}) but "
            f"{tokenizer_dir} is tokenizer {actual}; put back the tokenizer the run was trained with"
        )
    check_tokenizer_fits(tokenizer, config, what)
    state_dict = None
    if not random_init:
        full, _ = consolidated_state_dict(found.dir, found.tag)
        state_dict = _encoder(full)
        if layout.read_objective(found.dir) != MLM_NSP:  # the objective format.MLM_ONLY
            # an MLM-only run never trained the pooler (no NSP loss reaches it): drop it, as its export
            # (BertForMaskedLM, bertpt.ckpt.export) does, so that both give the same fine-tuning numbers
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(POOLER_PREFIX)}
    try:
        position = layout.read_position(found)
    except BertptError:  # a tag without bertpt_state.json still has weights; it just has no position to report
        position = None
    return Source(
        description=f"{found.dir} {found.tag}" + (" (random init)" if random_init else ""),
        config=config,
        state_dict=state_dict,
        tokenizer=tokenizer,
        step=position.step if position else None,
        tokens_seen=position.tokens_seen if position else None,
        train_seconds=position.train_seconds if position else None,
    )


def _encoder(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The BertModel part of a BertForPreTraining state dict, with BertModel's own names (no `bert.`)."""
    return {k.removeprefix(ENCODER_PREFIX): v for k, v in state_dict.items() if k.startswith(ENCODER_PREFIX)}


# ---------------------------------------------------------------------------------------------
# Hugging Face directories


def _from_hf(model: str | Path, path: Path, random_init: bool) -> Source:
    import transformers

    from bertpt.data.tokenizer import load_tokenizer

    what = f"MODEL {model}"
    if not path.is_dir() or not (path / "config.json").is_file():
        raise BertptError(
            f"{what}: neither a Hugging Face BERT directory (config.json, weights, tokenizer) nor a bertpt run "
            "(its output directory, checkpoints/ or a step_* tag)"
        )
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise BertptError(f"{what}: cannot read config.json ({one_line(e)})") from None
    if raw.get("model_type") != "bert":
        raise BertptError(f"{what}: a {raw.get('model_type')!r} model, not BERT (config.json model_type 'bert')")
    if not any((path / f).is_file() for f in HF_WEIGHTS):
        raise BertptError(f"{what}: no weights (model.safetensors or pytorch_model.bin) next to config.json")
    if not any((path / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        raise BertptError(
            f"{what}: no tokenizer (tokenizer.json or vocab.txt) next to config.json; copy the tokenizer the "
            "model was trained with into it"
        )
    config = transformers.BertConfig.from_dict(raw)
    tokenizer = load_tokenizer(path)
    check_tokenizer_fits(tokenizer, config, what)
    kind = (raw.get("architectures") or ["BERT"])[0]
    state_dict = None
    if not random_init:
        with quiet_transformers():
            try:
                encoder, info = transformers.BertModel.from_pretrained(
                    str(path), output_loading_info=True, dtype=torch.float32, local_files_only=True
                )
            except (OSError, ValueError, RuntimeError) as e:
                raise BertptError(f"{what}: transformers cannot load it ({one_line(e, 300)})") from None
        missing = set(info["missing_keys"])
        if missing - {k for k in missing if k.startswith("pooler.")}:
            raise BertptError(f"{what}: its weights lack encoder parameters ({', '.join(sorted(missing)[:3])})")
        state_dict = {k: v for k, v in encoder.state_dict().items() if k not in missing}
    return Source(
        description=f"{path} (Hugging Face {kind})" + (" (random init)" if random_init else ""),
        config=config,
        state_dict=state_dict,
        tokenizer=tokenizer,
    )


@contextlib.contextmanager
def quiet_transformers():
    """Hold back transformers' load report and progress bars (its warnings about weights it did not use or
    newly initialised: we say what matters once, in our words). What it printed is shown if the block fails."""
    import transformers

    log = transformers.utils.logging
    verbosity, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()
    log.disable_progress_bar()
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            yield
    except BertptError:
        raise
    except BaseException:
        print(buf.getvalue(), end="", file=sys.stderr)
        raise
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()
