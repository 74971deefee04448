"""Next-sentence-prediction instances, exactly as Google's create_pretraining_data.py makes them.

A line-for-line port of `create_training_instances` / `create_instances_from_document` /
`truncate_seq_pair` from google-research/bert, on token ids instead of token strings, with the same
`random.Random` call sequence, so the same seed gives the same segmentation. Masking is not done
here: bertpt masks dynamically at batch time (dataset.py), so each epoch sees new masks.

A document is a list of segments (one tokenized sentence each, a list of ids). An instance is
`[CLS] A [SEP] B [SEP]` with segment ids 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

Segment = list[int]
Document = list[Segment]


@dataclass
class Instance:
    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool


def create_instances(documents: list[Document], max_seq_length: int, short_seq_prob: float,
                     dupe_factor: int, rng: random.Random,
                     on_document: Callable[[], object] | None = None) -> list[Instance]:
    """Google's create_training_instances after tokenization: shuffle documents, make `dupe_factor`
    passes (each a different segmentation, since the rng moves on), shuffle the instances."""
    documents = [d for d in documents if d]
    rng.shuffle(documents)
    instances: list[Instance] = []
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            instances.extend(create_instances_from_document(
                documents, document_index, max_seq_length, short_seq_prob, rng))
            if on_document is not None:
                on_document()
    rng.shuffle(instances)
    return instances


def create_instances_from_document(all_documents: list[Document], document_index: int, max_seq_length: int,
                                   short_seq_prob: float, rng: random.Random) -> list[Instance]:
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3  # [CLS], [SEP], [SEP]

    # Usually fill the whole sequence, but 10% of the time (short_seq_prob) aim for a shorter one,
    # so the model also sees the short sequences it will meet when fine-tuned.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances: list[Instance] = []
    current_chunk: list[Segment] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                # How many segments of the chunk go into A.
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = [t for j in range(a_end) for t in current_chunk[j]]

                tokens_b: list[int] = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    # Pick another document; with a tiny corpus this can still be the same one
                    # after 10 tries, exactly as in Google's code.
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The chunk's segments that did not go into A are put back, not wasted.
                    num_unused_segments = len(current_chunk) - a_end
                    i -= num_unused_segments
                else:
                    is_random_next = False
                    tokens_b = [t for j in range(a_end, len(current_chunk)) for t in current_chunk[j]]

                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert len(tokens_a) >= 1 and len(tokens_b) >= 1
                instances.append(Instance(tokens_a, tokens_b, is_random_next))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Trim the longer side one token at a time, from the front or the back at random."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()
