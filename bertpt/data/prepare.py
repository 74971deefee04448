"""bertpt-prepare: raw text → WordPiece tokenizer → Google NSP instances (or, with --objective mlm, text
packed to the full length: packing.py) → sharded files + meta.json.

    bertpt-prepare corpus/ 'more/*.txt.gz' --output_dir data/wiki128 [--tokenizer vocab.txt]
    bertpt-prepare --hf_dataset wikimedia/wikipedia --hf_config 20231101.en --hf_streaming --output_dir ...
    bertpt-prepare enwiki-20250101-pages-articles-multistream.xml.bz2 --output_dir data/wiki128

Streaming end to end: the parent process reads documents in input order and cuts them into chunks
of about --chunk_mb of text; worker processes turn each chunk into its shard files (shards.py).
A MediaWiki XML dump is read the same way, its articles' raw wikitext being the documents: the
workers turn it into prose (wikipedia.py), and so does a pool of them for the tokenizer's passes.
At most num_workers + 3 chunks are in memory at once, whatever the corpus size. Each chunk is
seeded by its index, so the result does not depend on the number of workers, an interrupted run
continues where it stopped (finished chunks are kept), and several nodes can each take a slice of
the chunks (--num_slices / --slice) into one shared directory, followed by one `--merge`.

The output directory's layout and its index, meta.json, are described in format.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from bertpt import cli
from bertpt.cli import arg as _arg
from bertpt.data.corpus import (
    ReadStats,
    Source,
    input_markup,
    iter_documents,
    report_skips,
    total_input_bytes,
)
from bertpt.data.format import (
    CHUNK_GLOB,
    FORMAT_VERSION,
    META_FILE,
    MLM_NSP,
    OBJECTIVES,
    OWNED_NAME,
    PREPARE_FILE,
    TOKENIZER_DIR,
    Meta,
    SpecialIds,
    chunk_of,
    read_prepare_claim,
    slice_file,
    write_prepare_claim,
)
from bertpt.data.masking import GOOGLE_MAX_PREDICTIONS, max_predictions_for
from bertpt.data.shards import MIN_CHUNK_DOCUMENTS, ChunkSettings, ChunkWriter, init_worker, merge, run_chunk
from bertpt.data.tokenizer import (
    Casing,
    check_unk_rate,
    continuation_table,
    count_characters,
    count_unk,
    load_tokenizer,
    open_tokenizer,
    sample_texts,
    save_tokenizer,
    special_ids,
    tokenizer_hash,
    train_tokenizer,
    vocabulary_size_warning,
)
from bertpt.data.wikipedia import PLAIN, convert_articles
from bertpt.errors import BertptError, exit_on_error, require_writable_dir
from bertpt.files import write_atomic
from bertpt.progress import bar as progress_bar

PROG = "bertpt-prepare"


@dataclass
class PrepareConfig:
    """Settings of one data preparation; all of them are recorded in meta.json."""

    output_dir: str = _arg(None, "Directory to write the prepared data to (required).")
    # --- input
    input_format: str = _arg(
        "auto",
        "Format of the input files: text (one sentence or paragraph per line, a "
        "blank line between documents), jsonl (one document per line), or auto (by "
        "suffix: .jsonl/.json/.ndjson, optionally compressed, are jsonl). A MediaWiki XML dump is "
        "recognised by its content whatever this says: one document per article, its wikitext turned into prose.",
        choices=["auto", "text", "jsonl"],
    )
    text_field: str = _arg("text", "JSONL key / Hugging Face dataset column that holds a document's text.")
    hf_dataset: str | None = _arg(
        None,
        "Read a Hugging Face dataset instead of files: a hub name or a local "
        "path (data files, or a save_to_disk directory).",
    )
    hf_config: str | None = _arg(None, "The dataset's configuration (subset) name, e.g. 20231101.en.")
    hf_split: str = _arg("train", "The dataset's split to read.")
    hf_streaming: bool = _arg(False, "Stream the dataset instead of downloading it whole first.")
    sentence_splitter: str = _arg(
        "blingfire",
        "How a line becomes sentences: blingfire (each line is a "
        "paragraph, split with the blingfire sentence splitter) or lines (each line "
        "is one sentence, Google's input format).",
        choices=["blingfire", "lines"],
    )
    min_doc_tokens: int = _arg(0, "Drop documents with fewer tokens than this.")
    # --- tokenizer
    tokenizer: str | None = _arg(
        None,
        "Existing tokenizer: a BERT vocab.txt or a Hugging Face tokenizer directory. Default: train a "
        "new WordPiece vocabulary on the input (one streaming pass).",
    )
    vocab_size: int = _arg(30522, "Vocabulary size when training a tokenizer.")
    cased: bool | None = _arg(
        None,
        "Keep case (--cased, or --cased true|false). Default: a trained tokenizer lowercases, as BERT-uncased; "
        "a --tokenizer keeps its own settings (a bare vocab.txt: the casing its entries imply). A setting "
        "that contradicts the tokenizer is refused.",
        nargs="?",
        const=True,
    )
    strip_accents: bool | None = _arg(None, "Strip accents (true/false). Default: exactly when lowercasing.")
    min_frequency: int = _arg(
        2,
        "When training a tokenizer: the least count of a character to be in the alphabet (rarer ones only "
        "fill room left below --vocab_size) and of a pair of pieces to be merged.",
    )
    max_unk_rate: float = _arg(
        0.05,
        "Refuse a tokenizer when more than this share of the tokens of the input's first ~1 MB of text "
        "are [UNK] (checked before any data is written; 1.0 accepts any).",
    )
    tokenizer_only: bool = _arg(
        False,
        "Only train/copy the tokenizer into --output_dir, then stop (for "
        "multi-node preparation, which needs one shared tokenizer first).",
    )
    # --- instances and masking
    objective: str = _arg(
        MLM_NSP,
        "What the instances are for. mlm_nsp: BERT's masked LM + next-sentence prediction, Google's "
        "create_pretraining_data.py instances [CLS] A [SEP] B [SEP]. mlm: masked LM only (RoBERTa's "
        "FULL-SENTENCES): the documents' text packed contiguously to --max_seq_length, [CLS] text [SEP] with "
        "[SEP] between documents, one segment, no next-sentence label (--short_seq_prob does not apply).",
        choices=list(OBJECTIVES),
    )
    max_seq_length: int = _arg(128, "Sequence length of an instance, [CLS] and [SEP]s included.")
    max_predictions_per_seq: int | None = _arg(
        None,
        "Most masked positions per instance. Default: 20 at length 128 and 80 at 512 (Google's "
        "recipes), else ceil(masked_lm_prob * max_seq_length).",
    )
    masked_lm_prob: float = _arg(0.15, "Fraction of tokens masked per instance.")
    short_seq_prob: float = _arg(0.1, "Probability of aiming an instance at a random shorter length.")
    dupe_factor: int = _arg(1, "Passes over the corpus, each with a different segmentation.")
    val_fraction: float = _arg(
        0.01,
        "Fraction of documents held out for validation (per chunk, at least 2; none from a chunk of under 4).",
    )
    seed: int = _arg(12345, "Seed of the document split, segmentation, random-next choices and static masks.")
    whole_word_mask: bool = _arg(False, "Mask whole words: a ## WordPiece is masked with the word it continues.")
    static_masking: bool = _arg(
        False,
        "Decide the masks here, once per instance, as Google's original recipe "
        "(use --dupe_factor for several copies). Default: dynamic masking at batch time.",
    )
    # --- scale
    chunk_mb: float = _arg(
        8.0,
        "Text per chunk, in MB. Memory use is about (num_workers + 3) chunks x a few; "
        "random-next sentences are drawn from the same chunk.",
    )
    num_workers: int | None = _arg(None, "Worker processes. Default: all usable cores. 0: work in this process.")
    num_slices: int = _arg(
        1,
        "Split the chunks over this many nodes (each runs the same command with its own "
        "--slice), then run --merge once.",
    )
    slice: int = _arg(0, "Which slice this node prepares, 0 .. num_slices-1 (e.g. $SLURM_PROCID).")
    merge: bool = _arg(False, "Write meta.json of a directory whose slices are all finished, then stop.")
    overwrite: bool = _arg(False, "Replace whatever prepared data --output_dir holds.")

    def resolved_max_predictions(self) -> int:
        if self.max_predictions_per_seq is not None:
            return self.max_predictions_per_seq
        default = max_predictions_for(self.masked_lm_prob, self.max_seq_length)
        return GOOGLE_MAX_PREDICTIONS.get(self.max_seq_length, default)

    def workers(self) -> int:
        return len(os.sched_getaffinity(0)) if self.num_workers is None else self.num_workers

    def data_settings(self) -> dict:
        """What determines the output: a resumed run must have the same (workers and slices do not count)."""
        skip = (
            "output_dir",
            "num_workers",
            "num_slices",
            "slice",
            "merge",
            "tokenizer_only",
            "overwrite",
            "max_unk_rate",
        )
        s = {k: v for k, v in asdict(self).items() if k not in skip}
        s["max_predictions_per_seq"] = self.resolved_max_predictions()
        return s

    def chunk_settings(self, markup: str = PLAIN) -> ChunkSettings:
        """The typed subset of data_settings() that the chunk writers use, for documents in `markup`
        (wikipedia.MARKUPS, decided by the input: corpus.input_markup)."""
        return ChunkSettings.from_settings({**self.data_settings(), "markup": markup})

    def validate(self) -> None:
        cli.refuse_nan(self)
        if not self.output_dir:
            raise BertptError("--output_dir is required")
        if self.objective not in OBJECTIVES:
            raise BertptError(f"--objective must be one of {', '.join(OBJECTIVES)} (got {self.objective!r})")
        if not 8 <= self.max_seq_length <= 512:
            raise BertptError(f"--max_seq_length must be between 8 and 512 (got {self.max_seq_length})")
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise BertptError(f"--masked_lm_prob must be in (0, 1) (got {self.masked_lm_prob})")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise BertptError(f"--short_seq_prob must be in [0, 1] (got {self.short_seq_prob})")
        if not 0.0 <= self.max_unk_rate <= 1.0:
            raise BertptError(f"--max_unk_rate must be in [0, 1] (got {self.max_unk_rate})")
        if not 0.0 <= self.val_fraction < 1.0:
            raise BertptError(f"--val_fraction must be in [0, 1) (got {self.val_fraction})")
        for name in ("dupe_factor", "vocab_size", "num_slices"):
            if getattr(self, name) < 1:
                raise BertptError(f"--{name} must be at least 1")
        if self.chunk_mb <= 0 or self.workers() < 0 or self.min_doc_tokens < 0:
            raise BertptError("--chunk_mb must be positive, --num_workers and --min_doc_tokens not negative")
        if not 0 <= self.slice < self.num_slices:
            raise BertptError(f"--slice must be in 0 .. {self.num_slices - 1} (got {self.slice})")
        if self.vocab_size < 100 and self.tokenizer is None:
            raise BertptError(
                f"--vocab_size {self.vocab_size} is too small for a WordPiece vocabulary (use 100 or more)"
            )
        if self.num_slices > 1 and self.overwrite:
            raise BertptError(
                "--overwrite cannot be combined with --num_slices (every node would wipe the "
                "others' work); empty the directory before starting the slices"
            )
        if self.num_slices > 1 and self.tokenizer is None:
            raise BertptError(
                "with --num_slices, every node must use the same tokenizer: train it first with "
                "--tokenizer_only (or bring one) and pass --tokenizer"
            )


def prepare(
    cfg: PrepareConfig,
    source: Source | None = None,
    documents: Callable[[], Iterable[str]] | None = None,
    progress: bool = True,
) -> Meta | None:
    """Prepare `source` (or the documents a `documents()` call yields) into cfg.output_dir. Returns
    the directory's Meta (as meta.json holds it), or None when this run leaves it to a later --merge."""
    cfg.validate()
    out = Path(cfg.output_dir)
    if cfg.merge:
        return merge(out)
    t0 = time.time()
    markup = input_markup(source) if documents is None else PLAIN

    def docs(read: ReadStats) -> Iterator[str]:  # one pass over the input; called once per pass
        return iter(documents()) if documents is not None else iter_documents(source, read)

    def texts() -> Iterator[str]:  # one pass over the input's text, for the tokenizer
        return docs(ReadStats()) if markup == PLAIN else _prose(docs(ReadStats()), cfg.workers())

    tok = _claim_and_tokenizer(cfg, out, texts, markup, progress)
    if cfg.tokenizer_only:
        return None
    read = ReadStats()
    n_chunks = _run_chunks(
        cfg, out, tok, markup, docs(read), read, total_input_bytes(source) if source else None, progress
    )
    slice_info = {"chunks": n_chunks, "read": asdict(read), "seconds": round(time.time() - t0, 1)}
    write_atomic(out / slice_file(cfg.slice, cfg.num_slices), json.dumps(slice_info).encode())
    report_skips(read, PROG)
    if cfg.num_slices > 1:
        print(
            f"{PROG}: slice {cfg.slice} of {cfg.num_slices} done; once every slice is, run "
            f"`{PROG} --merge --output_dir {out}`",
            file=sys.stderr,
        )
        return None
    meta = merge(out)
    if meta.unk_rate is not None and meta.unk_rate > cfg.max_unk_rate:
        print(
            f"bertpt: warning: {meta.unk_rate:.2%} of the text's tokens are [UNK], more than --max_unk_rate "
            f"{cfg.max_unk_rate:g} (the check on the input's first documents passed): the tokenizer fits the "
            "rest of the text poorly",
            file=sys.stderr,
        )
    return meta


