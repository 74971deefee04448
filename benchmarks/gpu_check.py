"""GPU verification in one command: is bertpt right, and how fast, on one CUDA GPU (issue 14).

    python benchmarks/gpu_check.py --out_dir OUT                      # one CUDA GPU: every row, about 5 minutes
    python benchmarks/gpu_check.py --out_dir OUT --only fused_lamb,save_resume   # rerun chosen rows
    python benchmarks/gpu_check.py --device cpu --quick               # CI: the rows a CPU can run, tiny sizes

On a GPU machine without network, with no deepspeed or pydantic installed: benchmarks/gpu_wheels.sh (run where
there is network) fetches the wheels, and its header gives the one command line to run there.

Rows (`--only` takes these names; each row's limits are in the table):
  env            what it ran on: GPU, driver, torch / CUDA / deepspeed / transformers versions, nvcc, ninja
  model_fp32     bertpt's BertForPreTraining vs transformers' on the same weights and batch: MLM and NSP logits
                 and the loss (bertpt's unpadded, sparse-head loss; transformers' logits through the same
                 cross-entropy), fp32
  model_bf16     the same with both models cast to bf16, judged against the fp32 reference: bertpt's bf16 error
                 may be at most twice transformers' own bf16 error (plus a floor)
  unpad          bertpt's training step (unpadded encoder, sparse MLM head: with labels) vs its dense step (no
                 labels: every position's logits, the loss from them): loss and every parameter's gradient, fp32,
                 through SDPA (no attention dropout) and through the written-out attention training uses
                 (attention dropout 1e-12: the branch runs, no element is dropped)
  fused_adam     DeepSpeed's FusedAdam (CUDA kernel, JIT-built) vs torch.optim.AdamW, 5 steps, the presets'
                 hyper-parameters
  fused_lamb     DeepSpeed's FusedLamb (CUDA kernel, JIT-built) vs bertpt.optim.Lamb (the CPU fallback that
                 claims the kernel's arithmetic), 5 steps, zero0_lamb.json's hyper-parameters
  fp16_overflow  a DeepSpeed engine from ds_configs/zero2_fp16.json (dynamic loss scaling), once a step was
                 applied: steps whose gradients overflow (the loss x 1e8) are skipped with the weights untouched,
                 the loss scale halves within `hysteresis` of them, and the two steps after are applied with
                 finite losses
  save_resume    2 steps, bertpt's checkpoint save, 2 more; a fresh engine resumed through bertpt's resume.load
                 runs the same 2 steps: losses and weights must be bitwise equal (deterministic algorithms on;
                 ds_configs/zero2.json: bf16 on a GPU, dropout on)
  speed_*        bertpt.bench's measurement (bertpt.bench.throughput.run, the CPU benchmark's code): bertpt's
                 engine step (ds_configs/zero0.json) beside the plain transformers loop at the same precision on
                 the same batches: tokens/s, sequences/s, model TFLOPS, MFU, and bertpt's speed-up; bert-base
                 and bert-large at 128 and 512 tokens, bf16 then fp16 (--quick: bert-tiny, 64 tokens, fp32)

Each row runs in a child process of its own (forked, so torch and transformers are imported once; --spawn: a fresh
interpreter), in a session of its own (a timeout kills what it started too, e.g. nvcc), under its own
time budget (printed first; --timeout_scale stretches them), and the whole run under --total_limit: a hung row
is killed and the rest go on. Each row's result is appended to OUT/results.jsonl as soon as it has one; the
rows' output goes to OUT/log.txt, the table to OUT/table.txt and stdout. On a CUDA device the JIT builds of
FusedAdam and FusedLamb start at once in the background (OUT/jit_build.log), while the first rows run.
A row that cannot run on the device says why ("n/a on CPU"): FusedAdam/FusedLamb (CUDA kernels only), fp16
where DeepSpeed's accelerator has no fp16, a speed row whose precision the device does not compute natively.

Exit status: 0 when every row ran and passed; 1 when a correctness row failed (FAIL), crashed (ERROR) or ran
out of time (TIMEOUT); 3 when nothing failed but something is missing (a speed row that crashed or timed out,
a row skipped for --total_limit); 2 for a usage error. `--only` judges only the rows it reran; the table still
shows the latest result of every row in OUT/results.jsonl (the others marked "earlier").
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python benchmarks/gpu_check.py` from a checkout that is not installed
    sys.path.insert(0, str(REPO))

from bertpt.errors import BertptError, exit_on_error, one_line, require_writable_dir  # noqa: E402

PASS, FAIL, NA, ERROR, TIMEOUT, SKIP, INFO, DONE = "PASS", "FAIL", "n/a", "ERROR", "TIMEOUT", "SKIP", "info", "done"
HANG = "hang"  # --plant ROW:hang (tests): the row sleeps past its budget, which the plant also cuts to HANG_BUDGET_S
HANG_BUDGET_S = 2.0
# bertpt dependencies the GPU machine's image lacks and benchmarks/gpu_wheels.sh does not carry: no row may import them
NOT_ON_GPU_IMAGE = ("datasets", "blingfire")


# ------------------------------------------------------------------------------------ Rows


@dataclass
class Sizes:
    """Model and batch of the correctness rows."""

    model: str
    vocab: int
    seq_len: int
    batch: int


FULL = Sizes("bert-base", 30522, 128, 8)
QUICK = Sizes("bert-tiny", 1000, 32, 4)


@dataclass
class Context:
    device: str  # "cuda" or "cpu"
    quick: bool
    plant: str | None  # None, "mismatch" or HANG: this row's planted fault (tests)
    seed: int

    @property
    def sizes(self) -> Sizes:
        return QUICK if self.quick else FULL


@dataclass
class Result:
    status: str
    summary: str = ""  # the table's "measured" cell
    limit: str = ""  # the table's "limit" cell: what PASS requires
    measured: dict = field(default_factory=dict)
    detail: str = ""


@dataclass
class Row:
    name: str
    kind: str  # "correctness", "speed" or "env"
    budget_s: float  # on one H100/H200, JIT builds included
    quick_budget_s: float
    run: Callable[[Context], Result]


def torch_device(ctx: Context):
    import torch

    return torch.device("cuda", 0) if ctx.device == "cuda" else torch.device("cpu")


def synthetic_batches(ctx: Context, n: int, sizes: Sizes | None = None) -> list[dict]:
    """n batches as the benchmark makes them (bertpt.bench.throughput.make_batches with --data synthetic):
    60% full-length sequences, the rest shorter (padding), dynamic masking by the training collator."""
    from bertpt.bench.throughput import BenchConfig, make_batches

    s = sizes or ctx.sizes
    bc = BenchConfig(data="synthetic", seq_len=s.seq_len, micro_batch=s.batch, vocab_size=s.vocab, seed=ctx.seed)
    batches, _, _, _ = make_batches(bc, n, 0, 1)
    dev = torch_device(ctx)
    return [{k: v.to(dev) for k, v in b.items()} for b in batches]


def rel_rms(a, b) -> float:
    """rms(a - b) / rms(b), in float64."""
    a, b = a.double(), b.double()
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt().clamp_min(1e-30))


def plant_weight(model) -> None:
    """The planted fault of the model rows: noise at the initializer's scale (N(0, 0.02)) added to one weight of
    bertpt's side, as a wrong weight mapping would give."""
    import torch

    w = model.bert.encoder.layer[0].output.dense.weight
    with torch.no_grad():
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)).to(w) * 0.02)


