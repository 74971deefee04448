"""`python -m bertpt.bench --zero_sweep`: bertpt's training step for each DeepSpeed JSON and world size.

Each (JSON, world size) runs `python -m bertpt.bench --baseline none` in its own process group
under torchrun (several processes on this machine for world size > 1), so engines never share a
process; the children write JSON and this prints one table, throughput relative to ZeRO-0 at the
same world size. torchrun gives each of several processes one CPU thread unless OMP_NUM_THREADS is set.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bertpt.bench.throughput import REPO, BenchConfig
from bertpt.distributed import free_port
from bertpt.errors import BertptError


def sweep(bc: BenchConfig) -> list[dict]:
    own = {
        "zero_sweep",
        "sweep_configs",
        "world_sizes",
        "repeats",
        "json_out",
        "deepspeed_config",
        "baseline",
        "profile",
    }
    passed = [a for f in dataclasses.fields(bc) if f.name not in own for a in (f"--{f.name}", str(getattr(bc, f.name)))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    runs: dict[tuple, list[dict]] = {}
    pairs = list(itertools.product(bc.world_sizes, bc.sweep_configs))
    for rep in range(bc.repeats):
        for world, config in pairs if rep % 2 == 0 else pairs[::-1]:
            runs.setdefault((world, config), []).append(run_one(config, world, passed, env))
    rows = []
    for (world, config), results in runs.items():  # each row: the run with the median throughput
        r = sorted(results, key=lambda x: x["results"][0]["tokens_per_s"])[(len(results) - 1) // 2]
        rows.append(
            {
                "config": config,
                "world_size": world,
                "zero_stage": r["zero_stage"],
                **r["results"][0],
                "device": r["device"],
                "threads": r["threads"],
                "clock": r["clock"],
                "runs": len(results),
            }
        )
    rows.sort(key=lambda x: (bc.world_sizes.index(x["world_size"]), bc.sweep_configs.index(x["config"])))
    print_table(bc, rows)
    if bc.json_out:
        Path(bc.json_out).write_text(json.dumps(rows, indent=2))
    return rows


def run_one(config: str, world: int, passed: list[str], env: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(world),
            "--master_port",
            str(free_port()),
            "-m",
            "bertpt.bench",
            "--deepspeed_config",
            config,
            "--baseline",
            "none",
            "--json_out",
            str(out),
            *passed,
        ]
        print(f"bertpt bench: {config}, world size {world} ...", flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode or not out.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise BertptError(f"--zero_sweep: {config} on {world} processes exited {proc.returncode}:\n{tail}")
        return json.loads(out.read_text())


def print_table(bc: BenchConfig, rows: list[dict]) -> None:
    print(
        f"\nbertpt bench --zero_sweep: {bc.model}, micro-batch {bc.micro_batch or 'from the JSON'} per process, "
        f"{rows[0]['device']}, {rows[0]['clock']} time, median of {rows[0]['runs']} run(s); tokens/s over all processes"
    )
    head = (
        f"{'config':26} {'ZeRO':>4} {'world':>5} {'threads':>7} {'precision':9} {'step ms':>8} {'tokens/s':>9} "
        f"{'vs ZeRO-0':>9} {'peak MiB/proc':>13}"
    )
    print(head + "\n" + "-" * len(head))
    for row in rows:
        zero0 = next((x for x in rows if x["world_size"] == row["world_size"] and x["zero_stage"] == 0), None)
        rel = f"{row['tokens_per_s'] / zero0['tokens_per_s']:.2f}x" if zero0 else "-"
        peak = "-" if row["peak_mib"] != row["peak_mib"] else f"{row['peak_mib']:,.0f}"  # nan: --no_memory
        print(
            f"{Path(row['config']).name:26} {row['zero_stage']:4} {row['world_size']:5} {row['threads']:7} "
            f"{row['precision']:9} {row['step_ms']:8.0f} {row['tokens_per_s']:9,.0f} {rel:>9} {peak:>13}"
        )
