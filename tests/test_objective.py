"""The MLM-only objective (bertpt-prepare --objective mlm): packing, the data, the loss, the metrics, resume."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from bertpt.ckpt import layout, resume
from bertpt.data.corpus import Source
from bertpt.data.dataset import PretrainingData
from bertpt.data.format import IDS, IDX, MLM, MLM_NSP, load_meta, write_meta
from bertpt.data.masking import MaskingCollator, num_to_predict
from bertpt.data.packing import pack, token_stream
from bertpt.data.prepare import PrepareConfig, prepare
from bertpt.data.tokenizer import load_tokenizer
from bertpt.errors import BertptError
from bertpt.metrics import Reporter, Sums
from bertpt.model import BertForPreTraining, bert_config

from tests.ckpt_fakes import RELEASE_0_1, release_run

CLS, SEP = 2, 3


def test_packing_by_hand():
    """Three documents (the first of two segments, plus an empty one) at length 6: 4 text tokens per instance."""
    flat = np.array([10, 11, 12, 20, 21, 30, 31, 32, 33], dtype=np.uint16)
    docs = [[0, 2, 3], [3, 3], [3, 5], [5, 7, 9]]  # segment start offsets; [3, 3] is empty
    stream = token_stream(docs, flat, SEP)
    assert stream.tolist() == [10, 11, 12, SEP, 20, 21, SEP, 30, 31, 32, 33] and stream.dtype == np.uint16
    ids, lengths = pack(stream, 6, CLS, SEP)
    assert lengths.tolist() == [6, 6, 5]
    assert ids.tolist() == [
        *[CLS, 10, 11, 12, SEP, SEP],
        *[CLS, 20, 21, SEP, 30, SEP],
        *[CLS, 31, 32, 33, SEP],
    ]
    ids, lengths = pack(stream[:8], 6, CLS, SEP)  # divides evenly: no short last instance
    assert lengths.tolist() == [6, 6] and ids[-1] == SEP
    ids, lengths = pack(stream[:0], 6, CLS, SEP)
    assert len(ids) == 0 and len(lengths) == 0


def _documents_of(tok, texts: list[str]) -> list[tuple[int, ...]]:
    """Each text's token ids as ChunkWriter tokenizes it (one sentence per line, no special tokens)."""
    out = []
    for text in texts:
        ids = [t for line in text.split("\n") for t in tok.backend_tokenizer.encode(line, add_special_tokens=False).ids]
        out.append(tuple(ids))
    return out


@pytest.fixture(scope="module")
def mlm_data(tmp_path_factory, corpus_dir, tiny_data) -> Path:
    """The tiny data's corpus and tokenizer, prepared for --objective mlm (two chunks, a held-out split)."""
    out = tmp_path_factory.mktemp("mlm") / "data"
    prepare(
        PrepareConfig(
            output_dir=str(out),
            tokenizer=str(tiny_data / "tokenizer"),
            objective="mlm",
            max_seq_length=64,
            val_fraction=0.1,
            chunk_mb=0.15,
            num_workers=0,
            sentence_splitter="lines",
        ),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    return out


def test_prepared_mlm_data_is_the_text_packed(mlm_data, tiny_data, corpus_dir):
    meta = load_meta(mlm_data)
    assert meta.objective == "mlm" and not meta.nsp and json.loads((mlm_data / "meta.json").read_text())["objective"]
    assert meta.settings["objective"] == "mlm" and meta.chunks >= 2
    # the same documents are held out as for the NSP data of the same corpus and settings
    nsp = load_meta(tiny_data)
    assert [meta.splits[s].documents for s in ("train", "val")] == [nsp.splits[s].documents for s in ("train", "val")]
    sids = meta.special_ids
    pieces: dict[str, list[tuple[int, ...]]] = {}
    for split, info in meta.splits.items():
        assert info.random_next_fraction == 0.0
        for stem in info.shards:
            idx, ids = np.load(mlm_data / (stem + IDX)), np.load(mlm_data / (stem + IDS))
            assert len(idx) > 2 and not (mlm_data / (stem + MLM)).exists()
            assert (idx[:-1, 1] == 64).all() and 3 <= idx[-1, 1] <= 64  # every instance full but the last
            assert (idx[:, 2] == idx[:, 1]).all() and (idx[:, 3:] == 0).all()  # one segment, no NSP label
            assert (idx[1:, 0] == np.cumsum(idx[:-1, 1])).all() and len(ids) == idx[:, 1].sum()
            assert (ids[idx[:, 0]] == sids.cls).all() and (ids[idx[:, 0] + idx[:, 1] - 1] == sids.sep).all()
            # the shard's text: its instances without their [CLS] and final [SEP], back to back; the [SEP]s
            # left separate documents, which must be whole documents of the input, each once
            text = np.delete(ids, np.concatenate([idx[:, 0], idx[:, 0] + idx[:, 1] - 1])).tolist()
            docs = " ".join(map(str, text)).split(f" {sids.sep} ")
            pieces.setdefault(split, []).extend(tuple(int(t) for t in d.split()) for d in docs)
    tok = load_tokenizer(mlm_data / "tokenizer")
    texts = [d for f in sorted(corpus_dir.glob("*.txt")) for d in f.read_text(encoding="utf-8").split("\n\n")]
    expected = sorted(d for d in _documents_of(tok, [t.strip("\n") for t in texts]) if d)
    assert sorted(pieces["train"] + pieces["val"]) == expected
    assert not set(pieces["train"]) & set(pieces["val"])
    assert len(pieces["val"]) == meta.splits["val"].documents


def test_mlm_batches_have_one_segment_and_no_nsp_label(mlm_data):
    meta = load_meta(mlm_data)
    data = PretrainingData(meta, "train")
    samples = [data[(p, p)] for p in range(4)]
    assert all(s.is_random_next is None and s.a_len == 64 for s in samples)
    batch = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, seed=1)(samples)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert batch["token_type_ids"].eq(0).all() and batch["attention_mask"].eq(1).all()
    assert ((batch["labels"] != -100).sum(1) == num_to_predict(64, 0.15, 20)).all()


