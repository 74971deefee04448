"""The plain `transformers` pretraining loop a user writes: the baseline rows of the time-to-quality benchmark.

    python -m benchmarks.hf_pretrain --data DIR --deepspeed_config ds_configs/zero0.json --max_steps N \
        --output_dir OUT [--precision fp32|bf16] [--threads T]

What a user of `transformers` writes to pretrain BERT (MLM + NSP) on prepared NSP instances, since transformers
no longer ships an NSP dataset: transformers.BertForPreTraining (its MLM head is dense: it scores the vocabulary at
every position), the prepared instances read with bertpt.data.dataset's reader of the shards and shuffled by a
torch DataLoader, padded to the longest instance of each batch and masked by
transformers.DataCollatorForLanguageModeling (mlm_probability 0.15: BERT's 80/10/10 rule), torch.optim.AdamW with
the DeepSpeed JSON's optimizer hyper-parameters (lr, betas, eps, weight_decay; no decay on biases and LayerNorm
weights, as transformers' Trainer and bertpt do), its gradient clipping, and its WarmupDecayLR schedule as
transformers.get_linear_schedule_with_warmup (the JSON's "auto" values resolved for --max_steps as bertpt-pretrain
resolves them). fp32, or --precision bf16: the forward under torch.autocast(bfloat16), as users add it. On the
GPU when there is one.

Writes OUT/hf (save_pretrained: model and tokenizer) and OUT/train.json: steps, sequences, real (non-padding)
tokens, the loop's seconds (first step to last; no evaluation or saving inside it) and steps per second after the
first two steps (the benchmark's calibration runs use that with --no_save).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import transformers

from bertpt.config import load_ds_config
from bertpt.data.dataset import PretrainingData
from bertpt.data.format import load_meta
from bertpt.errors import exit_on_error
from bertpt.files import write_atomic
from bertpt.model import bert_config

WARM_STEPS = 2  # steps left out of the steps-per-second figure (allocator and oneDNN warm-up)


def example(sample) -> dict:
    """A prepared instance as the dict a transformers collator pads: [CLS] A [SEP] B [SEP] with segment ids."""
    n = len(sample.tokens)
    return {
        "input_ids": sample.tokens.tolist(),
        "token_type_ids": [0] * sample.a_len + [1] * (n - sample.a_len),
        "next_sentence_label": sample.is_random_next,
    }


def optimizer_and_schedule(model: torch.nn.Module, ds_config: dict) -> tuple[torch.optim.Optimizer, object, float]:
    """torch AdamW with the JSON's hyper-parameters and transformers' linear warmup/decay; also the clipping norm.
    `ds_config`: a DeepSpeed JSON with its "auto" values resolved (bertpt.config.load_ds_config)."""
    p = ds_config["optimizer"]["params"]
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": p.get("weight_decay", 0.0)}, {"params": no_decay, "weight_decay": 0.0}],
        lr=p["lr"],
        betas=tuple(p.get("betas", (0.9, 0.999))),
        eps=p.get("eps", 1e-8),
    )
    s = ds_config["scheduler"]["params"]
    sched = transformers.get_linear_schedule_with_warmup(opt, s["warmup_num_steps"], s["total_num_steps"])
    return opt, sched, float(ds_config.get("gradient_clipping", 0.0))


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    meta = load_meta(args.data)
    data = PretrainingData(meta, "train")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(meta.tokenizer_path()))
    ds_config = load_ds_config(args.deepspeed_config, max_steps=args.max_steps)
    batch = ds_config["train_micro_batch_size_per_gpu"] * ds_config.get("gradient_accumulation_steps", 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = transformers.BertForPreTraining(bert_config(args.model, meta.vocab_size, meta.special_ids.pad))
    model = model.to(device).train()
    opt, sched, clip = optimizer_and_schedule(model, ds_config)
    collator = transformers.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    loader = torch.utils.data.DataLoader(
        range(len(data)),
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(args.seed),
        collate_fn=lambda idx: collator([example(data[(i, i)]) for i in idx]),
    )
    autocast = args.precision == "bf16"
    step, sequences, tokens, started, warm_at = 0, 0, 0, time.perf_counter(), None

    def done() -> bool:
        over_time = args.max_seconds and step > WARM_STEPS and time.perf_counter() - started > args.max_seconds
        return step >= args.max_steps or bool(over_time)

    while not done():
        for b in loader:
            b = {k: v.to(device) for k, v in b.items()}
            with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                loss = model(**b).loss
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            sequences += len(b["input_ids"])
            tokens += int(b["attention_mask"].sum())
            if step == WARM_STEPS:
                warm_at = time.perf_counter()
            if step % 50 == 0 or step == args.max_steps:
                print(f"step {step}/{args.max_steps} loss {loss.item():.3f} {time.perf_counter() - started:.0f} s")
            if done():
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    rate = (step - WARM_STEPS) / (time.perf_counter() - warm_at) if warm_at and step > WARM_STEPS else step / seconds
    record = {
        "steps": step,
        "sequences": sequences,
        "tokens": tokens,
        "train_seconds": round(seconds, 3),
        "steps_per_s": rate,
        "precision": "bf16 autocast" if autocast else "fp32",
        "threads": args.threads,
        "batch": batch,
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_save:
        model.save_pretrained(out / "hf")
        tokenizer.save_pretrained(out / "hf")
    write_atomic(out / "train.json", json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a bertpt-prepare directory of MLM + NSP instances")
    p.add_argument("--deepspeed_config", required=True, help="the DeepSpeed JSON whose hyper-parameters to use")
    p.add_argument("--model", default="bert-mini", help="a bertpt model preset or BertConfig JSON")
    p.add_argument("--max_steps", type=int, required=True, help="optimizer steps (the LR schedule's length)")
    p.add_argument("--output_dir", required=True, help="where hf/ and train.json go")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: torch.autocast(bfloat16)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=42, help="initial weights, data order and masks")
    p.add_argument("--no_save", action="store_true", help="write train.json only (a calibration run)")
    p.add_argument(
        "--max_seconds", type=float, help="stop earlier, after this many seconds (and at least 3 steps): calibration"
    )
    args = p.parse_args(argv)
    with exit_on_error("benchmarks.hf_pretrain"):
        r = train(args)
        print(
            f"{r['steps']} steps, {r['tokens']:,} tokens in {r['train_seconds']:.1f} s ({r['steps_per_s']:.3f} steps/s)"
        )


if __name__ == "__main__":
    main()
