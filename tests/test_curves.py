"""Score curves (bertpt/finetune/curves.py): checkpoint points from a real checkpoints directory, the CSV cell by
cell, the figure's lines per panel, the PNG, and the re-plot command. No fine-tuning here (fast)."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from bertpt.ckpt import layout
from bertpt.errors import BertptError
from bertpt.finetune import curves
from bertpt.finetune.curves import Point, checkpoint_points, curves_figure, read_eval_metrics, write_curves

from tests.ckpt_fakes import release_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def add_tag(ckpt, step: int, tokens_seen=None, train_seconds=None):
    """A copy of release 0.1's step_000002 as step `step`, its bertpt_state.json edited, its manifest rewritten."""
    tag = layout.tag_for(step)
    shutil.copytree(ckpt / "step_000002", ckpt / tag)
    state = json.loads((ckpt / tag / layout.STATE).read_text())
    state.update(step=step, consumed_samples=4 * step)
    if tokens_seen is not None:
        state.update(tokens_seen=tokens_seen, train_seconds=train_seconds)
    (ckpt / tag / layout.STATE).write_text(json.dumps(state))
    layout.write_manifest(ckpt / tag, tag)


def test_checkpoint_points_oldest_first_with_tokens_and_time(tmp_path, capsys):
    run = release_run(tmp_path)
    ckpt = run / "checkpoints"
    add_tag(ckpt, 10, tokens_seen=40 * 64, train_seconds=12.5)
    add_tag(ckpt, 4, tokens_seen=16 * 64, train_seconds=5.25)
    add_tag(ckpt, 6, tokens_seen=24 * 64, train_seconds=7.0)
    add_tag(ckpt, 8, tokens_seen=32 * 64, train_seconds=9.0)
    victim = next((ckpt / "step_000008").glob("*optim_states.pt"))  # damaged after publishing: left out
    victim.write_bytes(victim.read_bytes()[:100])
    (ckpt / "step_000012.tmp").mkdir()  # a save in progress: not published
    expected = [
        Point("step_000002", 2, None, None),  # release 0.1: no tokens_seen, no train_seconds
        Point("step_000004", 4, 1024, 5.25),
        Point("step_000006", 6, 1536, 7.0),
        Point("step_000010", 10, 2560, 12.5),
    ]
    assert checkpoint_points(run) == expected
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("bertpt: warning: checkpoint ")
    assert "step_000008" in err[0] and "the curves leave it out" in err[0]
    assert checkpoint_points(ckpt) == expected  # the checkpoints directory itself


def test_checkpoint_points_without_checkpoints_is_one_line(tmp_path):
    with pytest.raises(BertptError, match=r"holds no published checkpoint") as e:
        checkpoint_points(tmp_path)
    assert "\n" not in str(e.value)


def results(cola: list[float], mrpc_f1: list[float], mrpc_acc: list[float], average: bool = True) -> dict:
    """A results dict in results.json's shape: CoLA (one metric) and MRPC (two), 3 seeds each."""

    def metric(values):
        return {"median": sorted(values)[1], "values": values, "min": min(values), "max": max(values)}

    mrpc_scores = [(f + a) / 2 for f, a in zip(mrpc_f1, mrpc_acc)]
    tasks = {
        "cola": {"metrics": {"matthews_correlation": metric(cola)}, "score": sorted(cola)[1], "scores": cola},
        "mrpc": {
            "metrics": {"f1": metric(mrpc_f1), "accuracy": metric(mrpc_acc)},
            "score": sorted(mrpc_scores)[1],
            "scores": mrpc_scores,
        },
    }
    avg = (tasks["cola"]["score"] + tasks["mrpc"]["score"]) / 2 if average else None
    return {"tasks": tasks, "average": avg, "model": "run", "seeds": [1, 2, 3]}


ROWS = [
    (Point("step_000002", 2, None, None), results([0.0, 0.0, 0.0], [0.75, 0.8, 0.5], [0.5, 0.75, 0.25])),
    (Point("step_000004", 4, 1024, 5.25), results([0.125, 0.25, 0.0], [0.75, 0.875, 0.75], [0.5, 0.625, 0.75])),
    (Point("step_000006", 6, 1536, 7.0), results([0.25, 0.5, 0.375], [0.875, 0.75, 1.0], [0.75, 0.75, 0.875])),
    (Point("step_000010", 10, 2560, 12.5), results([0.5, 0.25, 0.5], [0.875, 1.0, 1.0], [0.875, 1.0, 0.75])),
]

