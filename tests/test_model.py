"""The model: Hugging Face parameter compatibility, equal logits, sparse head == dense head."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers

from bertpt.errors import BertptError
from bertpt.model import (
    PRESETS,
    BertForPreTraining,
    bert_config,
    dropout,
    num_parameters,
)


def batch(vocab=500, B=4, L=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (B, L), generator=g)
    tt = torch.zeros_like(ids)
    tt[:, L // 2 :] = 1
    am = torch.ones_like(ids)
    am[1, 20:] = 0
    am[3, 9:] = 0
    labels = torch.full_like(ids, -100)
    pick = torch.rand((B, L), generator=g) < 0.2
    pick &= am.bool()
    pick[:, 0] = True
    labels[pick] = ids[pick]
    return dict(
        input_ids=ids,
        token_type_ids=tt,
        attention_mask=am,
        labels=labels,
        next_sentence_label=torch.tensor([0, 1, 1, 0]),
    )


def test_state_dict_loads_into_transformers_and_logits_match():
    config = bert_config("bert-tiny", 500)
    torch.manual_seed(0)
    ours = BertForPreTraining(config).eval()
    hf = transformers.BertForPreTraining(config).eval()
    assert set(ours.state_dict()) == set(hf.state_dict())
    hf.load_state_dict(ours.state_dict(), strict=True)
    b = batch()
    with torch.no_grad():
        a = ours(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        h = hf(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"], attention_mask=b["attention_mask"])
    valid = b["attention_mask"].bool()
    assert torch.allclose(a.prediction_logits[valid], h.prediction_logits[valid], atol=1e-5)
    assert torch.allclose(a.seq_relationship_logits, h.seq_relationship_logits, atol=1e-5)


def test_tied_weights():
    m = BertForPreTraining(bert_config("bert-tiny", 300))
    assert m.cls.predictions.decoder.weight is m.bert.embeddings.word_embeddings.weight
    assert m.cls.predictions.decoder.bias is m.cls.predictions.bias


def test_sparse_head_gives_dense_loss_and_gradients():
    config = bert_config("bert-tiny", 500)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(1)
    model = BertForPreTraining(config)
    b = batch()
    sparse = model(**b)
    sparse.loss.backward()
    grads_sparse = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    dense = model(b["input_ids"], b["token_type_ids"], b["attention_mask"])
    mlm = F.cross_entropy(dense.prediction_logits.reshape(-1, 500), b["labels"].reshape(-1), ignore_index=-100)
    nsp = F.cross_entropy(dense.seq_relationship_logits, b["next_sentence_label"])
    (mlm + nsp).backward()
    assert torch.allclose(sparse.mlm_loss, mlm, atol=1e-6) and torch.allclose(sparse.nsp_loss, nsp, atol=1e-6)
    for n, p in model.named_parameters():
        assert torch.allclose(grads_sparse[n], p.grad, atol=1e-6, rtol=1e-5), n
    assert sparse.mlm_count == (b["labels"] != -100).sum()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_unpadded_sparse_step_equals_transformers_dense_step(attn):
    """The training path (unpadded encoder, sparse MLM head) against transformers' own dense model
    on the same weights and batch: the same losses and the same gradient for every parameter."""
    config = bert_config("bert-tiny", 500)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(2)
    ours = BertForPreTraining(config)
    hf_config = copy.deepcopy(config)
    hf_config._attn_implementation = attn
    hf = transformers.BertForPreTraining(hf_config)
    assert hf.config._attn_implementation == attn
    hf.load_state_dict(ours.state_dict(), strict=True)
    b = batch()  # rows 1 and 3 are padded, row 0 has a label at [CLS]
    out = ours(**b)
    out.loss.backward()
    ref = hf(**b)
    ref.loss.backward()
    assert torch.allclose(out.loss, ref.loss, atol=1e-6, rtol=1e-6)
    theirs = dict(hf.named_parameters())
    assert set(theirs) == {n for n, _ in ours.named_parameters()}
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, theirs[name].grad, atol=1e-6, rtol=1e-4), name
    with torch.no_grad():  # evaluation (labels, no dropout) takes the SDPA branch
        assert torch.allclose(ours.eval()(**b).loss, hf.eval()(**b).loss, atol=1e-6)


def test_activation_checkpointing_gives_the_same_step():
    """Same loss and gradients with dropout on: the recomputation replays the RNG state."""
    config = bert_config("bert-tiny", 500)
    torch.manual_seed(3)
    model = BertForPreTraining(config)
    b = batch()
    grads = []
    for checkpointing in (False, True):
        model.gradient_checkpointing = checkpointing
        model.zero_grad()
        torch.manual_seed(4)
        loss = model(**b).loss
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert torch.equal(grads[0][0], grads[1][0])
    for name, g in grads[0][1].items():
        assert torch.allclose(g, grads[1][1][name], atol=1e-7), name


def test_cpu_dropout_rate_scale_and_seeding():
    x = torch.ones(1_000_003)
    torch.manual_seed(5)
    y = dropout(x, 0.1, True)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 2e-3  # 0.1 rounded to 6554/65536
    assert torch.allclose(y[kept], torch.tensor(65536 / (65536 - 6554)))
    assert abs(y.mean().item() - 1) < 3e-3  # inverted dropout keeps the expectation
    torch.manual_seed(5)
    assert torch.equal(dropout(x, 0.1, True), y)
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    assert dropout(torch.ones(7, dtype=torch.bfloat16), 0.5, True).dtype == torch.bfloat16


def test_presets_have_googles_shapes():
    sizes = {name: num_parameters(BertForPreTraining(bert_config(name, 30522))) for name in ("bert-tiny", "bert-mini")}
    assert sizes["bert-tiny"] == pytest.approx(4.4e6, rel=0.05)  # Google's BERT-Tiny: 4.4M
    assert sizes["bert-mini"] == pytest.approx(11.3e6, rel=0.05)  # BERT-Mini: 11.3M
    base = bert_config("bert-base", 30522)
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads, base.intermediate_size) == (
        12,
        768,
        12,
        3072,
    )
    assert set(PRESETS) == {"bert-tiny", "bert-mini", "bert-small", "bert-medium", "bert-base", "bert-large"}


def test_config_json_and_its_errors(tmp_path):
    good = tmp_path / "c.json"
    good.write_text(
        json.dumps(
            {
                "vocab_size": 700,
                "hidden_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 128,
            }
        )
    )
    assert bert_config(str(good), 700).hidden_size == 64
    with pytest.raises(BertptError, match="vocab_size 700 but the data's tokenizer has 800"):
        bert_config(str(good), 800)
    with pytest.raises(BertptError, match="not a preset"):
        bert_config("bert-huge", 700)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BertptError, match="not a valid BertConfig JSON"):
        bert_config(str(bad), 700)


def test_model_module_does_not_import_deepspeed():
    tree = ast.parse((Path(__file__).parent.parent / "bertpt" / "model.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not any(name.split(".")[0] == "deepspeed" for name in names)
