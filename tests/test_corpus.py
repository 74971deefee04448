"""Raw text in: file expansion, document boundaries, formats, skips, datasets, sentences, built-in corpus.

Every test reads real files written into tmp_path; the Hugging Face cases use local datasets only.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

import bertpt
from bertpt.data.builtin import builtin_documents
from bertpt.data.corpus import (
    ReadStats,
    Source,
    iter_documents,
    report_skips,
    resolve_files,
    total_input_bytes,
)
from bertpt.data.sentences import split_sentences
from bertpt.errors import BertptError


def read(tmp_path: Path, *inputs: str, **kw) -> tuple[list[str], ReadStats]:
    stats = ReadStats()
    docs = list(iter_documents(Source(inputs=[str(tmp_path / i) for i in inputs], **kw), stats))
    return docs, stats


def names(files: list[Path], root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


# --- finding the files


def test_directories_and_globs_expand_in_sorted_order_without_hidden_entries(tmp_path):
    for rel in ["d/b.txt", "d/a.txt", "d/sub/c.txt", "d/sub/.hidden.txt", "d/.git/objects.txt", "d/a.jsonl", "top.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x\n")
    d = tmp_path / "d"
    # Inputs keep their order; a directory expands recursively, sorted, hidden entries skipped.
    assert names(resolve_files([str(tmp_path / "top.txt"), str(d)]), tmp_path) == [
        "top.txt",
        "d/a.jsonl",
        "d/a.txt",
        "d/b.txt",
        "d/sub/c.txt",
    ]
    assert names(resolve_files([str(d / "*.txt")]), tmp_path) == ["d/a.txt", "d/b.txt"]
    assert names(resolve_files([str(d / "**" / "*.txt")]), tmp_path) == ["d/a.txt", "d/b.txt", "d/sub/c.txt"]
    # A hidden file named outright is read: it was asked for.
    assert names(resolve_files([str(d / "sub" / ".hidden.txt")]), tmp_path) == ["d/sub/.hidden.txt"]
    assert total_input_bytes(Source(inputs=[str(d)])) == 4 * 2
    assert total_input_bytes(Source(hf_dataset="anything")) is None


def test_missing_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(BertptError, match=r"^.*nope\.txt: no such file or directory$"):
        resolve_files([str(tmp_path / "nope.txt")])
    (tmp_path / "empty" / ".cache").mkdir(parents=True)
    (tmp_path / "empty" / ".cache" / "x.txt").write_text("hidden only\n")
    with pytest.raises(BertptError, match=r"^.*empty: directory holds no files$"):
        resolve_files([str(tmp_path / "empty")])
    with pytest.raises(BertptError, match=r"^.*\*\.txt: pattern matches no files$"):
        resolve_files([str(tmp_path / "*.txt")])
    with pytest.raises(BertptError, match=r"^give either input files or --hf_dataset"):
        iter_documents(Source(), ReadStats())  # raised at the call, before the first document
    with pytest.raises(BertptError, match=r"^--input_format csv: expected one of auto, text, jsonl$"):
        iter_documents(Source(inputs=[str(tmp_path)], input_format="csv"), ReadStats())


# --- text files


def test_blank_lines_and_file_ends_separate_documents(tmp_path):
    a = b"\xef\xbb\xbfFirst sentence.\r\n  Second one.  \r\n\r\n \t \n\nThird, new doc.\n"
    b = b"\n\nA document in another file.\nNo newline at the end"
    (tmp_path / "a.txt").write_bytes(a)
    (tmp_path / "b.txt").write_bytes(b)
    docs, stats = read(tmp_path, "a.txt", "b.txt")
    assert docs == [
        "First sentence.\nSecond one.",
        "Third, new doc.",
        "A document in another file.\nNo newline at the end",
    ]
    assert (stats.files, stats.documents, stats.empty_files, stats.invalid_utf8_documents) == (2, 3, 0, 0)
    assert stats.bytes_read == total_input_bytes(Source(inputs=[str(tmp_path)])) == len(a) + len(b)


def _write_compressed(path: Path, data: bytes) -> None:
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[path.suffix]
    with opener(path, "wb") as f:
        f.write(data)


def test_compressed_files_give_the_same_documents(tmp_path, documents):
    # ~200 KB of real text: the 8 KiB binary sniff ends mid-line, which must not split that line.
    text = "\n\n".join("\n".join(doc) for doc in documents[:60]) + "\n"
    data = text.encode("utf-8")
    assert len(data) > 100_000 and data[8191:8192] != b"\n"
    (tmp_path / "plain.txt").write_bytes(data)
    for suffix in (".gz", ".bz2", ".xz"):
        _write_compressed(tmp_path / f"plain.txt{suffix}", data)
    expected = ["\n".join(doc) for doc in documents[:60]]
    for name in ("plain.txt", "plain.txt.gz", "plain.txt.bz2", "plain.txt.xz"):
        docs, stats = read(tmp_path, name)
        assert docs == expected, name
        assert stats.bytes_read == (tmp_path / name).stat().st_size, name  # compressed bytes
    assert (tmp_path / "plain.txt.xz").stat().st_size < len(data) // 2


def test_damaged_compressed_file_is_a_one_line_error(tmp_path):
    data = gzip.compress(b"some text\n" * 50_000)
    (tmp_path / "cut.txt.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        BertptError,
        match=r"^.*cut\.txt\.gz: cannot read \(Compressed file ended before the "
        r"end-of-stream marker was reached\); repair the file or leave it out of the input$",
    ):
        read(tmp_path, "cut.txt.gz")
    (tmp_path / "fake.txt.gz").write_bytes(b"plain text, not gzip\n")
    with pytest.raises(BertptError, match=r"fake\.txt\.gz: cannot read \(Not a gzipped file"):
        read(tmp_path, "fake.txt.gz")


def test_invalid_utf8_document_is_dropped_and_counted(tmp_path):
    (tmp_path / "mixed.txt").write_bytes(
        b"Before.\n\n" + "Caf\xe9 au lait.\nMore.\n".encode("latin-1") + b"\nAfter, caf\xc3\xa9.\n"
    )
    (tmp_path / "mixed.jsonl").write_bytes(b'{"text": "ok"}\n{"text": "bad \xff"}\n{"text": "lone \\ud800"}\n')
    docs, stats = read(tmp_path, "mixed.txt", "mixed.jsonl")
    assert docs == ["Before.", "After, café.", "ok"]
    assert (stats.documents, stats.invalid_utf8_documents) == (3, 3)


def test_binary_and_empty_files_are_skipped_and_reported(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("Real text.\n")
    (tmp_path / "b.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"Text-like tail\n" * 10)
    (tmp_path / "c.txt").write_bytes(b"")
    (tmp_path / "d.txt").write_bytes(b"  \n\n\t\n")
    (tmp_path / "e.txt.gz").write_bytes(gzip.compress(b"\x00" * 100))  # binary once decompressed
    docs, stats = read(tmp_path, "")
    assert docs == ["Real text."]
    assert stats.binary_files == [str(tmp_path / "b.bin"), str(tmp_path / "e.txt.gz")]
    assert (stats.files, stats.empty_files, stats.invalid_utf8_documents) == (5, 2, 0)
    assert stats.bytes_read == total_input_bytes(Source(inputs=[str(tmp_path)]))  # skipped files count as read
    report_skips(stats)
    assert capsys.readouterr().err == (
        f"bertpt-prepare: warning: skipped 2 binary files: {tmp_path / 'b.bin'} (and 1 more)\n"
        "bertpt-prepare: warning: skipped 2 files with no text\n"
    )
    report_skips(ReadStats(invalid_utf8_documents=1, binary_files=["x.bin"], empty_files=1), prog="p")
    assert capsys.readouterr().err == (
        "p: warning: skipped 1 document that is not valid UTF-8\n"
        "p: warning: skipped 1 binary file: x.bin\n"
        "p: warning: skipped 1 file with no text\n"
    )
    report_skips(ReadStats(documents=10))
    assert capsys.readouterr().err == ""


# --- JSON Lines


def test_jsonl_takes_the_named_field_with_paragraphs_as_lines(tmp_path):
    records = [
        {"id": 1, "body": "  First paragraph. Still first.\n\n Second paragraph.\r\n"},
        {"id": 2, "body": ""},  # empty: skipped
        {"id": 3, "body": None},  # null: skipped
        {"id": 4, "body": "Only one line."},
    ]
    data = "\n".join(json.dumps(r) for r in records) + "\n\n  \n"
    (tmp_path / "a.jsonl").write_text(data)
    _write_compressed(tmp_path / "b.ndjson.gz", data.encode())
    (tmp_path / "c.txt").write_text(data)  # JSONL by flag, not by name
    expected = ["First paragraph. Still first.\nSecond paragraph.", "Only one line."]
    assert read(tmp_path, "a.jsonl", text_field="body")[0] == expected
    assert read(tmp_path, "b.ndjson.gz", text_field="body")[0] == expected
    assert read(tmp_path, "c.txt", text_field="body", input_format="jsonl")[0] == expected
    # And the same file forced to text is lines of JSON.
    assert read(tmp_path, "a.jsonl", input_format="text")[0][0].startswith('{"id": 1, "body"')


def test_jsonl_bad_lines_name_file_line_and_fix(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "fine"}\n\n{"text": "cut')
    with pytest.raises(
        BertptError,
        match=r"^.*a\.jsonl:3: not valid JSON at column 10 \(Unterminated string "
        r"starting at\); JSONL input needs one JSON object per line \(or give --input_format text\)$",
    ):
        read(tmp_path, "a.jsonl")
    (tmp_path / "b.jsonl").write_text('{"title": "T", "body": "B"}\n')
    with pytest.raises(
        BertptError,
        match=r'^.*b\.jsonl:1: no "text" field \(fields: title, body\); name the '
        r"field holding the text with --text_field$",
    ):
        read(tmp_path, "b.jsonl")
    (tmp_path / "c.json").write_text('["a", "b"]\n')
    with pytest.raises(BertptError, match=r'c\.json:1: a list, not an object with a "text" field'):
        read(tmp_path, "c.json")
    (tmp_path / "d.jsonl").write_text('{"text": 42}\n')
    with pytest.raises(BertptError, match=r'd\.jsonl:1: "text" is a number, not text; name the text field'):
        read(tmp_path, "d.jsonl")


# --- Hugging Face datasets (local ones: no network)


@pytest.fixture
def hf(tmp_path, monkeypatch):
    """`datasets`, with its cache in tmp_path rather than the user's home."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def read_hf(**kw) -> tuple[list[str], ReadStats]:
    stats = ReadStats()
    return list(iter_documents(Source(**kw), stats)), stats


