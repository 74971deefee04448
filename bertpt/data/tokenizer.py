"""WordPiece tokenizer: train one with `tokenizers`, or load a vocab.txt / Hugging Face directory.

Whatever the source, the result is a `transformers` BERT tokenizer (Rust backend), saved into the
prepared data directory so that `BertTokenizerFast.from_pretrained(dir)` loads it and the HF export
can ship it unchanged.

This module also owns the checks that a tokenizer fits the text (bertpt-prepare runs them before it
writes data): the training alphabet follows --min_frequency (`count_characters`, `train_tokenizer`),
the vocabulary size reached (`vocabulary_size_warning`), the casing / accent settings against the
vocabulary's entries and a directory's own configuration (`open_tokenizer`), and the [UNK] rate on
the text (`count_unk`, `check_unk_rate`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertpt.errors import BertptError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Settings that make more than this share of a vocabulary's entries unreachable contradict it.
CONFLICT_SHARE = 0.01
# Above this [UNK] rate (and under --max_unk_rate) bertpt-prepare warns.
UNK_WARN_RATE = 0.01
# The [UNK] rate is checked on the input's first documents, about this many characters of them.
SAMPLE_CHARS = 1_000_000
_COUNT_BLOCK = 1 << 22  # characters per bincount in count_characters


def _bert_normalizer(cased: bool, strip_accents: bool | None, full: bool = True):
    """BERT's normalizer (what BertTokenizerFast builds); full=False leaves out the control-character
    cleaning and the spaces around CJK characters, to see the case / accent effect alone."""
    from tokenizers.normalizers import BertNormalizer

    return BertNormalizer(clean_text=full, handle_chinese_chars=full, strip_accents=strip_accents, lowercase=not cased)


def count_characters(texts: Iterable[str], cased: bool = False, strip_accents: bool | None = None) -> Counter:
    """How often each character occurs in `texts` as the WordPiece trainer sees them: after BERT's
    normalization (lowercasing and accent stripping as given), whitespace left out. One streaming
    pass; code points are counted with numpy in blocks, then each distinct one is normalized once
    (BertNormalizer works character by character, so the counts are the trainer's exactly)."""
    raw = np.zeros(0x110000, dtype=np.int64)
    block: list[str] = []
    size = 0

    def flush() -> None:
        codes = np.frombuffer("".join(block).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        raw[:] += np.bincount(codes, minlength=0x110000)
        block.clear()

    for t in texts:
        block.append(t)
        size += len(t)
        if size >= _COUNT_BLOCK:
            flush()
            size = 0
    if block:
        flush()
    normalizer = _bert_normalizer(cased, strip_accents)
    counts: Counter = Counter()
    for code in np.flatnonzero(raw).tolist():
        if 0xD800 <= code <= 0xDFFF:  # a lone surrogate is no character (Rust strings cannot hold one)
            continue
        for c in normalizer.normalize_str(chr(code)):
            if not c.isspace():
                counts[c] += int(raw[code])
    return counts


def _own_word(c: str, normalizer, pre_tokenizer) -> bool:
    """Whether BERT's pre-tokenization always cuts `c` out as a word of its own (punctuation, CJK
    characters), so that it never needs a `##` form."""
    return len(pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(f"a{c}a"))) == 3


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    cased: bool = False,
    min_frequency: int = 2,
    strip_accents: bool | None = None,
    show_progress: bool = False,
    char_counts: Mapping[str, int] | None = None,
):
    """Train a BERT WordPiece vocabulary on an iterable of texts. The texts are streamed: the Rust
    trainer keeps word counts, never the corpus, so memory follows the number of distinct words.

    The alphabet (`tokenizers`' WordPieceTrainer: limit_alphabet / initial_alphabet, which
    BertWordPieceTokenizer.train_from_iterator caps at 1,000 characters by default) follows
    min_frequency: given `char_counts` (count_characters of the same texts), every character seen
    at least min_frequency times is in it, exactly (initial_alphabet = those characters,
    limit_alphabet = their number: the trainer drops the least frequent others). Rarer characters
    are added after training into the room the vocabulary has left below vocab_size, most frequent
    first: a pair holding a character seen fewer than min_frequency times occurs fewer than
    min_frequency times, so the trainer never merges one, and adding them afterwards gives what
    training with them would, without taking places from merges. Without `char_counts`, every
    character seen is in the alphabet. min_frequency is also the trainer's: the least count of a
    pair to be merged; training stops at vocab_size or when no pair is left that frequent."""
    from tokenizers import Tokenizer, decoders, trainers
    from tokenizers.models import WordPiece
    from tokenizers.pre_tokenizers import BertPreTokenizer
    from transformers import BertTokenizerFast

    # What tokenizers' BertWordPieceTokenizer builds, with the trainer made here so that no
    # limit_alphabet default applies. strip_accents=None is BERT's rule: stripped exactly when lowercasing.
    wp = Tokenizer(WordPiece(unk_token="[UNK]"))
    wp.normalizer = _bert_normalizer(cased, strip_accents)
    wp.pre_tokenizer = BertPreTokenizer()
    wp.decoder = decoders.WordPiece(prefix="##")
    alphabet_args = {}
    if char_counts is not None:
        alphabet = sorted(c for c, n in char_counts.items() if n >= min_frequency)
        alphabet_args = {"initial_alphabet": alphabet, "limit_alphabet": len(alphabet)}
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=show_progress,
        continuing_subword_prefix="##",
        **alphabet_args,
    )
    wp.train_from_iterator(texts, trainer=trainer)
    vocab = wp.get_vocab()
    if char_counts is not None:
        rare = sorted((c for c, n in char_counts.items() if n < min_frequency), key=lambda c: (-char_counts[c], c))
        pre_tokenizer = BertPreTokenizer()
        for c in rare:
            pieces = [p for p in (c, "##" + c) if p not in vocab]
            if _own_word(c, wp.normalizer, pre_tokenizer):
                pieces = pieces[:1] if pieces and pieces[0] == c else []
            if len(vocab) + len(pieces) > vocab_size:
                break
            for p in pieces:
                vocab[p] = len(vocab)
    return BertTokenizerFast(vocab=vocab, do_lower_case=not cased, strip_accents=strip_accents)


