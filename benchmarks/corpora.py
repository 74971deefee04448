"""Real corpora for the benchmarks that need no download.

    python -m benchmarks.corpora python-docs data/pydocs.jsonl

`python-docs`: the reST sources of Python's documentation that Debian's `python3.11-doc` package
ships (/usr/share/doc/python3.11/html/_sources, about 11 MB, 500+ files), one JSON Lines document per
file holding its prose sentences one per line (code blocks, tables and directives left out, as the
built-in demo corpus does), for `bertpt-prepare --sentence_splitter lines`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertpt.data.builtin import prose_sentences
from bertpt.errors import BertptError, exit_on_error
from bertpt.files import write_atomic

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")


def python_docs(out: Path, sources: Path = PYTHON_DOCS) -> tuple[int, int]:
    """Write the Python documentation as JSONL documents to `out` (atomically). Returns (documents,
    bytes of text). Raises BertptError when the sources are not installed."""
    files = sorted(sources.rglob("*.txt")) if sources.is_dir() else []
    if not files:
        raise BertptError(f"{sources}: no documentation sources; install them with: apt-get install python3.11-doc")
    lines, size = [], 0
    for path in files:
        doc = prose_sentences(path.read_text(encoding="utf-8", errors="replace"))
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
