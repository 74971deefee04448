"""bertpt.data.instances against an independent port of Google's create_pretraining_data.py
(benchmarks/reference/create_pretraining_data.py), on real text with a real WordPiece tokenizer.

Same documents, same `random.Random(seed)` -> the very same instances, in the same order, with the
same masks. Then the statistics the algorithm implies, and the instance layout, on the bertpt output.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from bertpt.data.instances import truncate_seq_pair
from bertpt.data.masking import google_instances, num_to_predict
from bertpt.data.tokenizer import continuation_table, special_ids, train_tokenizer

from benchmarks.reference import create_pretraining_data as ref

MASKED_LM_PROB, MAX_PREDICTIONS = 0.15, 20


# ---------------------------------------------------------------------------------------------
# Fixtures: the corpus tokenized once, as ids (bertpt) and as strings (the reference)


@pytest.fixture(scope="session")
def tok(documents):
    return train_tokenizer((" ".join(d) for d in documents), vocab_size=2000)


@pytest.fixture(scope="session")
def corpus(tok, documents):
    """(id documents, string documents): empty segments and empty documents dropped, as Google does."""
    backend = tok.backend_tokenizer
    id_docs, str_docs = [], []
    for d in documents:
        encodings = [backend.encode(s, add_special_tokens=False) for s in d]
        segments = [(e.ids, e.tokens) for e in encodings if e.ids]
        if segments:
            id_docs.append([ids for ids, _ in segments])
            str_docs.append([tokens for _, tokens in segments])
    assert len(id_docs) >= 140 and sum(len(s) for d in id_docs for s in d) > 50_000
    return id_docs, str_docs


@pytest.fixture(scope="session")
def vocab_words(tok):
    """Google's vocab_words: the vocabulary in id order."""
    words = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    assert [tok.convert_tokens_to_ids(w) for w in words] == list(range(len(words)))
    return words


@pytest.fixture(scope="session")
def is_continuation(tok):
    return np.array(continuation_table(tok), dtype=bool)


def run_bertpt(
    tok,
    id_docs,
    vocab_words,
    seed,
    max_seq_length,
    dupe_factor,
    short_seq_prob=0.1,
    static=False,
    whole_word=False,
    is_continuation=None,
):
    """bertpt's instances with the tokens mapped back to strings."""
    out = google_instances(
        id_docs,
        max_seq_length,
        short_seq_prob,
        dupe_factor,
        random.Random(seed),
        special_ids(tok),
        vocab_size=len(vocab_words),
        masked_lm_prob=MASKED_LM_PROB,
        max_predictions=MAX_PREDICTIONS,
        is_continuation=is_continuation if whole_word else None,
        static_masking=static,
    )
    for x in out:
        x["tokens"] = [vocab_words[t] for t in x["tokens"]]
        if static:
            x["masked_lm_labels"] = [vocab_words[t] for t in x["masked_lm_labels"]]
    return out


def run_reference(
    str_docs, vocab_words, seed, max_seq_length, dupe_factor, short_seq_prob=0.1, static=False, whole_word=False
):
    return ref.create_training_instances(
        str_docs,
        vocab_words,
        max_seq_length,
        dupe_factor,
        short_seq_prob,
        MASKED_LM_PROB,
        MAX_PREDICTIONS,
        random.Random(seed),
        do_whole_word_mask=whole_word,
        do_masking=static,
    )


def as_rows(instances, static):
    """Comparable rows, from either side."""
    rows = []
    for x in instances:
        if isinstance(x, dict):
            row = (x["tokens"], x["segment_ids"], bool(x["is_random_next"]))
            if static:
                row += (list(x["masked_lm_positions"]), list(x["masked_lm_labels"]))
        else:
            row = (x.tokens, x.segment_ids, bool(x.is_random_next))
            if static:
                row += (x.masked_lm_positions, x.masked_lm_labels)
        rows.append(row)
    return rows


def assert_same(ours, theirs, static):
    a, b = as_rows(ours, static), as_rows(theirs, static)
    assert len(a) == len(b), f"bertpt made {len(a)} instances, Google's algorithm {len(b)}"
    for k, (x, y) in enumerate(zip(a, b)):
        assert x == y, f"instance {k} of {len(a)} differs:\nbertpt: {x}\ngoogle: {y}"