EXPECTED_CSV = """\
tag,step,tokens_seen,train_seconds,task,score,score_min,score_max,matthews_correlation,f1,accuracy
step_000002,2,,,cola,0.0,0.0,0.0,0.0,,
step_000002,2,,,mrpc,0.625,0.375,0.775,,0.75,0.5
step_000002,2,,,average,0.3125,,,,,
step_000004,4,1024,5.25,cola,0.125,0.0,0.25,0.125,,
step_000004,4,1024,5.25,mrpc,0.75,0.625,0.75,,0.75,0.625
step_000004,4,1024,5.25,average,0.4375,,,,,
step_000006,6,1536,7.0,cola,0.375,0.25,0.5,0.375,,
step_000006,6,1536,7.0,mrpc,0.8125,0.75,0.9375,,0.875,0.75
step_000006,6,1536,7.0,average,0.59375,,,,,
step_000010,10,2560,12.5,cola,0.5,0.25,0.5,0.5,,
step_000010,10,2560,12.5,mrpc,0.875,0.875,1.0,,1.0,0.875
step_000010,10,2560,12.5,average,0.6875,,,,,
"""

EVAL = [
    {"split": "train", "step": 1, "mlm_acc": 0.0, "nsp_acc": 0.5},
    {"split": "eval", "step": 2, "mlm_acc": 0.05, "nsp_acc": 0.5},
    {"split": "eval", "step": 6, "mlm_acc": 0.1, "nsp_acc": 0.6},
    {"split": "eval", "step": 4, "mlm_acc": 0.07, "nsp_acc": 0.55},
    {"split": "eval", "step": 6, "mlm_acc": 0.11, "nsp_acc": 0.61},  # step 6 again after a rollback: this one counts
    {"split": "eval", "step": 10, "mlm_acc": 0.2, "nsp_acc": 0.7},
]


