"""Inverted dropout whose CPU path draws 16-bit random numbers, four per 64-bit word of torch's
generator, instead of one double per element as `F.dropout` / `bernoulli_` do.

Why: torch's CPU generator (mt19937) costs about the same per word whatever is made of it, so a
keep mask from 16-bit slices is several times cheaper, and dropout is a large share of a CPU
training step (figures in docs/performance.md). The price: the drop probability is rounded to a
multiple of 1/65536 (0.1 -> 0.100006). On other devices this is plain `F.dropout`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout of `x` (any shape, any float dtype) with drop probability `p`; returns `x`
    itself when not training or p == 0. Uses (and advances) torch's global generator, so seeding,
    checkpointed RNG states and activation checkpointing apply as to `F.dropout`."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    n = x.numel()
    # from=-2**63, to=None: the full 64-bit range (plain random_() leaves the top bit 0)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
    r = words.view(torch.int16)[:n].view(x.shape)  # uniform on [-2^15, 2^15)
    drop = round(p * 65536)
    # scaled after masking, in the op's float arithmetic: a bf16 mask holding 1/(1-p) would round it
    return (x * (r >= drop - 32768).to(x.dtype)).mul_(65536 / (65536 - drop))
