"""WordPiece tokenizer: train one with `tokenizers`, or load a vocab.txt / Hugging Face directory.

Whatever the source, the result is a `transformers` BERT tokenizer (Rust backend), saved into the
prepared data directory so that `BertTokenizerFast.from_pretrained(dir)` loads it and the HF export
can ship it unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from bertpt.errors import BertptError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    cased: bool = False,
    min_frequency: int = 2,
    strip_accents: bool | None = None,
    show_progress: bool = False,
):
    """Train a BERT WordPiece vocabulary on an iterable of texts. The texts are streamed: the Rust
    trainer keeps word counts, never the corpus, so memory follows the number of distinct words."""
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    # strip_accents=None is BERT's rule: accents are stripped exactly when lowercasing.
    wp = BertWordPieceTokenizer(lowercase=not cased, strip_accents=strip_accents)
    wp.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=show_progress,
    )
    return BertTokenizerFast(vocab=wp.get_vocab(), do_lower_case=not cased, strip_accents=strip_accents)


def load_tokenizer(path: str | Path, cased: bool = False, strip_accents: bool | None = None):
    """Load a Hugging Face tokenizer directory, or a plain BERT vocab.txt (cased and strip_accents
    apply to a vocab.txt; a directory carries its own normalizer settings)."""
    from tokenizers.models import WordPiece
    from transformers import BertTokenizerFast

    p = Path(path)
    if p.is_file():
        try:
            vocab = WordPiece.read_file(str(p))
        except Exception as e:  # tokenizers raises a bare Exception on unreadable files
            raise BertptError(f"--tokenizer {path}: cannot read it as a vocab.txt ({e})") from None
        tok = BertTokenizerFast(vocab=vocab, do_lower_case=not cased, strip_accents=strip_accents)
    elif p.is_dir():
        if not any((p / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            raise BertptError(f"--tokenizer {path}: directory has neither tokenizer.json nor vocab.txt")
        try:
            tok = BertTokenizerFast.from_pretrained(str(p))
        except Exception as e:
            raise BertptError(f"--tokenizer {path}: cannot load it as a BERT tokenizer ({e})") from None
    else:
        raise BertptError(f"--tokenizer {path}: no such file or directory")
    check_special_tokens(tok, str(path))
    return tok


def check_special_tokens(tok, where: str) -> None:
    # transformers appends absent special tokens as "added" tokens; a BERT vocabulary must hold them.
    vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise BertptError(
            f"tokenizer {where} lacks the special tokens {' '.join(missing)}; BERT pretraining "
            "needs all of [PAD] [UNK] [CLS] [SEP] [MASK]"
        )


def tokenizer_hash(tok) -> str:
    """A short fingerprint of what changes token ids: the vocabulary and the normalizer settings."""
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    normalizer = json.loads(tok.backend_tokenizer.to_str()).get("normalizer")
    blob = json.dumps([vocab, normalizer], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def special_ids(tok) -> dict[str, int]:
    return {
        name: tok.convert_tokens_to_ids(tok_str)
        for name, tok_str in zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS)
    }


def save_tokenizer(tok, out_dir: str | Path) -> None:
    """save_pretrained (tokenizer.json + config) plus a plain vocab.txt for tools that want one."""
    out = Path(out_dir)
    tok.save_pretrained(str(out))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (out / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")


def continuation_table(tok) -> list[bool]:
    """is_continuation[id]: the token is a WordPiece `##` piece, i.e. it continues the word before it
    (whole-word masking masks it together with that word)."""
    vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
    table = [False] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        table[i] = token.startswith("##")
    return table