def test_static_masking_of_packed_data(tmp_path, documents, tiny_data):
    texts = ["\n".join(d) for d in documents[:12]]
    cfg = PrepareConfig(
        output_dir=str(tmp_path / "static"),
        tokenizer=str(tiny_data / "tokenizer"),
        objective="mlm",
        static_masking=True,
        max_seq_length=32,
        val_fraction=0.0,
        num_workers=0,
        sentence_splitter="lines",
        seed=7,
    )
    meta = prepare(cfg, documents=lambda: texts, progress=False)
    out = Path(cfg.output_dir)
    idx, mlm = np.load(out / ("train-00000" + IDX)), np.load(out / ("train-00000" + MLM))
    assert (idx[:, 5] == [num_to_predict(n, 0.15, meta.masking.max_predictions_per_seq) for n in idx[:, 1]]).all()
    data = PretrainingData(meta, "train")
    batch = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, seed=1)([data[(0, 0)], data[(1, 1)]])
    assert "next_sentence_label" not in batch and batch["token_type_ids"].eq(0).all()
    rows = mlm[: idx[0, 5]]
    assert batch["labels"][0, rows[:, 0]].tolist() == rows[:, 1].tolist()
    assert (batch["input_ids"][0, rows[:, 0]] == meta.special_ids.mask).any()  # the stored inputs show the masks
    prepare(replace(cfg, output_dir=str(tmp_path / "again")), documents=lambda: texts, progress=False)
    assert np.array_equal(np.load(tmp_path / "again" / ("train-00000" + MLM)), mlm)  # a function of the seed
    prepare(replace(cfg, output_dir=str(tmp_path / "seed8"), seed=8), documents=lambda: texts, progress=False)
    assert not np.array_equal(np.load(tmp_path / "seed8" / ("train-00000" + MLM)), mlm)


def test_meta_records_the_objective_and_old_meta_loads_as_mlm_nsp(tmp_path, mlm_data):
    assert "objective" not in json.loads((RELEASE_0_1 / "data" / "meta.json").read_text())
    assert load_meta(RELEASE_0_1 / "data").objective == MLM_NSP and load_meta(RELEASE_0_1 / "data").nsp
    meta = load_meta(mlm_data)
    d = tmp_path / "copy"
    d.mkdir()
    write_meta(d, meta)
    assert load_meta(d) == meta
    bad = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**bad, "objective": "sop"}))
    with pytest.raises(BertptError, match="names objective 'sop', this bertpt knows mlm_nsp, mlm"):
        load_meta(d)
    with pytest.raises(BertptError, match="--objective must be one of mlm_nsp, mlm"):
        PrepareConfig(output_dir=str(d), objective="sop").validate()


def _batch(nsp: bool):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 300, (3, 16), generator=g)
    am = torch.ones_like(ids)
    am[2, 11:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 3::4] = ids[:, 3::4]
    labels[2, 11:] = -100
    b = dict(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=am, labels=labels)
    if nsp:
        b["next_sentence_label"] = torch.tensor([0, 1, 0])
    return b


