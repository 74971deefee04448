"""Score curves over pretraining: every checkpoint of a run fine-tuned, its scores as a CSV and a PNG.

`bertpt-finetune RUN_DIR --all_checkpoints --output_dir OUT` (`score_curves`) fine-tunes every published
checkpoint of a pretraining run on the chosen tasks, oldest first, and writes

    OUT/checkpoints/<tag>/results.json   that checkpoint's results (results.json's shape, plus a "checkpoint"
                                         entry: run directory, tag, step, tokens seen, training seconds)
    OUT/curves.csv                       one row per checkpoint and task (and the GLUE average as task "average")
    OUT/curves.png                       score against pretraining step, tokens seen and training time, next to
                                         the run's held-out MLM (and NSP) accuracy from its metrics.jsonl

`python -m bertpt.finetune.curves OUT [--metrics RUN_DIR/metrics.jsonl]` re-plots from the results.json files
already there, without fine-tuning again.

Tokens seen and training time come from the checkpoints' run position (`bertpt.ckpt.layout.RunPosition`),
recorded since score curves exist; older checkpoints have neither, and their panels say so.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bertpt.ckpt import layout
from bertpt.cli import parse, parser_options
from bertpt.errors import BertptError, exit_on_error, is_rank0
from bertpt.files import write_atomic

RESULTS = "results.json"
CURVES_CSV = "curves.csv"
CURVES_PNG = "curves.png"
METRICS_JSONL = "metrics.jsonl"  # written by bertpt.metrics.Reporter in a run's output directory
AVERAGE = "average"  # the task name of the GLUE average's rows
COLUMNS = ("tag", "step", "tokens_seen", "train_seconds", "task", "score", "score_min", "score_max")


@dataclass(frozen=True)
class Point:
    """One published checkpoint of a run: its tag (step_000500), optimizer step, sequence positions trained on
    (consumed samples x max_seq_length) and training wall time in seconds; the last two are None for
    checkpoints saved before they were recorded."""

    tag: str
    step: int
    tokens_seen: int | None
    train_seconds: float | None


def checkpoint_points(run_dir: str | Path) -> list[Point]:
    """Every published checkpoint of the run at `run_dir` (its output directory or its checkpoints/), oldest
    first. A tag whose files do not match its manifest (damaged, truncated) is left out with one warning line.
    Raises BertptError when `run_dir` holds no published checkpoint, or none that is complete."""
    run_dir = Path(run_dir)
    ckpt_dir = layout.checkpoints_dir(run_dir)
    tags = layout.published_tags(ckpt_dir) if ckpt_dir else []
    if not tags:
        raise BertptError(
            f"{run_dir} holds no published checkpoint (no step_* directory in it or in its {layout.CHECKPOINTS}/); "
            "give a bertpt run's output directory or its checkpoints directory"
        )
    points = []
    for tag in reversed(tags):  # published_tags is newest first
        try:
            # newest_good on one tag: that tag, verified against its manifest, or a BertptError saying what is wrong
            ckpt = layout.newest_good(ckpt_dir / tag, f"checkpoint {ckpt_dir / tag}", "using")
            position = layout.read_position(ckpt)
        except BertptError as e:
            if is_rank0():
                print(f"bertpt: warning: {e}; the curves leave it out", file=sys.stderr, flush=True)
            continue
        points.append(Point(tag, position.step, position.tokens_seen, position.train_seconds))
    if not points:
        raise BertptError(f"no complete checkpoint in {ckpt_dir}: every step_* tag is incomplete or damaged")
    return points


# ---------------------------------------------------------------------------------------------
# The table


def _median_metric(entry) -> float | None:
    """A metric's median from results.json's {"median": x, ...} (a bare number is taken as it is)."""
    if isinstance(entry, dict):
        return entry.get("median")
    return entry


def curve_table(rows: list[tuple[Point, dict]]) -> tuple[list[str], list[list]]:
    """The curves as (header, rows): one row per checkpoint and task, checkpoints in the order given, tasks in
    their results' order, then the GLUE average (task "average", score only) when the results have one.

    `rows`: (point, that checkpoint's results dict in results.json's shape). Columns: COLUMNS, then the median of
    each metric any task reports, in order of first appearance (None where a task lacks that metric).
    score_min/score_max are the extremes of the per-seed task scores ("scores"), or of "score" alone without them."""
    metric_names: list[str] = []
    for _, results in rows:
        for task in results.get("tasks", {}).values():
            metric_names += [m for m in task.get("metrics", {}) if m not in metric_names]
    table = []
    for point, results in rows:
        where = [point.tag, point.step, point.tokens_seen, point.train_seconds]
        for name, task in results.get("tasks", {}).items():
            scores = task.get("scores") or [task["score"]]
            metrics = task.get("metrics", {})
            medians = [_median_metric(metrics[m]) if m in metrics else None for m in metric_names]
            table.append(where + [name, task["score"], min(scores), max(scores)] + medians)
        if results.get(AVERAGE) is not None:
            table.append(where + [AVERAGE, results[AVERAGE], None, None] + [None] * len(metric_names))
    return [*COLUMNS, *metric_names], table


def _cell(value) -> str:
    # repr of a float is the shortest string that reads back to the same float: the CSV loses nothing
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def csv_text(header: list[str], table: list[list]) -> str:
    """The table as CSV text (comma-separated, "\\n" line ends, empty cells for None)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in table])
    return out.getvalue()