def test_dataset_saved_to_disk(tmp_path, hf):
    ds = hf.Dataset.from_dict({"content": ["Para one.\n\nPara two.", "", None, "Last."], "n": [1, 2, 3, 4]})
    ds.save_to_disk(str(tmp_path / "saved"))
    docs, stats = read_hf(hf_dataset=str(tmp_path / "saved"), text_field="content")
    assert docs == ["Para one.\nPara two.", "Last."]
    assert (stats.documents, stats.files) == (2, 0)
    hf.DatasetDict({"train": ds, "test": ds.select([3])}).save_to_disk(str(tmp_path / "dict"))
    assert read_hf(hf_dataset=str(tmp_path / "dict"), hf_split="test", text_field="content")[0] == ["Last."]
    with pytest.raises(BertptError, match=r"^--hf_split dev: .*dict has no such split \(splits: train, test\)$"):
        read_hf(hf_dataset=str(tmp_path / "dict"), hf_split="dev", text_field="content")
    with pytest.raises(
        BertptError,
        match=r'^--hf_dataset .*saved: no column "text" \(columns: content, n\); '
        r"name the text column with --text_field$",
    ):
        read_hf(hf_dataset=str(tmp_path / "saved"))


def test_local_data_files_directory_loads_and_streams_the_same(tmp_path, hf):
    d = tmp_path / "jsonl-dir"
    d.mkdir()
    (d / "part-0.jsonl").write_text(
        json.dumps({"body": "Alpha.\n\nBeta.", "id": 0}) + "\n" + json.dumps({"body": "Gamma.", "id": 1}) + "\n"
    )
    (d / "part-1.jsonl").write_text(json.dumps({"body": "Delta.", "id": 2}) + "\n")
    expected = ["Alpha.\nBeta.", "Gamma.", "Delta."]
    assert read_hf(hf_dataset=str(d), text_field="body")[0] == expected
    streamed, stats = read_hf(hf_dataset=str(d), text_field="body", hf_streaming=True)
    assert streamed == expected and stats.documents == 3
    for streaming in (False, True):
        with pytest.raises(BertptError, match=r'no column "text" \(columns: body, id\)'):
            read_hf(hf_dataset=str(d), hf_streaming=streaming)
    with pytest.raises(BertptError, match=r'^--hf_dataset .*: cannot load it \(ValueError: Unknown split "dev"'):
        read_hf(hf_dataset=str(d), text_field="body", hf_split="dev")


