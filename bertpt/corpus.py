"""Raw text in: plain-text files and directories, and the built-in demo corpus.

Input format (Google's create_pretraining_data format): one sentence per line, a blank line between
documents. A file boundary is a document boundary too. Lines are stripped; empty documents are
dropped.

The built-in corpus is the English prose that ships with every Python installation: the language
reference topics behind `help()` (pydoc_data) and the docstrings of the standard library. It is
real text, needs no download, and is the same on every machine with the same Python version.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from bertpt.errors import BertptError

Document = list[str]  # one sentence (line) per entry


def list_text_files(inputs: list[str]) -> list[Path]:
    """Expand files and directories (recursively, sorted, hidden entries skipped) into files."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise BertptError(f"{item}: directory holds no files")
            files.extend(found)
        else:
            raise BertptError(f"{item}: no such file or directory")
    return files


def read_documents(files: list[Path]) -> Iterator[Document]:
    """Yield documents (lists of sentences) from text files, one file at a time."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise BertptError(f"{path}: not UTF-8 text (invalid byte at offset {e.start}); convert it to "
                              "UTF-8 or leave it out of the input") from None
        except OSError as e:
            raise BertptError(f"{path}: cannot read ({e.strerror})") from None
        doc: Document = []
        for line in text.splitlines():
            line = line.strip()
            if line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
        if doc:
            yield doc


# ---------------------------------------------------------------------------------------------
# The built-in demo corpus

# A sentence ends at . ! or ? followed by whitespace and a capital letter (or an opening quote).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z])")
# Paragraphs that are code, tables, reST markup or doctest sessions, not prose.
_NOT_PROSE = re.compile(r"^\s|>>>|^\.\. |^[=\-~*+|]{3,}|::\s*$", re.MULTILINE)


def _prose_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if not para.strip() or _NOT_PROSE.search(para):
            continue
        flat = " ".join(para.split())
        if len(flat.split()) < 4:  # headings, labels, one-word lines
            continue
        sentences.extend(s for s in _SENTENCE_END.split(flat) if s)
    return sentences


def builtin_documents() -> Iterator[Document]:
    """Documents of the built-in corpus: one per pydoc topic and one per standard-library module."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        doc = _prose_sentences(topics[name])
        if len(doc) >= 2:
            yield doc
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        parts = path.relative_to(stdlib).parts
        if parts[0] in ("site-packages", "dist-packages", "test", "idlelib") or "tests" in parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        doc = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc.extend(_prose_sentences(ast.get_docstring(node) or ""))
        if len(doc) >= 2:
            yield doc