# ---------------------------------------------------------------------------------------------
# The output directory: never mixed with an incompatible earlier run


def _is_ours(p: Path) -> bool:
    return OWNED_NAME.fullmatch(p.name) is not None


def _wipe(out: Path) -> None:
    if (out / META_FILE).exists():
        (out / META_FILE).unlink()  # first: from here on the directory counts as incomplete
    for p in out.iterdir():
        if p.is_dir() and _is_ours(p):
            shutil.rmtree(p)
        elif _is_ours(p):
            p.unlink()


def _claim_of(earlier: dict) -> dict:
    """An earlier prepare.json as this release's claim: without the tokenizer hash, and with the objective and
    markup an earlier release's settings imply (they predate the choices: mlm_nsp, plain text)."""
    settings = {"objective": MLM_NSP, "markup": PLAIN, **earlier.get("settings", {})}
    return {**{k: v for k, v in earlier.items() if k != "tokenizer_hash"}, "settings": settings}


def _check_unk_rate(cfg: PrepareConfig, tok, docs: Callable[[], Iterator[str]]) -> None:
    """Refuse (BertptError) or warn when too many tokens of the input's first documents are [UNK]."""
    sample = sample_texts(docs())
    warning = check_unk_rate(count_unk(tok, sample), cfg.max_unk_rate, f"the input's first {len(sample):,} documents")
    if warning:
        print(f"bertpt: warning: {warning}", file=sys.stderr)


