"""bertpt-prepare: raw text → WordPiece tokenizer → Google NSP instances → sharded files + meta.json.

    bertpt-prepare corpus/ more.txt --output_dir data/wiki128 [--tokenizer vocab.txt] [--max_seq_length 128]

Output directory:
    tokenizer/                 the tokenizer (BertTokenizerFast.from_pretrained loads it)
    train-00000.ids.npy        all instances' token ids back to back ([CLS] A [SEP] B [SEP]), uint16/uint32
    train-00000.idx.npy        int64 rows (offset, length, length of [CLS] A [SEP], is_random_next)
    val-00000.*                the same for the held-out documents
    meta.json                  settings, tokenizer fingerprint, counts; written last, so its presence
                               means the directory is complete
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bertpt import __version__
from bertpt.corpus import builtin_documents, list_text_files, read_documents
from bertpt.errors import BertptError, exit_on_error, require_writable_dir
from bertpt.instances import Instance, create_instances
from bertpt.tokenizer import (load_tokenizer, save_tokenizer, special_ids, tokenizer_hash,
                              train_tokenizer)

FORMAT_VERSION = 1


def _arg(default, help):
    return field(default=default, metadata={"help": help})


@dataclass
class PrepareConfig:
    """Settings of one data preparation; all of them are recorded in meta.json."""

    output_dir: str = _arg(None, "Directory to write the prepared data to (required).")
    tokenizer: str | None = _arg(
        None, "Existing tokenizer: a BERT vocab.txt or a Hugging Face tokenizer directory. Default: "
        "train a new WordPiece vocabulary on the input.")
    vocab_size: int = _arg(30522, "Vocabulary size when training a tokenizer.")
    cased: bool = _arg(False, "Keep case (and accents). Default: lowercase and strip accents, as BERT-uncased.")
    min_frequency: int = _arg(2, "Minimum count of a token when training a tokenizer.")
    max_seq_length: int = _arg(128, "Sequence length of an instance, [CLS] and [SEP]s included.")
    max_predictions_per_seq: int | None = _arg(
        None, "Most masked positions per instance. Default: 20 at length 128 and 80 at 512 (Google's "
        "recipes), else ceil(masked_lm_prob * max_seq_length).")
    masked_lm_prob: float = _arg(0.15, "Fraction of tokens masked per instance (masking itself happens at batch time).")
    short_seq_prob: float = _arg(0.1, "Probability of aiming an instance at a random shorter length.")
    dupe_factor: int = _arg(1, "Passes over the corpus, each with a different segmentation.")
    val_fraction: float = _arg(0.01, "Fraction of documents held out for validation (at least one document).")
    shard_size: int = _arg(100_000, "Instances per shard file.")
    seed: int = _arg(12345, "Seed of the document split, segmentation and random-next choices.")
    overwrite: bool = _arg(False, "Replace an existing prepared directory at --output_dir.")

    def resolved_max_predictions(self) -> int:
        if self.max_predictions_per_seq is not None:
            return self.max_predictions_per_seq
        default = math.ceil(round(self.masked_lm_prob * self.max_seq_length, 6))
        return {128: 20, 512: 80}.get(self.max_seq_length, default)

    def validate(self) -> None:
        if not self.output_dir:
            raise BertptError("--output_dir is required")
        if not 8 <= self.max_seq_length <= 512:
            raise BertptError(f"--max_seq_length must be between 8 and 512 (got {self.max_seq_length})")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise BertptError(f"--masked_lm_prob must be in (0, 1) (got {self.masked_lm_prob})")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise BertptError(f"--short_seq_prob must be in [0, 1] (got {self.short_seq_prob})")
        if not 0.0 <= self.val_fraction < 1.0:
            raise BertptError(f"--val_fraction must be in [0, 1) (got {self.val_fraction})")
        for name in ("dupe_factor", "shard_size", "vocab_size"):
            if getattr(self, name) < 1:
                raise BertptError(f"--{name} must be at least 1")
        if self.vocab_size < 100 and self.tokenizer is None:
            raise BertptError(f"--vocab_size {self.vocab_size} is too small for a WordPiece vocabulary (use 100 or more)")


def prepare(cfg: PrepareConfig, inputs: list[str] | None = None, documents=None, progress: bool = True) -> dict:
    """Prepare `inputs` (files/dirs) or `documents` (lists of sentences) into cfg.output_dir."""
    cfg.validate()
    out = Path(cfg.output_dir)
    _claim_output_dir(out, cfg.overwrite)
    t0 = time.time()

    if documents is None:
        documents = read_documents(list_text_files(inputs or []))
    docs = [d for d in tqdm(documents, desc="read", unit=" docs", disable=not progress)]
    if not docs:
        raise BertptError("the input holds no text (every file is empty); pass files with one sentence per "
                          "line and blank lines between documents")

    tok = (load_tokenizer(cfg.tokenizer, cased=cfg.cased) if cfg.tokenizer
           else train_tokenizer((" ".join(d) for d in docs), cfg.vocab_size, cfg.cased, cfg.min_frequency))
    ids_docs = _tokenize(tok, docs, progress)
    if not ids_docs:
        raise BertptError("no sentence of the input produced a token")

    # Hold out whole documents, so validation never sees a sentence of a training document.
    order = list(range(len(ids_docs)))
    random.Random(cfg.seed).shuffle(order)
    # At least one validation document, and always at least one training document.
    n_val = min(len(order) - 1, max(1, round(cfg.val_fraction * len(order)))) if cfg.val_fraction > 0 else 0
    splits = {"train": [ids_docs[i] for i in sorted(order[n_val:])],
              "val": [ids_docs[i] for i in sorted(order[:n_val])]}

    token_dtype = np.uint16 if len(tok) <= np.iinfo(np.uint16).max + 1 else np.uint32
    ids = special_ids(tok)
    split_meta = {}
    for name, split_docs in splits.items():
        if not split_docs:
            continue
        # Google's flow: one random.Random(seed) drives the document shuffle, segmentation and
        # random-next choices; validation gets its own stream so it does not shift training's.
        rng = random.Random(cfg.seed if name == "train" else cfg.seed + 1)
        bar = tqdm(total=len(split_docs) * cfg.dupe_factor, desc=f"instances ({name})", unit=" docs",
                   disable=not progress)
        instances = create_instances(split_docs, cfg.max_seq_length, cfg.short_seq_prob, cfg.dupe_factor,
                                     rng, on_document=bar.update)
        bar.close()
        split_meta[name] = _write_shards(out, name, instances, ids["cls"], ids["sep"], token_dtype, cfg.shard_size)
        split_meta[name]["documents"] = len(split_docs)
        split_meta[name]["sentences"] = sum(len(d) for d in split_docs)
    save_tokenizer(tok, out / "tokenizer")
    meta = {
        "format": FORMAT_VERSION,
        "bertpt_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "inputs": [str(p) for p in (inputs or [])],
        "tokenizer": "tokenizer",
        "tokenizer_hash": tokenizer_hash(tok),
        "vocab_size": len(tok),
        "special_ids": ids,
        "token_dtype": np.dtype(token_dtype).name,
        "max_seq_length": cfg.max_seq_length,
        "max_predictions_per_seq": cfg.resolved_max_predictions(),
        "masked_lm_prob": cfg.masked_lm_prob,
        "settings": {k: v for k, v in asdict(cfg).items() if k not in ("output_dir", "overwrite")},
        "splits": split_meta,
        "seconds": round(time.time() - t0, 1),
    }
    _atomic_write(out / "meta.json", json.dumps(meta, indent=2).encode())
    return meta


def _claim_output_dir(out: Path, overwrite: bool) -> None:
    """Never mix with or silently replace earlier output."""
    if (out / "meta.json").exists():
        if not overwrite:
            raise BertptError(f"--output_dir {out} already holds prepared data; pass --overwrite to replace it "
                              "or choose another directory")
        (out / "meta.json").unlink()  # first: from here on the directory counts as incomplete
        for f in out.glob("*.npy"):
            f.unlink()
        shutil.rmtree(out / "tokenizer", ignore_errors=True)
    elif out.exists() and any(p.name != "tokenizer" and not p.name.endswith(".npy") for p in out.iterdir()):
        raise BertptError(f"--output_dir {out} is not empty and is not a bertpt data directory; choose an "
                          "empty or new directory")
    require_writable_dir(out, "--output_dir")


def _tokenize(tok, docs: list[list[str]], progress: bool, batch_docs: int = 256) -> list[list[list[int]]]:
    """Batched through the Rust tokenizer; empty segments and documents are dropped, as Google does."""
    out = []
    for start in tqdm(range(0, len(docs), batch_docs), desc="tokenize", unit=" batches", disable=not progress):
        batch = docs[start:start + batch_docs]
        flat = [s for d in batch for s in d]
        encoded = tok(flat, add_special_tokens=False, return_attention_mask=False,
                      return_token_type_ids=False)["input_ids"]
        k = 0
        for d in batch:
            segments = [seg for seg in encoded[k:k + len(d)] if seg]
            k += len(d)
            if segments:
                out.append(segments)
    return out


def _write_shards(out: Path, split: str, instances: list[Instance], cls_id: int, sep_id: int,
                  token_dtype, shard_size: int) -> dict:
    shards, n_tokens, n_random = [], 0, 0
    for k, start in enumerate(range(0, len(instances), shard_size)):
        chunk = instances[start:start + shard_size]
        lengths = np.array([len(x.tokens_a) + len(x.tokens_b) + 3 for x in chunk], dtype=np.int64)
        index = np.zeros((len(chunk), 4), dtype=np.int64)
        index[:, 0] = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        index[:, 1] = lengths
        index[:, 2] = [len(x.tokens_a) + 2 for x in chunk]
        index[:, 3] = [x.is_random_next for x in chunk]
        tokens = np.empty(int(lengths.sum()), dtype=token_dtype)
        for x, offset in zip(chunk, index[:, 0]):
            seq = [cls_id, *x.tokens_a, sep_id, *x.tokens_b, sep_id]
            tokens[offset:offset + len(seq)] = seq
        stem = f"{split}-{k:05d}"
        _atomic_save(out / f"{stem}.ids.npy", tokens)
        _atomic_save(out / f"{stem}.idx.npy", index)
        shards.append(stem)
        n_tokens += int(lengths.sum())
        n_random += int(index[:, 3].sum())
    return {"shards": shards, "instances": len(instances), "tokens": n_tokens,
            "random_next_fraction": round(n_random / max(1, len(instances)), 4)}


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The built-in demo corpus, prepared once per machine

BUILTIN = PrepareConfig(output_dir="", vocab_size=8192, dupe_factor=5, val_fraction=0.05)


def builtin_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bertpt"
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache / f"builtin-{py}-v{FORMAT_VERSION}-{BUILTIN.max_seq_length}"


def prepare_builtin(target: Path, progress: bool = True) -> Path:
    """Prepare the built-in corpus into `target`, atomically: a crash leaves no half directory there,
    and when several nodes race on a shared file system the first rename wins."""
    if (target / "meta.json").exists():
        return target
    tmp = target.with_name(f"{target.name}.tmp-{os.uname().nodename}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = PrepareConfig(**{**asdict(BUILTIN), "output_dir": str(tmp)})
    prepare(cfg, documents=builtin_documents(), progress=progress)
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
        if not (target / "meta.json").exists():
            raise
    return target


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(PrepareConfig, description=(
        "Prepare raw text for BERT pretraining: train (or load) a WordPiece tokenizer and write "
        "Google-style next-sentence-prediction instances to sharded, memory-mappable files. Input: "
        "plain-text files or directories, one sentence per line, a blank line between documents."))
    parser.add_argument("inputs", nargs="+", help="Text files or directories (read recursively).")
    with exit_on_error("bertpt-prepare"):
        cfg, ns = parser.parse_args_into_dataclasses(args=argv)
        meta = prepare(cfg, inputs=ns.inputs)
        tr = meta["splits"]["train"]
        va = meta["splits"].get("val", {"instances": 0, "documents": 0})
        print(f"wrote {tr['instances']} training instances ({tr['documents']} documents, {tr['tokens']} tokens, "
              f"{tr['random_next_fraction']:.1%} random next) and {va['instances']} validation instances "
              f"({va['documents']} documents) to {cfg.output_dir} in {meta['seconds']} s")


if __name__ == "__main__":
    main()