def read_eval_metrics(path: str | Path) -> list[dict]:
    """The held-out evaluation rows of a run's metrics.jsonl ({"split": "eval", "step": s, "mlm_acc": x,
    "nsp_acc": y, ...}; MLM-only runs have no nsp_acc), one per step in step order; where a step was logged
    twice (a rollback or a resume repeated it) the later row counts. Raises BertptError: missing or unreadable."""
    path = Path(path)
    by_step: dict[int, dict] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise BertptError(
            f"cannot read the metrics file {path} ({e.strerror or e}); give a run's metrics.jsonl"
        ) from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if number == len(lines):  # the last line of a run that was killed while writing it
                continue
            raise BertptError(f"{path} line {number} is not JSON; is it a bertpt run's metrics.jsonl?") from None
        if row.get("split") == "eval" and isinstance(row.get("step"), int):
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


# ---------------------------------------------------------------------------------------------
# The figure


def _time_axis(seconds: list[float]) -> tuple[float, str]:
    """(divisor, label) for training time: seconds, minutes or hours, whichever reads best for the largest value."""
    top = max(seconds, default=0.0)
    if top < 180:
        return 1.0, "training time (s)"
    if top < 3 * 3600:
        return 60.0, "training time (min)"
    return 3600.0, "training time (h)"


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def curves_figure(rows: list[tuple[Point, dict]], eval_rows: list[dict] | None = None):
    """A matplotlib Figure (Agg canvas, no pyplot state) with four panels: the fine-tuning score against
    pretraining step, tokens seen and training time (one line per task, median over seeds, a min-max band over
    seeds, the GLUE average dashed), and the held-out MLM (and NSP, when logged) accuracy against step from
    `eval_rows` (`read_eval_metrics`; None: no metrics file). A panel without data says why instead."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    header, table = curve_table(rows)
    col = {name: i for i, name in enumerate(header)}
    tasks = list(dict.fromkeys(r[col["task"]] for r in table))
    fig = Figure(figsize=(13, 9), layout="constrained")
    FigureCanvasAgg(fig)
    (ax_step, ax_tokens), (ax_time, ax_eval) = fig.subplots(2, 2)
    seconds = [r[col["train_seconds"]] for r in table if r[col["train_seconds"]] is not None]
    divisor, time_label = _time_axis(seconds)
    panels = (
        (ax_step, "step", "pretraining step", 1.0, None),
        (ax_tokens, "tokens_seen", "tokens seen (sequence positions)", 1.0, "tokens seen"),
        (ax_time, "train_seconds", time_label, divisor, "training time"),
    )
    colors = {}
    for ax, key, label, scale, missing in panels:
        plotted = False
        for task in tasks:
            series = sorted(
                (r[col[key]] / scale, r[col["score"]], r[col["score_min"]], r[col["score_max"]])
                for r in table
                if r[col["task"]] == task and r[col[key]] is not None
            )
            if not series:
                continue
            xs, ys, lo, hi = zip(*series)
            if task == AVERAGE:
                ax.plot(xs, ys, "k--", marker="o", markersize=3, label="GLUE average")
            else:
                (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=task, color=colors.get(task))
                colors[task] = line.get_color()
                if any(v is not None for v in lo):
                    ax.fill_between(xs, lo, hi, color=colors[task], alpha=0.2, linewidth=0)
            plotted = True
        if plotted:
            ax.set_xlabel(label)
            ax.set_ylabel("score (median over seeds; band: min-max)")
            ax.grid(alpha=0.3)
        elif table:
            _no_data(ax, f"no {missing} recorded in these checkpoints\n(saved before bertpt recorded it)")
        else:
            _no_data(ax, "no fine-tuning results")
        title = f"fine-tuning score vs {label.split(' (')[0]}"
        lacking = {r[col["tag"]] for r in table if r[col[key]] is None}
        if plotted and lacking:  # some older checkpoints did not record it: say that they are left out
            title += f"\n({len(lacking)} older checkpoint{'s' if len(lacking) > 1 else ''} without it left out)"
        ax.set_title(title)
    if table:
        ax_step.legend(fontsize="small")
    ax_eval.set_title("held-out pretraining accuracy (metrics.jsonl)")
    logged = eval_rows or []
    curves = [
        (k, name)
        for k, name in (("mlm_acc", "MLM accuracy"), ("nsp_acc", "NSP accuracy"))
        if any(k in r for r in logged)
    ]
    for key, name in curves:
        points = [(r["step"], r[key]) for r in logged if key in r]
        ax_eval.plot(*zip(*points), marker=".", label=name)
    if curves:
        ax_eval.set_xlabel("pretraining step")
        ax_eval.set_ylabel("accuracy")
        ax_eval.grid(alpha=0.3)
        ax_eval.legend(fontsize="small")
    else:
        _no_data(
            ax_eval, "no held-out evaluations: " + ("none logged" if eval_rows is not None else "no metrics.jsonl")
        )
    return fig


def write_curves(rows: list[tuple[Point, dict]], out_dir: Path, metrics_jsonl: Path | None) -> tuple[Path, Path]:
    """Write out_dir/curves.csv (`curve_table`) and out_dir/curves.png (`curves_figure`, with the held-out
    accuracy of `metrics_jsonl` when given), each atomically. Returns (csv path, png path).
    Raises BertptError: `metrics_jsonl` given but unreadable; OSError: out_dir not writable."""
    out_dir = Path(out_dir)
    eval_rows = read_eval_metrics(metrics_jsonl) if metrics_jsonl is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / CURVES_CSV, out_dir / CURVES_PNG
    write_atomic(csv_path, csv_text(*curve_table(rows)))
    png = io.BytesIO()
    curves_figure(rows, eval_rows).savefig(png, format="png", dpi=100)
    write_atomic(png_path, png.getvalue())  # a temporary sibling, then os.replace
    return csv_path, png_path


# ---------------------------------------------------------------------------------------------
# Drivers: fine-tune every checkpoint, or re-plot what is there


def score_curves(cfg) -> dict:
    """`bertpt-finetune RUN_DIR --all_checkpoints`: fine-tune every published checkpoint of the run `cfg.model`
    (oldest first) with the settings of `cfg` (a FinetuneConfig), write each checkpoint's results to
    <cfg.output_dir>/checkpoints/<tag>/results.json and the curves to <cfg.output_dir> (`write_curves`), one
    progress line per checkpoint. Returns {"points": [...], "results": {tag: results}, "csv": path, "png": path}.
    Raises BertptError: no checkpoint, or what fine-tuning raises."""
    from bertpt.finetune.cli import finetune  # built alongside; imported here so plotting needs none of it
    from bertpt.finetune.source import load_source

    if not cfg.output_dir:
        raise BertptError("--all_checkpoints needs --output_dir (the curves and each checkpoint's results go there)")
    run_dir, out = Path(cfg.model), Path(cfg.output_dir)
    points = checkpoint_points(run_dir)
    ckpt_dir = layout.checkpoints_dir(run_dir)
    metrics = ckpt_dir.parent / METRICS_JSONL
    rows, started = [], time.perf_counter()
    for i, point in enumerate(points, 1):
        tag_out = out / layout.CHECKPOINTS / point.tag
        print(f"bertpt-finetune: checkpoint {i}/{len(points)}: {point.tag}", flush=True)
        tag_cfg = dataclasses.replace(cfg, output_dir=type(cfg.output_dir)(tag_out), **_not_again(cfg))
        results = finetune(tag_cfg, load_source(run_dir, tag=point.tag))
        results = {**results, "checkpoint": {"run": str(ckpt_dir.parent.resolve()), **dataclasses.asdict(point)}}
        tag_out.mkdir(parents=True, exist_ok=True)
        write_atomic(tag_out / RESULTS, json.dumps(results, indent=1))
        rows.append((point, results))
        average = results.get(AVERAGE)
        print(
            f"bertpt-finetune: checkpoint {i}/{len(points)}: {point.tag} (step {point.step}) "
            + " ".join(f"{name} {t['score']:.4f}" for name, t in results.get("tasks", {}).items())
            + (f" average {average:.4f}" if average is not None else "")
            + f" | {time.perf_counter() - started:.0f} s so far",
            flush=True,
        )
    csv_path, png_path = write_curves(rows, out, metrics if metrics.is_file() else None)
    print(f"bertpt-finetune: score curves: {csv_path}, {png_path}", flush=True)
    return {"points": points, "results": {p.tag: r for p, r in rows}, "csv": csv_path, "png": png_path}


def _not_again(cfg) -> dict:
    # the per-checkpoint call fine-tunes one source; it must not start a curve of its own
    return {"all_checkpoints": False} if "all_checkpoints" in {f.name for f in dataclasses.fields(cfg)} else {}


def read_rows(out_dir: str | Path) -> list[tuple[Point, dict]]:
    """The (point, results) rows of a curves output directory: every <out_dir>/checkpoints/<tag>/results.json,
    in step order. The point comes from the results' "checkpoint" entry (written by `score_curves`); without one,
    the step from the tag's name and no tokens seen or training time. Raises BertptError: none there, or unreadable."""
    found = sorted(
        (int(layout.TAG.fullmatch(p.parent.name).group(1)), p)
        for p in (Path(out_dir) / layout.CHECKPOINTS).glob(f"step_*/{RESULTS}")
        if layout.TAG.fullmatch(p.parent.name)
    )
    if not found:
        raise BertptError(
            f"no {layout.CHECKPOINTS}/step_*/{RESULTS} in {out_dir}; give the --output_dir of a "
            "bertpt-finetune --all_checkpoints run"
        )
    rows = []
    for step, path in found:
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise BertptError(f"cannot read {path} ({type(e).__name__}: {e})") from None
        saved = results.get("checkpoint") or {}
        point = Point(path.parent.name, saved.get("step", step), saved.get("tokens_seen"), saved.get("train_seconds"))
        rows.append((point, results))
    return rows


