"""One chunk of documents → its shard files. Runs in the prepare worker processes.

A chunk is a run of consecutive input documents (about --chunk_mb of text). It is the unit of
everything that must not depend on the number of processes: Google's algorithm runs on the chunk
as if it were the whole corpus (document shuffle and random-next documents stay inside the chunk),
with a random.Random seeded by (seed, split, chunk index). So the output is the same whatever the
number of workers or nodes, and a chunk whose files exist never needs redoing.

Files of chunk k, split s in {train, val} (written under a temporary name, then renamed):
    s-k.ids.npy   instances' token ids back to back, [CLS] A [SEP] B [SEP] (uint16, or uint32 for
                  vocabularies over 65,536); objective mlm: [CLS] text [SEP] (packing.py)
    s-k.idx.npy   int64 rows (offset, length, length of [CLS] A [SEP], is_random_next, mask offset,
                  mask count); the mask columns are 0 unless static masking; objective mlm: the
                  length of [CLS] A [SEP] is the whole length (one segment) and is_random_next 0
    s-k.mlm.npy   static masking only: int64 rows (position, label); ids.npy then holds masked inputs
    chunk-k.json  the chunk's counts; written last, so its presence means the chunk is done
(The names are format.py's, which owns the directory's contract.)
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertpt import __version__
from bertpt.data.format import (
    IDS,
    IDX,
    MLM,
    MLM_NSP,
    SLICE_GLOB,
    SPLITS,
    TOKENIZER_DIR,
    Masking,
    Meta,
    NspPairing,
    SpecialIds,
    SplitInfo,
    WikipediaCounts,
    chunk_file,
    read_prepare_claim,
    shard_stem,
    slice_count,
    slice_file,
    write_meta,
)
from bertpt.data.instances import create_instances, documents_from_lengths
from bertpt.data.masking import StaticMasker
from bertpt.data.packing import pack, token_stream
from bertpt.data.sentences import split_sentences
from bertpt.data.tokenizer import load_tokenizer, special_ids
from bertpt.data.wikipedia import PLAIN, WIKITEXT, convert_articles
from bertpt.errors import BertptError
from bertpt.files import save_npy_atomic, write_atomic

ENCODE_BATCH = 8192  # sentences per encode call: big enough to amortise the call, small enough for RAM


def chunk_seed(seed: int, split: str, chunk: int) -> str:
    """The random.Random seed of one split of one chunk (a str seeds deterministically via SHA-512)."""
    return f"bertpt/{seed}/{split}/{chunk}"


# A random-next B comes from another document of the same split of the same chunk (a held-out B
# from a training document would leak training text into validation, and chunks are independent of
# each other by design), so each split of a chunk needs 2 documents. Considered and not taken:
# pooling the held-out documents of all chunks (it ties the chunks together: workers, slices and
# resuming stop being independent) and holding out 0 or 2 at random (a corpus of one small chunk
# would often get no validation split at all). The cost of the minimum: at --val_fraction 0.01 it
# changes only chunks of fewer than 150 documents (2 of 100 held out instead of 1). Measured on the
# built-in demo corpus (537 documents, 2.7 kB each): an 8 MB chunk holds ~2,950 such documents, so
# default chunks of prose are untouched (the demo's own split, 27 of 537 at 0.05, is unchanged).
MIN_SPLIT_DOCUMENTS = 2
# prepare cuts chunks of at least this many documents (a smaller tail joins the chunk before it),
# so both splits can have their minimum.
MIN_CHUNK_DOCUMENTS = 2 * MIN_SPLIT_DOCUMENTS


def held_out_count(n_documents: int, val_fraction: float) -> int:
    """How many of a chunk's `n_documents` (non-empty, kept) documents are held out for validation:
    round(val_fraction x n), raised to MIN_SPLIT_DOCUMENTS and leaving at least that many to train on;
    0 when val_fraction is 0 or the chunk has fewer than MIN_CHUNK_DOCUMENTS documents (they all train)."""
    if val_fraction <= 0 or n_documents < MIN_CHUNK_DOCUMENTS:
        return 0
    return min(n_documents - MIN_SPLIT_DOCUMENTS, max(MIN_SPLIT_DOCUMENTS, round(val_fraction * n_documents)))


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


@dataclass(frozen=True)
class ChunkSettings:
    """The settings a chunk's output depends on (bertpt-prepare's flags of the same names)."""

    sentence_splitter: str
    min_doc_tokens: int
    val_fraction: float
    seed: int
    max_seq_length: int
    short_seq_prob: float
    dupe_factor: int
    masking: Masking
    objective: str = MLM_NSP  # format.OBJECTIVES
    # wikipedia.MARKUPS: PLAIN documents are text; WIKITEXT documents are articles of a MediaWiki dump, turned into
    # prose here, in the workers (wikipedia.article_text), so that the conversion runs on all cores
    markup: str = PLAIN

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> ChunkSettings:
        """From the settings record of prepare.json (PrepareConfig.data_settings())."""
        return cls(
            sentence_splitter=s["sentence_splitter"],
            min_doc_tokens=s["min_doc_tokens"],
            val_fraction=s["val_fraction"],
            seed=s["seed"],
            max_seq_length=s["max_seq_length"],
            short_seq_prob=s["short_seq_prob"],
            dupe_factor=s["dupe_factor"],
            masking=Masking(
                static=s["static_masking"],
                whole_word_mask=s["whole_word_mask"],
                masked_lm_prob=s["masked_lm_prob"],
                max_predictions_per_seq=s["max_predictions_per_seq"],
            ),
            objective=s.get("objective", MLM_NSP),  # absent from settings recorded before the choice existed
            markup=s.get("markup", PLAIN),  # absent from settings recorded before dumps were read
        )


class ChunkWriter:
    """Worker-side state: the tokenizer and the settings, built once per process."""

    def __init__(
        self,
        tokenizer_json: str,
        settings: ChunkSettings,
        special_ids: SpecialIds,
        vocab_size: int,
        is_continuation: list[bool] | None,
        out_dir: str,
    ):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(tokenizer_json)
        self.s, self.ids, self.vocab_size, self.out = settings, special_ids, vocab_size, Path(out_dir)
        self.dtype = token_dtype(vocab_size)
        self.is_continuation = None if is_continuation is None else np.array(is_continuation, dtype=bool)

    def tokenize(self, documents: list[str]) -> tuple[np.ndarray, list[list[int]], int]:
        """Documents → (flat token ids of all kept documents, segment lengths per kept document,
        documents dropped as shorter than min_doc_tokens). Empty segments are dropped, as Google does."""
        sentences = [split_sentences(d, self.s.sentence_splitter) for d in documents]
        flat_sentences = list(itertools.chain.from_iterable(sentences))
        pieces, lengths = [], []
        for start in range(0, len(flat_sentences), ENCODE_BATCH):
            encodings = self.tok.encode_batch_fast(
                flat_sentences[start : start + ENCODE_BATCH], add_special_tokens=False
            )
            ids = [e.ids for e in encodings]
            lengths.extend(map(len, ids))
            pieces.append(np.fromiter(itertools.chain.from_iterable(ids), dtype=self.dtype))
        flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=self.dtype)
        seg_lengths, k, dropped = [], 0, 0
        keep = np.ones(len(flat), dtype=bool)
        pos = 0
        for doc in sentences:
            doc_lengths = lengths[k : k + len(doc)]
            k += len(doc)
            n = sum(doc_lengths)
            if n and n >= self.s.min_doc_tokens:
                seg_lengths.append([x for x in doc_lengths if x])
            else:
                dropped += bool(doc)
                keep[pos : pos + n] = False
            pos += n
        return (flat if keep.all() else flat[keep]), seg_lengths, dropped

    def __call__(self, chunk: int, documents: list[str]) -> dict:
        n_input = len(documents)
        wikipedia = None
        if self.s.markup == WIKITEXT:
            documents, wikipedia = convert_articles(documents)  # skipped articles become "", dropped as empty
        flat, seg_lengths, dropped = self.tokenize(documents)
        docs = documents_from_lengths(seg_lengths)
        # the text's tokens and its [UNK]s, for meta.json's exact [UNK] rate
        unk_counts = {"text_tokens": len(flat), "unk_tokens": int(np.count_nonzero(flat == self.ids.unk))}

        # Hold out whole documents, so validation never sees a sentence of a training document.
        # The same documents are held out for either objective, so that their held-out figures compare.
        n, f = len(docs), self.s.val_fraction
        n_val = held_out_count(n, f)
        nsp = self.s.objective == MLM_NSP
        val = set(random.Random(chunk_seed(self.s.seed, "split", chunk)).sample(range(n), n_val))
        stats = {
            "chunk": chunk,
            "input_documents": n_input,
            "short_documents": dropped,
            # how this chunk kept every random-next B in another document (see held_out_count)
            "held_out_raised": int(n_val > round(f * n)),
            "no_held_out": int(f > 0 and 0 < n < MIN_CHUNK_DOCUMENTS),
            "lone_documents": int(n == 1 and nsp),
            **unk_counts,
            "splits": {},
        }
        if wikipedia is not None:
            stats["wikipedia"] = wikipedia  # {"disambiguation": n, "empty": n}
        for split in SPLITS:
            split_docs = [d for i, d in enumerate(docs) if (i in val) == (split == "val")]
            if len(split_docs) < (MIN_SPLIT_DOCUMENTS if nsp else 1):
                continue  # only a lone training document (n == 1): no instance could pair it honestly
            rng = random.Random(chunk_seed(self.s.seed, split, chunk))
            masker = None
            m = self.s.masking
            if m.static:
                masker = StaticMasker(
                    flat,
                    self.ids,
                    self.vocab_size,
                    m.masked_lm_prob,
                    m.max_predictions_per_seq,
                    self.is_continuation if m.whole_word_mask else None,
                )
            stem = shard_stem(split, chunk)
            if nsp:
                instances = create_instances(
                    split_docs, self.s.max_seq_length, self.s.short_seq_prob, self.s.dupe_factor, rng, masker
                )
                written = self.write(stem, flat, instances)
            else:
                written = self.write_packed(stem, flat, split_docs, rng, masker)
            stats["splits"][split] = {
                "stem": stem,
                "documents": len(split_docs),
                "sentences": sum(len(d) - 1 for d in split_docs),
                **written,
            }
        write_atomic(self.out / chunk_file(chunk), json.dumps(stats).encode())
        return stats

    def write(self, stem: str, flat: np.ndarray, instances) -> dict:
        n = len(instances)
        idx = np.zeros((n, 6), dtype=np.int64)
        if n:
            spans = np.array([x[:5] for x in instances], dtype=np.int64)  # a_start a_end b_start b_end rnd
            a_len, b_len = spans[:, 1] - spans[:, 0], spans[:, 3] - spans[:, 2]
            idx[:, 1] = a_len + b_len + 3
            idx[1:, 0] = np.cumsum(idx[:-1, 1])
            idx[:, 2] = a_len + 2
            idx[:, 3] = spans[:, 4]
        ids = np.empty(int(idx[:, 1].sum()), dtype=self.dtype)
        cls_id, sep_id = self.ids.cls, self.ids.sep
        for (o, length, al, *_), x in zip(idx.tolist(), instances):
            ids[o] = cls_id
            ids[o + 1 : o + al - 1] = flat[x.a_start : x.a_end]
            ids[o + al - 1] = sep_id
            ids[o + al : o + length - 1] = flat[x.b_start : x.b_end]
            ids[o + length - 1] = sep_id
        return self.save(stem, ids, idx, [x.masks for x in instances] if self.s.masking.static else None)

    def write_packed(self, stem: str, flat: np.ndarray, documents, rng: random.Random, masker) -> dict:
        """Objective mlm: the documents packed to the full length (packing.py), in an order shuffled by `rng`
        once per --dupe_factor pass (each pass another order, so other cuts); static masks then drawn from
        `rng` instance by instance."""
        order: list = []
        for _ in range(self.s.dupe_factor):
            shuffled = list(documents)
            rng.shuffle(shuffled)
            order += shuffled
        ids, lengths = pack(token_stream(order, flat, self.ids.sep), self.s.max_seq_length, self.ids.cls, self.ids.sep)
        idx = np.zeros((len(lengths), 6), dtype=np.int64)
        idx[:, 1] = lengths
        idx[1:, 0] = np.cumsum(lengths[:-1])
        idx[:, 2] = lengths  # one segment: "[CLS] A [SEP]" is the whole instance, token type ids all 0
        masks = None
        if masker is not None:
            masks = [masker.mask_tokens(ids[o : o + n].tolist(), rng) for o, n in zip(idx[:, 0].tolist(), lengths)]
        return self.save(stem, ids, idx, masks)

    def save(self, stem: str, ids: np.ndarray, idx: np.ndarray, masks: list | None) -> dict:
        """Write a split's shard files: ids, idx and, with static `masks` (one instances.Masks per row of
        idx), the (position, label) rows, the inputs showing the masked tokens. Returns its counts."""
        n = len(idx)
        if masks is not None:
            counts = np.array([len(x.positions) for x in masks], dtype=np.int64)
            idx[:, 5] = counts
            idx[1:, 4] = np.cumsum(counts[:-1])
            mlm = np.array([(p, lab) for x in masks for p, lab in zip(x.positions, x.labels)], dtype=np.int64).reshape(
                -1, 2
            )
            shown = np.array([s for x in masks for s in x.replacements], dtype=np.int64)
            ids[np.repeat(idx[:, 0], counts) + mlm[:, 0]] = shown  # the inputs show the masked tokens
            save_npy_atomic(self.out / (stem + MLM), mlm)
        save_npy_atomic(self.out / (stem + IDS), ids)
        save_npy_atomic(self.out / (stem + IDX), idx)
        return {"instances": n, "tokens": int(idx[:, 1].sum()), "random_next": int(idx[:, 3].sum())}


# ---------------------------------------------------------------------------------------------
# The index: meta.json


def merge(out: Path) -> Meta:
    """Check that every chunk of every slice is done and write meta.json (atomically, last); returns it."""
    claim = read_prepare_claim(out)
    if claim is None:
        raise BertptError(f"{out} holds no bertpt-prepare run to merge (no prepare.json)")
    by_count: dict[int, dict] = {}  # slice files grouped by their number of slices
    for p in sorted(out.glob(SLICE_GLOB)):
        by_count.setdefault(slice_count(p.name), {})[p.name] = json.loads(p.read_text())
    if not by_count:
        raise BertptError(f"{out}: no slice has finished yet")
    # Prefer a complete set; a directory re-run with another --num_slices may hold several.
    num_slices = max(by_count, key=lambda n: (len(by_count[n]) == n, -n))
    slices = by_count[num_slices]
    missing_slices = [i for i in range(num_slices) if slice_file(i, num_slices) not in slices]
    n_chunks = {s["chunks"] for s in slices.values()}
    if missing_slices or len(n_chunks) != 1:
        raise BertptError(
            f"{out}: slices {missing_slices} of {num_slices} have not finished (or the slices read "
            "different inputs); run them, then --merge again"
        )
    n_chunks = n_chunks.pop()
    chunks = []
    for k in range(n_chunks):
        p = out / chunk_file(k)
        if not p.is_file():
            raise BertptError(f"{out}: chunk {k} is not done; re-run the prepare command to finish it")
        chunks.append(json.loads(p.read_text()))
    splits: dict[str, SplitInfo] = {}
    for name in SPLITS:
        parts = [c["splits"][name] for c in chunks if name in c["splits"]]
        if not parts:
            continue
        n = sum(p["instances"] for p in parts)
        splits[name] = SplitInfo(
            shards=[p["stem"] for p in parts],
            documents=sum(p["documents"] for p in parts),
            sentences=sum(p["sentences"] for p in parts),
            instances=n,
            tokens=sum(p["tokens"] for p in parts),
            random_next_fraction=round(sum(p["random_next"] for p in parts) / max(n, 1), 4),
        )
    pairing = {
        key: sum(c.get(key, 0) for c in chunks)  # chunk files of earlier releases lack these counts
        for key in ("held_out_raised", "no_held_out", "lone_documents")
    }
    if "train" not in splits and pairing["lone_documents"]:
        n = pairing["lone_documents"]
        which = "only 1 usable document" if n == 1 else f"{n} usable documents, each alone in its chunk"
        raise BertptError(
            f"the input holds {which}"
            "; next-sentence prediction takes each random next sentence from another document, so it needs at "
            "least 2: end each document with a blank line (text files) or give one document per line (jsonl)"
        )
    if "train" not in splits or not splits["train"].instances:
        raise BertptError(
            "no document of the input produced a training instance (is the input empty, or --min_doc_tokens too high?)"
        )
    read = dict(next(iter(slices.values()))["read"])
    wikipedia = None
    dump_counts = read.pop("wikipedia", None)  # the reader's counts; what the workers skipped is in the chunks
    if dump_counts is not None:
        skipped = {k: sum(c.get("wikipedia", {}).get(k, 0) for c in chunks) for k in ("disambiguation", "empty")}
        wikipedia = WikipediaCounts(**dump_counts, **skipped)
    tok = load_tokenizer(out / TOKENIZER_DIR)
    vocab_size = len(tok.backend_tokenizer.get_vocab(with_added_tokens=False))
    settings = ChunkSettings.from_settings(claim["settings"])
    meta = Meta(
        vocab_size=vocab_size,
        special_ids=SpecialIds(**special_ids(tok)),
        max_seq_length=settings.max_seq_length,
        masking=settings.masking,
        splits=splits,
        tokenizer_hash=claim["tokenizer_hash"],
        tokenizer=TOKENIZER_DIR,
        token_dtype=token_dtype(vocab_size).name,
        bertpt_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        settings=claim["settings"],
        chunks=n_chunks,
        read={**read, "short_documents": sum(c["short_documents"] for c in chunks)},
        seconds=max(x["seconds"] for x in slices.values()),
        pairing=NspPairing(min_split_documents=MIN_SPLIT_DOCUMENTS, **pairing),
        unk_rate=unk_rate(chunks),
        objective=settings.objective,
        wikipedia=wikipedia,
        directory=out,
    )
    write_meta(out, meta)
    return meta


def unk_rate(chunks: list[dict]) -> float | None:
    """The share of [UNK] among the text tokens of all chunks (chunk-k.json counts); None when a
    chunk was written before the counts were recorded."""
    if not chunks or any("unk_tokens" not in c for c in chunks):
        return None
    return sum(c["unk_tokens"] for c in chunks) / max(sum(c["text_tokens"] for c in chunks), 1)


# ---------------------------------------------------------------------------------------------
# Process-pool plumbing: one ChunkWriter per worker process.
_writer: ChunkWriter | None = None


def init_worker(*args) -> None:
    global _writer
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # parallelism comes from the processes
    _writer = ChunkWriter(*args)


def run_chunk(chunk: int, documents: list[str]) -> dict:
    assert _writer is not None
    return _writer(chunk, documents)
