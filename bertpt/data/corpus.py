"""Raw text in: text files, JSON Lines and Hugging Face datasets, as documents in input order.

Inputs (`bertpt-prepare INPUT...`) are files, directories (read recursively in sorted order;
entries whose name starts with "." are skipped) and glob patterns (`data/*.txt`, `data/**/*.jsonl`;
`**` crosses directories; matches are sorted and must include at least one file). Files are read
in that order, one after the other, and documents come out in the order they are read, so the
same inputs always give the same output.

Text files (`--input_format text`; anything not named as JSONL below):
    Documents are separated by blank lines, and a file's end ends a document too. Each line is
    stripped of surrounding whitespace. This is Google's `create_pretraining_data` format when
    each line holds one sentence; with `--sentence_splitter blingfire` a line may instead hold a
    whole paragraph. Text must be UTF-8 (a byte-order mark at the start of a file is ignored); a
    document that is not valid UTF-8 is skipped and counted, not fatal, so one damaged document
    in a crawl does not stop a run. A line is blank when str.strip() leaves nothing (as in Google's).

MediaWiki XML dumps (Wikipedia's `*-pages-articles*.xml.bz2`, any name): recognised by their content (the
    root element <mediawiki> at the start of the decompressed stream), whatever --input_format says. Each
    article (a main-namespace page that is not a redirect) is one document, yielded as its raw wikitext:
    the prepare workers turn it into prose (wikipedia.py). A run reads dumps alone, or no dump at all
    (`input_markup`; empty and binary files, skipped with a warning, go with either). Another XML document
    (an XML declaration, then another root element) is refused.

JSON Lines (`--input_format jsonl`; by default files named *.jsonl, *.json or *.ndjson):
    One JSON object per line (a .json file holding one big array must be converted first); the
    string under `--text_field` (default "text") is one document.
    Its lines are stripped and blank ones dropped, so paragraphs become lines. A missing or empty
    text is skipped silently; a line that is not a JSON object, or lacks the field, is an error
    that names the file and line.

Compression: a file ending in .gz, .bz2 or .xz (after the format suffix, e.g. `wiki.jsonl.gz`) is
decompressed while it is read. Files are streamed line by line, never loaded whole (only the
document being read is held in memory).

Skipped with a warning: files that look binary (a NUL byte in their first 8 KiB), documents that
are not valid UTF-8, and files that hold no text.

Hugging Face datasets (`--hf_dataset NAME`, with `--hf_config`, `--hf_split`, `--text_field`):
    anything `datasets.load_dataset` accepts — a Hub name, or a local directory of data files —
    or a directory written by `Dataset.save_to_disk`. `--hf_streaming` reads a Hub dataset as it
    downloads instead of converting all of it into the local cache first. Each record's text is
    treated as a JSONL text. A `save_to_disk` directory is memory-mapped, so it is read without
    --hf_streaming. Offline (HF_HUB_OFFLINE=1), only datasets already cached load.
"""

from __future__ import annotations

import bz2
import contextlib
import glob
import gzip
import io
import itertools
import json
import lzma
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from bertpt.data import wikipedia
from bertpt.errors import BertptError

INPUT_FORMATS = ("auto", "text", "jsonl")


@dataclass
class Source:
    """What to read. Exactly one of `inputs` or `hf_dataset` is given."""

    inputs: list[str] = field(default_factory=list)  # files, directories, glob patterns
    input_format: str = "auto"  # "auto" | "text" | "jsonl"; auto goes by file name
    text_field: str = "text"  # JSONL key / dataset column holding a document's text
    hf_dataset: str | None = None  # datasets.load_dataset name, or a local directory
    hf_config: str | None = None
    hf_split: str = "train"
    hf_streaming: bool = False  # iterate as it downloads, without materialising the whole set


@dataclass
class ReadStats:
    """Counters of one read, updated as it goes (a progress bar may poll them)."""

    files: int = 0  # files opened
    bytes_read: int = 0  # raw (compressed) bytes of the files consumed so far
    documents: int = 0  # documents yielded
    invalid_utf8_documents: int = 0  # documents dropped because they are not valid UTF-8
    binary_files: list[str] = field(default_factory=list)  # files skipped as binary
    empty_files: int = 0  # readable, non-binary files that held no text at all
    wikipedia: wikipedia.DumpCounts | None = None  # pages of MediaWiki XML dumps, by kind (None: no dump read)


# ---------------------------------------------------------------------------------------------
# Finding the files


