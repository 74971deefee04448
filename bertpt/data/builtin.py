"""The built-in demo corpus: real text on every machine, prepared once per machine.

The built-in corpus is the English prose that ships with every Python installation: the language
reference topics behind `help()` (pydoc_data) and the docstrings of the standard library. It is
real text, needs no download, and is the same on every machine with the same Python version.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from bertpt.data.format import FORMAT_VERSION, is_complete
from bertpt.data.prepare import PrepareConfig, prepare

# A sentence ends at . ! or ? followed by whitespace and a capital letter (or an opening quote).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z])")
# Paragraphs that are code, tables, reST markup or doctest sessions, not prose.
_NOT_PROSE = re.compile(r"^\s|>>>|^\.\. |^[=\-~*+|]{3,}|::\s*$", re.MULTILINE)


def prose_sentences(text: str) -> list[str]:
    """The sentences of the prose paragraphs of reST/docstring `text` (blank-line separated), in order;
    code, tables, directives, doctest sessions and paragraphs under 4 words left out."""
    sentences: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        if not para.strip() or _NOT_PROSE.search(para):
            continue
        flat = " ".join(para.split())
        if len(flat.split()) < 4:  # headings, labels, one-word lines
            continue
        sentences.extend(s for s in SENTENCE_END.split(flat) if s)
    return sentences


def builtin_documents() -> Iterator[list[str]]:
    """Documents of the built-in corpus: one per pydoc topic and one per standard-library module."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        doc = prose_sentences(topics[name])
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
                doc.extend(prose_sentences(ast.get_docstring(node) or ""))
        if len(doc) >= 2:
            yield doc


# A demo that finishes in about 5 minutes on 2 CPU cores (docs/performance.md): 64-token sequences
# (BERT's own phase 1 is 128; the step costs half as much) and 3 duplicates, enough instances for the
# default run without a second epoch.
BUILTIN = PrepareConfig(
    output_dir="",
    vocab_size=8192,
    max_seq_length=64,
    dupe_factor=3,
    val_fraction=0.05,
    sentence_splitter="lines",
    num_workers=0,
)


def builtin_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bertpt"
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache / f"builtin-{py}-v{FORMAT_VERSION}-{BUILTIN.max_seq_length}"


def prepare_builtin(target: Path, progress: bool = True) -> Path:
    """Prepare the built-in corpus into `target`, atomically: a crash leaves no half directory there,
    and when several nodes race on a shared file system the first rename wins."""
    if is_complete(target):
        return target
    tmp = target.with_name(f"{target.name}.tmp-{os.uname().nodename}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = PrepareConfig(**{**asdict(BUILTIN), "output_dir": str(tmp)})
    # Read once (parsing the standard library's sources takes seconds) for both passes: tokenizer, instances.
    documents = ["\n".join(d) for d in builtin_documents()]
    prepare(cfg, documents=lambda: iter(documents), progress=progress)
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
        if not is_complete(target):
            raise
    return target
