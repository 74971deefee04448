"""The prepared-data directory's contract (bertpt.data.format): meta.json round-trips through the typed
Meta, release 0.1's meta.json still loads, broken directories fail in one line, and meta.json is
parsed in one module only."""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bertpt.data.dataset import PretrainingData
from bertpt.data.format import (
    FORMAT_VERSION,
    META_FILE,
    Masking,
    Meta,
    SpecialIds,
    SplitInfo,
    load_meta,
    write_meta,
)
from bertpt.errors import BertptError

REPO = Path(__file__).resolve().parent.parent
RELEASE_0_1 = REPO / "tests" / "fixtures" / "release_0_1" / "data"


def test_release_0_1_meta_loads():
    meta = load_meta(RELEASE_0_1)
    assert meta.format == FORMAT_VERSION and meta.bertpt_version == "0.1.0"
    assert (meta.vocab_size, meta.max_seq_length, meta.token_dtype) == (120, 32, "uint16")
    assert meta.special_ids == SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4)
    # release 0.1 kept the rate and cap at the top level and masking = {static, whole_word}
    assert meta.masking == Masking(static=False, whole_word_mask=False, masked_lm_prob=0.15, max_predictions_per_seq=5)
    assert meta.splits["train"] == SplitInfo(
        shards=["train-00000"], documents=54, sentences=1182, instances=1141, tokens=36512, random_next_fraction=0.9649
    )
    assert meta.splits["val"].instances == 100
    assert meta.tokenizer_hash == "1b43fdbfb63418b2" and meta.tokenizer_path() == RELEASE_0_1 / "tokenizer"
    assert meta.read["documents"] == 60 and meta.settings["sentence_splitter"] == "lines"
    assert len(PretrainingData(meta, "train")) == 1141 and len(PretrainingData(RELEASE_0_1, "val")) == 100


def test_round_trip_and_what_old_readers_need(tmp_path):
    meta = replace(
        load_meta(RELEASE_0_1),
        masking=Masking(static=True, whole_word_mask=True, masked_lm_prob=0.2, max_predictions_per_seq=7),
    )
    write_meta(tmp_path, meta)
    again = load_meta(tmp_path)
    assert again == meta and again.directory == tmp_path
    d = json.loads((tmp_path / META_FILE).read_text())
    # the keys release 0.1's reader used, with the same values
    assert (d["format"], d["masked_lm_prob"], d["max_predictions_per_seq"]) == (FORMAT_VERSION, 0.2, 7)
    assert (d["masking"]["static"], d["masking"]["whole_word"]) == (True, True)
    assert d["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert d["splits"]["train"]["shards"] == ["train-00000"] and d["tokenizer"] == "tokenizer"
    assert not list(tmp_path.glob("*.tmp-*"))  # written atomically, nothing left over


def test_unknown_keys_are_ignored_and_new_fields_default(tmp_path):
    d = json.loads((RELEASE_0_1 / META_FILE).read_text())
    d["a_later_field"] = {"anything": [1, 2]}
    d["splits"]["train"]["a_later_count"] = 3
    d["masking"]["a_later_flag"] = True
    for key in ("bertpt_version", "created", "settings", "chunks", "read", "seconds", "token_dtype", "tokenizer"):
        del d[key]
    (tmp_path / META_FILE).write_text(json.dumps(d))
    meta = load_meta(tmp_path)
    assert meta.splits["train"].instances == 1141 and meta.masking.max_predictions_per_seq == 5
    assert (meta.tokenizer, meta.settings, meta.chunks, meta.read) == ("tokenizer", {}, 0, {})


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d.pop("vocab_size"), "is incomplete (no 'vocab_size')"),
        (lambda d: d["splits"].pop("train") and d.pop("splits"), "is incomplete (no 'splits')"),
        (lambda d: d["special_ids"].pop("mask"), "is incomplete (no 'mask')"),
        (lambda d: d.update(format=1), "prepared in data format 1, this bertpt reads format 2"),
        (lambda d: d.update(max_seq_length="long"), "is damaged"),
    ],
)
def test_broken_meta_is_one_line(tmp_path, damage, message):
    d = json.loads((RELEASE_0_1 / META_FILE).read_text())
    damage(d)
    (tmp_path / META_FILE).write_text(json.dumps(d))
    with pytest.raises(BertptError) as e:
        load_meta(tmp_path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_or_unreadable_meta_is_one_line(tmp_path):
    with pytest.raises(BertptError, match="not a prepared data directory"):
        load_meta(tmp_path)
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(BertptError, match="is damaged") as e:
        load_meta(tmp_path)
    assert "\n" not in str(e.value)


def test_a_missing_shard_is_one_line(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(RELEASE_0_1, data)
    (data / "val-00000.idx.npy").unlink()
    meta = load_meta(data)
    assert len(PretrainingData(meta, "train")) == 1141
    with pytest.raises(BertptError, match="shard val-00000 is missing or damaged"):
        PretrainingData(meta, "val")
    with pytest.raises(BertptError, match="has no 'test' split"):
        PretrainingData(meta, "test")


def test_meta_needs_its_directory_for_paths():
    meta = Meta(
        vocab_size=10,
        special_ids=SpecialIds(0, 1, 2, 3, 4),
        max_seq_length=8,
        masking=Masking(),
        splits={},
        tokenizer_hash="h",
    )
    with pytest.raises(ValueError, match="not read from a directory"):
        meta.tokenizer_path()


# ---------------------------------------------------------------------------------------------
# One owner


def _sources():
    for path in sorted((REPO / "bertpt").rglob("*.py")):
        yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text(), str(path))


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _meta_violations(name: str, tree) -> list[str]:
    """Ways a module could read meta.json itself: the file name in code (not in a docstring or a
    --help text), or `meta[...]` / `meta.get(...)` on a variable or attribute named meta."""
    found = []
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and (node.value == META_FILE or node.value.endswith("/" + META_FILE))
        ):
            found.append(f"{name}:{node.lineno}: the literal {node.value!r}")
        target = (
            node.value
            if isinstance(node, ast.Subscript)
            else node.func.value
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            else None
        )
        if target is not None:
            called = (
                target.id
                if isinstance(target, ast.Name)
                else target.attr
                if isinstance(target, ast.Attribute)
                else None
            )
            if called == "meta":
                found.append(f"{name}:{node.lineno}: meta[...] / meta.get(...)")
    return found


def test_meta_json_is_parsed_in_format_py_only():
    found = [v for name, tree in _sources() if name != "bertpt/data/format.py" for v in _meta_violations(name, tree)]
    assert found == []


def test_the_scan_finds_what_it_looks_for():
    tree = ast.parse(
        '"""meta.json in a docstring is fine."""\n'
        "import json\n"
        'm = json.loads((d / "meta.json").read_text())\n'
        'x = meta["vocab_size"]\n'
        'y = run.meta.get("splits")\n'
    )
    assert sorted(v.split(": ", 1) for v in _meta_violations("t.py", tree)) == [
        ["t.py:3", "the literal 'meta.json'"],
        ["t.py:4", "meta[...] / meta.get(...)"],
        ["t.py:5", "meta[...] / meta.get(...)"],
    ]


def test_readers_do_not_import_the_writer():
    for name, tree in _sources():
        if name in ("bertpt/data/dataset.py", "bertpt/data/masking.py", "bertpt/data/format.py", "bertpt/pretrain.py"):
            imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert "bertpt.data.shards" not in imported and "bertpt.data.prepare" not in imported, name
