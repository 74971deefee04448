"""Dataset and sampler: samples from the shards, rank splits, exact seeking. (Masking: test_masking.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from bertpt.data.dataset import PretrainingData, Sample, StreamSampler, eval_batches
from bertpt.data.format import load_meta
from bertpt.data.masking import MaskingCollator
from bertpt.errors import BertptError


def test_collated_batch_layout(tiny_data):
    meta = load_meta(tiny_data)
    data = PretrainingData(meta, "train")
    items = [data[(p, p)] for p in range(8)]
    assert all(isinstance(x, Sample) and x.position == p for p, x in enumerate(items))
    batch = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, seed=0)(items)
    L = max(len(t) for _, t, _, _, _ in items)
    assert batch["input_ids"].shape == (8, L)
    for row, (_, tokens, a_len, is_random, masks) in enumerate(items):
        assert masks is None  # dynamic masking
        n = len(tokens)
        assert batch["attention_mask"][row].sum() == n
        assert (batch["token_type_ids"][row, :a_len] == 0).all() and (batch["token_type_ids"][row, a_len:n] == 1).all()
        assert (batch["token_type_ids"][row, n:] == 0).all() and (batch["input_ids"][row, n:] == 0).all()
        assert tokens[0] == meta.special_ids.cls and tokens[a_len - 1] == meta.special_ids.sep
        assert tokens[-1] == meta.special_ids.sep
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
    assert len(data) == meta.splits["train"].instances
    assert len(meta.splits["train"].shards) >= 2  # the fixture's chunk size makes several chunks
    assert all(isinstance(a, np.memmap) for a in data.ids)
    last = data[(0, len(data) - 1)]
    assert len(last.tokens) <= meta.max_seq_length


def test_not_prepared_dir_is_a_clear_error(tmp_path):
    with pytest.raises(BertptError, match="not a prepared data directory"):
        load_meta(tmp_path)
