"""bertpt-prepare: shards and meta.json agree, determinism over workers and slices, resuming after a
kill, held-out documents, bad input as one line."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from transformers import BertTokenizerFast

from bertpt.data.corpus import Source
from bertpt.data.dataset import PretrainingData
from bertpt.data.prepare import PrepareConfig, prepare
from bertpt.errors import BertptError


def run_prepare(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bertpt.data.prepare", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def output_files(out: Path) -> dict[str, bytes]:
    """Everything that must be identical between equivalent runs: shards and per-chunk counts."""
    return {
        p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name.endswith(".npy") or p.name.startswith("chunk-")
    }


def test_meta_matches_shards(tiny_data):
    meta = json.loads((tiny_data / "meta.json").read_text())
    assert meta["max_seq_length"] == 64 and meta["vocab_size"] == 1000
    assert meta["max_predictions_per_seq"] == 10  # ceil(0.15 * 64)
    assert meta["chunks"] == 3 and meta["read"]["files"] == 3 and meta["read"]["documents"] == 150
    tok = BertTokenizerFast.from_pretrained(str(tiny_data / meta["tokenizer"]))
    assert len(tok) == meta["vocab_size"]
    for split in ("train", "val"):
        s = meta["splits"][split]
        assert len(s["shards"]) == 3  # one per chunk
        idx = np.concatenate([np.load(tiny_data / f"{stem}.idx.npy") for stem in s["shards"]])
        ids = [np.load(tiny_data / f"{stem}.ids.npy") for stem in s["shards"]]
        assert idx.shape[1] == 6 and len(idx) == s["instances"] and int(idx[:, 1].sum()) == s["tokens"]
        assert sum(len(a) for a in ids) == s["tokens"]
        assert s["random_next_fraction"] == pytest.approx(idx[:, 3].mean(), abs=1e-4)
        assert idx[:, 1].max() <= 64 and (idx[:, 2] >= 3).all() and (idx[:, 2] <= idx[:, 1] - 2).all()
        assert not idx[:, 4:].any()  # no static masks
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == 150


def test_validation_documents_are_held_out(tmp_path, documents):
    # The Python docs repeat sentences and phrases across topics; keep only sentences that share no
    # 5-word run with an earlier one, so that text shared by the two splits could only come from
    # mixing documents.
    seen, unique_docs = set(), []
    for doc in documents:
        kept = []
        for s in doc:
            w = s.split()
            shingles = {tuple(w[i : i + 5]) for i in range(max(1, len(w) - 4))}
            if not shingles & seen:
                seen |= shingles
                kept.append(s)
        if len(kept) >= 2:
            unique_docs.append(kept)
    out = tmp_path / "split"
    meta = prepare(
        PrepareConfig(
            output_dir=str(out),
            vocab_size=1000,
            max_seq_length=64,
            val_fraction=0.1,
            sentence_splitter="lines",
            num_workers=0,
        ),
        documents=lambda: ("\n".join(d) for d in unique_docs),
        progress=False,
    )
    assert meta.splits["val"].documents == round(0.1 * len(unique_docs))
    assert meta.splits["train"].documents + meta.splits["val"].documents == len(unique_docs)
    train, val = PretrainingData(out, "train"), PretrainingData(out, "val")

    def segments(data, i):  # (A, B) of instance i, without [CLS]/[SEP]
        sample = data[(i, i)]
        return tuple(sample.tokens[1 : sample.a_len - 1]), tuple(sample.tokens[sample.a_len : -1])

    train_text = {seg for i in range(len(train)) for seg in segments(train, i) if len(seg) >= 12}
    val_text = [seg for i in range(len(val)) for seg in segments(val, i) if len(seg) >= 12]
    assert len(val_text) > 100
    assert not any(seg in train_text for seg in val_text)


def test_one_or_two_workers_write_identical_bytes(tmp_path, corpus_dir, tiny_data):
    # Given the tokenizer: training one is not deterministic upstream (huggingface/tokenizers#1794).
    runs = {}
    for workers in (0, 1, 2):
        out = tmp_path / f"w{workers}"
        prepare(
            PrepareConfig(
                output_dir=str(out),
                tokenizer=str(tiny_data / "tokenizer"),
                max_seq_length=32,
                chunk_mb=0.05,
                num_workers=workers,
                dupe_factor=2,
            ),
            source=Source(inputs=[str(corpus_dir)]),
            progress=False,
        )
        runs[workers] = output_files(out)
    assert len([f for f in runs[1] if f.startswith("chunk-")]) >= 8
    assert runs[1] == runs[2]
    assert runs[0] == runs[1]  # in-process too


def _big_corpus(tmp_path: Path, corpus_dir: Path, copies: int) -> Path:
    text = "\n\n".join(p.read_text() for p in sorted(corpus_dir.iterdir()))
    path = tmp_path / "big.txt"
    path.write_text("\n\n".join([text] * copies))
    return path


def test_sigkill_then_rerun_keeps_finished_chunks_and_equals_an_uninterrupted_run(tmp_path, corpus_dir, tiny_data):
    corpus = _big_corpus(tmp_path, corpus_dir, copies=6)  # ~2.6 MB -> ~50 chunks
    flags = ["--tokenizer", tiny_data / "tokenizer", "--chunk_mb", "0.05", "--num_workers", "1"]
    whole = tmp_path / "whole"
    assert run_prepare(corpus, "--output_dir", whole, *flags).returncode == 0
    n_chunks = json.loads((whole / "meta.json").read_text())["chunks"]
    assert n_chunks >= 40

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bertpt.data.prepare", corpus, "--output_dir", out, *map(str, flags)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while len(list(out.glob("chunk-*.json"))) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker, mid-run
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("chunk-*.json")}
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    assert 5 <= len(done) < n_chunks, len(done)
    assert not (out / "meta.json").exists()

    rerun = run_prepare(corpus, "--output_dir", out, *flags)
    assert rerun.returncode == 0, rerun.stderr
    assert f"continuing the unfinished run in {out} ({len(done)} chunks already done)" in rerun.stderr
    # finished chunks were not redone...
    assert all((out / name).stat().st_mtime_ns == t for name, t in {**done, **kept}.items())
    # ...and the result is the uninterrupted one
    assert output_files(out) == output_files(whole)
    assert not list(out.glob("*.tmp-*"))
    a, b = (json.loads((d / "meta.json").read_text()) for d in (out, whole))
    assert a["splits"] == b["splits"] and a["read"] == b["read"]


def test_slices_then_merge_equal_one_run(tmp_path, corpus_dir, tiny_data):
    common = dict(tokenizer=str(tiny_data / "tokenizer"), chunk_mb=0.05, num_workers=0, max_seq_length=48)
    source = Source(inputs=[str(corpus_dir)])
    single = prepare(PrepareConfig(output_dir=str(tmp_path / "one"), **common), source=source, progress=False)
    sliced = tmp_path / "sliced"
    for i in range(3):
        assert (
            prepare(
                PrepareConfig(output_dir=str(sliced), num_slices=3, slice=i, **common), source=source, progress=False
            )
            is None
        )
        assert not (sliced / "meta.json").exists()
    with pytest.raises(BertptError, match="slices"):  # a 4th slice count never finished
        bad = tmp_path / "bad"
        prepare(PrepareConfig(output_dir=str(bad), num_slices=2, slice=0, **common), source=source, progress=False)
        prepare(PrepareConfig(output_dir=str(bad), merge=True), progress=False)
    merged = prepare(PrepareConfig(output_dir=str(sliced), merge=True), progress=False)
    assert merged.splits == single.splits and merged.chunks == single.chunks >= 8
    assert output_files(sliced) == output_files(tmp_path / "one")


def test_refuses_to_overwrite_and_refuses_foreign_dirs(tmp_path, corpus_dir, tiny_data):
    source = Source(inputs=[str(corpus_dir)])
    before = (tiny_data / "meta.json").read_bytes()
    with pytest.raises(BertptError, match="already holds prepared data"):
        prepare(PrepareConfig(output_dir=str(tiny_data), vocab_size=600), source=source, progress=False)
    assert (tiny_data / "meta.json").read_bytes() == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BertptError, match="not empty"):
        prepare(PrepareConfig(output_dir=str(foreign), vocab_size=600), source=source, progress=False)
    assert (foreign / "notes.txt").read_text() == "mine"
    # an unfinished run is only continued with the same settings
    unfinished = tmp_path / "unfinished"
    cfg = PrepareConfig(output_dir=str(unfinished), tokenizer=str(tiny_data / "tokenizer"), num_workers=0)
    prepare(cfg, source=source, progress=False)
    (unfinished / "meta.json").unlink()
    with pytest.raises(BertptError, match=r"unfinished prepare with other settings \(differing: dupe_factor, seed\)"):
        prepare(PrepareConfig(**{**cfg.__dict__, "dupe_factor": 3, "seed": 1}), source=source, progress=False)


def test_compressed_and_jsonl_inputs_with_skips(tmp_path, documents):
    src = tmp_path / "in"
    src.mkdir()
    docs = ["\n".join(d) for d in documents[:60]]
    (src / "a.txt.gz").write_bytes(gzip.compress("\n\n".join(docs[:20]).encode()))
    (src / "b.jsonl.xz").write_bytes(
        lzma.compress("".join(json.dumps({"body": d}) + "\n" for d in docs[20:40]).encode())
    )
    (src / "c.txt").write_bytes(("\n\n".join(docs[40:])).encode() + b"\n\nBad \xff byte here.\nStill bad.\n")
    (src / "d.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (src / "e.txt").write_text("")
    proc = run_prepare(
        src,
        "--output_dir",
        tmp_path / "out",
        "--text_field",
        "body",
        "--vocab_size",
        "500",
        "--sentence_splitter",
        "lines",
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: skipped 1 document that is not valid UTF-8" in proc.stderr
    assert "binary" in proc.stderr and "d.bin" in proc.stderr
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["read"]["documents"] == 60 and meta["read"]["invalid_utf8_documents"] == 1
    assert meta["read"]["empty_files"] == 1 and meta["read"]["binary_files"] == [str(src / "d.bin")]
    assert meta["splits"]["train"]["documents"] + meta["splits"]["val"]["documents"] == 60


def test_one_sentence_documents_still_give_random_next_instances(tmp_path, documents):
    sentences = [s for d in documents[:40] for s in d][:300]
    path = tmp_path / "one-sentence-docs.txt"
    path.write_text("\n\n".join(sentences) + "\n")
    meta = prepare(
        PrepareConfig(
            output_dir=str(tmp_path / "out"), vocab_size=500, num_workers=0, sentence_splitter="lines", val_fraction=0.0
        ),
        source=Source(inputs=[str(path)]),
        progress=False,
    )
    assert meta.splits["train"].documents == 300
    assert meta.splits["train"].instances >= 300
    assert meta.splits["train"].random_next_fraction == 1.0  # a single segment can only have a random B


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing", "no such file or directory"),
        ("empty", "holds no text"),
        ("no-specials", "lacks the special tokens [CLS] [SEP] [MASK]"),
        ("unwritable", "--output_dir"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, case, expected):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("" if case == "empty" else "A fine sentence.\nAnother one.\n")
    if case == "empty":
        (src / "b.txt").write_text("\n\n  \n")
    out = tmp_path / "out"
    args = [src if case != "missing" else tmp_path / "nope", "--vocab_size", "200"]
    if case == "no-specials":
        (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\na\nfine\nsentence\n.\n")
        args += ["--tokenizer", tmp_path / "vocab.txt"]
    if case == "unwritable":
        (tmp_path / "a-file").write_text("")
        out = tmp_path / "a-file" / "out"  # cannot be created, even by root
    proc = run_prepare(*args, "--output_dir", out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()  # progress bars may come first; the error is one last line
    assert lines[-1].startswith("bertpt-prepare: error:") and expected in lines[-1], proc.stderr
    assert sum("error" in line for line in lines) == 1
    assert "Traceback" not in proc.stderr
    assert not (out / "meta.json").exists()


def test_vocab_file_reused_and_tokenizer_only(tmp_path, corpus_dir, tiny_data):
    out = tmp_path / "reuse"
    meta = prepare(
        PrepareConfig(
            output_dir=str(out), tokenizer=str(tiny_data / "tokenizer" / "vocab.txt"), max_seq_length=32, num_workers=0
        ),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    assert meta.tokenizer_hash == json.loads((tiny_data / "meta.json").read_text())["tokenizer_hash"]
    # --tokenizer_only, then the real run using that tokenizer in the same directory
    shared = tmp_path / "shared"
    source = Source(inputs=[str(corpus_dir)])
    assert (
        prepare(
            PrepareConfig(output_dir=str(shared), vocab_size=700, tokenizer_only=True), source=source, progress=False
        )
        is None
    )
    assert sorted(p.name for p in shared.iterdir()) == ["tokenizer"]
    meta = prepare(
        PrepareConfig(output_dir=str(shared), tokenizer=str(shared / "tokenizer"), num_workers=0),
        source=source,
        progress=False,
    )
    assert meta.vocab_size == 700


def test_cased_and_accents(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Café Zürich Straße.\nThe Café is open.\n\nAnother Document here.\nWith Two lines.\n" * 20)
    for cased, strip, expect in ((False, None, "cafe"), (True, None, "Café"), (False, False, "café")):
        out = tmp_path / f"o-{cased}-{strip}"
        prepare(
            PrepareConfig(
                output_dir=str(out),
                vocab_size=120,
                min_frequency=1,
                cased=cased,
                strip_accents=strip,
                num_workers=0,
                val_fraction=0,
            ),
            source=Source(inputs=[str(path)]),
            progress=False,
        )
        tok = BertTokenizerFast.from_pretrained(str(out / "tokenizer"))
        assert tok.backend_tokenizer.normalizer.normalize_str("Café") == expect


def test_min_doc_tokens_drops_short_documents(tmp_path, tiny_data):
    path = tmp_path / "docs.txt"
    short = "Tiny doc.\nTwo lines."  # ~6 tokens
    long = "\n".join(["This document is long enough to be kept by the filter, with many words."] * 4)
    path.write_text("\n\n".join([short, long, short, long, long]) + "\n")
    meta = prepare(
        PrepareConfig(
            output_dir=str(tmp_path / "out"),
            tokenizer=str(tiny_data / "tokenizer"),
            min_doc_tokens=20,
            num_workers=0,
            val_fraction=0.0,
            sentence_splitter="lines",
        ),
        source=Source(inputs=[str(path)]),
        progress=False,
    )
    assert meta.read["documents"] == 5 and meta.read["short_documents"] == 2
    assert meta.splits["train"].documents == 3


def test_hf_dataset_streaming_from_a_local_directory_via_the_cli(tmp_path, documents, tiny_data):
    src = tmp_path / "hf"
    src.mkdir()
    docs = ["\n".join(d) for d in documents[:30]]
    for k in range(2):
        (src / f"part{k}.jsonl").write_text("".join(json.dumps({"content": d}) + "\n" for d in docs[k::2]))
    outs = {}
    for streaming in ("false", "true"):
        out = tmp_path / f"out-{streaming}"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "bertpt.data.prepare",
                "--hf_dataset",
                str(src),
                "--hf_streaming",
                streaming,
                "--text_field",
                "content",
                "--tokenizer",
                str(tiny_data / "tokenizer"),
                "--output_dir",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache")},
        )
        assert proc.returncode == 0, proc.stderr
        outs[streaming] = output_files(out)
        meta = json.loads((out / "meta.json").read_text())
        assert meta["read"]["documents"] == 30
    assert outs["false"] == outs["true"]  # streaming reads the same documents in the same order


def test_the_progress_bar_counts_documents_or_bytes_of_a_known_total(
    tmp_path, documents, corpus_dir, tiny_data, capsys
):
    """Documents from a callable (the built-in corpus) have no byte total: the bar counts documents, not
    "1.00B" (one chunk); input files: bytes of their total size."""
    common = dict(vocab_size=1000, max_seq_length=64, dupe_factor=1, num_workers=0, sentence_splitter="lines")
    common["tokenizer"] = str(tiny_data / "tokenizer")
    docs = documents[:40]
    prepare(
        PrepareConfig(output_dir=str(tmp_path / "docs"), chunk_mb=0.02, **common),
        documents=lambda: ("\n".join(d) for d in docs),
        progress=True,
    )
    err = capsys.readouterr().err
    assert "\r" not in err  # stderr is not a terminal here: plain lines (bertpt.progress), no redraws
    bar = [line for line in err.splitlines() if line.startswith("prepare: ")][-1]
    assert bar.startswith(f"prepare: {len(docs)} docs [") and "B/s" not in bar and "1.00B" not in bar
    prepare(PrepareConfig(output_dir=str(tmp_path / "files"), **common), source=Source(inputs=[str(corpus_dir)]))
    err = capsys.readouterr().err
    assert "\r" not in err
    bar = [line for line in err.splitlines() if line.startswith("prepare: ")][-1]
    total = sum(p.stat().st_size for p in corpus_dir.iterdir())
    assert bar.startswith("prepare: 100%") and f"{round(total / 1e3)}k/{round(total / 1e3)}k [" in bar, (bar, total)