def test_uncached_dataset_offline_is_a_one_line_error(tmp_path):
    pytest.importorskip("datasets")
    # datasets reads HF_HUB_OFFLINE / HF_DATASETS_OFFLINE when it is imported, so set them in a
    # fresh interpreter. Without them an offline machine would retry the Hub for ~25 s instead.
    code = (
        "import json\nfrom bertpt.data.corpus import ReadStats, Source, iter_documents\n"
        "from bertpt.errors import BertptError\n"
        "try:\n    iter_documents(Source(hf_dataset='bertpt-no-such-user/no-such-dataset'), ReadStats())\n"
        "except BertptError as e:\n    print(json.dumps(str(e)))\n"
    )
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_DATASETS_CACHE=str(tmp_path),
        PYTHONPATH=str(Path(bertpt.__file__).parents[1]),
    )
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    message = json.loads(run.stdout.strip().splitlines()[-1])
    assert "\n" not in message
    assert message.startswith("--hf_dataset bertpt-no-such-user/no-such-dataset: cannot load it (")
    assert "HF_DATASETS_OFFLINE" in message


# --- sentences


def test_split_sentences_by_lines_and_by_blingfire():
    doc = "Mr. Smith paid $3.50 in the U.S. on Jan. 5th. Then he left!\nA new paragraph, e.g. this one."
    assert split_sentences(doc, "lines") == [
        "Mr. Smith paid $3.50 in the U.S. on Jan. 5th. Then he left!",
        "A new paragraph, e.g. this one.",
    ]
    assert split_sentences("  one  \n\n two ", "lines") == ["one", "two"]
    pytest.importorskip("blingfire")
    # Abbreviations and decimals end no sentence; a line (paragraph) end always does.
    assert split_sentences(doc, "blingfire") == [
        "Mr. Smith paid $3.50 in the U.S. on Jan. 5th.",
        "Then he left!",
        "A new paragraph, e.g. this one.",
    ]
    assert split_sentences("He asked why? Nobody knew.  It was 3.14 p.m. in Paris.", "blingfire") == [
        "He asked why?",
        "Nobody knew.",
        "It was 3.14 p.m. in Paris.",
    ]
    assert split_sentences("", "blingfire") == []


