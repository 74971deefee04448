"""bertpt-finetune's own parts: the MODEL argument (bertpt run / checkpoints / tag, Hugging Face directories, and
what is refused), the classifier built on it, one fine-tune's reproducibility, results.json and the table.

The bertpt checkpoint is release 0.1's fixture (tests/fixtures/release_0_1: a 1-layer, 32-wide BERT with a
120-token vocabulary); the Hugging Face directories are written here from its weights and tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification, BertModel

from bertpt.ckpt.export import consolidated_state_dict
from bertpt.errors import BertptError
from bertpt.finetune import cli
from bertpt.finetune.results import LearningRateRun, MetricSummary, Results, TaskResult
from bertpt.finetune.source import checkpoint_sources, load_source
from bertpt.finetune.tasks import load_files
from bertpt.finetune.train import Recipe, build_model, fine_tune

from tests.ckpt_fakes import release_run
from tests.helpers import REPO, tensorboard_scalars

FIXTURE = REPO / "tests" / "fixtures" / "release_0_1"
CKPT = FIXTURE / "checkpoints"


@pytest.fixture(scope="module")
def bertpt_weights() -> dict[str, torch.Tensor]:
    """The fixture checkpoint's encoder weights, consolidated as bertpt-export does."""
    full, _ = consolidated_state_dict(CKPT, "step_000002")
    return {k.removeprefix("bert."): v for k, v in full.items() if k.startswith("bert.")}