# ---------------------------------------------------------------------------------------------
# Exact equality with Google's algorithm


@pytest.mark.parametrize("max_seq_length", [128, 64])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_dynamic_mode_equals_google(tok, corpus, vocab_words, seed, max_seq_length):
    id_docs, str_docs = corpus
    ours = run_bertpt(tok, id_docs, vocab_words, seed, max_seq_length, dupe_factor=2)
    theirs = run_reference(str_docs, vocab_words, seed, max_seq_length, dupe_factor=2)
    assert len(theirs) > 1000
    assert_same(ours, theirs, static=False)
    assert not any(x.get("masked_lm_positions") for x in ours)  # dynamic: no masks decided here


@pytest.mark.parametrize("whole_word", [False, True], ids=["pieces", "whole_word"])
@pytest.mark.parametrize("max_seq_length,seed", [(128, 3), (128, 12345), (64, 5)])
def test_static_mode_equals_google(tok, corpus, vocab_words, is_continuation, whole_word, max_seq_length, seed):
    id_docs, str_docs = corpus
    ours = run_bertpt(
        tok,
        id_docs,
        vocab_words,
        seed,
        max_seq_length,
        dupe_factor=2,
        static=True,
        whole_word=whole_word,
        is_continuation=is_continuation,
    )
    theirs = run_reference(
        str_docs, vocab_words, seed, max_seq_length, dupe_factor=2, static=True, whole_word=whole_word
    )
    assert len(theirs) > 1000
    assert_same(ours, theirs, static=True)
    # The comparison covered all three kinds of replacement, and (whole word) multi-piece words.
    shown = [(x.tokens[p], lab) for x in theirs for p, lab in zip(x.masked_lm_positions, x.masked_lm_labels)]
    assert sum(s == "[MASK]" for s, _ in shown) > 1000
    assert sum(s == lab for s, lab in shown) > 100
    assert sum(s not in ("[MASK]", lab) for s, lab in shown) > 100
    if whole_word:
        assert sum(lab.startswith("##") for _, lab in shown) > 100


@pytest.mark.parametrize(
    "n_docs,max_seq_length,short_seq_prob,seed",
    [
        (1, 64, 0.1, 0),  # one document: the random "other" document is the same one after 10 tries
        (2, 32, 0.5, 1),  # two documents: the 10 tries often still pick the same one
        (3, 16, 1.0, 2),  # tiny targets (2 .. 13 tokens): heavy truncation, negative target_b_length
        (20, 8, 0.0, 3),  # max_num_tokens 5: one-token A or B
    ],
)
@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
def test_edge_cases_equal_google(
    tok, corpus, vocab_words, is_continuation, n_docs, max_seq_length, short_seq_prob, seed, static
):
    id_docs, str_docs = corpus
    ours = run_bertpt(
        tok,
        id_docs[:n_docs],
        vocab_words,
        seed,
        max_seq_length,
        dupe_factor=3,
        short_seq_prob=short_seq_prob,
        static=static,
        whole_word=static,
        is_continuation=is_continuation,
    )
    theirs = run_reference(
        str_docs[:n_docs],
        vocab_words,
        seed,
        max_seq_length,
        dupe_factor=3,
        short_seq_prob=short_seq_prob,
        static=static,
        whole_word=static,
    )
    assert len(theirs) > 8
    assert_same(ours, theirs, static=static)


def test_empty_segments_and_documents_are_dropped_as_google_does(tok, corpus, vocab_words):
    """Empty segments and documents in the input: Google never sees them (its reader drops lines
    that tokenize to nothing, then empty documents); bertpt must give the same instances."""
    id_docs, str_docs = corpus
    holey = [[]] + [[[], *d[:3], [], *d[3:], []] for d in id_docs[:30]] + [[[]], []]
    ours = run_bertpt(tok, holey, vocab_words, 9, 64, dupe_factor=2)
    theirs = run_reference(str_docs[:30], vocab_words, 9, 64, dupe_factor=2)
    assert_same(ours, theirs, static=False)


