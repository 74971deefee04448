"""NSP instances: the properties of Google's create_pretraining_data algorithm, on real text."""

from __future__ import annotations

import random

import pytest

from bertpt.instances import create_instances, truncate_seq_pair
from bertpt.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenized(documents):
    tok = train_tokenizer([" ".join(d) for d in documents], vocab_size=2000)
    docs = [[tok(s, add_special_tokens=False)["input_ids"] for s in d] for d in documents]
    return [[s for s in d if s] for d in docs]


def find(needle, haystack, start=0):
    n = len(needle)
    return next((i for i in range(start, len(haystack) - n + 1) if haystack[i:i + n] == needle), -1)


def a_then_b(a, b, stream):
    """A is a contiguous run of the document and B a contiguous run after it (truncation may cut
    tokens at the join, so B need not start right where A ends)."""
    i = find(a, stream)
    while i >= 0:
        if find(b, stream, i + len(a)) >= 0:
            return True
        i = find(a, stream, i + 1)
    return False


def test_instance_structure_and_statistics(tokenized):
    max_len = 128
    instances = create_instances([list(d) for d in tokenized], max_len, 0.1, 1, random.Random(12345))
    assert len(instances) > 500
    streams = [[t for s in d for t in s] for d in tokenized]
    random_next = [x for x in instances if x.is_random_next]
    lengths = [len(x.tokens_a) + len(x.tokens_b) for x in instances]
    assert all(len(x.tokens_a) >= 1 and len(x.tokens_b) >= 1 for x in instances)
    assert max(lengths) <= max_len - 3
    # Half of the multi-segment chunks take a random B, and single-segment chunks always do.
    assert 0.45 < len(random_next) / len(instances) < 0.70
    # About 10% of documents aim at a shorter target; most other instances fill the sequence.
    full = sum(1 for n in lengths if n == max_len - 3) / len(instances)
    assert 0.35 < full < 0.95
    # An actual next sentence: A then B in one document. A random next: B is text of some document.
    for x in [x for x in instances if not x.is_random_next][:100]:
        assert any(a_then_b(x.tokens_a, x.tokens_b, s) for s in streams)
    for x in random_next[:100]:
        assert any(find(x.tokens_b, s) >= 0 for s in streams)


def test_same_seed_same_instances_other_seed_differs(tokenized):
    run = lambda seed: create_instances([list(d) for d in tokenized], 64, 0.1, 2, random.Random(seed))
    a, b, c = run(1), run(1), run(2)
    assert [(x.tokens_a, x.tokens_b, x.is_random_next) for x in a] == \
           [(x.tokens_a, x.tokens_b, x.is_random_next) for x in b]
    assert [x.tokens_a for x in a] != [x.tokens_a for x in c]


def test_dupe_factor_makes_different_segmentations(tokenized):
    once = create_instances([list(d) for d in tokenized], 64, 0.1, 1, random.Random(0))
    twice = create_instances([list(d) for d in tokenized], 64, 0.1, 2, random.Random(0))
    assert 1.8 < len(twice) / len(once) < 2.2
    assert len({tuple(x.tokens_a) for x in twice}) > 1.5 * len({tuple(x.tokens_a) for x in once})


def test_truncate_seq_pair_trims_the_longer_side():
    a, b = list(range(10)), list(range(100, 104))
    truncate_seq_pair(a, b, 9, random.Random(0))
    assert len(a) + len(b) == 9 and len(b) == 4 and len(a) == 5
    assert all(0 <= t < 10 for t in a) and a == sorted(a)
    assert a == list(range(a[0], a[0] + 5))  # a contiguous run: only ends were removed