def hf_dir(tmp_path: Path, cls, name: str, tokenizer_files=("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
    """A save_pretrained directory of `cls` holding the fixture's weights, with some of its tokenizer's files."""
    full, _ = consolidated_state_dict(CKPT, "step_000002")
    model = cls(BertConfig.from_json_file(str(CKPT / "model_config.json")))
    own = model.state_dict()
    # BertModel has no `bert.` prefix; every head keeps what it has of the checkpoint
    model.load_state_dict({k: v for k, v in full.items() if k in own} if cls is not BertModel else {}, strict=False)
    if cls is BertModel:
        model.load_state_dict({k.removeprefix("bert."): v for k, v in full.items() if k.startswith("bert.")})
    out = tmp_path / name
    model.save_pretrained(str(out))
    for f in tokenizer_files:
        shutil.copy(CKPT / "tokenizer" / f, out / f)
    return out


def assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---------------------------------------------------------------------------------------------
# MODEL: bertpt checkpoints


@pytest.mark.parametrize("model", [FIXTURE, CKPT, CKPT / "step_000002"], ids=["run", "checkpoints", "tag"])
def test_bertpt_checkpoint_in_every_form(model, bertpt_weights):
    source = load_source(model)
    assert source.description == f"{CKPT} step_000002"
    assert (source.step, source.tokens_seen, source.train_seconds) == (2, None, None)  # 0.1 recorded neither
    assert source.config.hidden_size == 32 and source.config.vocab_size == 120 == len(source.tokenizer)
    assert "pooler.dense.weight" in source.state_dict and not any(k.startswith("cls.") for k in source.state_dict)
    assert_same(source.state_dict, bertpt_weights)


def test_tag_flag_and_unknown_tag():
    assert load_source(FIXTURE, tag="step_000002").step == 2
    with pytest.raises(BertptError, match=r"no checkpoint step_000009 there \(its checkpoints: step_000002\)"):
        load_source(FIXTURE, tag="step_000009")


def test_checkpoint_sources_oldest_first(tmp_path, bertpt_weights):
    run = tmp_path / "run" / "checkpoints"
    shutil.copytree(CKPT, run)
    shutil.copytree(run / "step_000002", run / "step_000010")
    state = json.loads((run / "step_000010" / "bertpt_state.json").read_text())
    (run / "step_000010" / "bertpt_state.json").write_text(json.dumps({**state, "step": 10, "tokens_seen": 1280}))
    manifest = json.loads((run / "step_000010" / "manifest.json").read_text())  # the state file's size changed
    manifest["files"]["bertpt_state.json"] = (run / "step_000010" / "bertpt_state.json").stat().st_size
    (run / "step_000010" / "manifest.json").write_text(json.dumps(manifest))
    sources = list(checkpoint_sources(tmp_path / "run"))
    assert [(s.step, s.tokens_seen) for s in sources] == [(2, None), (10, 1280)]
    assert_same(sources[1].state_dict, bertpt_weights)
    with pytest.raises(BertptError, match="no bertpt checkpoint"):
        list(checkpoint_sources(tmp_path))


def test_checkpoint_of_another_tokenizer_is_refused(tmp_path):
    ckpt = tmp_path / "checkpoints"
    shutil.copytree(CKPT, ckpt)
    (ckpt / "bertpt.json").write_text(json.dumps({"tokenizer_hash": "0123456789abcdef"}))
    with pytest.raises(BertptError, match="trained with tokenizer 0123456789abcdef .* is tokenizer 1b43fdbfb63418b2"):
        load_source(ckpt)


def test_random_init_keeps_architecture_and_tokenizer():
    source = load_source(CKPT, random_init=True)
    assert source.state_dict is None and source.config.hidden_size == 32 and len(source.tokenizer) == 120
    assert source.description.endswith("(random init)")


# ---------------------------------------------------------------------------------------------
# MODEL: Hugging Face directories


@pytest.mark.parametrize("cls", [BertForPreTraining, BertForSequenceClassification, BertModel])
def test_hf_directories(tmp_path, cls, bertpt_weights):
    # a bertpt export (BertForPreTraining, full tokenizer); save_pretrained dirs with only a vocab.txt
    files = ("tokenizer.json", "tokenizer_config.json", "vocab.txt") if cls is BertForPreTraining else ("vocab.txt",)
    source = load_source(hf_dir(tmp_path, cls, cls.__name__, files))
    assert f"(Hugging Face {cls.__name__})" in source.description and source.step is None
    assert len(source.tokenizer) == 120
    # the fixture's vocabulary is lowercase: a bare vocab.txt is read as uncased (the casing its entries imply)
    assert source.tokenizer("The THE").input_ids == load_source(CKPT).tokenizer("the the").input_ids
    assert_same(source.state_dict, bertpt_weights)


def test_hf_masked_lm_has_no_pooler(tmp_path, bertpt_weights):
    source = load_source(hf_dir(tmp_path, BertForMaskedLM, "mlm"))
    assert_same(source.state_dict, {k: v for k, v in bertpt_weights.items() if not k.startswith("pooler.")})
    model = build_model(source, _user_task(tmp_path), seed=1)  # pooler and head fresh, the rest loaded
    assert torch.equal(
        model.bert.embeddings.word_embeddings.weight, bertpt_weights["embeddings.word_embeddings.weight"]
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file or directory"),
        ("empty", "neither a Hugging Face BERT directory"),
        ("roberta", "a 'roberta' model, not BERT"),
        ("no_tokenizer", "no tokenizer (tokenizer.json or vocab.txt)"),
        ("no_weights", "no weights"),
        ("other_vocab", "its tokenizer has 121 tokens but the model's vocab_size is 120"),
    ],
)
def test_not_a_bert_model_is_refused(tmp_path, case, message):
    path = tmp_path / case
    if case != "missing":
        path.mkdir()
    if case in ("roberta", "no_tokenizer", "no_weights", "other_vocab"):
        path = hf_dir(tmp_path, BertForPreTraining, "hf", ("vocab.txt",))
        if case == "roberta":
            config = json.loads((path / "config.json").read_text())
            (path / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
        if case == "no_tokenizer":
            (path / "vocab.txt").unlink()
        if case == "no_weights":
            (path / "model.safetensors").unlink()
        if case == "other_vocab":
            with open(path / "vocab.txt", "a") as f:
                f.write("zzzextra\n")
    with pytest.raises(BertptError) as e:
        load_source(path)
    assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# The model, one fine-tune


def _user_task(tmp_path: Path, n: int = 40):
    rng = np.random.default_rng(0)
    words = ["the", "a", "is", "of", "and", "to", "in", "it"]
    for name in ("train", "dev"):
        sentences = [" ".join(rng.choice(words, 6)) for _ in range(n)]
        rows = [{"s": s, "y": str(int("it" in s.split()))} for s in sentences]  # learnable: is "it" in it?
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_files(tmp_path / "train.jsonl", tmp_path / "dev.jsonl", text_columns=("s",), label_column="y")


def test_head_is_initialised_under_the_seed(tmp_path):
    source, data = load_source(CKPT), _user_task(tmp_path)
    a, b, c = (build_model(source, data, seed) for seed in (1, 1, 2))
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert a.num_labels == 2 and a.config.problem_type == "single_label_classification"
    assert_same({k: v for k, v in a.bert.state_dict().items()}, source.state_dict)


def test_fine_tune_is_reproducible_to_the_last_digit(tmp_path):
    source, data = load_source(CKPT), _user_task(tmp_path)
    recipe = Recipe(learning_rate=1e-3, epochs=2, batch_size=8)
    first = fine_tune(source, data, recipe, seed=3, out_dir=tmp_path / "out")
    again = fine_tune(source, data, recipe, seed=3)
    other = fine_tune(source, data, recipe, seed=4)
    assert first["steps"] == 10 and first["train_examples"] == 40
    assert first["train_loss"] == again["train_loss"] != other["train_loss"]  # the seed matters, and only the seed
    assert first["metrics"] == again["metrics"] and set(first["metrics"]) == {"accuracy", "f1_macro"}
    assert np.array_equal(first["predictions"]["validation"], again["predictions"]["validation"])
    assert first["predictions"]["validation"].shape == (40,)
    assert list((tmp_path / "out" / "tb" / data.task.name / "lr0.001_seed3").glob("events.out.tfevents.*"))


# ---------------------------------------------------------------------------------------------
# results.json and the table


def _results() -> Results:
    cola = LearningRateRun.of(2e-5, [{"matthews_correlation": v} for v in (0.5, 0.3, 0.4)], [1.0, 2.0, 3.0])
    mrpc_lo = LearningRateRun.of(2e-5, [{"f1": 0.8, "accuracy": 0.7}], [5.0])
    mrpc_hi = LearningRateRun.of(5e-5, [{"f1": 0.9, "accuracy": 0.8}], [6.0])
    return Results(
        tasks={
            "cola": TaskResult.of([cola], [42, 43, 44], 8551, "glue_dir x/CoLA", 6.5),
            "mrpc": TaskResult.of([mrpc_lo, mrpc_hi], [42], 2576, "glue_dir x/MRPC", 11.5),
        },
        average=(0.4 + 0.85) / 2,
        model="runs/x/checkpoints step_000002",
        recipe={"epochs": 3.0, "batch_size": 32},
        wall_seconds=20.0,
        bertpt_version="0.1.0",
        model_step=2,
    )


def test_results_summaries_and_round_trip(tmp_path):
    r = _results()
    cola, mrpc = r.tasks["cola"], r.tasks["mrpc"]
    assert (cola.score, cola.scores, cola.metrics["matthews_correlation"].min) == (0.4, [0.5, 0.3, 0.4], 0.3)
    assert mrpc.learning_rate == 5e-5 and mrpc.score == pytest.approx(0.85) and len(mrpc.sweep) == 2
    path = r.write(tmp_path)
    assert path == tmp_path / "results.json" and Results.read(tmp_path) == r
    d = json.loads(path.read_text())
    assert d["tasks"]["cola"]["metrics"]["matthews_correlation"] == {
        "median": 0.4,
        "values": [0.5, 0.3, 0.4],
        "min": 0.3,
        "max": 0.5,
    }
    assert d["average"] == pytest.approx(0.625) and d["tokens_seen"] is None
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(BertptError, match="not a readable bertpt-finetune results.json"):
        Results.read(tmp_path / "bad.json")


def test_table():
    lines = cli.format_table(_results()).splitlines()
    assert lines[0].split() == ["task", "metric", "median", "min..max", "score", "seeds", "lr"]
    assert lines[1].split() == ["cola", "matthews_correlation", "40.00", "30.00..50.00", "40.00", "3", "2e-05"]
    assert lines[2].split() == ["mrpc", "f1", "90.00", "90.00..90.00", "85.00", "1", "5e-05"]
    assert lines[3].split() == ["accuracy", "80.00", "80.00..80.00"]
    assert lines[4].split() == ["GLUE", "average", "62.50"]
    r = _results()
    r.tasks["cola"].metrics["matthews_correlation"] = MetricSummary.of([-0.444, -0.401])  # negative: unambiguous
    assert cli.format_table(r).splitlines()[1].split()[3] == "-44.40..-40.10"


# ---------------------------------------------------------------------------------------------
# The command line


def test_default_learning_rate_and_seeds():
    assert cli.default_learning_rate(BertConfig(hidden_size=256)) == 1e-4
    assert cli.default_learning_rate(BertConfig(hidden_size=768)) == 2e-5
    cfg = cli.FinetuneConfig(model="m", glue_dir="g", output_dir="o")
    assert cfg.task_names() == ["cola", "sst2", "mrpc", "stsb"]
    assert cli.seeds_for(cfg, 8551) == [42, 43, 44] and cli.seeds_for(cfg, 67349) == [42]
    assert cli.seeds_for(cli.FinetuneConfig(seeds=5, seed=1), 67349) == [1, 2, 3, 4, 5]
    assert cli.FinetuneConfig(learning_rate="1e-4, 3e-5").learning_rates(None) == [1e-4, 3e-5]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["m", "--glue_dir", "g", "--output_dir", "o", "--learning_rat", "1"], "unknown flag --learning_rat"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--learning_rate", "fast"], "--learning_rate fast: not auto"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--epochs", "0"], "--epochs must be > 0"),
        (["m", "--glue_dir", "g"], "--output_dir is required"),
        (["m", "--output_dir", "o"], "give --tasks (GLUE), --glue_dir"),
        (["--glue_dir", "g", "--output_dir", "o"], "give the MODEL"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--tasks", "cola,sst3"], "sst3"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--tasks", "mrpc,cola,mrpc"], "names mrpc more than once"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--tasks", "SST-2,sst2"], "names sst2 more than once"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--tasks="], "--tasks '' names no task"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--tasks", " , "], "names no task"),
        (
            ["m", "--tasks", "mrpc", "--train_file", "x/MRPC.csv", "--validation_file", "v.csv", "--text_columns", "s"]
            + ["--output_dir", "o"],
            "your task is named 'MRPC' after --train_file x/MRPC.csv, like the GLUE task mrpc of --tasks; rename the "
            "train file (its stem names the task), e.g. my_MRPC.csv",
        ),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--max_seq_length", "7"], "--max_seq_length must be >= 8"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--epochs", "inf"], "--epochs must be a finite number"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--seed", "-5"], "--seed must be in [0, 4294967293]"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--seed", "4294967294"], "--seed must be in [0, 4294967293]"),
        (["m", "--glue_dir", "g", "--output_dir", "o", "--seeds", "5", "--seed", "4294967292"], "[0, 4294967291]"),
        (
            ["m", "--glue_dir", "g", "--output_dir", "o", "--all_checkpoints", "--random_init"],
            "--random_init and --all_checkpoints exclude each other",
        ),
    ],
)
def test_bad_flags_are_one_line(tmp_path, capsys, argv, message):
    argv = [a if a != "o" else str(tmp_path / "o") for a in argv]
    with pytest.raises(SystemExit) as e:
        cli.main([a if a != "m" else str(CKPT) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("bertpt-finetune: error:") and message in err[0]
    assert not (tmp_path / "o" / "results.json").exists()


def test_validation_accepts_the_edges():
    cli.FinetuneConfig(model="m", glue_dir="g", output_dir="o", max_seq_length=8, seed=2**32 - 3).validate()
    cli.FinetuneConfig(model="m", glue_dir="g", output_dir="o", seed=0, seeds=1).validate()


@pytest.mark.parametrize("case", ["a_file", "results_json_a_directory", "under_proc"])
def test_output_dir_is_checked_before_the_model(tmp_path, capsys, case):
    out = {"a_file": tmp_path / "file", "results_json_a_directory": tmp_path / "out", "under_proc": Path("/proc/o")}[
        case
    ]
    if case == "a_file":
        out.write_text("x")
    if case == "results_json_a_directory":
        (out / "results.json").mkdir(parents=True)
    # the model does not exist: the output directory is refused first, before anything is loaded
    with pytest.raises(SystemExit) as e:
        cli.main([str(tmp_path / "no_model"), "--glue_dir", "g", "--output_dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(f"bertpt-finetune: error: --output_dir {out}")
    assert "no_model" not in err[0]
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_results_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "results.json").mkdir()
    with pytest.raises(OSError):
        _results().write(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_default_tasks_of_a_glue_dir(tmp_path):
    for d in ("MRPC", "RTE", "QNLI", "notes"):
        (tmp_path / "a" / d).mkdir(parents=True)
    (tmp_path / "b" / "QNLI").mkdir(parents=True)
    (tmp_path / "b" / "RTE").mkdir()
    (tmp_path / "c").mkdir()
    assert cli.FinetuneConfig(glue_dir=str(tmp_path / "a")).task_names() == ["mrpc"]  # the shipped ones present
    assert cli.FinetuneConfig(glue_dir=str(tmp_path / "b")).task_names() == ["qnli", "rte"]  # else every one present
    assert cli.FinetuneConfig(glue_dir=str(tmp_path / "c")).task_names() == ["cola", "sst2", "mrpc", "stsb"]


def test_mlm_only_checkpoint_has_no_pooler_like_its_export(tmp_path, bertpt_weights):
    from bertpt.ckpt.export import export_hf

    ckpt = release_run(tmp_path) / "checkpoints"
    (ckpt / "bertpt.json").write_text(
        json.dumps({**json.loads((ckpt / "bertpt.json").read_text()), "objective": "mlm"})
    )
    source = load_source(ckpt.parent)
    assert not any(k.startswith("pooler.") for k in source.state_dict)
    assert_same(source.state_dict, {k: v for k, v in bertpt_weights.items() if not k.startswith("pooler.")})
    exported = load_source(export_hf(ckpt, tmp_path / "hf"))
    assert "BertForMaskedLM" in exported.description
    assert_same(source.state_dict, exported.state_dict)  # the same encoder either way: the same fine-tuning numbers
    assert "pooler.dense.weight" in load_source(CKPT).state_dict  # MLM + NSP (0.1 recorded no objective): kept


def test_user_task_named_like_glue_and_a_rerun(tmp_path, capsys):
    """A user task called mrpc is no GLUE task (not in the GLUE average, its own submission names); a rerun
    removes the earlier results.json at the start and replaces its TensorBoard directory."""
    _user_task(tmp_path)
    shutil.copy(tmp_path / "train.jsonl", tmp_path / "mrpc.jsonl")
    out = tmp_path / "out"
    cfg = cli.FinetuneConfig(
        model=str(CKPT),
        train_file=str(tmp_path / "mrpc.jsonl"),
        validation_file=str(tmp_path / "dev.jsonl"),
        test_file=str(tmp_path / "dev.jsonl"),
        text_columns="s",
        label_column="y",
        output_dir=str(out),
        epochs=1.0,
        seeds=1,
        batch_size=8,
        max_train_samples=8,
        learning_rate="1e-3",
    )
    first = cli.run(cfg)
    assert list(first.tasks) == ["mrpc"] and first.average is None
    assert [Path(f).name for f in first.tasks["mrpc"].submission] == ["mrpc_test.tsv"]
    assert "GLUE average" not in cli.format_table(first)
    said = capsys.readouterr().out
    assert "8 examples, 1 epoch\n" in said.replace("\r", "") and "removed" not in said
    tb = out / "tb" / "mrpc" / "lr0.001_seed42"
    events = {p.name for p in tb.glob("events.out.tfevents.*")}  # one monitor writes the whole fine-tune
    assert len(events) == 1
    assert {"train/train_loss", "eval/accuracy", "eval/f1_macro"} <= set(tensorboard_scalars(tb))

    (out / "results.json").write_text('{"stale": true}')
    (tb / "events.out.tfevents.old").write_text("")
    again = cli.run(cfg)
    said = capsys.readouterr().out
    assert f"removed {out / 'results.json'} of an earlier run" in said
    assert Results.read(out) == again and again.tasks["mrpc"].score == first.tasks["mrpc"].score
    now = {p.name for p in tb.glob("events.out.tfevents.*")}
    assert len(now) == 1 and not now & events and not (tb / "events.out.tfevents.old").exists()


def test_console_script():
    assert 'bertpt-finetune = "bertpt.finetune.cli:main"' in (REPO / "pyproject.toml").read_text().splitlines()
