"""Real English Wikipedia dump samples for the tests: the two that the gensim wheel ships in its test data.

    python3 tests/wikipedia_samples.py        # downloads the pinned wheel with pip, extracts the two files

ENWIKI: the first pages-articles file of an enwiki dump, shortened by gensim (206 pages: 106 articles, 99
redirects, one project page), named as the dumps' split files are (`...xml-p000000010p000030302-shortened.bz2`).
TABLES: five table-heavy articles. They go to $BERTPT_WIKI_DIR (default tests/data/wikipedia, ignored by git;
.ci/run fetches them); gensim itself is not installed and bertpt does not depend on it. A missing or changed
file fails the tests that read it: it is never a skip.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

GENSIM = "gensim==4.4.0"
# One fixed wheel of that release (every wheel carries the same test data): pip picks it whatever this machine is.
WHEEL_PLATFORM = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp"]
MEMBER_DIR = "gensim/test/test_data/"
ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TABLES = "enwiki-table-markup.xml.bz2"
SHA256 = {
    ENWIKI: "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
    TABLES: "81415636d4dc79c99147ee52098d9a1b1d977d5727543a81227d85ce5cca9383",
}
FETCH = "python3 tests/wikipedia_samples.py"


def sample_dir() -> Path:
    return Path(os.environ.get("BERTPT_WIKI_DIR") or Path(__file__).resolve().parent / "data" / "wikipedia")


def sample(name: str) -> Path:
    """The path of a sample; AssertionError (a test failure, not a skip) when it is missing or not the pinned file."""
    path = sample_dir() / name
    assert path.is_file(), f"{path} is missing: run `{FETCH}` (it downloads {GENSIM}'s wheel and extracts it)"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SHA256[name], f"{path} is not the file of {GENSIM} (sha256 {digest}); run `{FETCH}` again"
    return path


def fetch(dest: Path) -> None:
    """Download the pinned gensim wheel (no dependencies, not installed) and extract the two samples into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps"]
            + ["--only-binary", ":all:", *WHEEL_PLATFORM, "-d", tmp, GENSIM],
            check=True,
        )
        (wheel,) = Path(tmp).glob("gensim-*.whl")
        with zipfile.ZipFile(wheel) as z:
            for name in SHA256:
                (dest / name).write_bytes(z.read(MEMBER_DIR + name))
    for name in SHA256:
        sample(name)  # the pinned bytes


if __name__ == "__main__":
    d = sample_dir()
    if all((d / n).is_file() for n in SHA256):
        for n in SHA256:
            sample(n)  # still the pinned bytes
        print(f"Wikipedia samples already in {d}")
    else:
        fetch(d)
        print(f"Wikipedia samples extracted into {d}")
