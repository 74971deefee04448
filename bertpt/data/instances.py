"""Next-sentence-prediction instances, exactly as Google's create_pretraining_data.py makes them.

A port of `create_training_instances` / `create_instances_from_document` / `truncate_seq_pair`
from google-research/bert with the same `random.Random` call sequence, so the same seed and
documents give the same instances (static masks, masking.StaticMasker, draw from the same rng in
Google's order, so they are the same too). What differs is the representation, for speed and
memory: the tokens of a chunk of documents lie back to back in one flat array, a document is the
list of its segments' start offsets into that array, and an instance is two (start, end) spans, A and B. A segment (one
sentence) is contiguous and so is every run of consecutive segments, so A and B always are spans,
and Google's one-token-at-a-time truncation just moves their ends.

An instance becomes `[CLS] A [SEP] B [SEP]`, segment ids 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`.

One deliberate difference: Google's code tries 10 times to draw a random-next document other than
A's own and then gives up, taking B from A's own document (with two documents 1 in 1,024 random-next
pairs, with one document all of them; such a "random" B is often the true next sentence, so the NSP
label lies). Here an 11th draw, uniform over the other documents, replaces the give-up. It happens
exactly where Google's code would make a same-document pair, so everywhere else the rng stream and
the instances are Google's. `same_document_fallback=True` keeps Google's give-up, only to compare
with Google's code literally.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

# A document: starts[j] is where segment j begins in the flat token array, starts[-1] where the last
# one ends (n segments -> n + 1 offsets).
Document = list[int]


class Masks(NamedTuple):
    """Static masks of one instance, positions into `[CLS] A [SEP] B [SEP]`, sorted."""

    positions: list[int]
    replacements: list[int]  # what the input shows at each position: [MASK], a random or the same id
    labels: list[int]  # the original ids, to predict


class Instance(NamedTuple):
    a_start: int
    a_end: int
    b_start: int
    b_end: int
    is_random_next: bool
    masks: Masks | None = None


def documents_from_lengths(segment_lengths: Sequence[Sequence[int]]) -> list[Document]:
    """Documents laid back to back in the flat array, in order; each is a list of segment lengths.
    Empty documents keep their (empty) place so that offsets stay right; create_instances drops them."""
    docs, offset = [], 0
    for lengths in segment_lengths:
        starts = [offset]
        for n in lengths:
            offset += n
            starts.append(offset)
        docs.append(starts)
    return docs


def create_instances(
    documents: list[Document],
    max_seq_length: int,
    short_seq_prob: float,
    dupe_factor: int,
    rng: random.Random,
    masker: Callable[[Instance, random.Random], Masks] | None = None,
    same_document_fallback: bool = False,
) -> list[Instance]:
    """Google's create_training_instances after tokenization: drop empty documents, shuffle the
    documents, make `dupe_factor` passes (each a different segmentation, since the rng moves on),
    shuffle the instances. `masker` (static masking) runs right after each instance is cut, on the
    same rng, as Google's does. A random-next B always comes from another document (see the module
    docstring); `same_document_fallback=True` gives Google's exact output, same-document pairs included.

    Raises ValueError when fewer than 2 non-empty documents are given without same_document_fallback:
    a random-next B then has no other document to come from."""
    documents = [d for d in documents if len(d) > 1]
    if len(documents) < 2 and documents and not same_document_fallback:
        raise ValueError("only 1 non-empty document: a random-next B needs another document to come from")
    rng.shuffle(documents)
    instances: list[Instance] = []
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            instances.extend(
                create_instances_from_document(
                    documents, document_index, max_seq_length, short_seq_prob, rng, masker, same_document_fallback
                )
            )
    rng.shuffle(instances)
    return instances


def create_instances_from_document(
    all_documents: list[Document],
    document_index: int,
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
    masker: Callable[[Instance, random.Random], Masks] | None = None,
    same_document_fallback: bool = False,
) -> list[Instance]:
    """Google's create_instances_from_document: the instances of one document, in order; a random-next
    B from another document of `all_documents` (at least 2 of them unless same_document_fallback)."""
    starts = all_documents[document_index]
    n_segments = len(starts) - 1
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]

    # Usually fill the whole sequence, but 10% of the time (short_seq_prob) aim for a shorter one,
    # so the model also sees the short sequences it will meet when fine-tuned.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances: list[Instance] = []
    chunk_first = 0  # the current chunk is segments [chunk_first, i]
    i = 0
    while i < n_segments:
        current_length = starts[i + 1] - starts[chunk_first]
        if i == n_segments - 1 or current_length >= target_seq_length:
            chunk_len = i + 1 - chunk_first
            # How many segments of the chunk go into A.
            a_end = 1
            if chunk_len >= 2:
                a_end = rng.randint(1, chunk_len - 1)
            a_start, a_stop = starts[chunk_first], starts[chunk_first + a_end]

            if chunk_len == 1 or rng.random() < 0.5:
                is_random_next = True
                target_b_length = target_seq_length - (a_stop - a_start)
                # Pick another document: Google's 10 tries, then (where Google's code gives up and
                # takes A's own document) one draw among the others, so the rng stream differs
                # from Google's only where Google's instance would have a same-document B.
                for _ in range(10):
                    random_document_index = rng.randint(0, len(all_documents) - 1)
                    if random_document_index != document_index:
                        break
                if random_document_index == document_index and not same_document_fallback:
                    random_document_index = rng.randint(0, len(all_documents) - 2)
                    random_document_index += random_document_index >= document_index
                rd = all_documents[random_document_index]
                random_start = rng.randint(0, len(rd) - 2)
                j = random_start
                while j < len(rd) - 1:  # add segments until B is long enough
                    j += 1
                    if rd[j] - rd[random_start] >= target_b_length:
                        break
                b_start, b_stop = rd[random_start], rd[j]
                # The chunk's segments that did not go into A are put back, not wasted.
                i -= chunk_len - a_end
            else:
                is_random_next = False
                b_start, b_stop = a_stop, starts[i + 1]

            a_start, a_stop, b_start, b_stop = truncate_seq_pair(a_start, a_stop, b_start, b_stop, max_num_tokens, rng)
            assert a_stop > a_start and b_stop > b_start
            instance = Instance(a_start, a_stop, b_start, b_stop, is_random_next)
            if masker is not None:
                instance = instance._replace(masks=masker(instance, rng))
            instances.append(instance)
            chunk_first = i + 1
        i += 1
    return instances


def truncate_seq_pair(
    a_start: int, a_end: int, b_start: int, b_end: int, max_num_tokens: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """Trim the longer side one token at a time, from the front or the back at random."""
    while (a_end - a_start) + (b_end - b_start) > max_num_tokens:
        if a_end - a_start > b_end - b_start:
            if rng.random() < 0.5:
                a_start += 1
            else:
                a_end -= 1
        else:
            if rng.random() < 0.5:
                b_start += 1
            else:
                b_end -= 1
    return a_start, a_end, b_start, b_end


def instance_tokens(flat: np.ndarray, x: Instance, cls_id: int, sep_id: int) -> list[int]:
    """`[CLS] A [SEP] B [SEP]` as a list of ids (before any static masking)."""
    return [cls_id, *flat[x.a_start : x.a_end].tolist(), sep_id, *flat[x.b_start : x.b_end].tolist(), sep_id]
