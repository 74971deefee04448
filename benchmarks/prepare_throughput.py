"""Throughput and memory of `bertpt-prepare`, next to a tokenizer ceiling and a pure-Python baseline.

    python benchmarks/prepare_throughput.py [--sizes_mb 200 1000] [--baseline_mb 100]
                                            [--workdir /tmp/bertpt-bench] [--num_workers N]

What it measures, in one run:

1. Corpus. Real English prose: the reStructuredText sources of the Python documentation
   (/usr/share/doc/python3.11/html/_sources, Debian package python3.11-doc). Each source file becomes
   one document; each prose paragraph becomes ONE line (Google's pretraining input format: a blank
   line between documents), and code, directives and headings are left out. That document set is
   repeated until the file reaches each requested size (corpus-{size}mb.txt in --workdir, reused
   when it already exists at the right size). Since a line is a paragraph, not a sentence, the
   sentence splitter of every pipeline has real work to do. 1 MB = 1,000,000 bytes.
2. Tokenizer. One uncased WordPiece vocabulary trained once on the base document set (asked for
   30,522 entries, BERT's size; the 3.7 MB of prose yields about 16,000 at min_frequency 2) and
   cached in --workdir/tokenizer; every run below uses it.
3. Ceiling ("raw encode_batch"). The Rust tokenizer alone, encode_batch over all sentences of the
   smallest corpus, all cores, fastest of 3 passes. Sentence splitting is done beforehand and not
   timed. No complete
   pipeline can beat this; the acceptance target for bertpt is >= 70 % of it.
4. Baseline. Google's create_pretraining_data.py and tokenization.py, ported literally (TensorFlow
   and masking left out, as bertpt masks at batch time), in one pure-Python process: read all
   documents into memory, split lines into sentences (blingfire), tokenize each with Google's
   FullTokenizer into token strings, make NSP instances of token strings with Google's
   create_instances_from_document, and convert each instance's tokens to ids as it is written.
   Run on the first --baseline_mb MB only, because it is slow.
5. bertpt. `bertpt-prepare` on each corpus as a subprocess (and on the baseline-size corpus too, for
   a like-for-like row), with --dupe_factor 1 --val_fraction 0: one pass, all of it training data.
   The bertpt measured is the one of the checkout this file is in.

How to read the output table:
    wall s            wall-clock time of the whole command (start-up, reading, writing included);
                      for the ceiling row, the encode_batch calls only.
    tokens            for the ceiling: tokens of the corpus sentences. For bertpt and the baseline:
                      tokens written, i.e. [CLS] A [SEP] B [SEP] of every instance. The two counts
                      differ (special tokens added, truncation, and random-next B segments, which
                      are copied from other documents); the "instance tokens / corpus tokens"
                      line below gives the factor.
    tokens/s          tokens / wall s.
    peak RSS tree     the highest SUM of resident memory over the process and all its descendants
                      (worker processes included), sampled every 50 ms. A process that lives
                      shorter than the sampling interval can be missed.
    max-proc RSS      the highest resident memory of any single process of the tree.
Derived lines: bertpt's throughput as % of the ceiling, per size, twice: in tokens/s as the table
counts them, and in corpus MB/s (the same text per second: like for like, as every corpus is the
same document set repeated); bertpt / baseline tokens/s on the same corpus; and how the peak memory
grows from the smallest to the largest corpus (flat = streaming).
Two sanity lines: how often the pure-Python tokenizer gives the same ids as the Rust one (expect
~100 %), and whether bertpt's output equals the baseline's token for token (only expected when
bertpt splits sentences with blingfire and draws Google's random sequence over the whole corpus;
one that segments in chunks, each with its own random stream, differs while doing the same work).
Everything is also written to --workdir/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from array import array
from importlib import metadata
from pathlib import Path

DOC_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
# The checkout this file lives in: its bertpt is the one measured, whatever is installed (an
# editable install can point elsewhere, or nowhere, and would silently measure other code).
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the checkout's bertpt, and benchmarks.reference (literal ports of Google's code)
from benchmarks.reference import create_pretraining_data as google_reference  # noqa: E402  (path set just above)
from benchmarks.reference.tokenization import FullTokenizer, convert_to_unicode  # noqa: E402  (path set just above)

# What the `bertpt-prepare` console script runs (pyproject: bertpt.data.prepare:main), spelled out, so
# that the checkout's bertpt runs with the program name bertpt-prepare in its messages.
BERTPT_PREPARE = "import sys; from bertpt.data.prepare import main; sys.argv[0] = 'bertpt-prepare'; sys.exit(main())"

MB = 1_000_000  # corpus sizes are in decimal megabytes
MIB = 2**20  # memory is in mebibytes

# The tokenizer: BERT-base's vocabulary size and settings (uncased); min_frequency 2 drops hapaxes.
VOCAB_SIZE = 30522
MIN_FREQUENCY = 2
# Google's create_pretraining_data.py settings for the 128-token phase of BERT pretraining.
MAX_SEQ_LENGTH = 128
SHORT_SEQ_PROB = 0.1
SEED = 12345

ENCODE_BATCH = 10_000  # sentences per encode_batch call in the ceiling
CEILING_PASSES = 3  # the ceiling is the fastest pass, so a moment of contention does not lower it
RSS_SAMPLE_S = 0.05  # how often the process tree's memory is sampled
AGREEMENT_SAMPLE = 2_000  # sentences compared between the pure-Python and the Rust tokenizer
LOG_TAIL_LINES = 20  # lines of a failed command's log that are printed

# A paragraph that holds any of these lines is code or markup, not prose: a directive or comment
# (".."), a doctest (">>>"), or a heading underline / table border made of = - ~ * ^ (+ for grid
# tables). Indented paragraphs (code, directive bodies) are left out separately.
MARKUP_LINE = re.compile(r"^(\.\.|>>>)|^[=\-~*^+ ]{3,}$")


# ---------------------------------------------------------------------------------------------
# Corpus


def base_documents() -> list[list[str]]:
    """The Python docs as documents (one per source file) of paragraphs (one line each)."""
    files = sorted(DOC_SOURCES.rglob("*.txt")) if DOC_SOURCES.is_dir() else []
    if not files:
        sys.exit(f"no corpus: {DOC_SOURCES} holds no *.txt files; run `apt-get install python3.11-doc`")
    documents = []
    for path in files:
        paragraphs = []
        for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            lines = block.strip("\n").splitlines()
            if not lines or lines[0][:1].isspace() or any(MARKUP_LINE.search(line.rstrip()) for line in lines):
                continue
            paragraphs.append(" ".join(block.split()))  # unwrap: one paragraph, one line
        if paragraphs:
            documents.append(paragraphs)
    return documents


def document_texts(documents: list[list[str]]) -> list[bytes]:
    """Each document as it is written: its lines, then the blank line that ends it."""
    return [("\n".join(d) + "\n\n").encode("utf-8") for d in documents]


def write_corpus(texts: list[bytes], size_mb: float, workdir: Path) -> Path:
    """Repeat the document set, whole documents only, until the file holds size_mb MB; cached."""
    target = int(size_mb * MB)
    # The file's size is known in advance, so a cached file can be checked without reading it.
    expected, k = 0, 0
    while expected < target:
        expected += len(texts[k % len(texts)])
        k += 1
    path = workdir / f"corpus-{size_mb:g}mb.txt"
    if path.is_file() and path.stat().st_size == expected:
        return path
    tmp = path.with_name(path.name + ".tmp")  # a killed run leaves no half file under the real name
    with open(tmp, "wb") as f:
        for i in range(k):
            f.write(texts[i % len(texts)])
    os.replace(tmp, path)
    return path


def read_sentences(path: Path) -> list[list[str]]:
    """Google's reading loop with a sentence splitter: a blank line ends a document, each line is
    split into sentences by blingfire, and empty documents are dropped."""
    import blingfire

    documents: list[list[str]] = [[]]
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                documents.append([])
                continue
            documents[-1].extend(s for s in blingfire.text_to_sentences(line).split("\n") if s.strip())
    return [d for d in documents if d]


# ---------------------------------------------------------------------------------------------
# Baseline: Google's create_pretraining_data.py, ported literally (pure Python, one process)
#
# Source: https://github.com/google-research/bert, master at commit
# eedf5716ce1268e56f0a50264a88cafad334ac61 (2020-03-11), files
#   tokenization.py             (last changed there by d66a146741588fb208450bde15aa7db143baaa69, 2019-03-28)
#   create_pretraining_data.py  (last changed there by 0fce551b55caabcfba52c61e18f34b541aef186a, 2019-05-31)
# tokenization.py is benchmarks/reference/tokenization.py (FullTokenizer); the instance algorithm is
# benchmarks/reference/create_pretraining_data.py, the port the tests compare bertpt against. The code
# below is the rest of Google's create_pretraining_data.py, statement for statement, with Google's names
# and structure (re-indented to 4 spaces), so that the baseline costs what users of that script pay today.
# What is left out, and why:
#   - TensorFlow: tf.gfile.GFile becomes open(); write_instance_to_example_files converts each
#     instance's tokens to ids with convert_tokens_to_ids as Google's does, but instead of padding to
#     max_seq_length and serialising tf.train.Example features into TFRecord files it appends the
#     ids to one flat array, which is the layout bertpt writes and what the agreement check compares.
#   - Masking: create_masked_lm_predictions, masked_lm_prob, max_predictions_per_seq, vocab_words,
#     do_whole_word_mask, and TrainingInstance's masked_lm_positions / masked_lm_labels. bertpt masks
#     dynamically at batch time, and the benchmark runs dupe_factor 1 with no masking in either
#     implementation.
#   - Python 2 (the six.PY2 branch of convert_to_unicode), printable_text, TrainingInstance.__str__,
#     flags and logging: not on the path that runs.
# One addition: this corpus has a paragraph per line, whereas Google's input format has a sentence per
# line, so create_training_instances splits each line into sentences with blingfire (as bertpt does)
# and treats each sentence as Google's loop treats a line. Two lines marked "benchmark only" record
# when reading and tokenizing ended and how many documents there are, for the phase times.

_BENCH = {}  # benchmark only: filled in by create_training_instances


# --- create_pretraining_data.py


def write_instance_to_example_files(instances, tokenizer, max_seq_length, output_file):
    """Create TF example files from `TrainingInstance`s.

    Here: the ids of every instance, one after the other, in one .npy file (no TF, no padding)."""
    import numpy as np

    ids = array("I")

    total_written = 0
    for inst_index, instance in enumerate(instances):  # noqa: B007  (Google's loop, kept as written)
        input_ids = tokenizer.convert_tokens_to_ids(instance.tokens)
        assert len(input_ids) <= max_seq_length

        ids.extend(input_ids)

        total_written += 1

    dtype = np.uint16 if len(tokenizer.vocab) <= 2**16 else np.uint32
    np.save(output_file, np.frombuffer(ids, dtype=np.uint32).astype(dtype))
    return len(ids)


def create_training_instances(input_files, tokenizer, max_seq_length, dupe_factor, short_seq_prob, rng):
    """Create `TrainingInstance`s from raw text."""
    import blingfire

    all_documents = [[]]

    # Input file format:
    # (1) One sentence per line. These should ideally be actual sentences, not
    # entire paragraphs or arbitrary spans of text. (Because we use the
    # sentence boundaries for the "next sentence prediction" task).
    # (2) Blank lines between documents. Document boundaries are needed so
    # that the "next sentence prediction" task doesn't span between documents.
    for input_file in input_files:
        with open(input_file, encoding="utf-8") as reader:
            while True:
                line = convert_to_unicode(reader.readline())
                if not line:
                    break
                line = line.strip()

                # Empty lines are used as document delimiters
                if not line:
                    all_documents.append([])
                # Not in Google's code: the line (a paragraph) is split into sentences, and each
                # sentence is tokenized as Google's loop tokenizes a line. blingfire gives [""] for "".
                for sentence in blingfire.text_to_sentences(line).split("\n"):
                    tokens = tokenizer.tokenize(sentence)
                    if tokens:
                        all_documents[-1].append(tokens)

    _BENCH["read_tokenize_end"] = time.perf_counter()  # benchmark only
    _BENCH["documents"] = sum(1 for x in all_documents if x)  # benchmark only
    # The rest of Google's create_training_instances (drop empty documents, shuffle, dupe_factor
    # passes of create_instances_from_document, shuffle), with no masking: the same literal port
    # the tests compare bertpt against.
    return google_reference.create_training_instances(
        all_documents, None, max_seq_length, dupe_factor, short_seq_prob, 0.15, 20, rng, do_masking=False
    )


# --- the baseline's own process: Google's main(), minus flags and logging


def run_baseline(corpus: Path, out: Path, vocab_file: Path) -> None:
    """The hidden --_baseline mode: everything in memory, one process, as Google's script does.
    Prints one JSON line (counts and phase times) for the parent."""
    t0 = time.perf_counter()
    tokenizer = FullTokenizer(vocab_file=vocab_file, do_lower_case=True)

    rng = random.Random(SEED)
    instances = create_training_instances([corpus], tokenizer, MAX_SEQ_LENGTH, 1, SHORT_SEQ_PROB, rng)  # dupe_factor 1
    t2 = time.perf_counter()

    tokens = write_instance_to_example_files(instances, tokenizer, MAX_SEQ_LENGTH, out)
    t3 = time.perf_counter()
    t1 = _BENCH["read_tokenize_end"]
    print(
        json.dumps(
            {
                "tokens": tokens,
                "instances": len(instances),
                "documents": _BENCH["documents"],
                "seconds": {
                    "read_tokenize": round(t1 - t0, 2),
                    "instances": round(t2 - t1, 2),
                    "write": round(t3 - t2, 2),
                },
            }
        )
    )


# ---------------------------------------------------------------------------------------------
# Running a command while sampling the memory of its whole process tree


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the process ended meanwhile
            continue
        # The command name (field 2) may hold spaces and parentheses; the ppid follows the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0  # ended, or a zombie (no VmRSS line)


def run_measured(cmd: list[str], log: Path) -> dict:
    """Run cmd; wall time and peak RSS (tree sum and largest single process). Output goes to log."""
    # An explicit env: a process that used the Rust tokenizer's thread pool and then forks sets
    # TOKENIZERS_PARALLELISM=false in the child, which would turn the measured command's
    # parallelism off. Passing env makes the child start from this process's own environment.
    env = checkout_env()
    peak_tree = peak_proc = 0
    with open(log, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        while True:
            children, tree, stack = _children_map(), [], [proc.pid]
            while stack:
                pid = stack.pop()
                tree.append(pid)
                stack.extend(children.get(pid, []))
            rss = [_rss_bytes(pid) for pid in tree]
            peak_tree, peak_proc = max(peak_tree, sum(rss)), max(peak_proc, max(rss))
            try:
                proc.wait(timeout=RSS_SAMPLE_S)
                break
            except subprocess.TimeoutExpired:
                pass
        wall = time.perf_counter() - t0
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "peak_rss_tree_mib": peak_tree / MIB,
        "peak_rss_proc_mib": peak_proc / MIB,
    }


def log_tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    return "\n".join("    " + line for line in lines[-LOG_TAIL_LINES:] if line.strip())


# ---------------------------------------------------------------------------------------------
# bertpt-prepare's output


def bertpt_counts(out: Path) -> tuple[int | None, int | None]:
    """Tokens and instances written, from meta.json; counted from the shard files if its structure
    differs from the one this script knows."""
    import numpy as np

    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError) as e:
        meta = {}
        print(f"    cannot read {out / 'meta.json'} ({e})")
    try:
        train = meta["splits"]["train"]
        return int(train["tokens"]), int(train["instances"])
    except (KeyError, TypeError, ValueError):
        print(
            f"    meta.json has no splits.train.tokens/instances; its keys: {list(meta)}; counting the "
            "*ids*.npy / *idx*.npy files instead"
        )
    tokens = sum(np.load(f, mmap_mode="r").size for f in out.glob("*ids*.npy")) or None
    instances = sum(np.load(f, mmap_mode="r").shape[0] for f in out.glob("*idx*.npy")) or None
    return tokens, instances


def bertpt_train_ids(out: Path):
    """bertpt's training ids, all shards in order: what the baseline's file holds, if they agree."""
    import numpy as np

    files = sorted(out.glob("train-*.ids.npy"))
    return np.concatenate([np.load(f) for f in files]) if files else None


def bertpt_command() -> list[str]:
    return [sys.executable, "-c", BERTPT_PREPARE]


def checkout_env() -> dict[str, str]:
    """This process's environment with the checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


