"""Metric sums: exact averages over micro-steps; the reporter's files."""

from __future__ import annotations

import io
import json

import pytest
import torch
import torch.distributed as dist

from bertpt.config import resolve_auto
from bertpt.metrics import Reporter, Sums, clock
from bertpt.model import PretrainingOutput
from bertpt.monitor import open_monitor

from tests.helpers import tensorboard_scalars


def resolve(ds: dict, output_dir) -> dict:
    return resolve_auto(ds, 10, bf16_native=False, output_dir=output_dir)


@pytest.fixture
def world_of_one(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def output(loss, mlm, nsp, mlm_correct, mlm_count, nsp_correct):
    def t(x):
        return torch.tensor(float(x))

    return PretrainingOutput(
        loss=t(loss),
        mlm_loss=t(mlm),
        nsp_loss=t(nsp),
        mlm_correct=t(mlm_correct),
        mlm_count=t(mlm_count),
        nsp_correct=t(nsp_correct),
    )


SUMS = {
    "loss": 1.0,
    "mlm_loss": 0.7,
    "nsp_loss": 0.3,
    "mlm_acc": 0.5,
    "nsp_acc": 0.6,
    "tokens": 1000.0,
    "tokens_sq": 90000.0,
    "sequences": 10.0,
    "predictions": 150.0,
}


def test_sums_average_over_micro_steps(world_of_one):
    sums = Sums("cpu")
    batch = {"input_ids": torch.zeros(4, 8), "attention_mask": torch.ones(4, 8)}
    batch["attention_mask"][0, 5:] = 0
    sums.add(output(3.0, 2.5, 0.5, 6, 10, 3), batch)
    sums.add(output(5.0, 4.0, 1.0, 2, 10, 1), batch)
    m = sums.reduce()
    assert m["loss"] == pytest.approx(4.0) and m["mlm_loss"] == pytest.approx(3.25)
    assert m["mlm_acc"] == pytest.approx(8 / 20) and m["nsp_acc"] == pytest.approx(4 / 8)
    assert m["tokens"] == 2 * 29 and m["sequences"] == 8
    assert m["tokens_sq"] == 2 * (5 * 5 + 3 * 8 * 8) and m["predictions"] == 20  # Σn² per sequence, Σ masked
    assert sums.reduce()["tokens"] == 0  # reduce resets


TENSORBOARD = {"tensorboard": {"enabled": True, "output_path": "auto", "job_name": "pretrain"}}


def test_reporter_writes_jsonl_and_tensorboard(tmp_path, monitor_world_of_one):
    monitor = open_monitor(resolve(TENSORBOARD, tmp_path), tmp_path)
    rep = Reporter(0, tmp_path, start_step=0, max_steps=10, monitor=monitor)
    m = rep.train(
        5,
        {
            "loss": 1.0,
            "mlm_loss": 0.7,
            "nsp_loss": 0.3,
            "mlm_acc": 0.5,
            "nsp_acc": 0.6,
            "tokens": 1000.0,
            "sequences": 10.0,
        },
        lr=1e-4,
        grad_norm=torch.tensor(2.0),
        loss_scale=None,
    )
    assert m["grad_norm"] == 2.0 and m["tokens_per_s"] > 0
    rep.eval(5, {"loss": 1.1, "mlm_loss": 0.8, "nsp_loss": 0.3, "mlm_acc": 0.4, "nsp_acc": 0.5})
    rep.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["split"], r["step"]) for r in rows] == [("train", 5), ("eval", 5)]
    assert rows[0]["lr"] == 1e-4 and "loss_scale" not in rows[0]
    assert tensorboard_scalars(tmp_path / "tb" / "pretrain")["eval/loss"] == [(5, pytest.approx(1.1))]
    (tmp_path / "plain").mkdir()
    no_monitor = Reporter(0, tmp_path / "plain", start_step=0, max_steps=10)  # a JSON without monitor sections
    no_monitor.eval(5, {"loss": 1.1, "mlm_loss": 0.8, "mlm_acc": 0.4})
    no_monitor.close()
    assert [p.name for p in (tmp_path / "plain").iterdir()] == ["metrics.jsonl"]


