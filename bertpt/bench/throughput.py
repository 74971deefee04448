"""Training-step throughput: bertpt's DeepSpeed step against a plain transformers loop, side by side.

    python -m bertpt.bench                                        # bert-mini, zero2.json (bf16), batch 32
    python -m bertpt.bench --precision fp32 --deepspeed_config ds_configs/zero0.json
    python -m bertpt.bench --zero_sweep --world_sizes 1 2         # ZeRO 0-3 presets, 1 and 2 processes

One process, one run, the same batches for every side: (a) bertpt's model through the DeepSpeed
engine built from a ZeRO preset (world size 1), and (b) `transformers.BertForPreTraining` as a user
would train it: model(**batch) with labels, loss.backward(), torch.optim.AdamW step, default
attention implementation, autocast for bf16/fp16. After --warmup steps each, sides take turns of
--chunk timed steps (after --rewarm untimed ones), so that noise from a shared machine falls on all;
figures are medians over --steps steps, the ratio the median over batches of (baseline / bertpt
time). TFLOPS and MFU count bertpt.flops' model FLOPs for both sides (work on padding or a dense MLM
head counts against a side). Peak memory = the tensors a side keeps between steps (measured as it
is built) + the most it allocates within a step (CUDA: the allocator's peak; CPU: torch.profiler's
allocation record, which counts a buffer whole even where the OS has not backed all of it yet).
--zero_sweep: see bertpt/bench/sweep.py.
"""

from __future__ import annotations

import copy
import gc
import itertools
import json
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bertpt import cli
from bertpt.cli import arg as _arg
from bertpt.errors import BertptError

REPO = Path(__file__).resolve().parents[2]  # the checkout: bertpt/bench/throughput.py -> .


@dataclass
class BenchConfig:
    """Flags of `python -m bertpt.bench` (field help = --help)."""

    model: str = _arg("bert-mini", "Model preset (bert-tiny ... bert-large) or a BertConfig JSON, as for training.")
    deepspeed_config: str = _arg(
        "ds_configs/zero2.json",
        "DeepSpeed JSON for bertpt's side (optimizer, ZeRO stage, "
        "precision, micro batch); a relative path is also looked up in the repository.",
    )
    precision: str = _arg(
        "preset",
        "bertpt's precision: preset (the JSON's), fp32, bf16 or fp16 (dynamic loss "
        "scaling); anything but preset replaces the JSON's bf16/fp16 sections for this run only.",
        choices=["preset", "fp32", "bf16", "fp16"],
    )
    micro_batch: int = _arg(
        0,
        "Sequences per step (0: the JSON's train_micro_batch_size_per_gpu). Gradient "
        "accumulation is set to 1: every timed step is one optimizer step.",
    )
    data: str = _arg(
        "builtin",
        "builtin (the built-in corpus, prepared on first use), synthetic (random tokens, "
        "60%% full-length sequences, the rest uniform down to an eighth; dynamic masking as in "
        "training) or a prepared data directory.",
    )
    seq_len: int = _arg(0, "Sequence length (0: the data's max_seq_length; synthetic: 128).")
    vocab_size: int = _arg(30522, "Vocabulary size for --data synthetic (prepared data has its own).")
    baseline: list[str] = _arg(
        ["fp32", "same"],
        "Precisions of the transformers loop to run beside bertpt: fp32, "
        "bf16, fp16 (autocast), same (= bertpt's) or none.",
    )
    steps: int = _arg(20, "Timed steps per side; medians are over these.")
    warmup: int = _arg(5, "Untimed steps per side first (allocator, kernels, DeepSpeed buffers).")
    chunk: int = _arg(4, "Timed steps of one side per turn; sides take turns, the order flipping each round.")
    rewarm: int = _arg(
        1,
        "Untimed steps at the start of each turn: a timed step then finds the caches as training "
        "leaves them, not as the other side did.",
    )
    activation_checkpointing: bool = _arg(False, "bertpt's side with --activation_checkpointing (as pretrain.py).")
    peak_tflops: float = _arg(0, "Device peak TFLOPS for MFU (0: bertpt.flops' table; none for CPUs).")
    threads: int = _arg(0, "torch CPU threads per process (0: torch's default).")
    clock: str = _arg(
        "wall",
        "wall: elapsed time. cpu: this process's CPU time (all its threads), which other "
        "processes' load does not inflate; on a shared CPU machine use it with --threads 1.",
        choices=["wall", "cpu"],
    )
    memory: bool = _arg(True, "Measure peak memory (one extra untimed step per side).")
    profile: int = _arg(
        0,
        "After timing, profile this many steps per side with torch.profiler and print the "
        "operators that took the most time.",
    )
    zero_sweep: bool = _arg(
        False,
        "Instead: bertpt's side alone for each --sweep_configs x --world_sizes, one "
        "torchrun per pair, and a table (throughput relative to ZeRO-0 at the same size).",
    )
    sweep_configs: list[str] = _arg([f"ds_configs/zero{i}.json" for i in range(4)], "DeepSpeed JSONs for --zero_sweep.")
    world_sizes: list[int] = _arg([1, 2], "World sizes for --zero_sweep (processes on this machine).")
    repeats: int = _arg(
        1, "--zero_sweep: run the list this many times, in alternating order; each row is the median run."
    )
    json_out: str | None = _arg(None, "Also write the results as JSON to this file (the sweep's processes use it).")
    seed: int = _arg(42, "Seed for data order, masking and initial weights.")


