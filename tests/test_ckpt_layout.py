"""The checkpoint directory contract (bertpt/ckpt/layout.py): tags, manifest, the one newest-good
checkpoint that resume, --init_from and export all take, the run position, the compatibility check,
and that each of them has one owner in the sources."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from bertpt.ckpt import layout, resume
from bertpt.ckpt.export import export_hf
from bertpt.ckpt.layout import (
    Checkpoint,
    RunPosition,
    newest_good,
    published_tags,
    tag_for,
    verify,
)
from bertpt.ckpt.warmstart import initial_weights
from bertpt.data.dataset import load_meta
from bertpt.errors import BertptError
from bertpt.model import BertForPreTraining, bert_config

from tests.ckpt_fakes import RELEASE_0_1, fake_tag, release_run

SOURCES = Path(layout.__file__).resolve().parent.parent  # bertpt/


def sources(exclude: str) -> dict[Path, str]:
    return {p: p.read_text() for p in SOURCES.rglob("*.py") if p.name != exclude or p.parent.name != "ckpt"}


def test_tags_and_manifest(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert tag_for(7) == "step_000007" and published_tags(ckpt) == []
    for step in (10, 9, 100):
        fake_tag(ckpt, step)
    for other in ("step_000200.tmp", "step_000100_universal", ".step_000100_universal.tmp"):
        (ckpt / other).mkdir()
    assert published_tags(ckpt) == ["step_000100", "step_000010", "step_000009"]
    assert layout.read_latest(ckpt) == "step_000100" and layout.read_latest(tmp_path) is None
    d = ckpt / "step_000010"
    assert verify(d) is None
    (d / "rng_rank_0.pt").unlink()
    assert verify(d) == "rng_rank_0.pt is missing"
    layout.write_manifest(d, d.name)  # a manifest of what is there now
    assert json.loads((d / "manifest.json").read_text())["files"] == {"mp_rank_00_model_states.pt": 100}
    assert verify(d) is None
    (d / "manifest.json").write_text("{")
    assert verify(d).startswith("manifest.json is damaged")
    assert verify(ckpt / "step_000009_nothing") == "no manifest.json (not saved by bertpt, or the save did not finish)"


def test_newest_good_resolves_a_run_dir_a_checkpoints_dir_and_a_tag(tmp_path, capsys):
    ckpt = tmp_path / "run" / "checkpoints"
    assert newest_good(tmp_path / "run", "x", "using") is None  # nothing there
    fake_tag(ckpt, 4)
    newest = fake_tag(ckpt, 8)
    expected = Checkpoint(ckpt, "step_000008")
    assert newest_good(tmp_path / "run", "x", "using") == expected
    assert newest_good(ckpt, "x", "using") == expected
    assert newest_good(newest, "x", "using") == expected
    assert newest_good(ckpt / "step_000004", "x", "using") == Checkpoint(ckpt, "step_000004")  # a tag: that one
    assert expected.path == newest
    assert capsys.readouterr().err == ""  # nothing skipped, `latest` agrees: no warning

    newest.joinpath("rng_rank_0.pt").write_bytes(b"")
    assert newest_good(tmp_path / "run", "x", "using") == Checkpoint(ckpt, "step_000004")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        (
            f"bertpt: warning: skipped checkpoint {newest} is incomplete or damaged (rng_rank_0.pt has 0 "
            f"bytes, 101 were written); using {ckpt / 'step_000004'}"
        )
    ]
    with pytest.raises(BertptError, match=r"^--thing: the checkpoint is incomplete or damaged \(rng_rank_0.pt"):
        newest_good(newest, "--thing", "using")
    (ckpt / "step_000004" / "manifest.json").unlink()
    with pytest.raises(
        BertptError,
        match=r"^--thing: no usable checkpoint in .*checkpoints: .*no manifest.json.*; "
        r"do this$",
    ):
        newest_good(ckpt, "--thing", "using", "do this")


def test_latest_is_read_in_layout_only():
    """`latest` is a hint with one reader (read_latest, used by newest_good): no other module opens it."""
    literal = re.compile(r"""["']latest["']|\bLATEST\b|read_latest""")
    readers = {
        p.relative_to(SOURCES.parent): [line.strip() for line in text.splitlines() if literal.search(line)]
        for p, text in sources("layout.py").items()
    }
    assert {p: lines for p, lines in readers.items() if lines} == {}
    layout_src = Path(layout.__file__).read_text()
    reads = [line for line in layout_src.splitlines() if "LATEST" in line and ("read_text" in line or "open(" in line)]
    assert reads == []  # only through `path = ... / LATEST` in read_latest
    assert layout_src.count("def read_latest") == 1 and layout_src.count("read_latest(") == 2  # def + newest_good


def test_verification_shapes_and_positions_have_one_owner():
    """Every other module goes through layout: no second verify loop, shape-key list or position reader."""
    owners = {
        r"\bverify\(": "verify",  # only layout's newest_good verifies
        r'"intermediate_size"': "shape keys",
        r"bertpt_state\.json\"|\bSTATE\b.*read_text": "run position",
        r'"consumed_samples"\]|get\("consumed_samples"': "a second copy of the position",  # read by key
    }
    found = {
        what: sorted(
            str(p.relative_to(SOURCES.parent))
            for p, text in sources("layout.py").items()
            if re.search(pattern, text) and not p.match("bertpt/model.py")
        )
        for pattern, what in owners.items()
    }
    assert found == {what: [] for what in owners.values()}


def test_run_position_round_trips_and_reads_release_0_1(tmp_path):
    pos = RunPosition(
        step=6, consumed_samples=48, world_size=2, micro_batch=4, grad_accum=1, global_batch=8, zero_stage=2
    )
    assert RunPosition.from_dict(json.loads(pos.to_json())) == pos
    assert RunPosition.from_dict({**json.loads(pos.to_json()), "added_later": 1}) == pos  # a newer bertpt's file
    old = layout.read_position(Checkpoint(RELEASE_0_1 / "checkpoints", "step_000002"))
    assert old == RunPosition(
        step=2, consumed_samples=8, world_size=1, micro_batch=4, grad_accum=1, global_batch=4, zero_stage=2
    )
    fake_tag(tmp_path, 3)
    with pytest.raises(BertptError, match="has no readable bertpt_state.json"):
        layout.read_position(Checkpoint(tmp_path, "step_000003"))
    state = layout.client_state({"seed": 1}, {"zero_optimization": {"stage": 2}}, "abc")
    state["bertpt"]["masking"] = {"static": False}  # later issues add entries
    assert set(state["bertpt"]) == {"config", "ds_config", "tokenizer_hash", "masking"}


def test_one_compatibility_check_for_resume_and_init_from(tmp_path):
    """A model of another width, another position count, another tokenizer: resume.plan and --init_from
    refuse them through the same check, with the same words."""
    run = release_run(tmp_path)
    meta = load_meta(run / "data")
    found = resume.find(str(run / "checkpoints"), tmp_path / "elsewhere")
    ours = json.loads((run / "model.json").read_text())
    for key, value in (("hidden_size", 64), ("max_position_embeddings", 128), ("type_vocab_size", 4)):
        config = bert_config(_write(tmp_path, {**ours, key: value}), meta.vocab_size, meta.special_ids.pad)
        text = f"has {key} {ours[key]} but this run's model has {value}; "
        with pytest.raises(BertptError, match=f"^checkpoint {re.escape(str(found.path))} {text}resume with the same"):
            resume.plan(found, {}, 0, 1, config.to_dict(), meta.tokenizer_hash)
        with pytest.raises(BertptError, match=f"^--init_from {re.escape(str(run))} {text}train the same shape"):
            initial_weights(str(run), BertForPreTraining(config), meta.tokenizer_hash)
    config = bert_config(str(run / "model.json"), meta.vocab_size, meta.special_ids.pad)
    for call in (
        lambda: resume.plan(found, {}, 0, 1, config.to_dict(), "0123456789abcdef"),
        lambda: initial_weights(str(run), BertForPreTraining(config), "0123456789abcdef"),
    ):
        with pytest.raises(
            BertptError,
            match=f"was trained with another tokenizer \\({meta.tokenizer_hash}\\) "
            "than the data's \\(0123456789abcdef\\)",
        ):
            call()
    vocab = meta.vocab_size + 8
    other_vocab = bert_config(_write(tmp_path, {**ours, "vocab_size": vocab}), vocab, meta.special_ids.pad)
    with pytest.raises(
        BertptError,
        match=f"has vocab_size {meta.vocab_size} but the data's tokenizer has "
        f"{meta.vocab_size + 8} tokens; prepare the data with the tokenizer",
    ):
        resume.plan(found, {}, 0, 1, other_vocab.to_dict(), meta.tokenizer_hash)


def _write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / f"model-{len(list(tmp_path.glob('model-*.json')))}.json"
    path.write_text(json.dumps(config))
    return str(path)


def test_resume_init_from_and_export_take_the_same_newest_good_checkpoint(tmp_path, capsys):
    """step_000004 is damaged and `latest` names it: all three fall back to step_000002, each with one warning."""
    run = release_run(tmp_path, damaged_newer=True)
    ckpt, good = run / "checkpoints", Checkpoint(run / "checkpoints", "step_000002")
    assert layout.read_latest(ckpt) == "step_000004"
    meta = load_meta(run / "data")
    config = bert_config(str(run / "model.json"), meta.vocab_size, meta.special_ids.pad)

    assert resume.find("auto", ckpt) == good
    assert resume.find(str(run), tmp_path / "elsewhere") == good
    warnings = [capsys.readouterr().err]
    model = BertForPreTraining(config)
    assert f"initialised from {good.path} (all weights" in initial_weights(str(run), model, meta.tokenizer_hash)
    warnings.append(capsys.readouterr().err)
    out = export_hf(ckpt, tmp_path / "hf")
    warnings.append(capsys.readouterr().err)
    assert "tag `step_000002`" in (out / "README.md").read_text()
    for err, purpose in zip(warnings, ("resuming from", "initialising from", "exporting")):
        lines = [line for line in err.splitlines() if line.startswith("bertpt:")]  # not transformers' progress
        assert len(lines) == (2 if purpose == "resuming from" else 1), err  # one per call
        assert all(
            line.startswith(
                f"bertpt: warning: skipped checkpoint {ckpt / 'step_000004'} is incomplete or "
                "damaged (zero_pp_rank_0_mp_rank_00_optim_states.pt has"
            )
            and line.endswith(f"; {purpose} {good.path}")
            for line in lines
        ), err

    from transformers import BertForPreTraining as HFBertForPreTraining

    hf = HFBertForPreTraining.from_pretrained(str(out))
    assert all(torch.equal(hf.state_dict()[k], v) for k, v in model.state_dict().items() if k in hf.state_dict())


def test_export_of_a_named_tag_takes_a_run_dir_and_names_a_missing_tag(tmp_path):
    run = release_run(tmp_path)
    out = export_hf(run, tmp_path / "hf", tag="step_000002")  # the run's output directory, not its checkpoints/
    assert "tag `step_000002`" in (out / "README.md").read_text() and (out / "config.json").is_file()
    with pytest.raises(BertptError, match=r"checkpoints: no checkpoint step_000999 \(its checkpoints: step_000002\)$"):
        export_hf(run / "checkpoints", tmp_path / "hf2", tag="step_000999")
    assert not (tmp_path / "hf2").exists()  # nothing written
