"""Memory of reading a MediaWiki XML dump: bounded whatever its size (bertpt/data/wikipedia.py).

    python -m benchmarks.wikipedia_memory [--sizes_mb 100 1000] [--prepare] [--workdir /tmp/wikimem]

Builds dumps of about each size from a real one (default: gensim's shortened enwiki sample, the tests' file):
its <siteinfo>, then its <page> elements repeated, under one <mediawiki> root. They are written as plain XML,
not bz2: the question is the XML parser and what the reader keeps of each page; a bz2 decompressor holds a fixed
~4 MB whatever the size, and compressing 1 GB with bz2 would take minutes of CPU. bertpt recognises a dump by its
content, so the plain file is read like the .bz2 one.

Each measurement runs in a fresh child process and reports its peak resident set size (getrusage ru_maxrss):
`reader` reads every article (bertpt-prepare's reading pass, corpus.iter_documents) and counts them; `prepare`
(with --prepare, on the smallest dump only) runs the whole bertpt-prepare with one worker and a tokenizer given,
and reports the reading parent's peak and the worker's. Exits 1 when a larger dump's reader peak exceeds the
smallest one's by more than 10%. The dumps and the prepared data are deleted at the end (--keep keeps them).
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "wikipedia" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LIMIT = 1.10  # a larger dump's reader peak over the smallest one's


def build_dump(sample: Path, out: Path, size_mb: float) -> int:
    """Write `sample`'s <siteinfo> and its <page> elements repeated to about size_mb MB under one root; returns the
    number of <page> elements written."""
    xml = bz2.decompress(sample.read_bytes()) if sample.suffix == ".bz2" else sample.read_bytes()
    first = xml.index(b"  <page>")
    last = xml.rindex(b"</mediawiki>")
    head, pages, tail = xml[:first], xml[first:last], xml[last:]
    per_copy = pages.count(b"<page>")
    copies = max(1, round((size_mb * 1e6 - len(head) - len(tail)) / len(pages)))
    with open(out, "wb") as f:
        f.write(head)
        for _ in range(copies):
            f.write(pages)
        f.write(tail)
    return copies * per_copy


def child_reader(path: str) -> dict:
    from bertpt.data.corpus import ReadStats, Source, iter_documents

    t0 = time.time()
    stats = ReadStats()
    chars = sum(len(d) for d in iter_documents(Source(inputs=[path]), stats))
    return {
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": round(time.time() - t0, 1),
        "pages": stats.wikipedia.pages,
        "articles": stats.wikipedia.articles,
        "wikitext_mb": round(chars / 1e6, 1),
    }


def child_prepare(path: str, out: str, tokenizer: str) -> dict:
    from bertpt.data.corpus import Source
    from bertpt.data.prepare import PrepareConfig, prepare

    t0 = time.time()
    meta = prepare(
        PrepareConfig(output_dir=out, tokenizer=tokenizer, num_workers=1, overwrite=True),
        source=Source(inputs=[path]),
        progress=False,
    )
    return {
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "seconds": round(time.time() - t0, 1),
        "documents": sum(s.documents for s in meta.splits.values()),
    }


def in_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.wikipedia_memory", "--child", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sample", default=str(SAMPLE), help="a real dump (.xml or .xml.bz2) whose pages are repeated")
    p.add_argument("--sizes_mb", type=float, nargs="+", default=[100, 1000])
    p.add_argument("--workdir", default="/tmp/bertpt-wikipedia-memory")
    p.add_argument("--prepare", action="store_true", help="also run the whole prepare (one worker) on the smallest")
    p.add_argument("--keep", action="store_true", help="keep the dumps built")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        kind, *rest = a.child
        print(json.dumps(child_reader(*rest) if kind == "reader" else child_prepare(*rest)))
        return 0

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    dumps = []
    rows = []
    try:
        for size in sorted(a.sizes_mb):
            path = work / f"enwiki-{size:g}MB.xml"
            n_pages = build_dump(Path(a.sample), path, size)
            dumps.append(path)
            r = in_child("reader", str(path))
            assert r["pages"] == n_pages, (r, n_pages)
            rows.append((path.stat().st_size / 1e6, r))
            print(
                f"dump {path.stat().st_size / 1e6:7.0f} MB  {r['pages']:>9,} pages  {r['articles']:>8,} articles  "
                f"{r['wikitext_mb']:8.1f} MB wikitext  reader peak RSS {r['peak_mb']:6.1f} MB  {r['seconds']:6.1f} s",
                flush=True,
            )
        if a.prepare:
            tok_dir = work / "tokenizer-run"
            subprocess.run(
                [sys.executable, "-m", "bertpt.data.prepare", a.sample, "--output_dir", str(tok_dir), "--overwrite"]
                + ["--tokenizer_only", "--vocab_size", "8000"],
                check=True,
                capture_output=True,
                cwd=REPO,
            )
            r = in_child("prepare", str(dumps[0]), str(work / "prepared"), str(tok_dir / "tokenizer"))
            print(
                f"prepare of the {rows[0][0]:.0f} MB dump, 1 worker: {r['documents']:,} documents in {r['seconds']} s; "
                f"peak RSS: reading parent {r['peak_mb']:.1f} MB, worker {r['worker_peak_mb']:.1f} MB"
            )
    finally:
        if not a.keep:  # what this run wrote, nothing else of --workdir
            for path in dumps:
                path.unlink(missing_ok=True)
            for d in ("tokenizer-run", "prepared"):
                shutil.rmtree(work / d, ignore_errors=True)
    base = rows[0][1]["peak_mb"]
    worst = max(r["peak_mb"] for _, r in rows)
    print(f"reader peak, largest over smallest dump: {worst / base:.3f} (limit {LIMIT})")
    return 0 if worst <= LIMIT * base else 1


if __name__ == "__main__":
    sys.exit(main())