def model_outputs(ours, hf, b: dict) -> tuple[dict, dict]:
    """Logits of valid positions, NSP logits and the loss of both models (eval mode, no grad). bertpt's loss is
    its training loss path (labels: unpadded encoder, sparse MLM head); transformers' is the same cross-entropy
    (MLM mean over masked positions + NSP mean) over its dense logits, computed in fp32."""
    import torch
    import torch.nn.functional as F

    valid = b["attention_mask"].bool()
    inputs = {k: b[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    with torch.no_grad():
        a = ours(**inputs)
        a_loss = ours(**b).loss
        h = hf(**inputs)
    picked = b["labels"] != -100
    h_loss = F.cross_entropy(h.prediction_logits[picked].float(), b["labels"][picked]) + F.cross_entropy(
        h.seq_relationship_logits.float(), b["next_sentence_label"]
    )
    return (
        {"mlm": a.prediction_logits[valid].float(), "nsp": a.seq_relationship_logits.float(), "loss": a_loss.float()},
        {"mlm": h.prediction_logits[valid].float(), "nsp": h.seq_relationship_logits.float(), "loss": h_loss},
    )


def model_pair(ctx: Context):
    """bertpt's model and transformers' with the same weights (dropout as configured; eval mode)."""
    import torch
    import transformers

    from bertpt.model import BertForPreTraining, bert_config

    s = ctx.sizes
    config = bert_config(s.model, s.vocab)
    torch.manual_seed(ctx.seed)
    ours = BertForPreTraining(config).eval()
    hf = transformers.BertForPreTraining(copy.deepcopy(config)).eval()
    hf.load_state_dict(ours.state_dict(), strict=True)
    return ours, hf


FP32_LOGITS_REL_RMS = 1e-4  # fp32: implementations differ only in summation order
FP32_LOSS_REL = 1e-5


def row_model_fp32(ctx: Context) -> Result:
    ours, hf = model_pair(ctx)
    if ctx.plant:
        plant_weight(ours)
    dev = torch_device(ctx)
    b = synthetic_batches(ctx, 1)[0]
    a, h = model_outputs(ours.to(dev), hf.to(dev), b)
    m = {
        "mlm_logits_rel_rms": rel_rms(a["mlm"], h["mlm"]),
        "nsp_logits_rel_rms": rel_rms(a["nsp"], h["nsp"]),
        "loss_rel": abs(float(a["loss"] - h["loss"])) / abs(float(h["loss"])),
        "loss_transformers": float(h["loss"]),
    }
    ok = max(m["mlm_logits_rel_rms"], m["nsp_logits_rel_rms"]) <= FP32_LOGITS_REL_RMS and m["loss_rel"] <= FP32_LOSS_REL
    return Result(
        PASS if ok else FAIL,
        f"logits rel rms {max(m['mlm_logits_rel_rms'], m['nsp_logits_rel_rms']):.1e}, loss rel {m['loss_rel']:.1e}",
        f"<= {FP32_LOGITS_REL_RMS:.0e}, <= {FP32_LOSS_REL:.0e}",
        m,
        f"{ctx.sizes.model}, batch {ctx.sizes.batch} x {ctx.sizes.seq_len}",
    )


BF16_FACTOR = 2.0  # bertpt's bf16 error may be at most this many times transformers' own
BF16_LOGITS_FLOOR = 2e-3  # rel rms: bf16's unit roundoff is 2^-9
BF16_LOSS_FLOOR = 5e-3  # relative


def row_model_bf16(ctx: Context) -> Result:
    import torch

    ours, hf = model_pair(ctx)
    if ctx.plant:
        plant_weight(ours)
    dev = torch_device(ctx)
    b = synthetic_batches(ctx, 1)[0]
    hf32 = copy.deepcopy(hf).to(dev)
    _, ref = model_outputs(hf32, hf32, b)  # the fp32 reference (transformers' model, fp32)
    a, h = model_outputs(ours.to(dev, torch.bfloat16), hf.to(dev, torch.bfloat16), b)
    m = {}
    ok = True
    for key in ("mlm", "nsp", "loss"):
        if key == "loss":
            err_ours = abs(float(a["loss"] - ref["loss"])) / abs(float(ref["loss"]))
            err_hf = abs(float(h["loss"] - ref["loss"])) / abs(float(ref["loss"]))
            floor = BF16_LOSS_FLOOR
        else:
            err_ours, err_hf, floor = rel_rms(a[key], ref[key]), rel_rms(h[key], ref[key]), BF16_LOGITS_FLOOR
        m[f"{key}_err_bertpt"], m[f"{key}_err_transformers"] = err_ours, err_hf
        ok &= err_ours <= BF16_FACTOR * err_hf + floor
    m["mlm_logits_rel_rms_vs_transformers_bf16"] = rel_rms(a["mlm"], h["mlm"])
    return Result(
        PASS if ok else FAIL,
        f"vs fp32: logits {m['mlm_err_bertpt']:.1e} (transformers {m['mlm_err_transformers']:.1e}), loss "
        f"{m['loss_err_bertpt']:.1e} ({m['loss_err_transformers']:.1e})",
        f"<= {BF16_FACTOR:g}x transformers' + {BF16_LOGITS_FLOOR:.0e} (loss + {BF16_LOSS_FLOOR:.0e})",
        m,
        f"{ctx.sizes.model}, batch {ctx.sizes.batch} x {ctx.sizes.seq_len}; errors are rel rms (loss: relative) "
        "against transformers' fp32 model",
    )


UNPAD_LOSS_REL = 1e-5
UNPAD_GRAD_REL = 1e-4  # per parameter: max |grad difference| / max |dense grad| (floor: 1e-3 of the largest)


def row_unpad(ctx: Context) -> Result:
    """The step with labels (what training runs) against the dense step, on bertpt's own model."""
    import torch
    import torch.nn.functional as F

    from bertpt.model import BertForPreTraining, bert_config
    from bertpt.unpad import packing

    s = ctx.sizes
    dev = torch_device(ctx)
    b = synthetic_batches(ctx, 1)[0]
    pk = packing(b["attention_mask"], 1, torch.float32, unpad=True)
    real = float(b["attention_mask"].float().mean())
    if pk.idx is None or len(pk.groups) < 2:  # the comparison would not exercise unpadding
        return Result(ERROR, detail=f"the batch does not unpad ({len(pk.groups)} groups, {real:.0%} real tokens)")
    m = {"real_token_fraction": real, "length_groups": len(pk.groups)}
    ok = True
    for branch, attn_p in (("sdpa", 0.0), ("written_out", 1e-12)):
        config = bert_config(s.model, s.vocab)
        config.hidden_dropout_prob, config.attention_probs_dropout_prob = 0.0, attn_p
        torch.manual_seed(ctx.seed)
        model = BertForPreTraining(config).to(dev).train()
        sparse = model(**b)
        loss_s = sparse.loss * (1.001 if ctx.plant else 1.0)
        loss_s.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad()
        dense = model(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        logits = dense.prediction_logits.float()
        loss_d = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b["labels"].reshape(-1)) + F.cross_entropy(
            dense.seq_relationship_logits.float(), b["next_sentence_label"]
        )
        loss_d.backward()
        loss_rel = abs(float(loss_s - loss_d)) / abs(float(loss_d))
        # a gradient that is zero in exact arithmetic (the key biases': softmax ignores a constant added to a
        # row of scores) is compared against a floor, 1e-3 of the largest gradient, not against its own noise
        floor = 1e-3 * max(float(p.grad.abs().max()) for p in model.parameters())
        grad_rel = max(
            float((grads[n] - p.grad).abs().max()) / max(float(p.grad.abs().max()), floor)
            for n, p in model.named_parameters()
        )
        m[f"{branch}_loss_rel"], m[f"{branch}_grad_rel"] = loss_rel, grad_rel
        ok &= loss_rel <= UNPAD_LOSS_REL and grad_rel <= UNPAD_GRAD_REL
    return Result(
        PASS if ok else FAIL,
        f"loss rel {max(m['sdpa_loss_rel'], m['written_out_loss_rel']):.1e}, grad rel "
        f"{max(m['sdpa_grad_rel'], m['written_out_grad_rel']):.1e} ({len(pk.groups)} groups, {real:.0%} real)",
        f"<= {UNPAD_LOSS_REL:.0e}, <= {UNPAD_GRAD_REL:.0e}",
        m,
        "grad rel: the largest over parameters of max |difference| / max |dense gradient| (at least 1e-3 of the "
        "largest gradient of all); both attention branches",
    )


# Parameter shapes of the optimizer rows: BERT-like (an embedding, a square weight, an FFN weight, a LayerNorm
# weight, a zero bias: LAMB's trust ratio is 1 where a norm is 0).
OPT_SHAPES = ((1000, 64), (64, 64), (256, 64), (64,), (256,))
OPT_STEPS = 5
OPT_UPDATE_REL = 1e-4  # max |difference of the total updates| / max |reference update|, per parameter


def optimizer_agreement(make_test, make_ref, device, steps: int = OPT_STEPS, seed: int = 0) -> dict:
    """Run two optimizers over the same parameters and gradients for `steps` steps and compare what they did.

    `make_test(params)` / `make_ref(params)` build the optimizers on their own fp32 copies, on `device`, of
    OPT_SHAPES' parameters: N(0, 0.02) matrices (BERT's initializer), a LayerNorm-like weight of ones and a zero
    bias; each step gives both the same N(0, 0.01) gradients. Returns {"update_rel": the largest over parameters
    of max |update_test - update_ref| / max |update_ref|, an update being a parameter's total change over the
    steps; "update_size": the largest max |update_ref|}."""
    import torch

    g = torch.Generator().manual_seed(seed)
    init = [torch.randn(s, generator=g) * 0.02 for s in OPT_SHAPES[:3]] + [torch.ones(64), torch.zeros(256)]
    sides = []
    for make in (make_test, make_ref):
        params = [torch.nn.Parameter(t.clone().to(device)) for t in init]
        sides.append((params, make(params)))
    for _ in range(steps):
        grads = [torch.randn(s, generator=g) * 1e-2 for s in OPT_SHAPES]
        for params, opt in sides:
            for p, gr in zip(params, grads):
                p.grad = gr.to(device)
            opt.step()
    rel, size = 0.0, 0.0
    for t, r, p0 in zip(sides[0][0], sides[1][0], init):
        upd_t, upd_r = t.detach().cpu() - p0, r.detach().cpu() - p0
        scale = float(upd_r.abs().max())
        size = max(size, scale)
        rel = max(rel, float((upd_t - upd_r).abs().max()) / max(scale, 1e-30))
    return {"update_rel": rel, "update_size": size}


def preset_params(name: str) -> dict:
    """The optimizer params of a DeepSpeed preset (ds_configs/NAME.json)."""
    params = json.loads((REPO / "ds_configs" / f"{name}.json").read_text())["optimizer"]["params"]
    return {k: v for k, v in params.items() if k not in ("torch_adam", "fused")}


def cuda_only(ctx: Context, what: str) -> Result | None:
    if ctx.device == "cuda":
        return None
    return Result(NA, "n/a on CPU", detail=f"{what} is a CUDA kernel (DeepSpeed has no CPU build of it)")


def optimizer_row(ctx: Context, make_test, make_ref, what: str) -> Result:
    t0 = time.perf_counter()
    m = optimizer_agreement(make_test, make_ref, torch_device(ctx), seed=ctx.seed)
    m["seconds_with_op_load"] = time.perf_counter() - t0
    return Result(
        PASS if m["update_rel"] <= OPT_UPDATE_REL else FAIL,
        f"update rel diff {m['update_rel']:.1e} over {OPT_STEPS} steps",
        f"<= {OPT_UPDATE_REL:.0e}",
        m,
        what,
    )


def row_fused_adam(ctx: Context) -> Result:
    if na := cuda_only(ctx, "FusedAdam"):
        return na
    import torch
    from deepspeed.ops.adam import FusedAdam

    p = preset_params("zero0")
    ref_lr = p["lr"] * (1.01 if ctx.plant else 1.0)
    return optimizer_row(
        ctx,
        lambda ps: FusedAdam(ps, lr=p["lr"], betas=p["betas"], eps=p["eps"], weight_decay=p["weight_decay"]),
        lambda ps: torch.optim.AdamW(ps, lr=ref_lr, betas=p["betas"], eps=p["eps"], weight_decay=p["weight_decay"]),
        "deepspeed.ops.adam.FusedAdam(adam_w_mode) vs torch.optim.AdamW, zero0.json's lr, betas, eps, weight decay",
    )


def row_fused_lamb(ctx: Context) -> Result:
    if na := cuda_only(ctx, "FusedLamb"):
        return na
    from deepspeed.ops.lamb import FusedLamb

    from bertpt.optim import Lamb

    p = preset_params("zero0_lamb")
    ref = dict(p, lr=p["lr"] * (1.01 if ctx.plant else 1.0))
    return optimizer_row(
        ctx,
        lambda ps: FusedLamb(ps, **p),
        lambda ps: Lamb(ps, **ref),
        "deepspeed.ops.lamb.FusedLamb vs bertpt.optim.Lamb, zero0_lamb.json's params",
    )


def engine_for(ctx: Context, preset: str, model, max_steps: int = 20, schedule: bool = True):
    """bertpt's engine (bertpt.engine.build_engine) from ds_configs/PRESET.json with the rows' micro batch
    (and, --quick, small ZeRO buckets); without `schedule`, the JSON's scheduler dropped (a constant learning
    rate: WarmupDecayLR's first steps have lr 0, which changes no weight). Returns (engine, the DeepSpeed config)."""
    from bertpt.config import load_ds_config
    from bertpt.engine import build_engine, check_ds_config

    path = str(REPO / "ds_configs" / f"{preset}.json")
    cfg = load_ds_config(path, max_steps=max_steps)
    if not schedule:
        cfg.pop("scheduler", None)
    cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"] = ctx.sizes.batch, 1
    if ctx.quick and cfg.get("zero_optimization", {}).get("stage"):
        # DeepSpeed's default 5e8-element ZeRO buckets: allocated per gradient hook, seconds a step on a CPU
        cfg["zero_optimization"].update(reduce_bucket_size=int(1e6), allgather_bucket_size=int(1e6))
    check_ds_config(cfg, path)
    return build_engine(model, cfg), cfg


OVERFLOW_FACTOR = 1e8  # the loss multiplied by this overflows fp16 gradients at any loss scale >= 1
WARMUP_STEPS = 8  # at most, until one is applied: DeepSpeed's first fp16 steps may overflow on their own


def row_fp16_overflow(ctx: Context) -> Result:
    import math

    import torch
    from deepspeed.accelerator import get_accelerator

    acc = get_accelerator()
    if not acc.is_fp16_supported():
        return Result(NA, f"n/a on {ctx.device}", detail=f"DeepSpeed's {acc.device_name()} accelerator has no fp16")
    from bertpt import distributed
    from bertpt.model import BertForPreTraining, bert_config

    distributed.init()
    torch.manual_seed(ctx.seed)
    model = BertForPreTraining(bert_config(ctx.sizes.model, ctx.sizes.vocab))
    engine, cfg = engine_for(ctx, "zero2_fp16", model, schedule=False)  # every applied step changes the weights
    hysteresis = int(cfg["fp16"].get("hysteresis", 2))
    batches = iter(synthetic_batches(ctx, WARMUP_STEPS + hysteresis + 2))
    factor = 1.0 if ctx.plant else OVERFLOW_FACTOR
    log = []  # (kind, loss, skipped, weights changed, loss scale after)

    def step(kind: str, loss_factor: float) -> tuple:
        before = [p.detach().clone() for p in engine.module.parameters()]
        skipped = engine.skipped_steps
        out = engine(**next(batches))
        engine.backward(out.loss * loss_factor)
        engine.step()
        changed = any(not torch.equal(a, p) for a, p in zip(before, engine.module.parameters()))
        loss, scale = float(out.loss.detach()), float(engine.optimizer.loss_scale)
        log.append((kind, loss, engine.skipped_steps > skipped, changed, scale))
        return log[-1]

    while len(log) < WARMUP_STEPS and (not log or log[-1][2]):
        step("start", 1.0)
    scale0 = log[-1][4]
    forced = [step("overflow", factor) for _ in range(hysteresis)]
    after = [step("normal", 1.0) for _ in range(2)]
    checks = {
        "started": not log[len(log) - len(forced) - len(after) - 1][2],  # a step was applied before the overflows
        "overflow_steps_skipped": all(x[2] and not x[3] for x in forced),
        # DeepSpeed's DynamicLossScaler halves the scale on an overflow once its hysteresis count is used up
        "scale_halved": forced[-1][4] <= scale0 / 2,
        "later_steps_applied": all(not x[2] and x[3] and math.isfinite(x[1]) for x in after),
    }
    m = {"hysteresis": hysteresis, "scale_before": scale0, "steps": [list(x) for x in log], **checks}
    return Result(
        PASS if all(checks.values()) else FAIL,
        f"scale {scale0:g} -> {forced[-1][4]:g}, {sum(x[2] for x in forced)}/{len(forced)} overflows skipped, "
        f"{sum(x[3] for x in after)}/{len(after)} later steps applied",
        "skipped, halved, applied",
        m,
        "steps: (kind, loss, skipped, weights changed, loss scale after); zero2_fp16.json; the overflow steps "
        f"multiply the loss by {OVERFLOW_FACTOR:g}",
    )


def row_save_resume(ctx: Context) -> Result:
    import torch

    if ctx.device == "cuda":  # before cuBLAS starts: its deterministic workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    from bertpt import distributed
    from bertpt.ckpt import checkpoint, layout, resume
    from bertpt.model import BertForPreTraining, bert_config

    distributed.init()
    s = ctx.sizes
    config = bert_config(s.model, s.vocab)  # dropout on, as in training
    batches = synthetic_batches(ctx, 4)
    work = tempfile.TemporaryDirectory(prefix="gpu_check_")  # not under --out_dir: a GPU checkpoint is GBs
    ckpt_dir = Path(work.name) / "checkpoints"

    def train(engine, bs) -> list[torch.Tensor]:
        losses = []
        for b in bs:
            out = engine(**b)
            engine.backward(out.loss)
            engine.step()
            losses.append(out.loss.detach().float().cpu())
        return losses

    torch.manual_seed(ctx.seed)
    engine, cfg = engine_for(ctx, "zero2", BertForPreTraining(config))
    train(engine, batches[:2])
    position = layout.RunPosition(2, 2 * s.batch, 1, s.batch, 1, s.batch, engine.zero_optimization_stage())
    checkpoint.save(engine, ckpt_dir, position, layout.client_state({}, cfg, "gpu_check"))
    losses_a = train(engine, batches[2:])
    weights_a = [p.detach().clone() for p in engine.module.parameters()]

    torch.manual_seed(ctx.seed + 1)  # other initial weights and RNG: the resume must restore both
    engine_b, _ = engine_for(ctx, "zero2", BertForPreTraining(config))
    found = resume.find("auto", ckpt_dir)
    resume.load(engine_b, resume.Plan(cfg, found, found.tag, layout.read_position(found)))
    if ctx.plant:  # a resume that does not restore the RNG: the next dropout masks differ
        torch.rand(1, device=torch_device(ctx))
    losses_b = train(engine_b, batches[2:])
    weights_b = list(engine_b.module.parameters())
    differ = sum(not torch.equal(a, b) for a, b in zip(weights_a, weights_b))
    max_diff = max(float((a.float() - b.detach().float()).abs().max()) for a, b in zip(weights_a, weights_b))
    same_losses = all(torch.equal(a, b) for a, b in zip(losses_a, losses_b))
    ok = same_losses and differ == 0
    work.cleanup()
    m = {
        "losses_continuous": [float(x) for x in losses_a],
        "losses_resumed": [float(x) for x in losses_b],
        "tensors_differing": differ,
        "tensors": len(weights_a),
        "max_abs_diff": max_diff,
        "precision": "bf16" if engine.bfloat16_enabled() else "fp32",
        "zero_stage": engine.zero_optimization_stage(),
    }
    return Result(
        PASS if ok else FAIL,
        f"losses {'equal' if same_losses else 'differ'}, {differ}/{len(weights_a)} weight tensors differ "
        f"(max {max_diff:.1e}), {m['precision']}",
        "bitwise",
        m,
        "zero2.json, dropout on; steps 3-4 continuous vs resumed from the step-2 checkpoint (weights, optimizer, RNG)",
    )


def row_env(ctx: Context) -> Result:
    import deepspeed
    import torch
    import transformers
    from deepspeed.accelerator import get_accelerator

    from bertpt.engine import native_bf16

    m = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "deepspeed": deepspeed.__version__,
        "transformers": transformers.__version__,
        "accelerator": get_accelerator().device_name(),
        "ninja": shutil.which("ninja"),
        "cpus": os.cpu_count(),
    }
    if ctx.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        m.update(
            gpu=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            driver=driver_version(),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            nvcc=command_line(["nvcc", "--version"], last=True),
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
        summary = f"{m['gpu']}, driver {m['driver']}, CUDA {m['cuda']}"
    else:
        m.update(cpu=cpu_model(), native_bf16=native_bf16(get_accelerator()))
        summary = f"{m['cpu']} ({m['cpus']} CPUs)"
    summary += f"; torch {m['torch']}, deepspeed {m['deepspeed']}, transformers {m['transformers']}"
    return Result(INFO, summary, "", m)


def driver_version() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        v = pynvml.nvmlSystemGetDriverVersion()
        return v.decode() if isinstance(v, bytes) else v
    except Exception:  # noqa: BLE001 -- no NVML binding: nvidia-smi
        return command_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])


