"""Masking (bertpt.data.masking): Google's count rule and 80/10/10 split, whole words, per-position
seeding, static masks, and the training-time knobs (--masked_lm_prob & co.) on real prepared data."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from bertpt.config import PretrainConfig
from bertpt.data.dataset import PretrainingData, Sample
from bertpt.data.format import Masking, SpecialIds, load_meta
from bertpt.data.masking import (
    EVAL_STREAM,
    MaskingCollator,
    describe_changes,
    max_predictions_for,
    num_to_predict,
    resolve_masking,
)
from bertpt.data.prepare import PrepareConfig
from bertpt.errors import BertptError

SPECIAL = SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
MASKING = Masking(static=False, whole_word_mask=False, masked_lm_prob=0.15, max_predictions_per_seq=20)


def instance(rng, length, a_len):
    """[CLS] A [SEP] B [SEP] with ordinary token ids 5..999."""
    body = rng.integers(5, 1000, length)
    body[0], body[a_len - 1], body[-1] = 2, 3, 3
    return body


def test_masked_count_follows_googles_rule():
    collator = MaskingCollator(MASKING, SPECIAL, 1000, seed=0)
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
    data = PretrainingData(meta, "train")
    collator = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, seed=3)
    special = set(asdict(meta.special_ids).values()) - {meta.special_ids.mask}
    n_mask = n_keep = n_random = 0
    for start in range(0, len(data), 64):
        batch = collator([data[(p, p)] for p in range(start, min(start + 64, len(data)))])
        originals = batch["labels"]
        chosen = originals != -100
        # never a [CLS], [SEP] or [PAD] position
        assert not np.isin(originals[chosen].numpy(), list(special)).any()
        assert not chosen[batch["attention_mask"] == 0].any()
        inputs = batch["input_ids"][chosen]
        n_mask += int((inputs == meta.special_ids.mask).sum())
        n_keep += int((inputs == originals[chosen]).sum())
        n_random += int(((inputs != meta.special_ids.mask) & (inputs != originals[chosen])).sum())
    total = n_mask + n_keep + n_random
    assert total > 20_000
    # a random replacement can draw the original token (1/1000): counts it as kept, well inside 2%
    assert abs(n_mask / total - 0.8) < 0.02
    assert abs(n_keep / total - 0.1) < 0.02
    assert abs(n_random / total - 0.1) < 0.02


def test_masks_are_a_function_of_seed_stream_and_position():
    tokens = instance(np.random.default_rng(1), 64, 30)
    a = MaskingCollator(MASKING, SPECIAL, 1000, seed=5).mask(tokens, 11)
    b = MaskingCollator(MASKING, SPECIAL, 1000, seed=5).mask(tokens, 11)
    c = MaskingCollator(MASKING, SPECIAL, 1000, seed=5).mask(tokens, 12)
    d = MaskingCollator(MASKING, SPECIAL, 1000, seed=5, stream=EVAL_STREAM).mask(tokens, 11)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1]) and not np.array_equal(a[1], d[1])


def test_whole_word_masking_masks_whole_words_within_the_count():
    # ids 900..999 are `##` continuation pieces; every word is 1-3 pieces long.
    is_cont = np.zeros(1000, dtype=bool)
    is_cont[900:] = True
    masking = replace(MASKING, whole_word_mask=True)
    collator = MaskingCollator(masking, SPECIAL, 1000, seed=1, is_continuation=is_cont)
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
    masking = replace(MASKING, static=True)
    tokens = np.array([2, 10, 4, 12, 3, 14, 4, 3])  # already masked at prepare time: [MASK] at 2 and 6
    masks = np.array([[2, 11], [6, 15]])
    batch = MaskingCollator(masking, SPECIAL, 1000, seed=0)([Sample(0, tokens, 5, 1, masks)])
    assert batch["input_ids"][0].tolist() == tokens.tolist()
    assert batch["labels"][0].tolist() == [-100, -100, 11, -100, -100, -100, 15, -100]
    assert batch["token_type_ids"][0].tolist() == [0] * 5 + [1] * 3
    assert batch["next_sentence_label"].tolist() == [1]


# ---------------------------------------------------------------------------------------------
# Training-time knobs


def test_a_higher_rate_masks_its_share_of_every_full_sequence(data_128):
    """--masked_lm_prob 0.3 on data prepared at 0.15 (cap 20): every full 128-token instance gets
    round(0.3 x 128) = 38 predictions; the data's own cap would have clipped it to 20."""
    meta = load_meta(data_128)
    assert (meta.max_seq_length, meta.masking.masked_lm_prob, meta.masking.max_predictions_per_seq) == (128, 0.15, 20)
    masking = resolve_masking(meta.masking, meta.max_seq_length, masked_lm_prob=0.3)
    assert masking == Masking(static=False, whole_word_mask=False, masked_lm_prob=0.3, max_predictions_per_seq=39)
    data = PretrainingData(meta, "train")
    collator = MaskingCollator(masking, meta.special_ids, meta.vocab_size, seed=0)
    as_prepared = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, seed=0)
    full = 0
    for start in range(0, len(data), 64):
        samples = [data[(p, p)] for p in range(start, min(start + 64, len(data)))]
        counts = (collator(samples)["labels"] != -100).sum(dim=1).tolist()
        counts_as_prepared = (as_prepared(samples)["labels"] != -100).sum(dim=1).tolist()
        for s, k, k0 in zip(samples, counts, counts_as_prepared):
            n = len(s.tokens)
            assert k == num_to_predict(n, 0.3, 39) and k0 == num_to_predict(n, 0.15, 20)
            if n == 128:
                assert (k, k0) == (38, 19)
                full += 1
    assert full > 100  # most instances are full length


