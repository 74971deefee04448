"""Dataset, sampler and masking collator: Google's masking rule, rank splits, exact seeking."""

from __future__ import annotations

import numpy as np
import pytest

from bertpt.data.dataset import (
    EVAL_STREAM,
    MaskingCollator,
    PretrainingData,
    StreamSampler,
    eval_batches,
    load_meta,
)
from bertpt.errors import BertptError

META = {"special_ids": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}, "vocab_size": 1000,
        "max_predictions_per_seq": 20, "masked_lm_prob": 0.15, "masking": {"static": False, "whole_word": False}}


def instance(rng, length, a_len):
    """[CLS] A [SEP] B [SEP] with ordinary token ids 5..999."""
    body = rng.integers(5, 1000, length)
    body[0], body[a_len - 1], body[-1] = 2, 3, 3
    return body


def test_masked_count_follows_googles_rule():
    collator = MaskingCollator(META, seed=0)
    rng = np.random.default_rng(0)
    for length in (8, 10, 13, 40, 100, 127, 128):
        tokens = instance(rng, length, length // 2)
        _, labels = collator.mask(tokens, position=length)
        expected = min(20, max(1, round(0.15 * length)))
        assert (labels != -100).sum() == expected, length
    # the worked example: a full 128-token instance gets 19 predictions
    _, labels = collator.mask(instance(rng, 128, 60), position=7)
    assert (labels != -100).sum() == 19


def test_masking_split_and_specials_over_many_instances(tiny_data):
    meta = load_meta(tiny_data)
    data = PretrainingData(tiny_data, "train")
    collator = MaskingCollator(meta, seed=3)
    special = set(meta["special_ids"].values()) - {meta["special_ids"]["mask"]}
    n_mask = n_keep = n_random = 0
    for start in range(0, len(data), 64):
        batch = collator([data[(p, p)] for p in range(start, min(start + 64, len(data)))])
        originals = batch["labels"]
        chosen = originals != -100
        # never a [CLS], [SEP] or [PAD] position
        assert not np.isin(originals[chosen].numpy(), list(special)).any()
        assert not chosen[batch["attention_mask"] == 0].any()
        inputs = batch["input_ids"][chosen]
        n_mask += int((inputs == meta["special_ids"]["mask"]).sum())
        n_keep += int((inputs == originals[chosen]).sum())
        n_random += int(((inputs != meta["special_ids"]["mask"]) & (inputs != originals[chosen])).sum())
    total = n_mask + n_keep + n_random
    assert total > 20_000
    # a random replacement can draw the original token (1/1000): counts it as kept, well inside 2%
    assert abs(n_mask / total - 0.8) < 0.02
    assert abs(n_keep / total - 0.1) < 0.02
    assert abs(n_random / total - 0.1) < 0.02


def test_masks_are_a_function_of_seed_stream_and_position():
    tokens = instance(np.random.default_rng(1), 64, 30)
    a = MaskingCollator(META, seed=5).mask(tokens, 11)
    b = MaskingCollator(META, seed=5).mask(tokens, 11)
    c = MaskingCollator(META, seed=5).mask(tokens, 12)
    d = MaskingCollator(META, seed=5, stream=EVAL_STREAM).mask(tokens, 11)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[1], d[1])


def test_collated_batch_layout(tiny_data):
    meta = load_meta(tiny_data)
    data = PretrainingData(tiny_data, "train")
    items = [data[(p, p)] for p in range(8)]
    batch = MaskingCollator(meta, seed=0)(items)
    L = max(len(t) for _, t, _, _, _ in items)
    assert batch["input_ids"].shape == (8, L)
    for row, (_, tokens, a_len, is_random, masks) in enumerate(items):
        assert masks is None  # dynamic masking
        n = len(tokens)
        assert batch["attention_mask"][row].sum() == n
        assert (batch["token_type_ids"][row, :a_len] == 0).all() and (batch["token_type_ids"][row, a_len:n] == 1).all()
        assert (batch["token_type_ids"][row, n:] == 0).all() and (batch["input_ids"][row, n:] == 0).all()
        assert tokens[0] == meta["special_ids"]["cls"] and tokens[a_len - 1] == meta["special_ids"]["sep"]
        assert tokens[-1] == meta["special_ids"]["sep"]
        assert batch["next_sentence_label"][row] == is_random


