"""Run by test_export_gives_the_engines_logits under the deepspeed launcher: train with bertpt's
own setup/fit/finish (which exports to <output_dir>/hf), then compare logits."""

import sys

import torch
from transformers import BertForPreTraining

from bertpt import distributed
from bertpt.config import parse_args
from bertpt.pretrain import finish, fit, setup

cfg, ds_path = parse_args(sys.argv[1:])
run = setup(cfg, ds_path)
fit(run)
finish(run, 0.0)

batch = next(iter(run.eval_loader))  # the same fixed batch on each rank (ZeRO-3 needs all ranks)
inputs = {k: batch[k].to(run.engine.device) for k in ("input_ids", "token_type_ids", "attention_mask")}
run.engine.eval()
with torch.no_grad():
    ours = run.engine(**inputs)
    hf = BertForPreTraining.from_pretrained(f"{cfg.output_dir}/hf").eval()(**inputs)
valid = inputs["attention_mask"].bool()
mlm = (ours.prediction_logits[valid] - hf.prediction_logits[valid]).abs().max().item()
nsp = (ours.seq_relationship_logits - hf.seq_relationship_logits).abs().max().item()
print(f"rank {run.rank}: max |diff| mlm {mlm:.2e} nsp {nsp:.2e}", flush=True)
assert mlm < 2e-5 and nsp < 2e-5, (mlm, nsp)
print(f"rank {run.rank}: logits match", flush=True)
distributed.shutdown()
