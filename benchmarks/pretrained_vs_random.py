"""Is the pretrained model any good? Fine-tune it and the same architecture randomly initialised, side by side.

    python -m benchmarks.pretrained_vs_random MODEL --glue_dir ../shared/data/glue --out runs/sanity \
        [--tasks cola,sst2,mrpc,stsb] [--seeds 5] [-- extra bertpt-finetune flags, e.g. --max_train_samples 4000]

MODEL is anything `bertpt-finetune` takes (a bertpt run directory, its checkpoints, an HF BERT directory).
Both rows run through the real `bertpt-finetune` command with the same recipe and seeds; the baseline
row adds `--random_init` (the same configuration and tokenizer, fresh weights). For each task the
table shows the median and the [min, max] of the per-seed task scores of each row and whether every
pretrained seed beats every random seed (min(pretrained) > max(random)): the separation asked of a
model that learned something in pretraining (issue 13, acceptance 2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run_row(model: str, out: Path, common: list[str], random_init: bool) -> dict:
    """Run bertpt-finetune into `out` (reused when its results.json exists) and return its results."""
    results = out / "results.json"
    if not results.exists():
        cmd = [sys.executable, "-m", "bertpt.finetune", model, "--output_dir", str(out), *common]
        if random_init:
            cmd.append("--random_init")
        print("+ " + " ".join(cmd), flush=True)
        start = time.time()
        subprocess.run(cmd, check=True)
        print(f"  ({time.time() - start:.0f} s)", flush=True)
    return json.loads(results.read_text())


def table(pre: dict, rnd: dict) -> tuple[str, int]:
    """(the markdown table, the number of tasks where min(pretrained) > max(random))."""
    rows = [
        "| task | pretrained median [min, max] | random init median [min, max] | min(pretrained) > max(random) |",
        "|---|---|---|---|",
    ]
    separated = 0
    for name, p in pre["tasks"].items():
        r = rnd["tasks"][name]
        ps, rs = p["scores"], r["scores"]
        sep = min(ps) > max(rs)
        separated += sep
        rows.append(
            f"| {name} | {p['score']:.4f} [{min(ps):.4f}, {max(ps):.4f}] | {r['score']:.4f} [{min(rs):.4f}, "
            f"{max(rs):.4f}] | {'yes' if sep else 'no'} |"
        )
    if len(pre["tasks"]) > 1:
        # over the tasks of this table only: a reused random row may hold more tasks than the pretrained one
        pre_avg, rnd_avg = (
            sum(row["tasks"][name]["score"] for name in pre["tasks"]) / len(pre["tasks"]) for row in (pre, rnd)
        )
        rows.append(f"| average (median scores) | {pre_avg:.4f} | {rnd_avg:.4f} | |")
    return "\n".join(rows), separated


def check_comparable(pre: dict, rnd: dict) -> None:
    """Refuse two rows that are not the same experiment: a reused results.json (see run_row) written with another
    recipe (learning rate, epochs, --max_train_samples, seeds, ...) or without one of the pretrained row's tasks.
    Raises SystemExit with one line."""
    if pre.get("recipe") != rnd.get("recipe"):
        raise SystemExit(
            f"pretrained_vs_random: the rows' recipes differ (pretrained {pre.get('recipe')}, random init "
            f"{rnd.get('recipe')}); delete the stale results.json under --out and run again"
        )
    missing = [name for name in pre["tasks"] if name not in rnd["tasks"]]
    if missing:
        raise SystemExit(
            f"pretrained_vs_random: the random-init row has no {', '.join(missing)}; delete its results.json"
        )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the pretrained model (anything bertpt-finetune takes)")
    p.add_argument("--glue_dir", required=True, help="a GLUE directory in the official layout")
    p.add_argument("--out", type=Path, required=True, help="output directory (pretrained/ and random_init/ inside)")
    p.add_argument("--tasks", default="cola,sst2,mrpc,stsb", help="GLUE tasks, comma-separated")
    p.add_argument("--seeds", type=int, default=5, help="seeds per task and row")
    args = p.parse_args(argv)
    common = ["--tasks", args.tasks, "--glue_dir", args.glue_dir, "--seeds", str(args.seeds), *extra]
    pre = run_row(args.model, args.out / "pretrained", common, random_init=False)
    rnd = run_row(args.model, args.out / "random_init", common, random_init=True)
    check_comparable(pre, rnd)
    text, separated = table(pre, rnd)
    lr = {name: t.get("learning_rate") for name, t in pre["tasks"].items()}
    summary = (
        f"{text}\n\nmodel {pre.get('model', args.model)}; {args.seeds} seeds; learning rates {lr}; extra flags "
        f"{' '.join(extra) or 'none'}\nmin(pretrained) > max(random) on {separated} of {len(pre['tasks'])} tasks"
    )
    (args.out / "summary.md").write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
