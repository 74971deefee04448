"""Training metrics: accumulated on the device, reduced across ranks only at log time, shown on a
rank-0 progress bar, written as scalars through DeepSpeed's monitor to the dashboards the DeepSpeed JSON
enables (TensorBoard, W&B, CSV, Comet: bertpt.monitor) and appended to <output_dir>/metrics.jsonl
(full-precision numbers for scripts and plots; not `logging.py`: that would shadow the
standard library when the package directory is on sys.path).

Each dashboard holds a scalar's step once. A resumed run (from checkpoint step K after reaching step N > K)
computes steps K+1..N again; metrics.jsonl gets their rows again (a reader keeps the last row of a step,
tests/helpers.read_metrics), the monitors do not: a tag is written only at steps above the last one
metrics.jsonl already holds for it. Two reasons: W&B refuses a step below its run's last one (so a resumed
W&B run could not take them anyway, and every backend then shows the same history), and resuming is
bitwise-exact, so the values are the ones already written (except wall-clock throughput). The same holds
after a divergence rollback: the dashboards keep the diverged steps (marked by divergence/rollbacks) and
continue after them, metrics.jsonl has both.

Throughput: tokens/s counts real (non-padding) tokens, sequences/s sequences, both over all ranks;
TFLOPS is model FLOPs (bertpt.flops, for the real tokens and masked positions) per second per
device, and MFU that over the device's peak, shown where the peak is known or given."""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from bertpt.monitor import write_scalars

# What a micro-step contributes; all sums, so that averages over steps and ranks are exact.
FIELDS = (
    "loss",
    "mlm_loss",
    "nsp_loss",
    "mlm_correct",
    "mlm_count",
    "nsp_correct",
    "sequences",
    "tokens",
    "tokens_sq",
    "micro_steps",
)
COUNTS = ("tokens", "tokens_sq", "sequences", "predictions")  # raw sums: metrics.jsonl only, not the dashboards