def test_ranks_split_each_global_batch_without_overlap():
    n, micro, accum, world = 50, 3, 2, 2
    streams = [iter(StreamSampler(n, micro, accum, world, r, seed=0)) for r in range(world)]
    seen_positions = []
    for _ in range(10):  # ten optimizer steps
        step_positions = []
        for r in range(world):
            for _ in range(accum):
                step_positions += [p for p, _ in next(streams[r])]
        assert sorted(step_positions) == list(range(len(seen_positions), len(seen_positions) + 12))
        seen_positions += step_positions
    # one epoch of positions maps onto every instance exactly once
    sampler = StreamSampler(n, micro, accum, world, 0, seed=0)
    assert sorted(sampler.index(p) for p in range(n)) == list(range(n))
    assert [sampler.index(p) for p in range(n)] != [sampler.index(p) for p in range(n, 2 * n)]


def test_seeking_equals_iterating():
    args = dict(n=37, micro=4, grad_accum=3, world=2, rank=1, seed=9)
    full = iter(StreamSampler(**args))
    for _ in range(5 * 3):  # five steps of three micro-batches
        next(full)
    resumed = iter(StreamSampler(**args, consumed=5 * 4 * 3 * 2))
    assert [next(full) for _ in range(9)] == [next(resumed) for _ in range(9)]
    with pytest.raises(BertptError, match="not a multiple"):
        StreamSampler(**args, consumed=7)


def test_eval_batches_same_count_on_every_rank():
    for n in (3, 50, 1000):
        per_rank = [eval_batches(n, 64, micro=4, world=3, rank=r) for r in range(3)]
        assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) >= 1
        assert all(len(batch) == 4 for b in per_rank for batch in b)
        assert all(0 <= i < n for b in per_rank for batch in b for _, i in batch)
    flat = [i for r in range(2) for batch in eval_batches(1000, 64, 4, 2, r) for _, i in batch]
    assert sorted(flat) == list(range(64))


def test_memory_mapped_and_complete(tiny_data):
    meta = load_meta(tiny_data)
    data = PretrainingData(tiny_data, "train")
    assert len(data) == meta["splits"]["train"]["instances"]
    assert len(meta["splits"]["train"]["shards"]) >= 2  # the fixture's chunk size makes several chunks
    assert all(isinstance(a, np.memmap) for a in data.ids)
    last = data[(0, len(data) - 1)]
    assert len(last[1]) <= meta["max_seq_length"]


def test_not_prepared_dir_is_a_clear_error(tmp_path):
    with pytest.raises(BertptError, match="not a prepared data directory"):
        load_meta(tmp_path)


def test_whole_word_masking_masks_whole_words_within_the_count():
    # ids 900..999 are `##` continuation pieces; every word is 1-3 pieces long.
    is_cont = np.zeros(1000, dtype=bool)
    is_cont[900:] = True
    meta = {**META, "masking": {"static": False, "whole_word": True}}
    collator = MaskingCollator(meta, seed=1, is_continuation=is_cont)
    rng = np.random.default_rng(4)
    masked_total = 0
    for position in range(300):
        pieces = [2]
        while len(pieces) < 100:
            pieces += [int(rng.integers(5, 900))] + [int(x) for x in rng.integers(900, 1000, rng.integers(0, 3))]
        pieces = np.array(pieces[:100] + [3], dtype=np.int64)
        _, labels = collator.mask(pieces, position)
        chosen = labels != -100
        k = min(20, max(1, round(0.15 * len(pieces))))
        assert 0 < chosen.sum() <= k
        # a word is masked entirely or not at all: word = a start piece and its following ## pieces
        word = np.cumsum(~is_cont[pieces]) - 1
        for w in np.unique(word[chosen]):
            assert chosen[word == w].all(), (position, w)
        masked_total += int(chosen.sum())
    assert masked_total > 300 * (15 - 3)  # the greedy fill gets close to k (= 15 here)


def test_static_masks_come_from_the_data():
    meta = {**META, "masking": {"static": True, "whole_word": False}}
    tokens = np.array([2, 10, 4, 12, 3, 14, 4, 3])  # already masked at prepare time: [MASK] at 2 and 6
    masks = np.array([[2, 11], [6, 15]])
    batch = MaskingCollator(meta, seed=0)([(0, tokens, 5, 1, masks)])
    assert batch["input_ids"][0].tolist() == tokens.tolist()
    assert batch["labels"][0].tolist() == [-100, -100, 11, -100, -100, -100, 15, -100]
    assert batch["token_type_ids"][0].tolist() == [0] * 5 + [1] * 3
    assert batch["next_sentence_label"].tolist() == [1]