def write_jsonl(path, rows, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    return path


def test_write_curves_csv_one_row_per_checkpoint_and_task(tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", EVAL)
    csv_path, png_path = write_curves(ROWS, tmp_path / "out", metrics)
    assert (csv_path, png_path) == (tmp_path / "out" / "curves.csv", tmp_path / "out" / "curves.png")
    assert csv_path.read_text() == EXPECTED_CSV
    data = png_path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1300, 900)  # 13 x 9 inches at 100 dpi
    assert len(data) > 40_000  # four panels of lines, bands and text, not an empty canvas
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curves.csv", "curves.png"]  # no temporaries


def test_write_curves_without_average_or_metrics(tmp_path):
    rows = [(p, {**r, "average": None}) for p, r in ROWS[:2]]
    csv_path, png_path = write_curves(rows, tmp_path, None)
    lines = csv_path.read_text().splitlines()
    assert [line.split(",")[4] for line in lines[1:]] == ["cola", "mrpc", "cola", "mrpc"]
    assert png_path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(BertptError, match="cannot read the metrics file"):
        write_curves(rows, tmp_path, tmp_path / "missing.jsonl")


def test_read_eval_metrics_keeps_the_last_row_per_step(tmp_path):
    metrics = write_jsonl(tmp_path / "metrics.jsonl", EVAL, tail='{"split": "eval", "st')  # killed mid-line
    rows = read_eval_metrics(metrics)
    assert [(r["step"], r["mlm_acc"], r["nsp_acc"]) for r in rows] == [
        (2, 0.05, 0.5),
        (4, 0.07, 0.55),
        (6, 0.11, 0.61),
        (10, 0.2, 0.7),
    ]
    (tmp_path / "bad.jsonl").write_text("not json\n{}\n")
    with pytest.raises(BertptError, match=r"bad.jsonl line 1 is not JSON"):
        read_eval_metrics(tmp_path / "bad.jsonl")


def panel_lines(fig):
    return [[line.get_label() for line in ax.lines] for ax in fig.axes]


def test_figure_lines_per_panel(tmp_path):
    eval_rows = read_eval_metrics(write_jsonl(tmp_path / "m.jsonl", EVAL))
    fig = curves_figure(ROWS, eval_rows)
    step, tokens, seconds, held_out = fig.axes
    assert panel_lines(fig) == [
        ["cola", "mrpc", "GLUE average"],
        ["cola", "mrpc", "GLUE average"],
        ["cola", "mrpc", "GLUE average"],
        ["MLM accuracy", "NSP accuracy"],
    ]
    assert list(step.lines[0].get_xdata()) == [2, 4, 6, 10] and list(step.lines[0].get_ydata()) == [
        0,
        0.125,
        0.375,
        0.5,
    ]
    # step_000002 (release 0.1) recorded no tokens or time: those panels start at step_000004
    assert list(tokens.lines[1].get_xdata()) == [1024, 1536, 2560]
    assert list(seconds.lines[2].get_xdata()) == [5.25, 7.0, 12.5] and seconds.get_xlabel() == "training time (s)"
    assert step.get_title() == "fine-tuning score vs pretraining step"
    assert tokens.get_title() == "fine-tuning score vs tokens seen\n(1 older checkpoint without it left out)"
    assert len(step.collections) == 2  # one min-max band per task, none for the average
    assert list(held_out.lines[0].get_xdata()) == [2, 4, 6, 10] and held_out.lines[0].get_ydata()[2] == 0.11


def test_figure_panels_without_data_say_so():
    mlm_only = [{"split": "eval", "step": 2, "mlm_acc": 0.05}, {"split": "eval", "step": 4, "mlm_acc": 0.07}]
    fig = curves_figure(ROWS[:1], mlm_only)  # only the release-0.1 checkpoint, an MLM-only run
    assert panel_lines(fig) == [["cola", "mrpc", "GLUE average"], [], [], ["MLM accuracy"]]
    texts = [[t.get_text() for t in ax.texts] for ax in fig.axes]
    assert texts[1] == ["no tokens seen recorded in these checkpoints\n(saved before bertpt recorded it)"]
    assert texts[2] == ["no training time recorded in these checkpoints\n(saved before bertpt recorded it)"]
    assert texts[0] == texts[3] == []
    no_metrics = curves_figure(ROWS, None).axes[3]
    assert len(no_metrics.lines) == 0 and [t.get_text() for t in no_metrics.texts] == [
        "no held-out evaluations: no metrics.jsonl"
    ]


def test_time_axis_unit_follows_the_longest_run():
    hours = [(Point(p.tag, p.step, p.tokens_seen, p.train_seconds and p.train_seconds * 3600), r) for p, r in ROWS]
    ax = curves_figure(hours).axes[2]
    assert ax.get_xlabel() == "training time (h)" and list(ax.lines[0].get_xdata()) == [5.25, 7.0, 12.5]


def test_replot_from_results_files(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "metrics.jsonl", EVAL)
    out = tmp_path / "out"
    for point, res in ROWS:
        d = out / "checkpoints" / point.tag
        d.mkdir(parents=True)
        entry = {"run": str(run), "tag": point.tag, "step": point.step, "tokens_seen": point.tokens_seen}
        entry["train_seconds"] = point.train_seconds
        (d / "results.json").write_text(json.dumps({**res, "checkpoint": entry}))
    (out / "checkpoints" / "step_000004" / "results.json").rename(out / "checkpoints" / "step_000004" / "x.json")
    curves.main([str(out)])
    assert capsys.readouterr().out.splitlines() == [str(out / "curves.csv"), str(out / "curves.png")]
    kept = EXPECTED_CSV.splitlines(keepends=True)
    assert (out / "curves.csv").read_text() == "".join(kept[:4] + kept[7:])  # step_000004 has no results
    # the run's metrics.jsonl was found through the results: the held-out panel has both lines
    rows = curves.read_rows(out)
    assert [p for p, _ in rows] == [p for p, _ in ROWS if p.step != 4]
    assert panel_lines(curves_figure(rows, read_eval_metrics(run / "metrics.jsonl")))[3] == [
        "MLM accuracy",
        "NSP accuracy",
    ]


def test_replot_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        curves.main([str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert err.startswith("python -m bertpt.finetune.curves: error: no checkpoints/step_*/results.json in ")
    with pytest.raises(SystemExit):
        curves.main([str(tmp_path), "--metric", "x"])
    assert "unknown flag --metric (did you mean --metrics?)" in capsys.readouterr().err
