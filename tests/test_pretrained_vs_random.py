"""benchmarks/pretrained_vs_random.py's own parts: the separation count, the average over the table's tasks, and
the refusal of rows that are not the same experiment. The benchmark itself (which fine-tunes) is not part of pytest."""

from __future__ import annotations

import pytest

from benchmarks import pretrained_vs_random as pvr

RECIPE = {"learning_rate": 1e-4, "epochs": 3.0, "max_train_samples": 1000, "seeds": 5, "seed": 42}


def row(recipe=RECIPE, **tasks):
    return {
        "recipe": dict(recipe),
        "tasks": {name: {"score": sorted(s)[len(s) // 2], "scores": list(s)} for name, s in tasks.items()},
    }


def test_separation_counts_only_tasks_where_every_pretrained_seed_beats_every_random_one():
    pre = row(sst2=[0.58, 0.59, 0.60], stsb=[0.50, 0.52, 0.55], cola=[0.0, 0.03, 0.04])
    rnd = row(sst2=[0.5555] * 3, stsb=[0.27, 0.28, 0.29], cola=[0.0, 0.0, 0.0])
    text, separated = pvr.table(pre, rnd)
    assert separated == 2  # cola: min(pretrained) 0.0 is not > max(random) 0.0
    lines = text.splitlines()
    assert "| sst2 | 0.5900 [0.5800, 0.6000] | 0.5555 [0.5555, 0.5555] | yes |" in lines
    assert "| cola | 0.0300 [0.0000, 0.0400] | 0.0000 [0.0000, 0.0000] | no |" in lines
    assert lines[-1] == "| average (median scores) | 0.3800 | 0.2785 | |"


def test_average_is_over_the_pretrained_rows_tasks_when_the_random_row_holds_more():
    pre = row(stsb=[0.5, 0.52, 0.55], sst2=[0.58, 0.59, 0.6])
    rnd = row(stsb=[0.27, 0.28, 0.29], sst2=[0.5555] * 3, mrpc=[0.7333] * 3, cola=[0.0] * 3)
    text, _ = pvr.table(pre, rnd)
    assert text.splitlines()[-1] == "| average (median scores) | 0.5550 | 0.4178 | |"
    assert "mrpc" not in text


def test_rows_of_another_recipe_or_missing_a_task_are_refused():
    pre = row(stsb=[0.5, 0.52, 0.55])
    pvr.check_comparable(pre, row(stsb=[0.2, 0.3, 0.25], mrpc=[0.7] * 3))  # same recipe, a superset of tasks: fine
    with pytest.raises(SystemExit, match="recipes differ"):
        pvr.check_comparable(pre, row({**RECIPE, "max_train_samples": None}, stsb=[0.2, 0.3, 0.25]))
    with pytest.raises(SystemExit, match="has no stsb"):
        pvr.check_comparable(pre, row(sst2=[0.5555] * 3))
