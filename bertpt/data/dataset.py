"""Reading prepared data: memory-mapped shards and a resumable rank-aware sampler.

Determinism by construction, so resuming needs no iterator state:
- The training stream is an endless sequence of positions p = 0, 1, 2, ...; position p is
  instance perm_e[p mod N] of epoch e = p // N, where perm_e is a seeded permutation.
- Optimizer step s consumes the global batch of positions [s*G, (s+1)*G), G = micro batch x
  gradient accumulation x world size. Within it, micro-step a on rank r takes the M positions
  starting at a*M*W + r*M, so ranks never see the same sample and resuming at a step is a seek.
- The masks of position p depend on p alone (masking.MaskingCollator), not on the rank or on
  what came before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch.utils.data import Dataset

from bertpt.data.format import IDS, IDX, MLM, Meta, load_meta
from bertpt.errors import BertptError


class Sample(NamedTuple):
    """One instance of a split, as the collator gets it."""

    position: int  # in the training stream (seeds its dynamic masks)
    tokens: np.ndarray  # int64 (length,): [CLS] A [SEP] B [SEP]; with static masking the masked inputs
    a_len: int  # length of [CLS] A [SEP]
    is_random_next: int | None  # BERT's NSP label: 0 = B follows A, 1 = B is random; None: MLM-only data
    static_masks: np.ndarray | None  # int64 (predictions, 2) rows (position, label); None unless static masking


class PretrainingData(Dataset):
    """One split of a prepared directory (`data`: the directory, or its Meta from format.load_meta).
    Items are (position, index) keys from `StreamSampler`; raises BertptError for a missing split or
    a missing or damaged shard."""

    def __init__(self, data: str | Path | Meta, split: str):
        meta = data if isinstance(data, Meta) else load_meta(data)
        if split not in meta.splits:
            raise BertptError(f"{meta.directory} has no '{split}' split")
        self.static = meta.masking.static
        self.nsp = meta.nsp  # MLM-only data: the label column is unused, samples carry None
        self.ids, self.idx, self.mlm = [], [], []
        for stem in meta.splits[split].shards:
            try:
                self.ids.append(np.load(meta.path(stem + IDS), mmap_mode="r"))
                self.idx.append(np.load(meta.path(stem + IDX), mmap_mode="r"))
                if self.static:
                    self.mlm.append(np.load(meta.path(stem + MLM), mmap_mode="r"))
            except (OSError, ValueError) as e:
                raise BertptError(
                    f"{meta.directory}: shard {stem} is missing or damaged ({e}); prepare the data again"
                ) from None
        self.starts = np.cumsum([0] + [len(i) for i in self.idx])  # first index of each shard

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        position, index = key
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        offset, length, a_len, is_random_next, m_offset, m_count = self.idx[shard][index - self.starts[shard]]
        tokens = np.asarray(self.ids[shard][offset : offset + length], dtype=np.int64)
        masks = np.asarray(self.mlm[shard][m_offset : m_offset + m_count]) if self.static else None
        return Sample(position, tokens, int(a_len), int(is_random_next) if self.nsp else None, masks)


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
    return [
        [(i % n, i % n) for i in range((b * world + rank) * micro, (b * world + rank + 1) * micro)]
        for b in range(rounds)
    ]


def continuation_ids(meta: Meta) -> np.ndarray:
    """is_continuation[id] (bool, (vocab,)) for the prepared directory's tokenizer: the id is a `##` WordPiece."""
    from bertpt.data.tokenizer import continuation_table, load_tokenizer

    return np.array(continuation_table(load_tokenizer(meta.tokenizer_path())))
