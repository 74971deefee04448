"""Helpers for the tests: DeepSpeed JSONs derived from the presets, launching, reading metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bertpt.distributed import free_port  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parent.parent
PRETRAIN = str(REPO / "bertpt" / "pretrain.py")


def ds_config(
    tmp_path: Path, preset: str, precision: str | None = None, micro: int = 4, accum: int = 1, **overrides
) -> str:
    """A preset from ds_configs/ with test-sized batches; precision 'fp32' drops bf16/fp16."""
    cfg = json.loads((REPO / "ds_configs" / f"{preset}.json").read_text())
    cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"] = micro, accum
    if precision == "fp32":
        cfg.pop("bf16", None)
        cfg.pop("fp16", None)
    cfg.update(overrides)
    path = tmp_path / f"{preset}-{precision or 'preset'}-{micro}x{accum}.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def read_metrics(output_dir: Path, split: str = "train") -> dict[int, dict]:
    rows = [json.loads(line) for line in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["split"] == split}


def losses(output_dir: Path) -> list[float]:
    """The train loss of every logged step, in step order."""
    return [m["loss"] for _, m in sorted(read_metrics(output_dir).items())]


def one_error_line(proc: subprocess.CompletedProcess, *expected: str, prog: str = "bertpt-pretrain") -> str:
    """Assert the command failed as a user error should: exit 2, no traceback, exactly one
    `PROG: error:` line on stderr containing every `expected` text. Returns that line."""
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1 and all(e in errors[0] for e in expected), proc.stderr[-3000:]
    return errors[0]


def launch_env() -> dict[str, str]:
    env = dict(
        os.environ,
        DS_ACCELERATOR="cpu",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        # the checkout under test, whatever bertpt an (editable) install points at
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    )
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE"):
        env.pop(var, None)
    return env


def run(
    cmd: list[str], timeout: int = 600, check: bool = True, cwd: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a command, capturing output; on an unexpected exit code fail with its output's tail."""
    proc = subprocess.run(
        cmd, cwd=cwd, env={**launch_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    return proc


def train_args(data: Path, out: Path, config: str, steps: int, *extra: str) -> list[str]:
    """bertpt-pretrain flags for a fast tiny run that logs every step."""
    return [
        "--deepspeed_config",
        config,
        "--data",
        str(data),
        "--output_dir",
        str(out),
        "--model",
        "bert-tiny",
        "--max_steps",
        str(steps),
        "--log_steps",
        "1",
        "--eval_steps",
        "0",
        "--eval_samples",
        "32",
        "--num_workers",
        "0",
        *extra,
    ]


def deepspeed_cmd(nproc: int, *args: str) -> list[str]:
    return ["deepspeed", "--num_gpus", str(nproc), "--master_port", str(free_port()), PRETRAIN, *args]


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, PRETRAIN, *args]


# ---------------------------------------------------------------------------------------------
# Dashboards, read back with each backend's own reader: {tag: [(step, value), ...]} in written order


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in `log_dir` (TensorBoard's EventAccumulator, no sampling)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def csv_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """DeepSpeed's CSV monitor files in `log_dir` ({tag with '/' as '_'}.csv: one `step,<name>` header row, then
    step,value rows), keyed by file stem. A second header row (a resumed run's) fails int()."""
    import csv

    out = {}
    for path in sorted(Path(log_dir).glob("*.csv")):
        with open(path, newline="") as f:
            header, *rows = csv.reader(f)
        assert header[0] == "step" and path.stem.endswith(header[1]), (path, header)
        out[path.stem] = [(int(s), float(v)) for s, v in rows]
    return out


def wandb_offline_runs(wandb_dir: Path) -> list[tuple[str, str, dict[str, list[tuple[int, float]]]]]:
    """[(run id, run name, {key: [(step, value)]})] of every offline run under `wandb_dir` (WANDB_DIR/wandb), oldest
    first (by the run record's start time: directory names only have whole seconds, and two runs started in the same
    second sort by their random ids), read from its .wandb transaction log with wandb's own reader
    (wandb.sdk.internal.datastore)."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    runs = []
    for run_dir in Path(wandb_dir).glob("offline-run-*"):
        (log,) = run_dir.glob("run-*.wandb")
        store = datastore.DataStore()
        store.open_for_scan(str(log))
        run_id, name, history, started = None, None, {}, (0, 0)
        while (data := store.scan_data()) is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_id, name = record.run.run_id, record.run.display_name
                started = (record.run.start_time.seconds, record.run.start_time.nanos)
            elif kind == "history":
                step = record.history.step.num  # the row's step (wandb.log's step=)
                for item in record.history.item:
                    key = item.key or "/".join(item.nested_key)  # wandb stores "train/loss" as ["train", "loss"]
                    if not key.startswith("_"):  # _step, _runtime, _timestamp: wandb's own
                        history.setdefault(key, []).append((step, json.loads(item.value_json)))
        runs.append((started, run_dir.name, (run_id, name, history)))
    return [run for *_, run in sorted(runs)]