class Sums:
    """Running sums over micro-steps on this rank; `reduce` sums over ranks and resets. `nsp`: whether the
    outputs carry NSP figures (the data's objective is mlm_nsp); without, `reduce` returns no nsp_* keys."""

    def __init__(self, device, nsp: bool = True):
        self.fields = FIELDS if nsp else tuple(f for f in FIELDS if not f.startswith("nsp_"))
        self.t = torch.zeros(len(self.fields), dtype=torch.float64, device=device)

    def add(self, out, batch) -> None:
        lengths = batch["attention_mask"].sum(1).double()  # real tokens per sequence; Σn² is attention's cost
        one = torch.ones((), dtype=torch.float64, device=self.t.device)
        values = {
            "loss": out.loss.detach().double(),
            "mlm_loss": out.mlm_loss.double(),
            "nsp_loss": out.nsp_loss,
            "mlm_correct": out.mlm_correct.double(),
            "mlm_count": out.mlm_count.double(),
            "nsp_correct": out.nsp_correct,
            "sequences": one * batch["input_ids"].shape[0],
            "tokens": lengths.sum(),
            "tokens_sq": (lengths * lengths).sum(),
            "micro_steps": one,
        }
        self.t += torch.stack([values[f].double() for f in self.fields])

    def reduce(self) -> dict[str, float]:
        t = self.t.clone()
        dist.all_reduce(t)
        self.t.zero_()
        s = dict(zip(self.fields, t.tolist()))
        steps = max(s["micro_steps"], 1)
        m = {"loss": s["loss"] / steps, "mlm_loss": s["mlm_loss"] / steps}
        if "nsp_loss" in s:
            m["nsp_loss"] = s["nsp_loss"] / steps
        m["mlm_acc"] = s["mlm_correct"] / max(s["mlm_count"], 1)
        if "nsp_correct" in s:
            m["nsp_acc"] = s["nsp_correct"] / max(s["sequences"], 1)
        return {
            **m,
            "tokens": s["tokens"],
            "tokens_sq": s["tokens_sq"],
            "sequences": s["sequences"],
            "predictions": s["mlm_count"],
        }


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS, e.g. clock(3725.4) == "1:02:05"."""
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


def logged_steps(jsonl: Path) -> dict[str, int]:
    """{dashboard tag ("train/loss"): the last step metrics.jsonl at `jsonl` holds for it}; {} without the
    file. A line cut short by a kill is skipped."""
    last: dict[str, int] = {}
    if not jsonl.is_file():
        return last
    with open(jsonl, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
                prefix, step = row.pop("split"), int(row.pop("step"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            for k in row:
                if k not in COUNTS:
                    tag = f"{prefix}/{k}"
                    last[tag] = max(step, last.get(tag, step))
    return last


class Reporter:
    """Rank 0's console progress and its scalars (metrics.jsonl and the monitor); a no-op on other ranks.

    On a terminal the progress is a tqdm bar. When the stream is not a terminal (a log file under SLURM,
    nohup or CI), a bar would write carriage returns into one ever-growing line, so each train() call
    (every --log_steps) prints one plain line instead: "step 20/600 (3.3%) | loss ... | lr ... |
    tok/s ... | elapsed 0:00:41, ETA 0:19:40"."""

    def __init__(
        self,
        rank: int,
        output_dir: Path,
        start_step: int,
        max_steps: int,
        flops: Callable[..., float] | None = None,
        peak_tflops: float | None = None,
        world: int = 1,
        stream=None,
        monitor=None,
    ):
        """`flops(tokens, tokens_sq, sequences, predictions)`: model FLOPs of that much work
        (bertpt.flops.step_flops); `peak_tflops`: one device's peak, for MFU (None: no MFU); `stream`: where
        progress goes (default sys.stderr): a bar if it is a terminal (isatty), plain lines otherwise;
        `monitor`: where scalars go besides metrics.jsonl (bertpt.monitor.open_monitor's; None: nowhere)."""
        self.active = rank == 0
        self.flops, self.peak_tflops, self.world = flops, peak_tflops, world
        self.jsonl = output_dir / "metrics.jsonl"
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start_step, self.max_steps, self.started = start_step, max_steps, time.perf_counter()
        self.bar = tqdm(
            total=max_steps,
            initial=start_step,
            desc="pretrain",
            unit="step",
            dynamic_ncols=True,
            file=self.stream,
            disable=not (self.active and self.tty),
        )
        self.monitor = monitor if self.active else None
        self.written = logged_steps(self.jsonl) if self.monitor is not None else {}  # tag -> last step written
        self.last_time, self.excluded = time.perf_counter(), 0.0

    def train(
        self, step: int, m: dict[str, float], lr: float, grad_norm: float | None, loss_scale: float | None
    ) -> dict[str, float]:
        now = time.perf_counter()
        elapsed = max(now - self.last_time - self.excluded, 1e-9)
        m = {**m, "lr": lr, "tokens_per_s": m["tokens"] / elapsed, "seq_per_s": m["sequences"] / elapsed}
        speed = f"{m['tokens_per_s']:,.0f} tok/s {m['seq_per_s']:,.1f} seq/s"
        if self.flops is not None:
            m["tflops"] = (
                self.flops(m["tokens"], m["tokens_sq"], m["sequences"], m["predictions"]) / elapsed / self.world / 1e12
            )
            speed += f" {m['tflops']:.3g} TFLOPS"
            if self.peak_tflops:
                m["mfu"] = m["tflops"] / self.peak_tflops
                speed += f" MFU {m['mfu']:.1%}"
        if grad_norm is not None:  # a float or a 0-d tensor, depending on the ZeRO stage
            m["grad_norm"] = float(grad_norm)
        if loss_scale is not None:
            m["loss_scale"] = float(loss_scale)
        self.last_time, self.excluded = now, 0.0
        if self.active:
            nsp = f"nsp {m['nsp_loss']:.3f}/{m['nsp_acc']:.1%} " if "nsp_loss" in m else ""
            losses = f"loss {m['loss']:.3f} mlm {m['mlm_loss']:.3f}/{m['mlm_acc']:.1%} {nsp}lr {lr:.2e}"
            if self.tty:
                self.bar.set_postfix_str(f"{losses} {speed}", refresh=False)
            else:
                self.write(f"{self.position(step)} | {losses} | {speed} | {self.timing(step)}", self.stream)
            self.scalars("train", m, step)
        return m

    def position(self, step: int) -> str:
        """E.g. "step 20/600 (3.3%)"."""
        return f"step {step}/{self.max_steps} ({step / max(self.max_steps, 1):.1%})"

    def timing(self, step: int) -> str:
        """E.g. "elapsed 0:00:41, ETA 0:19:40": since this reporter started, and the rest at this run's mean pace
        (evaluations and saves included)."""
        elapsed = time.perf_counter() - self.started
        done = step - self.start_step
        eta = clock(elapsed / done * (self.max_steps - step)) if done > 0 else "?"
        return f"elapsed {clock(elapsed)}, ETA {eta}"

    def eval(self, step: int, m: dict[str, float]) -> None:
        if self.active:
            nsp = f" | nsp loss {m['nsp_loss']:.4f} acc {m['nsp_acc']:.2%}" if "nsp_loss" in m else ""
            self.write(f"step {step}: eval mlm loss {m['mlm_loss']:.4f} acc {m['mlm_acc']:.2%}{nsp}")
            self.scalars("eval", m, step)

    def scalars(self, prefix: str, m: dict[str, float], step: int) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps({"split": prefix, "step": step, **m}) + "\n")
        if self.monitor is not None:
            events = []
            for k, v in m.items():
                tag = f"{prefix}/{k}"
                if k not in COUNTS and step > self.written.get(tag, -1):  # each step once (module docstring)
                    events.append((tag, float(v), step))
                    self.written[tag] = step
            write_scalars(self.monitor, events)

    def settings(self, prefix: str, m: dict[str, float], step: int) -> None:
        """Values fixed for the run (e.g. its effective masking), recorded once at its start, as scalars."""
        if self.active:
            self.scalars(prefix, m, step)

    @contextlib.contextmanager
    def paused(self):
        """Evaluation and checkpointing inside this block do not count against tokens/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - start

    def event(self, prefix: str, m: dict[str, float], step: int) -> None:
        """Scalars of something that happened at `step` (e.g. divergence/rollbacks), rank 0."""
        if self.active:
            self.scalars(prefix, m, step)

    def step(self, n: int = 1) -> None:
        self.bar.update(n)

    def rewind(self, step: int) -> None:
        """The run went back to `step` (a divergence rollback): the bar shows it."""
        self.bar.n = step
        self.bar.refresh()

    def write(self, text: str, file=None) -> None:
        """One line from rank 0 (default: stdout), above the bar if there is one."""
        if self.active:
            if self.tty:
                self.bar.write(text, file=file)
            else:
                print(text, file=file or sys.stdout, flush=True)

    def close(self) -> None:
        self.bar.close()
