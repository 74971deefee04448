"""Masked-language-model masking, all of it: Google's count rule, dynamic masking at batch time,
static masking at prepare time, and the training-time masking knobs.

Both maskers follow Google's create_masked_lm_predictions (google-research/bert,
create_pretraining_data.py): candidates are all tokens but [CLS] and [SEP] (with whole-word
masking a `##` WordPiece joins the candidate before it), shuffled, taken while they fit in
k = min(max_predictions_per_seq, max(1, round(masked_lm_prob x length))) predictions; each chosen
position shows [MASK] 80% of the time, a random vocabulary id 10%, itself 10%.

- `StaticMasker` is the exact port: it draws from the prepare run's `random.Random` in Google's call
  order, so the same seed and documents give Google's masks (tests/test_instances.py checks it).
- `MaskingCollator` masks at batch time (dynamic masking, as RoBERTa): the randomness of position p
  comes from a generator seeded with (seed, stream, p), so a batch is the same on any rank, any
  world size and after any resume, and differs from epoch to epoch.

Because dynamic masks are drawn at batch time, the rate, cap and whole-word flag can be chosen when
training (`resolve_masking`; MosaicBERT found a higher rate than BERT's 15% better), without
preparing the corpus again. Static data carries its masks and refuses them.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch

from bertpt.data.format import Masking, SpecialIds
from bertpt.data.instances import (
    Instance,
    Masks,
    create_instances,
    documents_from_lengths,
    instance_tokens,
)
from bertpt.errors import BertptError

TRAIN_STREAM, EVAL_STREAM = 0, 1  # the `stream` of MaskingCollator: training and held-out batches differ

# Google's recipes (for masked_lm_prob 0.15): 20 predictions at length 128, 80 at 512; bertpt-prepare's default cap.
GOOGLE_MAX_PREDICTIONS = {128: 20, 512: 80}


def num_to_predict(length: int, masked_lm_prob: float, max_predictions: int) -> int:
    """Google's count of predicted positions of an instance of `length` tokens ([CLS] and [SEP]s
    counted): round(masked_lm_prob x length), at least 1, at most max_predictions."""
    return min(max_predictions, max(1, int(round(length * masked_lm_prob))))


def max_predictions_for(masked_lm_prob: float, max_seq_length: int) -> int:
    """The cap that never clips a full-length instance: ceil(masked_lm_prob x max_seq_length)
    (rounded to 6 decimals first, so that 0.15 x 40 = 6.000000000000001 gives 6, not 7)."""
    return math.ceil(round(masked_lm_prob * max_seq_length, 6))


def resolve_masking(
    data: Masking,
    max_seq_length: int,
    masked_lm_prob: float | None = None,
    max_predictions_per_seq: int | None = None,
    whole_word_mask: bool | None = None,
) -> Masking:
    """The masking a training run uses: the prepared data's, with the knobs that are not None
    replacing its values. A rate given without a cap brings its own cap, `max_predictions_for`
    (the data's cap was derived from the data's rate and would clip a higher one).

    Raises BertptError when a knob is given for statically masked data (its masks are stored).
    """
    given = {
        "--masked_lm_prob": masked_lm_prob,
        "--max_predictions_per_seq": max_predictions_per_seq,
        "--whole_word_mask": whole_word_mask,
    }
    given = [flag for flag, value in given.items() if value is not None]
    if not given:
        return data
    if data.static:
        raise BertptError(
            f"{', '.join(given)}: this data was prepared with --static_masking, its masks are stored "
            "with it; drop the flag, or prepare the corpus again without --static_masking"
        )
    if max_predictions_per_seq is None:
        max_predictions_per_seq = (
            data.max_predictions_per_seq
            if masked_lm_prob is None
            else max_predictions_for(masked_lm_prob, max_seq_length)
        )
    return Masking(
        static=False,
        whole_word_mask=data.whole_word_mask if whole_word_mask is None else whole_word_mask,
        masked_lm_prob=data.masked_lm_prob if masked_lm_prob is None else masked_lm_prob,
        max_predictions_per_seq=max_predictions_per_seq,
    )


def describe_changes(before: Masking, after: Masking) -> str:
    """'masked_lm_prob 0.15 -> 0.3, ...' for the fields that differ; '' when none does."""
    fields = ("masked_lm_prob", "max_predictions_per_seq", "whole_word_mask")
    return ", ".join(
        f"{f} {getattr(before, f)} -> {getattr(after, f)}" for f in fields if getattr(before, f) != getattr(after, f)
    )


class MaskingCollator:
    """Pads a batch of `dataset.Sample`s to its longest and masks it (see the module docstring).

    Samples of statically masked data carry their masks; they are used as they are. With whole-word
    masking (`is_continuation[id]`: the id is a `##` piece, from dataset.continuation_ids) words are
    taken in random order while they fit in k; a word that does not fit is skipped, not split.
    Raises ValueError when whole-word dynamic masking lacks `is_continuation`.
    """

    def __init__(
        self,
        masking: Masking,
        special_ids: SpecialIds,
        vocab_size: int,
        seed: int,
        stream: int = TRAIN_STREAM,
        is_continuation: np.ndarray | None = None,
    ):
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (
            special_ids.pad,
            special_ids.cls,
            special_ids.sep,
            special_ids.mask,
        )
        self.vocab_size = vocab_size
        self.max_predictions, self.masked_lm_prob = masking.max_predictions_per_seq, masking.masked_lm_prob
        self.seed, self.stream = seed, stream
        if masking.whole_word_mask and not masking.static and is_continuation is None:
            raise ValueError("whole-word masking needs is_continuation (dataset.continuation_ids)")
        self.is_continuation = is_continuation if masking.whole_word_mask else None

    def mask(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
        """tokens: int64 (length,) `[CLS] A [SEP] B [SEP]`. Returns (masked input ids, labels with -100
        where nothing is predicted), both (length,)."""
        rng = np.random.default_rng([self.seed, self.stream, position])
        candidates = np.flatnonzero((tokens != self.cls_id) & (tokens != self.sep_id))
        k = min(num_to_predict(len(tokens), self.masked_lm_prob, self.max_predictions), len(candidates))
        if self.is_continuation is None:
            chosen = rng.permutation(candidates)[:k]
        else:
            starts = ~self.is_continuation[tokens[candidates]]
            starts[:1] = True  # Google: a ## piece with no candidate before it starts a word
            word = np.cumsum(starts) - 1  # word index of each candidate
            sizes = np.bincount(word)
            taken, count = [], 0
            for w in rng.permutation(len(sizes)).tolist():
                if count >= k:
                    break
                if count + sizes[w] <= k:  # a word that does not fit is skipped, not split
                    taken.append(w)
                    count += int(sizes[w])
            chosen = candidates[np.isin(word, taken)]
            k = len(chosen)
        roll, coin, random_tokens = rng.random(k), rng.random(k), rng.integers(0, self.vocab_size, k)
        inputs, labels = tokens.copy(), np.full_like(tokens, -100)
        labels[chosen] = tokens[chosen]
        replacement = np.where(roll < 0.8, self.mask_id, np.where(coin < 0.5, tokens[chosen], random_tokens))
        inputs[chosen] = replacement
        return inputs, labels

    def __call__(self, samples: list) -> dict[str, torch.Tensor]:
        """samples: `dataset.Sample`s. Returns int64 tensors input_ids, token_type_ids, attention_mask,
        labels (batch, longest) and next_sentence_label (batch,); no next_sentence_label when the samples
        carry none (MLM-only data: `is_random_next` None), so that the model computes no NSP loss."""
        length = max(len(s.tokens) for s in samples)  # pad to the batch's longest, not max_seq_length
        B = len(samples)
        input_ids = torch.full((B, length), self.pad_id, dtype=torch.long)
        token_type_ids = torch.zeros((B, length), dtype=torch.long)
        attention_mask = torch.zeros((B, length), dtype=torch.long)
        labels = torch.full((B, length), -100, dtype=torch.long)
        nsp = samples[0].is_random_next is not None
        next_sentence_label = torch.empty(B, dtype=torch.long)
        for row, (position, tokens, a_len, is_random_next, masks) in enumerate(samples):
            if masks is None:
                inputs, lab = self.mask(tokens, position)
            else:  # static: the stored ids already show the masks
                inputs, lab = tokens, np.full_like(tokens, -100)
                lab[masks[:, 0]] = masks[:, 1]
            n = len(tokens)
            input_ids[row, :n] = torch.from_numpy(inputs)
            labels[row, :n] = torch.from_numpy(lab)
            token_type_ids[row, a_len:n] = 1
            attention_mask[row, :n] = 1
            if nsp:
                next_sentence_label[row] = is_random_next  # BERT's label: 0 = B follows A, 1 = B is random
        batch = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
        if nsp:
            batch["next_sentence_label"] = next_sentence_label
        return batch


class StaticMasker:
    """Google's create_masked_lm_predictions on ids, drawing from the instance algorithm's rng in
    Google's order (a port of google-research/bert create_pretraining_data.py). Called by
    instances.create_instances right after each instance is cut."""

    def __init__(
        self,
        flat: np.ndarray,
        special_ids: SpecialIds,
        vocab_size: int,
        masked_lm_prob: float,
        max_predictions: int,
        is_continuation: np.ndarray | None = None,
    ):
        self.flat, self.cls_id, self.sep_id, self.mask_id = flat, special_ids.cls, special_ids.sep, special_ids.mask
        self.vocab_size, self.masked_lm_prob, self.max_predictions = vocab_size, masked_lm_prob, max_predictions
        self.is_continuation = is_continuation  # None: mask single pieces; else whole words

    def __call__(self, x: Instance, rng: random.Random) -> Masks:
        return self.mask_tokens(instance_tokens(self.flat, x, self.cls_id, self.sep_id), rng)

    def mask_tokens(self, tokens: list[int], rng: random.Random) -> Masks:
        """The masks of one instance given as its ids ([CLS] and [SEP] are never candidates), drawn from
        `rng` in Google's order; also for packed MLM-only instances (packing.py), which are no span pair."""
        cand_indexes: list[list[int]] = []
        cont = self.is_continuation
        for i, t in enumerate(tokens):
            if t == self.cls_id or t == self.sep_id:
                continue
            if cont is not None and cand_indexes and cont[t]:
                cand_indexes[-1].append(i)
            else:
                cand_indexes.append([i])
        rng.shuffle(cand_indexes)
        k = num_to_predict(len(tokens), self.masked_lm_prob, self.max_predictions)
        chosen: list[tuple[int, int]] = []  # (position, what the input shows)
        for index_set in cand_indexes:
            if len(chosen) >= k:
                break
            if len(chosen) + len(index_set) > k:
                continue
            # (Google also checks the set against already covered positions; candidate sets are
            # disjoint, so that check never fires and draws no random numbers.)
            for index in index_set:
                if rng.random() < 0.8:
                    shown = self.mask_id
                elif rng.random() < 0.5:
                    shown = tokens[index]
                else:
                    shown = rng.randint(0, self.vocab_size - 1)
                chosen.append((index, shown))
        chosen.sort()
        return Masks([p for p, _ in chosen], [s for _, s in chosen], [tokens[p] for p, _ in chosen])