def test_mlm_only_loss_is_the_mlm_loss_and_the_nsp_head_gets_no_gradient():
    config = bert_config("bert-tiny", 300)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    out = model(**_batch(nsp=False))
    dense = model(*(_batch(False)[k] for k in ("input_ids", "token_type_ids", "attention_mask")))
    labels = _batch(False)["labels"]
    expected = F.cross_entropy(dense.prediction_logits.reshape(-1, 300), labels.reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, expected, atol=1e-6) and torch.equal(out.loss.detach(), out.mlm_loss)
    assert out.nsp_loss is None and out.nsp_correct is None and out.seq_relationship_logits is None
    assert out.mlm_count == (labels != -100).sum()
    out.loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert {n for n, _ in model.named_parameters()} - grads == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "cls.seq_relationship.weight",
        "cls.seq_relationship.bias",
    }
    both = model(**_batch(nsp=True))  # with the label: the same MLM loss, plus NSP's
    assert torch.equal(both.mlm_loss, out.mlm_loss) and torch.equal(both.loss.detach(), both.mlm_loss + both.nsp_loss)


@pytest.fixture
def world_of_one(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_mlm_only_metrics_have_no_nsp_values(world_of_one, tmp_path):
    config = bert_config("bert-tiny", 300)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    sums = Sums("cpu", nsp=False)
    b = _batch(nsp=False)
    with torch.no_grad():
        out = model(**b)
        sums.add(out, b)
        sums.add(out, b)
    m = sums.reduce()
    assert not [k for k in m if "nsp" in k]
    assert m["mlm_loss"] == pytest.approx(out.mlm_loss.item()) and m["loss"] == pytest.approx(out.loss.item())
    assert m["mlm_acc"] == pytest.approx(out.mlm_correct.item() / out.mlm_count.item())
    assert m["sequences"] == 6 and m["predictions"] == 2 * out.mlm_count.item()
    stream = io.StringIO()
    rep = Reporter(0, tmp_path, 0, 10, stream=stream)
    rep.train(1, m, 1e-4, None, None)
    rep.eval(1, {k: m[k] for k in ("loss", "mlm_loss", "mlm_acc")})
    rep.close()
    assert "nsp" not in stream.getvalue() and re.search(r"mlm \d\.\d{3}/\d+\.\d% lr 1\.00e-04", stream.getvalue())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in rows] == ["train", "eval"] and not [k for r in rows for k in r if "nsp" in k]


def test_a_resume_across_objectives_is_refused_and_old_checkpoints_are_mlm_nsp(tmp_path):
    run = release_run(tmp_path)
    meta = load_meta(run / "data")
    found = resume.find(str(run / "checkpoints"), tmp_path / "elsewhere")
    assert layout.read_objective(found.dir) == MLM_NSP  # release 0.1's bertpt.json has no objective
    config = bert_config(str(run / "model.json"), meta.vocab_size, meta.special_ids.pad).to_dict()
    ds = json.loads((run / "ds_config.json").read_text())
    assert resume.plan(found, ds, 0, 1, config, meta.tokenizer_hash, MLM_NSP).load_tag == "step_000002"
    with pytest.raises(
        BertptError,
        match=f"^checkpoint {re.escape(str(found.path))} was trained for objective mlm_nsp but the data is "
        "prepared for mlm; a resume cannot change the objective: .* \\(--init_from .* keeps its weights\\)$",
    ):
        resume.plan(found, ds, 0, 1, config, meta.tokenizer_hash, "mlm")
    (found.dir / layout.BERTPT_JSON).write_text(json.dumps({"tokenizer_hash": meta.tokenizer_hash, "objective": "mlm"}))
    with pytest.raises(BertptError, match="trained for objective mlm but the data is prepared for mlm_nsp"):
        resume.plan(found, ds, 0, 1, config, meta.tokenizer_hash, MLM_NSP)


def test_an_unfinished_prepare_of_an_earlier_release_continues(tmp_path, documents, tiny_data):
    """prepare.json written before --objective existed lacks it: a re-run with the default continues."""
    out = tmp_path / "p"
    texts = ["\n".join(d) for d in documents[:12]]
    cfg = PrepareConfig(
        output_dir=str(out), tokenizer=str(tiny_data / "tokenizer"), max_seq_length=32, num_workers=0, seed=3
    )
    first = prepare(cfg, documents=lambda: texts, progress=False)
    claim = json.loads((out / "prepare.json").read_text())
    del claim["settings"]["objective"]
    (out / "prepare.json").write_text(json.dumps(claim))
    (out / "meta.json").unlink()  # as if interrupted before the merge
    again = prepare(cfg, documents=lambda: texts, progress=False)
    assert again.splits == first.splits and again.objective == MLM_NSP
    (out / "meta.json").unlink()
    with pytest.raises(BertptError, match=r"other settings \(differing: objective\)"):
        prepare(replace(cfg, objective="mlm"), documents=lambda: texts, progress=False)
