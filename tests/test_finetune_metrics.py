"""Downstream metrics: equal to scikit-learn/scipy and to hand-computed values; GLUE's score rules; submission bytes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from bertpt.finetune.metrics import compute, glue_average, submission_name, task_score, write_submission
from bertpt.finetune.tasks import GLUE_TASKS, Split, Task

# A 2x2 table worked out by hand: TP = 3 (rows 0, 1, 6), FN = 1 (row 2), FP = 1 (row 5), TN = 3 (rows 3, 4, 7).
LABELS = np.array([1, 1, 1, 0, 0, 0, 1, 0])
PREDS = np.array([1, 1, 0, 0, 0, 1, 1, 0])


def test_classification_metrics_by_hand_and_sklearn():
    # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (9 - 1) / sqrt(4*4*4*4) = 0.5
    cola = compute(GLUE_TASKS["cola"], "validation", PREDS, LABELS)
    assert cola == {"matthews_correlation": pytest.approx(0.5, abs=1e-12)}
    assert cola["matthews_correlation"] == matthews_corrcoef(LABELS, PREDS)
    # accuracy 6/8; F1 of class 1: precision 3/4, recall 3/4 -> 0.75
    mrpc = compute(GLUE_TASKS["mrpc"], "validation", PREDS, LABELS)
    assert list(mrpc) == ["f1", "accuracy"] and mrpc == pytest.approx({"f1": 0.75, "accuracy": 0.75}, abs=1e-12)
    assert mrpc == {"f1": f1_score(LABELS, PREDS), "accuracy": accuracy_score(LABELS, PREDS)}
    assert compute(GLUE_TASKS["sst2"], "validation", PREDS, LABELS) == {"accuracy": 0.75}
    # an asymmetric case: F1 of the positive class only; TP = 1, FP = 2, FN = 1 -> P 1/3, R 1/2, F1 = 0.4
    y, p = np.array([1, 1, 0, 0, 0]), np.array([1, 0, 1, 1, 0])
    assert compute(GLUE_TASKS["qqp"], "validation", p, y) == pytest.approx({"f1": 0.4, "accuracy": 0.4})
    assert compute(GLUE_TASKS["qqp"], "validation", p, y)["f1"] == f1_score(y, p)
    # logits are reduced by argmax
    logits = np.stack([1.0 - PREDS, PREDS.astype(float)], axis=1)
    assert compute(GLUE_TASKS["cola"], "validation", logits, LABELS) == cola


def test_multiclass_and_mnli_split_metrics():
    y = np.array([0, 1, 2, 2, 1, 0])
    p = np.array([0, 2, 2, 2, 1, 1])
    mnli = GLUE_TASKS["mnli"]
    assert compute(mnli, "validation_matched", p, y) == {"accuracy_matched": 4 / 6}
    assert compute(mnli, "validation_mismatched", p, y) == {"accuracy_mismatched": 4 / 6}
    with pytest.raises(ValueError):
        compute(mnli, "validation", p, y)
    user = Task("reviews", ("text",), ("a", "b", "c"), ("accuracy", "f1_macro"))
    got = compute(user, "validation", p, y)
    # per class F1: class 0 P 1/1 R 1/2 -> 2/3; class 1 P 1/2 R 1/2 -> 1/2; class 2 P 2/3 R 1 -> 4/5
    assert got["f1_macro"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3, abs=1e-12)
    assert got == {"accuracy": accuracy_score(y, p), "f1_macro": f1_score(y, p, average="macro")}


def test_regression_metrics_by_hand_and_scipy():
    stsb = GLUE_TASKS["stsb"]
    # x = 1, 2, 3; y = 1, 2, 4: deviations (-1, 0, 1) and (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 14/3)
    got = compute(stsb, "validation", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert got == pytest.approx({"pearson": 3 / math.sqrt(28 / 3), "spearman": 1.0}, abs=1e-12)
    # ranks (1, 2, 3) against (1, 3, 2): rho = 1 - 6 * 2 / (3 * (9 - 1)) = 0.5
    got = compute(stsb, "validation", np.array([[0.1], [0.2], [0.3]]), np.array([1.0, 3.0, 2.0]))
    assert got["spearman"] == pytest.approx(0.5, abs=1e-12)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.uniform(0, 5, size=50)
    got = compute(stsb, "validation", x, y)
    assert got == {"pearson": float(pearsonr(x, y)[0]), "spearman": float(spearmanr(x, y)[0])}


def test_degenerate_predictions_give_zero_not_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning/ConstantInputWarning leaks either
        assert compute(GLUE_TASKS["cola"], "validation", np.ones(8, int), LABELS) == {"matthews_correlation": 0.0}
        assert compute(GLUE_TASKS["mrpc"], "validation", np.zeros(8, int), LABELS) == {"f1": 0.0, "accuracy": 0.5}
        got = compute(GLUE_TASKS["stsb"], "validation", np.full(4, 2.5), np.array([0.0, 1.0, 4.0, 5.0]))
        assert got == {"pearson": 0.0, "spearman": 0.0}
    assert matthews_corrcoef(LABELS, np.ones(8, int)) == 0.0  # sklearn's own convention, which we keep
    with pytest.raises(ValueError):
        compute(GLUE_TASKS["sst2"], "validation", PREDS[:3], LABELS)
    with pytest.raises(ValueError):
        compute(GLUE_TASKS["sst2"], "validation", np.array([], int), np.array([], int))


def test_task_score_and_glue_average():
    assert task_score({"f1": 0.9, "accuracy": 0.8}) == pytest.approx(0.85)
    assert task_score({"matthews_correlation": -0.2}) == -0.2
    with pytest.raises(ValueError):
        task_score({})
    scores = {"cola": 0.5, "sst2": 0.9, "mrpc": 0.85, "stsb": 0.75, "wnli": 0.1, "reviews": 0.0}
    assert glue_average(scores) == pytest.approx((0.5 + 0.9 + 0.85 + 0.75) / 4)  # WNLI and user tasks left out
    all8 = dict(
        zip(("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte"), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8))
    )
    assert glue_average({**all8, "wnli": 0.9}) == pytest.approx(0.45)
    assert glue_average({"wnli": 0.5, "reviews": 0.9}) is None and glue_average({}) is None


def test_submission_files_exact_bytes(tmp_path):
    cola = Split("test", [("a",), ("b",), ("c",)], None, ["0", "1", "2"])
    path = write_submission(GLUE_TASKS["cola"], cola, np.array([1, 0, 1]), tmp_path)
    assert path == tmp_path / "CoLA.tsv" and path.read_bytes() == b"index\tprediction\n0\t1\n1\t0\n2\t1\n"
    mnli_m = Split("test_matched", [("p", "h")] * 3, None, ["0", "1", "2"])
    logits = np.array([[0.1, 0.2, 0.9], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    path = write_submission(GLUE_TASKS["mnli"], mnli_m, logits, tmp_path)
    assert path.name == "MNLI-m.tsv"
    assert path.read_bytes() == b"index\tprediction\n0\tcontradiction\n1\tentailment\n2\tneutral\n"
    mm = Split("test_mismatched", [("p", "h")], None, ["9"])
    assert submission_name(GLUE_TASKS["mnli"], mm) == "MNLI-mm.tsv"
    stsb = Split("test", [("a", "b")] * 2, None, ["3", "4"])
    path = write_submission(GLUE_TASKS["stsb"], stsb, np.array([[4.12345], [-0.2]]), tmp_path / "sub")
    assert path == tmp_path / "sub" / "STS-B.tsv" and path.read_bytes() == b"index\tprediction\n3\t4.123\n4\t-0.200\n"
    rte = Split("test", [("a", "b")] * 2, None, ["0", "1"])
    assert write_submission(GLUE_TASKS["rte"], rte, np.array([1, 0]), tmp_path).read_bytes() == (
        b"index\tprediction\n0\tnot_entailment\n1\tentailment\n"
    )
    assert write_submission(GLUE_TASKS["wnli"], rte, np.array([1, 0]), tmp_path).name == "WNLI.tsv"
    user = Task("cola", ("text",), ("neg", "pos"), ("accuracy", "f1_macro"))  # a user task that is called "cola"
    path = write_submission(user, Split("test", [("x",), ("y",)], None, ["0", "1"]), np.array([1, 1]), tmp_path)
    assert path.name == "cola_test.tsv" and path.read_bytes() == b"index\tprediction\n0\tpos\n1\tpos\n"
    with pytest.raises(ValueError):
        write_submission(GLUE_TASKS["cola"], cola, np.array([1, 0]), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "CoLA.tsv",
        "MNLI-m.tsv",
        "RTE.tsv",
        "WNLI.tsv",
        "cola_test.tsv",
        "sub",
    ]
