"""Real corpora for the benchmarks that need no download.

    python -m benchmarks.corpora python-docs data/pydocs.jsonl

`python-docs`: the reST sources of Python's documentation that Debian's `python3.11-doc` package
ships (/usr/share/doc/python3.11/html/_sources, 11.0 MB in 497 files), one JSON Lines document per
file, one sentence per line, for `bertpt-prepare --sentence_splitter lines`: prose paragraphs split
into sentences (6.1 MB), every other paragraph (code examples, directives, tables, doctest sessions)
kept line by line, dedented, without reST's rule lines (3.9 MB): 10.0 MB of text.
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from pathlib import Path

from bertpt.data.builtin import SENTENCE_END
from bertpt.errors import BertptError, exit_on_error
from bertpt.files import write_atomic

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")
_RULE = re.compile(r"^\s*[=\-~*+|^#\"`:.]{3,}\s*$")  # reST section underlines and table borders
_MARKUP = re.compile(r">>>|^\.\. |^\s", re.MULTILINE)  # doctest, directive, or indented past the paragraph


def file_sentences(text: str) -> list[str]:
    """One documentation file's lines for the corpus: prose paragraphs (no markup, at least 80% letters
    and spaces) as sentences, other paragraphs line by line."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        block = textwrap.dedent(para).strip("\n")
        flat = " ".join(block.split())
        if not flat:
            continue
        if not _MARKUP.search(block) and sum(c.isalpha() or c == " " for c in flat) >= 0.8 * len(flat):
            out.extend(s for s in SENTENCE_END.split(flat) if s)
        else:
            out.extend(line.strip() for line in block.splitlines() if line.strip() and not _RULE.match(line))
    return out


def python_docs(out: Path, sources: Path = PYTHON_DOCS) -> tuple[int, int]:
    """Write the Python documentation as JSONL documents to `out` (atomically). Returns (documents,
    bytes of text). Raises BertptError when the sources are not installed."""
    files = sorted(sources.rglob("*.txt")) if sources.is_dir() else []
    if not files:
        raise BertptError(f"{sources}: no documentation sources; install them with: apt-get install python3.11-doc")
    lines, size = [], 0
    for path in files:
        doc = file_sentences(path.read_text(encoding="utf-8", errors="replace"))
        if len(doc) >= 2:
            text = "\n".join(doc)
            size += len(text.encode())
            lines.append(json.dumps({"text": text}))
    write_atomic(out, "\n".join(lines) + "\n")
    return len(lines), size


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", choices=["python-docs"], help="which corpus")
    p.add_argument("out", type=Path, help="the JSONL file to write")
    args = p.parse_args(argv)
    with exit_on_error("benchmarks.corpora"):
        docs, size = python_docs(args.out)
        print(f"{args.out}: {docs} documents, {size / 1e6:.1f} MB of text")


if __name__ == "__main__":
    main()