def test_unknown_splitter_is_a_one_line_error():
    with pytest.raises(BertptError, match=r"^--sentence_splitter nltk: expected one of lines, blingfire$"):
        split_sentences("Some text.", "nltk")


# --- the built-in corpus


def test_builtin_corpus_is_english_prose(documents):
    # `documents` is the first 150 built-in documents (conftest); the whole corpus is ~540.
    assert len(documents) == 150
    sentences = [s for d in documents for s in d]
    assert len(sentences) > 3000
    words = " ".join(sentences).lower().split()
    for common in ("the", "of", "is", "to", "and"):
        assert words.count(common) > 500, common
    assert not any(s.startswith(">>>") for s in sentences)  # doctest sessions are filtered out
    assert all(len(d) >= 2 for d in documents)  # every document can yield an actual-next pair


def test_builtin_corpus_is_the_same_every_time(documents):
    again = [d for _, d in zip(range(150), builtin_documents())]
    assert again == documents


def test_lines_of_unicode_spaces_are_blank_as_in_googles_script(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text(
        "First doc one.\nFirst doc two.\n\u00a0\nSecond doc.\n\u3000\x1c\nThird doc.\n\u00c4pfel.\n", encoding="utf-8"
    )
    docs = list(iter_documents(Source(inputs=[str(path)]), ReadStats()))
    assert docs == ["First doc one.\nFirst doc two.", "Second doc.", "Third doc.\n\u00c4pfel."]