def _claim_and_tokenizer(cfg: PrepareConfig, out: Path, docs: Callable[[], Iterator[str]], markup: str, progress: bool):
    """Check what --output_dir holds, then load/train the tokenizer and check that it fits the text
    (`docs()`: one pass over the input's text, as prose) before anything is written or wiped; returns it.
    `markup` (wikipedia.MARKUPS) is recorded with the settings."""
    # Load a given tokenizer first: a bad one is reported before anything is touched, and it may
    # live inside --output_dir (from --tokenizer_only).
    given, casing = open_tokenizer(cfg.tokenizer, cfg.cased, cfg.strip_accents) if cfg.tokenizer else (None, None)
    if casing is None:
        casing = Casing(bool(cfg.cased), cfg.strip_accents)
    for line in (casing.note and f"{PROG}: {casing.note}", casing.warning and f"bertpt: warning: {casing.warning}"):
        if line:
            print(line, file=sys.stderr)
    if given is not None and not (out / PREPARE_FILE).is_file():  # (a run being continued passed the check)
        _check_unk_rate(cfg, given, docs)
    # the settings as used: a --tokenizer's casing is the one resolved from it
    settings = {**cfg.data_settings(), "cased": casing.cased, "strip_accents": casing.strip_accents, "markup": markup}
    claim = {"format": FORMAT_VERSION, "settings": settings}
    wipe = False  # done once the tokenizer is known to fit, so that a refusal leaves the directory as it was
    if out.is_dir():
        earlier = read_prepare_claim(out)
        if cfg.overwrite:
            wipe = True
        elif (out / META_FILE).exists():
            raise BertptError(
                f"--output_dir {out} already holds prepared data; pass --overwrite to replace it "
                "or choose another directory"
            )
        elif earlier is not None and _claim_of(earlier) != claim:
            diff = sorted(
                k
                for k in {**claim["settings"], **_claim_of(earlier)["settings"]}
                if claim["settings"].get(k) != _claim_of(earlier)["settings"].get(k)
            )
            raise BertptError(
                f"--output_dir {out} holds an unfinished prepare with other settings (differing: "
                f"{', '.join(diff) or 'format'}); re-run it with the same flags, or pass --overwrite"
            )
        elif earlier is not None:
            if cfg.num_slices == 1:  # with slices, another node may be writing its temporary files now
                for p in out.glob("*.tmp-*"):  # what an interrupted run left half-written
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            tok = load_tokenizer(out / TOKENIZER_DIR)
            if tokenizer_hash(tok) != earlier["tokenizer_hash"]:
                raise BertptError(f"--output_dir {out}: its tokenizer/ changed since the run began; pass --overwrite")
            if given is not None and tokenizer_hash(given) != earlier["tokenizer_hash"]:
                raise BertptError(
                    f"--tokenizer {cfg.tokenizer} differs from the one the unfinished run in "
                    f"{out} used; pass the same one, or --overwrite"
                )
            done = len(list(out.glob(CHUNK_GLOB)))
            print(f"{PROG}: continuing the unfinished run in {out} ({done} chunks already done)", file=sys.stderr)
            return tok
        elif any(not _is_ours(p) for p in out.iterdir()):
            raise BertptError(
                f"--output_dir {out} is not empty and is not a bertpt data directory; choose an empty or new directory"
            )
        elif cfg.num_slices == 1:
            wipe = True  # only leftovers of a run killed before it wrote prepare.json
    require_writable_dir(out, "--output_dir")

    if given is not None:
        tok = given
    else:
        # Two passes: the characters' counts decide the alphabet (--min_frequency), then the trainer.
        texts = progress_bar(docs(), desc="tokenizer (characters)", unit=" docs", enabled=progress)
        counts = count_characters(texts, casing.cased, casing.strip_accents)
        texts = progress_bar(docs(), desc="tokenizer", unit=" docs", enabled=progress)
        tok = train_tokenizer(
            texts, cfg.vocab_size, casing.cased, cfg.min_frequency, casing.strip_accents, char_counts=counts
        )
        if len(tok) <= len(special_ids(tok)):
            raise BertptError("the input holds no text to train a tokenizer on")
        size_warning = vocabulary_size_warning(tok, cfg.vocab_size, cfg.min_frequency, counts)
        if size_warning:
            print(f"bertpt: warning: {size_warning}", file=sys.stderr)
        _check_unk_rate(cfg, tok, docs)
    if wipe:
        _wipe(out)
    tmp = out / f"tokenizer.tmp-{os.uname().nodename}-{os.getpid()}"
    save_tokenizer(tok, tmp)
    try:
        os.rename(tmp, out / TOKENIZER_DIR)
    except OSError:  # another slice saved the same tokenizer first
        shutil.rmtree(tmp)
        if tokenizer_hash(load_tokenizer(out / TOKENIZER_DIR)) != tokenizer_hash(tok):
            raise BertptError(f"--output_dir {out}: another run put a different tokenizer there") from None
    if cfg.tokenizer_only:
        print(
            f"{PROG}: tokenizer saved to {out / TOKENIZER_DIR}; pass --tokenizer {out / TOKENIZER_DIR}", file=sys.stderr
        )
        return tok
    write_prepare_claim(out, {**claim, "tokenizer_hash": tokenizer_hash(tok)})
    return tok


