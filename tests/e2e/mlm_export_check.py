"""Run by test_mlm_objective.py under the deepspeed launcher: train MLM-only data with bertpt's own
setup/fit/finish (which exports to <output_dir>/hf as BertForMaskedLM), then compare the export's
logits with the engine's on a held-out batch."""

import sys

import torch
from transformers import BertForMaskedLM

from bertpt import distributed
from bertpt.config import parse_args
from bertpt.pretrain import finish, fit, setup

cfg, ds_path = parse_args(sys.argv[1:])
run = setup(cfg, ds_path)
fit(run)
finish(run, 0.0)

batch = next(iter(run.eval_loader))  # the same fixed batch on each rank
assert "next_sentence_label" not in batch and not batch["token_type_ids"].any()
inputs = {k: batch[k].to(run.engine.device) for k in ("input_ids", "token_type_ids", "attention_mask")}
run.engine.eval()
with torch.no_grad():
    ours = run.engine(**inputs)
    hf, info = BertForMaskedLM.from_pretrained(f"{cfg.output_dir}/hf", output_loading_info=True)
    theirs = hf.eval()(**inputs)
assert not any(info.values()), info  # no missing, unexpected or mismatched keys
valid = inputs["attention_mask"].bool()
mlm = (ours.prediction_logits[valid] - theirs.logits[valid]).abs().max().item()
print(f"rank {run.rank}: max |diff| mlm {mlm:.2e}", flush=True)
assert mlm < 2e-5, mlm
print(f"rank {run.rank}: logits match", flush=True)
distributed.shutdown()