# ---------------------------------------------------------------------------------------------
# Output


def machine_line() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0))
    return f"machine: {os.cpu_count()} CPUs ({usable} usable by this process), {model}; {platform.platform()}"


def versions_line() -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    import bertpt

    return (
        f"versions: python {platform.python_version()}, bertpt {bertpt.__version__} ({REPO_ROOT}), "
        f"tokenizers {version('tokenizers')}, blingfire {version('blingfire')}"
    )


def print_table(rows: list[dict]) -> None:
    head = ("run", "corpus MB", "wall s", "tokens", "tokens/s", "peak RSS tree MiB", "max-proc RSS MiB")

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [head]
    for r in rows:
        if r.get("error"):
            lines.append((r["name"], fmt(r["corpus_mb"], "g"), "failed", r["error"], "", "", ""))
            continue
        lines.append(
            (
                r["name"],
                fmt(r["corpus_mb"], "g"),
                fmt(r["wall_s"], ".1f"),
                fmt(r["tokens"], ",d"),
                fmt(r["tokens_per_s"], ",.0f"),
                fmt(r["peak_rss_tree_mib"], ",.0f"),
                fmt(r["peak_rss_proc_mib"], ",.0f"),
            )
        )
    widths = [max(len(str(line[c])) for line in lines) for c in range(len(head))]
    for k, line in enumerate(lines):
        print(
            "  ".join(
                str(v).ljust(w) if c == 0 else str(v).rjust(w)
                for c, (v, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--sizes_mb",
        type=float,
        nargs="+",
        default=[200, 1000],
        help="Corpus sizes (MB = 10^6 bytes) to run bertpt-prepare on.",
    )
    parser.add_argument(
        "--baseline_mb",
        type=float,
        default=100,
        help="Corpus size for the pure-Python baseline; bertpt-prepare runs on it too.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/bertpt-bench"),
        help="Where corpora, the tokenizer, logs and results.json are kept between runs.",
    )
    parser.add_argument(
        "--num_workers",
        type=int,
        default=None,
        help="Passed on as bertpt-prepare --num_workers; when unset, not passed (bertpt-prepare's own default).",
    )
    parser.add_argument("--_baseline", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir: Path = args.workdir
    vocab_file = workdir / "tokenizer" / "vocab.txt"

    if args._baseline:  # the baseline's own process, started by the run below
        run_baseline(Path(args._baseline[0]), Path(args._baseline[1]), vocab_file)
        return

    workdir.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print(versions_line())
    print(f"workdir: {workdir}")
    print()

    # 1. Corpus
    documents = base_documents()
    texts = document_texts(documents)
    base_bytes = sum(map(len, texts))
    print(
        f"corpus: {len(documents)} documents, {sum(map(len, documents)):,} paragraph lines, "
        f"{base_bytes / MB:.1f} MB from {DOC_SOURCES}"
    )
    bertpt_sizes = sorted(set(args.sizes_mb) | {args.baseline_mb})
    corpora = {size: write_corpus(texts, size, workdir) for size in bertpt_sizes}
    print(f"corpus files: {', '.join(p.name for p in corpora.values())}")

    # 2. Tokenizer
    if (workdir / "tokenizer" / "tokenizer.json").is_file() and vocab_file.is_file():
        print(f"tokenizer: reusing {workdir / 'tokenizer'}")
    else:
        from bertpt.data.tokenizer import save_tokenizer, train_tokenizer

        t0 = time.perf_counter()
        tok = train_tokenizer(
            (p for d in documents for p in d), vocab_size=VOCAB_SIZE, cased=False, min_frequency=MIN_FREQUENCY
        )
        save_tokenizer(tok, workdir / "tokenizer")
        print(
            f"tokenizer: trained on the base corpus in {time.perf_counter() - t0:.1f} s, "
            f"{len(tok):,} entries, saved to {workdir / 'tokenizer'}"
        )
    del documents, texts

    # 3. Ceiling: the Rust tokenizer alone on the smallest corpus's sentences
    from tokenizers import Tokenizer

    rust = Tokenizer.from_file(str(workdir / "tokenizer" / "tokenizer.json"))
    smallest = bertpt_sizes[0]
    t0 = time.perf_counter()
    sentences = [s for d in read_sentences(corpora[smallest]) for s in d]
    split_s = time.perf_counter() - t0
    print(
        f"ceiling: {len(sentences):,} sentences in the {smallest:g} MB corpus (blingfire split, "
        f"one core, not timed below: {split_s:.1f} s)"
    )
    pass_s = []
    for _ in range(CEILING_PASSES):
        corpus_tokens, t0 = 0, time.perf_counter()
        for start in range(0, len(sentences), ENCODE_BATCH):
            encodings = rust.encode_batch(sentences[start : start + ENCODE_BATCH], add_special_tokens=False)
            corpus_tokens += sum(len(e.ids) for e in encodings)
        pass_s.append(time.perf_counter() - t0)
    ceiling_s = min(pass_s)
    rows = [
        {
            "name": "raw encode_batch (ceiling)",
            "corpus_mb": smallest,
            "wall_s": ceiling_s,
            "tokens": corpus_tokens,
            "tokens_per_s": corpus_tokens / ceiling_s,
            "peak_rss_tree_mib": None,
            "peak_rss_proc_mib": None,
        }
    ]
    print(
        f"ceiling: {corpus_tokens:,} tokens, passes of {', '.join(f'{t:.2f}' for t in pass_s)} s; "
        f"fastest: {corpus_tokens / ceiling_s:,.0f} tokens/s"
    )

    # Sanity: the pure-Python tokenizer must give the Rust tokenizer's ids, or the baseline
    # would be doing different work.
    sample = random.Random(SEED).sample(sentences, min(AGREEMENT_SAMPLE, len(sentences)))
    python_tok = FullTokenizer(vocab_file)
    rust_ids = [e.ids for e in rust.encode_batch(sample, add_special_tokens=False)]
    mismatches = [
        s
        for s, ids in zip(sample, rust_ids, strict=True)
        if python_tok.convert_tokens_to_ids(python_tok.tokenize(s)) != ids
    ]
    agreement, n_sample = 1 - len(mismatches) / max(1, len(sample)), len(sample)
    del sentences, sample, rust_ids

    # 4. Baseline (before bertpt, so that its output can be compared with bertpt's on the same corpus)
    print(f"baseline: pure Python on {args.baseline_mb:g} MB ...", flush=True)
    baseline_out = workdir / "baseline-ids.npy"
    log = workdir / "baseline.log"
    m = run_measured(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--workdir",
            str(workdir),
            "--_baseline",
            str(corpora[args.baseline_mb]),
            str(baseline_out),
        ],
        log,
    )
    baseline = {"name": "baseline (pure Python)", "corpus_mb": args.baseline_mb, **m}
    if m["rc"] == 0:
        result = json.loads(log.read_text().strip().splitlines()[-1])
        baseline.update(
            tokens=result["tokens"],
            instances=result["instances"],
            phases_s=result["seconds"],
            tokens_per_s=result["tokens"] / m["wall_s"],
        )
    else:
        baseline["error"] = f"rc {m['rc']}"
        print(f"  baseline failed (exit status {m['rc']}), last lines of {log}:\n{log_tail(log)}")

    # 5. bertpt
    identical = None
    bertpt_rows = []
    for size in bertpt_sizes:
        print(f"bertpt-prepare on {size:g} MB ...", flush=True)
        out = workdir / f"bertpt-out-{size:g}mb"
        log = workdir / f"bertpt-{size:g}mb.log"
        cmd = [
            *bertpt_command(),
            str(corpora[size]),
            "--output_dir",
            str(out),
            "--tokenizer",
            str(workdir / "tokenizer"),
            "--dupe_factor",
            "1",
            "--val_fraction",
            "0",
            "--overwrite",
        ]
        if args.num_workers is not None:
            cmd += ["--num_workers", str(args.num_workers)]
        m = run_measured(cmd, log)
        row = {"name": "bertpt-prepare", "corpus_mb": size, **m}
        if m["rc"] == 0:
            tokens, instances = bertpt_counts(out)
            row.update(tokens=tokens, instances=instances, tokens_per_s=tokens / m["wall_s"] if tokens else None)
            if size == args.baseline_mb and baseline_out.is_file():
                import numpy as np

                train_ids = bertpt_train_ids(out)
                identical = None if train_ids is None else bool(np.array_equal(train_ids, np.load(baseline_out)))
        else:
            row["error"] = f"rc {m['rc']}"
            print(f"  bertpt-prepare failed (exit status {m['rc']}), last lines of {log}:\n{log_tail(log)}")
        shutil.rmtree(out, ignore_errors=True)  # the outputs of the large sizes are big
        bertpt_rows.append(row)
    baseline_out.unlink(missing_ok=True)
    rows += bertpt_rows + [baseline]

    # 6. Output
    print()
    print(f"bertpt command (last size): {shlex.join(['bertpt-prepare', *cmd[len(bertpt_command()) :]])}")
    print()
    print_table(rows)
    print()
    ok = [r for r in bertpt_rows if not r.get("error") and r.get("tokens_per_s")]
    derived = {}
    ceiling = rows[0]
    for r in ok:
        # Two views. tokens/s: as the table counts (instance tokens for bertpt, corpus tokens for
        # the ceiling). Corpus MB/s: the same text per second, like for like, since every corpus
        # is the same document set repeated.
        pct = 100 * r["tokens_per_s"] / ceiling["tokens_per_s"]
        # Actual file sizes: a corpus ends on a whole document, a little past the size asked for.
        pct_mb = (
            100
            * (corpora[r["corpus_mb"]].stat().st_size / r["wall_s"])
            / (corpora[smallest].stat().st_size / ceiling["wall_s"])
        )
        derived[f"bertpt_pct_of_ceiling_{r['corpus_mb']:g}mb"] = {"tokens_per_s": pct, "corpus_mb_per_s": pct_mb}
        print(
            f"bertpt @ {r['corpus_mb']:g} MB: {pct:.0f} % of the raw encode_batch ceiling in tokens/s, "
            f"{pct_mb:.0f} % in corpus MB/s (target >= 70 %)"
        )
    same = next((r for r in ok if r["corpus_mb"] == args.baseline_mb), None)
    if same and not baseline.get("error"):
        derived["bertpt_over_baseline"] = same["tokens_per_s"] / baseline["tokens_per_s"]
        print(f"bertpt / baseline tokens/s @ {args.baseline_mb:g} MB: {derived['bertpt_over_baseline']:.1f}x")
    if len(ok) >= 2:
        lo, hi = ok[0], ok[-1]
        derived["rss_ratio_largest_smallest"] = hi["peak_rss_tree_mib"] / lo["peak_rss_tree_mib"]
        print(
            f"peak RSS (tree) {hi['corpus_mb']:g} MB / {lo['corpus_mb']:g} MB: "
            f"{derived['rss_ratio_largest_smallest']:.2f}x for {hi['corpus_mb'] / lo['corpus_mb']:.1f}x the corpus"
        )
    first = next((r for r in ok if r["corpus_mb"] == smallest), None)
    if first:
        derived["instance_over_corpus_tokens"] = first["tokens"] / corpus_tokens
        print(
            f"instance tokens / corpus tokens @ {smallest:g} MB: {derived['instance_over_corpus_tokens']:.3f} "
            f"(bertpt's written tokens against the ceiling's count: [CLS]/[SEP], random-next B segments)"
        )
    print(f"tokenizer agreement, pure Python vs Rust: {agreement:.2%} of {n_sample:,} sentences identical")
    for s in mismatches[:3]:
        print(f"    differs: {s[:100]!r}")
    counts = (
        f" (instances: bertpt {same['instances']:,}, baseline {baseline['instances']:,})"
        if same and same.get("instances") and baseline.get("instances")
        else ""
    )
    print(
        f"bertpt output identical to the baseline's @ {args.baseline_mb:g} MB: "
        f"{'-' if identical is None else 'yes' if identical else 'no'}{counts}"
    )

    results = {
        "machine": machine_line(),
        "versions": versions_line(),
        "args": {**vars(args), "workdir": str(workdir)},
        "bertpt_command": cmd,
        "rows": rows,
        "derived": derived,
        "tokenizer_agreement": agreement,
        "identical_to_baseline": identical,
    }
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {workdir / 'results.json'}")
    if any(r.get("error") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
