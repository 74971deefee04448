"""Only what DeepSpeed lacks on some accelerators: LAMB where its FusedLamb kernel cannot load.

DeepSpeed's FusedLamb is CUDA-only (no CPU builder). When the JSON asks for "Lamb" and the kernel
is not available on this accelerator, the same JSON trains with `Lamb` below, which implements the
FusedLamb kernel's arithmetic (csrc/lamb/fused_lamb_cuda_kernel.cu, itself NVIDIA apex's LAMB):

    m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2              (no bias correction here)
    u = m / (sqrt(v) + eps) + wd p                                         (eps outside the sqrt)
    trust = clamp(|p| / |u|, min_coeff, max_coeff), or 1 if |p| or |u| is 0   (per parameter tensor)
    p = p - lr * sqrt(1 - b2^t) / (1 - b1^t) * trust * u                   (bias correction folded in)

LAMB's trust ratio is per layer, so it needs the optimizer to see one tensor per parameter.
DeepSpeed's ZeRO stages 1-3 hand the optimizer flat partitions instead (one trust ratio per rank
partition, a different algorithm); `check_lamb` refuses that combination.
"""

from __future__ import annotations

import torch

from bertpt.errors import BertptError, is_rank0


class Lamb(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr=1e-3,
        bias_correction=True,
        betas=(0.9, 0.999),
        eps=1e-8,
        eps_inside_sqrt=False,
        weight_decay=0.0,
        max_grad_norm=0.0,
        max_coeff=10.0,
        min_coeff=0.01,
    ):
        if max_grad_norm:
            raise ValueError("Lamb: max_grad_norm is not supported; use the JSON's gradient_clipping")
        defaults = dict(
            lr=lr,
            bias_correction=bias_correction,
            betas=tuple(betas),
            eps=eps,
            eps_inside_sqrt=eps_inside_sqrt,
            weight_decay=weight_decay,
            max_coeff=max_coeff,
            min_coeff=min_coeff,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v + group["eps"]).sqrt() if group["eps_inside_sqrt"] else v.sqrt().add_(group["eps"])
                w = p.float()
                update = m / denom
                if group["weight_decay"]:
                    update.add_(w, alpha=group["weight_decay"])
                w_norm, u_norm = w.norm(), update.norm()
                trust = torch.where(
                    (w_norm > 0) & (u_norm > 0),
                    (w_norm / u_norm).clamp(group["min_coeff"], group["max_coeff"]),
                    torch.ones_like(w_norm),
                )
                step_size = group["lr"]
                if group["bias_correction"]:
                    step_size = step_size * (1 - b2**t) ** 0.5 / (1 - b1**t)
                p.copy_(w - step_size * trust * update)
        return loss


def is_lamb(ds_config: dict) -> bool:
    return str((ds_config.get("optimizer") or {}).get("type", "")).lower() == "lamb"


def check_lamb(ds_config: dict) -> None:
    """Refuse LAMB where DeepSpeed would feed it flattened partitions."""
    if not is_lamb(ds_config):
        return
    stage = (ds_config.get("zero_optimization") or {}).get("stage", 0)
    if stage:
        raise BertptError(
            f"LAMB with ZeRO stage {stage}: ZeRO hands the optimizer flat partitions, so LAMB's "
            "per-layer trust ratio would be computed per partition; use ZeRO stage 0 "
            "(ds_configs/zero0_lamb.json) or Adam with ZeRO"
        )
    grad_accum_dtype = (ds_config.get("data_types") or {}).get("grad_accum_dtype")
    if (ds_config.get("bf16") or {}).get("enabled") and grad_accum_dtype in ("fp32", "float32", "float"):
        raise BertptError(
            "LAMB with bf16 and fp32 gradient accumulation: DeepSpeed's BF16 optimizer flattens the "
            "parameters, which breaks LAMB's per-layer trust ratio; drop data_types.grad_accum_dtype"
        )


def lamb_fallback(ds_config: dict):
    """An optimizer factory for deepspeed.initialize when the JSON asks for LAMB and FusedLamb cannot
    load here; None when DeepSpeed can build the JSON's optimizer itself."""
    if not is_lamb(ds_config):
        return None
    from deepspeed.accelerator import get_accelerator

    builder = get_accelerator().create_op_builder("FusedLambBuilder")
    try:
        builder.load()  # JIT-builds (or finds) the kernel; raises where the accelerator has none
        return None
    except Exception as e:  # noqa: BLE001 -- any failure to load means: use the fallback
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
    if is_rank0():  # say it once, not once per rank
        print(
            f"bertpt: DeepSpeed's FusedLamb cannot load on this accelerator ({reason}); "
            "training with bertpt.optim.Lamb, the same arithmetic in PyTorch",
            flush=True,
        )
    params = dict((ds_config.get("optimizer") or {}).get("params") or {})
    return lambda model_parameters: Lamb(model_parameters, **params)