# ---------------------------------------------------------------------------------------------
# Chunks through the worker processes


def _chunks(docs: Iterator[str], chunk_chars: int) -> Iterator[tuple[int, list[str]]]:
    """Consecutive documents, about chunk_chars of text and at least MIN_CHUNK_DOCUMENTS each; the cut
    depends on the input only. A random-next B comes from another document of the chunk, so a huge
    document does not close a chunk alone, and a tail of fewer documents joins the chunk before it
    (which is therefore held back until the next one is complete: one chunk more in memory)."""
    buf: list[str] = []
    held: list[str] | None = None
    size, k = 0, 0
    for d in docs:
        buf.append(d)
        size += len(d)
        if size >= chunk_chars and len(buf) >= MIN_CHUNK_DOCUMENTS:
            if held is not None:
                yield k, held
                k += 1
            held, buf, size = buf, [], 0
    if held is not None and len(buf) < MIN_CHUNK_DOCUMENTS:
        held, buf = held + buf, []
    if held is not None:
        yield k, held
        k += 1
    if buf:
        yield k, buf


def _run_chunks(
    cfg: PrepareConfig,
    out: Path,
    tok,
    markup: str,
    docs: Iterator[str],
    read: ReadStats,
    total_bytes: int | None,
    progress: bool,
) -> int:
    """Prepare this slice's unfinished chunks of `docs` (in `markup`: the workers convert wikitext); returns the
    number of chunks in the whole input."""
    vocab_size = len(tok.backend_tokenizer.get_vocab(with_added_tokens=False))
    writer_args = (
        tok.backend_tokenizer.to_str(),
        cfg.chunk_settings(markup),
        SpecialIds(**special_ids(tok)),
        vocab_size,
        continuation_table(tok) if cfg.whole_word_mask else None,
        str(out),
    )
    done = {chunk_of(p.name) for p in out.glob(CHUNK_GLOB)}
    workers = cfg.workers()
    # Input files: bytes read of their total size. Documents from a dataset or a callable: documents read,
    # as no total is known before the end (a count of chunks would mean nothing to the reader).
    if total_bytes:
        bar = progress_bar(total=total_bytes, desc="prepare", unit="B", unit_scale=True, enabled=progress)
    else:
        bar = progress_bar(desc="prepare", unit=" docs", enabled=progress)
    t0, tokens, n_docs = time.time(), 0, 0

    def finished(stats: dict) -> None:
        nonlocal tokens, n_docs
        tokens += sum(s["tokens"] for s in stats["splits"].values())
        n_docs += stats["input_documents"]
        dt = max(time.time() - t0, 1e-9)
        docs_rate = f"{n_docs / dt:,.0f} docs/s, " if total_bytes else ""  # the bar itself counts documents
        bar.set_postfix_str(f"{docs_rate}{tokens / dt:,.0f} tokens/s", refresh=False)

    n_chunks = 0
    if workers == 0:
        writer = ChunkWriter(*writer_args)
        for k, chunk in _chunks(docs, int(cfg.chunk_mb * 1e6)):
            n_chunks = k + 1
            if k % cfg.num_slices == cfg.slice and k not in done:
                finished(writer(k, chunk))
            bar.update(read.bytes_read - bar.n if total_bytes else len(chunk))
    else:
        # spawn, not fork: the parent may hold tokenizer threads, and fork after threads can deadlock.
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=init_worker, initargs=writer_args
        ) as pool:
            pending: set = set()
            for k, chunk in _chunks(docs, int(cfg.chunk_mb * 1e6)):
                n_chunks = k + 1
                if k % cfg.num_slices == cfg.slice and k not in done:
                    while len(pending) > workers:  # bounded: at most workers + 1 chunks queued
                        complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in complete:
                            finished(f.result())
                    pending.add(pool.submit(run_chunk, k, chunk))
                bar.update(read.bytes_read - bar.n if total_bytes else len(chunk))
                del chunk
            for f in wait(pending).done:
                finished(f.result())
    bar.close()
    return n_chunks