def vocabulary_size_warning(tok, vocab_size: int, min_frequency: int, char_counts: Mapping[str, int]) -> str | None:
    """One line when a trained vocabulary has not the size asked for, saying why; None when it has.
    Fewer: no pair of pieces is left that occurs min_frequency times (WordPiece training stops
    there). More: the characters seen min_frequency times and their ## forms alone exceed it."""
    n = len(tok.backend_tokenizer.get_vocab(with_added_tokens=False))
    kept = sum(1 for c in char_counts.values() if c >= min_frequency)
    if n < vocab_size:
        vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
        missing = sum(1 for c in char_counts if c not in vocab)
        chars = "all of its" if not missing else f"{len(char_counts) - missing:,} of its"
        return (
            f"the trained vocabulary has {n:,} entries, fewer than --vocab_size {vocab_size:,}: no pair of pieces "
            f"is left that occurs --min_frequency {min_frequency} times or more (too little text, or "
            f"too few distinct words: {sum(char_counts.values()):,} characters, {len(char_counts):,} distinct, "
            f"{chars} distinct characters in the vocabulary); it is complete for this text"
        )
    if n > vocab_size:
        return (
            f"the trained vocabulary has {n:,} entries, more than --vocab_size {vocab_size:,}: the {kept:,} "
            f"characters seen at least --min_frequency {min_frequency} times and their ## forms alone take that "
            "many; raise --vocab_size, or --min_frequency to keep fewer characters"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Casing and accents: flags, a directory's own configuration, and the vocabulary's entries


@dataclass(frozen=True)
class Casing:
    """How a tokenizer normalizes text: cased (no lowercasing) and strip_accents (None: BERT's rule,
    stripped exactly when lowercasing). `source` says where the settings came from; `note` and
    `warning` are one line each for the user (empty when there is nothing to say)."""

    cased: bool
    strip_accents: bool | None = None
    source: str = ""
    note: str = ""
    warning: str = ""

    @property
    def strips(self) -> bool:
        return (not self.cased) if self.strip_accents is None else self.strip_accents

    def same_effect(self, other: Casing) -> bool:
        return (self.cased, self.strips) == (other.cased, other.strips)

    def flags(self) -> str:
        """The bertpt-prepare flags that ask for these settings."""
        return f"--cased {str(self.cased).lower()} --strip_accents {str(self.strips).lower()}"


def _entries(vocab: Mapping[str, int]) -> list[str]:
    """A vocabulary's entries without the special tokens, in id order."""
    return [t for t in sorted(vocab, key=vocab.__getitem__) if t not in SPECIAL_TOKENS]


def _text(entry: str) -> str:
    """The text a vocabulary entry matches (a `##` piece without its prefix)."""
    return entry[2:] if entry.startswith("##") and len(entry) > 2 else entry


def _examples(entries: list[str], k: int = 4) -> str:
    """A few of `entries`, the longest (most word-like) first."""
    return ", ".join(repr(x) for x in sorted(entries, key=lambda e: (-len(_text(e)), e))[:k])


def casing_conflict(vocab: Mapping[str, int], casing: Casing) -> str | None:
    """Why `casing` contradicts the vocabulary, as a clause; None when it does not.

    Lowercasing / accent stripping contradict it when they never produce more than CONFLICT_SHARE
    of its entries (their text changes under the normalizer: 'Zola', 'é'). Keeping case contradicts
    an uncased vocabulary: one whose entries with a cased letter are nearly all lowercase (fewer than
    CONFLICT_SHARE of them hold an upper-case letter), where every capitalised word becomes [UNK]."""
    entries = _entries(vocab)
    if not casing.cased or casing.strips:
        normalizer = _bert_normalizer(casing.cased, casing.strips, full=False)
        never = [e for e in entries if normalizer.normalize_str(_text(e)) != _text(e)]
        if len(never) > CONFLICT_SHARE * len(entries):
            what = " and ".join(
                x for x, on in (("lowercasing", not casing.cased), ("accent stripping", casing.strips)) if on
            )
            verb = "produce" if " and " in what else "produces"
            return f"{what} never {verb} {len(never):,} of its {len(entries):,} entries (e.g. {_examples(never)})"
    if casing.cased:
        lower = [e for e in entries if _text(e) != _text(e).upper()]
        upper = [e for e in entries if _text(e) != _text(e).lower()]
        if len(lower) >= 20 and len(upper) <= CONFLICT_SHARE * len(lower):
            return (
                f"only {len(upper):,} of its {len(lower):,} entries with a cased letter have an upper-case one "
                "(an uncased vocabulary): with case kept, capitalised words become [UNK]"
            )
    return None


def infer_casing(vocab: Mapping[str, int]) -> Casing:
    """The settings a bare vocabulary implies: uncased with accents stripped (BERT's default) unless
    its entries contradict that; then lowercased with accents kept; then cased."""
    candidates = [Casing(False, None), Casing(False, False), Casing(True, None)]
    return next((c for c in candidates if casing_conflict(vocab, c) is None), candidates[0])


def _declared_casing(d: Path) -> tuple[bool | None, bool | None, str]:
    """A tokenizer directory's own settings: tokenizer_config.json's do_lower_case / strip_accents
    (which transformers applies), else its tokenizer.json's BertNormalizer; (cased, strip_accents,
    where) with cased None when it declares nothing."""
    cased: bool | None = None
    strip: bool | None = None
    where = []
    cfg_path, tok_path = d / "tokenizer_config.json", d / "tokenizer.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    normalizer = (json.loads(tok_path.read_text()).get("normalizer") or {}) if tok_path.is_file() else {}
    if normalizer.get("type") != "BertNormalizer":
        normalizer = {}
    if "do_lower_case" in cfg:
        cased = not cfg["do_lower_case"]
        where.append(f"tokenizer_config.json do_lower_case {str(cfg['do_lower_case']).lower()}")
        said = normalizer.get("lowercase")
        if said is not None and said != cfg["do_lower_case"]:  # the two files disagree; transformers obeys the config
            where.append(f"which its tokenizer.json normalizer contradicts (lowercase {str(said).lower()})")
    elif "lowercase" in normalizer:
        cased = not normalizer["lowercase"]
        where.append(f"tokenizer.json normalizer lowercase {str(normalizer['lowercase']).lower()}")
    if cfg.get("strip_accents") is not None:
        strip = bool(cfg["strip_accents"])
        where.append(f"tokenizer_config.json strip_accents {str(strip).lower()}")
    elif normalizer.get("strip_accents") is not None:
        strip = bool(normalizer["strip_accents"])
        where.append(f"tokenizer.json normalizer strip_accents {str(strip).lower()}")
    return cased, strip, ", ".join(where)


def _flag_text(cased: bool | None, strip_accents: bool | None) -> str:
    parts = []
    if cased is not None:
        parts.append("--cased" if cased else "--cased false")
    if strip_accents is not None:
        parts.append(f"--strip_accents {str(strip_accents).lower()}")
    return " ".join(parts)


def resolve_casing(
    vocab: Mapping[str, int], where: str, cased: bool | None, strip_accents: bool | None, declared=(None, None, "")
) -> Casing:
    """The casing to use a vocabulary with: the flags when given, else the directory's declared
    settings (`declared` = _declared_casing), else what the entries imply (infer_casing, said in
    `note` when it is not BERT's uncased default). Raises BertptError, naming both sides, when
    given flags contradict the directory's settings or the entries, or the directory's settings
    contradict its entries. A flag that contradicts a directory's settings its own entries
    contradict wins, with a `warning`."""
    d_cased, d_strip, d_where = declared
    flags = _flag_text(cased, strip_accents)
    if d_cased is None and d_strip is None:  # a bare vocabulary: the entries speak
        base = infer_casing(vocab)
        base_source = "its entries"
    else:
        base = Casing(bool(d_cased) if d_cased is not None else infer_casing(vocab).cased, d_strip)
        base_source = f"its {d_where}"
    want = Casing(
        base.cased if cased is None else cased,
        strip_accents if strip_accents is not None else base.strip_accents,
    )
    if not flags:
        conflict = casing_conflict(vocab, base) if d_cased is not None or d_strip is not None else None
        if conflict:
            raise BertptError(
                f"--tokenizer {where}: {base_source} contradict its vocabulary: {conflict}; fix its configuration, "
                f"or pass the flags that fit it (e.g. {infer_casing(vocab).flags()})"
            )
        note = ""
        if d_cased is None and (base.cased, base.strips) != (False, True):
            kind = "a cased vocabulary" if base.cased else "an uncased vocabulary with accents"
            evidence = casing_conflict(vocab, Casing(False, None))
            note = f"--tokenizer {where} is {kind} ({evidence}): using it as {base.flags()}"
        return Casing(base.cased, base.strip_accents, source=base_source, note=note)
    conflict = casing_conflict(vocab, want)
    if (d_cased is not None or d_strip is not None) and not want.same_effect(base):
        own = casing_conflict(vocab, base)
        if own is None or conflict:  # the directory's settings fit its entries (or neither fits): they stand
            raise BertptError(
                f"{flags} contradicts --tokenizer {where}: {base_source}; drop {flags} (the directory's settings "
                "apply) or change its configuration"
            )
        warning = f"{flags} overrides --tokenizer {where}'s {d_where}, which its vocabulary contradicts ({own})"
        return Casing(want.cased, want.strip_accents, source="the flags", warning=warning)
    if conflict:
        # the fitting settings nearest to what was asked: keep the given case setting if any fits with it
        near = [Casing(c, a) for c in (want.cased, not want.cased) for a in (want.strips, not want.strips)]
        fit = next((c for c in near if casing_conflict(vocab, c) is None), None)
        raise BertptError(
            f"{flags} contradicts --tokenizer {where}: {conflict}; "
            + (f"pass {fit.flags()} instead" if fit else "this vocabulary fits no casing setting")
        )
    return Casing(want.cased, want.strip_accents, source="the flags")


def open_tokenizer(path: str | Path, cased: bool | None = None, strip_accents: bool | None = None, strict=True):
    """Load a Hugging Face tokenizer directory, or a plain BERT vocab.txt; returns (tokenizer, Casing).

    cased / strip_accents None follow the tokenizer: a directory's own settings (resolve_casing),
    for a bare vocab.txt (or a directory holding only one) the casing its entries imply. strict:
    raise BertptError when flags contradict the directory's settings or the entries, or the
    directory's settings contradict its entries (bertpt-prepare); otherwise load as declared."""
    from tokenizers.models import WordPiece
    from transformers import BertTokenizerFast

    p = Path(path)
    if p.is_file():
        try:
            vocab = WordPiece.read_file(str(p))
        except Exception as e:  # tokenizers raises a bare Exception on unreadable files
            raise BertptError(f"--tokenizer {path}: cannot read it as a vocab.txt ({e})") from None
        declared = (None, None, "")
    elif p.is_dir():
        if not any((p / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
            raise BertptError(f"--tokenizer {path}: directory has neither tokenizer.json nor vocab.txt")
        try:
            declared = _declared_casing(p)
            tok = BertTokenizerFast.from_pretrained(str(p))
        except Exception as e:
            raise BertptError(f"--tokenizer {path}: cannot load it as a BERT tokenizer ({e})") from None
        vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
    else:
        raise BertptError(f"--tokenizer {path}: no such file or directory")
    if strict:
        casing = resolve_casing(vocab, str(path), cased, strip_accents, declared)
    elif cased is not None or declared[0] is not None or declared[1] is not None:
        casing = Casing(
            bool(cased) if cased is not None else bool(declared[0]) if declared[0] is not None else False,
            strip_accents if strip_accents is not None else declared[1],
        )
    else:
        casing = infer_casing(vocab)
    if p.is_file():
        tok = BertTokenizerFast(vocab=vocab, do_lower_case=not casing.cased, strip_accents=casing.strip_accents)
    elif _normalizer_casing(tok) != (casing.cased, casing.strips):  # transformers' defaults differ
        tok = BertTokenizerFast.from_pretrained(
            str(p), do_lower_case=not casing.cased, strip_accents=casing.strip_accents
        )
        if _normalizer_casing(tok) != (casing.cased, casing.strips):
            raise BertptError(f"--tokenizer {path}: cannot load it with {casing.flags()}")
    check_special_tokens(tok, str(path))
    return tok, casing


def _normalizer_casing(tok) -> tuple[bool, bool] | None:
    """(cased, strips accents) of a tokenizer's BertNormalizer; None for another normalizer."""
    n = json.loads(tok.backend_tokenizer.to_str()).get("normalizer") or {}
    if n.get("type") != "BertNormalizer":
        return None
    lower = bool(n.get("lowercase"))
    return not lower, lower if n.get("strip_accents") is None else bool(n["strip_accents"])


def load_tokenizer(path: str | Path, cased: bool | None = None, strip_accents: bool | None = None):
    """Load a Hugging Face tokenizer directory, or a plain BERT vocab.txt, as declared (open_tokenizer
    with strict=False): cased / strip_accents apply where given; a directory carries its own
    settings; a bare vocab.txt is used with the casing its entries imply."""
    return open_tokenizer(path, cased, strip_accents, strict=False)[0]


# ---------------------------------------------------------------------------------------------
# [UNK] on the text


@dataclass(frozen=True)
class UnkCount:
    """[UNK] tokens among `tokens` tokens of `characters` characters of text; `unknown`: the most
    frequent pieces of text that became [UNK], with their counts."""

    unk: int
    tokens: int
    characters: int
    unknown: tuple[tuple[str, int], ...] = ()

    @property
    def rate(self) -> float:
        return self.unk / self.tokens if self.tokens else 0.0


def count_unk(tok, texts: Iterable[str]) -> UnkCount:
    """Encode `texts` (no special tokens) and count the [UNK] tokens and the text they stand for."""
    texts = list(texts)
    unk_id = tok.convert_tokens_to_ids("[UNK]")
    unk, tokens = 0, 0
    unknown: Counter = Counter()
    for text, enc in zip(texts, tok.backend_tokenizer.encode_batch(texts, add_special_tokens=False)):
        tokens += len(enc.ids)
        for i, (a, b) in zip(enc.ids, enc.offsets):
            if i == unk_id:
                unk += 1
                unknown[text[a:b]] += 1
    return UnkCount(unk, tokens, sum(map(len, texts)), tuple(unknown.most_common(5)))


def sample_texts(texts: Iterable[str], characters: int = SAMPLE_CHARS) -> list[str]:
    """The first texts, until they hold `characters` characters (at least one text)."""
    out, size = [], 0
    for t in texts:
        out.append(t)
        size += len(t)
        if size >= characters:
            break
    return out


def check_unk_rate(count: UnkCount, max_unk_rate: float, where: str) -> str | None:
    """Raise BertptError when more than max_unk_rate of the tokens are [UNK]; return a one-line
    warning above UNK_WARN_RATE, else None. `where` names the text measured."""
    if not count.tokens:
        return None
    examples = ", ".join(f"{t!r} x{n}" for t, n in count.unknown)
    said = f"{count.rate:.2%} of the tokens of {where} ({count.unk:,} of {count.tokens:,}) are [UNK]" + (
        f" (most often {examples})" if examples else ""
    )
    if count.rate > max_unk_rate:
        raise BertptError(
            f"{said}, more than --max_unk_rate {max_unk_rate:g}: the tokenizer does not fit the text; use one "
            "that covers it (or train one: no --tokenizer), or pass --max_unk_rate 1.0 to accept it"
        )
    if count.rate > UNK_WARN_RATE:
        return f"{said}; the tokenizer fits the text poorly"
    return None


def check_special_tokens(tok, where: str) -> None:
    # transformers appends absent special tokens as "added" tokens; a BERT vocabulary must hold them.
    vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise BertptError(
            f"tokenizer {where} lacks the special tokens {' '.join(missing)}; BERT pretraining "
            "needs all of [PAD] [UNK] [CLS] [SEP] [MASK]"
        )


def tokenizer_hash(tok) -> str:
    """A short fingerprint of what changes token ids: the vocabulary and the normalizer settings."""
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    normalizer = json.loads(tok.backend_tokenizer.to_str()).get("normalizer")
    blob = json.dumps([vocab, normalizer], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def special_ids(tok) -> dict[str, int]:
    return {
        name: tok.convert_tokens_to_ids(tok_str)
        for name, tok_str in zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS)
    }


def save_tokenizer(tok, out_dir: str | Path) -> None:
    """save_pretrained (tokenizer.json + config) plus a plain vocab.txt for tools that want one."""
    out = Path(out_dir)
    tok.save_pretrained(str(out))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (out / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")


def continuation_table(tok) -> list[bool]:
    """is_continuation[id]: the token is a WordPiece `##` piece, i.e. it continues the word before it
    (whole-word masking masks it together with that word)."""
    vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
    table = [False] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        table[i] = token.startswith("##")
    return table