def command_line(cmd: list[str], last: bool = False) -> str:
    """A command's first (or last) output line, or why there is none."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({cmd[0]}: {one_line(e)})"
    return (out[-1] if last else out[0]).strip() if out else f"({cmd[0]}: no output)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


@dataclass
class Speed:
    model: str
    seq_len: int
    precision: str
    micro_batch: int


# bf16 first: the precision bertpt's presets choose on a GPU; fp16 after (V100/T4 users), cut first by the limit
FULL_SPEED = [
    Speed(m, L, p, 128 if L == 128 else 32)
    for p in ("bf16", "fp16")
    for m in ("bert-base", "bert-large")
    for L in (128, 512)
]
QUICK_SPEED = [Speed("bert-tiny", 64, "fp32", 4)]


def speed_name(s: Speed) -> str:
    return f"speed_{s.model.removeprefix('bert-')}_{s.seq_len}_{s.precision}"


def speed_row(s: Speed, quick: bool) -> Callable[[Context], Result]:
    def run(ctx: Context) -> Result:
        from deepspeed.accelerator import get_accelerator

        from bertpt.bench.throughput import BenchConfig
        from bertpt.bench.throughput import run as bench_run
        from bertpt.engine import native_bf16

        acc = get_accelerator()
        native = {"fp32": True, "bf16": native_bf16(acc), "fp16": acc.is_fp16_supported()}[s.precision]
        if not native:
            return Result(
                NA, f"n/a on {ctx.device}", detail=f"this {ctx.device} does not compute {s.precision} natively"
            )
        bc = BenchConfig(
            model=s.model,
            deepspeed_config="ds_configs/zero0.json",
            precision=s.precision,
            micro_batch=s.micro_batch,
            data="synthetic",
            seq_len=s.seq_len,
            baseline=["same"],
            steps=2 if quick else 8,
            warmup=1 if quick else 3,
            chunk=2 if quick else 4,
            rewarm=0 if quick else 1,
            memory=ctx.device == "cuda",
            seed=ctx.seed,
        )
        r = bench_run(bc)
        ours, hf = r["results"][0], r["results"][1]

        def short(x: dict) -> str:
            mfu = f", MFU {x['mfu']:.1%}" if x["mfu"] else ""
            return f"{x['tokens_per_s']:,.0f} tok/s, {x['seq_per_s']:,.1f} seq/s, {x['tflops']:.3g} TFLOPS{mfu}"

        return Result(
            DONE,
            f"bertpt {short(ours)}; transformers {short(hf)}; {hf['bertpt_speedup']:.2f}x",
            "",
            {k: r[k] for k in ("model", "parameters", "seq_len", "micro_batch", "device", "real_token_fraction")}
            | {"bertpt": ours, "transformers": hf},
            f"micro-batch {s.micro_batch}, zero0.json, medians over {bc.steps} steps",
        )

    return run


def rows(ctx_quick: bool) -> list[Row]:
    """Every row, in the order they run: correctness (cheap ones first, the JIT ones after their builds had
    time), then speed. Budgets: on one H100/H200, DeepSpeed's JIT builds included; --quick: a loaded CPU."""
    listed = [
        Row("env", "env", 30, 120, row_env),
        Row("model_fp32", "correctness", 45, 120, row_model_fp32),
        Row("model_bf16", "correctness", 45, 120, row_model_bf16),
        Row("unpad", "correctness", 45, 120, row_unpad),
        Row("fp16_overflow", "correctness", 45, 120, row_fp16_overflow),
        Row("save_resume", "correctness", 90, 180, row_save_resume),
        Row("fused_adam", "correctness", 150, 60, row_fused_adam),
        Row("fused_lamb", "correctness", 150, 60, row_fused_lamb),
    ]
    for s in QUICK_SPEED if ctx_quick else FULL_SPEED:
        budget = 60 if s.model == "bert-large" else 40
        listed.append(Row(speed_name(s), "speed", budget, 180, speed_row(s, ctx_quick)))
    return listed


