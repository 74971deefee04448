"""Downstream task data: GLUE's official files (the real CoLA/SST-2/MRPC/STS-B in ../shared/data/glue, and
tiny files written here in the formats of the other five), a local save_to_disk of the Hub schema, user files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from bertpt.errors import BertptError
from bertpt.finetune.tasks import (
    GLUE_AVERAGE_TASKS,
    GLUE_TASKS,
    glue_dir_name,
    glue_task,
    load_files,
    load_glue_dir,
    load_hub,
)

from tests.helpers import run


@pytest.fixture(scope="session")
def real_glue_dir() -> Path:
    """The shipped GLUE sample: $BERTPT_GLUE_DIR, else the repository's ../shared/data/glue. Missing data fails."""
    d = Path(os.environ.get("BERTPT_GLUE_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "glue")
    if not (d / "CoLA" / "train.tsv").is_file():
        pytest.fail(
            f"GLUE data not found at {d}: set BERTPT_GLUE_DIR to a directory holding CoLA/, SST-2/, MRPC/, STS-B/"
        )
    return d


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------------
# GLUE's official files


def test_glue_tasks_and_names():
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    assert "wnli" not in GLUE_AVERAGE_TASKS and len(GLUE_AVERAGE_TASKS) == 8
    assert glue_task("SST-2") is GLUE_TASKS["sst2"] and glue_task("STS-B").is_regression
    assert glue_task("stsb").num_labels == 1 and glue_task("mnli").num_labels == 3
    assert glue_task("mnli").labels == ("entailment", "neutral", "contradiction")
    assert glue_task("wnli").labels == ("not_entailment", "entailment")
    assert glue_dir_name("sst2") == "SST-2" and glue_dir_name("mnli") == "MNLI"
    with pytest.raises(BertptError) as e:
        glue_task("colaa")
    assert "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli" in str(e.value)
    assert "did you mean 'cola'?" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "name, header, train_label_col",
    [("cola", 0, 1), ("sst2", 1, 1), ("mrpc", 1, 0), ("stsb", 1, 9)],
)
def test_real_glue_files_one_example_per_line(real_glue_dir, name, header, train_label_col):
    data = load_glue_dir(name, real_glue_dir)
    task_dir = real_glue_dir / glue_dir_name(name)
    assert data.source == f"glue_dir {task_dir}"
    assert data.task is GLUE_TASKS[name] and data.test == []  # the sample has no test.tsv
    for split, file in ((data.train, "train.tsv"), (data.evaluation[0], "dev.tsv")):
        lines = _lines(task_dir / file)[header:]
        assert len(split.texts) == len(split.labels) == len(split.ids) == len(lines)  # no row merged or dropped
        assert split.ids == [str(k) for k in range(len(lines))] or name == "stsb"
        # every example is its own line's columns, whole
        for k in (0, len(lines) // 2, len(lines) - 1):
            cols = lines[k].split("\t")
            text_cols = {"cola": (3,), "sst2": (0,), "mrpc": (3, 4), "stsb": (7, 8)}[name]
            assert split.texts[k] == tuple(cols[c] for c in text_cols)
            raw = cols[train_label_col]
            assert split.labels[k] == (float(raw) if name == "stsb" else int(raw))
    assert [s.name for s in data.evaluation] == ["validation"]
    if name == "stsb":
        assert all(0.0 <= y <= 5.0 for y in data.train.labels)
        assert data.train.ids[:2] == [_lines(task_dir / "train.tsv")[1].split("\t")[0], "1"]
    else:
        assert set(data.train.labels) == {0, 1}


def test_real_mrpc_quotes_kept_whole(real_glue_dir):
    """MRPC lines with `"` stay one example each, quotes included (default CSV quoting would merge them)."""
    data = load_glue_dir("mrpc", real_glue_dir)
    lines = _lines(real_glue_dir / "MRPC" / "train.tsv")[1:]
    quoted = [k for k, line in enumerate(lines) if '"' in line]
    assert len(quoted) > 100
    for k in quoted:
        cols = lines[k].split("\t")
        assert data.train.texts[k] == (cols[3], cols[4]) and data.train.labels[k] == int(cols[0])
    assert data.train.texts[0][0] == 'Amrozi accused his brother, whom he called "the witness", of deliberately ' + (
        "distorting his evidence."
    )


Q = 'say "hi" to "them'  # an unbalanced quote: quote processing would swallow the following lines


def _official_glue(root: Path) -> Path:
    """The five tasks not shipped, plus test files of the four shipped ones, in GLUE's download formats."""
    _write(root / "CoLA" / "train.tsv", ["gj04\t1\t\tthe sentence is fine .", f"gj04\t0\t*\t{Q} ."])
    _write(root / "CoLA" / "dev.tsv", ["gj04\t0\t*\tsentence bad the ."])
    _write(root / "CoLA" / "test.tsv", ["index\tsentence", "0\tone test sentence .", f"1\t{Q}"])
    _write(root / "SST-2" / "train.tsv", ["sentence\tlabel", f"{Q} \t1", "dull \t0"])
    _write(root / "SST-2" / "dev.tsv", ["sentence\tlabel", "bright \t1"])
    _write(root / "SST-2" / "test.tsv", ["index\tsentence", f"0\t{Q}", "1\tok"])
    mrpc = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    _write(root / "MRPC" / "train.tsv", [mrpc, f"1\t11\t12\t{Q}\tB"])
    _write(root / "MRPC" / "dev.tsv", [mrpc, "0\t13\t14\tC\tD"])
    _write(root / "MRPC" / "test.tsv", ["index\t#1 ID\t#2 ID\t#1 String\t#2 String", f"0\t15\t16\t{Q}\tE"])
    stsb = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    _write(root / "STS-B" / "train.tsv", [stsb + "\tscore", f"0\tg\tf\t2012\t0001\tnone\tnone\t{Q}\tB\t4.250"])
    _write(root / "STS-B" / "dev.tsv", [stsb + "\tscore", "7\tg\tf\t2012\t0002\tnone\tnone\tC\tD\t0.000"])
    _write(root / "STS-B" / "test.tsv", [stsb, "3\tg\tf\t2012\t0003\tnone\tnone\tE\tF"])
    qqp = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    _write(root / "QQP" / "train.tsv", [qqp, f"201\t1\t2\t{Q}?\tB?\t1", "202\t3\t4\tC?\tD?\t0"])
    _write(root / "QQP" / "dev.tsv", [qqp, "301\t5\t6\tE?\tF?\t0"])
    _write(root / "QQP" / "test.tsv", ["id\tquestion1\tquestion2", f"0\t{Q}?\tG?", "1\tH?\tI?"])
    parse = "\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
    mnli = "index\tpromptID\tpairID\tgenre" + parse
    p = "\t( x )\t( y )\t(ROOT x)\t(ROOT y)"
    _write(
        root / "MNLI" / "train.tsv",
        [mnli + "\tlabel1\tgold_label", f"0\t31\t31e\tfiction{p}\t{Q}\tB\tneutral\tneutral"],
    )
    dev = mnli + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
    _write(
        root / "MNLI" / "dev_matched.tsv",
        [
            dev,
            f"0\t1\t1c\tslate{p}\tC\tD\tcontradiction\tneutral\tcontradiction\tcontradiction\tcontradiction\tcontradiction",
        ],
    )
    _write(
        root / "MNLI" / "dev_mismatched.tsv",
        [dev, f"0\t2\t2e\tletters{p}\tE\t{Q}\tentailment\tentailment\tentailment\tneutral\tentailment\tentailment"],
    )
    _write(root / "MNLI" / "test_matched.tsv", [mnli, f"0\t3\t3n\tslate{p}\tG\tH"])
    _write(root / "MNLI" / "test_mismatched.tsv", [mnli, f"0\t4\t4n\tletters{p}\tI\t{Q}"])
    _write(root / "QNLI" / "train.tsv", ["index\tquestion\tsentence\tlabel", f"0\t{Q}?\tB.\tnot_entailment"])
    _write(root / "QNLI" / "dev.tsv", ["index\tquestion\tsentence\tlabel", "0\tC?\tD.\tentailment"])
    _write(root / "QNLI" / "test.tsv", ["index\tquestion\tsentence", "0\tE?\tF."])
    for task, (yes, no) in (("RTE", ("entailment", "not_entailment")), ("WNLI", ("1", "0"))):
        _write(root / task / "train.tsv", ["index\tsentence1\tsentence2\tlabel", f"0\t{Q}\tB\t{no}", f"1\tC\tD\t{yes}"])
        _write(root / task / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", f"0\tE\t{Q}\t{yes}"])
        _write(root / task / "test.tsv", ["index\tsentence1\tsentence2", "0\tG\tH", "1\tI\tJ"])
    return root


def test_official_formats_of_all_nine_tasks(tmp_path):
    root = _official_glue(tmp_path / "glue_data")
    got = {name: load_glue_dir(name, root) for name in GLUE_TASKS}
    for name, data in got.items():  # every line one example: counts equal line counts minus headers
        task_dir = root / glue_dir_name(name)
        header = 0 if name == "cola" else 1
        assert len(data.train.texts) == len(_lines(task_dir / "train.tsv")) - header
        assert [len(s.texts) for s in data.test] == [len(_lines(f)) - 1 for f in sorted(task_dir.glob("test*.tsv"))]
        assert all(s.labels is None for s in data.test)
    # the texts with the unbalanced quote come through verbatim, at the right column
    assert got["cola"].train.texts == [("the sentence is fine .",), (f"{Q} .",)] and got["cola"].train.labels == [1, 0]
    assert got["cola"].test[0].ids == ["0", "1"] and got["cola"].test[0].texts[1] == (Q,)
    assert got["sst2"].train.texts[0] == (f"{Q} ",) and got["sst2"].train.labels == [1, 0]
    assert got["mrpc"].train.texts == [(Q, "B")] and got["mrpc"].test[0].texts == [(Q, "E")]
    assert got["stsb"].train.texts == [(Q, "B")] and got["stsb"].train.labels == [4.25]
    assert got["stsb"].evaluation[0].ids == ["7"] and got["stsb"].test[0].texts == [("E", "F")]
    assert got["qqp"].train.texts[0] == (f"{Q}?", "B?") and got["qqp"].train.labels == [1, 0]
    assert got["qqp"].train.ids == ["201", "202"] and got["qqp"].test[0].texts[0] == (f"{Q}?", "G?")
    mnli = got["mnli"]
    assert [s.name for s in mnli.evaluation] == ["validation_matched", "validation_mismatched"]
    assert [s.name for s in mnli.test] == ["test_matched", "test_mismatched"]
    assert mnli.train.texts == [(Q, "B")] and mnli.train.labels == [1]  # neutral: id 1 in the Hub's order
    assert mnli.evaluation[0].labels == [2] and mnli.evaluation[1].labels == [0]
    assert mnli.evaluation[1].texts == [("E", Q)] and mnli.test[1].texts == [("I", Q)]
    assert got["qnli"].train.labels == [1] and got["qnli"].evaluation[0].labels == [0]
    assert got["rte"].train.labels == [1, 0] and got["rte"].evaluation[0].texts == [("E", Q)]
    assert got["wnli"].train.labels == [0, 1]  # "1" = entailment = id 1 (Hub: not_entailment, entailment)
    assert load_glue_dir("rte", root, with_test=False).test == []


def test_glue_dir_errors_are_one_line(tmp_path):
    root = _official_glue(tmp_path / "glue_data")

    def error(name, glue_dir=root):
        with pytest.raises(BertptError) as e:
            load_glue_dir(name, glue_dir)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "unknown task 'sts'" in error("sts")
    assert "no such directory" in error("cola", tmp_path / "nowhere")
    (root / "QNLI" / "dev.tsv").unlink()
    assert error("qnli") == f"{root / 'QNLI' / 'dev.tsv'}: no such file"
    _write(root / "SST-2" / "dev.tsv", ["index\tsentence", "0\tx"])  # a test file where dev belongs
    assert "header 'index sentence' is not GLUE's SST-2 format (expected 'sentence' as column 0)" in error("sst2")
    _write(root / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\ta\tb"])
    assert error("rte") == f"{root / 'RTE' / 'train.tsv'} line 3: 3 tab-separated columns, GLUE's RTE format has 4"
    _write(
        root / "MNLI" / "train.tsv",
        ["index" + "\tc" * 7 + "\tsentence1\tsentence2\tgold_label", "0" + "\tx" * 9 + "\t-"],
    )
    assert error("mnli").endswith("train.tsv line 2: label '-' is not one of entailment, neutral, contradiction")
    _write(
        root / "STS-B" / "dev.tsv",
        ["index\tg\tf\ty\to\ts1\ts2\tsentence1\tsentence2\tscore", "0\t\t\t\t\t\t\ta\tb\thigh"],
    )
    assert "dev.tsv line 2: label 'high' is not a number" in error("stsb")
    _write(root / "CoLA" / "dev.tsv", [])
    assert error("cola") == f"{root / 'CoLA' / 'dev.tsv'}: no examples (the validation split is empty)"
    _write(root / "WNLI" / "dev.tsv", ["index\tsentence1\tsentence2\tlabel"])
    assert error("wnli") == f"{root / 'WNLI' / 'dev.tsv'}: no examples (the validation split is empty)"


# ---------------------------------------------------------------------------------------------------------------
# The Hub schema (nyu-mll/glue), offline: a local save_to_disk built in exactly that schema


def _hub_dict(task: str, rows: dict[str, list[tuple]], label_names=None):
    """A DatasetDict in nyu-mll/glue's schema: the task's text columns, label (ClassLabel; float32 for stsb), idx."""
    import datasets

    t = GLUE_TASKS[task]
    label = datasets.Value("float32") if t.is_regression else datasets.ClassLabel(names=list(label_names or t.labels))
    features = datasets.Features({**{c: datasets.Value("string") for c in t.text_columns}, "label": label})
    features["idx"] = datasets.Value("int32")
    splits = {}
    for split, examples in rows.items():
        columns = {c: [e[0][k] for e in examples] for k, c in enumerate(t.text_columns)}
        columns["label"] = [e[1] for e in examples]
        columns["idx"] = list(range(len(examples)))
        splits[split] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(splits)


def test_hub_schema_from_save_to_disk(tmp_path, real_glue_dir):
    cola = load_glue_dir("cola", real_glue_dir)
    mrpc = load_glue_dir("mrpc", real_glue_dir)
    n = 20
    cola_rows = {
        "train": list(zip(cola.train.texts[:n], cola.train.labels[:n])),
        "validation": list(zip(cola.evaluation[0].texts[:5], cola.evaluation[0].labels[:5])),
        "test": [(t, -1) for t in cola.evaluation[0].texts[5:8]],
    }
    mrpc_rows = {
        "train": list(zip(mrpc.train.texts[:n], mrpc.train.labels[:n])),
        "validation": list(zip(mrpc.evaluation[0].texts[:6], mrpc.evaluation[0].labels[:6])),
    }
    _hub_dict("cola", cola_rows).save_to_disk(str(tmp_path / "cola_only"))
    _hub_dict("cola", cola_rows).save_to_disk(str(tmp_path / "all" / "cola"))
    _hub_dict("mrpc", mrpc_rows).save_to_disk(str(tmp_path / "all" / "mrpc"))

    one = load_hub("cola", str(tmp_path / "cola_only"))  # one task's DatasetDict
    assert one.source == f"hub_dataset {tmp_path / 'cola_only'}"
    assert one.train.texts == cola.train.texts[:n] and one.train.labels == cola.train.labels[:n]
    assert one.evaluation[0].name == "validation" and one.evaluation[0].labels == cola.evaluation[0].labels[:5]
    assert [s.name for s in one.test] == ["test"] and one.test[0].labels is None and one.test[0].ids == ["0", "1", "2"]
    both = load_hub("mrpc", str(tmp_path / "all"))  # a directory with one DatasetDict per task
    assert both.train.texts == mrpc.train.texts[:n] and both.train.labels == mrpc.train.labels[:n]
    assert both.test == [] and both.evaluation[0].ids == [str(k) for k in range(6)]
    assert load_hub("cola", str(tmp_path / "all")).train.texts == one.train.texts

    def error(name, where):
        with pytest.raises(BertptError) as e:
            load_hub(name, str(where))
        assert "\n" not in str(e.value)
        return str(e.value)

    assert (
        error("cola", tmp_path / "nowhere")
        == f"{tmp_path / 'nowhere'}: no such directory (a local save_to_disk copy of nyu-mll/glue was expected)"
    )
    # cola's data offered as mrpc's: the columns it has and the ones mrpc needs
    assert "has columns sentence, label, idx; mrpc needs sentence1, sentence2, label" in error(
        "mrpc", tmp_path / "cola_only"
    )
    assert "expected" in error("sst2", tmp_path / "all") and "sst2/dataset_dict.json" in error("sst2", tmp_path / "all")
    _hub_dict("cola", cola_rows, label_names=["acceptable", "unacceptable"]).save_to_disk(str(tmp_path / "swapped"))
    assert "label names are acceptable, unacceptable" in error("cola", tmp_path / "swapped")
    _hub_dict("cola", {"train": cola_rows["train"]}).save_to_disk(str(tmp_path / "no_validation"))
    assert "no 'validation' split (it has train)" in error("cola", tmp_path / "no_validation")
    _hub_dict("mrpc", mrpc_rows).save_to_disk(str(tmp_path / "mrpc_as_stsb"))  # the same column names
    assert "the labels are classes (not_equivalent, equivalent); stsb has float scores" in error(
        "stsb", tmp_path / "mrpc_as_stsb"
    )
    _hub_dict("cola", {**cola_rows, "validation": cola_rows["test"]}).save_to_disk(str(tmp_path / "unlabelled"))
    assert "label -1 is not a class id 0..1 (test labels are -1: unlabelled)" in error("cola", tmp_path / "unlabelled")


def test_hub_schema_mnli_and_stsb(tmp_path):
    pair = [
        (("A man plays.", "Someone plays."), 0),
        (("A dog runs.", "A cat sleeps."), 2),
        (("He ate.", "He ate lunch."), 1),
    ]
    splits = ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched")
    rows = {s: [(t, -1) for t, _ in pair] if s.startswith("test") else pair for s in splits}
    _hub_dict("mnli", rows).save_to_disk(str(tmp_path / "mnli"))
    data = load_hub("mnli", str(tmp_path))
    assert [s.name for s in data.evaluation] == ["validation_matched", "validation_mismatched"]
    assert [s.name for s in data.test] == ["test_matched", "test_mismatched"] and data.test[1].labels is None
    assert data.evaluation[1].labels == [0, 2, 1] and data.train.texts[2] == ("He ate.", "He ate lunch.")
    sts = {"train": [(("a", "b"), 4.25), (("c", "d"), 0.5)], "validation": [(("e", "f"), 3.0)]}
    _hub_dict("stsb", sts).save_to_disk(str(tmp_path / "stsb"))
    data = load_hub("stsb", str(tmp_path))
    assert data.train.labels == [4.25, 0.5] and data.evaluation[0].labels == [3.0]


def test_hub_offline_name_is_one_line_error(tmp_path):
    """Offline, a Hub name cannot load: one line saying what to use instead (a fresh process, so that
    `datasets` reads the offline switches at import; an empty cache, so nothing can be found locally)."""
    code = (
        "from bertpt.finetune.tasks import load_hub\n"
        "try:\n    load_hub('rte', 'nyu-mll/glue-that-does-not-exist')\n"
        "except Exception as e:\n    print(type(e).__name__, '|', e)\n"
    )
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = run([sys.executable, "-c", code], env=env, timeout=120).stdout.strip()
    assert out.startswith("BertptError | cannot load nyu-mll/glue-that-does-not-exist 'rte' from the Hugging Face Hub")
    assert out.endswith("offline, use --glue_dir with GLUE's files or a local save_to_disk directory")
    assert "\n" not in out


# ---------------------------------------------------------------------------------------------------------------
# A user's own task


def test_user_csv_tsv_jsonl(tmp_path):
    _write(
        tmp_path / "reviews.csv",
        ["text,extra,stars", '"Good, really good",x,5', "plain,y,10", '"He said ""no"", twice",z,2', "ok,w,5"],
    )
    _write(tmp_path / "dev.tsv", ["text\tstars", 'a "quoted\t2', "b\t10"])
    _write(tmp_path / "test.jsonl", [json.dumps({"text": "c"}), "", json.dumps({"text": 'd "x'})])
    data = load_files(
        tmp_path / "reviews.csv",
        tmp_path / "dev.tsv",
        tmp_path / "test.jsonl",
        text_columns=("text",),
        label_column="stars",
    )
    task = data.task
    assert task.name == "reviews" and task.labels == ("2", "5", "10")  # integer labels in numeric order
    assert task.metrics == ("accuracy", "f1_macro") and task.text_columns == ("text",)
    assert data.train.texts == [("Good, really good",), ("plain",), ('He said "no", twice',), ("ok",)]
    assert data.train.labels == [1, 2, 0, 1] and data.train.ids == ["0", "1", "2", "3"]
    assert data.evaluation[0].texts == [('a "quoted',), ("b",)] and data.evaluation[0].labels == [0, 2]
    assert data.test[0].texts == [("c",), ('d "x',)] and data.test[0].labels is None

    _write(
        tmp_path / "pairs.jsonl", [json.dumps({"a": "x", "b": "y", "y": 0.5}), json.dumps({"a": "z", "b": "w", "y": 2})]
    )
    _write(tmp_path / "pairs_dev.json", [json.dumps([{"a": "p", "b": "q", "y": "1.5"}])])
    reg = load_files(
        tmp_path / "pairs.jsonl",
        tmp_path / "pairs_dev.json",
        text_columns=("a", "b"),
        label_column="y",
        regression=True,
    )
    assert reg.task.is_regression and reg.task.metrics == ("pearson", "spearman")
    assert reg.train.texts == [("x", "y"), ("z", "w")] and reg.train.labels == [0.5, 2.0]
    assert reg.evaluation[0].labels == [1.5] and reg.test == []
    cls = load_files(tmp_path / "pairs.jsonl", tmp_path / "pairs.jsonl", text_columns=("a", "b"), label_column="y")
    assert cls.task.labels == ("0.5", "2") and cls.train.labels == [0, 1] and cls.evaluation[0].name == "validation"


def test_user_file_errors_are_one_line(tmp_path):
    _write(tmp_path / "train.csv", ["sentence,label", "a,pos", "b,neg"])
    _write(tmp_path / "dev.csv", ["sentence,label", "c,pos", "d,neutral"])
    _write(tmp_path / "empty.csv", ["sentence,label"])
    _write(tmp_path / "reg.csv", ["sentence,label", "a,1.0", "b,lots"])

    def error(train="train.csv", dev="dev.csv", **kw):
        kw = {"text_columns": ("sentence",), "label_column": "label", **kw}
        with pytest.raises(BertptError) as e:
            load_files(tmp_path / train, tmp_path / dev, **kw)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert error(dev="missing.csv") == f"{tmp_path / 'missing.csv'}: no such file"
    assert (
        error(text_columns=("text",)) == f"{tmp_path / 'train.csv'}: no column 'text'; its columns are sentence, label"
    )
    assert error(label_column="y").endswith("no column 'y'; its columns are sentence, label")
    assert error() == (
        f"{tmp_path / 'dev.csv'} line 3: label 'neutral' does not occur in the train file (its labels: neg, pos)"
    )
    assert error(dev="empty.csv") == f"{tmp_path / 'empty.csv'}: no examples (the validation split is empty)"
    assert error(train="reg.csv", dev="reg.csv", regression=True) == (
        f"{tmp_path / 'reg.csv'} line 3: label 'lots' is not a number (a regression task needs numeric labels)"
    )
    _write(tmp_path / "train.txt", ["x"])
    assert "unknown file type '.txt'" in error(train="train.txt")
    assert "give one or two" in error(text_columns=("a", "b", "c"))
    _write(tmp_path / "bad.tsv", ["sentence\tlabel", "a\tpos\textra"])
    assert error(train="bad.tsv") == f"{tmp_path / 'bad.tsv'} line 2: 3 columns, the header has 2"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_user_files_with_a_byte_order_mark(tmp_path, suffix):
    # Excel's "CSV UTF-8" starts the file with U+FEFF; read as plain UTF-8 it would name the first column "\ufefftext"
    rows = {
        ".csv": ["text,label", "good,pos", "bad,neg"],
        ".tsv": ["text\tlabel", "good\tpos", "bad\tneg"],
        ".jsonl": [json.dumps({"text": "good", "label": "pos"}), json.dumps({"text": "bad", "label": "neg"})],
    }[suffix]
    path = tmp_path / f"train{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(r + "\n" for r in rows).encode())
    data = load_files(path, path, text_columns=("text",), label_column="label")
    assert data.train.texts == [("good",), ("bad",)] and data.task.labels == ("neg", "pos")
    assert data.train.labels == [1, 0] and data.task.user_defined


def test_user_labels_empty_nan_or_scores(tmp_path, capsys):
    _write(tmp_path / "ok.csv", ["s,y", "a,pos", "b,neg"])
    _write(tmp_path / "empty.csv", ["s,y", "a,pos", "b,", "c,neg"])
    _write(tmp_path / "blank.tsv", ["s\ty", "a\tpos", "b\t  "])
    _write(tmp_path / "nan.csv", ["s,y", "a,pos", "b,NaN"])
    _write(tmp_path / "nan.jsonl", [json.dumps({"s": "a", "y": 1}), '{"s": "b", "y": NaN}'])

    def error(train, dev="ok.csv"):
        with pytest.raises(BertptError) as e:
            load_files(tmp_path / train, tmp_path / dev, text_columns=("s",), label_column="y")
        assert "\n" not in str(e.value)
        return str(e.value)

    assert error("empty.csv") == f"{tmp_path / 'empty.csv'} line 3: the label is empty; every example needs a label"
    assert error("ok.csv", dev="empty.csv").startswith(f"{tmp_path / 'empty.csv'} line 3: the label is empty")
    assert error("blank.tsv").startswith(f"{tmp_path / 'blank.tsv'} line 3: the label is empty")
    assert error("nan.csv") == f"{tmp_path / 'nan.csv'} line 3: the label is NaN; every example needs a label"
    assert error("nan.jsonl").startswith(f"{tmp_path / 'nan.jsonl'} line 2: the label is NaN")

    # scores given without --regression: 30 distinct fractional numbers are refused, 30 integers only warned about
    _write(tmp_path / "scores.csv", ["s,y", *(f"w{k},{k / 7:.3f}" for k in range(30))])
    assert error("scores.csv", dev="scores.csv") == (
        f"{tmp_path / 'scores.csv'}: 30 distinct numeric labels (0.000 ... 4.143) taken as classes; "
        "for numbers to predict use --regression"
    )
    capsys.readouterr()
    _write(tmp_path / "ints.csv", ["s,y", *(f"w{k},{k}" for k in range(30))])
    data = load_files(tmp_path / "ints.csv", tmp_path / "ints.csv", text_columns=("s",), label_column="y")
    assert data.task.num_labels == 30
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"bertpt: warning: {tmp_path / 'ints.csv'}: 30 distinct numeric labels (0 ... 29): fine-tuned as 30 "
        "classes; if they are scores, use --regression"
    ]
    _write(tmp_path / "twenty.csv", ["s,y", *(f"w{k},{k / 7:.3f}" for k in range(20))])  # 20: still classes
    assert load_files(tmp_path / "twenty.csv", tmp_path / "twenty.csv", text_columns=("s",), label_column="y")
    assert capsys.readouterr().err == ""
