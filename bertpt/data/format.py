"""The prepared-data directory: its file names and its index, meta.json, as typed objects.

This module is the one owner of the directory's contract. bertpt-prepare writes it (shards.py
writes the shard files and, last, meta.json through `write_meta`); training, the benchmark and
the tests read it through `load_meta`. No other module opens meta.json or knows its keys.

    tokenizer/                 the tokenizer (BertTokenizerFast.from_pretrained loads it)
    prepare.json               the settings, written before any chunk: a re-run must match them
    {train,val}-NNNNN.ids.npy  a chunk's instances' token ids back to back (see shards.py)
    {train,val}-NNNNN.idx.npy  one int64 row per instance (objective mlm: the NSP label column is 0 and
                               unused, the segment-A length is the whole length: token type ids all 0)
    {train,val}-NNNNN.mlm.npy  static masking only: (position, label) rows
    chunk-NNNNN.json           a finished chunk's counts
    slice-I-of-N.json          a finished slice's reading counts
    meta.json                  the index; written last, so its presence means the directory is complete

Compatibility: meta.json of any earlier release of the same FORMAT_VERSION is read (fields added
since have defaults, unknown keys are ignored), and `write_meta` keeps the keys earlier readers
use (top-level masked_lm_prob / max_predictions_per_seq, masking.whole_word).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bertpt.errors import BertptError
from bertpt.files import write_atomic

FORMAT_VERSION = 2  # of the prepared directory; readers refuse other versions
SPLITS = ("train", "val")

# The pretraining objectives a directory can be prepared for (bertpt-prepare --objective):
# MLM_NSP, Google's NSP instances `[CLS] A [SEP] B [SEP]` with a next-sentence label (BERT);
# MLM_ONLY, contiguous text packed to the full length, `[CLS] text [SEP]`, one segment and no label
# (RoBERTa's FULL-SENTENCES packing, Liu et al. 2019, sec. 4.2, cut at the length rather than at a sentence).
MLM_NSP, MLM_ONLY = "mlm_nsp", "mlm"  # (not "MLM": that name is the .mlm.npy shard suffix below)
OBJECTIVES = (MLM_NSP, MLM_ONLY)

META_FILE = "meta.json"
PREPARE_FILE = "prepare.json"
TOKENIZER_DIR = "tokenizer"
IDS, IDX, MLM = ".ids.npy", ".idx.npy", ".mlm.npy"  # the suffixes of a shard's files

# Every name bertpt-prepare writes (with a `.tmp-*` tail while it is being written); nothing else
# in an output directory is ever deleted.
OWNED_NAME = re.compile(
    r"(tokenizer|prepare\.json|meta\.json|chunk-\d+\.json|slice-\d+-of-\d+\.json"
    r"|(train|val)-\d+\.(ids|idx|mlm)\.npy)(\.tmp-.*)?"
)
SLICE_GLOB = "slice-*-of-*.json"
CHUNK_GLOB = "chunk-*.json"


def shard_stem(split: str, chunk: int) -> str:
    """The common stem of one split's shard files of chunk `chunk`, e.g. train-00007."""
    return f"{split}-{chunk:05d}"


def chunk_file(chunk: int) -> str:
    return f"chunk-{chunk:05d}.json"


def chunk_of(chunk_file_name: str) -> int:
    """The chunk index of a chunk-NNNNN.json name."""
    return int(chunk_file_name[len("chunk-") : -len(".json")])


def slice_file(index: int, count: int) -> str:
    return f"slice-{index}-of-{count}.json"


def slice_count(slice_file_name: str) -> int:
    """N of a slice-I-of-N.json name."""
    return int(slice_file_name.split("-of-")[1][: -len(".json")])


def is_complete(data_dir: str | Path) -> bool:
    """Whether bertpt-prepare finished `data_dir` (its meta.json exists)."""
    return (Path(data_dir) / META_FILE).exists()