def test_truncate_seq_pair_equals_google():
    pairs = random.Random(0)
    for case in range(300):
        la, lb = pairs.randint(1, 120), pairs.randint(1, 120)
        if case % 5 == 0:
            lb = la  # a tie: Google trims B
        max_num_tokens = pairs.randint(2, la + lb + 5)
        seed = pairs.randrange(1 << 30)
        a, b = [f"a{i}" for i in range(la)], [f"b{i}" for i in range(lb)]
        rng_ref, rng_ours = random.Random(seed), random.Random(seed)
        ref.truncate_seq_pair(a, b, max_num_tokens, rng_ref)
        a_start, a_end, b_start, b_end = truncate_seq_pair(0, la, 1000, 1000 + lb, max_num_tokens, rng_ours)
        assert ([f"a{i}" for i in range(a_start, a_end)], [f"b{i - 1000}" for i in range(b_start, b_end)]) == (a, b), (
            la,
            lb,
            max_num_tokens,
            seed,
        )
        assert rng_ours.random() == rng_ref.random()  # the same number of draws


# ---------------------------------------------------------------------------------------------
# Statistics and layout of the bertpt output on the whole corpus (dupe_factor 5)

STAT_SEED, STAT_LEN, STAT_DUPE = 2024, 128, 5


@pytest.fixture(scope="module")
def stat_runs(tok, corpus, vocab_words, is_continuation):
    """mode -> (bertpt instances, reference instances, the reference's target_seq_length of each
    document pass). The per-pass targets are recorded by wrapping the reference's per-document call."""
    id_docs, str_docs = corpus
    runs = {}
    for mode in ("dynamic", "static", "whole_word"):
        static, ww = mode != "dynamic", mode == "whole_word"
        ours = run_bertpt(
            tok,
            id_docs,
            vocab_words,
            STAT_SEED,
            STAT_LEN,
            STAT_DUPE,
            static=static,
            whole_word=ww,
            is_continuation=is_continuation,
        )
        targets = []
        per_document = ref.create_instances_from_document

        def recording(*args, **kwargs):  # called only within this iteration, so the loop's variables are right
            out = per_document(*args, **kwargs)  # noqa: B023
            targets.append(out[0].target_seq_length)  # noqa: B023 -- a non-empty document always yields an instance
            return out

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ref, "create_instances_from_document", recording)
            theirs = run_reference(str_docs, vocab_words, STAT_SEED, STAT_LEN, STAT_DUPE, static=static, whole_word=ww)
        assert len(targets) == len(str_docs) * STAT_DUPE
        runs[mode] = (ours, theirs, targets)
    return runs


def test_random_next_fraction(stat_runs):
    ours, theirs, _ = stat_runs["dynamic"]
    n = len(ours)
    assert n > 4000
    observed = sum(x["is_random_next"] for x in ours) / n
    assert observed == sum(x.is_random_next for x in theirs) / len(theirs)
    # What the algorithm implies: a one-segment chunk always takes a random B (it has nothing to
    # split), a longer chunk takes one with probability 1/2. So E = (n1 + (n - n1) / 2) / n, with
    # binomial noise from the (n - n1) fair coins only.
    n_single = sum(x.num_chunk_segments == 1 for x in theirs)
    assert 0 < n_single < 0.25 * n
    expected = (n_single + 0.5 * (n - n_single)) / n
    sigma = math.sqrt(0.25 * (n - n_single)) / n
    assert abs(observed - expected) < 4 * sigma, (observed, expected, sigma)
    assert 0.45 < observed < 0.65  # about a half, a little above (one-segment chunks)
    # Among multi-segment chunks alone: the fair coin.
    multi = [x.is_random_next for x in theirs if x.num_chunk_segments > 1]
    assert abs(sum(multi) / len(multi) - 0.5) < 4 * 0.5 / math.sqrt(len(multi))
    # Static masking draws from the same rng after each instance, so it changes which instances are
    # cut, but not the rule: the same band holds there.
    ours_static, theirs_static, _ = stat_runs["static"]
    observed = sum(x["is_random_next"] for x in ours_static) / len(ours_static)
    assert observed == sum(x.is_random_next for x in theirs_static) / len(theirs_static)
    assert 0.45 < observed < 0.65