# A batch of articles for one conversion task of the tokenizer's passes: big enough to amortise the task's
# pickling, small enough that the pool's queue (workers + 2 batches) stays a few MB.
_PROSE_BATCH_CHARS = 1 << 20


def _prose(wikitexts: Iterator[str], workers: int) -> Iterator[str]:
    """The articles' prose (wikipedia.convert_articles; skipped ones left out), in input order, converted by
    `workers` processes (0: in this one) with at most workers + 2 batches in flight: memory stays bounded.
    For the tokenizer's passes; the chunks' pass converts in the chunk workers instead."""

    def batches() -> Iterator[list[str]]:
        batch, size = [], 0
        for w in wikitexts:
            batch.append(w)
            size += len(w)
            if size >= _PROSE_BATCH_CHARS:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    if workers == 0:
        for batch in batches():
            yield from filter(None, convert_articles(batch)[0])
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))  # spawn: see _run_chunks
    try:
        pending: deque = deque()
        for batch in batches():
            pending.append(pool.submit(convert_articles, batch))
            while len(pending) > workers + 1:
                yield from filter(None, pending.popleft().result()[0])
        while pending:
            yield from filter(None, pending.popleft().result()[0])
    finally:  # also when the consumer stops early (the [UNK] check reads the first ~1 MB only)
        pool.shutdown(wait=True, cancel_futures=True)


