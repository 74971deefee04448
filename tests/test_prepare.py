"""bertpt-prepare: shards and meta.json agree, validation is split by document, bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from transformers import BertTokenizerFast

from bertpt.dataset import PretrainingData
from bertpt.errors import BertptError
from bertpt.prepare import PrepareConfig, prepare


def test_meta_matches_shards(tiny_data):
    meta = json.loads((tiny_data / "meta.json").read_text())
    assert meta["max_seq_length"] == 64 and meta["vocab_size"] == 1000
    assert meta["max_predictions_per_seq"] == 10  # ceil(0.15 * 64)
    tok = BertTokenizerFast.from_pretrained(str(tiny_data / meta["tokenizer"]))
    assert len(tok) == meta["vocab_size"]
    for split in ("train", "val"):
        s = meta["splits"][split]
        idx = np.concatenate([np.load(tiny_data / f"{stem}.idx.npy") for stem in s["shards"]])
        ids = [np.load(tiny_data / f"{stem}.ids.npy") for stem in s["shards"]]
        assert len(idx) == s["instances"] and int(idx[:, 1].sum()) == s["tokens"]
        assert sum(len(a) for a in ids) == s["tokens"]
        assert s["random_next_fraction"] == pytest.approx(idx[:, 3].mean(), abs=1e-4)
        assert idx[:, 1].max() <= 64 and (idx[:, 2] >= 3).all() and (idx[:, 2] <= idx[:, 1] - 2).all()


def test_validation_documents_are_held_out(tmp_path, documents):
    # The Python docs repeat some sentences across topics; keep each sentence's first occurrence so
    # that any text shared by the two splits could only come from mixing documents.
    seen, unique_docs = set(), []
    for doc in documents:
        doc = [s for s in doc if not (s in seen or seen.add(s))]
        if len(doc) >= 2:
            unique_docs.append(doc)
    out = tmp_path / "split"
    meta = prepare(PrepareConfig(output_dir=str(out), vocab_size=1000, max_seq_length=64, val_fraction=0.1),
                   documents=iter(unique_docs), progress=False)
    assert meta["splits"]["val"]["documents"] == round(0.1 * len(unique_docs))
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == len(unique_docs)
    train, val = PretrainingData(out, "train"), PretrainingData(out, "val")
    segments = lambda data, i: (tuple(data[(i, i)][1][1:data[(i, i)][2] - 1]), tuple(data[(i, i)][1][data[(i, i)][2]:-1]))
    train_text = {seg for i in range(len(train)) for seg in segments(train, i) if len(seg) >= 12}
    val_text = [seg for i in range(len(val)) for seg in segments(val, i) if len(seg) >= 12]
    assert len(val_text) > 100
    assert not any(seg in train_text for seg in val_text)


def test_same_seed_is_byte_identical(tmp_path, corpus_dir, tiny_data):
    # Given the tokenizer: training one is not deterministic upstream (huggingface/tokenizers#1794).
    outs = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        prepare(PrepareConfig(output_dir=str(out), tokenizer=str(tiny_data / "tokenizer"), max_seq_length=32,
                              shard_size=400), inputs=[str(corpus_dir)], progress=False)
        outs.append(out)
    files = sorted(p.name for p in outs[0].glob("*.npy"))
    assert len(files) >= 4
    assert all((outs[0] / f).read_bytes() == (outs[1] / f).read_bytes() for f in files)


def test_refuses_to_overwrite_and_refuses_foreign_dirs(tmp_path, corpus_dir, tiny_data):
    cfg = PrepareConfig(output_dir=str(tiny_data), vocab_size=600)
    before = (tiny_data / "meta.json").read_bytes()
    with pytest.raises(BertptError, match="already holds prepared data"):
        prepare(cfg, inputs=[str(corpus_dir)], progress=False)
    assert (tiny_data / "meta.json").read_bytes() == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BertptError, match="not empty"):
        prepare(PrepareConfig(output_dir=str(foreign), vocab_size=600), inputs=[str(corpus_dir)], progress=False)
    assert (foreign / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file or directory"),
    ("empty", "holds no text"),
    ("binary", "not UTF-8 text"),
])
def test_bad_input_is_one_clear_line(tmp_path, case, expected):
    src = tmp_path / "in"
    src.mkdir()
    if case == "empty":
        (src / "a.txt").write_text("")
        (src / "b.txt").write_text("\n\n  \n")
    elif case == "binary":
        (src / "a.txt").write_text("A fine sentence.\n")
        (src / "b.bin").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    target = str(src if case != "missing" else tmp_path / "nope")
    proc = subprocess.run([sys.executable, "-m", "bertpt.prepare", target, "--output_dir", str(tmp_path / "out"),
                           "--vocab_size", "200"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()  # progress bars may come first; the error is one last line
    assert lines[-1].startswith("bertpt-prepare: error:") and expected in lines[-1], proc.stderr
    assert sum("error" in line for line in lines) == 1
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "meta.json").exists()


def test_vocab_file_reused(tmp_path, corpus_dir, tiny_data):
    out = tmp_path / "reuse"
    meta = prepare(PrepareConfig(output_dir=str(out), tokenizer=str(tiny_data / "tokenizer" / "vocab.txt"),
                                 max_seq_length=32), inputs=[str(corpus_dir)], progress=False)
    assert meta["tokenizer_hash"] == json.loads((tiny_data / "meta.json").read_text())["tokenizer_hash"]
