"""What a resume refuses (docs/checkpoints.md, "What resuming promises"), each with a real checkpoint: another
model size, another tokenizer, a changed global batch, another ZeRO stage, a global batch the new world size
cannot keep. Each is one line and exit 2, leaves every file of the output directory as it was, and comes
before DeepSpeed initialises: the command runs under cProfile (the real command, profiled), and
`deepspeed.initialize` must not have been called, while the run that saved the checkpoint shows that the
probe sees it when it is.

One real checkpoint per session (bert-tiny, 1 rank, ZeRO-2 fp32, micro 4 = global batch 4, 2 of 4 steps),
copied per test.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from bertpt.data.corpus import Source
from bertpt.data.prepare import PrepareConfig, prepare

from tests.helpers import ds_config, free_port, one_error_line, run, train_args

pytestmark = pytest.mark.slow
MICRO = 4  # 1 rank x micro 4 x accumulation 1: the checkpoint's global batch is 4

# Runs bertpt-pretrain's main under cProfile and prints how often deepspeed.initialize was called; keeps the
# exit status. Written to a file so that the deepspeed launcher can start it as its training script.
PROFILED = """\
import cProfile, pstats, sys
from bertpt.pretrain import main
profile, code = cProfile.Profile(), 0
try:
    profile.runcall(main, sys.argv[1:])
except SystemExit as e:
    code = e.code
calls = sum(
    s[1] for (path, _, name), s in pstats.Stats(profile).stats.items()
    if name == "initialize" and path.replace("\\\\", "/").endswith("deepspeed/__init__.py")
)
print(f"deepspeed.initialize calls: {calls}", flush=True)
sys.exit(code)
"""


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file under `root`: (size, mtime in ns, sha256); every directory: 'dir'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = (
            "dir"
            if p.is_dir()
            else (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        )
    return out


@pytest.fixture(scope="module")
def saved(tiny_data, tmp_path_factory):
    """(script, output dir of a run saved at step 2 of 4, its DeepSpeed JSON)."""
    tmp = tmp_path_factory.mktemp("resume_guards")
    script = tmp / "profiled_pretrain.py"
    script.write_text(PROFILED)
    config = ds_config(tmp, "zero2", "fp32", micro=MICRO, accum=1)
    out = tmp / "run"
    proc = run([sys.executable, str(script), *train_args(tiny_data, out, config, 4, "--steps_this_run", "2")])
    assert "deepspeed.initialize calls: 1" in proc.stdout  # the probe sees an engine being built
    state = json.loads((out / "checkpoints" / "step_000002" / "bertpt_state.json").read_text())
    assert (state["step"], state["global_batch"], state["zero_stage"], state["world_size"]) == (2, MICRO, 2, 1)
    return script, out, config


def refused(saved, tmp_path, data: Path, config: str, *extra: str, launcher: list[str] | None = None) -> str:
    """Resume a copy of the saved run with these settings; assert the refusal's contract; return its line."""
    script, source, _ = saved
    out = tmp_path / "run"
    shutil.copytree(source, out)
    before = snapshot(out)
    t0 = time.time()
    proc = run([*(launcher or [sys.executable]), str(script), *train_args(data, out, config, 4, *extra)], check=False)
    seconds = time.time() - t0
    line = one_error_line(proc)
    # every rank that got as far as reporting built no engine (the launcher may end rank 1 once rank 0 exited)
    reports = re.findall(r"deepspeed.initialize calls: (\d+)", proc.stdout)
    assert reports and set(reports) == {"0"}, proc.stdout[-2000:]
    assert snapshot(out) == before  # nothing new, nothing modified
    print(f"refused in {seconds:.1f} s: {line}")
    return line


def test_another_model_size_is_refused(saved, tmp_path, tiny_data):
    line = refused(saved, tmp_path, tiny_data, saved[2], "--model", "bert-mini")
    assert "has hidden_size 128 but this run's model has 256" in line


def test_another_tokenizer_is_refused(saved, tmp_path, tiny_data, corpus_dir):
    """The same text and vocabulary size, but cased: another tokenizer (its fingerprint) with as many tokens."""
    other = tmp_path / "cased"
    tiny = json.loads((tiny_data / "meta.json").read_text())
    prepare(
        PrepareConfig(
            output_dir=str(other),
            vocab_size=tiny["vocab_size"],
            cased=True,
            max_seq_length=64,
            val_fraction=0.1,
            num_workers=0,
            sentence_splitter="lines",
        ),
        source=Source(inputs=[str(corpus_dir)]),
        progress=False,
    )
    assert json.loads((other / "meta.json").read_text())["vocab_size"] == tiny["vocab_size"]
    line = refused(saved, tmp_path, other, saved[2])
    assert "was trained with another tokenizer" in line and "resume with the data it was trained on" in line


@pytest.mark.parametrize(
    "batch, gives",
    [
        ({"micro": 2, "accum": 1}, "gives 2 (2 x 1 x 1 rank)"),  # the field case: a smaller micro batch
        ({"micro": 4, "accum": 2}, "gives 8 (4 x 2 x 1 rank)"),  # more accumulation
    ],
)
def test_a_changed_global_batch_is_refused(saved, tmp_path, tiny_data, batch, gives):
    config = ds_config(tmp_path, "zero2", "fp32", **batch)
    line = refused(saved, tmp_path, tiny_data, config)
    assert f"global batch of {MICRO} (micro batch 4 x gradient accumulation 1 x 1 rank)" in line and gives in line


def test_another_zero_stage_is_refused(saved, tmp_path, tiny_data):
    config = ds_config(tmp_path, "zero3", "fp32", micro=MICRO, accum=1)
    line = refused(saved, tmp_path, tiny_data, config)
    assert "was trained with ZeRO stage 2 but the DeepSpeed JSON asks for stage 3" in line


def test_a_global_batch_the_new_world_size_cannot_keep_is_refused(saved, tmp_path, tiny_data):
    """Saved on 1 rank with global batch 4; on 2 ranks micro 4 gives 8 per step, which 4 cannot be kept as."""
    launcher = ["deepspeed", "--num_gpus", "2", "--master_port", str(free_port())]
    line = refused(saved, tmp_path, tiny_data, saved[2], launcher=launcher)
    assert "global batch of 4, which 2 ranks x micro batch 4 = 8 does not divide" in line
    assert "set train_micro_batch_size_per_gpu to one of 1, 2" in line