def main(argv: list[str] | None = None) -> None:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        PrepareConfig,
        **cli.parser_options(PROG),
        description=(
            "Prepare raw text for BERT pretraining: train (or load) a WordPiece tokenizer and write Google-style "
            "next-sentence-prediction instances (or, with --objective mlm, text packed to the full length) to "
            "sharded, memory-mappable files, streaming, on all cores."
        ),
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        help="Text or JSONL files (optionally .gz/.bz2/.xz), MediaWiki XML dumps (Wikipedia's "
        "*-pages-articles*.xml.bz2, any name), directories (read recursively) or glob patterns (quote them). "
        "Not with --hf_dataset or --merge.",
    )
    with exit_on_error(PROG):
        cfg, ns = cli.parse(parser, argv)
        if not cfg.merge and bool(ns.inputs) == bool(cfg.hf_dataset):
            raise BertptError("give input files or --hf_dataset (one of them)")
        source = Source(
            inputs=ns.inputs,
            input_format=cfg.input_format,
            text_field=cfg.text_field,
            hf_dataset=cfg.hf_dataset,
            hf_config=cfg.hf_config,
            hf_split=cfg.hf_split,
            hf_streaming=cfg.hf_streaming,
        )
        meta = prepare(cfg, source=source)
        if meta is None:
            return
        if meta.wikipedia is not None:
            print(meta.wikipedia.note())
        tr = meta.splits["train"]
        va = meta.splits.get("val")
        pairing = meta.pairing.note() if meta.nsp else None
        kind = f"{tr.random_next_fraction:.1%} random next" if meta.nsp else "MLM only, packed to the full length"
        print(
            f"wrote {tr.instances:,} training instances ({tr.documents:,} documents, {tr.tokens:,} "
            f"tokens, {kind}) and {va.instances if va else 0:,} validation "
            f"instances ({va.documents if va else 0:,} documents) to {cfg.output_dir} in {meta.seconds} s"
            + (f"; {pairing}" if pairing else "")
            + ("" if va else "; no validation split: training will evaluate on training instances")
            + (f"; [UNK] {meta.unk_rate:.3%} of the text's tokens" if meta.unk_rate is not None else "")
        )


if __name__ == "__main__":
    main()