def resolve_files(inputs: list[str]) -> list[Path]:
    """Expand files, directories and glob patterns into the list of files to read, in order."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files.extend(_files_under(p, item))
        elif p.exists():
            raise BertptError(f"{item}: not a regular file or directory; give text files or directories")
        elif any(c in item for c in "*?["):  # a pattern (a name that exists is taken literally above)
            files.extend(_glob_files(item))
        else:
            raise BertptError(f"{item}: no such file or directory")
    return files


def _files_under(directory: Path, item: str) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # prune: never walk into .git and the like
        paths = (Path(root, n) for n in names if not n.startswith("."))
        found.extend(p for p in paths if p.is_file())  # not sockets, fifos or dangling links
    if not found:
        raise BertptError(f"{item}: directory holds no files")
    return sorted(found)


def _glob_files(pattern: str) -> list[Path]:
    # glob skips hidden names unless the pattern spells the dot out, as a shell does.
    found = [Path(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m)]
    if not found:
        raise BertptError(f"{pattern}: pattern matches no files")
    return sorted(found)


def total_input_bytes(source: Source) -> int | None:
    """Total size of the input files (what `ReadStats.bytes_read` counts up to); None for a dataset."""
    if source.hf_dataset:
        return None
    return sum(p.stat().st_size for p in resolve_files(source.inputs))


# ---------------------------------------------------------------------------------------------
# Reading documents


def iter_documents(source: Source, stats: ReadStats) -> Iterator[str]:
    """The documents of `source`, in input order, as "\\n"-joined non-blank stripped lines.

    Checks the source (files exist, the dataset loads) before returning, so mistakes show up
    at once rather than at the first `next()`.
    """
    if bool(source.inputs) == bool(source.hf_dataset):
        raise BertptError("give either input files or --hf_dataset (exactly one of them)")
    if source.hf_dataset:
        return _dataset_documents(_load_dataset(source), source, stats)
    if source.input_format not in INPUT_FORMATS:
        raise BertptError(f"--input_format {source.input_format}: expected one of {', '.join(INPUT_FORMATS)}")
    files = resolve_files(source.inputs)
    return _files_documents(files, source, stats)


def input_markup(source: Source) -> str:
    """The markup of the source's documents: wikipedia.WIKITEXT when every input file is a MediaWiki XML dump,
    wikipedia.PLAIN when none is (and for a dataset). Opens each file for its first bytes only. Raises
    BertptError for XML that is not a dump, and for dumps mixed with other files (the documents of one run are
    converted alike). Files that the reading skips anyway (empty or blank files, binary files: warned about and
    counted) go with either."""
    if source.hf_dataset:
        return wikipedia.PLAIN
    dumps, others = [], []
    for path in resolve_files(source.inputs):
        with _reading(path) as (_, f):
            head = f.read(_BINARY_SNIFF_BYTES)
            kind = wikipedia.sniff(head)
            if kind == "xml":
                raise _not_a_dump(path, head)
            if kind == "dump":
                dumps.append(path)
            elif b"\0" not in head and not _blank(head, f):
                others.append(path)
    if dumps and others:
        raise BertptError(
            f"{dumps[0]} is a MediaWiki XML dump but {others[0]} is not; prepare dumps and other text in separate "
            "runs (or convert one of them first)"
        )
    return wikipedia.WIKITEXT if dumps else wikipedia.PLAIN


def _blank(head: bytes, f: BinaryIO) -> bool:
    """Whether a file holds only whitespace (after a byte-order mark): `head`, its first bytes, then the rest of `f`."""
    block = head.removeprefix(_UTF8_BOM)
    while not block.strip():
        block = f.read(_BINARY_SNIFF_BYTES)
        if not block:
            return True
    return False


def _not_a_dump(path: Path, head: bytes) -> BertptError:
    root = wikipedia.root_name(head)
    return BertptError(
        f"{path}: XML{f' with root element <{root}>' if root else ''}, not a MediaWiki XML dump (<mediawiki>); "
        "bertpt-prepare reads Wikipedia's pages-articles dumps and plain text"
    )


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """(the raw file, its decompressed stream); a damaged or unreadable file is one BertptError line."""
    try:
        with open(path, "rb") as raw, _decompressing(path, raw) as f:
            yield raw, f
    except _READ_ERRORS as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise BertptError(f"{path}: cannot read ({reason}); repair the file or leave it out of the input") from None


def _files_documents(files: list[Path], source: Source, stats: ReadStats) -> Iterator[str]:
    for path in files:
        yield from _file_documents(path, _format_of(path, source.input_format), source.text_field, stats)


_DECOMPRESSORS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw),
    ".bz2": bz2.BZ2File,
    ".xz": lzma.LZMAFile,
}
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_BINARY_SNIFF_BYTES = 8192
_DUMP_BLOCK_BYTES = 1 << 20  # decompressed bytes fed to the XML parser at a time
_UTF8_BOM = b"\xef\xbb\xbf"
# What damaged or unreadable files raise (gzip.BadGzipFile is an OSError; a truncated stream
# raises EOFError; corrupt deflate data raises zlib.error).
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


def _format_of(path: Path, input_format: str) -> str:
    if input_format != "auto":
        return input_format
    name = path.name.lower()
    if path.suffix.lower() in _DECOMPRESSORS:
        name = name[: -len(path.suffix)]
    return "jsonl" if name.endswith(_JSONL_SUFFIXES) else "text"


def _file_documents(path: Path, fmt: str, text_field: str, stats: ReadStats) -> Iterator[str]:
    start = stats.bytes_read
    seen_before = stats.documents + stats.invalid_utf8_documents
    with _reading(path) as (raw, f):
        stats.files += 1
        head = f.read(_BINARY_SNIFF_BYTES)
        kind = wikipedia.sniff(head)
        binary = False
        if kind == "xml":
            raise _not_a_dump(path, head)
        if kind == "dump":
            if stats.wikipedia is None:
                stats.wikipedia = wikipedia.DumpCounts()
            blocks = itertools.chain([head], iter(lambda: f.read(_DUMP_BLOCK_BYTES), b""))
            docs = wikipedia.read_dump(blocks, str(path), stats.wikipedia)
        else:
            lines = _lines_unless_binary(head, f)
            binary = lines is None
            if binary:
                stats.binary_files.append(str(path))
                docs = iter(())
            elif fmt == "text":
                docs = _text_documents(lines, stats)
            else:
                docs = _jsonl_documents(lines, path, text_field, stats)
        for doc in docs:
            stats.documents += 1
            # Per document, not per line: cheap, and often enough for a progress bar.
            stats.bytes_read = start + raw.tell()
            yield doc
        if stats.documents + stats.invalid_utf8_documents == seen_before and not binary:
            stats.empty_files += 1
        stats.bytes_read = start + os.fstat(raw.fileno()).st_size


def _decompressing(path: Path, raw: BinaryIO) -> contextlib.AbstractContextManager[BinaryIO]:
    decompressor = _DECOMPRESSORS.get(path.suffix.lower())
    return decompressor(raw) if decompressor else contextlib.nullcontext(raw)


def _lines_unless_binary(head: bytes, f: BinaryIO) -> Iterator[bytes] | None:
    """The file's byte lines (`head`, its first bytes already read, then the rest of `f`), or None when the
    head holds a NUL byte (no text file does)."""
    if b"\0" in head:
        return None
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    if head and not head.endswith(b"\n"):
        head += f.readline()  # finish the line the sniff cut in two
    # BytesIO, not splitlines(): lines end at b"\n" only, as when iterating the file itself.
    return itertools.chain(io.BytesIO(head), f)


def _text_documents(lines: Iterable[bytes], stats: ReadStats) -> Iterator[str]:
    # The hot loop: bytes in, one join and one decode per document.
    doc: list[bytes] = []
    for line in lines:
        line = line.strip()
        # Blank as str.strip() sees it (Google's rule), also for lines of Unicode spaces (NBSP, U+3000...).
        if line and not (line[0] >= 0x80 or 0x1C <= line[0] <= 0x1F) or line.decode("utf-8", "replace").strip():
            doc.append(line)
        elif doc:
            text = _decode(doc, stats)
            if text is not None:
                yield text
            doc = []
    if doc:
        text = _decode(doc, stats)
        if text is not None:
            yield text


def _decode(doc: list[bytes], stats: ReadStats) -> str | None:
    try:
        return b"\n".join(doc).decode("utf-8")
    except UnicodeDecodeError:
        stats.invalid_utf8_documents += 1
        return None


def _jsonl_documents(lines: Iterable[bytes], path: Path, text_field: str, stats: ReadStats) -> Iterator[str]:
    for lineno, line in enumerate(lines, 1):
        if not line or line.isspace():
            continue
        try:
            record = json.loads(line)
        except UnicodeDecodeError:  # before ValueError, which it is a kind of
            stats.invalid_utf8_documents += 1
            continue
        except ValueError as e:
            where = f" at column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
            raise BertptError(
                f"{path}:{lineno}: not valid JSON{where} ({getattr(e, 'msg', e)}); JSONL input "
                "needs one JSON object per line (or give --input_format text)"
            ) from None
        if not isinstance(record, dict):
            raise BertptError(
                f'{path}:{lineno}: {_kind(record)}, not an object with a "{text_field}" field; '
                "JSONL input needs one JSON object per line"
            )
        if text_field not in record:
            raise BertptError(
                f'{path}:{lineno}: no "{text_field}" field (fields: {", ".join(record)}); '
                "name the field holding the text with --text_field"
            )
        text = _text_value(record[text_field], f'{path}:{lineno}: "{text_field}"')
        if text and _encodable(text, stats):
            yield text


def _text_value(value: object, what: str) -> str:
    """A record's text as a document: its lines stripped, blank ones dropped. None counts as empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BertptError(f"{what} is {_kind(value)}, not text; name the text field with --text_field")
    return "\n".join(s for line in value.split("\n") if (s := line.strip()))


