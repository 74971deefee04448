"""MLM-only instances (bertpt-prepare --objective mlm): contiguous text packed to the full length.

RoBERTa's FULL-SENTENCES input (Liu et al. 2019, "RoBERTa: A Robustly Optimized BERT Pretraining
Approach", sec. 4.2): each input is packed with text taken contiguously from one or more documents,
crossing document boundaries, with an extra separator token between documents, and no
next-sentence objective. Here the text is cut at the length rather than at a sentence end, so that
every instance but the last of a split of a chunk is exactly `max_seq_length` tokens (no padding,
every position trained):

    stream   = doc_1 [SEP] doc_2 [SEP] ... [SEP] doc_n      (documents in the order given)
    instance = [CLS] stream[i W : (i + 1) W] [SEP],  W = max_seq_length - 2

One segment: token type ids are all 0. The order of the documents is the caller's (shards.py
shuffles them with the chunk's seeded rng, once per --dupe_factor pass); the instances are not
shuffled, as the training sampler permutes them every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A document, as instances.Document: starts[j] is where segment j begins in the flat token array,
# starts[-1] where the last one ends; the segments of a document lie back to back.
Document = list[int]


def token_stream(documents: Sequence[Document], flat: np.ndarray, sep_id: int) -> np.ndarray:
    """The documents' tokens back to back, in the order given, one `sep_id` between two documents;
    (total tokens + documents - 1,) of flat's dtype. Empty documents are skipped."""
    parts: list[np.ndarray] = []
    sep = np.array([sep_id], dtype=flat.dtype)
    for d in documents:
        if d[-1] > d[0]:
            if parts:
                parts.append(sep)
            parts.append(flat[d[0] : d[-1]])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=flat.dtype)


def pack(stream: np.ndarray, max_seq_length: int, cls_id: int, sep_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut `stream` into instances `[CLS] piece [SEP]` of `max_seq_length` tokens (the last one
    shorter when the stream does not divide evenly). Returns (ids: the instances back to back, of
    stream's dtype; lengths: int64 (instances,)). No instance for an empty stream. Raises ValueError
    for max_seq_length < 3."""
    width = max_seq_length - 2
    if width < 1:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for text between [CLS] and [SEP]")
    n = -(-len(stream) // width)  # ceil
    lengths = np.full(n, max_seq_length, dtype=np.int64)
    if n:
        lengths[-1] = len(stream) - (n - 1) * width + 2
    ids = np.empty(len(stream) + 2 * n, dtype=stream.dtype)
    starts = np.cumsum(lengths) - lengths  # where each instance begins
    ids[starts] = cls_id
    ids[starts + lengths - 1] = sep_id
    text = np.ones(len(ids), dtype=bool)
    text[starts] = False
    text[starts + lengths - 1] = False
    ids[text] = stream
    return ids, lengths