# ------------------------------------------------------------------------------------ Running rows


def write_result(path: Path, record: dict) -> None:
    """Append one row's result to the JSON-lines file, on disk before the next row starts."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def execute(row: Row, ctx: Context) -> Result:
    """Run the row in this (child) process; an exception is the row's ERROR."""
    if ctx.plant == HANG:
        time.sleep(10 * HANG_BUDGET_S)
    try:
        return row.run(ctx)
    except Exception as e:  # noqa: BLE001 -- any failure of a row is its result; the traceback goes to the log
        traceback.print_exc()
        return Result(ERROR, one_line(e, 150), detail=f"{type(e).__name__}: {one_line(e)}")


def run_row(row: Row, ctx: Context, timeout: float, out: Path, run_id: str, spawn: bool = False) -> dict:
    """Run `row` in a child process of its own process group (a timeout kills what it started too, e.g. nvcc)
    under `timeout` seconds: forked from this process, or with `spawn` a fresh interpreter running this script
    (--_row). The child appends its result to OUT/results.jsonl; a child killed or dead gets a record from here.
    Returns the row's record."""
    base = {"run": run_id, "row": row.name, "kind": row.kind, "device": ctx.device, "quick": ctx.quick}
    base |= {"budget_s": round(timeout, 1), "started": time.time()}
    with open(out / "log.txt", "a") as log:
        log.write(f"\n===== {row.name} ({time.strftime('%H:%M:%S')}, budget {timeout:.0f} s) =====\n")
    sys.stdout.flush()
    sys.stderr.flush()
    if spawn:
        spec = json.dumps({"row": row.name, "ctx": asdict(ctx), "out": str(out), "base": base})
        with open(out / "log.txt", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--_row", spec],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pid, poll, reap = proc.pid, proc.poll, proc.wait
    else:
        pid = fork_logged(out / "log.txt", lambda: child_row(row, ctx, out, base))

        def poll() -> int | None:  # Popen.poll's convention: -N for signal N
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                return None
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

        def reap() -> None:
            os.waitpid(pid, 0)

    while (rc := poll()) is None:
        if time.time() - base["started"] > timeout:
            kill_group(pid)
            reap()
            record = base | asdict(Result(TIMEOUT, f"killed after {timeout:.0f} s", detail="see log.txt"))
            write_result(out / "results.jsonl", record | {"seconds": time.time() - base["started"]})
            return record | {"seconds": time.time() - base["started"]}
        time.sleep(0.05)
    found = [r for r in read_results(out) if r.get("run") == run_id and r["row"] == row.name]
    if found:
        return found[-1]
    how = f"signal {-rc}" if rc < 0 else f"exit {rc}"
    record = base | asdict(Result(ERROR, f"the row's process died ({how})", detail="see log.txt"))
    record["seconds"] = time.time() - base["started"]
    write_result(out / "results.jsonl", record)
    return record


def fork_logged(log: Path, work: Callable[[], None]) -> int:
    """Fork a child that leads a session of its own (`kill_group` then ends everything it starts), with its stdout
    and stderr appended to `log`; it runs `work` and exits 0, or 1 with the traceback in `log` if `work` raised.
    Returns the child's pid, in the parent."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        work()
        code = 0
    except BaseException:  # noqa: BLE001 -- the child's one report is its log; never back into the parent's code
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def child_row(row: Row, ctx: Context, out: Path, base: dict) -> None:
    """In the row's process: run it and append its record, with the modules it imported that the GPU machine's
    image lacks (NOT_ON_GPU_IMAGE: there, the row would fail to import them; CI sees it here)."""
    result = execute(row, ctx)
    record = base | asdict(result) | {"seconds": time.time() - base["started"]}
    record["imported_not_on_gpu_image"] = [m for m in NOT_ON_GPU_IMAGE if m in sys.modules]
    write_result(out / "results.jsonl", record)


def spawned_row(spec: str) -> None:
    """--_row SPEC: the child of a --spawn run (SPEC: the row, its context, OUT and its record's base, as JSON)."""
    s = json.loads(spec)
    ctx = Context(**s["ctx"])
    (row,) = [r for r in rows(ctx.quick) if r.name == s["row"]]
    child_row(row, ctx, Path(s["out"]), s["base"])


def kill_group(pid: int) -> None:
    """SIGKILL the session that child `pid` leads (it called setsid): every process in it, also those in process
    groups of their own (ninja starts each compiler so), found through /proc; where there is no /proc, its
    process group."""
    targets = {pid}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == pid:
            targets.add(int(stat.parent.name))
    for target in sorted(targets):
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_results(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


JIT_OPS = {"FusedAdamBuilder": "fused_adam", "FusedLambBuilder": "fused_lamb"}  # DeepSpeed builder: op name


def start_jit_builds(out: Path) -> dict[int, str]:
    """CUDA: JIT-build FusedAdam and FusedLamb now, one child each, while the first rows run; their rows then load
    the built ops (torch's extension loader waits for a build in progress). Output: OUT/jit_build.log. Returns
    {pid: op name}."""

    def build(builder: str, op: str) -> None:  # a failure is the log's; the row that loads the op reports it
        from deepspeed.accelerator import get_accelerator

        t0 = time.perf_counter()
        get_accelerator().create_op_builder(builder).load()
        print(f"gpu_check: {op} built (or found) and loaded in {time.perf_counter() - t0:.1f} s", flush=True)

    return {fork_logged(out / "jit_build.log", lambda b=b, o=o: build(b, o)): o for b, o in JIT_OPS.items()}


def stop_jit_builds(builds: dict[int, str]) -> None:
    """Kill the builds still running (their rows are done or were skipped), and remove the lock that torch's
    extension loader leaves in a killed build's directory: the next run would wait for it forever."""
    if not builds:
        return
    from torch.utils.cpp_extension import get_default_build_root

    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    for pid, op in builds.items():
        if os.waitpid(pid, os.WNOHANG)[0]:
            continue
        kill_group(pid)
        os.waitpid(pid, 0)
        for lock in [*root.glob(f"*/{op}/lock"), *root.glob(f"{op}/lock")]:  # <root>/py312_cu130/fused_adam/lock
            lock.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ The table


def table(records: list[dict], order: list[str], now: str) -> str:
    """The latest record of each row, in plan order; rows not run by this invocation are marked 'earlier'."""
    latest = {r["row"]: r for r in records}
    head = ("row", "status", "measured", "limit", "s / budget")
    lines = []
    for name in order:
        if name not in latest:
            continue
        r = latest[name]
        status = r["status"] + ("" if r["run"] == now else " (earlier)")
        seconds = f"{r.get('seconds', 0):.0f} / {r.get('budget_s', 0):.0f}"
        lines.append((name, status, r.get("summary", ""), r.get("limit", ""), seconds))
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*head), rule, *(fmt.format(*x) for x in lines)])


