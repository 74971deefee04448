"""Reading prepared data: memory-mapped shards, a resumable rank-aware sampler, dynamic masking.

Determinism by construction, so resuming needs no iterator state:
- The training stream is an endless sequence of positions p = 0, 1, 2, ...; position p is
  instance perm_e[p mod N] of epoch e = p // N, where perm_e is a seeded permutation.
- Optimizer step s consumes the global batch of positions [s*G, (s+1)*G), G = micro batch x
  gradient accumulation x world size. Within it, micro-step a on rank r takes the M positions
  starting at a*M*W + r*M, so ranks never see the same sample and resuming at a step is a seek.
- The masks of position p come from a generator seeded with (seed, stream, p): the same on any
  rank, any world size, and after any resume, yet different on every epoch (dynamic masking).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bertpt.errors import BertptError
from bertpt.data.shards import FORMAT_VERSION

TRAIN_STREAM, EVAL_STREAM = 0, 1


def load_meta(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise BertptError(f"{data_dir} is not a prepared data directory (no meta.json, or an interrupted "
                          f"bertpt-prepare); run `bertpt-prepare YOUR_TEXT --output_dir {data_dir}`")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise BertptError(f"{data_dir} was prepared in data format {meta.get('format')}, this bertpt reads "
                          f"format {FORMAT_VERSION}; prepare it again")
    return meta


class PretrainingData(Dataset):
    """One split of a prepared directory. Items are (position, index) keys from `StreamSampler`."""

    def __init__(self, data_dir: str | Path, split: str):
        meta = load_meta(data_dir)
        if split not in meta["splits"]:
            raise BertptError(f"{data_dir} has no '{split}' split")
        self.static = meta["masking"]["static"]
        self.ids, self.idx, self.mlm = [], [], []
        for stem in meta["splits"][split]["shards"]:
            try:
                self.ids.append(np.load(Path(data_dir) / f"{stem}.ids.npy", mmap_mode="r"))
                self.idx.append(np.load(Path(data_dir) / f"{stem}.idx.npy", mmap_mode="r"))
                if self.static:
                    self.mlm.append(np.load(Path(data_dir) / f"{stem}.mlm.npy", mmap_mode="r"))
            except (OSError, ValueError) as e:
                raise BertptError(f"{data_dir}: shard {stem} is missing or damaged ({e}); prepare the data again") from None
        self.starts = np.cumsum([0] + [len(i) for i in self.idx])  # first index of each shard

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, np.ndarray, int, int, np.ndarray | None]:
        """(position, token ids, length of [CLS] A [SEP], is_random_next, static masks or None), where
        static masks are (position, label) rows and the token ids already show the masking."""
        position, index = key
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        offset, length, a_len, is_random_next, m_offset, m_count = self.idx[shard][index - self.starts[shard]]
        tokens = np.asarray(self.ids[shard][offset:offset + length], dtype=np.int64)
        masks = np.asarray(self.mlm[shard][m_offset:m_offset + m_count]) if self.static else None
        return position, tokens, int(a_len), int(is_random_next), masks


class StreamSampler:
    """Yields this rank's micro-batches as lists of (position, index), forever, from `consumed`."""

    def __init__(self, n: int, micro: int, grad_accum: int, world: int, rank: int, seed: int, consumed: int = 0):
        self.n, self.micro, self.grad_accum, self.world, self.rank, self.seed = n, micro, grad_accum, world, rank, seed
        self.global_batch = micro * grad_accum * world
        if consumed % self.global_batch:
            raise BertptError(f"consumed samples {consumed} is not a multiple of the global batch {self.global_batch}")
        self.consumed = consumed
        self._perm_epoch, self._perm = -1, None

    def index(self, position: int) -> int:
        epoch = position // self.n
        if epoch != self._perm_epoch:
            self._perm_epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(self._perm[position % self.n])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step_start = self.consumed
        while True:
            for a in range(self.grad_accum):
                first = step_start + a * self.micro * self.world + self.rank * self.micro
                yield [(p, self.index(p)) for p in range(first, first + self.micro)]
            step_start += self.global_batch


def eval_batches(n: int, eval_samples: int, micro: int, world: int, rank: int) -> list[list[tuple[int, int]]]:
    """The fixed held-out batches of this rank. Every rank gets the same number of batches (ZeRO-3
    needs every rank in every forward), wrapping around a split smaller than one round."""
    per_round = micro * world
    rounds = max(1, min(eval_samples, n) // per_round)
    return [[(i % n, i % n) for i in range((b * world + rank) * micro, (b * world + rank + 1) * micro)]
            for b in range(rounds)]


def continuation_ids(data_dir: str | Path) -> np.ndarray:
    """is_continuation[id] for the prepared directory's tokenizer (a `##` WordPiece)."""
    from bertpt.data.tokenizer import continuation_table, load_tokenizer

    return np.array(continuation_table(load_tokenizer(Path(data_dir) / load_meta(data_dir)["tokenizer"])))


class MaskingCollator:
    """Pads a batch and masks it, Google's rule, with per-position seeded randomness.

    Per instance: k = min(max_predictions, max(1, round(masked_lm_prob * length))) positions are
    chosen among the non-special tokens (length counts [CLS] and [SEP]s, as Google's does); each is
    replaced by [MASK] 80% of the time, by a random vocabulary token 10%, kept 10%. With whole-word
    masking (`is_continuation` given) candidates are words: a `##` piece joins the piece before it,
    words are taken in random order while they fit in k, as Google's whole-word rule does. Data
    prepared with static masking already carries its masks: they are used as they are.
    """

    def __init__(self, meta: dict, seed: int, stream: int = TRAIN_STREAM, is_continuation: np.ndarray | None = None):
        ids = meta["special_ids"]
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = ids["pad"], ids["cls"], ids["sep"], ids["mask"]
        self.vocab_size = meta["vocab_size"]
        self.max_predictions = meta["max_predictions_per_seq"]
        self.masked_lm_prob = meta["masked_lm_prob"]
        self.seed, self.stream = seed, stream
        if meta["masking"]["whole_word"] and not meta["masking"]["static"] and is_continuation is None:
            raise ValueError("whole-word masking needs is_continuation (dataset.continuation_ids)")
        self.is_continuation = is_continuation

    def mask(self, tokens: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (masked input ids, labels with -100 where nothing is predicted)."""
        rng = np.random.default_rng([self.seed, self.stream, position])
        candidates = np.flatnonzero((tokens != self.cls_id) & (tokens != self.sep_id))
        k = min(self.max_predictions, max(1, int(round(len(tokens) * self.masked_lm_prob))), len(candidates))
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

    def __call__(self, items: list[tuple[int, np.ndarray, int, int, np.ndarray | None]]) -> dict[str, torch.Tensor]:
        length = max(len(item[1]) for item in items)  # pad to the batch's longest, not max_seq_length
        B = len(items)
        input_ids = torch.full((B, length), self.pad_id, dtype=torch.long)
        token_type_ids = torch.zeros((B, length), dtype=torch.long)
        attention_mask = torch.zeros((B, length), dtype=torch.long)
        labels = torch.full((B, length), -100, dtype=torch.long)
        next_sentence_label = torch.empty(B, dtype=torch.long)
        for row, (position, tokens, a_len, is_random_next, masks) in enumerate(items):
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
            next_sentence_label[row] = is_random_next  # BERT's label: 0 = B follows A, 1 = B is random
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
                "labels": labels, "next_sentence_label": next_sentence_label}
