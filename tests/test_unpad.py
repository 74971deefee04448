"""Unpadding layouts: token order, [CLS] rows, length groups, and the moves' gradients."""

from __future__ import annotations

import copy

import torch
import transformers

from bertpt.model import BertForPreTraining, bert_config
from bertpt.unpad import packing


def mask_of(lengths, L):
    return (torch.arange(L)[None] < torch.tensor(lengths)[:, None]).long()


def test_packing_sorts_rows_into_length_groups():
    mask = mask_of([30, 12, 30, 25, 7, 19], 30)
    pk = packing(mask, heads=2, dtype=torch.float32, unpad=True)
    # longest first (stable): rows 0, 2, 3 | 4..19 -> rows 5, 1 | at most 10 -> row 4
    assert [(g.B, g.L) for g in pk.groups] == [(3, 30), (2, 19), (1, 7)]
    assert [(g.t0, g.t1) for g in pk.groups] == [(0, 85), (85, 116), (116, 123)]
    ids = torch.arange(6 * 30).view(6, 30)
    packed = pk.unpad(ids)
    assert packed.tolist() == (
        ids[0, :30].tolist()
        + ids[2, :30].tolist()
        + ids[3, :25].tolist()
        + ids[5, :19].tolist()
        + ids[1, :12].tolist()
        + ids[4, :7].tolist()
    )
    assert torch.equal(packed[pk.cls_rows], ids[:, 0])  # [CLS] of each sequence, in batch order
    x = torch.randn(6, 30, 4)
    assert torch.equal(pk.pad(pk.unpad(x)), x * mask[..., None])
    assert torch.equal(pk.groups[1].key_mask[:, 0, 0], mask_of([19, 12], 19).bool())


def test_without_unpadding_the_batch_is_one_group():
    mask = mask_of([8, 5], 8)
    for pk in (packing(mask, 2, torch.float32, unpad=False), packing(torch.ones(2, 8), 2, torch.float32, unpad=True)):
        assert pk.idx is None and len(pk.groups) == 1 and (pk.groups[0].B, pk.groups[0].L) == (2, 8)
        assert pk.cls_rows.tolist() == [0, 8]
    assert packing(mask, 2, torch.float32, unpad=False).groups[0].key_mask[1, 0, 0].tolist() == [True] * 5 + [False] * 3


def test_head_layout_moves_are_exact_and_have_exact_gradients():
    mask = mask_of([6, 3, 6, 4, 2], 6)
    pk = packing(mask, heads=2, dtype=torch.float64, unpad=True)
    T = int(mask.sum())
    x = torch.randn(T, 8, dtype=torch.float64, requires_grad=True)
    groups = pk.to_heads(x)
    assert [tuple(g.shape) for g in groups] == [(2, 2, 6, 4), (2, 2, 4, 4), (1, 2, 2, 4)]
    assert torch.equal(pk.from_heads(groups), x)
    assert torch.equal(groups[0][0, 1, 3], x[3, 4:])  # token 3 = (row 0, position 3); head 1 = x's second half
    assert torch.equal(groups[1][1, :, 3:], torch.zeros(2, 1, 4))  # the 3-token row, padded to 4
    torch.autograd.gradcheck(lambda t: [y * 1 for y in pk.to_heads(t)], (x,))
    ys = [torch.randn(g.shape, dtype=torch.float64, requires_grad=True) for g in groups]
    torch.autograd.gradcheck(lambda *t: pk.from_heads(list(t)), tuple(ys))


def test_three_length_groups_give_transformers_loss_and_gradients():
    config = bert_config("bert-tiny", 300)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    ours = BertForPreTraining(config)
    hf_config = copy.deepcopy(config)
    hf_config._attn_implementation = "eager"
    hf = transformers.BertForPreTraining(hf_config)
    hf.load_state_dict(ours.state_dict())
    mask = mask_of([40, 9, 33, 20, 40, 3], 40)
    ids = torch.randint(5, 300, (6, 40)) * mask
    labels = torch.where((torch.rand(6, 40) < 0.3) & mask.bool(), ids, -100)
    labels[:, 1] = ids[:, 1]
    b = dict(
        input_ids=ids,
        token_type_ids=(torch.arange(40) >= 10).long().expand(6, 40) * mask,
        attention_mask=mask,
        labels=labels,
        next_sentence_label=torch.tensor([0, 1, 1, 0, 1, 0]),
    )
    assert len(packing(mask, 2, torch.float32, unpad=True).groups) == 3
    out, ref = ours(**b), hf(**b)
    out.loss.backward()
    ref.loss.backward()
    assert torch.allclose(out.loss, ref.loss, atol=1e-6)
    theirs = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, theirs[name].grad, atol=1e-6, rtol=1e-4), name