def replot(out_dir: str | Path, metrics_jsonl: str | Path | None = None) -> tuple[Path, Path]:
    """Re-plot the curves of an --all_checkpoints output directory from its results.json files (no fine-tuning).
    `metrics_jsonl` defaults to the run's metrics.jsonl when the results name a run directory that still has one.
    Returns (csv path, png path). Raises BertptError (see `read_rows`, `write_curves`)."""
    rows = read_rows(out_dir)
    if metrics_jsonl is None:
        runs = [(r.get("checkpoint") or {}).get("run") for _, r in rows]
        candidate = Path(runs[-1]) / METRICS_JSONL if runs[-1] else None
        metrics_jsonl = candidate if candidate is not None and candidate.is_file() else None
    return write_curves(rows, Path(out_dir), Path(metrics_jsonl) if metrics_jsonl is not None else None)


def main(argv: list[str] | None = None) -> None:
    """python -m bertpt.finetune.curves OUT_DIR [--metrics RUN_DIR/metrics.jsonl]"""
    command = "python -m bertpt.finetune.curves"
    with exit_on_error(command):
        parser = argparse.ArgumentParser(
            description="Re-plot score curves (curves.csv, curves.png) from the results.json files that "
            "bertpt-finetune --all_checkpoints wrote, without fine-tuning again.",
            **parser_options(command),
        )
        parser.add_argument("out_dir", help="the --output_dir of a bertpt-finetune --all_checkpoints run")
        parser.add_argument(
            "--metrics",
            default=None,
            help="the pretraining run's metrics.jsonl for the held-out MLM/NSP panel (default: the run's own, "
            "recorded in the results, when it is still there)",
        )
        (args,) = parse(parser, argv)
        csv_path, png_path = replot(args.out_dir, args.metrics)
        print(f"{csv_path}\n{png_path}")


if __name__ == "__main__":
    main()
