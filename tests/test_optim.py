"""LAMB fallback: DeepSpeed FusedLamb's arithmetic, checked against a scalar transcription of its CUDA
kernel; and LAMB is refused where DeepSpeed would flatten the parameters."""

from __future__ import annotations

import math

import pytest
import torch

from bertpt.errors import BertptError
from bertpt.optim import Lamb, check_lamb, lamb_fallback


def kernel_reference(p, grads, lr, b1, b2, eps, wd, max_coeff, min_coeff):
    """fused_lamb_cuda_kernel.cu, element by element in float64 Python: part1 (moments, update,
    norms), part3 (trust ratio, clamped; parameter update with the bias correction in step_size)."""
    p = [float(x) for x in p]
    m = [0.0] * len(p)
    v = [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        u = []
        for j, gj in enumerate(g):
            m[j] = b1 * m[j] + (1 - b1) * gj
            v[j] = b2 * v[j] + (1 - b2) * gj * gj
            u.append(m[j] / (math.sqrt(v[j]) + eps) + wd * p[j])
        w_norm, u_norm = math.sqrt(sum(x * x for x in p)), math.sqrt(sum(x * x for x in u))
        coeff = 1.0
        if w_norm != 0 and u_norm != 0:
            coeff = min(max(w_norm / u_norm, min_coeff), max_coeff)
        step_size = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        p = [pj - step_size * coeff * uj for pj, uj in zip(p, u)]
    return p


@pytest.mark.parametrize("wd, scale", [(0.0, 1.0), (0.01, 1.0), (0.01, 1e-4), (0.1, 30.0)])
def test_lamb_matches_the_kernel_arithmetic(wd, scale):
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(37, generator=g, dtype=torch.float64) * scale
    grads = [torch.randn(37, generator=g, dtype=torch.float64) for _ in range(5)]
    hp = dict(lr=2e-3, b1=0.9, b2=0.999, eps=1e-6, wd=wd, max_coeff=10.0, min_coeff=0.01)
    expected = kernel_reference(p0.tolist(), [x.tolist() for x in grads], **hp)
    p = torch.nn.Parameter(p0.clone())
    opt = Lamb(
        [p],
        lr=hp["lr"],
        betas=(hp["b1"], hp["b2"]),
        eps=hp["eps"],
        weight_decay=wd,
        max_coeff=hp["max_coeff"],
        min_coeff=hp["min_coeff"],
    )
    for grad in grads:
        p.grad = grad.clone()
        opt.step()
    assert torch.allclose(p.detach(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-7)


def test_trust_ratio_is_per_parameter_tensor():
    """Two tensors with very different norms take different relative steps (per-layer LAMB)."""
    small, big = torch.nn.Parameter(torch.full((10,), 0.1)), torch.nn.Parameter(torch.full((10,), 10.0))
    opt = Lamb([small, big], lr=0.01)
    small.grad, big.grad = torch.ones(10), torch.ones(10)
    opt.step()

    def rel(p, x0):
        return float((x0 - p.detach()).abs().mean() / x0)

    assert rel(small, 0.1) == pytest.approx(rel(big, 10.0), rel=1e-4)  # both move by lr x |p| (unclamped)


def test_lamb_under_zero_is_refused_and_adam_is_not():
    lamb = {"optimizer": {"type": "Lamb", "params": {"lr": 1e-3}}}
    check_lamb({**lamb, "zero_optimization": {"stage": 0}})
    for stage in (1, 2, 3):
        with pytest.raises(BertptError, match=f"LAMB with ZeRO stage {stage}"):
            check_lamb({**lamb, "zero_optimization": {"stage": stage}})
    check_lamb({"optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 2}})


def test_fallback_on_an_accelerator_without_fused_lamb():
    from deepspeed.accelerator import get_accelerator

    factory = lamb_fallback({"optimizer": {"type": "Lamb", "params": {"lr": 1e-3, "weight_decay": 0.01}}})
    if get_accelerator().device_name() == "cpu":
        opt = factory([torch.nn.Parameter(torch.ones(3))])
        assert isinstance(opt, Lamb) and opt.defaults["weight_decay"] == 0.01
    assert lamb_fallback({"optimizer": {"type": "AdamW", "params": {}}}) is None
