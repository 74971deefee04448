"""Shared fixtures: a small real-text corpus and a prepared data directory built from it.

The text is the built-in corpus (the Python standard library's own documentation), so the tests
need no download and no file outside the Python installation.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bertpt.data.builtin import builtin_documents
from bertpt.data.corpus import Source
from bertpt.data.prepare import PrepareConfig, prepare


@pytest.fixture(scope="session")
def documents() -> list[list[str]]:
    """About 150 real English documents (lists of sentences)."""
    return list(itertools.islice(builtin_documents(), 150))


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory, documents) -> Path:
    """The documents as text files: one sentence per line, blank line between documents."""
    d = tmp_path_factory.mktemp("corpus")
    for k in range(3):
        chunk = documents[k::3]
        (d / f"part{k}.txt").write_text("\n\n".join("\n".join(doc) for doc in chunk) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, corpus_dir) -> Path:
    """A prepared directory small enough for fast end-to-end runs: 1000-token vocab, length 64,
    several chunks (so several shards)."""
    out = tmp_path_factory.mktemp("data") / "tiny"
    prepare(
        PrepareConfig(
            output_dir=str(out),
            vocab_size=1000,
            max_seq_length=64,
            dupe_factor=2,
            val_fraction=0.1,
            chunk_mb=0.15,
            num_workers=0,
            sentence_splitter="lines",
        ),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def data_128(tmp_path_factory, corpus_dir) -> Path:
    """A prepared directory at BERT's phase-1 length, 128 tokens (masking defaults: 0.15, cap 20)."""
    out = tmp_path_factory.mktemp("data") / "len128"
    prepare(
        PrepareConfig(
            output_dir=str(out),
            vocab_size=1000,
            max_seq_length=128,
            val_fraction=0.1,
            num_workers=0,
            sentence_splitter="lines",
        ),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    return out


@pytest.fixture
def monitor_world_of_one(tmp_path, monkeypatch):
    """DeepSpeed's comm over a one-process gloo group: DeepSpeed's monitors ask it for the rank."""
    import deepspeed
    import torch.distributed as dist

    from bertpt.distributed import skip_shm_comm_build

    for var, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(var, value)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    skip_shm_comm_build()
    deepspeed.init_distributed(dist_backend="gloo")
    yield
    dist.destroy_process_group()