def exit_code(records: list[dict]) -> int:
    """0: all ran and passed; 1: a correctness failure; 3: incomplete (speed row crashed/timed out, rows skipped)."""
    if any(r["kind"] != "speed" and r["status"] in (FAIL, ERROR, TIMEOUT) for r in records):
        return 1
    if any(r["status"] in (ERROR, TIMEOUT, SKIP) for r in records):
        return 3
    return 0


# ------------------------------------------------------------------------------------ Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/gpu_check.py",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Rows and exit status: see the module docstring (benchmarks/gpu_check.py).",
    )
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cuda (the GPU check) or cpu (CI).")
    p.add_argument("--quick", action="store_true", help="Tiny sizes (bert-tiny), one fp32 speed row.")
    p.add_argument("--only", default="", help="Comma-separated rows to (re)run; the others keep their results.")
    p.add_argument("--out_dir", default="runs/gpu_check", help="results.jsonl, table.txt, log.txt, jit_build.log.")
    p.add_argument("--timeout_scale", type=float, default=1.0, help="Multiply every row's budget (a slower GPU).")
    p.add_argument(
        "--total_limit",
        type=float,
        default=0,
        help="Seconds for the whole run; a row starting later is skipped, a running one is cut at the limit "
        "(0: 300 on a GPU, 900 with --device cpu or --quick).",
    )
    p.add_argument("--seed", type=int, default=0, help="Seed of weights, batches and gradients.")
    p.add_argument(
        "--spawn",
        action="store_true",
        help="Start each row in a fresh interpreter instead of a fork of this process (a few seconds more a row; "
        "for a platform where forking after importing torch misbehaves).",
    )
    # Tests only: a planted fault in a row (ROW: its mismatch; ROW:hang: it sleeps past a 2 s budget).
    p.add_argument("--plant", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--_row", help=argparse.SUPPRESS)  # internal: the child of --spawn
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._row:
        spawned_row(args._row)
        return 0
    with exit_on_error("gpu_check"):
        return check(args)
    return 2  # not reached: exit_on_error exits


def preimport(device: str) -> None:
    """Import what every row needs once, in this parent: the forked rows inherit it. Not deepspeed on a GPU: its
    import may initialise CUDA, after which no forked child could use it."""
    import torch  # noqa: F401
    from transformers import BertForPreTraining  # noqa: F401

    import bertpt.bench.throughput  # noqa: F401
    import bertpt.model  # noqa: F401

    if device == "cpu":
        import deepspeed  # noqa: F401


def check(args: argparse.Namespace) -> int:
    # Before torch: DeepSpeed's accelerator, and torch's CUDA checks through NVML in this parent, so that the forked
    # rows can still initialise CUDA (a parent that initialised it would leave its children unable to).
    os.environ["DS_ACCELERATOR"] = args.device
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    plan = rows(args.quick)
    names = [r.name for r in plan]
    chosen = [x for x in args.only.split(",") if x] or names
    if unknown := [x for x in chosen if x not in names]:
        raise BertptError(f"--only {','.join(unknown)}: no such row; rows: {', '.join(names)}")
    plants = dict((x.split(":", 1) + ["mismatch"])[:2] for x in args.plant)
    if unknown := [x for x in plants if x not in names]:
        raise BertptError(f"--plant {','.join(unknown)}: no such row")
    if args.timeout_scale <= 0 or args.total_limit < 0:
        raise BertptError("--timeout_scale must be positive and --total_limit not negative")
    total = args.total_limit or (300.0 if args.device == "cuda" and not args.quick else 900.0)
    if args.device == "cuda":
        import torch  # its CUDA check goes through NVML here (set above): this parent does not initialise CUDA

        if not torch.cuda.is_available():
            raise BertptError("no CUDA GPU (torch.cuda.is_available() is False); use --device cpu")
    out = Path(args.out_dir)
    require_writable_dir(out, "--out_dir")
    if not args.only:  # a full run starts its files afresh; --only adds to them
        for name in ("results.jsonl", "log.txt", "jit_build.log", "table.txt"):
            (out / name).unlink(missing_ok=True)
    run_id = uuid.uuid4().hex[:12]
    todo = [r for r in plan if r.name in chosen]
    budgets = {r.name: (r.quick_budget_s if args.quick else r.budget_s) * args.timeout_scale for r in todo}
    for name, plant in plants.items():
        if plant == HANG:
            budgets[name] = HANG_BUDGET_S
    print(
        f"gpu_check: {len(todo)} rows on {args.device}{' (quick)' if args.quick else ''}, total limit {total:.0f} s; "
        f"budgets (s): " + ", ".join(f"{n} {b:.0f}" for n, b in budgets.items()),
        flush=True,
    )
    t_start = time.perf_counter()
    if not args.spawn:
        preimport(args.device)

    builds = start_jit_builds(out) if args.device == "cuda" and set(JIT_OPS.values()) & set(chosen) else {}
    records = []
    try:
        for i, row in enumerate(todo, 1):
            left = total - (time.perf_counter() - t_start)
            ctx = Context(args.device, args.quick, plants.get(row.name), args.seed)
            if left < 5:
                record = {"run": run_id, "row": row.name, "kind": row.kind, "device": args.device, "quick": args.quick}
                record |= asdict(Result(SKIP, f"total limit {total:.0f} s reached")) | {"seconds": 0, "budget_s": 0}
                write_result(out / "results.jsonl", record)
            else:
                record = run_row(row, ctx, min(budgets[row.name], left), out, run_id, args.spawn)
            records.append(record)
            print(
                f"gpu_check: [{i}/{len(todo)}] {row.name}: {record['status']} ({record['seconds']:.1f} s) "
                f"{record['summary']}",
                flush=True,
            )
    finally:
        stop_jit_builds(builds)
    text = table(read_results(out), names, run_id)
    code = exit_code(records)
    verdict = {0: "all rows ran and passed", 1: "a correctness row failed", 3: "incomplete: rows missing"}[code]
    text += f"\n\ngpu_check: {verdict} (exit {code}); {time.perf_counter() - t_start:.0f} s; results in {out}\n"
    (out / "table.txt").write_text(text)
    print("\n" + text, end="", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