def google_instances(
    documents: list[list[list[int]]],
    max_seq_length: int,
    short_seq_prob: float,
    dupe_factor: int,
    rng: random.Random,
    ids: dict[str, int],
    vocab_size: int | None = None,
    masked_lm_prob: float = 0.15,
    max_predictions: int = 20,
    is_continuation: np.ndarray | None = None,
    static_masking: bool = False,
    same_document_fallback: bool = True,
) -> list[dict]:
    """Google's create_training_instances with its masks, in the form of Google's code, for tests and
    notebooks: documents as lists of segments (lists of ids) in, instances as dicts out: tokens (masked
    when static), segment_ids, is_random_next, and with static masking masked_lm_positions /
    masked_lm_labels. `ids`: {"cls", "sep", "mask", ...}. `same_document_fallback` (default: as Google's
    code, which after 10 tries takes a random-next B from A's own document; False: as bertpt-prepare,
    another document always; see instances.create_instances, which raises ValueError then on one document)."""
    flat = np.array([t for d in documents for s in d for t in s], dtype=np.int64)
    docs = documents_from_lengths([[len(s) for s in d if s] for d in documents])
    special = SpecialIds(**{k: ids.get(k, -1) for k in SpecialIds.__dataclass_fields__})
    masker = (
        StaticMasker(flat, special, vocab_size, masked_lm_prob, max_predictions, is_continuation)
        if static_masking
        else None
    )
    out = []
    for x in create_instances(
        docs, max_seq_length, short_seq_prob, dupe_factor, rng, masker, same_document_fallback=same_document_fallback
    ):
        tokens = instance_tokens(flat, x, ids["cls"], ids["sep"])
        a_len = x.a_end - x.a_start + 2
        row = {
            "tokens": tokens,
            "segment_ids": [0] * a_len + [1] * (len(tokens) - a_len),
            "is_random_next": x.is_random_next,
        }
        if x.masks is not None:
            for p, shown in zip(x.masks.positions, x.masks.replacements):
                row["tokens"][p] = shown
            row["masked_lm_positions"], row["masked_lm_labels"] = x.masks.positions, x.masks.labels
        out.append(row)
    return out