def test_reporter_shows_tflops_and_mfu(tmp_path, monitor_world_of_one):
    calls = []

    def flops(tokens, tokens_sq, sequences, predictions):
        calls.append((tokens, tokens_sq, sequences, predictions))
        return 4e12

    monitor = open_monitor(resolve(TENSORBOARD, tmp_path), tmp_path)
    rep = Reporter(0, tmp_path, start_step=0, max_steps=10, flops=flops, peak_tflops=100.0, world=2, monitor=monitor)
    rep.last_time -= 2.0  # 2 s of training since the reporter started
    sums = SUMS
    m = rep.train(5, sums, lr=1e-4, grad_norm=None, loss_scale=None)
    rep.close()
    assert calls == [(1000.0, 90000.0, 10.0, 150.0)]
    assert m["tflops"] == pytest.approx(1.0, rel=0.01)  # 4e12 FLOPs / 2 s / 2 devices
    assert m["mfu"] == pytest.approx(0.01, rel=0.01) and m["seq_per_s"] == pytest.approx(5.0, rel=0.01)
    tags = tensorboard_scalars(tmp_path / "tb" / "pretrain")
    assert {"train/tokens_per_s", "train/seq_per_s", "train/tflops", "train/mfu"} <= set(tags)
    assert "train/tokens_sq" not in tags
    no_peak = Reporter(0, tmp_path, start_step=0, max_steps=10, flops=flops)
    assert "mfu" not in no_peak.train(6, sums, lr=1e-4, grad_norm=None, loss_scale=None)
    no_peak.close()


class Stream(io.StringIO):
    """A text stream that says whether it is a terminal, as sys.stderr does."""

    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_reporter_prints_plain_lines_when_the_stream_is_not_a_terminal(tmp_path, capsys):
    log = Stream(tty=False)
    rep = Reporter(0, tmp_path, start_step=100, max_steps=600, stream=log)
    rep.started -= 50.0  # 50 s since the run started, for 10 steps of it
    for _ in range(101, 111):
        rep.step()
    rep.train(110, SUMS, lr=2.5e-4, grad_norm=None, loss_scale=None)
    rep.eval(110, {"loss": 1.1, "mlm_loss": 0.8, "nsp_loss": 0.3, "mlm_acc": 0.4, "nsp_acc": 0.5})
    rep.close()
    text = log.getvalue()
    assert "\r" not in text and "pretrain:" not in text  # no tqdm bar at all
    lines = text.splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("step 110/600 (18.3%) | loss 1.000 mlm 0.700/50.0% nsp 0.300/60.0% lr 2.50e-04 | ")
    assert "tok/s" in line and line.endswith("elapsed 0:00:50, ETA 0:40:50")  # 490 steps at 5 s each
    assert capsys.readouterr().out == "step 110: eval mlm loss 0.8000 acc 40.00% | nsp loss 0.3000 acc 50.00%\n"


def test_reporter_shows_a_bar_on_a_terminal(tmp_path):
    term = Stream(tty=True)
    rep = Reporter(0, tmp_path, start_step=0, max_steps=20, stream=term)
    for _ in range(10):
        rep.step()
    rep.train(10, SUMS, lr=1e-4, grad_norm=None, loss_scale=None)
    rep.step()
    rep.close()
    text = term.getvalue()
    assert "\r" in text and "pretrain:" in text and "11/20" in text  # tqdm's carriage-return bar
    assert "ETA" not in text and "step 10/20" not in text  # no plain lines
    quiet = Stream(tty=False)
    other_rank = Reporter(1, tmp_path / "r1", start_step=0, max_steps=20, stream=quiet)
    other_rank.train(10, SUMS, lr=1e-4, grad_norm=None, loss_scale=None)
    other_rank.close()
    assert quiet.getvalue() == ""


def test_clock():
    assert (clock(0), clock(59.6), clock(3725.4), clock(-3)) == ("0:00:00", "0:01:00", "1:02:05", "0:00:00")