def _kind(value: object) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _encodable(text: str, stats: ReadStats) -> bool:
    # A JSON "\ud800" escape decodes to a lone surrogate, which no UTF-8 tokenizer accepts.
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        stats.invalid_utf8_documents += 1
        return False


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets

_BATCH_ROWS = 1000  # rows per Arrow batch: column access in bulk, not one dict per row


def _load_dataset(source: Source):
    name = source.hf_dataset
    try:
        import datasets
    except ImportError:
        raise BertptError(f"--hf_dataset {name}: needs the datasets package (pip install datasets)") from None
    try:
        if _is_saved_to_disk(Path(name)):
            ds = datasets.load_from_disk(name)  # memory-mapped Arrow: already streams, no --hf_streaming needed
            if isinstance(ds, datasets.DatasetDict):
                if source.hf_split not in ds:
                    raise BertptError(
                        f"--hf_split {source.hf_split}: {name} has no such split (splits: {', '.join(ds)})"
                    )
                ds = ds[source.hf_split]
        else:
            ds = datasets.load_dataset(name, source.hf_config, split=source.hf_split, streaming=source.hf_streaming)
    except BertptError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever went wrong, the user gets one line
        raise BertptError(
            f"--hf_dataset {name}: cannot load it ({_one_line(e)}); check the name, --hf_config and "
            "--hf_split, and if it is not in the local cache yet, run once online (HF_HUB_OFFLINE and "
            "HF_DATASETS_OFFLINE unset)"
        ) from None
    columns = ds.column_names  # None for a streamed dataset whose columns are not declared
    if columns is not None:
        if source.text_field not in columns:
            raise _no_column(source, columns)
        ds = ds.select_columns([source.text_field])  # leave the other columns unread
    return ds


