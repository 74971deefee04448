"""The FLOP formula against a count by hand and against torch's own FLOP counter; the peak table."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bertpt.flops import batch_stats, peak_tflops, step_flops
from bertpt.model import BertForPreTraining, bert_config


def test_formula_matches_a_count_by_hand():
    # bert-tiny: 2 layers, H = 128, FFN I = 512, V = 1000. A batch of two sequences: n = 10 tokens
    # with m = 2 masked positions, and n = 6 tokens with m = 1.
    config = bert_config("bert-tiny", 1000)
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (2, 128, 512)
    # Per token and layer: Q, K, V, output projections 4 x (2 x 128 x 128) = 131,072
    #                      FFN 2 x (2 x 128 x 512)                        = 262,144
    # 16 tokens x 2 layers x 393,216                                       = 12,582,912
    # Attention per layer: QK^T 2 x n^2 x 128 and probs.V the same, for n^2 = 100 + 36:
    #                      4 x 128 x 136 = 69,632; x 2 layers               =    139,264
    # Pooler (2 x 128 x 128) and NSP (2 x 128 x 2) on 2 [CLS] tokens: 2 x (32,768 + 512) = 66,560
    # MLM head on 3 positions: transform 2 x 128 x 128 = 32,768, decoder 2 x 128 x 1000 = 256,000
    #                      3 x 288,768                                      =    866,304
    forward = 12_582_912 + 139_264 + 66_560 + 866_304
    assert forward == 13_655_040
    assert step_flops(config, tokens=16, tokens_sq=136, sequences=2, predictions=3) == 3 * forward


def test_formula_matches_torchs_flop_counter_on_a_real_step():
    """torch counts every matmul of forward + backward; unpadded batch, so the padded attention the
    model runs is exactly the Σn² the formula counts."""
    config = bert_config("bert-tiny", 1000)
    model = BertForPreTraining(config)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (3, 16), generator=g)
    labels = torch.full_like(ids, -100)
    labels[:, 3], labels[0, 7], labels[2, 11] = ids[:, 3], ids[0, 7], ids[2, 11]
    batch = dict(
        input_ids=ids,
        token_type_ids=torch.zeros_like(ids),
        attention_mask=torch.ones_like(ids),
        labels=labels,
        next_sentence_label=torch.tensor([0, 1, 0]),
    )
    assert batch_stats(batch) == (48.0, 768.0, 3.0, 5.0)
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    assert counter.get_total_flops() == step_flops(config, *batch_stats(batch))


def test_batch_stats_count_real_tokens_only():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    labels = torch.tensor([[-100, 5, -100, -100], [-100, -100, -100, -100]])
    assert batch_stats({"attention_mask": mask, "labels": labels}) == (5.0, 13.0, 2.0, 1.0)


@pytest.mark.parametrize(
    "name,precision,peak",
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.5),
        ("NVIDIA H100 PCIe", "bf16", 756.5),
        ("NVIDIA H100 NVL", "fp16", 835.5),
        ("NVIDIA H200", "bf16", 989.5),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
        ("NVIDIA A10", "bf16", 125.0),
        ("Tesla V100-SXM2-16GB", "fp16", 125.0),
        ("Tesla V100-PCIE-32GB", "bf16", None),
        ("NVIDIA L4", "fp32", 30.3),
        ("AMD Instinct MI300X", "bf16", 1307.4),
        ("AMD Instinct MI250X", "fp16", 383.0),
        ("cpu", "bf16", None),
    ],
)
def test_peak_table(name, precision, peak):
    assert peak_tflops(name, precision) == peak
