"""NSP labels that do not lie (issue 12, section 3): a random-next B never comes from A's own document,
in any split, whatever the corpus (field script repro_2.sh and its kind); where Google's code would
take B from A's document the instances differ from Google's only there; too-small splits and chunks are
handled and said; evaluation on training instances is announced.

Documents are made of numbered sentences ("qN ... qN.", document d holding a known range of N), so
decoding an instance's A and B tells which document each came from, as the field script does.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from transformers import BertTokenizerFast

from bertpt.data.format import NspPairing, load_meta
from bertpt.data.instances import create_instances, create_instances_from_document, documents_from_lengths
from bertpt.data.prepare import main as prepare_main
from bertpt.data.shards import MIN_SPLIT_DOCUMENTS, held_out_count
from bertpt.pretrain import eval_split

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# Corpora of numbered sentences, and reading the sentence numbers back out of prepared data

_WORDS = ["farmer", "robot", "river", "student", "builds", "paints", "bridge", "clock", "garden", "road", "valley"]


def numbered_docs(sizes: list[int], seed: int = 0, words: int = 6) -> tuple[list[str], list[int]]:
    """Documents of `sizes[d]` sentences "qN w w w qN."; returns (texts, document of each sentence N)."""
    r = random.Random(seed)
    texts, doc_of, k = [], [], 0
    for d, n in enumerate(sizes):
        sents = []
        for _ in range(n):
            sents.append(f"q{k} {' '.join(r.choice(_WORDS) for _ in range(words))} q{k}.")
            doc_of.append(d)
            k += 1
        texts.append("\n".join(sents))
    return texts, doc_of


def write_corpus(path: Path, texts: list[str]) -> Path:
    path.write_text("\n\n".join(texts) + "\n")
    return path


def random_next_pairs(out: Path, split: str) -> list[tuple[list[int], list[int]]]:
    """(sentence numbers in A, in B) of every instance labelled random-next in `split`."""
    meta = json.loads((out / "meta.json").read_text())
    tok = BertTokenizerFast.from_pretrained(str(out / "tokenizer"))
    pairs = []
    for stem in meta["splits"][split]["shards"]:
        ids, idx = np.load(out / f"{stem}.ids.npy"), np.load(out / f"{stem}.idx.npy")
        for o, length, al, rnd, *_ in idx.tolist():
            if rnd:
                t = ids[o : o + length].tolist()
                a = [int(x) for x in re.findall(r"q(\d+)", tok.decode(t[1 : al - 1]))]
                b = [int(x) for x in re.findall(r"q(\d+)", tok.decode(t[al : length - 1]))]
                pairs.append((a, b))
    return pairs


def same_document_pairs(out: Path, doc_of: list[int]) -> dict[str, tuple[int, int]]:
    """split -> (random-next pairs, of which B shares a document with A)."""
    found = {}
    for split in json.loads((out / "meta.json").read_text())["splits"]:
        pairs = random_next_pairs(out, split)
        same = sum(bool({doc_of[n] for n in a} & {doc_of[n] for n in b}) for a, b in pairs)
        assert all(a and b for a, b in pairs)  # every A and B was decoded to sentence numbers
        found[split] = (len(pairs), same)
    return found


def run_prepare(capsys, *args) -> tuple[int, str, str]:
    """bertpt-prepare in this process: (exit status, stdout, stderr)."""
    code = 0
    try:
        prepare_main([*map(str, args), "--num_workers", "0", "--sentence_splitter", "lines", "--vocab_size", "300"])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def chunk_documents(out: Path) -> list[int]:
    return [json.loads(p.read_text())["input_documents"] for p in sorted(out.glob("chunk-*.json"))]


# ---------------------------------------------------------------------------------------------
# The field script's kinds, through bertpt-prepare


def test_held_out_split_of_a_100_document_chunk_pairs_across_documents(tmp_path, capsys):
    """repro_2 (a): 1% of 100 documents held out was ONE document, whose "random next" B all came from it."""
    texts, doc_of = numbered_docs([4] * 100, seed=5)
    src = write_corpus(tmp_path / "short_docs.txt", texts)
    code, out, err = run_prepare(capsys, src, "--output_dir", tmp_path / "short", "--dupe_factor", "5")
    assert code == 0, err
    meta = load_meta(tmp_path / "short")
    assert meta.splits["val"].documents == MIN_SPLIT_DOCUMENTS == 2 and meta.splits["train"].documents == 98
    assert meta.pairing == NspPairing(min_split_documents=2, held_out_raised=1, no_held_out=0, lone_documents=0)
    found = same_document_pairs(tmp_path / "short", doc_of)
    assert found["val"][0] >= 10 and found["val"][1] == 0
    assert found["train"][0] >= 300 and found["train"][1] == 0
    line = out.strip().splitlines()[-1]  # the summary says what was adjusted and why
    assert line.startswith("wrote ") and "1 chunk(s) held out 2 documents" in line and "another document" in line


def test_one_document_corpus_is_refused_in_one_line(tmp_path, capsys):
    """repro_2 (b): a corpus that is one document (no blank line) can only pair a sentence with its own document."""
    texts, _ = numbered_docs([600], seed=5)
    src = write_corpus(tmp_path / "one_doc.txt", texts)
    code, out, err = run_prepare(capsys, src, "--output_dir", tmp_path / "one")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("bertpt-prepare: error: the input holds only 1 usable document") and "blank line" in line
    assert sum("error" in x for x in err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "one" / "meta.json").exists()


def test_all_but_one_document_too_short_is_refused(tmp_path, capsys):
    """Many documents, all but one dropped (empty after tokenization, or under --min_doc_tokens)."""
    texts, _ = numbered_docs([30], seed=1)
    short = ["Tiny.", "Two words.", "  ", "Short one.\nStill short."] * 5
    src = write_corpus(tmp_path / "docs.txt", short + texts)
    code, _, err = run_prepare(capsys, src, "--output_dir", tmp_path / "o", "--min_doc_tokens", "20")
    assert code == 2 and "the input holds only 1 usable document" in err.strip().splitlines()[-1], err


def test_chunk_boundaries_never_leave_a_document_alone(tmp_path, capsys):
    """Small --chunk_mb: a document longer than a chunk used to close a chunk alone, and a last document
    after a full chunk made a one-document tail chunk; both paired their "random next" with themselves."""
    sizes = [60, 3, 3, 3, 3, 60, 3, 3, 3, 3, 3, 60, 2]  # 60 sentences ~ 3 kB > --chunk_mb; the tail: one document
    texts, doc_of = numbered_docs(sizes, seed=2)
    src = write_corpus(tmp_path / "docs.txt", texts)
    out_dir = tmp_path / "o"
    code, out, err = run_prepare(
        capsys, src, "--output_dir", out_dir, "--chunk_mb", "0.002", "--val_fraction", "0", "--dupe_factor", "5"
    )
    assert code == 0, err
    per_chunk = chunk_documents(out_dir)
    assert per_chunk == [4, 4, 5]  # each closes at its 4th document; the one-document tail joined the last
    meta = load_meta(out_dir)
    assert meta.splits["train"].documents == len(sizes) and meta.pairing.lone_documents == 0
    n, same = same_document_pairs(out_dir, doc_of)["train"]
    assert n > 50 and same == 0
    assert "no validation split: training will evaluate on training instances" in out.strip().splitlines()[-1]


def test_a_chunk_left_with_one_usable_document_skips_it_and_says_so(tmp_path, capsys):
    """Three chunks; in the last all documents but one are under --min_doc_tokens: that one has no partner."""
    texts, doc_of = numbered_docs([5] * 8 + [6], seed=3)
    short = ["Tiny.", "Two words here.", "Short one."]
    src = write_corpus(tmp_path / "docs.txt", texts[:8] + short + texts[8:])
    out_dir = tmp_path / "o"
    args = ["--output_dir", out_dir, "--chunk_mb", "0.0001", "--min_doc_tokens", "15", "--val_fraction", "0.5"]
    args += ["--dupe_factor", "5"]
    code, out, err = run_prepare(capsys, src, *args)
    assert code == 0, err
    assert chunk_documents(out_dir) == [4, 4, 4]  # the third chunk: 3 short documents + the lone one
    meta = load_meta(out_dir)
    assert meta.pairing.lone_documents == 1 and meta.pairing.no_held_out == 1
    assert meta.splits["train"].documents == 4 and meta.splits["val"].documents == 4  # 2 + 2 per full chunk
    found = same_document_pairs(out_dir, doc_of)
    assert found["train"][1] == found["val"][1] == 0 and found["train"][0] > 0 and found["val"][0] > 0
    assert not any(doc_of[n] == 8 for a, b in random_next_pairs(out_dir, "train") for n in a + b)
    line = out.strip().splitlines()[-1]
    assert "1 document(s) alone in a chunk skipped" in line and "1 chunk(s) too small to hold out any" in line


@pytest.mark.parametrize(
    "n,fraction,expected",
    [(100, 0.01, 2), (1000, 0.01, 10), (149, 0.01, 2), (250, 0.01, 2), (350, 0.01, 4), (3, 0.5, 0), (4, 0.01, 2)]
    + [(4, 0.9, 2), (10, 0.9, 8), (0, 0.1, 0), (500, 0.0, 0)],
)
def test_held_out_count(n, fraction, expected):
    assert held_out_count(n, fraction) == expected


# ---------------------------------------------------------------------------------------------
# The instances: another document always; Google's stream wherever Google found one


def _document_of(docs: list[list[int]]):
    ends = [d[-1] for d in docs]
    return lambda offset: int(np.searchsorted(ends, offset, side="right"))


def _random_documents(n_docs: int, seed: int) -> list[list[int]]:
    r = random.Random(seed)
    return documents_from_lengths([[r.randint(1, 12) for _ in range(r.randint(1, 6))] for _ in range(n_docs)])


def test_random_next_is_another_document_and_google_elsewhere():
    """With 2 documents Google's 10 tries all hit A's own document once in 1,024 random-next pairs. Per
    document call on a shared rng: Google's and bertpt's instances agree up to the first pair where
    Google's B is A's own document, differ there, and bertpt never has one."""
    n_docs = 2
    docs = _random_documents(n_docs, seed=n_docs)
    doc_of = _document_of(docs)
    google_same = ours_same = redraws = 0
    for seed in range(400):
        g_rng, o_rng = random.Random(seed), random.Random(seed)
        for k in range(30):  # as create_instances' dupe passes do
            i = k % n_docs
            theirs = create_instances_from_document(docs, i, 16, 0.3, g_rng, same_document_fallback=True)
            ours = create_instances_from_document(docs, i, 16, 0.3, o_rng)
            ours_same += sum(x.is_random_next and doc_of(x.b_start) == i for x in ours)
            bad = [j for j, x in enumerate(theirs) if x.is_random_next and doc_of(x.b_start) == i]
            if not bad:
                assert ours == theirs and g_rng.getstate() == o_rng.getstate()
                continue
            google_same += len(bad)
            assert ours[: bad[0]] == theirs[: bad[0]] and ours[bad[0]] != theirs[bad[0]]
            redraws += 1
            break
    assert ours_same == 0 and redraws > 5 and google_same >= redraws


def test_create_instances_equals_google_when_google_never_pairs_a_document_with_itself():
    docs = _random_documents(40, seed=7)
    doc_of = _document_of(docs)
    theirs = create_instances(docs, 32, 0.1, 3, random.Random(1), same_document_fallback=True)
    assert not any(x.is_random_next and doc_of(x.b_start) == doc_of(x.a_start) for x in theirs)
    assert create_instances(docs, 32, 0.1, 3, random.Random(1)) == theirs and len(theirs) > 100


def test_create_instances_refuses_one_document():
    with pytest.raises(ValueError, match="another document"):
        create_instances(_random_documents(1, seed=0), 32, 0.1, 1, random.Random(0))


# ---------------------------------------------------------------------------------------------
# Training announces evaluation on training instances; meta.json's new field is optional


def test_eval_on_training_instances_is_announced(tiny_data):
    meta = load_meta(tiny_data)
    assert eval_split(meta) == ("val", "")
    split, clause = eval_split(replace(meta, splits={"train": meta.splits["train"]}))
    assert split == "train" and clause == ", evaluation on training instances (the data has no held-out split)"


def test_pairing_record_is_optional_and_round_trips(tiny_data):
    old = load_meta(REPO / "tests" / "fixtures" / "release_0_1" / "data")
    assert old.pairing == NspPairing() and old.pairing.note() is None
    meta = load_meta(tiny_data)
    assert meta.pairing.min_split_documents == 2 and meta.pairing.note() is None  # 50-document chunks at 10%
    assert type(meta).from_json(meta.to_json()).pairing == meta.pairing