# ------------------------------------------------------------------------------------ Inputs


def make_batches(bc: BenchConfig, n: int, rank: int, world: int) -> tuple[list[dict], int, int, str]:
    """n collated batches (this rank's share of each global step), the vocabulary size, pad id and a
    description. The masking collator is the training one."""
    from bertpt.data.dataset import PretrainingData, Sample, StreamSampler, continuation_ids
    from bertpt.data.format import Masking, SpecialIds, is_complete, load_meta
    from bertpt.data.masking import MaskingCollator

    if bc.data == "synthetic":
        L = bc.seq_len or 128
        # Google: 20 predictions at 128, 80 at 512
        masking = Masking(masked_lm_prob=0.15, max_predictions_per_seq=max(1, round(L * 20 / 128)))
        rng = np.random.default_rng([bc.seed, rank])
        collate = MaskingCollator(masking, SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4), bc.vocab_size, bc.seed)

        def item(p):
            length = L if rng.random() < 0.6 else int(rng.integers(max(8, L // 8), L))
            tokens = rng.integers(5, bc.vocab_size, length)
            a_len = int(rng.integers(2, length - 1))
            tokens[0], tokens[a_len - 1], tokens[-1] = 2, 3, 3  # [CLS] A [SEP] B [SEP]
            return Sample(p, tokens, a_len, int(rng.random() < 0.5), None)

        batches = [collate([item(p) for p in range(i * bc.micro_batch, (i + 1) * bc.micro_batch)]) for i in range(n)]
        return batches, bc.vocab_size, 0, f"synthetic, {L} tokens"
    if bc.data == "builtin":
        from bertpt.data.builtin import builtin_data_dir, prepare_builtin

        data_dir = builtin_data_dir()
        if rank == 0 and not is_complete(data_dir):
            prepare_builtin(data_dir, progress=False)
        if world > 1:
            torch.distributed.barrier()
    else:
        data_dir = Path(bc.data)
    meta = load_meta(data_dir)
    if bc.seq_len and bc.seq_len != meta.max_seq_length:
        raise BertptError(
            f"--seq_len {bc.seq_len}: {data_dir} holds {meta.max_seq_length}-token sequences; "
            "pass --data with data of that length, or --data synthetic"
        )
    if not meta.nsp:  # the transformers loop it compares with is BertForPreTraining's, whose loss needs the label
        raise BertptError(
            f"--data {data_dir} was prepared with --objective mlm (no next-sentence labels); the benchmark times "
            "the MLM + NSP step: pass data prepared with the default --objective mlm_nsp, or --data synthetic"
        )
    data = PretrainingData(meta, "train")
    whole = continuation_ids(meta) if meta.masking.whole_word_mask and not meta.masking.static else None
    collate = MaskingCollator(meta.masking, meta.special_ids, meta.vocab_size, bc.seed, is_continuation=whole)
    sampler = iter(StreamSampler(len(data), bc.micro_batch, 1, world, rank, bc.seed))
    batches = [collate([data[k] for k in next(sampler)]) for _ in range(n)]
    return batches, meta.vocab_size, meta.special_ids.pad, f"{data_dir}, {meta.max_seq_length} tokens"


def bench_ds_config(bc: BenchConfig) -> tuple[dict, str, str]:
    """The JSON with the benchmark's batch and precision; (config, precision, path)."""
    from bertpt.config import load_ds_config

    path = Path(bc.deepspeed_config)
    if not path.is_file() and (REPO / path).is_file():
        path = REPO / path
    cfg = load_ds_config(str(path), max_steps=bc.warmup + bc.steps + 10)
    cfg["train_micro_batch_size_per_gpu"] = bc.micro_batch = bc.micro_batch or cfg.get(
        "train_micro_batch_size_per_gpu", 32
    )
    cfg["gradient_accumulation_steps"] = 1
    cfg.pop("train_batch_size", None)
    if bc.precision != "preset":  # fp16: dynamic loss scaling (loss_scale 0), as in the zero2_fp16 preset
        for key in ("bf16", "fp16"):
            cfg.pop(key, None)
        if bc.precision != "fp32":
            cfg[bc.precision] = {"enabled": True, **({"loss_scale": 0} if bc.precision == "fp16" else {})}
    precision = (
        "bf16"
        if (cfg.get("bf16") or {}).get("enabled")
        else "fp16"
        if (cfg.get("fp16") or {}).get("enabled")
        else "fp32"
    )
    return cfg, precision, str(path)


# ------------------------------------------------------------------------------------ Sides


@dataclass
class Side:
    name: str
    precision: str
    step: Callable[[dict], None]
    state_bytes: float = 0.0  # kept between steps
    transient: float = float("nan")  # most held within a step, above that
    times: dict[int, float] = field(default_factory=dict)  # batch index -> seconds


def bertpt_side(bc: BenchConfig, model_config, ds_config: dict, ds_path: str, precision: str) -> Side:
    from bertpt.engine import build_engine, check_ds_config
    from bertpt.model import BertForPreTraining
    from bertpt.optim import check_lamb

    check_lamb(ds_config)
    check_ds_config(ds_config, ds_path)
    torch.manual_seed(bc.seed)
    model = BertForPreTraining(model_config, gradient_checkpointing=bc.activation_checkpointing)
    engine = build_engine(model, ds_config)  # as pretrain.py builds it

    def step(b):
        out = engine(**b)
        engine.backward(out.loss)
        engine.step()

    return Side(f"bertpt ({Path(ds_path).name}, ZeRO-{engine.zero_optimization_stage()})", precision, step)


def transformers_side(bc: BenchConfig, model_config, ds_config: dict, precision: str, device) -> Side:
    """The loop a transformers user writes; lr and weight decay from the JSON, all else defaults."""
    import transformers

    torch.manual_seed(bc.seed)
    model = transformers.BertForPreTraining(copy.deepcopy(model_config)).to(device).train()
    p = (ds_config.get("optimizer") or {}).get("params") or {}
    opt = torch.optim.AdamW(model.parameters(), lr=p.get("lr", 1e-4), weight_decay=p.get("weight_decay", 0.01))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step(b):
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(**b)
        scaler.scale(out.loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return Side(
        f"transformers BertForPreTraining ({model.config._attn_implementation})",
        precision + (" autocast" if dtype else ""),
        step,
    )


# ------------------------------------------------------------------------------------ Measuring


def live_bytes(device) -> float:
    """Bytes of all tensors alive on `device` (CPU: found through the garbage collector, shared
    storages counted once; CUDA: the allocator's count)."""
    if device.type == "cuda":
        return float(torch.cuda.memory_allocated(device))
    gc.collect()
    storages = {}
    with warnings.catch_warnings():  # isinstance() on some module attributes warns of deprecations
        warnings.simplefilter("ignore")
        for o in gc.get_objects():
            if isinstance(o, torch.Tensor) and o.device.type == device.type and not o.is_meta:
                storages[o.untyped_storage().data_ptr()] = o.untyped_storage().nbytes()
    return float(sum(storages.values()))


def transient_peak(step, batch, device) -> float:
    """The most bytes one step holds above what was allocated when it began."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step(batch)
        torch.cuda.synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(batch)
    events = sorted(
        (
            e
            for e in prof.profiler.kineto_results.events()
            if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
        ),
        key=lambda e: e.start_ns(),
    )
    return float(max(itertools.accumulate((e.nbytes() for e in events), initial=0)))


def run_sides(sides: list[Side], build, batches: list[dict], bc: BenchConfig, device) -> None:
    """Build each side and warm it up (recording the state it keeps), then time them in turns."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    clock = time.perf_counter if bc.clock == "wall" else time.process_time
    for make in build:
        before = live_bytes(device)
        side = make()
        for b in batches[: bc.warmup]:
            side.step(b)
        sync()
        side.state_bytes = live_bytes(device) - before
        sides.append(side)
    rounds = range(bc.warmup, bc.warmup + bc.steps, bc.chunk)
    for r, start in enumerate(rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            for _ in range(bc.rewarm):
                side.step(batches[start])
            for i in range(start, min(start + bc.chunk, bc.warmup + bc.steps)):
                sync()
                t = clock()
                side.step(batches[i])
                sync()
                side.times[i] = clock() - t
    if bc.memory:
        extra = batches[bc.warmup + bc.steps]
        for side in sides:
            side.transient = transient_peak(side.step, extra, device)
    if bc.profile:
        from torch.profiler import ProfilerActivity, profile

        for side in sides:  # at most --steps steps: the batches there are
            with profile(
                activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            ) as prof:
                for b in batches[bc.warmup : bc.warmup + min(bc.profile, bc.steps)]:
                    side.step(b)
                sync()
            print(
                f"\n{side.name}, {side.precision}: {bc.profile} steps\n"
                + prof.key_averages().table(
                    sort_by="self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total", row_limit=15
                )
            )


def summarize(side: Side, stats: list[list[float]], flops: list[float], peak: float | None) -> dict:
    idx = sorted(side.times)
    secs = [side.times[i] for i in idx]
    tok = [stats[i][0] / side.times[i] for i in idx]
    tfl = [flops[i] / side.times[i] / 1e12 for i in idx]
    q = statistics.quantiles(secs, n=4) if len(secs) > 1 else [secs[0]] * 3
    out = {
        "side": side.name,
        "precision": side.precision,
        "step_ms": statistics.median(secs) * 1e3,
        "step_ms_iqr": [q[0] * 1e3, q[2] * 1e3],
        "tokens_per_s": statistics.median(tok),
        "seq_per_s": statistics.median(stats[i][2] / side.times[i] for i in idx),
        "tflops": statistics.median(tfl),
        "state_mib": side.state_bytes / 2**20,
        "peak_mib": (side.state_bytes + side.transient) / 2**20,
    }
    out["mfu"] = out["tflops"] / peak if peak else None
    return out


# ---------------------------------------------------------------------------------------------


def run(bc: BenchConfig) -> dict:
    import deepspeed
    import transformers
    from deepspeed.accelerator import get_accelerator
    from deepspeed.utils import logger as ds_logger

    from bertpt import distributed
    from bertpt.flops import batch_stats, device_name, peak_tflops, step_flops
    from bertpt.model import BertForPreTraining, bert_config, num_parameters

    ds_logger.setLevel("WARNING")
    if bc.threads:
        torch.set_num_threads(bc.threads)
    rank, world, local_rank = distributed.init()
    ds_config, precision, ds_path = bench_ds_config(bc)
    baselines = (
        [] if "none" in bc.baseline else list(dict.fromkeys(precision if b == "same" else b for b in bc.baseline))
    )
    device = torch.device(get_accelerator().device_name(local_rank))
    n = bc.warmup + bc.steps + 1
    batches, vocab, pad, described = make_batches(bc, n, rank, world)
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    model_config = bert_config(bc.model, vocab, pad)
    if model_config.max_position_embeddings < batches[0]["input_ids"].shape[1]:
        raise BertptError(
            f"--model {bc.model} has {model_config.max_position_embeddings} positions, fewer than the data's"
        )
    # (Σn, Σn², B, Σm) of each step over all ranks: throughput counts every rank's tokens
    stats = torch.tensor([batch_stats(b) for b in batches], dtype=torch.float64)
    torch.distributed.all_reduce(stats)
    stats = stats.tolist()
    flops = [step_flops(model_config, *s) / world for s in stats]  # per device
    build = [lambda: bertpt_side(bc, model_config, ds_config, ds_path, precision)]
    build += [lambda p=p: transformers_side(bc, model_config, ds_config, p, device) for p in baselines]
    sides: list[Side] = []
    run_sides(sides, build, batches, bc, device)
    name = device_name(device)
    results = []
    for side in sides:
        peak = bc.peak_tflops or peak_tflops(name, side.precision.split()[0])
        results.append(summarize(side, stats, flops, peak))
    ref = sides[0]
    for side, res in zip(sides[1:], results[1:], strict=True):
        res["bertpt_speedup"] = statistics.median(side.times[i] / ref.times[i] for i in side.times)
    L = batches[0]["input_ids"].shape[1]
    real = statistics.mean(s[0] / (s[2] * L) for s in stats)
    with torch.device("meta"):
        n_params = num_parameters(BertForPreTraining(model_config))
    report = {
        "model": bc.model,
        "parameters": n_params,
        "seq_len": L,
        "micro_batch": bc.micro_batch,
        "world_size": world,
        "data": described,
        "device": name,
        "threads": torch.get_num_threads(),
        "clock": bc.clock,
        "real_token_fraction": real,
        "masked_per_sequence": statistics.mean(s[3] / s[2] for s in stats),
        "zero_stage": (ds_config.get("zero_optimization") or {}).get("stage", 0),
        "versions": {m.__name__: m.__version__ for m in (torch, deepspeed, transformers)},
        "results": results,
    }
    if rank == 0:
        print_report(report)
        if bc.json_out:
            Path(bc.json_out).write_text(json.dumps(report, indent=2))
    distributed.shutdown()
    return report


def print_report(r: dict) -> None:
    v = r["versions"]
    print(
        f"\nbertpt bench: {r['model']} ({r['parameters'] / 1e6:.1f}M parameters), seq {r['seq_len']}, micro-batch "
        f"{r['micro_batch']}, world size {r['world_size']}; {r['device']} ({r['threads']} threads, {r['clock']} time); "
        f"torch {v['torch']}, "
        f"deepspeed {v['deepspeed']}, transformers {v['transformers']}\ndata: {r['data']}; real tokens "
        f"{r['real_token_fraction']:.1%} of each padded batch, {r['masked_per_sequence']:.1f} masked per sequence"
    )
    head = (
        f"{'side':48} {'precision':14} {'step ms (IQR)':>20} {'tokens/s':>9} {'seq/s':>7} {'TFLOPS':>7} {'MFU':>6} "
        f"{'peak MiB':>9}"
    )
    print(head + "\n" + "-" * len(head))
    for x in r["results"]:
        lo, hi = x["step_ms_iqr"]
        mfu, peak = (
            f"{x['mfu']:.1%}" if x["mfu"] else "-",
            "-" if x["peak_mib"] != x["peak_mib"] else f"{x['peak_mib']:,.0f}",
        )
        print(
            f"{x['side']:48} {x['precision']:14} {x['step_ms']:7.0f} ({lo:5.0f}-{hi:5.0f}) {x['tokens_per_s']:9,.0f} "
            f"{x['seq_per_s']:7.1f} {x['tflops']:7.3f} {mfu:>6} {peak:>9}"
        )
    for x in r["results"][1:]:
        print(
            f"bertpt ({r['results'][0]['precision']}) vs {x['side']} ({x['precision']}): "
            f"{x['bertpt_speedup']:.2f}x (median over batches of the step-time ratio)"
        )


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        BenchConfig,
        **cli.parser_options("bertpt-bench"),
        description=(__doc__ or "").split("\n\n")[0] + " See README, Throughput.",
    )
    (bc,) = cli.parse(parser, argv)
    for name, low in (
        ("steps", 1),
        ("warmup", 0),
        ("chunk", 1),
        ("rewarm", 0),
        ("repeats", 1),
        ("micro_batch", 0),
        ("seq_len", 0),
        ("threads", 0),
        ("profile", 0),
    ):
        if getattr(bc, name) < low:
            raise BertptError(f"--{name} must be at least {low} (got {getattr(bc, name)})")
    bad = [b for b in bc.baseline if b not in ("fp32", "bf16", "fp16", "same", "none")]
    if bad:
        raise BertptError(f"--baseline {' '.join(bad)}: choose from fp32, bf16, fp16, same, none")
    return bc