@dataclass(frozen=True)
class SpecialIds:
    """The ids of the tokenizer's special tokens."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


@dataclass(frozen=True)
class Masking:
    """How instances are masked for the MLM objective (Google's create_pretraining_data.py terms).

    static: the masks were drawn once by bertpt-prepare and are stored with the data (Google's
    recipe); otherwise they are drawn at batch time, differently on every epoch (dynamic masking).
    whole_word_mask: a `##` WordPiece is masked together with the word it continues.
    masked_lm_prob: the fraction of an instance's tokens that are predicted.
    max_predictions_per_seq: the most predicted positions per instance.
    """

    static: bool = False
    whole_word_mask: bool = False
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Masking:
        """From asdict(masking) (e.g. a checkpoint's record); unknown keys are ignored, missing ones default."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class SplitInfo:
    """One split: its shard stems in order and its counts."""

    shards: list[str]
    documents: int = 0
    sentences: int = 0
    instances: int = 0
    tokens: int = 0
    random_next_fraction: float = 0.0


@dataclass(frozen=True)
class NspPairing:
    """How bertpt-prepare kept every random-next B in another document than A's (shards.held_out_count).

    min_split_documents: the documents each split of a chunk needs (0: data of a release that did not
    record this, whose random-next pairs may come from A's own document); held_out_raised: chunks that
    held out that minimum instead of round(val_fraction x documents); no_held_out: chunks too small to
    hold any out; lone_documents: documents alone in their chunk, which gave no instance.
    """

    min_split_documents: int = 0
    held_out_raised: int = 0
    no_held_out: int = 0
    lone_documents: int = 0

    def note(self) -> str | None:
        """One clause for bertpt-prepare's summary line, or None when no chunk needed adjusting."""
        parts = []
        if self.held_out_raised:
            parts.append(
                f"{self.held_out_raised} chunk(s) held out {self.min_split_documents} documents, more than "
                "--val_fraction asks"
            )
        if self.no_held_out:
            parts.append(f"{self.no_held_out} chunk(s) too small to hold out any")
        if self.lone_documents:
            parts.append(f"{self.lone_documents} document(s) alone in a chunk skipped")
        if not parts:
            return None
        return (
            f"{'; '.join(parts)} (a random next sentence always comes from another document of the same split "
            f"and chunk, so each needs {self.min_split_documents})"
        )


@dataclass(frozen=True)
class WikipediaCounts:
    """The pages of the MediaWiki XML dumps a directory was prepared from (wikipedia.py), by what became of them.

    pages: every <page> read; other_namespaces: pages outside the main (article) namespace (talk, user, template,
    category... pages); redirects: main-namespace redirects; articles: the rest, converted to prose;
    disambiguation: articles that are disambiguation pages; empty: articles with no prose left (all lists or
    tables). The documents prepared are the articles less the disambiguation and empty ones.
    """

    pages: int = 0
    other_namespaces: int = 0
    redirects: int = 0
    articles: int = 0
    disambiguation: int = 0
    empty: int = 0

    @property
    def documents(self) -> int:
        """The articles that became documents."""
        return self.articles - self.disambiguation - self.empty

    def note(self) -> str:
        """One line for bertpt-prepare's summary."""

        def n(count: int, noun: str) -> str:  # noun: the singular, whose plural adds an "s"
            return f"{count:,} {noun}{'' if count == 1 else 's'}"

        # meta.json's names: the articles (main-namespace pages that are no redirect) give the documents.
        return (
            f"Wikipedia: read {n(self.pages, 'page')}: {n(self.articles, 'article')}, {n(self.redirects, 'redirect')}, "
            f"{n(self.other_namespaces, 'page')} outside the article namespace; the articles gave "
            f"{n(self.documents, 'document')} ({n(self.disambiguation, 'disambiguation page')} and "
            f"{n(self.empty, 'article')} with no prose left skipped)"
        )


@dataclass
class Meta:
    """meta.json: what a prepared directory holds. `directory` is where it was read from (not stored)."""

    vocab_size: int
    special_ids: SpecialIds
    max_seq_length: int
    masking: Masking
    splits: dict[str, SplitInfo]
    tokenizer_hash: str
    tokenizer: str = TOKENIZER_DIR  # the tokenizer's directory, relative to the data directory
    token_dtype: str = "uint16"
    format: int = FORMAT_VERSION
    bertpt_version: str = ""
    created: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # bertpt-prepare's data settings, as recorded
    chunks: int = 0
    read: dict[str, Any] = field(default_factory=dict)  # reading counts (corpus.ReadStats and short_documents)
    seconds: float = 0.0
    pairing: NspPairing = field(default_factory=NspPairing)
    # The share of the text's tokens (all documents kept, before instances are made) that are [UNK];
    # None in data prepared before it was recorded.
    unk_rate: float | None = None
    # MLM_NSP or MLM_ONLY (see OBJECTIVES); data prepared before the choice existed is MLM_NSP.
    objective: str = MLM_NSP
    # What the MediaWiki XML dumps of the input held; None when the input was not a dump (and in data prepared
    # before dumps were read).
    wikipedia: WikipediaCounts | None = None
    directory: Path | None = field(default=None, compare=False)

    @property
    def nsp(self) -> bool:
        """Whether the instances carry a next-sentence label (objective MLM_NSP)."""
        return self.objective == MLM_NSP

    def path(self, name: str) -> Path:
        """A file of the directory this was read from."""
        if self.directory is None:
            raise ValueError("this Meta was not read from a directory")
        return self.directory / name

    def tokenizer_path(self) -> Path:
        return self.path(self.tokenizer)

    def to_json(self) -> dict[str, Any]:
        """The dict meta.json holds: the fields, plus the keys earlier readers use."""
        m = self.masking
        return {
            "format": self.format,
            "bertpt_version": self.bertpt_version,
            "created": self.created,
            "tokenizer": self.tokenizer,
            "tokenizer_hash": self.tokenizer_hash,
            "vocab_size": self.vocab_size,
            "special_ids": asdict(self.special_ids),
            "token_dtype": self.token_dtype,
            "max_seq_length": self.max_seq_length,
            "max_predictions_per_seq": m.max_predictions_per_seq,  # read by release 0.1
            "masked_lm_prob": m.masked_lm_prob,  # read by release 0.1
            "masking": {
                "static": m.static,
                "whole_word": m.whole_word_mask,
                "masked_lm_prob": m.masked_lm_prob,
                "max_predictions_per_seq": m.max_predictions_per_seq,
            },
            "settings": self.settings,
            "chunks": self.chunks,
            "read": self.read,
            "splits": {name: asdict(s) for name, s in self.splits.items()},
            "seconds": self.seconds,
            "nsp_pairing": asdict(self.pairing),
            "unk_rate": self.unk_rate,
            "objective": self.objective,
            # "documents" (articles less disambiguation and empty ones) for readers; from_json recomputes it
            "wikipedia": None
            if self.wikipedia is None
            else {**asdict(self.wikipedia), "documents": self.wikipedia.documents},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], directory: Path | None = None) -> Meta:
        """The inverse of `to_json`; also reads release 0.1's meta.json. Raises KeyError/TypeError/
        ValueError on a dict that lacks required keys or holds wrong types (`load_meta` reports them)."""
        mk = d.get("masking") or {}
        masking = Masking(
            static=bool(mk["static"]),
            whole_word_mask=bool(mk["whole_word"]),
            masked_lm_prob=float(mk.get("masked_lm_prob", d["masked_lm_prob"])),
            max_predictions_per_seq=int(mk.get("max_predictions_per_seq", d["max_predictions_per_seq"])),
        )
        split_fields = SplitInfo.__dataclass_fields__
        splits = {
            name: SplitInfo(**{k: v for k, v in s.items() if k in split_fields}) for name, s in d["splits"].items()
        }
        special = {k: int(d["special_ids"][k]) for k in SpecialIds.__dataclass_fields__}
        optional = {
            k: d[k]
            for k in (
                "tokenizer",
                "token_dtype",
                "bertpt_version",
                "created",
                "settings",
                "chunks",
                "read",
                "seconds",
                "unk_rate",
                "objective",
            )
            if k in d
        }
        pairing = d.get("nsp_pairing") or {}  # absent before this was recorded
        wiki = d.get("wikipedia")  # absent before dumps were read, null for other input
        if wiki is not None:
            optional["wikipedia"] = WikipediaCounts(
                **{k: int(v) for k, v in wiki.items() if k in WikipediaCounts.__dataclass_fields__}
            )
        return cls(
            pairing=NspPairing(**{k: int(v) for k, v in pairing.items() if k in NspPairing.__dataclass_fields__}),
            vocab_size=int(d["vocab_size"]),
            special_ids=SpecialIds(**special),
            max_seq_length=int(d["max_seq_length"]),
            masking=masking,
            splits=splits,
            tokenizer_hash=str(d["tokenizer_hash"]),
            format=int(d["format"]),
            directory=directory,
            **optional,
        )


def load_meta(data_dir: str | Path) -> Meta:
    """Read and check `data_dir`/meta.json. Raises BertptError (one line) when the directory is not a
    finished prepared directory, was prepared in another format version, or its meta.json is damaged."""
    data_dir = Path(data_dir)
    path = data_dir / META_FILE
    if not path.is_file():
        raise BertptError(
            f"{data_dir} is not a prepared data directory (no {META_FILE}, or an interrupted "
            f"bertpt-prepare); run `bertpt-prepare YOUR_TEXT --output_dir {data_dir}`"
        )
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BertptError(f"{path} is damaged ({e}); prepare the data again") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT_VERSION:
        version = d.get("format") if isinstance(d, dict) else None
        raise BertptError(
            f"{data_dir} was prepared in data format {version}, this bertpt reads "
            f"format {FORMAT_VERSION}; prepare it again"
        )
    try:
        meta = Meta.from_json(d, directory=data_dir)
    except KeyError as e:
        raise BertptError(f"{path} is incomplete (no {e}); prepare the data again") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise BertptError(f"{path} is damaged ({e}); prepare the data again") from None
    if meta.objective not in OBJECTIVES:
        raise BertptError(
            f"{path} names objective {meta.objective!r}, this bertpt knows {', '.join(OBJECTIVES)}; "
            "prepare the data again"
        )
    return meta


def write_meta(data_dir: str | Path, meta: Meta) -> None:
    """Write meta.json atomically (temporary file, then rename): its presence marks the directory complete."""
    write_atomic(Path(data_dir) / META_FILE, json.dumps(meta.to_json(), indent=2).encode())


def read_prepare_claim(data_dir: str | Path) -> dict[str, Any] | None:
    """prepare.json: {"format", "settings", "tokenizer_hash"} of the run that owns the directory, or None."""
    path = Path(data_dir) / PREPARE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_prepare_claim(data_dir: str | Path, claim: dict[str, Any]) -> None:
    write_atomic(Path(data_dir) / PREPARE_FILE, json.dumps(claim, indent=1).encode())
