"""bertpt-export: a DeepSpeed checkpoint directory → a Hugging Face `BertForPreTraining` directory, or a
`BertForMaskedLM` one for a run trained MLM-only (data prepared with --objective mlm; bertpt.json says so):
no pooler and no NSP head, which that run never trained, are shipped.

    bertpt-export runs/bertpt/checkpoints runs/bertpt/hf [--tag step_000500]

Without --tag it exports the newest good checkpoint (layout.newest_good: what a resume would take;
a `latest` naming a damaged tag falls back to the newest complete one, with one warning).

Weights are consolidated with DeepSpeed's own ZeRO-to-fp32 machinery (ZeRO 1-3, any number of
ranks): the fp32 master weights. A ZeRO-0 checkpoint has no partitions; its model-states file holds
the whole model in the training precision, which is used instead (exact for fp32; bf16/fp16 weights,
the ones the engine computed with, are upcast to fp32).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import torch

from bertpt import cli
from bertpt.ckpt import layout
from bertpt.data.format import MLM_NSP
from bertpt.errors import BertptError, exit_on_error


def consolidated_state_dict(ckpt_dir: Path, tag: str) -> tuple[dict, str]:
    """(fp32 state dict, where it came from). Raises BertptError: not a complete DeepSpeed checkpoint,
    or weights that are not all finite (a run that diverged: see check_finite)."""
    with quiet():
        state_dict, source = _consolidate(ckpt_dir, tag)
    check_finite(state_dict, ckpt_dir / tag)
    return state_dict, source


def check_finite(state_dict: dict, where: Path) -> None:
    """Refuse weights with a NaN or inf in them (a run that diverged before the save), in one line
    naming how many tensors and the first one. Raises BertptError."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        earlier = [t for t in layout.published_tags(where.parent) if t != where.name]
        raise BertptError(
            f"checkpoint {where} has non-finite weights (NaN/inf in {len(bad)} of {len(state_dict)} tensors, "
            f"e.g. {bad[0]}): the run had diverged when it was saved; "
            + (
                f"use an earlier tag (--tag; this directory holds {', '.join(earlier)})"
                if earlier
                else "this directory holds no other checkpoint"
            )
        )


