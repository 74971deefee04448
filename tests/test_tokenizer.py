"""Tokenizer: trained on real text, saved HF-loadable, loaded from vocab.txt or a directory."""

from __future__ import annotations

import pytest
from transformers import BertTokenizerFast

from bertpt.data.tokenizer import (
    SPECIAL_TOKENS,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    tokenizer_hash,
    train_tokenizer,
)
from bertpt.errors import BertptError

TEXT = "Thé Python interpreter evaluates EXPRESSIONS lazily."


@pytest.fixture(scope="module")
def texts(documents):
    return [" ".join(d) for d in documents]


def test_trained_uncased_tokenizer_round_trips_through_transformers(texts, tmp_path):
    tok = train_tokenizer(texts, vocab_size=2000)
    assert len(tok) == 2000
    assert special_ids(tok) == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    save_tokenizer(tok, tmp_path)
    loaded = BertTokenizerFast.from_pretrained(str(tmp_path))
    assert loaded(TEXT)["input_ids"] == tok(TEXT)["input_ids"]
    assert loaded.tokenize(TEXT)[:2] == ["the", "python"]  # lowercased, accent stripped
    assert tokenizer_hash(loaded) == tokenizer_hash(tok)
    assert (tmp_path / "vocab.txt").read_text().splitlines()[:5] == SPECIAL_TOKENS


def test_cased_tokenizer_keeps_case(texts):
    cased = train_tokenizer(texts, vocab_size=2000, cased=True)
    uncased = train_tokenizer(texts, vocab_size=2000)
    assert "Python" in cased.get_vocab() and "Python" not in uncased.get_vocab()
    assert cased.tokenize("The Python")[:2] == ["The", "Python"]
    assert tokenizer_hash(cased) != tokenizer_hash(uncased)


def test_load_plain_vocab_txt(texts, tmp_path):
    tok = train_tokenizer(texts, vocab_size=1500)
    save_tokenizer(tok, tmp_path)
    from_vocab = load_tokenizer(tmp_path / "vocab.txt")
    assert from_vocab(TEXT)["input_ids"] == tok(TEXT)["input_ids"]
    assert tokenizer_hash(from_vocab) == tokenizer_hash(tok)
    assert load_tokenizer(tmp_path)(TEXT)["input_ids"] == tok(TEXT)["input_ids"]


def test_vocab_without_special_tokens_is_refused(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nof\n")
    with pytest.raises(BertptError, match=r"lacks the special tokens \[MASK\]"):
        load_tokenizer(vocab)
    with pytest.raises(BertptError, match="no such file"):
        load_tokenizer(tmp_path / "missing")