def test_short_sequences_follow_short_seq_prob(stat_runs):
    ours, theirs, targets = stat_runs["dynamic"]
    n = len(ours)
    short = [len(x["tokens"]) < STAT_LEN / 2 for x in ours]
    assert short == [len(x.tokens) < STAT_LEN / 2 for x in theirs]
    max_num_tokens = STAT_LEN - 3
    # Each document pass aims at a random shorter target with probability short_seq_prob = 0.1
    # (150 documents x 5 passes: binomial band of 4 sigma).
    p = sum(t < max_num_tokens for t in targets) / len(targets)
    assert abs(p - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(targets)), p
    # A short target (uniform in 2 .. 125) gives short instances: most of them are below half
    # length when it is under 40 tokens (not all: A or a random B overshoots the target by up to one
    # sentence, and some docstring "sentences" are long).
    aimed_short = [len(x.tokens) < STAT_LEN / 2 for x in theirs if x.target_seq_length < 40]
    assert len(aimed_short) > 50 and sum(aimed_short) / len(aimed_short) > 0.5
    # Full-target passes mostly fill the sequence; their short instances come only from document
    # ends and short documents.
    full = [x for x in theirs if x.target_seq_length == max_num_tokens]
    full_short = sum(len(x.tokens) < STAT_LEN / 2 for x in full) / len(full)
    assert full_short < 0.1
    assert sum(len(x.tokens) >= STAT_LEN - 10 for x in full) / len(full) > 0.6
    # Overall: the short instances of full-target passes plus those of the ~10% short-target passes
    # (which yield more, smaller instances each): above the former, well below a third.
    observed = sum(short) / n
    assert full_short + 0.01 < observed < 0.3, (observed, full_short)


@pytest.mark.parametrize("mode", ["dynamic", "static", "whole_word"])
def test_instance_layout(stat_runs, mode):
    ours, _, _ = stat_runs[mode]
    for x in ours:
        tokens = list(x["tokens"])
        if mode != "dynamic":  # a random replacement may itself be [CLS] or [SEP]: look at the originals
            for p, lab in zip(x["masked_lm_positions"], x["masked_lm_labels"]):
                tokens[p] = lab
        assert len(tokens) <= STAT_LEN and len(tokens) == len(x["segment_ids"])
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        seps = [i for i, t in enumerate(tokens) if t == "[SEP]"]
        assert len(seps) == 2 and "[CLS]" not in tokens[1:]
        first = seps[0]
        assert 2 <= first <= len(tokens) - 3  # A and B non-empty
        assert x["segment_ids"] == [0] * (first + 1) + [1] * (len(tokens) - first - 1)


@pytest.mark.parametrize("mode", ["static", "whole_word"])
def test_masked_counts_and_words(stat_runs, mode):
    ours, _, _ = stat_runs[mode]
    total, total_k, replaced = 0, 0, {"mask": 0, "same": 0, "random": 0}
    for x in ours:
        positions, labels = x["masked_lm_positions"], x["masked_lm_labels"]
        k = min(MAX_PREDICTIONS, max(1, int(round(len(x["tokens"]) * MASKED_LM_PROB))))
        assert k == num_to_predict(len(x["tokens"]), MASKED_LM_PROB, MAX_PREDICTIONS)
        assert positions == sorted(set(positions)) and len(labels) == len(positions)
        original = list(x["tokens"])
        for p, lab in zip(positions, labels):
            original[p] = lab
        assert all(original[p] not in ("[CLS]", "[SEP]") for p in positions)
        for p in positions:
            shown = x["tokens"][p]
            replaced["mask" if shown == "[MASK]" else "same" if shown == original[p] else "random"] += 1
        if mode == "static":
            assert len(positions) == k
        else:
            assert 1 <= len(positions) <= k
            # Words as Google groups them: a ## piece joins the candidate before it ([CLS]/[SEP] skipped).
            words, masked = [], set(positions)
            for i, t in enumerate(original):
                if t in ("[CLS]", "[SEP]"):
                    continue
                if words and t.startswith("##"):
                    words[-1].append(i)
                else:
                    words.append([i])
            for w in words:
                assert all(i in masked for i in w) or not any(i in masked for i in w), (w, positions)
        total += len(positions)
        total_k += k
    if mode == "whole_word":
        assert total > 0.9 * total_k  # words that do not fit are skipped, but the count is mostly filled
    # 80% [MASK], 10% unchanged, 10% random (a random token equals the original 1/vocab of the time).
    for kind, p in (("mask", 0.8), ("same", 0.1), ("random", 0.1)):
        assert abs(replaced[kind] / total - p) < 4 * math.sqrt(p * (1 - p) / total) + 0.001, (kind, replaced)
