"""Raw text in: document boundaries, file expansion, the built-in corpus."""

from __future__ import annotations

import pytest

from bertpt.corpus import builtin_documents, list_text_files, read_documents
from bertpt.errors import BertptError


def test_blank_lines_and_files_separate_documents(tmp_path):
    (tmp_path / "a.txt").write_text("First sentence.\nSecond one.\n\n\n  Third, new doc.  \n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("\nA document in another file.\n")
    (tmp_path / ".hidden").write_text("never read\n")
    files = list_text_files([str(tmp_path)])
    assert [f.name for f in files] == ["a.txt", "b.txt"]
    assert list(read_documents(files)) == [["First sentence.", "Second one."], ["Third, new doc."],
                                           ["A document in another file."]]


def test_missing_inputs_and_bad_bytes_are_clear_errors(tmp_path):
    with pytest.raises(BertptError, match="no such file or directory"):
        list_text_files([str(tmp_path / "nope.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BertptError, match="holds no files"):
        list_text_files([str(tmp_path / "empty")])
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(BertptError, match=r"latin1.txt: not UTF-8 text \(invalid byte at offset 3\)"):
        list(read_documents([bad]))


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