def test_the_cap_follows_the_rate_unless_given():
    data = Masking(static=False, whole_word_mask=False, masked_lm_prob=0.15, max_predictions_per_seq=20)
    assert resolve_masking(data, 128) is data  # no knob: the data's masking as it is
    assert resolve_masking(data, 128, masked_lm_prob=0.3).max_predictions_per_seq == 39  # ceil(38.4)
    assert resolve_masking(data, 512, masked_lm_prob=0.3).max_predictions_per_seq == 154  # ceil(153.6)
    assert resolve_masking(data, 40, masked_lm_prob=0.15).max_predictions_per_seq == 6  # not 7 from 6.000000000000001
    assert resolve_masking(data, 128, masked_lm_prob=0.3, max_predictions_per_seq=25).max_predictions_per_seq == 25
    assert resolve_masking(data, 128, max_predictions_per_seq=10) == replace(data, max_predictions_per_seq=10)
    assert resolve_masking(data, 128, whole_word_mask=True) == replace(data, whole_word_mask=True)
    # the cap rule is bertpt-prepare's when it has no Google recipe for the length
    for length in (32, 64, 100, 256):
        cfg = PrepareConfig(output_dir="x", masked_lm_prob=0.2, max_seq_length=length)
        assert cfg.resolved_max_predictions() == max_predictions_for(0.2, length) == -(-20 * length // 100)
    assert describe_changes(data, resolve_masking(data, 128, masked_lm_prob=0.3)) == (
        "masked_lm_prob 0.15 -> 0.3, max_predictions_per_seq 20 -> 39"
    )


@pytest.mark.parametrize(
    "knobs, flags",
    [
        ({"masked_lm_prob": 0.3}, "--masked_lm_prob"),
        ({"whole_word_mask": False}, "--whole_word_mask"),
        ({"max_predictions_per_seq": 20, "masked_lm_prob": 0.15}, "--masked_lm_prob, --max_predictions_per_seq"),
    ],
)
def test_statically_masked_data_refuses_the_knobs(knobs, flags):
    static = Masking(static=True, whole_word_mask=True, masked_lm_prob=0.15, max_predictions_per_seq=20)
    assert resolve_masking(static, 128) is static
    with pytest.raises(BertptError) as e:
        resolve_masking(static, 128, **knobs)
    message = str(e.value)
    assert "\n" not in message and message.startswith(flags + ":") and "--static_masking" in message


def test_knob_values_are_checked():
    for bad, message in (
        ({"masked_lm_prob": 1.0}, "--masked_lm_prob must be in (0, 1)"),
        ({"masked_lm_prob": 0.0}, "--masked_lm_prob must be in (0, 1)"),
        ({"max_predictions_per_seq": 0}, "--max_predictions_per_seq must be at least 1"),
    ):
        with pytest.raises(BertptError, match=message.replace("(", r"\(").replace(")", r"\)")):
            PretrainConfig(**bad).validate()
    PretrainConfig(masked_lm_prob=0.3, max_predictions_per_seq=40, whole_word_mask=True).validate()


def test_whole_word_knob_on_data_prepared_without_it(tiny_data):
    """--whole_word_mask true at training time: the collator masks whole words of the data's tokenizer."""
    from bertpt.data.dataset import continuation_ids

    meta = load_meta(tiny_data)
    assert not meta.masking.whole_word_mask
    masking = resolve_masking(meta.masking, meta.max_seq_length, whole_word_mask=True)
    is_cont = continuation_ids(meta)
    assert is_cont.any()
    with pytest.raises(ValueError, match="is_continuation"):
        MaskingCollator(masking, meta.special_ids, meta.vocab_size, seed=0)
    collator = MaskingCollator(masking, meta.special_ids, meta.vocab_size, seed=0, is_continuation=is_cont)
    data = PretrainingData(meta, "train")
    words_split = 0
    for p in range(200):
        s = data[(p, p)]
        _, labels = collator.mask(s.tokens, p)
        # words as Google forms them: over the tokens but [CLS]/[SEP], a ## piece joins the one before
        candidates = np.flatnonzero((s.tokens != meta.special_ids.cls) & (s.tokens != meta.special_ids.sep))
        chosen = (labels != -100)[candidates]
        starts = ~is_cont[s.tokens[candidates]]
        starts[0] = True
        word = np.cumsum(starts) - 1
        assert chosen.any()
        for w in np.unique(word[chosen]):
            words_split += not chosen[word == w].all()
    assert words_split == 0