@contextlib.contextmanager
def quiet():
    """Hold back what the libraries print while they load or write weights (DeepSpeed's zero_to_fp32
    prints "Parsing checkpoint ...", "Reconstructed fp32 state dict ..." and tqdm bars; transformers'
    save_pretrained a "Writing model shards" bar): noise in a run's log. Shown after all if it fails."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield
    except BaseException:
        sys.stderr.write(buf.getvalue())
        raise


def _consolidate(ckpt_dir: Path, tag: str) -> tuple[dict, str]:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    tag_dir = ckpt_dir / tag
    if any(tag_dir.glob("*optim_states.pt")):
        try:
            return get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir), tag=tag), "zero_to_fp32"
        except ValueError as e:
            if "is not a zero checkpoint" not in str(e):
                raise BertptError(f"cannot consolidate {tag_dir}: {e}") from None
    model_states = tag_dir / "mp_rank_00_model_states.pt"
    if not model_states.exists():
        raise BertptError(f"{tag_dir}: no model states file; is it a complete DeepSpeed checkpoint?")
    module = torch.load(model_states, map_location="cpu", weights_only=False)["module"]
    return {k: v.float() for k, v in module.items()}, "model states"


def export_hf(ckpt_dir: str | Path, out_dir: str | Path, tag: str | None = None) -> Path:
    """Write `ckpt_dir`'s checkpoint `tag` (default: the newest good one; `ckpt_dir` may also be a
    run's output directory or one step_* tag) to `out_dir` as a Hugging Face BertForPreTraining
    directory (BertForMaskedLM for an MLM-only run: layout.read_objective) with the tokenizer and a
    model card. Returns `out_dir`. Raises BertptError: no checkpoint, none that verifies, weights that
    do not fit model_config.json."""
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, BertTokenizerFast

    from bertpt.data.tokenizer import save_tokenizer

    ckpt_dir, out_dir = Path(ckpt_dir), Path(out_dir)
    if tag is None:
        found = layout.newest_good(ckpt_dir, f"bertpt-export {ckpt_dir}", "exporting")
        if found is None:
            raise BertptError(
                f"{ckpt_dir}: no checkpoint (step_*) inside; pass the checkpoints directory of a "
                "bertpt run (<output_dir>/checkpoints) or --tag"
            )
        ckpt_dir, tag = found.dir, found.tag
    else:  # the tag named: as given (an old checkpoint may predate manifests), but it must exist
        if not (ckpt_dir / layout.MODEL_CONFIG).is_file() and (ckpt_dir / layout.CHECKPOINTS).is_dir():
            ckpt_dir = ckpt_dir / layout.CHECKPOINTS  # a run's output directory
        if not (ckpt_dir / tag).is_dir():
            tags = ", ".join(layout.published_tags(ckpt_dir)) or "none"
            raise BertptError(f"{ckpt_dir}: no checkpoint {tag} (its checkpoints: {tags})")
    if not (ckpt_dir / layout.MODEL_CONFIG).is_file():
        raise BertptError(f"{ckpt_dir}: no {layout.MODEL_CONFIG}; was it written by bertpt-pretrain?")
    config = BertConfig.from_json_file(str(ckpt_dir / layout.MODEL_CONFIG))
    state_dict, source = consolidated_state_dict(ckpt_dir, tag)
    nsp = layout.read_objective(ckpt_dir) == MLM_NSP
    if not nsp:  # the pooler and the NSP head exist in the checkpoint but were never trained (model.py)
        untrained = ("bert.pooler.", "cls.seq_relationship.")
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(untrained)}

    model = BertForPreTraining(config) if nsp else BertForMaskedLM(config)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}  # restored by tie_weights
    if unexpected or set(missing) - tied:
        raise BertptError(
            f"checkpoint {ckpt_dir / tag} does not match its model_config.json "
            f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {unexpected[:3]})"
        )
    model.tie_weights()
    out_dir.mkdir(parents=True, exist_ok=True)
    with quiet():
        model.save_pretrained(str(out_dir))
    save_tokenizer(BertTokenizerFast.from_pretrained(str(ckpt_dir / layout.TOKENIZER_DIR)), out_dir)
    (out_dir / "README.md").write_text(_model_card(config, ckpt_dir, tag, source, nsp))
    return out_dir


def _model_card(config, ckpt_dir: Path, tag: str, source: str, nsp: bool = True) -> str:
    state_file = ckpt_dir / tag / layout.SUMMARY
    summary = json.loads(state_file.read_text()) if state_file.exists() else {}
    lines = [
        "---",
        "library_name: transformers",
        "tags: [bert, fill-mask, bertpt]",
        "---",
        "",
        "# BERT pretrained with bertpt",
        "",
        (
            "Masked-language modelling + next-sentence prediction"
            if nsp
            else "Masked-language modelling only (MLM-only: no next-sentence prediction, so no pooler or NSP head)"
        )
        + f", exported from `{ckpt_dir}` tag `{tag}` (weights from {source}).",
        "",
        f"- layers {config.num_hidden_layers}, hidden {config.hidden_size}, heads {config.num_attention_heads}, "
        f"vocabulary {config.vocab_size}",
    ]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in summary.items()]
    auto = "AutoModelForPreTraining" if nsp else "AutoModelForMaskedLM"
    lines += [
        "",
        "```python",
        f"from transformers import {auto}, AutoTokenizer",
        f"model = {auto}.from_pretrained(PATH)",
        "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        **cli.parser_options("bertpt-export"),
        description=(
            "Export a bertpt DeepSpeed checkpoint as a Hugging Face BertForPreTraining directory "
            "(BertForMaskedLM for a run trained MLM-only) (config.json, model.safetensors, tokenizer, README "
            "model card)."
        ),
    )
    parser.add_argument(
        "ckpt_dir", help="A run's checkpoints directory, e.g. runs/bertpt/checkpoints (or its output directory)."
    )
    parser.add_argument("out_dir", help="Directory to write the Hugging Face model to.")
    parser.add_argument(
        "--tag",
        default=None,
        help=("Checkpoint tag to export (default: the newest complete one, normally the one `latest` names)."),
    )
    with exit_on_error("bertpt-export"):
        (args,) = cli.parse(parser, argv)
        out = export_hf(args.ckpt_dir, args.out_dir, args.tag)
        print(f"exported {args.ckpt_dir} to {out}")


if __name__ == "__main__":
    main()
