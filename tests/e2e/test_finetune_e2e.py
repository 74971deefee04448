"""bertpt-finetune end to end on the real GLUE data: a bertpt checkpoint fine-tuned on CoLA (one sentence) and
MRPC (a pair) through the console script, and bad input refused. (That the same model, data and seed give the
same numbers to the last digit is tests/test_finetune.py's test_fine_tune_is_reproducible_to_the_last_digit.)

The GLUE data is $BERTPT_GLUE_DIR (default: ../shared/data/glue next to the repository); missing data fails.
The model is release 0.1's fixture checkpoint (1 layer, 32 wide, 120-token vocabulary): the test checks the
pipeline and its numbers' consistency, not the model's quality (that is the benchmark's job).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest

from bertpt.finetune import cli

from tests.helpers import REPO, run

pytestmark = pytest.mark.slow
CKPT = REPO / "tests" / "fixtures" / "release_0_1" / "checkpoints"


@pytest.fixture(scope="module")
def glue_dir() -> Path:
    path = Path(os.environ.get("BERTPT_GLUE_DIR", REPO.parent / "shared" / "data" / "glue"))
    if not (path / "CoLA" / "train.tsv").is_file():
        pytest.fail(f"no GLUE data at {path} (set BERTPT_GLUE_DIR to a directory holding CoLA/, SST-2/, MRPC/, STS-B/)")
    return path


def finetune_cmd(*args: str) -> list[str]:
    """The console script where installed (pip install -e .), else the same entry point as a module."""
    exe = shutil.which("bertpt-finetune")
    return [exe, *args] if exe else [sys.executable, "-m", "bertpt.finetune", *args]


def finetune(glue_dir: Path, out: Path):
    return run(
        finetune_cmd(
            str(CKPT),
            "--glue_dir",
            str(glue_dir),
            "--tasks",
            "cola,mrpc",
            "--max_train_samples",
            "200",
            "--max_eval_samples",
            "200",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--learning_rate",
            "1e-3",
            "--output_dir",
            str(out),
        ),
        timeout=300,
    )


def test_glue_from_a_bertpt_checkpoint(glue_dir, tmp_path):
    first = finetune(glue_dir, tmp_path / "a")
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert set(results["tasks"]) == {"cola", "mrpc"}
    assert results["model"] == f"{CKPT} step_000002" and results["model_step"] == 2
    cola, mrpc = results["tasks"]["cola"], results["tasks"]["mrpc"]
    assert set(cola["metrics"]) == {"matthews_correlation"} and set(mrpc["metrics"]) == {"f1", "accuracy"}
    for t in (cola, mrpc):
        assert t["seeds"] == [42] and t["train_examples"] == 200 and t["learning_rate"] == 1e-3
        for m in t["metrics"].values():
            assert len(m["values"]) == 1 and m["median"] == m["min"] == m["max"] == m["values"][0]
            assert -1 <= m["median"] <= 1 and math.isfinite(m["median"])
        assert t["score"] == pytest.approx(sum(m["median"] for m in t["metrics"].values()) / len(t["metrics"]))
    assert 0 <= mrpc["metrics"]["accuracy"]["median"] <= 1 and 0 <= mrpc["metrics"]["f1"]["median"] <= 1
    assert results["average"] == pytest.approx((cola["score"] + mrpc["score"]) / 2)
    # the table says the same numbers, in percent
    table = {line.split()[0]: line.split() for line in first.stdout.splitlines() if line.startswith(("cola", "mrpc"))}
    assert table["cola"][2] == f"{100 * cola['metrics']['matthews_correlation']['median']:.2f}"
    assert table["mrpc"][4] == f"{100 * mrpc['score']:.2f}"
    assert "GLUE average" in first.stdout and f"{100 * results['average']:.2f}" in first.stdout
    assert list((tmp_path / "a" / "tb" / "mrpc" / "lr0.001_seed42").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("case", ["unknown_task", "missing_file", "wrong_columns", "not_bert", "other_tokenizer"])
def test_bad_input_is_one_line_and_writes_nothing(glue_dir, tmp_path, capsys, case):
    model, args = str(CKPT), ["--glue_dir", str(glue_dir), "--tasks", "cola"]
    if case == "unknown_task":
        args[-1], expected = "cola,qnlii", "qnlii"
    if case == "missing_file":
        broken = tmp_path / "glue"
        shutil.copytree(glue_dir / "MRPC", broken / "MRPC")
        (broken / "MRPC" / "dev.tsv").unlink()
        args, expected = ["--glue_dir", str(broken), "--tasks", "mrpc"], "dev.tsv"
    if case == "wrong_columns":
        (tmp_path / "t.csv").write_text("sentence,label\nhello there,1\nbye now,0\n")
        args = ["--train_file", str(tmp_path / "t.csv"), "--validation_file", str(tmp_path / "t.csv")]
        args, expected = args + ["--text_columns", "text", "--label_column", "label"], "text"
    if case == "not_bert":
        model = tmp_path / "roberta"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "roberta"}))
        model, expected = str(model), "not BERT"
    if case == "other_tokenizer":
        ckpt = tmp_path / "checkpoints"
        shutil.copytree(CKPT, ckpt)
        (ckpt / "bertpt.json").write_text(json.dumps({"tokenizer_hash": "0123456789abcdef"}))
        model, expected = str(ckpt), "trained with tokenizer 0123456789abcdef"
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main([model, *args, "--output_dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("bertpt-finetune: error:"), err
    assert expected in err[0], err[0]
    assert not (out / "results.json").exists()