def _is_saved_to_disk(path: Path) -> bool:
    markers = ("dataset_info.json", "state.json", "dataset_dict.json")  # Dataset / DatasetDict.save_to_disk
    return path.is_dir() and any((path / m).is_file() for m in markers)


def _no_column(source: Source, columns: Iterable[str]) -> BertptError:
    return BertptError(
        f'--hf_dataset {source.hf_dataset}: no column "{source.text_field}" '
        f"(columns: {', '.join(columns)}); name the text column with --text_field"
    )


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _dataset_documents(ds, source: Source, stats: ReadStats) -> Iterator[str]:
    what = f'--hf_dataset {source.hf_dataset}: column "{source.text_field}"'
    for batch in _batches(ds, source):
        if source.text_field not in batch:
            raise _no_column(source, batch)
        for value in batch[source.text_field]:
            text = _text_value(value, what)
            if text:
                stats.documents += 1
                yield text


def _batches(ds, source: Source) -> Iterator[dict]:
    """The dataset's batches; a failure while streaming (a dropped connection) is one line too."""
    batches = iter(ds.iter(batch_size=_BATCH_ROWS))
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:  # noqa: BLE001
            raise BertptError(
                f"--hf_dataset {source.hf_dataset}: reading failed ({_one_line(e)}); run "
                "again, or load it without --hf_streaming to download it whole first"
            ) from None
        yield batch


# ---------------------------------------------------------------------------------------------
# Warnings


def report_skips(stats: ReadStats, prog: str = "bertpt-prepare") -> None:
    """One warning line on stderr per kind of input that was skipped, if any was."""
    warnings = []
    n = stats.invalid_utf8_documents
    if n:
        warnings.append(f"skipped {n} {_plural(n, 'document')} that {'is' if n == 1 else 'are'} not valid UTF-8")
    n = len(stats.binary_files)
    if n:
        more = f" (and {n - 1} more)" if n > 1 else ""
        warnings.append(f"skipped {n} binary {_plural(n, 'file')}: {stats.binary_files[0]}{more}")
    n = stats.empty_files
    if n:
        warnings.append(f"skipped {n} {_plural(n, 'file')} with no text")
    for w in warnings:
        print(f"{prog}: warning: {w}", file=sys.stderr, flush=True)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"
