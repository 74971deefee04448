"""Static whole-word masking end to end: text file in Google's format -> bertpt-prepare -> shard files
-> dataset reader, compared with Google's create_pretraining_data algorithm
(benchmarks/reference/create_pretraining_data.py) run on the same file with the same seed.

With val_fraction 0 and one chunk, the train split of chunk 0 is Google's algorithm on all the
documents in input order with random.Random(chunk_seed(seed, "train", 0)), so every instance, mask
position, label and masked input must be identical, in the same order.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from bertpt.data.corpus import Source
from bertpt.data.dataset import PretrainingData
from bertpt.data.format import SpecialIds
from bertpt.data.masking import MaskingCollator
from bertpt.data.prepare import PrepareConfig, prepare
from bertpt.data.shards import chunk_seed
from bertpt.data.tokenizer import (
    load_tokenizer,
    save_tokenizer,
    special_ids,
    train_tokenizer,
)

from benchmarks.reference import create_pretraining_data as ref

SEED, MAX_LEN, DUPE, MASKED_LM_PROB, MAX_PREDICTIONS, SHORT_SEQ_PROB = 7, 128, 2, 0.15, 20, 0.1


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, documents):
    """(output dir, meta, the tokenizer prepare used, the input text file)."""
    d = tmp_path_factory.mktemp("static_e2e")
    text = d / "corpus.txt"  # Google's format: one sentence per line, a blank line between documents
    text.write_text("\n\n".join("\n".join(doc) for doc in documents) + "\n", encoding="utf-8")
    tok = train_tokenizer((" ".join(doc) for doc in documents), vocab_size=2000)
    save_tokenizer(tok, d / "vocab")
    out = d / "out"
    meta = prepare(
        PrepareConfig(
            output_dir=str(out),
            tokenizer=str(d / "vocab"),
            max_seq_length=MAX_LEN,
            dupe_factor=DUPE,
            val_fraction=0.0,
            sentence_splitter="lines",
            static_masking=True,
            whole_word_mask=True,
            chunk_mb=1000,
            num_workers=0,
            seed=SEED,
        ),
        source=Source(inputs=[str(text)]),
        progress=False,
    )
    return out, meta, load_tokenizer(out / "tokenizer"), text


@pytest.fixture(scope="module")
def reference(prepared):
    """Google's algorithm on the same file: its own reader, the same tokenizer, the chunk's seed."""
    out, meta, tok, text = prepared
    vocab_words = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    backend = tok.backend_tokenizer
    all_documents = ref.read_documents([str(text)], lambda line: backend.encode(line, add_special_tokens=False).tokens)
    instances = ref.create_training_instances(
        all_documents,
        vocab_words,
        MAX_LEN,
        DUPE,
        SHORT_SEQ_PROB,
        MASKED_LM_PROB,
        MAX_PREDICTIONS,
        random.Random(chunk_seed(SEED, "train", 0)),
        do_whole_word_mask=True,
        do_masking=True,
    )
    return instances, vocab_words


def test_meta_one_chunk_train_only(prepared, reference, documents):
    out, meta, tok, _ = prepared
    instances, vocab_words = reference
    assert meta.chunks == 1
    assert list(meta.splits) == ["train"]
    train = meta.splits["train"]
    assert train.shards == ["train-00000"]
    assert train.documents == len(documents)
    assert train.instances == len(instances) > 1000
    assert (meta.masking.static, meta.masking.whole_word_mask) == (True, True)
    assert meta.masking.max_predictions_per_seq == MAX_PREDICTIONS
    assert meta.vocab_size == len(vocab_words)
    assert meta.special_ids == SpecialIds(**special_ids(tok))
    assert train.random_next_fraction == round(sum(x.is_random_next for x in instances) / len(instances), 4)
    assert not list(out.glob("val-*"))


def test_shard_files_equal_google(prepared, reference):
    out, meta, tok, _ = prepared
    instances, vocab_words = reference
    word_id = {w: i for i, w in enumerate(vocab_words)}
    ids = np.load(out / "train-00000.ids.npy")
    idx = np.load(out / "train-00000.idx.npy")
    mlm = np.load(out / "train-00000.mlm.npy")
    assert idx.dtype == np.int64 and idx.shape == (len(instances), 6)
    assert mlm.dtype == np.int64 and mlm.ndim == 2 and mlm.shape[1] == 2
    offset = mask_offset = 0
    for k, (row, x) in enumerate(zip(idx.tolist(), instances)):
        o, length, a_len, is_random_next, m_off, m_count = row
        # Rows lie back to back, in the reference's instance order.
        assert (o, m_off) == (offset, mask_offset), k
        assert length == len(x.tokens) <= MAX_LEN, k
        # The stored inputs are Google's masked tokens.
        assert [vocab_words[t] for t in ids[o : o + length].tolist()] == x.tokens, k
        # Segment layout: a_len covers [CLS] A [SEP] (segment 0), the rest is B [SEP] (segment 1).
        assert x.segment_ids == [0] * a_len + [1] * (length - a_len), k
        assert bool(is_random_next) == x.is_random_next, k
        # Masks: Google's positions and labels (as ids), in position order.
        assert m_count == len(x.masked_lm_positions), k
        assert mlm[m_off : m_off + m_count, 0].tolist() == x.masked_lm_positions, k
        assert mlm[m_off : m_off + m_count, 1].tolist() == [word_id[w] for w in x.masked_lm_labels], k
        offset += length
        mask_offset += m_count
    assert offset == len(ids) and mask_offset == len(mlm)
    # The comparison saw every kind of replacement and whole multi-piece words.
    shown = [(x.tokens[p], lab) for x in instances for p, lab in zip(x.masked_lm_positions, x.masked_lm_labels)]
    assert sum(s == "[MASK]" for s, _ in shown) > 1000
    assert sum(s == lab for s, lab in shown) > 100 and sum(s not in ("[MASK]", lab) for s, lab in shown) > 100
    assert sum(lab.startswith("##") for _, lab in shown) > 100


def test_dataset_reader_matches_files_and_google(prepared, reference):
    out, meta, tok, _ = prepared
    instances, vocab_words = reference
    ids = np.load(out / "train-00000.ids.npy")
    idx = np.load(out / "train-00000.idx.npy")
    mlm = np.load(out / "train-00000.mlm.npy")
    data = PretrainingData(out, "train")
    assert len(data) == len(instances) == len(idx)
    for i, x in enumerate(instances):
        position, tokens, a_len, is_random_next, masks = data[(123, i)]
        o, length, a, rnd, m_off, m_count = idx[i].tolist()
        assert position == 123
        assert tokens.tolist() == ids[o : o + length].tolist()
        assert [vocab_words[t] for t in tokens.tolist()] == x.tokens
        assert (a_len, is_random_next) == (a, rnd) == (x.segment_ids.count(0), int(x.is_random_next))
        assert masks.tolist() == mlm[m_off : m_off + m_count].tolist()
        assert masks[:, 0].tolist() == x.masked_lm_positions
        assert [vocab_words[t] for t in masks[:, 1].tolist()] == x.masked_lm_labels


def test_collator_uses_the_static_masks(prepared, reference):
    out, meta, tok, _ = prepared
    instances, vocab_words = reference
    data = PretrainingData(out, "train")
    keys = [(p, i) for p, i in enumerate(range(0, len(data), max(1, len(data) // 16)))]
    batch = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, seed=0)([data[k] for k in keys])
    for row, (_, i) in enumerate(keys):
        x, n = instances[i], len(instances[i].tokens)
        assert [vocab_words[t] for t in batch["input_ids"][row, :n].tolist()] == x.tokens
        assert batch["input_ids"][row, n:].eq(meta.special_ids.pad).all()
        assert batch["token_type_ids"][row, :n].tolist() == x.segment_ids
        assert batch["attention_mask"][row].sum().item() == n
        labels = batch["labels"][row].tolist()
        assert [p for p, lab in enumerate(labels) if lab != -100] == x.masked_lm_positions
        assert [vocab_words[labels[p]] for p in x.masked_lm_positions] == x.masked_lm_labels
        assert batch["next_sentence_label"][row].item() == int(x.is_random_next)


def test_prepare_json_records_static_whole_word(prepared):
    out, *_ = prepared
    settings = json.loads((out / "prepare.json").read_text())["settings"]
    assert settings["static_masking"] is True and settings["whole_word_mask"] is True
    assert settings["seed"] == SEED and settings["dupe_factor"] == DUPE and settings["val_fraction"] == 0.0
